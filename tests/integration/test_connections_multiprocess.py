"""Two uvicorn processes sharing PostgreSQL and Redis see each connection change within 1 s.

The workers poll the store only every 30 s here, so a change made through one
worker's admin API, or by the ``asgi-sso connections`` command with ``--redis``,
can reach the other in time only through the Redis revocation bus.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from _app_process import AppProcess
from _redis_server import free_port
from redis import Redis as SyncRedis
from sqlalchemy.ext.asyncio import create_async_engine

from asgi_sso.testing import DevIdP

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
API = "api://mp-connections"
APP_SECRET = "app-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdP]:
    server = DevIdP(f"http://127.0.0.1:{free_port()}")
    with server.serve():
        yield server


@pytest.fixture(scope="module")
def other_idp(idp: DevIdP) -> Iterator[DevIdP]:
    port = free_port()
    while f"http://127.0.0.1:{port}" == idp.issuer:  # free_port() may repeat itself
        port = free_port()
    server = DevIdP(f"http://127.0.0.1:{port}")
    with server.serve():
        yield server


@pytest.fixture(scope="module")
def env(postgres_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    prefix = f"mp{uuid.uuid4().hex[:10]}_"
    redis_prefix = f"asgi_sso_test:{uuid.uuid4().hex}:"
    yield {
        "MP_DATABASE_URL": postgres_url,
        "MP_TABLE_PREFIX": prefix,
        "MP_APP_SECRET": APP_SECRET,
        "MP_POLL": "30",
        "ASGI_SSO_REDIS_URL": redis_url,
        "ASGI_SSO_REDIS_PREFIX": redis_prefix,
    }

    async def drop() -> None:
        engine = create_async_engine(postgres_url.replace("postgresql://", "postgresql+asyncpg://"))
        async with engine.begin() as conn:
            names = await conn.run_sync(lambda c: sa.inspect(c).get_table_names())
            for name in names:
                if name.startswith(prefix):
                    await conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}" CASCADE'))
        await engine.dispose()

    asyncio.run(drop())
    with SyncRedis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=redis_prefix + "*"))
        if keys:
            client.delete(*keys)


@pytest.fixture(scope="module")
def pair(env: dict[str, str]) -> Iterator[tuple[AppProcess, AppProcess]]:
    a = AppProcess("A", free_port(), env, app="_connections_app:app")
    a.wait_healthy()  # A creates the tables; B starts on them
    b = AppProcess("B", free_port(), env, app="_connections_app:app")
    try:
        b.wait_healthy()
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def wait_for(
    http: httpx.AsyncClient, process: AppProcess, token: str, status: int, since: float
) -> float:
    """Ask ``process`` until it answers ``status``; return the delay after ``since``."""
    deadline = since + 1.0
    while time.perf_counter() < deadline:
        response = await http.get(process.url + "/me", headers={"authorization": f"Bearer {token}"})
        if response.status_code == status:
            return time.perf_counter() - since
        await asyncio.sleep(0.01)
    raise AssertionError(f"{process.name} did not answer {status} within 1 s")


async def test_added_on_one_worker_usable_on_the_other_disabled_there_refused_here(
    pair: tuple[AppProcess, AppProcess], idp: DevIdP, http: httpx.AsyncClient
) -> None:
    a, b = pair
    cid = "mp-" + uuid.uuid4().hex[:8]
    token = idp.issue_token("ann", audience=API)
    assert (
        await http.get(b.url + "/me", headers={"authorization": f"Bearer {token}"})
    ).status_code == 401
    body = {
        "id": cid,
        "name": "MP",
        "issuer": idp.issuer,
        "audience": [API],
        "domains": ["mp.test"],
    }
    started = time.perf_counter()
    added = await http.post(a.url + "/admin/connections/", json=body)
    assert added.status_code == 201, added.text
    await wait_for(http, b, token, 200, started)
    me = (await http.get(b.url + "/me", headers={"authorization": f"Bearer {token}"})).json()
    assert (me["tenant"], me["sub"]) == (cid, "ann")
    started = time.perf_counter()
    disabled = await http.post(f"{b.url}/admin/connections/{cid}/disable")
    assert disabled.status_code == 200, disabled.text
    await wait_for(http, a, token, 401, started)


async def test_the_command_line_announces_its_change_to_every_worker(
    pair: tuple[AppProcess, AppProcess],
    other_idp: DevIdP,
    env: dict[str, str],
    http: httpx.AsyncClient,
) -> None:
    cid = "cli-" + uuid.uuid4().hex[:8]
    token = other_idp.issue_token("bo", audience=API)
    command = [
        sys.executable, "-m", "asgi_sso.cli", "connections", "add",
        "--store", env["MP_DATABASE_URL"], "--secret-env", "MP_APP_SECRET",
        "--table-prefix", env["MP_TABLE_PREFIX"],
        "--redis", env["ASGI_SSO_REDIS_URL"], "--redis-prefix", env["ASGI_SSO_REDIS_PREFIX"],
        "--id", cid, "--issuer", other_idp.issuer, "--audience", API,
    ]  # fmt: skip
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *command,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    # The command's own start-up (an interpreter, SQLAlchemy) is not the workers' delay.
    written = time.perf_counter()
    for worker in pair:
        await wait_for(http, worker, token, 200, written)
    assert written - started < 60
