"""``pipeline.lock``: what each stage last ran with (command, dep ids, param values) and made
(out ids, the run). Committed with the code, so a checkout of any commit knows its results."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether._documents import ANY, TEXT, Fields, MapOf, Maybe, brief, dump_yaml, load_yaml
from tether._fs import atomic_write
from tether.pipelines.spec import PipelineError
from tether.runs.record import OBJECT_ID, RUN_ID

LOCK_FILE = "pipeline.lock"
FORMAT = 1


@dataclass
class StageLock:
    cmd: str
    deps: dict[str, str] = field(default_factory=dict)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # file -> key -> value
    outs: dict[str, str] = field(default_factory=dict)
    run: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # metrics file -> id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"cmd": self.cmd, "deps": dict(sorted(self.deps.items()))}
        if self.env:
            out["env"] = dict(sorted(self.env.items()))
        if self.params:
            out["params"] = {f: dict(sorted(v.items())) for f, v in sorted(self.params.items())}
        out["outs"] = dict(sorted(self.outs.items()))
        if self.metrics:
            out["metrics"] = dict(sorted(self.metrics.items()))
        if self.run:
            out["run"] = self.run
        return out


def read_lock(root: Path, data: bytes | None = None) -> dict[str, StageLock]:
    """The lock in ``root`` (``data``: its bytes, when already read); empty when there is none."""
    import yaml

    try:
        doc = load_yaml(data if data is not None else (root / LOCK_FILE).read_bytes()) or {}
    except FileNotFoundError:
        return {}
    except yaml.YAMLError as exc:
        raise PipelineError(
            f"{LOCK_FILE} is not valid YAML ({exc}): restore it from git, or delete it to run "
            "every stage again"
        ) from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise PipelineError(f"{LOCK_FILE} has format {brief(found)}; this Tether reads {FORMAT}")
    if problem := _LOCK.problem(doc, ""):
        raise PipelineError(
            f"{LOCK_FILE} is malformed ({problem}): restore it from git, or delete it to run "
            "every stage again"
        )
    return {
        name: StageLock(
            s.get("cmd", ""),
            dict(s.get("deps") or {}),
            dict(s.get("params") or {}),
            dict(s.get("outs") or {}),
            s.get("run"),
            dict(s.get("env") or {}),
            dict(s.get("metrics") or {}),
        )
        for name, s in doc["stages"].items()
    }


_IDS = Maybe(MapOf(OBJECT_ID))
_LOCK = Fields(
    {
        "stages": MapOf(
            Fields(
                {
                    "cmd": TEXT,
                    "deps": _IDS,
                    "params": Maybe(MapOf(MapOf(ANY))),
                    "outs": _IDS,
                    "run": Maybe(RUN_ID),
                    "env": Maybe(MapOf(TEXT)),
                    "metrics": _IDS,
                }
            )
        )
    },
    required=("stages",),
)


def write_lock(root: Path, stages: dict[str, StageLock]) -> None:
    """The whole lock, written atomically (a repro writes it after every stage: the YAML of
    each stage's entry is made once and reused while the entry is unchanged)."""
    atomic_write(root / LOCK_FILE, lock_text(stages).encode())


def lock_text(stages: dict[str, StageLock]) -> str:
    """What :func:`write_lock` writes."""
    entries = "".join(_entry_yaml(n, s) for n, s in sorted(stages.items()))
    text = "# written by `tether repro`: commit it with pipeline.yaml\n" + f"format: {FORMAT}\n"
    return text + (f"stages:\n{entries}" if entries else "stages: {}\n")


_ENTRIES: dict[str, str] = {}  # a stage's entry as JSON -> its YAML lines under `stages:`


def _entry_yaml(name: str, stage: StageLock) -> str:
    doc = {name: stage.to_dict()}
    key = json.dumps(doc, default=str)
    text = _ENTRIES.get(key)
    if text is None:
        if len(_ENTRIES) > 4096:
            _ENTRIES.clear()
        lines = dump_yaml(doc, sort_keys=False).splitlines(keepends=True)
        text = _ENTRIES[key] = "".join("  " + line if line.strip() else line for line in lines)
    return text
