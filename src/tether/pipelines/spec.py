"""``pipeline.yaml``: stages, their deps, params and outs, expanded over ``matrix``/``foreach``,
checked into a DAG. Every mistake names the stages involved.

    stages:
      prepare:
        cmd: python prepare.py
        deps: [prepare.py, data/raw]
        params: [prepare.split]            # keys of params.yaml (or {other.yaml: [keys]})
        outs: [data/prepared]              # or {path: model.pkl, compare: exact|metrics|none}
        metrics: [metrics.json]
      train:
        matrix: {lr: [0.1, 0.01]}          # train@0, train@1; ${item.lr} in any string
        cmd: python train.py --lr ${item.lr}
"""

from __future__ import annotations

import itertools
import math
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path, PurePosixPath
from typing import Any

from tether._documents import brief, load_yaml
from tether._paths import is_reserved, problem
from tether.config import PROJECT_FILE
from tether.errors import PipelineError as PipelineError  # re-exported: the tree is in errors.py

PIPELINE_FILE = "pipeline.yaml"
PARAMS_FILE = "params.yaml"
COMPARE = ("exact", "metrics", "none")
_ITEM = re.compile(r"\$\{item(?:\.([\w-]+))?\}")
_KNOWN = {"cmd", "deps", "params", "outs", "metrics", "env", "resources", "matrix", "foreach"}


@dataclass(frozen=True)
class Out:
    path: str
    compare: str = "exact"


@dataclass(frozen=True)
class Stage:
    name: str
    cmd: str
    deps: tuple[str, ...] = ()
    params: tuple[tuple[str, str], ...] = ()  # (file, dotted key)
    outs: tuple[Out, ...] = ()
    metrics: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    resources: tuple[tuple[str, float], ...] = ()

    @property
    def out_paths(self) -> tuple[str, ...]:
        return tuple(o.path for o in self.outs)


EXECUTORS = ("local", "ray")


@dataclass
class Pipeline:
    stages: dict[str, Stage]
    executor: str = "local"  # `executor: ray` at the top of pipeline.yaml
    # stage -> the stages it needs (whose outs its deps are, or are inside)
    needs: dict[str, set[str]] = field(default_factory=dict)

    def order(self, targets: list[str] | None = None) -> list[str]:
        """Stages in an order that runs every stage after what it needs (ties by name); only
        ``targets`` and their upstream when given."""
        wanted = set(self.stages) if not targets else self._upstream(targets)
        sorter = TopologicalSorter({name: self.needs[name] & wanted for name in wanted})
        sorter.prepare()
        done: list[str] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready())
            done.extend(ready)
            sorter.done(*ready)
        return done

    def _upstream(self, targets: list[str]) -> set[str]:
        out: set[str] = set()
        todo = [s for t in targets for s in self._stage_named(t)]
        while todo:
            name = todo.pop()
            if name not in out:
                out.add(name)
                todo.extend(self.needs[name])
        return out

    def _stage_named(self, name: str) -> list[str]:
        """A stage, or every stage a ``matrix``/``foreach`` made of it."""
        if name in self.stages:
            return [name]
        expanded = [s for s in self.stages if s.startswith(name + "@")]
        if not expanded:
            known = ", ".join(sorted(self.stages))
            raise PipelineError(f"no stage named {name!r} in {PIPELINE_FILE} (stages: {known})")
        return expanded


def load_pipeline(root: Path, data: bytes | None = None) -> Pipeline:
    """The pipeline in ``root`` (``data``: the bytes of its pipeline.yaml, when already read)."""
    import yaml

    try:
        data = data if data is not None else (root / PIPELINE_FILE).read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"no {PIPELINE_FILE} in {root}: declare stages there first") from None
    try:
        doc = load_yaml(data) or {}
    except yaml.YAMLError as exc:
        doc = _with_items_quoted(data, exc)
    if not isinstance(doc, dict) or not isinstance(doc.get("stages"), dict):
        raise PipelineError(f"{PIPELINE_FILE} must have a `stages:` mapping of name -> stage")
    if doc.get("format", 1) != 1:
        raise PipelineError(
            f"{PIPELINE_FILE} has format {brief(doc.get('format'))}; this Tether reads 1"
        )
    stages: dict[str, Stage] = {}
    budget = _Budget()
    for name, raw in doc["stages"].items():
        for stage in _expand(_check_name(name), raw, budget):
            _check_name(stage.name, expanded=True)
            if stage.name in stages:
                raise _bad(stage.name, "is named twice (a foreach key or matrix made it again)")
            stages[stage.name] = stage
    executor = doc.get("executor", "local")
    if executor not in EXECUTORS:
        raise PipelineError(
            f"{PIPELINE_FILE}: executor must be one of {', '.join(EXECUTORS)}, "
            f"not {brief(executor)}"
        )
    pipeline = Pipeline(stages, executor=str(executor))
    _link(pipeline)
    return pipeline


