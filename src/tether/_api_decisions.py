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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tether.errors import ServerUnavailableError, TetherError

if TYPE_CHECKING:
    from tether.events import EventLog
    from tether.events.sync import Pulled
    from tether.workspace.repo import Workspace

PROBE_S = 3.0  # how long a decision waits to learn the server is down


@dataclass(frozen=True)
class Log:
    """What deciding on one log needs: the log, and its pull and push through a git remote."""

    log: EventLog
    pull: Callable[[str], Pulled]
    push: Callable[[str], None]
    error: type[TetherError]
    after_undo: Callable[[], object] = lambda: None


@contextmanager
def on_server(ws: Workspace, log: Callable[[], Log]) -> Iterator[None]:
    """Run the decision in the ``with`` block against the team server, as the module says."""
    if not ws.config.get("server.url"):
        yield
        return
    remote = _reachable_remote(ws)
    side = log()
    pulled = side.pull(remote)
    if pulled.unpushed:
        try:
            side.push(remote)
        except TetherError as exc:
            raise side.error(
                f"this clone holds {pulled.unpushed} decision(s) the team server has not taken, "
                f"and it refused them, so nothing new was decided: {exc}"
            ) from None
    head, refs = side.log.head(), _refs(ws.root)
    yield
    if side.log.head() == head:
        return  # nothing was decided (an approval waiting on gates, an alias already set)
    try:
        side.push(remote)
    except TetherError as exc:
        side.log.undo(head, expected=str(side.log.head()))
        _restore(ws.root, refs)
        side.after_undo()
        raise side.error(
            f"the team server did not take this decision, so this clone does not keep it "
            f"either; run it again (a teammate's decision may have come first): {exc}"
        ) from None


def _reachable_remote(ws: Workspace) -> str:
    """The git remote of the project's repository on the server, once the server answered."""
    from tether.gitio.repo import git_maybe
    from tether.teamclient import sync as team
    from tether.teamclient.client import ServerClient
    from tether.teamclient.login import REMOTE, configure_git_remote

    where = team.target(ws, timeout=PROBE_S)
    assert where is not None  # server.url is set
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
