"""The X.509 certificate that names a client key: read, matched to the key, thumbprinted.

Entra ID takes ``private_key_jwt`` only from a key whose certificate was uploaded
to the app registration, and finds that certificate by the assertion header's
``x5t`` (base64url SHA-1 of its DER, RFC 7515 §4.1.7) or ``x5t#S256`` (SHA-256,
§4.1.8). The certificate travels with the key: PEM blocks in one text (key and
certificate in either order, a chain after the leaf, anything else between them
ignored) or a JWK's ``x5c`` (RFC 7517 §4.7, leaf first).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import re
from collections.abc import Sequence
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.jwk import b64url

__all__ = [
    "EXPIRY_WARNING",
    "UNREADABLE",
    "KeyCertificate",
    "certificate_for",
    "split_pem",
    "x5c_certificates",
]

EXPIRY_WARNING: Final = datetime.timedelta(days=30)
"""A certificate ending sooner than this is warned about at start-up."""
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,64})-----")
_MAX_CHAIN: Final = 8
UNREADABLE: Final = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion)
"""What cryptography raises on a certificate it cannot read (``InvalidVersion`` is no
``ValueError``)."""


class KeyCertificate:
    """A client key's certificate, with the chain that came after it.

    Attributes:
        chain: the certificates, the key's own first.
        x5t: base64url SHA-1 of the first certificate's DER (RFC 7515 §4.1.7).
        x5t_s256: base64url SHA-256 of it (``x5t#S256``, RFC 7515 §4.1.8).
    """

    __slots__ = ("chain", "x5t", "x5t_s256")

    def __init__(self, chain: Sequence[x509.Certificate]) -> None:
        self.chain = tuple(chain)
        der = self.chain[0].public_bytes(Encoding.DER)
        self.x5t = b64url(hashlib.sha1(der, usedforsecurity=False).digest())
        self.x5t_s256 = b64url(hashlib.sha256(der).digest())

    def __repr__(self) -> str:
        return f"KeyCertificate(x5t#S256={self.x5t_s256!r})"

    def x5c(self) -> list[str]:
        """The chain as JWK ``x5c``: standard base64 of each DER, leaf first (RFC 7517 §4.7)."""
        return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in self.chain]

    def validity_problem(self, now: float) -> str | None:
        """Why the certificate is, or soon will be, refused by an IdP at ``now``; else ``None``."""
        leaf = self.chain[0]
        moment = datetime.datetime.fromtimestamp(now, datetime.UTC)
        end = leaf.not_valid_after_utc
        if moment < leaf.not_valid_before_utc:
            start = leaf.not_valid_before_utc.isoformat()
            return f"the certificate (x5t#S256 {self.x5t_s256}) is not valid before {start}"
        if moment >= end:
            return (
                f"the certificate (x5t#S256 {self.x5t_s256}) expired on {end.isoformat()}: "
                "IdPs that check it refuse the assertions; upload and deploy a new one"
            )
        if end - moment < EXPIRY_WARNING:
            return f"the certificate (x5t#S256 {self.x5t_s256}) expires on {end.isoformat()}"
        return None


def split_pem(text: str, name: str = "the text") -> tuple[list[str], list[bytes]]:
    """The key PEM blocks and the certificates' DER in ``text``, each in the order given.

    Blocks other than keys and certificates (``EC PARAMETERS``) and any text
    between blocks (``Bag Attributes`` from ``openssl pkcs12``) are ignored.

    Raises:
        ValueError: a block without its END line, or a certificate that is not one.
        ConfigurationError: a certificate block labelled otherwise than ``CERTIFICATE``
            (the message names ``name``).
    """
    keys: list[str] = []
    certificates: list[bytes] = []
    position = 0
    while (begin := _BEGIN.search(text, position)) is not None:
        end_line = f"-----END {begin.group(1)}-----"
        end = text.find(end_line, begin.end())
        if end < 0:
            raise ValueError("a PEM block has no END line")
        position = end + len(end_line)
        block = text[begin.start() : position]
        label = begin.group(1)
        if label == "CERTIFICATE":
            certificates.append(_pem_certificate(block))
        elif "CERTIFICATE" in label:
            # Ignored, it would leave the key without the certificate the IdP looks for.
            raise ConfigurationError(
                f"{name} holds a {label!r} block: give the certificate as PEM labelled "
                "only 'CERTIFICATE' (openssl x509 -in FILE)"
            )
        elif label.endswith(("PRIVATE KEY", "PUBLIC KEY")):
            keys.append(block)
    return keys, certificates


def _pem_certificate(block: str) -> bytes:
    try:
        return x509.load_pem_x509_certificate(block.encode()).public_bytes(Encoding.DER)
    except UNREADABLE as exc:
        raise ValueError("a certificate cannot be read") from exc


def x5c_certificates(value: Any) -> list[bytes]:
    """The DER certificates of a JWK's ``x5c``: a list of standard base64 strings.

    Raises:
        ValueError: not a non-empty list of base64 strings.
    """
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError("x5c must be a list of base64 certificates")
    try:
        return [base64.b64decode(entry, validate=True) for entry in value]
    except binascii.Error as exc:
        raise ValueError("x5c holds something other than base64") from exc


def certificate_for(public_key: Any, ders: Sequence[bytes], name: str) -> KeyCertificate:
    """The certificates ``ders`` as the key's certificate, checked to hold ``public_key``.

    Raises:
        ConfigurationError: not a certificate, too long a chain, or the first
            certificate is not for this key (the message names ``name``, never the key).
    """
    if len(ders) > _MAX_CHAIN:
        raise ConfigurationError(f"{name} holds more than {_MAX_CHAIN} certificates")
    try:
        chain = [x509.load_der_x509_certificate(der) for der in ders]
        certified = (
            chain[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        )
    except UNREADABLE as exc:
        raise ConfigurationError(f"{name} holds a certificate that cannot be read") from exc
    own = public_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if certified != own:
        raise ConfigurationError(
            f"{name}: the certificate is not for this key (its public key differs; the "
            "key's own certificate must come first in a chain)"
        )
    return KeyCertificate(chain)
