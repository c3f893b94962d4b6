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

import asyncio
import base64
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi_sso import CertificateHeader, CredentialSources, SSOMiddleware
from asgi_sso.testing import ClientCertificate, DevIdP, free_port
from asgi_sso.testing.idp.server import serve_in_thread

AUD = "api://orders"
PROXY_SOURCE = "127.0.0.2"  # Linux answers on all of 127.0.0.0/8


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"identity": request.user.identity})


inner = Starlette(routes=[Route("/{path:path}", whoami)])


class Pki:
    """A test CA, two client certificates it signed and the proxy's server certificate."""

    def __init__(self, folder: Path) -> None:
        self.ca = ClientCertificate("test-ca", ca=True)
        self.alice = ClientCertificate("alice-client", issuer=self.ca)
        self.mallory = ClientCertificate("mallory-client", issuer=self.ca)
        self.folder = folder
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "proxy")]))
            .issuer_name(self.ca.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .sign(self.ca.key, hashes.SHA256())
        )
        self.server_chain = self._write(
            "server.pem", server.public_bytes(serialization.Encoding.PEM)
        )
        self.server_key = self._write(
            "server.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def _write(self, name: str, data: bytes) -> str:
        path = self.folder / name
        path.write_bytes(data)
        return str(path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_chain, self.server_key)
        context.load_verify_locations(cadata=self.ca.pem)
        context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no certificate, no connection
        return context

    def client_context(self, cert: ClientCertificate) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca.pem)
        name = cert.certificate.subject.rfc4514_string().replace("=", "_")
        context.load_cert_chain(
            self._write(f"{name}.pem", cert.pem.encode()),
            self._write(f"{name}.key", cert.key_pem()),
        )
        return context


async def _relay(upstream_port: int, reader: Any, writer: Any) -> None:
    # One request per connection: the proxy's job in RFC 9440 §3, sanitising first.
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *fields = head[:-4].split(b"\r\n")
    kept = [
        f
        for f in fields
        if f.split(b":", 1)[0].strip().lower() not in (b"client-cert", b"connection")
    ]
    length = next(
        (int(f.split(b":", 1)[1]) for f in kept if f.lower().startswith(b"content-length:")), 0
    )
    body = await reader.readexactly(length) if length else b""
    value = b":" + base64.b64encode(der) + b":"
    up_reader, up_writer = await asyncio.open_connection(
        "127.0.0.1", upstream_port, local_addr=(PROXY_SOURCE, 0)
    )
    lines = [request_line, *kept, b"Client-Cert: " + value, b"Connection: close"]
    up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await up_writer.drain()
    writer.write(await up_reader.read())  # uvicorn closes after the response
    await writer.drain()
    up_writer.close()
    writer.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def idp() -> Iterator[DevIdP]:
    idp = DevIdP()
    with idp.serve():
        yield idp


def _api(idp: DevIdP, header: CertificateHeader) -> Iterator[str]:
    app = SSOMiddleware(
        inner,
        [idp.issuer_config(audience=AUD, mtls="require")],
        sources=CredentialSources(certificate_header=header),
    )
    url = f"http://127.0.0.1:{free_port()}"
    while url == idp.issuer:  # free_port may hand out the same port twice
        url = f"http://127.0.0.1:{free_port()}"
    with serve_in_thread(app, url, lifespan=True):
        yield url


@pytest.fixture(scope="module")
def api(idp: DevIdP) -> Iterator[str]:
    yield from _api(idp, CertificateHeader(trusted_proxies=(PROXY_SOURCE,)))


@pytest.fixture
async def proxy(api: str, pki: Pki) -> AsyncIterator[str]:
    port = int(api.rsplit(":", 1)[1])
    server = await asyncio.start_server(
        lambda r, w: _relay(port, r, w), "127.0.0.1", 0, ssl=pki.server_context()
    )
    yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()
    await server.wait_closed()


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
