"""``SSOMiddleware``: wires extraction, verification, identity and sign-in around an ASGI app.

Wiring only: each step lives in its own module and nothing there imports this one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx
import msgspec

from asgi_sso._asgi import (
    OriginGuard,
    PathMatcher,
    RoutePaths,
    ScopeRules,
    ambiguous,
    check_root_path,
    framework_of,
    origins_of,
)
from asgi_sso.config import Clock, Issuer, Limits, SystemClock, issuers_from
from asgi_sso.errors import (
    AuthError,
    ConfigurationError,
    CredentialsMissing,
    InsufficientScope,
    InvalidRequest,
    ServiceUnavailable,
    UnknownIssuer,
)
from asgi_sso.extract import Extractor
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.mcp.calls import CallGuard
from asgi_sso.mcp.metadata import MetadataEndpoint
from asgi_sso.mcp.resource import ProtectedResource
from asgi_sso.observe.events import Emitter, Event, EventSink
from asgi_sso.principal import (
    ANONYMOUS,
    AnonymousPrincipal,
    Credentials,
    Principal,
)
from asgi_sso.responses import dpop_challenge, send_http_error, send_websocket_denial
from asgi_sso.sessions.base import SessionInvalid
from asgi_sso.settings import Backends, CredentialSources, DPoPSettings, PathRules
from asgi_sso.verify.dpop import DPOP_ALGORITHMS, DPoPChecker, DPoPNonces, check_binding
from asgi_sso.verify.mtls import ClientCertificates, check_certificate_binding
from asgi_sso.verify.verifier import TokenVerifier, VerifiedToken

if TYPE_CHECKING:
    from asgi_sso.connections.admin import ConnectionsAdminApp
    from asgi_sso.connections.directory import ConnectionDirectory
    from asgi_sso.connections.live import LiveConnections
    from asgi_sso.connections.model import Connection
    from asgi_sso.connections.store import ConnectionStore
    from asgi_sso.deprovision.backchannel import BackchannelLogoutApp
    from asgi_sso.deprovision.scim import ScimApp, ScimConfig
    from asgi_sso.identity.resolver import IdentityConfig, IdentityResolver
    from asgi_sso.login.app import BrowserLogin, LoginConfig
    from asgi_sso.sessions.base import SessionStore

__all__ = ["SSOMiddleware"]

_log = logging.getLogger(__name__)


class SSOMiddleware:
    """Turns a Bearer JWT or a session cookie into a verified principal in the ASGI scope.

    ``scope["user"]`` becomes a :class:`~asgi_sso.principal.Principal` (or the
    anonymous principal without credentials, on public paths and in optional mode)
    and ``scope["auth"]`` a :class:`~asgi_sso.principal.Credentials` with
    ``.scopes``, so Starlette's ``requires`` works unchanged. Refusals follow RFC
    6750; a public path never refuses (see :class:`~asgi_sso.settings.PathRules`).

    Args:
        app: the ASGI app to protect.
        issuers: the trusted issuer(s); an HMAC issuer carries its ``secret``. May be
            empty when ``connections`` are given.
        connections: the customers' identity providers, managed at runtime: a
            :class:`~asgi_sso.connections.ConnectionStore` (SQL, a file) or a list of
            :class:`~asgi_sso.connections.Connection`. Their bearer tokens are
            verified, their users sign in (found by email domain), their SCIM secrets
            act on their users; a change reaches every worker within
            ``Limits.connections_poll`` seconds, or at once through a shared
            revocation bus.
        paths: what each path requires: public paths, scope rules, optional mode,
            the framework's ``root_path``, the challenge's realm.
        sources: where a credential may come from besides the ``Authorization``
            header (cookies, the query), and which origins may send cookie-
            authenticated requests.
        login: browser sign-in (OIDC code + PKCE) at the default provider
            (``LoginConfig.issuer``) and at every enabled connection with a
            ``client_id``, picked by email domain; mounts its routes and the
            back-channel logout endpoint (honoured from each of those providers).
        identity: the tier mapper and the user store, run after verification.
        scim: the SCIM 2.0 deprovisioning endpoint; needs ``identity.user_store``.
        backends: what several workers share: sessions, revocations, key documents.
        event_sinks: callables receiving every :class:`~asgi_sso.observe.events.Event`.
        limits: named limits and timeouts.
        http_client: the one ``httpx.AsyncClient`` for JWKS, discovery and token
            calls; created (and closed) by the middleware when not given.
        clock: the clock (tests inject one).
        prefetch: fetch discovery and JWKS of exact issuers at start-up.
        resource: this server as an OAuth protected resource (e.g. an MCP server):
            its metadata (RFC 9728) is served at ``/.well-known/oauth-protected-resource``
            and its path-suffixed form, every ``401``/``403`` challenge names it
            (``resource_metadata``), and JSON-RPC calls to the tools, resources and
            prompts it lists are refused ``403 insufficient_scope`` before the app
            when the principal lacks their scopes. Pair it with
            ``Issuer(audience=resource.audience)``.
        dpop: DPoP beyond RFC 9449's defaults: server-provided nonces. Which
            issuers accept DPoP is ``Issuer.dpop`` / ``Connection.dpop``; a replay
            memory shared by workers is ``Backends.dpop_proofs``; the URL proofs
            name behind a proxy is ``PathRules.external_url``.

    Start-up is logged on the ``asgi_sso`` logger: each protection a setting turns
    off on purpose (``audience=None``, ``allow_insecure_http=True``) once at WARNING
    when the middleware is built, and a summary (issuers, connections, sign-in,
    stores) at INFO when it starts.

    Raises:
        ConfigurationError: an argument of the wrong type, or a setting that would be
            ignored in this combination (a session store without ``login``, SCIM
            without a user store, origin settings with no cookie to check) or
            contradicts another; the message names the fix.
    """

    def __init__(
        self,
        app: Any,
        issuers: Issuer | Sequence[Issuer] = (),
        *,
        connections: ConnectionStore | Sequence[Connection] | None = None,
        paths: PathRules | None = None,
        sources: CredentialSources | None = None,
        login: LoginConfig | None = None,
        identity: IdentityConfig | None = None,
        scim: ScimConfig | None = None,
        backends: Backends | None = None,
        event_sinks: Sequence[EventSink] = (),
        limits: Limits | None = None,
        http_client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        prefetch: bool = True,
        resource: ProtectedResource | None = None,
        dpop: DPoPSettings | None = None,
    ) -> None:
        _check_arguments(
            connections=connections, paths=paths, sources=sources, login=login,
            identity=identity, scim=scim, backends=backends, event_sinks=event_sinks,
            limits=limits, http_client=http_client, clock=clock, prefetch=prefetch,
            resource=resource, dpop=dpop,
        )  # fmt: skip
        paths = paths or PathRules()
        sources = sources or CredentialSources()
        backends = backends or Backends()
        _check_combinations(sources, login, identity, scim, backends)
        self.app = app
        self.limits = limits or Limits()
        self.clock = clock or SystemClock()
        self.prefetch = prefetch
        self.emitter = Emitter(event_sinks)
        self._own_client = http_client is None
        self.http_client = http_client or httpx.AsyncClient(
            timeout=self.limits.fetch_timeout, follow_redirects=False
        )
        self.verifier = TokenVerifier(
            _name_sign_in_client(
                issuers_from(issuers, allow_none=connections is not None),
                login,
                has_connections=connections is not None,
            ),
            client=self.http_client,
            limits=self.limits,
            clock=self.clock,
            emitter=self.emitter,
            shared_documents=backends.documents,
        )
        self._shared_documents = backends.documents
        self._wire_dpop(dpop or DPoPSettings(), backends, paths, connections is not None)
        self._wire_paths(app, paths)
        self._wire_sources(sources, login, paths.external_url)
        self._wire_identity(backends.revocations, identity)
        self._wire_connections(connections, identity)
        self._wire_own_routes(login, backends.sessions, scim, identity)
        self._wire_resource(resource)
        self._started = False
        self._summarised = False
        self._start_lock = asyncio.Lock()
        self._backends = backends
        self._bind_hot_path(sources)
        _log_unsafe_choices(self.verifier.registry.issuers, login)

    def _bind_hot_path(self, sources: CredentialSources) -> None:
        # The hot path reads these flags and bound methods instead of asking each step.
        self._own_routes = self.login is not None or bool(self._mounts)
        self._has_public = bool(self._public)
        self._has_scope_rules = bool(self._scope_rules)
        # Only JWTs found in cookies pay for the origin check; header tokens never reach it.
        self._check_cookie_tokens = sources.check_origin and bool(sources.cookie_names)

    # -- wiring ----------------------------------------------------------------------------

    def _wire_dpop(
        self, settings: DPoPSettings, backends: Backends, paths: PathRules, connections: bool
    ) -> None:
        # DPoP proofs are checked (and the DPoP scheme read) only while an issuer or
        # an enabled connection asks (see _offer_dpop).
        self._dpop_configured = any(i.dpop != "off" for i in self.verifier.registry.issuers)
        nonces = None
        if settings.nonce_secrets:
            if not self._dpop_configured and not connections:
                raise ConfigurationError(
                    "DPoPSettings.nonce_secrets would never be used: no Issuer has dpop="
                    "'allow' or 'require' (and no connections are given)"
                )
            nonces = DPoPNonces(settings.nonce_secrets, settings.nonce_lifetime, self.clock)
        self._dpop_checker = DPoPChecker(
            self.limits, self.clock, memory=backends.dpop_proofs, nonces=nonces,
            external_url=paths.external_url,
        )  # fmt: skip
        self._dpop = self._dpop_checker if self._dpop_configured else None

    def _offer_dpop(self, connections: Sequence[Connection]) -> None:
        wanted = self._dpop_configured or any(c.dpop != "off" for c in connections)
        self._dpop = self._dpop_checker if wanted else None
        self._extractor.read_dpop(wanted)

    def _wire_paths(self, app: Any, paths: PathRules) -> None:
        self.realm = paths.realm
        self.optional = paths.optional
        self._public = PathMatcher(paths.public)
        self._scope_rules = ScopeRules(paths.scope_rules)
        framework, app_root = framework_of(app)
        if paths.root_path is not None:
            app_root = check_root_path(paths.root_path) or None
        self._routes = RoutePaths(framework, app_root, self._decision)
        self._fixed_root = self._routes.fixed_root

    def _wire_sources(
        self, sources: CredentialSources, login: LoginConfig | None, external_url: str | None
    ) -> None:
        self._extractor = Extractor(
            cookie_names=sources.cookie_names,
            allow_query_token=sources.allow_query_token,
            max_token_bytes=self.limits.max_token_bytes,
            recent=self.limits.recent_credentials,
            dpop=self._dpop is not None,
        )
        self._certificates = ClientCertificates(sources.certificate_header)
        own = [login.redirect_uri if login else None, external_url]
        self._origins = OriginGuard(
            [*sources.allowed_origins, *origins_of(own)], enabled=sources.check_origin
        )
        self._external_url = external_url

    def _wire_identity(
        self, revocations: RevocationBus | None, identity: IdentityConfig | None
    ) -> None:
        # The middleware subscribes first: its cached tokens go before the identity cache.
        self.revocations = revocations or RevocationBus()
        self.revocations.subscribe(self._on_revocation)
        self.revocations.subscribe_gaps(self._on_revocation_gap)
        self.identity: IdentityResolver | None = None
        if identity is not None:
            from asgi_sso.identity.resolver import IdentityResolver

            self.identity = IdentityResolver(
                identity, emitter=self.emitter, revocations=self.revocations, clock=self.clock
            )

    def _wire_connections(
        self,
        connections: ConnectionStore | Sequence[Connection] | None,
        identity: IdentityConfig | None,
    ) -> None:
        self.connections: LiveConnections | None = None
        if connections is None:
            return
        from asgi_sso.connections.live import LiveConnections
        from asgi_sso.connections.store import connections_of
        from asgi_sso.identity.tiers import PriorityTierMapper

        mapper = identity.tier_mapper if identity is not None else None
        self._tier_mapper = mapper if isinstance(mapper, PriorityTierMapper) else None
        self.connections = LiveConnections(
            connections_of(connections),
            clock=self.clock,
            poll_interval=self.limits.connections_poll,
            emitter=self.emitter,
            admit=self._admit_connection,
        )
        self.connections.subscribe(self._on_connections)
        # Per connection id, the last Connection seen and what was derived from it: an
        # unchanged connection keeps its Issuer object (and its cached verifications).
        self._issuer_of: dict[str, tuple[Connection, Issuer]] = {}
        self._admitted: dict[str, tuple[Connection, str | None]] = {}

    def connections_admin(self, *, client: httpx.AsyncClient | None = None) -> ConnectionsAdminApp:
        """A JSON API managing this middleware's connections, to mount behind admin auth.

        **It has no authentication of its own**: mount it where only administrators
        reach it (a route guarded by an admin scope, an internal port). Each change
        is checked as the middleware would check it (an issuer or id colliding with
        a configured ``Issuer``, an unknown tier) and announced on the revocation
        bus, so every worker sharing it loads the change at once.

        Args:
            client: the HTTP client of ``POST /{id}/test``; default: the middleware's.

        Raises:
            ConfigurationError: the middleware has no ``connections``.
        """
        from asgi_sso.connections.admin import ConnectionsAdminApp
        from asgi_sso.connections.manage import ConnectionAdmin, announce_on

        if self.connections is None:
            raise ConfigurationError("connections_admin() needs SSOMiddleware(connections=...)")
        admin = ConnectionAdmin(
            self.connections.store,
            clock=self.clock,
            announce=announce_on(self.revocations, self.clock),
            admit=self._admit_connection,
            emitter=self.emitter,
            limits=self.limits,
        )
        return ConnectionsAdminApp(admin, client=client or self.http_client)

    def _admit_connection(self, connection: Connection) -> str | None:
        # Why a stored connection cannot be used with this configuration, if so.
        known = self._admitted.get(connection.id)
        if known is None or known[0] != connection:
            known = self._admitted[connection.id] = (connection, self._admission(connection))
        if known[1] is None and self.login is not None:
            # Never remembered: a kid it shares with another connection depends on those
            # admitted with it (its parsed keys are cached by the providers).
            return self.login.providers.problem(connection)
        return known[1]

    def _admission(self, connection: Connection) -> str | None:
        registry = self.verifier.registry
        configured = registry.find(connection.iss)
        if configured is not None and not registry.is_connection(connection.iss):
            return f"its issuer is the configured Issuer {configured.label!r}"
        if registry.produces(connection.id):
            return "its id is a connection id of a configured Issuer"
        policy = connection.tiers
        if policy.default_tier is not None or policy.groups:
            if self._tier_mapper is None:
                return "it names tiers, and no PriorityTierMapper defines them"
            unknown = self._tier_mapper.unknown_tier(policy)
            if unknown is not None:
                return f"it names the unknown tier {unknown!r}"
        return None

    def _on_connections(self, old: ConnectionDirectory, new: ConnectionDirectory) -> None:
        # A new snapshot: trust exactly its enabled connections from the next request on.
        refused = self.connections.refused if self.connections is not None else {}
        for memo in (self._issuer_of, self._admitted):
            for gone in [cid for cid in memo if cid not in new and cid not in refused]:
                del memo[gone]
        enabled = [c for c in new if c.enabled]
        # Room for every connection's key set and metadata, with the configured issuers'.
        room = 2 * (len(enabled) + len(self.verifier.registry.issuers))
        self.verifier.jwks.reserve(room)
        self.verifier.discovery.reserve(room)
        self.verifier.set_connections(
            [self._issuer(c) for c in enabled],
            sign_in_only={c.id for c in enabled if not c.audience},
        )
        self._offer_dpop(enabled)
        if self._tier_mapper is not None:
            self._tier_mapper.set_connection_tiers({c.id: c.tiers for c in enabled})
        if self.identity is not None:
            self.identity.on_revocation(Revocation(kind="user"))
        if self.scim is not None:
            self.scim.set_connection_secrets(
                (c.id, c.scim_secret) for c in enabled if c.scim_secret is not None
            )

    def _issuer(self, connection: Connection) -> Issuer:
        known = self._issuer_of.get(connection.id)
        if known is not None and known[0] == connection:
            return known[1]
        issuer = connection.issuer_config()
        self._issuer_of[connection.id] = (connection, issuer)
        return issuer

    def _wire_own_routes(
        self,
        login: LoginConfig | None,
        sessions: SessionStore | None,
        scim: ScimConfig | None,
        identity: IdentityConfig | None,
    ) -> None:
        # The routes the middleware serves itself: sign-in, SCIM, back-channel logout.
        self.login: BrowserLogin | None = None
        self.backchannel: BackchannelLogoutApp | None = None
        self.scim: ScimApp | None = None
        self._mounts: list[tuple[PathMatcher, Any]] = []
        if scim is not None and identity is not None and identity.user_store is not None:
            if not scim.tokens and self.connections is None:
                raise ConfigurationError(
                    "ScimConfig.tokens needs at least one connection's secret (or pass "
                    "connections=..., whose scim_secret acts on their users)"
                )
            self._check_scim_connections(scim)
            from asgi_sso.deprovision.scim import ScimApp

            self.scim = ScimApp(
                scim,
                identity.user_store,
                revocations=self.revocations,
                emitter=self.emitter,
                clock=self.clock,
            )
            self._mounts.append((PathMatcher([scim.prefix.rstrip("/") + "/*"]), self.scim))
        if login is not None:
            self._wire_login(login, sessions)

    def _wire_login(self, login: LoginConfig, sessions: SessionStore | None) -> None:
        from asgi_sso.deprovision.backchannel import BackchannelConfig, BackchannelLogoutApp
        from asgi_sso.login.app import BrowserLogin

        self.login = BrowserLogin(
            login,
            verifier=self.verifier,
            client=self.http_client,
            session_store=sessions,
            clock=self.clock,
            emitter=self.emitter,
            revocations=self.revocations,
            on_signin=self.identity.signin if self.identity is not None else None,
            origins=self._origins,
            connections=self.connections,
            external_url=self._external_url,
        )
        # Logout tokens of the default provider and of every enabled sign-in connection.
        self.backchannel = BackchannelLogoutApp(
            BackchannelConfig(client_id=login.client_id, issuer=login.issuer),
            self.verifier,
            revocations=self.revocations,
            clock=self.clock,
            emitter=self.emitter,
            audiences=self.login.providers.logout_audience,
        )
        path = login.prefix.rstrip("/") + "/backchannel-logout"
        self._mounts.append((PathMatcher([path]), self.backchannel))

    def _wire_resource(self, resource: ProtectedResource | None) -> None:
        self.resource = resource
        self._metadata: MetadataEndpoint | None = None
        self._calls: CallGuard | None = None
        self._resource_metadata: str | None = None
        if resource is None:
            return
        exact = tuple(i.issuer for i in self.verifier.registry.issuers if "{" not in i.issuer)
        if not resource.authorization_servers and not exact:
            raise ConfigurationError(
                "ProtectedResource has no authorization_servers and no exact Issuer to "
                "publish: set ProtectedResource(authorization_servers=[...])"
            )
        self._metadata = MetadataEndpoint(resource, exact)
        if all(resource.audience not in i.audiences for i in self.verifier.registry.issuers):
            # Not an error: Entra ID v2 tokens name the application's client id instead.
            _log.warning(
                "no Issuer accepts the resource's own URL %r as audience: tokens issued for "
                "this resource (RFC 8707) would be refused; use Issuer(audience=resource.audience)",
                resource.audience,
            )
        self._resource_metadata = resource.metadata_url
        if resource.guards_calls:
            self._calls = CallGuard(resource)

    # -- lifecycle -------------------------------------------------------------------------

    def _check_scim_connections(self, scim: ScimConfig) -> None:
        # SCIM users are matched to sign-ins by (connection, sub): a secret keyed by
        # an id no issuer produces would provision users nobody can ever sign in as.
        registry = self.verifier.registry
        for connection in scim.tokens:
            if not registry.produces(connection):
                raise ConfigurationError(
                    f"ScimConfig.tokens names the connection {connection!r}, which no trusted "
                    "issuer gives its users; a connection id is the token's iss, or the "
                    "issuer's Issuer.connection with '{tenant}' filled in"
                )

    async def startup(self, *, warm: bool = True) -> None:
        """Start background work: stores, the revocation subscription, key prefetch.

        Runs at lifespan start-up, or on the first request when the server sends
        no lifespan events (e.g. httpx's ``ASGITransport``).

        Args:
            warm: prefetch discovery and keys. A first request that starts the
                middleware lazily passes ``False``: it must not wait on every IdP.
        """
        async with self._start_lock:
            if self._started:
                return
            await self.revocations.start()
            if self.identity is not None:
                await self.identity.start()
            if self.connections is not None:
                await self.connections.start()
            if warm and self.prefetch:
                if self.login is not None:
                    await self.login.start()
                await self.verifier.prefetch()
            self._started = True
            if not self._summarised:
                self._summarised = True
                _log.info("%s", self._summary())

    def _summary(self) -> str:
        # What an operator checks first: whom it trusts, who signs in, where state lives.
        # Labels, counts and type names only: a store's URL may hold a password.
        configured = [issuer.label for issuer in self.verifier.registry.issuers]
        parts = [f"issuers: {', '.join(map(repr, configured)) or 'none'}"]
        if self.connections is not None:
            directory = self.connections.directory
            enabled = sum(1 for c in directory if c.enabled)
            parts.append(
                f"connections: {enabled} enabled, {len(directory) - enabled} disabled, "
                f"{len(self.connections.refused)} left out "
                f"({type(self.connections.store).__name__})"
            )
        parts.append(f"sign-in: {self._sign_in_summary()}")
        identity = self.identity
        stores = {
            "sessions": self._backends.sessions,
            "users": identity.user_store if identity is not None else None,
            "tier mapper": identity.tier_mapper if identity is not None else None,
            "revocations": self.revocations,
            "key documents": self._backends.documents,
            "DPoP proofs": self._backends.dpop_proofs or self._dpop_checker.replay,
        }
        parts += [f"{name}: {_kind(value)}" for name, value in stores.items()]
        return "asgi_sso started; " + "; ".join(parts)

    def _sign_in_summary(self) -> str:
        if self.login is None:
            return "off"
        config = self.login.config
        providers = [repr(config.issuer)] if config.issuer is not None else []
        if self.connections is not None:
            count = sum(1 for c in self.connections.directory if c.enabled and c.client_id)
            if count:
                providers.append(f"{count} connection(s) found by email domain")
        return f"on at {config.prefix} through {' and '.join(providers) or 'no provider yet'}"

    async def shutdown(self) -> None:
        """Stop background work and close what the middleware opened."""
        if self.login is not None:
            await self.login.close()
        if self.identity is not None:
            await self.identity.close()
        if self.connections is not None:
            await self.connections.close()
        await self.revocations.close()
        for shared in (self._shared_documents, self._backends.dpop_proofs):
            close_shared = getattr(shared, "aclose", None)
            if close_shared is not None:
                await close_shared()
        if self._own_client:
            await self.http_client.aclose()
        self._started = False

    async def _lifespan(self, scope: Any, receive: Any, send: Any) -> None:
        async def wrapped_receive() -> Any:
            message = await receive()
            kind = message.get("type")
            if kind == "lifespan.startup":
                await self.startup()
            elif kind == "lifespan.shutdown":
                await self.shutdown()
            return message

        await self.app(scope, wrapped_receive, send)

    async def _on_revocation(self, revocation: Revocation) -> None:
        if revocation.kind == "connection":
            if self.connections is not None:
                self.connections.changed()
            return
        if revocation.kind in ("reactivate", "logout") or revocation.subject is None:
            return  # a provider logout ends sessions, not the user's bearer tokens
        self.verifier.evict_subject(
            subject=revocation.subject,
            connection=revocation.connection,
            issuer=revocation.issuer if revocation.connection is None else None,
        )

    def _on_revocation_gap(self) -> None:
        # Revocations may have been missed: forget every cached decision, so the
        # next request asks the stores (the source of truth) again.
        self.verifier.forget_all()
        if self.identity is not None:
            self.identity.on_revocation(Revocation(kind="user"))

    # -- requests --------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await (self._lifespan if kind == "lifespan" else self.app)(scope, receive, send)
            return
        if self._metadata is not None and self._metadata.claims(scope):
            await self._metadata(scope, receive, send)  # public: served before anything else
            return
        try:
            path = self._route_path(scope)
        except AuthError as exc:
            await self._refuse(scope, receive, send, exc)
            return
        public = self._has_public and self._public.matches(path) and not ambiguous(path)
        mounted = self._own_route(scope, path) if self._own_routes else None
        if not self._started:
            try:
                await self.startup(warm=False)  # e.g. the user store is down: 503, retried
            except AuthError as exc:
                if public and mounted is None:  # a public path never refuses
                    await self._serve_checked(scope, receive, send, ANONYMOUS, None)
                else:
                    await self._refuse(scope, receive, send, exc)
                return
        if mounted is not None:
            await mounted(scope, receive, send)
            return
        if public:
            principal, extra_headers = await self._authenticate_public(scope)
        else:
            try:
                principal, extra_headers = await self._authenticate_protected(scope, path)
            except AuthError as exc:
                await self._refuse(scope, receive, send, exc)
                return
        await self._serve_checked(scope, receive, send, principal, extra_headers)

    async def _authenticate_protected(
        self, scope: Any, path: str
    ) -> tuple[Principal | AnonymousPrincipal, list[tuple[bytes, bytes]] | None]:
        try:
            principal, extra_headers = await self._authenticate(scope)
        except CredentialsMissing:
            # Optional mode lets anonymous callers in, except where a scope rule asks
            # for more: those pages stay protected (and send browsers to sign in).
            if not self.optional or (self._has_scope_rules and self._scope_rules.required(path)):
                raise
            return ANONYMOUS, None
        if self._has_scope_rules:
            self._check_scopes(principal, path)
        return principal, extra_headers

    async def _serve_checked(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        principal: Principal | AnonymousPrincipal,
        extra_headers: list[tuple[bytes, bytes]] | None,
    ) -> None:
        # The resource's guarded tools, resources and prompts need their scopes on any
        # path the resource covers, public or optional ones included.
        if self._calls is not None and self._calls.applies(scope):
            try:
                receive = await self._calls.check(receive, principal)
            except AuthError as exc:
                await self._refuse(scope, receive, send, exc)
                return
        await self._serve(scope, receive, send, principal, extra_headers)

    async def _serve(
        self,
        scope: Any,
        receive: Any,
        send: Any,
        principal: Principal | AnonymousPrincipal,
        extra_headers: list[tuple[bytes, bytes]] | None,
    ) -> None:
        scope["user"] = principal
        scope["auth"] = Credentials(principal.scopes)
        if extra_headers:
            send = _with_headers(send, extra_headers)
        if self.login is not None:
            scope = self.login.strip_cookies(scope)
        await self.app(scope, receive, send)

    def _route_path(self, scope: Any) -> str:
        # The path the wrapped framework routes (public paths and scope rules match it).
        if self._fixed_root or scope.get("root_path"):
            # Path rules are written for the paths the framework routes, below the
            # root_path it applies (the server's or its own): never fewer rules.
            routed = self._routes.route(scope)
            if routed is None:
                raise InvalidRequest("the request path does not map to one route of the app")
            return routed
        path: str = scope["path"]
        return path

    def _own_route(self, scope: Any, path: str) -> Any:
        # The sign-in, SCIM or back-channel logout app serving this request, if any.
        if scope["type"] != "http":
            return None
        if self.login is not None and self.login.handles(scope):
            return self.login.handle
        for matcher, mounted in self._mounts:
            if matcher.matches(path):
                return mounted
        return None

    async def _authenticate_public(
        self, scope: Any
    ) -> tuple[Principal | AnonymousPrincipal, list[tuple[bytes, bytes]] | None]:
        # A public path never refuses (Starlette's AuthenticationMiddleware): whatever
        # fails (no credential, a bad or revoked one, another origin's cookie request,
        # an IdP or store outage) leaves the request anonymous. Key fetches run under
        # the usual limits (deadline, single-flight, cooldown), so a public page waits
        # no longer than a protected one, and an invalid token costs no more here.
        try:
            return await self._authenticate(scope, read_only=True)
        except SessionInvalid as exc:
            return ANONYMOUS, exc.headers or None  # clear a cookie that opens no session
        except AuthError:
            return ANONYMOUS, None

    async def _authenticate(
        self, scope: Any, *, read_only: bool = False
    ) -> tuple[Principal, list[tuple[bytes, bytes]] | None]:
        # extract -> verify (the verifier answers from its cache) -> identity.
        # read_only: a public path reads a browser session but never refreshes or slides it.
        found = self._extractor.extract(scope)
        headers = None
        if found is not None:
            if self._check_cookie_tokens and found.source == "cookie":
                self._origins.check(scope)
            verified = await self.verifier.verify(found.token)
            if self.connections is not None and not self.verifier.trusts(verified):
                # Verified (and cached) before its connection changed: check it again.
                verified = await self.verifier.refresh(found.token)
                if not self.verifier.trusts(verified):  # changed again meanwhile
                    raise UnknownIssuer("the token's connection changed; please retry")
            # Every request, cached verification or not. The certificate first: a DPoP
            # proof is single-use, and a request refused anyway should not spend it.
            check_certificate_binding(  # RFC 8705 §3: the certificate is the connection's
                self._certificates, scope, verified.payload, verified.issuer.config.mtls
            )
            headers = await check_binding(
                self._dpop, scope, found.token, found.source, verified.payload,
                verified.issuer.config.dpop,
            )  # fmt: skip
            principal = _principal_from(verified, found.source)
        elif self.login is not None:
            result = await self.login.authenticate(scope, read_only=read_only)
            if result is None:
                raise CredentialsMissing()
            principal, headers = result.principal, result.headers
        else:
            raise CredentialsMissing()
        if self.identity is not None:
            principal = await self.identity.resolve(principal)
        return principal, headers

    def _check_scopes(self, principal: Principal, path: str) -> None:
        required = self._scope_rules.required(path)
        if required and not principal.has_scopes(*required):
            missing = tuple(s for s in required if s not in principal.scopes)
            raise InsufficientScope(
                f"this resource requires the scope(s): {' '.join(missing)}", scopes=required
            )

    def _decision(self, path: str) -> tuple[bool, tuple[str, ...]]:
        # What the path rules decide for a route path: served anonymously? which scopes?
        public = self._has_public and self._public.matches(path) and not ambiguous(path)
        return public, self._scope_rules.required(path)

    async def _refuse(self, scope: Any, receive: Any, send: Any, error: AuthError) -> None:
        if self.emitter.enabled:
            client = scope.get("client")
            self.emitter.emit(
                Event(
                    name="refusal",
                    outcome="refused",
                    reason=error.reason,
                    time=self.clock.time(),
                    client_ip=client[0] if client else None,
                    detail={"path": scope.get("path", ""), "status": error.status},
                )
            )
        extra: list[tuple[bytes, bytes]] = list(getattr(error, "headers", None) or ())
        if self._dpop is not None:
            challenge = dpop_challenge(error, DPOP_ALGORITHMS)
            if challenge is not None:
                extra.append((b"www-authenticate", challenge))
        if scope["type"] == "websocket":
            await send_websocket_denial(scope, receive, send, error, self.realm)
            return
        if (
            self.login is not None
            and error.status == 401
            and not isinstance(error, ServiceUnavailable)
            and not self._extractor.presented(scope)
            and self.login.wants_redirect(scope)
        ):
            await self.login.redirect_to_login(scope, _with_headers(send, extra) if extra else send)
            return
        await send_http_error(send, error, self.realm, extra, self._resource_metadata)


def _check_arguments(**arguments: Any) -> None:
    # A wrong type here would fail on the first request, far from its cause.
    from asgi_sso.connections.model import Connection
    from asgi_sso.deprovision.scim import ScimConfig
    from asgi_sso.identity.resolver import IdentityConfig
    from asgi_sso.login.config import LoginConfig

    expected: dict[str, type] = {
        "paths": PathRules, "sources": CredentialSources, "login": LoginConfig,
        "identity": IdentityConfig, "scim": ScimConfig, "backends": Backends,
        "limits": Limits, "http_client": httpx.AsyncClient, "resource": ProtectedResource,
        "dpop": DPoPSettings,
    }  # fmt: skip
    for name, kind in expected.items():
        value = arguments[name]
        if value is not None and not isinstance(value, kind):
            raise ConfigurationError(
                f"SSOMiddleware({name}=...) takes a {kind.__name__}, got "
                f"{_a_kind(value)}: write {name}={kind.__name__}(...)"
            )
    if not isinstance(arguments["prefetch"], bool):
        raise ConfigurationError("SSOMiddleware(prefetch=...) takes True or False")
    clock = arguments["clock"]
    if clock is not None and not (callable(getattr(clock, "time", None))
                                  and callable(getattr(clock, "monotonic", None))):  # fmt: skip
        raise ConfigurationError(
            "SSOMiddleware(clock=...) takes a Clock, with time() and monotonic() methods"
        )
    sinks = arguments["event_sinks"]
    if not isinstance(sinks, list | tuple) or not all(callable(s) for s in sinks):
        raise ConfigurationError(
            "SSOMiddleware(event_sinks=...) takes a list of callables, e.g. "
            "event_sinks=[AuditLogger()]"
        )
    connections = arguments["connections"]
    if isinstance(connections, list | tuple):
        if not all(isinstance(c, Connection) for c in connections):
            raise ConfigurationError(
                "SSOMiddleware(connections=[...]) takes Connection objects (or pass a "
                "ConnectionStore, e.g. StaticConnections.from_file(...))"
            )
    elif connections is not None and not all(
        callable(getattr(connections, m, None)) for m in ("start", "close", "revision", "load")
    ):
        raise ConfigurationError(
            f"SSOMiddleware(connections=...) takes a ConnectionStore or a list of "
            f"Connection objects, got {_a_kind(connections)}"
        )


def _a_kind(value: object) -> str:
    if isinstance(value, type):
        return f"the class {value.__name__} (pass an instance)"
    name = type(value).__name__
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"


def _kind(value: object) -> str:
    # How a store or plug-in is described in the start-up summary.
    if value is None:
        return "none"
    name = type(value).__name__
    return {"RevocationBus": "in-process", "ReplayCache": "in-process"}.get(name, name)


def _log_unsafe_choices(issuers: Sequence[Issuer], login: LoginConfig | None) -> None:
    # A protection turned off on purpose is said once, where operators look.
    choices = [choice for issuer in issuers for choice in issuer.unsafe_choices]
    if login is not None:
        choices += login.unsafe_choices
    for choice in choices:
        _log.warning("unsafe configuration, chosen explicitly: %s", choice)


def _check_combinations(
    sources: CredentialSources,
    login: LoginConfig | None,
    identity: IdentityConfig | None,
    scim: ScimConfig | None,
    backends: Backends,
) -> None:
    # Settings that would be silently ignored in this combination are refused.
    if backends.sessions is not None and login is None:
        raise ConfigurationError(
            "Backends.sessions keeps browser sign-in sessions, but there is no sign-in: "
            "pass login=LoginConfig(...), or leave sessions unset "
            "(from_env().backends(sessions=False))"
        )
    if scim is not None and (identity is None or identity.user_store is None):
        raise ConfigurationError(
            "SCIM deprovisioning writes to a user store: pass "
            "identity=IdentityConfig(user_store=...)"
        )
    reads_cookies = login is not None or bool(sources.cookie_names)
    if not reads_cookies and (sources.allowed_origins or not sources.check_origin):
        raise ConfigurationError(
            "CredentialSources.allowed_origins and check_origin govern cookie-authenticated "
            "requests, and nothing here reads a cookie: add login=LoginConfig(...) or "
            "cookie_names, or leave them at their defaults"
        )


# Sign-in needs the provider's discovery document, served for exact issuers only, and
# the Issuer must learn the client id so that its ID tokens are never bearer tokens.
_NOT_TRUSTED = (
    "LoginConfig.issuer {!r} must be the issuer of one exact Issuer (not a template "
    "and not absent): sign-in needs its discovery document"
)


_NO_PROVIDER = (
    "LoginConfig has no issuer, so users could sign in only through connections, and "
    "none are given: pass connections=... to SSOMiddleware, or set LoginConfig.issuer "
    "and client_id (the default sign-in provider)"
)


def _name_sign_in_client(
    issuers: tuple[Issuer, ...], login: LoginConfig | None, *, has_connections: bool
) -> tuple[Issuer, ...]:
    # The default sign-in provider's Issuer learns the client id, so that bearer
    # verification refuses that client's ID tokens (see asgi_sso.verify.claims); a
    # connection's Issuer carries its own client id (Connection.issuer_config).
    if login is None:
        return issuers
    if login.issuer is None or login.client_id is None:
        if not has_connections:
            raise ConfigurationError(_NO_PROVIDER)
        return issuers
    if all(issuer.issuer != login.issuer for issuer in issuers):
        raise ConfigurationError(_NOT_TRUSTED.format(login.issuer))
    if has_connections and login.token_endpoint_auth == "none":
        # One callback serves every provider: a connection's IdP could obtain this public
        # client's code and PKCE verifier and redeem them (a mix-up, RFC 9700 §4.4).
        raise ConfigurationError(
            "LoginConfig.token_endpoint_auth='none' (a public client) cannot sit beside "
            "connections: give the default provider's client a secret"
        )
    named = []
    for issuer in issuers:
        if issuer.issuer == login.issuer:
            if issuer.client_id not in (None, login.client_id):
                raise ConfigurationError(
                    f"Issuer.client_id {issuer.client_id!r} of {issuer.label!r} differs "
                    f"from LoginConfig.client_id {login.client_id!r}"
                )
            issuer = msgspec.structs.replace(issuer, client_id=login.client_id)
        named.append(issuer)
    return tuple(named)


def _principal_from(verified: VerifiedToken, source: str) -> Principal:
    # Claims stay JSON bytes until the app reads them (one decode per request at most);
    # each request gets its own principal, so nothing an app does to it is shared.
    return Principal(
        identity=verified.subject,
        payload=verified.payload,
        issuer=verified.issuer.iss,
        connection=verified.connection,
        scopes=verified.scopes,
        source=source,
    )


def _with_headers(send: Any, headers: list[tuple[bytes, bytes]]) -> Any:
    async def wrapped(message: Any) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *headers]}
        await send(message)

    return wrapped
