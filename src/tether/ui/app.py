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
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tether.ui import pages

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
LOCAL_COOKIE = "tether_ui"
LOGIN_PATH = "/ui-login"
LOOPBACK_HOST = re.compile(r"(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?")
_API = ("/api/", "/git/", "/health", "/ready", "/metrics")


def mount(app: FastAPI, *, local_secret: str | None = None) -> None:
    """Serve the UI at ``/`` of ``app``; ``local_secret``: as ``tether ui`` (see the module)."""
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")
    app.include_router(pages.router)
    app.add_exception_handler(pages.LoginNeeded, pages.login_redirect)
    app.add_middleware(Headers)
    if local_secret:
        app.add_middleware(LocalGuard, secret=local_secret)


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
    """``tether ui``'s guard: a loopback ``Host`` for everything, and the secret's cookie for
    the pages (the API keeps the embedded server's rules)."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self.secret = secret

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not LOOPBACK_HOST.fullmatch(headers.get("host", "")):
            await _answer(send, 421, "this UI answers only to 127.0.0.1 or localhost")
            return
        path = scope["path"]
        if path == LOGIN_PATH:
            given = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
            if not hmac.compare_digest(given, self.secret):
                await _answer(send, 403, "this link's token is not this UI's: use the URL "
                              "`tether ui` printed")  # fmt: skip
                return
            cookie = f"{LOCAL_COOKIE}={self.secret}; HttpOnly; SameSite=Strict; Path=/"
            await send({"type": "http.response.start", "status": 303,
                        "headers": [(b"location", b"/"), (b"set-cookie", cookie.encode()),
                                    (b"cache-control", b"no-store")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        if not path.startswith(_API):
            cookies = headers.get("cookie", "")
            held = dict(
                part.strip().split("=", 1) for part in cookies.split(";") if "=" in part
            ).get(LOCAL_COOKIE, "")
            if not hmac.compare_digest(held, self.secret):
                await _answer(send, 403, "open the URL `tether ui` printed (it holds the "
                              "secret this UI wants once)")  # fmt: skip
                return
        await self.app(scope, receive, send)


async def _answer(send: Send, status: int, text: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})  # fmt: skip
    await send({"type": "http.response.body", "body": text.encode()})
