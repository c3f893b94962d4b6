"""SSOMiddleware with DPoP (RFC 9449): bound tokens need a fresh proof on every request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import Backends, DPoPSettings, LoginConfig, PathRules, Secret, SSOMiddleware
from asgi_sso.errors import ConfigurationError, StoreUnavailable
from asgi_sso.testing import DevClient, DevIdP, DevUser, FakeClock
from asgi_sso.testing.dpop import DPoPClient

AUD = "api://test"
BASE = "http://testserver"
URL = BASE + "/things"


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity, "source": request.user.source})


inner = Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "POST"])])


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP("http://idp.test", users=[DevUser(sub="alice", email="alice@acme.test")])


@pytest.fixture
async def idp_http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = idp.http_client()
    yield client
    await client.aclose()


@pytest.fixture
def dpop(idp: DevIdP) -> DPoPClient:
    return DPoPClient(clock=idp.clock)


def api(idp: DevIdP, http: httpx.AsyncClient, mode: str) -> httpx.AsyncClient:
    app = SSOMiddleware(inner, [idp.issuer_config(audience=AUD, dpop=mode)], http_client=http)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def dpop_headers(dpop: DPoPClient, token: str, method: str = "GET", **kw: Any) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": dpop.proof(method, URL, token, **kw)}


def bound_token(idp: DevIdP, dpop: DPoPClient) -> str:
    return idp.issue_token("alice", audience=AUD, claims=dpop.cnf())


@pytest.mark.parametrize("mode", ["allow", "require"])
async def test_a_bound_token_with_a_fresh_proof_each_time_is_accepted(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient, mode: str
) -> None:
    token = bound_token(idp, dpop)
    async with api(idp, idp_http, mode) as c:
        for _ in range(3):  # the later ones come from the verified-token cache
            r = await c.get("/things", headers=dpop_headers(dpop, token))
            assert r.status_code == 200, r.text
            assert r.json() == {"identity": "alice", "source": "dpop"}
        r = await c.post("/things?page=2", headers=dpop_headers(dpop, token, "POST"))
        assert r.status_code == 200, r.text


async def test_the_cache_never_skips_the_proof(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    headers = dpop_headers(dpop, token)
    async with api(idp, idp_http, "allow") as c:
        assert (await c.get("/things", headers=headers)).status_code == 200
        assert (await c.get("/things", headers=dpop_headers(dpop, token))).status_code == 200
        replayed = await c.get("/things", headers=headers)  # token cached, proof replayed
        no_proof = await c.get("/things", headers={"Authorization": f"DPoP {token}"})
        stolen = await c.get("/things", headers=DPoPClient(clock=idp.clock).headers(
            token, "GET", URL))  # fmt: skip
        other_method = await c.post("/things", headers=dpop_headers(dpop, token))
    for r in (replayed, no_proof, stolen, other_method):
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_dpop_proof"
        challenges = r.headers.get_list("www-authenticate")
        # A proof's error belongs to the DPoP scheme only (RFC 9449 §7.1); RFC 6750
        # defines no such code for Bearer.
        assert challenges[0] == 'Bearer realm="api"'
        assert challenges[1].startswith('DPoP algs="ES256 ')
        assert 'error="invalid_dpop_proof"' in challenges[1]


@pytest.mark.parametrize("mode", ["off", "allow", "require"])
async def test_a_bound_token_sent_as_bearer_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient, mode: str
) -> None:
    token = bound_token(idp, dpop)
    async with api(idp, idp_http, mode) as c:
        r = await c.get("/things", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_token"
    assert "DPoP-bound" in r.json()["error_description"]


async def test_require_refuses_plain_bearer_tokens_and_allow_takes_them(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    headers = {"Authorization": f"Bearer {token}"}
    async with api(idp, idp_http, "require") as c:
        r = await c.get("/things", headers=headers)
    assert r.status_code == 401
    assert "requires DPoP" in r.json()["error_description"]
    assert 'DPoP algs="' in r.headers.get_list("www-authenticate")[1]
    async with api(idp, idp_http, "allow") as c:
        assert (await c.get("/things", headers=headers)).status_code == 200


async def test_an_unbound_token_sent_as_dpop_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    async with api(idp, idp_http, "allow") as c:
        r = await c.get("/things", headers=dpop_headers(dpop, token))
    assert r.status_code == 401
    assert "not DPoP-bound" in r.json()["error_description"]


async def test_with_dpop_off_the_scheme_is_not_read_and_no_dpop_challenge(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    async with api(idp, idp_http, "off") as c:
        r = await c.get("/things", headers=dpop_headers(dpop, token))
    assert r.status_code == 401
    assert r.headers.get_list("www-authenticate") == ['Bearer realm="api"']


async def test_two_proof_headers_are_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    headers = [
        ("Authorization", f"DPoP {token}"),
        ("DPoP", dpop.proof("GET", URL, token)),
        ("DPoP", dpop.proof("GET", URL, token)),
    ]
    async with api(idp, idp_http, "allow") as c:
        r = await c.get("/things", headers=headers)
    assert r.status_code == 401
    assert "more than one DPoP header" in r.json()["error_description"]


async def test_the_proof_names_the_url_below_the_mount_point(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    # Mounted at /api: the client addressed /api/things, and so must its proof.
    app = SSOMiddleware(
        inner, [idp.issuer_config(audience=AUD, dpop="allow")], http_client=idp_http
    )
    token = bound_token(idp, dpop)
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        good = {"Authorization": f"DPoP {token}"}
        good["DPoP"] = dpop.proof("GET", "http://testserver/api/things", token)
        assert (await c.get("/api/things", headers=good)).status_code == 200


NONCE_SECRET = Secret(b"nonce-secret-" + b"x" * 32)


def nonce_api(
    idp: DevIdP, http: httpx.AsyncClient, *, backends: Backends | None = None
) -> httpx.AsyncClient:
    app = SSOMiddleware(
        inner,
        [idp.issuer_config(audience=AUD, dpop="require")],
        http_client=http,
        dpop=DPoPSettings(nonce_secrets=[NONCE_SECRET], nonce_lifetime=60),
        backends=backends,
        clock=idp.clock,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_with_nonces_a_proof_without_one_gets_use_dpop_nonce_and_a_fresh_one(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    async with nonce_api(idp, idp_http) as c:
        r = await c.get("/things", headers=dpop_headers(dpop, token))
        assert r.status_code == 401
        assert r.json()["error"] == "use_dpop_nonce"
        challenges = r.headers.get_list("www-authenticate")
        assert challenges[0] == 'Bearer realm="api"'
        assert challenges[1].startswith('DPoP algs="')
        assert 'error="use_dpop_nonce"' in challenges[1]
        nonce = r.headers["dpop-nonce"]
        dpop.nonce = nonce
        ok = await c.get("/things", headers=dpop_headers(dpop, token))
        assert ok.status_code == 200, ok.text
        assert "dpop-nonce" not in ok.headers  # the current one: nothing to renew
        dpop.nonce = nonce[:-1] + ("A" if nonce[-1] != "A" else "B")
        forged = await c.get("/things", headers=dpop_headers(dpop, token))
        assert forged.json()["error"] == "use_dpop_nonce"


async def test_the_test_client_retries_once_and_follows_the_nonce_as_it_rolls() -> None:
    clock = FakeClock()
    idp = DevIdP("http://idp.test", users=[DevUser(sub="alice")], clock=clock)
    dpop = DPoPClient(clock=clock)
    token = bound_token(idp, dpop)
    async with idp.http_client() as idp_http, nonce_api(idp, idp_http) as c:
        r = await dpop.request(c, "GET", URL, token)  # 401 use_dpop_nonce, then 200
        assert r.status_code == 200, r.text
        first = dpop.nonce
        assert first is not None
        clock.advance(60)  # the next period: accepted, and renewed on the response
        r = await dpop.request(c, "POST", URL, token)
        assert r.status_code == 200, r.text
        assert r.headers["dpop-nonce"] == dpop.nonce != first
        clock.advance(120)  # two periods on: refused, and the client recovers once
        r = await dpop.request(c, "GET", URL, token)
        assert r.status_code == 200, r.text


async def test_workers_with_the_same_secret_accept_each_others_nonces(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    token = bound_token(idp, dpop)
    async with nonce_api(idp, idp_http) as a, nonce_api(idp, idp_http) as b:
        assert (await dpop.request(a, "GET", URL, token)).status_code == 200
        r = await b.get("/things", headers=dpop_headers(dpop, token))
        assert r.status_code == 200, r.text


async def test_nonce_secrets_with_nothing_using_dpop_are_refused(idp: DevIdP) -> None:
    with pytest.raises(ConfigurationError, match="nonce_secrets would never be used"):
        SSOMiddleware(
            inner,
            [idp.issuer_config(audience=AUD)],
            dpop=DPoPSettings(nonce_secrets=[NONCE_SECRET]),
        )
    # A connection may turn DPoP on at runtime: then they are kept.
    SSOMiddleware(
        inner,
        [idp.issuer_config(audience=AUD)],
        connections=[],
        dpop=DPoPSettings(nonce_secrets=[NONCE_SECRET]),
    )


class SharedMemory:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.down = False

    async def remember(self, key: str, until: float) -> bool:
        if self.down:
            raise StoreUnavailable("the DPoP proof memory (Redis) is unavailable")
        new = key not in self.keys
        self.keys.add(key)
        return new


async def test_workers_sharing_a_proof_memory_refuse_a_replay_and_fail_closed(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    memory = SharedMemory()
    token = bound_token(idp, dpop)

    def worker() -> SSOMiddleware:
        return SSOMiddleware(
            inner,
            [idp.issuer_config(audience=AUD, dpop="allow")],
            http_client=idp_http,
            backends=Backends(dpop_proofs=memory),
        )

    a, b = worker(), worker()
    headers = dpop_headers(dpop, token)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url=BASE) as ca:
        assert (await ca.get("/things", headers=headers)).status_code == 200
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=b), base_url=BASE) as cb:
        replayed = await cb.get("/things", headers=headers)
        assert replayed.status_code == 401
        assert "already used" in replayed.json()["error_description"]
        assert (await cb.get("/things", headers=dpop_headers(dpop, token))).status_code == 200
        memory.down = True
        down = await cb.get("/things", headers=dpop_headers(dpop, token))
    assert down.status_code == 503
    assert down.json()["error"] == "temporarily_unavailable"
    assert int(down.headers["retry-after"]) > 0


EXTERNAL = "https://api.example.com/base"


async def test_behind_a_proxy_the_proof_names_the_external_url(
    idp: DevIdP, idp_http: httpx.AsyncClient, dpop: DPoPClient
) -> None:
    app = SSOMiddleware(
        inner,
        [idp.issuer_config(audience=AUD, dpop="allow")],
        http_client=idp_http,
        paths=PathRules(external_url=EXTERNAL),
    )
    token = bound_token(idp, dpop)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        external = await dpop.request(c, "GET", URL, token, htu=EXTERNAL + "/things")
        internal = await dpop.request(c, "GET", URL, token)
    assert external.status_code == 200, external.text
    assert internal.status_code == 401
    assert "htu" in internal.json()["error_description"]


async def test_behind_a_proxy_sign_in_redirects_back_to_the_external_url(idp: DevIdP) -> None:
    idp.add_client(DevClient(client_id="web", client_secret="s" * 20,
                             redirect_uris=(EXTERNAL + "/auth/callback",)))  # fmt: skip
    async with idp.http_client() as http:
        app = SSOMiddleware(
            inner,
            [idp.issuer_config(audience=AUD)],
            http_client=http,
            paths=PathRules(external_url=EXTERNAL + "/"),
            login=LoginConfig(
                issuer=idp.issuer, client_id="web", client_secret=Secret("s" * 20),
                cookie_secrets=(Secret(b"c" * 32),),
            ),
        )  # fmt: skip
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
            r = await c.get("/auth/login")
            # A cookie-authenticated unsafe request from the external origin is its own.
            logout = await c.post("/auth/logout", headers={"origin": "https://api.example.com"})
    assert r.status_code == 302, r.text
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["redirect_uri"] == [EXTERNAL + "/auth/callback"]
    assert logout.status_code != 403, logout.text
