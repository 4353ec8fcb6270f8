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
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
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
        """Stages in an order that runs every stage after what it needs; only ``targets`` and
        their upstream when given."""
        wanted = set(self.stages) if not targets else self._upstream(targets)
        done: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for up in sorted(self.needs[name]):
                visit(up)
            done.append(name)

        for name in sorted(wanted):
            visit(name)
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

    path = root / PIPELINE_FILE
    try:
        doc = load_yaml(data if data is not None else path.read_bytes()) or {}
    except FileNotFoundError:
        raise PipelineError(f"no {PIPELINE_FILE} in {root}: declare stages there first") from None
    except yaml.YAMLError as exc:
        raise PipelineError(f"{PIPELINE_FILE} is not valid YAML: {exc}") from exc
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


def _expand(name: str, raw: Any) -> list[Stage]:
    if not isinstance(raw, dict) or "cmd" not in raw:
        raise PipelineError(f"stage {name!r} needs a `cmd`")
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
        env=tuple((str(k), sub(v)) for k, v in (raw.get("env") or {}).items()),
        resources=tuple((str(k), float(v)) for k, v in (raw.get("resources") or {}).items()),
    )


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
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        raise PipelineError(f"stage {stage!r}: {path} leaves the repository")
    if not pure.parts or pure.parts[0] in (".", ".git", ".tether"):
        raise PipelineError(f"stage {stage!r}: {path} is not something a stage may read or write")
    return pure.as_posix().rstrip("/")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/") or folder.startswith(path + "/")


def _link(p: Pipeline) -> None:
    """Edges from deps to the outs that make them; duplicate outs and cycles are errors."""
    owner: dict[str, str] = {}
    for stage in p.stages.values():
        for out in stage.out_paths:
            clash = next((o for o in owner if _inside(out, o)), None)
            if clash is not None:
                raise PipelineError(
                    f"stages {owner[clash]!r} and {stage.name!r} both write {out}: "
                    "each out belongs to one stage"
                )
            owner[out] = stage.name
    for stage in p.stages.values():
        p.needs[stage.name] = {
            owner[o] for d in stage.deps for o in owner if _inside(d, o) and owner[o] != stage.name
        }
    _check_cycles(p)


def _check_cycles(p: Pipeline) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            loop = [*path[path.index(name) :], name]
            raise PipelineError(f"stages depend on each other in a cycle: {' -> '.join(loop)}")
        state[name] = 1
        for up in sorted(p.needs[name]):
            visit(up, [*path, name])
        state[name] = 2

    for name in sorted(p.stages):
        visit(name, [])
