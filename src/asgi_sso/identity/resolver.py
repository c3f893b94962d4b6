"""Identity: a verified principal → tier, scopes and roles → the stored user → active or refused.

:class:`IdentityResolver` runs after verification on every authenticated request.
It asks the tier mapper (sync or async) for a decision, then the user store for
the user keyed by ``(connection, user key)`` — ``Principal.identity``, the
issuer's ``user_claim`` (``sub`` by default) — provisioning them on first sight.

Per-request cost: users are cached in-process for ``IdentityConfig.cache_ttl``
seconds, keyed by ``(connection, user key)`` together with the profile the token
implies. A bearer token whose profile-relevant claims (email, names, login name,
groups, tier) differ from the cached profile goes to the store, which writes the
new profile; an unchanged token costs a dict look-up. :meth:`IdentityResolver.signin`
(browser callback) always goes to the store. Revocations for a user evict the
entry at once, so a deactivation bites on the very next request in this process;
other processes see it through the Redis revocation bus or after ``cache_ttl``.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import msgspec

from asgi_sso.config import Clock, SystemClock, check_fields
from asgi_sso.errors import ConfigurationError, UserDeactivated
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.identity.stores.base import Profile, StoredUser, UserStore
from asgi_sso.identity.tiers import (
    DEFAULT_CLAIM_PATHS,
    PriorityTierMapper,
    TierDecision,
    TierMapper,
)
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event
from asgi_sso.principal import Principal, with_role_claims

__all__ = [
    "OVERAGE_PROFILE_KEY",
    "IdentityConfig",
    "IdentityResolver",
    "profile_from_claims",
    "role_source",
]

OVERAGE_PROFILE_KEY = "groups_overage"
"""Key set to ``True`` in ``Principal.profile`` when the IdP left the groups out."""


class IdentityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who a verified user is: their roles, tier and scopes, and their stored record.

    Attributes:
        tier_mapper: maps IdP groups/roles to a product tier and scopes; ``None``
            keeps the token's scopes.
        user_store: provisions users just in time and tracks ``is_active``
            (SCIM deprovisioning writes to it); ``None`` keeps no user records.
        cache_ttl: seconds a resolved user is reused without asking the store
            (0 turns the cache off).
        cache_size: users kept in the cache at most.
        provision: create unknown users on first sight (just in time); with
            ``False`` only users provisioned ahead (SCIM ``POST``) are let in.
        role_claims: the claim paths ``Principal.roles`` is read from (dotted, e.g.
            ``"realm_access.roles"``; a literal key such as
            ``"https://example.com/roles"`` wins). ``None``: the ``claim_paths`` of a
            :class:`~asgi_sso.PriorityTierMapper` given them, else
            :data:`~asgi_sso.identity.tiers.DEFAULT_CLAIM_PATHS`. Without any
            ``IdentityConfig`` the roles are read at the default paths.
        role_client_id: the API's own client id, replacing ``<client>`` in
            ``role_claims`` (Keycloak's ``resource_access.<client>.roles``); ``None``:
            the tier mapper's ``client_id``, else those paths are skipped (never the
            token's ``azp``).

    Raises:
        ConfigurationError: nothing is given (no tier mapper, user store or role
            claims), ``provision=False`` has no store to look users up in, or the
            role claims are given twice, here and to the tier mapper, differently.
    """

    tier_mapper: TierMapper | None = None
    user_store: UserStore | None = None
    cache_ttl: float = 10.0
    cache_size: int = 10_000
    provision: bool = True
    role_claims: tuple[str, ...] | None = None
    role_client_id: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        if (
            self.tier_mapper is None
            and self.user_store is None
            and self.role_claims is None
            and self.role_client_id is None
        ):
            raise ConfigurationError(
                "IdentityConfig needs a tier_mapper, a user_store or role_claims; "
                "without any, leave identity unset"
            )
        _check_roles(self)
        if self.cache_ttl < 0 or self.cache_size < 0:
            raise ConfigurationError("IdentityConfig.cache_ttl and cache_size must not be negative")
        if not self.provision and self.user_store is None:
            raise ConfigurationError(
                "IdentityConfig(provision=False) admits only users already in the store: "
                "give it a user_store"
            )


