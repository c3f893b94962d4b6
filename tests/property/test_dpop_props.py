"""Properties of DPoP proof checking: hostile proofs only ever yield InvalidDPoPProof."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_sso.config import Limits, Secret
from asgi_sso.errors import InvalidDPoPProof, UseDPoPNonce
from asgi_sso.testing import FakeClock
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.testing.strategies import hostile_dpop_proofs
from asgi_sso.verify.dpop import CheckedProof, DPoPChecker, DPoPNonces, ReplayCache, normalize_htu

CLOCK = FakeClock()
CLIENT = DPoPClient(clock=CLOCK)
URL = "https://api.test/things"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
MEMORY = ReplayCache(100_000, CLOCK)
CHECKER = DPoPChecker(Limits(dpop_proof_window=60.0), CLOCK, memory=MEMORY)


def refused(proof: object) -> bool:
    before = len(MEMORY)
    try:
        asyncio.run(CHECKER.check(proof, method="GET", url=URL, token=TOKEN, jkt=CLIENT.jkt))
    except InvalidDPoPProof:
        return len(MEMORY) == before  # a refused proof takes no memory
    return False


@given(hostile_dpop_proofs(CLIENT, "GET", URL, TOKEN))
def test_hostile_proofs_are_refused_as_invalid_dpop_proofs(proof: str) -> None:
    assert refused(proof)


@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
        st.none(),
        st.integers(),
    )
)
def test_garbage_never_escapes_as_anything_but_a_refusal(proof: object) -> None:
    assert refused(proof)


@given(
    st.dictionaries(
        st.sampled_from(["typ", "jwk", "alg", "kid", "crit", "b64", "x5c"]),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
            max_leaves=8,
        ),
    )
)
def test_arbitrary_headers_are_refused_unless_they_keep_the_proof_valid(
    headers: dict[str, object],
) -> None:
    # The signature is the client's ES256 one; ``None`` removes a member (see mint).
    proof = CLIENT.proof("GET", URL, TOKEN, headers=headers)
    effective = {"typ": "dpop+jwt", "jwk": CLIENT.jwk, "alg": "ES256", **headers}
    effective = {name: value for name, value in effective.items() if value is not None}
    typ = effective.get("typ")
    valid = (
        isinstance(typ, str)
        and typ.lower() == "dpop+jwt"
        and effective.get("jwk") == CLIENT.jwk
        and effective.get("alg") == "ES256"
        and "crit" not in effective
        and effective.get("b64", True) is True
        and isinstance(effective.get("kid", ""), str)
    )
    assert refused(proof) is not valid


def test_a_valid_proof_passes_the_same_checker() -> None:
    # The properties above would hold for a checker refusing everything.
    proof = CLIENT.proof("GET", URL, TOKEN)
    asyncio.run(CHECKER.check(proof, method="GET", url=URL, token=TOKEN, jkt=CLIENT.jkt))


@given(st.text(max_size=80))
def test_htu_normalisation_is_idempotent(url: str) -> None:
    once = normalize_htu(url)
    assert once is None or normalize_htu(once) == once


@given(
    st.sampled_from(["http", "HTTP", "https", "HtTpS"]),
    st.sampled_from(["api.test", "API.Test"]),
    st.text(alphabet="abc/~-%7E", max_size=12),
)
def test_htu_spellings_of_one_url_compare_equal(scheme: str, host: str, path: str) -> None:
    url = f"{scheme}://{host}/{path}"
    lowered = f"{scheme.lower()}://{host.lower()}/{path.replace('%7E', '~')}"
    assert normalize_htu(url) == normalize_htu(lowered)


NONCES = DPoPNonces((Secret(b"n" * 32),), 300.0, CLOCK)
NONCE_CHECKER = DPoPChecker(Limits(), CLOCK, memory=MEMORY, nonces=NONCES)


@given(
    st.one_of(
        st.none(),
        st.text(max_size=40),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                min_size=22, max_size=22),
        st.integers(),
        st.lists(st.text(max_size=3), max_size=2),
        st.builds(lambda n, i, c: n[:i] + c + n[i + 1:], st.just(NONCES.current()),
                  st.integers(0, 21), st.sampled_from("Aa0-_")),
    )
)  # fmt: skip
def test_only_an_accepted_nonce_lets_a_proof_pass(nonce: object) -> None:
    proof = CLIENT.proof("GET", URL, TOKEN, claims={"nonce": nonce})
    check = NONCE_CHECKER.check(proof, method="GET", url=URL, token=TOKEN, jkt=CLIENT.jkt)
    if nonce == NONCES.current():
        asyncio.run(check)
        return
    with pytest.raises(UseDPoPNonce) as refusal:
        asyncio.run(check)
    assert refusal.value.headers == [(b"dpop-nonce", NONCES.current().encode())]


EXTERNAL = "https://api.example.com/base"
segments = st.text(alphabet="abcXYZ019-._~%!$&'()*+,;=:@", min_size=1, max_size=8)


@given(st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts)))
def test_behind_an_external_url_only_a_proof_for_it_passes(path: str) -> None:
    checker = DPoPChecker(Limits(), CLOCK, memory=MEMORY, external_url=EXTERNAL)
    scope = {"type": "http", "scheme": "http", "path": "/app" + path, "root_path": "/app",
             "headers": [(b"host", b"127.0.0.1:8000")]}  # fmt: skip

    def check(url: str) -> Coroutine[Any, Any, CheckedProof]:
        proof = CLIENT.proof("GET", url, TOKEN)
        here = checker.request_url(scope)
        return checker.check(proof, method="GET", url=here, token=TOKEN, jkt=CLIENT.jkt)

    spelled = quote(path, safe="/!$&'()*+,;=:@-._~")  # the scope's path is decoded: "%" was "%25"
    asyncio.run(check(EXTERNAL + spelled))
    with pytest.raises(InvalidDPoPProof, match="htu"):
        asyncio.run(check("http://127.0.0.1:8000/app" + path))
