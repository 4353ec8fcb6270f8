"""The UI on a FastAPI application: its pages, its static files, the headers every answer
carries, and (``tether ui``) the guard of a UI served from a developer's machine.

Every page gets a strict Content-Security-Policy (scripts and styles from this origin only, no
inline script, no plugins, no framing), ``X-Content-Type-Options: nosniff`` and no referrer.
``tether ui`` listens on loopback with no accounts, so it also checks the ``Host`` header (a
DNS-rebinding page cannot reach it under its own name) and wants its random secret once: the URL
it prints trades the secret for an HttpOnly, SameSite=Strict cookie and drops it from the URL.
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.ui import pages, repo_pages

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
LOCAL_COOKIE = "tether_ui"
LOGIN_PATH = "/ui-login"
LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?")


def mount(app: FastAPI, *, local_secret: str | None = None) -> None:
    """Serve the UI at ``/`` of ``app``; ``local_secret``: as ``tether ui`` (see the module)."""
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.include_router(pages.router)
    app.include_router(repo_pages.router)
    app.add_exception_handler(pages.LoginNeeded, pages.login_redirect)
    _as_pages(app)
    app.add_middleware(Headers)
    if local_secret:
        app.add_middleware(LocalGuard, secret=local_secret)


def _as_pages(app: FastAPI) -> None:
    """A page's error (an unknown run, a bad revision) as a page with the way back, in the
    status the API gives it: the API's own errors stay JSON."""
    import json

    from fastapi.exceptions import RequestValidationError
    from starlette.requests import Request
    from starlette.responses import Response

    from tether.errors import TetherError

    for kind in (TetherError, RequestValidationError):
        api = app.exception_handlers.get(kind)
        if api is None:
            continue

        async def handler(request: Request, exc: Exception, api: Any = api) -> Response:
            answer: Response = await api(request, exc)
            if request.url.path.startswith(_API):
                return answer
            try:
                message = str(json.loads(bytes(answer.body))["message"])
            except (ValueError, KeyError, TypeError):
                message = str(exc)
            project = request.path_params.get("project")
            return pages.error_page(answer.status_code, message, project)

        app.add_exception_handler(kind, handler)


_API = ("/api/", "/git/", "/health", "/ready", "/metrics")


class Headers:
    """The security headers of every answer but the API's own documents."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/api/v1/docs"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                extra = {
                    b"x-content-type-options": b"nosniff",
                    b"referrer-policy": b"no-referrer",
                    b"x-frame-options": b"DENY",
                    b"content-security-policy": CSP.encode(),
                }
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)


class LocalGuard:
    """``tether ui``'s guard: a loopback ``Host``, and the secret for everything but
    ``/health``: its cookie (a browser, once it opened the printed URL) or ``Authorization:
    Bearer SECRET`` (`tether ui`'s own uploads), taken off before the server sees the request.
    Any other local process, or a page of another site, gets nothing. The cookie is named
    after the port: two UIs on one machine do not log each other out."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not LOOPBACK_HOST.fullmatch(headers.get("host", "").lower()):
            await _answer(send, 421, "this UI answers only to 127.0.0.1 or localhost")
            return
        path, name = scope["path"], cookie_name(scope)
        if path == LOGIN_PATH:
            given = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
            if not hmac.compare_digest(given, self.secret):
                await _answer(send, 403, "this link's token is not this UI's: use the URL "
                              "`tether ui` printed")  # fmt: skip
                return
            cookie = f"{name}={self.secret}; HttpOnly; SameSite=Strict; Path=/"
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()),
                                    (b"cache-control", b"no-store")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        if path == "/health":
            await self.app(scope, receive, send)
            return
        cookies = headers.get("cookie", "")
        held = dict(part.strip().split("=", 1) for part in cookies.split(";") if "=" in part).get(
            name, ""
        )
        bearer = headers.get("authorization", "")
        if hmac.compare_digest(bearer, f"Bearer {self.secret}"):
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k.lower() != b"authorization"]}  # fmt: skip
        elif not hmac.compare_digest(held, self.secret):
            await _answer(send, 403, "open the URL `tether ui` printed (it holds the "
                          "secret this UI wants once)")  # fmt: skip
            return
        await self.app(scope, receive, send)


def cookie_name(scope: Scope) -> str:
    """The local UI's cookie, per port (a browser sends cookies to every port of a host)."""
    server = scope.get("server") or ("", 0)
    return f"{LOCAL_COOKIE}_{server[1]}"


async def _answer(send: Send, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})  # fmt: skip
    await send({"type": "http.response.body", "body": text.encode()})
