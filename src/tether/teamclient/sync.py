"""``tether sync``: upload to the team server what it has not acknowledged, derived the way git
derives what to push from remote-tracking refs: no second queue to keep consistent.

A run's state here is its sealed record, its amendments and its tombstone (all refs). When the
server accepts a state it is written to ``.tether/servers/<key>/runs/<run-id>``; a run is pending
while that file is missing or says another state. Objects need no acknowledgement: the server is
asked which of them it lacks, in one call. Order: every object a run links, then the run, then
its acknowledgement, so a crash anywhere leaves at worst a run uploaded twice (idempotent).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tether._fs import atomic_write
from tether._types import NO_PROGRESS, Callback
from tether.errors import ConfigError, PayloadTooLargeError, ServerError
from tether.objects.graph import reachable
from tether.teamclient.client import TIMEOUT_S, ServerClient, Target
from tether.teamclient.packs import DIRECT, PACK_MAX, SMALL
from tether.workspace.repo import Workspace
from tether.workspace.roots import Root, pairs

TOKEN_ENV = "TETHER_TOKEN"


@dataclass(frozen=True)
class RunState:
    record: str
    amendments: tuple[str, ...] = ()
    tombstone: str | None = None
    purged: bool = field(default=False, compare=False)  # only the tombstone is still here

    def as_list(self) -> list[str | None]:
        return [self.record, *self.amendments, self.tombstone]

    def roots(self) -> list[str]:
        """What this clone uploads for the state: the record and all, or the tombstone of a
        run purged here after the server had it (the rest is the server's already)."""
        if self.purged:
            return [self.tombstone] if self.tombstone else []
        return [oid for oid in self.as_list() if oid]


@dataclass
class SyncResult:
    server: str
    runs: list[str] = field(default_factory=list)  # runs the server accepted now
    objects: int = 0  # objects uploaded now
    bytes: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # run -> why the server refused it
    pending: int = 0  # runs still not acknowledged after this sync
    refreshed: list[str] = field(default_factory=list)  # runs teammates noted, tagged or deleted


def target(ws: Workspace, *, timeout: float | None = None) -> Target | None:
    """The server this project points at (``[server] url`` and ``project``), with the token
    from ``TETHER_TOKEN`` or ``.tether/config.toml``; None when no server is set, or when the
    one set was not chosen here (:func:`no_server` says which)."""
    url = str(ws.config.get("server.url") or "")
    if not url:
        return None
    project = str(ws.config.get("server.project") or "")
    if not project:
        raise ConfigError(
            f"server.url is {url} but server.project is not set: `tether server login {url} "
            "--project NAME` sets both"
        )
    stored_for = ws.config.get("server.token_url")
    if not _may_contact(url, stored_for):
        return None  # see :func:`no_server`
    token = token_for(url, ws.config.get("server.token"), stored_for)
    wait = timeout if timeout is not None else float(ws.config.get("server.timeout") or TIMEOUT_S)
    return Target(url, project, str(token) if token else None, wait)


def no_server(ws: Workspace) -> str:
    """Why :func:`target` gave no server: none is set, or the one set is not chosen here."""
    url = str(ws.config.get("server.url") or "")
    if url and not _may_contact(url, ws.config.get("server.token_url")):
        return (
            f"server.url is {url}, which this clone never logged in to: runs, objects and "
            f"decisions go only to a server you chose. `tether server login {url}` chooses it"
        )
    return "no team server is set: `tether server login URL` sets one"


def _may_contact(url: str, stored_for: object) -> bool:
    """A server on this machine, the one `tether server login` chose, or the one
    ``TETHER_SERVER_URL`` names: never one that only a committed tether.toml names (someone
    else's content), which would receive this clone's runs, diffs and data."""
    from urllib.parse import urlsplit

    from tether.teamclient.login import is_loopback_host

    return (
        is_loopback_host(urlsplit(url).hostname or "")
        or same_server(stored_for, url)
        or same_server(os.environ.get("TETHER_SERVER_URL"), url)
    )


def env_token() -> str | None:
    return os.environ.get(TOKEN_ENV) or None


def same_server(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and a.rstrip("/") == b.rstrip("/")


def token_for(url: str, stored: object, stored_for: object) -> str | None:
    """The token to send to ``url``, and only there: ``TETHER_TOKEN`` when
    ``TETHER_SERVER_URL`` names this server, else the one `tether server login` stored for
    this very URL. A URL changed in tether.toml (a teammate's commit) gets no token at all,
    and neither does plain http:// to another machine."""
    from urllib.parse import urlsplit

    from tether.teamclient.login import is_loopback_host

    parts = urlsplit(url)
    if parts.scheme != "https" and not is_loopback_host(parts.hostname or ""):
        return None
    if env_token() and same_server(os.environ.get("TETHER_SERVER_URL"), url):
        return env_token()
    if stored and same_server(stored_for, url):
        return str(stored)
    return None


def local_states(ws: Workspace, key: str | None = None) -> dict[str, RunState]:
    """Each sealed run's state here; with a server's ``key``, also the runs deleted and
    purged here after that server acknowledged them (their deletion is still to tell it)."""
    amendments: dict[str, list[str]] = {}
    for name, ids in ws.refs.items("amendments"):
        amendments.setdefault(name.split("/")[1], []).append(ids[0])
    tombstones = {name.split("/")[1]: ids[0] for name, ids in ws.refs.items("tombstones")}
    states = {
        name[len("runs/") :]: RunState(
            ids[0],
            tuple(sorted(amendments.get(name[len("runs/") :], []))),
            tombstones.get(name[len("runs/") :]),
        )
        for name, ids in ws.refs.items("runs")
    }
    if key is not None:
        for run_id, tombstone in tombstones.items():
            if run_id not in states and (held := acknowledged(ws, key, run_id)) is not None:
                states[run_id] = RunState(held.record, held.amendments, tombstone, purged=True)
    return states


def _acks(ws: Workspace, key: str) -> Path:
    return ws.dot / "servers" / key / "runs"


def acknowledged(ws: Workspace, key: str, run_id: str) -> RunState | None:
    try:
        ids = json.loads((_acks(ws, key) / run_id).read_bytes())
        return RunState(ids[0], tuple(ids[1:-1]), ids[-1])
    except (OSError, ValueError, IndexError, TypeError):
        return None  # never acknowledged, or a torn file: upload again (idempotent)


def acknowledge(ws: Workspace, key: str, run_id: str, state: RunState) -> None:
    """Note that the server holds this state of the run (written once it said so)."""
    folder = _acks(ws, key)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / run_id, json.dumps(state.as_list()).encode(), durable=False)


BREAK_S = 60.0  # after a server did not answer, run ends skip it this long


def _down_file(ws: Workspace, key: str) -> Path:
    return ws.dot / "servers" / key / "down-until"


def server_down(ws: Workspace, key: str) -> bool:
    """Did this server fail to answer a run's upload within the last ``BREAK_S`` seconds?
    Then a sweep of runs ends at local speed instead of waiting on it at each run's end (a
    file, so every process of the sweep knows); `tether sync` always tries."""
    import time

    try:
        return float(_down_file(ws, key).read_text()) > time.time()
    except (OSError, ValueError):
        return False


def note_down(ws: Workspace, key: str, down: bool) -> None:
    import time

    path = _down_file(ws, key)
    if down:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, str(time.time() + BREAK_S).encode(), durable=False)
    else:
        path.unlink(missing_ok=True)


