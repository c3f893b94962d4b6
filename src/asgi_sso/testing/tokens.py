"""Mint signed JWTs for tests: valid ones, and each kind of bad one a verifier must refuse.

Signing lives here (the core only verifies). Keys are joserfc keys generated at
test time; nothing here is fit to protect anything real.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from asgi_sso.config import Clock, SystemClock
from asgi_sso.errors import ConfigurationError

__all__ = [
    "SIGNING_ALGORITHMS",
    "SigningKey",
    "TokenFactory",
    "alg_none",
    "b64url",
    "generate_key",
    "hs256_with_public_key",
    "merge_claims",
    "mint",
    "public_jwk",
    "tamper_payload",
    "tamper_signature",
]

SigningKey = RSAKey | ECKey | OKPKey
"""A private joserfc key the test kit can sign with."""

SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA", "Ed25519")
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384"}


def b64url(data: bytes) -> str:
    """Encode bytes as unpadded base64url (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_segment(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def merge_claims(claims: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge ``extra`` into ``claims`` in place; a ``None`` value removes that claim."""
    for name, value in (extra or {}).items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def generate_key(alg: str = "RS256", *, kid: str | None = None) -> SigningKey:
    """Generate a fresh private key for ``alg`` carrying ``kid``, ``alg`` and ``use=sig``.

    Args:
        alg: one of :data:`SIGNING_ALGORITHMS`.
        kid: the key id; a random one when omitted.

    Raises:
        ConfigurationError: the algorithm is not one the test kit signs with.
    """
    if alg not in SIGNING_ALGORITHMS:
        raise ConfigurationError(f"cannot sign with {alg!r}; choose from {SIGNING_ALGORITHMS}")
    params: dict[str, Any] = {"kid": kid or secrets.token_hex(8), "alg": alg, "use": "sig"}
    if alg.startswith(("RS", "PS")):
        return RSAKey.generate_key(2048, parameters=params)  # type: ignore[arg-type]
    if alg in _EC_CURVES:
        return ECKey.generate_key(_EC_CURVES[alg], parameters=params)  # type: ignore[arg-type]
    return OKPKey.generate_key("Ed25519", parameters=params)  # type: ignore[arg-type]


def public_jwk(key: SigningKey) -> dict[str, Any]:
    """The public half of ``key`` as a JWK dict (never the private members)."""
    return dict(key.as_dict(private=False))


def _default_alg(key: SigningKey) -> str:
    alg = key.get("alg")
    if isinstance(alg, str):
        return alg
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey):
        return "ES256"
    return "EdDSA"


def mint(
    claims: Mapping[str, Any],
    key: SigningKey,
    *,
    alg: str | None = None,
    kid: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` as a compact JWS with ``key``.

    Args:
        claims: the claim set, signed as given (no defaults added).
        key: a private key.
        alg: the signing algorithm; defaults to the key's ``alg`` or its type's usual one.
        kid: the ``kid`` header; defaults to the key's ``kid``. Pass ``""`` to omit it.
        headers: extra (or overriding) protected header members, e.g. ``{"typ": "at+jwt"}``;
            a ``None`` value removes the member (``{"typ": None}``: an untyped token).

    Returns:
        The compact serialization ``header.payload.signature``.
    """
    algorithm = alg or _default_alg(key)
    header: dict[str, Any] = {"alg": algorithm, "typ": "JWT"}
    key_id = key.kid if kid is None else kid
    if key_id:
        header["kid"] = key_id
    header.update(headers or {})
    header = {name: value for name, value in header.items() if value is not None}
    # Signed by hand rather than with jwt.encode: tests need headers joserfc would
    # refuse to produce (``crit``, ``jku``, embedded ``jwk``), signed correctly.
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    signature = JWSRegistry.algorithms[algorithm].sign(signing_input.encode(), key)
    return f"{signing_input}.{b64url(signature)}"


def alg_none(claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
    """An unsigned token with ``alg: none`` and an empty signature (RFC 7519 §6)."""
    header = {"alg": "none", "typ": "JWT", **(headers or {})}
    return f"{_json_segment(header)}.{_json_segment(claims)}."


def hs256_with_public_key(
    claims: Mapping[str, Any], key: SigningKey, *, kid: str | None = None
) -> str:
    """The algorithm-confusion attack: HMAC-SHA256 keyed with the issuer's *public* key PEM.

    A verifier that takes the algorithm from the header and the key from the JWKS
    would accept it.
    """
    header = {"alg": "HS256", "typ": "JWT", "kid": key.kid if kid is None else kid}
    signing_input = f"{_json_segment(header)}.{_json_segment(claims)}"
    secret = key.as_pem(private=False)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def tamper_signature(token: str) -> str:
    """Flip one bit in the signature; header and claims stay intact."""
    head, payload, signature = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)) or b"\0")
    raw[len(raw) // 2] ^= 0x01
    return f"{head}.{payload}.{b64url(bytes(raw))}"


def tamper_payload(token: str, **changes: Any) -> str:
    """Rewrite claims (default: append to ``sub``) and keep the original signature."""
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    if changes:
        claims.update(changes)
    else:
        claims["sub"] = f"{claims.get('sub', '')}-admin"
    return f"{head}.{_json_segment(claims)}.{signature}"


class TokenFactory:
    """Builds the claim sets and tokens one issuer would sign, plus the bad variants.

    Args:
        issuer: the ``iss`` of every token.
        key: the private signing key (its ``kid`` goes into the header).
        audience: the default ``aud``.
        clock: where ``iat``/``exp`` come from (inject the tests' fake clock).
        default_ttl: lifetime in seconds when ``expires_in`` is not given.
        typ: the default ``typ`` header (``at+jwt`` per RFC 9068 §2.1).
    """

    def __init__(
        self,
        issuer: str,
        key: SigningKey,
        *,
        audience: str | None = None,
        clock: Clock | None = None,
        default_ttl: int = 300,
        typ: str = "at+jwt",
    ) -> None:
        self.issuer = issuer
        self.key = key
        self.audience = audience
        self.clock: Clock = clock or SystemClock()
        self.default_ttl = default_ttl
        self.typ = typ

    def __repr__(self) -> str:
        return f"TokenFactory(issuer={self.issuer!r}, kid={self.key.kid!r})"

    def claims(
        self,
        *,
        sub: str = "user-1",
        audience: str | Iterable[str] | None = None,
        scopes: Iterable[str] = (),
        groups: Iterable[str] | None = None,
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        issued_at: float | None = None,
    ) -> dict[str, Any]:
        """The RFC 9068 claim set (``iss``, ``sub``, ``aud``, ``exp``, ``iat``, ``jti``...).

        ``claims`` is merged last, so it can override or (with ``None`` values) remove any.
        """
        now = int(self.clock.time() if issued_at is None else issued_at)
        ttl = self.default_ttl if expires_in is None else expires_in
        result: dict[str, Any] = {"iss": self.issuer, "sub": sub, "iat": now, "exp": int(now + ttl)}
        aud = self.audience if audience is None else audience
        if aud is not None:
            result["aud"] = aud if isinstance(aud, str) else list(aud)
        result["jti"] = uuid.uuid4().hex
        scope_list = list(scopes)
        if scope_list:
            result["scope"] = " ".join(scope_list)
        if groups is not None:
            result["groups"] = list(groups)
        return merge_claims(result, claims)

    def token(self, *, headers: Mapping[str, Any] | None = None, **kw: Any) -> str:
        """A valid signed token; keyword arguments as for :meth:`claims`."""
        return mint(self.claims(**kw), self.key, headers={"typ": self.typ, **(headers or {})})

    def expired(self, **kw: Any) -> str:
        """A token whose ``exp`` passed an hour ago (beyond any sane leeway)."""
        now = self.clock.time()
        return self.token(issued_at=now - 7200, expires_in=3600, **kw)

    def not_yet_valid(self, **kw: Any) -> str:
        """A token whose ``nbf`` and ``iat`` lie an hour in the future."""
        later = self.clock.time() + 3600
        extra = {"nbf": int(later), **kw.pop("claims", {})}
        return self.token(issued_at=later, claims=extra, **kw)

    def wrong_audience(self, **kw: Any) -> str:
        """A token for another API."""
        return self.token(audience="https://other-api.invalid", **kw)

    def wrong_issuer(self, **kw: Any) -> str:
        """A token claiming another issuer, signed with this issuer's key."""
        extra = {"iss": "https://evil.invalid", **kw.pop("claims", {})}
        return self.token(claims=extra, **kw)

    def tampered(self, **kw: Any) -> str:
        """A token with one bit of its signature flipped."""
        return tamper_signature(self.token(**kw))

    def tampered_payload(self, **kw: Any) -> str:
        """A token whose ``sub`` was rewritten after signing."""
        return tamper_payload(self.token(**kw))

    def unknown_kid(self, **kw: Any) -> str:
        """A token signed by a key the issuer never published."""
        stranger = generate_key(_default_alg(self.key), kid=f"unknown-{secrets.token_hex(4)}")
        return mint(self.claims(**kw), stranger, headers={"typ": self.typ})

    def alg_none(self, **kw: Any) -> str:
        """An unsigned ``alg: none`` token with otherwise valid claims."""
        return alg_none(self.claims(**kw), headers={"typ": self.typ, "kid": self.key.kid})

    def hs256_with_public_key(self, **kw: Any) -> str:
        """An HS256 token keyed with this issuer's public key (algorithm confusion)."""
        return hs256_with_public_key(self.claims(**kw), self.key)
