"""Who is asking: a bearer token (``Authorization: Bearer tth_…``), checked against the server's
hashed tokens. A server started on loopback before ``tether server init`` made any account answers
without one (a laptop); once an account exists, every request needs a token.
"""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from tether import api
from tether.errors import AuthenticationError

SESSION_COOKIE = "tether_session"
CSRF_HEADER = "X-CSRF-Token"


def hub_of(request: Request) -> api.Hub:
    hub: api.Hub = request.app.state.hub
    return hub


def _identify(request: Request) -> api.Identity:
    hub = hub_of(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return hub.authenticate(token)
    if scheme.lower() == "basic" and token:  # git's credential helpers: the token as password
        import base64
        import binascii

        try:
            _user, _, password = base64.b64decode(token).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            password = ""
        return hub.authenticate(password)
    if header:
        raise AuthenticationError("send the token as `Authorization: Bearer tth_…`")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        write = request.method not in ("GET", "HEAD", "OPTIONS")
        return hub.accounts.session(cookie, request.headers.get(CSRF_HEADER), write=write)
    if hub.settings.open_without_accounts and not hub.accounts.any_user():
        return api.ANONYMOUS
    raise AuthenticationError(
        "this server needs a token: `tether server login URL` stores one (or set TETHER_TOKEN); "
        "an admin makes one with `tether server token create --user NAME`"
    )


async def identity(request: Request) -> api.Identity:
    """The request's identity (a FastAPI dependency); 401 with the way out otherwise."""
    return await run_in_threadpool(_identify, request)
