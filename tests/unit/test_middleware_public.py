"""Public paths know who is signed in, and never refuse (bearer and cookie JWTs).

Like Starlette's ``AuthenticationMiddleware``: a valid credential on a public path
puts its principal in the scope; none, or any that fails (invalid, expired, an
outage, a cross-site cookie request), leaves the request anonymous with a 200.
Browser sessions on public paths are tested in tests/integration/test_public_pages.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from asgi_sso import (
    CredentialSources,
    IdentityConfig,
    Limits,
    MemoryUserStore,
    PathRules,
    Revocation,
    SSOMiddleware,
    StoreUnavailable,
)
from asgi_sso.identity.stores.base import Profile, StoredUser
from asgi_sso.observe.events import Event
from asgi_sso.testing import DevIdP, DevUser

AUD = "api://test"
PUBLIC = PathRules(public=["/", "/about"])
EVIL = "https://evil.example"


async def landing(request: Request) -> HTMLResponse:
    user = request.user
    if user.is_authenticated:
        greeting = f"Signed in as {user.display_name} ({user.connection}, {user.source})"
    else:
        greeting = "Sign in"
    scopes = " ".join(sorted(request.auth.scopes))
    return HTMLResponse(f"<p id=who>{greeting}</p><p id=scopes>{scopes}</p>")


inner = Starlette(routes=[Route("/{path:path}", landing, methods=["GET", "POST"])])


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP(
        "http://idp.test",
        users=[DevUser(sub="alice", email="alice@acme.test", name="Alice Smith")],
    )


@pytest.fixture
async def idp_http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = idp.http_client()
    yield client
    await client.aclose()


def sso(idp: DevIdP, http: httpx.AsyncClient, **kw: Any) -> SSOMiddleware:
    kw.setdefault("paths", PUBLIC)
    return SSOMiddleware(inner, [idp.issuer_config(audience=AUD)], http_client=http, **kw)


async def get(app: Any, path: str = "/", *, method: str = "GET", **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def anonymous(response: httpx.Response) -> bool:
    return response.status_code == 200 and "<p id=who>Sign in</p>" in response.text


async def test_a_public_page_greets_the_bearer_user_and_sees_their_scopes(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD, scopes=["read", "write"])
    app = sso(idp, idp_http)
    signed_in = await get(app, **bearer(token))
    assert signed_in.status_code == 200
    assert f"Signed in as Alice Smith ({idp.issuer}, header)" in signed_in.text
    assert "<p id=scopes>read write</p>" in signed_in.text
    assert anonymous(await get(app))


@pytest.mark.parametrize(
    "variant",
    [
        "expired",
        "not_yet_valid",
        "wrong_audience",
        "wrong_issuer",
        "tampered",
        "tampered_payload",
        "unknown_kid",
        "alg_none",
        "hs256_with_public_key",
    ],
)
async def test_a_bad_bearer_token_on_a_public_path_is_anonymous_not_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient, variant: str
) -> None:
    factory = idp.tokens
    factory.audience = AUD
    token = getattr(factory, variant)(sub="alice")
    app = sso(idp, idp_http)
    response = await get(app, **bearer(token))
    assert anonymous(response), response.text
    assert "www-authenticate" not in response.headers
    assert (await get(app, "/private", **bearer(token))).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [
        [("authorization", "Bearer not-a-jwt")],
        [("authorization", "Bearer " + "a" * 70_000)],
        [("authorization", "Basic YWxpY2U6c2VjcmV0")],
        [("authorization", "Bearer a.b.c"), ("authorization", "Bearer a.b.c")],
    ],
    ids=["junk", "oversized", "other-scheme", "two-headers"],
)
async def test_malformed_credentials_on_a_public_path_are_anonymous(
    idp: DevIdP, idp_http: httpx.AsyncClient, headers: list[tuple[str, str]]
) -> None:
    app = sso(idp, idp_http)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        response = await client.get("/", headers=headers)
        assert anonymous(response), response.text
        assert (await client.get("/private", headers=headers)).status_code in (400, 401)


async def test_an_idp_outage_leaves_public_pages_anonymous_and_bounded(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # Cold keys are fetched for a public page too (a first visitor after a restart is
    # greeted), under the same deadline and cooldown as everywhere: one wait of at
    # most fetch_timeout, then answers from the cooldown without waiting again.
    events: list[Event] = []
    token = idp.issue_token("alice", audience=AUD)
    app = sso(
        idp,
        idp_http,
        limits=Limits(fetch_timeout=0.5),
        prefetch=False,
        event_sinks=[events.append],
    )
    started = time.monotonic()
    with idp.slow_jwks(5.0):
        first = await get(app, **bearer(token))
        second = await get(app, **bearer(token))
    assert time.monotonic() - started < 3.0
    assert anonymous(first)
    assert anonymous(second)
    assert len([e for e in events if e.name == "jwks.fetch"]) == 1
    assert (await get(app, "/private", **bearer(token))).status_code == 503  # still cooling


async def test_random_kids_on_a_public_path_cost_the_idp_one_fetch_per_cooldown(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    events: list[Event] = []
    app = sso(idp, idp_http, event_sinks=[events.append], prefetch=False)
    assert "Signed in as" in (await get(app, **bearer(idp.issue_token("alice", audience=AUD)))).text
    factory = idp.tokens
    factory.audience = AUD
    for _ in range(10):  # each signed by a fresh key with a random kid
        assert anonymous(await get(app, **bearer(factory.unknown_kid(sub="alice"))))
    # The first fetch warmed the keys; the random kids add one forced refetch at most.
    assert len([e for e in events if e.name == "jwks.fetch"]) <= 2


async def test_a_cross_site_post_with_a_cookie_jwt_runs_anonymous_on_a_public_path(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # The origin check comes before the cookie's principal is attached: a page on
    # another site must not make a public form handler act as the user.
    app = sso(idp, idp_http, sources=CredentialSources(cookie_names=["access_token"]))
    cookie = {"cookie": "access_token=" + idp.issue_token("alice", audience=AUD)}
    forged = await get(app, method="POST", origin=EVIL, **cookie)
    assert anonymous(forged)
    assert anonymous(await get(app, method="POST", **cookie))  # no origin at all
    own = await get(app, method="POST", origin="http://testserver", **cookie)
    assert "Signed in as Alice Smith" in own.text
    assert "Signed in as" in (await get(app, origin=EVIL, **cookie)).text  # safe method
    assert (await get(app, "/private", method="POST", origin=EVIL, **cookie)).status_code == 403


class _FailingStore(MemoryUserStore):
    """A user store that is down: on start, or on every look-up."""

    def __init__(self, *, at_start: bool) -> None:
        super().__init__()
        self.at_start = at_start
        self.down = True

    async def start(self) -> None:
        if self.at_start and self.down:
            raise StoreUnavailable("the user store is down")

    async def get_or_provision(
        self, connection: str, subject: str, profile: Profile
    ) -> tuple[StoredUser, bool]:
        if self.down:
            raise StoreUnavailable("the user store is down")
        return await super().get_or_provision(connection, subject, profile)


@pytest.mark.parametrize("at_start", [True, False], ids=["start-up", "look-up"])
async def test_a_user_store_outage_leaves_public_pages_anonymous(
    idp: DevIdP, idp_http: httpx.AsyncClient, at_start: bool
) -> None:
    store = _FailingStore(at_start=at_start)
    app = sso(idp, idp_http, identity=IdentityConfig(user_store=store), prefetch=False)
    token = idp.issue_token("alice", audience=AUD)
    assert anonymous(await get(app, **bearer(token)))
    assert anonymous(await get(app))
    assert (await get(app, "/private", **bearer(token))).status_code == 503
    store.down = False
    assert "Signed in as Alice Smith" in (await get(app, **bearer(token))).text


async def test_a_deactivated_or_revoked_user_is_anonymous_on_a_public_path(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    store = MemoryUserStore()
    app = sso(idp, idp_http, identity=IdentityConfig(user_store=store))
    token = idp.issue_token("alice", audience=AUD)
    assert "Signed in as" in (await get(app, **bearer(token))).text
    user = await store.get_by_subject(idp.issuer, "alice")
    assert user is not None
    await store.update(user.id, active=False)
    await app.revocations.publish(Revocation(kind="user", connection=idp.issuer, subject="alice"))
    assert anonymous(await get(app, **bearer(token)))
    assert (await get(app, "/private", **bearer(token))).status_code == 401


async def test_scope_rules_never_apply_on_a_public_path_but_the_app_sees_the_scopes(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    paths = PathRules(public=["/api/status"], scope_rules={"/api/*": ["admin"]})
    app = sso(idp, idp_http, paths=paths)
    token = idp.issue_token("alice", audience=AUD, scopes=["read"])
    status = await get(app, "/api/status", **bearer(token))
    assert "Signed in as Alice Smith" in status.text
    assert "<p id=scopes>read</p>" in status.text
    assert (await get(app, "/api/users", **bearer(token))).status_code == 403


async def test_a_public_websocket_with_a_bad_token_is_accepted_anonymously(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    seen: list[Any] = []

    async def ws_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"])
        await receive()
        await send({"type": "websocket.accept"})

    app = SSOMiddleware(
        ws_app, [idp.issuer_config(audience=AUD)], http_client=idp_http, paths=PUBLIC
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    for token in ("junk", idp.issue_token("alice", audience=AUD)):
        scope = {"type": "websocket", "scheme": "ws", "path": "/", "root_path": "",
                 "headers": [(b"host", b"testserver"), (b"authorization", b"Bearer " +
                             token.encode())], "query_string": b"", "subprotocols": []}  # fmt: skip
        await app(scope, receive, send)
    assert sent == [{"type": "websocket.accept"}] * 2
    assert [user.is_authenticated for user in seen] == [False, True]
