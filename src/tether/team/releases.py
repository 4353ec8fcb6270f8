"""A signed release, checked on the team server: the statement `tether model sign` made (a DSSE
envelope over an in-toto statement) verified against the keys of the project's root of trust,
and its subjects against the version's files as the server holds them, id by id. What the models
page says of each version; the server checks, and never signs."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from tether.errors import TetherError

if TYPE_CHECKING:
    from tether.registry.state import State, Version
    from tether.team.hub import Hub


def release_status(hub: Hub, project: str, state: State) -> dict[str, tuple[str, str]]:
    """Each version's release: ``(kind, words)``, kind one of ``verified``, ``failed``,
    ``unchecked`` (the server cannot tell) and ``unsigned``."""
    out: dict[str, tuple[str, str]] = {}
    for versions in state.models.values():
        for v in versions.values():
            out[v.ref] = _status(hub, project, state, v)
    return out


def _status(hub: Hub, project: str, state: State, v: Version) -> tuple[str, str]:
    from tether import intoto

    if v.signature is None:
        return "unsigned", "not signed"
    who = v.signed_by or "?"
    if state.root is None:
        return "unchecked", (
            f"signed by {who}; with no root of trust the server has no keys to check it "
            "against: `tether model verify` checks it in a clone"
        )
    try:
        envelope = hub.blobs.read_bytes(project, v.signature)
    except (FileNotFoundError, TetherError):
        return "unchecked", f"signed by {who}; its statement is not on the server yet"
    try:
        stmt, key = intoto.verify_statement(json.loads(envelope), dict(state.root.keys))
        signed = {s["name"]: s["digest"].get("blake3") for s in stmt["subject"]}
    except (TetherError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return "failed", f"its signature does not verify under the root of trust: {exc}"
    files = _files(hub, project, v)
    if files is None:
        return "unchecked", (
            f"signed by {key.identity}; the signature verifies, but the server lacks the "
            "version's files to compare"
        )
    if signed != files:
        return "failed", "the signed statement is about other files than this version's"
    return "verified", f"signed by {key.identity}; {len(files)} file(s) match what was signed"


def _files(hub: Hub, project: str, v: Version) -> dict[str, str] | None:
    """The version's files (name -> BLAKE3 hex) from the objects the server holds."""
    from tether.hashing import PREFIX
    from tether.objects.tree import HEADER, Tree

    try:
        data = hub.blobs.read_bytes(project, v.object)
    except (FileNotFoundError, TetherError):
        return None
    if not data.startswith(HEADER):
        return {PurePosixPath(v.path).name: v.object[len(PREFIX) :]}
    try:
        tree = Tree.from_bytes(data, v.object)
    except (TetherError, ValueError):
        return None
    return {e.path: e.id[len(PREFIX) :] for e in tree.entries}


def statuses(hub: Hub, project: str, state: Any) -> dict[str, tuple[str, str]]:
    return {} if state is None else release_status(hub, project, state)
