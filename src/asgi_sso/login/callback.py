"""The two legs of an OIDC sign-in: send the browser to the provider, and take its answer.

``{prefix}/login`` picks the provider (home-realm discovery,
:mod:`asgi_sso.login.discovery`) and starts a flow (PKCE S256, ``state``,
``nonce``) kept in an encrypted, path-scoped state cookie, one per flow (so
sign-ins in several tabs proceed side by side) and at most
:data:`MAX_PENDING_SIGNINS` per browser. A
pending sign-in costs the server nothing: anonymous ``/login`` traffic writes no
store and cannot push out anyone else's sign-in. ``{prefix}/callback`` is one URL
for every provider: it checks the state against its cookie, marks it used once (a
bounded, expiring mark), finds the provider the flow was started with (still
enabled and unchanged, or the callback fails), checks the RFC 9207 ``iss`` against
that provider, exchanges the code with that provider's client credentials,
verifies the ID token against its issuer and client id, merges userinfo and opens
the session.
``return_to`` values are paths as the browser sees them, so under an ASGI
``root_path`` (``/app``) they must lie below it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from asgi_sso import _asgi
from asgi_sso.config import Clock
from asgi_sso.errors import AuthError
from asgi_sso.login import http as web
from asgi_sso.login.config import LoginConfig
from asgi_sso.login.discovery import DiscoveryPage, pick, send_discovery
from asgi_sso.login.dpop import DPoPKey, signin_key
from asgi_sso.login.oidc import (
    FlowState,
    ProviderError,
    SignInError,
    TokenSet,
    authorize_params,
    clean_text,
    client_auth_for,
    merge_claims,
    new_flow,
    par_endpoint,
    push_authorization_request,
    token_request,
    with_query,
)
from asgi_sso.login.refresh import (
    DROPPED_CLAIMS,
    MAX_RESPONSE,
    Emit,
    fetch_claims,
    refresh_due_at,
    verify_id_token,
)
from asgi_sso.login.return_to import safe_return_to
from asgi_sso.login.sessions import SessionCookies, app_binding, principal_from
from asgi_sso.principal import Principal
from asgi_sso.responses import error_code
from asgi_sso.sessions.base import SessionInvalid, SessionRecord, SessionStore
from asgi_sso.sessions.codec import CookieCodec

if TYPE_CHECKING:
    import httpx

    from asgi_sso.keys.discovery import ProviderMetadata
    from asgi_sso.login.providers import Provider, Providers
    from asgi_sso.verify.verifier import TokenVerifier, VerifiedToken

__all__ = ["MAX_PENDING_SIGNINS", "SignInFlow", "send_error"]

MAX_PENDING_SIGNINS = 8
"""State cookies one browser keeps at once; starting one more drops the oldest."""

_flow_decoder = msgspec.json.Decoder(FlowState)
_encoder = msgspec.json.Encoder()


class SignInFlow:
    """Serves ``{prefix}/login`` and ``{prefix}/callback`` for one :class:`BrowserLogin`."""

    def __init__(
        self,
        config: LoginConfig,
        *,
        verifier: TokenVerifier,
        client: httpx.AsyncClient,
        store: SessionStore | None,
        clock: Clock,
        sessions: SessionCookies,
        providers: Providers,
        emit: Emit,
        on_signin: Callable[[Principal], Awaitable[Principal]] | None,
        external_url: str | None = None,
    ) -> None:
        self.config = config
        self._external_url = external_url
        self._verifier = verifier
        self._client = client
        self._store = store
        self._clock = clock
        self._sessions = sessions
        self._providers = providers
        self._emit = emit
        self._on_signin = on_signin
        self._state_codec = CookieCodec(
            config.cookie_secrets, purpose="asgi_sso state", binding=app_binding(config)
        )
        self._callback_route = config.prefix + "/callback"
        self._login_route = config.prefix + "/login"

    async def metadata(self, provider: Provider) -> ProviderMetadata:
        """The provider metadata, which must name the authorization and token endpoints."""
        metadata = await self._verifier.metadata(provider.iss)
        if not metadata.authorization_endpoint or not metadata.token_endpoint:
            raise ProviderError("the provider metadata lacks authorization or token endpoints")
        return metadata

    async def login(self, scope: Any, send: Any) -> None:
        """Pick the provider (home-realm discovery), or show the page asking for an email."""
        root = _asgi.root_path(scope)
        params = _asgi.query_params(scope)
        asked = (params or {}).get("return_to", [])  # two of them: ambiguous, none kept
        return_to = _inside(root, safe_return_to(asked[0])) if len(asked) == 1 else None
        choice = pick(params, self._providers)
        if choice.provider is None:
            page = DiscoveryPage(
                action=root + self._login_route,
                return_to=return_to,
                email=choice.email,
                error=choice.error,
            )
            await send_discovery(scope, send, page, choice.status, self.config.discovery_page)
            return
        await self._start(scope, send, choice.provider, return_to, choice.login_hint)

    async def _start(
        self,
        scope: Any,
        send: Any,
        provider: Provider,
        return_to: str | None,
        login_hint: str | None,
    ) -> None:
        """Start a sign-in at ``provider``: set the state cookie and redirect there."""
        root = _asgi.root_path(scope)
        flow = self._new_flow(scope, provider, return_to)
        key = _state_key(flow.state)
        extra = dict(provider.authorize_params)
        if login_hint is not None:
            extra["login_hint"] = login_hint  # OIDC Core §3.1.2.1
        if self.config.resource is not None:
            extra["resource"] = self.config.resource  # RFC 8707 §2.1
        params = authorize_params(
            client_id=provider.client_id, scopes=provider.scopes, flow=flow, extra=extra
        )
        try:
            url = await self._authorization_url(provider, params)
        except AuthError as exc:
            await send_error(scope, send, exc)
            return
        path = root + self.config.prefix
        headers = self._drop_oldest_states(scope, path)
        headers.append(
            web.set_cookie(
                self._sessions.state_prefix + key,
                self._state_codec.encode(_encoder.encode(flow)),
                path=path,
                max_age=int(self.config.state_lifetime),
                secure=self.config.secure_cookies,
            )
        )
        await web.send_redirect(send, url, headers, status=302)

    async def _authorization_url(self, provider: Provider, params: dict[str, str]) -> str:
        """Where the browser goes: the whole request, or a pushed request's URI (RFC 9126 §4)."""
        metadata = await self.metadata(provider)
        endpoint = metadata.authorization_endpoint or ""
        # Before the browser leaves: a key the provider refuses would fail the callback.
        auth = client_auth_for(provider.auth, metadata)
        par = par_endpoint(metadata, self.config.par)
        if par is None:
            return with_query(endpoint, params)
        request_uri = await push_authorization_request(
            self._client,
            par,
            params,
            auth,
            deadline=self.config.http_timeout,
            max_bytes=MAX_RESPONSE,
        )
        return with_query(endpoint, {"client_id": provider.client_id, "request_uri": request_uri})

    def _new_flow(self, scope: Any, provider: Provider, return_to: str | None) -> FlowState:
        # The flow names its provider: the callback finishes it there or nowhere.
        root = _asgi.root_path(scope)
        # Behind a proxy, the URL the browser sees (PathRules.external_url) holds the root.
        base = self._external_url or _asgi.request_origin(scope) + root
        redirect_uri = self.config.redirect_uri or base + self._callback_route
        now = self._clock.time()
        return new_flow(
            return_to=return_to or root + self.config.default_return_to,
            redirect_uri=redirect_uri,
            expires_at=now + self.config.state_lifetime,
            connection=provider.connection,
            iss=provider.iss,
            client_id=provider.client_id,
            started_at=now,
        )

    def _drop_oldest_states(self, scope: Any, path: str) -> list[tuple[bytes, bytes]]:
        """Cookies clearing the oldest pending sign-ins, leaving room for one more.

        Browsers send cookies of one path oldest first (RFC 6265 §5.4, step 2), so
        the first state cookies in the header are the oldest flows.
        """
        prefix = self._sessions.state_prefix
        pending = [name for name in _asgi.parse_cookies(scope) if name.startswith(prefix)]
        excess = max(0, len(pending) - MAX_PENDING_SIGNINS + 1)
        secure = self.config.secure_cookies
        return [web.clear_cookie(name, path=path, secure=secure) for name in pending[:excess]]

    async def callback(self, scope: Any, send: Any) -> None:
        """Finish a sign-in: open the session and redirect to ``return_to``."""
        headers: list[tuple[bytes, bytes]] = []
        try:
            flow = await self._take_flow(scope, headers)
            location = await self._finish(scope, flow, headers)
        except AuthError as exc:
            self._emit(
                "signin", outcome="refused", reason=exc.reason, client_ip=_asgi.client_ip(scope)
            )
            await send_error(scope, send, exc, headers)
            return
        await web.send_redirect(send, location, headers)

    async def _take_flow(self, scope: Any, headers: list[tuple[bytes, bytes]]) -> FlowState:
        params = _asgi.query_params(scope)
        if params is None or any(len(v) > 1 for v in params.values()):
            raise SignInError("the callback parameters are malformed")
        state = _single(params, "state")
        if not state:
            raise SignInError("the callback has no state; please sign in again")
        key = _state_key(state)
        name = self._sessions.state_prefix + key
        path = _asgi.root_path(scope) + self.config.prefix
        headers.append(web.clear_cookie(name, path=path, secure=self.config.secure_cookies))
        sealed = _asgi.parse_cookies(scope).get(name)
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
            # A mark that lives as long as the flow could still be replayed; written
            # only for a state that matched its sealed cookie.
            ttl = flow.expires_at - self._clock.time()
            first = await self._store.claim(f"signin:{key}", ttl)
        else:
            first = self._sessions.first_use(key, self.config.state_lifetime)
        if not first:
            raise SignInError("this sign-in response was already used")
        error = _single(params, "error")
        if error is not None:
            # RFC 6749 §4.1.2.1 limits both to printable ASCII; providers do not all comply.
            code = clean_text(error, 64) or "error"
            detail = clean_text(_single(params, "error_description") or "", 300)
            raise SignInError(
                f"the identity provider answered {code}" + (f": {detail}" if detail else "")
            )
        return flow

    async def _finish(self, scope: Any, flow: FlowState, headers: list[tuple[bytes, bytes]]) -> str:
        provider = self._providers.for_flow(flow)
        if provider is None:
            raise SignInError(
                "the sign-in connection was disabled or changed meanwhile; please sign in again"
            )
        metadata = await self.metadata(provider)
        key = signin_key(self.config.dpop, metadata, self._clock)
        tokens = await self._redeem(scope, flow, metadata, provider, key)
        verified = await verify_id_token(self._verifier, provider, tokens, nonce=flow.nonce)
        if provider.connection is not None and (
            verified.connection != provider.connection or not self._verifier.trusts(verified)
        ):
            raise SignInError("the sign-in connection changed meanwhile; please sign in again")
        claims = dict(verified.claims)
        if self.config.use_userinfo and metadata.userinfo_endpoint and tokens.access_token:
            userinfo = await fetch_claims(
                self._client,
                self.config,
                metadata.userinfo_endpoint,
                tokens.access_token,
                dpop=key if tokens.dpop_bound else None,
            )
            claims = merge_claims(claims, userinfo, user_claim=verified.issuer.config.user_claim)
        record = self._record(verified, claims, tokens, provider, key)
        if self._on_signin is not None:
            await self._on_signin(principal_from(record))
        cookies = _asgi.parse_cookies(scope)
        root = _asgi.root_path(scope)
        await self._sessions.end(cookies, root)
        if self._store is not None:
            await self._store.create(record)
        headers.extend(self._sessions.issue(record, cookies, root))
        self._emit(
            "signin",
            connection=record.connection,
            subject=record.subject,
            client_ip=_asgi.client_ip(scope),
            issuer=record.issuer,
        )
        self._emit(
            "session.created",
            connection=record.connection,
            subject=record.subject,
            issuer=record.issuer,
        )
        return flow.return_to

    async def _redeem(
        self,
        scope: Any,
        flow: FlowState,
        metadata: ProviderMetadata,
        provider: Provider,
        key: DPoPKey | None,
    ) -> TokenSet:
        # The authorization response's checks, then the code exchange (RFC 6749 §4.1.3).
        params = _asgi.query_params(scope) or {}
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
        if self.config.resource is not None:
            form["resource"] = self.config.resource  # RFC 8707 §2.2
        tokens = await token_request(
            self._client,
            metadata.token_endpoint or "",
            form,
            client_auth_for(provider.auth, metadata),
            deadline=self.config.http_timeout,
            max_bytes=MAX_RESPONSE,
            dpop=key,
        )
        if not tokens.id_token:
            raise ProviderError("the token response has no id_token")
        return tokens

    def _record(
        self,
        verified: VerifiedToken,
        claims: dict[str, Any],
        tokens: TokenSet,
        provider: Provider,
        key: DPoPKey | None,
    ) -> SessionRecord:
        now = self._clock.time()
        sid = claims.get("sid")
        # The refresh token is kept server-side only, never in a cookie.
        refresh_token = tokens.refresh_token if self._store is not None else None
        refreshing = self.config.refresh and refresh_token is not None
        return SessionRecord(
            id=secrets.token_urlsafe(24),
            subject=verified.subject,
            issuer=provider.iss,
            connection=verified.connection,
            client_id=provider.client_id,
            claims={k: v for k, v in claims.items() if k not in DROPPED_CLAIMS},
            sid=sid if isinstance(sid, str) else None,
            sub=_raw_sub(verified),
            id_token=tokens.id_token,
            refresh_token=refresh_token if refreshing else None,
            # The key goes where the refresh token goes: its refresh must prove it.
            dpop_key=key.private_jwk() if refreshing and key is not None else None,
            created_at=now,
            last_seen=now,
            expires_at=now + self.config.session_lifetime,
            refresh_at=(
                refresh_due_at(self.config, now, tokens, verified.claims.get("exp"))
                if refreshing
                else 0.0
            ),
        )


def _raw_sub(verified: VerifiedToken) -> str | None:
    """The ID token's ``sub`` when the user key is another claim (checked by check_id_token)."""
    sub = verified.claims.get("sub")
    return sub if isinstance(sub, str) and sub != verified.subject else None


def _inside(root: str, path: str | None) -> str | None:
    """``path`` if it lies under the mount point ``root`` (or ``root`` is empty)."""
    if path is None or not root:
        return path
    return path if path == root or path.startswith(root + "/") else None


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _state_key(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()[:32]


async def send_error(
    scope: Any, send: Any, exc: AuthError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """The error page for ``exc`` (HTML for browsers, JSON otherwise)."""
    await web.send_page(scope, send, exc.status, error_code(exc), exc.description, headers or [])
