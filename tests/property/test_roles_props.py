"""Properties of reading roles from claims: any claim set gives bounded, ordered, unique strings."""

from __future__ import annotations

from typing import Any
from unittest import mock

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso import principal as principal_module
from asgi_sso.identity.tiers import PriorityTierMapper
from asgi_sso.principal import (
    DEFAULT_CLAIM_PATHS,
    MAX_VALUES_PER_PATH,
    Principal,
    read_claim_path,
    read_roles,
)
from asgi_sso.testing.strategies import group_lists

_keys = st.sampled_from(
    ["groups", "roles", "realm_access", "resource_access", "api", "my.api", "https://x/roles", "a"]
) | st.text(max_size=6)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=30,
)
claim_sets = st.dictionaries(_keys, _json | group_lists(max_size=12), max_size=6)
paths = st.lists(
    st.sampled_from([*DEFAULT_CLAIM_PATHS, "https://x/roles", "a.b", "resource_access.api.roles"])
    | st.text(min_size=1, max_size=10),
    min_size=1,
    max_size=5,
)
client_ids = st.none() | st.sampled_from(["api", "my.api", "web"])


def _expected(claims: dict[str, Any], wanted: list[str], client: str | None) -> tuple[str, ...]:
    # The reference reading: each path's values in turn, first occurrence kept.
    order: list[str] = []
    for path in wanted:
        if "<client>" in path:
            if client is None:
                continue
            node: Any = claims
            for part in [client if p == "<client>" else p for p in path.split(".")]:
                node = node.get(part) if isinstance(node, dict) else None
            values = [node] if isinstance(node, str) else node if isinstance(node, list) else []
            values = [v for v in values[:MAX_VALUES_PER_PATH] if isinstance(v, str) and v]
        else:
            values = list(read_claim_path(claims, path))
        order.extend(v for v in values if v not in order)
    return tuple(order)


@given(claim_sets, paths, client_ids)
@example({"groups": ["b", "a", "b", "", 7, None, "a"]}, ["groups"], None)
@example({"groups": ["x"], "roles": ["y", "x"]}, ["roles", "groups"], None)
@example({"resource_access": {"my.api": {"roles": ["r"]}}}, list(DEFAULT_CLAIM_PATHS), "my.api")
@example(
    {"azp": "web", "resource_access": {"web": {"roles": ["r"]}}}, list(DEFAULT_CLAIM_PATHS), None
)
def test_roles_are_strings_in_order_each_once_and_bounded(
    claims: dict[str, Any], wanted: list[str], client: str | None
) -> None:
    roles = read_roles(claims, wanted, client)
    assert all(isinstance(role, str) and role for role in roles)
    assert len(roles) == len(set(roles))
    assert len(roles) <= len(wanted) * MAX_VALUES_PER_PATH
    assert roles == _expected(claims, wanted, client)


@given(claim_sets, client_ids)
def test_client_roles_are_never_read_without_a_client_id(
    claims: dict[str, Any], client: str | None
) -> None:
    without = read_roles(claims, DEFAULT_CLAIM_PATHS, None)
    plain = read_roles(claims, [p for p in DEFAULT_CLAIM_PATHS if "<client>" not in p], None)
    assert without == plain
    with_client = read_roles(claims, DEFAULT_CLAIM_PATHS, client)
    assert with_client[: len(plain)] == plain  # client roles only ever come after


@given(st.lists(st.text(max_size=4), max_size=40), st.integers(1, 8))
def test_no_path_yields_more_than_the_per_path_limit(values: list[str], limit: int) -> None:
    with mock.patch.object(principal_module, "MAX_VALUES_PER_PATH", limit):
        roles = read_roles({"groups": values, "roles": values}, ["groups", "roles"])
    assert len(roles) <= limit
    assert roles == tuple(dict.fromkeys(v for v in values[:limit] if v))


@given(claim_sets, paths, client_ids)
def test_a_principal_reads_the_same_roles_from_claims_or_payload(
    claims: dict[str, Any], wanted: list[str], client: str | None
) -> None:
    expected = read_roles(claims, wanted, client)
    from_claims = Principal(
        identity="u", claims=claims, issuer="i", connection="c",
        role_claims=wanted, role_client_id=client,
    )  # fmt: skip
    from_payload = Principal(
        identity="u", payload=msgspec.json.encode(claims), issuer="i", connection="c",
        role_claims=wanted, role_client_id=client,
    )  # fmt: skip
    assert from_claims.roles == from_payload.roles == expected


@given(claim_sets)
def test_a_mapper_without_paths_of_its_own_maps_exactly_the_principal_roles(
    claims: dict[str, Any],
) -> None:
    p = Principal(identity="u", claims=claims, issuer="i", connection="c")
    assert PriorityTierMapper(tiers=["t"]).map(p).roles == p.roles