# what one pipeline.yaml may grow to once matrix and foreach are expanded: beyond it a pull
# request's pipeline.yaml could keep `tether repro` busy for hours (or out of memory)
MAX_STAGES = 10_000
MAX_TEXT = 10_000_000  # characters of commands and paths, once ${item} is put in
MAX_LINKS = 2_000_000  # (dep, out) pairs that make stages depend on each other
MAX_PATH = 4096


class _Budget:
    def __init__(self) -> None:
        self.stages = 0
        self.text = 0

    def more(self, stage: str, count: int) -> None:
        self.stages += count
        if self.stages > MAX_STAGES:
            raise _bad(
                stage,
                f"matrix and foreach make more than {MAX_STAGES:,} stages in all: split the "
                "pipeline, or loop inside one stage's command",
            )

    def spend(self, stage: str, stage_: Stage) -> Stage:
        paths = (*stage_.deps, *stage_.out_paths, *stage_.metrics)
        self.text += len(stage_.cmd) + sum(len(p) for p in paths)
        if self.text > MAX_TEXT:
            raise _bad(
                stage,
                f"the expanded stages' commands and paths pass {MAX_TEXT:,} characters: "
                "split the pipeline",
            )
        return stage_


def _bad(stage: str, problem: str) -> PipelineError:
    """An error in one stage's entry, named as the user finds it: file and stage."""
    return PipelineError(f"{PIPELINE_FILE}: stage {stage!r}: {problem}")


# `:` joins a stage to its out or metric in a verdict (`train:model.pkl`, `--tolerance
# train:acc=0.01`), `@` joins a matrix/foreach stage to its item (`train@0`), `/` and `\` are
# path separators; a name is also printed on the terminal and put in run names
_NAME_FORBIDDEN = re.compile(r"[/\\:@]")


def _check_name(name: Any, expanded: bool = False) -> str:
    """A stage's name (a number is its text): text someone can type after `tether repro`, that
    cannot be mistaken for another stage's, a path or a `stage:key`."""
    if isinstance(name, int | float) and not isinstance(name, bool):
        name = str(name)
    if not isinstance(name, str) or not name.strip():
        raise PipelineError(
            f"{PIPELINE_FILE}: stage name {brief(name)} is not a name: name each stage with "
            "some text (letters, digits, - and _ are safest)"
        )
    base, at, item = name.partition("@") if expanded else (name, "", "")
    bad = _NAME_FORBIDDEN.search(base) or (at and _NAME_FORBIDDEN.search(item))
    if not name.isprintable() or bad:
        what = "a foreach key or matrix makes the" if at else "the"
        raise PipelineError(
            f"{PIPELINE_FILE}: {what} stage name {name!r} is refused: a stage name may not "
            "hold control characters, '/', '\\', ':' or '@' (letters, digits, - and _ are "
            "safest)"
        )
    return name


# an unquoted `${item...}` item of a flow list or mapping (`[data/${item}]`, `{path: ${item}}`):
# YAML reads its `{` as the start of a mapping
_FLOW_ITEM = re.compile(
    r"(?<=[\[,{:])(\s*)([^\s\[\]{},'\":]*\$\{item(?:\.[\w-]+)?\}[^\s\[\]{},'\":]*)(\s*)(?=[,\]}])"
)


def _with_items_quoted(data: bytes, exc: Exception) -> Any:
    """``data`` parsed again with each unquoted ``${item...}`` flow item single-quoted (what the
    user meant); when that does not parse either, the original error, made readable."""
    import yaml

    text = data.decode("utf-8", "replace")
    quoted = _FLOW_ITEM.sub(lambda m: f"{m[1]}'{m[2]}'{m[3]}", text)
    if quoted != text:
        try:
            return load_yaml(quoted) or {}
        except yaml.YAMLError:
            pass
    raise _yaml_error(data, exc) from exc


