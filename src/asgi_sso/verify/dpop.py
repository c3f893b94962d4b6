"""DPoP: access tokens bound to a key the client proves it holds (RFC 9449).

A DPoP request carries ``Authorization: DPoP <token>`` and one ``DPoP`` header: a
proof JWS the client signs per request with the private key whose public half it
embeds (``jwk``). The token names that key by its RFC 7638 thumbprint in
``cnf.jkt``. A stolen token is then useless without the key.

The verified-token cache holds the token's verification only: :class:`DPoPChecker`
runs on every request, cached token or not (a proof is single-use). Everything
here is bounded: the proof's size, its JSON nesting (the token parser's limits),
the ``jti`` replay memory. The replay memory is a :class:`ProofMemory`: this
worker's :class:`ReplayCache` by default, or one every worker shares (Redis, see
:mod:`asgi_sso.verify.dpop_redis`). Server-provided nonces (§8, §9) are
:class:`DPoPNonces`: stateless, so every worker holding the same secrets agrees.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

import msgspec

from asgi_sso import _asgi
from asgi_sso.config import Clock, Limits, Secret, SystemClock
from asgi_sso.errors import (
    AuthError,
    InvalidDPoPProof,
    InvalidToken,
    ServiceUnavailable,
    UseDPoPNonce,
)
from asgi_sso.keys.jwk import VerificationKey, b64url, parse_jwk
from asgi_sso.verify.jws import JWSParser, verify_signature

__all__ = [
    "DPOP_ALGORITHMS",
    "CheckedProof",
    "DPoPChecker",
    "DPoPNonces",
    "ProofMemory",
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
_KEY_CACHE_SIZE = 1024
"""Proof keys kept parsed, by their proof header (least recently used dropped first)."""
# RFC 7517/7518 private members: a proof carrying one leaks its key, refuse it.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def access_token_hash(token: str) -> str:
    """The proof's ``ath``: base64url of the SHA-256 of the access token's ASCII (§4.2)."""
    return b64url(hashlib.sha256(token.encode("ascii", "replace")).digest())


def bound_key(payload: bytes, claims: dict[str, Any] | None = None) -> str | None:
    """The ``cnf.jkt`` thumbprint a token is bound to, ``None`` when it is not bound.

    ``payload`` is the token's claim set JSON; it is decoded (``claims``, when given,
    is used instead) only when it holds ``"cnf"`` or a JSON escape (which could spell
    it) at all, so most unbound tokens cost two substring searches.

    Raises:
        InvalidToken: ``cnf`` is there but its ``jkt`` is not a thumbprint.
    """
    if b'"cnf"' not in payload and b"\\u" not in payload:
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


# A client names the same few URLs again and again: remember their normal forms
# (few, as an htu may be kilobytes long).
_normalized = functools.lru_cache(maxsize=256)(normalize_htu)


def _seconds(value: object) -> float | None:
    # A finite number of seconds; a bool, a string or a 400-digit integer is not.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None


class ProofMemory(Protocol):
    """Where accepted proofs are remembered against replay (§11.1).

    Shared by every worker (:class:`~asgi_sso.verify.dpop_redis.RedisProofMemory`),
    a proof accepted by one is refused by the others; the default,
    :class:`ReplayCache`, is this worker's only.
    """

    async def remember(self, key: str, until: float) -> bool:
        """Remember ``key`` until ``until`` (wall-clock seconds).

        Returns:
            ``True`` when ``key`` is new, ``False`` when it is already remembered.

        Raises:
            ServiceUnavailable: the memory cannot take it (full, or unreachable).
        """
        ...


class ReplayCache:
    """Proof ``jti`` values seen within the window, bounded (§11.1).

    Entries leave when their window has passed; when full of live entries, new
    proofs are refused with a 503 (forgetting one early would let it be replayed).
    One per worker: with several workers a proof could be replayed once per worker
    within the window, unless a shared :class:`ProofMemory` replaces it.

    Args:
        size: entries at most.
        clock: wall time for :meth:`remember` (default: the system clock).
    """

    __slots__ = ("_clock", "_seen", "_size")

    def __init__(self, size: int, clock: Clock | None = None) -> None:
        self._size = size
        self._clock = clock or SystemClock()
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    async def remember(self, key: str, until: float) -> bool:
        """:meth:`add` at the clock's time (the :class:`ProofMemory` protocol)."""
        return self.add(key, until, self._clock.time())

    def add(self, key: str, until: float, now: float) -> bool:
        """Remember ``key`` until ``until``; ``False`` when it is already remembered.

        Raises:
            ServiceUnavailable: the cache is full of entries still in their window.
        """
        seen = self._seen
        known = seen.get(key)
        # A proof is accepted up to and including ``iat + window``: it is remembered
        # through that instant too.
        if known is not None and known >= now:
            return False
        while seen:
            oldest_key, oldest_until = next(iter(seen.items()))
            if oldest_until >= now:
                break
            del seen[oldest_key]
        if len(seen) >= self._size:
            raise ServiceUnavailable("too many DPoP proofs to remember; retry shortly")
        seen[key] = until
        return True


