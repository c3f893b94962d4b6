"""asgi_sso.litestar: guards read scope["user"] and refuse with RFC 6750 challenges."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.di import NamedDependency, Provide

from asgi_sso import ANONYMOUS, ConfigurationError, Principal
from asgi_sso.litestar import current_user, require_authenticated, require_scopes, require_tier

TIERS = ("enterprise", "pro", "free")
User = NamedDependency[Principal]


RANKS = {"enterprise": 3, "pro": 2, "free": 1}  # what PriorityTierMapper(tiers=TIERS).ranks holds


def principal(
    *, scopes: frozenset[str] = frozenset(), tier: str | None = None, ranked: bool = False
) -> Principal:
    return Principal(
        identity="u1", claims={}, issuer="https://idp", connection="t1", scopes=scopes, tier=tier,
        tier_ranks=RANKS if ranked else {},
    )  # fmt: skip


@get("/me", dependencies={"user": Provide(current_user, sync_to_thread=False)})
async def me(user: User) -> dict[str, str]:
    return {"sub": user.identity}


@get("/open", guards=[require_authenticated()])
async def open_() -> dict[str, bool]:
    return {"ok": True}


@get("/write", guards=[require_scopes("docs:write")])
async def write() -> dict[str, bool]:
    return {"ok": True}


@get("/pro", guards=[require_tier("pro", ranking=TIERS)])
async def pro() -> dict[str, bool]:
    return {"ok": True}


@get("/pro-by-mapper", guards=[require_tier("pro")])
async def pro_by_mapper() -> dict[str, bool]:
    return {"ok": True}


API = Litestar(route_handlers=[me, open_, write, pro, pro_by_mapper])


def build(user: Any) -> httpx.AsyncClient:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope["user"] = user
        await API(scope, receive, send)

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_current_user_dependency_gives_the_principal() -> None:
    async with build(principal()) as client:
        assert (await client.get("/me")).json() == {"sub": "u1"}


@pytest.mark.parametrize("path", ["/me", "/open", "/write", "/pro"])
async def test_anonymous_gets_401_with_a_bearer_challenge(path: str) -> None:
    async with build(ANONYMOUS) as client:
        reply = await client.get(path)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="api"'


async def test_missing_scope_is_403_insufficient_scope() -> None:
    async with build(principal(scopes=frozenset({"docs:read"}))) as client:
        reply = await client.get("/write")
    assert reply.status_code == 403
    assert 'error="insufficient_scope"' in reply.headers["www-authenticate"]
    assert 'scope="docs:write"' in reply.headers["www-authenticate"]
    async with build(principal(scopes=frozenset({"docs:write"}))) as client:
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
        assert "pro (or higher)" in reply.json()["detail"]


def test_unknown_minimum_tier_fails_at_build_time() -> None:
    with pytest.raises(ConfigurationError):
        require_tier("platinum", ranking=TIERS)
    with pytest.raises(ConfigurationError):
        require_tier("pro", ranking="pro")


@pytest.mark.parametrize(
    ("tier", "status"), [("enterprise", 200), ("pro", 200), ("free", 403), (None, 403)]
)
async def test_require_tier_follows_the_tier_mappers_own_order(
    tier: str | None, status: int
) -> None:
    async with build(principal(tier=tier, ranked=True)) as client:
        assert (await client.get("/pro-by-mapper")).status_code == status
    async with build(principal(tier="enterprise")) as client:  # a mapper without an order
        assert (await client.get("/pro-by-mapper")).status_code == 403
