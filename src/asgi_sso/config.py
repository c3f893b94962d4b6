"""Settings objects: trusted issuers, named limits, redacted secrets, clocks.

Every setting is a frozen, keyword-only msgspec Struct validated when built, so a
bad configuration fails at start-up with a clear message, never on a request.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Sequence
from typing import Literal, Protocol, cast
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, UnsetType

from asgi_sso._fields import conform
from asgi_sso.errors import ConfigurationError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "SUPPORTED_ALGORITHMS",
    "CertificateHeader",
    "Clock",
    "Introspection",
    "Issuer",
    "Limits",
    "Secret",
    "SystemClock",
    "check_fields",
    "is_loopback",
    "plain_http_host",
]

SUPPORTED_ALGORITHMS = frozenset(
    {
        "RS256", "RS384", "RS512",
        "PS256", "PS384", "PS512",
        "ES256", "ES384", "ES512",
        "EdDSA", "Ed25519",
        "HS256", "HS384", "HS512",
    }
)  # fmt: skip
# RFC 7518 §3.2: an HMAC key is at least as long as the hash output.
_HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
ASYMMETRIC_ALGORITHMS = SUPPORTED_ALGORITHMS - set(_HMAC_MIN_BYTES)

AT_JWT_TYPES = ("at+jwt", "application/at+jwt")  # RFC 9068 §2.1
_TENANT = "{tenant}"


def check_fields(struct: msgspec.Struct) -> None:
    """Refuse a settings Struct whose values do not fit their annotations.

    Called first by every settings Struct's ``__post_init__``: msgspec checks types
    only when decoding, so a string where a list belongs, or a ``dict`` where a
    :class:`Secret` belongs, would otherwise fail later, on a request. Lists given
    for tuples become tuples.

    Raises:
        ConfigurationError: a value of the wrong type, naming the field and what it takes.
    """
    problem = conform(struct)
    if problem is not None:
        raise ConfigurationError(problem)


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost`` (and ``*.localhost``, RFC 6761
    §6.3), ``127.0.0.0/8`` or ``::1``."""
    if not host:
        return False
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plain_http_host(url: str | None) -> str | None:
    """The host of a plain-``http`` URL to another machine (traffic anyone on the
    way can read and change), else ``None``: https, loopback http and non-URLs."""
    if not url:
        return None
    try:
        parts = urlsplit(url.replace(_TENANT, "t"))
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() != "http" or is_loopback(host):
        return None
    return host or "(no host)"


class Clock(Protocol):
    """Where time comes from; injected so tests advance it and never sleep."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch, for claims (``exp``, ``nbf``, ``iat``)."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds, for cache lifetimes and cooldowns."""
        ...


_wall_time = time.time
_monotonic = time.monotonic


class SystemClock:
    """The real clock: ``time`` is :func:`time.time`, ``monotonic`` is :func:`time.monotonic`.

    The functions themselves, not methods calling them: the verification path reads
    the clock on every cold token, and a Python call frame costs more than the read.
    """

    __slots__ = ()

    time = staticmethod(_wall_time)
    monotonic = staticmethod(_monotonic)


_MAX_SECRET_FILE = 1024 * 1024


