"""OpenID Connect bearer tokens: a JWT from a configured issuer, checked against the issuer's
published keys (JWKS, fetched and cached by PyJWT), mapped to a Tether user by one claim.

The checks are the ones a resource server owes: the signature by a key the issuer publishes
(asymmetric algorithms only, so ``none`` and an HMAC keyed with a public key never pass), the
issuer, the audience, the expiry and not-before times, and a user an admin mapped to the claim's
value (``tether server user add NAME --oidc VALUE``). An unmapped identity gets no role.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from tether.errors import AuthenticationError

if TYPE_CHECKING:
    from jwt import PyJWKClient

ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks_url: str = ""  # "" : <issuer>/.well-known/jwks.json
    claim: str = "email"  # the claim whose value names the user
    leeway_s: float = 30.0


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings

    @cached_property
    def keys(self) -> PyJWKClient:
        from jwt import PyJWKClient

        url = self.settings.jwks_url or self.settings.issuer.rstrip("/") + "/.well-known/jwks.json"
        return PyJWKClient(url, cache_keys=True, lifespan=300, timeout=5)

    def claim_value(self, token: str) -> str:
        """The verified token's value for the mapping claim; 401 saying why otherwise."""
        import jwt

        try:
            key = self.keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthenticationError(
                "the OIDC token expired: get a fresh one from your identity provider"
            ) from None
        except jwt.PyJWKClientConnectionError as exc:
            raise AuthenticationError(
                f"the identity provider's keys could not be fetched ({exc}): try again"
            ) from None
        except jwt.PyJWTError as exc:
            raise AuthenticationError(
                f"the OIDC token was refused ({type(exc).__name__}: {exc}); this server trusts "
                f"tokens issued by {self.settings.issuer} for audience {self.settings.audience}"
            ) from None
        value = claims.get(self.settings.claim)
        if not isinstance(value, str) or not value:
            raise AuthenticationError(
                f"the OIDC token has no {self.settings.claim!r} claim to name a user by"
            )
        return value
