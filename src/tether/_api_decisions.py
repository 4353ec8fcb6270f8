"""Registry and label decisions in a project bound to a team server (``[server] url``): they
need the server, as MLflow's registry needs its tracking server, and fail fast when it is down.

Before a decision the server must answer within :data:`PROBE_S` seconds, and its log is taken
(``pull``), so the decision is made on the team's registry, not on a stale copy; this clone's
earlier decisions it lacks go first. Right after, the decision goes to the project's repository
on the server in one atomic push, through the door that checks signatures and roles. A decision
the server does not take (down meanwhile, a teammate's move first, refused at the door) is
undone here, naming why: no clone keeps a decision the team's registry never saw. A project
with no server set decides locally, as before.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from tether.errors import ConfigError, GitError, ServerUnavailableError, TetherError

if TYPE_CHECKING:
    from tether.events import EventLog
    from tether.events.sync import Pulled
    from tether.workspace.repo import Workspace

PROBE_S = 3.0  # how long a decision waits to learn the server is down
STALL_S = 10  # how long a fetch or push to the server may go without a byte moving

Spec = tuple[list[str], dict[str, str | None]]  # refs to push, and leases


@dataclass(frozen=True)
class Log:
    """What deciding on one log needs: the log, its pull through a git remote, and what its
    push sends (:data:`Spec`: its refs and leases)."""

    log: EventLog
    pull: Callable[[str], Pulled]
    spec: Callable[[], Spec]
    error: type[TetherError]
    after_undo: Callable[[], object] = lambda: None
    objects: Callable[[], list[str]] = list  # what its events name that the server should hold


@contextmanager
def on_server(ws: Workspace, logs: Callable[[], list[Log]]) -> Iterator[None]:
    """Run the decision in the ``with`` block against the team server, as the module says.
    Every log it may touch is pulled first and pushed after, together, in one atomic push."""
    if not ws.config.get("server.url"):
        yield
        return
    with _bounded():
        remote = _reachable_remote(ws)
        sides = logs()
        error = sides[0].error
        unpushed = [side for side in sides if side.pull(remote).unpushed]
        if unpushed:
            try:
                _push(ws, remote, unpushed)
            except TetherError as exc:
                raise error(
                    "this clone holds decisions the team server has not taken, and it refused "
                    f"them, so nothing new was decided: {exc}"
                ) from None
        heads, refs, pinned = [side.log.head() for side in sides], _refs(ws.root), _pin(ws)

        def undo() -> None:
            for side, head in zip(sides, heads, strict=True):
                if side.log.head() != head:
                    side.log.undo(head, expected=str(side.log.head()))
            _restore(ws.root, refs)
            _unpin(ws, pinned)  # a root version this clone never kept is not one it has seen
            for side in sides:
                side.after_undo()

        try:
            yield
        except BaseException:
            with _shielded():
                undo()  # a decision cut short (an error, Ctrl-C) leaves nothing half-made here
            raise
        moved = [side for side, head in zip(sides, heads, strict=True) if side.log.head() != head]
        if not moved:
            return  # nothing was decided (an approval waiting on gates, an alias already set)
        try:
            _push(ws, remote, moved)
        except BaseException as exc:
            with _shielded():  # a second Ctrl-C or SIGTERM cannot cut the check or the undo
                landed = _landed(ws, remote, moved)
                if not landed:
                    undo()
            if landed:
                if isinstance(exc, TetherError):
                    _hand_in(ws, moved)
                    return  # its answer was lost on the way back: the server holds it
                raise
            if not isinstance(exc, TetherError):
                raise
            raise error(f"{_why(exc)}: {exc}") from None
        _hand_in(ws, moved)


def _hand_in(ws: Workspace, sides: list[Log]) -> None:
    """Upload the objects the logs' events name (a release's signed statement) that the server
    lacks, so it can check them too. The decision stands without them: a failure is left for
    the next decision, which hands in every statement the server still lacks."""
    from tether.teamclient import sync as team
    from tether.teamclient.client import ServerClient

    ids = sorted({oid for side in sides for oid in side.objects() if ws.store.has(oid)})
    where = team.target(ws, timeout=PROBE_S)
    if not ids or where is None:
        return
    try:
        with ServerClient(where, retries=1) as client:
            for oid in client.missing(ids):
                client.put_object(oid, ws.store.read_bytes(oid))
    except (TetherError, OSError):
        pass


def _push(ws: Workspace, remote: str, sides: list[Log]) -> None:
    """One atomic git push of every log's refs and leases: all of them are taken, or none."""
    from tether.events import gitmirror

    refs: list[str] = []
    leases: dict[str, str | None] = {}
    for side in sides:
        more, held = side.spec()
        refs += [r for r in more if r not in refs]
        leases.update(held)
    try:
        gitmirror.push(ws.root, remote, refs, leases)
    except GitError as exc:
        raise sides[0].error(str(exc)) from None