class Secret:
    """A secret value whose ``repr`` and ``str`` never show it.

    Use :meth:`reveal` at the single place the value is needed.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str | bytes) -> None:
        if not value:
            raise ConfigurationError("a secret must not be empty")
        self._value = value.encode() if isinstance(value, str) else bytes(value)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Secret:
        """Read a secret from a file (a mounted secret, a PEM private key).

        Whitespace at either end is dropped: a trailing newline is not part of a
        client secret, and a PEM key does not need it.

        Raises:
            ConfigurationError: the file cannot be read, is empty or larger than 1 MiB
                (the message names the path, never the content).
        """
        try:
            with open(path, "rb") as file:
                data = file.read(_MAX_SECRET_FILE + 1)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read the secret file {os.fspath(path)!r}: {exc.strerror}"
            ) from exc
        if len(data) > _MAX_SECRET_FILE:
            raise ConfigurationError(f"the secret file {os.fspath(path)!r} is larger than 1 MiB")
        if not data.strip():
            raise ConfigurationError(f"the secret file {os.fspath(path)!r} is empty")
        return cls(data.strip())

    def reveal(self) -> bytes:
        """Return the secret bytes."""
        return self._value

    def reveal_str(self) -> str:
        """Return the secret as text (UTF-8)."""
        return self._value.decode()

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        import hmac

        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))


class Limits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Named limits and timeouts, all in one place.

    Attributes:
        max_token_bytes: tokens longer than this are refused before any parsing.
        max_json_depth: deepest nesting accepted in a token header or claim set.
        fetch_timeout: total deadline, in seconds, of one JWKS or discovery fetch.
        max_document_bytes: largest JWKS or discovery body accepted.
        jwks_min_ttl: shortest time a fetched key set is trusted as fresh.
        jwks_max_ttl: longest time a fetched key set is trusted as fresh.
        jwks_default_ttl: freshness when the response has no usable Cache-Control.
        jwks_cooldown: least time between two unknown-``kid`` refetches per issuer.
        jwks_stale_max_age: how long the last good keys keep serving while the IdP fails.
        unknown_kid_ttl: how long a ``kid`` still unknown after a refetch is refused at once.
        max_kid_length: tokens whose header ``kid`` is longer are refused when parsed,
            before any cache or key lookup (IdPs use ids of 20-64 characters).
        max_unknown_kids: refused ``(kid, alg)`` pairs remembered for ``unknown_kid_ttl``,
            in total across every JWKS URI (the oldest goes first).
        new_tenant_fetches: per templated issuer, how many never-seen tenants may cause
            a key or metadata fetch per ``jwks_cooldown`` (when the URL holds ``{tenant}``):
            a flood of random tenants costs the IdP a handful of calls, not one each.
        token_cache_size: entries in the verified-token cache (0 turns it off); a
            token is stored from its second sighting on.
        token_cache_ttl: longest life of a verified-token cache entry.
        failure_cache_ttl: how long a refused token is remembered as refused.
        failure_cache_size: refused tokens remembered at most (the oldest goes first).
        shared_values: distinct header shapes and scope sets that verified tokens share
            (most tokens of an issuer have one header shape and a few scope sets, so a
            full token cache holds one copy of each, not one per token).
        recent_credentials: the last bearer credentials remembered by their exact
            text, so a repeat skips decoding and hashing (the ``Authorization``
            headers the extractor read, the tokens the verified-token cache served).
        retry_after: the ``Retry-After`` seconds on a 503.
        connections_poll: how often each worker asks the connection store whether a
            connection changed, seconds (in the background; a change announced on the
            revocation bus is picked up at once).
        dpop_proof_window: seconds a DPoP proof's ``iat`` may lie before or after now
            (RFC 9449 §11.1); its ``jti`` is remembered that long against replay.
        dpop_replay_size: DPoP proof ``jti`` values remembered per worker at most; when
            full, a new proof is refused (503) rather than an old one forgotten early.
    """

    max_token_bytes: int = 16 * 1024
    max_json_depth: int = 16
    fetch_timeout: float = 5.0
    max_document_bytes: int = 512 * 1024
    jwks_min_ttl: float = 60.0
    jwks_max_ttl: float = 24 * 3600.0
    jwks_default_ttl: float = 3600.0
    jwks_cooldown: float = 30.0
    jwks_stale_max_age: float = 24 * 3600.0
    unknown_kid_ttl: float = 5.0
    max_kid_length: int = 256
    max_unknown_kids: int = 4096
    new_tenant_fetches: int = 10
    token_cache_size: int = 10_000
    token_cache_ttl: float = 300.0
    failure_cache_ttl: float = 2.0
    failure_cache_size: int = 1024
    recent_credentials: int = 256
    shared_values: int = 1024
    retry_after: int = 5
    connections_poll: float = 0.5
    dpop_proof_window: float = 60.0
    dpop_replay_size: int = 100_000

    def __post_init__(self) -> None:
        check_fields(self)
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if value < 0:
                raise ConfigurationError(f"Limits.{name} must not be negative, got {value!r}")
        if self.max_token_bytes < 64:
            raise ConfigurationError("Limits.max_token_bytes must be at least 64")
        if self.max_kid_length < 1:
            raise ConfigurationError("Limits.max_kid_length must be at least 1")
        if self.fetch_timeout <= 0 or self.connections_poll <= 0:
            raise ConfigurationError("Limits.fetch_timeout and connections_poll must be positive")
        if self.jwks_min_ttl > self.jwks_max_ttl:
            raise ConfigurationError("Limits.jwks_min_ttl must not exceed jwks_max_ttl")