def pending(ws: Workspace, key: str, only: Iterable[str] | None = None) -> dict[str, RunState]:
    states = local_states(ws, key)
    if only is not None:
        wanted = set(only)
        states = {r: s for r, s in states.items() if r in wanted}
    return {r: s for r, s in states.items() if acknowledged(ws, key, r) != s}


def sync(
    ws: Workspace,
    where: Target,
    *,
    only: Iterable[str] | None = None,
    data: bool = True,
    retries: int = 2,
    callback: Callback = NO_PROGRESS,
) -> SyncResult:
    """Upload pending runs (all of them the first time: a project's whole history) and, with
    ``data``, the objects of the tracked data in the work tree."""
    result = SyncResult(where.url)
    todo = pending(ws, where.key, only)
    roots = [(f"run {r}", oid) for r, st in todo.items() for oid in st.roots()]
    if data and only is None:
        roots += pairs([Root(t.pointer, t.ptr.id, t.ptr.kind) for t in ws.pointers()])
    live = reachable(ws.store, roots)
    with ServerClient(where, retries=retries) as client:
        lacking = client.missing(sorted(live.ids))
        callback.set_size(len(lacking))
        containers = [o for o in lacking if o in live.containers]
        leaves = [o for o in lacking if o not in live.containers]
        for batch in (leaves, containers):  # files before the manifests and records naming them
            _upload(ws, client, batch, result, callback)
        for run_id, state in sorted(todo.items()):
            try:
                client.put_run(run_id, state.record, state.amendments, state.tombstone)
            except ServerError as exc:
                if exc.status in (401, 403, 503):
                    raise
                result.refused[run_id] = str(exc)
                continue
            acknowledge(ws, where.key, run_id, state)
            result.runs.append(run_id)
    result.pending = len(pending(ws, where.key))
    return result


def _upload(
    ws: Workspace, client: ServerClient, ids: list[str], result: SyncResult, callback: Callback
) -> None:
    store = ws.store
    pack: list[tuple[str, bytes]] = []
    size = 0

    def flush() -> None:
        nonlocal pack, size
        if pack:
            _send_pack(client, pack)
            result.objects += len(pack)
            result.bytes += size
            callback.relative_update(len(pack))
        pack, size = [], 0

    for oid in ids:
        n = store.size(oid)
        if n < SMALL:
            pack.append((oid, store.read_bytes(oid)))
            size += n
            if size >= PACK_MAX:
                flush()
            continue
        loose = store.loose_path(oid)
        if loose is None or n < DIRECT or not client.put_direct(oid, loose):
            client.put_object(oid, loose or store.read_bytes(oid))
        result.objects += 1
        result.bytes += n
        callback.relative_update(1)
    flush()


def _send_pack(client: ServerClient, pack: list[tuple[str, bytes]]) -> None:
    """One pack, or halves of it when the server (or a proxy before it) takes smaller
    bodies: a sync fits whatever limit it meets, down to one object per request."""
    try:
        client.put_pack(pack)
    except PayloadTooLargeError:
        if len(pack) == 1:
            raise
        half = len(pack) // 2
        _send_pack(client, pack[:half])
        _send_pack(client, pack[half:])
