"""The dev IdP's data: configured users and clients, rotating keys, grants and sessions.

Pure state with no I/O, shared by the endpoints (:mod:`asgi_sso.testing.idp.endpoints`) and the
public :class:`~asgi_sso.testing.idp.DevIdP` façade.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Collection
from typing import Any
from urllib.parse import urlsplit

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc.jws import JWSRegistry

from asgi_sso.config import Clock
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.certificates import UNREADABLE
from asgi_sso.testing.tokens import SigningKey, generate_key, public_jwk

__all__ = [
    "DEMO_AUDIENCE",
    "DEMO_CLIENTS",
    "DEMO_USERS",
    "DevClient",
    "DevUser",
    "Grant",
    "KeyRing",
    "PushedRequest",
    "check_certificates",
    "check_jwks",
    "verify_own",
]

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
_ALL_SCOPES = frozenset({"profile", "email"})
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})


class DevUser(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A test user of the dev IdP.

    Attributes:
        sub: the stable subject identifier.
        email: the e-mail address (released as ``email`` with ``email_verified``).
        name: the display name; ``given_name`` and ``family_name`` likewise.
        groups: released as the ``groups`` claim.
        roles: released as the ``roles`` claim.
        tenant: released as ``tid`` (the Entra-style tenant id), when set.
        connection_id: released as ``connection_id`` (a broker's connection), when set.
        extra_claims: any other claims to release in ID and access tokens.
        scopes: the API scopes this user may be granted; ``None`` grants any asked for.
            The OpenID scopes (``openid``, ``profile``, ``email``, ``offline_access``)
            are always granted. A request asking for more gets a narrower grant
            (RFC 6749 §3.3), as a real IdP's consent or policy would give.
    """

    sub: str
    email: str | None = None
    name: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    tenant: str | None = None
    connection_id: str | None = None
    extra_claims: dict[str, Any] = msgspec.field(default_factory=dict)
    scopes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.sub or len(self.sub) > 255:
            raise ConfigurationError("DevUser.sub must be 1 to 255 characters")  # OIDC Core §2

    def grantable(self, asked: str) -> str:
        """The part of the space-separated ``asked`` scope this user may be granted, in order."""
        return " ".join(
            s for s in asked.split() if self.scopes is None or s in OIDC_SCOPES or s in self.scopes
        )

    def profile(self) -> dict[str, Any]:
        """Every claim this user releases besides ``sub``, as access tokens carry them."""
        return self.claims_for(_ALL_SCOPES)

    def claims_for(self, scopes: Collection[str]) -> dict[str, Any]:
        """The claims released for the granted ``scopes`` (OIDC Core §5.4), besides ``sub``.

        ``profile`` releases the names, ``email`` the address and ``email_verified``.
        Groups, roles, the tenant, the connection and ``extra_claims`` are released
        whatever the scope, as an enterprise IdP configured to emit them would.
        """
        out: dict[str, Any] = {}
        if "email" in scopes and self.email is not None:
            out["email"] = self.email
            out["email_verified"] = True
        if "profile" in scopes:
            for name in ("name", "given_name", "family_name"):
                value = getattr(self, name)
                if value is not None:
                    out[name] = value
        if self.groups:
            out["groups"] = list(self.groups)
        if self.roles:
            out["roles"] = list(self.roles)
        if self.tenant is not None:
            out["tid"] = self.tenant
        if self.connection_id is not None:
            out["connection_id"] = self.connection_id
        out.update(self.extra_claims)
        return out


