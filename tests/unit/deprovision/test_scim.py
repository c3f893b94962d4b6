"""The SCIM /Users app: auth, tenant isolation, PATCH forms, hostile bodies, revocations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asgi_sso.config import Secret
from asgi_sso.deprovision.scim import ScimApp, ScimConfig
from asgi_sso.errors import ConfigurationError, UserDeactivated
from asgi_sso.identity.resolver import IdentityConfig, IdentityResolver
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.identity.stores import MemoryUserStore, Profile
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.principal import Principal

ACME, GLOBEX = "acme-secret-0123456789", "globex-secret-0123456789"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Env:
    def __init__(self) -> None:
        self.store = MemoryUserStore()
        self.bus = RevocationBus()
        self.revoked: list[Revocation] = []
        self.bus.subscribe(self.revoked.append)
        self.events: list[Event] = []
        self.resolver = IdentityResolver(
            IdentityConfig(user_store=self.store), revocations=self.bus
        )
        config = ScimConfig(
            tokens={"acme": Secret(ACME), "globex": Secret(GLOBEX)}, max_body_bytes=4096
        )
        app = ScimApp(
            config, self.store, revocations=self.bus, emitter=Emitter([self.events.append])
        )
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t/scim/v2",
            headers={"authorization": f"Bearer {ACME}"},
        )  # fmt: skip


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    e = Env()
    async with e.client:
        yield e


async def alice(env: Env) -> str:
    user, _ = await env.store.get_or_provision(
        "acme", "alice-sub", Profile(user_name="alice@acme.example")
    )
    return user.id


def assert_scim_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/scim+json"
    body = response.json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    return body


@pytest.mark.parametrize("auth", [None, "Bearer wrong", f"Basic {ACME}", "Bearer "])
async def test_requests_without_the_secret_are_401(env: Env, auth: str | None) -> None:
    headers = {"authorization": auth} if auth else {}
    env.client.headers.pop("authorization")
    response = await env.client.get("/Users", headers=headers)
    assert_scim_error(response, 401)
    assert ACME not in response.text


async def test_filter_by_user_name_finds_a_jit_user(env: Env) -> None:
    user_id = await alice(env)
    response = await env.client.get("/Users", params={"filter": 'userName eq "ALICE@acme.example"'})
    body = response.json()
    assert body["totalResults"] == 1
    assert body["Resources"][0]["id"] == user_id
    none = await env.client.get("/Users", params={"filter": 'userName eq "bob@acme.example"'})
    assert none.json()["totalResults"] == 0


async def test_another_connection_cannot_see_or_touch_the_user(env: Env) -> None:
    user_id = await alice(env)
    other = {"authorization": f"Bearer {GLOBEX}"}
    assert_scim_error(await env.client.get(f"/Users/{user_id}", headers=other), 404)
    body = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": False}]}
    assert_scim_error(await env.client.patch(f"/Users/{user_id}", json=body, headers=other), 404)
    listed = await env.client.get(
        "/Users", params={"filter": 'userName eq "alice@acme.example"'}, headers=other
    )
    assert listed.json()["totalResults"] == 0
    assert (await env.store.get(user_id)).active


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "path": "active", "value": False},
        {"op": "Replace", "value": {"active": False}},
        {"op": "replace", "path": "active", "value": "False"},
    ],
)
async def test_patch_deactivates_and_the_next_request_is_refused(env: Env, operation: Any) -> None:
    user_id = await alice(env)
    p = Principal(identity="alice-sub", claims={}, issuer="i", tenant="acme")
    await env.resolver.resolve(p)
    response = await env.client.patch(
        f"/Users/{user_id}", json={"schemas": [PATCH], "Operations": [operation]}
    )
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert env.revoked == [
        Revocation(kind="user", connection="acme", subject="alice-sub", time=env.revoked[0].time)
    ]
    assert env.events[-1].name == "deprovision"
    with pytest.raises(UserDeactivated):
        await env.resolver.resolve(p)
    again = {
        "schemas": [PATCH],
        "Operations": [{"op": "replace", "path": "active", "value": "True"}],
    }
    assert (await env.client.patch(f"/Users/{user_id}", json=again)).json()["active"] is True
    assert env.revoked[-1].kind == "reactivate"
    await env.resolver.resolve(p)


async def test_put_replaces_the_profile_and_can_deactivate(env: Env) -> None:
    user_id = await alice(env)
    body = {"userName": "alice2@acme.example", "name": {"givenName": "Alice"}, "active": False,
            "emails": [{"value": "a2@acme.example", "primary": True}]}  # fmt: skip
    response = await env.client.put(f"/Users/{user_id}", json=body)
    assert response.status_code == 200
    stored = await env.store.get(user_id)
    assert stored.profile.user_name == "alice2@acme.example"
    assert stored.profile.email == "a2@acme.example"
    assert not stored.active


async def test_delete_is_404_afterwards_and_refuses_the_user(env: Env) -> None:
    user_id = await alice(env)
    assert (await env.client.delete(f"/Users/{user_id}")).status_code == 204
    assert_scim_error(await env.client.get(f"/Users/{user_id}"), 404)
    with pytest.raises(UserDeactivated):
        await env.resolver.resolve(
            Principal(identity="alice-sub", claims={}, issuer="i", tenant="acme")
        )


async def test_post_provisions_ahead_and_conflicts_on_repeat(env: Env) -> None:
    body = {"userName": "carol@acme.example", "externalId": "carol-sub", "active": True}
    response = await env.client.post("/Users", json=body)
    assert response.status_code == 201
    assert response.headers["location"].endswith(response.json()["id"])
    user = await env.store.get_by_subject("acme", "carol-sub")
    assert user is not None
    assert user.id == response.json()["id"]
    assert_scim_error(await env.client.post("/Users", json=body), 409)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"schemas": ["x"], "Operations": []}',
        b'{"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}',
        b'{"Operations": [{"op": "replace", "path": "active", "value": 1}]}',
        b'{"Operations": [{"op": "replace", "value": ["active"]}]}',
        b'{"Operations": [{"op": "explode", "path": "active", "value": false}]}',
        b'{"Operations": [{"op": "remove", "path": "active"}]}',
        b'{"Operations": [{"op": "replace", "path": "userName", "value": 5}]}',
        b'{"Operations": [{"op": "replace", "path": "active", "value": false}, "x"]}',
        b'{"Operations": ' + b"[" * 200 + b"]" * 200 + b"}",
        b'{"Operations": [{"op": "replace", "value": {"active": false}}], "pad": "'
        + b"x" * 5000
        + b'"}',
        b'\xff\xfe{"Operations": []}',
    ],
)
async def test_hostile_patch_bodies_are_400_and_change_nothing(env: Env, body: bytes) -> None:
    user_id = await alice(env)
    response = await env.client.patch(f"/Users/{user_id}", content=body)
    assert_scim_error(response, 400)
    user = await env.store.get(user_id)
    assert user.active
    assert user.profile.user_name == "alice@acme.example"
    assert env.revoked == []


@pytest.mark.parametrize(
    "filter_",
    [
        'userName sw "a"',
        "userName eq alice",
        'emails eq "x"',
        'userName eq "a" or 1 eq 1',
        "x" * 3000,
    ],
)
async def test_bad_filters_are_400(env: Env, filter_: str) -> None:
    body = assert_scim_error(await env.client.get("/Users", params={"filter": filter_}), 400)
    assert body["scimType"] == "invalidFilter"


async def test_unknown_routes_and_methods(env: Env) -> None:
    assert_scim_error(await env.client.get("/Groups"), 404)
    assert_scim_error(await env.client.delete("/Users"), 405)
    assert_scim_error(await env.client.get("/Users/nope"), 404)


async def test_listing_without_filter_pages(env: Env) -> None:
    for i in range(5):
        await env.store.get_or_provision("acme", f"s{i}", Profile(user_name=f"u{i}"))
    body = (await env.client.get("/Users", params={"startIndex": "2", "count": "2"})).json()
    assert body["totalResults"] == 5
    assert body["itemsPerPage"] == 2
    assert body["startIndex"] == 2


def test_config_is_validated() -> None:
    from asgi_sso import Issuer, SSOMiddleware

    # Secrets may all come from runtime connections; without any, nothing could use SCIM.
    with pytest.raises(ConfigurationError, match="at least one connection"):
        SSOMiddleware(
            lambda *a: None,
            issuers=[Issuer(issuer="https://idp.test", audience="api")],
            identity=IdentityConfig(user_store=MemoryUserStore()),
            scim=ScimConfig(),
        )
    with pytest.raises(ConfigurationError):
        ScimConfig(tokens={"a": Secret("same"), "b": Secret("same")})
    with pytest.raises(ConfigurationError):
        ScimConfig(tokens={"a": Secret("s")}, prefix="scim/")
    assert "same" not in repr(ScimConfig(tokens={"a": Secret("same")}))


async def test_scim_works_below_a_root_path(env: Env) -> None:
    # A server that puts the mount point in ``path`` as well (root_path="/app").
    user_id = await alice(env)
    config = ScimConfig(tokens={"acme": Secret(ACME)})
    transport = httpx.ASGITransport(app=ScimApp(config, env.store), root_path="/app")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get(
            f"/app/scim/v2/Users/{user_id}", headers={"authorization": f"Bearer {ACME}"}
        )
    assert r.status_code == 200
    assert r.json()["id"] == user_id


async def test_nul_characters_are_400_and_change_nothing(env: Env) -> None:
    user_id = await alice(env)
    assert_scim_error(await env.client.get("/Users", params={"filter": 'userName eq "a\x00"'}), 400)
    assert_scim_error(await env.client.get(f"/Users/{user_id}%00"), 400)
    body = b'{"Operations": [{"op": "replace", "path": "userName", "value": "x\\u0000y"}]}'
    assert_scim_error(await env.client.patch(f"/Users/{user_id}", content=body), 400)
    user = await env.store.get(user_id)
    assert user.profile.user_name == "alice@acme.example"


@pytest.mark.parametrize(
    "value", ["a\\u0000b", "\\u0000", "\\ud800", "x\\udc00y", "bell\\u0007", "a\x01b", "del\x7f"]
)
async def test_bad_characters_in_a_filter_value_are_400_invalid_value(env: Env, value: str) -> None:
    response = await env.client.get("/Users", params={"filter": f'userName eq "{value}"'})
    assert assert_scim_error(response, 400)["scimType"] == "invalidValue"
