"""Runs as OpenLineage run events (spec 2-0-2), built as plain dicts, and sent over HTTP.

Each sealed run gives two events: ``START`` at its start, with its inputs, and ``COMPLETE``,
``FAIL`` or ``ABORT`` (finished, failed, killed) at its end, with its inputs and outputs.

- ``run.runId`` is the run's id (a UUIDv7); a pipeline stage names its pipeline run in the
  standard ``parent`` facet.
- ``job``: namespace ``tether://<repository folder name>``, name ``experiment/run-name`` or,
  for a pipeline stage, ``pipeline/stage``; the ``sourceCodeLocation`` facet holds the commit.
- datasets: namespace ``tether``, name = the path the run logged, and the object id in the
  standard dataset ``version`` facet.
- the ``tether`` run facet (a plain RunFacet) keeps what OpenLineage has no facet for: the
  sealed record's id, the environment and diff object ids, params and the exit code.

The HTTP transport POSTs each event as JSON to ``URL/api/v1/lineage`` (Marquez and most
consumers listen there), with httpx when it is installed and ``urllib.request`` otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tether.errors import RemoteError
from tether.lineage.records import iso_time, job_name, selected_records
from tether.workspace.repo import Workspace


def _version() -> str:
    # not `tether.__version__`: the package root reaches the api layer, above this one
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tether-ml")
    except PackageNotFoundError:
        return "0+unknown"


VERSION = _version()
SPEC = "https://openlineage.io/spec"
SCHEMA_URL = f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunEvent"
RUN_FACET = f"{SPEC}/2-0-2/OpenLineage.json#/$defs/RunFacet"
FACET_SCHEMAS = {
    "version": f"{SPEC}/facets/1-0-0/DatasetVersionDatasetFacet.json"
    "#/$defs/DatasetVersionDatasetFacet",
    "sourceCodeLocation": f"{SPEC}/facets/1-0-1/SourceCodeLocationJobFacet.json"
    "#/$defs/SourceCodeLocationJobFacet",
    "parent": f"{SPEC}/facets/1-0-1/ParentRunFacet.json#/$defs/ParentRunFacet",
    "processing_engine": f"{SPEC}/facets/1-1-0/ProcessingEngineRunFacet.json"
    "#/$defs/ProcessingEngineRunFacet",
    "tether": RUN_FACET,
}
PRODUCER = f"https://pypi.org/project/tether-ml/{VERSION}/"
DATASET_NAMESPACE = "tether"
END_EVENT = {"finished": "COMPLETE", "failed": "FAIL", "killed": "ABORT"}
ENDPOINT = "/api/v1/lineage"
_SCP_LIKE = re.compile(r"^(?P<user>[\w.-]+@)?(?P<host>[\w.-]+):(?!//)(?P<path>.+)$")


def openlineage_events(ws: Workspace, refs: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Two events per sealed run of ``refs`` (ids, prefixes or names; all runs when empty)."""
    records = selected_records(ws, refs)
    namespace = job_namespace(ws)
    here = f"file://{ws.root}"
    jobs: dict[str, str | None] = {r["id"]: job_name(r) for r in records}
    events: list[dict[str, Any]] = []
    for record in records:
        parent = record.get("parent")
        if parent and parent not in jobs:
            jobs[parent] = _parent_job(ws, parent)
        events += run_events(record, namespace, jobs.get(parent) if parent else None, here)
    return events


def job_namespace(ws: Workspace) -> str:
    return f"tether://{ws.root.name}"


def _parent_job(ws: Workspace, run_id: str) -> str | None:
    from tether.errors import TetherError
    from tether.runs import catalog

    try:
        return job_name(catalog.load(ws, run_id))
    except TetherError:
        return None  # the pipeline run is not here: the stage goes without its parent facet


def run_events(
    record: Mapping[str, Any],
    namespace: str,
    parent_job: str | None = None,
    repo_url: str | None = None,
) -> list[dict[str, Any]]:
    """The START and end events of one run record; ``repo_url`` locates the code when the run's
    repository had no remote."""
    data = record.get("data") or {}
    inputs = [_dataset(p, oid) for p, oid in sorted((data.get("inputs") or {}).items())]
    outputs = [_dataset(p, oid) for p, oid in sorted((data.get("outputs") or {}).items())]
    run = {"runId": record["id"], "facets": _run_facets(record, namespace, parent_job)}
    job: dict[str, Any] = {"namespace": namespace, "name": job_name(record)}
    code = _code_facet(record.get("code") or {}, repo_url)
    if code:
        job["facets"] = {"sourceCodeLocation": code}
    start = _event("START", record["started"], run, job, inputs, [])
    end_type = END_EVENT.get(str(record.get("status")))
    if end_type is None:
        return [start]
    ended = record.get("ended") or record["started"]
    return [start, _event(end_type, ended, run, job, inputs, outputs)]


