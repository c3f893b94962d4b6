"""SSOMiddleware with certificate-bound tokens (RFC 8705 §3): the certificate on every request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import (
    CertificateHeader,
    CredentialSources,
    Introspection,
    Limits,
    PathRules,
    Secret,
    SSOMiddleware,
)
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.testing import ClientCertificate, DevClient, DevIdP
from asgi_sso.testing.dpop import DPoPClient

AUD = "api://test"


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity, "source": request.user.source})


inner = Starlette(routes=[Route("/{path:path}", whoami)])


@pytest.fixture
def idp(dev_idp: DevIdP) -> DevIdP:
    return dev_idp  # the plugin's: alice, on a loopback issuer (a connection may name it)


@pytest.fixture
async def http(idp: DevIdP) -> AsyncIterator[httpx.AsyncClient]:
    async with idp.http_client() as client:
        yield client


@pytest.fixture(scope="module")
def cert() -> ClientCertificate:
    return ClientCertificate()


def with_tls(app: Any, cert: ClientCertificate | None) -> Any:
    """What a server providing the ASGI TLS extension does: the client's certificate in scope."""

    async def served(scope: Any, receive: Any, send: Any) -> None:
        if cert is not None and scope["type"] != "lifespan":
            scope = {**scope, "extensions": {"tls": cert.tls_extension()}}
        await app(scope, receive, send)

    return served


