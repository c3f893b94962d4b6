"""Two uvicorn processes sharing Redis accept a DPoP proof once between them.

Without the shared memory a captured proof could be replayed once per worker
within its window; with ``ASGI_SSO_REDIS_URL`` set, the second process refuses it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from _app_process import AppProcess
from _redis_server import free_port
from redis import Redis as SyncRedis

from asgi_sso.testing import DevIdP
from asgi_sso.testing.dpop import DPoPClient

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EXTERNAL = "http://localhost:8443/api"  # the load balancer both processes sit behind
AUDIENCE = "api://mp-dpop"


def distinct_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:  # free_port() may hand out one port twice
        ports.add(free_port())
    return sorted(ports)


@pytest.fixture(scope="module")
def processes(redis_url: str) -> Iterator[tuple[DevIdP, AppProcess, AppProcess]]:
    idp_port, a_port, b_port = distinct_ports(3)
    idp = DevIdP(f"http://127.0.0.1:{idp_port}")
    prefix = f"asgi_sso_test:{uuid.uuid4().hex}:"
    env = {
        "ASGI_SSO_REDIS_URL": redis_url,
        "ASGI_SSO_REDIS_PREFIX": prefix,
        "MP_ISSUER": idp.issuer,
        "MP_EXTERNAL_URL": EXTERNAL,
    }
    with idp.serve():
        a = AppProcess("A", a_port, env, app="_dpop_app:app")
        b = AppProcess("B", b_port, env, app="_dpop_app:app")
        try:
            a.wait_healthy()
            b.wait_healthy()
            yield idp, a, b
        finally:
            a.stop()
            b.stop()
            with SyncRedis.from_url(redis_url) as client:
                keys = list(client.scan_iter(match=prefix + "*"))
                if keys:
                    client.delete(*keys)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def test_a_proof_accepted_by_one_process_is_refused_by_the_other(
    processes: tuple[DevIdP, AppProcess, AppProcess], http: httpx.AsyncClient
) -> None:
    idp, a, b = processes
    client = DPoPClient()
    token = idp.issue_token("ann", audience=AUDIENCE, claims=client.cnf())
    headers = {"authorization": f"DPoP {token}",
               "dpop": client.proof("GET", EXTERNAL + "/things", token)}  # fmt: skip
    first = await http.get(a.url + "/things", headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"process": "A", "sub": "ann"}
    replayed = await http.get(b.url + "/things", headers=headers)
    assert replayed.status_code == 401, replayed.text
    assert replayed.json()["error"] == "invalid_dpop_proof"
    assert "already used" in replayed.json()["error_description"]
    fresh = await client.request(http, "GET", b.url + "/things", token, htu=EXTERNAL + "/things")
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["process"] == "B"


async def test_many_replays_across_both_processes_get_through_once(
    processes: tuple[DevIdP, AppProcess, AppProcess], http: httpx.AsyncClient
) -> None:
    idp, a, b = processes
    client = DPoPClient()
    token = idp.issue_token("ann", audience=AUDIENCE, claims=client.cnf())
    headers = {"authorization": f"DPoP {token}",
               "dpop": client.proof("GET", EXTERNAL + "/things", token)}  # fmt: skip
    responses = await asyncio.gather(
        *(http.get((a, b)[i % 2].url + "/things", headers=headers) for i in range(20))
    )
    assert sorted(r.status_code for r in responses) == [200] + [401] * 19
