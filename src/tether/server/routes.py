"""The API's routes, ``/api/v1``: projects, objects, runs, accounts. Each one checks the caller's
role in the project, makes one call into the facade and returns what it returned."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from blake3 import blake3
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from tether import api
from tether.errors import UsageError
from tether.server import metrics
from tether.server.auth import SESSION_COOKIE, hub_of, identity

router = APIRouter(prefix="/api/v1")

Who = Annotated[api.Identity, Depends(identity)]
ProjectName = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$", max_length=40)]
ObjectId = Annotated[str, Path(pattern=r"^blake3:[0-9a-f]{64}$", max_length=71)]
RunId = Annotated[str, Path(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$", max_length=128)]
SPOOL_IN_MEMORY = 8 << 20


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProjectIn(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$")
    git: str = Field(default="", max_length=2000)


class ObjectIds(Strict):
    ids: list[Annotated[str, Field(pattern=r"^blake3:[0-9a-f]{64}$")]] = Field(max_length=100_000)


class RunIn(Strict):
    record: str = Field(pattern=r"^blake3:[0-9a-f]{64}$")
    amendments: list[Annotated[str, Field(pattern=r"^blake3:[0-9a-f]{64}$")]] = Field(
        default_factory=list, max_length=10_000
    )
    tombstone: str | None = Field(default=None, pattern=r"^blake3:[0-9a-f]{64}$")


class SearchIn(Strict):
    where: str | None = Field(default=None, max_length=10_000)
    sort: str | None = Field(default=None, max_length=1000)
    limit: int | None = Field(default=None, ge=0, le=1_000_000)
    include_deleted: bool = False
    offset: int = Field(default=0, ge=0, le=100_000_000)


class RunIds(Strict):
    ids: list[Annotated[str, Field(max_length=128)]] = Field(max_length=10_000)


class UserIn(Strict):
    name: str = Field(max_length=64)
    role: str = Field(max_length=16)
    project: str = Field(default="*", max_length=64)
    oidc: str | None = Field(default=None, max_length=300)


class TokenIn(Strict):
    user: str = Field(max_length=64)
    expires_in: float | None = Field(default=None, gt=0, le=10 * 365 * 86400)
    label: str = Field(default="", max_length=200)


def project_hub(request: Request, who: api.Identity, project: str, role: str) -> api.Hub:
    hub = hub_of(request)
    hub.check_project(project)
    who.require(project, role)
    return hub


class SessionIn(Strict):
    token: str = Field(max_length=4000)


@router.post("/session", status_code=201)
def open_session(request: Request, body: SessionIn, response: Response) -> dict[str, Any]:
    """Trade a token for a browser session: an HttpOnly, SameSite=Strict cookie (the token
    never goes in a URL), and the CSRF token every write from the browser must echo."""
    hub = hub_of(request)
    who = hub.authenticate(body.token)
    secret, csrf = hub.accounts.open_session(who)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=12 * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return {"user": who.user, "csrf": csrf}


@router.delete("/session")
def close_session(request: Request, response: Response) -> dict[str, Any]:
    """Log the browser out: the session ends on the server, the cookie is cleared."""
    if cookie := request.cookies.get(SESSION_COOKIE):
        hub_of(request).accounts.close_session(cookie)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"closed": True}


# -- projects --------------------------------------------------------------------------------
@router.get("/whoami")
def whoami(who: Who) -> dict[str, Any]:
    return {"user": who.user, "roles": dict(who.roles), "token": who.token}


@router.get("/projects")
def list_projects(request: Request, who: Who) -> dict[str, Any]:
    projects = hub_of(request).projects()
    return {"projects": [p for p in projects if who.role_in(p["name"])]}


@router.post("/projects", status_code=201)
def create_project(request: Request, who: Who, body: ProjectIn) -> dict[str, Any]:
    who.require("*", "admin")
    hub_of(request).create_project(body.name, git=body.git, actor=who.user)
    return {"name": body.name}


# -- the project's git mirror ----------------------------------------------------------------
Rev = Annotated[str, Query(max_length=200)]


@router.post("/projects/{project}/git/fetch")
def git_fetch(request: Request, who: Who, project: ProjectName) -> dict[str, Any]:
    """Bring the server's mirror of the project's repository up to date."""
    hub = project_hub(request, who, project, "writer")
    hub.mirrors.fetch(project)
    return {"fetched": True}


@router.get("/projects/{project}/git/commit")
def git_commit(request: Request, who: Who, project: ProjectName, rev: Rev) -> dict[str, Any]:
    """A commit of the project's repository, read from the server's mirror."""
    hub = project_hub(request, who, project, "reader")
    return hub.mirrors.commit(project, rev)


@router.get("/projects/{project}/git/data")
def git_data(request: Request, who: Who, project: ProjectName, rev: Rev) -> dict[str, Any]:
    """The tracked data at a revision: each pointer file's target, id and size."""
    hub = project_hub(request, who, project, "reader")
    return {"commit": hub.mirrors.resolve(project, rev), "data": hub.mirrors.data_at(project, rev)}


