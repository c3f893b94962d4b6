"""Opaque tokens checked by RFC 7662 introspection through TokenVerifier."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_sso.config import Introspection, Issuer, Secret
from asgi_sso.errors import (
    AuthError,
    ConfigurationError,
    ExpiredToken,
    InvalidAudience,
    InvalidClaim,
    InvalidToken,
    MalformedToken,
    ServiceUnavailable,
    UnknownIssuer,
)
from asgi_sso.keys.client_auth import ASSERTION_TYPE
from asgi_sso.testing import ClientCertificate, FakeClock
from asgi_sso.testing.tokens import generate_key, mint, public_jwk
from asgi_sso.verify import TokenVerifier
from asgi_sso.verify.introspection import IntrospectionUnavailable, is_opaque

_FIXTURES = [HealthCheck.function_scoped_fixture]
ISS = "https://idp.test"
ENDPOINT = f"{ISS}/introspect"
START = 1_700_000_000.0
KEY = generate_key("RS256", kid="k1")
SECRET = "s3cret/with:odd+chars"


def answer(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "active": True,
        "iss": ISS,
        "sub": "alice",
        "aud": "api://x",
        "exp": START + 600,
        "scope": "read write",
        "client_id": "cli",
    }
    base.update(kw)
    return base


class IdP:
    """An introspection endpoint (and discovery/JWKS) recording every call."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, list[str]]] = []
        self.auth: list[str | None] = []
        self.reply: httpx.Response | None = None  # overrides every introspection answer
        self.delay = 0.0
        self.gate: asyncio.Event | None = None
        self.advertise = True
        self.metadata: dict[str, Any] = {}  # more discovery members

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.endswith("/.well-known/openid-configuration"):
            doc: dict[str, Any] = {"issuer": ISS, "jwks_uri": f"{ISS}/jwks"}
            if self.advertise:
                doc["introspection_endpoint"] = ENDPOINT
            doc.update(self.metadata)
            return httpx.Response(200, json=doc)
        if url.endswith("/jwks"):
            return httpx.Response(200, json={"keys": [public_jwk(KEY)]})
        assert url == ENDPOINT
        assert request.method == "POST"
        form = parse_qs(request.content.decode())
        self.calls.append(form)
        self.auth.append(request.headers.get("authorization"))
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reply is not None:
            return self.reply
        found = self.tokens.get(form["token"][0], {"active": False})
        return httpx.Response(200, json=found)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START, monotonic_start=0.0)


@pytest.fixture
def idp() -> IdP:
    return IdP()


@pytest.fixture
async def client(idp: IdP) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp)) as shared:
        yield shared


def make(
    client: httpx.AsyncClient, clock: FakeClock, *, issuer: dict[str, Any] | None = None, **kw: Any
) -> TokenVerifier:
    config: dict[str, Any] = {
        "client_id": "api",
        "client_secret": Secret(SECRET),
        "endpoint": ENDPOINT,
    }
    config.update(kw)
    settings_: dict[str, Any] = {
        "issuer": ISS,
        "audience": "api://x",
        "jwks_uri": f"{ISS}/jwks",
        "introspection": Introspection(**config),
    }
    settings_.update(issuer or {})
    return TokenVerifier([Issuer(**settings_)], client=client, clock=clock)


