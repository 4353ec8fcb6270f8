"""``tether.search_runs`` with MLflow's argument names: a ``filter_string`` and ``order_by`` in
MLflow's search syntax become Tether's query language (see ``meta/query.py``).

What changes on the way: ``attributes.`` is dropped and MLflow's attribute names become Tether's
(``run_id`` → ``id``, ``run_name`` and ``tags.mlflow.runName`` → ``name``, ``start_time`` →
``started``, ``end_time`` → ``ended``, ``user_id`` → ``user``, ``experiment_id`` →
``experiment``, ``tags.mlflow.parentRunId`` → ``parent``); times compared with ``start_time``
and ``end_time`` are milliseconds, as in MLflow; statuses are matched whatever their case
(``'FINISHED'``); a key in double quotes (``metrics."val-loss"``) is a key in backticks;
``ILIKE`` is ``like``. Everything else is Tether's query language already.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tether.errors import UsageError

_ATTRIBUTES = {
    "run_id": "id",
    "run_name": "name",
    "start_time": "started",
    "end_time": "ended",
    "user_id": "user",
    "experiment_id": "experiment",
}
_SYSTEM_TAGS = {
    "mlflow.runName": "name",
    "mlflow.parentRunId": "parent",
    "mlflow.user": "user",
    "mlflow.source.git.commit": "commit",
    "mlflow.source.git.branch": "branch",
}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"", re.DOTALL)
_PLAIN_KEY = re.compile(r"[^\s=!<>(),'\"`]+")
_VIEWS = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all"}
_VIEW_NUMBERS = {1: "active", 2: "deleted", 3: "all"}  # MLflow's ViewType values


@dataclass
class _Scan:
    text: str
    pos: int = 0
    pending: str | None = None  # "status" or "time": how to read the values that follow


def translate(mlflow: str) -> str:
    """An MLflow filter (or one ``order_by`` item) in Tether's query language."""
    scan = _Scan(mlflow)
    out: list[str] = []
    while scan.pos < len(mlflow):
        out.append(_next(scan))
    return "".join(out)


def _next(scan: _Scan) -> str:
    text, pos = scan.text, scan.pos
    if text[pos] in "'\"" and (match := _STRING.match(text, pos)):
        scan.pos = match.end()
        literal = match.group()
        return literal.lower() if scan.pending == "status" else literal
    if match := _WORD.match(text, pos):
        scan.pos = match.end()
        if text.startswith(".", match.end()):
            return _field(scan, match.group())
        return _word(scan, match.group())
    if (match := _NUMBER.match(text, pos)) and scan.pending == "time":
        scan.pos = match.end()
        return repr(float(match.group()) / 1000)  # MLflow's times are milliseconds
    end = match.end() if match else pos + 1
    scan.pos = end
    return text[pos:end]


def _word(scan: _Scan, word: str) -> str:
    lowered = word.lower()
    if lowered in ("and", "or"):
        scan.pending = None
    elif lowered == "ilike":
        return "like"
    if lowered in _ATTRIBUTES or lowered == "status":
        return _attribute(scan, lowered)
    return word


def _attribute(scan: _Scan, name: str) -> str:
    tether = _ATTRIBUTES.get(name, name)
    scan.pending = "status" if tether == "status" else "time" if name.endswith("_time") else None
    return tether


def _field(scan: _Scan, prefix: str) -> str:
    """``PREFIX.KEY`` (KEY plain, in backticks or in double quotes) translated."""
    text = scan.text
    start = scan.pos + 1
    quote = text[start] if start < len(text) else ""
    if quote in ('"', "`") and (close := text.find(quote, start + 1)) > start:
        key, scan.pos = text[start + 1 : close], close + 1
    elif match := _PLAIN_KEY.match(text, start):
        key, scan.pos = match.group(), match.end()
    else:
        scan.pos = start
        return f"{prefix}."  # let the query parser say what is missing
    if prefix.lower() == "attributes":
        return _attribute(scan, key.lower())
    if prefix.lower() == "tags" and key in _SYSTEM_TAGS:
        scan.pending = None
        return _SYSTEM_TAGS[key]
    scan.pending = None
    plain = _PLAIN_KEY.fullmatch(key) is not None or "`" in key
    return f"{prefix}.{key}" if plain else f"{prefix}.`{key}`"


def order_clause(order_by: Sequence[str]) -> str:
    """MLflow's ``order_by=["metrics.loss DESC", "start_time"]`` as a Tether sort."""
    if isinstance(order_by, str):
        raise UsageError(f'order_by takes a list of sort keys, as in MLflow: ["{order_by}"]')
    return ", ".join(translate(item) for item in order_by)


def experiment_clause(names: Iterable[str]) -> str:
    """``experiment in (...)``: Tether's experiments are their names, so an MLflow experiment
    id is taken as a name."""
    quoted = ", ".join("'" + n.replace("\\", "\\\\").replace("'", "\\'") + "'" for n in names)
    return f"experiment in ({quoted})"


def view(run_view_type: object) -> str:
    """``active``, ``deleted`` or ``all`` for MLflow's ``run_view_type`` (a name, or ViewType's
    number)."""
    found = None
    if run_view_type is None:
        found = "active"
    elif isinstance(run_view_type, str):
        found = _VIEWS.get(run_view_type.upper())
    elif isinstance(run_view_type, int):
        found = _VIEW_NUMBERS.get(run_view_type)
    if found is None:
        raise UsageError(
            f"run_view_type is ACTIVE_ONLY, DELETED_ONLY or ALL, not {run_view_type!r}"
        )
    return found