# -- objects ---------------------------------------------------------------------------------
@router.post("/projects/{project}/objects/missing")
def missing_objects(
    request: Request, who: Who, project: ProjectName, body: ObjectIds
) -> dict[str, Any]:
    hub = project_hub(request, who, project, "reader")
    return {"missing": hub.blobs.missing(project, body.ids)}


@router.put("/projects/{project}/objects/{oid}", status_code=201)
async def put_object(
    request: Request, who: Who, project: ProjectName, oid: ObjectId, response: Response
) -> dict[str, Any]:
    hub = await run_in_threadpool(project_hub, request, who, project, "writer")
    declared = request.headers.get("content-length", "")
    hint = int(declared) if declared.isdigit() else None
    with hub.blobs.incoming(project, hint) as received:
        hasher = blake3()  # hashed as it arrives (one pass, no re-read); small chunks: one thread
        async for chunk in request.stream():
            hasher.update(chunk)
            received.write(chunk)
        size = received.tell()
        stored = await run_in_threadpool(
            hub.put_object, project, oid, received, hasher.hexdigest(), by=who.user
        )
    if stored:
        metrics.OBJECTS.inc()
        metrics.OBJECT_BYTES.inc(size)
    else:
        response.status_code = 200
    return {"id": oid, "stored": stored}


@router.post("/projects/{project}/packs", status_code=201)
async def put_pack(request: Request, who: Who, project: ProjectName) -> dict[str, Any]:
    hub = await run_in_threadpool(project_hub, request, who, project, "writer")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        stored = await run_in_threadpool(hub.put_pack, project, spool, by=who.user)
    metrics.OBJECTS.inc(len(stored))
    metrics.OBJECT_BYTES.inc(sum(size for _, size in stored))  # new objects' bytes only
    return {"stored": [oid for oid, _ in stored]}


class UploadIn(Strict):
    id: str = Field(pattern=r"^blake3:[0-9a-f]{64}$")


@router.post("/projects/{project}/uploads", status_code=201)
def start_upload(
    request: Request, who: Who, project: ProjectName, body: UploadIn
) -> dict[str, Any]:
    """A presigned URL to PUT a big object straight to S3; it counts once committed."""
    hub = project_hub(request, who, project, "writer")
    return hub.blobs.presign_upload(project, body.id)


@router.post("/projects/{project}/uploads/{upload}/commit", status_code=201)
def commit_upload(
    request: Request,
    who: Who,
    project: ProjectName,
    upload: Annotated[str, Path(pattern=r"^[0-9a-f]{32}\.[0-9a-f]{64}$")],
    response: Response,
) -> dict[str, Any]:
    """Hash the uploaded bytes on the server; store the object only when they match its id."""
    hub = project_hub(request, who, project, "writer")
    oid, stored = hub.blobs.commit_upload(project, upload, who.user)
    if stored:
        metrics.OBJECTS.inc()
    else:
        response.status_code = 200
    return {"id": oid, "stored": stored}


@router.get("/projects/{project}/objects/{oid}")
def get_object(
    request: Request, who: Who, project: ProjectName, oid: ObjectId
) -> StreamingResponse:
    hub = project_hub(request, who, project, "reader")
    found = hub.blobs.stat(project, oid)
    return StreamingResponse(
        hub.blobs.iter_bytes(project, oid),
        media_type="application/octet-stream",
        headers={"Content-Length": str(found.size), "X-Content-Type-Options": "nosniff"},
    )


