"""The application factory: the one module that may import both the server and the UI.
``tether server`` calls :func:`serve`; ``uvicorn tether.asgi:from_environment --factory`` runs
the same application from ``TETHER_SERVER_*`` variables (what ``serve`` sets for its workers).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tether import api
from tether.errors import UsageError
from tether.teamclient.login import is_loopback_host

if TYPE_CHECKING:
    from fastapi import FastAPI

ENV_INDEX = "TETHER_SERVER_INDEX"
ENV_STORE = "TETHER_SERVER_STORE"
ENV_MAX_BODY = "TETHER_SERVER_MAX_BODY"
ENV_OPEN = "TETHER_SERVER_OPEN"
ENV_FOLLOW = "TETHER_SERVER_FOLLOW_LOGS"
ENV_WORK_TREE = "TETHER_SERVER_WORK_TREE"
ENV_OIDC = "TETHER_SERVER_OIDC"  # JSON of api.OidcSettings' fields
ENV_MIRRORS = "TETHER_SERVER_MIRRORS"
ENV_UI_SECRET = "TETHER_UI_SECRET"  # `tether ui`: the secret its printed URL holds


def create_app(
    settings: api.ServerSettings, *, upgrade: bool = False, ui_secret: str | None = None
) -> FastAPI:
    """The server's API with the web UI at ``/`` (``ui_secret``: as ``tether ui`` serves it)."""
    from tether.server.app import create_app as server_app
    from tether.ui.app import mount

    app = server_app(api.Hub(settings, upgrade=upgrade))
    mount(app, local_secret=ui_secret)
    return app


def _no_author() -> None:
    """A decision the server makes is the account's, tag and all: not whoever the server's
    environment names as git's author or committer."""
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        os.environ.pop(name, None)


def from_environment() -> FastAPI:
    """The app of ``TETHER_SERVER_INDEX`` and ``TETHER_SERVER_STORE`` (a uvicorn factory)."""
    _no_author()
    try:
        settings = api.ServerSettings(
            index=os.environ[ENV_INDEX],
            store=os.environ[ENV_STORE],
            max_body=int(os.environ.get(ENV_MAX_BODY, 1 << 30)),
            open_without_accounts=os.environ.get(ENV_OPEN) == "1",
            oidc=api.OidcSettings(**json.loads(os.environ[ENV_OIDC]))
            if os.environ.get(ENV_OIDC)
            else None,
            mirrors=os.environ.get(ENV_MIRRORS, ""),
            follow_logs=os.environ.get(ENV_FOLLOW) == "1",
            work_tree=os.environ.get(ENV_WORK_TREE, ""),
        )
    except KeyError as exc:
        raise UsageError(
            f"{exc.args[0]} is not set: it names the server's database or store"
        ) from None
    return create_app(settings, ui_secret=os.environ.get(ENV_UI_SECRET) or None)


def serve(
    settings: api.ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "warning",
    on_ready: Callable[[str], None] | None = None,
    ui_secret: str | None = None,
) -> None:
    """Run the server under uvicorn until stopped. A non-loopback bind needs accounts: a server
    that answers without a token listens on loopback only. ``ui_secret``: ``tether ui``'s."""
    import uvicorn

    loopback = is_loopback_host(host)
    hub = api.Hub(settings)  # migrates a fresh database once, before any worker starts
    try:
        has_accounts = hub.accounts.any_user()
    finally:
        hub.close()
    if not loopback and not has_accounts:
        raise UsageError(
            f"refusing to listen on {host} without accounts: anyone who can reach it could "
            "write. Run `tether server init` first (it makes the admin and their token), or "
            "bind to 127.0.0.1"
        )
    _no_author()
    os.environ[ENV_INDEX] = settings.index
    os.environ[ENV_STORE] = settings.store
    os.environ[ENV_MAX_BODY] = str(settings.max_body)
    os.environ[ENV_MIRRORS] = settings.mirrors
    if ui_secret:
        if not loopback:
            raise UsageError("`tether ui` listens on 127.0.0.1 or localhost only")
        os.environ[ENV_UI_SECRET] = ui_secret
    else:
        os.environ.pop(ENV_UI_SECRET, None)
    os.environ[ENV_OPEN] = "1" if loopback and settings.open_without_accounts else "0"
    os.environ[ENV_FOLLOW] = "1" if settings.follow_logs else "0"
    os.environ[ENV_WORK_TREE] = settings.work_tree
    if settings.oidc is not None:
        os.environ[ENV_OIDC] = json.dumps(dataclasses.asdict(settings.oidc))
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tether-metrics-")
    if on_ready is not None:
        threading.Thread(target=_when_up, args=(host, port, on_ready), daemon=True).start()
    uvicorn.run(
        "tether.asgi:from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        proxy_headers=False,
    )


def _when_up(host: str, port: int, then: Callable[[str], None]) -> None:
    """Call ``then(url)`` once the server answers /health (within a minute)."""
    import httpx

    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                then(url)
                return
        except httpx.HTTPError:
            time.sleep(0.1)
