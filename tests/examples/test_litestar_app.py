"""The Litestar example with client_credentials tokens: tier limits, scopes, expiry, issuers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from asgi_sso import ConfigurationError
from asgi_sso.testing import DevClient, DevIdP, FakeClock
from examples._devkit import OidcSettings
from examples.litestar_app.app import AUDIENCE, CONTOSO_TENANT, DevIdPs, Shotter, create_app
from examples.litestar_app.plans import LIMITS

BASE = "http://127.0.0.1:8000"


@pytest.fixture
def clock() -> FakeClock:
    start = 1_750_000_020.0  # a minute boundary: the rate-limit windows (monotonic) align
    return FakeClock(start, monotonic_start=start)


@pytest.fixture
async def shotter(clock: FakeClock) -> AsyncIterator[Shotter]:
    built = create_app(clock=clock, idps=DevIdPs(clock))
    yield built
    await built.app.shutdown()


@pytest.fixture
async def api(shotter: Shotter) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=shotter.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        yield http


async def client_credentials(idp: DevIdP, client_id: str) -> str:
    """A token from the dev IdP's token endpoint (RFC 6749 §4.4), in process."""
    secret = idp.clients[client_id].client_secret
    assert secret is not None
    async with idp.http_client() as http:
        reply = await http.post(
            idp.url("/token"), data={"grant_type": "client_credentials"}, auth=(client_id, secret)
        )
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["access_token"]
    return token


async def auth(shotter: Shotter, client_id: str) -> dict[str, str]:
    assert shotter.idps is not None
    idp = shotter.idps.entra if client_id.startswith("contoso") else shotter.idps.broker
    return {"Authorization": f"Bearer {await client_credentials(idp, client_id)}"}


@pytest.mark.parametrize(
    ("client_id", "tier", "connection"),
    [
        ("acme-free-bot", "free", "broker:acme"),
        ("acme-pro-bot", "pro", "broker:acme"),
        ("acme-enterprise-bot", "enterprise", "broker:acme"),
        ("contoso-pipeline", "pro", f"entra:{CONTOSO_TENANT}"),
    ],
)
async def test_tier_from_groups_or_the_connection_default(
    shotter: Shotter, api: httpx.AsyncClient, client_id: str, tier: str, connection: str
) -> None:
    plan = await api.get("/v1/plan", headers=await auth(shotter, client_id))
    assert plan.status_code == 200, plan.text
    body = plan.json()
    assert (body["tier"], body["connection"]) == (tier, connection)
    assert body["limits"]["max_width"] == LIMITS[tier].max_width


