"""The door of a project's repository on the server: git runs this as its ``pre-receive`` hook
for every push (``python -m tether.team.door``), before any ref moves.

A push is refused, whole, when it deletes a ref or rewrites one (events are append-only: a new
log must extend the old), brings a ref under refs/tether/ that Tether does not keep, a label or
stage tag no event made, or registry or prompts events the log's own root of trust refuses: an
unsigned transition, an approval by a key without the role, an assignment signed by nobody the
root names, a prompt log without the root the registry holds. Without a root the project
behaves as it does locally. git prints what this writes to stderr to the pusher, prefixed
``remote:``; the HTTP client sees its push refused with that reason. The server never signs
anything here: it only checks.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tether.errors import FormatError, TetherError
from tether.events import Event, gitmirror
from tether.events.trusted import ROOT_EVENT
from tether.registry.checkpoint import REF as CHECKPOINT_REF
from tether.registry.store import HEAD_REF

ZERO = "0" * 40
LOGS = {"refs/tether/events/registry": "registry", "refs/tether/events/prompts": "prompts"}
KEPT = {*LOGS, HEAD_REF, CHECKPOINT_REF}  # the refs under refs/tether/ that Tether keeps
MARK = "#"  # in a tag's name: a label's (NAME#LABEL#N) or a stage's (MODEL#STAGE#N), by events only


def refusals(root: Path, old: str, new: str, ref: str, *, roles: bool = True) -> list[str]:
    """Why this one ref update must not happen (empty: it may); ``roles``: also whether the
    pusher's role on the server may hand in what arrives (not for a project's first logs,
    which its admin brings)."""
    if new == ZERO:
        return [f"{ref} may not be deleted"]
    if ref.startswith("refs/tags/") and old != ZERO:
        return [f"{ref} may not be moved: a tag on the server names one commit for good"]
    if (
        old != ZERO
        and ref.startswith(("refs/tether/events/", "refs/heads/"))  # histories, not blob refs
        and not _extends(root, old, new)
    ):
        return [f"{ref} would be rewritten, not extended: pull, merge, then push again"]
    name = LOGS.get(ref)
    if name is None:
        return []
    try:
        events = _events(root, name, tip=new)
    except (FormatError, TetherError) as exc:
        return [f"{ref}: {exc}"]
    known = {e.id for e in _events(root, name, tip=old)} if old != ZERO else set()
    arrived = [e for e in events if e.id not in known]
    problems = [why for event, why in _refused(name, events) if event not in known]
    return problems + (_role_problems(arrived) if roles else [])


# what the pusher's role on the server must be, besides what the root of trust checks
NEEDS = {"model.approve": "approver", "policy.change": "admin", ROOT_EVENT: "admin"}
RANK = {"reader": 1, "writer": 2, "approver": 3, "admin": 4}


def _role_problems(events: list[Event]) -> list[str]:
    """A signature says who decided; the server's role says who may hand the decision in: an
    approval needs an approver's account, a policy or root change an admin's."""
    user = os.environ.get("TETHER_PUSHER", "?")
    role = os.environ.get("TETHER_PUSHER_ROLE", "")
    return [
        f"event {e.seq} ({e.kind}) needs the {NEEDS[e.kind]} role on this server; {user} is "
        f"{role or 'without a role'}: an admin can run `tether server user add {user} "
        f"--role {NEEDS[e.kind]} --project PROJECT`"
        for e in events
        if e.kind in NEEDS and RANK.get(role, 0) < RANK[NEEDS[e.kind]]
    ]


def _refused(name: str, events: Sequence[Event]) -> list[tuple[str, str]]:
    if name == "registry":
        from tether.registry.fold import fold
        from tether.registry.state import State

        return [(r.event, str(r)) for r in fold(State(), events).refused]
    from tether.prompts.label_log import fold as fold_prompts

    return [(r.event, str(r)) for r in fold_prompts(events).refusals]


def _extends(root: Path, old: str, new: str) -> bool:
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", old, new], cwd=root, capture_output=True
    )
    return done.returncode == 0


@functools.lru_cache(maxsize=64)  # a commit's events never change
def _events(root: Path, name: str, tip: str) -> tuple[Event, ...]:
    """A log's events at ``tip``, read once per push: each check of it asks again."""
    return tuple(gitmirror.read_from_git(root, name, tip=tip))


