"""The dev IdP's token endpoint issues DPoP-bound tokens (RFC 9449 §5, §8, §10)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import SSOMiddleware
from asgi_sso.testing import DevClient, DevIdP, DevUser, DPoPClient, FakeClock
from asgi_sso.testing.tokens import b64url
from asgi_sso.verify.dpop import DPOP_ALGORITHMS

ISSUER = "http://idp.test"
TOKEN_URL = f"{ISSUER}/token"
CALLBACK = "http://127.0.0.1:8000/callback"
API = "api://orders"
CLIENTS = [
    DevClient(client_id="svc", client_secret="svc-secret", audience=API,
              grant_types=("client_credentials",)),
    DevClient(client_id="bound", client_secret="bound-secret", audience=API,
              grant_types=("client_credentials",), dpop_bound=True),
    DevClient(client_id="web", client_secret="web-secret", redirect_uris=(CALLBACK,),
              audience=API),
    DevClient(client_id="spa", redirect_uris=(CALLBACK,), audience=API),
]  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    return DevIdP(ISSUER, users=[DevUser(sub="alice")], clients=CLIENTS, clock=clock)


@pytest.fixture
def key(clock: FakeClock) -> DPoPClient:
    return DPoPClient(clock=clock)


@pytest.fixture
async def http(idp: DevIdP) -> Any:
    async with idp.http_client() as client:
        yield client


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def service_token(
    http: httpx.AsyncClient, proof: str | None, client: str = "svc", **more: Any
) -> httpx.Response:
    headers = {} if proof is None else {"DPoP": proof}
    return await http.post(
        TOKEN_URL,
        data={"grant_type": "client_credentials"},
        auth=(client, f"{client}-secret"),
        headers=headers,
        **more,
    )


def refused(response: httpx.Response, error: str = "invalid_dpop_proof") -> str:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    description: str = response.json()["error_description"]
    return description


# -- client credentials ---------------------------------------------------------------------


async def test_a_proof_binds_the_service_token_to_its_key(
    http: httpx.AsyncClient, key: DPoPClient
) -> None:
    reply = await service_token(http, key.proof("POST", TOKEN_URL))  # no ath at the AS
    assert reply.status_code == 200, reply.text
    assert reply.json()["token_type"] == "DPoP"
    assert claims_of(reply.json()["access_token"])["cnf"] == {"jkt": key.jkt}


async def test_without_a_proof_the_token_stays_a_bearer_token(http: httpx.AsyncClient) -> None:
    reply = await service_token(http, None)
    assert reply.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(reply.json()["access_token"])


async def test_introspection_names_the_binding(http: httpx.AsyncClient, key: DPoPClient) -> None:
    bound = (await service_token(http, key.proof("POST", TOKEN_URL))).json()["access_token"]
    plain = (await service_token(http, None)).json()["access_token"]
    answers = [
        (
            await http.post(f"{ISSUER}/introspect", data={"token": t}, auth=("svc", "svc-secret"))
        ).json()
        for t in (bound, plain)
    ]
    assert (answers[0]["token_type"], answers[0]["cnf"]) == ("DPoP", {"jkt": key.jkt})
    assert answers[1]["token_type"] == "Bearer"


async def test_the_bound_token_works_at_an_api_with_a_fresh_proof(
    idp: DevIdP, http: httpx.AsyncClient, key: DPoPClient
) -> None:
    token = (await service_token(http, key.proof("POST", TOKEN_URL))).json()["access_token"]

    async def me(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.user.identity})

    app = SSOMiddleware(
        Starlette(routes=[Route("/me", me)]),
        issuers=[idp.issuer_config(API, dpop="allow")],
        http_client=http,
        clock=idp.clock,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as api:
        url = "http://api.test/me"
        ok = await api.get(url, headers=dict(key.headers(token, "GET", url)))
        as_bearer = await api.get(url, headers={"Authorization": f"Bearer {token}"})
    assert (ok.status_code, ok.json()) == (200, {"sub": "svc"})
    assert as_bearer.status_code == 401


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda k: k.proof("POST", "http://api.test/orders"), "htu"),
        (lambda k: k.proof("GET", TOKEN_URL), "htm"),
        (lambda k: k.proof("POST", TOKEN_URL, headers={"typ": "JWT"}), "typ"),
        (lambda k: k.proof("POST", TOKEN_URL, claims={"iat": int(k.clock.time()) - 3600}),
         "window"),
        (lambda k: k.none_proof("POST", TOKEN_URL), "none"),
        (lambda k: k.hmac_proof("POST", TOKEN_URL), "algorithm"),
        (lambda k: k.private_key_proof("POST", TOKEN_URL), "private key"),
        (lambda k: "not-a-proof", "malformed"),
        (lambda k: "", "no DPoP proof"),
    ],
)  # fmt: skip
async def test_an_invalid_proof_is_a_400_invalid_dpop_proof(
    http: httpx.AsyncClient, key: DPoPClient, make: Any, says: str
) -> None:
    assert says in refused(await service_token(http, make(key)))


async def test_a_proof_is_used_once(http: httpx.AsyncClient, key: DPoPClient) -> None:
    proof = key.proof("POST", TOKEN_URL)
    assert (await service_token(http, proof)).status_code == 200
    assert "already used" in refused(await service_token(http, proof))


async def test_two_proofs_in_one_request_are_refused(
    http: httpx.AsyncClient, key: DPoPClient
) -> None:
    two = [("DPoP", key.proof("POST", TOKEN_URL)), ("DPoP", key.proof("POST", TOKEN_URL))]
    reply = await http.post(
        TOKEN_URL, data={"grant_type": "client_credentials"}, auth=("svc", "svc-secret"),
        headers=httpx.Headers(two),
    )  # fmt: skip
    assert "more than one" in refused(reply)


async def test_a_client_registered_dpop_bound_must_send_a_proof(
    http: httpx.AsyncClient, key: DPoPClient
) -> None:
    assert "requires DPoP" in refused(await service_token(http, None, "bound"))
    reply = await service_token(http, key.proof("POST", TOKEN_URL), "bound")
    assert claims_of(reply.json()["access_token"])["cnf"] == {"jkt": key.jkt}


async def test_discovery_names_the_proof_algorithms(http: httpx.AsyncClient) -> None:
    doc = (await http.get(f"{ISSUER}/.well-known/openid-configuration")).json()
    assert doc["dpop_signing_alg_values_supported"] == list(DPOP_ALGORITHMS)


# -- server nonces (§8) ---------------------------------------------------------------------


async def test_a_nonce_demanding_idp_answers_use_dpop_nonce_then_accepts_the_retry(
    clock: FakeClock, key: DPoPClient
) -> None:
    idp = DevIdP(ISSUER, clients=CLIENTS, clock=clock, dpop_nonce=True)
    async with idp.http_client() as http:
        first = await service_token(http, key.proof("POST", TOKEN_URL))
        assert "nonce" in refused(first, "use_dpop_nonce")
        nonce = first.headers["dpop-nonce"]
        wrong = await service_token(http, key.proof("POST", TOKEN_URL, claims={"nonce": "x"}))
        assert wrong.headers["dpop-nonce"] == nonce
        refused(wrong, "use_dpop_nonce")
        retry = await service_token(http, key.proof("POST", TOKEN_URL, claims={"nonce": nonce}))
    assert retry.status_code == 200, retry.text
    assert retry.headers["dpop-nonce"] == nonce
    assert claims_of(retry.json()["access_token"])["cnf"] == {"jkt": key.jkt}


async def test_a_nonce_demanding_idp_still_refuses_a_bad_proof_as_invalid(
    clock: FakeClock, key: DPoPClient
) -> None:
    idp = DevIdP(ISSUER, clients=CLIENTS, clock=clock, dpop_nonce=True)
    async with idp.http_client() as http:
        refused(await service_token(http, key.proof("GET", TOKEN_URL)))


# -- authorization code and refresh (§5, §10) -----------------------------------------------


async def sign_in(http: httpx.AsyncClient, client_id: str, **extra: str) -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    params = {"client_id": client_id, "redirect_uri": CALLBACK, "response_type": "code",
              "scope": "openid offline_access", "code_challenge_method": "S256",
              "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
              "login": "alice", **extra}  # fmt: skip
    reply = await http.post(f"{ISSUER}/authorize", data=params)
    query = {k: v[0] for k, v in parse_qs(urlsplit(reply.headers["location"]).query).items()}
    return query.get("code", ""), verifier if "code" in query else query["error"]


async def token_request(
    http: httpx.AsyncClient, client_id: str, form: dict[str, str], proof: str | None
) -> httpx.Response:
    form = {**form, "client_id": client_id}
    if client_id == "web":
        form["client_secret"] = "web-secret"
    return await http.post(TOKEN_URL, data=form, headers={"DPoP": proof} if proof else {})


async def redeem(
    http: httpx.AsyncClient, client_id: str, code: str, verifier: str, proof: str | None
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
            "code_verifier": verifier}  # fmt: skip
    return await token_request(http, client_id, form, proof)


async def refresh(
    http: httpx.AsyncClient, client_id: str, token: str, proof: str | None
) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token}
    return await token_request(http, client_id, form, proof)


async def signed_in(http: httpx.AsyncClient, client_id: str, key: DPoPClient) -> dict[str, Any]:
    """The token response of a sign-in whose code is redeemed with a proof of ``key``."""
    code, verifier = await sign_in(http, client_id)
    reply = await redeem(http, client_id, code, verifier, key.proof("POST", TOKEN_URL))
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": key.jkt}
    return body


async def test_a_public_clients_refresh_token_is_bound_to_its_key(
    http: httpx.AsyncClient, key: DPoPClient, clock: FakeClock
) -> None:
    rt = (await signed_in(http, "spa", key))["refresh_token"]
    thief = DPoPClient(clock=clock)
    assert "bound" in refused(await refresh(http, "spa", rt, thief.proof("POST", TOKEN_URL)))
    rt = (await signed_in(http, "spa", key))["refresh_token"]
    assert "requires DPoP" in refused(await refresh(http, "spa", rt, None))
    rt = (await signed_in(http, "spa", key))["refresh_token"]
    again = await refresh(http, "spa", rt, key.proof("POST", TOKEN_URL))
    assert again.status_code == 200, again.text
    assert claims_of(again.json()["access_token"])["cnf"] == {"jkt": key.jkt}
    assert claims_of(again.json()["id_token"])["sub"] == "alice"


async def test_a_confidential_clients_refresh_token_is_not_bound(
    http: httpx.AsyncClient, key: DPoPClient, clock: FakeClock
) -> None:
    first = await signed_in(http, "web", key)
    plain = await refresh(http, "web", first["refresh_token"], None)
    assert plain.json()["token_type"] == "Bearer"
    other = DPoPClient(clock=clock)  # a new key for the next access token is fine (§5)
    proof = other.proof("POST", TOKEN_URL)
    rebound = await refresh(http, "web", plain.json()["refresh_token"], proof)
    assert claims_of(rebound.json()["access_token"])["cnf"] == {"jkt": other.jkt}


async def test_dpop_jkt_at_authorize_binds_the_code_to_that_key(
    http: httpx.AsyncClient, key: DPoPClient, clock: FakeClock
) -> None:
    code, verifier = await sign_in(http, "spa", dpop_jkt=key.jkt)
    other = DPoPClient(clock=clock)
    wrong_key = await redeem(http, "spa", code, verifier, other.proof("POST", TOKEN_URL))
    assert "dpop_jkt" in refused(wrong_key)
    code, verifier = await sign_in(http, "spa", dpop_jkt=key.jkt)
    assert "requires DPoP" in refused(await redeem(http, "spa", code, verifier, None))
    code, verifier = await sign_in(http, "spa", dpop_jkt=key.jkt)
    ok = await redeem(http, "spa", code, verifier, key.proof("POST", TOKEN_URL))
    assert claims_of(ok.json()["access_token"])["cnf"] == {"jkt": key.jkt}


@pytest.mark.parametrize("jkt", ["", "short", "x" * 44, "a b" * 15, "é" * 43])
async def test_a_malformed_dpop_jkt_is_refused_at_authorize(
    http: httpx.AsyncClient, jkt: str
) -> None:
    _, error = await sign_in(http, "spa", dpop_jkt=jkt)
    assert error == "invalid_request"


# -- configuration ---------------------------------------------------------------------------


def test_dpop_bound_is_a_client_setting_in_the_config_file() -> None:
    import msgspec

    raw = b'{"client_id": "job", "client_secret": "s", "grant_types": ["client_credentials"],'
    client = msgspec.json.decode(raw + b' "dpop_bound": true}', type=DevClient)
    assert client.dpop_bound
    assert not DevClient(client_id="x").dpop_bound
