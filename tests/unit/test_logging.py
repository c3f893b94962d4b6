"""The ``asgi_sso`` logger: each event once, at its level, and never a token or a secret.

Start-up (a summary at INFO, each unsafe choice at WARNING), an IdP that cannot be
reached or answers garbage (WARNING once per failure streak, INFO when it is back),
key rotation (INFO), a connection left out (WARNING), stores that are down
(WARNING, at most once a minute).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from joserfc.jwk import ECKey

from asgi_sso import (
    ConnectionTiers,
    IdentityConfig,
    Limits,
    LoginConfig,
    MemoryUserStore,
    Secret,
    SSOMiddleware,
    _log,
    _redis,
)
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.connections.live import LiveConnections
from asgi_sso.errors import StoreUnavailable
from asgi_sso.keys import JWKSCache
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock

APP = "https://app.example"
CLIENT_SECRET = "client-secret-" + "x" * 20
COOKIE_SECRET = b"cookie-secret-" + b"y" * 24


def records(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name.startswith("asgi_sso") and (level is None or r.levelno == level)
    ]


def everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every message, argument and extra field of every record, as one text."""
    parts: list[str] = []
    for record in records(caplog):
        parts.append(record.getMessage())
        parts.extend(repr(value) for value in vars(record).values())
    return "\n".join(parts)


# -- the throttle ---------------------------------------------------------------------------


def test_the_throttle_lets_one_record_through_per_interval_and_counts_the_rest() -> None:
    clock = FakeClock()
    throttle = _log.Throttle(60.0, clock=clock.monotonic, max_keys=2)
    assert throttle.allow("redis") == 0
    assert throttle.allow("redis") is None
    assert throttle.allow("redis") is None
    assert throttle.allow("sql") == 0  # another key is its own
    clock.advance(60.0)
    assert throttle.allow("redis") == 2  # and how many were held back meanwhile
    assert throttle.allow("a") == 0
    assert throttle.allow("b") == 0  # "sql" and "redis" went: at most two keys kept
    assert throttle.reset("b")
    assert not throttle.reset("b")


# -- start-up ------------------------------------------------------------------------------


