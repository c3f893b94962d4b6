from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import (
    Backends,
    ConfigurationError,
    CredentialSources,
    IdentityConfig,
    Issuer,
    Limits,
    LoginConfig,
    MemorySessionStore,
    MemoryUserStore,
    PathRules,
    PriorityTierMapper,
    ScimConfig,
    Secret,
    SSOMiddleware,
)
from asgi_sso.observe.events import Event
from asgi_sso.testing import DevClient, DevIdP, DevUser

AUD = "api://test"


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "authenticated": user.is_authenticated,
            "identity": user.identity,
            "tenant": getattr(user, "tenant", ""),
            "scopes": sorted(request.auth.scopes),
            "source": getattr(user, "source", ""),
        }
    )


@requires("write")
async def write(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


inner = Starlette(routes=[Route("/{path:path}", whoami), Route("/write", write)])
inner.router.routes.insert(0, Route("/write", write))


@pytest.fixture
def idp() -> DevIdP:
    return DevIdP(
        "http://idp.test",
        users=[DevUser(sub="alice", email="alice@acme.test", connection_id="acme")],
        clients=[DevClient(client_id="api-client", client_secret="s3cret-s3cret")],
    )


@pytest.fixture
async def idp_http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = idp.http_client()
    yield client
    await client.aclose()


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def sso(idp: DevIdP, http: httpx.AsyncClient, **kw: Any) -> SSOMiddleware:
    return SSOMiddleware(inner, [idp.issuer_config(audience=AUD)], http_client=http, **kw)


def challenge(response: httpx.Response) -> str:
    return response.headers["www-authenticate"]


async def test_valid_token_puts_a_principal_in_the_scope(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD, scopes=["read", "write"])
    async with client_for(sso(idp, idp_http)) as c:
        r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.json() == {
        "authenticated": True,
        "identity": "alice",
        "tenant": idp.issuer,
        "scopes": ["read", "write"],
        "source": "header",
    }


async def test_starlette_requires_works_unchanged(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    app = sso(idp, idp_http)
    ok = idp.issue_token("alice", audience=AUD, scopes=["write"])
    no = idp.issue_token("alice", audience=AUD, scopes=["read"])
    async with client_for(app) as c:
        assert (await c.get("/write", headers={"Authorization": f"Bearer {ok}"})).status_code == 200
        assert (await c.get("/write", headers={"Authorization": f"Bearer {no}"})).status_code == 403


async def test_no_credentials_gives_a_bare_challenge(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    async with client_for(sso(idp, idp_http)) as c:
        r = await c.get("/x")
    assert r.status_code == 401
    assert challenge(r) == 'Bearer realm="api"'
    assert r.headers["content-type"] == "application/json"
    assert r.json()["status"] == 401


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("expired", "expired"),
        ("not_yet_valid", "not valid for another"),
        ("wrong_audience", "audience"),
        ("wrong_issuer", "issuer"),
        ("tampered", "signature"),
        ("tampered_payload", "signature"),
        ("unknown_kid", "key"),
        ("alg_none", "none"),
        ("hs256_with_public_key", "algorithm"),
    ],
)
async def test_bad_tokens_are_refused_with_a_reason(
    idp: DevIdP, idp_http: httpx.AsyncClient, variant: str, expected: str
) -> None:
    factory = idp.tokens
    factory.audience = AUD
    token = getattr(factory, variant)(sub="alice")
    async with client_for(sso(idp, idp_http)) as c:
        r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    header = challenge(r)
    assert 'error="invalid_token"' in header
    assert expected in header.lower(), header
    assert token not in r.text
    assert token.split(".")[1] not in header


async def test_expired_description_says_how_long_ago(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD, expires_in=-3600)
    async with client_for(sso(idp, idp_http)) as c:
        r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert "ago" in r.json()["error_description"]


async def test_two_authorization_headers_are_a_bad_request(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(sso(idp, idp_http)) as c:
        r = await c.get(
            "/x",
            headers=[("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")],
        )
    assert r.status_code == 400
    assert 'error="invalid_request"' in challenge(r)


async def test_public_paths_are_anonymous_and_anchored(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(idp, idp_http, paths=PathRules(public=["/health", "/static/*"]))
    async with client_for(app) as c:
        r = await c.get("/health")
        assert r.status_code == 200
        assert r.json()["authenticated"] is False
        assert (await c.get("/static/app.js")).status_code == 200
        assert (await c.get("/admin/health-report")).status_code == 401
        assert (await c.get("/healthz")).status_code == 401


async def test_optional_mode_lets_anonymous_in_but_refuses_bad_tokens(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(idp, idp_http, paths=PathRules(optional=True))
    factory = idp.tokens
    factory.audience = AUD
    async with client_for(app) as c:
        anon = await c.get("/x")
        assert anon.status_code == 200
        assert anon.json()["authenticated"] is False
        bad = await c.get("/x", headers={"Authorization": f"Bearer {factory.expired()}"})
        assert bad.status_code == 401


async def test_optional_mode_keeps_pages_with_scope_rules_protected(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # Anonymous callers are welcome where nothing more is asked, never past a scope rule.
    app = sso(idp, idp_http, paths=PathRules(optional=True, scope_rules={"/admin/*": ["admin"]}))
    admin = idp.issue_token("alice", audience=AUD, scopes=["admin"])
    async with client_for(app) as c:
        anon = await c.get("/admin/users")
        assert anon.status_code == 401
        assert challenge(anon) == 'Bearer realm="api"'
        assert (await c.get("/reports")).json()["authenticated"] is False
        ok = await c.get("/admin/users", headers={"Authorization": f"Bearer {admin}"})
        assert ok.status_code == 200


async def test_scope_rules_give_403_insufficient_scope(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(idp, idp_http, paths=PathRules(scope_rules={"/admin/*": ["admin"]}))
    token = idp.issue_token("alice", audience=AUD, scopes=["read"])
    async with client_for(app) as c:
        r = await c.get("/admin/users", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert 'error="insufficient_scope"' in challenge(r)
        assert 'scope="admin"' in challenge(r)
        ok = await c.get("/other", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


async def test_scope_rules_and_public_paths_apply_below_a_root_path(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # Servers that put the mount point in ``path`` too (uvicorn --root-path,
    # Starlette Mount, httpx) must not make path rules silently stop matching.
    app = sso(
        idp, idp_http, paths=PathRules(scope_rules={"/admin/*": ["admin"]}, public=["/health"])
    )
    token = idp.issue_token("alice", audience=AUD, scopes=["read"])
    transport = httpx.ASGITransport(app=app, root_path="/app")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/app/admin/users", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403
        assert 'error="insufficient_scope"' in challenge(r)
        health = await c.get("/app/health")
        assert health.status_code == 200
        assert health.json()["authenticated"] is False


async def test_public_prefix_with_dot_segments_still_needs_credentials(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    # "%2E%2E" reaches the app as ".." (ASGI paths are decoded); an app or proxy
    # resolving it would serve /admin anonymously.
    app = sso(idp, idp_http, paths=PathRules(public=["/static/*"]))
    async with client_for(app) as c:
        assert (await c.get("/static/%2E%2E/admin")).status_code == 401
        assert (await c.get("/static//admin")).status_code == 401
        assert (await c.get("/static/app.js")).status_code == 200


async def test_cookie_carried_jwt_is_verified(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(
        sso(idp, idp_http, sources=CredentialSources(cookie_names=["access_token"]))
    ) as c:
        r = await c.get("/x", headers={"Cookie": f"access_token={token}"})
    assert r.status_code == 200
    assert r.json()["source"] == "cookie"


async def test_idp_down_with_nothing_cached_gives_a_fast_503(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    app = sso(idp, idp_http, limits=Limits(fetch_timeout=1.0), prefetch=False)
    started = time.monotonic()
    with idp.outage():
        async with client_for(app) as c:
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503
    assert int(r.headers["retry-after"]) > 0
    assert "www-authenticate" not in r.headers
    assert time.monotonic() - started < 3.0


async def test_slow_idp_is_bounded_by_the_fetch_deadline(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    token = idp.issue_token("alice", audience=AUD)
    app = sso(idp, idp_http, limits=Limits(fetch_timeout=0.5), prefetch=False)
    started = time.monotonic()
    with idp.slow_jwks(5.0):
        async with client_for(app) as c:
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 503
    assert time.monotonic() - started < 3.0


async def test_key_rotation_works_without_restart(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    app = sso(idp, idp_http)
    async with client_for(app) as c:
        first = idp.issue_token("alice", audience=AUD)
        assert (await c.get("/x", headers={"Authorization": f"Bearer {first}"})).status_code == 200
        idp.rotate_keys()
        second = idp.issue_token("alice", audience=AUD)
        r = await c.get("/x", headers={"Authorization": f"Bearer {second}"})
        assert r.status_code == 200
        # the old key stays valid for its grace period
        assert (await c.get("/x", headers={"Authorization": f"Bearer {first}"})).status_code == 200


async def test_refusals_are_emitted_as_events(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    events: list[Event] = []
    app = sso(idp, idp_http, event_sinks=[events.append])
    async with client_for(app) as c:
        await c.get("/x")
    refusals = [e for e in events if e.name == "refusal"]
    assert refusals
    assert refusals[0].reason == "credentials_missing"
    assert refusals[0].client_ip == "127.0.0.1"


async def test_lifespan_passes_through_and_prefetches(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    middleware = SSOMiddleware(app, [idp.issuer_config(audience=AUD)], http_client=idp_http)
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert seen == ["lifespan.startup", "lifespan.shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert idp.requests["/jwks"] >= 1


async def test_websocket_is_refused_before_accept(idp: DevIdP, idp_http: httpx.AsyncClient) -> None:
    called = False

    async def app(scope: Any, receive: Any, send: Any) -> None:
        nonlocal called
        called = True

    middleware = SSOMiddleware(app, [idp.issuer_config(audience=AUD)], http_client=idp_http)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
    await middleware(scope, receive, send)
    assert not called
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "authentication required"}]

    token = idp.issue_token("alice", audience=AUD)
    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "query_string": b"",
    }
    await middleware(scope, receive, send)
    assert called
    assert scope["user"].identity == "alice"


async def test_unknown_scope_types_pass_straight_through(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    got: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(scope["type"])

    middleware = SSOMiddleware(app, [idp.issuer_config(audience=AUD)], http_client=idp_http)
    await middleware({"type": "custom"}, None, None)
    assert got == ["custom"]


async def test_error_body_is_json_and_never_a_500_for_junk(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    async with client_for(sso(idp, idp_http)) as c:
        for junk in ["a.b.c", "....", "x" * 20_000, "eyJhbGciOiJSUzI1NiJ9.e30.", "a.b"]:
            r = await c.get("/x", headers={"Authorization": f"Bearer {junk}"})
            assert r.status_code == 401, junk
            body = msgspec.json.decode(r.content)
            assert body["error"] == "invalid_token"


async def test_a_revocation_gap_drops_cached_verifications(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(idp, idp_http)
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(app) as c:
        for _ in range(2):
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    assert app.verifier.cached(token) is not None
    for listener in app.revocations._gap_listeners:
        listener()
    assert app.verifier.cached(token) is None


async def test_user_revocation_evicts_that_users_cached_tokens(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    from asgi_sso.identity.revocation import Revocation

    app = sso(idp, idp_http)
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(app) as c:
        for _ in range(2):
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    assert app.verifier.cached(token) is not None
    await app.revocations.publish(Revocation(kind="user", connection=idp.issuer, subject="alice"))
    assert app.verifier.cached(token) is None


async def test_warm_requests_get_their_own_principal_and_claims(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["user"])
        scope["user"].claims["sub"] = "mallory"  # an app scribbling on its request's claims
        await JSONResponse({})(scope, receive, send)

    mw = SSOMiddleware(app, [idp.issuer_config(audience=AUD)], http_client=idp_http)
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(mw) as c:
        for _ in range(3):
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    assert len({id(p) for p in seen}) == 3
    assert [p.identity for p in seen] == ["alice"] * 3
    assert mw.verifier.cached(token).claims["sub"] == "alice"  # type: ignore[union-attr]


async def test_eviction_reaches_tokens_served_from_the_recent_map(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    from asgi_sso.identity.revocation import Revocation

    app = sso(idp, idp_http)
    token = idp.issue_token("alice", audience=AUD)
    headers = {"Authorization": f"Bearer {token}"}
    async with client_for(app) as c:
        for _ in range(3):  # warm: served from the recent-token map
            assert (await c.get("/x", headers=headers)).status_code == 200
        await app.revocations.publish(
            Revocation(kind="user", connection=idp.issuer, subject="alice")
        )
        assert app.verifier.cached(token) is None
        # Verified again from scratch (the token itself is still valid at the IdP).
        assert (await c.get("/x", headers=headers)).status_code == 200


async def test_a_lazy_start_does_not_make_the_first_request_wait_on_the_idp(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(idp, idp_http)
    async with client_for(app) as c:
        assert (await c.get("/x")).status_code == 401
    assert sum(idp.requests.values()) == 0  # no prefetch without a lifespan start-up


async def test_a_user_store_that_cannot_start_gives_503_then_recovers(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    from asgi_sso.errors import StoreUnavailable

    class FlakyStore(MemoryUserStore):
        down = True

        async def start(self) -> None:
            if self.down:
                raise StoreUnavailable("the user store is unavailable (test)")

    store = FlakyStore()
    app = sso(idp, idp_http, identity=IdentityConfig(user_store=store))
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(app) as c:
        r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 503
        assert "retry-after" in r.headers
        store.down = False
        ok = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200


async def test_shutdown_closes_the_shared_document_store(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    class Shared:
        closed = False

        async def get(self, url: str) -> tuple[bytes, float] | None:
            return None

        async def put(self, url: str, body: bytes, expires_at: float) -> None:
            return None

        async def aclose(self) -> None:
            self.closed = True

    shared = Shared()
    app = sso(idp, idp_http, backends=Backends(documents=shared))
    await app.startup(warm=False)
    await app.shutdown()
    assert shared.closed


async def test_repeat_requests_still_expire_and_still_refuse_a_second_header(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    from asgi_sso.testing import FakeClock

    clock = FakeClock(start=time.time())
    app = sso(idp, idp_http, clock=clock)
    token = idp.issue_token("alice", audience=AUD, expires_in=60)
    headers = {"Authorization": f"Bearer {token}"}
    async with client_for(app) as c:
        for _ in range(3):  # the third is served from the cache, its header remembered
            assert (await c.get("/x", headers=headers)).status_code == 200
        assert app.verifier.cached(token) is not None
        doubled = [("Authorization", f"Bearer {token}")] * 2
        assert (await c.get("/x", headers=doubled)).status_code == 400
        clock.advance(600)  # beyond exp and the leeway
        r = await c.get("/x", headers=headers)
    assert r.status_code == 401
    assert "expired" in r.json()["error_description"]


async def test_a_revoked_users_repeat_request_is_verified_again(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    from asgi_sso.identity.revocation import Revocation

    events: list[Event] = []
    app = sso(idp, idp_http, event_sinks=[events.append])

    def verifications() -> int:  # full verifications, not cache hits
        return sum(event.name == "verify" for event in events)

    token = idp.issue_token("alice", audience=AUD)
    headers = {"Authorization": f"Bearer {token}"}
    async with client_for(app) as c:
        for _ in range(4):
            assert (await c.get("/x", headers=headers)).status_code == 200
        assert verifications() == 2  # verified on its first two sightings, then served stored
        await app.revocations.publish(
            Revocation(kind="user", connection=idp.issuer, subject="alice")
        )
        assert (await c.get("/x", headers=headers)).status_code == 200
    assert verifications() == 3


async def test_with_query_tokens_allowed_a_remembered_header_plus_a_query_token_is_refused(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(idp, idp_http, sources=CredentialSources(allow_query_token=True))
    token = idp.issue_token("alice", audience=AUD)
    headers = {"Authorization": f"Bearer {token}"}
    async with client_for(app) as c:
        for _ in range(3):
            assert (await c.get("/x", headers=headers)).status_code == 200
        r = await c.get("/x", headers=headers, params={"access_token": token})
    assert r.status_code == 400


async def test_every_request_counts_as_one_cache_hit_or_miss(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    events: list[Event] = []
    app = sso(idp, idp_http, event_sinks=[events.append])
    first, second = (idp.issue_token(sub, audience=AUD) for sub in ("alice", "alice"))
    async with client_for(app) as c:
        for token in (first, first, first, second, first):
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    outcomes = [e.name for e in events if e.name.startswith("cache.")]
    # Each token is stored from its second sighting on.
    assert outcomes == ["cache.miss", "cache.miss", "cache.hit", "cache.miss", "cache.hit"]
    assert {e.issuer for e in events if e.name == "cache.hit"} == {idp.issuer_config().label}


async def test_cache_hits_are_counted_with_an_identity_layer_too(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    events: list[Event] = []
    app = sso(
        idp,
        idp_http,
        event_sinks=[events.append],
        identity=IdentityConfig(user_store=MemoryUserStore()),
    )
    token = idp.issue_token("alice", audience=AUD)
    async with client_for(app) as c:
        for _ in range(3):
            r = await c.get("/x", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
    outcomes = [e.name for e in events if e.name.startswith("cache.")]
    assert outcomes == ["cache.miss", "cache.miss", "cache.hit"]


def test_a_scim_secret_for_a_connection_no_issuer_produces_is_refused_at_start_up(
    idp: DevIdP,
) -> None:
    broker = idp.issuer_config(audience=AUD, connection_claim="connection_id")

    def build(connection: str) -> SSOMiddleware:
        scim = ScimConfig(tokens={connection: Secret("scim-secret-0123456789")})
        return SSOMiddleware(
            inner, broker, identity=IdentityConfig(user_store=MemoryUserStore()), scim=scim
        )

    # The bare claim value names the connection only within the broker.
    with pytest.raises(ConfigurationError, match="'acme', which no trusted issuer"):
        build("acme")
    assert build("http://idp.test#acme").scim is not None


def _login(idp: DevIdP, client_id: str = "web") -> LoginConfig:
    return LoginConfig(
        issuer=idp.issuer,
        client_id=client_id,
        client_secret=Secret("web-secret"),
        cookie_secrets=(Secret(b"k" * 32),),
    )


def test_the_sign_in_client_is_named_on_its_issuer(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    other = Issuer(issuer="https://other.test", audience=AUD)
    app = SSOMiddleware(
        inner, [idp.issuer_config(audience=AUD), other], http_client=idp_http, login=_login(idp)
    )
    sign_in = app.verifier.registry.find(idp.issuer)
    assert sign_in is not None
    assert sign_in.client_id == "web"
    assert app.verifier.registry.find(other.issuer) == other  # untouched


def test_a_sign_in_client_id_that_contradicts_the_issuer_fails_at_start_up(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    issuer = idp.issuer_config(audience=AUD, client_id="mobile")
    with pytest.raises(ConfigurationError, match=r"differs from LoginConfig\.client_id 'web'"):
        SSOMiddleware(inner, [issuer], http_client=idp_http, login=_login(idp))


# -- the constructor: settings that would be ignored are refused ---------------------------


def _sessions() -> Backends:
    return Backends(sessions=MemorySessionStore())


def _scim() -> ScimConfig:
    return ScimConfig(tokens={"http://idp.test": Secret("scim-secret-0123456789")})


@pytest.mark.parametrize(
    ("settings", "fix"),
    [
        ({"backends": _sessions()}, r"no sign-in: pass login=LoginConfig\(\.\.\.\)"),
        ({"scim": _scim()}, r"pass identity=IdentityConfig\(user_store=\.\.\.\)"),
        (
            {
                "scim": _scim(),
                "identity": IdentityConfig(tier_mapper=PriorityTierMapper(tiers=["pro"])),
            },
            r"pass identity=IdentityConfig\(user_store=\.\.\.\)",
        ),
        (
            {"sources": CredentialSources(allowed_origins=["https://admin.example"])},
            r"nothing here reads a cookie: add login=LoginConfig\(\.\.\.\) or cookie_names",
        ),
        ({"sources": CredentialSources(check_origin=False)}, "nothing here reads a cookie"),
    ],
)
def test_a_setting_this_combination_would_ignore_is_refused_naming_the_fix(
    idp: DevIdP, idp_http: httpx.AsyncClient, settings: dict[str, Any], fix: str
) -> None:
    with pytest.raises(ConfigurationError, match=fix):
        sso(idp, idp_http, **settings)


def test_the_same_settings_work_beside_what_they_need(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    app = sso(
        idp,
        idp_http,
        login=_login(idp),
        backends=_sessions(),
        identity=IdentityConfig(user_store=MemoryUserStore()),
        scim=_scim(),
        sources=CredentialSources(allowed_origins=["https://admin.example"]),
    )
    assert app.login is not None
    assert app.scim is not None
    assert app.identity is not None
    cookies = sso(idp, idp_http, sources=CredentialSources(cookie_names=["t"], check_origin=False))
    assert not cookies._check_cookie_tokens


def test_the_verifier_is_always_built_from_the_issuers(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    with pytest.raises(TypeError, match="verifier"):
        SSOMiddleware(inner, [idp.issuer_config(audience=AUD)], verifier=object())  # type: ignore[call-arg]


async def test_an_hmac_issuer_is_trusted_with_its_secret(idp_http: httpx.AsyncClient) -> None:
    import hashlib
    import hmac

    from asgi_sso.testing.tokens import b64url

    key = b"an HMAC key of at least 32 bytes"
    issuer = Issuer(
        issuer="https://hs.test", audience=AUD, algorithms=("HS256",), secret=Secret(key)
    )
    head = b64url(b'{"alg":"HS256","typ":"JWT"}')
    claims = {"iss": "https://hs.test", "sub": "svc", "aud": AUD, "exp": int(time.time()) + 60}
    body = b64url(msgspec.json.encode(claims))
    signature = b64url(hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest())
    app = SSOMiddleware(inner, [issuer], http_client=idp_http)
    async with client_for(app) as c:
        good = await c.get("/x", headers={"Authorization": f"Bearer {head}.{body}.{signature}"})
        forged = await c.get("/x", headers={"Authorization": f"Bearer {head}.{body}.{b64url(key)}"})
    assert good.status_code == 200
    assert good.json()["identity"] == "svc"
    assert forged.status_code == 401


async def test_the_identity_cache_runs_on_the_injected_clock(
    idp: DevIdP, idp_http: httpx.AsyncClient
) -> None:
    from asgi_sso.testing import FakeClock

    class CountingStore(MemoryUserStore):
        calls = 0

        async def get_or_provision(self, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await super().get_or_provision(*args, **kwargs)

    clock, store = FakeClock(start=time.time()), CountingStore()
    app = sso(idp, idp_http, clock=clock, identity=IdentityConfig(user_store=store, cache_ttl=10))
    headers = {"Authorization": f"Bearer {idp.issue_token('alice', audience=AUD)}"}
    async with client_for(app) as c:
        for _ in range(2):
            assert (await c.get("/x", headers=headers)).status_code == 200
        assert store.calls == 1
        clock.advance(11)
        assert (await c.get("/x", headers=headers)).status_code == 200
    assert store.calls == 2
