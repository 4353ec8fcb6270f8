"""Decisions made in the browser: the team server makes them for the logged-in account, as a
clone would, and hands them to its own repository through the same door.

The server clones the project's mirror into a scratch folder, takes the registry or prompt log
from it, makes the decision there with the very code `tether prompt promote` and `tether model
approve` run, and pushes it back in one atomic push. The door (:mod:`tether.team.door`) checks
it as it checks any clone's push: the account's role, and under a root of trust every signature.
The server holds no key: where the decision signs, the browser signs (its WebCrypto key,
:mod:`tether.trust.browser`), one signature per ask; the decision is made again for each, dated
as the first time, so it signs the same bytes. Without a root of trust a label assignment is the
account's own, unsigned, as it is locally; an approval always needs a key the project trusts.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time as _time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from tether._api_decisions import Spec
from tether.errors import (
    GitError,
    PermissionDeniedError,
    PromptError,
    RegistryError,
    ServerUnavailableError,
    TetherError,
    UsageError,
)

if TYPE_CHECKING:
    from tether._api_prompts import PromptLibrary
    from tether.events import EventLog
    from tether.prompts.templates import Prompt
    from tether.workspace.repo import Workspace

ACTIONS = ("promote", "rollback", "approve", "reject")
FETCHES = 4  # rounds of objects a decision may read from the server (a record, its parts)
NO_KEY = (
    "this decision is signed by the decider's own key, and the browser sent none: make one on "
    "the UI's signing key page and have an admin trust it"
)
SKEW_S = 120.0  # how long a decision may take to sign (its date is when it was first asked)
RACED = (  # what git says when another push moved a ref first
    "non-fast-forward", "fetch first", "stale info", "already exists", "but expected",
    "cannot lock ref",
)  # fmt: skip
AHEAD_S = 2.0  # a date later than the server's clock was never given by it
DECISION_ROLES = {  # the role each needs on the server (the door checks approvals again)
    "promote": "writer",
    "rollback": "writer",
    "approve": "approver",
    "reject": "approver",
}


@dataclass(frozen=True)
class BrowserDecision:
    """What a browser asks: ``action`` on ``name`` (a prompt, or a request's id or
    ``MODEL@vN``), ``label`` and ``version`` for a prompt; ``public_key`` (PEM) and the
    ``signatures`` it gave so far; ``time``: when the decision was first asked (None: now);
    ``seen``: the label's number the page showed, refused when a teammate moved it since."""

    action: str
    name: str
    label: str = ""
    version: str = ""
    comment: str = ""
    public_key: str | None = None
    signatures: list[str] = field(default_factory=list)
    time: float | None = None
    seen: int | None = None  # the label's assignment number the page showed (0: none)


@dataclass(frozen=True)
class BrowserDecided:
    """Either ``done`` (what was decided, in words) or ``sign``: the bytes the browser must
    sign before the decision can be made (ask again with them signed, and with ``time``)."""

    time: float
    done: str = ""
    sign: str = ""  # base64


def decide_for_browser(
    mirror: Path,
    decision: BrowserDecision,
    *,
    user: str,
    role: str,
    read: Callable[[str], bytes] | None = None,
    record_of: Callable[[str], str | None] | None = None,
) -> BrowserDecided:
    """Make ``decision`` for ``user`` (whose ``role`` on the project the door checks again) on
    the project whose bare repository is ``mirror``; see the module. ``read`` gives an object
    the server holds and ``record_of`` a run's record id there (a gate reads the run), as a
    clone's pull would."""
    if decision.action not in ACTIONS:
        raise UsageError(f"{decision.action!r} is not a decision ({', '.join(ACTIONS)})")
    now = _time.time()
    when = now if decision.time is None else decision.time
    if when > now + AHEAD_S:
        raise UsageError("this decision is dated after the server's clock: it was not asked here")
    if when < now - SKEW_S:
        raise UsageError("this decision was asked too long ago: reload the page and decide again")
    return _fetching(
        lambda fetched, runs: _attempt(mirror, decision, user, role, when, fetched, runs),
        read,
        record_of,
    )


