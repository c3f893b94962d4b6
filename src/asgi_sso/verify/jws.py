"""Strict compact JWS parsing and lean signature verification with ``cryptography``.

This is the hot path of every cold token check: the token is split and checked in
one pass, and signatures are verified against pre-built ``cryptography`` objects.
Nothing here reads the network or the clock; nothing here chooses an algorithm
from the header alone (the caller checks it against the issuer's allow-list).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import msgspec
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from asgi_sso.config import Limits
from asgi_sso.errors import InvalidSignature, MalformedToken, UnknownKey

__all__ = ["JWSParser", "ParsedToken", "SignatureKey", "der_signature", "verify_signature"]

# RFC 7515 §2, §7.1: three non-empty base64url segments without padding. An empty
# signature (the "none" algorithm) is refused after the header says why.
_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# "-_" become "+/"; the characters that mapping would otherwise let in ("+", "/"),
# padding ("=") and what a JSON string would read specially (quote, backslash)
# become "!", which base64 decoding refuses. One pass over the token thus both
# converts the alphabet and rules out every stray character.
_TO_STANDARD: Final = bytes.maketrans(b'-_+/="\\', b"+/!!!!!")
# The last character of a segment may only carry data bits (RFC 4648 §3.5): with
# two or three characters in the last quantum, the unused low bits must be zero,
# otherwise several spellings decode to the same bytes and a mutated signature
# would still verify.
_CANONICAL_LAST: Final = {
    2: frozenset(_ALPHABET[::16]),
    3: frozenset(_ALPHABET[::4]),
}
# Segments are decoded by msgspec as a JSON string holding standard base64 (three
# times faster than ``binascii.a2b_base64``): the closing quote follows the padding.
_CLOSE: Final = (b'"', b'"', b'=="', b'="')
_BASE64: Final = msgspec.json.Decoder(bytes).decode
_JSON: Final = msgspec.json.Decoder().decode
_MISSING: Final = object()

# A verifier returns False when the key cannot serve the algorithm and raises when
# the signature is wrong.
_Verify = Callable[[Any, bytes, bytes], bool]


class SignatureKey(Protocol):
    """What verification needs from a key (``asgi_sso.keys.jwk.VerificationKey`` fits)."""

    @property
    def kid(self) -> str | None: ...

    @property
    def key(self) -> Any: ...

    def can_verify(self, alg: str) -> bool:
        """Whether this key may verify ``alg`` signatures."""
        ...


class ParsedToken(msgspec.Struct, gc=False):
    """A compact JWS split and decoded, not yet verified.

    A ``msgspec.Struct`` built positionally: construction runs in C (one is built
    per cold verification), and it holds no cycles, so the GC need not track it.

    Attributes:
        header: the protected header.
        claims: the decoded claim set.
        payload: the claim set's JSON bytes.
        alg: the header's ``alg``.
        kid: the header's ``kid``, if any.
        signing_input: the ASCII bytes the signature covers (RFC 7515 §5.2).
        signature: the decoded signature bytes.
    """

    header: dict[str, Any]
    claims: dict[str, Any]
    payload: bytes
    alg: str
    kid: str | None
    signing_input: bytes
    signature: bytes


def _b64decode(standard: bytes, token: str, start: int, end: int) -> bytes:
    """Decode ``token[start:end]``, already translated to the standard alphabet.

    Strict: any character outside the alphabet is refused (the translation has
    turned ``+``, ``/``, ``=``, ``"`` and ``\\`` into ``!``, which base64 refuses;
    control characters end a JSON string with an error).
    """
    size = (end - start) % 4
    if size == 1 or (size and token[end - 1] not in _CANONICAL_LAST[size]):
        raise MalformedToken("the token has a badly encoded segment")
    try:
        return _BASE64(b'"' + standard[start:end] + _CLOSE[size])
    except msgspec.DecodeError as exc:
        raise MalformedToken("the token has a badly encoded segment") from exc


def _depth(value: object) -> int:
    """Nesting depth of decoded JSON (containers count one level each)."""
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _json_object(data: bytes, max_depth: int, what: str) -> dict[str, Any]:
    # msgspec decodes strict UTF-8 (no UTF-16 guessing, RFC 7519 §7.2) and keeps the
    # lexically last duplicate member, which RFC 7515 §4 permits.
    try:
        value = _JSON(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedToken(f"the token {what} is not UTF-8 JSON") from exc
    if type(value) is not dict:
        raise MalformedToken(f"the token {what} is not a JSON object")
    # A flat object has no second "{" and no "[" (two memchr scans); otherwise
    # counting brackets is a cheap upper bound, and only then is the value walked.
    if (
        (data.find(b"[") >= 0 or data.find(b"{", 1) >= 0)
        and data.count(b"{") + data.count(b"[") > max_depth
        and _depth(value) > max_depth
    ):
        raise MalformedToken(f"the token {what} is nested too deeply")
    return value


def _check_header(header: dict[str, Any], max_kid: int) -> tuple[str, str | None]:
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise MalformedToken("the token header has no 'alg'")
    if alg.lower() == "none":
        raise MalformedToken("unsigned tokens (alg 'none') are never accepted")
    # RFC 7515 §4.1.11: we understand no extension, so any 'crit' is a refusal.
    if "crit" in header:
        raise MalformedToken("the token header lists critical extensions that are not supported")
    # RFC 7797: an unencoded payload is not supported.
    if header.get("b64", True) is not True:
        raise MalformedToken("unencoded payloads (b64=false) are not supported")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise MalformedToken("the token header 'kid' must be a string")
    if kid is not None and len(kid) > max_kid:
        # Refused here, so an over-long kid never reaches a cache key or a key lookup.
        raise MalformedToken(f"the token header 'kid' is longer than {max_kid} characters")
    typ = header.get("typ", _MISSING)
    if typ is not _MISSING and not isinstance(typ, str):
        raise MalformedToken("the token header 'typ' must be a string")
    # jku, x5u, jwk and x5c are deliberately ignored: keys come only from the issuer.
    return alg, kid


class JWSParser:
    """Splits and decodes compact JWS tokens under the configured limits.

    Args:
        limits: the size and nesting limits.
    """

    __slots__ = ("_max_bytes", "_max_depth", "_max_kid")

    def __init__(self, limits: Limits) -> None:
        self._max_bytes = limits.max_token_bytes
        self._max_depth = limits.max_json_depth
        self._max_kid = limits.max_kid_length

    def parse(self, token: object) -> ParsedToken:
        """Split ``token`` and decode its header and claims.

        Raises:
            MalformedToken: the token is not a strict compact JWS with a JSON claim set.
        """
        if not isinstance(token, str):
            raise MalformedToken("the token must be text")
        if len(token) > self._max_bytes:
            raise MalformedToken(f"the token is longer than {self._max_bytes} bytes")
        if not token.isascii():
            raise MalformedToken("the token is not a compact JWS (three base64url segments)")
        raw = token.encode("ascii")
        first = token.find(".")
        second = token.find(".", first + 1)
        if first < 1 or second < 0 or second == first + 1:
            raise MalformedToken("the token is not a compact JWS (three base64url segments)")
        # Segments decode strictly from the translated text: "+", "/" and "=" became
        # "!", so they fail like any other stray character (a third "." included).
        standard = raw.translate(_TO_STANDARD)
        header = _json_object(_b64decode(standard, token, 0, first), self._max_depth, "header")
        alg, kid = _check_header(header, self._max_kid)
        end = len(token)
        if second == end - 1:
            raise MalformedToken("the token has no signature")
        # The signature's last character must be canonical (as in _b64decode, inline).
        # No such test for the claims: the signature covers their encoded text, so
        # another spelling of these claims would need its own signature.
        tail = (end - second - 1) % 4
        if tail == 1 or (tail and token[end - 1] not in _CANONICAL_LAST[tail]):
            raise MalformedToken("the token has a badly encoded segment")
        try:
            claims_json = _BASE64(
                b'"' + standard[first + 1 : second] + _CLOSE[(second - first - 1) % 4]
            )
            signature = _BASE64(b'"' + standard[second + 1 :] + _CLOSE[tail])
        except msgspec.DecodeError as exc:
            raise MalformedToken("the token has a badly encoded segment") from exc
        claims = _json_object(claims_json, self._max_depth, "claim set")
        return ParsedToken(header, claims, claims_json, alg, kid, raw[:second], signature)


class _KindOf:
    """``isinstance`` against ``cryptography``'s abstract key classes, remembering
    the concrete classes that passed (an ABC check costs more than a set lookup).

    Callers test ``type(key) in kinds.seen`` first and call :meth:`admits` only
    for a class not seen yet.
    """

    __slots__ = ("_abc", "seen")

    def __init__(self, *abc: type[Any]) -> None:
        self._abc = abc
        self.seen: set[type[Any]] = set()

    def admits(self, key: object) -> bool:
        if isinstance(key, self._abc):
            self.seen.add(type(key))
            return True
        return False


def _rsa(pad: padding.AsymmetricPadding, algorithm: hashes.HashAlgorithm) -> _Verify:
    rsa_keys = _KindOf(rsa.RSAPublicKey)
    seen = rsa_keys.seen

    def verify(key: Any, signature: bytes, data: bytes) -> bool:
        # RFC 7518 §3.3: keys below 2048 bits must not be used.
        if (type(key) not in seen and not rsa_keys.admits(key)) or key.key_size < 2048:
            return False
        key.verify(signature, data, pad, algorithm)
        return True

    return verify


# DER DigestInfo prefixes (RFC 8017 §9.2, note 1), by hash.
_DIGEST_INFO: Final = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _rsa_pkcs1(name: str) -> _Verify:
    """RSASSA-PKCS1-v1_5 as RFC 8017 §8.2.2 puts it: recover the encoded message, then
    compare it whole with the expected ``DigestInfo || H(data)``.

    ``cryptography`` recovers (RSA public operation, type-1 padding checked) and
    ``hashlib`` hashes, which costs less per token than ``RSAPublicKey.verify`` with
    its padding and hash objects. Nothing is parsed out of the recovered bytes, so a
    signature encoding anything else (another hash, trailing bytes) never matches.
    """
    rsa_keys = _KindOf(rsa.RSAPublicKey)
    seen = rsa_keys.seen
    prefix = _DIGEST_INFO[name]
    digest = getattr(hashlib, name)
    pkcs1 = padding.PKCS1v15()

    def verify(key: Any, signature: bytes, data: bytes) -> bool:
        # RFC 7518 §3.3: keys below 2048 bits must not be used.
        if (type(key) not in seen and not rsa_keys.admits(key)) or key.key_size < 2048:
            return False
        # RFC 8017 §8.2.2 step 1: exactly the modulus length (recovery alone would
        # also take a signature missing its leading zero bytes).
        if len(signature) != (key.key_size + 7) // 8:
            raise ValueError("wrong signature length")
        if not hmac.compare_digest(
            key.recover_data_from_signature(signature, pkcs1, None),
            prefix + digest(data).digest(),
        ):
            raise ValueError("signature mismatch")
        return True

    return verify


def _pss(algorithm: hashes.HashAlgorithm) -> _Verify:
    # RFC 7518 §3.5: MGF1 with the same hash; the salt is as long as the hash output.
    return _rsa(padding.PSS(padding.MGF1(algorithm), algorithm.digest_size), algorithm)


def _der_integer(value: bytes) -> bytes:
    # X.690 §8.3: minimal big-endian two's complement (one leading zero when the
    # high bit is set); every length here is below 128, so one length byte.
    value = value.lstrip(b"\x00")
    if not value or value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + len(value).to_bytes(1, "big") + value


def der_signature(raw: bytes, size: int) -> bytes:
    """DER ``ECDSA-Sig-Value`` (RFC 3279 §2.2.3) of a JWS ``R || S`` signature.

    Byte slicing instead of integers and ``encode_dss_signature``: about half the
    cost on the cold path, with identical output (a property test compares them).
    """
    body = _der_integer(raw[:size]) + _der_integer(raw[size:])
    length = len(body)
    # P-521 bodies exceed 127 bytes: long-form length (X.690 §8.1.3.5).
    prefix = b"\x30" if length < 128 else b"\x30\x81"
    return prefix + length.to_bytes(1, "big") + body


def _ecdsa(curve: str, size: int, algorithm: hashes.HashAlgorithm) -> _Verify:
    scheme = ec.ECDSA(algorithm)
    ec_keys = _KindOf(ec.EllipticCurvePublicKey)
    seen = ec_keys.seen

    def verify(key: Any, signature: bytes, data: bytes) -> bool:
        # RFC 7518 §3.4: R || S, each exactly the curve's byte length.
        if (
            (type(key) not in seen and not ec_keys.admits(key))
            or key.curve.name != curve
            or len(signature) != 2 * size
        ):
            return False
        key.verify(der_signature(signature, size), data, scheme)
        return True

    return verify


def _eddsa(types: tuple[type[Any], ...]) -> _Verify:
    ed_keys = _KindOf(*types)
    seen = ed_keys.seen

    def verify(key: Any, signature: bytes, data: bytes) -> bool:
        if type(key) not in seen and not ed_keys.admits(key):
            return False
        key.verify(signature, data)
        return True

    return verify


def _hmac(digest: Callable[..., Any]) -> _Verify:
    size = digest().digest_size

    def verify(key: Any, signature: bytes, data: bytes) -> bool:
        # RFC 7518 §3.2: the key must be at least as long as the hash output.
        if not isinstance(key, bytes) or len(key) < size or len(signature) != size:
            return False
        return hmac.compare_digest(hmac.new(key, data, digest).digest(), signature)

    return verify


_VERIFIERS: Final[dict[str, _Verify]] = {
    "RS256": _rsa_pkcs1("sha256"),
    "RS384": _rsa_pkcs1("sha384"),
    "RS512": _rsa_pkcs1("sha512"),
    "PS256": _pss(hashes.SHA256()),
    "PS384": _pss(hashes.SHA384()),
    "PS512": _pss(hashes.SHA512()),
    "ES256": _ecdsa("secp256r1", 32, hashes.SHA256()),
    "ES384": _ecdsa("secp384r1", 48, hashes.SHA384()),
    "ES512": _ecdsa("secp521r1", 66, hashes.SHA512()),
    "EdDSA": _eddsa((ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)),
    "Ed25519": _eddsa((ed25519.Ed25519PublicKey,)),
    "HS256": _hmac(hashlib.sha256),
    "HS384": _hmac(hashlib.sha384),
    "HS512": _hmac(hashlib.sha512),
}


def verify_signature(
    alg: str, signing_input: bytes, signature: bytes, keys: Sequence[SignatureKey]
) -> SignatureKey:
    """Verify a signature with the first candidate key that accepts it.

    Args:
        alg: the algorithm, already checked against the issuer's allow-list.
        signing_input: the bytes the signature covers.
        signature: the decoded signature.
        keys: candidate keys in order; a key whose ``can_verify(alg)`` is false is never used.

    Returns:
        The key that verified the signature.

    Raises:
        UnknownKey: no candidate key may verify ``alg``.
        InvalidSignature: no candidate key verifies the signature.
    """
    verify = _VERIFIERS.get(alg)
    if verify is None:
        raise InvalidSignature(f"the algorithm {alg!r} is not supported")
    usable = False
    for candidate in keys:
        if not candidate.can_verify(alg):
            continue
        usable = True
        try:
            if verify(candidate.key, signature, signing_input):
                return candidate
        except Exception:  # noqa: S112 - any cryptography failure is a bad signature
            continue
    if not usable:
        raise UnknownKey(f"no key of the issuer can verify {alg} signatures")
    raise InvalidSignature()
