"""Sessions of connections: in force only while their connection is, refreshed and logged out there.

A session opens on a request only while its provider is in force: an enabled
connection with the record's id, issuer and client id, that it postdates. Refresh,
RP-initiated logout and back-channel logout use the session's own connection.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _connections_env import NAMES, Company, Site, query_of

from asgi_sso import Secret
from asgi_sso.sessions import MemorySessionStore
from asgi_sso.testing import FakeClock
from asgi_sso.testing.tokens import generate_key


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["cookie", "memory"])
async def site(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Site]:
    built = Site(clock, MemorySessionStore(clock=clock) if request.param == "memory" else None)
    yield built
    await built.aclose()


@pytest.fixture(params=["cookie", "memory", pytest.param("redis", marks=pytest.mark.redis)])
async def any_site(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Site]:
    """A site in every session mode, real Redis included."""
    store: Any = None
    prefix = f"asgi_sso_test:{uuid.uuid4().hex}:"
    if request.param == "memory":
        store = MemorySessionStore(clock=clock)
    elif request.param == "redis":
        from redis.asyncio import Redis

        from asgi_sso.sessions.redis import RedisSessionStore

        redis = Redis.from_url(request.getfixturevalue("redis_url"))
        store = RedisSessionStore(redis, prefix=prefix, clock=clock)
    built = Site(clock, store)
    yield built
    await built.aclose()
    if request.param == "redis":
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@pytest.fixture
async def server_site(clock: FakeClock) -> AsyncIterator[Site]:
    built = Site(clock, MemorySessionStore(clock=clock))
    yield built
    await built.aclose()


def _cleared(response: Any) -> bool:
    return any(
        line.startswith("sso_session=") and "Max-Age=0" in line
        for line in response.headers.get_list("set-cookie")
    )


# -- disabling, changing and deleting a connection -----------------------------------------


async def test_disabling_a_connection_ends_its_sessions_and_re_enabling_revives_none(
    any_site: Site,
) -> None:
    site = any_site
    acme, globex = site.browser(), site.browser()
    await acme.sign_in(email="user1@acme.test")
    await globex.sign_in(email="user1@globex.test")
    acme_session = (await acme.me()).json()["session_id"]
    stolen = dict(acme.session_cookies())
    site.clock.advance(5)
    await site.change("acme", enabled=False, not_before=site.clock.time())

    refused = await acme.me()
    assert refused.status_code == 401
    assert "disabled or changed" in refused.json()["error_description"]
    assert _cleared(refused)
    assert not acme.session_cookies()
    if site.sessions is not None:
        assert await site.sessions.get(acme_session) is None  # deleted, not just refused
    assert (await globex.me()).status_code == 200  # another connection's user is untouched

    site.clock.advance(5)
    await site.change("acme", enabled=True)  # not_before stays: old sessions stay dead
    acme.web.cookies.update(stolen)
    assert (await acme.me()).status_code == 401
    again = site.browser()
    await again.sign_in(email="user1@acme.test")
    assert (await again.me()).json()["tenant"] == "acme"


async def test_a_page_navigation_with_a_dead_session_goes_to_sign_in(site: Site) -> None:
    browser = site.browser()
    await browser.sign_in(email="user1@globex.test")
    site.clock.advance(1)
    await site.change("globex", enabled=False, not_before=site.clock.time())
    page = await browser.web.get("/reports", headers={"accept": "text/html"})
    assert page.status_code == 302
    assert page.headers["location"].startswith("/auth/login?return_to=")
    assert _cleared(page)


@pytest.mark.parametrize(
    ("change", "still_in_force"),
    [
        pytest.param({"name": "Acme Corporation", "domains": ("acme.test", "acme.example")},
                     True, id="renamed-and-a-domain-added"),
        pytest.param({"client_id": "app-at-acme-v2"}, False, id="another-client"),
        pytest.param({"not_before": 1e12}, False, id="not-before-in-the-future"),
    ],
)  # fmt: skip
async def test_a_session_lives_on_only_while_its_issuer_and_client_are_the_same(
    site: Site, change: dict[str, Any], still_in_force: bool
) -> None:
    browser = site.browser()
    await browser.sign_in(email="user1@acme.test")
    await site.change("acme", **change)
    assert ((await browser.me()).status_code == 200) is still_in_force


async def test_a_deleted_connection_ends_its_sessions(site: Site) -> None:
    browser = site.browser()
    await browser.sign_in(email="user1@initech.test")
    await site.store.delete("initech")
    await site.reload()
    assert (await browser.me()).status_code == 401


async def test_a_disabled_connection_ends_sessions_in_every_worker(server_site: Site) -> None:
    # Two workers share the session store, the cookie secret and the connection store.
    site = server_site
    other = site.worker()
    try:
        browser = site.browser()
        await browser.sign_in(email="user1@acme.test")
        elsewhere = site.browser(other)
        elsewhere.web.cookies.update(browser.session_cookies())
        assert (await elsewhere.me()).json()["tenant"] == "acme"
        site.clock.advance(1)
        await site.change("acme", enabled=False, not_before=site.clock.time())
        await site.reload(other)  # its poll, or the bus announcing "connection acme changed"
        assert (await elsewhere.me()).status_code == 401
    finally:
        await other.shutdown()


# -- refresh and logout at the session's own connection --------------------------------


@pytest.mark.parametrize("name", ["globex", "initech"])
async def test_refresh_uses_the_connections_own_client_credentials(
    server_site: Site, name: str
) -> None:
    site = server_site
    company = site[name]
    browser = site.browser()
    await browser.sign_in(email=f"user1@{company.domain}")
    site.clock.advance(250)  # the 300 s tokens are due 60 s before they end
    assert (await browser.me()).status_code == 200
    code, refresh = site.token_requests(name)
    assert code["grant_type"] == "authorization_code"
    assert refresh["grant_type"] == "refresh_token"
    assert refresh["client_id"] == company.client_id
    if company.method == "client_secret_post":
        assert refresh["client_secret"] == company.secret
    else:
        assert refresh["client_assertion_type"].endswith(":jwt-bearer")
        assert refresh["client_assertion"] != code["client_assertion"]  # one per request
    assert all(not site.token_requests(other) for other in NAMES if other != name)
    refreshed = [e for e in site.events if e.name == "session.refreshed"]
    assert [(e.outcome, e.connection) for e in refreshed] == [("ok", name)]
    site.clock.advance(250)
    assert (await browser.me()).status_code == 200
    assert len(site.token_requests(name)) == 3


async def test_logout_continues_at_the_sessions_own_idp(server_site: Site) -> None:
    site = server_site
    browser = site.browser()
    await browser.sign_in(email="user1@globex.test")
    out = await browser.web.post("/auth/logout", headers={"sec-fetch-site": "same-origin"})
    assert out.status_code == 303
    location = out.headers["location"]
    assert location.startswith(site["globex"].idp.url("/end_session?"))
    assert query_of(location)["client_id"] == site["globex"].client_id
    assert "id_token_hint" in query_of(location)
    assert (await browser.me()).status_code == 401


# -- private_key_jwt -------------------------------------------------------------------------


async def test_private_key_jwt_signs_in_over_real_loopback_sockets(clock: FakeClock) -> None:
    site = Site(clock, served=True)
    with contextlib.ExitStack() as servers:
        for company in site.companies.values():
            servers.enter_context(company.idp.serve())
        try:
            browser = site.browser()
            await browser.sign_in(email="boss@initech.test")
            me = (await browser.me()).json()
            assert (me["tenant"], me["sub"]) == ("initech", "boss-initech")
            [form] = site.token_requests("initech")
            assert form["client_assertion_type"].endswith(":jwt-bearer")
            assert site["initech"].idp.assertion_jtis  # the IdP checked and kept its jti
        finally:
            await site.aclose()


async def test_a_client_key_the_idp_does_not_know_is_refused_by_it(clock: FakeClock) -> None:
    stranger = generate_key("RS256")

    def make(company: Company) -> Any:
        if company.name != "initech":
            return company.connection()
        return company.connection(client_key=Secret(stranger.as_pem(private=True)))

    site = Site(clock, connections=make)
    try:
        browser = site.browser()
        refused = await browser.callback(await browser.authorize(email="user1@initech.test"))
        assert refused.status_code == 400
        assert "invalid_client" in refused.text
        assert not browser.session_cookies()
    finally:
        await site.aclose()


async def test_an_unreadable_client_key_leaves_the_connection_out(clock: FakeClock) -> None:
    def make(company: Company) -> Any:
        if company.name != "initech":
            return company.connection()
        return company.connection(client_key=Secret("-----BEGIN PRIVATE KEY-----\nnope\n"))

    site = Site(clock, connections=make)
    try:
        response = await site.browser().login(email="user1@initech.test")
        assert response.status_code == 404
        assert site.app.connections is not None
        assert "client_key" in site.app.connections.refused["initech"]
        assert "nope" not in site.app.connections.refused["initech"]
        assert (await site.browser().login(email="user1@acme.test")).status_code == 302
    finally:
        await site.aclose()


# -- back-channel logout ----------------------------------------------------------------------


async def test_a_back_channel_logout_from_one_connection_never_ends_anothers_sessions(
    site: Site,
) -> None:
    browsers = {name: site.browser() for name in NAMES}
    for name, browser in browsers.items():
        await browser.sign_in(email=f"user1@{site[name].domain}")  # user1 at every company
    site.clock.advance(1)
    acme = site["acme"]
    answer = await site.backchannel(acme.idp.logout_token(acme.client_id, sub="user1"))
    assert answer.status_code == 200, answer.text
    assert (await browsers["acme"].me()).status_code == 401
    assert (await browsers["globex"].me()).status_code == 200
    assert (await browsers["initech"].me()).status_code == 200


async def test_a_back_channel_logout_by_sid_ends_that_session_only(site: Site) -> None:
    first, second = site.browser(), site.browser()
    before = set(site["globex"].idp.sessions)
    await first.sign_in(email="user1@globex.test")
    [sid] = set(site["globex"].idp.sessions) - before
    await second.sign_in(email="user1@globex.test")
    site.clock.advance(1)
    globex = site["globex"]
    assert (await site.backchannel(globex.idp.logout_token(globex.client_id, sid=sid))).is_success
    assert (await first.me()).status_code == 401
    assert (await second.me()).status_code == 200


async def test_back_channel_logout_tokens_are_honoured_only_from_their_own_provider(
    site: Site,
) -> None:
    browser = site.browser()
    await browser.sign_in(email="user1@acme.test")
    acme, globex = site["acme"], site["globex"]
    site.clock.advance(1)
    for token in (
        globex.idp.logout_token(acme.client_id, sub="user1"),  # aud of another connection
        acme.idp.logout_token(globex.client_id, sub="user1"),  # not this app's client there
        acme.idp.logout_token("someone-else", sub="user1"),
    ):
        refused = await site.backchannel(token)
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_request"
    assert (await browser.me()).status_code == 200
    await site.change("acme", enabled=False)  # a disabled connection is not listened to
    refused = await site.backchannel(acme.idp.logout_token(acme.client_id, sub="user1"))
    assert refused.status_code == 400
    assert "sign-in provider" in refused.json()["error_description"]


async def test_default_provider_and_connection_logouts_stay_apart(clock: FakeClock) -> None:
    site = Site(clock, MemorySessionStore(clock=clock), default=True)
    try:
        assert site.home is not None
        home, acme = site.browser(), site.browser()
        await home.sign_in()  # auto-approved as the home IdP's first user: user1
        await acme.sign_in(email="user1@acme.test")
        clock.advance(1)
        token = site.home.idp.logout_token(site.home.client_id, sub="user1")
        assert (await site.backchannel(token)).status_code == 200
        assert (await home.me()).status_code == 401
        assert (await acme.me()).status_code == 200
    finally:
        await site.aclose()