def open_gates_for_browser(
    mirror: Path,
    *,
    read: Callable[[str], bytes] | None = None,
    record_of: Callable[[str], str | None] | None = None,
) -> dict[str, list[str]]:
    """Each open registry request's failing gates (empty: they pass), as an approval made now
    would check them, in a scratch clone of the project's repository like a decision."""
    from tether.registry import requests
    from tether.registry import sync as registry_sync

    def check(fetched: dict[str, bytes], runs: dict[str, str]) -> dict[str, list[str]]:
        with tempfile.TemporaryDirectory(prefix="tether-gates-") as tmp:
            ws, _configured = _scratch(mirror, Path(tmp) / "work", "gates@tether")
            _seed(ws, fetched, runs)
            registry_sync.pull(ws, "origin")
            return requests.open_gates(ws)

    return _fetching(check, read, record_of)


T = TypeVar("T")


def _fetching(
    attempt: Callable[[dict[str, bytes], dict[str, str]], T],
    read: Callable[[str], bytes] | None,
    record_of: Callable[[str], str | None] | None,
) -> T:
    """``attempt`` again with the objects and runs it lacked, fetched from the server, until
    it needs none (:data:`FETCHES` rounds at most)."""
    from tether.errors import MissingObjectError, UnknownRunError

    fetched: dict[str, bytes] = {}
    runs: dict[str, str] = {}  # run id -> its record id on the server
    for _ in range(FETCHES):
        try:
            return attempt(fetched, runs)
        except MissingObjectError as exc:
            new = [oid for oid in exc.ids if oid not in fetched]
            if read is None or not new:
                raise
            fetched |= {oid: read(oid) for oid in new}  # then the decision is made again
        except UnknownRunError as exc:
            record = record_of(exc.run_id) if record_of and exc.run_id not in runs else None
            if record is None or read is None:
                raise
            runs[exc.run_id] = record
            fetched[record] = read(record)
    raise UsageError(
        f"this decision reads more than {FETCHES} rounds of objects: decide it in a clone"
    )


def _seed(ws: Workspace, fetched: dict[str, bytes], runs: dict[str, str]) -> None:
    for oid, data in fetched.items():
        if ws.store.put_bytes(data) != oid:
            raise UsageError(f"the server's object {oid[:19]}… does not hash to its id")
    for run_id, record in runs.items():
        ws.refs.set(f"runs/{run_id}", [record])


def _attempt(
    mirror: Path,
    decision: BrowserDecision,
    user: str,
    role: str,
    when: float,
    fetched: dict[str, bytes],
    runs: dict[str, str],
) -> BrowserDecided:
    from tether.events.chain import at_time
    from tether.signing import signing_as
    from tether.trust.browser import BrowserSigner, SignatureNeeded

    signer = None
    if decision.public_key:
        signer = BrowserSigner(decision.public_key, list(decision.signatures))
    with tempfile.TemporaryDirectory(prefix="tether-decide-") as tmp:
        ws, configured = _scratch(mirror, Path(tmp) / "work", user)
        if decision.action in ("approve", "reject") and not configured and not _rooted(mirror):
            raise RegistryError(
                "this project has no root of trust, so its keys and policies are in its "
                "tether.toml, and the server's copy of its repository holds none: push the "
                "branch that has it (`git push tether main`), or decide in a clone"
            )
        _seed(ws, fetched, runs)
        try:
            with signing_as(signer, NO_KEY), at_time(when):
                done, push = _ACT[decision.action](ws, decision, user)
        except SignatureNeeded as need:
            return BrowserDecided(when, sign=base64.b64encode(need.message).decode())
        _push(ws, push, user, role, decision)
    return BrowserDecided(when, done=done)


Act = Callable[["Workspace", BrowserDecision, str], tuple[str, Spec]]


