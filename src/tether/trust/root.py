"""The root of trust: TUF root metadata (python-tuf's Metadata API, Ed25519 keys through
securesystemslib) naming every key, the identity each stands for, the roles it holds and the
promotion policies, signed by a threshold of admin keys.

Layout of one root (``Metadata[Root]``)::

    signed.keys[KEYID]                  an Ed25519 key; KEYID is Tether's (``ed25519:…``), and
                                        ``x-tether-identity`` the e-mail it stands for
    signed.roles["root"]                the admin keys and how many of them sign a new root
    signed.roles[targets|snapshot|timestamp]   the admin keys too (TUF requires the four roles;
                                        Tether uses only root)
    signed["x-tether"]                  {"format": 1,
                                         "roles": {"approver"|"promoter"|"ci": [KEYID]},
                                         "groups": {NAME: [EMAIL]}, "policies": {STAGE: {...}}}

Rules, as TUF keeps them: version 1 is signed by its own admin threshold and its fingerprint is
what a clone pins; version N+1 must be signed by a threshold of version N's admins *and* of its
own, so a key is revoked by a new version without it and nobody can add themselves. Versions only
go up. Roots do not expire: their order in the hash-chained log, not a clock, says which one was
in force when an event was signed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tether import signing
from tether.errors import TrustError

if TYPE_CHECKING:
    from tuf.api._payload import Root
    from tuf.api.metadata import Metadata

ROLES = ("admin", "approver", "promoter", "ci")
EXT = "x-tether"
IDENTITY = "x-tether-identity"
FORMAT = 1
_TUF_ROLES = ("root", "targets", "snapshot", "timestamp")
_EXPIRES = datetime(2999, 1, 1, tzinfo=UTC)  # never checked: see the module's docstring


@dataclass(frozen=True)
class TrustRoot:
    """One verified version of the root: who holds which role, and the policies in force."""

    version: int
    keys: Mapping[str, signing.TrustedKey]  # every key, its identity and roles (admin included)
    threshold: int  # admin signatures a new root needs
    groups: Mapping[str, frozenset[str]]
    policies: Mapping[str, Any]  # the [registry.policy] tables, as signed
    document: bytes  # the signed metadata, as stored in the log
    fingerprint: str  # of version 1 of this chain: what a clone pins

    def holders(self, role: str) -> list[signing.TrustedKey]:
        return [k for k in self.keys.values() if role in k.roles]

    def role_of(self, keyid: str, role: str) -> bool:
        key = self.keys.get(keyid)
        return key is not None and role in key.roles


def fingerprint_of(document: bytes) -> str:
    """``sha256:`` + the digest of a root's canonical signed part (what a clone pins)."""
    return "sha256:" + hashlib.sha256(_signed_bytes(parse(document))).hexdigest()


def build(
    keys: Iterable[signing.TrustedKey],
    *,
    threshold: int = 1,
    groups: Mapping[str, Iterable[str]] | None = None,
    policies: Mapping[str, Any] | None = None,
    version: int = 1,
) -> Metadata[Root]:
    """Unsigned root metadata: ``keys`` with their roles (``admin`` ones sign roots)."""
    from securesystemslib.signer._key import SSlibKey
    from tuf.api._payload import Role, Root
    from tuf.api.metadata import Metadata

    keys = list(keys)
    admins = [k.keyid for k in keys if "admin" in k.roles]
    if not admins:
        raise TrustError("a root needs at least one admin key (`--role admin`)")
    if not 1 <= threshold <= len(admins):
        raise TrustError(
            f"the threshold is {threshold} but there are {len(admins)} admin key(s): "
            "a new root could never be signed"
        )
    root = Root(
        version=version,
        expires=_EXPIRES,
        roles={r: Role(list(admins), threshold) for r in _TUF_ROLES},
        consistent_snapshot=False,
    )
    for key in keys:
        unknown = sorted(set(key.roles) - set(ROLES))
        if unknown:
            raise TrustError(
                f"{key.keyid}: unknown role {unknown[0]!r} (roles: {', '.join(ROLES)})"
            )
        public = signing.load_public(key.public_pem)
        root.keys[key.keyid] = SSlibKey.from_crypto(public, keyid=key.keyid)
        root.keys[key.keyid].unrecognized_fields[IDENTITY] = key.identity
    roles = {r: sorted(k.keyid for k in keys if r in k.roles) for r in ROLES if r != "admin"}
    root.unrecognized_fields[EXT] = {
        "format": FORMAT,
        "roles": roles,
        "groups": {g: sorted(m) for g, m in sorted((groups or {}).items())},
        "policies": json.loads(json.dumps(policies or {})),
    }
    _check_ext(root)
    return Metadata(root)


