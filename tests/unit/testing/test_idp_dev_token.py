"""The dev IdP's command-line token endpoint and the CORS of its token endpoint."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from asgi_sso.testing import DevClient, DevIdP, DevUser, DPoPClient, FakeClock
from asgi_sso.verify.verifier import TokenVerifier

ISSUER = "http://dev-idp.test"
ALICE = DevUser(sub="alice", email="alice@example.com", groups=("admins",))
API = DevClient(
    client_id="api-client",
    client_secret="api-client-secret",
    redirect_uris=("https://rp.example/cb",),
    audience="api://rp",
    grant_types=("authorization_code", "client_credentials"),
)
SWAGGER = DevClient(client_id="docs", redirect_uris=("http://127.0.0.1:8000/docs/oauth2-redirect",))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    return DevIdP(ISSUER, users=[ALICE, DevUser(sub="bob")], clients=[API, SWAGGER], clock=clock)


def client_for(idp: DevIdP, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=idp, client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url=ISSUER)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def dev_token(idp: DevIdP, **form: str) -> httpx.Response:
    async with client_for(idp) as http:
        return await http.post("/dev/token", data=form)


async def test_a_registered_user_gets_a_verifiable_access_token(
    idp: DevIdP, clock: FakeClock
) -> None:
    reply = await dev_token(idp, user="alice")
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    body = reply.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", idp.access_token_ttl)
    assert body["scope"] == "openid profile email"
    claims = claims_of(body["access_token"])
    assert claims["sub"] == "alice"
    assert claims["aud"] == "api://rp"  # the first registered client's audience
    assert claims["client_id"] == "api-client"
    assert claims["groups"] == ["admins"]
    assert claims["exp"] == int(clock.time()) + idp.access_token_ttl
    async with idp.http_client() as http:
        verifier = TokenVerifier([idp.issuer_config("api://rp")], client=http, clock=clock)
        verified = await verifier.verify(body["access_token"])
    assert verified.claims["sub"] == "alice"


async def test_the_user_may_be_named_by_email_with_client_audience_scope_and_lifetime(
    idp: DevIdP, clock: FakeClock
) -> None:
    reply = await dev_token(
        idp, user="alice@example.com", client_id="docs", scope="reports:read", expires_in="60"
    )
    body = reply.json()
    claims = claims_of(body["access_token"])
    assert (claims["sub"], claims["aud"], claims["client_id"]) == ("alice", "docs", "docs")
    assert (claims["scope"], body["expires_in"]) == ("reports:read", 60)
    assert claims["exp"] == int(clock.time()) + 60
    reply = await dev_token(idp, user="bob", audience="api://other")
    assert claims_of(reply.json()["access_token"])["aud"] == "api://other"


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"user": "mallory"}, "unknown user 'mallory' (registered: alice, bob)"),
        ({"user": " "}, "name a user (registered: alice, bob)"),
        ({"user": "alice", "client_id": "nope"}, "unknown client_id 'nope' (known: api-client"),
        ({"user": "alice", "expires_in": "0"}, "expires_in must be"),
        ({"user": "alice", "expires_in": "86401"}, "expires_in must be"),
        ({"user": "alice", "expires_in": "1e3"}, "expires_in must be"),
        ({"user": "alice", "expires_in": "9" * 5000}, "expires_in must be"),
        ({"user": "alice", "expires_in": "١٢"}, "expires_in must be"),  # non-ASCII digits
    ],
)
async def test_bad_requests_are_400_saying_what_is_wrong(
    idp: DevIdP, form: dict[str, str], says: str
) -> None:
    reply = await dev_token(idp, **form)
    assert reply.status_code == 400
    assert reply.json()["error"] == "invalid_request"
    assert says in reply.json()["error_description"]


async def test_without_a_client_an_audience_is_needed(clock: FakeClock) -> None:
    idp = DevIdP(ISSUER, users=[ALICE], clock=clock)
    reply = await dev_token(idp, user="alice")
    assert (reply.status_code, reply.json()["error_description"]) == (
        400,
        "no client is registered: give an audience",
    )
    reply = await dev_token(idp, user="alice", audience="api://x")
    assert claims_of(reply.json()["access_token"])["client_id"] == "asgi-sso-cli"


async def test_only_this_machine_and_no_web_page_may_ask(idp: DevIdP) -> None:
    async with client_for(idp, host="10.1.2.3") as http:
        reply = await http.post("/dev/token", data={"user": "alice"})
    assert (reply.status_code, reply.json()["error"]) == (403, "access_denied")
    async with client_for(idp, host="::1") as http:
        assert (await http.post("/dev/token", data={"user": "alice"})).status_code == 200
        reply = await http.post(
            "/dev/token", data={"user": "alice"}, headers={"Origin": "https://rp.example"}
        )
        assert reply.status_code == 403
        assert "command-line" in reply.json()["error_description"]
        assert (await http.get("/dev/token", params={"user": "alice"})).status_code == 405


async def test_client_credentials_honour_expires_in(idp: DevIdP, clock: FakeClock) -> None:
    form = {"grant_type": "client_credentials", "expires_in": "30"}
    async with client_for(idp) as http:
        reply = await http.post("/token", data=form, auth=("api-client", "api-client-secret"))
        assert reply.json()["expires_in"] == 30
        assert claims_of(reply.json()["access_token"])["exp"] == int(clock.time()) + 30
        form["expires_in"] = "-5"
        reply = await http.post("/token", data=form, auth=("api-client", "api-client-secret"))
    assert reply.status_code == 400


async def test_the_token_endpoint_answers_the_preflight_of_a_registered_origin(
    idp: DevIdP,
) -> None:
    origin = "http://127.0.0.1:8000"
    asked = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-requested-with,x-evil",
    }
    async with client_for(idp) as http:
        reply = await http.options("/token", headers=asked)
        assert reply.status_code == 204
        assert reply.headers["access-control-allow-origin"] == origin
        assert reply.headers["access-control-allow-methods"] == "POST"
        assert reply.headers["access-control-allow-headers"] == "content-type, x-requested-with"
        reply = await http.options("/token", headers={**asked, "Origin": "https://evil.example"})
        assert reply.status_code == 403
        assert "access-control-allow-origin" not in reply.headers


async def test_token_answers_are_readable_by_registered_origins_only(idp: DevIdP) -> None:
    form = {"grant_type": "authorization_code", "code": "nope", "client_id": "docs"}
    async with client_for(idp) as http:
        reply = await http.post("/token", data=form, headers={"Origin": "https://rp.example"})
        assert reply.status_code == 400  # the page can read why
        assert reply.headers["access-control-allow-origin"] == "https://rp.example"
        assert reply.headers["vary"] == "Origin"
        reply = await http.post("/token", data=form, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in reply.headers
        reply = await http.post("/token", data=form)
        assert "access-control-allow-origin" not in reply.headers


async def test_a_page_may_send_a_dpop_proof_and_read_the_nonce(idp: DevIdP) -> None:
    asked = {
        "Origin": "http://127.0.0.1:8000",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,dpop",
    }
    form = {"grant_type": "authorization_code", "code": "nope", "client_id": "docs"}
    async with client_for(idp) as http:
        reply = await http.options("/token", headers=asked)
        assert reply.headers["access-control-allow-headers"] == "content-type, dpop"
        reply = await http.post("/token", data=form, headers={"Origin": "https://rp.example"})
        assert reply.headers["access-control-expose-headers"] == "DPoP-Nonce"  # RFC 9449 §8


async def test_a_dpop_proof_binds_the_command_line_token(idp: DevIdP, clock: FakeClock) -> None:
    key = DPoPClient(clock=clock)
    async with client_for(idp) as http:
        proof = key.proof("POST", f"{ISSUER}/dev/token")
        reply = await http.post("/dev/token", data={"user": "alice"}, headers={"DPoP": proof})
        assert reply.status_code == 200, reply.text
        assert reply.json()["token_type"] == "DPoP"
        assert claims_of(reply.json()["access_token"])["cnf"] == {"jkt": key.jkt}
        for_the_token_endpoint = {"DPoP": key.proof("POST", f"{ISSUER}/token")}
        wrong = await http.post(
            "/dev/token", data={"user": "alice"}, headers=for_the_token_endpoint
        )
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_dpop_proof")