def _check_roles(config: IdentityConfig) -> None:
    paths, client = config.role_claims, config.role_client_id
    # check_fields has refused a str and made a list a tuple of str by now.
    if paths is not None and (not paths or not all(paths)):
        raise ConfigurationError("IdentityConfig.role_claims must be a list of non-empty paths")
    if client is not None and (not isinstance(client, str) or not client):
        raise ConfigurationError("IdentityConfig.role_client_id must not be empty")
    mapper = config.tier_mapper
    if isinstance(mapper, PriorityTierMapper):
        given = mapper.claim_paths
        if paths is not None and given is not None and tuple(paths) != given:
            raise ConfigurationError(
                "the role claim paths are given twice, differently: set them once, as "
                "IdentityConfig.role_claims (the tier mapper then maps Principal.roles)"
            )
        if client is not None and mapper.client_id not in (None, client):
            raise ConfigurationError(
                "IdentityConfig.role_client_id differs from the tier mapper's client_id: "
                "set it once, as IdentityConfig.role_client_id"
            )


def role_source(config: IdentityConfig | None) -> tuple[tuple[str, ...], str | None]:
    """Where ``Principal.roles`` is read under ``config``: the claim paths and client id."""
    if config is None:
        return DEFAULT_CLAIM_PATHS, None
    paths, client = config.role_claims, config.role_client_id
    mapper = config.tier_mapper
    if isinstance(mapper, PriorityTierMapper):
        paths = paths if paths is not None else mapper.claim_paths
        client = client if client is not None else mapper.client_id
    return (tuple(paths) if paths is not None else DEFAULT_CLAIM_PATHS), client


def profile_from_claims(
    claims: Mapping[str, Any], decision: TierDecision | None, roles: tuple[str, ...] = ()
) -> Profile:
    """The profile a verified claim set implies (OIDC Core §5.1 standard claims).

    Its groups are those the tier mapper read, else ``roles`` (``Principal.roles``).
    """

    def text(*names: str) -> str | None:
        for name in names:
            value = claims.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    return Profile(
        email=text("email"),
        name=text("name"),
        given_name=text("given_name"),
        family_name=text("family_name"),
        user_name=text("preferred_username", "upn", "email"),
        groups=decision.roles if decision is not None and decision.roles else roles,
        tier=decision.tier if decision is not None else None,
    )


