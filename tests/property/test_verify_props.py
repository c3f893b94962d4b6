"""Properties of TokenVerifier: hostile input only ever yields AuthError; claims round-trip."""

from __future__ import annotations

import json
from collections.abc import Coroutine
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.config import Issuer
from asgi_sso.errors import AuthError, InvalidClaim, KeysUnavailable, UnknownKey
from asgi_sso.keys.jwk import KeySet, key_from_public
from asgi_sso.testing import FakeClock
from asgi_sso.testing.tokens import b64url, generate_key, mint
from asgi_sso.verify import TokenVerifier
from asgi_sso.verify.jws import der_signature

T = TypeVar("T")
ISS = "https://idp.test"
NOW = 1_700_000_000.0
KEY = generate_key("RS256", kid="k1")
KEYSET = KeySet([key_from_public(KEY.public_key, kid="k1")])
RESERVED = {"iss", "sub", "aud", "exp", "nbf", "iat", "scope", "scp", "tid"}


class WarmKeys:
    """A JWKS cache that always has the issuer's keys (no network, no event loop)."""

    def cached(self, uri: str) -> KeySet:
        return KEYSET

    async def find(self, uri: str, kid: str | None, alg: str) -> Any:
        raise UnknownKey()


class NoDiscovery:
    def cached(self, url: str) -> None:
        return None

    async def get(self, url: str, *, expected_issuer: str) -> Any:
        raise KeysUnavailable()


VERIFIER = TokenVerifier(
    [Issuer(issuer=ISS, audience="api://x", jwks_uri=f"{ISS}/jwks")],
    clock=FakeClock(NOW),
    jwks=WarmKeys(),  # type: ignore[arg-type]
    discovery=NoDiscovery(),  # type: ignore[arg-type]
)
BASE = {"iss": ISS, "sub": "alice", "aud": "api://x", "iat": NOW, "exp": NOW + 600}
VALID = mint(BASE, KEY)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends (keys are warm) without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coroutine.close()
    raise AssertionError("verification suspended although the keys are warm")


def refused(token: object, *, use_cache: bool = False) -> AuthError:
    try:
        run(VERIFIER.verify(token, use_cache=use_cache))  # type: ignore[arg-type]
    except AuthError as error:
        return error
    raise AssertionError("the token was accepted")


def test_the_unmutated_token_is_valid() -> None:
    assert run(VERIFIER.verify(VALID, use_cache=False)).subject == "alice"


@given(position=st.integers(0, len(VALID) - 1), replacement=st.characters())
@example(position=len(VALID) - 1, replacement="B")
@example(position=VALID.index("."), replacement="A")
def test_any_single_character_mutation_is_refused(position: int, replacement: str) -> None:
    if VALID[position] == replacement:
        replacement = "A" if replacement != "A" else "B"
    refused(VALID[:position] + replacement + VALID[position + 1 :])


@given(position=st.integers(0, len(VALID) - 1))
def test_deleting_or_duplicating_a_character_is_refused(position: int) -> None:
    refused(VALID[:position] + VALID[position + 1 :])
    refused(VALID[:position] + VALID[position] + VALID[position:])


@given(order=st.permutations([0, 1, 2]), keep=st.integers(1, 4))
def test_rearranged_segments_are_refused(order: list[int], keep: int) -> None:
    parts = VALID.split(".")
    arranged = [parts[i] for i in order] + [parts[2]]
    candidate = ".".join(arranged[:keep])
    if candidate != VALID:
        refused(candidate)


@given(st.text(max_size=300))
def test_arbitrary_text_is_refused_with_auth_error(text: str) -> None:
    refused(text)


@given(st.from_regex(r"[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,60}\.[A-Za-z0-9_-]{0,60}"))
def test_arbitrary_compact_shaped_text_is_refused(text: str) -> None:
    refused(text)


@given(header=st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8)))
def test_arbitrary_headers_are_refused(header: dict[str, Any]) -> None:
    head = b64url(json.dumps(header).encode())
    _, body, signature = VALID.split(".")
    refused(f"{head}.{body}.{signature}")


@given(
    st.binary(max_size=200) | st.none() | st.integers() | st.lists(st.text(max_size=5)),
    st.booleans(),
)
def test_non_text_is_refused(value: object, use_cache: bool) -> None:
    # With the cache on, too: a non-text token is never looked up (never hashed).
    error = refused(value, use_cache=use_cache)
    assert error.description == "the token must be text"


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(
    extra=st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
            lambda name: name not in RESERVED
        ),
        JSON_VALUES,
        max_size=6,
    )
)
def test_extra_claims_round_trip(extra: dict[str, Any]) -> None:
    token = mint({**BASE, **extra}, KEY)
    verified = run(VERIFIER.verify(token, use_cache=False))
    for name, value in extra.items():
        assert verified.claims[name] == value


def _not_a_number(value: object) -> bool:
    return type(value) is not int and type(value) is not float


@given(name=st.sampled_from(["nbf", "iat"]), value=JSON_VALUES.filter(_not_a_number))
@example(name="nbf", value=None)
@example(name="iat", value=None)
@example(name="nbf", value="1700000000")
@example(name="iat", value=True)
@example(name="nbf", value=False)
@example(name="iat", value=[NOW])
@example(name="nbf", value={})
def test_a_time_claim_that_is_not_a_numeric_date_is_refused(name: str, value: object) -> None:
    # RFC 7519 §4.1.5/§4.1.6: a present nbf/iat is a NumericDate; null is not absence.
    error = refused(mint({**BASE, name: value}, KEY))
    assert isinstance(error, InvalidClaim)
    assert error.description == f"the {name!r} claim must be a number (seconds since the epoch)"


@given(
    size=st.sampled_from([32, 48, 66]),
    data=st.data(),
)
@example(size=32, data=None)
def test_der_signature_matches_cryptography(size: int, data: st.DataObject | None) -> None:
    if data is None:  # leading zeros, a high bit and zero values: the edge cases of X.690
        raws = [bytes(64), b"\x80" + bytes(62) + b"\x01", bytes(31) + b"\xff" * 33]
    else:
        raws = [data.draw(st.binary(min_size=2 * size, max_size=2 * size))]
    for raw in raws:
        r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
        assert der_signature(raw, size) == encode_dss_signature(r, s)
