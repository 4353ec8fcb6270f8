"""The numbers in a stage's metrics files, named so that no two clash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tether._documents import load_yaml
from tether.pipelines.spec import PipelineError


def metric_names(root: Path, stage: str, files: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The numbers in a stage's metrics files by name, as `dvc metrics show` groups them: nested
    keys dotted; a file holding a bare number named by its path; with several files, each key
    prefixed by its file (``val.json:acc``), so two files logging ``acc`` stay two metrics. A
    stage with one metrics file keeps its keys as they are (``acc``)."""
    import yaml

    names: dict[str, float] = {}
    for rel in files:
        try:
            doc = load_yaml((root / rel).read_bytes())
        except (OSError, yaml.YAMLError) as exc:
            raise PipelineError(
                f"stage {stage!r}: its metrics file {rel} cannot be read as JSON or YAML "
                f'({_first_line(exc)}): write numbers there, as {{"acc": 0.9}} or 0.9'
            ) from None
        found = _flatten(doc)
        if not found:
            raise PipelineError(
                f"stage {stage!r}: its metrics file {rel} holds no numbers, so nothing in it "
                'can be compared: write numbers there, as {"acc": 0.9} or 0.9 (or declare it '
                "as an out instead)"
            )
        for key, value in found:
            name = (f"{rel}:{key}" if len(files) > 1 else key) if key else rel
            if name in names:
                raise PipelineError(
                    f"stage {stage!r}: metric {name!r} appears twice in {rel} (a key with a dot "
                    "and a nested key spell the same name): rename one of them"
                )
            names[name] = value
    return names


def _flatten(doc: Any, prefix: str = "") -> list[tuple[str, float]]:
    if isinstance(doc, dict):
        return [kv for k, v in doc.items() for kv in _flatten(v, f"{prefix}{k}.")]
    if isinstance(doc, bool) or not isinstance(doc, int | float):
        return []
    return [(prefix.rstrip("."), float(doc))]


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
