"""The sign-in's DPoP key: its proofs (RFC 9449 §4.2), its JWK, and when a sign-in makes one."""

from __future__ import annotations

import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from asgi_sso.config import Limits
from asgi_sso.keys.discovery import ProviderMetadata, parse_metadata
from asgi_sso.login.dpop import MAX_NONCE, DPoPKey, clean_nonce, signin_key
from asgi_sso.testing import FakeClock
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.verify.dpop import DPoPChecker, access_token_hash

TOKEN_URL = "https://idp.example/oauth2/token"


def opened(proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The proof's header and claims once its signature verified with its own ``jwk``."""
    compact = jws.extract_compact(proof.encode())
    header = dict(compact.headers())
    verified = jws.deserialize_compact(proof, ECKey.import_key(header["jwk"]), algorithms=["ES256"])
    return dict(verified.headers()), json.loads(verified.payload)


def test_a_token_request_proof_is_signed_by_the_key_it_carries(
    key: DPoPKey, clock: FakeClock
) -> None:
    header, claims = opened(key.proof("POST", TOKEN_URL))
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk}
    assert set(key.jwk) == {"kty", "crv", "x", "y"}  # the public key only
    assert claims["htm"] == "POST"
    assert claims["htu"] == TOKEN_URL
    assert claims["iat"] == int(clock.time())
    assert len(claims["jti"]) >= 16
    assert "ath" not in claims
    assert "nonce" not in claims


def test_each_proof_has_its_own_jti(key: DPoPKey) -> None:
    jtis = {opened(key.proof("POST", TOKEN_URL))[1]["jti"] for _ in range(20)}
    assert len(jtis) == 20


def test_htu_leaves_out_query_and_fragment(key: DPoPKey) -> None:
    _, claims = opened(key.proof("GET", "https://idp.example/userinfo?schema=openid#x"))
    assert claims["htu"] == "https://idp.example/userinfo"


def test_a_proof_presenting_a_token_carries_ath_and_the_nonce(key: DPoPKey) -> None:
    _, claims = opened(key.proof("GET", TOKEN_URL, access_token="at-123", nonce="n-1"))
    assert claims["ath"] == access_token_hash("at-123")
    assert claims["nonce"] == "n-1"


async def test_the_resource_server_checker_accepts_a_userinfo_proof(
    key: DPoPKey, clock: FakeClock
) -> None:
    checker = DPoPChecker(Limits(), clock)
    url = "https://idp.example/userinfo"
    proof = key.proof("GET", url, access_token="at-123")
    checked = await checker.check(proof, method="GET", url=url, token="at-123", jkt=key.jkt)
    assert checked.thumbprint == key.jkt


def test_the_private_jwk_round_trips_to_the_same_key(key: DPoPKey, clock: FakeClock) -> None:
    text = key.private_jwk()
    assert len(text) < 256  # a session record stays small
    again = DPoPKey.from_jwk(text, clock)
    assert again.jkt == key.jkt
    header, _ = opened(again.proof("POST", TOKEN_URL))
    assert header["jwk"] == key.jwk


def test_the_key_never_shows_in_its_repr(key: DPoPKey) -> None:
    private = json.loads(key.private_jwk())["d"]
    assert private not in repr(key)
    assert private not in str(key)
    assert key.jkt in repr(key)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[]",
        json.dumps(ECKey.generate_key("P-256", private=True).as_dict(private=False)),
        json.dumps(ECKey.generate_key("P-384", private=True).as_dict(private=True)),
        json.dumps(RSAKey.generate_key(2048, private=True).as_dict(private=True)),
        json.dumps({"kty": "EC", "crv": "P-256", "x": "A", "y": "B", "d": "C"}),
        "{" + " " * 2000 + "}",
    ],
    ids=["empty", "text", "array", "public", "p384", "rsa", "garbage", "huge"],
)
def test_a_bad_stored_key_is_refused_without_quoting_it(text: str, clock: FakeClock) -> None:
    with pytest.raises(ValueError) as caught:
        DPoPKey.from_jwk(text, clock)
    assert str(caught.value) in (
        "the DPoP key is not a readable JWK",
        "the DPoP key is not a private P-256 key",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc-DEF_123.~+/=", "abc-DEF_123.~+/="),
        ("!#[]", "!#[]"),
        ("n" * MAX_NONCE, "n" * MAX_NONCE),
        ("n" * (MAX_NONCE + 1), None),
        ("", None),
        (None, None),
        ("a b", None),
        ('a"b', None),
        ("a\\b", None),
        ("a\r\nSet-Cookie: x=1", None),
        ("caf\u00e9", None),
    ],
)
def test_only_a_well_formed_nonce_is_used(value: str | None, expected: str | None) -> None:
    assert clean_nonce(value) == expected


def _metadata(algs: list[str] | None) -> ProviderMetadata:
    doc: dict[str, Any] = {"issuer": "https://idp.example", "jwks_uri": "https://idp.example/k"}
    if algs is not None:
        doc["dpop_signing_alg_values_supported"] = algs
    return parse_metadata(json.dumps(doc).encode(), expected_issuer="https://idp.example")


def test_provider_metadata_reads_the_dpop_algorithms() -> None:
    assert _metadata(["ES256", "RS256"]).dpop_signing_alg_values_supported == ("ES256", "RS256")
    assert _metadata(None).dpop_signing_alg_values_supported == ()


@pytest.mark.parametrize(
    ("mode", "algs", "makes_key"),
    [
        ("auto", ["ES256"], True),
        ("auto", ["RS256", "ES256", "EdDSA"], True),
        ("auto", ["RS256", "PS256"], False),
        ("auto", [], False),
        ("auto", None, False),
        ("off", ["ES256"], False),
    ],
)
def test_a_sign_in_makes_a_key_only_where_the_provider_takes_es256(
    mode: Any, algs: list[str] | None, makes_key: bool, clock: FakeClock
) -> None:
    first = signin_key(mode, _metadata(algs), clock)
    assert (first is not None) is makes_key
    if first is not None:  # one key per sign-in, never shared
        second = signin_key(mode, _metadata(algs), clock)
        assert second is not None
        assert second.jkt != first.jkt


def test_the_test_kit_client_makes_the_same_claims(clock: FakeClock) -> None:
    # DPoPClient builds its claims with the production code: same members, same rules.
    client = DPoPClient(clock=clock)
    claims = client.claims("GET", "https://api.test/x?q=1", "at-1")
    assert set(claims) == {"jti", "htm", "htu", "iat", "ath"}
    assert claims["htu"] == "https://api.test/x?q=1"  # the kit sends what it is given
    assert claims["ath"] == access_token_hash("at-1")
    assert "ath" not in client.claims("GET", "https://api.test/x", None, extra={"iat": None})
