"""Turn a bearer token into a :class:`VerifiedToken`, or refuse it with an ``AuthError``.

Order of one cold verification: size check → strict parse (header and claims) →
route by ``iss`` → algorithm allow-list → keys (JWKS, via discovery when needed, or
a configured HMAC secret) → signature → claims → cache. Everything but the key
lookup is synchronous and runs on pre-built per-issuer state; under concurrent
load the signature checks of requests that arrive together run back to back at
the end of their event-loop turn (:mod:`asgi_sso.verify.signature_batch`).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Hashable, Sequence
from typing import Any, TypeVar, cast

import httpx
import msgspec

from asgi_sso.config import Clock, Issuer, Limits, SystemClock
from asgi_sso.errors import (
    AuthError,
    ConfigurationError,
    DisallowedAlgorithm,
    InvalidClaim,
    InvalidToken,
    MalformedToken,
    ServiceUnavailable,
    UnknownIssuer,
)
from asgi_sso.keys.discovery import DiscoveryCache, ProviderMetadata
from asgi_sso.keys.documents import SharedDocuments
from asgi_sso.keys.jwk import VerificationKey, key_from_secret
from asgi_sso.keys.jwks import JWKSCache
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event
from asgi_sso.verify.claims import ClaimPolicy, normalize_type, scopes_from, validate_claims
from asgi_sso.verify.introspection import IntrospectionUnavailable, Introspector, is_opaque
from asgi_sso.verify.issuer_keys import HMAC_ALGORITHMS, IssuerKeys
from asgi_sso.verify.issuers import IssuerRegistry, ResolvedIssuer
from asgi_sso.verify.jws import JWSParser, ParsedToken, verify_signature
from asgi_sso.verify.signature_batch import SignatureBatch
from asgi_sso.verify.token_cache import CacheEntry, VerifiedTokenCache

__all__ = ["TokenVerifier", "VerifiedToken"]


class VerifiedToken(CacheEntry):
    """A token whose signature and claims were checked.

    The claim set is kept as its JSON bytes (cached entries stay small); each read
    of :attr:`claims` decodes a fresh dict.

    Attributes:
        payload: the claim set's JSON bytes, as signed.
        header: the protected header.
        issuer: the issuer configuration bound to the token's ``iss``.
        subject: the user key: the issuer's ``user_claim`` (``sub`` by default);
            empty when that claim is absent and not required (a logout token's
            ``sub``-less form, an ID token checked by the caller).
        connection: the connection id of the user.
        scopes: the scopes granted by the token's scope claims.
        expires_at: ``exp`` (wall-clock seconds), ``inf`` when the token has none.
        key_id: the ``kid`` of the key that verified the signature, if any.
    """

    __slots__ = (
        "connection",
        "expires_at",
        "header",
        "issuer",
        "key_id",
        "payload",
        "scopes",
        "subject",
    )

    # Positional parameters: building an object with eight keywords costs 2.5x more,
    # and one is built per cold verification.
    def __init__(
        self,
        payload: bytes,
        header: dict[str, Any],
        issuer: ResolvedIssuer,
        subject: str,
        connection: str,
        scopes: frozenset[str],
        expires_at: float,
        key_id: str | None,
    ) -> None:
        self.payload = payload
        self.header = header
        self.issuer = issuer
        self.subject = subject
        self.connection = connection
        self.scopes = scopes
        self.expires_at = expires_at
        self.key_id = key_id

    @property
    def claims(self) -> dict[str, Any]:
        """The claim set (a new dict on each read; it was validated as a JSON object)."""
        claims: dict[str, Any] = msgspec.json.decode(self.payload)
        return claims

    def __repr__(self) -> str:
        return (
            f"VerifiedToken(iss={self.issuer.iss!r}, subject={self.subject!r}, "
            f"connection={self.connection!r})"
        )


class _Shared:
    """Equal header dicts and scope sets of verified tokens, shared by reference.

    Memory, not speed: a full verified-token cache otherwise holds one header dict and
    one scope set per token, about twice the rest of an entry. Bounded; cleared when full.
    """

    __slots__ = ("_size", "_values")

    def __init__(self, size: int) -> None:
        self._size = size
        self._values: dict[Hashable, Any] = {}

    def value(self, value: _H) -> _H:
        """Return the shared object equal to ``value`` (``value`` itself the first time)."""
        return cast("_H", self._share(value, value))

    def header(self, header: dict[str, Any]) -> dict[str, Any]:
        """Return a shared header equal to ``header`` when it holds only alg, kid and typ."""
        if not header.keys() <= _PLAIN_HEADER:
            return header
        key = (header.get("alg"), header.get("kid"), header.get("typ"), len(header))
        return cast("dict[str, Any]", self._share(key, header))

    def _share(self, key: Hashable, value: object) -> object:
        found = self._values.get(key)
        if found is not None:
            return found
        if len(self._values) >= self._size:
            self._values.clear()
        if self._size:
            self._values[key] = value
        return value


_PLAIN_HEADER = frozenset({"alg", "kid", "typ"})
_H = TypeVar("_H", bound=Hashable)


class _IssuerState:
    """What verification pre-computes per configured issuer."""

    __slots__ = ("algorithms", "bearer", "config", "hmac_key", "policy", "user_claim")

    def __init__(self, issuer: Issuer, *, bearer: bool = True) -> None:
        self.config = issuer
        self.bearer = bearer
        self.algorithms = frozenset(issuer.algorithms)
        self.policy = ClaimPolicy(issuer)
        self.user_claim = issuer.user_claim
        self.hmac_key: VerificationKey | None = None
        # Issuer checked when built that a secret comes with HS* algorithms and only with them.
        if issuer.secret is not None:
            try:
                self.hmac_key = key_from_secret(issuer.secret.reveal())
            except ValueError as exc:
                raise ConfigurationError(f"the secret of issuer {issuer.label!r}: {exc}") from exc


class _Rules:
    """The claim rules of one verification: the issuer's, or a caller's overrides."""

    __slots__ = ("audiences", "id_token", "required", "token_types")

    def __init__(
        self,
        audience: str | None,
        token_types: tuple[str, ...] | None,
        required: tuple[str, ...] | None,
        *,
        id_token: bool,
    ) -> None:
        self.audiences = None if audience is None else frozenset({audience})
        self.token_types = (
            None if token_types is None else frozenset(normalize_type(t) for t in token_types)
        )
        self.required = required
        self.id_token = id_token


_ISSUER_RULES = _Rules(None, None, None, id_token=False)
# An introspection answer has no JOSE header, so no ``typ`` to check.
_INTROSPECTED_RULES = _Rules(None, (), None, id_token=False)


class TokenVerifier:
    """Verifies JWTs from the configured issuers; share one per application.

    Args:
        issuers: the trusted issuers.
        client: the HTTP client for discovery and JWKS; created (and closed by
            :meth:`aclose`) when needed and not given.
        limits: named limits (token size, nesting, cache sizes and lifetimes).
        clock: wall time for claims, monotonic time for caches.
        emitter: receives ``verify``, ``cache.hit`` and ``cache.miss`` events.
        jwks: a key cache to share; built from ``client`` when not given.
        discovery: a metadata cache to share; built from ``client`` when not given.
        shared_documents: a JWKS/discovery body store shared by every worker
            (e.g. :class:`~asgi_sso.keys.redis.RedisDocumentCache`), used by
            the caches built here.

    Raises:
        ConfigurationError: the issuers are inconsistent.
    """

    def __init__(
        self,
        issuers: Sequence[Issuer],
        *,
        client: httpx.AsyncClient | None = None,
        limits: Limits = Limits(),  # noqa: B008 - a frozen Struct is a safe default
        clock: Clock = SystemClock(),  # noqa: B008 - stateless
        emitter: Emitter = NULL_EMITTER,
        jwks: JWKSCache | None = None,
        discovery: DiscoveryCache | None = None,
        shared_documents: SharedDocuments | None = None,
    ) -> None:
        self._registry = IssuerRegistry(issuers)
        self._configured = {i.issuer: _IssuerState(i) for i in issuers}
        self._states = self._configured
        self._has_connections = False
        self._limits = limits
        self._clock = clock
        self._emitter = emitter
        self._parser = JWSParser(limits)
        self._signatures = SignatureBatch()
        self._shared = _Shared(limits.shared_values)
        self._cache: VerifiedTokenCache[VerifiedToken] = VerifiedTokenCache(
            limits.token_cache_size,
            limits.token_cache_ttl,
            failure_ttl=limits.failure_cache_ttl,
            failure_size=limits.failure_cache_size,
            recent=limits.recent_credentials,
        )
        introspecting = [i for i in issuers if i.introspection is not None]
        if len(introspecting) > 1:
            raise ConfigurationError(
                "only one issuer may set introspection: an opaque token names no issuer, "
                f"so it could go to {introspecting[0].label!r} or {introspecting[1].label!r}"
            )
        self._owns_client = client is None and (
            jwks is None or discovery is None or bool(introspecting)
        )
        if self._owns_client:
            client = httpx.AsyncClient(timeout=limits.fetch_timeout)
        self._client = client
        if jwks is None or discovery is None:
            assert client is not None
            common: dict[str, Any] = {
                "limits": limits,
                "clock": clock,
                "emitter": emitter,
                "shared": shared_documents,
            }
            jwks = jwks or JWKSCache(client, **common)
            discovery = discovery or DiscoveryCache(client, **common)
        self._jwks = jwks
        self._discovery = discovery
        self._keys = IssuerKeys(
            jwks,
            discovery,
            {name: state.hmac_key for name, state in self._configured.items()},
            limits=limits,
            clock=clock,
        )
        self._introspector: Introspector[VerifiedToken] | None = None
        if introspecting:
            assert client is not None
            self._introspector = self._make_introspector(introspecting[0], client)

    def set_connections(
        self, issuers: Sequence[Issuer], *, sign_in_only: Collection[str] = ()
    ) -> None:
        """Trust these exact, asymmetric issuers too, replacing the previous set.

        For runtime connections (:mod:`asgi_sso.connections`): routing stays one
        dict lookup by ``iss`` however many there are, and their keys are fetched
        on first use. :meth:`trusts` refuses a verification made under a
        configuration that is no longer in force, so a connection that left the set
        or changed refuses its cached tokens from the next request on, while the
        other connections' cached tokens stay (pass the unchanged ``Issuer`` objects
        again to keep them). Remembered refusals are forgotten: a token refused for
        an unknown issuer is accepted as soon as its connection is added.

        Args:
            issuers: the connections' issuers (exact, no HMAC secret).
            sign_in_only: connection ids whose ID tokens sign users in but whose
                bearer tokens this API does not accept (no API audience configured).
        """
        states = dict(self._configured)
        for issuer in issuers:
            if issuer.secret is not None or issuer.is_template or issuer.issuer in states:
                raise ConfigurationError(f"connection issuer {issuer.label!r} is not usable here")
            key = "connection:" + (issuer.connection or "")
            bearer = issuer.connection not in sign_in_only
            state = self._states.get(key)
            if state is None or state.config is not issuer or state.bearer != bearer:
                state = _IssuerState(issuer, bearer=bearer)
            states[key] = state
        self._registry.set_connections(issuers)
        self._states = states
        self._has_connections = True
        self._cache.forget_failures()

    async def refresh(self, token: str) -> VerifiedToken:
        """Verify ``token`` again under the configuration now in force, and cache that.

        For a cached verification :meth:`trusts` no longer accepts (its connection
        changed): the new result replaces the old entry.

        Raises:
            AuthError: the token is refused now (its connection is gone, say).
        """
        try:
            verified = await self._verify_reported(token, _ISSUER_RULES)
        except AuthError:
            self._cache.discard(token)
            raise
        self._cache.put(
            token,
            verified,
            until=verified.expires_at + verified.issuer.config.leeway,
            now=self._clock.time(),
            issuer=verified.issuer.iss,
            connection=verified.connection,
        )
        return verified

    def trusts(self, verified: VerifiedToken) -> bool:
        """Whether ``verified`` was made under an issuer configuration still in force.

        A verification finishing while its connection is changed or disabled, or
        cached before, is not.
        """
        state = self._states.get(verified.issuer.key)
        return state is not None and state.config is verified.issuer.config

    @property
    def clock(self) -> Clock:
        """The clock (wall time for claims and the verified-token cache)."""
        return self._clock

    @property
    def registry(self) -> IssuerRegistry:
        """The trusted issuers."""
        return self._registry

    @property
    def jwks(self) -> JWKSCache:
        """The key cache."""
        return self._jwks

    @property
    def discovery(self) -> DiscoveryCache:
        """The provider metadata cache."""
        return self._discovery

    @property
    def cache(self) -> VerifiedTokenCache[VerifiedToken]:
        """The verified-token cache."""
        return self._cache

    def cached(self, token: object) -> VerifiedToken | None:
        """Return the cached verification of ``token`` if still valid (no I/O, no parsing).

        ``None`` for anything but text (such a token is never verified either).
        """
        if not isinstance(token, str):
            return None
        return self._cache.get(token, self._clock.time())

    async def verify(
        self,
        token: str,
        *,
        audience: str | None = None,
        token_types: tuple[str, ...] | None = None,
        required_claims: tuple[str, ...] | None = None,
        use_cache: bool = True,
        id_token: bool = False,
    ) -> VerifiedToken:
        """Verify ``token`` completely, or answer from the verified-token cache.

        Args:
            token: the compact JWS (untrusted).
            audience: the one audience to require instead of the issuer's (e.g. a client
                id for ID tokens and logout tokens).
            token_types: accepted ``typ`` values instead of the issuer's (``()``: no
                ``typ`` check, for callers that check it themselves).
            required_claims: claims that must be present instead of the issuer's.
            use_cache: read and fill the verified-token cache (a token is stored from its
                second sighting on, see :meth:`VerifiedTokenCache.lookup`). Verifications
                with an override never use the cache, so a token accepted under one
                policy is never served under another.
            id_token: verify an OIDC ID token (with ``audience`` the client id): the
                ID-token ``typ`` rule (:func:`~asgi_sso.verify.claims.check_id_token_type`)
                replaces the issuer's ``token_types``, and the cache is never used.
                Without it and without ``audience``, an ID token of the issuer's
                ``client_id`` is refused: it is never a bearer token.

        Raises:
            AuthError: a subclass saying why the token is refused (never anything else).
        """
        if (
            self._introspector is not None
            and isinstance(token, str)
            and is_opaque(token)
            and audience is None
            and token_types is None
            and required_claims is None
            and not id_token
        ):
            return await self._introspect_reported(self._introspector, token)
        if (
            use_cache
            and audience is None
            and token_types is None
            and required_claims is None
            and not id_token
            # Untrusted input: anything but text is refused by the parser and never
            # hashed or looked up (a list is unhashable).
            and isinstance(token, str)
        ):
            hit, key = self._cache.lookup(token, self._clock.time())
            if hit is None:
                return await self._verify_miss(token, key)
            if self._has_connections and not self.trusts(hit):
                return await self.refresh(token)  # its connection changed since
            if self._emitter.enabled:
                self._emit_cache("cache.hit", hit.issuer.config.label)
            return hit
        rules = _Rules(audience, token_types, required_claims, id_token=id_token)
        return await self._verify_reported(token, rules)

    async def _verify_miss(self, token: str, key: bytes) -> VerifiedToken:
        # ``key`` is the digest the lookup computed, empty on a first sighting (the
        # token is then verified but not stored).
        cache = self._cache
        if key and cache.has_failures:
            remembered = cache.failure_by_key(key, self._clock.monotonic())
            if remembered is not None:
                raise remembered.with_traceback(None)
        if self._emitter.enabled:
            self._emit_cache("cache.miss", None)
        try:
            verified = await self._verify_reported(token, _ISSUER_RULES)
        except AuthError as error:
            # Transient outages are not remembered; malformed input is cheap to refuse
            # again. Also on a first sighting: a refused token that comes back is
            # refused from memory.
            if not isinstance(error, ServiceUnavailable | MalformedToken):
                cache.remember_failure_by_key(
                    key or cache.key(token), error, self._clock.monotonic()
                )
            raise
        if key:
            cache.put_by_key(
                key,
                verified,
                until=verified.expires_at + verified.issuer.config.leeway,
                now=self._clock.time(),
                issuer=verified.issuer.iss,
                connection=verified.connection,
            )
        return verified

    async def _verify_reported(self, token: object, rules: _Rules) -> VerifiedToken:
        # The one boundary where hostile input meets parsers and crypto libraries:
        # whatever they raise becomes an AuthError, and each outcome is one event.
        emitting = self._emitter.enabled
        started = time.perf_counter() if emitting else 0.0
        try:
            verified = await self._check(token, rules)
        except AuthError as error:
            if emitting:
                self._emit_verify(None, error, started)
            raise
        except Exception as exc:
            malformed = MalformedToken()
            if emitting:
                self._emit_verify(None, malformed, started)
            raise malformed from exc
        if emitting:
            self._emit_verify(verified, None, started)
        return verified

    async def _check(self, token: object, rules: _Rules) -> VerifiedToken:
        # Parse, route by iss and check the algorithm synchronously, before the keys.
        parsed = self._parser.parse(token)
        resolved, state = self._route(parsed)
        if not state.bearer and rules is _ISSUER_RULES:
            raise UnknownIssuer("this API accepts no access tokens from the token's issuer")
        keys = self._keys.warm(resolved, parsed.kid, parsed.alg)
        if keys is None:
            keys = await self.keys_for(resolved, parsed.kid, parsed.alg)
        # With those of concurrent requests when they arrive together (signature_batch).
        queued = self._signatures.submit(parsed.alg, parsed.signing_input, parsed.signature, keys)
        if queued is None:
            signer = verify_signature(parsed.alg, parsed.signing_input, parsed.signature, keys)
        else:
            signer = await queued
        # The clock is read after the keys: a fetch may take a while.
        now = self._clock.time()
        return self._verified(
            parsed.claims, parsed.header, parsed.payload, resolved, state, rules, signer.kid, now
        )

    def _route(self, parsed: ParsedToken) -> tuple[ResolvedIssuer, _IssuerState]:
        claims = parsed.claims
        resolved = self._registry.resolve(claims.get("iss"), claims)
        state = self._states[resolved.key]
        if parsed.alg not in state.algorithms:
            raise DisallowedAlgorithm(
                f"the token's algorithm is not allowed for this issuer; "
                f"expected {' or '.join(sorted(state.algorithms))}"
            )
        return resolved, state

    def _verified(
        self,
        claims: dict[str, Any],
        header: dict[str, Any],
        payload: bytes,
        resolved: ResolvedIssuer,
        state: _IssuerState,
        rules: _Rules,
        kid: str | None,
        now: float,
    ) -> VerifiedToken:
        expires_at = validate_claims(
            claims,
            header,
            resolved.iss,
            state.policy,
            now=now,
            audiences=rules.audiences,
            token_types=rules.token_types,
            required=rules.required,
            id_token=rules.id_token,
        )
        user = claims.get(state.user_claim)
        if type(user) is not str or not user:
            user = _user_key(user, state.user_claim, required=rules.id_token)
        return VerifiedToken(
            payload,
            self._shared.header(header),
            resolved,
            user,
            resolved.connection,
            self._shared.value(scopes_from(claims, state.policy.scope_claims)),
            expires_at,
            kid,
        )

    async def keys_for(
        self, resolved: ResolvedIssuer, kid: str | None, alg: str
    ) -> tuple[VerificationKey, ...]:
        """Return the candidate keys of ``resolved`` for ``kid`` and ``alg``.

        HMAC algorithms use the issuer's configured secret; others its JWKS, found
        through discovery when no ``jwks_uri`` is configured.

        Raises:
            UnknownKey: no key fits.
            KeysUnavailable: keys or metadata cannot be fetched.
        """
        return await self._keys.find(resolved, kid, alg)

    async def metadata(self, issuer: str) -> ProviderMetadata:
        """Return the discovery metadata of an exact configured issuer.

        Raises:
            UnknownIssuer: ``issuer`` is not an exact configured issuer.
            KeysUnavailable: the document cannot be fetched.
        """
        config = self._registry.find(issuer)
        if config is None or config.is_template:
            raise UnknownIssuer(f"{issuer!r} is not an exact configured issuer")
        return await self._discovery.get(config.discovery_document_url, expected_issuer=issuer)

    async def prefetch(self) -> None:
        """Fetch discovery and keys of every exact issuer that needs them; never raises."""
        for config in self._registry.issuers:
            if config.is_template and config.jwks_uri is None:
                continue
            if self._states[config.issuer].algorithms <= HMAC_ALGORITHMS:
                continue
            try:
                uri = config.jwks_uri or (await self.metadata(config.issuer)).jwks_uri
                if "{tenant}" not in uri:
                    await self._jwks.prefetch(uri)
            except Exception:  # noqa: S112 - prefetch is best effort; events report it
                continue

    def evict_subject(
        self, *, subject: str, issuer: str | None = None, connection: str | None = None
    ) -> int:
        """Drop cached verifications of ``subject`` (e.g. on deprovisioning); return how many."""
        count = self._cache.evict_subject(subject=subject, issuer=issuer, connection=connection)
        if self._introspector is not None:
            count += self._introspector.evict(
                lambda v: (
                    v.subject != subject
                    or (issuer is not None and v.issuer.iss != issuer)
                    or (connection is not None and v.connection != connection)
                )
            )
        return count

    def forget_all(self) -> None:
        """Drop every cached verification and introspection answer (revocations missed)."""
        self._cache.clear()
        if self._introspector is not None:
            self._introspector.clear()

    @property
    def introspector(self) -> Introspector[VerifiedToken] | None:
        """The opaque-token introspector, when an issuer sets ``introspection``."""
        return self._introspector

    def _make_introspector(
        self, issuer: Issuer, client: httpx.AsyncClient
    ) -> Introspector[VerifiedToken]:
        config = issuer.introspection
        assert config is not None

        async def endpoint() -> tuple[str, tuple[str, ...]]:
            if config.endpoint is not None:
                return config.endpoint, ()
            metadata = await self.metadata(issuer.issuer)
            if metadata.introspection_endpoint is None:
                raise IntrospectionUnavailable(
                    f"issuer {issuer.label!r} advertises no introspection_endpoint",
                    retry_after=config.retry_after,
                )
            # Providers often list the algorithms for their token endpoint only.
            accepted = (
                metadata.introspection_endpoint_auth_signing_alg_values_supported
                or metadata.token_endpoint_auth_signing_alg_values_supported
            )
            return metadata.introspection_endpoint, accepted

        def build(answer: dict[str, Any], now: float) -> tuple[VerifiedToken, float]:
            verified = self._introspected(issuer, answer, now)
            return verified, verified.expires_at

        return Introspector(
            config, client=client, endpoint=endpoint, build=build, clock=self._clock
        )

    def _introspected(self, issuer: Issuer, answer: dict[str, Any], now: float) -> VerifiedToken:
        # RFC 7662 §2.2: every member but ``active`` is optional. The answer comes
        # from this issuer's own authenticated endpoint, so a missing ``iss`` is its.
        claims = dict(answer)
        if "iss" not in claims and not issuer.is_template:
            claims["iss"] = issuer.issuer
        token_type = claims.get("token_type")
        if token_type is not None and type(token_type) is not str:
            raise InvalidClaim("the introspection answer's 'token_type' must be a string")
        if isinstance(token_type, str) and token_type.lower() == "refresh_token":
            raise InvalidToken("a refresh token is not an access token")
        resolved = self._registry.resolve(claims.get("iss"), claims)
        if resolved.config is not issuer:
            raise UnknownIssuer("the introspection answer names another issuer")
        state = self._states[resolved.key]
        payload = msgspec.json.encode(claims)
        return self._verified(claims, {}, payload, resolved, state, _INTROSPECTED_RULES, None, now)

    async def _introspect_reported(
        self, introspector: Introspector[VerifiedToken], token: str
    ) -> VerifiedToken:
        emitting = self._emitter.enabled
        started = time.perf_counter() if emitting else 0.0
        try:
            verified = await introspector.introspect(token)
        except AuthError as error:
            if emitting:
                self._emit_verify(None, error, started)
            raise
        except Exception as exc:
            malformed = MalformedToken()
            if emitting:
                self._emit_verify(None, malformed, started)
            raise malformed from exc
        if emitting:
            self._emit_verify(verified, None, started)
        return verified

    async def aclose(self) -> None:
        """Close the HTTP client if this verifier created it."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    def _emit_cache(self, name: str, issuer: str | None) -> None:
        self._emitter.emit(Event(name=name, time=self._clock.time(), issuer=issuer))

    def _emit_verify(
        self, verified: VerifiedToken | None, error: AuthError | None, started: float
    ) -> None:
        duration = time.perf_counter() - started
        if verified is not None:
            event = Event(
                name="verify",
                outcome="ok",
                time=self._clock.time(),
                issuer=verified.issuer.config.label,
                connection=verified.connection,
                subject=verified.subject,
                duration=duration,
            )
        else:
            event = Event(
                name="verify",
                outcome="refused",
                reason=error.reason if error is not None else None,
                time=self._clock.time(),
                duration=duration,
            )
        self._emitter.emit(event)


def _user_key(value: object, claim: str, *, required: bool) -> str:
    # ``sub`` was type-checked by validate_claims; another user claim is checked here.
    # An ID token always names its user (a sign-in makes a session for them); a
    # logout token may name only a ``sid``.
    if value is None and not required:
        return ""
    raise InvalidClaim(f"the {claim!r} claim (the user's identifier) must be a non-empty string")
