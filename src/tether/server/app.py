"""The FastAPI application over one :class:`tether.api.Hub`."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether import __version__, api
from tether.errors import PayloadTooLargeError
from tether.server import decisions, errors, live, metrics
from tether.server.auth import identity
from tether.server.routes import router


def _authorise(hub: api.Hub, who: api.Identity, project: str, role: str) -> None:
    hub.check_project(project)
    who.require(project, role)


def create_app(hub: api.Hub) -> FastAPI:
    app = FastAPI(
        title="Tether",
        version=__version__,
        summary="One Tether for a team: runs, objects and accounts",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.hub = hub
    errors.install(app)
    app.add_middleware(BodyLimit, limit=hub.settings.max_body)
    app.add_middleware(SameOrigin)
    app.add_middleware(OpenOnLoopback, hub=hub)
    app.add_middleware(metrics.Measure)
    app.include_router(router)
    app.include_router(decisions.router)
    app.include_router(live.router)

    @app.api_route(
        "/git/{project}.git/{path:path}", methods=["GET", "POST"], include_in_schema=False
    )
    async def git_http(request: Request, project: str, path: str) -> Response:
        """git's smart HTTP: `git clone|fetch|push URL/git/PROJECT.git` (token: Bearer, or
        Basic with the token as password). Readers fetch; writers push, through the door."""
        who = await identity(request)
        query = request.url.query
        await run_in_threadpool(
            _authorise, hub, who, project, "writer" if api.is_git_push(path, query) else "reader"
        )
        body = await request.body()
        answer = await run_in_threadpool(
            hub.git_http,
            project,
            path,
            method=request.method,
            query=query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            user=who.user,
            role=who.role_in(project) or "",
        )
        return Response(answer.body, status_code=answer.status, headers=answer.headers)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        """The process answers (a liveness probe): nothing else is checked."""
        return {"status": "ok"}

    @app.get("/ready", tags=["health"])
    def ready() -> dict[str, str]:
        """The database and the object store both answer (a readiness probe); else 503."""
        return hub.ready()

    @app.get("/metrics", tags=["health"], include_in_schema=False)
    def prometheus() -> Any:
        return metrics.exposition()

    return app


LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?")


class OpenOnLoopback:
    """A server open on loopback (no accounts yet, so no token is asked) answers only to a
    loopback ``Host``: a page of another site whose name was made to resolve to 127.0.0.1
    (DNS rebinding) sends its own name, and gets 421. Once an account exists every request
    needs a token, which such a page does not have."""

    def __init__(self, app: ASGIApp, hub: api.Hub) -> None:
        self.app = app
        self.hub = hub

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.hub.settings.open_without_accounts:
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            if not LOOPBACK_HOST.fullmatch(host) and not await run_in_threadpool(
                self.hub.accounts.any_user
            ):
                said = b"this server answers only to 127.0.0.1 or localhost"
                kind = [(b"content-type", b"text/plain; charset=utf-8")]
                await send({"type": "http.response.start", "status": 421, "headers": kind})
                await send({"type": "http.response.body", "body": said})
                return
        await self.app(scope, receive, send)


class SameOrigin:
    """A write a browser sends from another site's page is refused (403): its ``Origin`` names
    that site. A cookie is SameSite=Strict and a write needs its CSRF token, but a server open
    on loopback (no accounts yet) takes writes without either, and a page of any site could
    send them there. Clients other than browsers send no ``Origin``. Behind a proxy that
    rewrites ``Host``, its ``X-Forwarded-Host`` counts too (a page cannot set that header on
    another site's request without the CORS preflight this server never grants)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            headers = dict(scope["headers"])
            origin = headers.get(b"origin")
            if origin is not None:
                hosts = {headers.get(name, b"").decode("latin-1").lower()
                         for name in (b"host", b"x-forwarded-host")}  # fmt: skip
                if origin.decode("latin-1").lower().split("://", 1)[-1] not in hosts - {""}:
                    said = "a write from another site's page is refused"
                    body = json.dumps({"error": "PermissionDeniedError", "message": said}).encode()
                    await send({"type": "http.response.start", "status": 403,
                                "headers": [(b"content-type", b"application/json")]})  # fmt: skip
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over ``limit`` bytes: by its Content-Length before a byte is read, and
    by counting for a chunked body, so no route ever holds more than the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLargeError(_message(self.limit))
            return message

        await self.app(scope, counted, send)


def _message(limit: int) -> str:
    return (
        f"the request body is over this server's limit of {limit} bytes: send big objects "
        "one by one (`tether sync` does), or raise --max-body"
    )


async def _too_large(send: Send, limit: int) -> None:
    import json

    payload = json.dumps(errors.body("PayloadTooLargeError", _message(limit))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
