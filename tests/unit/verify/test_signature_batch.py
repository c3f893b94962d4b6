"""Signature checks of concurrent requests run back to back, each with its own outcome."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_sso.config import Issuer
from asgi_sso.errors import AuthError, InvalidSignature
from asgi_sso.keys.jwk import key_from_secret
from asgi_sso.testing import FakeClock
from asgi_sso.testing.tokens import (
    alg_none,
    generate_key,
    hs256_with_public_key,
    mint,
    public_jwk,
    tamper_payload,
    tamper_signature,
)
from asgi_sso.verify import TokenVerifier
from asgi_sso.verify.jws import SignatureKey
from asgi_sso.verify.signature_batch import SignatureBatch

ISS = "https://idp.test"
START = 1_700_000_000.0
KEY = generate_key("RS256", kid="k1")
OTHER = generate_key("RS256", kid="k1")  # same kid, not the issuer's key
SECRET = key_from_secret(b"s" * 32, kid="h")


def _claims(n: int, **extra: Any) -> dict[str, Any]:
    claims = {"iss": ISS, "sub": f"user-{n}", "aud": "api://x", "iat": START, "exp": START + 600}
    return claims | extra


VALID = [mint(_claims(n), KEY) for n in range(6)]
HOSTILE = [
    tamper_signature(VALID[0]),
    tamper_payload(VALID[1], sub="mallory"),
    mint(_claims(7), OTHER),
    mint(_claims(8, exp=START - 3600), KEY),
    alg_none(_claims(9)),
    hs256_with_public_key(_claims(10), KEY),
    "not.a.token",
]
TOKENS = VALID + HOSTILE


def _hmac_check(message: bytes, good: bool = True) -> tuple[str, bytes, bytes, list[SignatureKey]]:
    signature = hmac.new(b"s" * 32, message, hashlib.sha256).digest()
    return "HS256", message, signature if good else signature[::-1], [SECRET]


async def test_checks_submitted_in_one_turn_run_as_one_batch_with_their_own_outcomes() -> None:
    batch = SignatureBatch(probe_every=1)
    checks = [_hmac_check(b"m%d" % i, good=i % 3 != 1) for i in range(7)]
    futures = [batch.submit(*check) for check in checks]
    assert all(f is not None and not f.done() for f in futures)
    await asyncio.sleep(0)  # the end of this turn: the batch runs
    for i, future in enumerate(futures):
        assert future is not None
        assert future.done()
        if i % 3 == 1:
            assert isinstance(future.exception(), InvalidSignature)
        else:
            assert future.result() is SECRET
    assert batch.sizes == {7: 1}


async def test_a_lone_request_checks_at_once_except_for_a_probe_now_and_then() -> None:
    batch = SignatureBatch(probe_every=4)
    outcomes = []
    for i in range(8):
        queued = batch.submit(*_hmac_check(b"%d" % i))
        outcomes.append(queued is not None)
        if queued is not None:
            assert await queued is SECRET
    # Every fourth check probed for company, found none, and stayed alone.
    assert outcomes == [False, False, False, True] * 2
    assert batch.sizes == {1: 2}


async def test_company_keeps_batching_on_until_a_batch_closes_alone() -> None:
    batch = SignatureBatch(probe_every=1000)
    with pytest.raises(ValueError, match="positive"):
        SignatureBatch(probe_every=0)
    for _ in range(999):
        assert batch.submit(*_hmac_check(b"alone")) is None
    first = batch.submit(*_hmac_check(b"probe"))
    joined = batch.submit(*_hmac_check(b"joins", good=False))  # arrives while it gathers
    assert first is not None
    assert joined is not None
    assert await first is SECRET
    with pytest.raises(InvalidSignature):
        await joined
    # Two closed together: the next lone check queues too, closes alone, turns it off.
    lone = batch.submit(*_hmac_check(b"lone"))
    assert lone is not None
    assert await lone is SECRET
    assert batch.submit(*_hmac_check(b"direct")) is None
    assert batch.sizes == {2: 1, 1: 1}


async def test_a_cancelled_request_leaves_the_others_of_its_batch_alone() -> None:
    batch = SignatureBatch(probe_every=1)
    gone = batch.submit(*_hmac_check(b"gone"))
    kept = batch.submit(*_hmac_check(b"kept"))
    assert gone is not None
    assert kept is not None
    gone.cancel()
    assert await kept is SECRET
    assert gone.cancelled()


def test_without_an_event_loop_every_check_runs_at_once() -> None:
    batch = SignatureBatch(probe_every=1)
    assert batch.submit(*_hmac_check(b"no loop")) is None
    assert batch.sizes == {}


async def test_a_batch_never_takes_a_check_of_another_live_loop() -> None:
    batch = SignatureBatch(probe_every=1)
    mine = batch.submit(*_hmac_check(b"mine"))

    async def elsewhere() -> asyncio.Future[SignatureKey] | None:
        return batch.submit(*_hmac_check(b"theirs"))

    with ThreadPoolExecutor(1) as pool:
        theirs = pool.submit(asyncio.run, elsewhere()).result()
    assert theirs is None  # checked at once on its own loop
    assert mine is not None
    assert await mine is SECRET
    assert batch.sizes == {1: 1}


def test_a_batch_left_behind_by_a_closed_loop_does_not_hold_up_the_next_loop() -> None:
    batch = SignatureBatch(probe_every=1)

    async def stop_before_the_turn_ends() -> None:
        asyncio.get_running_loop().stop()  # the batch's flush never gets its turn
        assert batch.submit(*_hmac_check(b"left behind")) is not None
        await asyncio.Event().wait()

    old = asyncio.new_event_loop()
    with pytest.raises(RuntimeError, match="stopped"):
        old.run_until_complete(stop_before_the_turn_ends())
    old.close()

    async def next_loop() -> None:
        queued = batch.submit(*_hmac_check(b"next"))
        assert queued is not None  # batches again, on this loop
        assert await queued is SECRET

    asyncio.run(next_loop())
    assert batch.sizes == {1: 1}


def _verifier() -> TokenVerifier:
    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [public_jwk(KEY)]})

    issuer = Issuer(issuer=ISS, audience="api://x", jwks_uri=f"{ISS}/jwks")
    client = httpx.AsyncClient(transport=httpx.MockTransport(serve))
    return TokenVerifier([issuer], client=client, clock=FakeClock(START))


async def _outcome(verifier: TokenVerifier, token: str) -> str:
    try:
        return (await verifier.verify(token, use_cache=False)).subject
    except AuthError as error:
        return type(error).__name__


def _alone(token: str) -> str:
    async def one() -> str:
        verifier = _verifier()
        verifier._signatures = SignatureBatch(probe_every=10**9)  # never queues
        return await _outcome(verifier, token)

    return asyncio.run(one())


ALONE = {token: _alone(token) for token in TOKENS}


def test_the_hostile_tokens_are_refused_alone() -> None:
    assert [ALONE[t] for t in VALID] == [f"user-{n}" for n in range(6)]
    assert [ALONE[t] for t in HOSTILE] == [
        "InvalidSignature",
        "InvalidSignature",
        "InvalidSignature",
        "ExpiredToken",
        "MalformedToken",
        "DisallowedAlgorithm",
        "MalformedToken",
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=12))
def test_concurrent_requests_get_the_outcome_each_token_gets_alone(tokens: list[str]) -> None:
    async def together() -> tuple[list[str], dict[int, int]]:
        verifier = _verifier()
        verifier._signatures = batch = SignatureBatch(probe_every=1)
        await verifier.verify(VALID[0], use_cache=False)  # keys fetched: one turn for all
        batch.sizes.clear()
        outcomes = await asyncio.gather(*(_outcome(verifier, t) for t in tokens))
        return outcomes, batch.sizes

    outcomes, sizes = asyncio.run(together())
    assert outcomes == [ALONE[t] for t in tokens]
    # Every token that reaches its signature check (all but the last three hostile
    # ones, refused before) did so in the one batch.
    checked = sum(1 for t in tokens if t not in HOSTILE[4:])
    assert sizes == ({checked: 1} if checked else {})
