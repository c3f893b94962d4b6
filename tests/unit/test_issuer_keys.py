"""A flood of never-seen tenants of a templated issuer costs the IdP a handful of calls."""

from __future__ import annotations

import uuid

import httpx
import pytest

from asgi_sso.config import Issuer, Limits
from asgi_sso.errors import KeysUnavailable
from asgi_sso.testing import FakeClock, generate_key, mint
from asgi_sso.verify import TokenVerifier

TEMPLATE = "https://login.example/{tenant}/v2.0"


def claims(tenant: str, now: float) -> dict[str, object]:
    return {
        "iss": f"https://login.example/{tenant}/v2.0",
        "tid": tenant,
        "sub": "u",
        "exp": int(now) + 300,
    }


async def test_random_tenants_are_fetched_at_most_budget_per_window() -> None:
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        return httpx.Response(404)

    clock = FakeClock()
    issuer = Issuer(issuer=TEMPLATE, jwks_uri="https://login.example/{tenant}/keys")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        verifier = TokenVerifier(
            [issuer], client=client, clock=clock, limits=Limits(new_tenant_fetches=3)
        )
        key = generate_key("RS256", kid="k1")
        reasons = []
        for _ in range(20):
            token = mint(claims(uuid.uuid4().hex, clock.time()), key)
            with pytest.raises(KeysUnavailable) as caught:
                await verifier.verify(token)
            reasons.append(caught.value.description)
        assert len(requests) == 3
        assert sum("too many new tenants" in r for r in reasons) == 17
        # the next window allows a few more
        clock.advance(31)
        with pytest.raises(KeysUnavailable):
            await verifier.verify(mint(claims(uuid.uuid4().hex, clock.time()), key))
        assert len(requests) == 4


async def test_tenants_sharing_one_key_url_are_not_charged() -> None:
    requests: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(str(request.url))
        return httpx.Response(404)

    clock = FakeClock()
    issuer = Issuer(issuer=TEMPLATE, jwks_uri="https://login.example/common/keys")
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        verifier = TokenVerifier(
            [issuer], client=client, clock=clock, limits=Limits(new_tenant_fetches=1)
        )
        key = generate_key("RS256", kid="k1")
        for _ in range(5):
            with pytest.raises(KeysUnavailable) as caught:
                await verifier.verify(mint(claims(uuid.uuid4().hex, clock.time()), key))
            assert "too many new tenants" not in caught.value.description
        assert len(requests) == 1  # one URL, its own cooldown after the failure
