"""The token and userinfo calls with a DPoP key, against scripted endpoints (RFC 9449 §5, §7-§9).

Every proof sent is checked as a server would: its signature by its own ``jwk``,
``htm``/``htu``, and for userinfo the resource server's own checker with ``ath``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from asgi_sso.config import Limits
from asgi_sso.errors import ServiceUnavailable
from asgi_sso.login.client_auth import ClientAuth
from asgi_sso.login.dpop import DPoPKey
from asgi_sso.login.oidc import ProviderError, TokenRefused, fetch_userinfo, token_request
from asgi_sso.testing import FakeClock
from asgi_sso.verify.dpop import DPoPChecker

TOKEN_URL = "https://idp.example/token"
USERINFO_URL = "https://idp.example/userinfo"
Answer = Callable[[httpx.Request], httpx.Response]
TOKENS = {"access_token": "at-1", "token_type": "DPoP", "id_token": "id", "expires_in": 300}
NONCE_PLEASE = {"error": "use_dpop_nonce", "error_description": "the server requires a nonce"}


class Endpoint:
    """Answers each request with the next scripted answer and keeps the requests."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self._handle))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request)

    def claims(self, index: int) -> dict[str, Any]:
        """The claims of request ``index``'s proof, once its signature verified."""
        proof = self.requests[index].headers["dpop"]
        header = dict(jws.extract_compact(proof.encode()).headers())
        assert header["typ"] == "dpop+jwt"
        assert "d" not in header["jwk"]
        key = ECKey.import_key(header["jwk"])
        payload = jws.deserialize_compact(proof, key, algorithms=["ES256"]).payload
        claims: dict[str, Any] = json.loads(payload)
        return claims


def reply(status: int, body: Any, **headers: str) -> Answer:
    return lambda _request: httpx.Response(status, json=body, headers=headers)


async def tokens_from(endpoint: Endpoint, key: DPoPKey | None, **auth: Any) -> Any:
    client = ClientAuth(client_id="web", method=auth.pop("method", "none"), **auth)
    form = {"grant_type": "authorization_code", "code": "c0de"}
    return await token_request(
        endpoint.http, TOKEN_URL, form, client, deadline=5.0, max_bytes=65536, dpop=key
    )


async def test_the_token_request_carries_a_proof_of_the_key(key: DPoPKey) -> None:
    endpoint = Endpoint(reply(200, TOKENS))
    tokens = await tokens_from(endpoint, key)
    assert tokens.dpop_bound
    assert len(endpoint.requests) == 1
    claims = endpoint.claims(0)
    assert (claims["htm"], claims["htu"]) == ("POST", TOKEN_URL)
    assert "ath" not in claims
    assert "nonce" not in claims


async def test_without_a_key_the_request_is_as_before(key: DPoPKey) -> None:
    endpoint = Endpoint(reply(200, {**TOKENS, "token_type": "Bearer"}))
    tokens = await tokens_from(endpoint, None)
    assert "dpop" not in endpoint.requests[0].headers
    assert not tokens.dpop_bound


async def test_a_bearer_answer_to_a_proof_is_a_bearer_token(key: DPoPKey) -> None:
    # RFC 9449 §5: a server may ignore the proof; the token is then used as a bearer one.
    endpoint = Endpoint(reply(200, {**TOKENS, "token_type": "Bearer"}))
    tokens = await tokens_from(endpoint, key)
    assert not tokens.dpop_bound
    assert tokens.access_token == "at-1"


@pytest.mark.parametrize("token_type", ["DPoP", "dpop", "DPOP"])
async def test_token_type_is_read_without_regard_to_case(key: DPoPKey, token_type: str) -> None:
    endpoint = Endpoint(reply(200, {**TOKENS, "token_type": token_type}))
    assert (await tokens_from(endpoint, key)).dpop_bound


async def test_a_dpop_token_for_a_request_without_proof_is_refused() -> None:
    endpoint = Endpoint(reply(200, TOKENS))
    with pytest.raises(ProviderError, match="DPoP key never proved"):
        await tokens_from(endpoint, None)


async def test_use_dpop_nonce_is_answered_once_with_the_nonce(key: DPoPKey) -> None:
    endpoint = Endpoint(reply(400, NONCE_PLEASE, **{"DPoP-Nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"}),
                        reply(200, TOKENS))  # fmt: skip
    secret = b"s3cret"
    tokens = await tokens_from(endpoint, key, method="client_secret_post", secret=secret)
    assert tokens.dpop_bound
    assert len(endpoint.requests) == 2
    first, second = endpoint.claims(0), endpoint.claims(1)
    assert "nonce" not in first
    assert second["nonce"] == "eyJ7S_zG.eyJH0-Z.HX4w-7v"
    assert second["jti"] != first["jti"]
    # The retry is a whole request again: the same grant and the client's credentials.
    form = dict(httpx.QueryParams(endpoint.requests[1].content.decode()))
    assert form == {"grant_type": "authorization_code", "code": "c0de", "client_id": "web",
                    "client_secret": "s3cret"}  # fmt: skip


