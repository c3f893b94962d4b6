"""Whatever arrives in a header or cookie, the middleware answers 2xx/4xx/503 — never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asgi_sso import SSOMiddleware
from asgi_sso.testing import DevIdP, DevUser

AUD = "api://props"
IDP = DevIdP("http://idp.test", users=[DevUser(sub="alice", email="a@acme.test")])
RESERVED = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat"})
VALID = IDP.issue_token("alice", audience=AUD, expires_in=10**8)


async def ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": scope["user"].identity.encode()})


def build() -> SSOMiddleware:
    return SSOMiddleware(
        ok,
        [IDP.issuer_config(audience=AUD)],
        http_client=IDP.http_client(),
        cookie_names=["access_token"],
        allow_query_token=True,
    )


APP = build()
LOOP = asyncio.new_event_loop()


def call(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/x",
        "headers": headers,
        "query_string": query,
        "client": ("127.0.0.1", 1),
    }
    LOOP.run_until_complete(APP(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_the_valid_token_is_accepted() -> None:
    status, body = call([(b"authorization", b"Bearer " + VALID.encode())])
    assert (status, body) == (200, b"alice")


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.characters(codec="ascii"))
def test_any_single_character_mutation_of_a_valid_token_is_refused(pos: int, ch: str) -> None:
    mutated = VALID[:pos] + ch + VALID[pos + 1 :]
    status, _ = call([(b"authorization", b"Bearer " + mutated.encode())])
    if mutated == VALID:
        assert status == 200
    else:
        assert status in (400, 401), (pos, ch)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.binary(max_size=400), st.binary(max_size=200))
@example(b"Bearer \xff\xfe", b"access_token=\x00", b"access_token=a.b.c&access_token=")
@example(b"Bearer " + b"e" * 17_000, b"", b"")
def test_arbitrary_bytes_in_header_cookie_or_query_never_give_a_500(
    authorization: bytes, cookie: bytes, query: bytes
) -> None:
    status, body = call([(b"authorization", authorization), (b"cookie", cookie)], query)
    assert status in (200, 400, 401), status
    if status != 200:
        assert b"error" in body


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=12).filter(
            # Registered claims and the scope claims have types of their own (a
            # non-string "scope" is refused); the rest may hold any JSON.
            lambda k: k not in {"iss", "sub", "aud", "exp", "nbf", "iat", "scope", "scp"}
        ),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=5), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_valid_tokens_with_arbitrary_claims_round_trip_into_the_principal(
    extra: dict[str, Any],
) -> None:
    seen: dict[str, Any] = {}

    async def capture(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope["user"].claims)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = SSOMiddleware(
        capture, [IDP.issuer_config(audience=AUD)], http_client=IDP.http_client(), prefetch=False
    )
    token = IDP.issue_token("alice", audience=AUD, claims=extra)

    async def run() -> int:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            r = await client.get("/", headers={"Authorization": f"Bearer {token}"})
            return r.status_code

    assert LOOP.run_until_complete(run()) == 204
    for key, value in extra.items():
        if value is not None:
            assert seen[key] == value