NONCE_LENGTH = 22
"""Characters of a server nonce: 16 bytes of HMAC-SHA256, base64url."""
_NONCE_LABEL = b"asgi_sso dpop nonce "


class DPoPNonces:
    """Server-provided proof nonces (RFC 9449 §8, §9), stateless and shared by workers.

    A nonce is an HMAC of the current time period (``lifetime`` seconds long) under
    the newest secret; the nonces of the current and the previous period are
    accepted, under any of the secrets, so a nonce lives between one and two
    periods and a secret can be rotated without refusing proofs in flight. Workers
    holding the same secrets and clocks issue and accept the same nonces.

    Args:
        secrets: oldest to newest; the newest issues nonces.
        lifetime: the length of one period, seconds.
        clock: wall time.
    """

    __slots__ = ("_clock", "_keys", "_lifetime", "_period", "_valid")

    def __init__(self, secrets: Sequence[Secret], lifetime: float, clock: Clock) -> None:
        if not secrets or not lifetime > 0:
            raise ValueError("DPoPNonces needs a secret and a positive lifetime")
        self._keys = tuple(secret.reveal() for secret in reversed(secrets))
        self._lifetime = lifetime
        self._clock = clock
        self._period = -1
        self._valid: tuple[str, ...] = ()

    def _nonce(self, key: bytes, period: int) -> str:
        mac = hmac.new(key, _NONCE_LABEL + str(period).encode(), hashlib.sha256)
        return b64url(mac.digest()[:16])

    def _refresh(self) -> tuple[str, ...]:
        # The accepted nonces, the current one (newest secret) first; once per period.
        period = math.floor(self._clock.time() / self._lifetime)
        if period != self._period:
            self._valid = tuple(
                self._nonce(key, p) for p in (period, period - 1) for key in self._keys
            )
            self._period = period
        return self._valid

    def current(self) -> str:
        """The nonce to hand out now."""
        return self._refresh()[0]

    def check(self, value: object) -> bool:
        """Accept ``value`` as a proof's ``nonce``; whether it is the current one.

        Returns:
            ``True`` for the current nonce; ``False`` for one that is still accepted
            but expires at the end of this period (the client should take the
            current one, sent in a ``DPoP-Nonce`` header).

        Raises:
            UseDPoPNonce: no nonce, or one that is not accepted (unknown, expired,
                malformed); the error carries a fresh nonce.
        """
        valid = self._refresh()
        if not isinstance(value, str) or len(value) != NONCE_LENGTH or not value.isascii():
            raise UseDPoPNonce(valid[0], self._missing(value))
        raw = value.encode()
        found = [hmac.compare_digest(raw, nonce.encode()) for nonce in valid]
        if not any(found):
            raise UseDPoPNonce(valid[0], "the DPoP proof's nonce has expired or is unknown")
        return found[0]

    @staticmethod
    def _missing(value: object) -> str:
        if value is None:
            return "the resource server requires a nonce in the DPoP proof"
        return "the DPoP proof's nonce is malformed"


class CheckedProof(NamedTuple):
    """What an accepted proof tells: its key, and a nonce to send back."""

    thumbprint: str
    """The RFC 7638 thumbprint of the proof's key."""
    nonce: str | None
    """A fresh server nonce for ``DPoP-Nonce``, ``None`` when the proof's is fresh enough."""


