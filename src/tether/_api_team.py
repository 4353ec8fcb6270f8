"""The facade's team-server verbs: :class:`TeamVerbs`, which :class:`tether.api.Project`
inherits (login, sync, what is not uploaded, the embedded server), and two small helpers the
CLI's `tether server` commands use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether._types import NO_PROGRESS, Callback
from tether.errors import UsageError

if TYPE_CHECKING:
    from tether.meta.store import IndexedRun
    from tether.team.hub import Settings
    from tether.teamclient import sync as _team_sync
    from tether.workspace.repo import Workspace


class TeamVerbs:
    if TYPE_CHECKING:  # Project's
        ws: Workspace

        @property
        def root(self) -> Path: ...

        def config_set(self, key: str, value: str, *, local: bool = False) -> Path: ...
        def remotes(self) -> dict[str, str]: ...

    # -- the team server -------------------------------------------------------------------
    def server_login(
        self, url: str, project: str, token: str | None, *, shared: bool = False
    ) -> dict[str, Any]:
        """Point this project at a team server: check the token there, then keep the token in
        ``.tether/config.toml`` (0600) and the URL and project in it too, or in tether.toml
        with ``shared``. Who the server says we are."""
        from tether.teamclient import login as _login

        who = _login.check(url, project, token)
        for key, value in (("server.url", url.rstrip("/")), ("server.project", project)):
            self.config_set(key, value, local=not shared)
        if token:
            self.config_set("server.token", token, local=True)
            self.config_set("server.token_url", url.rstrip("/"), local=True)  # its only server
        from tether.teamclient import login as _login

        _login.configure_git_remote(self.root, url, project)
        return who

    def server_logout(self) -> list[str]:
        """Forget this clone's token and server (in ``.tether/config.toml``): what was there.
        A server set in tether.toml stays set; runs then wait for ``tether sync``."""
        from tether import config as _config

        keys = ["server.token", "server.token_url", "server.url", "server.project"]
        removed = _config.unset_local(self.root, keys)
        self.ws.__dict__.pop("config", None)
        return removed

    def sync(
        self,
        *,
        to: tuple[str, str] | None = None,
        callback: Callback = NO_PROGRESS,
    ) -> _team_sync.SyncResult:
        """Upload to the team server every run (and the tracked data's objects) it has not
        acknowledged: the first time, the project's whole history. Then bring back the notes,
        tags and deletions teammates added to the runs this clone holds. ``to``: another
        server's (url, project) than the one configured, with the token of ``TETHER_TOKEN``."""
        from tether.runs.from_server import refresh
        from tether.teamclient import sync as _team
        from tether.teamclient.client import Target

        if to is None:
            where = _team.target(self.ws)
        else:  # TETHER_TOKEN only where TETHER_SERVER_URL names this server
            where = Target(to[0], to[1], _team.token_for(to[0], None, None))
        if where is None:
            raise UsageError(_team.no_server(self.ws))
        result = _team.sync(self.ws, where, callback=callback)
        _team.note_down(self.ws, where.key, False)  # it answered: run ends try it again
        result.refreshed = refresh(self.ws, where)
        return result

    def show_in_ui(self, url: str, project: str, secret: str | None) -> list[str]:
        """What `tether ui` does every few seconds against the embedded server it started
        (``secret``: `tether ui`'s, which its server wants; None for `tether server`'s):
        upload this clone's new runs and amendments, show its running runs live, bring the
        server's copy of the repository up to date (its branches, tags and Tether's event logs,
        which the embedded server follows as they are, a rewrite included), so every page shows
        what this clone holds. The runs uploaded now."""
        from tether.meta.store import MetaStore
        from tether.runs.index import open_index
        from tether.teamclient import sync as _team
        from tether.teamclient.client import ServerClient, Target

        where = Target(url, project, secret, 10.0)
        result = _team.sync(self.ws, where)
        index: MetaStore = open_index(self.ws)
        with ServerClient(where, retries=0) as client:
            for row in index.search("status = 'running'", limit=200):
                client.put_live(_with_live_metrics(self.ws, row))
            client.call("POST", f"{client.project_path}/git/fetch")  # its logs too
        return result.runs

    def embedded_server(self) -> Settings:
        """The server ``tether server`` runs inside this repository with no flags: SQLite and
        a folder under ``.tether/server``."""
        from tether.team.hub import Settings

        folder = self.ws.dot / "server"
        folder.mkdir(parents=True, exist_ok=True)
        return Settings(
            f"sqlite:///{folder / 'server.db'}",
            str(folder / "store"),
            open_without_accounts=True,
            follow_logs=True,  # its repository is the truth: its mirror follows even a rewrite
            work_tree=str(self.ws.root),  # and its pipeline is the work tree's, as repro sees it
        )

    def server_token(self) -> str | None:
        """The token this project uses with its team server (TETHER_TOKEN first)."""
        from tether.teamclient import sync as _team

        where = _team.target(self.ws)
        return None if where is None else where.token

    def runs_not_uploaded(self) -> int | None:
        """How many runs the team server has not acknowledged (None: no server is set).
        Derived from local files only: it never contacts the server."""
        if not self.ws.config.get("server.url"):
            return None  # `tether status` loads nothing of the team client
        from tether.teamclient import sync as _team

        where = _team.target(self.ws)
        return None if where is None else len(_team.pending(self.ws, where.key))

    def _server_for_data(self, remote: str | None) -> Any:
        """The team server, when data comes from it: no remote named, none configured."""
        if remote is not None or not self.ws.config.get("server.url") or self.remotes():
            return None
        from tether.teamclient import sync as _team

        return _team.target(self.ws)


def duration_seconds(text: str) -> float:
    """Seconds in a duration such as ``90d``, ``12h`` or ``30m``."""
    from tether import config as _config

    return _config.duration_seconds(text)


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner can read (0600), whole or not at all."""
    from tether._fs import atomic_write

    atomic_write(path, data, mode=0o600)


def _with_live_metrics(ws: Workspace, row: IndexedRun) -> IndexedRun:
    """A running run's row with the metrics its journal holds so far (the index has them only
    once it ends): what a run streams to a team server, read from its folder instead."""
    from tether.errors import TetherError
    from tether.runs.catalog import load
    from tether.teamclient.client import indexed_run, run_document

    try:
        view = load(ws, row.id)
    except TetherError:
        return row  # it ended meanwhile: the next sync uploads it
    return indexed_run({**run_document(row), "metrics": view.get("metrics", {})})
