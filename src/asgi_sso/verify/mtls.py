"""Certificate-bound access tokens: a token usable only with one client certificate (RFC 8705 §3).

The token names the certificate in ``cnf["x5t#S256"]``: the base64url SHA-256 of
its DER. The client proves it holds the certificate's key in the TLS handshake,
so the resource server only compares thumbprints. The certificate comes from the
ASGI server's TLS extension (``scope["extensions"]["tls"]``) or, from a trusted
proxy only, from a header (:class:`~asgi_sso.config.CertificateHeader`).

Like DPoP, the check runs on every request, cached verification or not: the
certificate belongs to the connection, not to the token. A token that carries the
binding is always checked (RFC 8705 §3: the resource server MUST); the scheme
stays ``Bearer``. Everything here is synchronous and bounded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import re
from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from asgi_sso.config import CertificateHeader
from asgi_sso.errors import InvalidRequest, InvalidToken
from asgi_sso.keys.jwk import b64url
from asgi_sso.verify.xfcc import MalformedXFCC, only_element

__all__ = [
    "KNOWN_CERTIFICATES",
    "MAX_CERTIFICATE_BYTES",
    "MAX_XFCC_BYTES",
    "ClientCertificates",
    "bound_certificate",
    "check_certificate_binding",
    "thumbprint",
]

MAX_CERTIFICATE_BYTES = 16 * 1024
"""A certificate (or header carrying one) longer than this is refused before decoding."""
MAX_XFCC_BYTES = 4 * MAX_CERTIFICATE_BYTES
"""An ``x-forwarded-client-cert`` header longer than this is refused before parsing: room
for the escaped PEM of one certificate and its names, not for a ``Chain``."""
KNOWN_CERTIFICATES = 256
"""Thumbprints (by the certificate's text) and peer addresses (trusted or not) remembered
per worker, each; the oldest goes first."""

_X5T = "x5t#S256"
# A SHA-256 digest in base64url without padding: 43 characters; in hex, 64.
_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
_HEX_DIGEST = re.compile(rb"[0-9A-Fa-f]{64}")
# RFC 8941 §3.3.5: a byte sequence is base64 between colons (padding may be missing).
_BYTE_SEQUENCE = re.compile(rb"[ \t]*:([A-Za-z0-9+/]*={0,2}):[ \t]*")
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def thumbprint(der: bytes) -> str:
    """``x5t#S256`` of a certificate: base64url of the SHA-256 of its DER (RFC 8705 §3.1)."""
    return b64url(hashlib.sha256(der).digest())


def bound_certificate(payload: bytes) -> str | None:
    """The ``cnf["x5t#S256"]`` a token is bound to, ``None`` when it is not bound.

    ``payload`` is the token's claim set JSON; it is decoded only when it holds
    ``x5t#S256`` or a ``\\u`` escape (which could spell it), so unbound tokens cost
    one or two substring searches.

    Raises:
        InvalidToken: the binding is there but is not a SHA-256 thumbprint.
    """
    if b"x5t#S256" not in payload and b"\\u" not in payload:
        return None
    claims = msgspec.json.decode(payload)
    cnf = claims.get("cnf") if isinstance(claims, dict) else None
    if not isinstance(cnf, dict) or _X5T not in cnf:
        return None
    value = cnf[_X5T]
    if not isinstance(value, str) or _THUMBPRINT.fullmatch(value) is None:
        raise InvalidToken("the token's cnf.x5t#S256 is not a SHA-256 certificate thumbprint")
    return value


class ClientCertificates:
    """Finds the client certificate of a request and returns its thumbprint.

    Args:
        header: the trusted proxies' header; ``None``: the TLS extension only.
    """

    __slots__ = ("_decode", "_known", "_name", "_networks", "_peers")

    def __init__(self, header: CertificateHeader | None) -> None:
        self._name = header.name if header is not None else None
        self._networks: tuple[_Network, ...] = header.networks if header is not None else ()
        self._decode = _DECODERS[header.format if header is not None else "rfc9440"]
        # Certificate text -> thumbprint: parsing costs ~50 us, a client sends the same
        # certificate on every request. A pure function of its key, so never stale.
        self._known: dict[bytes | str, str] = {}
        self._peers: dict[str, bool] = {}  # peer address -> inside trusted_proxies

    def thumbprint(self, scope: Any) -> str | None:
        """The ``x5t#S256`` of the request's client certificate; ``None`` when it has none.

        From a trusted proxy, its header is the only source; from any other peer,
        the server's TLS extension.

        Raises:
            InvalidRequest: the header appears more than once.
            InvalidToken: the certificate is oversized or not a certificate, or only
                the header names one and the peer is not a trusted proxy.
        """
        if self._name is None:
            return self._from_tls(scope)
        if self._trusted(scope.get("client")):
            value = self._header(scope)
            return None if value is None else self._remembered(value, self._decode)
        found = self._from_tls(scope)
        if found is None and self._header(scope) is not None:
            # Never used, but said: behind a proxy whose address the server rewrote
            # (X-Forwarded-For), "presents none" would hide the cause.
            raise _refused("header does not come from a trusted proxy")
        return found

    def _from_tls(self, scope: Any) -> str | None:
        pem = _tls_certificate(scope)
        return None if pem is None else self._remembered(pem, _from_pem)

    def _remembered(self, value: Any, decode: Any) -> str:
        known = self._known.get(value)
        if known is None:
            known = decode(value)  # raises for anything but one certificate
            if len(self._known) >= KNOWN_CERTIFICATES:
                del self._known[next(iter(self._known))]  # the oldest
            self._known[value] = known
        return known

    def _trusted(self, client: Any) -> bool:
        # scope["client"] is (host, port), or None (a Unix socket): never trusted then.
        if not isinstance(client, list | tuple) or not client or not isinstance(client[0], str):
            return False
        host = client[0]
        trusted = self._peers.get(host)
        if trusted is None:  # parsing an address costs more than the rest of the check
            trusted = _inside(host, self._networks)
            if len(self._peers) >= KNOWN_CERTIFICATES:
                del self._peers[next(iter(self._peers))]
            self._peers[host] = trusted
        return trusted

    def _header(self, scope: Any) -> bytes | None:
        found: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == self._name:
                if found is not None:
                    raise InvalidRequest(
                        "the request carries more than one client certificate header"
                    )
                found = bytes(value)
        return found or None  # an empty header: no certificate


def _inside(host: str, networks: tuple[_Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def _refused(what: str) -> InvalidToken:
    return InvalidToken(f"the client certificate {what}")


def _from_rfc9440(value: bytes) -> str:
    # RFC 9440 §2.2: Client-Cert is one byte sequence holding the DER certificate.
    if len(value) > MAX_CERTIFICATE_BYTES * 2:
        raise _refused(f"header is longer than {MAX_CERTIFICATE_BYTES * 2} bytes")
    match = _BYTE_SEQUENCE.fullmatch(value)
    if match is None:
        raise _refused("header is not a structured-field byte sequence (:base64:)")
    encoded = match.group(1).rstrip(b"=")
    try:
        der = base64.b64decode(encoded + b"=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _refused("header is not valid base64") from None
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise _refused(f"is longer than {MAX_CERTIFICATE_BYTES} bytes")
    _parse(x509.load_der_x509_certificate, der)
    return thumbprint(der)


def _from_nginx(value: bytes) -> str:
    # nginx's $ssl_client_escaped_cert: the PEM, URL-escaped.
    if len(value) > MAX_CERTIFICATE_BYTES * 3:
        raise _refused(f"header is longer than {MAX_CERTIFICATE_BYTES * 3} bytes")
    return _from_pem(unquote_to_bytes(value))


def _from_xfcc(value: bytes) -> str:
    # Envoy's x-forwarded-client-cert: Hash is the hex SHA-256 of the DER the proxy
    # verified, which is all RFC 8705 compares; Cert, when sent, must agree with it.
    if len(value) > MAX_XFCC_BYTES:
        raise _refused(f"header is longer than {MAX_XFCC_BYTES} bytes")
    try:
        pairs = only_element(value)
    except MalformedXFCC as exc:
        raise _refused(f"header {exc}") from None
    digest, cert = pairs.get("hash"), pairs.get("cert")
    if cert is None:
        if digest is None:
            raise _refused(
                "header names no certificate (neither Hash nor Cert): have Envoy send them "
                "(forward_client_cert_details: SANITIZE_SET, set_current_client_cert_details: "
                "{cert: true})"
            )
        return _from_hex_digest(digest)
    found = _from_nginx(cert)  # the same URL-escaped PEM
    if digest is not None and _from_hex_digest(digest) != found:
        raise _refused("header's Hash is not the SHA-256 of its Cert")
    return found


def _from_hex_digest(digest: bytes) -> str:
    if _HEX_DIGEST.fullmatch(digest) is None:
        raise _refused("header's Hash is not a hex SHA-256 digest")
    return b64url(bytes.fromhex(digest.decode("ascii")))


def _from_pem(pem: bytes | str) -> str:
    if isinstance(pem, str):
        pem = pem.encode("ascii")
    if len(pem) > MAX_CERTIFICATE_BYTES:
        raise _refused(f"is longer than {MAX_CERTIFICATE_BYTES} bytes")
    # The PEM parser takes the first block and ignores the rest: a second is no
    # certificate of the client's, so refuse it rather than pick one.
    if pem.count(b"-----BEGIN") > 1:
        raise _refused("is not one PEM certificate")
    certificate = _parse(x509.load_pem_x509_certificate, pem)
    return thumbprint(certificate.public_bytes(Encoding.DER))


_DECODERS = {"rfc9440": _from_rfc9440, "nginx": _from_nginx, "xfcc": _from_xfcc}


def _parse(load: Any, data: bytes) -> x509.Certificate:
    try:
        certificate: x509.Certificate = load(data)
    except Exception as exc:  # hostile bytes reaching the parser: refused, never a 500
        raise _refused("is not an X.509 certificate") from exc
    return certificate


def _tls_certificate(scope: Any) -> str | None:
    # The ASGI TLS extension: PEM strings, the client's certificate first; a chain the
    # server could not verify (client_cert_error) is no certificate.
    extensions = scope.get("extensions")
    tls = extensions.get("tls") if isinstance(extensions, dict) else None
    if not isinstance(tls, dict) or tls.get("client_cert_error") is not None:
        return None
    chain = tls.get("client_cert_chain")
    if not isinstance(chain, list | tuple) or not chain:
        return None
    first = chain[0]
    if not isinstance(first, str) or not first.isascii():
        raise _refused("the server reports is not PEM text")
    return first


def check_certificate_binding(
    certificates: ClientCertificates, scope: Any, payload: bytes, mode: str
) -> None:
    """Refuse a request whose token is bound to a certificate it does not present.

    Args:
        certificates: where the request's client certificate is found.
        scope: the ASGI scope.
        payload: the verified token's claim set JSON.
        mode: its issuer's ``mtls`` setting (``"allow"`` or ``"require"``).

    Raises:
        InvalidToken: a bound token without its certificate, an unbound token where
            the issuer requires binding, an unreadable certificate.
        InvalidRequest: the certificate header appears more than once.
    """
    expected = bound_certificate(payload)
    if expected is None:
        if mode == "require":
            raise InvalidToken("this token's issuer requires certificate-bound tokens (RFC 8705)")
        return
    presented = certificates.thumbprint(scope)
    if presented is None:
        raise InvalidToken(
            "this token is bound to a client certificate, and the request presents none"
        )
    if not hmac.compare_digest(presented.encode("ascii"), expected.encode("ascii")):
        raise InvalidToken("the request's client certificate is not the one the token is bound to")
