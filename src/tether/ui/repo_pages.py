"""The UI's pages of what a project's repository holds, read on the server: the lineage graph,
the model registry (versions, requests, releases, the audit log), prompts (labels, their
history, evaluations, diffs, paired comparisons) and the tracked data at a revision. The run
pages and the helpers they share are in :mod:`tether.ui.pages`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from tether import api
from tether.errors import TetherError
from tether.ui.pages import SESSION_COOKIE, _reader, _render, _signed_in, _who


def _may(who: api.Identity, project: str, needed: str) -> bool:
    """Whether ``who`` holds ``needed`` (or a higher role) in ``project``: what a page offers
    them. The server checks again at the door, and the signature is the decider's own."""
    held = who.role_in(project)
    return held is not None and api.ROLES.index(held) >= api.ROLES.index(needed)


def _csrf(request: Request, who: api.Identity, project: str, needed: str) -> str:
    """The session's CSRF token when its account may make a decision that needs ``needed``:
    the page then offers it (its script echoes the token); "" otherwise, and for ``tether ui``
    (no account: decisions are the clone's, made where its keys are)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or not _may(who, project, needed):
        return ""
    hub: api.Hub = request.app.state.hub
    return hub.accounts.csrf(cookie) or ""


router = APIRouter(include_in_schema=False)


@router.get("/keys", response_class=HTMLResponse)
def keys(request: Request) -> Response:
    """This browser's signing key for the account: made here by WebCrypto, never exported."""
    return _render("keys.html", who=_signed_in(request))


@router.get("/p/{project}/lineage", response_class=HTMLResponse)
def lineage(
    request: Request,
    project: str,
    run: str | None = None,
    object: str | None = None,
    direction: str = "up",
    depth: int = 3,
) -> Response:
    """The lineage graph of a run or a data object, up or down: drawn with cytoscape and dagre,
    and listed as links (what a keyboard or a screen reader walks)."""
    hub = _reader(request, project)
    graph = hub.views.lineage(
        project, run=run, obj=object, direction=direction, depth=max(1, min(depth, 20))
    )
    start = {"run": run} if run else {"object": object}
    return _render(
        "lineage.html",
        project=project,
        graph=graph,
        start=start,
        depth=depth,
        direction=direction,
        here=urlencode(start),
        who=_who(request),
    )


AUDIT_SHOWN = 200  # newest events of a log listed on a page


@router.get("/p/{project}/models", response_class=HTMLResponse)
def models(request: Request, project: str) -> Response:
    """The registry as the project's repository on the server holds its log: each model's
    versions with their stage, aliases and signature, the requests with their approvals (and
    the command that approves: the approver's own key signs, never this page), and the audit
    log with its chain's status."""
    hub = _reader(request, project)
    read = hub.views.governance(project, "registry")
    state = read["state"]
    events = read["events"]
    gates: dict[str, list[str]] = {}
    gates_problem = ""
    if state and any(r.status == "open" for r in state.requests.values()):
        try:  # as an approval made now would check them
            gates = api.open_gates_for_browser(
                hub.mirrors.path(project),
                read=lambda oid: hub.read_record(project, oid),
                record_of=lambda run_id: hub.record_of(project, run_id),
            )
        except TetherError as exc:
            gates_problem = str(exc)
    return _render(
        "models.html",
        project=project,
        state=state,
        events=list(reversed(events))[:AUDIT_SHOWN],
        total=len(events),
        refused=read["refused"],
        problem=read["problem"],
        requests=sorted(state.requests.values(), key=lambda r: r.id) if state else [],
        releases=hub.views.releases(project, state),
        gates=gates,
        gates_problem=gates_problem,
        approver=_may(who := _who(request), project, "approver"),
        role=who.role_in(project) or "without a role",
        who=who,
        csrf=_csrf(request, who, project, "approver"),
    )


