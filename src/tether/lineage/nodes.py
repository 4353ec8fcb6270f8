"""Graph nodes from run records: the run itself and the code, environment and parameters it ran
with."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tether.errors import MissingObjectError
from tether.lineage.graph import GraphBuilder, object_key, run_key, short_id
from tether.lineage.records import iso_time
from tether.workspace.repo import Workspace

MAX_LABEL = 60


def add_run(graph: GraphBuilder, record: Mapping[str, Any]) -> str:
    """The run's node (its pipeline run, if any, is the caller's to add)."""
    key = run_key(record["id"])
    code = record.get("code") or {}
    tags = record.get("tags") or {}
    attrs = {
        "id": record["id"],
        "name": record.get("name"),
        "experiment": record.get("experiment"),
        "status": record.get("status"),
        "started": iso_time(record.get("started")),
        "ended": iso_time(record.get("ended")),
        "user": record.get("user"),
        "host": record.get("host"),
        "command": " ".join(record.get("command") or []) or None,
        "entry_point": code.get("entry_point"),
        "pipeline": tags.get("pipeline"),
        "stage": tags.get("stage"),
        "record": record.get("record_id"),
    }
    label = f"run {record.get('name') or record['id']} [{record.get('status', '?')}]"
    graph.add_node(key, "run", label, attrs)
    return key


def add_object(graph: GraphBuilder, oid: str, path: str | None = None) -> str:
    key = object_key(oid)
    graph.add_node(key, "object", short_id(oid), {"id": oid}, [path] if path else [])
    return key


def add_context(graph: GraphBuilder, ws: Workspace, record: Mapping[str, Any]) -> None:
    """The code, environment and parameters the run ran with."""
    key = run_key(record["id"])
    code = record.get("code") or {}
    if code:
        graph.add_edge(key, "ran_code", _add_code(graph, code))
    env = record.get("env")
    if env:
        graph.add_edge(key, "ran_in", _add_env(graph, ws, env))
    params = dict(record.get("params") or {})
    seeds = record.get("seeds") or []
    if params or seeds:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(params.items()))
        if seeds:
            shown = ", ".join(filter(None, [shown, "seed=" + "/".join(map(str, seeds))]))
        label = shown if len(shown) <= MAX_LABEL else shown[: MAX_LABEL - 1] + "…"
        attrs = {f"param.{k}": str(v) for k, v in params.items()}
        if seeds:
            attrs["seeds"] = ",".join(map(str, seeds))
        graph.add_node(f"params:{record['id']}", "params", label, attrs)
        graph.add_edge(key, "with_params", f"params:{record['id']}")


def _add_code(graph: GraphBuilder, code: Mapping[str, Any]) -> str:
    commit, diff = code.get("commit"), code.get("diff")
    key = f"commit:{commit or 'none'}" + (f"+{diff}" if diff else "")
    label = f"commit {commit[:10]}" if commit else "no commit yet"
    if diff:
        label += f" + diff {short_id(diff)}"
    elif code.get("dirty"):
        label += " (dirty, no diff kept)"
    attrs = {
        "commit": commit,
        "diff": diff,
        "dirty": "true" if code.get("dirty") else "false",
        "branch": code.get("branch"),
        "remote": code.get("remote"),
    }
    graph.add_node(key, "commit", label, attrs)
    return key


def _add_env(graph: GraphBuilder, ws: Workspace, env_id: str) -> str:
    key = f"env:{env_id}"
    if key in graph:
        return key
    attrs: dict[str, str | None] = {"id": env_id}
    label = f"env {short_id(env_id)}"
    try:
        env = json.loads(ws.store.read_bytes(env_id))
    except (MissingObjectError, FileNotFoundError, ValueError):
        env = None  # not fetched (or unreadable): the id alone still pins it
    if isinstance(env, dict):
        python = (env.get("python") or {}).get("version")
        packages = env.get("packages") or {}
        attrs["python"] = python
        attrs["packages"] = str(len(packages))
        label = f"env python {python or '?'}, {len(packages)} packages ({short_id(env_id)})"
    graph.add_node(key, "env", label, attrs)
    return key