def unkept(ref: str) -> list[str]:
    """A ref under refs/tether/ that is none of Tether's: a place to hide what no clone reads."""
    if ref.startswith("refs/tether/") and ref not in KEPT:
        return [f"{ref} is not a ref Tether keeps ({', '.join(sorted(KEPT))})"]
    return []


def unbacked_marks(root: Path, updates: dict[str, str]) -> list[str]:
    """A tag with ``#`` in its name is a label's (``NAME#LABEL#N``) or a stage's
    (``MODEL#STAGE#N``), made by its event: one that no event of the log (as this push leaves
    it) names exactly, or that points at another commit than its event says, was made by
    hand, and every clone would report it and refuse to assign labels until it is gone, which
    the server never allows."""
    marks = {
        ref: new
        for ref, new in updates.items()
        if ref.startswith("refs/tags/") and MARK in ref and new != ZERO
    }
    if not marks:
        return []
    backed: dict[str, str | None] = {}  # tag -> the commit its event names (None: not said)
    for ref, name in LOGS.items():
        tip = updates.get(ref) or _rev(root, ref)
        if tip is None:
            continue
        try:
            events = _events(root, name, tip=tip)
        except TetherError:
            continue  # the log's own refusal says why
        commits = {}  # (model, version) -> the commit its registration names
        for e in events:
            b = e.body
            if e.kind == "label.assign" and isinstance(b.get("tag"), str):
                backed[b["tag"]] = b.get("commit")
            elif e.kind == "model.register":
                commits[(b.get("name"), b.get("version"))] = b.get("commit")
            elif e.kind == "model.transition":
                tag = f"{b.get('name')}#{b.get('stage')}#{b.get('n')}"
                backed[tag] = commits.get((b.get("name"), b.get("version")))
    problems = []
    for ref, new in marks.items():
        tag = ref.removeprefix("refs/tags/")
        if tag not in backed:
            problems.append(f"{ref}: no event of the log made it (a label or stage is assigned "
                            "by `tether prompt promote` or `tether model approve`)")  # fmt: skip
        elif backed[tag] is not None and _peeled(root, new) != backed[tag]:
            problems.append(f"{ref} points at another commit than its event says")
    return problems


def _peeled(root: Path, obj: str) -> str | None:
    return _rev(root, f"{obj}^{{commit}}")


def root_problems(root: Path, updates: dict[str, str]) -> list[str]:
    """The project's root of trust lives in its registry log and, as the same document, in
    its prompt log. Once the registry has one, a prompt log pushed without it (or with a root
    the registry never had) is refused: else a writer could push unsigned label assignments
    into a prompt log the root never reached. ``updates``: ref -> its new tip in this push."""
    prompts = "refs/tether/events/prompts"
    if prompts not in updates:
        return []
    registry = "refs/tether/events/registry"
    tip = updates.get(registry) or _rev(root, registry)
    if tip is None:
        return []
    try:
        # a root is its metadata, which its admins signed; the registry's event may also carry
        # the publisher's envelope, the prompt log's copy does not
        held = [
            e.body.get("metadata")
            for e in _events(root, "registry", tip=tip)
            if e.kind == ROOT_EVENT
        ]
        carried = [
            e.body.get("metadata")
            for e in _events(root, "prompts", tip=updates[prompts])
            if e.kind == ROOT_EVENT
        ]
    except (FormatError, TetherError) as exc:
        return [str(exc)]
    if held and not carried:
        return [
            f"{prompts}: the project's registry has a root of trust and this prompt log does "
            "not carry it: `tether prompt pull` takes the team's log (with its root), then push"
        ]
    if any(metadata not in held for metadata in carried):
        return [f"{prompts}: it carries a root of trust the project's registry never had"]
    return []


def _rev(root: Path, ref: str) -> str | None:
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", ref], cwd=root, capture_output=True
    )
    return done.stdout.decode().strip() or None if done.returncode == 0 else None


def main() -> int:
    root = Path.cwd()
    problems: list[str] = []
    updates: dict[str, str] = {}
    for line in sys.stdin.read().splitlines():
        old, new, ref = line.split(" ", 2)
        problems += refusals(root, old, new, ref) + unkept(ref)
        updates[ref] = new
    problems += root_problems(root, updates) + unbacked_marks(root, updates)
    for problem in problems:
        print(f"tether: refused: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