class Site:
    def __init__(self, *, issuer: dict[str, Any] | None = None, **login: Any) -> None:
        self.idp = DevIdP(
            "https://idp.example",
            users=[DevUser(sub="alice", email="alice@corp.example")],
            clients=[DevClient(client_id="web", client_secret=CLIENT_SECRET,
                               redirect_uris=(APP + "/auth/callback",))],
        )  # fmt: skip
        self.http = self.idp.http_client()

        async def inner(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.sso = SSOMiddleware(
            inner,
            [self.idp.issuer_config(**{"audience": "api://x", **(issuer or {})})],
            connections=[
                Connection(
                    id="acme",
                    issuer="https://acme.example",
                    audience=("a",),
                    client_id="app",
                    client_secret=Secret(CLIENT_SECRET),
                    domains=("acme.example",),
                ),
                Connection(id="off", issuer="https://off.example", audience=("a",), enabled=False),
                Connection(
                    id="pro",
                    issuer="https://pro.example",
                    audience=("a",),
                    tiers=ConnectionTiers(default_tier="pro"),
                ),
            ],
            login=LoginConfig(
                issuer=self.idp.issuer,
                client_id="web",
                client_secret=Secret(CLIENT_SECRET),
                cookie_secrets=(Secret(COOKIE_SECRET),),
                **{"redirect_uri": APP + "/auth/callback", **login},
            ),
            identity=IdentityConfig(user_store=MemoryUserStore()),
            http_client=self.http,
        )


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    site = Site()
    async with site.http:
        yield site
        await site.sso.shutdown()


async def test_start_up_is_summarised_once_at_info(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    await site.sso.startup()
    await site.sso.startup()
    summaries = [r for r in records(caplog, logging.INFO) if r.name == "asgi_sso.middleware"]
    assert len(summaries) == 1
    text = summaries[0].getMessage()
    for expected in (
        "issuers: 'https://idp.example'",
        "connections: 1 enabled, 1 disabled, 1 left out (StaticConnections)",
        "sign-in: on at /auth through 'https://idp.example' and 1 connection(s) found by email",
        "sessions: none",
        "users: MemoryUserStore",
        "revocations: in-process",
    ):
        assert expected in text
    assert CLIENT_SECRET not in everything_logged(caplog)
    assert COOKIE_SECRET.decode() not in everything_logged(caplog)


async def test_a_connection_left_out_is_a_warning_once(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asgi_sso")
    await site.sso.startup()
    assert site.sso.connections is not None
    await site.sso.connections.reload()
    await site.sso.connections.reload()
    left_out = [r for r in records(caplog, logging.WARNING) if "left out" in r.getMessage()]
    assert len(left_out) == 1
    assert "'pro'" in left_out[0].getMessage()
    assert "no PriorityTierMapper defines them" in left_out[0].getMessage()


def test_without_unsafe_choices_nothing_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    Site()
    assert records(caplog, logging.WARNING) == []


def test_each_unsafe_choice_is_a_warning_once_when_the_middleware_is_built(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    Site(
        issuer={"audience": None},
        redirect_uri="http://app.lan/auth/callback",
        secure_cookies=False,
        allow_insecure_http=True,
    )
    warnings = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert len(warnings) == 3, warnings
    assert all(w.startswith("unsafe configuration, chosen explicitly:") for w in warnings)
    assert any("audience=None" in w for w in warnings)
    assert any("redirect_uri is plain http to app.lan" in w for w in warnings)
    assert any("secure_cookies=False on app.lan" in w for w in warnings)


# -- the identity provider's documents -------------------------------------------------------

URI = "https://idp.example.com/jwks"


class Keys:
    """A JWKS endpoint a test can break."""

    def __init__(self) -> None:
        self.keys = [{**ECKey.generate_key("P-256").as_dict(private=False), "kid": "k1"}]
        self.status = 200
        self.body: bytes | None = None
        self.error: Exception | None = None

    async def handler(self, request: httpx.Request) -> httpx.Response:
        if self.error is not None:
            raise self.error
        body = self.body if self.body is not None else msgspec.json.encode({"keys": self.keys})
        return httpx.Response(self.status, content=body, headers={"cache-control": "max-age=60"})

    def rotate(self, kid: str) -> None:
        self.keys = [{**ECKey.generate_key("P-256").as_dict(private=False), "kid": kid}]


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
async def cache(keys: Keys, clock: FakeClock) -> AsyncIterator[JWKSCache]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(keys.handler)) as client:
        yield JWKSCache(client, limits=Limits(jwks_stale_max_age=0), clock=clock)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def document_records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage()) for r in records(caplog) if r.name.startswith("asgi_sso.keys")
    ]


async def test_an_unreachable_idp_is_a_warning_once_per_failure_streak(
    cache: JWKSCache, keys: Keys, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    keys.error = httpx.ConnectError("refused")
    for _ in range(3):  # three attempts, a cooldown apart, many requests each
        for _ in range(5):
            assert not await cache.prefetch(URI)
        clock.advance(60.0)
    logged = document_records(caplog)
    assert logged == [
        (
            logging.WARNING,
            f"cannot fetch the identity provider's keys from {URI} (ConnectError while "
            "fetching); requests that need them get a 503 until it answers",
        )
    ]
    keys.error = None
    assert await cache.prefetch(URI)
    assert document_records(caplog)[-1] == (
        logging.INFO,
        f"the identity provider's keys at {URI} can be fetched again",
    )
    clock.advance(120.0)
    keys.status = 500
    assert await cache.prefetch(URI) is False
    assert document_records(caplog)[-1][0] == logging.WARNING  # a new streak, said again
    assert len(document_records(caplog)) == 3


async def test_an_idp_answering_garbage_is_a_warning_saying_what_is_wrong(
    cache: JWKSCache, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    keys.body = b"<html>" + b"x" * 10_000
    assert not await cache.prefetch(URI)
    (record,) = records(caplog, logging.WARNING)
    assert "the JWK set is not valid UTF-8 JSON" in record.getMessage()
    assert len(record.getMessage()) < 400


async def test_key_rotation_is_info_once(
    cache: JWKSCache, keys: Keys, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    assert await cache.prefetch(URI)
    clock.advance(61.0)
    assert await cache.prefetch(URI)  # the same keys again: nothing to say
    assert records(caplog) == []
    keys.rotate("k2")
    assert (await cache.find(URI, "k2", "ES256"))[0].kid == "k2"
    clock.advance(61.0)
    assert await cache.prefetch(URI)
    (record,) = records(caplog)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        f"the identity provider rotated its keys at {URI}: new 'k2', retired 'k1'"
    )


# -- stores ---------------------------------------------------------------------------------


@pytest.fixture
def fake_throttles(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> None:
    monkeypatch.setattr(_redis, "_trouble", _log.Throttle(clock=clock.monotonic))


def test_redis_trouble_is_a_warning_at_most_once_a_minute(
    fake_throttles: None, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    password = "redis-pw-" + "z" * 12

    def fail() -> None:
        with _redis.unavailable("session store"):
            raise ConnectionError(f"cannot reach redis://:{password}@cache:6379")

    for _ in range(10):
        with pytest.raises(StoreUnavailable):
            fail()
    clock.advance(61.0)
    with pytest.raises(StoreUnavailable):
        fail()
    messages = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert messages == [
        "the session store (Redis) is unavailable (ConnectionError); requests that need it "
        "get a 503",
        "the session store (Redis) is unavailable (ConnectionError); requests that need it "
        "get a 503 (9 more since the last report)",
    ]
    assert password not in everything_logged(caplog)


class Flaky(StaticConnections):
    down = False

    async def revision(self) -> str:
        if self.down:
            raise StoreUnavailable("the connection store is unavailable")
        return await super().revision()


async def test_a_connection_store_that_cannot_be_read_is_a_warning_once_per_outage(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    store = Flaky([Connection(id="acme", issuer="https://acme.example", audience=("a",))])
    live = LiveConnections(store, clock=clock, poll_interval=60.0)
    await live.reload()
    store.down = True
    for _ in range(5):
        assert not await live.check()
    store.down = False
    await live.check()
    await live.check()
    assert [(r.levelno, r.getMessage()) for r in records(caplog)] == [
        (
            logging.WARNING,
            "the connection store cannot be read (StoreUnavailable); the 1 connections "
            "loaded before stay in use until it can",
        ),
        (logging.INFO, "the connection store can be read again"),
    ]


async def test_a_user_database_that_is_down_is_a_warning_without_its_url(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgi_sso.identity.stores import sql

    # A fresh once-a-minute window: an earlier test's outage must not hold this one back.
    monkeypatch.setattr(sql._guarded, "_trouble", _log.Throttle())
    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    url = "postgresql+asyncpg://app:db-pw-" + "w" * 12 + "@127.0.0.1:1/users"
    store = sql.SQLUserStore(url)
    for _ in range(3):
        with pytest.raises(StoreUnavailable):
            await store.start()
    await store.close()
    warnings = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert len(warnings) == 1
    assert warnings[0].startswith("the user store (SQL) is unavailable (")
    assert "w" * 12 not in everything_logged(caplog)


# -- nothing secret, ever ---------------------------------------------------------------------


async def test_no_record_holds_a_token_a_cookie_or_a_secret(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await site.sso.startup()
    good = site.idp.issue_token("alice", client_id="web", audience="api://x")
    expired = site.idp.issue_token("alice", client_id="web", audience="api://x", expires_in=-600)
    wrong_aud = site.idp.issue_token("alice", client_id="web", audience="api://other")
    cookie = "sso_session=" + good
    sent = [good, expired, wrong_aud, good[:-4] + "AAAA"]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=site.sso), base_url=APP
    ) as client:
        for token in sent:
            await client.get("/data", headers={"authorization": f"Bearer {token}"})
        await client.get("/data", headers={"cookie": cookie})
        await client.get(f"/auth/callback?code={good}&state={expired}")
        site.idp.rotate_keys()
        rotated = site.idp.issue_token("alice", client_id="web", audience="api://x")
        await client.get("/data", headers={"authorization": f"Bearer {rotated}"})
        with site.idp.outage():
            site.idp.rotate_keys()
            unknown = site.idp.issue_token("alice", client_id="web", audience="api://x")
            await client.get("/data", headers={"authorization": f"Bearer {unknown}"})
    logged = everything_logged(caplog)
    assert "rotated its keys" in logged  # the flows above did log
    for secret in [*sent, rotated, unknown, CLIENT_SECRET, COOKIE_SECRET.decode()]:
        assert secret not in logged
        assert secret.split(".")[-1] not in logged  # not even a signature


# -- the revocation bus and the token endpoint -------------------------------------------------


def test_the_revocation_bus_logs_an_outage_once_and_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asgi_sso.identity.redis_bus import RedisRevocationBus

    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    bus = RedisRevocationBus("redis://127.0.0.1:1/0")  # never started: outcomes are fed below
    for outcome in ["unreachable"] * 5 + ["connected", "connected", "disconnected"] * 2:
        bus._emit(outcome)
    seen = [(r.levelno, r.getMessage()) for r in records(caplog)]
    assert [level for level, _ in seen] == [
        logging.WARNING, logging.INFO, logging.WARNING, logging.INFO, logging.WARNING
    ]  # fmt: skip
    assert "cannot be reached" in seen[0][1]
    assert seen[1][1] == "the revocation bus (Redis) is connected again"


async def test_a_token_endpoint_that_is_down_is_a_warning_at_most_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from asgi_sso.errors import ServiceUnavailable
    from asgi_sso.login.client_auth import ClientAuth
    from asgi_sso.login.oidc import token_request

    caplog.set_level(logging.DEBUG, logger="asgi_sso")
    endpoint = "https://down.example/token-" + str(id(caplog))
    auth = ClientAuth(client_id="web", method="client_secret_basic", secret=CLIENT_SECRET.encode())
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="bad gateway"))
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(3):
            with pytest.raises(ServiceUnavailable):
                await token_request(
                    client, endpoint, {"code": "c0de-" + "q" * 20}, auth, deadline=5, max_bytes=1024
                )
    warnings = [r.getMessage() for r in records(caplog, logging.WARNING)]
    assert warnings == [f"the identity provider at {endpoint} answered 502 to a token request"]
    assert CLIENT_SECRET not in everything_logged(caplog)
    assert "q" * 20 not in everything_logged(caplog)