async def test_a_second_use_dpop_nonce_is_not_followed(key: DPoPKey) -> None:
    endpoint = Endpoint(reply(400, NONCE_PLEASE, **{"DPoP-Nonce": "n1"}))
    with pytest.raises(ProviderError, match="nonce twice"):
        await tokens_from(endpoint, key)
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(
    "headers",
    [{}, {"DPoP-Nonce": "has space"}, {"DPoP-Nonce": "n" * 513}, {"DPoP-Nonce": 'a"b'}],
    ids=["missing", "space", "long", "quote"],
)
async def test_use_dpop_nonce_without_a_usable_nonce_is_not_retried(
    key: DPoPKey, headers: dict[str, str]
) -> None:
    endpoint = Endpoint(reply(400, NONCE_PLEASE, **headers))
    with pytest.raises(ProviderError, match="without a usable one"):
        await tokens_from(endpoint, key)
    assert len(endpoint.requests) == 1


async def test_use_dpop_nonce_to_a_request_without_proof_is_a_refusal() -> None:
    endpoint = Endpoint(reply(400, NONCE_PLEASE, **{"DPoP-Nonce": "n1"}))
    with pytest.raises(TokenRefused) as refused:
        await tokens_from(endpoint, None)
    assert refused.value.code == "use_dpop_nonce"
    assert len(endpoint.requests) == 1


async def test_other_refusals_are_not_retried(key: DPoPKey) -> None:
    endpoint = Endpoint(reply(400, {"error": "invalid_dpop_proof"}, **{"DPoP-Nonce": "n1"}))
    with pytest.raises(TokenRefused) as refused:
        await tokens_from(endpoint, key)
    assert refused.value.code == "invalid_dpop_proof"
    assert len(endpoint.requests) == 1


async def test_a_retry_that_fails_to_connect_is_unavailable(key: DPoPKey) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    endpoint = Endpoint(reply(400, NONCE_PLEASE, **{"DPoP-Nonce": "n1"}), down)
    with pytest.raises(ServiceUnavailable):
        await tokens_from(endpoint, key)
    assert len(endpoint.requests) == 2


# -- userinfo ---------------------------------------------------------------------------


async def userinfo_from(endpoint: Endpoint, key: DPoPKey | None) -> dict[str, Any]:
    return await fetch_userinfo(
        endpoint.http, USERINFO_URL, "at-1", deadline=5.0, max_bytes=65536, dpop=key
    )


async def test_userinfo_presents_a_bound_token_with_the_dpop_scheme_and_a_proof(
    key: DPoPKey, clock: FakeClock
) -> None:
    endpoint = Endpoint(reply(200, {"sub": "alice"}))
    assert await userinfo_from(endpoint, key) == {"sub": "alice"}
    request = endpoint.requests[0]
    assert request.headers["authorization"] == "DPoP at-1"
    checker = DPoPChecker(Limits(), clock)
    await checker.check(
        request.headers["dpop"], method="GET", url=USERINFO_URL, token="at-1", jkt=key.jkt
    )


async def test_userinfo_without_a_key_sends_a_bearer_token() -> None:
    endpoint = Endpoint(reply(200, {"sub": "alice"}))
    await userinfo_from(endpoint, None)
    assert endpoint.requests[0].headers["authorization"] == "Bearer at-1"
    assert "dpop" not in endpoint.requests[0].headers


CHALLENGE = 'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce"'


@pytest.mark.parametrize(
    "challenge",
    [CHALLENGE, 'Bearer realm="x", ' + CHALLENGE, 'dpop algs="ES256", error="use_dpop_nonce"'],
)
async def test_userinfo_answers_a_nonce_challenge_once(key: DPoPKey, challenge: str) -> None:
    asked = {"WWW-Authenticate": challenge, "DPoP-Nonce": "rs-nonce"}
    endpoint = Endpoint(reply(401, None, **asked), reply(200, {"sub": "alice"}))
    assert await userinfo_from(endpoint, key) == {"sub": "alice"}
    assert len(endpoint.requests) == 2
    assert endpoint.claims(1)["nonce"] == "rs-nonce"


async def test_userinfo_does_not_follow_a_second_nonce_challenge(key: DPoPKey) -> None:
    asked = {"WWW-Authenticate": CHALLENGE, "DPoP-Nonce": "rs-nonce"}
    endpoint = Endpoint(reply(401, None, **asked))
    with pytest.raises(ProviderError, match="nonce twice"):
        await userinfo_from(endpoint, key)
    assert len(endpoint.requests) == 2


@pytest.mark.parametrize(
    "challenge",
    ['DPoP error="invalid_token"', 'Bearer error="invalid_token"', 'Bearer error="use_dpop_nonce"'],
)
async def test_userinfo_other_401s_are_not_retried(key: DPoPKey, challenge: str) -> None:
    endpoint = Endpoint(reply(401, None, **{"WWW-Authenticate": challenge, "DPoP-Nonce": "n"}))
    with pytest.raises(ProviderError, match="answered 401"):
        await userinfo_from(endpoint, key)
    assert len(endpoint.requests) == 1
