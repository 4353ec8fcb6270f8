"""Ed25519 keys and DSSE envelopes: who signed what, checked offline.

Identity is a key, not an email: a git author can be anything (``git -c user.email=...``), so an
approval counts only when it is signed by a key that the project's config maps to an identity.

Private keys live outside every repository, one PEM file each (mode 0600) under the keys folder:
``$TETHER_KEYS_DIR``, else ``$XDG_CONFIG_HOME/tether/keys``, else ``~/.config/tether/keys``.
Each key is three files named by its key id's hex: ``<hex>.pem`` (private, PKCS8),
``<hex>.pub`` (public, SubjectPublicKeyInfo PEM) and ``<hex>.json`` (``format``, ``keyid``,
``identity``, ``created``).

A **key id** is ``"ed25519:" + sha256(raw 32-byte public key).hexdigest()[:32]``: short enough to
read, long enough (128 bits) that nobody can make a second key with the same id.

Trusted public keys are config (``tether.toml``, committed, read by :mod:`tether.keyconfig`),
never private keys.

Signatures are DSSE v1.0.0 envelopes over the pre-authentication encoding (:func:`pae`); what a
release signs, an in-toto statement, is made in :mod:`tether.intoto`. ``cryptography`` is
imported inside the functions that need it, so importing this module costs nothing at CLI
start-up.

Errors: :class:`SignatureError` (an envelope that does not verify), :class:`SigningKeyError`
(a local private key that cannot be made, found or read), ``ConfigError`` (a bad trusted key).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tether._fs import atomic_write
from tether.errors import ConfigError
from tether.errors import SignatureError as SignatureError  # re-exported: the tree is in errors.py
from tether.errors import SigningKeyError as SigningKeyError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

KEYID_PREFIX = "ed25519:"
KEYS_DIR_ENV = "TETHER_KEYS_DIR"
SIGNING_KEY_ENV = "TETHER_SIGNING_KEY"
PASSPHRASE_ENV = "TETHER_KEY_PASSPHRASE"
SIDECAR_FORMAT = 1
IDENTITY = re.compile(r"[^@\s]+@[^@\s]+")  # what an identity looks like: an e-mail


# -- keys ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyInfo:
    """A private key in the local keys folder (``public_pem`` is its public half)."""

    keyid: str
    identity: str
    public_pem: str
    private_path: Path

    @property
    def public_path(self) -> Path:
        return self.private_path.with_suffix(".pub")


@dataclass(frozen=True)
class TrustedKey:
    """A public key the project trusts, the identity it stands for and that identity's roles."""

    keyid: str
    identity: str
    roles: frozenset[str]
    public_pem: str


