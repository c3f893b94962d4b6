"""The default tier mapper: groups → highest tier → scopes; overage; configuration checks."""

from __future__ import annotations

import pytest

from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.tiers import (
    ConnectionTiers,
    PriorityTierMapper,
    Tier,
    TierDecision,
    TierMapper,
    has_group_overage,
    read_claim_path,
)
from asgi_sso.principal import Principal

MAPPER = PriorityTierMapper(
    tiers=["enterprise", "pro", "free"],
    scopes={"enterprise": ["admin", "shots:write"], "pro": ["shots:write"], "free": ["shots:read"]},
    connections={
        "acme": ConnectionTiers(default_tier="free", groups={"screenshot-pro": "pro"}),
        "globex": ConnectionTiers(default_tier="enterprise"),
    },
)


def test_group_member_gets_pro_and_its_scopes() -> None:
    decision = MAPPER.decide({"groups": ["screenshot-pro"], "scope": "openid"}, "acme")
    assert decision.tier == "pro"
    assert decision.scopes == {"shots:write", "openid"}
    assert decision.groups == ("screenshot-pro",)


def test_everyone_else_gets_the_connection_default() -> None:
    assert MAPPER.decide({"groups": ["sales"]}, "acme").tier == "free"
    assert MAPPER.decide({}, "globex").tier == "enterprise"


def test_unknown_connection_without_default_has_no_tier_and_keeps_token_scopes() -> None:
    decision = MAPPER.decide({"scp": ["read"]}, "initech")
    assert decision.tier is None
    assert decision.scopes == {"read"}


def test_default_tier_is_not_lowered_by_a_lower_group() -> None:
    mapper = PriorityTierMapper(
        tiers=["pro", "free"],
        connections={"c": ConnectionTiers(default_tier="pro", groups={"g": "free"})},
    )
    assert mapper.decide({"groups": ["g"]}, "c").tier == "pro"


def test_replace_mode_grants_only_tier_scopes() -> None:
    mapper = PriorityTierMapper(
        tiers=[Tier(name="pro", scopes=frozenset({"x"}))],
        default_connection=ConnectionTiers(default_tier="pro"),
        scope_mode="replace",
    )
    assert mapper.decide({"scope": "admin"}, "any").scopes == {"x"}


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"roles": ["r1"]}, ("r1",)),
        ({"realm_access": {"roles": ["k1"]}}, ("k1",)),
        # Without a configured client id, client roles are not read (never via azp).
        ({"azp": "my.app", "resource_access": {"my.app": {"roles": ["c1"]}}}, ()),
        ({"groups": "single"}, ("single",)),
        ({"groups": ["a", 3, None, "a", ""]}, ("a",)),
        ({"groups": {"not": "a list"}}, ()),
    ],
)
def test_claim_paths_are_read(claims: dict[str, object], expected: tuple[str, ...]) -> None:
    assert PriorityTierMapper(tiers=["t"]).decide(claims, "c").roles == expected


def test_client_roles_are_read_for_the_configured_client_only() -> None:
    # A token requested through another client carries the user's roles at every
    # client; only the resource server's own client's roles apply.
    claims = {
        "azp": "web",
        "resource_access": {"web": {"roles": ["web-admin"]}, "my.api": {"roles": ["reader"]}},
    }
    assert PriorityTierMapper(tiers=["t"], client_id="my.api").decide(claims, "c").roles == (
        "reader",
    )
    assert PriorityTierMapper(tiers=["t"], client_id="other").decide(claims, "c").roles == ()
    assert PriorityTierMapper(tiers=["t"]).decide(claims, "c").roles == ()


def test_literal_namespaced_claim_wins_over_dotted_walk() -> None:
    claims = {"https://example.com/roles": ["x"]}
    assert read_claim_path(claims, "https://example.com/roles") == ("x",)


def test_entra_group_overage_is_reported() -> None:
    claims = {"_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {}}}
    assert has_group_overage(claims)
    decision = MAPPER.decide(claims, "acme")
    assert decision.overage
    assert decision.tier == "free"
    assert not MAPPER.decide({"groups": []}, "acme").overage
    assert has_group_overage({"hasgroups": True})


def test_map_uses_the_principal_tenant() -> None:
    p = Principal(identity="u", claims={"groups": ["screenshot-pro"]}, issuer="i", tenant="acme")
    assert MAPPER.map(p).tier == "pro"
    assert isinstance(MAPPER, TierMapper)
    assert isinstance(MAPPER.map(p), TierDecision)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tiers": []},
        {"tiers": ["a", "a"]},
        {"tiers": [Tier(name="a", rank=1), Tier(name="b", rank=1)]},
        {"tiers": ["a"], "scopes": {"b": ["x"]}},
        {"tiers": ["a"], "connections": {"c": ConnectionTiers(default_tier="zzz")}},
        {"tiers": ["a"], "default_connection": ConnectionTiers(groups={"g": "zzz"})},
        {"tiers": ["a"], "scope_mode": "merge"},
        {"tiers": ["a"], "client_id": ""},
        {"tiers": ["a"], "claim_paths": []},
    ],
)
def test_bad_configuration_fails_at_build_time(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PriorityTierMapper(**kwargs)  # type: ignore[arg-type]


def test_group_scopes_add_to_the_tier_scopes_for_members_only() -> None:
    mapper = PriorityTierMapper(
        tiers=["pro", "free"],
        scopes={"pro": ["write"], "free": ["read"]},
        default_connection=ConnectionTiers(default_tier="free"),
        group_scopes={"admins": ["users:admin"], "auditors": ["audit:read"]},
    )
    member = mapper.decide({"groups": ["staff"]}, "acme")
    assert member.scopes == {"read"}
    admin = mapper.decide({"groups": ["admins"], "roles": ["auditors"]}, "acme")
    assert admin.tier == "free"
    assert admin.scopes == {"read", "users:admin", "audit:read"}
    with pytest.raises(ConfigurationError, match="group_scopes"):
        PriorityTierMapper(tiers=["pro"], group_scopes={"": ["x"]})


def test_ranks_are_the_mappers_order_and_read_only() -> None:
    assert dict(MAPPER.ranks) == {"enterprise": 3, "pro": 2, "free": 1}
    with pytest.raises(TypeError):
        MAPPER.ranks["free"] = 9  # type: ignore[index]
    ranked = PriorityTierMapper(tiers=[Tier(name="gold", rank=10), Tier(name="tin", rank=1)])
    assert dict(ranked.ranks) == {"gold": 10, "tin": 1}


def test_map_uses_the_principal_roles_unless_given_paths_of_its_own() -> None:
    p = Principal(
        identity="u", claims={"groups": ["other"]}, issuer="i", connection="acme",
        roles=("screenshot-pro",),
    )  # fmt: skip
    assert MAPPER.map(p).tier == "pro"
    policy = ConnectionTiers(default_tier="free", groups={"screenshot-pro": "pro"})
    own = PriorityTierMapper(
        tiers=["pro", "free"], claim_paths=("groups",), connections={"acme": policy}
    )
    assert own.map(p).tier == "free"  # it reads "groups" itself


@pytest.mark.parametrize("field", ["scopes", "group_scopes"])
def test_a_string_where_scopes_belong_is_refused(field: str) -> None:
    # A lone string would grant each of its characters as a scope.
    with pytest.raises(ConfigurationError, match="lists of scopes, not strings"):
        PriorityTierMapper(tiers=["pro"], **{field: {"pro": "reports:write"}})  # type: ignore[arg-type]
