"""A certificate-bound token from the dev IdP, used at an API, over real sockets (RFC 8705).

The dev IdP and the API each run under uvicorn on 127.0.0.1, each behind its own
mutual-TLS proxy (``_mtls_proxy``) that passes the client's certificate on in
``Client-Cert`` from 127.0.0.2, the one address both trust with the header. The
client asks for a token over mutual TLS with its certificate, then calls the API
(``Issuer(mtls="require")``) with the same certificate, another, or none; and
``asgi-sso token --cert --key`` gets its token by mutual TLS from the IdP's proxy.
"""

from __future__ import annotations

import asyncio
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

from _jwt import claims_of
from asgi_sso import CertificateHeader
from asgi_sso.cli import main
from asgi_sso.testing import DevClient, DevIdP, free_port
from asgi_sso.testing.idp.server import serve_in_thread

AUD = "api://orders"
HEADER = CertificateHeader(trusted_proxies=(PROXY_SOURCE,))
SERVICE = DevClient(
    client_id="svc", client_secret="svc-secret", audience=AUD,
    grant_types=("client_credentials",), certificate_bound=True,
)  # fmt: skip


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity})


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdP]:
    idp = DevIdP(clients=[SERVICE], client_cert_header=HEADER)
    with idp.serve():
        yield idp


@pytest.fixture(scope="module")
def api(idp: DevIdP) -> Iterator[str]:
    yield from serve_api(Starlette(routes=[Route("/{path:path}", whoami)]), idp, AUD, HEADER)


@pytest.fixture
async def proxies(idp: DevIdP, api: str, pki: Pki) -> AsyncIterator[tuple[str, str]]:
    async with (
        mtls_proxy(pki, int(idp.issuer.rsplit(":", 1)[1])) as to_idp,
        mtls_proxy(pki, int(api.rsplit(":", 1)[1])) as to_api,
    ):
        yield to_idp, to_api


async def token_request(url: str, context: ssl.SSLContext | None = None, **headers: str) -> Any:
    kw: dict[str, Any] = {"verify": context} if context is not None else {}
    async with httpx.AsyncClient(**kw) as client:
        reply = await client.post(
            f"{url}/token",
            data={"grant_type": "client_credentials"},
            auth=("svc", "svc-secret"),
            headers=headers,
        )
    return reply.status_code, reply.json()


async def call_api(url: str, token: str, context: ssl.SSLContext | None = None) -> httpx.Response:
    kw: dict[str, Any] = {"verify": context} if context is not None else {}
    async with httpx.AsyncClient(**kw) as client:
        return await client.get(f"{url}/orders", headers={"Authorization": f"Bearer {token}"})


async def test_a_token_from_the_idp_works_with_its_certificate_only(
    pki: Pki, proxies: tuple[str, str], api: str
) -> None:
    to_idp, to_api = proxies
    status, body = await token_request(to_idp, pki.client_context(pki.alice))
    assert status == 200, body
    token = body["access_token"]
    assert claims_of(token)["cnf"] == {"x5t#S256": pki.alice.thumbprint}
    ok = await call_api(to_api, token, pki.client_context(pki.alice))
    assert (ok.status_code, ok.json()) == (200, {"identity": "svc"})
    stolen = await call_api(to_api, token, pki.client_context(pki.mallory))
    bare = await call_api(api, token)  # straight to uvicorn: no certificate at all
    for refused, says in ((stolen, "not the one the token is bound to"), (bare, "presents none")):
        assert refused.status_code == 401
        assert 'error="invalid_token"' in refused.headers["www-authenticate"]
        assert says in refused.json()["error_description"]


async def test_the_idp_refuses_a_token_request_without_the_proxy(
    idp: DevIdP, pki: Pki, proxies: tuple[str, str]
) -> None:
    no_cert = await token_request(idp.issuer)
    forged = await token_request(idp.issuer, **{"Client-Cert": pki.alice.rfc9440()})
    assert no_cert[0] == forged[0] == 400
    assert no_cert[1]["error"] == forged[1]["error"] == "invalid_request"
    assert "trusted proxy" in forged[1]["error_description"]
    assert "access_token" not in no_cert[1]


async def test_the_command_line_gets_a_bound_token_over_mutual_tls(
    pki: Pki, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The IdP's issuer is its proxy's https URL, so discovery names an https token
    # endpoint: `asgi-sso token --cert --key` presents the certificate in the handshake.
    upstream = free_port()
    monkeypatch.setenv("SSL_CERT_FILE", pki.ca_file)  # httpx then trusts the test CA
    monkeypatch.setenv("SVC_SECRET", "svc-secret")
    cert, key = pki.files(pki.alice)
    async with mtls_proxy(pki, upstream) as issuer:
        idp = DevIdP(issuer, clients=[SERVICE], client_cert_header=HEADER)
        with serve_in_thread(idp, f"http://127.0.0.1:{upstream}"):
            argv = ["token", "--client", "svc", "--secret-env", "SVC_SECRET", "--issuer", issuer]
            code = await asyncio.to_thread(main, [*argv, "--cert", cert, "--key", key])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    assert claims_of(out.strip())["cnf"] == {"x5t#S256": pki.alice.thumbprint}
