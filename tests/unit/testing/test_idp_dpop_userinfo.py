"""The dev IdP's userinfo endpoint takes DPoP-bound access tokens (RFC 9449 §7.1, §9).

A sign-in proving a key gets a bound access token; its userinfo call must then
present it with the ``DPoP`` scheme and a proof of that key, as a protected
resource would demand.
"""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.testing import DevClient, DevIdP, DevUser, DPoPClient, FakeClock

ISSUER = "http://idp.test"
USERINFO = f"{ISSUER}/userinfo"
CLIENTS = [DevClient(client_id="svc", client_secret="svc-secret",
                     grant_types=("client_credentials",), scopes=("openid",))]  # fmt: skip


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> DevIdP:
    return DevIdP(ISSUER, users=[DevUser(sub="svc")], clients=CLIENTS, clock=clock)


@pytest.fixture
def key(clock: FakeClock) -> DPoPClient:
    return DPoPClient(clock=clock)


@pytest.fixture
async def http(idp: DevIdP) -> Any:
    async with idp.http_client() as client:
        yield client


async def token_for(http: Any, key: DPoPClient | None, nonce: str | None = None) -> str:
    claims = None if nonce is None else {"nonce": nonce}
    headers = {} if key is None else {"DPoP": key.proof("POST", f"{ISSUER}/token", claims=claims)}
    form = {"grant_type": "client_credentials", "scope": "openid"}
    answer = await http.post(f"{ISSUER}/token", data=form, auth=("svc", "svc-secret"),
                             headers=headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


async def test_a_bound_token_with_its_proof_gets_the_claims(http: Any, key: DPoPClient) -> None:
    token = await token_for(http, key)
    headers = {k.decode(): v.decode() for k, v in key.headers(token, "GET", USERINFO)}
    answer = await http.get(USERINFO, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["sub"] == "svc"


async def test_a_bound_token_sent_as_bearer_is_refused(http: Any, key: DPoPClient) -> None:
    token = await token_for(http, key)
    answer = await http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


@pytest.mark.parametrize("defect", ["none", "other-key", "replayed", "no-ath", "two"])
async def test_a_bound_token_without_a_good_proof_is_refused(
    http: Any, key: DPoPClient, clock: FakeClock, defect: str
) -> None:
    token = await token_for(http, key)
    proofs = {
        "none": [],
        "other-key": [DPoPClient(clock=clock).proof("GET", USERINFO, token)],
        "no-ath": [key.proof("GET", USERINFO)],
        "two": [key.proof("GET", USERINFO, token)] * 2,
    }
    if defect == "replayed":
        proof = key.proof("GET", USERINFO, token)
        first = await http.get(USERINFO, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
        assert first.status_code == 200
        proofs["replayed"] = [proof]
    headers = [("Authorization", f"DPoP {token}"), *(("DPoP", p) for p in proofs[defect])]
    answer = await http.get(USERINFO, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("DPoP ")
    assert answer.json()["error"] in ("invalid_dpop_proof", "invalid_token")


@pytest.mark.parametrize(
    "jwk", [{"kty": "\u2603"}, {"kty": 'a"b'}, {"kty": "EC", "crv": "\u2603", "x": "AA", "y": "AA"}]
)
async def test_a_proof_key_with_odd_text_is_refused_in_a_well_formed_challenge(
    http: Any, key: DPoPClient, jwk: dict[str, str]
) -> None:
    # The refusal names what is wrong with the key; its text must not break the header.
    token = await token_for(http, key)
    proof = key.proof("GET", USERINFO, token, headers={"jwk": jwk})
    answer = await http.get(USERINFO, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    assert answer.status_code == 401
    challenge = answer.headers["www-authenticate"]
    assert challenge.isascii()
    assert challenge.count('"') == 6  # error, error_description, algs: each quoted once
    assert answer.json()["error"] == "invalid_dpop_proof"


async def test_an_unbound_token_sent_as_dpop_is_refused(http: Any, key: DPoPClient) -> None:
    token = await token_for(http, None)
    headers = {k.decode(): v.decode() for k, v in key.headers(token, "GET", USERINFO)}
    answer = await http.get(USERINFO, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_token"


async def test_an_unbound_bearer_token_still_works(http: Any) -> None:
    token = await token_for(http, None)
    answer = await http.get(USERINFO, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200


async def test_with_server_nonces_a_proof_must_carry_the_current_one(
    clock: FakeClock, key: DPoPClient
) -> None:
    idp = DevIdP(ISSUER, users=[DevUser(sub="svc")], clients=CLIENTS, clock=clock,
                 dpop_nonce=True)  # fmt: skip
    async with idp.http_client() as http:
        nonce = idp.dpop_nonce
        assert nonce is not None
        token = await token_for(http, key, nonce)
        plain = key.proof("GET", USERINFO, token)
        answer = await http.get(USERINFO, headers={"Authorization": f"DPoP {token}", "DPoP": plain})
        assert answer.status_code == 401
        assert 'error="use_dpop_nonce"' in answer.headers["www-authenticate"]
        assert answer.headers["dpop-nonce"] == nonce
        proof = key.proof("GET", USERINFO, token, claims={"nonce": nonce})
        answer = await http.get(USERINFO, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
        assert answer.status_code == 200
