"""Runtime connections in the middleware: bearer routing, changes without a restart, refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import (
    ConfigurationError,
    ConnectionTiers,
    IdentityConfig,
    Issuer,
    Limits,
    MemoryUserStore,
    PriorityTierMapper,
    Revocation,
    ScimConfig,
    Secret,
    SSOMiddleware,
)
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.errors import ConnectionConflict, UnknownIssuer
from asgi_sso.observe.events import Event
from asgi_sso.testing import DevIdP
from asgi_sso.testing.dpop import DPoPClient

API = "api://app"


async def whoami(request: Request) -> JSONResponse:
    user = request.user
    return JSONResponse(
        {
            "identity": user.identity,
            "tenant": user.tenant,
            "tier": user.tier,
            "scopes": sorted(request.auth.scopes),
        }
    )


inner = Starlette(routes=[Route("/{path:path}", whoami)])


def connection(idp: DevIdP, cid: str, **kw: Any) -> Connection:
    values: dict[str, Any] = {"name": cid.title(), "audience": (API,), "domains": (f"{cid}.test",)}
    values.update(kw)
    return Connection(id=cid, issuer=idp.issuer, **values)


@pytest.fixture
def acme() -> DevIdP:
    return DevIdP("http://127.0.0.1:10001")


@pytest.fixture
def globex() -> DevIdP:
    return DevIdP("http://127.0.0.1:10002")


@pytest.fixture
async def http(acme: DevIdP, globex: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    client = acme.http_client(mounts={globex.origin: httpx.ASGITransport(app=globex)})
    yield client
    await client.aclose()


async def call(app: Any, token: str, path: str = "/me") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers={"authorization": f"Bearer {token}"})


async def started(app: SSOMiddleware) -> SSOMiddleware:
    await app.startup(warm=False)
    return app


async def test_bearer_tokens_of_each_connection_name_their_connection(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme"), connection(globex, "globex")])
    app = await started(SSOMiddleware(inner, connections=store, http_client=http))
    for idp, cid in ((acme, "acme"), (globex, "globex")):
        response = await call(app, idp.issue_token("u1", audience=API))
        assert response.status_code == 200, response.text
        assert response.json()["tenant"] == cid
        assert response.json()["identity"] == "u1"
    # Another API's token from a trusted connection is still refused by audience.
    assert (await call(app, acme.issue_token("u1", audience="api://other"))).status_code == 401
    await app.shutdown()


async def test_a_connection_added_at_runtime_is_trusted_and_a_disabled_one_refused(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme")])
    app = await started(
        SSOMiddleware(
            inner, connections=store, http_client=http, limits=Limits(connections_poll=0.05)
        )
    )
    token = globex.issue_token("bob", audience=API)
    assert (await call(app, token)).status_code == 401
    await store.add(connection(globex, "globex"))
    await _until(lambda: "globex" in app.connections.directory)  # type: ignore[union-attr]
    # Twice: the second sighting is served from the verified-token cache.
    assert (await call(app, token)).json()["tenant"] == "globex"
    assert (await call(app, token)).json()["tenant"] == "globex"
    disabled = msgspec.structs.replace(connection(globex, "globex"), enabled=False)
    await store.update(disabled)
    await _until(lambda: not app.connections.directory.get("globex").enabled)  # type: ignore[union-attr]
    response = await call(app, token)
    assert response.status_code == 401
    assert "not trusted" in response.headers["www-authenticate"]
    await store.delete("globex")
    await _until(lambda: "globex" not in app.connections.directory)  # type: ignore[union-attr]
    assert (await call(app, token)).status_code == 401
    await app.shutdown()


async def test_an_announced_change_applies_before_the_next_poll(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme")])
    app = await started(
        SSOMiddleware(
            inner, connections=store, http_client=http, limits=Limits(connections_poll=3600)
        )
    )
    await store.add(connection(globex, "globex"))
    await app.revocations.publish(Revocation(kind="connection", connection="globex"))
    await _until(lambda: "globex" in app.connections.directory)  # type: ignore[union-attr]
    assert (await call(app, globex.issue_token("bob", audience=API))).status_code == 200
    await app.shutdown()


async def test_a_verification_under_a_replaced_configuration_is_not_served(
    acme: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme")])
    app = await started(SSOMiddleware(inner, connections=store, http_client=http))
    token = acme.issue_token("u1", audience=API)
    verified = await app.verifier.verify(token)
    assert app.verifier.trusts(verified)
    for _ in range(2):  # the second sighting is cached
        assert (await call(app, token)).status_code == 200
    assert app.verifier.cached(token) is not None
    await store.update(connection(acme, "acme", name="Acme Renamed"))
    await app.connections.reload()  # type: ignore[union-attr]
    # The old result, wherever it is kept, belongs to a configuration no longer in force.
    assert not app.verifier.trusts(verified)
    assert not app.verifier.trusts(app.verifier.cached(token))  # type: ignore[arg-type]
    # The cached verification is checked again under the new configuration, and replaced.
    assert (await call(app, token)).status_code == 200
    assert app.verifier.trusts(app.verifier.cached(token))  # type: ignore[arg-type]
    await app.shutdown()


async def test_a_sign_in_only_connection_accepts_no_bearer_token(
    acme: DevIdP, http: httpx.AsyncClient
) -> None:
    only = connection(
        acme,
        "acme",
        audience=(),
        client_id="web",
        client_secret=Secret("web-secret-web-secret"),
    )
    app = await started(
        SSOMiddleware(inner, connections=StaticConnections([only]), http_client=http)
    )
    for audience in (API, "web"):
        response = await call(app, acme.issue_token("u1", audience=audience, client_id="web"))
        assert response.status_code == 401
        assert "accepts no access tokens" in response.headers["www-authenticate"]
    await app.shutdown()


async def test_connections_colliding_with_configured_issuers_are_left_out(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    events: list[Event] = []
    configured = Issuer(
        issuer=acme.issuer, audience=API, connection="{tenant}-x", connection_claim="org"
    )
    store = StaticConnections(
        [connection(acme, "acme"), connection(globex, "org-x", domains=("x.test",))]
    )
    app = await started(
        SSOMiddleware(
            inner, [configured], connections=store, http_client=http, event_sinks=[events.append]
        )
    )
    live = app.connections
    assert live is not None
    assert "is the configured Issuer" in live.refused["acme"]
    assert "connection id of a configured Issuer" in live.refused["org-x"]
    assert len(live.directory) == 0
    assert {e.name for e in events if e.outcome == "refused"} == {"connections.reload"}
    # The configured issuer keeps its own namespace for acme's tokens.
    response = await call(app, acme.issue_token("u1", audience=API))
    assert response.json()["tenant"] == acme.issuer
    await app.shutdown()


async def test_tier_policies_follow_the_connection(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    mapper = PriorityTierMapper(
        tiers=["enterprise", "pro", "free"], scopes={"enterprise": ["admin"], "pro": ["write"]}
    )
    store = StaticConnections(
        [
            connection(acme, "acme", tiers=ConnectionTiers(default_tier="pro")),
            connection(globex, "globex", tiers=ConnectionTiers(groups={"admins": "enterprise"})),
            connection(
                DevIdP("http://127.0.0.1:10003"), "bad", tiers=ConnectionTiers(default_tier="gold")
            ),
        ]
    )
    app = await started(
        SSOMiddleware(
            inner, connections=store, http_client=http, identity=IdentityConfig(tier_mapper=mapper)
        )
    )
    body = (await call(app, acme.issue_token("u1", audience=API))).json()
    assert (body["tier"], body["scopes"]) == ("pro", ["write"])
    body = (await call(app, globex.issue_token("u2", audience=API, groups=["admins"]))).json()
    assert (body["tier"], body["scopes"]) == ("enterprise", ["admin"])
    body = (await call(app, globex.issue_token("u3", audience=API, groups=["staff"]))).json()
    assert body["tier"] is None
    assert "unknown tier 'gold'" in app.connections.refused["bad"]  # type: ignore[union-attr]
    await app.shutdown()


async def test_tiers_without_a_priority_mapper_leave_the_connection_out(
    acme: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme", tiers=ConnectionTiers(default_tier="pro"))])
    app = await started(SSOMiddleware(inner, connections=store, http_client=http))
    assert "no PriorityTierMapper" in app.connections.refused["acme"]  # type: ignore[union-attr]
    assert (await call(app, acme.issue_token("u1", audience=API))).status_code == 401
    await app.shutdown()


async def test_each_connections_scim_secret_acts_only_on_its_users(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    users = MemoryUserStore()
    store = StaticConnections(
        [
            connection(acme, "acme", scim_secret=Secret("acme-scim-secret-0123456789")),
            connection(globex, "globex", scim_secret=Secret("globex-scim-secret-0123456789")),
        ]
    )
    app = await started(
        SSOMiddleware(
            inner,
            connections=store,
            http_client=http,
            identity=IdentityConfig(user_store=users),
            scim=ScimConfig(),
        )
    )
    await call(app, acme.issue_token("alice", audience=API))
    await call(app, globex.issue_token("bob", audience=API))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:

        async def listed(secret: str) -> httpx.Response:
            return await client.get("/scim/v2/Users", headers={"authorization": f"Bearer {secret}"})

        acme_view = (await listed("acme-scim-secret-0123456789")).json()
        assert [u["externalId"] for u in acme_view["Resources"]] == ["alice"]
        globex_view = (await listed("globex-scim-secret-0123456789")).json()
        assert [u["externalId"] for u in globex_view["Resources"]] == ["bob"]
        assert (await listed("nope")).status_code == 401
        await store.update(
            connection(
                globex,
                "globex",
                enabled=False,
                scim_secret=Secret("globex-scim-secret-0123456789"),
            )
        )
        await app.connections.reload()  # type: ignore[union-attr]
        assert (await listed("globex-scim-secret-0123456789")).status_code == 401
    await app.shutdown()


def test_issuers_or_connections_are_required() -> None:
    with pytest.raises(ConfigurationError, match="at least one trusted Issuer"):
        SSOMiddleware(inner)
    with pytest.raises(ConfigurationError, match="Issuer objects"):
        SSOMiddleware(inner, "https://idp.example.com")  # type: ignore[arg-type]
    SSOMiddleware(inner, connections=[])


async def _until(condition: Any, *, steps: int = 200) -> None:
    # Polls a condition the background task makes true; bounded at about two seconds.
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the connections did not change in time")


async def test_connections_sharing_an_issuer_are_told_apart_by_their_claim(
    acme: DevIdP, http: httpx.AsyncClient
) -> None:
    # Google Workspace: one issuer for every customer, the hosted domain in `hd`.
    def workspace(cid: str, domain: str) -> Connection:
        return connection(acme, cid, tenant_claim="hd", tenant=domain, domains=(domain,))

    store = StaticConnections(
        [workspace("initech", "initech.test"), workspace("hooli", "hooli.test")]
    )
    app = await started(SSOMiddleware(inner, connections=store, http_client=http))
    for domain, cid in (("initech.test", "initech"), ("hooli.test", "hooli")):
        token = acme.issue_token("u1", audience=API, claims={"hd": domain})
        assert (await call(app, token)).json()["tenant"] == cid
    for claims in ({"hd": "gmail.test"}, {}, {"hd": ["initech.test"]}):
        response = await call(app, acme.issue_token("u1", audience=API, claims=claims))
        assert response.status_code == 401
        assert "'hd' claim" in response.headers["www-authenticate"]
    with pytest.raises(ConnectionConflict, match="same issuer"):
        await store.add(connection(acme, "plain"))
    await app.shutdown()


async def test_a_change_keeps_the_other_connections_cached_tokens_and_forgets_refusals(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme")])
    app = await started(SSOMiddleware(inner, connections=store, http_client=http))
    live = app.connections
    assert live is not None
    acme_token = acme.issue_token("u1", audience=API)
    cached = await app.verifier.verify(acme_token)
    globex_token = globex.issue_token("u2", audience=API)
    for _ in range(2):  # refused, and the refusal remembered
        assert (await call(app, globex_token)).status_code == 401
    await store.add(connection(globex, "globex"))
    await live.reload()
    assert app.verifier.trusts(cached)  # acme did not change: its verification stands
    assert (await call(app, globex_token)).status_code == 200  # not refused from memory
    await store.update(connection(acme, "acme", domains=("acme.test", "acme-corp.test")))
    await live.reload()
    assert not app.verifier.trusts(cached)
    await app.shutdown()


def test_public_clients_are_refused_beside_connections(acme: DevIdP) -> None:
    # One callback URL for every provider: a public client's code and PKCE verifier could
    # be obtained and redeemed by another connection's IdP (RFC 9700 §4.4 mix-up).
    with pytest.raises(ConfigurationError, match="must authenticate"):
        connection(acme, "acme", client_id="web", token_endpoint_auth="none")
    from asgi_sso import LoginConfig

    with pytest.raises(ConfigurationError, match="public client"):
        SSOMiddleware(
            inner,
            [Issuer(issuer="https://idp.example.com", audience=API)],
            connections=[connection(acme, "acme")],
            login=LoginConfig(
                issuer="https://idp.example.com",
                client_id="web",
                token_endpoint_auth="none",
                cookie_secrets=(Secret("c" * 32),),
            ),
        )


async def test_a_scim_secret_given_to_two_connections_acts_for_neither(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    from asgi_sso.connections import ConnectionAdmin

    same = Secret("shared-scim-secret-0123456789")
    store = StaticConnections(
        [connection(acme, "acme", scim_secret=same), connection(globex, "globex", scim_secret=same)]
    )
    app = await started(
        SSOMiddleware(
            inner,
            connections=store,
            http_client=http,
            identity=IdentityConfig(user_store=MemoryUserStore()),
            scim=ScimConfig(),
        )
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        listed = await client.get(
            "/scim/v2/Users", headers={"authorization": f"Bearer {same.reveal_str()}"}
        )
    assert listed.status_code == 401
    admin = ConnectionAdmin(
        StaticConnections([connection(acme, "acme", scim_secret=same)]), clock=app.clock
    )
    with pytest.raises(ConnectionConflict, match="SCIM secret"):
        await admin.add(connection(globex, "globex", scim_secret=same))
    await app.shutdown()


async def test_the_verifier_itself_never_serves_a_disabled_connections_cached_token(
    acme: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme")])
    app = await started(SSOMiddleware(inner, connections=store, http_client=http))
    token = acme.issue_token("u1", audience=API)
    for _ in range(2):
        await app.verifier.verify(token)
    assert app.verifier.cached(token) is not None
    await store.update(connection(acme, "acme", enabled=False))
    await app.connections.reload()  # type: ignore[union-attr]
    with pytest.raises(UnknownIssuer):
        await app.verifier.verify(token)
    assert app.verifier.cached(token) is None  # the stale entry is gone
    await app.shutdown()


async def test_a_connection_turning_dpop_on_at_runtime_takes_proofs(
    acme: DevIdP, http: httpx.AsyncClient
) -> None:
    store = StaticConnections([connection(acme, "acme")])
    app = await started(
        SSOMiddleware(
            inner, connections=store, http_client=http, limits=Limits(connections_poll=0.05)
        )
    )
    client = DPoPClient(clock=acme.clock)
    token = acme.issue_token("u1", audience=API, claims=client.cnf())
    url = "http://testserver/me"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        # Off: the DPoP scheme is not read, and the bound token is refused as Bearer.
        assert (await c.get("/me", headers=client.headers(token, "GET", url))).status_code == 401
        assert (await call(app, token)).status_code == 401
        await store.update(connection(acme, "acme", dpop="require"))
        await _until(lambda: app.connections.directory.get("acme").dpop == "require")  # type: ignore[union-attr]
        for _ in range(2):
            r = await c.get("/me", headers=client.headers(token, "GET", url))
            assert r.status_code == 200, r.text
            assert r.json()["tenant"] == "acme"
        plain = await call(app, acme.issue_token("u1", audience=API))
        assert plain.status_code == 401
        assert 'DPoP algs="' in plain.headers.get_list("www-authenticate")[1]
    await app.shutdown()


def _jwk_signed(acme: DevIdP, cid: str, kid: str) -> Connection:
    from joserfc.jwk import ECKey

    jwk = {**ECKey.generate_key("P-256").as_dict(private=True), "kid": kid}
    return connection(acme, cid, client_id=f"app-{cid}", token_endpoint_auth="private_key_jwt",
                      client_key=Secret(json.dumps(jwk)))  # fmt: skip


async def test_a_kid_refusal_ends_with_the_connection_that_held_the_kid(
    acme: DevIdP, globex: DevIdP, http: httpx.AsyncClient
) -> None:
    from asgi_sso import LoginConfig

    store = StaticConnections([_jwk_signed(acme, "acme", "key-1")])
    login = LoginConfig(cookie_secrets=(Secret("c" * 32),))
    app = await started(SSOMiddleware(inner, connections=store, http_client=http, login=login))
    live = app.connections
    assert live is not None
    admin = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app.connections_admin()), base_url="http://admin"
    )
    taker = _jwk_signed(globex, "aaa", "key-1")
    data = {**taker.public(), "client_key": taker.client_key.reveal_str()}  # type: ignore[union-attr]
    for name in ("has_client_secret", "has_client_key", "has_scim_secret"):
        del data[name]
    refused = await admin.post("/", json=data)
    assert refused.status_code == 422
    assert "already names another key" in refused.json()["error_description"]
    await admin.aclose()
    await store.add(taker)  # written past the admin API: the next load leaves it out
    await live.reload()
    assert "already names another key, of connection 'acme'" in live.refused["aaa"]
    await store.delete("acme")
    await live.reload()  # "aaa" is unchanged: its refusal must not be remembered
    assert live.refused == {}
    assert [c.id for c in live.directory] == ["aaa"]
    await app.shutdown()
