"""Two uvicorn processes sharing Redis and PostgreSQL behave as one service.

Each test talks to real processes over TCP: sessions and sign-in state cross
processes, a SCIM deprovisioning on one process cuts the user off on the other
within a second, concurrent first sign-ins make one row, and a Redis restart
neither revives anything revoked nor needs the app to restart.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import sqlalchemy as sa
from _app_process import AppProcess
from _redis_server import RedisServer, free_port
from redis import Redis as SyncRedis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import create_async_engine

from asgi_sso.identity.stores.sql import SQLUserStore
from asgi_sso.testing import DevClient, DevIdP, DevUser

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
CLIENT_SECRET = "web-secret-" + uuid.uuid4().hex
SCIM_SECRET = "scim-secret-" + uuid.uuid4().hex
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


class Cluster:
    """Two app processes with their own OAuth client at the shared IdP."""

    def __init__(self, idp: DevIdP, connection: str, database: str, redis_url: str) -> None:
        self.idp, self.connection = idp, connection
        self.client_id = "web-" + uuid.uuid4().hex[:8]
        ports = free_port(), free_port()
        idp.add_client(
            DevClient(
                client_id=self.client_id,
                client_secret=CLIENT_SECRET,
                redirect_uris=tuple(f"http://127.0.0.1:{p}/auth/callback" for p in ports),
                audience="api://mp",
            )
        )
        self.redis_url, self.prefix = redis_url, f"asgi_sso_test:{uuid.uuid4().hex}:"
        env = {
            "ASGI_SSO_REDIS_URL": redis_url,
            "ASGI_SSO_REDIS_PREFIX": self.prefix,
            "ASGI_SSO_DATABASE_URL": database,
            "MP_ISSUER": idp.issuer,
            "MP_CLIENT_ID": self.client_id,
            "MP_CLIENT_SECRET": CLIENT_SECRET,
            "MP_COOKIE_SECRET": "cookie-secret-" + uuid.uuid4().hex,
            "MP_CONNECTION": connection,
            "MP_SCIM_SECRET": SCIM_SECRET,
        }
        self.a = AppProcess("A", ports[0], env)
        self.b = AppProcess("B", ports[1], env)
        try:
            self.a.wait_healthy()
            self.b.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()
        try:
            client = SyncRedis.from_url(self.redis_url, socket_connect_timeout=1)
            with client:
                keys = list(client.scan_iter(match=self.prefix + "*"))
                if keys:
                    client.delete(*keys)
        except RedisError:
            pass  # the private Redis of the restart test is already gone

    def token(self, sub: str) -> str:
        return self.idp.issue_token(
            sub,
            client_id=self.client_id,
            audience="api://mp",
            claims={"connection_id": self.connection},
        )

    async def deprovision(self, http: httpx.AsyncClient, via: AppProcess, user_id: str) -> None:
        operation = {"op": "replace", "path": "active", "value": False}
        response = await http.patch(
            f"{via.url}/scim/v2/Users/{user_id}",
            json={"schemas": [PATCH], "Operations": [operation]},
            headers={"authorization": f"Bearer {SCIM_SECRET}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["active"] is False


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def on(process: AppProcess, url: str) -> str:
    """``url`` with its origin replaced by ``process``'s (a load balancer's choice)."""
    parts = urlsplit(url)
    target = urlsplit(process.url)
    return urlunsplit((target.scheme, target.netloc, parts.path, parts.query, ""))


async def callback_url(http: httpx.AsyncClient, start: AppProcess) -> tuple[str, str]:
    """Start sign-in on ``start``; return the IdP's callback URL and the state cookie header."""
    login = await http.get(start.url + "/auth/login", params={"return_to": "/me"})
    assert login.status_code == 302
    state_cookie = "; ".join(f"{k}={v}" for k, v in login.cookies.items())
    authorize = await http.get(login.headers["location"])
    assert authorize.status_code in (302, 303), authorize.text
    return authorize.headers["location"], state_cookie