class DPoPChecker:
    """Checks the DPoP proof of one request against its token (RFC 9449 §4.3, §7.1).

    Args:
        limits: ``dpop_proof_window``, ``dpop_replay_size`` and the JSON limits.
        clock: wall time for ``iat``.
        memory: where accepted proofs are remembered; default: a :class:`ReplayCache`
            of ``dpop_replay_size`` entries in this worker.
        nonces: require a server nonce in every proof (§9); ``None``: no nonce.
        external_url: the URL the app is reached at from outside (a proxy's
            ``https://api.example.com/base``), replacing the scheme, host and mount
            point the server reports in the URL a proof's ``htu`` must name.
    """

    __slots__ = ("_base", "_clock", "_keys", "_memory", "_nonces", "_parser", "_window")

    def __init__(
        self,
        limits: Limits,
        clock: Clock,
        *,
        memory: ProofMemory | None = None,
        nonces: DPoPNonces | None = None,
        external_url: str | None = None,
    ) -> None:
        self._parser = JWSParser(limits)
        self._clock = clock
        self._window = limits.dpop_proof_window
        self._memory: ProofMemory = memory or ReplayCache(limits.dpop_replay_size, clock)
        self._nonces = nonces
        self._base = external_url.rstrip("/") if external_url is not None else None
        self._keys: OrderedDict[str, VerificationKey] = OrderedDict()

    @property
    def replay(self) -> ProofMemory:
        """The memory of proofs seen."""
        return self._memory

    @property
    def nonces(self) -> DPoPNonces | None:
        """The server nonces proofs must carry, ``None`` when none is required."""
        return self._nonces

    def request_url(self, scope: Any) -> str:
        """The URL of this request a proof's ``htu`` must name (see :func:`request_url`)."""
        if self._base is None:
            return request_url(scope)
        return self._base + _asgi.spelled_route_path(scope)

    async def check(
        self, proof: object, *, method: str, url: str, token: str | None, jkt: str | None
    ) -> CheckedProof:
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
            The thumbprint of the proof's key, and a fresh server nonce for the
            response's ``DPoP-Nonce`` header when the proof's nonce is about to expire.

        Raises:
            InvalidDPoPProof: the proof is missing, malformed, stale, replayed or for
                another request, key or token.
            UseDPoPNonce: nonces are required and the proof's is missing or expired.
            ServiceUnavailable: the replay memory is full or unreachable.
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
        renew = None
        if self._nonces is not None and not self._nonces.check(claims.get("nonce")):
            renew = self._nonces.current()
        # Last: only proofs that pass everything else take a place in the memory.
        if not await self._memory.remember(f"{thumbprint} {jti}", iat + self._window):
            raise InvalidDPoPProof("the DPoP proof was already used")
        return CheckedProof(thumbprint, renew)

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
        # A client sends the same header (typ, alg, jwk) with every proof: its key is
        # built once. The cache holds parsed keys only; every signature is checked.
        segment = proof.partition(".")[0]
        key = self._keys.get(segment)
        if key is None:
            try:
                key = parse_jwk(jwk)
            except ValueError as exc:
                raise InvalidDPoPProof(f"the DPoP proof's jwk is unusable: {exc}") from None
        try:
            verify_signature(parsed.alg, parsed.signing_input, parsed.signature, (key,))
        except AuthError:
            raise InvalidDPoPProof("the DPoP proof's signature is invalid") from None
        self._remember_key(segment, key)
        return parsed.claims, key.thumbprint

    def _remember_key(self, segment: str, key: VerificationKey) -> None:
        keys = self._keys
        if segment in keys:
            keys.move_to_end(segment)
            return
        keys[segment] = key
        if len(keys) > _KEY_CACHE_SIZE:
            keys.popitem(last=False)

    def _check_request(self, claims: dict[str, Any], method: str, url: str) -> None:
        if claims.get("htm") != method:
            raise InvalidDPoPProof("the DPoP proof's htm is not this request's method")
        htu = claims.get("htu")
        normal = _normalized(htu) if isinstance(htu, str) else None
        if normal is None or normal != _normalized(url):
            raise InvalidDPoPProof("the DPoP proof's htu is not this request's URL")


def request_url(scope: Any) -> str:
    """The URL a client addressed, for ``htu``: the origin as the server reports it
    (scheme and ``Host``, as the sign-in's default redirect URI), the mount point and
    the path as the client spelled it (percent-escapes kept); never the query."""
    origin = _asgi.request_origin(scope)
    return origin + _asgi.spelled_root_path(scope) + _asgi.spelled_route_path(scope)


def _proof_header(scope: Any) -> str | None:
    found: str | None = None
    for name, value in scope.get("headers", ()):
        if name == b"dpop":
            if found is not None:
                raise InvalidDPoPProof("the request carries more than one DPoP header")
            found = bytes(value).decode("latin-1")
    return found


async def check_binding(
    checker: DPoPChecker | None, scope: Any, token: str, source: str, payload: bytes, mode: str
) -> list[tuple[bytes, bytes]] | None:
    """Refuse a request whose token is sent in a way its binding or issuer forbids.

    Args:
        checker: the proof checker, ``None`` when no issuer enables DPoP.
        scope: the ASGI scope (method, URL and the ``DPoP`` header).
        token: the access token.
        source: where it came from: ``"dpop"`` for ``Authorization: DPoP``.
        payload: the verified token's claim set JSON.
        mode: its issuer's ``dpop`` setting.

    Returns:
        Response headers for an accepted proof (a fresh ``DPoP-Nonce``), or ``None``.

    Raises:
        InvalidToken: a bound token sent as a bearer token (or in a cookie or query),
            an unbound token sent as DPoP, DPoP where the issuer is ``"off"``, a bearer
            token where it is ``"require"``.
        InvalidDPoPProof: the proof is refused (``UseDPoPNonce``: it needs a nonce).
        ServiceUnavailable: the replay memory is full or unreachable.
    """
    jkt = bound_key(payload)
    if source != "dpop":
        if jkt is not None:
            raise InvalidToken("this token is DPoP-bound: send it with the DPoP scheme and a proof")
        if mode == "require":
            raise InvalidToken("this token's issuer requires DPoP-bound tokens")
        return None
    if checker is None or mode == "off":
        raise InvalidToken("this token's issuer does not accept DPoP")
    if jkt is None:
        raise InvalidToken("the token is not DPoP-bound (no cnf.jkt); send it as a bearer token")
    method = scope.get("method") or "GET"
    url = checker.request_url(scope)
    checked = await checker.check(
        _proof_header(scope), method=method, url=url, token=token, jkt=jkt
    )
    nonce = checked.nonce
    return None if nonce is None else [(b"dpop-nonce", nonce.encode("ascii"))]
