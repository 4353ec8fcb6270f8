"""The experiment ledger: ``experiment_log.yaml``, one entry per run, committed to git with a
structured message (``tether run --commit-log``), so the history of results is in the history
of the code. ``tether runs export --yaml`` writes the same entries."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tether.gitio import git
from tether.runs.index import redactor_for
from tether.runs.record import number
from tether.workspace.repo import Workspace

LEDGER = "experiment_log.yaml"


def entry(record: dict[str, Any]) -> dict[str, Any]:
    code = record.get("code") or {}
    data = record.get("data") or {}
    metrics = {
        k: _plain(number(m["last"])) for k, m in sorted((record.get("metrics") or {}).items())
    }
    return {
        "run": record["id"],
        "name": record["name"],
        "experiment": record["experiment"],
        "status": record["status"],
        "started": dt.datetime.fromtimestamp(record["started"], dt.UTC).isoformat(
            timespec="seconds"
        ),
        "code": {
            "commit": code.get("commit"),
            "dirty": code.get("dirty"),
            "diff": code.get("diff"),
        },
        "params": dict(sorted((record.get("params") or {}).items())),
        "metrics": metrics,
        "seeds": list(record.get("seeds") or []),
        "data": {
            "inputs": dict(data.get("inputs") or {}),
            "outputs": dict(data.get("outputs") or {}),
            "tracked": dict(data.get("pointers_start") or {}),
        },
        "env": record.get("env"),
    }


def _plain(value: float) -> float | str:
    return value if value == value and abs(value) != float("inf") else str(value)


def to_yaml(records: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump([entry(r) for r in records], sort_keys=False, allow_unicode=True)


def commit_entry(ws: Workspace, record: dict[str, Any]) -> str:
    """Append the run to the ledger and commit only that file; the new commit's id."""
    text = redactor_for(ws).redact(to_yaml([record]))
    path = ws.root / LEDGER
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)
    metrics = ", ".join(f"{k}={v}" for k, v in entry(record)["metrics"].items())
    subject = f"chore(experiments): log run {record['name']}"
    body = (
        f"Run: {record['id']}\nStatus: {record['status']}\n"
        f"Code: {(record.get('code') or {}).get('commit')}\nMetrics: {metrics or '-'}"
    )
    git(ws.root, "add", "--", LEDGER)
    git(ws.root, "commit", "-q", "-m", subject, "-m", body, "--", LEDGER)
    return git(ws.root, "rev-parse", "HEAD").decode().strip()