def _landed(ws: Workspace, remote: str, sides: list[Log]) -> bool:
    """Whether the server holds every log as this clone does now: a push whose answer was
    lost (the connection cut after the server took it) did land."""
    from tether.events import gitmirror
    from tether.gitio.repo import git_maybe

    names = [gitmirror.git_ref(side.log.name) for side in sides]
    try:
        out = git_maybe(ws.root, "ls-remote", remote, *names, timeout=PROBE_S)
    except (TetherError, OSError):
        return False  # no answer: not known to have landed, so undone here
    if out is None:
        return False
    pairs = (line.split("\t", 1) for line in out.decode().splitlines() if "\t" in line)
    there = {name: commit for commit, name in pairs}
    return all(there.get(n) == gitmirror.rev(ws.root, n) for n in names)


def _why(exc: BaseException) -> str:
    text = str(exc)
    if "403" in text or "needs the" in text or "refused:" in text:
        return "the team server refused this decision, so this clone does not keep it either"
    if "non-fast-forward" in text or "fetch first" in text or "stale info" in text:
        return (
            "a teammate's decision reached the team server first, so this clone does not keep "
            "this one: run it again to decide on the team's registry as it is now"
        )
    return (
        "the team server did not take this decision, so this clone does not keep it either; "
        "run it again once the server answers"
    )


@contextmanager
def _shielded() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (the main thread's handlers only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in held.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@contextmanager
def _bounded() -> Iterator[None]:
    """git's fetch and push to the server give up after :data:`STALL_S` seconds in which no
    byte moved (a hung server), and SIGTERM ends the decision as Ctrl-C does: undone."""
    keep = {k: os.environ.get(k) for k in ("GIT_HTTP_LOW_SPEED_LIMIT", "GIT_HTTP_LOW_SPEED_TIME")}
    os.environ["GIT_HTTP_LOW_SPEED_LIMIT"] = "1"
    os.environ["GIT_HTTP_LOW_SPEED_TIME"] = str(STALL_S)
    main = threading.current_thread() is threading.main_thread()
    before = signal.getsignal(signal.SIGTERM) if main else None

    def ended(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    if main:
        signal.signal(signal.SIGTERM, ended)
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
        for key, value in keep.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _reachable_remote(ws: Workspace) -> str:
    """The git remote of the project's repository on the server, once the server answered."""
    from tether.gitio.repo import git_maybe
    from tether.teamclient import sync as team
    from tether.teamclient.client import ServerClient
    from tether.teamclient.login import REMOTE, configure_git_remote

    where = team.target(ws, timeout=PROBE_S)
    if where is None:  # server.url is set, but not chosen here
        raise ConfigError(
            f"registry and label decisions need the team server: {team.no_server(ws)}"
        )
    try:
        with ServerClient(where, retries=0) as client:
            client.whoami()
    except ServerUnavailableError:
        raise ServerUnavailableError(
            f"registry and label decisions need the team server at {where.url}, which did not "
            f"answer within {PROBE_S:g} s: nothing was decided. Run it again once the server "
            "is up"
        ) from None
    wanted = f"{where.url.rstrip('/')}/git/{where.project}.git"
    have = git_maybe(ws.root, "config", "--get", f"remote.{REMOTE}.url")
    if have is None or have.decode().strip() != wanted:
        configure_git_remote(ws.root, where.url, where.project)
    return REMOTE


def _pin(ws: Workspace) -> bytes | None:
    """The root of trust this clone pins (``.tether/trust.json``), as it is before a decision."""
    from tether.trust.pin import PIN_FILE

    try:
        return (ws.dot / PIN_FILE).read_bytes()
    except FileNotFoundError:
        return None


def _unpin(ws: Workspace, before: bytes | None) -> None:
    from tether._fs import atomic_write
    from tether.trust.pin import PIN_FILE

    if before is None:
        (ws.dot / PIN_FILE).unlink(missing_ok=True)
    elif _pin(ws) != before:
        atomic_write(ws.dot / PIN_FILE, before)


def _refs(root: Path) -> dict[str, str]:
    """This clone's tags and Tether's git refs (the log's mirror, the signed head, a
    checkpoint), but not the side refs a fetch keeps of the remote's."""
    from tether.events.gitmirror import INCOMING
    from tether.gitio.repo import git

    out = git(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/tags", "refs/tether")
    pairs = (line.split(" ", 1) for line in out.decode().splitlines() if line)
    return {name: oid for name, oid in pairs if not name.startswith(INCOMING)}


def _restore(root: Path, before: dict[str, str]) -> None:
    from tether.gitio.repo import git

    now = _refs(root)
    lines = [f"delete {name} {oid}" for name, oid in now.items() if name not in before]
    lines += [f"update {name} {oid}" for name, oid in before.items() if now.get(name) != oid]
    if lines:
        git(root, "update-ref", "--stdin", stdin=("\n".join(lines) + "\n").encode())
