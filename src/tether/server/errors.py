"""Errors to HTTP statuses, in one place (the CLI's twin is ``tether.cli.exitcodes``).

Every error body is ``{"error": KIND, "message": TEXT}``: the message says what to do next, as
the CLI's do. A bug is a 500 with no detail on the wire (the traceback goes to the server's log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

from tether import errors

log = logging.getLogger("tether.server")

STATUS: tuple[tuple[type[errors.TetherError], int], ...] = (
    (errors.ServerError, 0),  # its own .status
    (errors.MissingObjectError, 404),
    (errors.CorruptObjectError, 400),
    (errors.IndexStoreError, 503),
    (errors.RemoteError, 503),
    (errors.LockError, 409),
    (errors.UsageError, 400),
    (errors.FormatError, 400),
    (errors.RunError, 404),
    (errors.TrustError, 403),
    (errors.SignatureError, 403),
    (errors.SigningKeyError, 403),
    (errors.RegistryError, 409),
    (errors.PromptError, 409),
)


def status_of(exc: errors.TetherError) -> int:
    for kind, status in STATUS:
        if isinstance(exc, kind):
            return status or int(getattr(exc, "status", 400))
    return 400


def body(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": kind, "message": message, **extra}


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.TetherError)
    async def tether_error(request: Request, exc: errors.TetherError) -> JSONResponse:
        status = status_of(exc)
        headers = {"Retry-After": "1"} if status == 503 else None
        if status == 401:  # git asks its credential helper only after a Basic challenge
            git = request.url.path.startswith("/git/")
            headers = {"WWW-Authenticate": 'Basic realm="tether"' if git else "Bearer"}
        return JSONResponse(body(type(exc).__name__, str(exc)), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body",
                "problem": e.get("msg", ""),
            }
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        message = f"{first['field']}: {first['problem']}"
        return JSONResponse(body("BadRequest", message, problems=problems), status_code=400)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_gone(_request: Request, exc: Exception) -> JSONResponse:
        # a connection cut mid-request (a restart, a failover): the pool reconnects next time
        log.warning("database error: %s", exc)
        return JSONResponse(
            body("ServerUnavailableError", "the server's database did not answer: try again"),
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("an unexpected error (a bug in Tether)", exc_info=exc)
        return JSONResponse(
            body("InternalError", "an unexpected error on the server: see its log"),
            status_code=500,
        )
