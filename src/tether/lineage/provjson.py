"""Runs as a W3C PROV-JSON document (https://www.w3.org/submissions/prov-json/).

- entities: data objects, by their id (``blake3:…`` is a qualified name in the ``blake3``
  namespace), labelled with the path a run logged; the code commit (``git:<sha>``); the
  uncommitted diff and the environment document (objects too).
- activities: runs (``run:<uuid>``, i.e. ``urn:uuid:<uuid>``), with start and end times.
- agents: the users who ran them (``user:<name>``).
- relations: ``used`` (inputs, and the code, diff and environment with a ``prov:role``),
  ``wasGeneratedBy`` (outputs), ``wasAssociatedWith`` (run -> user) and ``wasInformedBy``
  (a pipeline stage -> its pipeline run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from tether.lineage.records import iso_time, selected_records
from tether.workspace.repo import Workspace

PREFIXES = {
    "tether": "urn:tether:",
    "blake3": "urn:tether:blake3:",
    "run": "urn:uuid:",
    "user": "urn:tether:user:",
    "git": "urn:tether:git:",
}
RELATIONS = ("used", "wasGeneratedBy", "wasAssociatedWith", "wasInformedBy")


def prov_document(ws: Workspace, refs: Sequence[str] = ()) -> dict[str, Any]:
    """The PROV-JSON document of the sealed runs ``refs`` (all runs when empty)."""
    doc = _Document()
    for record in selected_records(ws, refs):
        doc.add_run(record)
    return doc.to_dict()


def to_json(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


class _Document:
    def __init__(self) -> None:
        self.entity: dict[str, dict[str, Any]] = {}
        self.activity: dict[str, dict[str, Any]] = {}
        self.agent: dict[str, dict[str, Any]] = {}
        self.relations: dict[str, dict[str, dict[str, Any]]] = {r: {} for r in RELATIONS}

    def relate(self, kind: str, **fields: Any) -> None:
        bucket = self.relations[kind]
        bucket[f"_:{kind}{len(bucket) + 1}"] = fields

    def add_run(self, record: Mapping[str, Any]) -> None:
        run = f"run:{record['id']}"
        self.activity[run] = _activity(record)
        user = str(record.get("user") or "unknown")
        agent = f"user:{quote(user, safe='')}"
        self.agent[agent] = {"prov:label": user, "prov:type": _qname("prov:Person")}
        self.relate("wasAssociatedWith", **{"prov:activity": run, "prov:agent": agent})
        data = record.get("data") or {}
        for path, oid in sorted((data.get("inputs") or {}).items()):
            self.add_object(oid, path)
            self.relate("used", **{"prov:activity": run, "prov:entity": oid, "prov:role": "input"})
        ended = iso_time(record.get("ended"))
        for path, oid in sorted((data.get("outputs") or {}).items()):
            self.add_object(oid, path)
            fields = {"prov:entity": oid, "prov:activity": run}
            self.relate("wasGeneratedBy", **fields, **({"prov:time": ended} if ended else {}))
        self.add_context(run, record)
        if record.get("parent"):
            self.relate(
                "wasInformedBy",
                **{"prov:informed": run, "prov:informant": f"run:{record['parent']}"},
            )

    def add_context(self, run: str, record: Mapping[str, Any]) -> None:
        code = record.get("code") or {}
        if code.get("commit"):
            commit = f"git:{code['commit']}"
            self.entity.setdefault(commit, {"prov:label": f"commit {code['commit']}"})
            if code.get("remote"):
                self.entity[commit]["tether:remote"] = code["remote"]
            self.relate(
                "used", **{"prov:activity": run, "prov:entity": commit, "prov:role": "code"}
            )
        for role, oid in (("diff", code.get("diff")), ("environment", record.get("env"))):
            if oid:
                self.entity.setdefault(oid, {"prov:label": role, "tether:id": oid})
                self.relate("used", **{"prov:activity": run, "prov:entity": oid, "prov:role": role})

    def add_object(self, oid: str, path: str) -> None:
        self.entity.setdefault(oid, {"prov:label": path, "tether:id": oid, "tether:path": path})

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"prefix": dict(PREFIXES)}
        for kind in ("entity", "activity", "agent"):
            if getattr(self, kind):
                doc[kind] = getattr(self, kind)
        doc.update({kind: rows for kind, rows in self.relations.items() if rows})
        return doc


def _activity(record: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prov:label": record.get("name") or record["id"],
        "prov:startTime": iso_time(record.get("started")),
        "tether:experiment": record.get("experiment"),
        "tether:status": record.get("status"),
        "tether:record": record.get("record_id"),
        "tether:command": " ".join(record.get("command") or []),
    }
    if record.get("ended"):
        out["prov:endTime"] = iso_time(record["ended"])
    for key, value in sorted((record.get("params") or {}).items()):
        out[f"tether:param_{quote(key, safe='')}"] = str(value)
    return {k: v for k, v in out.items() if v not in (None, "")}


def _qname(name: str) -> dict[str, str]:
    return {"$": name, "type": "prov:QUALIFIED_NAME"}