async def sign_in(http: httpx.AsyncClient, start: AppProcess, finish: AppProcess) -> str:
    """Sign in starting on ``start`` and finishing on ``finish``; return the session cookie."""
    url, state_cookie = await callback_url(http, start)
    done = await http.get(on(finish, url), headers={"cookie": state_cookie})
    assert done.status_code in (302, 303), done.text
    assert done.headers["location"].endswith("/me")
    session = "; ".join(f"{k}={v}" for k, v in done.cookies.items() if v)
    assert session
    return session


async def wait_for_refusal(
    http: httpx.AsyncClient, process: AppProcess, token: str, since: float, within: float
) -> float:
    """Hammer ``process`` with ``token`` until it is refused; return the delay after ``since``."""
    deadline = since + within
    while time.perf_counter() < deadline:
        response = await http.get(process.url + "/me", headers=bearer(token))
        if response.status_code in (401, 403):
            return time.perf_counter() - since
        assert response.status_code == 200, response.text
    raise AssertionError(f"{process.name} still accepted the token after {within} s")


@pytest.fixture(scope="module")
def connection() -> str:
    return f"mp-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def idp(connection: str) -> Iterator[DevIdP]:
    server = DevIdP(
        f"http://127.0.0.1:{free_port()}",
        users=[DevUser(sub="ann", email="ann@mp.test", connection_id=connection)],
        auto_approve=True,
    )
    with server.serve():
        yield server


@pytest.fixture(scope="module")
def database(postgres_url: str, idp: DevIdP, connection: str) -> Iterator[str]:
    """The user tables exist before two processes start; this connection's rows go after."""

    async def prepare() -> None:
        store = SQLUserStore(postgres_url)
        await store.start()
        await store.close()

    async def cleanup() -> None:
        engine = create_async_engine(postgres_url)
        async with engine.begin() as conn:
            await conn.execute(
                sa.text("DELETE FROM asgi_sso_users WHERE connection = :c"),
                {"c": f"{idp.issuer}#{connection}"},
            )
        await engine.dispose()

    asyncio.run(prepare())
    yield postgres_url
    asyncio.run(cleanup())


@pytest.fixture(scope="module")
def cluster(idp: DevIdP, connection: str, database: str, redis_url: str) -> Iterator[Cluster]:
    pair = Cluster(idp, connection, database, redis_url)
    yield pair
    pair.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        timeout=10, limits=httpx.Limits(max_connections=100), follow_redirects=False
    ) as client:
        yield client