class DevClient(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An OAuth client (relying party) registered with the dev IdP.

    Attributes:
        client_id: the client identifier.
        client_secret: the shared secret; ``None`` makes a public client (PKCE only).
        redirect_uris: the exact redirect URIs allowed (OIDC Core §3.1.2.1).
        post_logout_redirect_uris: where RP-initiated logout may return to.
        backchannel_logout_uri: where back-channel logout tokens are POSTed.
        audience: the ``aud`` of this client's access tokens; defaults to ``client_id``.
        grant_types: the grants this client may use.
        scopes: the default scope of ``client_credentials`` tokens.
        id_token_signed_response_alg: the ID token algorithm this client wants
            (``RS256`` is always available); ``None`` uses the IdP's algorithm.
        jwks: the client's public JWK Set (RFC 7591 §2): such a client authenticates
            with ``private_key_jwt`` (RFC 7523), a JWT signed by its private key, and
            has no secret; its secret, or none, is refused.
        jwks_uri: where the client publishes that JWK Set (e.g. ``LoginConfig``'s
            ``{prefix}/jwks.json``): fetched on each ``private_key_jwt`` authentication,
            so a rotated key works at once. The offline form is ``jwks``.
        dpop_bound: the client must send a DPoP proof (RFC 9449) with every token
            request, so all its access tokens are bound to its key.
        certificates: X.509 certificates (PEM) registered the way Entra ID takes them
            (*Certificates & secrets*): such a client authenticates with
            ``private_key_jwt``, and each assertion's header must name one of them by
            ``x5t#S256`` or ``x5t`` (both, when given, the same one); it is verified
            with that certificate's public key, whatever its ``kid``. Not with
            ``jwks`` or ``jwks_uri``.
        certificate_bound: the client must present its TLS client certificate with
            every token request, and its access tokens are bound to it (RFC 8705 §3;
            the ``tls_client_certificate_bound_access_tokens`` client metadata, §3.4).
            Other clients' certificates are not read.
    """

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    backchannel_logout_uri: str | None = None
    audience: str | None = None
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    scopes: tuple[str, ...] = ()
    id_token_signed_response_alg: str | None = None
    jwks: dict[str, Any] | None = None
    dpop_bound: bool = False
    jwks_uri: str | None = None
    certificate_bound: bool = False
    certificates: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.client_id:
            raise ConfigurationError("DevClient.client_id must not be empty")
        for grant in self.grant_types:
            if grant not in GRANT_TYPES:
                raise ConfigurationError(f"unknown grant type {grant!r}; choose from {GRANT_TYPES}")
        if "client_credentials" in self.grant_types and self.is_public:
            raise ConfigurationError("client_credentials needs a confidential client (a secret)")
        if self.jwks is not None:
            check_jwks(self.jwks)
        if self.uses_keys and self.client_secret is not None:
            raise ConfigurationError("a client with jwks uses private_key_jwt, not a secret")
        given = [self.jwks is not None, self.jwks_uri is not None, bool(self.certificates)]
        if sum(given) > 1:
            raise ConfigurationError("give DevClient one of jwks, jwks_uri and certificates")
        check_certificates(self.certificates)
        if self.jwks_uri is not None and urlsplit(self.jwks_uri).scheme not in ("http", "https"):
            raise ConfigurationError("DevClient.jwks_uri must be an http(s) URL")
        for uri in self.redirect_uris:
            if "#" in uri:
                raise ConfigurationError(f"redirect URI {uri!r} must not have a fragment")

    def __repr__(self) -> str:
        secret = None if self.client_secret is None else "**********"
        return f"DevClient(client_id={self.client_id!r}, client_secret={secret!r})"

    @property
    def is_public(self) -> bool:
        """Whether the client has no secret nor keys (it authenticates with PKCE alone)."""
        return self.client_secret is None and not self.uses_keys

    @property
    def uses_keys(self) -> bool:
        """Whether the client must authenticate with ``private_key_jwt`` (and nothing else)."""
        return self.jwks is not None or self.jwks_uri is not None or bool(self.certificates)

    @property
    def token_audience(self) -> str:
        """The ``aud`` of access tokens issued to this client."""
        return self.audience or self.client_id


def check_jwks(jwks: Any) -> None:
    """Refuse anything but a JWK Set of public RSA and EC keys.

    Raises:
        ConfigurationError: not ``{"keys": [...]}`` with at least one key, or a key
            that is private or of another type.
    """
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) for k in keys):
        raise ConfigurationError("DevClient.jwks must be a JWK Set: {'keys': [...]}")
    if any("d" in key or key.get("kty") not in ("RSA", "EC") for key in keys):
        raise ConfigurationError("DevClient.jwks holds public RSA or EC keys only")


def check_certificates(certificates: object) -> None:
    """Refuse anything but PEM certificates of RSA or P-256 keys.

    Raises:
        ConfigurationError: not a PEM certificate, or one for another kind of key.
    """
    if not isinstance(certificates, tuple | list):
        raise ConfigurationError("DevClient.certificates takes a tuple of PEM certificates")
    for pem in certificates:
        try:
            public = x509.load_pem_x509_certificate(str(pem).encode()).public_key()
        except (*UNREADABLE, AttributeError) as exc:
            raise ConfigurationError("DevClient.certificates holds PEM certificates only") from exc
        if not isinstance(public, rsa.RSAPublicKey) and not (
            isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
        ):
            raise ConfigurationError("DevClient.certificates must be for RSA or P-256 keys")


class PushedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An authorization request pushed to ``/par`` (RFC 9126), waiting for its ``request_uri``."""

    client_id: str
    params: dict[str, str]
    expires_at: float


DEMO_AUDIENCE = "api://asgi-sso-dev"
DEMO_USERS: tuple[DevUser, ...] = (
    DevUser(
        sub="alice",
        email="alice@example.com",
        name="Alice Admin",
        given_name="Alice",
        family_name="Admin",
        groups=("admins", "staff"),
        roles=("admin",),
        connection_id="conn_acme",
    ),
    DevUser(
        sub="bob",
        email="bob@example.com",
        name="Bob Builder",
        given_name="Bob",
        family_name="Builder",
        groups=("staff",),
        connection_id="conn_acme",
    ),
)
DEMO_CLIENTS: tuple[DevClient, ...] = (
    DevClient(
        client_id="dev-client",
        client_secret="dev-client-secret",
        redirect_uris=("http://testserver/auth/callback", "http://127.0.0.1:8000/auth/callback"),
        post_logout_redirect_uris=("http://testserver/", "http://127.0.0.1:8000/"),
        backchannel_logout_uri="http://testserver/auth/backchannel-logout",
        audience=DEMO_AUDIENCE,
        grant_types=("authorization_code", "refresh_token", "client_credentials"),
    ),
)


class Grant(msgspec.Struct, kw_only=True):
    """An authorization code or refresh token waiting to be redeemed."""

    client_id: str
    sub: str
    scope: str
    sid: str
    auth_time: int
    expires_at: float
    redirect_uri: str = ""
    nonce: str | None = None
    code_challenge: str = ""
    resource: str | None = None  # RFC 8707: the audience of the access tokens
    # RFC 9449: the key a token request must prove (a code's dpop_jkt, §10; a public
    # client's refresh token, §5); None when any key, or none, may.
    dpop_jkt: str | None = None
    # RFC 8705 §4: the certificate a public client's refresh token is bound to.
    x5t: str | None = None


class KeyRing:
    """Signing keys, oldest first: the newest of each algorithm signs, retired ones linger.

    Besides the main algorithm the ring always holds an RS256 key, because OIDC
    Discovery 1.0 §3 requires every provider to be able to sign ID tokens with RS256.
    """

    def __init__(self, algorithm: str, clock: Clock, grace: float) -> None:
        self.algorithm = algorithm
        self.algorithms = (algorithm,) if algorithm == "RS256" else (algorithm, "RS256")
        self._clock = clock
        self.grace = grace
        self._keys: list[tuple[SigningKey, float | None]] = [
            (generate_key(alg), None) for alg in self.algorithms
        ]

    @property
    def current(self) -> SigningKey:
        """The key that signs access tokens now."""
        return self.current_for(self.algorithm)

    def current_for(self, algorithm: str) -> SigningKey:
        """The newest key for ``algorithm`` (one of :attr:`algorithms`)."""
        return next(key for key, _ in reversed(self._keys) if key.get("alg") == algorithm)

    def rotate(self) -> SigningKey:
        """Make new signing keys; the previous ones verify until the grace period ends."""
        now = self._clock.monotonic()
        self._keys = [(key, now if retired is None else retired) for key, retired in self._keys]
        self._keys.extend((generate_key(alg), None) for alg in self.algorithms)
        return self.current

    def published(self) -> list[SigningKey]:
        """The keys still in the JWKS (oldest first), dropping those past their grace."""
        now = self._clock.monotonic()
        self._keys = [
            (key, retired)
            for key, retired in self._keys
            if retired is None or now - retired < self.grace
        ]
        return [key for key, _ in self._keys]

    def jwks(self) -> dict[str, Any]:
        """The public JWK Set (RFC 7517 §5)."""
        return {"keys": [public_jwk(key) for key in self.published()]}

    def find(self, kid: object) -> SigningKey | None:
        """The published key with this ``kid``."""
        return next((key for key in self.published() if key.kid == kid), None)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def verify_own(token: str, ring: KeyRing) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Check a token this IdP signed; return ``(header, claims)`` or ``None`` when it is not ours.

    Only the signature is checked here; callers check ``iss``, ``exp`` and ``typ``.
    """
    try:
        head, payload, signature = token.split(".")
        header = json.loads(_b64decode(head))
        key = ring.find(header.get("kid"))
        if key is None or header.get("alg") != key.get("alg"):
            return None
        algorithm = JWSRegistry.algorithms[header["alg"]]
        message = f"{head}.{payload}".encode()
        if not algorithm.verify(message, _b64decode(signature), key):
            return None
        claims = json.loads(_b64decode(payload))
    except Exception:  # hostile input from a test or an RP: never ours
        return None
    if not isinstance(claims, dict):
        return None
    return header, claims


def new_secret() -> str:
    """A fresh unguessable value for codes, tokens and session ids."""
    return secrets.token_urlsafe(32)
