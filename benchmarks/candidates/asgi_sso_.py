"""asgi_sso's ``TokenVerifier``: cold (every token new) and warm (verified-token cache hit).

The JWKS is served to the verifier's own ``httpx.AsyncClient`` through an
``httpx.MockTransport`` and prefetched during warm-up, so no network is involved.
Cold: a fresh verifier per repeat, so no token of the timed batch was seen
before. Warm: ``TokenVerifier.cached(token)``, the middleware's first step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import httpx

from benchmarks._asgi_sso import Issuer, Limits, Secret, TokenVerifier, cached_lookup
from benchmarks.fixtures import JWKS_URI, Material, hs_secret

NAME = "asgi_sso"


def jwks_client(material: Material) -> httpx.AsyncClient:
    """An HTTP client whose every request answers with the material's JWK set."""
    return httpx.AsyncClient(
        transport=httpx.MockTransport(lambda request: httpx.Response(200, json=material.jwks))
    )


def issuer(material: Material) -> Issuer:
    """The issuer policy of the benchmark tokens."""
    return Issuer(
        issuer=material.issuer,
        audience=material.audience,
        jwks_uri=None if material.label == "HS256" else JWKS_URI,
        algorithms=(material.alg,),
        required_claims=("iss", "sub", "aud", "exp", "nbf", "iat"),
    )


def verifier(material: Material, limits: Limits | None = None) -> TokenVerifier:
    """A verifier for ``material`` (call :func:`prime` before timing)."""
    secrets = {material.issuer: Secret(hs_secret(material))} if material.label == "HS256" else None
    return TokenVerifier(
        [issuer(material)],
        client=jwks_client(material),
        limits=limits or Limits(token_cache_size=100_000),
        secrets=secrets,
    )


def setup(material: Material, mode: str) -> Callable[[Sequence[str]], object]:
    """A batch verifier; the event loop is created once, outside the timed batch."""
    v = verifier(material)
    loop = asyncio.new_event_loop()

    async def cold(tokens: Sequence[str]) -> None:
        verify = v.verify
        for token in tokens:
            await verify(token)

    def cold_batch(tokens: Sequence[str]) -> None:
        loop.run_until_complete(cold(tokens))

    if mode == "cold":
        return cold_batch

    cached = cached_lookup(v)

    def warm_batch(tokens: Sequence[str]) -> None:
        for token in tokens:
            if cached(token) is None:  # the warm-up: stored from its second sighting on
                loop.run_until_complete(v.verify(token))
                loop.run_until_complete(v.verify(token))

    return warm_batch
