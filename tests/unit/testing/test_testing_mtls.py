"""ClientCertificate: a certificate made at test time, and every form a request carries it in."""

from __future__ import annotations

import base64
import datetime
import hashlib
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from asgi_sso.testing import ClientCertificate


def test_the_thumbprint_and_cnf_name_the_der() -> None:
    cert = ClientCertificate("alice-laptop")
    digest = base64.urlsafe_b64encode(hashlib.sha256(cert.der).digest()).rstrip(b"=").decode()
    assert cert.thumbprint == digest
    assert cert.cnf() == {"cnf": {"x5t#S256": digest}}
    assert digest in repr(cert)
    assert ClientCertificate().thumbprint != cert.thumbprint  # a fresh key each time


def test_the_header_forms_decode_to_the_same_certificate() -> None:
    cert = ClientCertificate()
    value = cert.rfc9440()
    assert value.startswith(":")
    assert value.endswith(":")
    assert base64.b64decode(value[1:-1]) == cert.der
    assert "\n" not in cert.nginx()
    assert unquote(cert.nginx()) == cert.pem
    tls = cert.tls_extension()
    assert tls["client_cert_chain"] == [cert.pem]
    assert tls["client_cert_error"] is None
    assert tls["client_cert_name"] == "CN=test-client"


def test_a_ca_signs_a_client_certificate_that_names_its_key() -> None:
    ca = ClientCertificate("test-ca", ca=True)
    cert = ClientCertificate("client", issuer=ca)
    parsed = x509.load_der_x509_certificate(cert.der)
    assert parsed.issuer == ca.certificate.subject
    parsed.verify_directly_issued_by(ca.certificate)
    key = load_pem_private_key(cert.key_pem(), password=None)
    assert key.public_key() == parsed.public_key()
    usage = parsed.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_an_rsa_certificate_with_a_chosen_end_of_validity() -> None:
    end = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
    cert = ClientCertificate("entra-app", key_type="RSA", not_after=end)
    assert isinstance(cert.key, rsa.RSAPrivateKey)
    assert cert.certificate.not_valid_after_utc == end
    assert cert.certificate.not_valid_before_utc < end
    assert cert.certificate.public_key() == cert.key.public_key()
    key = load_pem_private_key(cert.key_pem(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
