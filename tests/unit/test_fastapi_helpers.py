"""asgi_sso.fastapi: dependencies read scope["user"] and refuse with RFC 6750 challenges."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from asgi_sso import (
    ANONYMOUS,
    ConfigurationError,
    ConnectionTiers,
    IdentityConfig,
    Principal,
    PriorityTierMapper,
    SSOMiddleware,
)
from asgi_sso.fastapi import CurrentUser, OptionalUser, require_scopes, require_tier
from asgi_sso.testing import DevIdP

TIERS = ("enterprise", "pro", "free")


RANKS = {"enterprise": 3, "pro": 2, "free": 1}  # what PriorityTierMapper(tiers=TIERS).ranks holds


def principal(
    *, scopes: frozenset[str] = frozenset(), tier: str | None = None, ranked: bool = False
) -> Principal:
    return Principal(
        identity="u1", claims={}, issuer="https://idp", connection="t1", scopes=scopes, tier=tier,
        tier_ranks=RANKS if ranked else {},
    )  # fmt: skip


def build(user: Any, *, with_user: bool = True) -> httpx.AsyncClient:
    api = FastAPI()

    @api.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"sub": user.identity}

    @api.get("/maybe")
    async def maybe(user: OptionalUser) -> dict[str, Any]:
        return {"sub": user.identity if user else None}

    @api.get("/write", dependencies=[Depends(require_scopes("docs:write", "docs:read"))])
    async def write() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/pro", dependencies=[Depends(require_tier("pro", ranking=TIERS))])
    async def pro() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/pro-by-mapper", dependencies=[Depends(require_tier("pro"))])
    async def pro_by_mapper() -> dict[str, bool]:
        return {"ok": True}

    @api.get("/typo", dependencies=[Depends(require_tier("por"))])
    async def typo() -> dict[str, bool]:
        return {"ok": True}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if with_user:
            scope["user"] = user
        await api(scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_current_user_returns_the_scope_principal() -> None:
    async with build(principal()) as client:
        assert (await client.get("/me")).json() == {"sub": "u1"}


async def test_anonymous_gets_401_with_a_bare_bearer_challenge() -> None:
    async with build(ANONYMOUS) as client:
        reply = await client.get("/me")
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'


async def test_optional_user_is_none_for_anonymous() -> None:
    async with build(ANONYMOUS) as client:
        assert (await client.get("/maybe")).json() == {"sub": None}
    async with build(principal()) as client:
        assert (await client.get("/maybe")).json() == {"sub": "u1"}


async def test_missing_scope_is_403_insufficient_scope_naming_the_scopes() -> None:
    async with build(principal(scopes=frozenset({"docs:read"}))) as client:
        reply = await client.get("/write")
    assert reply.status_code == 403
    challenge = reply.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="docs:write docs:read"' in challenge
    assert "docs:write" in reply.json()["detail"]


async def test_all_scopes_present_passes() -> None:
    async with build(principal(scopes=frozenset({"docs:read", "docs:write"}))) as client:
        assert (await client.get("/write")).status_code == 200


@pytest.mark.parametrize(
    ("tier", "status"), [("enterprise", 200), ("pro", 200), ("free", 403), (None, 403)]
)
async def test_require_tier_accepts_the_minimum_and_higher(tier: str | None, status: int) -> None:
    async with build(principal(tier=tier)) as client:
        reply = await client.get("/pro")
    assert reply.status_code == status
    if status == 403:
        assert 'error="insufficient_scope"' in reply.headers["www-authenticate"]


@pytest.mark.parametrize(
    ("tier", "status"), [("enterprise", 200), ("pro", 200), ("free", 403), (None, 403)]
)
async def test_require_tier_follows_the_tier_mappers_own_order(
    tier: str | None, status: int
) -> None:
    # No ranking repeated in the app: the principal carries the mapper's order.
    async with build(principal(tier=tier, ranked=True)) as client:
        assert (await client.get("/pro-by-mapper")).status_code == status
    async with build(principal(tier="enterprise")) as client:  # a mapper without an order
        assert (await client.get("/pro-by-mapper")).status_code == 403
    async with build(principal(tier="pro")) as client:
        assert (await client.get("/pro-by-mapper")).status_code == 200


async def test_a_tier_the_mapper_does_not_know_is_a_loud_configuration_error() -> None:
    async with build(principal(tier="pro", ranked=True)) as client:
        with pytest.raises(ConfigurationError, match="'por' is not one of the tier mapper's"):
            await client.get("/typo")


async def test_scope_checks_on_anonymous_are_401_not_403() -> None:
    async with build(ANONYMOUS) as client:
        assert (await client.get("/write")).status_code == 401
        assert (await client.get("/pro")).status_code == 401


async def test_without_the_middleware_the_mistake_is_loud() -> None:
    async with build(None, with_user=False) as client:
        with pytest.raises(ConfigurationError, match="SSOMiddleware"):
            await client.get("/me")


def test_unknown_minimum_tier_fails_at_build_time() -> None:
    with pytest.raises(ConfigurationError):
        require_tier("platinum", ranking=TIERS)
    with pytest.raises(ConfigurationError):
        require_scopes("has space")


def test_openapi_shows_the_bearer_scheme() -> None:
    api = FastAPI()

    @api.get("/me")
    async def me(user: CurrentUser) -> dict[str, str]:
        return {"sub": user.identity}

    spec = api.openapi()
    assert spec["components"]["securitySchemes"]["SSO bearer token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["SSO bearer token"]["description"],
    }
    assert spec["paths"]["/me"]["get"]["security"] == [{"SSO bearer token": []}]


async def test_through_the_middleware_roles_and_the_tier_order_reach_the_route() -> None:
    idp = DevIdP("http://idp.test")
    mapper = PriorityTierMapper(
        tiers=TIERS,
        default_connection=ConnectionTiers(
            default_tier="free", groups={"analytics-pro": "pro", "analytics-ent": "enterprise"}
        ),
    )
    api = FastAPI()

    @api.get("/pro", dependencies=[Depends(require_tier("pro"))])
    async def pro(user: CurrentUser) -> dict[str, Any]:
        return {"tier": user.tier, "roles": list(user.roles), "connection": user.connection}

    async def call(app: Any, groups: list[str]) -> httpx.Response:
        token = idp.issue_token("alice", audience="api://t", groups=groups)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/pro", headers={"authorization": f"Bearer {token}"})

    http = idp.http_client()
    tiered = SSOMiddleware(
        api, [idp.issuer_config(audience="api://t")], http_client=http,
        identity=IdentityConfig(tier_mapper=mapper),
    )  # fmt: skip
    ent = await call(tiered, ["staff", "analytics-ent"])
    assert ent.status_code == 200
    assert ent.json() == {
        "tier": "enterprise", "roles": ["staff", "analytics-ent"], "connection": idp.issuer,
    }  # fmt: skip
    assert (await call(tiered, ["analytics-pro"])).status_code == 200
    assert (await call(tiered, ["staff"])).status_code == 403
    await http.aclose()


async def test_roles_reach_the_route_without_any_identity_configuration() -> None:
    idp = DevIdP("http://idp.test")
    api = FastAPI()

    @api.get("/me")
    async def me(user: CurrentUser) -> dict[str, Any]:
        return {"roles": list(user.roles)}

    http = idp.http_client()
    app = SSOMiddleware(api, [idp.issuer_config(audience="api://t")], http_client=http)
    token = idp.issue_token(
        "alice", audience="api://t", groups=["staff", "staff"],
        claims={"roles": ["reports.read"], "realm_access": {"roles": ["kc-admin"]}},
    )  # fmt: skip
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        reply = await client.get("/me", headers={"authorization": f"Bearer {token}"})
    assert reply.json() == {"roles": ["staff", "reports.read", "kc-admin"]}
    await http.aclose()
