"""Evaluation suites: ``evals/NAME.yaml``.

::

    description: Movie-review sentiment
    cases:                        # inline, and/or rows of CSV or JSONL files
      - id: pos-1
        vars: {review: "A triumph."}
        expected: positive
        threshold: 0.5           # optional: pass on the weighted mean score (see assertions)
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

A case file's path is relative to the suite file, and inside the repository: a suite is content
a pull request can change, and ``tether prompt ci`` runs it, so neither a ``file:`` (a URL, an
absolute path, ``..`` or a symlink out of the repository, or into ``.git`` or ``.tether``) nor the
suite itself reads anything else. A suite names providers; it never sets where they send
requests, nor with which key.

A promptfoo configuration (``prompts``, ``providers``, ``tests``, ``defaultTest``) is read as a
suite too, within the subset :mod:`tether.prompts.promptfoo` names; anything outside it is
refused before the first call.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from tether.hashing import hash_bytes
from tether.prompts.assertions import check_spec
from tether.prompts.templates import PromptError, inside, read_yaml

THRESHOLDS = ("pass_rate", "latency_p95_s", "cost", "errors")
KEYS = ("description", "cases", "assert", "thresholds", "providers", "scripted")
CASE_SUFFIXES = (".csv", ".jsonl", ".ndjson")


@dataclass(frozen=True)
class Case:
    id: str
    vars: dict[str, Any]
    expected: Any = None
    asserts: tuple[dict[str, Any], ...] = ()
    # variables given as text (a CSV cell): an eval converts each to its declared type
    text_vars: frozenset[str] = frozenset()
    # pass on the weighted mean of the assertion scores instead of on every assertion
    threshold: float | None = None


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
    sources: list[Path] = field(default_factory=list)  # those files (case files after the suite)

    def provider_names(self, given: Sequence[str] | str | None) -> list[str]:
        """The providers asked for (``--provider``), else the suite's ``providers:``."""
        names = [given] if isinstance(given, str) else list(given or ())
        names = names or self.providers
        if not names:
            raise PromptError(
                f"say which provider with --provider (the suite {self.path} names none)"
            )
        return names


def load_suite(path: Path, root: Path | None = None) -> Suite:
    """The suite at ``path``. It and the case files it names must be inside ``root`` (default:
    the git repository holding the suite, else its folder), reached through no symlink that
    leaves it: a suite is content a pull request can change."""
    root = _root_of(path) if root is None else root
    where = f"suite {path}"
    if not path.exists() and not path.is_symlink():
        raise PromptError(f"no suite at {path}")
    resolved = inside(root, path, where)
    try:
        data = resolved.read_bytes()
    except OSError as exc:
        raise PromptError(f"{where} cannot be read ({exc.strerror})") from None
    doc = read_yaml(data, where) or {}
    from tether.prompts import promptfoo

    if promptfoo.is_promptfoo(doc):
        converted = promptfoo.convert_checked(doc, path, root, where)
        converted.check()
        return _unique(
            Suite(
                name=path.stem,
                path=path,
                cases=converted.cases,
                asserts=converted.asserts,
                providers=converted.providers,
                description=converted.description,
                content_id=hash_bytes(b"\0".join([data, *converted.files])),
                sources=[path, *converted.paths],
            )
        )
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list):
        raise PromptError(f"{where} needs a `cases:` list")
    unknown = sorted(str(k) for k in doc if k not in KEYS)
    if unknown:
        raise PromptError(
            f"{where}: unknown key {', '.join(unknown)} (a suite takes {', '.join(KEYS)}; a "
            "provider's endpoint and key come from its config, [prompts.providers.NAME])"
        )
    parts = [data]
    sources = [path]
    cases: list[Case] = []
    for i, raw in enumerate(doc["cases"]):
        if isinstance(raw, dict) and "file" in raw:
            file = _case_file(root, path, raw, i)
            sources.append(file)
            try:
                parts.append(file.read_bytes())
            except OSError as exc:
                raise PromptError(f"{where} case {i + 1}: {raw['file']}: {exc.strerror}") from None
            label = f"{where} case {i + 1}: case file {raw['file']}"
            cases += _file_cases(Path(raw["file"]), label, parts[-1], len(cases))
        else:
            cases.append(_case(raw, f"{where} case {i + 1}", len(cases)))
    return _unique(
        Suite(
            name=path.stem,
            path=path,
            cases=cases,
            asserts=_asserts(doc.get("assert"), where),
            thresholds=_thresholds(doc.get("thresholds"), where),
            providers=_providers(doc.get("providers"), where),
            scripted=_scripted(doc.get("scripted"), where),
            description=_description(doc.get("description"), where),
            content_id=hash_bytes(b"\0".join(parts)),
            sources=sources,
        )
    )


def _unique(suite: Suite) -> Suite:
    seen: set[str] = set()
    for case in suite.cases:
        if case.id in seen:
            raise PromptError(f"suite {suite.path}: two cases are named {case.id!r}")
        seen.add(case.id)
    return suite


def _root_of(path: Path) -> Path:
    from tether.errors import NotARepositoryError
    from tether.gitio.repo import find_root

    try:
        return find_root(path.absolute().parent)
    except NotARepositoryError:
        return path.absolute().parent


def _case_file(root: Path, suite: Path, raw: dict[str, Any], i: int) -> Path:
    """The case file a ``file:`` entry names: a relative path, inside the repository."""
    return case_path(root, suite, raw["file"], f"suite {suite} case {i + 1}", CASE_SUFFIXES)


