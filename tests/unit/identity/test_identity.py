"""IdentityResolver: tiers, JIT provisioning, the cache and immediate deactivation."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.errors import ConfigurationError, StoreUnavailable, UserDeactivated
from asgi_sso.identity.resolver import OVERAGE_PROFILE_KEY, IdentityConfig, IdentityResolver
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.identity.stores import MemoryUserStore, Profile
from asgi_sso.identity.tiers import ConnectionTiers, PriorityTierMapper, TierDecision
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.principal import Principal
from asgi_sso.testing import FakeClock


class CountingStore(MemoryUserStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.fail = False

    async def get_or_provision(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.fail:
            raise StoreUnavailable()
        return await super().get_or_provision(*args, **kwargs)


MAPPER = PriorityTierMapper(
    tiers=["enterprise", "pro", "free"],
    scopes={"pro": ["shots:pro"], "free": ["shots:basic"], "enterprise": ["shots:all"]},
    connections={"acme": ConnectionTiers(default_tier="free", groups={"screenshot-pro": "pro"})},
)


def principal(sub: str = "alice", tenant: str = "acme", **claims: Any) -> Principal:
    return Principal(
        identity=sub, claims={"sub": sub, **claims}, issuer="https://idp", tenant=tenant
    )


@pytest.fixture
def setup() -> tuple[IdentityResolver, CountingStore, RevocationBus, FakeClock, list[Event]]:
    store, bus, clock, events = CountingStore(), RevocationBus(), FakeClock(), []
    resolver = IdentityResolver(
        IdentityConfig(tier_mapper=MAPPER, user_store=store), revocations=bus, clock=clock,
        emitter=Emitter([events.append]),
    )  # fmt: skip
    return resolver, store, bus, clock, events


async def test_scenario_pro_group_default_tier_and_two_connections(setup: Any) -> None:
    resolver, _, _, _, events = setup
    pro = await resolver.resolve(
        principal("alice", groups=["screenshot-pro"], email="a@acme.example")
    )
    assert pro.tier == "pro"
    assert "shots:pro" in pro.scopes
    assert pro.user_id is not None
    assert pro.profile["email"] == "a@acme.example"
    other = await resolver.resolve(principal("bob", groups=["sales"]))
    assert other.tier == "free"
    assert other.scopes == {"shots:basic"}
    elsewhere = await resolver.resolve(principal("alice", tenant="globex"))
    assert elsewhere.user_id != pro.user_id
    assert [e.name for e in events] == ["provision"] * 3


async def test_unchanged_token_is_served_from_the_cache(setup: Any) -> None:
    resolver, store, _, clock, _ = setup
    await resolver.resolve(principal())
    await resolver.resolve(principal())
    assert store.calls == 1
    clock.now += 11
    await resolver.resolve(principal())
    assert store.calls == 2


async def test_changed_claims_update_the_stored_profile(setup: Any) -> None:
    resolver, store, _, _, _ = setup
    first = await resolver.resolve(principal(email="old@acme.example"))
    second = await resolver.resolve(principal(email="new@acme.example"))
    assert store.calls == 2
    stored = await store.get(first.user_id)
    assert stored.profile.email == "new@acme.example"
    assert second.user_id == first.user_id


async def test_deactivation_bites_on_the_next_request(setup: Any) -> None:
    resolver, store, bus, _, _ = setup
    p = await resolver.resolve(principal())
    await store.update(p.user_id, active=False)
    await bus.publish(Revocation(kind="user", connection="acme", subject="alice"))
    with pytest.raises(UserDeactivated):
        await resolver.resolve(principal())
    await store.update(p.user_id, active=True)
    await bus.publish(Revocation(kind="reactivate", connection="acme", subject="alice"))
    assert (await resolver.resolve(principal())).user_id == p.user_id


async def test_session_revocation_does_not_evict_the_user(setup: Any) -> None:
    resolver, store, bus, _, _ = setup
    await resolver.resolve(principal())
    await bus.publish(
        Revocation(kind="session", connection="acme", subject="alice", session_id="s")
    )
    await resolver.resolve(principal())
    assert store.calls == 1


async def test_signin_always_reads_the_store(setup: Any) -> None:
    resolver, store, _, _, _ = setup
    await resolver.signin(principal())
    await resolver.signin(principal())
    assert store.calls == 2


async def test_store_failure_is_store_unavailable(setup: Any) -> None:
    resolver, store, _, _, _ = setup
    store.fail = True
    with pytest.raises(StoreUnavailable):
        await resolver.resolve(principal())


async def test_async_mapper_and_overage_flag() -> None:
    class AsyncMapper:
        async def map(self, p: Principal) -> TierDecision:
            return TierDecision(tier="gold", scopes=frozenset({"g"}), overage=True)

    events: list[Event] = []
    resolver = IdentityResolver(
        IdentityConfig(tier_mapper=AsyncMapper()), emitter=Emitter([events.append])
    )
    result = await resolver.resolve(principal())
    assert result.tier == "gold"
    assert result.scopes == {"g"}
    assert result.profile[OVERAGE_PROFILE_KEY] is True
    assert events[0].reason == "group_overage"


async def test_without_jit_unknown_users_are_refused() -> None:
    store = MemoryUserStore()
    await store.get_or_provision("acme", "known", Profile())
    resolver = IdentityResolver(IdentityConfig(user_store=store, provision=False))
    assert (await resolver.resolve(principal("known"))).user_id is not None
    with pytest.raises(UserDeactivated):
        await resolver.resolve(principal("stranger"))


async def test_no_mapper_keeps_token_scopes() -> None:
    resolver = IdentityResolver(IdentityConfig(user_store=MemoryUserStore()))
    p = Principal(identity="u", claims={}, issuer="i", tenant="t", scopes=frozenset({"s"}))
    assert (await resolver.resolve(p)).scopes == {"s"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs a tier_mapper, a user_store or role_claims"),
        ({"tier_mapper": MAPPER, "provision": False}, r"provision=False\).*give it a user_store"),
        ({"user_store": MemoryUserStore(), "cache_ttl": -1}, "must not be negative"),
    ],
)
def test_an_identity_config_that_would_do_nothing_is_refused(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        IdentityConfig(**kwargs)


async def test_role_claims_alone_fill_principal_roles() -> None:
    resolver = IdentityResolver(IdentityConfig(role_claims=("https://acme.example/roles",)))
    p = principal(**{"https://acme.example/roles": ["auditor", "auditor"], "groups": ["g"]})
    resolved = await resolver.resolve(p)
    assert resolved.roles == ("auditor",)
    assert resolved.tier is None
    assert resolved.scopes == p.scopes


async def test_the_tier_mapper_maps_the_roles_the_app_sees() -> None:
    mapper = PriorityTierMapper(
        tiers=["pro", "free"], default_connection=ConnectionTiers(groups={"analysts": "pro"})
    )
    config = IdentityConfig(tier_mapper=mapper, role_claims=("https://acme.example/groups",))
    resolved = await IdentityResolver(config).resolve(
        principal(**{"https://acme.example/groups": ["analysts"], "groups": ["other"]})
    )
    assert resolved.roles == ("analysts",)
    assert resolved.tier == "pro"


async def test_a_mappers_own_claim_paths_are_the_role_claims() -> None:
    mapper = PriorityTierMapper(tiers=["t"], claim_paths=("realm_access.roles",), client_id="api")
    resolved = await IdentityResolver(IdentityConfig(tier_mapper=mapper)).resolve(
        principal(realm_access={"roles": ["r"]}, groups=["g"],
                  resource_access={"api": {"roles": ["ignored: not a claim path here"]}})
    )  # fmt: skip
    assert resolved.roles == ("r",)


async def test_the_resolved_principal_carries_the_mapper_order() -> None:
    resolver = IdentityResolver(IdentityConfig(tier_mapper=MAPPER))
    resolved = await resolver.resolve(principal(groups=["screenshot-pro"]))
    assert resolved.tier == "pro"
    assert dict(resolved.tier_ranks) == {"enterprise": 3, "pro": 2, "free": 1}
    assert resolved.has_tier("free")
    assert resolved.has_tier("pro")
    assert not resolved.has_tier("enterprise")


async def test_stored_groups_are_the_roles_even_without_a_mapper() -> None:
    store = MemoryUserStore()
    resolver = IdentityResolver(IdentityConfig(user_store=store))
    resolved = await resolver.resolve(principal(groups=["staff"], roles=["admin"]))
    assert resolved.roles == ("staff", "admin")
    user = await store.get_by_subject("acme", "alice")
    assert user is not None
    assert user.profile.groups == ("staff", "admin")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"role_claims": "groups"}, "put it in a list"),
        ({"role_claims": ()}, "list of non-empty paths"),
        ({"role_claims": ("groups", "")}, "list of non-empty paths"),
        ({"role_client_id": ""}, "must not be empty"),
        (
            {
                "tier_mapper": PriorityTierMapper(tiers=["t"], claim_paths=("roles",)),
                "role_claims": ("groups",),
            },
            "given twice, differently",
        ),
        (
            {"tier_mapper": PriorityTierMapper(tiers=["t"], client_id="a"), "role_client_id": "b"},
            "differs from the tier mapper's client_id",
        ),
    ],
)
def test_role_claims_that_would_surprise_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        IdentityConfig(**kwargs)