async def test_sign_in_on_one_process_and_use_the_session_on_the_other(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    session = await sign_in(http, cluster.a, cluster.a)
    for process in (cluster.b, cluster.a):
        response = await http.get(process.url + "/me", headers={"cookie": session})
        assert response.status_code == 200, response.text
        assert response.json()["process"] == process.name
        assert response.json()["sub"] == "ann"


async def test_login_started_on_one_finishes_on_the_other_and_a_replay_is_refused(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    url, state_cookie = await callback_url(http, cluster.a)
    done = await http.get(on(cluster.b, url), headers={"cookie": state_cookie})
    assert done.status_code in (302, 303), done.text
    for process in (cluster.a, cluster.b):  # the same code, state and state cookie again
        replay = await http.get(on(process, url), headers={"cookie": state_cookie})
        assert replay.status_code == 400, replay.text
        assert "already used" in replay.text
        assert not [v for v in replay.cookies.values() if v]


async def test_deprovision_on_a_cuts_off_b_within_one_second(
    cluster: Cluster, http: httpx.AsyncClient
) -> None:
    token = cluster.token("leaver-" + uuid.uuid4().hex[:8])
    first = await http.get(cluster.b.url + "/me", headers=bearer(token))
    assert first.status_code == 200, first.text
    assert (await http.get(cluster.a.url + "/me", headers=bearer(token))).status_code == 200
    user_id = first.json()["user_id"]

    async def hammer() -> float:
        await asyncio.sleep(0)  # let the SCIM call go first
        return await wait_for_refusal(http, cluster.b, token, since, within=3.0)

    since = time.perf_counter()
    _, delay = await asyncio.gather(cluster.deprovision(http, cluster.a, user_id), hammer())
    print(f"\nprocess B refused the deprovisioned user {delay * 1000:.1f} ms after the SCIM call")
    assert delay < 1.0


async def test_concurrent_first_sign_ins_over_both_processes_make_one_row(
    cluster: Cluster, http: httpx.AsyncClient, database: str
) -> None:
    sub = "crowd-" + uuid.uuid4().hex[:8]
    token = cluster.token(sub)
    processes = (cluster.a, cluster.b)
    responses = await asyncio.gather(
        *(http.get(processes[i % 2].url + "/me", headers=bearer(token)) for i in range(200))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["user_id"] for r in responses}) == 1
    assert {r.json()["process"] for r in responses} == {"A", "B"}
    engine = create_async_engine(database)
    try:
        async with engine.connect() as conn:
            rows = await conn.scalar(
                sa.text(
                    "SELECT count(*) FROM asgi_sso_users WHERE connection = :c AND subject = :s"
                ),
                {"c": f"{cluster.idp.issuer}#{cluster.connection}", "s": sub},
            )
    finally:
        await engine.dispose()
    assert rows == 1


async def test_redis_restart_revives_nothing_revoked_and_service_recovers(
    idp: DevIdP, connection: str, database: str, http: httpx.AsyncClient
) -> None:
    redis = RedisServer()
    redis.start()
    pair = Cluster(idp, connection, database, redis.url)
    try:
        session = await sign_in(http, pair.a, pair.b)
        assert (await http.get(pair.b.url + "/me", headers={"cookie": session})).status_code == 200
        gone, stay = (
            pair.token("gone-" + uuid.uuid4().hex[:6]),
            pair.token("stay-" + uuid.uuid4().hex[:6]),
        )
        ids = {}
        for name, token in (("gone", gone), ("stay", stay)):
            response = await http.get(pair.b.url + "/me", headers=bearer(token))
            assert response.status_code == 200, response.text
            ids[name] = response.json()["user_id"]
        since = time.perf_counter()
        await pair.deprovision(http, pair.a, ids["gone"])
        await wait_for_refusal(http, pair.b, gone, since, within=1.0)

        redis.stop()
        down = await http.get(pair.b.url + "/me", headers={"cookie": session})
        assert down.status_code == 503, down.text  # sessions need Redis: fail closed
        assert "unavailable" in down.text
        # Bearer tokens need no shared state: still served; the revoked one stays refused.
        assert (await http.get(pair.b.url + "/me", headers=bearer(stay))).status_code == 200
        assert (await http.get(pair.b.url + "/me", headers=bearer(gone))).status_code in (401, 403)

        redis.start()  # a fresh, empty Redis on the same port
        for process in (pair.a, pair.b):
            await wait_healthy_async(http, process, within=15)
        for process in (pair.a, pair.b):
            assert (await http.get(process.url + "/me", headers=bearer(gone))).status_code in (
                401,
                403,
            )
            old = await http.get(process.url + "/me", headers={"cookie": session})
            assert old.status_code == 401, old.text  # the session did not come back
        fresh = await sign_in(http, pair.b, pair.a)
        assert (await http.get(pair.b.url + "/me", headers={"cookie": fresh})).status_code == 200
        since = time.perf_counter()
        await pair.deprovision(http, pair.a, ids["stay"])
        delay = await wait_for_refusal(http, pair.b, stay, since, within=1.0)
        print(f"\nafter the Redis restart, B refused a deprovisioned user in {delay * 1000:.1f} ms")
    finally:
        pair.stop()
        redis.stop()


async def wait_healthy_async(http: httpx.AsyncClient, process: AppProcess, within: float) -> None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        try:
            if (await http.get(process.url + "/healthz")).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{process.name} did not recover within {within} s")
