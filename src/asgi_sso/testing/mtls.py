"""A client certificate for tests: its ``cnf`` claim and the ways a request carries it (RFC 8705).

Pair it with the dev IdP: ``idp.issue_token("alice", audience=aud, claims=
cert.cnf())`` is a token bound to the certificate; ``cert.rfc9440()``,
``cert.nginx()`` and ``cert.xfcc()`` are the header values a TLS-terminating proxy
sets, and
``cert.tls_extension()`` the ``scope["extensions"]["tls"]`` a server fills in.
The key and the self-signed certificate are generated at test time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
from typing import Any, Literal
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asgi_sso.testing.clock import START
from asgi_sso.testing.tokens import b64url

__all__ = ["ClientCertificate"]

_DAY = datetime.timedelta(days=1)
# Valid at a FakeClock's default start too: the dev IdP checks the dates by its clock.
_FAKE_START = datetime.datetime.fromtimestamp(START, datetime.UTC)
_PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class ClientCertificate:
    """A key pair and an X.509 certificate for it, self-signed unless ``issuer`` signs it.

    Args:
        common_name: the certificate's subject ``CN``.
        issuer: a CA certificate (``ca=True``) that signs this one; ``None``: self-signed.
        ca: make a CA certificate (basic constraints ``CA:TRUE``), to sign others.
        key_type: ``"EC"`` (P-256) or ``"RSA"`` (2048 bits; what Entra ID's certificate
            credentials take).
        not_after: the end of validity (a past one makes an expired certificate);
            ``None``: a day from now. It starts a day before the earliest of now, this
            end and a :class:`~asgi_sso.testing.FakeClock`'s default start, so it is
            valid for the dev IdP on a fake clock too.
    """

    def __init__(
        self,
        common_name: str = "test-client",
        *,
        issuer: ClientCertificate | None = None,
        ca: bool = False,
        key_type: Literal["EC", "RSA"] = "EC",
        not_after: datetime.datetime | None = None,
    ) -> None:
        self.key: _PrivateKey = (
            rsa.generate_private_key(65537, 2048)
            if key_type == "RSA"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.certificate = _build(common_name, self.key, issuer, ca=ca, not_after=not_after)
        self.der = self.certificate.public_bytes(serialization.Encoding.DER)
        self.pem = self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def __repr__(self) -> str:
        return f"ClientCertificate(thumbprint={self.thumbprint!r})"

    @property
    def thumbprint(self) -> str:
        """``x5t#S256``: the base64url SHA-256 of the certificate's DER (RFC 8705 §3.1)."""
        digest = hashlib.sha256(self.der).digest()
        return b64url(digest)

    def cnf(self) -> dict[str, Any]:
        """The claim binding a token to this certificate: ``{"cnf": {"x5t#S256": ...}}``."""
        return {"cnf": {"x5t#S256": self.thumbprint}}

    def rfc9440(self) -> str:
        """The ``Client-Cert`` header value: a structured-field byte sequence of the DER."""
        return ":" + base64.b64encode(self.der).decode("ascii") + ":"

    def nginx(self) -> str:
        """The header value nginx's ``$ssl_client_escaped_cert`` gives: the URL-escaped PEM."""
        return quote(self.pem, safe="")

    def xfcc(self, *, cert: bool = True, by: str | None = None) -> str:
        """The ``x-forwarded-client-cert`` element Envoy sets for this certificate.

        As with ``forward_client_cert_details: SANITIZE_SET``: ``By`` (the proxy's own
        URI name, when given), ``Hash`` (hex SHA-256 of the DER), then with ``cert``
        (``set_current_client_cert_details: {cert: true, subject: true, uri: true}``)
        the URL-escaped PEM, the quoted subject and the (here empty) URI name.
        ``cert=False`` is Envoy's default: ``By`` and ``Hash`` only.
        """
        pairs = [f"By={by}"] if by is not None else []
        pairs.append(f"Hash={hashlib.sha256(self.der).hexdigest()}")
        if cert:
            # Envoy escapes the PEM's newlines, spaces, '+', '/' and '=': what nginx does.
            escaped = self.nginx()
            subject = self.certificate.subject.rfc4514_string()
            quoted = subject.replace("\\", "\\\\").replace('"', '\\"')
            pairs += [f'Cert="{escaped}"', f'Subject="{quoted}"', "URI="]
        return ";".join(pairs)

    def tls_extension(self, *, error: str | None = None) -> dict[str, Any]:
        """``scope["extensions"]["tls"]`` of a server that verified this certificate."""
        return {
            "server_cert": None,
            "client_cert_chain": [self.pem],
            "client_cert_name": self.certificate.subject.rfc4514_string(),
            "client_cert_error": error,
            "tls_version": 0x0304,
            "cipher_suite": 0x1301,
        }

    def key_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (for an ``ssl`` context in a test)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _build(
    common_name: str,
    key: _PrivateKey,
    issuer: ClientCertificate | None,
    *,
    ca: bool,
    not_after: datetime.datetime | None,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    end = not_after or now + _DAY
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, end, _FAKE_START) - _DAY)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    signer = issuer.key if issuer is not None else key
    return builder.sign(signer, hashes.SHA256())
