"""Tests for asgi_sso.keys.jwk: JWK parsing, thumbprints, algorithm fit and key sets."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from joserfc.jwk import ECKey, OKPKey, RSAKey

from asgi_sso.keys.jwk import (
    MAX_JWKS_KEYS,
    KeySet,
    key_from_public,
    key_from_secret,
    parse_jwk,
    parse_jwks,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_jwk() -> dict[str, Any]:
    key = RSAKey.generate_key(2048)
    return {**key.as_dict(private=False), "kid": "rsa-1"}


@pytest.fixture(scope="module")
def ec_jwk() -> dict[str, Any]:
    return {**ECKey.generate_key("P-256").as_dict(private=False), "kid": "ec-1"}


def test_rsa_jwk_verifies_rsa_algorithms_and_matches_joserfc_thumbprint(
    rsa_jwk: dict[str, Any],
) -> None:
    key = parse_jwk(rsa_jwk)
    assert key.kty == "RSA"
    assert key.kid == "rsa-1"
    assert isinstance(key.key, rsa.RSAPublicKey)
    assert key.thumbprint == RSAKey.import_key(rsa_jwk).thumbprint()
    for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
        assert key.can_verify(alg)
    assert not key.can_verify("ES256")
    assert not key.can_verify("HS256")


@pytest.mark.parametrize(
    ("crv", "alg"), [("P-256", "ES256"), ("P-384", "ES384"), ("P-521", "ES512")]
)
def test_ec_key_verifies_only_its_curves_algorithm(crv: str, alg: str) -> None:
    jwk = ECKey.generate_key(crv).as_dict(private=False)
    key = parse_jwk(jwk)
    assert isinstance(key.key, ec.EllipticCurvePublicKey)
    assert key.crv == crv
    assert key.thumbprint == ECKey.import_key(jwk).thumbprint()
    assert {a for a in ("ES256", "ES384", "ES512", "RS256") if key.can_verify(a)} == {alg}


def test_okp_keys_ed25519_and_ed448() -> None:
    ed = parse_jwk(OKPKey.generate_key("Ed25519").as_dict(private=False))
    assert isinstance(ed.key, ed25519.Ed25519PublicKey)
    assert ed.can_verify("EdDSA")
    assert ed.can_verify("Ed25519")
    big = parse_jwk(OKPKey.generate_key("Ed448").as_dict(private=False))
    assert isinstance(big.key, ed448.Ed448PublicKey)
    assert big.can_verify("EdDSA")
    assert not big.can_verify("Ed25519")


def test_jwk_alg_member_pins_the_algorithm(rsa_jwk: dict[str, Any]) -> None:
    key = parse_jwk({**rsa_jwk, "alg": "PS256"})
    assert key.alg == "PS256"
    assert key.can_verify("PS256")
    assert not key.can_verify("RS256")


def test_alg_that_does_not_fit_the_key_is_refused(ec_jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        parse_jwk({**ec_jwk, "alg": "RS256"})
    with pytest.raises(ValueError, match="not a supported signature algorithm"):
        parse_jwk({**ec_jwk, "alg": "RSA-OAEP"})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"use": "enc"}, "not 'sig'"),
        ({"key_ops": ["encrypt"]}, "key_ops"),
        ({"kty": "RSA", "n": "AQAB"}, "too small"),
        ({"n": "not base64!"}, "base64url"),
        ({"n": "AQAB=="}, "base64url"),
        ({"e": 5}, "base64url"),
        ({"kty": None}, "kty"),
        ({"kty": "XYZ"}, "not supported"),
        ({"kid": 7}, "kid"),
        ({"d": "AQAB"}, "private key material"),
    ],
)
def test_unusable_rsa_jwk_raises_value_error(
    rsa_jwk: dict[str, Any], change: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_jwk({**rsa_jwk, **change})


def test_ec_point_off_the_curve_is_refused(ec_jwk: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        parse_jwk({**ec_jwk, "y": b64(b"\x01" * 32)})


@pytest.mark.parametrize(
    "jwk",
    [
        {"kty": "EC", "crv": "secp256k1", "x": b64(b"\x01" * 32), "y": b64(b"\x01" * 32)},
        {"kty": "EC", "crv": "P-256", "x": b64(b"\x01" * 31), "y": b64(b"\x01" * 32)},
        {"kty": "OKP", "crv": "X25519", "x": b64(b"\x01" * 32)},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(b"\x01" * 31)},
        {"kty": "RSA", "n": b64(b"\xff" * 256), "e": b64(b"\x02")},
        [],
        "RSA",
    ],
)
def test_malformed_or_unsupported_jwk_raises_value_error(jwk: object) -> None:
    with pytest.raises(ValueError):
        parse_jwk(jwk)


def test_oct_key_only_from_configuration() -> None:
    jwk = {"kty": "oct", "k": b64(b"s" * 32), "kid": "h"}
    with pytest.raises(ValueError, match="only from configuration"):
        parse_jwk(jwk)
    key = parse_jwk(jwk, allow_symmetric=True)
    assert key.key == b"s" * 32
    assert key.can_verify("HS256")


def test_key_from_secret_respects_rfc7518_key_sizes() -> None:
    key = key_from_secret(b"k" * 48, kid="cfg")
    assert key.kid == "cfg"
    assert key.can_verify("HS256")
    assert key.can_verify("HS384")
    assert not key.can_verify("HS512")
    assert not key.can_verify("RS256")
    with pytest.raises(ValueError, match="at least 32 bytes"):
        key_from_secret(b"short")


def test_secret_key_repr_never_shows_the_secret() -> None:
    key = key_from_secret(b"super-secret-value-0123456789abcdef")
    assert "super-secret" not in repr(key)
    assert "super-secret" not in repr(KeySet([key]))


def test_key_from_public_accepts_private_keys_and_matches_parse_jwk(
    rsa_jwk: dict[str, Any],
) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    key = key_from_public(private, kid="e", alg="ES384")
    jwk = ECKey.import_key(private.public_key()).as_dict(private=False)
    assert key.thumbprint == parse_jwk(jwk).thumbprint
    assert key.can_verify("ES384")
    assert key_from_public(ed25519.Ed25519PrivateKey.generate()).can_verify("EdDSA")
    rsa_key = key_from_public(RSAKey.import_key(rsa_jwk).public_key)
    assert rsa_key.thumbprint == parse_jwk(rsa_jwk).thumbprint


def test_key_from_public_refuses_unsupported_keys() -> None:
    with pytest.raises(ValueError, match="unsupported key type"):
        key_from_public(x25519.X25519PrivateKey.generate().public_key())
    with pytest.raises(ValueError, match="not supported"):
        key_from_public(ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(ValueError, match="too small"):
        key_from_public(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    with pytest.raises(ValueError, match="does not fit"):
        key_from_public(ed25519.Ed25519PrivateKey.generate(), alg="RS256")


def test_key_set_candidates_by_kid_and_alg(rsa_jwk: dict[str, Any], ec_jwk: dict[str, Any]) -> None:
    rsa_key, ec_key = parse_jwk(rsa_jwk), parse_jwk(ec_jwk)
    twin = parse_jwk({**rsa_jwk, "alg": "RS256"})
    keys = KeySet([rsa_key, ec_key, twin])
    assert keys.candidates("rsa-1", "RS256") == (rsa_key, twin)
    assert keys.candidates("rsa-1", "PS256") == (rsa_key,)
    assert keys.candidates("rsa-1", "ES256") == ()
    assert keys.candidates("nope", "RS256") == ()
    assert keys.candidates(None, "ES256") == (ec_key,)
    assert keys.has_kid("ec-1")
    assert not keys.has_kid("nope")
    assert keys.kids == {"rsa-1", "ec-1"}
    assert len(keys) == 3
    assert list(keys) == [rsa_key, ec_key, twin]


def test_parse_jwks_skips_bad_keys_one_by_one(
    rsa_jwk: dict[str, Any], ec_jwk: dict[str, Any]
) -> None:
    body = msgspec.json.encode(
        {
            "keys": [
                rsa_jwk,
                {**ec_jwk, "kid": "enc", "use": "enc"},
                {"kty": "oct", "k": b64(b"x" * 32), "kid": "hmac"},
                {"kty": "RSA", "kid": "broken", "n": "@@", "e": "AQAB"},
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "kid": "priv",
                    "x": ec_jwk["x"],
                    "y": ec_jwk["y"],
                    "d": "AA",
                },
                {"kty": "RSA", "kid": "no-n"},
                42,
                ec_jwk,
            ]
        }
    )
    keys, skipped = parse_jwks(body)
    assert keys.kids == {"rsa-1", "ec-1"}
    assert len(skipped) == 6
    assert any("'enc'" in reason for reason in skipped)
    assert any("'hmac'" in reason and "configuration" in reason for reason in skipped)
    assert all("AA" not in reason.split(":", 1)[1] for reason in skipped if "priv" in reason)


def test_parse_jwks_caps_the_number_of_keys(ec_jwk: dict[str, Any]) -> None:
    body = msgspec.json.encode({"keys": [ec_jwk] * (MAX_JWKS_KEYS + 3)})
    keys, skipped = parse_jwks(body)
    assert len(keys) == MAX_JWKS_KEYS
    assert len(skipped) == 3


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'"keys"',
        b"{}",
        b'{"keys": {}}',
        b'{"keys": null}',
        '{"keys": []}'.encode("utf-16"),
        '{"keys": []}'.encode("utf-32"),
        b"\xef\xbb\xbf{}",
        b'{"keys": ["\xff"]}',
        b"[" * 100_000,
    ],
)
def test_parse_jwks_refuses_what_is_not_a_jwk_set(body: bytes) -> None:
    with pytest.raises(ValueError):
        parse_jwks(body)


def test_parse_jwks_accepts_an_empty_set() -> None:
    keys, skipped = parse_jwks(b'{"keys": []}')
    assert len(keys) == 0
    assert skipped == []
