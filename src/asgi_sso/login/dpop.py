"""DPoP proofs for the sign-in's own calls to its provider (RFC 9449, the client side).

When a provider's metadata lists ``ES256`` in ``dpop_signing_alg_values_supported``
(and ``LoginConfig.dpop`` is ``"auto"``), each sign-in makes a fresh P-256 key:
its token requests carry a proof signed with it, so the tokens the provider binds
to the key (``token_type: DPoP``) are useless to anyone without it. The key, a
private JWK of about 200 bytes, stays with the session only where its refresh
token does (a server-side store): a refresh proves the same key, as a refresh
token bound to it requires (§5).
"""

from __future__ import annotations

import json
import re
import secrets
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import ECKey

from asgi_sso.config import Clock
from asgi_sso.keys.jwk import parse_jwk
from asgi_sso.verify.dpop import access_token_hash

if TYPE_CHECKING:
    from asgi_sso.keys.discovery import ProviderMetadata

__all__ = [
    "ALGORITHM",
    "MAX_NONCE",
    "PROOF_TYPE",
    "DPoPKey",
    "clean_nonce",
    "proof_claims",
    "signin_key",
    "supports_dpop",
]

ALGORITHM: Final = "ES256"
"""The one proof algorithm the sign-in signs with (the one every DPoP server takes)."""
PROOF_TYPE: Final = "dpop+jwt"
"""The proof's ``typ`` header (§4.2)."""
MAX_NONCE: Final = 512
"""Longest ``DPoP-Nonce`` a provider may hand out; a longer one is refused, not echoed."""
# §8.1: nonce = 1*NQCHAR, NQCHAR = %x21 / %x23-5B / %x5D-7E (printable, no space, " or \).
_NONCE: Final = re.compile(rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{MAX_NONCE}}}")
_MAX_JWK_TEXT: Final = 1024


def proof_claims(
    method: str,
    htu: str,
    *,
    iat: int,
    access_token: str | None = None,
    nonce: str | None = None,
) -> dict[str, Any]:
    """A proof's claims (§4.2): a random ``jti``, ``htm``, ``htu`` and ``iat``.

    Args:
        method: the request's HTTP method.
        htu: the request's URL as it should appear in the proof.
        iat: the proof's issue time, seconds.
        access_token: the token the request presents: adds ``ath``.
        nonce: the server's ``DPoP-Nonce``: adds ``nonce``.
    """
    claims: dict[str, Any] = {
        "jti": secrets.token_urlsafe(16),
        "htm": method,
        "htu": htu,
        "iat": iat,
    }
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


def clean_nonce(value: str | None) -> str | None:
    """``value`` when it is a well-formed ``DPoP-Nonce`` (§8.1, at most :data:`MAX_NONCE`)."""
    if value is None or not _NONCE.fullmatch(value):
        return None
    return value


def supports_dpop(metadata: ProviderMetadata) -> bool:
    """Whether the provider takes proofs signed with :data:`ALGORITHM`."""
    return ALGORITHM in metadata.dpop_signing_alg_values_supported


def signin_key(
    mode: Literal["auto", "off"], metadata: ProviderMetadata, clock: Clock
) -> DPoPKey | None:
    """A fresh key for one sign-in at the provider of ``metadata``, or ``None`` without DPoP."""
    return DPoPKey.generate(clock) if mode == "auto" and supports_dpop(metadata) else None


class DPoPKey:
    """One sign-in's DPoP key: makes the proofs of its token and userinfo requests.

    Attributes:
        jwk: the public key as sent in each proof (never a private member).
        jkt: its RFC 7638 thumbprint, what a bound token's ``cnf.jkt`` names.
    """

    __slots__ = ("_clock", "_key", "jkt", "jwk")

    def __init__(self, key: ECKey, clock: Clock) -> None:
        self._key = key
        self._clock = clock
        self.jwk: dict[str, Any] = dict(key.as_dict(private=False))
        self.jkt = parse_jwk(self.jwk).thumbprint

    def __repr__(self) -> str:
        # The private key never reaches a log line (STYLE.md rule 10).
        return f"DPoPKey(jkt={self.jkt!r})"

    @classmethod
    def generate(cls, clock: Clock) -> DPoPKey:
        """A new P-256 key."""
        return cls(ECKey.generate_key("P-256", private=True), clock)

    @classmethod
    def from_jwk(cls, text: str, clock: Clock) -> DPoPKey:
        """The key :meth:`private_jwk` wrote.

        Raises:
            ValueError: not a private P-256 JWK (the message never holds the key).
        """
        try:
            if len(text) > _MAX_JWK_TEXT:
                raise ValueError("too long")
            data = json.loads(text)
            key = ECKey.import_key(data)
        except Exception as exc:  # joserfc and json raise many kinds; none echo the key
            raise ValueError("the DPoP key is not a readable JWK") from exc
        if not key.is_private or key.curve_name != "P-256":
            raise ValueError("the DPoP key is not a private P-256 key")
        return cls(key, clock)

    def private_jwk(self) -> str:
        """The private key as JWK JSON, for a server-side session record only."""
        return json.dumps(self._key.as_dict(private=True), separators=(",", ":"))

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
    ) -> str:
        """A fresh proof for one request (§4.2): a compact JWS typed ``dpop+jwt``.

        Args:
            method: the request's HTTP method.
            url: the request's URL; ``htu`` is it without query and fragment.
            access_token: the token the request presents (adds ``ath``).
            nonce: the server's ``DPoP-Nonce`` (adds ``nonce``).
        """
        scheme, netloc, path, _, _ = urlsplit(url)
        htu = urlunsplit((scheme, netloc, path, "", ""))
        claims = proof_claims(
            method,
            htu,
            iat=int(self._clock.time()),
            access_token=access_token,
            nonce=nonce,
        )
        header = {"typ": PROOF_TYPE, "alg": ALGORITHM, "jwk": self.jwk}
        return jwt.encode(header, claims, self._key, algorithms=[ALGORITHM])
