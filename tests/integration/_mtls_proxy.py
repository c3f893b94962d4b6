"""A test PKI and a TLS-terminating proxy that checks client certificates (mutual TLS)
and passes the client's on to uvicorn in ``Client-Cert`` (RFC 9440) or, as Envoy does, in
``x-forwarded-client-cert``, from ``PROXY_SOURCE``.

No ASGI server in reach reports the client's certificate in the ASGI TLS extension, so
tests over real sockets put this proxy in front of the app or the dev IdP.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from asgi_sso import CertificateHeader, CredentialSources, SSOMiddleware
from asgi_sso.testing import ClientCertificate, DevIdP, free_port
from asgi_sso.testing.idp.server import serve_in_thread

PROXY_SOURCE = "127.0.0.2"  # Linux answers on all of 127.0.0.0/8


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

    @property
    def ca_file(self) -> str:
        """The test CA's certificate, written as a PEM file."""
        return self._write("ca.pem", self.ca.pem.encode())

    def files(self, cert: ClientCertificate) -> tuple[str, str]:
        """``cert`` and its key written as PEM files: their paths."""
        name = cert.certificate.subject.rfc4514_string().replace("=", "_")
        return (
            self._write(f"{name}.pem", cert.pem.encode()),
            self._write(f"{name}.key", cert.key_pem()),
        )

    def client_context(self, cert: ClientCertificate) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.ca.pem)
        context.load_cert_chain(*self.files(cert))
        return context


_SET = (b"client-cert", b"x-forwarded-client-cert", b"connection")


def _certificate_field(der: bytes, style: str) -> bytes:
    if style == "xfcc":
        # Envoy with forward_client_cert_details: SANITIZE_SET and
        # set_current_client_cert_details: {cert: true}
        pem = quote(ssl.DER_cert_to_PEM_cert(der), safe="")
        value = f'Hash={hashlib.sha256(der).hexdigest()};Cert="{pem}"'
        return b"x-forwarded-client-cert: " + value.encode()
    return b"Client-Cert: :" + base64.b64encode(der) + b":"


async def _relay(upstream_port: int, style: str, reader: Any, writer: Any) -> None:
    # One request per connection: the proxy's job in RFC 9440 §3, sanitising first.
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    head = await reader.readuntil(b"\r\n\r\n")
    request_line, *fields = head[:-4].split(b"\r\n")
    kept = [f for f in fields if f.split(b":", 1)[0].strip().lower() not in _SET]
    length = next(
        (int(f.split(b":", 1)[1]) for f in kept if f.lower().startswith(b"content-length:")), 0
    )
    body = await reader.readexactly(length) if length else b""
    up_reader, up_writer = await asyncio.open_connection(
        "127.0.0.1", upstream_port, local_addr=(PROXY_SOURCE, 0)
    )
    lines = [request_line, *kept, _certificate_field(der, style), b"Connection: close"]
    up_writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await up_writer.drain()
    writer.write(await up_reader.read())  # uvicorn closes after the response
    await writer.drain()
    up_writer.close()
    writer.close()


@asynccontextmanager
async def mtls_proxy(pki: Pki, upstream_port: int, style: str = "rfc9440") -> AsyncIterator[str]:
    """Run the proxy on a free 127.0.0.1 port in front of ``upstream_port``; yield its URL.

    ``style``: ``"rfc9440"`` sets ``Client-Cert``, ``"xfcc"`` Envoy's header.
    """
    server = await asyncio.start_server(
        lambda r, w: _relay(upstream_port, style, r, w), "127.0.0.1", 0, ssl=pki.server_context()
    )
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


def serve_api(inner: Any, idp: DevIdP, audience: str, header: CertificateHeader) -> Iterator[str]:
    """Serve ``inner`` behind the middleware (``mtls="require"`` for ``idp``); yield its URL."""
    app = SSOMiddleware(
        inner,
        [idp.issuer_config(audience=audience, mtls="require")],
        sources=CredentialSources(certificate_header=header),
    )
    url = f"http://127.0.0.1:{free_port()}"
    while url == idp.issuer:  # free_port may hand out the same port twice
        url = f"http://127.0.0.1:{free_port()}"
    with serve_in_thread(app, url, lifespan=True):
        yield url
