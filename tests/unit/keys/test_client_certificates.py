"""A client key with its X.509 certificate: Entra ID's certificate credentials.

Keys and certificates are generated at test time.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from _certs import bad_version, pem_of
from _jwt import header_of
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.certificates import EXPIRY_WARNING
from asgi_sso.keys.client_auth import ClientKey, load_client_key, load_public_key
from asgi_sso.testing import ClientCertificate, FakeClock

RSA_CERT = ClientCertificate("entra-app", key_type="RSA")
EC_CERT = ClientCertificate("ec-app")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _key_pem(cert: ClientCertificate) -> str:
    return cert.key_pem().decode()


def _joserfc_key(cert: ClientCertificate) -> RSAKey | ECKey:
    kind = RSAKey if isinstance(cert.key, rsa.RSAPrivateKey) else ECKey
    return kind.import_key(cert.key_pem())


def _jwk(cert: ClientCertificate, **extra: Any) -> str:
    return json.dumps({**_joserfc_key(cert).as_dict(private=True), **extra})


@pytest.mark.parametrize("cert", [RSA_CERT, EC_CERT], ids=["rsa", "ec"])
@pytest.mark.parametrize("cert_first", [False, True], ids=["key-then-cert", "cert-then-key"])
def test_the_assertion_names_the_certificate_by_x5t_and_x5t_s256(
    cert: ClientCertificate, cert_first: bool
) -> None:
    parts = [_key_pem(cert), cert.pem]
    key = load_client_key("\n".join(reversed(parts) if cert_first else parts))
    header = header_of(key.sign({"iss": "app"}))
    assert header["x5t"] == _b64url(hashlib.sha1(cert.der).digest())
    assert header["x5t#S256"] == _b64url(hashlib.sha256(cert.der).digest()) == cert.thumbprint
    assert header["kid"] == key.kid == _joserfc_key(cert).thumbprint()
    # The signature verifies with the certificate's public key, as the IdP checks it.
    public = cert.certificate.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    verifier = RSAKey.import_key(public) if key.alg == "RS256" else ECKey.import_key(public)
    jws.deserialize_compact(key.sign({"iss": "app"}), verifier, algorithms=[key.alg])


def test_a_key_without_a_certificate_sends_no_thumbprint() -> None:
    key = load_client_key(_key_pem(RSA_CERT))
    assert key.certificate is None
    assert {"x5t", "x5t#S256"}.isdisjoint(header_of(key.sign({})))
    assert {"x5c", "x5t#S256"}.isdisjoint(key.public_jwk())


def test_the_public_jwk_carries_the_chain_and_its_sha256_thumbprint() -> None:
    ca = ClientCertificate("test-ca", ca=True)
    leaf = ClientCertificate("app", issuer=ca)
    key = load_client_key(leaf.pem + _key_pem(leaf) + ca.pem)
    public = key.public_jwk()
    assert public["x5c"] == [base64.b64encode(leaf.der).decode(), base64.b64encode(ca.der).decode()]
    assert public["x5t#S256"] == leaf.thumbprint
    assert not PRIVATE_MEMBERS & set(public)
    assert leaf.thumbprint in repr(key)
    assert "BEGIN" not in repr(key)


@pytest.mark.parametrize(
    "text",
    [
        _key_pem(RSA_CERT) + EC_CERT.pem,
        _key_pem(EC_CERT) + ClientCertificate().pem,
        _jwk(EC_CERT, x5c=[base64.b64encode(RSA_CERT.der).decode()]),
    ],
    ids=["rsa-key-ec-cert", "two-ec-keys", "jwk-x5c-of-another-key"],
)
def test_a_certificate_for_another_key_is_refused_without_showing_the_key(text: str) -> None:
    with pytest.raises(ConfigurationError, match="not for this key") as caught:
        load_client_key(text)
    assert "BEGIN" not in str(caught.value)
    assert _key_pem(EC_CERT).splitlines()[1][:20] not in str(caught.value)


def test_the_key_own_certificate_must_come_first_in_a_chain() -> None:
    ca = ClientCertificate("test-ca", ca=True)
    leaf = ClientCertificate("app", issuer=ca)
    with pytest.raises(ConfigurationError, match="must come first"):
        load_client_key(_key_pem(leaf) + ca.pem + leaf.pem)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (_key_pem(RSA_CERT) + _key_pem(EC_CERT), "readable"),
        (RSA_CERT.pem, "readable"),
        (_key_pem(RSA_CERT) + "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n", "readable"),
        (
            _key_pem(RSA_CERT) + "-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----",
            "readable",
        ),
        (_jwk(RSA_CERT, x5c="MIIB"), "readable"),
        (_jwk(RSA_CERT, x5c=["not base64!"]), "readable"),
        (_jwk(RSA_CERT, x5c=[base64.b64encode(b"nope").decode()]), "certificate"),
    ],
    ids=[
        "two-keys",
        "only-a-cert",
        "no-end-line",
        "garbage-cert",
        "x5c-string",
        "x5c-junk",
        "x5c-not-der",
    ],
)
def test_unusable_certificate_text_is_refused(text: str, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as caught:
        load_client_key(text, "LoginConfig.client_key")
    assert str(caught.value).startswith("LoginConfig.client_key")
    assert "bm9wZQ" not in str(caught.value)


def test_a_jwk_with_x5c_names_its_certificate() -> None:
    x5c = [base64.b64encode(RSA_CERT.der).decode()]
    key = load_client_key(_jwk(RSA_CERT, kid="entra-2026", x5c=x5c))
    header = header_of(key.sign({}))
    assert (header["kid"], header["x5t#S256"]) == ("entra-2026", RSA_CERT.thumbprint)
    assert key.public_jwk()["x5c"] == x5c


def test_a_jwk_thumbprint_that_does_not_match_its_x5c_is_refused() -> None:
    x5c = [base64.b64encode(RSA_CERT.der).decode()]
    wrong = _b64url(hashlib.sha256(b"another certificate").digest())
    with pytest.raises(ConfigurationError, match="x5t#S256"):
        load_client_key(_jwk(RSA_CERT, x5c=x5c, **{"x5t#S256": wrong}))
    with pytest.raises(ConfigurationError, match="x5t"):
        load_client_key(_jwk(RSA_CERT, x5c=x5c, x5t=wrong[:27]))
    right = _b64url(hashlib.sha1(RSA_CERT.der).digest())
    assert load_client_key(_jwk(RSA_CERT, x5c=x5c, x5t=right)).certificate is not None


def test_openssl_extras_around_the_blocks_are_ignored() -> None:
    params = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    bag = "Bag Attributes\n    localKeyID: 01\n"
    text = f"{bag}{params}{_key_pem(EC_CERT)}subject=CN=x\n{EC_CERT.pem}"
    key = load_client_key(text)
    assert key.certificate is not None
    assert key.certificate.x5t_s256 == EC_CERT.thumbprint


# -- validity ---------------------------------------------------------------------------------


def _now() -> float:
    return datetime.datetime.now(datetime.UTC).timestamp()


def test_an_expired_or_expiring_certificate_is_described() -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=3)
    old = ClientCertificate("old", not_after=past)
    key = load_client_key(_key_pem(old) + old.pem)
    assert key.certificate is not None
    problem = key.certificate.validity_problem(_now())
    assert problem is not None
    assert "expired on" in problem
    assert old.thumbprint in problem
    soon = ClientCertificate("soon")  # valid for one more day
    soon_key = load_client_key(_key_pem(soon) + soon.pem)
    assert soon_key.certificate is not None
    assert "expires on" in str(soon_key.certificate.validity_problem(_now()))
    # Made to be valid at a FakeClock's start too: it begins a day before that.
    before = soon_key.certificate.validity_problem(FakeClock().time() - 2 * 86400)
    assert "not valid before" in str(before)


def test_a_certificate_valid_for_long_raises_no_problem() -> None:
    far = datetime.datetime.now(datetime.UTC) + 2 * EXPIRY_WARNING
    cert = ClientCertificate("fresh", not_after=far)
    key = load_client_key(_key_pem(cert) + cert.pem)
    assert key.certificate is not None
    assert key.certificate.validity_problem(_now()) is None


# -- keys only published ----------------------------------------------------------------------


@pytest.mark.parametrize("cert", [RSA_CERT, EC_CERT], ids=["rsa", "ec"])
def test_a_published_key_may_be_public_or_private_and_publishes_the_same_jwk(
    cert: ClientCertificate,
) -> None:
    public_pem = (
        cert.certificate.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    from_public = load_public_key(public_pem + cert.pem)
    from_private = load_public_key(_key_pem(cert) + cert.pem)
    assert not from_public.is_private
    assert from_private.is_private
    assert from_public.public_jwk() == from_private.public_jwk()
    assert from_public.public_jwk()["x5t#S256"] == cert.thumbprint
    with pytest.raises(ConfigurationError, match="client_key is a public key"):
        load_client_key(public_pem)


def test_a_published_key_is_read_like_a_client_key() -> None:
    with pytest.raises(ConfigurationError, match="published_keys"):
        load_public_key("not a key")
    with pytest.raises(ConfigurationError, match="not for this key"):
        load_public_key(_key_pem(RSA_CERT) + EC_CERT.pem)
    assert isinstance(load_public_key(_jwk(EC_CERT)), ClientKey)


# -- certificates the parser cannot read ------------------------------------------------------


_BAD_VERSION = bad_version(EC_CERT.der)


@pytest.mark.parametrize(
    "text",
    [
        _key_pem(EC_CERT) + pem_of(_BAD_VERSION),
        _jwk(EC_CERT, x5c=[base64.b64encode(_BAD_VERSION).decode()]),
    ],
    ids=["pem", "x5c"],
)
@pytest.mark.parametrize("load", [load_client_key, load_public_key])
def test_a_certificate_with_an_unknown_x509_version_is_refused(
    text: str, load: Callable[[str, str], ClientKey]
) -> None:
    # cryptography raises InvalidVersion here, which is not a ValueError.
    with pytest.raises(ConfigurationError, match=r"certificate|readable") as caught:
        load(text, "client_key")
    assert str(caught.value).startswith("client_key")


_RSA_JWK = _joserfc_key(RSA_CERT).as_dict(private=True)


@pytest.mark.parametrize(
    "members",
    [("p", "q", "dp", "dq", "qi"), ("p",), ("qi",), ("k",)],
    ids=["crt", "p", "qi", "k"],
)
@pytest.mark.parametrize("load", [load_client_key, load_public_key])
def test_a_jwk_with_private_members_but_no_private_key_is_refused(
    members: tuple[str, ...], load: Callable[[str, str], ClientKey]
) -> None:
    # p and q alone give the private key away: never taken for a public key.
    jwk = {name: _RSA_JWK[name] for name in ("kty", "n", "e")}
    jwk.update({name: _RSA_JWK.get(name, "c2VjcmV0") for name in members})
    with pytest.raises(ConfigurationError, match="private members") as caught:
        load(json.dumps(jwk), "published_keys[0]")
    assert str(caught.value).startswith("published_keys[0]")
    assert not any(str(_RSA_JWK[m])[:12] in str(caught.value) for m in ("p", "q"))


@pytest.mark.parametrize(
    "label", ["TRUSTED CERTIFICATE", "X509 CERTIFICATE", "CERTIFICATE REQUEST"]
)
def test_a_certificate_block_of_another_label_is_refused_not_ignored(label: str) -> None:
    # openssl x509 -trustout writes TRUSTED CERTIFICATE: taken silently, the key would go
    # without the certificate the IdP looks for.
    block = EC_CERT.pem.replace("CERTIFICATE", label)
    with pytest.raises(ConfigurationError, match=f"{label}.*only 'CERTIFICATE'") as caught:
        load_client_key(_key_pem(EC_CERT) + block, "client_key")
    assert str(caught.value).startswith("client_key")


def _rsa_public(bits: int) -> Any:
    # A public modulus of that size, no primes needed: quick to make at any size.
    modulus = secrets.randbits(bits) | 1 | (1 << (bits - 1))
    return rsa.RSAPublicNumbers(65537, modulus).public_key()


@pytest.mark.parametrize("as_jwk", [False, True], ids=["pem", "jwk"])
def test_an_rsa_key_above_8192_bits_is_refused(as_jwk: bool) -> None:
    # Each use of a huge key costs seconds of CPU (parsing it, signing with it).
    public = _rsa_public(8200)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    text = json.dumps(RSAKey.import_key(pem).as_dict()) if as_jwk else pem.decode()
    with pytest.raises(ConfigurationError, match="at most 8192 bits"):
        load_public_key(text)
    assert (
        load_public_key(
            _rsa_public(8192)
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        ).alg
        == "RS256"
    )
