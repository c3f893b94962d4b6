"""Verification keys: turn JWKs (RFC 7517/7518/8037) into checked public keys and key sets.

A remote JWK set is parsed key by key; a key that is unusable for signature
verification (``use: enc``, an unsupported ``kty``/``crv``, private or symmetric
key material, malformed members) is skipped with a reason, never failing the
set (RFC 7517 §5). Symmetric (``oct``) keys come only from configuration
(:func:`key_from_secret`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

__all__ = [
    "MAX_JWKS_KEYS",
    "KeySet",
    "VerificationKey",
    "b64url",
    "key_from_public",
    "key_from_secret",
    "parse_jwk",
    "parse_jwks",
]

MAX_JWKS_KEYS = 100
"""Keys beyond this many in one JWK set are skipped (bounds the work an IdP can cause)."""

_MIN_RSA_BITS = 2048
_MAX_RSA_BITS = 16384
_MIN_HMAC_BYTES = 32  # RFC 7518 §3.2: a key at least as long as the hash output

_RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int, str]] = {
    # crv: (curve, coordinate bytes, the one JWS alg; RFC 7518 §3.4)
    "P-256": (ec.SECP256R1, 32, "ES256"),
    "P-384": (ec.SECP384R1, 48, "ES384"),
    "P-521": (ec.SECP521R1, 66, "ES512"),
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_OKP_ALGS = {"Ed25519": frozenset({"EdDSA", "Ed25519"}), "Ed448": frozenset({"EdDSA"})}
_SIGNING_ALGS = (
    _RSA_ALGS | frozenset(_HMAC_MIN_BYTES) | {"ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)
# Members that only a private (or symmetric) JWK carries (RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2).
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth")


class VerificationKey:
    """One public (or configured symmetric) key able to verify JWS signatures.

    Attributes:
        kid: the JWK ``kid``, if any.
        kty: ``"RSA"``, ``"EC"``, ``"OKP"`` or ``"oct"``.
        alg: the JWK ``alg`` member, if present; it then pins the key to that algorithm.
        crv: the curve of an EC or OKP key.
        use: the JWK ``use`` member, if present (always ``"sig"``).
        key: a ``cryptography`` public key, or ``bytes`` for ``oct``.
        thumbprint: the RFC 7638 SHA-256 thumbprint, base64url without padding.
    """

    __slots__ = ("_algs", "alg", "crv", "key", "kid", "kty", "thumbprint", "use")

    kid: str | None
    kty: str
    alg: str | None
    crv: str | None
    use: str | None
    key: Any
    thumbprint: str
    _algs: frozenset[str]

    def __init__(
        self,
        *,
        kty: str,
        key: Any,
        thumbprint: str,
        algs: frozenset[str],
        kid: str | None = None,
        alg: str | None = None,
        crv: str | None = None,
        use: str | None = None,
    ) -> None:
        self.kid = kid
        self.kty = kty
        self.alg = alg
        self.crv = crv
        self.use = use
        self.key = key
        self.thumbprint = thumbprint
        # The algorithms this key can verify, fixed once: can_verify is a set lookup.
        self._algs = algs if alg is None else algs & {alg}

    def can_verify(self, alg: str) -> bool:
        """Whether this key fits ``alg`` (its type, curve, size and JWK ``alg``, if any)."""
        return alg in self._algs

    def __repr__(self) -> str:
        # Never the key material: an oct key's bytes are a secret.
        return (
            f"VerificationKey(kid={self.kid!r}, kty={self.kty!r}, alg={self.alg!r}, "
            f"crv={self.crv!r}, thumbprint={self.thumbprint!r})"
        )


class KeySet:
    """An immutable set of verification keys, indexed by ``kid``.

    Args:
        keys: the keys, oldest first.
    """

    __slots__ = ("_by_kid", "keys")

    keys: tuple[VerificationKey, ...]

    def __init__(self, keys: Iterable[VerificationKey] = ()) -> None:
        self.keys = tuple(keys)
        by_kid: dict[str, list[VerificationKey]] = {}
        for key in self.keys:
            if key.kid is not None:
                by_kid.setdefault(key.kid, []).append(key)
        self._by_kid = {kid: tuple(found) for kid, found in by_kid.items()}

    def candidates(self, kid: str | None, alg: str) -> tuple[VerificationKey, ...]:
        """Return the keys that may verify a token with this ``kid`` and ``alg``.

        Args:
            kid: the token header's ``kid``; ``None`` means every key that fits ``alg``.
            alg: the algorithm (already checked against the issuer's allow-list).
        """
        pool = self.keys if kid is None else self._by_kid.get(kid, ())
        return tuple(key for key in pool if key.can_verify(alg))

    def has_kid(self, kid: str) -> bool:
        """Whether some key carries this ``kid``."""
        return kid in self._by_kid

    @property
    def kids(self) -> frozenset[str]:
        """Every ``kid`` in the set."""
        return frozenset(self._by_kid)

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[VerificationKey]:
        return iter(self.keys)

    def __repr__(self) -> str:
        return f"KeySet(kids={sorted(self._by_kid)!r}, size={len(self.keys)})"


def _b64decode(value: object, member: str) -> bytes:
    """Decode a base64url member strictly (RFC 7515 §2: no padding, URL-safe alphabet)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"member {member!r} must be a non-empty base64url string")
    if "=" in value or "+" in value or "/" in value or not value.isascii():
        raise ValueError(f"member {member!r} is not base64url")
    try:
        raw = base64.b64decode(
            value.replace("-", "+").replace("_", "/") + "=" * (-len(value) % 4), validate=True
        )
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"member {member!r} is not base64url") from exc
    return raw


