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
KEY = generate_key("RS256", kid="k1")


def claims(tenant: str, now: float) -> dict[str, object]:
    return {
        "iss": f"https://login.example/{tenant}/v2.0",
        "tid": tenant,
        "sub": "u",
        "exp": int(now) + 300,
    }


class FailingIdP:
    """Answers every key request with 404 and records it."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        return httpx.Response(404)


def make_verifier(
    idp: FailingIdP, clock: FakeClock, jwks_uri: str, budget: int
) -> tuple[TokenVerifier, httpx.AsyncClient]:
    client = httpx.AsyncClient(transport=httpx.MockTransport(idp))
    issuer = Issuer(issuer=TEMPLATE, audience=None, jwks_uri=jwks_uri)
    limits = Limits(new_tenant_fetches=budget)
    return TokenVerifier([issuer], client=client, clock=clock, limits=limits), client


async def refusals(verifier: TokenVerifier, clock: FakeClock, count: int) -> list[str]:
    """Verify ``count`` tokens of never-seen tenants; return each refusal's description."""
    reasons = []
    for _ in range(count):
        token = mint(claims(uuid.uuid4().hex, clock.time()), KEY)
        with pytest.raises(KeysUnavailable) as caught:
            await verifier.verify(token)
        reasons.append(caught.value.description)
    return reasons


PER_TENANT = "https://login.example/{tenant}/keys"


async def test_random_tenants_are_fetched_at_most_budget_per_window() -> None:
    idp, clock = FailingIdP(), FakeClock()
    verifier, client = make_verifier(idp, clock, PER_TENANT, budget=3)
    async with client:
        reasons = await refusals(verifier, clock, 20)
        assert len(idp.requests) == 3
        assert sum("too many new tenants" in r for r in reasons) == 17
        clock.advance(31)  # the next window allows a few more
        assert "too many new tenants" not in (await refusals(verifier, clock, 1))[0]
        assert len(idp.requests) == 4


async def test_tenants_sharing_one_key_url_are_not_charged() -> None:
    idp, clock = FailingIdP(), FakeClock()
    verifier, client = make_verifier(idp, clock, "https://login.example/common/keys", budget=1)
    async with client:
        reasons = await refusals(verifier, clock, 5)
    assert not any("too many new tenants" in r for r in reasons)
    assert len(idp.requests) == 1  # one URL, its own cooldown after the failure