def _label_log(ws: Workspace, d: BrowserDecision) -> PromptLibrary:
    """The prompt log as the server holds it, the label as the page showed it, the decision
    dated after its newest event: what a label decision starts from (and its prompts)."""
    from tether._api_prompts import PromptLibrary
    from tether.prompts import labels
    from tether.prompts import sync as prompt_sync

    _checked(d)
    prompt_sync.pull(ws, "origin")
    _as_seen(ws, d)
    _not_before(labels.event_log(ws))
    return PromptLibrary(ws.root, ws)


def _promote(ws: Workspace, d: BrowserDecision, user: str) -> tuple[str, Spec]:
    from tether.prompts import labels, registry
    from tether.prompts import sync as prompt_sync

    library = _label_log(ws, d)
    known = registry.registered(ws.root, d.name)
    if d.version not in known:
        have = ", ".join(sorted(known)) or "none"
        raise PromptError(
            f"{d.name} has no registered version {d.version!r} on the server (registered: "
            f"{have}): register and push it from a clone first"
        )
    prompt = library.resolve(f"{d.name}@{d.version}")
    done = labels.promote(ws, prompt, d.label, actor=user)
    return f"{d.name}#{d.label} -> {done.version}", prompt_sync.push_spec(ws, d.name)


def _rollback(ws: Workspace, d: BrowserDecision, user: str) -> tuple[str, Spec]:
    from tether.prompts import labels
    from tether.prompts import sync as prompt_sync

    library = _label_log(ws, d)

    def load(version: str) -> Prompt:
        if d.version and version != d.version:  # the page said which version comes back
            raise PromptError(
                f"a rollback of {d.name}#{d.label} gives back {version} now, not {d.version} "
                "as the page showed: reload it and decide again"
            )
        return library.resolve(f"{d.name}@{version}")

    done = labels.rollback(ws, d.name, d.label, load, actor=user)
    return f"{d.name}#{d.label} rolled back to {done.version}", prompt_sync.push_spec(ws, d.name)


def _checked(d: BrowserDecision) -> None:
    """A prompt's name, label and version as the CLI takes them, before any reaches git."""
    from tether.prompts.labels import LABEL
    from tether.prompts.templates import NAME, VERSION

    if not NAME.fullmatch(d.name):
        raise UsageError(f"{d.name[:80]!r} is not a prompt name")
    if not LABEL.fullmatch(d.label):
        raise UsageError(f"{d.label[:80]!r} is not a label (a lower-case name, like production)")
    if d.action == "promote" and not VERSION.fullmatch(d.version):
        raise UsageError(f"{d.version[:80]!r} is not a version (semver with a v, like v1.2.0)")


def _as_seen(ws: Workspace, d: BrowserDecision) -> None:
    """A label decided on the page as it was: refused when a teammate moved the label since."""
    from tether.prompts import labels

    if d.seen is None:
        return
    now = labels.read(ws).current(d.name, d.label)
    if (now.n if now else 0) != d.seen:
        where = f"#{now.n} ({now.version}, by {now.actor})" if now else "nowhere"
        raise PromptError(
            f"{d.name}#{d.label} is at {where} now, not as this page showed it: a teammate's "
            "decision reached the server first; reload the page and decide again"
        )


def _not_before(log: EventLog) -> None:
    """A decision is never dated before the newest event of its log (a page's script cannot
    slip one in behind a teammate's)."""
    from tether.events.chain import AT

    head, when = log.head(), AT.get()
    if head is not None and when is not None and when < log.event(head).time:
        raise UsageError(
            "this decision was asked before the newest decision in the log: reload the page "
            "and decide again"
        )


def _rooted(mirror: Path) -> bool:
    """Whether the project's registry log on the server has a root of trust."""
    from tether.events.gitmirror import read_from_git, rev
    from tether.events.trusted import ROOT_EVENT

    tip = rev(mirror, "refs/tether/events/registry")
    return tip is not None and any(
        e.kind == ROOT_EVENT for e in read_from_git(mirror, "registry", tip=tip)
    )