def successor(current: TrustRoot, keys: Iterable[signing.TrustedKey], **kw: Any) -> Metadata[Root]:
    """The next version of ``current`` with ``keys`` (and the given groups, policies, threshold;
    each defaults to the current one's)."""
    kw.setdefault("threshold", current.threshold)
    kw.setdefault("groups", current.groups)
    kw.setdefault("policies", current.policies)
    return build(keys, version=current.version + 1, **kw)


def sign(md: Metadata[Root], signer: signing.Signer) -> None:
    """Add ``signer``'s signature to ``md`` (a root needs its admin threshold of them)."""
    from securesystemslib.signer._crypto_signer import CryptoSigner
    from securesystemslib.signer._key import SSlibKey

    public = SSlibKey.from_crypto(signer.private_key.public_key(), keyid=signer.keyid)
    md.sign(CryptoSigner(signer.private_key, public), append=True)


def dump(md: Metadata[Root]) -> bytes:
    from tuf.api.serialization.json import JSONSerializer

    return JSONSerializer(compact=True).serialize(md)


def parse(document: bytes) -> Metadata[Root]:
    """Root metadata from bytes: TUF's own parser, then Tether's part checked strictly."""
    from tuf.api._payload import Root
    from tuf.api.metadata import Metadata

    try:
        md = Metadata[Root].from_bytes(document)
    except Exception as exc:  # python-tuf raises DeserializationError, ValueError, KeyError…
        raise TrustError(f"the root metadata cannot be read ({exc})") from None
    if not isinstance(md.signed, Root):
        raise TrustError(f"the metadata is {md.signed.type!r}, not a root")
    _check_ext(md.signed)
    return md


def first(document: bytes) -> TrustRoot:
    """Version 1 of a chain: signed by its own admin threshold."""
    md = parse(document)
    if md.signed.version != 1:
        raise TrustError(f"the chain starts at root version {md.signed.version}, not 1")
    _verify(md, None)
    return _trusted(md, document, fingerprint_of(document))


def update(current: TrustRoot, document: bytes) -> TrustRoot:
    """The root after ``current``: version + 1, signed by a threshold of both roots' admins."""
    md = parse(document)
    if md.signed.version != current.version + 1:
        raise TrustError(
            f"root version {md.signed.version} follows version {current.version}: versions go "
            "up one at a time"
        )
    _verify(md, parse(current.document).signed)
    return _trusted(md, document, current.fingerprint)


def restore(doc: Mapping[str, Any]) -> TrustRoot:
    """A root a fold verified before, read back from a local cache (:func:`to_cache`): plain
    data, not verified again, and without loading TUF (a read command stays fast)."""
    keys = {
        k["keyid"]: signing.TrustedKey(k["keyid"], k["identity"], frozenset(k["roles"]), k["pem"])
        for k in doc["keys"]
    }
    groups = {g: frozenset(m) for g, m in doc["groups"].items()}
    return TrustRoot(
        doc["version"], keys, doc["threshold"], groups, doc["policies"],
        doc["document"].encode(), doc["fingerprint"],
    )  # fmt: skip