# -- runs ------------------------------------------------------------------------------------
@router.put("/projects/{project}/runs/{run_id}")
def put_run(
    request: Request, who: Who, project: ProjectName, run_id: RunId, body: RunIn
) -> dict[str, Any]:
    hub = project_hub(request, who, project, "writer")
    upload = api.RunUpload(body.record, tuple(body.amendments), body.tombstone)
    row, new = hub.put_run(project, run_id, upload, by=who.user)
    if new:
        metrics.RUNS.inc()
    return {"run": row.id, "record": row.record}


class SummaryIn(Strict):
    last: float | str
    min: float | str
    max: float | str
    step: int
    count: int = Field(ge=0)


class LiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(max_length=128)
    name: str = Field(max_length=200)
    experiment: str = Field(max_length=200)
    status: str = Field(pattern="^running$")
    started: float
    user: str = Field(default="", max_length=200)
    host: str = Field(default="", max_length=200)
    command: str = Field(default="", max_length=100_000)
    commit: str | None = Field(default=None, max_length=64)
    branch: str | None = Field(default=None, max_length=200)
    dirty: bool | None = None
    parent: str | None = Field(default=None, max_length=128)
    params: dict[str, str] = Field(default_factory=dict, max_length=10_000)
    metrics: dict[str, SummaryIn] = Field(default_factory=dict, max_length=10_000)
    tags: dict[str, str] = Field(default_factory=dict, max_length=10_000)


@router.put("/projects/{project}/runs/{run_id}/live")
def put_live(
    request: Request, who: Who, project: ProjectName, run_id: RunId, body: LiveIn
) -> dict[str, Any]:
    """A running run's params and metric summaries so far (best effort; a sealed run on the
    server is never replaced by a live view)."""
    hub = project_hub(request, who, project, "writer")
    if body.id != run_id:
        raise UsageError(f"the body is run {body.id}, the path run {run_id}")
    return {"shown": hub.put_live(project, body.model_dump(), by=who.user)}


@router.get("/projects/{project}/runs/{run_id}/state")
def run_state(request: Request, who: Who, project: ProjectName, run_id: RunId) -> dict[str, Any]:
    """The records the server accepted for the run: fetch them to see it locally."""
    hub = project_hub(request, who, project, "reader")
    return hub.run_state(project, run_id)