async def test_an_active_token_becomes_a_verified_token(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["opaque-1"] = answer()
    verified = await make(client, clock).verify("opaque-1")
    assert verified.subject == "alice"
    assert verified.scopes == {"read", "write"}
    assert verified.connection == ISS
    assert verified.expires_at == START + 600
    assert verified.claims["client_id"] == "cli"
    form = idp.calls[0]
    assert form == {"token": ["opaque-1"], "token_type_hint": ["access_token"]}
    # RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    expected = base64.b64encode(b"api:s3cret%2Fwith%3Aodd%2Bchars").decode()
    assert idp.auth == [f"Basic {expected}"]


async def test_a_client_key_sends_a_fresh_assertion_for_the_endpoint_instead(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["opaque-1"] = answer()
    idp.tokens["opaque-2"] = answer()
    pem = generate_key("ES256").as_pem(private=True)
    verifier = make(client, clock, client_secret=None, client_key=Secret(pem))
    await verifier.verify("opaque-1")
    await verifier.verify("opaque-2")
    assert idp.auth == [None, None]  # no secret, no Basic header
    jtis = set()
    for form in idp.calls:
        assert form["client_id"] == ["api"]
        assert form["client_assertion_type"] == [ASSERTION_TYPE]
        payload = form["client_assertion"][0].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        assert (claims["iss"], claims["sub"], claims["aud"]) == ("api", "api", ENDPOINT)
        jtis.add(claims["jti"])
    assert len(jtis) == 2


async def test_a_client_key_with_its_certificate_names_it_in_each_assertion(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["opaque-1"] = answer()
    cert = ClientCertificate("api", key_type="RSA")
    key_and_certificate = Secret(cert.key_pem().decode() + cert.pem)
    await make(client, clock, client_secret=None, client_key=key_and_certificate).verify("opaque-1")
    header = idp.calls[0]["client_assertion"][0].split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["x5t#S256"] == cert.thumbprint
    mismatched = Secret(cert.key_pem().decode() + ClientCertificate().pem)
    with pytest.raises(ConfigurationError, match="not for this key"):
        make(client, clock, client_secret=None, client_key=mismatched)


def test_an_unreadable_introspection_key_fails_when_the_verifier_is_built(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    with pytest.raises(ConfigurationError, match="client_key"):
        make(client, clock, client_secret=None, client_key=Secret("-----BEGIN nope"))


async def test_jwts_of_the_same_issuer_are_still_verified_locally(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    claims = {k: v for k, v in answer(sub="bob").items() if k != "active"}
    verified = await make(client, clock).verify(mint(claims, KEY))
    assert verified.subject == "bob"
    assert idp.calls == []


def test_opaque_means_not_three_or_five_parts() -> None:
    assert is_opaque("abc")
    assert is_opaque("a.b")
    assert is_opaque("a.b.c.d")
    assert not is_opaque("a.b.c")
    assert not is_opaque("a.b.c.d.e")


async def test_an_answer_is_cached_for_at_most_cache_ttl(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["t"] = answer()
    verifier = make(client, clock, cache_ttl=30)
    await verifier.verify("t")
    clock.advance(29)
    await verifier.verify("t")
    assert len(idp.calls) == 1
    clock.advance(2)
    await verifier.verify("t")
    assert len(idp.calls) == 2


async def test_an_answer_is_never_cached_past_exp(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["t"] = answer(exp=START + 10)
    verifier = make(client, clock, cache_ttl=300, issuer={"leeway": 0})
    await verifier.verify("t")
    clock.advance(11)
    with pytest.raises(ExpiredToken):
        await verifier.verify("t")
    assert len(idp.calls) == 2


def held(client: httpx.AsyncClient, clock: FakeClock, idp: IdP) -> TokenVerifier:
    """A verifier whose endpoint holds its answer for token "t" until ``idp.gate`` is set."""
    idp.tokens["t"] = answer()
    idp.gate = asyncio.Event()
    return make(client, clock)


async def test_concurrent_requests_for_one_token_make_one_call(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = held(client, clock, idp)
    tasks = [asyncio.create_task(verifier.verify("t")) for _ in range(20)]
    await asyncio.sleep(0.01)
    idp.gate.set()
    results = await asyncio.gather(*tasks)
    assert len(idp.calls) == 1
    assert {r.subject for r in results} == {"alice"}


async def test_calls_at_once_are_bounded_and_the_rest_get_a_503(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    for name in ("a", "b", "c"):
        idp.tokens[name] = answer(sub=name)
    idp.gate = asyncio.Event()
    verifier = make(client, clock, max_inflight=2)
    waiting = [asyncio.create_task(verifier.verify(name)) for name in ("a", "b", "a")]
    await asyncio.sleep(0.01)
    with pytest.raises(ServiceUnavailable) as caught:
        await verifier.verify("c")
    assert caught.value.status == 503
    assert caught.value.retry_after == 5
    idp.gate.set()
    assert [r.subject for r in await asyncio.gather(*waiting)] == ["a", "b", "a"]
    assert (await verifier.verify("c")).subject == "c"  # not remembered: asked once free
    assert len(idp.calls) == 3


async def test_an_answer_asked_for_before_an_eviction_is_not_kept(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = held(client, clock, idp)
    waiting = asyncio.create_task(verifier.verify("t"))
    await asyncio.sleep(0.01)
    verifier.evict_subject(subject="alice")  # deprovisioned while the call is out
    idp.gate.set()
    assert (await waiting).subject == "alice"
    await verifier.verify("t")
    assert len(idp.calls) == 2  # asked again: the earlier answer was not cached


async def test_a_cancelled_waiter_does_not_cancel_the_shared_call(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = held(client, clock, idp)
    first = asyncio.create_task(verifier.verify("t"))
    second = asyncio.create_task(verifier.verify("t"))
    await asyncio.sleep(0.01)
    first.cancel()
    idp.gate.set()
    assert (await second).subject == "alice"
    assert len(idp.calls) == 1


async def test_the_cache_is_bounded_least_recently_used_first(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    for name in ("a", "b", "c"):
        idp.tokens[name] = answer(sub=name)
    verifier = make(client, clock, cache_size=2)
    introspector = verifier.introspector
    assert introspector is not None
    await verifier.verify("a")
    await verifier.verify("b")
    await verifier.verify("a")  # a is now the most recent
    await verifier.verify("c")  # evicts b
    assert len(introspector) == 2
    assert len(idp.calls) == 3
    await verifier.verify("a")
    assert len(idp.calls) == 3
    await verifier.verify("b")
    assert len(idp.calls) == 4


async def test_made_up_tokens_never_push_out_the_answers_of_real_ones(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    for name in ("a", "b"):
        idp.tokens[name] = answer(sub=name)
    verifier = make(client, clock, cache_size=2)
    await verifier.verify("a")
    await verifier.verify("b")
    for n in range(20):  # unknown to the IdP: inactive, and remembered as such
        with pytest.raises(InvalidToken):
            await verifier.verify(f"junk{n}")
    calls = len(idp.calls)
    assert (await verifier.verify("a")).subject == "a"
    assert (await verifier.verify("b")).subject == "b"
    assert len(idp.calls) == calls
    assert len(verifier.introspector or ()) == 4  # two answers, the two latest refusals


async def test_an_inactive_token_is_refused_and_remembered_briefly(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = make(client, clock, inactive_ttl=10)
    for _ in range(3):
        with pytest.raises(InvalidToken) as caught:
            await verifier.verify("revoked")
        assert caught.value.status == 401
        assert caught.value.error == "invalid_token"
    assert len(idp.calls) == 1
    clock.advance(11)
    idp.tokens["revoked"] = answer()
    assert (await verifier.verify("revoked")).subject == "alice"


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500),
        httpx.Response(401, json={"error": "invalid_client"}),
        httpx.Response(302, headers={"location": "https://elsewhere.test/"}),
        httpx.Response(200, content=b"<html>oops</html>"),
        httpx.Response(200, json=[1, 2]),
        httpx.Response(200, json={"active": "true"}),
        httpx.Response(200, json={"sub": "alice"}),
        httpx.Response(200, content=b"\xff\xfe"),
        httpx.Response(200, content=b'{"active": true, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        httpx.Response(200, content=b'{"active": true, "pad": "' + b"a" * 100_000 + b'"}'),
    ],
)
async def test_a_failing_endpoint_is_a_503_never_a_pass(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP, reply: httpx.Response
) -> None:
    idp.tokens["t"] = answer()
    idp.reply = reply
    verifier = make(client, clock, retry_after=7)
    with pytest.raises(IntrospectionUnavailable) as caught:
        await verifier.verify("t")
    assert caught.value.status == 503
    assert caught.value.retry_after == 7
    assert "t" not in caught.value.description.split()
    # Not remembered: the next request asks again and succeeds.
    idp.reply = None
    assert (await verifier.verify("t")).subject == "alice"


async def test_a_slow_endpoint_times_out_as_a_503(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["t"] = answer()
    idp.delay = 5.0
    with pytest.raises(IntrospectionUnavailable, match="timed out"):
        await make(client, clock, timeout=0.1).verify("t")


async def test_an_unreachable_endpoint_is_a_503(clock: FakeClock) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as failing:
        with pytest.raises(IntrospectionUnavailable, match="could not be reached"):
            await make(failing, clock).verify("t")


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"aud": "api://other"}, InvalidAudience),
        ({"iss": "https://evil.test"}, UnknownIssuer),
        ({"exp": START - 3600}, ExpiredToken),
        ({"sub": None}, InvalidClaim),
        ({"sub": 7}, InvalidClaim),
        ({"scope": 5}, InvalidClaim),
        ({"token_type": "refresh_token"}, InvalidToken),
        ({"token_type": ["Bearer"]}, InvalidClaim),
    ],
)
async def test_the_answer_claims_are_checked_like_a_jwt(
    client: httpx.AsyncClient,
    clock: FakeClock,
    idp: IdP,
    fields: dict[str, Any],
    error: type[AuthError],
) -> None:
    idp.tokens["t"] = {k: v for k, v in answer(**fields).items() if v is not None}
    verifier = make(client, clock)
    with pytest.raises(error):
        await verifier.verify("t")
    with pytest.raises(error):  # remembered like an inactive token
        await verifier.verify("t")
    assert len(idp.calls) == 1


async def test_a_missing_iss_is_the_introspecting_issuer(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["t"] = {k: v for k, v in answer().items() if k != "iss"}
    assert (await make(client, clock).verify("t")).issuer.iss == ISS


async def test_the_endpoint_comes_from_discovery(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["t"] = answer()
    verifier = make(client, clock, endpoint=None)
    assert (await verifier.verify("t")).subject == "alice"
    assert len(idp.calls) == 1


def _assertion_alg(form: dict[str, list[str]]) -> str:
    header = form["client_assertion"][0].split(".")[0]
    alg: str = json.loads(base64.urlsafe_b64decode(header + "=="))["alg"]
    return alg


@pytest.mark.parametrize(
    ("member", "accepted", "alg"),
    [
        ("introspection_endpoint_auth_signing_alg_values_supported", ["PS256"], "PS256"),
        ("token_endpoint_auth_signing_alg_values_supported", ["PS256", "ES256"], "PS256"),
        ("introspection_endpoint_auth_signing_alg_values_supported", ["RS256", "PS256"], "RS256"),
        ("scopes_supported", ["openid"], "RS256"),  # no algorithms listed: RS256
    ],
)
async def test_a_discovered_endpoint_gets_assertions_in_an_algorithm_it_takes(
    client: httpx.AsyncClient,
    clock: FakeClock,
    idp: IdP,
    member: str,
    accepted: list[str],
    alg: str,
) -> None:
    idp.tokens["t"] = answer()
    idp.metadata[member] = accepted
    pem = generate_key("RS256").as_pem(private=True)
    verifier = make(client, clock, endpoint=None, client_secret=None, client_key=Secret(pem))
    assert (await verifier.verify("t")).subject == "alice"
    assert _assertion_alg(idp.calls[0]) == alg


async def test_a_discovered_endpoint_taking_no_algorithm_the_key_signs_is_a_503(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.metadata["introspection_endpoint_auth_signing_alg_values_supported"] = ["ES256"]
    pem = generate_key("RS256").as_pem(private=True)
    verifier = make(client, clock, endpoint=None, client_secret=None, client_key=Secret(pem))
    with pytest.raises(ServiceUnavailable, match="RS256 or PS256"):
        await verifier.verify("t")
    assert idp.calls == []


async def test_no_advertised_endpoint_is_a_503(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.advertise = False
    with pytest.raises(ServiceUnavailable):
        await make(client, clock, endpoint=None).verify("t")


async def test_evicting_a_subject_drops_their_introspected_tokens(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    idp.tokens["t"] = answer()
    idp.tokens["u"] = answer(sub="bob")
    verifier = make(client, clock)
    await verifier.verify("t")
    await verifier.verify("u")
    assert verifier.evict_subject(subject="alice") == 1
    await verifier.verify("t")
    await verifier.verify("u")
    assert len(idp.calls) == 3


@pytest.mark.parametrize(
    "token", ["x" * 5000, "bad token", "tok\x00en", "t\u00e9", "tok,en", "a;b", "=", ""]
)
async def test_odd_opaque_tokens_are_refused_without_a_call(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP, token: str
) -> None:
    with pytest.raises(MalformedToken):
        await make(client, clock).verify(token)
    assert idp.calls == []


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.text(max_size=300))
async def test_any_text_is_refused_or_accepted_never_an_error(
    client: httpx.AsyncClient, clock: FakeClock, token: str
) -> None:
    status = 200
    try:
        await make(client, clock).verify(token)
    except AuthError as error:
        status = error.status
    assert status in (200, 401, 503)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    extra=st.dictionaries(
        st.sampled_from(
            ["active", "iss", "sub", "aud", "exp", "nbf", "iat", "scope", "token_type"]
        ),
        _JSON,
    )
)
async def test_garbage_answers_are_refused_with_401_or_503(
    clock: FakeClock, extra: dict[str, Any]
) -> None:
    body = answer()
    body.update(extra)

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=body)

    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as mocked:
        status = 200
        try:
            verified = await make(mocked, clock).verify("t")
        except AuthError as error:
            status = error.status
        assert status in (200, 401, 503)
        if status == 200:
            assert body["active"] is True
            assert verified.subject == body["sub"]


def test_only_one_issuer_may_introspect() -> None:
    config = Introspection(client_id="api", client_secret=Secret(SECRET), endpoint=ENDPOINT)
    issuers = [
        Issuer(issuer=ISS, audience="a", introspection=config),
        Issuer(issuer="https://other.test", audience="a", introspection=config),
    ]
    with pytest.raises(ConfigurationError, match="only one issuer"):
        TokenVerifier(issuers)


@pytest.mark.parametrize(
    "fields",
    [
        {"client_id": ""},
        {"cache_ttl": -1},
        {"cache_ttl": float("nan")},
        {"cache_size": 0},
        {"timeout": 0},
        {"endpoint": "ftp://idp.test/i"},
        {"client_secret": SECRET},
    ],
)
def test_bad_introspection_settings_fail_when_built(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {"client_id": "api", "client_secret": Secret(SECRET)}
    base.update(fields)
    with pytest.raises(ConfigurationError):
        Introspection(**base)


def test_a_plain_http_endpoint_to_another_host_is_refused() -> None:
    config = Introspection(
        client_id="api", client_secret=Secret(SECRET), endpoint="http://idp.lan/introspect"
    )
    with pytest.raises(ConfigurationError, match="plain http"):
        Issuer(issuer=ISS, audience="a", introspection=config)
    Issuer(issuer=ISS, audience="a", introspection=config, allow_insecure_http=True)


def test_the_secret_is_never_shown() -> None:
    config = Introspection(client_id="api", client_secret=Secret(SECRET))
    assert SECRET not in repr(config)
    assert SECRET not in repr(Issuer(issuer=ISS, audience="a", introspection=config))