def _yaml_error(data: bytes, exc: Exception) -> PipelineError:
    """The parser's complaint; for ``${item...}`` unquoted in a flow list (``deps: [${item}]``,
    where YAML reads ``{`` as a mapping) the stage, the line and the way to write it."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    lines = data.decode("utf-8", "replace").splitlines()
    if mark is None or mark.line >= len(lines):
        return PipelineError(f"{PIPELINE_FILE} is not valid YAML: {exc}")
    where = f"{PIPELINE_FILE} line {mark.line + 1}"
    stage = _stage_at(lines, mark.line)
    if not _FLOW_ITEM.search(lines[mark.line]):
        problem = getattr(exc, "problem", None) or str(exc)
        hint = ""
        if problem.startswith("mapping values"):
            hint = ": a ': ' inside a plain value starts a mapping; quote the value"
        return PipelineError(
            f"{where}{f' (stage {stage!r})' if stage else ''} is not valid YAML, column "
            f"{mark.column + 1}: {problem}{hint}: {lines[mark.line].strip()}"
        )
    return PipelineError(
        f"{where}{f' (stage {stage!r})' if stage else ''}: `${{...}}` inside a [flow, list] "
        f'must be quoted, as in ["${{item.x}}"], or written as a block list (one `- item` '
        f"per line): {lines[mark.line].strip()}"
    )


def _stage_at(lines: list[str], line: int) -> str | None:
    """The name of the stage whose body holds ``line`` (the nearest key under ``stages:``)."""
    top = next((i for i, t in enumerate(lines[:line]) if t.rstrip() == "stages:"), None)
    if top is None:
        return None
    body = [t for t in lines[top + 1 : line + 1] if t.strip() and not t.lstrip().startswith("#")]
    if not body:
        return None
    indent = len(body[0]) - len(body[0].lstrip())
    keys = [t.strip() for t in body if len(t) - len(t.lstrip()) == indent and ":" in t]
    return keys[-1].split(":", 1)[0].strip("'\"") if keys else None


def _expand(name: str, raw: Any, budget: _Budget) -> list[Stage]:
    if not isinstance(raw, dict) or "cmd" not in raw:
        raise _bad(name, "needs a `cmd`")
    if not isinstance(raw["cmd"], str | int | float):
        raise _bad(
            name,
            "`cmd` is one shell command, written as a string (cmd: python "
            "train.py --lr ${item.lr}); several commands go in one block (cmd: |), not a list",
        )
    unknown = set(raw) - _KNOWN
    if unknown:
        raise _bad(name, f"has unknown keys: {', '.join(sorted(map(str, unknown)))}")
    if "matrix" in raw:
        grid = raw["matrix"]
        if (
            not isinstance(grid, dict)
            or not grid
            or not all(isinstance(v, list) for v in grid.values())
        ):
            raise _bad(name, "`matrix` maps names to lists of values")
        budget.more(name, math.prod(len(v) for v in grid.values()))
        keys = list(grid)
        items: list[tuple[str, Any]] = [
            (str(i), dict(zip(keys, combo, strict=True)))
            for i, combo in enumerate(itertools.product(*(grid[k] for k in keys)))
        ]
    elif "foreach" in raw:
        each = raw["foreach"]
        if not isinstance(each, dict | list):
            raise _bad(name, f"`foreach` is a list, or a mapping of name: item, not {brief(each)}")
        budget.more(name, len(each))
        items = (
            [(str(k), v) for k, v in each.items()]
            if isinstance(each, dict)
            else [(str(i), v) for i, v in enumerate(each)]
        )
    else:
        budget.more(name, 1)
        return [budget.spend(name, _stage(name, raw, None))]
    return [budget.spend(name, _stage(f"{name}@{key}", raw, item)) for key, item in items]


def _stage(name: str, raw: Mapping[str, Any], item: Any) -> Stage:
    def sub(value: Any, what: str) -> str:
        if not isinstance(value, str | int | float):
            raise _bad(name, f"{what} must be text, not {brief(value)}: quote it")
        text = str(value)
        return text if item is None else _ITEM.sub(lambda m: _item(name, item, m.group(1)), text)

    def paths(key: str) -> tuple[str, ...]:
        return tuple(
            _clean(name, sub(p, f"each of `{key}`")) for p in _list(name, raw.get(key), key)
        )

    outs = []
    for o in _list(name, raw.get("outs"), "outs"):
        spec = o if isinstance(o, dict) else {"path": o}
        if "path" not in spec:
            raise _bad(name, f"an out is a path, or {{path: ..., compare: ...}}, not {brief(o)}")
        compare = spec.get("compare", "exact")
        if compare not in COMPARE:
            raise _bad(name, f"compare must be one of {', '.join(COMPARE)}")
        out = _written(name, _clean(name, sub(spec["path"], "an out's path")), "out")
        outs.append(Out(out, compare))
    params: list[tuple[str, str]] = []
    for p in _list(name, raw.get("params"), "params"):
        if not isinstance(p, dict):
            params.append((PARAMS_FILE, sub(p, "a param")))
            continue
        for f, keys in p.items():
            if not isinstance(keys, list):
                raise _bad(name, f"params: {brief(f)} maps a file to a list of keys")
            file = _clean(name, sub(f, "a params file"))
            params += [(file, sub(k, "a param")) for k in keys]
    return Stage(
        name=name,
        cmd=sub(raw["cmd"], "`cmd`"),
        deps=paths("deps"),
        params=tuple(params),
        outs=tuple(outs),
        metrics=tuple(_written(name, m, "metrics file") for m in paths("metrics")),
        env=tuple((k, sub(v, f"env {k}")) for k, v in _env(name, raw.get("env"))),
        resources=_resources(name, raw.get("resources")),
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env(stage: str, raw: Any) -> list[tuple[str, Any]]:
    """A stage's ``env:``: a mapping of variable names to text, numbers or booleans."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise _bad(stage, f"env must be a mapping of NAME: value, not {brief(raw)}")
    for key, value in raw.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise _bad(stage, f"{brief(key)} is not an environment variable name")
        if not isinstance(value, str | int | float):
            raise _bad(stage, f"env {key} must be text, a number or a boolean, not {brief(value)}")
    return list(raw.items())


