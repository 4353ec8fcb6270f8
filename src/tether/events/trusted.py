"""Events under a root of trust, for every governance log (the registry's, the prompts'): a
``trust.root`` event carries the next root version, and every other event counts only when its
envelope is signed, over :func:`~tether.events.chain.signed_bytes`, by a key of the root in
force at that point of the log, for the identity the event names, holding a role it needs."""

from __future__ import annotations

from collections.abc import Iterable

from tether import signing
from tether.errors import SignatureError, TetherError, TrustError
from tether.events.chain import Event, signed_bytes
from tether.trust import root as trust

ROOT_EVENT = "trust.root"


class Untrusted(Exception):
    """Why an event does not count; the message completes "was not applied: …"."""


def next_root(current: trust.TrustRoot | None, ev: Event) -> trust.TrustRoot:
    """The root a ``trust.root`` event puts in force after ``current``."""
    document = ev.body.get("metadata")
    if not isinstance(document, str):
        raise Untrusted("a trust.root event carries its metadata as text")
    try:
        if current is None:
            return trust.first(document.encode())
        return trust.update(current, document.encode())
    except TrustError as exc:
        raise Untrusted(str(exc)) from None


def check_signed(
    root: trust.TrustRoot, ev: Event, log: str, payload_type: str, roles: Iterable[str]
) -> signing.TrustedKey:
    """The key that signed ``ev``, which must hold one of ``roles`` under ``root``."""
    envelope = ev.body.get("signed")
    if envelope is None:
        raise Untrusted("it is not signed, and a root of trust is in force")
    try:
        checked = signing.verify(envelope, root.keys)
    except SignatureError as exc:
        why = f"its signature does not hold under root version {root.version} ({exc})"
        raise Untrusted(why) from None
    if checked.payload_type != payload_type or checked.payload != signed_bytes(ev, log):
        raise Untrusted("it says something other than what its key signed")
    if checked.signer.identity != ev.actor:
        raise Untrusted(f"it names {ev.actor} but was signed by {checked.signer.identity}")
    needed = frozenset(roles)
    if not needed & checked.signer.roles:
        held = ", ".join(sorted(checked.signer.roles)) or "none"
        raise Untrusted(
            f"{ev.actor}'s key holds the roles {held} under root version {root.version}; "
            f"{ev.kind} needs one of {', '.join(sorted(needed))}"
        )
    return checked.signer


def local_key(
    root: trust.TrustRoot, roles: Iterable[str], doing: str, way_out: str
) -> tuple[signing.Signer, signing.TrustedKey]:
    """This machine's signing key (``TETHER_SIGNING_KEY``, or the only one in the keys
    folder) and what ``root`` says of it; TrustError when it is missing or holds none of
    ``roles``, saying what ``doing`` needs and ``way_out``."""
    no_key = ""
    try:
        signer: signing.Signer | None = signing.load_signer()
    except TetherError as exc:
        signer, no_key = None, str(exc)
    key = None if signer is None else root.keys.get(signer.keyid)
    needed = frozenset(roles)
    if signer is None or key is None or not needed & key.roles:
        who = (
            f"there is no key to sign with ({no_key})" if signer is None else f"key {signer.keyid}"
        )
        held = "" if key is None else f" (it holds {', '.join(sorted(key.roles)) or 'no role'})"
        raise TrustError(
            f"{doing} is signed by a key of the root of trust holding one of the roles "
            f"{', '.join(sorted(needed))}, and {who}{held} is not one: {way_out}"
        )
    return signer, key
