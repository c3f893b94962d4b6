"""Token helpers: mint signs what it is given; each bad variant is bad in exactly one way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from asgi_sso.errors import ConfigurationError
from asgi_sso.testing import FakeClock, TokenFactory, generate_key, mint, public_jwk
from asgi_sso.testing.tokens import alg_none, tamper_payload, tamper_signature

NOW = 1_700_000_000


def part(token: str, index: int) -> dict[str, Any]:
    seg = token.split(".")[index]
    return dict(json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))))


@pytest.fixture(scope="module")
def key() -> Any:
    return generate_key("RS256", kid="k1")


@pytest.fixture
def factory(key: Any) -> TokenFactory:
    return TokenFactory("https://idp.example", key, audience="api://a", clock=FakeClock(NOW))


def verifies(token: str, key: Any, alg: str = "RS256") -> bool:
    try:
        jwt.decode(token, KeySet([key]), algorithms=[alg])
    except BadSignatureError:
        return False
    return True


@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "Ed25519"])
def test_mint_signs_with_each_algorithm(alg: str) -> None:
    k = generate_key(alg)
    token = mint({"sub": "x"}, k, headers={"typ": "at+jwt", "jku": "https://evil.example"})
    assert part(token, 0) == {
        "alg": alg,
        "typ": "at+jwt",
        "kid": k.kid,
        "jku": "https://evil.example",
    }
    assert part(token, 1) == {"sub": "x"}
    assert jwt.decode(token, KeySet.import_key_set({"keys": [public_jwk(k)]}),
                      algorithms=[alg]).claims == {"sub": "x"}  # fmt: skip


def test_public_jwk_has_no_private_members(key: Any) -> None:
    jwk = public_jwk(key)
    assert (jwk["kid"], jwk["alg"], jwk["use"]) == ("k1", "RS256", "sig")
    assert "d" not in jwk


def test_generate_key_refuses_symmetric_and_unknown_algorithms() -> None:
    for alg in ("HS256", "none", "RS1"):
        with pytest.raises(ConfigurationError):
            generate_key(alg)


def test_mint_can_omit_kid(key: Any) -> None:
    assert "kid" not in part(mint({}, key, kid=""), 0)


def test_factory_claims_follow_rfc9068(factory: TokenFactory) -> None:
    token = factory.token(sub="alice", scopes=["read", "write"], groups=["g"])
    header, claims = part(token, 0), part(token, 1)
    assert header["typ"] == "at+jwt"
    assert claims["iss"] == "https://idp.example"
    assert claims["aud"] == "api://a"
    assert (claims["iat"], claims["exp"]) == (NOW, NOW + 300)
    assert claims["scope"] == "read write"
    assert claims["groups"] == ["g"]
    assert claims["jti"]
    assert "aud" not in factory.claims(claims={"aud": None})


def test_expired_and_not_yet_valid(factory: TokenFactory, key: Any) -> None:
    expired = part(factory.expired(), 1)
    assert expired["exp"] < NOW - 60
    early = part(factory.not_yet_valid(), 1)
    assert early["nbf"] > NOW + 60
    assert early["iat"] > NOW + 60
    assert verifies(factory.expired(), key)


def test_wrong_audience_and_issuer_are_validly_signed(factory: TokenFactory, key: Any) -> None:
    assert part(factory.wrong_audience(), 1)["aud"] != "api://a"
    assert part(factory.wrong_issuer(), 1)["iss"] != "https://idp.example"
    assert verifies(factory.wrong_issuer(), key)


def test_tampered_variants_break_only_the_signature(factory: TokenFactory, key: Any) -> None:
    good = factory.token(sub="alice")
    bad = tamper_signature(good)
    assert bad.split(".")[:2] == good.split(".")[:2]
    assert not verifies(bad, key)
    rewritten = tamper_payload(good)
    assert part(rewritten, 1)["sub"] == "alice-admin"
    assert not verifies(rewritten, key)
    assert part(tamper_payload(good, aud="x"), 1)["aud"] == "x"
    assert not verifies(factory.tampered(), key)
    assert not verifies(factory.tampered_payload(), key)


def test_unknown_kid_is_signed_by_a_stranger(factory: TokenFactory, key: Any) -> None:
    token = factory.unknown_kid()
    assert part(token, 0)["kid"] != "k1"
    head, payload, sig = token.split(".")
    rs256 = JWSRegistry.algorithms["RS256"]
    signature = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
    assert not rs256.verify(f"{head}.{payload}".encode(), signature, key)


def test_alg_none_has_an_empty_signature(factory: TokenFactory) -> None:
    token = factory.alg_none(sub="alice")
    assert token.endswith(".")
    assert part(token, 0)["alg"] == "none"
    assert alg_none({"a": 1}).count(".") == 2


def test_hs256_with_public_key_is_the_confusion_attack(factory: TokenFactory, key: Any) -> None:
    token = factory.hs256_with_public_key(sub="alice")
    head, payload, sig = token.split(".")
    assert part(token, 0)["alg"] == "HS256"
    expected = hmac.new(key.as_pem(private=False), f"{head}.{payload}".encode(), hashlib.sha256)
    assert base64.urlsafe_b64decode(sig + "==") == expected.digest()


def test_factory_repr_shows_no_key_material(factory: TokenFactory, key: Any) -> None:
    assert repr(factory) == "TokenFactory(issuer='https://idp.example', kid='k1')"