class IdentityResolver:
    """Fills a verified principal's tier, scopes, roles, ``user_id`` and profile.

    Args:
        config: the tier mapper, the user store, cache and provisioning settings.
        emitter: receives ``provision`` and ``tier`` (group overage) events.
        revocations: the bus whose ``user`` / ``reactivate`` revocations evict the cache.
        clock: monotonic time for the cache.
    """

    def __init__(
        self,
        config: IdentityConfig,
        *,
        emitter: Emitter = NULL_EMITTER,
        revocations: RevocationBus | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.tier_mapper = config.tier_mapper
        self.user_store = config.user_store
        self._role_claims, self._role_client = role_source(config)
        ranks = getattr(config.tier_mapper, "ranks", None)
        # The mapper's ordering travels on each principal, so require_tier("pro")
        # admits "enterprise" without the app repeating the order.
        self._tier_ranks: Mapping[str, int] = ranks if isinstance(ranks, Mapping) else {}
        self._emitter = emitter
        self._clock = clock or SystemClock()
        self._config = config
        self._cache: OrderedDict[tuple[str, str], tuple[float, Profile, StoredUser]] = OrderedDict()
        # Bumped by every eviction: a store read that began before a revocation
        # must not put its (possibly stale) result into the cache.
        self._epoch = 0
        if revocations is not None:
            revocations.subscribe(self.on_revocation)

    async def start(self) -> None:
        """Start the user store (creates or migrates its schema)."""
        if self.user_store is not None:
            await self.user_store.start()

    async def close(self) -> None:
        """Close the user store."""
        if self.user_store is not None:
            await self.user_store.close()

    async def resolve(self, principal: Principal) -> Principal:
        """Resolve a principal on a request (cached; provisions on first sight).

        Raises:
            UserDeactivated: the stored user is inactive or deleted, or unknown
                while just-in-time provisioning is off.
            StoreUnavailable: the store cannot be reached.
        """
        return await self._resolve(principal, use_cache=True)

    async def signin(self, principal: Principal) -> Principal:
        """Resolve at browser sign-in: always reads and updates the store.

        Raises:
            UserDeactivated: as :meth:`resolve`.
            StoreUnavailable: the store cannot be reached.
        """
        return await self._resolve(principal, use_cache=False)

    def on_revocation(self, revocation: Revocation) -> None:
        """Evict a user on ``user`` or ``reactivate`` revocations (a bus listener)."""
        if revocation.kind == "session" or revocation.kind == "logout":
            return
        self._epoch += 1
        if revocation.connection is None or revocation.subject is None:
            self._cache.clear()
        else:
            self._cache.pop((revocation.connection, revocation.subject), None)

    async def _resolve(self, principal: Principal, *, use_cache: bool) -> Principal:
        principal = self._with_roles(principal)
        if self.tier_mapper is None and self.user_store is None:
            return principal  # role claims only: nothing read until the app asks
        decision = await self._decide(principal)
        roles = decision.roles if decision is not None and decision.roles else principal.roles
        profile = profile_from_claims(principal.claims, decision, roles)
        user = await self._user(principal, profile, use_cache=use_cache)
        extra: dict[str, Any] = {}
        if user is not None:
            extra.update(msgspec.structs.asdict(user.profile))
            extra["groups"] = list(user.profile.groups)
        if decision is not None and decision.overage:
            extra[OVERAGE_PROFILE_KEY] = True
        return Principal(
            identity=principal.identity,
            claims=principal.claims,
            issuer=principal.issuer,
            connection=principal.connection,
            scopes=decision.scopes if decision is not None else principal.scopes,
            tier=decision.tier if decision is not None else principal.tier,
            tier_ranks=self._tier_ranks or principal.tier_ranks,
            roles=roles,
            user_id=user.id if user is not None else principal.user_id,
            profile=extra if extra else principal.profile,
            source=principal.source,
            session_id=principal.session_id,
        )

    def _with_roles(self, principal: Principal) -> Principal:
        # The same principal, its roles read (when first used) at the configured paths.
        return with_role_claims(
            principal,
            self._role_claims,
            self._role_client,
            tier_ranks=self._tier_ranks or principal.tier_ranks,
        )

    async def _decide(self, principal: Principal) -> TierDecision | None:
        if self.tier_mapper is None:
            return None
        result = self.tier_mapper.map(principal)
        decision = await result if inspect.isawaitable(result) else result
        if not isinstance(decision, TierDecision):
            raise TypeError(f"{type(self.tier_mapper).__name__}.map must return a TierDecision")
        if decision.overage and self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name="tier",
                    outcome="stale",
                    reason="group_overage",
                    time=self._clock.time(),
                    issuer=principal.issuer,
                    connection=principal.connection,
                    subject=principal.identity,
                )
            )
        return decision

    async def _user(
        self, principal: Principal, profile: Profile, *, use_cache: bool
    ) -> StoredUser | None:
        store = self.user_store
        if store is None:
            return None
        key = (principal.connection, principal.identity)
        now = self._clock.monotonic()
        if use_cache:
            hit = self._cache.get(key)
            if hit is not None and hit[0] > now and (hit[1] == profile or not hit[2].active):
                return self._check_active(hit[2])
        epoch = self._epoch
        if self._config.provision:
            user, created = await store.get_or_provision(key[0], key[1], profile)
        else:
            found = await store.get_by_subject(key[0], key[1])
            if found is None:
                raise UserDeactivated("the user is not provisioned")
            user, created = found, False
            if not found.deleted and found.profile != profile:
                user = await store.update(found.id, profile=profile) or found
        if created and self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name="provision",
                    reason="jit",
                    time=self._clock.time(),
                    issuer=principal.issuer,
                    connection=key[0],
                    subject=key[1],
                )
            )
        if epoch == self._epoch and self._config.cache_ttl > 0 and self._config.cache_size > 0:
            self._cache[key] = (now + self._config.cache_ttl, profile, user)
            self._cache.move_to_end(key)
            while len(self._cache) > self._config.cache_size:
                self._cache.popitem(last=False)
        return self._check_active(user)

    @staticmethod
    def _check_active(user: StoredUser) -> StoredUser:
        if not user.active or user.deleted:
            raise UserDeactivated()
        return user
