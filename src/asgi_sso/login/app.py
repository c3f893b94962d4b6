"""Browser sign-in as an ASGI component: OIDC authorization code + PKCE, session cookies, logout.

:class:`BrowserLogin` serves ``{prefix}/login``, ``{prefix}/callback``,
``{prefix}/logout`` and the client keys' public JWK Set (``LoginConfig.jwks_route``)
and turns a session cookie back into a
:class:`~asgi_sso.principal.Principal` on every request. Users sign in at the
default provider (``LoginConfig.issuer``) or, given the live connections, at the
connection home-realm discovery picks (:mod:`asgi_sso.login.discovery`); each
leg uses that provider's client (:mod:`asgi_sso.login.providers`). The session
lives in the encrypted cookie (default) or in a server-side
:class:`~asgi_sso.sessions.SessionStore`.

The sign-in legs live in :mod:`asgi_sso.login.callback`, the cookies in
:mod:`asgi_sso.login.sessions`, token refresh in :mod:`asgi_sso.login.refresh`.
Under an ASGI ``root_path`` the routes are ``{root_path}{prefix}/…`` and the
derived redirect URI, cookie paths and redirects all include the mount point.

Logout is CSRF-safe by origin checking (:mod:`asgi_sso._asgi`): a POST is
accepted only with ``Sec-Fetch-Site: same-origin`` or an ``Origin`` (else
``Referer``) equal to the app's own origin or an allowed one. No token is needed
in the page. A session-cookie-authenticated WebSocket or unsafe request passes
the same check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from asgi_sso import _asgi
from asgi_sso._asgi import OriginGuard, origins_of
from asgi_sso.config import Clock
from asgi_sso.errors import AuthError
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.login import http as web
from asgi_sso.login.callback import SignInFlow
from asgi_sso.login.config import LoginConfig
from asgi_sso.login.oidc import ProviderError, SignInError
from asgi_sso.login.providers import Providers
from asgi_sso.login.refresh import SessionRefresher
from asgi_sso.login.sessions import SessionCookies, principal_from
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.principal import Principal
from asgi_sso.sessions.base import SessionInvalid, SessionRecord, SessionStore

if TYPE_CHECKING:
    import httpx

    from asgi_sso.connections.live import LiveConnections
    from asgi_sso.verify.verifier import TokenVerifier

__all__ = [
    "BrowserLogin",
    "LoginConfig",
    "ProviderError",
    "SessionInvalid",
    "SessionResult",
    "SignInError",
]


class SessionResult:
    """A request's browser session.

    Attributes:
        principal: the signed-in user (``source="session"``, ``session_id`` set).
        headers: ``Set-Cookie`` headers to add to the app's response (sliding expiry).
    """

    __slots__ = ("headers", "principal")

    def __init__(self, principal: Principal, headers: list[tuple[bytes, bytes]]) -> None:
        self.principal = principal
        self.headers = headers


class BrowserLogin:
    """Serves the sign-in routes and reads session cookies (constructed by the middleware).

    ``origins`` decides which origins may log out and send cookie-authenticated
    unsafe requests and WebSockets; by default the request's own origin and that
    of ``config.redirect_uri``. ``connections`` (the middleware's live snapshot)
    makes every enabled connection with a ``client_id`` a sign-in provider.
    ``external_url`` (``PathRules.external_url``), when set, is where the default
    redirect URI lies instead of the origin and mount point the server reports.

    Raises:
        ConfigurationError: ``config`` has no issuer and no connections are given.
    """

    def __init__(
        self,
        config: LoginConfig,
        *,
        verifier: TokenVerifier,
        client: httpx.AsyncClient,
        session_store: SessionStore | None,
        clock: Clock,
        emitter: Emitter,
        revocations: RevocationBus,
        on_signin: Callable[[Principal], Awaitable[Principal]] | None = None,
        origins: OriginGuard | None = None,
        connections: LiveConnections | None = None,
        external_url: str | None = None,
    ) -> None:
        self.config = config
        self._verifier = verifier
        self._store = session_store
        self._clock = clock
        self._emitter = emitter
        prefix = config.prefix
        self._login_path = prefix + "/login"
        self._logout_path = prefix + "/logout"
        self._routes = frozenset(
            {self._login_path, prefix + "/callback", self._logout_path, config.jwks_route}
        )
        self.providers = Providers(config, connections=connections, clock=clock)
        refresher = None
        if session_store is not None and config.refresh:
            refresher = SessionRefresher(
                config,
                store=session_store,
                verifier=verifier,
                client=client,
                providers=self.providers,
                clock=clock,
                emit=self._emit,
            )
        self._sessions = SessionCookies(
            config,
            store=session_store,
            clock=clock,
            revocations=revocations,
            refresher=refresher,
            providers=self.providers,
        )
        self._flow = SignInFlow(
            config,
            verifier=verifier,
            client=client,
            store=session_store,
            clock=clock,
            sessions=self._sessions,
            providers=self.providers,
            emit=self._emit,
            on_signin=on_signin,
            external_url=external_url,
        )
        self._origins = origins or OriginGuard(origins_of([config.redirect_uri]))
        revocations.subscribe(self._on_revocation)

    # -- what the middleware calls ------------------------------------------------

    def is_route(self, path: str) -> bool:
        """Whether ``path`` (below any ``root_path``) is one of the sign-in routes."""
        return path in self._routes

    def handles(self, scope: Any) -> bool:
        """Whether the request is for one of the sign-in routes, minding ``root_path``."""
        return _asgi.route_path(scope) in self._routes

    async def start(self) -> None:
        """Prefetch the default provider's metadata; one down now is retried per request.

        Connections' metadata is fetched on their first sign-in.
        """
        if self.providers.default is None:
            return
        try:
            await self._verifier.metadata(self.providers.default.iss)
        except AuthError:
            self._emit("discovery.fetch", outcome="error", reason="prefetch")

    async def close(self) -> None:
        """Close the server-side store, if any."""
        if self._store is not None:
            await self._store.close()

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve ``{prefix}/login``, ``/callback``, ``/logout`` and the client keys (HTTP only)."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        prefix = self.config.prefix
        routes = {
            prefix + "/login": (("GET", "HEAD"), self._flow.login),
            prefix + "/callback": (("GET",), self._flow.callback),
            prefix + "/logout": (("POST",), self._logout),
            self.config.jwks_route: (("GET", "HEAD"), self._jwks),
        }
        route = routes.get(_asgi.route_path(scope))
        if route is None:
            await web.send_page(scope, send, 404, "not_found", "no such sign-in route")
            return
        methods, handler = route
        if scope["method"] not in methods:
            allow = (b"allow", ", ".join(methods).encode())
            await web.send_page(
                scope, send, 405, "method_not_allowed", "method not allowed", [allow]
            )
            return
        await handler(scope, send)

    async def authenticate(self, scope: Any, *, read_only: bool = False) -> SessionResult | None:
        """Read the session cookie; refresh the session's tokens when they are due.

        Args:
            scope: the request's ASGI scope.
            read_only: only read the session (a public path): no token refresh, no
                sliding expiry, so no ``Set-Cookie`` with a session in it and no call
                to the provider. A cookie that opens no session is still cleared.

        Returns:
            ``None`` without a session cookie, else the session's principal and the
            ``Set-Cookie`` headers to add to the response.

        Raises:
            SessionInvalid: the cookie is tampered, truncated, expired, idle or revoked, or
                the provider refused to refresh it; its ``headers`` clear the cookie.
            CrossOriginRequest: an unsafe request or WebSocket from another origin.
            StoreUnavailable: the server-side store cannot be reached.
        """
        cookies = _asgi.parse_cookies(scope)
        root = _asgi.root_path(scope)
        try:
            value = self._sessions.value(cookies, root)
            if value is None:
                return None
            self._origins.check(scope)  # before the store or a refresh is touched
            record, headers = await self._sessions.live(value, cookies, root, read_only=read_only)
        except SessionInvalid as exc:
            exc.headers = self._sessions.clear(cookies, root)
            self._emit("session.ended", outcome="refused", reason=exc.description)
            raise
        return SessionResult(principal_from(record), headers)

    def strip_cookies(self, scope: Any) -> Any:
        """A shallow copy of ``scope`` whose ``cookie`` headers lack session and state cookies."""
        headers = scope.get("headers", ())
        if not any(key == b"cookie" for key, _ in headers):
            return scope
        kept: list[tuple[bytes, bytes]] = []
        for key, value in headers:
            if key != b"cookie":
                kept.append((key, value))
                continue
            parts = [
                part.strip()
                for part in bytes(value).decode("latin-1").split(";")
                if part.strip() and not self._sessions.is_ours(part.strip().partition("=")[0])
            ]
            if parts:
                kept.append((b"cookie", "; ".join(parts).encode("latin-1")))
        return {**scope, "headers": kept}

    def wants_redirect(self, scope: Any) -> bool:
        """Whether an unauthenticated request is a browser page navigation (GET, HTML, not XHR)."""
        if scope.get("type") != "http" or scope.get("method") not in ("GET", "HEAD"):
            return False
        if self.handles(scope) or not _asgi.wants_html(scope):
            return False
        if (_asgi.header(scope, b"x-requested-with") or "").lower() == "xmlhttprequest":
            return False
        mode = _asgi.header(scope, b"sec-fetch-mode")
        return mode is None or mode == "navigate"

    async def redirect_to_login(self, scope: Any, send: Any) -> None:
        """Send the browser to ``{root_path}{prefix}/login?return_to=<this path and query>``."""
        root = _asgi.root_path(scope)
        target = quote(root + _asgi.route_path(scope), safe="/:@!$&'()*+,;=-._~%")
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        if query:
            target += "?" + query
        location = root + self._login_path + "?" + urlencode({"return_to": target})
        await web.send_redirect(send, location, status=302)

    # -- the client keys -----------------------------------------------------------

    async def _jwks(self, scope: Any, send: Any) -> None:
        # Public halves only; the IdP refetches when an assertion names an unknown kid.
        document = self.providers.jwks()
        if document is None:
            await web.send_page(scope, send, 404, "not_found", "no client keys are configured")
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(document)).encode()),
            (b"cache-control", b"public, max-age=300"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else document
        await send({"type": "http.response.body", "body": body})

    # -- logout -------------------------------------------------------------------

    async def _logout(self, scope: Any, send: Any) -> None:
        if not self._origins.allows(scope):
            await web.send_page(
                scope, send, 403, "forbidden", "logout must come from this site's own pages"
            )
            return
        cookies = _asgi.parse_cookies(scope)
        root = _asgi.root_path(scope)
        record = await self._sessions.end(cookies, root)
        headers = self._sessions.clear(cookies, root)
        location = self.config.post_logout_redirect_uri or root + self.config.default_return_to
        if record is not None and self.config.end_session:
            location = await self._end_session_url(record) or location
        self._emit(
            "logout",
            connection=record.connection if record else None,
            subject=record.subject if record else None,
            client_ip=_asgi.client_ip(scope),
            issuer=record.issuer if record else None,
        )
        await web.send_redirect(send, location, headers)

    async def _end_session_url(self, record: SessionRecord) -> str | None:
        # RP-initiated logout continues at the provider the session was opened with.
        provider = self.providers.for_record(record)
        if provider is None:
            return None
        try:
            endpoint = (await self._verifier.metadata(provider.iss)).end_session_endpoint
        except AuthError:
            return None
        if not endpoint:
            return None
        params = {"client_id": provider.client_id}
        if record.id_token:
            params["id_token_hint"] = record.id_token
        if self.config.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.config.post_logout_redirect_uri
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    # -- revocations and events ---------------------------------------------------

    async def _on_revocation(self, revocation: Revocation) -> None:
        try:
            await self._sessions.on_revocation(revocation)
        except AuthError as exc:  # a store outage must not break the other listeners
            self._emit("session.ended", outcome="error", reason=exc.reason)
            if revocation.kind == "logout":
                # The bus runs the other listeners first; the back-channel endpoint then
                # answers an error, not a 200 claiming the sessions are gone.
                raise

    def _emit(
        self,
        name: str,
        *,
        outcome: str = "ok",
        reason: str | None = None,
        connection: str | None = None,
        subject: str | None = None,
        client_ip: str | None = None,
        issuer: str | None = None,
    ) -> None:
        if self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name=name,
                    outcome=outcome,
                    reason=reason,
                    time=self._clock.time(),
                    issuer=issuer or self.config.issuer,
                    connection=connection,
                    subject=subject,
                    client_ip=client_ip,
                )
            )
