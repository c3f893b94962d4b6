"""``DevIdP``: an OpenID provider for development and tests, as an ASGI app.

It implements what OIDC Core 1.0, Discovery 1.0, RP-Initiated Logout 1.0,
Back-Channel Logout 1.0 and RFC 9068 ask for the parts it serves, and runs in
process (httpx ``ASGITransport``) or on 127.0.0.1 under uvicorn. It is for tests
and laptops only: users sign in by picking a name.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.types import Receive, Scope, Send

from asgi_sso.config import (
    CertificateHeader,
    Clock,
    Issuer,
    Limits,
    SystemClock,
    plain_http_host,
)
from asgi_sso.errors import ConfigurationError
from asgi_sso.testing.idp import endpoints
from asgi_sso.testing.idp.assertions import ASSERTION_ALGORITHMS
from asgi_sso.testing.idp.model import (
    DEMO_AUDIENCE,
    DEMO_CLIENTS,
    DEMO_USERS,
    DevClient,
    DevUser,
    Grant,
    KeyRing,
    PushedRequest,
    new_secret,
)
from asgi_sso.testing.idp.server import free_port, serve_in_thread
from asgi_sso.testing.tokens import TokenFactory, merge_claims, mint
from asgi_sso.verify.dpop import DPoPChecker
from asgi_sso.verify.mtls import ClientCertificates

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "DEMO_AUDIENCE",
    "DEMO_CLIENTS",
    "DEMO_USERS",
    "DevClient",
    "DevIdP",
    "DevUser",
]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class DevIdP:
    """A development OpenID provider.

    Args:
        issuer: the issuer URL; ``None`` picks ``http://127.0.0.1:<free port>`` so
            that :meth:`serve` can run it for real clients too.
        users: the test users (the first is picked by ``auto_approve``).
        clients: the registered relying parties.
        algorithm: ``RS256`` (default), ``ES256`` or ``EdDSA``/``Ed25519``.
        clock: where time comes from (claims use ``time()``, key grace ``monotonic()``).
        auto_approve: skip the sign-in page and approve as the first user.
        code_ttl: life of an authorization code, seconds.
        access_token_ttl: life of access and ID tokens, seconds.
        refresh_token_ttl: life of a refresh token, seconds.
        key_grace: how long a rotated-out key stays in the JWKS, seconds.
        backchannel_client: posts back-channel logout tokens to the clients a session
            signed in to when it ends at ``/end_session``; ``None`` (the default) sends
            them only when :meth:`send_backchannel_logout` is called.
        dpop_nonce: the token endpoint demands a server nonce in DPoP proofs (RFC 9449
            §8): a proof without :attr:`dpop_nonce` is answered ``use_dpop_nonce`` with
            a ``DPoP-Nonce`` header, to test clients' retries. Assign the attribute a new
            value to rotate the nonce.
        require_par: take authorization requests only through ``/par`` (RFC 9126),
            advertised as ``require_pushed_authorization_requests``.
        par_ttl: life of a pushed request's ``request_uri``, seconds (used once).
        jwks_client: fetches the JWK Sets of clients registered with ``jwks_uri``;
            ``None`` opens a plain ``httpx.AsyncClient`` per fetch.
        client_cert_header: where a trusted TLS-terminating proxy passes the client
            certificate on (RFC 9440 ``Client-Cert``, nginx's or Envoy's
            ``x-forwarded-client-cert``), read as the middleware reads it; ``None``: only
            the ASGI TLS extension's certificate counts. A
            ``DevClient(certificate_bound=True)`` gets tokens bound to it (RFC 8705).
        assertion_algorithms: the algorithms ``private_key_jwt`` assertions may be
            signed with, advertised as ``token_endpoint_auth_signing_alg_values_supported``
            (and for introspection); others are ``invalid_client``. Some of
            ``RS256``, ``PS256`` and ``ES256`` (all by default).
    """

    def __init__(
        self,
        issuer: str | None = None,
        *,
        users: Sequence[DevUser] = (),
        clients: Sequence[DevClient] = (),
        algorithm: str = "RS256",
        clock: Clock | None = None,
        auto_approve: bool = False,
        code_ttl: int = 60,
        access_token_ttl: int = 300,
        refresh_token_ttl: int = 86_400,
        key_grace: float = 3600.0,
        backchannel_client: httpx.AsyncClient | None = None,
        dpop_nonce: bool = False,
        require_par: bool = False,
        par_ttl: int = 60,
        jwks_client: httpx.AsyncClient | None = None,
        client_cert_header: CertificateHeader | None = None,
        assertion_algorithms: Sequence[str] = ASSERTION_ALGORITHMS,
    ) -> None:
        self.issuer = (issuer or f"http://127.0.0.1:{free_port()}").rstrip("/")
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ConfigurationError(f"DevIdP issuer must be an http(s) URL, got {self.issuer!r}")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.path_prefix = parts.path
        self.clock: Clock = clock or SystemClock()
        self.auto_approve = auto_approve
        self.code_ttl = code_ttl
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.keys = KeyRing(algorithm, self.clock, key_grace)
        self.users: dict[str, DevUser] = {}
        self.clients: dict[str, DevClient] = {}
        for user in users:
            self.add_user(user)
        for client in clients:
            self.add_client(client)
        self.backchannel_client = backchannel_client
        self.backchannel_deliveries: list[tuple[str, int | None]] = []
        self.session_clients: dict[str, set[str]] = {}  # sid -> clients signed in
        self.codes: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, Grant] = {}
        self.opaque_tokens: dict[str, dict[str, Any]] = {}  # token -> its claims
        self.sessions: dict[str, str] = {}  # sid -> sub
        self.assertion_jtis: dict[str, float] = {}  # used client assertions -> their exp
        self.require_par = require_par
        self.par_ttl = par_ttl
        self.pushed: dict[str, PushedRequest] = {}  # request_uri -> the pushed request
        self.jwks_client = jwks_client
        self.fetched_jwks: dict[str, dict[str, Any]] = {}  # client id -> keys from jwks_uri
        self.requests: Counter[str] = Counter()  # endpoint name -> calls
        self.outage_status: int | None = None
        self.jwks_delay: float = 0.0
        self.dpop = DPoPChecker(Limits(), self.clock)  # token requests' proofs (RFC 9449 §5)
        self.dpop_nonce: str | None = new_secret() if dpop_nonce else None
        self.client_cert_header = client_cert_header
        self.certificates = ClientCertificates(client_cert_header)  # RFC 8705 §3
        if not assertion_algorithms or not set(assertion_algorithms) <= set(ASSERTION_ALGORITHMS):
            raise ConfigurationError(
                f"DevIdP assertion_algorithms must be some of {', '.join(ASSERTION_ALGORITHMS)}"
            )
        self.assertion_algorithms = tuple(assertion_algorithms)

    def __repr__(self) -> str:
        return f"DevIdP(issuer={self.issuer!r}, algorithm={self.algorithm!r})"

    # -- configuration --------------------------------------------------------------

    @property
    def algorithm(self) -> str:
        """The signing algorithm."""
        return self.keys.algorithm

    def add_user(self, user: DevUser) -> None:
        """Register (or replace) a test user."""
        self.users[user.sub] = user

    def add_client(self, client: DevClient) -> None:
        """Register (or replace) a relying party.

        Raises:
            ConfigurationError: the client wants ID tokens in an algorithm this IdP
                does not sign with (its own algorithm or RS256).
        """
        wanted = client.id_token_signed_response_alg
        if wanted is not None and wanted not in self.keys.algorithms:
            raise ConfigurationError(
                f"client {client.client_id!r} wants {wanted} ID tokens; "
                f"this IdP signs {', '.join(self.keys.algorithms)}"
            )
        self.clients[client.client_id] = client

    def find_user(self, login: str) -> DevUser | None:
        """The user whose ``sub`` or e-mail is ``login``."""
        return self.users.get(login) or next(
            (u for u in self.users.values() if u.email is not None and u.email == login), None
        )

    def url(self, endpoint: str) -> str:
        """The absolute URL of an endpoint path such as ``"/token"``."""
        return self.issuer + endpoint

    @property
    def discovery_url(self) -> str:
        """The OIDC discovery document URL."""
        return self.url("/.well-known/openid-configuration")

    @property
    def jwks_uri(self) -> str:
        """The JWK Set URL."""
        return self.url("/jwks")

    def issuer_config(self, audience: str | tuple[str, ...] | None = None, **kw: Any) -> Issuer:
        """An :class:`~asgi_sso.config.Issuer` trusting this IdP (keys found by discovery).

        Args:
            audience: the audience your API expects.
            **kw: any other :class:`Issuer` field (``jwks_uri``, ``client_id``, ``leeway``...).
        """
        kw.setdefault("algorithms", (self.algorithm,))
        # An in-process IdP may be named like a remote host (``http://idp.test``).
        kw.setdefault("allow_insecure_http", plain_http_host(self.issuer) is not None)
        return Issuer(issuer=self.issuer, audience=audience, **kw)

    # -- tokens ---------------------------------------------------------------------

    @property
    def tokens(self) -> TokenFactory:
        """A :class:`TokenFactory` signing with the current key, for the bad-token variants."""
        return TokenFactory(self.issuer, self.keys.current, clock=self.clock)

    def sign(self, claims: Mapping[str, Any], typ: str) -> str:
        """Sign ``claims`` with the current key and ``typ`` header, as they are."""
        return mint(claims, self.keys.current, headers={"typ": typ})

    def access_token_claims(
        self,
        sub: str,
        *,
        client_id: str,
        audience: str | Iterable[str],
        scope: str = "",
        expires_in: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The RFC 9068 §2.2 claim set of an access token (user claims included if known)."""
        now = int(self.clock.time())
        ttl = self.access_token_ttl if expires_in is None else expires_in
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "aud": audience if isinstance(audience, str) else list(audience),
            "exp": int(now + ttl),
            "iat": now,
            "jti": new_secret(),
            "client_id": client_id,
        }
        if scope:
            claims["scope"] = scope
        user = self.users.get(sub)
        if user is not None:
            claims.update(user.profile())
        return merge_claims(claims, extra)

    def issue_token(
        self,
        sub: str = "user-1",
        *,
        audience: str | Iterable[str] | None = None,
        scopes: Iterable[str] = (),
        groups: Iterable[str] | None = None,
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        client_id: str = "dev-client",
    ) -> str:
        """Mint an access token (``typ: at+jwt``) as if this IdP had issued it.

        Args:
            sub: the subject; a registered user's profile claims are included.
            audience: the ``aud``; defaults to the registered client's audience, else
                ``client_id``.
            scopes: granted scopes, joined into ``scope``.
            groups: overrides the user's ``groups``.
            claims: extra claims, merged last (``None`` values remove a claim).
            expires_in: lifetime in seconds (negative gives an expired token).
            client_id: the ``client_id`` claim.
        """
        extra = dict(claims or {})
        if groups is not None:
            extra.setdefault("groups", list(groups))
        body = self.access_token_claims(
            sub,
            client_id=client_id,
            audience=self._default_audience(client_id) if audience is None else audience,
            scope=" ".join(scopes),
            expires_in=expires_in,
            extra=extra,
        )
        return self.sign(body, "at+jwt")

    def issue_opaque_token(
        self,
        sub: str = "user-1",
        *,
        audience: str | Iterable[str] | None = None,
        scopes: Iterable[str] = (),
        claims: Mapping[str, Any] | None = None,
        expires_in: float | None = None,
        client_id: str = "dev-client",
    ) -> str:
        """Mint an opaque access token, checked only through ``/introspect`` (RFC 7662).

        Takes the arguments of :meth:`issue_token`; the claims are those the
        introspection endpoint answers with. :meth:`revoke_opaque_token` ends it early.
        """
        body = self.access_token_claims(
            sub,
            client_id=client_id,
            audience=self._default_audience(client_id) if audience is None else audience,
            scope=" ".join(scopes),
            expires_in=expires_in,
            extra=claims,
        )
        token = new_secret()
        self.opaque_tokens[token] = body
        return token

    def revoke_opaque_token(self, token: str) -> None:
        """Make an opaque token inactive (introspection answers ``active: false``)."""
        self.opaque_tokens.pop(token, None)

    def _default_audience(self, client_id: str) -> str:
        client = self.clients.get(client_id)
        return client_id if client is None else client.token_audience

    def logout_token(
        self, client_id: str, *, sub: str | None = None, sid: str | None = None
    ) -> str:
        """A back-channel logout token for ``client_id`` (OIDC Back-Channel Logout §2.4).

        Raises:
            ConfigurationError: neither ``sub`` nor ``sid`` was given.
        """
        if sub is None and sid is None:
            raise ConfigurationError("a logout token needs sub, sid or both")
        now = int(self.clock.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + 120,
            "jti": new_secret(),
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        if sub is not None:
            claims["sub"] = sub
        if sid is not None:
            claims["sid"] = sid
        return self.sign(claims, "logout+jwt")

    async def send_backchannel_logout(
        self,
        client_id: str,
        *,
        sub: str | None = None,
        sid: str | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        """POST a logout token to the client's ``backchannel_logout_uri`` (§2.5).

        Args:
            client_id: a registered client with a back-channel logout URI.
            sub: the user signed out.
            sid: the session signed out.
            http_client: the client to post with (e.g. one routing to your app in process).

        Returns:
            The RP's response (200 means it accepted the logout).
        """
        client = self.clients.get(client_id)
        if client is None or client.backchannel_logout_uri is None:
            raise ConfigurationError(f"client {client_id!r} has no backchannel_logout_uri")
        form = {"logout_token": self.logout_token(client_id, sub=sub, sid=sid)}
        if http_client is not None:
            return await http_client.post(client.backchannel_logout_uri, data=form)
        async with httpx.AsyncClient() as own:
            return await own.post(client.backchannel_logout_uri, data=form)

    # -- keys and failures ----------------------------------------------------------

    def rotate_keys(self) -> str:
        """Publish a new signing key; the old one stays in the JWKS for ``key_grace``.

        Returns:
            The new key's ``kid``.
        """
        return self.keys.rotate().kid or ""

    @contextmanager
    def outage(self, status: int = 503) -> Iterator[None]:
        """Within the block, discovery, JWKS and introspection answer ``status``.

        Each refusal carries ``Retry-After``.
        """
        previous, self.outage_status = self.outage_status, status
        try:
            yield
        finally:
            self.outage_status = previous

    @contextmanager
    def slow_jwks(self, delay: float) -> Iterator[None]:
        """Within the block, the JWKS endpoint waits ``delay`` seconds before answering."""
        previous, self.jwks_delay = self.jwks_delay, delay
        try:
            yield
        finally:
            self.jwks_delay = previous

    # -- running --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the provider's endpoints (ASGI)."""
        if scope["type"] == "lifespan":
            await endpoints.lifespan(receive, send)
        elif scope["type"] == "http":
            await endpoints.dispatch(self, scope, receive, send)

    def http_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` that reaches this IdP in process (other URLs go out)."""
        mounts = dict(kwargs.pop("mounts", {}))
        mounts[self.origin] = httpx.ASGITransport(app=self)
        return httpx.AsyncClient(mounts=mounts, **kwargs)

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run the IdP with uvicorn in a thread on the issuer's loopback port.

        Yields:
            The issuer URL.

        Raises:
            ConfigurationError: the issuer is not an ``http://`` loopback URL with a port.
        """
        with serve_in_thread(self, self.issuer):
            yield self.issuer

    async def wait_jwks_delay(self) -> None:
        """Hold a JWKS answer while :meth:`slow_jwks` is active."""
        if self.jwks_delay > 0:
            await asyncio.sleep(self.jwks_delay)