def keyid_of(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEYID_PREFIX + hashlib.sha256(raw).hexdigest()[:32]


def default_keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get(KEYS_DIR_ENV):
        return Path(env[KEYS_DIR_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "tether" / "keys"


def _git_work_tree_above(folder: Path) -> Path | None:
    here = folder.expanduser().resolve()
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def generate(identity: str, keys_dir: Path | None = None) -> KeyInfo:
    """Make a new Ed25519 key for ``identity`` in ``keys_dir`` (default: :func:`default_keys_dir`).

    The private key is unencrypted PKCS8, so a CI job can sign without a prompt (its secret store
    protects it); set ``TETHER_KEY_PASSPHRASE`` to encrypt it instead. The folder is refused when
    it lies inside a git work tree: a private key must never be committed.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if not IDENTITY.fullmatch(identity):
        raise SigningKeyError(
            f"{identity!r} is not an identity: use an email, e.g. alice@example.com"
        )
    folder = keys_dir if keys_dir is not None else default_keys_dir()
    repo = _git_work_tree_above(folder)
    if repo is not None:
        raise SigningKeyError(
            f"{folder} is inside the git repository {repo}: private keys never live in a "
            f"repository; choose a folder outside it with --dir or {KEYS_DIR_ENV}"
        )
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    keyid = keyid_of(key.public_key())
    passphrase = os.environ.get(PASSPHRASE_ENV, "")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode())
        if passphrase
        else serialization.NoEncryption()
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public = _public_pem(key.public_key())
    stem = folder / keyid.removeprefix(KEYID_PREFIX)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "keyid": keyid,
        "identity": identity,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # public half and sidecar first: a .pem that exists is always a complete key
    atomic_write(stem.with_suffix(".pub"), public.encode())
    atomic_write(stem.with_suffix(".json"), (json.dumps(sidecar, indent=2) + "\n").encode())
    atomic_write(stem.with_suffix(".pem"), private, mode=0o600)
    return KeyInfo(keyid, identity, public, stem.with_suffix(".pem"))


def _public_pem(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def local_keys(keys_dir: Path | None = None) -> list[KeyInfo]:
    """The private keys in ``keys_dir``, by identity then key id (no key is decrypted)."""
    folder = keys_dir if keys_dir is not None else default_keys_dir()
    out = []
    for pem in sorted(folder.glob("*.pem")):
        keyid = KEYID_PREFIX + pem.stem
        try:
            meta = json.loads(pem.with_suffix(".json").read_text())
            identity = str(meta.get("identity", "")) if isinstance(meta, dict) else ""
        except (OSError, ValueError):
            identity = ""
        try:
            public = pem.with_suffix(".pub").read_text()
        except OSError:
            public = ""
        out.append(KeyInfo(keyid, identity, public, pem))
    return sorted(out, key=lambda k: (k.identity, k.keyid))


# -- signing ---------------------------------------------------------------------------------------
def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: what is actually signed.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload``, lengths in bytes as ASCII
    decimals, so neither part can be shifted into the other.
    """
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


class Signer:
    """An Ed25519 private key that signs DSSE envelopes."""

    # whether it may sign a registry checkpoint: a whole state a fresh clone starts from, which
    # only a key whose holder computed that state itself may vouch for
    writes_checkpoints = True

    def __init__(self, private_key: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._key = private_key
        self.path = path
        self.keyid = keyid_of(private_key.public_key())

    @property
    def public_pem(self) -> str:
        return _public_pem(self._key.public_key())

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The key itself, for signers that sign in other formats (TUF root metadata)."""
        return self._key

    def sign(self, payload_type: str, payload: bytes) -> dict[str, Any]:
        """A DSSE envelope holding ``payload``, with one signature by this key."""
        return envelope(
            payload_type, payload, self.keyid, self._key.sign(pae(payload_type, payload))
        )


def envelope(payload_type: str, payload: bytes, keyid: str, sig: bytes) -> dict[str, Any]:
    """A DSSE envelope of ``payload`` with one signature, ``sig`` by ``keyid``."""
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": keyid, "sig": base64.b64encode(sig).decode()}],
    }


_CHOSEN: ContextVar[tuple[Signer | None, str] | None] = ContextVar("tether_signer", default=None)


@contextmanager
def signing_as(signer: Signer | None, missing: str = "no signing key was given") -> Iterator[None]:
    """Within the block :func:`load_signer` gives ``signer`` (None: there is no key, and
    ``missing`` says so), whatever keys this machine holds: the team server deciding for a
    browser signs with the browser's key or with none, never with a key it happens to find."""
    token = _CHOSEN.set((signer, missing))
    try:
        yield
    finally:
        _CHOSEN.reset(token)


def load_signer(keyid: str | None = None, keys_dir: Path | None = None) -> Signer:
    """The private key to sign with.

    ``keyid`` (or, when it is None, ``$TETHER_SIGNING_KEY``) is a key id or a path to a PEM file;
    with neither, the only key in ``keys_dir`` is used. Inside :func:`signing_as`, its signer.
    """
    chosen = _CHOSEN.get()
    if chosen is not None:
        if chosen[0] is None:
            raise SigningKeyError(chosen[1])
        return chosen[0]
    folder = keys_dir if keys_dir is not None else default_keys_dir()
    choice = keyid or os.environ.get(SIGNING_KEY_ENV) or None
    if choice is None:
        available = local_keys(folder)
        if len(available) == 1:
            return _load_private(available[0].private_path)
        if not available:
            raise SigningKeyError(
                f"no signing key in {folder}: make one with `tether keys generate --identity EMAIL`"
            )
        listing = "\n".join(f"  {k.keyid}  {k.identity}" for k in available)
        raise SigningKeyError(
            f"{len(available)} keys in {folder}; choose one by setting {SIGNING_KEY_ENV} to its "
            f"key id (or to a path to a .pem file):\n{listing}"
        )
    if choice.endswith(".pem") or os.sep in choice:
        return _load_private(Path(choice).expanduser())
    path = folder / (choice.removeprefix(KEYID_PREFIX) + ".pem")
    if not path.exists():
        known = ", ".join(k.keyid for k in local_keys(folder)) or "none"
        raise SigningKeyError(f"no private key {choice} in {folder} (keys there: {known})")
    signer = _load_private(path)
    if signer.keyid != KEYID_PREFIX + choice.removeprefix(KEYID_PREFIX):
        raise SigningKeyError(f"{path} holds key {signer.keyid}, not {choice}: it was renamed")
    return signer


def _load_private(path: Path) -> Signer:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        mode = path.stat().st_mode
        if os.name == "posix" and mode & 0o077:
            raise SigningKeyError(
                f"{path} is open to other users (mode {stat.S_IMODE(mode):04o}): a private key "
                f"must be readable by you alone; run `chmod 600 {path}`"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise SigningKeyError(f"cannot read the private key {path}: {exc.strerror}") from exc
    password = None
    if b"ENCRYPTED PRIVATE KEY" in data:
        if not os.environ.get(PASSPHRASE_ENV):
            raise SigningKeyError(f"{path} is encrypted: set {PASSPHRASE_ENV} to its passphrase")
        password = os.environ[PASSPHRASE_ENV].encode()
    try:
        key = serialization.load_pem_private_key(data, password)
    except (ValueError, TypeError) as exc:
        hint = f"wrong {PASSPHRASE_ENV}?" if password else "not a PEM private key"
        raise SigningKeyError(f"cannot load the private key {path} ({hint})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 key: make one with `tether keys generate`")
    return Signer(key, path)


# -- trust -----------------------------------------------------------------------------------------
def public_key_id(public_pem: str) -> str:
    """The key id of a public key PEM; refuses a private key and any key that is not Ed25519."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if "PRIVATE KEY" in public_pem:
        raise ConfigError(
            "that is a private key: trust its public half (the .pub file next to it), and never "
            "share or commit the private one"
        )
    try:
        key = serialization.load_pem_public_key(public_pem.encode())
    except ValueError as exc:
        raise ConfigError("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError("not an Ed25519 public key: make keys with `tether keys generate`")
    return keyid_of(key)


def load_public(public_pem: str) -> Ed25519PublicKey:
    """An Ed25519 public key from its PEM (:func:`public_key_id` has checked it)."""
    return _public_key(public_pem)


# -- verifying -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verified:
    """A payload whose signature by ``signer`` checked out."""

    payload_type: str
    payload: bytes
    signer: TrustedKey

    def json(self) -> Any:
        try:
            return json.loads(self.payload)
        except ValueError as exc:
            raise SignatureError(f"the signed payload is not JSON ({exc})") from exc


def _b64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise SignatureError(f"malformed envelope: {what} is not a base64 string")
    # DSSE allows standard or URL-safe base64
    std = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(std + "=" * (-len(std) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"malformed envelope: {what} is not valid base64") from exc


def verify(
    envelope: Mapping[str, Any] | bytes | str, trusted: Mapping[str, TrustedKey]
) -> Verified:
    """Check a DSSE envelope: at least one signature by a trusted key must verify over its PAE."""
    from cryptography.exceptions import InvalidSignature

    env = _parse_envelope(envelope)
    payload_type, signatures = env["payloadType"], env["signatures"]
    payload = _b64(env["payload"], "payload")
    message = pae(payload_type, payload)
    problems = []
    for entry in signatures:
        keyid = entry.get("keyid")
        if not isinstance(keyid, str) or not keyid:
            problems.append("a signature has no key id")
            continue
        if keyid not in trusted:
            problems.append(f"{keyid} is not a trusted key (see `tether keys list`)")
            continue
        sig = _b64(entry.get("sig"), f"the signature by {keyid}")
        key = _public_key(trusted[keyid].public_pem)
        try:
            key.verify(sig, message)
        except InvalidSignature:
            problems.append(
                f"the signature by {keyid} does not verify (the payload was changed, or another "
                "key signed it)"
            )
            continue
        return Verified(payload_type, payload, trusted[keyid])
    raise SignatureError("no valid signature by a trusted key: " + "; ".join(problems))


def _parse_envelope(envelope: Mapping[str, Any] | bytes | str) -> Mapping[str, Any]:
    if isinstance(envelope, bytes | str):
        try:
            envelope = json.loads(envelope)
        except ValueError as exc:
            raise SignatureError(f"malformed envelope: not JSON ({exc})") from exc
    if not isinstance(envelope, Mapping):
        raise SignatureError("malformed envelope: not a JSON object")
    if not isinstance(envelope.get("payloadType"), str) or "payload" not in envelope:
        raise SignatureError("malformed envelope: payloadType and payload are required")
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs or not all(isinstance(s, Mapping) for s in sigs):
        raise SignatureError("malformed envelope: it has no signatures")
    return envelope


@functools.lru_cache(maxsize=64)
def _public_key(public_pem: str) -> Ed25519PublicKey:
    """A trusted key parsed once per process (an audit checks thousands of signatures)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key = serialization.load_pem_public_key(public_pem.encode())
    assert isinstance(key, Ed25519PublicKey)  # trusted_keys() checked it
    return key
