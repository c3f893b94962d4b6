"""DPoP: access tokens bound to a key the client proves it holds (RFC 9449).

A DPoP request carries ``Authorization: DPoP <token>`` and one ``DPoP`` header: a
proof JWS the client signs per request with the private key whose public half it
embeds (``jwk``). The token names that key by its RFC 7638 thumbprint in
``cnf.jkt``. A stolen token is then useless without the key.

The verified-token cache holds the token's verification only: :class:`DPoPChecker`
runs on every request, cached token or not (a proof is single-use). Everything
here is synchronous and bounded: the proof's size, its JSON nesting (the token
parser's limits), the ``jti`` replay memory.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import msgspec

from asgi_sso import _asgi
from asgi_sso.config import Clock, Limits
from asgi_sso.errors import AuthError, InvalidDPoPProof, InvalidToken, ServiceUnavailable
from asgi_sso.keys.jwk import parse_jwk
from asgi_sso.verify.jws import JWSParser, verify_signature

__all__ = [
    "DPOP_ALGORITHMS",
    "DPoPChecker",
    "ReplayCache",
    "access_token_hash",
    "bound_key",
    "check_binding",
    "normalize_htu",
    "request_url",
]

DPOP_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
    "Ed25519",
    "PS256",
    "PS384",
    "PS512",
    "RS256",
    "RS384",
    "RS512",
)
"""Proof algorithms accepted: asymmetric only (never ``none`` or ``HS*``, §4.3 item 5)."""

_ALLOWED = frozenset(DPOP_ALGORITHMS)
# Far above a proof with an RSA-4096 jwk (~1.5 KB); refused before any decoding.
MAX_PROOF_BYTES = 8 * 1024
MAX_JTI_LENGTH = 256
# RFC 7517/7518 private members: a proof carrying one leaks its key, refuse it.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def access_token_hash(token: str) -> str:
    """The proof's ``ath``: base64url of the SHA-256 of the access token's ASCII (§4.2)."""
    return _b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def bound_key(payload: bytes, claims: dict[str, Any] | None = None) -> str | None:
    """The ``cnf.jkt`` thumbprint a token is bound to, ``None`` when it is not bound.

    ``payload`` is the token's claim set JSON; it is decoded (``claims``, when given,
    is used instead) only when it holds ``"cnf"`` at all, so unbound tokens cost one
    substring search.

    Raises:
        InvalidToken: ``cnf`` is there but its ``jkt`` is not a thumbprint.
    """
    if b'"cnf"' not in payload:
        return None
    if claims is None:
        claims = msgspec.json.decode(payload)
    cnf = claims.get("cnf") if isinstance(claims, dict) else None
    if not isinstance(cnf, dict) or "jkt" not in cnf:
        return None  # another confirmation method (x5t#S256 ...), not DPoP's concern
    jkt = cnf["jkt"]
    if not isinstance(jkt, str) or not 1 <= len(jkt) <= 128:
        raise InvalidToken("the token's cnf.jkt is not a key thumbprint")
    return jkt


def _normal_path(path: str) -> str:
    # RFC 3986 §6.2.2: percent-escapes in upper case, unreserved ones decoded.
    if "%" not in path:
        return path or "/"
    out: list[str] = []
    i = 0
    while i < len(path):
        ch = path[i]
        if ch == "%" and _is_hex(path[i + 1 : i + 3]):
            decoded = chr(int(path[i + 1 : i + 3], 16))
            out.append(decoded if decoded in _UNRESERVED else "%" + path[i + 1 : i + 3].upper())
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out) or "/"


def _is_hex(text: str) -> bool:
    return len(text) == 2 and all(c in "0123456789abcdefABCDEF" for c in text)


def normalize_htu(url: object) -> str | None:
    """``url`` without query and fragment, normalised per RFC 3986 §6.2.2-6.2.3 (§4.3).

    Scheme and host in lower case, the default port dropped, an empty path made
    ``/``, percent-escapes in upper case and unreserved ones decoded. ``None`` for
    anything that is not an absolute http(s) URL.
    """
    if not isinstance(url, str) or not url.isascii() or len(url) > MAX_PROOF_BYTES:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{_normal_path(parts.path)}"


def _seconds(value: object) -> float | None:
    # A finite number of seconds; a bool, a string or a 400-digit integer is not.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


class ReplayCache:
    """Proof ``jti`` values seen within the window, bounded (§11.1).

    Entries leave when their window has passed; when full of live entries, new
    proofs are refused with a 503 (forgetting one early would let it be replayed).
    One per worker: with several workers a proof could be replayed once per worker
    within the window (see docs/sender-constrained.md).
    """

    __slots__ = ("_seen", "_size")

    def __init__(self, size: int) -> None:
        self._size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, key: str, until: float, now: float) -> bool:
        """Remember ``key`` until ``until``; ``False`` when it is already remembered.

        Raises:
            ServiceUnavailable: the cache is full of entries still in their window.
        """
        seen = self._seen
        known = seen.get(key)
        if known is not None and known > now:
            return False
        while seen:
            oldest_key, oldest_until = next(iter(seen.items()))
            if oldest_until > now:
                break
            del seen[oldest_key]
        if len(seen) >= self._size:
            raise ServiceUnavailable("too many DPoP proofs to remember; retry shortly")
        seen[key] = until
        return True


class DPoPChecker:
    """Checks the DPoP proof of one request against its token (RFC 9449 §4.3, §7.1).

    Args:
        limits: ``dpop_proof_window``, ``dpop_replay_size`` and the JSON limits.
        clock: wall time for ``iat``.
    """

    __slots__ = ("_clock", "_parser", "_replay", "_window")

    def __init__(self, limits: Limits, clock: Clock) -> None:
        self._parser = JWSParser(limits)
        self._clock = clock
        self._window = limits.dpop_proof_window
        self._replay = ReplayCache(limits.dpop_replay_size)

    @property
    def replay(self) -> ReplayCache:
        """The memory of proofs seen."""
        return self._replay

    def check(
        self, proof: object, *, method: str, url: str, token: str | None, jkt: str | None
    ) -> str:
        """Accept ``proof`` for this request and token, or refuse it.

        Args:
            proof: the ``DPoP`` header's value (untrusted).
            method: the request's HTTP method.
            url: the request's URL as the client addressed it (see :func:`normalize_htu`).
            token: the access token the request presents; ``None`` at a token endpoint,
                where a proof has no ``ath`` to check (§5).
            jkt: the token's ``cnf.jkt``; ``None`` when any key may sign (a token
                request binding a new token to the proof's key).

        Returns:
            The thumbprint of the proof's key.

        Raises:
            InvalidDPoPProof: the proof is missing, malformed, stale, replayed or for
                another request, key or token.
            ServiceUnavailable: the replay memory is full.
        """
        try:
            claims, thumbprint = self._signed(proof)
        except AuthError as error:
            if isinstance(error, InvalidDPoPProof):
                raise
            raise InvalidDPoPProof(f"the DPoP proof is malformed: {error.description}") from None
        except Exception as exc:  # hostile input reaching a parser or crypto library
            raise InvalidDPoPProof("the DPoP proof is malformed") from exc
        if jkt is not None and thumbprint != jkt:
            raise InvalidDPoPProof("the DPoP proof's key is not the key the token is bound to")
        self._check_request(claims, method, url)
        if token is not None and claims.get("ath") != access_token_hash(token):
            raise InvalidDPoPProof("the DPoP proof's ath does not match the access token")
        now = self._clock.time()
        iat = _seconds(claims.get("iat"))
        if iat is None:
            raise InvalidDPoPProof("the DPoP proof's iat must be a number")
        if abs(now - iat) > self._window:
            raise InvalidDPoPProof("the DPoP proof was not issued within the accepted window")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
            raise InvalidDPoPProof("the DPoP proof's jti must be a short string")
        # Last: only proofs that pass everything else take a place in the memory.
        if not self._replay.add(f"{thumbprint} {jti}", iat + self._window, now):
            raise InvalidDPoPProof("the DPoP proof was already used")
        return thumbprint

    def _signed(self, proof: object) -> tuple[dict[str, Any], str]:
        # The proof's claims and its key's thumbprint, once its signature verified.
        if not isinstance(proof, str) or not proof:
            raise InvalidDPoPProof("the request has no DPoP proof")
        if len(proof) > MAX_PROOF_BYTES:
            raise InvalidDPoPProof(f"the DPoP proof is longer than {MAX_PROOF_BYTES} bytes")
        parsed = self._parser.parse(proof)
        header = parsed.header
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() != "dpop+jwt":
            raise InvalidDPoPProof("the DPoP proof's typ must be dpop+jwt")
        if parsed.alg not in _ALLOWED:
            raise InvalidDPoPProof(
                f"the DPoP proof's algorithm is not allowed; use one of {' '.join(DPOP_ALGORITHMS)}"
            )
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDPoPProof("the DPoP proof's header has no jwk")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise InvalidDPoPProof("the DPoP proof's jwk carries private key material")
        try:
            key = parse_jwk(jwk)
        except ValueError as exc:
            raise InvalidDPoPProof(f"the DPoP proof's jwk is unusable: {exc}") from None
        try:
            verify_signature(parsed.alg, parsed.signing_input, parsed.signature, (key,))
        except AuthError:
            raise InvalidDPoPProof("the DPoP proof's signature is invalid") from None
        return parsed.claims, key.thumbprint

    def _check_request(self, claims: dict[str, Any], method: str, url: str) -> None:
        if claims.get("htm") != method:
            raise InvalidDPoPProof("the DPoP proof's htm is not this request's method")
        htu = normalize_htu(claims.get("htu"))
        if htu is None or htu != normalize_htu(url):
            raise InvalidDPoPProof("the DPoP proof's htu is not this request's URL")


def request_url(scope: Any) -> str:
    """The URL a client addressed, for ``htu``: the origin as the server reports it
    (scheme and ``Host``, as the sign-in's default redirect URI), the mount point and
    the path; never the query."""
    return _asgi.request_origin(scope) + _asgi.root_path(scope) + _asgi.route_path(scope)


def _proof_header(scope: Any) -> str | None:
    found: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"dpop":
            if found is not None:
                raise InvalidDPoPProof("the request carries more than one DPoP header")
            found = bytes(value).decode("latin-1")
    return found


def check_binding(
    checker: DPoPChecker | None, scope: Any, token: str, source: str, payload: bytes, mode: str
) -> None:
    """Refuse a request whose token is sent in a way its binding or issuer forbids.

    Args:
        checker: the proof checker, ``None`` when no issuer enables DPoP.
        scope: the ASGI scope (method, URL and the ``DPoP`` header).
        token: the access token.
        source: where it came from: ``"dpop"`` for ``Authorization: DPoP``.
        payload: the verified token's claim set JSON.
        mode: its issuer's ``dpop`` setting.

    Raises:
        InvalidToken: a bound token sent as a bearer token (or in a cookie or query),
            an unbound token sent as DPoP, DPoP where the issuer is ``"off"``, a bearer
            token where it is ``"require"``.
        InvalidDPoPProof: the proof is refused.
    """
    jkt = bound_key(payload)
    if source != "dpop":
        if jkt is not None:
            raise InvalidToken("this token is DPoP-bound: send it with the DPoP scheme and a proof")
        if mode == "require":
            raise InvalidToken("this token's issuer requires DPoP-bound tokens")
        return
    if checker is None or mode == "off":
        raise InvalidToken("this token's issuer does not accept DPoP")
    if jkt is None:
        raise InvalidToken("the token is not DPoP-bound (no cnf.jkt); send it as a bearer token")
    method = scope.get("method") or "GET"
    checker.check(_proof_header(scope), method=method, url=request_url(scope), token=token, jkt=jkt)