def _resources(stage: str, raw: Any) -> tuple[tuple[str, float], ...]:
    """``resources: {cpu: 2, gpu: 0.5}``: how much of each a stage takes (Ray schedules by it)."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise _bad(stage, f"resources must be a mapping of name: amount, not {brief(raw)}")
    out = []
    for key, value in raw.items():
        try:
            amount = float(value) if isinstance(value, str | int | float) else math.nan
        except ValueError:
            amount = math.nan
        if not (math.isfinite(amount) and amount >= 0):
            raise _bad(stage, f"resources: {brief(key)} must be a number, 0 or more")
        out.append((str(key), amount))
    return tuple(out)


def _item(stage: str, item: Any, key: str | None) -> str:
    if key is None:
        return str(item)
    if not isinstance(item, dict) or key not in item:
        raise _bad(stage, f"uses ${{item.{key}}} but its item has no {key!r}")
    return str(item[key])


def _list(stage: str, value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad(stage, f"`{key}` must be a list")
    return value


def _clean(stage: str, path: str) -> str:
    """``path`` as the repository names it (``./sub/../a.txt`` is ``a.txt``)."""
    if len(path) > MAX_PATH or "\0" in path:
        raise _bad(stage, f"{brief(path)} is not a path (too long, or with a NUL character)")
    pure = PurePosixPath(posixpath.normpath(path)) if path.strip() else PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise _bad(stage, f"{path} leaves the repository")
    if not pure.parts or pure.parts[0] == "." or any(map(is_reserved, pure.parts)):
        raise _bad(stage, f"{path} is not something a stage may read or write")
    return pure.as_posix().rstrip("/")


# Tether's own files: a stage's outs are removed before it runs, and then belong to it
_OWN_FILES = frozenset({PIPELINE_FILE, "pipeline.lock", PROJECT_FILE})


def _written(stage: str, path: str, what: str) -> str:
    """``path`` (cleaned) when a stage may write it: a safe path that is none of Tether's own
    files (pipeline.yaml, pipeline.lock, tether.toml, a .gitignore, a ``*.tether`` pointer), in
    any spelling a case-insensitive filesystem takes for them."""
    why = problem(path)
    if why is not None:
        raise _bad(stage, f"its {what} {path!r} is refused: {why}")
    name = path.rpartition("/")[2].rstrip(". ").casefold()
    folded = path.casefold().rstrip(". ")
    if folded in _OWN_FILES or name == ".gitignore" or name.endswith(".tether"):
        raise _bad(
            stage,
            f"its {what} {path} is one of Tether's own files (pipeline.yaml, pipeline.lock, "
            "tether.toml, .gitignore, *.tether pointers): a stage's outs are removed before it "
            "runs, so a stage may not write them; write to another path",
        )
    return path


class _PathTree:
    """Declared paths as a tree of their parts: which of them are ``path``, hold it or are
    inside it, found in time that grows with ``path``'s length, not with how many there are
    (compared pairwise, a 20,000-stage foreach takes minutes)."""

    __slots__ = ("added", "below", "here", "kids")

    def __init__(self) -> None:
        self.kids: dict[str, _PathTree] = {}
        self.here: list[_Entry] = []  # the path this node is
        self.below: list[_Entry] = []  # every path inside it, in the order added
        self.added = 0

    def add(self, path: str, label: str) -> None:
        entry = (self.added, path, label)
        self.added += 1
        node = self
        for part in path.split("/"):
            node.below.append(entry)
            node = node.kids.setdefault(part, _PathTree())
        node.here.append(entry)

    def touching(self, path: str) -> tuple[list[_Entry], list[_Entry]]:
        """The paths that are ``path`` or hold it, and those inside it."""
        node = self
        holding: list[_Entry] = []
        for part in path.split("/"):
            found = node.kids.get(part)
            if found is None:
                return holding, []
            node = found
            holding += node.here
        return holding, node.below


_Entry = tuple[int, str, str]  # (order added, path, label)


def _first(found: tuple[list[_Entry], list[_Entry]]) -> str | None:
    """The path added first among ``found``."""
    holding, inside = found
    candidates = [*holding, *inside[:1]]
    return min(candidates)[1] if candidates else None


def _link(p: Pipeline) -> None:
    """Edges from deps to the outs (and metrics files) that make them; an out two stages write,
    a stage whose outs hold its own deps and cycles are errors."""
    owners = _PathTree()
    owner: dict[str, str] = {}
    for stage in p.stages.values():
        _check_own_paths(stage)
        for out in (*stage.out_paths, *stage.metrics):
            clash = _first(owners.touching(out))
            if clash is None:
                owner[out] = stage.name
                owners.add(out, stage.name)
            elif owner[clash] != stage.name:
                raise PipelineError(
                    f"{PIPELINE_FILE}: stages {owner[clash]!r} and {stage.name!r} both write "
                    f"{out}: each out belongs to one stage"
                )
            elif not (out in stage.metrics and out.startswith(clash + "/")):
                # (a metrics file inside the stage's own out folder is fine)
                again = "twice" if clash == out else f"inside its other out {clash}"
                raise _bad(stage.name, f"declares {out} {again}")
    links = 0
    for stage in p.stages.values():
        needs: set[str] = set()
        for dep in stage.deps:
            holding, inside = owners.touching(dep)
            links += len(holding) + len(inside)
            if links > MAX_LINKS:
                raise PipelineError(
                    f"{PIPELINE_FILE}: its stages' deps and outs meet in more than "
                    f"{MAX_LINKS:,} pairs: depend on the folders stages write, not on their parts"
                )
            needs.update(label for _, _, label in (*holding, *inside))
        needs.discard(stage.name)
        p.needs[stage.name] = needs
    try:
        TopologicalSorter(p.needs).prepare()
    except CycleError as exc:
        loop = list(reversed(exc.args[1]))
        raise PipelineError(
            f"{PIPELINE_FILE}: stages depend on each other in a cycle: {' -> '.join(loop)}"
        ) from None


def _check_own_paths(stage: Stage) -> None:
    """A stage's outs are removed before it runs: one that holds (or is) a dep of the same
    stage would delete what the stage is about to read."""
    if not stage.deps:
        return
    outs = _PathTree()
    for out in (*stage.out_paths, *stage.metrics):
        outs.add(out, out)
    for dep in stage.deps:
        found = _first(outs.touching(dep))
        if found is None:
            continue
        out = found
        if dep == out:
            how = f"{dep} is both a dep and an out"
        elif dep.startswith(out + "/"):
            how = f"its dep {dep} is inside its out {out}"
        else:
            how = f"its out {out} is inside its dep {dep}"
        raise _bad(
            stage.name,
            f"{how}; outs are removed before a stage runs and then belong to it: write them "
            "to a path apart from what the stage reads",
        )
