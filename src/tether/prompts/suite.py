"""Evaluation suites: ``evals/NAME.yaml``.

::

    description: Movie-review sentiment
    cases:                        # inline, and/or rows of CSV or JSONL files
      - id: pos-1
        vars: {review: "A triumph."}
        expected: positive
      - file: reviews.csv         # columns: id, expected, and one per variable (vars.X or X)
    assert:                       # applied to every case (a case may add its own `assert`)
      - label-match: true
      - latency: {max_s: 2}
    thresholds: {pass_rate: 0.8, latency_p95_s: 2.0, cost: 0.50, errors: 0}
    providers: [local]            # names in tether.toml [prompts.providers.*]; the default matrix
    scripted:                     # rules of the `scripted` stand-in provider, for tests and demos
      - when: {contains: great}
        answer: positive
      - default: negative

A case file's paths are relative to the suite file.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tether._documents import load_yaml
from tether.hashing import hash_bytes
from tether.prompts.templates import PromptError

THRESHOLDS = ("pass_rate", "latency_p95_s", "cost", "errors")


@dataclass(frozen=True)
class Case:
    id: str
    vars: dict[str, Any]
    expected: Any = None
    asserts: tuple[dict[str, Any], ...] = ()


@dataclass
class Suite:
    name: str
    path: Path
    cases: list[Case]
    asserts: list[dict[str, Any]] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    providers: list[str] = field(default_factory=list)
    scripted: list[dict[str, Any]] = field(default_factory=list)
    description: str = ""
    content_id: str = ""  # the suite file and its case files: what an eval ran against

    def provider_names(self, given: Sequence[str] | str | None) -> list[str]:
        """The providers asked for (``--provider``), else the suite's ``providers:``."""
        names = [given] if isinstance(given, str) else list(given or ())
        names = names or self.providers
        if not names:
            raise PromptError(
                f"say which provider with --provider (the suite {self.path} names none)"
            )
        return names


def load_suite(path: Path) -> Suite:
    import yaml

    try:
        data = path.read_bytes()
        doc = load_yaml(data) or {}
    except FileNotFoundError:
        raise PromptError(f"no suite at {path}") from None
    except yaml.YAMLError as exc:
        raise PromptError(f"suite {path} is not valid YAML ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise PromptError(f"suite {path} needs a `cases:` list")
    parts = [data]
    cases: list[Case] = []
    for i, raw in enumerate(doc["cases"]):
        if isinstance(raw, dict) and "file" in raw:
            file = path.parent / str(raw["file"])
            try:
                parts.append(file.read_bytes())
            except FileNotFoundError:
                raise PromptError(f"suite {path}: case file {raw['file']} does not exist") from None
            cases += _file_cases(file, len(cases))
        else:
            cases.append(_case(raw, f"{path} case {i + 1}", len(cases)))
    seen: set[str] = set()
    for case in cases:
        if case.id in seen:
            raise PromptError(f"suite {path}: two cases are named {case.id!r}")
        seen.add(case.id)
    asserts = doc.get("assert") or []
    thresholds = doc.get("thresholds") or {}
    if not isinstance(asserts, list) or not isinstance(thresholds, dict):
        raise PromptError(f"suite {path}: `assert` is a list and `thresholds` a mapping")
    unknown = sorted(set(thresholds) - set(THRESHOLDS))
    if unknown:
        raise PromptError(
            f"suite {path}: unknown threshold {', '.join(unknown)} (known: {', '.join(THRESHOLDS)})"
        )
    return Suite(
        name=path.stem,
        path=path,
        cases=cases,
        asserts=[dict(a) for a in asserts],
        thresholds={k: float(v) for k, v in thresholds.items()},
        providers=[str(p) for p in doc.get("providers") or []],
        scripted=list(doc.get("scripted") or []),
        description=str(doc.get("description", "")),
        content_id=hash_bytes(b"\0".join(parts)),
    )


def _case(raw: Any, where: str, index: int) -> Case:
    if not isinstance(raw, dict):
        raise PromptError(f"{where} must be a mapping with `vars` (and `expected`, `assert`)")
    values = raw.get("vars") or {}
    asserts = raw.get("assert") or []
    if not isinstance(values, dict) or not isinstance(asserts, list):
        raise PromptError(f"{where}: `vars` is a mapping and `assert` a list")
    return Case(
        id=str(raw.get("id", f"case-{index + 1}")),
        vars=dict(values),
        expected=raw.get("expected"),
        asserts=tuple(dict(a) for a in asserts),
    )


def _file_cases(file: Path, start: int) -> list[Case]:
    """Rows of a CSV (header row) or JSONL file: ``id``, ``expected`` and the variables (as
    ``vars.X`` or plain ``X``); a JSONL row may also hold ``vars`` and ``assert`` as such."""
    if file.suffix == ".csv":
        with file.open(newline="", encoding="utf-8") as f:
            rows: list[dict[str, Any]] = list(csv.DictReader(f))
    elif file.suffix in (".jsonl", ".ndjson"):
        rows = []
        for n, line in enumerate(file.read_text(encoding="utf-8").splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise PromptError(f"{file} line {n + 1} is not JSON ({exc})") from None
    else:
        raise PromptError(f"{file}: case files are .csv or .jsonl")
    cases = []
    for n, row in enumerate(rows):
        if not isinstance(row, dict):
            raise PromptError(f"{file} row {n + 1} is not an object")
        values = dict(row.get("vars") or {})
        for key, value in row.items():
            if key not in ("id", "expected", "vars", "assert"):
                values[key.removeprefix("vars.")] = value
        raw = {**row, "vars": values}
        raw.setdefault("id", f"{file.stem}-{n + 1}")
        cases.append(_case(raw, f"{file} row {n + 1}", start + n))
    return cases