def client(app: Any, peer: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def bearer(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


def middleware(
    idp: DevIdP, http: httpx.AsyncClient, mode: str = "allow", **sources: Any
) -> SSOMiddleware:
    issuer = idp.issuer_config(audience=AUD, mtls=mode)
    return SSOMiddleware(
        inner, [issuer], http_client=http, sources=CredentialSources(**sources) if sources else None
    )


async def test_a_bound_token_over_mutual_tls_is_accepted_every_time(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    async with client(with_tls(middleware(idp, http), cert)) as c:
        for _ in range(3):  # the later ones come from the verified-token cache
            r = await c.get("/things", headers=bearer(token))
            assert r.status_code == 200, r.text
            assert r.json() == {"identity": "alice", "source": "header"}


async def test_the_cache_never_skips_the_certificate(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    app = middleware(idp, http)
    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    async with client(with_tls(app, cert)) as good:
        assert (await good.get("/things", headers=bearer(token))).status_code == 200
        assert (await good.get("/things", headers=bearer(token))).status_code == 200
    async with client(with_tls(app, ClientCertificate("thief"))) as thief:
        stolen = await thief.get("/things", headers=bearer(token))
    async with client(app) as plain:
        no_cert = await plain.get("/things", headers=bearer(token))
    assert stolen.status_code == no_cert.status_code == 401
    assert "not the one the token is bound to" in stolen.json()["error_description"]
    assert "presents none" in no_cert.json()["error_description"]
    for r in (stolen, no_cert):
        assert r.json()["error"] == "invalid_token"
        assert r.headers.get_list("www-authenticate") == [
            f'Bearer realm="api", error="invalid_token", '
            f'error_description="{r.json()["error_description"]}"'
        ]


@pytest.mark.parametrize("fmt", ["rfc9440", "nginx", "xfcc"])
async def test_a_trusted_proxy_header_presents_the_certificate(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate, fmt: str
) -> None:
    header = CertificateHeader(trusted_proxies=("127.0.0.0/8",), format=fmt)  # type: ignore[arg-type]
    app = middleware(idp, http, certificate_header=header)
    value = {"rfc9440": cert.rfc9440, "nginx": cert.nginx, "xfcc": cert.xfcc}[fmt]()
    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    headers = bearer(token, **{header.name.decode(): value})
    async with client(app) as proxy:
        assert (await proxy.get("/things", headers=headers)).status_code == 200
    async with client(app, peer="192.0.2.10") as direct:  # anyone can write the header
        forged = await direct.get("/things", headers=headers)
    assert forged.status_code == 401
    assert "does not come from a trusted proxy" in forged.json()["error_description"]


async def test_a_doubled_or_broken_header_is_refused_clearly(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    header = CertificateHeader(trusted_proxies=("127.0.0.1",))
    app = middleware(idp, http, certificate_header=header)
    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    twice = [
        ("Authorization", f"Bearer {token}"),
        ("Client-Cert", cert.rfc9440()),
        ("Client-Cert", cert.rfc9440()),
    ]
    async with client(app) as c:
        doubled = await c.get("/things", headers=twice)
        broken = await c.get(
            "/things", headers=bearer(token, **{"Client-Cert": ":bm90IGEgY2VydA==:"})
        )
    assert doubled.status_code == 400
    assert doubled.json()["error"] == "invalid_request"
    assert "more than one client certificate header" in doubled.json()["error_description"]
    assert broken.status_code == 401
    assert "not an X.509 certificate" in broken.json()["error_description"]


async def test_envoys_xfcc_from_a_trusted_proxy_binds_and_forgeries_do_not(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    header = CertificateHeader(trusted_proxies=("127.0.0.1",), format="xfcc")
    app = middleware(idp, http, "require", certificate_header=header)
    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    thief = ClientCertificate("thief")
    name = "x-forwarded-client-cert"
    async with client(app) as proxy:
        hash_only = await proxy.get(
            "/things", headers=bearer(token, **{name: cert.xfcc(cert=False)})
        )
        # APPEND_FORWARD at the edge: the thief's forged element, then the proxy's own
        forged = await proxy.get(
            "/things", headers=bearer(token, **{name: f"{cert.xfcc()},{thief.xfcc()}"})
        )
        stolen = await proxy.get("/things", headers=bearer(token, **{name: thief.xfcc()}))
        broken = await proxy.get("/things", headers=bearer(token, **{name: 'Cert="x'}))
    async with client(app, peer="192.0.2.10") as direct:
        untrusted = await direct.get("/things", headers=bearer(token, **{name: cert.xfcc()}))
    assert hash_only.status_code == 200, hash_only.text
    for r, why in [
        (forged, "more than one element"),
        (stolen, "not the one the token is bound to"),
        (broken, "not an x-forwarded-client-cert"),
        (untrusted, "does not come from a trusted proxy"),
    ]:
        assert r.status_code == 401
        assert r.json()["error"] == "invalid_token"
        assert why in r.json()["error_description"]


async def test_require_refuses_unbound_tokens_and_allow_takes_them(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    unbound = idp.issue_token("alice", audience=AUD)
    bound = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    async with client(with_tls(middleware(idp, http, "require"), cert)) as c:
        refused = await c.get("/things", headers=bearer(unbound))
        assert (await c.get("/things", headers=bearer(bound))).status_code == 200
    assert refused.status_code == 401
    assert "requires certificate-bound tokens" in refused.json()["error_description"]
    async with client(with_tls(middleware(idp, http, "allow"), cert)) as c:
        assert (await c.get("/things", headers=bearer(unbound))).status_code == 200


async def test_a_token_bound_twice_needs_its_proof_and_its_certificate(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    dpop = DPoPClient(clock=idp.clock)
    claims = {"cnf": {**dpop.cnf()["cnf"], **cert.cnf()["cnf"]}}
    token = idp.issue_token("alice", audience=AUD, claims=claims)
    issuer = idp.issuer_config(audience=AUD, dpop="allow")
    app = SSOMiddleware(inner, [issuer], http_client=http)
    url = "http://testserver/things"
    async with client(with_tls(app, cert)) as c:
        r = await c.get("/things", headers=dpop.headers(token, "GET", url))
        assert r.status_code == 200, r.text
    async with client(app) as c:
        r = await c.get("/things", headers=dpop.headers(token, "GET", url))
    assert r.status_code == 401
    assert "presents none" in r.json()["error_description"]


async def test_a_public_path_leaves_a_bound_token_without_certificate_anonymous(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    issuer = idp.issuer_config(audience=AUD)
    app = SSOMiddleware(inner, [issuer], http_client=http, paths=PathRules(public=["/open"]))
    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    async with client(app) as c:
        r = await c.get("/open", headers=bearer(token))
    assert r.status_code == 200
    assert r.json()["identity"] == ""  # anonymous
    async with client(with_tls(app, cert)) as c:
        assert (await c.get("/open", headers=bearer(token))).json()["identity"] == "alice"


async def test_a_connection_requiring_certificate_binding_at_runtime(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    def acme(**kw: Any) -> Connection:
        return Connection(id="acme", issuer=idp.issuer, audience=(AUD,), **kw)

    store = StaticConnections([acme()])
    app = SSOMiddleware(
        inner, connections=store, http_client=http, limits=Limits(connections_poll=0.05)
    )
    await app.startup(warm=False)
    unbound = idp.issue_token("alice", audience=AUD)
    bound = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    async with client(with_tls(app, cert)) as c:
        assert (await c.get("/things", headers=bearer(unbound))).status_code == 200
        await store.update(acme(mtls="require"))
        for _ in range(200):  # bounded: the poll picks the change up within 0.05 s
            if app.connections.directory.get("acme").mtls == "require":  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.01)
        refused = await c.get("/things", headers=bearer(unbound))
        assert refused.status_code == 401
        assert "requires certificate-bound" in refused.json()["error_description"]
        assert (await c.get("/things", headers=bearer(bound))).status_code == 200
    await app.shutdown()


async def test_a_websocket_with_a_bound_token_needs_the_certificate_too(
    idp: DevIdP, http: httpx.AsyncClient, cert: ClientCertificate
) -> None:
    accepted: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        accepted.append(scope["user"].identity)

    middleware = SSOMiddleware(app, [idp.issuer_config(audience=AUD)], http_client=http)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    token = idp.issue_token("alice", audience=AUD, claims=cert.cnf())
    headers = [(b"authorization", f"Bearer {token}".encode())]
    base = {"type": "websocket", "path": "/ws", "query_string": b"", "headers": headers}
    await middleware({**base, "client": ("192.0.2.1", 5000)}, receive, send)
    assert accepted == []
    assert sent[0]["type"] == "websocket.close"
    await middleware({**base, "extensions": {"tls": cert.tls_extension()}}, receive, send)
    assert accepted == ["alice"]


async def test_an_opaque_token_bound_in_its_introspection_answer(cert: ClientCertificate) -> None:
    # RFC 8705 §3.2: the introspection answer carries the token's cnf.
    secret = "resource-server-secret-0123456789"
    idp = DevIdP("http://idp.test", clients=[DevClient(client_id="orders", client_secret=secret)])
    introspection = Introspection(client_id="orders", client_secret=Secret(secret))
    token = idp.issue_opaque_token("alice", audience=AUD, claims=cert.cnf())
    async with idp.http_client() as http:
        issuer = idp.issuer_config(audience=AUD, introspection=introspection)
        app = SSOMiddleware(inner, [issuer], http_client=http)
        async with client(app) as c:
            assert (await c.get("/things", headers=bearer(token))).status_code == 401
        async with client(with_tls(app, cert)) as c:
            r = await c.get("/things", headers=bearer(token))
            assert r.status_code == 200, r.text
