"""asgi_sso.fastapi: dependencies read scope["user"] and refuse with RFC 6750 challenges."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from asgi_sso import ANONYMOUS, ConfigurationError, Principal
from asgi_sso.fastapi import CurrentUser, OptionalUser, require_scopes, require_tier

TIERS = ("enterprise", "pro", "free")


def principal(*, scopes: frozenset[str] = frozenset(), tier: str | None = None) -> Principal:
    return Principal(
        identity="u1", claims={}, issuer="https://idp", tenant="t1", scopes=scopes, tier=tier
    )


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
