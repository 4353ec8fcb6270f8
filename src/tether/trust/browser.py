"""A key held by a browser: WebCrypto Ed25519, made non-extractable, so its private half never
leaves the browser and the server can only ask it to sign.

The team server makes a browser's decision in a scratch clone and needs a signature whenever the
decision would sign something (the event's envelope, the signed head, a checkpoint). It cannot
sign, so :class:`BrowserSigner` stops the decision with :class:`SignatureNeeded` and the exact
bytes (DSSE's pre-authentication encoding, :func:`tether.signing.pae`); the browser signs them
and asks again with one more signature. Each signature given is checked against the bytes the
decision asks for this time: when the log moved between two asks, the decision is refused, not
signed with a signature over something else.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tether import signing
from tether.errors import SignatureError, SigningKeyError


class SignatureNeeded(Exception):
    """The decision needs the browser to sign ``message`` before it can go on. Not a
    TetherError, so no code that turns refusals into messages can take it for one."""

    def __init__(self, message: bytes) -> None:
        super().__init__("a signature is needed")
        self.message = message


class BrowserSigner(signing.Signer):
    """The public half of a browser's key and the signatures it gave, in the order asked. It
    signs events and log heads only: a checkpoint vouches for a whole state the browser cannot
    compute, so none is asked of it."""

    writes_checkpoints = False

    def __init__(self, public_pem: str, signatures: list[str]) -> None:
        signing.public_key_id(public_pem)  # an Ed25519 public key, or a ConfigError
        self._public = signing.load_public(public_pem)
        self._pem = public_pem
        self.path = None
        self.keyid = signing.keyid_of(self._public)
        self.signatures = signatures
        self.used = 0

    @property
    def public_pem(self) -> str:
        return self._pem

    @property
    def private_key(self) -> Any:
        raise SigningKeyError("a browser's key signs only events, from the browser")

    def sign(self, payload_type: str, payload: bytes) -> dict[str, Any]:
        from cryptography.exceptions import InvalidSignature

        message = signing.pae(payload_type, payload)
        if self.used >= len(self.signatures):
            raise SignatureNeeded(message)
        try:
            sig = base64.b64decode(self.signatures[self.used], validate=True)
            self._public.verify(sig, message)
        except (binascii.Error, ValueError, InvalidSignature):
            raise SignatureError(
                f"signature {self.used + 1} does not sign what this decision asks for now (the "
                "log moved while the browser signed, or the signature is not this key's): "
                "reload the page and decide again"
            ) from None
        self.used += 1
        return signing.envelope(payload_type, payload, self.keyid, sig)
