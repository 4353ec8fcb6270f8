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
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path, PurePosixPath
from typing import Any

from tether._documents import load_yaml
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
        raise PipelineError(f"{PIPELINE_FILE} has format {doc.get('format')}; this Tether reads 1")
    stages: dict[str, Stage] = {}
    for name, raw in doc["stages"].items():
        for stage in _expand(str(name), raw):
            stages[stage.name] = stage
    executor = str(doc.get("executor", "local"))
    if executor not in EXECUTORS:
        raise PipelineError(f"executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    pipeline = Pipeline(stages, executor=executor)
    _link(pipeline)
    return pipeline


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


def _expand(name: str, raw: Any) -> list[Stage]:
    if not isinstance(raw, dict) or "cmd" not in raw:
        raise PipelineError(f"stage {name!r} needs a `cmd`")
    if not isinstance(raw["cmd"], str | int | float):
        raise PipelineError(
            f"stage {name!r}: `cmd` is one shell command, written as a string (cmd: python "
            "train.py --lr ${item.lr}); several commands go in one block (cmd: |), not a list"
        )
    unknown = set(raw) - _KNOWN
    if unknown:
        raise PipelineError(f"stage {name!r} has unknown keys: {', '.join(sorted(unknown))}")
    if "matrix" in raw:
        grid = raw["matrix"]
        if not isinstance(grid, dict) or not grid:
            raise PipelineError(f"stage {name!r}: `matrix` maps names to lists of values")
        keys = list(grid)
        items: list[tuple[str, Any]] = [
            (str(i), dict(zip(keys, combo, strict=True)))
            for i, combo in enumerate(itertools.product(*(grid[k] for k in keys)))
        ]
    elif "foreach" in raw:
        each = raw["foreach"]
        items = (
            list(each.items())
            if isinstance(each, dict)
            else [(str(i), v) for i, v in enumerate(each)]
        )
    else:
        return [_stage(name, raw, None)]
    return [_stage(f"{name}@{key}", raw, item) for key, item in items]


def _stage(name: str, raw: Mapping[str, Any], item: Any) -> Stage:
    def sub(value: Any) -> str:
        text = str(value)
        return text if item is None else _ITEM.sub(lambda m: _item(name, item, m.group(1)), text)

    def paths(key: str) -> tuple[str, ...]:
        return tuple(_clean(name, sub(p)) for p in _list(name, raw.get(key), key))

    outs = []
    for o in _list(name, raw.get("outs"), "outs"):
        spec = o if isinstance(o, dict) else {"path": o}
        compare = spec.get("compare", "exact")
        if compare not in COMPARE:
            raise PipelineError(f"stage {name!r}: compare must be one of {', '.join(COMPARE)}")
        outs.append(Out(_clean(name, sub(spec["path"])), compare))
    params: list[tuple[str, str]] = []
    for p in _list(name, raw.get("params"), "params"):
        if isinstance(p, dict):
            params += [(_clean(name, str(f)), sub(k)) for f, keys in p.items() for k in keys]
        else:
            params.append((PARAMS_FILE, sub(p)))
    return Stage(
        name=name,
        cmd=sub(raw["cmd"]),
        deps=paths("deps"),
        params=tuple(params),
        outs=tuple(outs),
        metrics=paths("metrics"),
        env=tuple((k, sub(v)) for k, v in _env(name, raw.get("env"))),
        resources=tuple((str(k), float(v)) for k, v in (raw.get("resources") or {}).items()),
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env(stage: str, raw: Any) -> list[tuple[str, Any]]:
    """A stage's ``env:``: a mapping of variable names to text, numbers or booleans."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise PipelineError(f"stage {stage!r}: env must be a mapping of NAME: value, not {raw!r}")
    for key, value in raw.items():
        if not isinstance(key, str) or not _ENV_NAME.fullmatch(key):
            raise PipelineError(f"stage {stage!r}: {key!r} is not an environment variable name")
        if value is None or isinstance(value, dict | list):
            raise PipelineError(
                f"stage {stage!r}: env {key} must be text, a number or a boolean, not {value!r}"
            )
    return list(raw.items())


def _item(stage: str, item: Any, key: str | None) -> str:
    if key is None:
        return str(item)
    if not isinstance(item, dict) or key not in item:
        raise PipelineError(f"stage {stage!r} uses ${{item.{key}}} but its item has no {key!r}")
    return str(item[key])


def _list(stage: str, value: Any, key: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PipelineError(f"stage {stage!r}: `{key}` must be a list")
    return value


def _clean(stage: str, path: str) -> str:
    """``path`` as the repository names it (``./sub/../a.txt`` is ``a.txt``)."""
    pure = PurePosixPath(posixpath.normpath(path)) if path.strip() else PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise PipelineError(f"stage {stage!r}: {path} leaves the repository")
    if not pure.parts or pure.parts[0] in (".", ".git", ".tether"):
        raise PipelineError(f"stage {stage!r}: {path} is not something a stage may read or write")
    return pure.as_posix().rstrip("/")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/") or folder.startswith(path + "/")


def _link(p: Pipeline) -> None:
    """Edges from deps to the outs (and metrics files) that make them; an out two stages write,
    a stage whose outs hold its own deps and cycles are errors."""
    owner: dict[str, str] = {}
    for stage in p.stages.values():
        _check_own_paths(stage)
        for out in (*stage.out_paths, *stage.metrics):
            clash = next((o for o in owner if _inside(out, o)), None)
            if clash is None:
                owner[out] = stage.name
            elif owner[clash] != stage.name:
                raise PipelineError(
                    f"stages {owner[clash]!r} and {stage.name!r} both write {out}: "
                    "each out belongs to one stage"
                )
            elif not (out in stage.metrics and out.startswith(clash + "/")):
                # (a metrics file inside the stage's own out folder is fine)
                again = "twice" if clash == out else f"inside its other out {clash}"
                raise PipelineError(f"stage {stage.name!r} declares {out} {again}")
    for stage in p.stages.values():
        p.needs[stage.name] = {
            owner[o] for d in stage.deps for o in owner if _inside(d, o) and owner[o] != stage.name
        }
    try:
        TopologicalSorter(p.needs).prepare()
    except CycleError as exc:
        loop = list(reversed(exc.args[1]))
        raise PipelineError(
            f"stages depend on each other in a cycle: {' -> '.join(loop)}"
        ) from None


def _check_own_paths(stage: Stage) -> None:
    """A stage's outs are removed before it runs: one that holds (or is) a dep of the same
    stage would delete what the stage is about to read."""
    for dep in stage.deps:
        for out in (*stage.out_paths, *stage.metrics):
            if not _inside(dep, out):
                continue
            if dep == out:
                how = f"{dep} is both a dep and an out"
            elif dep.startswith(out + "/"):
                how = f"its dep {dep} is inside its out {out}"
            else:
                how = f"its out {out} is inside its dep {dep}"
            raise PipelineError(
                f"stage {stage.name!r}: {how}; outs are removed before a stage runs and then "
                "belong to it: write them to a path apart from what the stage reads"
            )