@router.get("/projects/{project}/runs/{run_id}/metrics")
def metric_points(
    request: Request,
    who: Who,
    project: ProjectName,
    run_id: RunId,
    key: Annotated[str, Query(max_length=500)],
    start: float | None = None,
    end: float | None = None,
    width: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    """A metric's history for a chart ``width`` pixels wide, between steps ``start`` and
    ``end``: the raw points while there are at most 4 per pixel, else M4-reduced (the first,
    last, smallest and largest point of each pixel column); NaN and infinities as ``marks``."""
    hub = project_hub(request, who, project, "reader")
    return hub.views.metric_points(project, run_id, key, start=start, end=end, width=width)


@router.post("/projects/{project}/runs/states")
def run_states(request: Request, who: Who, project: ProjectName, body: RunIds) -> dict[str, Any]:
    """The accepted state of each of these runs (absent: the server has none), so a clone
    learns of teammates' notes, tags and deletions of the runs it holds."""
    hub = project_hub(request, who, project, "reader")
    return {"states": hub.run_states(project, body.ids)}


@router.post("/projects/{project}/runs/search")
def search_runs(request: Request, who: Who, project: ProjectName, body: SearchIn) -> dict[str, Any]:
    hub = project_hub(request, who, project, "reader")
    runs = hub.search(
        project,
        body.where,
        body.sort,
        body.limit,
        include_deleted=body.include_deleted,
        offset=body.offset,
    )
    return {"runs": [api.run_document(r) for r in runs]}


@router.post("/projects/{project}/runs/get")
def get_runs(request: Request, who: Who, project: ProjectName, body: RunIds) -> dict[str, Any]:
    hub = project_hub(request, who, project, "reader")
    return {"runs": [api.run_document(r) for r in hub.get_runs(project, body.ids)]}


@router.get("/projects/{project}/runs/resolve")
def resolve_run(
    request: Request, who: Who, project: ProjectName, ref: Annotated[str, Query(max_length=200)]
) -> dict[str, Any]:
    hub = project_hub(request, who, project, "reader")
    return {"ids": hub.resolve(project, ref)}


# -- lineage: the queries a walk makes, on the project's index -----------------------------------
class DataQueryIn(Strict):
    role: str = Field(pattern="^(input|output)$")
    objects: list[Annotated[str, Field(max_length=80)]] = Field(
        default_factory=list, max_length=100_000
    )
    paths: list[Annotated[str, Field(max_length=1000)]] = Field(
        default_factory=list, max_length=100_000
    )
    folder: str | None = Field(default=None, max_length=1000)


@router.post("/projects/{project}/lineage/data")
def lineage_data(
    request: Request, who: Who, project: ProjectName, body: DataQueryIn
) -> dict[str, Any]:
    """Runs that logged these objects, paths or a path under this folder, in this role."""
    hub = project_hub(request, who, project, "reader")
    rows = hub.index(project).data_rows(
        body.role, objects=body.objects, paths=body.paths, folder=body.folder
    )
    return {"rows": [list(r) for r in rows]}


@router.post("/projects/{project}/lineage/children")
def lineage_children(
    request: Request, who: Who, project: ProjectName, body: RunIds
) -> dict[str, Any]:
    """(parent, child) for the runs these runs are parents of: a pipeline's stages."""
    hub = project_hub(request, who, project, "reader")
    return {"children": [list(pair) for pair in hub.index(project).children(body.ids)]}


@router.get("/projects/{project}/lineage/objects")
def lineage_objects(
    request: Request,
    who: Who,
    project: ProjectName,
    prefix: Annotated[str, Query(min_length=1, max_length=80)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> dict[str, Any]:
    """Object ids that runs logged and that start with ``prefix``."""
    hub = project_hub(request, who, project, "reader")
    return {"ids": hub.index(project).objects_with_prefix(prefix, limit)}


@router.get("/projects/{project}/lineage/graph")
def lineage_graph(
    request: Request,
    who: Who,
    project: ProjectName,
    run: Annotated[str | None, Query(max_length=128)] = None,
    object: Annotated[str | None, Query(pattern=r"^blake3:[0-9a-f]{64}$")] = None,
    direction: Annotated[str, Query(pattern="^(up|down)$")] = "up",
    depth: Annotated[int, Query(ge=1, le=20)] = 3,
) -> dict[str, Any]:
    """The lineage graph from a run or a data object: ``depth`` levels of runs up (what it came
    from) or down (what was built from it); nodes are runs and data, edges carry the path."""
    hub = project_hub(request, who, project, "reader")
    return hub.views.lineage(project, run=run, obj=object, direction=direction, depth=depth)


@router.get("/projects/{project}/lineage/runs")
def lineage_runs(request: Request, who: Who, project: ProjectName) -> dict[str, Any]:
    """Every run the project shows (not deleted), oldest first."""
    hub = project_hub(request, who, project, "reader")
    return {"ids": hub.index(project).visible_run_ids()}


# -- accounts (admin) ------------------------------------------------------------------------
@router.get("/users")
def list_users(request: Request, who: Who) -> dict[str, Any]:
    who.require("*", "admin")
    return {"users": hub_of(request).accounts.users()}


@router.post("/users", status_code=201)
def add_user(request: Request, who: Who, body: UserIn) -> dict[str, Any]:
    who.require("*", "admin")
    hub_of(request).accounts.add_user(
        body.name, body.role, body.project, actor=who.user, oidc=body.oidc
    )
    return {"name": body.name, "role": body.role, "project": body.project}


@router.post("/tokens", status_code=201)
def create_token(request: Request, who: Who, body: TokenIn) -> dict[str, Any]:
    who.require("*", "admin")
    token_id, token = hub_of(request).accounts.create_token(
        body.user, expires_in=body.expires_in, label=body.label, actor=who.user
    )
    return {"id": token_id, "token": token}


@router.delete("/tokens/{token_id}")
def revoke_token(
    request: Request, who: Who, token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]
) -> dict[str, Any]:
    who.require("*", "admin")
    hub_of(request).accounts.revoke_token(token_id, actor=who.user)
    return {"revoked": token_id}


@router.get("/audit")
def audit_log(
    request: Request, who: Who, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000
) -> dict[str, Any]:
    who.require("*", "admin")
    return {"events": hub_of(request).accounts.audit_log(limit)}
