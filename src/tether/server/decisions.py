"""``POST /api/v1/projects/{project}/decisions``: a label promoted or rolled back, a request
approved or rejected, from the browser. The server makes the decision for the caller, as a
clone would, and it passes the same door; where it must be signed, the answer is the bytes to
sign, and the browser asks again with its signature (``tether.api.decide_for_browser``).
The account that handed a decision in is kept in the server's audit log (the event names the
key's identity)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from tether import api
from tether.errors import UsageError
from tether.server.routes import ProjectName, Strict, Who, project_hub

router = APIRouter(prefix="/api/v1")

Signature = Annotated[str, Field(pattern=r"^[A-Za-z0-9+/]{86}==$")]  # 64 bytes, base64


class DecisionIn(Strict):
    action: Literal["promote", "rollback", "approve", "reject"]
    name: str = Field(min_length=1, max_length=200)  # a prompt, or a request (id or MODEL@vN)
    label: str = Field(default="", max_length=100)
    version: str = Field(default="", max_length=100)
    comment: str = Field(default="", max_length=2000)
    public_key: str | None = Field(default=None, max_length=2000)  # the browser's key, PEM
    signatures: list[Signature] = Field(default_factory=list, max_length=16)
    time: float | None = Field(default=None, gt=0, lt=1e11)
    seen: int | None = Field(default=None, ge=0, le=10**9)  # the label's number on the page


@router.post("/projects/{project}/decisions")
async def decide(
    request: Request, who: Who, project: ProjectName, body: DecisionIn
) -> dict[str, Any]:
    """Make the decision, or answer ``{"sign": BASE64, "time": T}``: sign those bytes with the
    key and ask again with ``signatures`` one longer and the same ``time``."""
    hub = project_hub(request, who, project, api.DECISION_ROLES[body.action])
    if hub.settings.follow_logs:  # `tether ui`: the repository's own logs overwrite its mirror's
        raise UsageError(
            "this server shows a repository's own logs, so a decision made here would be lost: "
            "decide in the repository (`tether prompt promote`, `tether model approve`)"
        )
    given = body.model_dump()
    if not body.signatures:
        given["time"] = None  # the first ask is dated by the server's clock, not the page's
    decision = api.BrowserDecision(**given)
    done = await run_in_threadpool(
        api.decide_for_browser,
        hub.mirrors.path(project),
        decision,
        user=who.user,
        role=who.role_in(project) or "",
        read=lambda oid: hub.read_record(project, oid),
        record_of=lambda run_id: hub.record_of(project, run_id),
    )
    if done.sign:
        return {"sign": done.sign, "time": done.time}
    what: dict[str, Any] = {
        "action": body.action,
        "name": body.name,
        "label": body.label,
        "version": body.version,
    }
    what |= {"decided": done.done, "signed": bool(body.signatures)}
    try:
        await run_in_threadpool(hub.accounts.audit, who.user, "decision", project, what)
    except Exception:  # the decision stands; the server's log keeps the miss
        logging.getLogger(__name__).exception("the audit log missed a decision: %s", what)
    return {"decided": done.done, "time": done.time}
