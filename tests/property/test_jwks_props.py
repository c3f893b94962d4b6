"""The JWKS negative cache: one bound across every URI, entries dropped with their key set."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from joserfc.jwk import ECKey

from asgi_sso.config import Limits
from asgi_sso.errors import UnknownKey
from asgi_sso.keys import JWKSCache
from asgi_sso.testing import FakeClock

URIS = tuple(f"https://idp{n}.example.com/jwks" for n in range(4))
BOUND = 5
BODY = msgspec.json.encode(
    {"keys": [{**ECKey.generate_key("P-256").as_dict(private=False), "kid": "k1"}]}
)

# (uri, kid): a token with an unknown kid for that key set; a number: seconds pass.
Step = tuple[str, str] | float
operations = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(URIS), st.sampled_from("abcdefgh")),
        st.sampled_from([1.0, 6.0, 31.0]),
    ),
    max_size=40,
)


async def _run(steps: list[Step]) -> None:
    fetches: Counter[str] = Counter()

    def idp(request: httpx.Request) -> httpx.Response:
        fetches[str(request.url)] += 1
        return httpx.Response(200, content=BODY, headers={"cache-control": "max-age=600"})

    clock = FakeClock()
    limits = Limits(max_unknown_kids=BOUND)
    # When each remembered entry was refused, in fetches of its URI at that time.
    refused_at: dict[tuple[str, str | None, str], int] = {}
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp)) as client:
        cache = JWKSCache(client, limits=limits, clock=clock)
        for step in steps:
            if isinstance(step, float):
                clock.advance(step)
                continue
            uri, kid = step
            with pytest.raises(UnknownKey):
                await cache.find(uri, kid, "ES256")
            key = (uri, kid, "ES256")
            assert key in cache._unknown  # just refused: remembered
            if key not in refused_at or cache._unknown[key] > clock.monotonic() + 4.99:
                refused_at[key] = fetches[uri]
            assert len(cache._unknown) <= BOUND
            for uri_, kid_, alg in cache._unknown:
                # Nothing refused before the URI's key set was last replaced survives it.
                assert refused_at[(uri_, kid_, alg)] == fetches[uri_]


@given(operations)
@example([(URIS[n % 4], "abcdefgh"[n % 8]) for n in range(12)])
@example([(URIS[0], "a"), (URIS[0], "b"), 31.0, (URIS[0], "c")])
def test_negative_cache_is_bounded_across_uris_and_dropped_with_its_key_set(
    steps: list[Step],
) -> None:
    asyncio.run(_run(steps))