class Introspection(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How an issuer's opaque access tokens are checked: OAuth introspection (RFC 7662).

    A credential that is not a compact JWS goes to the introspection endpoint of the
    one issuer configured with this (only one may be); the answer's claims are then
    checked like a JWT's (``iss``, ``aud``, ``exp``, ``sub``, scopes).

    Attributes:
        client_id: this API's client id at the IdP.
        client_secret: its secret, sent by HTTP Basic authentication (never logged
            or shown in a ``repr``).
        client_key: instead of a secret, its private key (PEM, or a JWK as JSON; RSA
            or P-256): each call carries a ``private_key_jwt`` assertion (RFC 7523)
            whose ``aud`` is the introspection endpoint. With the key's X.509
            certificate in the same text (as for ``LoginConfig.client_key``), the
            assertions name it by ``x5t`` and ``x5t#S256``. Give exactly one of
            ``client_secret`` and ``client_key``; the key is read when the
            middleware (or ``TokenVerifier``) is built.
        endpoint: the introspection endpoint; ``None`` reads ``introspection_endpoint``
            from the issuer's discovery document.
        cache_ttl: at most this many seconds an active answer is reused (never past
            the token's ``exp``); ``0`` asks the IdP every time.
        inactive_ttl: seconds an ``active: false`` answer is remembered.
        cache_size: how many active answers are kept, and as many refusals, each
            kind least recently used out first (made-up tokens never push out the
            answers of real ones).
        timeout: seconds for the whole call, then 503.
        max_inflight: at most this many calls at once (one per distinct token); a
            request needing another gets a 503 with ``Retry-After``.
        max_response_bytes: a larger answer is refused (503).
        max_token_bytes: a longer opaque token is refused without a call (401).
        token_type_hint: sent as ``token_type_hint`` (RFC 7662 §2.1); ``None`` omits it.
        retry_after: the ``Retry-After`` seconds of a 503 while the endpoint fails.

    Raises:
        ConfigurationError: a value of the wrong type or out of range.
    """

    client_id: str
    client_secret: Secret | None = None
    client_key: Secret | None = None
    endpoint: str | None = None
    cache_ttl: float = 60.0
    inactive_ttl: float = 10.0
    cache_size: int = 10_000
    timeout: float = 5.0
    max_inflight: int = 64
    max_response_bytes: int = 65_536
    max_token_bytes: int = 4096
    token_type_hint: str | None = "access_token"
    retry_after: int = 5

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.client_id:
            raise ConfigurationError("Introspection.client_id must not be empty")
        if (self.client_secret is None) == (self.client_key is None):
            raise ConfigurationError(
                "Introspection needs exactly one of client_secret (HTTP Basic) and "
                "client_key (private_key_jwt)"
            )
        if self.endpoint is not None and urlsplit(self.endpoint).scheme.lower() not in (
            "https",
            "http",
        ):
            raise ConfigurationError("Introspection.endpoint must be an https URL")
        bounded = {
            "cache_ttl": (0.0, 86_400.0),
            "inactive_ttl": (0.0, 3_600.0),
            "cache_size": (1, 10_000_000),
            "timeout": (0.1, 120.0),
            "max_inflight": (1, 10_000),
            "max_response_bytes": (256, 16_777_216),
            "max_token_bytes": (16, 65_536),
            "retry_after": (1, 3_600),
        }
        for name, (low, high) in bounded.items():
            value = getattr(self, name)
            if not low <= value <= high:  # also refuses NaN
                raise ConfigurationError(
                    f"Introspection.{name} must be between {low} and {high}, not {value!r}"
                )


# RFC 7230 §3.2.6: a header name is a token.
_HEADER_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_CERTIFICATE_HEADERS = {
    "rfc9440": "client-cert",
    "nginx": "x-ssl-client-cert",
    "xfcc": "x-forwarded-client-cert",
}


class CertificateHeader(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The header in which a TLS-terminating proxy passes the client certificate on.

    Read only on requests whose TCP peer is one of ``trusted_proxies``; from any
    other peer the header is ignored (anyone can send it), and a certificate-bound
    token then has no certificate to match. From a trusted proxy the header is the
    only source: the TLS connection's own certificate is the proxy's, not the client's.

    Attributes:
        trusted_proxies: the proxies' addresses or networks (``"10.0.0.0/8"``,
            ``"127.0.0.1"``, ``"::1"``). Required; ``0.0.0.0/0`` and ``::/0`` are refused.
        format: ``"rfc9440"`` (``Client-Cert: :<base64 DER>:``, RFC 9440 §2),
            ``"nginx"`` (the URL-escaped PEM of ``$ssl_client_escaped_cert``) or
            ``"xfcc"`` (Envoy's ``x-forwarded-client-cert``: exactly one element, the
            one the proxy set, whose ``Hash`` and/or ``Cert`` name the certificate).
        header: the header's name; ``None``: ``client-cert`` for ``rfc9440``,
            ``x-ssl-client-cert`` for ``nginx``, ``x-forwarded-client-cert`` for ``xfcc``.

    Raises:
        ConfigurationError: no proxy, a malformed address or network, a network
            covering every address, or a header name that is not a token.
    """

    trusted_proxies: tuple[str, ...]
    format: Literal["rfc9440", "nginx", "xfcc"] = "rfc9440"
    header: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.trusted_proxies:
            raise ConfigurationError(
                "CertificateHeader.trusted_proxies must name the proxies allowed to set "
                "the header, e.g. ('10.0.0.0/8',)"
            )
        networks = self.networks
        # Several networks may cover every address between them (0.0.0.0/1 and 128.0.0.0/1).
        v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
        v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
        if any(
            network.prefixlen == 0
            for merged in (ipaddress.collapse_addresses(v4), ipaddress.collapse_addresses(v6))
            for network in merged
        ):
            raise ConfigurationError(
                "CertificateHeader.trusted_proxies covers every address, so any client "
                "could name any certificate: list the proxies' addresses"
            )
        if self.header is not None and (not self.header or not set(self.header) <= _HEADER_CHARS):
            raise ConfigurationError(
                f"CertificateHeader.header {self.header!r} is not a header name"
            )

    @property
    def networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The trusted proxies as networks (an address is a network of one).

        Raises:
            ConfigurationError: an entry is not an address or network.
        """
        found = []
        for entry in self.trusted_proxies:
            try:
                found.append(ipaddress.ip_network(entry))
            except ValueError as exc:
                raise ConfigurationError(
                    f"CertificateHeader.trusted_proxies entry {entry!r} is not an IP "
                    f"address or network: {exc}"
                ) from None
        return tuple(found)

    @property
    def name(self) -> bytes:
        """The header's name as an ASGI scope holds it (lower case)."""
        return (self.header or _CERTIFICATE_HEADERS[self.format]).lower().encode("ascii")


class Issuer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One trusted token issuer (an IdP, or a templated family of tenants).

    Attributes:
        issuer: the exact ``iss`` value, or a template with one ``{tenant}`` part,
            e.g. ``https://login.microsoftonline.com/{tenant}/v2.0``.
        audience: the audience(s) a token must carry in ``aud``: this API's identifier
            at the IdP (``api://my-api``, Auth0's API identifier, the client id for
            Google). Required: without it, a token the same IdP issued for any other
            application would be accepted here. ``audience=None``, written out, skips
            the check on purpose (logged once at WARNING when the middleware starts).
        jwks_uri: where the keys are; ``None`` means OIDC discovery from
            ``{issuer}/.well-known/openid-configuration`` (for a template, the
            discovery URL must be given as ``discovery_url`` or ``jwks_uri`` set).
        discovery_url: the discovery document URL, when not derived from ``issuer``.
        algorithms: the allow-list; the token header never widens it.
        secret: the shared HMAC key of an issuer that signs with ``HS256``, ``HS384``
            or ``HS512`` (at least 32, 48 or 64 bytes, RFC 7518 §3.2). Required when
            ``algorithms`` holds one of them, refused otherwise.
        leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
        required_claims: claims that must be present; ``None`` means ``iss``,
            ``sub``, ``exp`` and ``aud`` when an audience is set. A ``user_claim``
            other than ``sub`` is always required.
        token_types: accepted ``typ`` header values (e.g. :data:`AT_JWT_TYPES`); ``None``
            skips the check.
        tenant_claim: the claim that must equal the ``{tenant}`` part of a template.
        tenants: when set, the only tenants accepted by a template.
        connection: the connection id of this issuer's users (``Principal.connection``),
            which keys their users, sessions and revocations. ``None`` (the default)
            makes it the token's concrete ``iss``, and with ``connection_claim``
            ``"{iss}#{tenant}"``. On an exact issuer without ``connection_claim`` it
            is a literal name; on a template, or with ``connection_claim``, it must
            hold one ``{tenant}``, filled with the template's tenant or the claim's
            value (e.g. ``"entra:{tenant}"``). Ids of two different issuers can never
            be equal: :class:`~asgi_sso.verify.issuers.IssuerRegistry` refuses such a set.
        connection_claim: a broker's claim naming the connection within this (exact)
            issuer, e.g. ``connection_id``. Its value must be 1-128 characters of
            ``A-Z a-z 0-9 . _ ~ -`` or the token is refused; without the claim the
            connection is the ``iss``.
        scope_claims: claims read for scopes (space-separated string or list).
        user_claim: the claim that identifies a user at this issuer: ``Principal.identity``
            and the key of just-in-time users, SCIM ``externalId`` matching and user
            revocations. ``sub`` by default; ``oid`` for Entra ID, whose ``sub`` is
            pairwise per application. When not ``sub`` it is required in every token
            (and ID token); the ID token's ``sub`` still names sessions for
            back-channel logout.
        client_id: the sign-in client's OAuth client id. Bearer verification refuses
            this client's ID tokens (an ``aud`` naming it, unless typed ``at+jwt`` or
            granting scopes/roles without a ``nonce``); the middleware sets it
            from ``LoginConfig.client_id``.
        name: a short label for logs and metrics; defaults to the issuer.
        allow_insecure_http: accept a plain ``http`` issuer, ``jwks_uri`` or
            ``discovery_url`` on another machine, whose keys anyone on the network
            path could replace (development on a LAN only; logged once at WARNING).
            Plain http to a loopback host (a dev IdP on this machine) needs no switch.
        introspection: check this issuer's opaque (non-JWT) access tokens by
            introspection (RFC 7662); see :class:`Introspection`. JWTs of the issuer
            are still verified locally. At most one issuer may set it.
        dpop: DPoP sender-constrained tokens (RFC 9449): ``"off"`` (the default: the
            ``DPoP`` scheme is refused; a token bound by ``cnf.jkt`` is refused as
            ``Bearer`` in every mode), ``"allow"`` (``Authorization: DPoP`` with a valid
            proof is accepted beside plain bearer tokens) or ``"require"`` (only
            DPoP-bound tokens with a proof). See ``docs/sender-constrained.md``.
        mtls: certificate-bound tokens (RFC 8705 §3). A token whose ``cnf`` holds
            ``x5t#S256`` is accepted only with that client certificate (from the
            server's TLS extension or a :class:`CertificateHeader`) in every mode;
            ``"allow"`` (the default) accepts unbound tokens too, ``"require"`` only
            certificate-bound ones.

    Raises:
        ConfigurationError: a value of the wrong type, no ``audience`` given, a plain
            http URL to another host without ``allow_insecure_http``, or settings that
            contradict each other; the message names the fix.
    """

    issuer: str
    audience: str | tuple[str, ...] | UnsetType | None = UNSET
    jwks_uri: str | None = None
    discovery_url: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    secret: Secret | None = None
    leeway: float = 60.0
    required_claims: tuple[str, ...] | None = None
    token_types: tuple[str, ...] | None = None
    tenant_claim: str = "tid"
    tenants: frozenset[str] | None = None
    connection: str | None = None
    connection_claim: str | None = None
    scope_claims: tuple[str, ...] = ("scope", "scp")
    user_claim: str = "sub"
    client_id: str | None = None
    name: str | None = None
    allow_insecure_http: bool = False
    introspection: Introspection | None = None
    dpop: Literal["off", "allow", "require"] = "off"
    mtls: Literal["allow", "require"] = "allow"

    def __post_init__(self) -> None:
        check_fields(self)
        if not self.issuer:
            raise ConfigurationError("Issuer.issuer must not be empty")
        self._check_audience()
        self._check_urls()
        if self.issuer.count("{tenant}") > 1 or (
            "{" in self.issuer.replace("{tenant}", "") or "}" in self.issuer.replace("{tenant}", "")
        ):
            raise ConfigurationError(
                f"Issuer.issuer {self.issuer!r} may hold at most one '{{tenant}}' placeholder"
            )
        if not self.algorithms:
            raise ConfigurationError("Issuer.algorithms must not be empty")
        if (
            self.is_template
            and self.jwks_uri is None
            and self.discovery_url is None
            and not self._hmac_only
        ):
            raise ConfigurationError(
                f"templated issuer {self.issuer!r} needs jwks_uri or discovery_url"
            )
        if not self.user_claim:
            raise ConfigurationError("Issuer.user_claim must name a claim")
        for alg in self.algorithms:
            if alg not in SUPPORTED_ALGORITHMS:
                raise ConfigurationError(
                    f"algorithm {alg!r} is not supported; "
                    f"choose from {sorted(SUPPORTED_ALGORITHMS)}"
                )
        if self.leeway < 0 or self.leeway > 600:
            raise ConfigurationError("Issuer.leeway must be between 0 and 600 seconds")
        self._check_secret()
        self._check_connection()

    def _check_audience(self) -> None:
        # RFC 7519 §4.1.3 / RFC 9068 §4: without an audience check, a token the IdP
        # issued to any other application of the same tenant is accepted here.
        if self.audience is UNSET:
            raise ConfigurationError(
                f"Issuer {self.label!r} has no audience, so a token its IdP issued for any "
                "other application would be accepted: set audience='api://your-api' (the "
                "'aud' value the IdP puts in this API's tokens), or write audience=None "
                "to skip the check on purpose"
            )
        values = (self.audience,) if isinstance(self.audience, str) else self.audience or ()
        if isinstance(self.audience, tuple) and not self.audience:
            raise ConfigurationError(
                "Issuer.audience must not be an empty list (None skips the check)"
            )
        if any(not value for value in values):
            raise ConfigurationError("Issuer.audience must not hold an empty string")

    def _check_urls(self) -> None:
        # Keys fetched over plain http to another machine can be swapped on the way.
        for name in ("jwks_uri", "discovery_url"):
            value = getattr(self, name)
            if value is not None and urlsplit(value).scheme.lower() not in ("https", "http"):
                raise ConfigurationError(f"Issuer.{name} must be an https URL")
        if self.is_template and self.introspection and self.introspection.endpoint is None:
            raise ConfigurationError(
                f"templated issuer {self.issuer!r} needs Introspection.endpoint set"
            )
        if self.allow_insecure_http:
            return
        endpoint = self.introspection.endpoint if self.introspection else None
        if plain_http_host(endpoint) is not None:
            # The client secret and the bearer token would cross the network in clear.
            raise ConfigurationError(
                f"Introspection.endpoint of {self.label!r} is plain http to another "
                "host: use https (or allow_insecure_http=True on a development LAN)"
            )
        for name in ("issuer", "jwks_uri", "discovery_url"):
            host = plain_http_host(getattr(self, name))
            if host is not None:
                raise ConfigurationError(
                    f"Issuer.{name} of {self.label!r} is plain http to {host}: anyone on the "
                    "network path could replace its keys. Use https, or pass "
                    "allow_insecure_http=True for development (plain http to localhost "
                    "needs no switch)"
                )

    @property
    def unsafe_choices(self) -> tuple[str, ...]:
        """The checks this issuer turns off on purpose, in words (logged at start-up)."""
        choices: list[str] = []
        if self.audience is None:
            choices.append(
                f"Issuer {self.label!r} has audience=None: its tokens are accepted whatever "
                "their audience, including tokens issued for other applications"
            )
        if self.allow_insecure_http:
            insecure = [
                n for n in ("issuer", "jwks_uri", "discovery_url")
                if plain_http_host(getattr(self, n)) is not None
            ]  # fmt: skip
            if insecure:
                choices.append(
                    f"Issuer {self.label!r} has allow_insecure_http=True: its "
                    f"{', '.join(insecure)} use plain http to another host, so its keys "
                    "could be replaced on the way"
                )
        return tuple(choices)

    @property
    def _hmac_only(self) -> bool:
        return all(alg in _HMAC_MIN_BYTES for alg in self.algorithms)

    def _check_secret(self) -> None:
        # An HMAC issuer has no JWKS: its one key is the secret given here.
        hmac_algs = [alg for alg in self.algorithms if alg in _HMAC_MIN_BYTES]
        if self.secret is None:
            if hmac_algs:
                raise ConfigurationError(
                    f"issuer {self.label!r} allows {', '.join(hmac_algs)} but has no "
                    "secret: set Issuer.secret=Secret(...) to the shared HMAC key, "
                    "or remove the HS* algorithms"
                )
            return
        if not hmac_algs:
            raise ConfigurationError(
                f"Issuer.secret of {self.label!r} is an HMAC key, used only with HS256, "
                "HS384 or HS512: add one to Issuer.algorithms or remove the secret"
            )
        if self.jwks_uri is not None and self._hmac_only:
            raise ConfigurationError(
                f"issuer {self.label!r} signs only with HS* algorithms, whose key is "
                "Issuer.secret: remove jwks_uri, which nothing would read"
            )
        size = len(self.secret.reveal())
        for alg in hmac_algs:
            if size < _HMAC_MIN_BYTES[alg]:
                raise ConfigurationError(
                    f"Issuer.secret of {self.label!r} has {size} bytes; {alg} needs at "
                    f"least {_HMAC_MIN_BYTES[alg]} (RFC 7518 §3.2)"
                )

    def _check_connection(self) -> None:
        # `sub` is unique only within its issuer (RFC 7519 §4.1.2): a connection id
        # must not merge the namespaces of several tenants or broker connections.
        if self.connection_claim is not None:
            if not self.connection_claim:
                raise ConfigurationError("Issuer.connection_claim must not be empty")
            if self.is_template:
                raise ConfigurationError(
                    f"Issuer.connection_claim needs an exact issuer, not the template "
                    f"{self.issuer!r}; put the tenant in Issuer.connection instead"
                )
        pattern = self.connection
        if pattern is None:
            return
        if not pattern:
            raise ConfigurationError("Issuer.connection must not be empty (None means the iss)")
        rest = pattern.replace(_TENANT, "", 1)
        if "{" in rest or "}" in rest:
            raise ConfigurationError(
                f"Issuer.connection {pattern!r} may hold at most one '{{tenant}}' placeholder"
            )
        if _TENANT in pattern and not self.is_template and self.connection_claim is None:
            raise ConfigurationError(
                f"Issuer.connection {pattern!r}: nothing fills '{{tenant}}' on the exact "
                f"issuer {self.issuer!r}; give a literal name or set connection_claim"
            )
        if _TENANT not in pattern and (self.is_template or self.connection_claim is not None):
            raise ConfigurationError(
                f"Issuer.connection {pattern!r} must contain '{{tenant}}' on {self.issuer!r}: "
                "a literal would put the users of every tenant (or broker connection) in one "
                "namespace; use e.g. 'name:{tenant}', or leave it unset"
            )

    @property
    def is_template(self) -> bool:
        """Whether the issuer is a ``{tenant}`` template."""
        return "{tenant}" in self.issuer

    @property
    def connection_pattern(self) -> str:
        """This issuer's connection id with ``{tenant}`` still to fill (see ``connection``)."""
        if self.connection is not None:
            return self.connection
        if self.connection_claim is not None:
            return self.issuer + "#" + _TENANT
        return self.issuer

    @property
    def audiences(self) -> frozenset[str]:
        """The accepted audiences as a set (empty: no audience check)."""
        if self.audience is None or isinstance(self.audience, UnsetType):
            return frozenset()
        if isinstance(self.audience, str):
            return frozenset({self.audience})
        return frozenset(self.audience)

    @property
    def essential_claims(self) -> tuple[str, ...]:
        """The claims that must be present in every token of this issuer."""
        base: tuple[str, ...] = ("iss", "sub", "exp")
        if self.required_claims is not None:
            base = self.required_claims
        elif self.audiences:
            base = (*base, "aud")
        if self.user_claim == "sub" or self.user_claim in base:
            return base
        return (*base, self.user_claim)

    @property
    def label(self) -> str:
        """A short name for logs and metrics."""
        return self.name or self.issuer

    @property
    def discovery_document_url(self) -> str:
        """Where this issuer's OIDC discovery document is (RFC 8414 / OIDC Discovery §4)."""
        if self.discovery_url is not None:
            return self.discovery_url
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"


def issuers_from(
    value: Issuer | Sequence[Issuer], *, allow_none: bool = False
) -> tuple[Issuer, ...]:
    """Normalise one issuer or a sequence of issuers to a tuple (non-empty unless allowed).

    Raises:
        ConfigurationError: no issuer where one is needed, or an item is not an
            :class:`Issuer` (a string where a list of issuers belongs, say).
    """
    raw: object = value
    items: tuple[object, ...] = (
        (raw,) if isinstance(raw, Issuer | str | bytes) else tuple(cast("Sequence[object]", raw))
    )
    for item in items:
        if not isinstance(item, Issuer):
            raise ConfigurationError(
                f"issuers must be Issuer objects, got {type(item).__name__}: "
                "write issuers=[Issuer(issuer=...)]"
            )
    if not items and not allow_none:
        raise ConfigurationError("at least one trusted Issuer (or connections) is required")
    return tuple(i for i in items if isinstance(i, Issuer))
