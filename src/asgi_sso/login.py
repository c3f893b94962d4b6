"""Browser sign-in as an ASGI component: OIDC authorization code + PKCE, session cookies, logout.

:class:`BrowserLogin` serves ``{prefix}/login``, ``{prefix}/callback`` and
``{prefix}/logout`` and turns a session cookie back into a
:class:`~asgi_sso.principal.Principal` on every request. The session lives in
the encrypted cookie (default) or in a server-side
:class:`~asgi_sso.sessions.SessionStore`.

Logout is CSRF-safe by origin checking: a POST is accepted only with
``Sec-Fetch-Site: same-origin`` or, from browsers that do not send it, an
``Origin`` (else ``Referer``) equal to the app's own origin. No token is needed
in the page.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import msgspec

from asgi_sso import _login_http as web
from asgi_sso._login_config import LoginConfig
from asgi_sso._login_sessions import SessionCookies, principal_from
from asgi_sso._oidc import (
    ClientAuth,
    FlowState,
    ProviderError,
    SignInError,
    check_id_token,
    fetch_userinfo,
    merge_claims,
    new_flow,
    token_request,
)
from asgi_sso._oidc import authorize_url as build_authorize_url
from asgi_sso._return_to import safe_return_to
from asgi_sso.config import Clock
from asgi_sso.errors import AuthError
from asgi_sso.events import Emitter, Event
from asgi_sso.principal import Principal
from asgi_sso.revocation import Revocation, RevocationBus
from asgi_sso.sessions.base import SessionInvalid, SessionRecord, SessionStore
from asgi_sso.sessions.codec import CookieCodec

if TYPE_CHECKING:
    import httpx

    from asgi_sso.discovery import ProviderMetadata
    from asgi_sso.verify import TokenVerifier

__all__ = [
    "BrowserLogin",
    "LoginConfig",
    "ProviderError",
    "SessionInvalid",
    "SessionResult",
    "SignInError",
]

_DROPPED_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "_claim_names", "_claim_sources"})
_MAX_RESPONSE = 256 * 1024


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


_flow_decoder = msgspec.json.Decoder(FlowState)
_encoder = msgspec.json.Encoder()


class BrowserLogin:
    """Serves the sign-in routes and reads session cookies (constructed by the middleware)."""

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
    ) -> None:
        self.config = config
        self._verifier = verifier
        self._client = client
        self._store = session_store
        self._clock = clock
        self._emitter = emitter
        self._revocations = revocations
        self._on_signin = on_signin
        prefix = config.prefix
        self._login_path = prefix + "/login"
        self._callback_path = prefix + "/callback"
        self._logout_path = prefix + "/logout"
        self._routes = frozenset({self._login_path, self._callback_path, self._logout_path})
        self._secure = config.secure_cookies
        self._sessions = SessionCookies(
            config, store=session_store, clock=clock, revocations=revocations
        )
        self._state_prefix = self._sessions.state_prefix
        self._state_codec = CookieCodec(config.cookie_secrets, purpose="asgi_sso state")
        secret = config.client_secret.reveal() if config.client_secret is not None else None
        self._auth = ClientAuth(
            client_id=config.client_id, secret=secret, method=config.token_endpoint_auth
        )
        self._trusted_origins = frozenset(
            f"{p.scheme}://{p.netloc}"
            for p in (urlsplit(u) for u in (config.redirect_uri,) if u is not None)
        )
        revocations.subscribe(self._on_revocation)

    # -- what the middleware calls ------------------------------------------------

    def is_route(self, path: str) -> bool:
        """Whether ``path`` is one of the sign-in routes."""
        return path in self._routes

    async def start(self) -> None:
        """Prefetch the provider metadata; a provider that is down now is retried per request."""
        try:
            await self._verifier.metadata(self.config.issuer)
        except AuthError:
            self._emit("discovery.fetch", outcome="error", reason="prefetch")

    async def close(self) -> None:
        """Close the server-side store, if any."""
        if self._store is not None:
            await self._store.close()

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve ``{prefix}/login``, ``/callback`` and ``/logout`` (HTTP only)."""
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        path, method = scope["path"], scope["method"]
        routes = {
            self._login_path: (("GET", "HEAD"), self._login),
            self._callback_path: (("GET",), self._callback),
            self._logout_path: (("POST",), self._logout),
        }
        methods, handler = routes[path]
        if method not in methods:
            allow = (b"allow", ", ".join(methods).encode())
            await web.send_page(
                scope, send, 405, "method_not_allowed", "method not allowed", [allow]
            )
            return
        await handler(scope, send)

    async def authenticate(self, scope: Any) -> SessionResult | None:
        """Read the session cookie.

        Returns:
            ``None`` without a session cookie, else the session's principal and the
            ``Set-Cookie`` headers to add to the response.

        Raises:
            SessionInvalid: the cookie is tampered, truncated, expired, idle or revoked;
                its ``headers`` clear the cookie.
            StoreUnavailable: the server-side store cannot be reached.
        """
        cookies = web.parse_cookies(scope)
        try:
            value = self._sessions.value(cookies)
            if value is None:
                return None
            record, headers = await self._sessions.live(value, cookies)
        except SessionInvalid as exc:
            exc.headers = self._sessions.clear(cookies)
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
        if self.is_route(scope.get("path", "")) or not web.wants_html(scope):
            return False
        if (web.header(scope, b"x-requested-with") or "").lower() == "xmlhttprequest":
            return False
        mode = web.header(scope, b"sec-fetch-mode")
        return mode is None or mode == "navigate"

    async def redirect_to_login(self, scope: Any, send: Any) -> None:
        """Send the browser to ``{prefix}/login?return_to=<this path and query>``."""
        target = quote(scope.get("path", "/"), safe="/:@!$&'()*+,;=-._~%")
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        if query:
            target += "?" + query
        location = self._login_path + "?" + urlencode({"return_to": target})
        await web.send_redirect(send, location, status=302)

    # -- routes -------------------------------------------------------------------

    async def _login(self, scope: Any, send: Any) -> None:
        params = web.query_params(scope) or {}
        return_to = safe_return_to(_single(params, "return_to")) or self.config.default_return_to
        try:
            metadata = await self._metadata()
        except AuthError as exc:
            await _send_error(scope, send, exc)
            return
        redirect_uri = self.config.redirect_uri or (web.request_origin(scope) + self._callback_path)
        now = self._clock.time()
        flow = new_flow(
            return_to=return_to,
            redirect_uri=redirect_uri,
            expires_at=now + self.config.state_lifetime,
        )
        key = _state_key(flow.state)
        if self._store is not None:
            try:
                await self._store.put_state(key, b"1", self.config.state_lifetime)
            except AuthError as exc:
                await _send_error(scope, send, exc)
                return
        url = build_authorize_url(
            metadata.authorization_endpoint or "",
            client_id=self.config.client_id,
            scopes=self.config.scopes,
            flow=flow,
            extra=self.config.extra_authorize_params,
        )
        cookie = web.set_cookie(
            self._state_prefix + key,
            self._state_codec.encode(_encoder.encode(flow)),
            path=self.config.prefix,
            max_age=int(self.config.state_lifetime),
            secure=self._secure,
        )
        await web.send_redirect(send, url, [cookie], status=302)

    async def _callback(self, scope: Any, send: Any) -> None:
        headers: list[tuple[bytes, bytes]] = []
        try:
            flow = await self._take_flow(scope, headers)
            location = await self._finish_signin(scope, flow, headers)
        except AuthError as exc:
            self._emit("signin", outcome="refused", reason=exc.reason)
            await _send_error(scope, send, exc, headers)
            return
        await web.send_redirect(send, location, headers)

    async def _take_flow(self, scope: Any, headers: list[tuple[bytes, bytes]]) -> FlowState:
        params = web.query_params(scope)
        if params is None or any(len(v) > 1 for v in params.values()):
            raise SignInError("the callback parameters are malformed")
        state = _single(params, "state")
        if not state:
            raise SignInError("the callback has no state; please sign in again")
        key = _state_key(state)
        name = self._state_prefix + key
        headers.append(web.clear_cookie(name, path=self.config.prefix, secure=self._secure))
        sealed = web.parse_cookies(scope).get(name)
        if sealed is None:
            raise SignInError("the sign-in state is missing or has expired; please sign in again")
        try:
            flow = _flow_decoder.decode(self._state_codec.decode(sealed))
        except (SessionInvalid, msgspec.DecodeError) as exc:
            raise SignInError("the sign-in state is invalid; please sign in again") from exc
        if not hmac.compare_digest(flow.state.encode(), state.encode()):
            raise SignInError("the sign-in state does not match")
        if flow.expires_at <= self._clock.time():
            raise SignInError("the sign-in state has expired; please sign in again")
        if self._store is not None:
            first = await self._store.pop_state(key) is not None
        else:
            first = self._sessions.first_use(key, self.config.state_lifetime)
        if not first:
            raise SignInError("this sign-in response was already used")
        error = _single(params, "error")
        if error is not None:
            detail = (_single(params, "error_description") or "")[:300]
            raise SignInError(
                f"the identity provider answered {error[:64]}" + (f": {detail}" if detail else "")
            )
        return flow

    async def _finish_signin(
        self, scope: Any, flow: FlowState, headers: list[tuple[bytes, bytes]]
    ) -> str:
        params = web.query_params(scope) or {}
        metadata = await self._metadata()
        iss = _single(params, "iss")
        # RFC 9207 §2.4: required when advertised, compared whenever present.
        if iss is None and metadata.authorization_response_iss_parameter_supported:
            raise SignInError("the authorization response lacks the iss parameter")
        if iss is not None and iss != metadata.issuer:
            raise SignInError("the authorization response comes from another issuer")
        code = _single(params, "code")
        if not code:
            raise SignInError("the callback has no authorization code")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        }
        tokens = await token_request(
            self._client,
            metadata.token_endpoint or "",
            form,
            self._auth,
            deadline=self.config.http_timeout,
            max_bytes=_MAX_RESPONSE,
        )
        if not tokens.id_token:
            raise ProviderError("the token response has no id_token")
        verified = await self._verifier.verify(
            tokens.id_token, audience=self.config.client_id, use_cache=False
        )
        check_id_token(
            verified.claims,
            issuer=self.config.issuer,
            client_id=self.config.client_id,
            nonce=flow.nonce,
            alg=verified.header.get("alg"),
            access_token=tokens.access_token,
        )
        claims = dict(verified.claims)
        if self.config.use_userinfo and metadata.userinfo_endpoint and tokens.access_token:
            userinfo = await fetch_userinfo(
                self._client,
                metadata.userinfo_endpoint,
                tokens.access_token,
                deadline=self.config.http_timeout,
                max_bytes=_MAX_RESPONSE,
            )
            claims = merge_claims(claims, userinfo)
        now = self._clock.time()
        sid = claims.get("sid")
        record = SessionRecord(
            id=secrets.token_urlsafe(24),
            subject=verified.subject,
            issuer=self.config.issuer,
            connection=verified.connection,
            claims={k: v for k, v in claims.items() if k not in _DROPPED_CLAIMS},
            sid=sid if isinstance(sid, str) else None,
            id_token=tokens.id_token,
            refresh_token=tokens.refresh_token if self._store is not None else None,
            created_at=now,
            last_seen=now,
            expires_at=now + self.config.session_lifetime,
        )
        if self._on_signin is not None:
            await self._on_signin(principal_from(record))
        cookies = web.parse_cookies(scope)
        await self._sessions.end(cookies)
        if self._store is not None:
            await self._store.create(record)
        headers.extend(self._sessions.issue(record, cookies))
        self._emit("signin", connection=record.connection, subject=record.subject)
        self._emit("session.created", connection=record.connection, subject=record.subject)
        return flow.return_to

    async def _logout(self, scope: Any, send: Any) -> None:
        if not self._same_origin(scope):
            await web.send_page(
                scope, send, 403, "forbidden", "logout must come from this site's own pages"
            )
            return
        cookies = web.parse_cookies(scope)
        record = await self._sessions.end(cookies)
        headers = self._sessions.clear(cookies)
        location = self.config.post_logout_redirect_uri or self.config.default_return_to
        if record is not None and self.config.end_session:
            location = await self._end_session_url(record) or location
        self._emit(
            "logout",
            connection=record.connection if record else None,
            subject=record.subject if record else None,
        )
        await web.send_redirect(send, location, headers)

    # -- sessions -----------------------------------------------------------------

    async def _on_revocation(self, revocation: Revocation) -> None:
        try:
            await self._sessions.on_revocation(revocation)
        except AuthError as exc:  # a store outage must not break the other listeners
            self._emit("session.ended", outcome="error", reason=exc.reason)

    # -- helpers ------------------------------------------------------------------

    async def _metadata(self) -> ProviderMetadata:
        metadata = await self._verifier.metadata(self.config.issuer)
        if not metadata.authorization_endpoint or not metadata.token_endpoint:
            raise ProviderError("the provider metadata lacks authorization or token endpoints")
        return metadata

    async def _end_session_url(self, record: SessionRecord) -> str | None:
        try:
            endpoint = (await self._verifier.metadata(self.config.issuer)).end_session_endpoint
        except AuthError:
            return None
        if not endpoint:
            return None
        params = {"client_id": self.config.client_id}
        if record.id_token:
            params["id_token_hint"] = record.id_token
        if self.config.post_logout_redirect_uri:
            params["post_logout_redirect_uri"] = self.config.post_logout_redirect_uri
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    def _same_origin(self, scope: Any) -> bool:
        site = web.header(scope, b"sec-fetch-site")
        if site is not None:
            return site == "same-origin"
        own = {web.request_origin(scope), *self._trusted_origins}
        origin = web.header(scope, b"origin")
        if origin is not None and origin != "null":
            return origin in own
        referer = web.header(scope, b"referer")
        if referer:
            parts = urlsplit(referer)
            return f"{parts.scheme}://{parts.netloc}" in own
        return False

    def _emit(
        self,
        name: str,
        *,
        outcome: str = "ok",
        reason: str | None = None,
        connection: str | None = None,
        subject: str | None = None,
    ) -> None:
        if self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name=name,
                    outcome=outcome,
                    reason=reason,
                    time=self._clock.time(),
                    issuer=self.config.issuer,
                    connection=connection,
                    subject=subject,
                )
            )


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _state_key(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()[:32]


async def _send_error(
    scope: Any, send: Any, exc: AuthError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await web.send_page(
        scope, send, exc.status, exc.error or exc.reason, exc.description, headers or []
    )
