"""Signed checkpoints of the registry's fold, so a fresh clone does not verify every signature
since the beginning.

Under a root of trust, every :data:`EVERY` events the writer of an event whose key holds the
``admin`` or ``ci`` role (:data:`SIGNERS`) signs the folded state at that event: a DSSE envelope
over ``{log, head, seq, state}``, kept as a git blob under :data:`REF` and pushed and fetched with
the log. A clone with no fold of its own starts from it: it verifies the chain of roots the
checkpoint carries from version 1 (whose fingerprint the clone pins, as for a full fold), the
signature with the keys of the newest root, that the signer held one of :data:`SIGNERS`, and that
the checkpoint's head is an event of its log; then it folds only the events after it. Anything
that does not hold is ignored, and the clone folds the whole log. ``tether audit verify --full``
never uses a checkpoint; ``audit verify`` reports one that does not verify.

Trusting a checkpoint is trusting its signer for every event before it, as a TUF snapshot key is
trusted for the snapshot: that is why only admin and CI keys sign them.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tether import signing
from tether.errors import TetherError
from tether.gitio.repo import git, git_maybe
from tether.registry.state import State, from_doc, to_doc
from tether.trust import root as trust
from tether.workspace.repo import Workspace

REF = "refs/tether/checkpoints/registry"
TYPE = "application/vnd.tether.registry-checkpoint+json"
EVERY = 1000
SIGNERS = frozenset({"admin", "ci"})
FORMAT = 1
_MARK = "registry-checkpoint.json"  # .tether/cache: the seq of the newest checkpoint written
_VERIFIED = "registry-checkpoint-verified"  # .tether/cache: the git id of one that verified


class Refused(Exception):
    """Why a checkpoint is not used; the message completes "the checkpoint …"."""


def due(ws: Workspace, seq: int) -> bool:
    """Whether an event at ``seq`` is :data:`EVERY` events past the newest checkpoint."""
    try:
        last = int(json.loads((ws.dot / "cache" / _MARK).read_bytes())["seq"])
    except (OSError, ValueError, KeyError, TypeError):
        last = _seq_of_ref(ws)
    return seq - last >= EVERY


def write(ws: Workspace, state: State, seq: int, signer: signing.Signer) -> None:
    """Sign ``state`` (folded up to its head, the event at ``seq``) as the newest checkpoint."""
    from tether._fs import write_cache

    doc = {"format": FORMAT, "log": "registry", "head": state.head, "seq": seq}
    doc["state"] = to_doc(state)
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    envelope = json.dumps(signer.sign(TYPE, payload)).encode()
    blob = git(ws.root, "hash-object", "-w", "--stdin", stdin=envelope).decode().strip()
    git(ws.root, "update-ref", REF, blob)
    write_cache(ws.dot / "cache" / _MARK, json.dumps({"seq": seq}).encode())


def read(ws: Workspace, ref: str = REF) -> State | None:
    """The newest checkpoint's state, verified (None when there is none or it does not hold);
    ``ref``: where it is kept (a pull reads the remote's from a side ref)."""
    try:
        return load(ws, ref)
    except Refused:
        return None


def problem(ws: Workspace) -> str | None:
    """Why the newest checkpoint does not verify (None: it does, or there is none). A blob
    that verified once is remembered by its git id (the hash of its bytes)."""
    from tether._fs import write_cache

    blob = (git_maybe(ws.root, "rev-parse", "--verify", "-q", REF) or b"").decode().strip()
    mark = ws.dot / "cache" / _VERIFIED
    if not blob or (mark.is_file() and mark.read_text() == blob):
        return None
    try:
        load(ws)
    except Refused as exc:
        return f"the checkpoint {REF} {exc}"
    write_cache(mark, blob.encode())
    return None


def load(ws: Workspace, ref: str = REF) -> State | None:
    """The newest checkpoint's state; :class:`Refused` names what does not hold."""
    raw = _blob(ws, ref)
    if raw is None:
        return None
    try:
        envelope = json.loads(raw)
        payload = base64.b64decode(envelope["payload"], validate=True)
        doc = json.loads(payload)
        state = from_doc(doc["state"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Refused(f"cannot be read ({type(exc).__name__}: {exc})") from None
    if state is None or doc.get("format") != FORMAT or doc.get("log") != "registry":
        raise Refused("is of another format: this Tether folds the whole log instead")
    if not state.roots or state.root is None:
        raise Refused("holds no root of trust, and only a root's keys sign checkpoints")
    root = _chain(state.roots)
    if root.document != state.root.document:
        raise Refused("names a root in force that its own chain of roots does not end at")
    try:
        checked = signing.verify(envelope, root.keys)
    except TetherError as exc:
        raise Refused(f"is not signed by a key of root version {root.version} ({exc})") from None
    if checked.payload_type != TYPE or checked.payload != payload:
        raise Refused("says something other than what its key signed")
    if not checked.signer.roles & SIGNERS:
        raise Refused(
            f"is signed by {checked.signer.identity}, whose key holds none of the roles "
            f"{', '.join(sorted(SIGNERS))} that sign checkpoints"
        )
    if state.head != doc.get("head"):
        raise Refused("names another head than its state's")
    state.root = root
    return state


def _chain(documents: list[str]) -> trust.TrustRoot:
    """The roots, verified from version 1 as the fold verifies them."""
    root: trust.TrustRoot | None = None
    try:
        for text in documents:
            root = trust.first(text.encode()) if root is None else trust.update(root, text.encode())
    except TetherError as exc:
        raise Refused(f"carries a chain of roots that does not verify ({exc})") from None
    assert root is not None
    return root


def _blob(ws: Workspace, ref: str = REF) -> bytes | None:
    if git_maybe(ws.root, "rev-parse", "--verify", "-q", ref) is None:
        return None
    return git(ws.root, "cat-file", "blob", ref)


def _seq_of_ref(ws: Workspace) -> int:
    raw = _blob(ws)
    if raw is None:
        return 0
    try:
        doc: Any = json.loads(base64.b64decode(json.loads(raw)["payload"]))
        return int(doc["seq"])
    except (ValueError, KeyError, TypeError):
        return 0
