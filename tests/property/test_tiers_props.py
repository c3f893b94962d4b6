"""Properties of the priority mapper: order-independence, unknown groups, defaults."""

from __future__ import annotations

import random

from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.identity.tiers import ConnectionTiers, PriorityTierMapper

TIERS = ["enterprise", "pro", "team", "free"]
KNOWN = {"g-ent": "enterprise", "g-pro": "pro", "g-team": "team", "g-free": "free"}
RANK = {name: len(TIERS) - i for i, name in enumerate(TIERS)}

groups = st.lists(st.sampled_from(sorted(KNOWN)) | st.text(max_size=8), max_size=12)
defaults = st.sampled_from([None, *TIERS])


def mapper(default: str | None) -> PriorityTierMapper:
    return PriorityTierMapper(
        tiers=TIERS, connections={"c": ConnectionTiers(default_tier=default, groups=KNOWN)}
    )


@given(groups, defaults, st.randoms(use_true_random=False))
@example(["g-free", "g-ent"], None, random.Random(0))
def test_highest_tier_wins_whatever_the_order(
    values: list[str], default: str | None, rnd: random.Random
) -> None:
    shuffled = list(values)
    rnd.shuffle(shuffled)
    m = mapper(default)
    a = m.decide({"groups": values}, "c")
    b = m.decide({"groups": shuffled}, "c")
    assert a.tier == b.tier
    candidates = [KNOWN[v] for v in values if v in KNOWN] + ([default] if default else [])
    expected = max(candidates, key=RANK.__getitem__) if candidates else None
    assert a.tier == expected


@given(groups, st.lists(st.text(max_size=8).filter(lambda g: g not in KNOWN), max_size=8), defaults)
def test_unknown_groups_never_raise_a_tier(
    values: list[str], unknown: list[str], default: str | None
) -> None:
    m = mapper(default)
    assert (
        m.decide({"groups": values + unknown}, "c").tier == m.decide({"groups": values}, "c").tier
    )


@given(st.lists(st.text(max_size=8).filter(lambda g: g not in KNOWN), max_size=8), defaults)
def test_default_applies_without_known_groups(unknown: list[str], default: str | None) -> None:
    decision = mapper(default).decide({"groups": unknown}, "c")
    assert decision.tier == default
    assert decision.groups == ()


@given(
    st.dictionaries(
        st.text(max_size=6),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=6),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=6), inner, max_size=4)
            ),
            max_leaves=20,
        ),
        max_size=6,
    )
)
def test_any_claim_set_maps_without_raising(claims: dict[str, object]) -> None:
    decision = mapper("free").decide(claims, "c")
    assert decision.tier in TIERS
    assert all(isinstance(r, str) for r in decision.roles)


client_ids = st.sampled_from(["api", "web", "my.app", "other"])
role_lists = st.lists(st.sampled_from(["r1", "r2", "admin", "reader"]), max_size=4)
resource_access = st.dictionaries(client_ids, st.fixed_dictionaries({"roles": role_lists}))


@given(resource_access, st.none() | client_ids, st.none() | client_ids)
@example({"web": {"roles": ["admin"]}}, "web", "api")
@example({"web": {"roles": ["admin"]}}, "web", None)
def test_client_roles_come_from_the_configured_client_only(
    access: dict[str, dict[str, list[str]]], azp: str | None, client_id: str | None
) -> None:
    claims: dict[str, object] = {"resource_access": access}
    if azp is not None:
        claims["azp"] = azp
    mapper = PriorityTierMapper(
        tiers=["t"], claim_paths=("resource_access.<client>.roles",), client_id=client_id
    )
    roles = mapper.decide(claims, "c").roles
    own = access.get(client_id, {}).get("roles", []) if client_id is not None else []
    assert roles == tuple(dict.fromkeys(own))