def _decide(approve: bool) -> Act:
    def act(ws: Workspace, d: BrowserDecision, _user: str) -> tuple[str, Spec]:
        from tether.registry import requests, store
        from tether.registry import sync as registry_sync

        registry_sync.pull(ws, "origin")
        _not_before(store.event_log(ws))
        req = requests.decide(ws, d.name, approve, d.comment)
        word = "approved" if approve else "rejected"
        done = f"{req.name}@v{req.version} -> {req.to} {word} ({req.status})"
        return done, registry_sync.push_spec(ws)

    return act


_ACT: dict[str, Act] = {
    "promote": _promote,
    "rollback": _rollback,
    "approve": _decide(True),
    "reject": _decide(False),
}


def _scratch(mirror: Path, work: Path, user: str) -> tuple[Workspace, bool]:
    """A clone of the project's repository to decide in, its committer the account; and
    whether the project's tether.toml was found in it."""
    from tether.config import PROJECT_FILE
    from tether.gitio.repo import git
    from tether.workspace.repo import Workspace

    if not (mirror / "HEAD").is_file():
        raise UsageError("this project has no repository on the server yet")
    # --shared: the scratch borrows the mirror's objects instead of copying them
    git(work.parent, "clone", "--quiet", "--shared", "--no-checkout", "--", str(mirror), str(work))
    git(work, "config", "user.email", user)
    git(work, "config", "user.name", user)
    config = _project_file(work)
    if config is not None:  # the project's settings (trusted keys, policies), never a checkout
        (work / PROJECT_FILE).write_bytes(_without_server(config))
    return Workspace.init(work), config is not None


def _project_file(work: Path) -> bytes | None:
    """The project's tether.toml as the server's copy of its repository holds it: on the
    branch HEAD names, else on ``main`` or ``master``, else on its only branch."""
    from tether.config import PROJECT_FILE
    from tether.gitio.repo import git_maybe

    out = git_maybe(work, "for-each-ref", "--format=%(refname:short)", "refs/remotes/origin/")
    branches = [b for b in (out or b"").decode().split() if b != "origin/HEAD"]
    tries = ["HEAD", "origin/main", "origin/master"] + (branches if len(branches) == 1 else [])
    for rev in tries:
        found = _show(work, f"{rev}:{PROJECT_FILE}")
        if found is not None:
            return found
    return None


def _without_server(config: bytes) -> bytes:
    """tether.toml without its ``[server]`` table: any writer may push the branch it comes
    from, and the scratch clone must never be pointed at a server (itself or another)."""
    import tomllib

    import tomli_w

    try:
        tree = tomllib.loads(config.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"the project's tether.toml on the server does not parse: {exc}") from None
    tree.pop("server", None)
    return tomli_w.dumps(tree).encode()


def _show(work: Path, what: str) -> bytes | None:
    from tether.gitio.repo import git_maybe

    try:
        return git_maybe(work, "show", what)
    except TetherError:
        return None


def _push(ws: Workspace, spec: Spec, user: str, role: str, d: BrowserDecision) -> None:
    """The decision to the project's repository, in one atomic push through its door, as
    ``user`` with ``role``: refused whole when a teammate's decision landed first."""
    import logging

    from tether.events import gitmirror

    env = {**os.environ, "TETHER_PUSHER": user, "TETHER_PUSHER_ROLE": role, "LC_ALL": "C"}
    env.pop("GIT_DIR", None)
    error = PromptError if d.action in ("promote", "rollback") else RegistryError
    try:
        gitmirror.push(ws.root, "origin", *spec, env=env)
    except GitError as exc:
        text = str(exc)
        if "tether: refused:" in text:
            reasons = [line.split("tether: refused:", 1)[1].strip()
                       for line in text.splitlines() if "tether: refused:" in line]  # fmt: skip
            raise PermissionDeniedError(
                "the server's door refused this decision: " + "; ".join(reasons)
            ) from None
        if any(said in text for said in RACED):
            raise error(
                "a teammate's decision reached the server first: reload the page and decide again"
            ) from None
        logging.getLogger(__name__).error("a decision's push failed: %s", text)
        raise ServerUnavailableError(
            "the server could not store this decision (its log says why), so nothing was "
            "decided: try again"
        ) from None