def _event(
    kind: str,
    when: float,
    run: dict[str, Any],
    job: dict[str, Any],
    inputs: list[dict[str, Any]],
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "eventType": kind,
        "eventTime": iso_time(when),
        "run": run,
        "job": job,
        "inputs": inputs,
        "outputs": outputs,
        "producer": PRODUCER,
        "schemaURL": SCHEMA_URL,
    }


def _facet(facet: str, /, **fields: Any) -> dict[str, Any]:
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMAS[facet], **fields}


def _dataset(path: str, oid: str) -> dict[str, Any]:
    return {
        "namespace": DATASET_NAMESPACE,
        "name": path,
        "facets": {"version": _facet("version", datasetVersion=oid)},
    }


def _run_facets(
    record: Mapping[str, Any], namespace: str, parent_job: str | None
) -> dict[str, Any]:
    code = record.get("code") or {}
    own = {
        "record": record.get("record_id"),
        "name": record.get("name"),
        "experiment": record.get("experiment"),
        "status": record.get("status"),
        "exitCode": record.get("exit_code"),
        "environment": record.get("env"),
        "diff": code.get("diff"),
        "dirty": bool(code.get("dirty")),
        "params": dict(record.get("params") or {}),
        "user": record.get("user"),
    }
    facets: dict[str, Any] = {
        "processing_engine": _facet("processing_engine", version=VERSION, name="tether"),
        "tether": _facet("tether", **{k: v for k, v in own.items() if v is not None}),
    }
    if record.get("parent") and parent_job:
        facets["parent"] = _facet(
            "parent",
            run={"runId": record["parent"]},
            job={"namespace": namespace, "name": parent_job},
        )
    return facets


def _code_facet(code: Mapping[str, Any], repo_url: str | None) -> dict[str, Any] | None:
    commit = code.get("commit")
    if not commit:
        return None  # no commit yet: nothing a code location could name
    remote = code.get("remote")
    fields = {
        "type": "git",
        "url": remote_uri(remote) if remote else (repo_url or f"git:{commit}"),
        "repoUrl": remote,
        "version": commit,
        "branch": code.get("branch"),
        "path": code.get("entry_point"),
    }
    return _facet("sourceCodeLocation", **{k: v for k, v in fields.items() if v is not None})


def remote_uri(remote: str) -> str:
    """A git remote as a URI: ``git@host:org/repo.git`` -> ``ssh://git@host/org/repo.git``;
    a local path -> ``file:///path``."""
    if "://" in remote:
        return remote
    if remote.startswith("/"):
        return f"file://{remote}"
    scp = _SCP_LIKE.match(remote)
    if scp:
        return f"ssh://{scp['user'] or ''}{scp['host']}/{scp['path'].lstrip('/')}"
    return f"file:{remote}"


def to_ndjson(events: Iterable[Mapping[str, Any]]) -> str:
    """One event per line, as OpenLineage's file transport writes them."""
    return "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in events)


def send_events(
    url: str,
    events: Sequence[Mapping[str, Any]],
    *,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> int:
    """POST each event to the OpenLineage endpoint at ``url``; how many were accepted."""
    endpoint = url.rstrip("/")
    if not endpoint.endswith(ENDPOINT):
        endpoint += ENDPOINT
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    post = _httpx_post if _has_httpx() else _urllib_post
    for i, event in enumerate(events):
        body = json.dumps(event, sort_keys=True).encode()
        status, reply = post(endpoint, body, headers, timeout)
        if not 200 <= status < 300:
            raise RemoteError(
                f"{endpoint} refused event {i + 1} of {len(events)} (HTTP {status}: "
                f"{reply[:200]!r}); {i} were sent: fix the endpoint and export again"
            )
    return len(events)


def _has_httpx() -> bool:
    import importlib.util

    return importlib.util.find_spec("httpx") is not None


def _httpx_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    import importlib

    httpx: Any = importlib.import_module("httpx")  # optional: not a dependency
    try:
        reply = httpx.post(url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise RemoteError(f"could not reach the OpenLineage endpoint {url}: {exc}") from exc
    return reply.status_code, reply.text


def _urllib_post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return int(reply.status), reply.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise RemoteError(f"could not reach the OpenLineage endpoint {url}: {exc}") from exc
