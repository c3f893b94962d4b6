"""Properties of the sign-in's DPoP client: proofs any server accepts, nonces never trusted blindly.

Whatever a provider answers (status, ``WWW-Authenticate``, ``DPoP-Nonce``, body),
a userinfo or token call with a DPoP key sends at most two requests and ends in
claims, tokens or an :class:`~asgi_sso.errors.AuthError`; a nonce is echoed only
when it is well formed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.config import Limits
from asgi_sso.errors import AuthError
from asgi_sso.login.client_auth import ClientAuth
from asgi_sso.login.dpop import MAX_NONCE, DPoPKey, clean_nonce
from asgi_sso.login.oidc import fetch_userinfo, token_request
from asgi_sso.testing import FakeClock
from asgi_sso.verify.dpop import DPoPChecker, normalize_htu

CLOCK = FakeClock()
KEY = DPoPKey.generate(CLOCK)
NQCHAR = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='"\\')

hosts = st.sampled_from(["idp.example", "127.0.0.1", "[::1]", "login.example.com:8443"])
paths = st.lists(st.text(st.sampled_from("abcXYZ09-._~%20"), max_size=8), max_size=4)
queries = st.text(st.sampled_from("a=1&b%?/#"), max_size=12)


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http"]))
    path = "/" + "/".join(draw(paths))
    query = draw(queries)
    fragment = draw(st.sampled_from(["", "#frag"]))
    return f"{scheme}://{draw(hosts)}{path}" + (f"?{query}" if query else "") + fragment


@given(urls(), st.sampled_from(["GET", "POST"]), st.text(NQCHAR, max_size=20))
def test_every_proof_passes_the_resource_server_checks(url: str, method: str, token: str) -> None:
    token = token or "t"
    proof = KEY.proof(method, url, access_token=token)
    payload = json.loads(_segment(proof, 1))
    assert "?" not in payload["htu"]
    assert "#" not in payload["htu"]
    checker = DPoPChecker(Limits(), CLOCK)
    checked = asyncio.run(checker.check(proof, method=method, url=url, token=token, jkt=KEY.jkt))
    assert checked.thumbprint == KEY.jkt
    assert normalize_htu(payload["htu"]) == normalize_htu(url)


def _segment(jwt: str, index: int) -> bytes:
    part = jwt.split(".")[index]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@given(st.text(NQCHAR, min_size=1, max_size=MAX_NONCE))
def test_every_well_formed_nonce_is_kept(nonce: str) -> None:
    assert clean_nonce(nonce) == nonce


@given(st.text(max_size=MAX_NONCE + 20))
@example("a b")
@example("x" * (MAX_NONCE + 1))
@example("n\r\nset-cookie: a=b")
def test_a_kept_nonce_is_printable_ascii_and_bounded(value: str) -> None:
    kept = clean_nonce(value)
    if kept is not None:
        assert kept == value
        assert 1 <= len(kept) <= MAX_NONCE
        assert all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in kept)


headers = st.dictionaries(
    st.sampled_from(["WWW-Authenticate", "DPoP-Nonce", "Content-Type"]),
    st.one_of(
        st.sampled_from(['DPoP error="use_dpop_nonce"', "Bearer", "n-1", "application/json"]),
        st.text(st.characters(codec="latin-1", exclude_categories=("Cc",)), max_size=40),
    ),
)
bodies = st.one_of(
    st.just({"error": "use_dpop_nonce"}),
    st.just({"sub": "alice"}),
    st.just({"access_token": "a", "token_type": "DPoP"}),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8) | st.integers(), max_size=3),
    st.none(),
)
answers = st.lists(
    st.tuples(st.sampled_from([200, 400, 401, 403, 500]), headers, bodies), min_size=1, max_size=3
)


def _run(answers: list[tuple[int, dict[str, str], Any]], call: str) -> int:
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        status, head, body = answers[min(len(sent), len(answers)) - 1]
        content = b"" if body is None else json.dumps(body).encode()
        raw = [(name.encode(), value.encode("latin-1")) for name, value in head.items()]
        return httpx.Response(status, headers=raw, content=content)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handle)) as http:
            if call == "userinfo":
                await fetch_userinfo(http, "https://idp.example/userinfo", "at", deadline=5,
                                     max_bytes=4096, dpop=KEY)  # fmt: skip
            else:
                auth = ClientAuth(client_id="web", method="none")
                await token_request(http, "https://idp.example/token", {"grant_type": "x"},
                                    auth, deadline=5, max_bytes=4096, dpop=KEY)  # fmt: skip

    with contextlib.suppress(AuthError):  # any other exception fails the property
        asyncio.run(go())
    for request in sent[1:]:  # a retry echoes only a clean nonce
        claims = json.loads(_segment(request.headers["dpop"], 1))
        assert clean_nonce(claims["nonce"]) == claims["nonce"]
    return len(sent)


NONCE_AGAIN = (400, {"DPoP-Nonce": "n-1"}, {"error": "use_dpop_nonce"})
CHALLENGE = {"WWW-Authenticate": 'DPoP error="use_dpop_nonce"', "DPoP-Nonce": "n"}
CHALLENGE_AGAIN = (401, CHALLENGE, None)


@given(answers, st.sampled_from(["userinfo", "token"]))
@example([NONCE_AGAIN], "token")
@example([CHALLENGE_AGAIN], "userinfo")
@example([(400, {"DPoP-Nonce": "a b"}, {"error": "use_dpop_nonce"})], "token")
def test_any_answer_ends_in_at_most_two_requests(
    answers: list[tuple[int, dict[str, str], Any]], call: str
) -> None:
    assert 1 <= _run(answers, call) <= 2
