"""Whatever arrives in a header or cookie, the middleware answers 2xx/4xx/503 — never a 500."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import msgspec
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asgi_sso import CredentialSources, LoginConfig, Secret, SSOMiddleware
from asgi_sso.testing import DevIdP, DevUser
from asgi_sso.testing.tokens import mint

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
        sources=CredentialSources(cookie_names=["access_token"], allow_query_token=True),
    )


APP = build()
LOOP = asyncio.new_event_loop()


def call(
    headers: list[tuple[bytes, bytes]], query: bytes = b"", app: SSOMiddleware = APP
) -> tuple[int, bytes]:
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
    LOOP.run_until_complete(app(scope, receive, send))
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


# -- ID tokens of the sign-in client never open the API --------------------------------

CLIENT = "web"
AUDIENCE_CONFIGS: tuple[str | tuple[str, ...] | None, ...] = (CLIENT, (AUD, CLIENT), None, AUD)


def with_sign_in(audience: str | tuple[str, ...] | None) -> SSOMiddleware:
    return SSOMiddleware(
        ok,
        [IDP.issuer_config(audience=audience)],
        http_client=IDP.http_client(),
        login=LoginConfig(
            issuer=IDP.issuer,
            client_id=CLIENT,
            client_secret=Secret("web-secret"),
            cookie_secrets=(Secret(b"k" * 32),),
        ),
        prefetch=False,
    )


SIGN_IN_APPS = {audience: with_sign_in(audience) for audience in AUDIENCE_CONFIGS}
NAMES = st.text(st.characters(codec="utf-8", categories=("L", "N")), min_size=1, max_size=12)


@st.composite
def id_tokens(draw: st.DrawFn) -> tuple[str, frozenset[str]]:
    """ID tokens of the sign-in client as providers issue them (OIDC Core §2, §12.2),
    with their audiences."""
    now = int(IDP.clock.time())
    claims: dict[str, Any] = {
        "iss": IDP.issuer,
        "sub": draw(NAMES),
        "aud": draw(st.sampled_from([CLIENT, [CLIENT], [CLIENT, AUD], ["other", CLIENT]])),
        "iat": now - draw(st.integers(0, 300)),
        "exp": now + draw(st.integers(60, 3600)),
    }
    nonce = draw(st.none() | NAMES)  # none: an ID token from a refresh
    if nonce is not None:
        claims["nonce"] = nonce
    optional = {
        "azp": st.just(CLIENT),
        "auth_time": st.integers(0, 3600).map(lambda ago: now - ago),
        "sid": NAMES,
        "at_hash": NAMES,
        "email": NAMES.map(lambda n: n + "@acme.test"),
        "name": NAMES,
        "groups": st.lists(NAMES, max_size=3),
        "tid": NAMES,
    }
    for name, values in optional.items():
        if draw(st.booleans()):
            claims[name] = draw(values)
    typ = draw(st.sampled_from([None, "JWT", "jwt", "application/jwt"]))
    aud = claims["aud"]
    audiences = frozenset([aud] if isinstance(aud, str) else aud)
    return mint(claims, IDP.keys.current, headers={"typ": typ}), audiences


@settings(max_examples=120, deadline=None)
@given(audience=st.sampled_from(AUDIENCE_CONFIGS), id_token=id_tokens())
def test_an_id_token_of_the_sign_in_client_is_never_a_bearer_token(
    audience: str | tuple[str, ...] | None, id_token: tuple[str, frozenset[str]]
) -> None:
    token, token_audiences = id_token
    status, body = call(
        [(b"authorization", b"Bearer " + token.encode())], app=SIGN_IN_APPS[audience]
    )
    assert status == 401
    answer = msgspec.json.decode(body)
    assert answer["error"] == "invalid_token"
    accepted = {audience} if isinstance(audience, str) else set(audience or ())
    if accepted and accepted.isdisjoint(token_audiences):
        # The issuer's audience alone refuses it.
        assert "audience does not match" in answer["error_description"]
    else:
        assert answer["error_description"] == (
            "an ID token is not accepted as a bearer token; send an access token"
        )


@settings(max_examples=40, deadline=None)
@given(
    audience=st.sampled_from([CLIENT, (AUD, CLIENT), None]),
    grant=st.sampled_from(["at+jwt", "scp", "roles"]),
    sub=NAMES,
)
def test_access_tokens_for_the_client_id_still_open_the_api(
    audience: str | tuple[str, ...] | None, grant: str, sub: str
) -> None:
    # RFC 9068 typed tokens, and Entra-style tokens for an app's own API (aud = its
    # client id, typ JWT, a "nonce" only in the header, scp or roles).
    now = int(IDP.clock.time())
    claims: dict[str, Any] = {"iss": IDP.issuer, "sub": sub, "aud": CLIENT, "exp": now + 600}
    headers: dict[str, Any] = {"typ": "at+jwt"}
    if grant != "at+jwt":
        claims[grant] = "user.read" if grant == "scp" else ["Reports.Read"]
        headers = {"typ": "JWT", "nonce": "entra-header-nonce"}
    if grant == "roles":
        claims["azpacr"] = "1"  # app-only: the client authenticated (Entra v2)
    token = mint(claims, IDP.keys.current, headers=headers)
    status, body = call(
        [(b"authorization", b"Bearer " + token.encode())], app=SIGN_IN_APPS[audience]
    )
    assert (status, body) == (200, sub.encode())
