"""The README's tier-mapper and public-page snippets run as written and do what they say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from asgi_sso import IdentityConfig, PriorityTierMapper, SSOMiddleware
from asgi_sso.testing import DevIdP, DevUser

README = Path(__file__).resolve().parents[2] / "README.md"


def block(marker: str) -> dict[str, Any]:
    """Run the README's python block containing ``marker``; return its namespace."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    (found,) = [b for b in blocks if marker in b]
    namespace: dict[str, Any] = {}
    exec(compile(found, "README.md", "exec"), namespace)
    return namespace


def test_the_tier_mapper_example_maps_contracts_groups_and_group_scopes() -> None:
    namespace = block("group_scopes=")
    mapper, identity = namespace["mapper"], namespace["identity"]
    assert isinstance(mapper, PriorityTierMapper)
    assert isinstance(identity, IdentityConfig)
    acme = mapper.decide({"groups": ["staff"]}, "acme")
    assert acme.tier == "enterprise"
    assert "audit:read" in acme.scopes
    pro = mapper.decide({"groups": ["analytics-pro", "admins"]}, "globex")
    assert pro.tier == "pro"
    assert pro.scopes == {"reports:read", "reports:write", "users:admin"}
    assert mapper.decide({}, "globex").tier == "free"
    assert list(mapper.ranks) == ["enterprise", "pro", "free"]


async def test_the_public_page_example_greets_a_signed_in_user_and_never_refuses() -> None:
    namespace = block("Signed in as")
    app = namespace["app"]
    assert isinstance(app, SSOMiddleware)
    app.prefetch = False  # no network in tests: the example's IdP is not reachable
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for headers in ({}, {"authorization": "Bearer not-a-token"}):
            page = await client.get("/", headers=headers)
            assert page.status_code == 200
            assert "Sign in" in page.text
    # The same page behind a reachable dev IdP, with a real token.
    idp = DevIdP("http://idp.test", users=[DevUser(sub="alice", name="Alice Smith")])
    http = idp.http_client()
    served = SSOMiddleware(
        app.app, [idp.issuer_config(audience="api://my-api")], http_client=http,
        paths=namespace["PathRules"](public=["/"]),
    )  # fmt: skip
    token = idp.issue_token("alice", audience="api://my-api")
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        page = await client.get("/", headers={"authorization": f"Bearer {token}"})
    assert page.text == f"Signed in as Alice Smith · {idp.issuer}"
    await http.aclose()