@pytest.mark.parametrize("tier", ["free", "pro", "enterprise"])
async def test_each_tier_gets_its_size_and_format_limits(
    shotter: Shotter, api: httpx.AsyncClient, tier: str
) -> None:
    headers = await auth(shotter, f"acme-{tier}-bot")
    limits = LIMITS[tier]
    biggest = {"url": "https://example.com", "width": limits.max_width,
               "height": limits.max_height, "format": limits.formats[-1]}  # fmt: skip
    ok = await api.post("/v1/screenshots", json=biggest, headers=headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["tier"] == tier
    too_wide = await api.post(
        "/v1/screenshots", json={**biggest, "width": limits.max_width + 1}, headers=headers
    )
    assert too_wide.status_code == 403
    assert f"{limits.max_width}x{limits.max_height}" in too_wide.json()["detail"]
    if tier != "enterprise":
        pdf = await api.post("/v1/screenshots", json={**biggest, "format": "pdf"}, headers=headers)
        assert pdf.status_code == 403


@pytest.mark.parametrize("tier", ["free", "pro"])
async def test_each_tier_gets_its_rate_limit_per_minute(
    shotter: Shotter, api: httpx.AsyncClient, clock: FakeClock, tier: str
) -> None:
    headers = await auth(shotter, f"acme-{tier}-bot")
    shot = {"url": "https://example.com"}
    clock.now = 60.0 * int(clock.now // 60) + 1  # the start of a window
    for _ in range(LIMITS[tier].per_minute):
        assert (await api.post("/v1/screenshots", json=shot, headers=headers)).status_code == 201
    over = await api.post("/v1/screenshots", json=shot, headers=headers)
    assert over.status_code == 429
    assert over.headers["retry-after"] == "59"
    clock.advance(60)
    assert (await api.post("/v1/screenshots", json=shot, headers=headers)).status_code == 201


async def test_callers_have_separate_rate_budgets(shotter: Shotter, api: httpx.AsyncClient) -> None:
    free = await auth(shotter, "acme-free-bot")
    for _ in range(LIMITS["free"].per_minute):
        await api.post("/v1/screenshots", json={"url": "https://a.example"}, headers=free)
    pro = await auth(shotter, "acme-pro-bot")
    ok = await api.post("/v1/screenshots", json={"url": "https://a.example"}, headers=pro)
    assert ok.status_code == 201


async def test_batch_needs_the_batch_scope_of_pro(shotter: Shotter, api: httpx.AsyncClient) -> None:
    batch = {"items": [{"url": "https://example.com"}] * 2}
    refused = await api.post(
        "/v1/screenshots/batch", json=batch, headers=await auth(shotter, "acme-free-bot")
    )
    assert refused.status_code == 403
    challenge = refused.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="api"')
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="screenshots:batch"' in challenge
    allowed = await api.post(
        "/v1/screenshots/batch", json=batch, headers=await auth(shotter, "contoso-pipeline")
    )
    assert allowed.status_code == 201, allowed.text
    assert len(allowed.json()["jobs"]) == 2


async def test_usage_export_needs_the_enterprise_tier(
    shotter: Shotter, api: httpx.AsyncClient
) -> None:
    pro = await api.get("/v1/usage/export", headers=await auth(shotter, "acme-pro-bot"))
    assert pro.status_code == 403
    assert 'error="insufficient_scope"' in pro.headers["www-authenticate"]
    ent = await api.get("/v1/usage/export", headers=await auth(shotter, "acme-enterprise-bot"))
    assert ent.status_code == 200


async def test_expired_token_is_refused(
    shotter: Shotter, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    headers = await auth(shotter, "acme-pro-bot")
    assert (await api.get("/v1/plan", headers=headers)).status_code == 200
    assert shotter.idps is not None
    clock.advance(shotter.idps.broker.access_token_ttl + 120)  # past exp and the leeway
    expired = await api.get("/v1/plan", headers=headers)
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert "expired" in expired.json()["error_description"]


async def test_unknown_issuer_is_refused(api: httpx.AsyncClient) -> None:
    stranger = DevIdP(
        clients=[
            DevClient(
                client_id="acme-pro-bot",
                client_secret="another-secret",
                audience=AUDIENCE,
                grant_types=("client_credentials",),
            )
        ]
    )
    token = await client_credentials(stranger, "acme-pro-bot")
    refused = await api.get("/v1/plan", headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert "issuer" in refused.json()["error_description"]


async def test_another_tenant_on_the_templated_issuer_is_refused(
    shotter: Shotter, api: httpx.AsyncClient
) -> None:
    assert shotter.idps is not None
    entra = shotter.idps.entra
    forged_tenant = entra.issue_token(
        "contoso-pipeline",
        audience=AUDIENCE,
        claims={"iss": entra.issuer.replace(CONTOSO_TENANT, "other-tenant"), "tid": "other-tenant"},
    )
    refused = await api.get("/v1/plan", headers={"Authorization": f"Bearer {forged_tenant}"})
    assert refused.status_code == 401


async def test_no_token_is_a_401_and_health_is_public(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/plan")
    assert missing.status_code == 401
    bearer, dpop = missing.headers.get_list("www-authenticate")  # RFC 9449 §7.1: both schemes
    assert bearer == 'Bearer realm="api"'
    assert dpop.startswith('DPoP algs="ES256 ')
    assert (await api.get("/health")).status_code == 200


async def test_openapi_declares_the_bearer_scheme(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/schema/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["BearerToken"]["scheme"] == "bearer"
    assert spec["security"] == [{"BearerToken": []}]


def test_a_real_provider_needs_the_api_audience_and_refuses_its_clients_id_tokens() -> None:
    # The client id is the audience of ID tokens, not of the API's access tokens.
    env = {"OIDC_ISSUER": "http://localhost:8080/realms/acme", "OIDC_CLIENT_ID": "cli"}
    with pytest.raises(ConfigurationError, match="OIDC_AUDIENCE is required"):
        create_app(OidcSettings.from_env(env))
    shotter = create_app(OidcSettings.from_env({**env, "OIDC_AUDIENCE": "api://shotter"}))
    issuer = shotter.app.verifier.registry.find("http://localhost:8080/realms/acme")
    assert issuer is not None
    assert (issuer.audience, issuer.client_id) == ("api://shotter", "cli")
