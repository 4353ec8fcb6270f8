"""The UI's pages: projects, the runs table (the query language in a filter box, server-side
sorting and paging, a column picker), a run (its four pillars, params, metrics and charts), and
the login that trades a token for the server's cookie session.

Every page reads through the server's :class:`tether.api.Hub` (``request.app.state.hub``), as
the API's routes do, and checks the reader's role first. Nothing here writes.
"""

from __future__ import annotations

import math
import re
import time
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tether import api
from tether.errors import AuthenticationError, QueryError, TetherError, UsageError

HERE = Path(__file__).resolve().parent
PAGE = 100  # rows of the runs table per page, by default
SIZES = (100, 500, 2000)  # the page sizes offered (rows off screen are not laid out: CSS)
COLUMNS = 6  # params and metrics shown by default, each
SESSION_COOKIE = "tether_session"

router = APIRouter(include_in_schema=False)


@cache
def _templates() -> Any:
    import json

    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
    vendor = json.loads((HERE / "static" / "vendor" / "vendor.json").read_text())
    env.globals["integrity"] = {name: v["integrity"] for name, v in vendor.items()}
    env.filters["when"] = _when
    env.filters["number"] = _number
    env.filters["seconds"] = _seconds
    return env


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _number(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "-∞"
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates().get_template(name).render(**context)
    return HTMLResponse(html, status_code=status)


TITLES = {400: "Not understood", 401: "Log in", 403: "Not allowed", 404: "Not found"}


def error_page(status: int, message: str, project: str | None) -> HTMLResponse:
    title = TITLES.get(status, "Could not be shown")
    return _render("error.html", status, title=title, message=message, project=project, who=None)


def _hub(request: Request) -> api.Hub:
    hub: api.Hub = request.app.state.hub
    return hub


def _who(request: Request) -> api.Identity:
    """The browser's identity: its session cookie, or nobody on a server without accounts."""
    hub = _hub(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return hub.accounts.session(cookie, None, write=False)
    if hub.settings.open_without_accounts and not hub.accounts.any_user():
        return api.ANONYMOUS
    raise AuthenticationError("log in")


def _login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse("/login?" + urlencode({"next": request.url.path}), status_code=303)


class LoginNeeded(Exception):
    """A page asked for without a session: the app answers with the login page's redirect."""


def login_redirect(request: Request, exc: Exception) -> Response:
    return _login_redirect(request)


def _signed_in(request: Request) -> api.Identity:
    """The browser's identity; without a session, the app answers with the login page."""
    try:
        return _who(request)
    except AuthenticationError:
        raise LoginNeeded from None


def _reader(request: Request, project: str) -> api.Hub:
    hub = _hub(request)
    hub.check_project(project)
    _signed_in(request).require(project, "reader")
    return hub


@router.get("/login", response_class=HTMLResponse)
def login(request: Request, next: str = "/") -> HTMLResponse:
    return _render("login.html", next=next if SAFE_NEXT.fullmatch(next) else "/", who=None)


# where a login may send the browser: a path of this server, in characters a browser does not
# drop or fold (a tab, a newline or a backslash would make "/\t/evil.example" another host)
SAFE_NEXT = re.compile(r"/(?![/\\])[A-Za-z0-9._~%/?&=+@:,;-]*")


@router.get("/", response_class=HTMLResponse)
def projects(request: Request) -> Response:
    who = _signed_in(request)
    hub = _hub(request)
    mine = [p for p in hub.projects() if who.role_in(p["name"])]
    if len(mine) == 1:
        return RedirectResponse(f"/p/{mine[0]['name']}/runs", status_code=303)
    return _render("projects.html", projects=mine, who=who)


@router.get("/p/{project}/runs", response_class=HTMLResponse)
def runs(
    request: Request,
    project: str,
    where: str = "",
    sort: str = "started desc",
    page: int = 1,
    col: Annotated[list[str] | None, Query()] = None,
    group: str = "",
    size: int = PAGE,
) -> Response:
    hub = _reader(request, project)
    page = max(1, min(page, 1_000_000))
    size = size if size in SIZES else PAGE
    error: QueryError | UsageError | None = None
    group = group if GROUPABLE.fullmatch(group) else ""
    order = f"{group} asc, {sort}" if group and sort else (f"{group} asc" if group else sort)
    try:
        found = hub.search(
            project, where or None, order or None, size + 1, offset=(page - 1) * size
        )
    except QueryError as exc:
        found, error = [], exc
    except UsageError as exc:
        found, error = [], exc
    more, rows = len(found) > size, found[:size]
    chosen = [c for c in col or [] if c.startswith(("params.", "metrics."))][:50]
    params = sorted({k for r in rows for k in r.params})
    metrics = sorted({k for r in rows for k in r.metrics})
    if not chosen:
        chosen = [f"params.{k}" for k in params[:COLUMNS]]
        chosen += [f"metrics.{k}" for k in metrics[:COLUMNS]]

    def link(**change: Any) -> str:
        query = {"where": where, "sort": sort, "page": page, "col": col or [], "group": group}
        query["size"] = size if size != PAGE else None
        query.update(change)
        return f"/p/{project}/runs?" + urlencode({k: v for k, v in query.items() if v}, True)

    fixed = [("name", "Name"), ("status", "Status"), ("started", "Started")]
    fixed += [("duration", "Duration"), ("user", "User"), ("commit", "Commit")]

    return _render(
        "runs.html",
        project=project,
        rows=rows,
        where=where,
        sort=sort,
        page=page,
        size=size,
        sizes=SIZES,
        more=more,
        error=error,
        columns=chosen,
        headers=fixed + [(c, c) for c in chosen],
        group=group,
        groups=_groups(rows, group),
        groupable=[f"params.{k}" for k in params]
        + [f"tags.{k}" for k in sorted({k for r in rows for k in r.tags})],
        available=[f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics],
        link=link,
        who=_who(request),
    )


GROUPABLE = re.compile(r"(params|tags)\.[A-Za-z0-9_.:/-]{1,250}")


def _groups(rows: list[Any], group: str) -> dict[int, tuple[str, int]]:
    """Where each group of the page starts (row index -> (value, runs in it on this page))."""
    if not group:
        return {}
    source, _, key = group.partition(".")
    values = [getattr(r, source).get(key, "(none)") for r in rows]
    starts: dict[int, tuple[str, int]] = {}
    for i, v in enumerate(values):
        if i == 0 or v != values[i - 1]:
            count = next((j for j in range(i, len(values)) if values[j] != v), len(values)) - i
            starts[i] = (v, count)
    return starts


@router.get("/p/{project}/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, project: str, run_id: str) -> Response:
    hub = _reader(request, project)
    found = hub.get_runs(project, [run_id])
    if not found:
        return _render("missing.html", 404, what=f"run {run_id}", project=project, who=None)
    row = found[0]
    details: dict[str, Any] = {"record": {}, "diff": None, "env": None, "missing": []}
    details.update(log=None, history=[])
    problem = None
    files: list[Any] = []
    if row.record:
        try:
            details = hub.views.run_details(project, run_id)
            files = hub.views.artifacts(project, details["record"])
        except TetherError as exc:
            problem = str(exc)
    return _render(
        "run.html",
        project=project,
        run=row,
        record=details["record"],
        diff=details["diff"],
        env=details["env"],
        log=details["log"],
        log_cut=details.get("log_cut", False),
        history=details["history"],
        missing=details["missing"],
        artifacts=_listed(hub, project, files[:ARTIFACTS]),
        more_artifacts=max(0, len(files) - ARTIFACTS),
        problem=problem,
        metrics=sorted(row.metrics),
        who=_who(request),
    )


COMPARED = 200  # runs one comparison shows


@router.get("/p/{project}/compare", response_class=HTMLResponse)
def compare(
    request: Request,
    project: str,
    run: Annotated[list[str] | None, Query()] = None,
    only: int = 0,
) -> Response:
    """Any number of runs side by side: params and metrics (``only``: the rows that differ),
    overlaid charts, and for two runs the four-pillar difference with its likely causes."""
    hub = _reader(request, project)
    asked = list(dict.fromkeys(run or []))
    rows = hub.get_runs(project, asked[:COMPARED])
    found = {r.id for r in rows}
    unknown = [rid for rid in asked[:COMPARED] if rid not in found]
    params = sorted({k for r in rows for k in r.params})
    metrics = sorted({k for r in rows for k in r.metrics})
    table: list[tuple[str, list[str], bool]] = []
    for key in params:
        values = [r.params.get(key, "") for r in rows]
        table.append((f"params.{key}", values, len(set(values)) > 1))
    for key in metrics:
        values = [repr(r.metrics[key].last) if key in r.metrics else "" for r in rows]
        differs = len(set(values)) > 1  # by value: two runs shown alike may still differ
        shown = [_number(r.metrics[key].last) if key in r.metrics else "" for r in rows]
        if differs and len(set(shown)) < len(set(values)):
            shown = values  # all the digits where the short form hides the difference
        table.append((f"metrics.{key}", shown, differs))
    if only:
        table = [t for t in table if t[2]]
    pillars = None
    problem = None
    if len(rows) == 2 and rows[0].record and rows[1].record:
        try:
            pillars = hub.views.diff_runs(project, rows[0].id, rows[1].id)
        except TetherError as exc:
            problem = str(exc)
    query = urlencode({"run": [r.id for r in rows]}, True)
    return _render(
        "compare.html",
        project=project,
        rows=rows,
        table=table,
        only=only,
        metrics=metrics,
        pillars=pillars,
        problem=problem,
        query=query,
        left_out=max(0, len(asked) - COMPARED),
        chart_names={k: [r.name or r.id[:8] for r in rows if k in r.metrics] for k in metrics},
        metric_changes=_metric_changes(pillars),
        unknown=unknown,
        who=_who(request),
    )


def _metric_changes(pillars: Any) -> list[tuple[str, str, str]]:
    """Each metric two runs logged differently, by value, with all its digits."""
    if pillars is None:
        return []
    shown = {
        k: ["unset" if v is None else repr(v) for v in pair] for k, pair in pillars.metrics.items()
    }
    return [(k, a, b) for k, (a, b) in sorted(shown.items()) if a != b]


ARTIFACTS = 200  # listed on a run's page
PREVIEWED = 64 * 1024  # bytes of a text or CSV artifact shown on the page
PREVIEWS = 8  # text and CSV previews on one page
IMAGES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
          ".webp": "image/webp", ".svg": "image/svg+xml"}  # fmt: skip
TEXTS = {".txt", ".log", ".md", ".json", ".yaml", ".yml", ".toml", ".py", ".csv", ".tsv"}


def _listed(hub: api.Hub, project: str, files: list[Any]) -> list[tuple[Any, str, Any]]:
    """Each artifact with its kind, and a preview for the first few texts and tables."""
    out, previewed = [], 0
    for a in files:
        kind = _kind(a.name)
        shown = None
        if kind in ("text", "table") and previewed < PREVIEWS:
            shown = _preview(hub, project, a)
            previewed += shown is not None
        out.append((a, kind, shown))
    return out


def _kind(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in IMAGES:
        return "image"
    if suffix in (".csv", ".tsv"):
        return "table"
    return "text" if suffix in TEXTS else "file"


def _preview(hub: api.Hub, project: str, a: Any) -> Any:
    """A text artifact's first bytes, or a CSV's first rows, for the page (escaped there)."""
    kind = _kind(a.name)
    if kind not in ("text", "table") or a.size > (1 << 24):
        return None
    try:
        data = hub.blobs.read_bytes(project, a.id)[:PREVIEWED].decode("utf-8", "replace")
    except TetherError:
        return None
    if kind == "text":
        return data
    import csv
    import io

    delimiter = "\t" if a.name.lower().endswith(".tsv") else ","
    rows = list(csv.reader(io.StringIO(data), delimiter=delimiter))[:51]
    return rows


@router.get("/p/{project}/runs/{run_id}/artifacts/{name:path}")
def artifact(request: Request, project: str, run_id: str, name: str) -> Response:
    """One artifact's bytes under a CSP sandbox (no script runs, HTML or SVG included, and the
    page is an opaque origin), never sniffed; only images and plain text are shown inline."""
    hub = _reader(request, project)
    found, data = hub.views.artifact(project, run_id, name)
    suffix = Path(found.name).suffix.lower()
    if suffix in IMAGES:
        media, disposition = IMAGES[suffix], "inline"
    elif suffix in TEXTS:
        media, disposition = "text/plain; charset=utf-8", "inline"
    else:
        media, disposition = "application/octet-stream", "attachment"
    return _sandboxed(data, media, disposition, Path(found.name).name)


@router.get("/p/{project}/runs/{run_id}/log")
def run_log(request: Request, project: str, run_id: str) -> Response:
    """The run's whole output log, as plain text under the same sandbox as artifacts."""
    hub = _reader(request, project)
    data = hub.views.run_log(project, run_id)
    return _sandboxed(data, "text/plain; charset=utf-8", "inline", f"{run_id}.log")


ENV_FILES = {"requirements": "requirements.txt", "conda": "environment.yml"}


@router.get("/p/{project}/runs/{run_id}/env/{fmt}")
def environment(request: Request, project: str, run_id: str, fmt: str) -> Response:
    """The run's environment as requirements.txt, a conda environment.yml or a Dockerfile
    (what `tether env export` prints), as a download."""
    hub = _reader(request, project)
    if fmt not in (*ENV_FILES, "dockerfile"):
        return _render("missing.html", 404, what=f"format {fmt}", project=project, who=None)
    text = hub.views.environment_file(project, run_id, fmt)
    name = ENV_FILES.get(fmt, "Dockerfile")
    return _sandboxed(text.encode(), "text/plain; charset=utf-8", "attachment", name)


def _sandboxed(data: bytes, media: str, disposition: str, filename: str) -> Response:
    """Someone else's bytes: under a CSP sandbox (no script runs, and the page is an opaque
    origin), never sniffed, with a file name that cannot break out of its header."""
    filename = filename.encode("ascii", "replace").decode().replace('"', "_")
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
            "img-src 'self' data:",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'{disposition}; filename="{filename}"',
            "Cache-Control": "private, max-age=300",
        },
    )
