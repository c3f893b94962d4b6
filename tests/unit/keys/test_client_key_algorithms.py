"""Which algorithm a client key signs its assertions with: RS256, PS256 or ES256.

A JWK's ``alg`` binds the key to that algorithm; an RSA key read from PEM signs
RS256 unless the provider takes only PS256 (its ``*_auth_signing_alg_values_supported``).
Keys are generated at test time.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import given
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.client_auth import ClientAuth, ClientKey, load_client_key

RSA = RSAKey.generate_key(2048)
EC = ECKey.generate_key("P-256")
ALGS = ["RS256", "PS256", "ES256", "RS384", "EdDSA", "none"]


def _pem(key: Any) -> str:
    return str(key.as_pem(private=True).decode())


def _jwk(key: Any, **extra: Any) -> str:
    return json.dumps({**key.as_dict(private=True), **extra})


def _segments(token: str) -> tuple[dict[str, Any], bytes, bytes]:
    head, payload, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    return header, f"{head}.{payload}".encode(), base64.urlsafe_b64decode(signature + "==")


def _verify_pss(token: str) -> None:
    # RFC 7518 §3.5: RSASSA-PSS with SHA-256, MGF1 with SHA-256, salt as long as the hash.
    _, signed, signature = _segments(token)
    public = RSA.raw_value.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    public.verify(signature, signed, pss, hashes.SHA256())


def _verify_pkcs1(token: str) -> None:
    _, signed, signature = _segments(token)
    RSA.raw_value.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())


def test_a_jwk_naming_ps256_signs_ps256() -> None:
    key = load_client_key(_jwk(RSA, alg="PS256", kid="rsa-pss"))
    assert (key.alg, key.algs) == ("PS256", ("PS256",))
    token = key.sign({"iss": "app"})
    assert _segments(token)[0]["alg"] == "PS256"
    _verify_pss(token)
    with pytest.raises(InvalidSignature):
        _verify_pkcs1(token)
    assert key.public_jwk()["alg"] == "PS256"


def test_a_jwk_naming_rs256_signs_rs256_only() -> None:
    key = load_client_key(_jwk(RSA, alg="RS256"))
    assert key.algs == ("RS256",)
    _verify_pkcs1(key.sign({"iss": "app"}))
    assert key.public_jwk()["alg"] == "RS256"
    with pytest.raises(ValueError, match="PS256"):
        key.sign({"iss": "app"}, alg="PS256")


def test_a_pem_rsa_key_signs_rs256_by_default_and_ps256_when_asked() -> None:
    key = load_client_key(_pem(RSA))
    assert (key.alg, key.algs) == ("RS256", ("RS256", "PS256"))
    _verify_pkcs1(key.sign({"iss": "app"}))
    pss = key.sign({"iss": "app"}, alg="PS256")
    assert _segments(pss)[0]["alg"] == "PS256"
    _verify_pss(pss)
    # Published without alg: an IdP that honours a JWK's alg would refuse the other one.
    public = key.public_jwk()
    assert "alg" not in public
    jws.deserialize_compact(pss, RSAKey.import_key(public), algorithms=["PS256"])


def test_an_ec_key_signs_es256_only() -> None:
    key = load_client_key(_pem(EC))
    assert key.algs == ("ES256",)
    assert key.public_jwk()["alg"] == "ES256"
    with pytest.raises(ValueError, match="PS256"):
        key.sign({}, alg="PS256")


@pytest.mark.parametrize(
    ("key", "alg"),
    [(RSA, "RS512"), (RSA, "ES256"), (EC, "PS256"), (RSA, "none"), (RSA, "HS256")],
)
def test_a_jwk_naming_an_algorithm_it_cannot_sign_is_refused(key: Any, alg: str) -> None:
    with pytest.raises(ConfigurationError, match="client_key") as caught:
        load_client_key(_jwk(key, alg=alg))
    assert "BEGIN" not in str(caught.value)


@given(st.lists(st.sampled_from(ALGS), max_size=6))
def test_the_algorithm_for_a_provider_is_one_it_takes_preferring_the_default(
    accepted: list[str],
) -> None:
    for key in (load_client_key(_pem(RSA)), load_client_key(_pem(EC))):
        chosen = key.signing_alg(accepted)
        if not accepted:
            assert chosen == key.alg  # the provider says nothing: the key's default
        elif key.alg in accepted:
            assert chosen == key.alg
        elif set(key.algs) & set(accepted):
            assert chosen in accepted
            assert chosen in key.algs
        else:
            assert chosen is None


def test_an_rsa_pem_key_signs_ps256_for_a_provider_taking_only_ps256() -> None:
    key = load_client_key(_pem(RSA))
    assert key.signing_alg(["PS256", "ES256"]) == "PS256"
    assert key.signing_alg(["RS256", "PS256"]) == "RS256"
    assert key.signing_alg(["ES256"]) is None
    bound = load_client_key(_jwk(RSA, alg="PS256"))
    assert bound.signing_alg(["RS256"]) is None
    assert bound.signing_alg(["RS256", "PS256"]) == "PS256"


def _auth(key: ClientKey) -> ClientAuth:
    return ClientAuth(client_id="app", method="private_key_jwt", key=key)


def test_client_auth_signs_with_the_algorithm_the_provider_takes() -> None:
    auth = _auth(load_client_key(_pem(RSA)))
    assert auth.alg == "RS256"
    pss = auth.accepting(["PS256"])
    assert pss is not None
    assert pss.alg == "PS256"
    form: dict[str, str] = {}
    pss.apply(form, endpoint="https://idp.example/token")
    _verify_pss(form["client_assertion"])
    assert auth.accepting(["ES256"]) is None
    assert auth.accepting([]) is auth
    secret = ClientAuth(client_id="app", method="client_secret_post", secret=b"s")
    assert secret.accepting(["ES256"]) is secret  # no key, nothing to sign


@pytest.mark.parametrize("algs", ["RS256", ()])
def test_a_client_key_built_by_hand_needs_a_tuple_of_algorithms(algs: Any) -> None:
    key = RSAKey.generate_key(2048)
    with pytest.raises(ConfigurationError, match="tuple of algorithms"):
        ClientKey(key, algs, None)
