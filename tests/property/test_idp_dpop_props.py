"""Hostile DPoP proofs at the dev IdP's token endpoint: always 400 invalid_dpop_proof.

Never a 500 and never a token: RFC 9449 §5 has the authorization server check a token
request's proof as a resource server does, less the ``ath`` (there is no token yet).
"""

from __future__ import annotations

import asyncio
import json

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi_sso.testing import DevClient, DevIdP, DPoPClient, FakeClock
from asgi_sso.testing.strategies import hostile_dpop_proofs

CLOCK = FakeClock()
IDP = DevIdP(
    "http://idp.test",
    clients=[DevClient(client_id="svc", client_secret="s", grant_types=("client_credentials",))],
    clock=CLOCK,
)
CLIENT = DPoPClient(clock=CLOCK)
TOKEN_URL = IDP.url("/token")
LOOP = asyncio.new_event_loop()


async def _ask(proof: bytes) -> httpx.Response:
    async with IDP.http_client() as http:
        return await http.post(
            TOKEN_URL,
            data={"grant_type": "client_credentials"},
            auth=("svc", "s"),
            headers={"DPoP": proof},
        )


def answer(proof: str) -> tuple[int, dict[str, object]]:
    reply = LOOP.run_until_complete(_ask(proof.encode("utf-8", "surrogatepass")))
    return reply.status_code, json.loads(reply.content)


@settings(max_examples=150, deadline=None)
@given(hostile_dpop_proofs(CLIENT, "POST", TOKEN_URL, None))
def test_hostile_proofs_get_a_400_invalid_dpop_proof(proof: str) -> None:
    status, body = answer(proof)
    assert (status, body["error"]) == (400, "invalid_dpop_proof")
    assert "access_token" not in body


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=200).filter(lambda b: b"\r" not in b and b"\n" not in b))
def test_header_bytes_never_make_a_500(raw: bytes) -> None:
    status, body = answer(raw.decode("latin-1"))
    assert status == 400
    assert body["error"] == "invalid_dpop_proof"


def test_a_valid_proof_gets_a_token() -> None:
    # The properties above would hold for an endpoint refusing everything.
    status, body = answer(CLIENT.proof("POST", TOKEN_URL))
    assert (status, body["token_type"]) == (200, "DPoP")
