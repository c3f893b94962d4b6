"""Sessions belong to one app: apps sharing a cookie secret and a store never share sessions.

Each app is an SSOMiddleware on the same host with the same ``cookie_secrets``
(a fleet sharing one ``SESSION_SECRET``) and, for server-side sessions, the same
memory store or the same Redis (same key prefix). A session sealed by one app
(sign-in issuer, client id) is refused by any other: a clean 401 for API calls,
a redirect to sign in for page navigations, the stale cookie cleared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from asgi_sso import Backends, LoginConfig, MemorySessionStore, Secret, SSOMiddleware
from asgi_sso.sessions import SessionStore
from asgi_sso.sessions.redis import RedisSessionStore
from asgi_sso.testing import DevClient, DevIdP, DevUser

APP = "http://app.test"
OLD = Secret(b"o" * 32)
NEW = Secret(b"n" * 32)
StoreFactory = Callable[[], SessionStore | None]


async def inner(scope: Any, receive: Any, send: Any) -> None:
    body = msgspec.json.encode({"sub": scope["user"].identity, "client": scope["path"]})
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def provider(issuer: str) -> DevIdP:
    clients = [
        DevClient(client_id=name, client_secret=f"{name}-secret-{name}-secret",
                  redirect_uris=(APP + "/auth/callback",))
        for name in ("web", "admin")
    ]  # fmt: skip
    return DevIdP(issuer, users=[DevUser(sub="alice")], clients=clients, auto_approve=True)


@pytest.fixture
def idps() -> tuple[DevIdP, DevIdP]:
    return provider("http://idp-one.test"), provider("http://idp-two.test")


def _shared(kind: str, request: pytest.FixtureRequest) -> StoreFactory:
    if kind == "cookie":
        return lambda: None
    if kind == "memory":
        shared = MemorySessionStore()
        return lambda: shared
    redis: Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("redis_prefix")
    return lambda: RedisSessionStore(redis, prefix=prefix)


_REDIS = pytest.param("redis", marks=pytest.mark.redis)


@pytest.fixture(params=["cookie", "memory", _REDIS])
def stores(request: pytest.FixtureRequest) -> StoreFactory:
    """Makes the session store of one app: none, one shared memory store, or one Redis."""
    return _shared(request.param, request)


@pytest.fixture(params=["memory", _REDIS])
def server_store(request: pytest.FixtureRequest) -> SessionStore:
    """A server-side store (memory or Redis)."""
    store = _shared(request.param, request)()
    assert store is not None
    return store


def app(
    idp: DevIdP, client_id: str, stores: StoreFactory, secrets: tuple[Secret, ...] = (NEW,)
) -> SSOMiddleware:
    login = LoginConfig(
        issuer=idp.issuer,
        client_id=client_id,
        client_secret=Secret(f"{client_id}-secret-{client_id}-secret"),
        cookie_secrets=secrets,
        secure_cookies=False,
    )
    return SSOMiddleware(
        inner,
        [idp.issuer_config(audience=(client_id,))],
        http_client=idp.http_client(),
        login=login,
        backends=Backends(sessions=stores()),
    )


async def sign_in(sso: SSOMiddleware, idp: DevIdP) -> str:
    """Sign in at ``sso`` through ``idp``; return the ``Cookie`` header the browser then sends."""
    transport = httpx.ASGITransport(app=sso)
    async with (
        httpx.AsyncClient(transport=transport, base_url=APP) as web,
        idp.http_client(base_url=idp.issuer) as at_idp,
    ):
        start = await web.get("/auth/login", params={"return_to": "/me"})
        assert start.status_code == 302, start.text
        back = await at_idp.get(start.headers["location"])
        assert back.status_code == 302, back.text
        landed = await web.get(back.headers["location"].removeprefix(APP))
        assert landed.status_code == 303, landed.text
        session = {k: v for k, v in web.cookies.items() if k.startswith("sso_session")}
    assert session
    return "; ".join(f"{k}={v}" for k, v in session.items())


async def call(sso: SSOMiddleware, cookie: str, accept: str = "application/json") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sso), base_url=APP) as web:
        return await web.get("/me", headers={"cookie": cookie, "accept": accept})


@pytest.mark.parametrize("other", ["another client id", "another issuer"])
async def test_a_session_opens_only_in_the_app_that_sealed_it(
    idps: tuple[DevIdP, DevIdP], stores: StoreFactory, other: str
) -> None:
    one, two = idps
    sealer = app(one, "web", stores)
    stranger = (
        app(one, "admin", stores) if other == "another client id" else app(two, "web", stores)
    )
    cookie = await sign_in(sealer, one)
    assert (await call(sealer, cookie)).json()["sub"] == "alice"

    refused = await call(stranger, cookie)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"] == "invalid_token"
    assert refused.json()["error_description"] == "the cookie cannot be decrypted"
    assert "sso_session=;" in refused.headers["set-cookie"]  # the stranger's cookie is cleared

    page = await call(stranger, cookie, accept="text/html")
    assert page.status_code == 302
    assert page.headers["location"].startswith("/auth/login?")
    assert (await call(sealer, cookie)).status_code == 200  # still good where it belongs


async def test_rotation_keeps_old_sessions_in_their_own_app_only(
    idps: tuple[DevIdP, DevIdP], stores: StoreFactory
) -> None:
    one, two = idps
    cookie = await sign_in(app(one, "web", stores, (OLD,)), one)
    assert (await call(app(one, "web", stores, (OLD, NEW)), cookie)).status_code == 200
    assert (await call(app(one, "admin", stores, (OLD, NEW)), cookie)).status_code == 401
    assert (await call(app(two, "web", stores, (OLD, NEW)), cookie)).status_code == 401


@pytest.mark.parametrize(
    "changes", [{"client_id": "admin"}, {"issuer": "http://idp-two.test"}, {"client_id": ""}]
)
async def test_a_stored_record_of_another_app_is_refused_on_open(
    idps: tuple[DevIdP, DevIdP], server_store: SessionStore, changes: dict[str, str]
) -> None:
    # The cookie names a record this app can decrypt, but the record says it was
    # sealed for another app (or predates the binding): it does not open here.
    store = server_store
    one, _ = idps
    sealer = app(one, "web", lambda: store)
    cookie = await sign_in(sealer, one)
    record = await store.get(await _session_id(sealer, cookie))
    assert record is not None
    assert (record.issuer, record.client_id) == (one.issuer, "web")
    await store.update(msgspec.structs.replace(record, **changes))
    refused = await call(sealer, cookie)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error_description"] == "the session belongs to another app"


async def _session_id(sso: SSOMiddleware, cookie: str) -> str:
    seen: list[str] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"].session_id)
        await inner(scope, receive, send)

    sso.app = spy
    assert (await call(sso, cookie)).status_code == 200
    sso.app = inner
    return seen[0]
