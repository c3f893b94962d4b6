"""Property tests for the JWK/JWKS parsers and the Cache-Control reader: hostile input only ever
becomes ValueError (or a skipped key), never another exception."""

from __future__ import annotations

import base64
from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.keys.fetch import max_age_of
from asgi_sso.keys.jwk import KeySet, parse_jwk, parse_jwks

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
b64url = st.binary(max_size=80).map(lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode())
member_values = b64url | json_scalars
jwk_like = st.fixed_dictionaries(
    {},
    optional={
        "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "rsa", ""]) | json_scalars,
        "crv": st.sampled_from(["P-256", "P-384", "P-521", "Ed25519", "Ed448", "X25519"])
        | json_scalars,
        "kid": st.text(max_size=10) | json_scalars,
        "alg": st.sampled_from(["RS256", "ES256", "EdDSA", "HS256", "none"]) | json_scalars,
        "use": st.sampled_from(["sig", "enc"]) | json_scalars,
        "key_ops": st.lists(st.sampled_from(["verify", "sign", "encrypt"]), max_size=3)
        | json_scalars,
        "n": member_values,
        "e": member_values,
        "x": member_values,
        "y": member_values,
        "k": member_values,
        "d": member_values,
    },
)


def only_value_errors(body: bytes) -> tuple[KeySet, list[str]] | None:
    try:
        return parse_jwks(body)
    except ValueError:
        return None


@given(st.binary(max_size=512))
@example(b'{"keys": []}'.decode().encode("utf-16"))
@example(b"[" * 10_000)
@example(b'{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}')
def test_parse_jwks_on_arbitrary_bytes_raises_only_value_error(body: bytes) -> None:
    only_value_errors(body)


@given(json_values)
def test_parse_jwks_on_arbitrary_json_raises_only_value_error(value: Any) -> None:
    result = only_value_errors(msgspec.json.encode(value))
    if not (isinstance(value, dict) and isinstance(value.get("keys"), list)):
        assert result is None


@given(st.lists(jwk_like | json_values, max_size=6))
@example([{"kty": "RSA", "n": "AQAB", "e": "AQAB"}])
@example([{"kty": "oct", "k": "c2VjcmV0"}])
def test_parse_jwks_accounts_for_every_key(entries: list[Any]) -> None:
    result = only_value_errors(msgspec.json.encode({"keys": entries}))
    assert result is not None
    keys, skipped = result
    assert len(keys) + len(skipped) == len(entries)
    assert all(key.kty != "oct" for key in keys)  # never a symmetric key from a remote set


@given(jwk_like)
def test_parse_jwk_raises_only_value_error(jwk: dict[str, Any]) -> None:
    try:
        key = parse_jwk(jwk, allow_symmetric=True)
    except ValueError:
        return
    assert jwk.get("use") in (None, "sig")
    assert key.kid == jwk.get("kid")


@given(st.text(max_size=60), st.none() | st.text(max_size=8))
@example("max-age=" + "9" * 400, None)
@example("max-age=١٢", None)  # Unicode digits are not a delta-seconds value
@example("max-age=²", None)
@example("max-age=60", "²")
def test_max_age_of_never_raises_and_is_never_negative(header: str, age: str | None) -> None:
    value = max_age_of(header, age)
    assert value is None or value >= 0.0