def to_cache(root: TrustRoot) -> dict[str, Any]:
    """``root`` as plain JSON data, for :func:`restore`."""
    return {
        "version": root.version,
        "keys": [
            {"keyid": i, "identity": k.identity, "roles": sorted(k.roles), "pem": k.public_pem}
            for i, k in root.keys.items()
        ],
        "threshold": root.threshold,
        "groups": {g: sorted(m) for g, m in root.groups.items()},
        "policies": root.policies,
        "document": root.document.decode(),
        "fingerprint": root.fingerprint,
    }


def unsigned_admins(md: Metadata[Root], previous: TrustRoot | None) -> tuple[int, list[str]]:
    """How many more admin signatures ``md`` needs, and which admins could give them."""
    prev = None if previous is None else parse(previous.document).signed
    result = md.signed.get_root_verification_result(prev, _signed_bytes(md), md.signatures)
    missing, who = 0, []
    for part in (result.first, result.second):
        missing = max(missing, part.missing)
        who += [k for k in part.unsigned if k not in who]
    return missing, who


def _verify(md: Metadata[Root], previous: Root | None) -> None:
    result = md.signed.get_root_verification_result(previous, _signed_bytes(md), md.signatures)
    if not result.verified:
        parts = [("the previous root's", result.first), ("its own", result.second)]
        lacking = "; ".join(
            f"{what} admins: {len(r.signed)} of {r.threshold}" for what, r in parts if not r
        )
        raise TrustError(
            f"root version {md.signed.version} is not signed by enough admins ({lacking}); "
            "`tether trust sign FILE` adds an admin's signature"
        )


def _signed_bytes(md: Metadata[Root]) -> bytes:
    return bytes(md.signed_bytes)


def _check_ext(root: Root) -> None:
    ext = root.unrecognized_fields.get(EXT)
    where = f"root version {root.version}"
    if not isinstance(ext, dict) or ext.get("format") != FORMAT:
        raise TrustError(f"{where} has no Tether part of format {FORMAT} ({EXT}): upgrade Tether?")
    if set(ext) != {"format", "roles", "groups", "policies"}:
        raise TrustError(f"{where}: {EXT} has the fields {sorted(ext)}")
    roles = ext["roles"]
    if not isinstance(roles, dict) or not set(roles) <= set(ROLES) - {"admin"}:
        raise TrustError(f"{where}: unknown roles {sorted(roles)} (roles: {', '.join(ROLES)})")
    for role, ids in roles.items():
        if not isinstance(ids, list) or not all(i in root.keys for i in ids):
            raise TrustError(f"{where}: the {role} role names a key the root does not hold")
    for keyid, key in root.keys.items():
        if key.keytype != "ed25519" or not isinstance(key.unrecognized_fields.get(IDENTITY), str):
            raise TrustError(f"{where}: key {keyid} is not an Ed25519 key with an identity")
        try:
            actual = signing.keyid_of(signing.load_public(_pem(key)))
        except (ValueError, KeyError, TypeError, AttributeError):
            actual = None
        if actual != keyid:
            raise TrustError(f"{where}: key {keyid} does not hold the public key its id names")
    if not isinstance(ext["groups"], dict) or not isinstance(ext["policies"], dict):
        raise TrustError(f"{where}: groups and policies must be tables")


def _pem(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw = bytes.fromhex(key.keyval["public"])
    public = Ed25519PublicKey.from_public_bytes(raw)
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _trusted(md: Metadata[Root], document: bytes, fingerprint: str) -> TrustRoot:
    root = md.signed
    ext = root.unrecognized_fields[EXT]
    admins = set(root.roles["root"].keyids)
    keys = {}
    for keyid, key in root.keys.items():
        roles = {r for r, ids in ext["roles"].items() if keyid in ids}
        roles |= {"admin"} if keyid in admins else set()
        identity = key.unrecognized_fields[IDENTITY]
        keys[keyid] = signing.TrustedKey(keyid, identity, frozenset(roles), _pem(key))
    groups = {g: frozenset(m) for g, m in ext["groups"].items()}
    threshold = root.roles["root"].threshold
    return TrustRoot(root.version, keys, threshold, groups, ext["policies"], document, fingerprint)