def case_path(root: Path, suite: Path, name: Any, where: str, suffixes: Sequence[str]) -> Path:
    """The file ``name`` (relative to the suite, one of ``suffixes``), refused unless it is
    inside ``root`` and reached through no symlink that leaves it."""
    if not isinstance(name, str) or not name:
        raise PromptError(f"{where}: `file` is a path relative to the suite, like cases.csv")
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", name):
        raise PromptError(
            f"{where}: `file: {name}` is a URL; a case file is a path relative to the suite, "
            "inside the repository"
        )
    if PurePosixPath(name).is_absolute() or Path(name).is_absolute():
        raise PromptError(
            f"{where}: `file: {name}` is an absolute path; a case file is a path relative to "
            "the suite, inside the repository"
        )
    if Path(name).suffix not in suffixes:
        raise PromptError(f"{where}: {name}: case files are {' or '.join(suffixes)}")
    if not (suite.parent / name).exists() and not (suite.parent / name).is_symlink():
        raise PromptError(f"{where}: case file {name} does not exist")
    return inside(root, suite.parent / name, f"{where}: file {name}")


def _asserts(raw: Any, where: str) -> list[dict[str, Any]]:
    raw = raw or []
    if not isinstance(raw, list):
        raise PromptError(f"{where}: `assert` is a list of assertions")
    for spec in raw:
        check_spec(spec, where)
    return [dict(a) for a in raw]


def _thresholds(raw: Any, where: str) -> dict[str, float]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise PromptError(f"{where}: `thresholds` is a mapping, like {{pass_rate: 0.8}}")
    unknown = sorted(str(k) for k in raw if k not in THRESHOLDS)
    if unknown:
        raise PromptError(
            f"{where}: unknown threshold {', '.join(unknown)} (known: {', '.join(THRESHOLDS)})"
        )
    out = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
            raise PromptError(f"{where}: threshold {key} must be a number, not {value!r:.40}")
        if value < 0 or (key == "pass_rate" and value > 1):
            limits = "between 0 and 1" if key == "pass_rate" else "0 or more"
            raise PromptError(f"{where}: threshold {key} must be {limits}, not {value}")
        out[key] = float(value)
    return out


def _providers(raw: Any, where: str) -> list[str]:
    raw = [raw] if isinstance(raw, str) else (raw or [])
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise PromptError(
            f"{where}: `providers` lists provider names; a provider's settings (base_url, "
            "api_key_env, ...) come from tether.toml or .tether/config.toml "
            "[prompts.providers.NAME], never from a suite"
        )
    return list(raw)


def _scripted(raw: Any, where: str) -> list[dict[str, Any]]:
    raw = raw or []
    if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
        raise PromptError(f"{where}: `scripted` is a list of rules, like {{default: negative}}")
    return list(raw)


def _description(raw: Any, where: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str | int | float):
        raise PromptError(f"{where}: `description` is a text")
    return str(raw)


def _case(raw: Any, where: str, index: int) -> Case:
    if not isinstance(raw, dict):
        raise PromptError(f"{where} must be a mapping with `vars` (and `expected`, `assert`)")
    values = raw.get("vars") or {}
    asserts = raw.get("assert") or []
    if not isinstance(values, dict) or not isinstance(asserts, list):
        raise PromptError(f"{where}: `vars` is a mapping and `assert` a list")
    if not all(isinstance(k, str) for k in values):
        raise PromptError(f"{where}: each of `vars` is named by a text")
    for spec in asserts:
        check_spec(spec, where)
    case_id = raw.get("id", f"case-{index + 1}")
    if isinstance(case_id, dict | list) or case_id is None:
        raise PromptError(f"{where}: `id` is a text")
    threshold = raw.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise PromptError(f"{where}: `threshold` is a number (the weighted mean score to reach)")
    return Case(
        id=str(case_id),
        vars=dict(values),
        expected=raw.get("expected"),
        asserts=tuple(dict(a) for a in asserts),
        threshold=None if threshold is None else float(threshold),
    )


def _file_cases(file: Path, label: str, data: bytes, start: int) -> list[Case]:
    """Rows of a CSV (header row) or JSONL file: ``id``, ``expected`` and the variables (as
    ``vars.X`` or plain ``X``); a JSONL row may also hold ``vars`` and ``assert`` as such."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PromptError(f"{label} is not UTF-8 text ({exc})") from None
    rows: list[Any] = []
    if file.suffix == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise PromptError(f"{label} is not valid CSV ({exc})") from None
    else:
        for n, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise PromptError(f"{label} line {n + 1} is not JSON ({exc})") from None
    cases = []
    for n, row in enumerate(rows):
        where = f"{label} row {n + 1}"
        if not isinstance(row, dict):
            raise PromptError(f"{where} is not an object")
        if None in row:
            raise PromptError(f"{where} has more fields than the header names")
        given = row.get("vars") or {}
        if not isinstance(given, dict):
            raise PromptError(f"{where}: `vars` is an object")
        values = dict(given)
        for key, value in row.items():
            if key not in ("id", "expected", "vars", "assert"):
                values[key.removeprefix("vars.")] = value
        raw = {**row, "vars": values}
        raw.setdefault("id", f"{file.stem}-{n + 1}")
        case = _case(raw, where, start + n)
        if file.suffix == ".csv":
            case = replace(case, text_vars=frozenset(case.vars))
        cases.append(case)
    return cases