@router.get("/p/{project}/prompts", response_class=HTMLResponse)
def prompts(request: Request, project: str) -> Response:
    """Each prompt's registered versions, where each label points now, and the timeline of
    every label assignment (promotions and rollbacks) with who and when."""
    hub = _reader(request, project)
    read = hub.views.governance(project, "prompts")
    folded = read["state"]
    held = list(folded.held) if folded else []
    versions = hub.views.prompt_versions(project)
    names = sorted(set(versions) | {a.name for a in held})
    labels: dict[str, dict[str, Any]] = {}
    for a in held:
        best = labels.setdefault(a.name, {}).get(a.label)
        if best is None or a.n > best.n:
            labels[a.name][a.label] = a
    return _render(
        "prompts.html",
        project=project,
        names=names,
        versions=versions,
        labels=labels,
        back_to=_rollback_targets(held),
        history=sorted(held, key=lambda a: a.time, reverse=True)[:AUDIT_SHOWN],
        evals={name: hub.views.prompt_evals(project, name) for name in names},
        promoter=_may(who := _who(request), project, "writer"),
        role=who.role_in(project) or "without a role",
        refused=read["refused"],
        problem=read["problem"],
        who=who,
        csrf=_csrf(request, who, project, "writer"),
    )


def _rollback_targets(held: list[Any]) -> dict[tuple[str, str], str]:
    """The version a rollback of each label would give back (as `tether prompt rollback`
    computes it: promotions push, rollbacks pop), for labels that have one."""
    stacks: dict[tuple[str, str], list[Any]] = {}
    for a in sorted(held, key=lambda a: a.n):
        stack = stacks.setdefault((a.name, a.label), [])
        if a.reason == "rollback" and stack:
            stack.pop()
        else:
            stack.append(a)
    return {key: stack[-2].version for key, stack in stacks.items() if len(stack) >= 2}


@router.get("/p/{project}/prompts/{name}/paired", response_class=HTMLResponse)
def prompt_paired(request: Request, project: str, name: str, a: str, b: str) -> Response:
    """Eval run ``b`` against eval run ``a`` on the cases both ran: each metric's difference
    with its interval and test, the verdict and the gate (as `tether prompt compare`)."""
    hub = _reader(request, project)
    done, meta = hub.views.paired(project, name, a, b)
    return _render(
        "prompt_paired.html",
        project=project,
        prompt=name,
        done=done,
        meta=meta,
        runs=(a, b),
        who=_who(request),
    )


@router.get("/p/{project}/prompts/{name}/diff", response_class=HTMLResponse)
def prompt_diff(request: Request, project: str, name: str, a: str, b: str) -> Response:
    """What changed between two registered versions of a prompt."""
    hub = _reader(request, project)
    diff = hub.views.prompt_diff(project, name, a, b)
    return _render(
        "prompt_diff.html", project=project, prompt=name, a=a, b=b, diff=diff, who=_who(request)
    )


@router.get("/p/{project}/data", response_class=HTMLResponse)
def data(
    request: Request, project: str, rev: str | None = None, against: str | None = None
) -> Response:
    """The tracked data sets at a branch, tag or commit of the project's repository on the
    server, and what changed against another."""
    hub = _reader(request, project)
    page = hub.views.data_page(project, rev or None, against or None)
    return _render("data.html", project=project, page=page, who=_who(request))


@router.get("/p/{project}/pipeline", response_class=HTMLResponse)
def pipeline(request: Request, project: str) -> Response:
    """The pipeline's stages as `tether repro --dry-run` plans them: up to date, or stale and
    why. Only a repository's own server (`tether ui`) has a work tree to plan on."""
    from pathlib import Path

    hub = _reader(request, project)
    tree = hub.settings.work_tree
    stages: list[dict[str, Any]] = []
    problem = ""
    if tree:
        try:
            stages = api.pipeline_states(Path(tree))
        except TetherError as exc:
            problem = str(exc)
    return _render(
        "pipeline.html",
        project=project,
        stages=stages,
        problem=problem,
        local=bool(tree),
        who=_who(request),
    )