def b64url(raw: bytes) -> str:
    """``raw`` in unpadded base64url (RFC 7515 §2), as JOSE members and thumbprints are."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _uint_bytes(value: int, length: int | None = None) -> bytes:
    return value.to_bytes(length or max(1, (value.bit_length() + 7) // 8), "big")


def _thumbprint(members: Mapping[str, str]) -> str:
    # RFC 7638 §3: required members only, sorted, no whitespace; msgspec sorts on request.
    canonical = msgspec.json.encode(dict(sorted(members.items())))
    return b64url(hashlib.sha256(canonical).digest())


def _rsa_key(n: int, e: int) -> tuple[Any, frozenset[str], dict[str, str]]:
    if e < 3 or e % 2 == 0:
        raise ValueError("RSA exponent is invalid")
    bits = n.bit_length()
    if bits < _MIN_RSA_BITS:
        raise ValueError(f"RSA key of {bits} bits is too small (at least {_MIN_RSA_BITS})")
    if bits > _MAX_RSA_BITS:
        raise ValueError(f"RSA key of {bits} bits is too large")
    public = rsa.RSAPublicNumbers(e, n).public_key()
    members = {"kty": "RSA", "n": b64url(_uint_bytes(n)), "e": b64url(_uint_bytes(e))}
    return public, _RSA_ALGS, members


def _ec_key(crv: str, x: bytes, y: bytes) -> tuple[Any, frozenset[str], dict[str, str]]:
    curve, size, alg = _EC_CURVES[crv]
    if len(x) != size or len(y) != size:
        raise ValueError(f"EC coordinates must be {size} bytes for {crv}")
    # Raises ValueError when the point is not on the curve (invalid-curve attacks).
    public = ec.EllipticCurvePublicNumbers(
        int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
    ).public_key()
    members = {"kty": "EC", "crv": crv, "x": b64url(x), "y": b64url(y)}
    return public, frozenset({alg}), members


def _okp_key(crv: str, x: bytes) -> tuple[Any, frozenset[str], dict[str, str]]:
    public: Any
    if crv == "Ed25519":
        public = ed25519.Ed25519PublicKey.from_public_bytes(x)
    else:
        public = ed448.Ed448PublicKey.from_public_bytes(x)
    return public, _OKP_ALGS[crv], {"kty": "OKP", "crv": crv, "x": b64url(x)}


def _hmac_key(secret: bytes) -> tuple[bytes, frozenset[str], dict[str, str]]:
    algs = frozenset(alg for alg, least in _HMAC_MIN_BYTES.items() if len(secret) >= least)
    return secret, algs, {"kty": "oct", "k": b64url(secret)}


def _optional_str(jwk: Mapping[str, Any], member: str) -> str | None:
    value = jwk.get(member)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"member {member!r} must be a string")
    return value


def parse_jwk(obj: object, *, allow_symmetric: bool = False) -> VerificationKey:
    """Build a verification key from one JWK object.

    Args:
        obj: the decoded JSON object of one JWK.
        allow_symmetric: accept an ``oct`` key; only for keys from configuration,
            never for a JWK set fetched from an IdP.

    Returns:
        The checked key.

    Raises:
        ValueError: the JWK is unusable for signature verification; the message
            says why and never contains key material.
    """
    if not isinstance(obj, Mapping):
        raise ValueError("a JWK must be a JSON object")
    kty = _optional_str(obj, "kty")
    kid = _optional_str(obj, "kid")
    alg = _optional_str(obj, "alg")
    use = _optional_str(obj, "use")
    if kty is None:
        raise ValueError("member 'kty' is missing")
    _check_purpose(obj, use, alg)
    built, crv = _build(obj, kty, allow_symmetric=allow_symmetric)
    if kty != "oct" and any(member in obj for member in _PRIVATE_MEMBERS):
        raise ValueError("private key material has no place in a public JWK set")
    public, algs, members = built
    if alg is not None and alg not in algs:
        raise ValueError(f"alg {alg!r} does not fit this {kty} key")
    return VerificationKey(
        kty=kty,
        key=public,
        thumbprint=_thumbprint(members),
        algs=algs,
        kid=kid,
        alg=alg,
        crv=crv,
        use=use,
    )


def _check_purpose(obj: Mapping[str, Any], use: str | None, alg: str | None) -> None:
    # RFC 7517 §4.2-4.4: a key announced for anything but verifying signatures is unusable.
    if use is not None and use != "sig":
        raise ValueError(f"key use {use!r} is not 'sig'")
    key_ops = obj.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise ValueError("key_ops does not include 'verify'")
    if alg is not None and alg not in _SIGNING_ALGS:
        raise ValueError(f"alg {alg!r} is not a supported signature algorithm")


def _build(
    obj: Mapping[str, Any], kty: str, *, allow_symmetric: bool
) -> tuple[tuple[Any, frozenset[str], dict[str, str]], str | None]:
    # The key of each type (RFC 7518 §6, RFC 8037 §2) and its curve, if any.
    if kty == "RSA":
        n = int.from_bytes(_b64decode(obj.get("n"), "n"), "big")
        e = int.from_bytes(_b64decode(obj.get("e"), "e"), "big")
        return _rsa_key(n, e), None
    if kty == "EC":
        crv = _optional_str(obj, "crv")
        if crv not in _EC_CURVES:
            raise ValueError(f"EC curve {crv!r} is not supported")
        return _ec_key(crv, _b64decode(obj.get("x"), "x"), _b64decode(obj.get("y"), "y")), crv
    if kty == "OKP":
        crv = _optional_str(obj, "crv")
        if crv not in _OKP_ALGS:
            raise ValueError(f"OKP curve {crv!r} is not a signature curve")
        return _okp_key(crv, _b64decode(obj.get("x"), "x")), crv
    if kty == "oct":
        if not allow_symmetric:
            raise ValueError("symmetric 'oct' keys are accepted only from configuration")
        secret = _b64decode(obj.get("k"), "k")
        if len(secret) < _MIN_HMAC_BYTES:
            raise ValueError(f"an HMAC key must be at least {_MIN_HMAC_BYTES} bytes")
        return _hmac_key(secret), None
    raise ValueError(f"key type {kty!r} is not supported")


def key_from_secret(secret: bytes, *, kid: str | None = None) -> VerificationKey:
    """Build an HMAC (``HS*``) key from a configured secret.

    Args:
        secret: the shared secret; at least 32 bytes (RFC 7518 §3.2). HS384 and
            HS512 need 48 and 64 bytes and are refused by :meth:`~VerificationKey.can_verify`
            with a shorter key.
        kid: the key id tokens name in their header, if any.

    Raises:
        ValueError: the secret is shorter than 32 bytes.
    """
    if len(secret) < _MIN_HMAC_BYTES:
        raise ValueError(f"an HMAC key must be at least {_MIN_HMAC_BYTES} bytes")
    key, algs, members = _hmac_key(bytes(secret))
    return VerificationKey(kty="oct", key=key, thumbprint=_thumbprint(members), algs=algs, kid=kid)


def key_from_public(pub: Any, *, kid: str | None = None, alg: str | None = None) -> VerificationKey:
    """Wrap a ``cryptography`` public key (or a private key: its public half is used).

    Args:
        pub: an RSA, EC (P-256/384/521), Ed25519 or Ed448 key.
        kid: the key id, if any.
        alg: pin the key to this algorithm, as a JWK ``alg`` member would.

    Raises:
        ValueError: the key type, curve or size is unsupported, or ``alg`` does not fit it.
    """
    if isinstance(
        pub,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        pub = pub.public_key()
    crv: str | None = None
    if isinstance(pub, rsa.RSAPublicKey):
        kty = "RSA"
        numbers = pub.public_numbers()
        public, algs, members = _rsa_key(numbers.n, numbers.e)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        kty, crv = "EC", _CURVE_NAMES.get(pub.curve.name)
        if crv is None:
            raise ValueError(f"EC curve {pub.curve.name!r} is not supported")
        size = _EC_CURVES[crv][1]
        point = pub.public_numbers()
        public, algs, members = _ec_key(crv, _uint_bytes(point.x, size), _uint_bytes(point.y, size))
    elif isinstance(pub, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        kty = "OKP"
        crv = "Ed25519" if isinstance(pub, ed25519.Ed25519PublicKey) else "Ed448"
        public, algs, members = _okp_key(crv, pub.public_bytes_raw())
    else:
        raise ValueError(f"unsupported key type {type(pub).__name__}")
    if alg is not None and alg not in algs:
        raise ValueError(f"alg {alg!r} does not fit this {kty} key")
    return VerificationKey(
        kty=kty, key=public, thumbprint=_thumbprint(members), algs=algs, kid=kid, alg=alg, crv=crv
    )


def parse_jwks(data: bytes) -> tuple[KeySet, list[str]]:
    """Parse a JWK set document, skipping unusable keys one by one (RFC 7517 §5).

    Args:
        data: the raw body; must be UTF-8 JSON (RFC 8259 §8.1).

    Returns:
        The key set and, for each skipped key, a reason naming its position and ``kid``.

    Raises:
        ValueError: the body is not a JSON object with a ``keys`` list.
    """
    try:
        document = msgspec.json.decode(data)
    except Exception as exc:  # msgspec raises DecodeError, RecursionError, Unicode*
        raise ValueError("the JWK set is not valid UTF-8 JSON") from exc
    if not isinstance(document, dict):
        raise ValueError("the JWK set is not a JSON object")
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("the JWK set has no 'keys' list")
    keys: list[VerificationKey] = []
    skipped: list[str] = []
    for index, entry in enumerate(entries):
        kid = entry.get("kid") if isinstance(entry, dict) else None
        label = f"key {index}" + (f" (kid {kid[:64]!r})" if isinstance(kid, str) else "")
        if index >= MAX_JWKS_KEYS:
            skipped.append(f"{label}: more than {MAX_JWKS_KEYS} keys in the set")
            continue
        try:
            keys.append(parse_jwk(entry))
        except Exception as exc:  # one bad key never fails the set
            reason = str(exc) if isinstance(exc, ValueError) else type(exc).__name__
            skipped.append(f"{label}: {reason}")
    return KeySet(keys), skipped
