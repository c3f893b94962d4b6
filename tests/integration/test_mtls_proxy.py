"""Certificate-bound tokens over real sockets: uvicorn behind a proxy terminating mutual TLS.

No ASGI server in reach fills in the ASGI TLS extension with the client's
certificate (uvicorn and hypercorn verify it, but do not report it), so the
deployment tested here is the common one: a TLS-terminating proxy checks the
client certificate against a CA made at test time and passes it on in
``Client-Cert`` (RFC 9440) to uvicorn. The proxy connects from 127.0.0.2, the one
address trusted with the header; a client reaching uvicorn directly from
127.0.0.1 cannot name a certificate.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from _mtls_proxy import PROXY_SOURCE, Pki, mtls_proxy, serve_api
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import CertificateHeader
from asgi_sso.testing import DevIdP

AUD = "api://orders"


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity})


inner = Starlette(routes=[Route("/{path:path}", whoami)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdP]:
    idp = DevIdP()
    with idp.serve():
        yield idp


def _api(idp: DevIdP, header: CertificateHeader) -> Iterator[str]:
    yield from serve_api(inner, idp, AUD, header)


@pytest.fixture(scope="module")
def api(idp: DevIdP) -> Iterator[str]:
    yield from _api(idp, CertificateHeader(trusted_proxies=(PROXY_SOURCE,)))


@pytest.fixture
async def proxy(api: str, pki: Pki) -> AsyncIterator[str]:
    async with mtls_proxy(pki, int(api.rsplit(":", 1)[1])) as url:
        yield url


async def _get(
    url: str, token: str, context: ssl.SSLContext | None = None, **headers: str
) -> httpx.Response:
    kw: dict[str, Any] = {"verify": context} if context is not None else {}
    async with httpx.AsyncClient(**kw) as client:
        return await client.get(
            f"{url}/orders", headers={"Authorization": f"Bearer {token}", **headers}
        )


async def test_a_bound_token_passes_the_mutual_tls_proxy_with_its_certificate(
    idp: DevIdP, pki: Pki, proxy: str
) -> None:
    token = idp.issue_token("alice", audience=AUD, claims=pki.alice.cnf())
    for _ in range(2):  # the second from the verified-token cache, still checked
        r = await _get(proxy, token, pki.client_context(pki.alice))
        assert r.status_code == 200, r.text
        assert r.json() == {"identity": "alice"}


async def test_a_stolen_token_with_another_certificate_is_refused(
    idp: DevIdP, pki: Pki, proxy: str
) -> None:
    token = idp.issue_token("alice", audience=AUD, claims=pki.alice.cnf())
    mallory = pki.client_context(pki.mallory)
    r = await _get(proxy, token, mallory)
    # Mallory also writes alice's certificate into the header: the proxy overwrites it.
    forged = await _get(proxy, token, mallory, **{"Client-Cert": pki.alice.rfc9440()})
    for response in (r, forged):
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"
        assert "not the one the token is bound to" in response.json()["error_description"]


async def test_the_header_from_a_peer_that_is_not_the_proxy_is_ignored(
    idp: DevIdP, pki: Pki, api: str
) -> None:
    token = idp.issue_token("alice", audience=AUD, claims=pki.alice.cnf())
    r = await _get(api, token, **{"Client-Cert": pki.alice.rfc9440()})  # from 127.0.0.1
    assert r.status_code == 401
    assert "does not come from a trusted proxy" in r.json()["error_description"]
    assert (await _get(api, token)).json()["error_description"].endswith("presents none")
    unbound = await _get(api, idp.issue_token("alice", audience=AUD))
    assert unbound.status_code == 401
    assert "requires certificate-bound tokens" in unbound.json()["error_description"]


async def test_nginx_escaped_pem_from_a_trusted_loopback_proxy(idp: DevIdP, pki: Pki) -> None:
    header = CertificateHeader(trusted_proxies=("127.0.0.1",), format="nginx")
    token = idp.issue_token("alice", audience=AUD, claims=pki.alice.cnf())
    for url in _api(idp, header):
        good = await _get(url, token, **{"X-SSL-Client-Cert": pki.alice.nginx()})
        other = await _get(url, token, **{"X-SSL-Client-Cert": pki.mallory.nginx()})
        junk = await _get(url, token, **{"X-SSL-Client-Cert": "%2D%2D%2D%2Dgarbage"})
        assert good.status_code == 200, good.text
        assert other.status_code == junk.status_code == 401
        assert "not an X.509 certificate" in junk.json()["error_description"]


async def test_envoys_xfcc_from_the_mutual_tls_proxy(idp: DevIdP, pki: Pki) -> None:
    header = CertificateHeader(trusted_proxies=(PROXY_SOURCE,), format="xfcc")
    token = idp.issue_token("alice", audience=AUD, claims=pki.alice.cnf())
    for url in _api(idp, header):
        async with mtls_proxy(pki, int(url.rsplit(":", 1)[1]), style="xfcc") as proxy:
            good = await _get(proxy, token, pki.client_context(pki.alice))
            # Mallory names alice's certificate in her own header: the proxy replaces it.
            forged = await _get(
                proxy,
                token,
                pki.client_context(pki.mallory),
                **{"x-forwarded-client-cert": pki.alice.xfcc()},
            )
        direct = await _get(url, token, **{"x-forwarded-client-cert": pki.alice.xfcc()})
        assert good.status_code == 200, good.text
        assert forged.status_code == direct.status_code == 401
        assert "not the one the token is bound to" in forged.json()["error_description"]
        assert "does not come from a trusted proxy" in direct.json()["error_description"]
