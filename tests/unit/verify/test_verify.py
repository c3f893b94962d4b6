"""TokenVerifier end to end against an in-memory IdP (httpx MockTransport)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from asgi_sso.config import AT_JWT_TYPES, Issuer, Limits, Secret
from asgi_sso.errors import (
    AuthError,
    DisallowedAlgorithm,
    ExpiredToken,
    InvalidAudience,
    InvalidClaim,
    InvalidSignature,
    InvalidToken,
    KeysUnavailable,
    MalformedToken,
    UnknownIssuer,
    UnknownKey,
)
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock
from asgi_sso.testing.tokens import (
    alg_none,
    generate_key,
    hs256_with_public_key,
    mint,
    public_jwk,
    tamper_signature,
)
from asgi_sso.verify import TokenVerifier, VerifiedToken

ISS = "https://idp.test"
JWKS_URI = f"{ISS}/jwks"
ENTRA = "https://login.microsoftonline.com/{tenant}/v2.0"
TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
START = 1_700_000_000.0
KEY = generate_key("RS256", kid="k1")
EC = generate_key("ES256", kid="e1")


class IdP:
    """Serves discovery and JWKS documents and records every request."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = [public_jwk(KEY), public_jwk(EC)]
        self.requests: list[str] = []
        self.failing = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        self.requests.append(url)
        if self.failing:
            return httpx.Response(500)
        if url.endswith("/.well-known/openid-configuration"):
            issuer = url.removesuffix("/.well-known/openid-configuration")
            return httpx.Response(200, json={"issuer": issuer, "jwks_uri": f"{issuer}/jwks"})
        if url.endswith(("/jwks", "/keys")):
            return httpx.Response(200, json={"keys": self.keys})
        return httpx.Response(404)


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


def make(client: httpx.AsyncClient, clock: FakeClock, *issuers: Issuer, **kw: Any) -> TokenVerifier:
    issuers = issuers or (Issuer(issuer=ISS, audience="api://x", jwks_uri=JWKS_URI),)
    return TokenVerifier(issuers, client=client, clock=clock, **kw)


def claims(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "alice",
        "aud": "api://x",
        "iat": START,
        "exp": START + 600,
        "scope": "read write",
    }
    base.update(kw)
    return base


async def test_valid_token_becomes_a_verified_token(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    verified = await verifier.verify(mint(claims(extra={"n": 1}), KEY))
    assert isinstance(verified, VerifiedToken)
    assert verified.claims["extra"] == {"n": 1}
    assert verified.header["kid"] == "k1"
    assert verified.subject == "alice"
    assert verified.connection == ISS
    assert verified.issuer.iss == ISS
    assert verified.scopes == {"read", "write"}
    assert verified.expires_at == START + 600
    assert verified.key_id == "k1"
    assert "alice" in repr(verified)


async def test_every_asymmetric_family_verifies(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    ed = generate_key("EdDSA", kid="d1")
    ps = generate_key("PS256", kid="p1")

    def serve(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"keys": [public_jwk(ed), public_jwk(ps), public_jwk(EC)]})

    async with httpx.AsyncClient(transport=httpx.MockTransport(serve)) as own:
        issuer = Issuer(
            issuer=ISS, audience=None, jwks_uri=JWKS_URI, algorithms=("EdDSA", "PS256", "ES256")
        )
        verifier = make(own, clock, issuer)
        for key in (ed, ps, EC):
            assert (await verifier.verify(mint(claims(), key))).key_id == key.kid


async def test_alg_none_is_refused(client: httpx.AsyncClient, clock: FakeClock) -> None:
    with pytest.raises(MalformedToken, match="none"):
        await make(client, clock).verify(alg_none(claims()))


async def test_hs256_signed_with_the_public_key_is_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    with pytest.raises(DisallowedAlgorithm, match="expected RS256"):
        await make(client, clock).verify(hs256_with_public_key(claims(), KEY))


async def test_algorithm_outside_the_allow_list_is_refused(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    with pytest.raises(DisallowedAlgorithm):
        await make(client, clock).verify(mint(claims(), EC))


async def test_key_location_headers_are_never_fetched_or_used(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    attacker = generate_key("RS256", kid="k1")
    headers = {
        "jku": "https://evil.test/jwks",
        "x5u": "https://evil.test/cert.pem",
        "jwk": public_jwk(attacker),
    }
    with pytest.raises(InvalidSignature):
        await make(client, clock).verify(mint(claims(), attacker, headers=headers))
    assert all("evil.test" not in url for url in idp.requests)


async def test_unknown_crit_is_refused(client: httpx.AsyncClient, clock: FakeClock) -> None:
    token = mint(claims(), KEY, headers={"crit": ["urn:example:x"], "urn:example:x": 1})
    with pytest.raises(MalformedToken, match="critical"):
        await make(client, clock).verify(token)


async def test_entra_nonce_header_is_accepted(client: httpx.AsyncClient, clock: FakeClock) -> None:
    token = mint(claims(), KEY, headers={"nonce": "abc123"})
    assert (await make(client, clock).verify(token)).header["nonce"] == "abc123"


async def test_tampered_signature_and_unknown_kid(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    with pytest.raises(InvalidSignature):
        await verifier.verify(tamper_signature(mint(claims(), KEY)))
    with pytest.raises(UnknownKey):
        await verifier.verify(mint(claims(), generate_key("RS256", kid="nope")))


async def test_unknown_issuer_is_named(client: httpx.AsyncClient, clock: FakeClock) -> None:
    with pytest.raises(UnknownIssuer, match=r"https://other\.test"):
        await make(client, clock).verify(mint(claims(iss="https://other.test"), KEY))


async def test_expired_token_exactly_at_exp_and_leeway(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    strict = Issuer(issuer=ISS, audience="api://x", jwks_uri=JWKS_URI, leeway=0)
    with pytest.raises(ExpiredToken, match="expired 0 s ago"):
        await make(client, clock, strict).verify(mint(claims(exp=START), KEY))
    lenient = make(client, clock)  # default leeway 60 s
    assert await lenient.verify(mint(claims(exp=START - 59), KEY))


async def test_audience_list_and_override(client: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier = make(client, clock)
    assert await verifier.verify(mint(claims(aud=["other", "api://x"]), KEY))
    id_token = mint(claims(aud="client-1"), KEY)
    assert (await verifier.verify(id_token, audience="client-1")).claims["aud"] == "client-1"
    # Accepted under the override, the token is never served from the cache to the default policy.
    with pytest.raises(InvalidAudience, match="expected 'api://x'"):
        await verifier.verify(id_token)
    assert verifier.cached(id_token) is None


async def test_templated_entra_issuer(client: httpx.AsyncClient, clock: FakeClock) -> None:
    entra = Issuer(
        issuer=ENTRA,
        audience=None,
        jwks_uri="https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
        tenants=frozenset({TID}),
    )
    verifier = make(client, clock, entra)
    iss = f"https://login.microsoftonline.com/{TID}/v2.0"
    verified = await verifier.verify(mint(claims(iss=iss, tid=TID, aud=None), KEY))
    assert verified.connection == iss  # the concrete iss carries the tenant
    with pytest.raises(UnknownIssuer, match="'tid'"):
        await verifier.verify(mint(claims(iss=iss, tid="other"), KEY))
    other = "https://login.microsoftonline.com/other/v2.0"
    with pytest.raises(UnknownIssuer, match="not allowed"):
        await verifier.verify(mint(claims(iss=other, tid="other"), KEY))


async def test_the_user_claim_is_the_subject_and_is_required(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    oid = "6f1c2b9e-0000-4000-8000-00000000a11c"
    entra = Issuer(issuer=ISS, audience="api://x", jwks_uri=JWKS_URI, user_claim="oid")
    verifier = make(client, clock, entra)
    verified = await verifier.verify(mint(claims(sub="pairwise-Zx81", oid=oid), KEY))
    assert verified.subject == oid
    assert verified.claims["sub"] == "pairwise-Zx81"
    with pytest.raises(InvalidClaim, match="no 'oid' claim"):
        await verifier.verify(mint(claims(), KEY))
    for bad in ("", 7, ["x"]):
        with pytest.raises(InvalidClaim, match=r"'oid' claim .* non-empty string"):
            await verifier.verify(mint(claims(oid=bad), KEY))
    # A caller's own required claims (an ID or logout token) decide presence.
    lenient = await verifier.verify(mint(claims(), KEY), required_claims=("iss",))
    assert lenient.subject == ""


async def test_typ_at_jwt_on_and_off(client: httpx.AsyncClient, clock: FakeClock) -> None:
    strict = Issuer(issuer=ISS, audience=None, jwks_uri=JWKS_URI, token_types=AT_JWT_TYPES)
    verifier = make(client, clock, strict)
    assert await verifier.verify(mint(claims(), KEY, headers={"typ": "at+jwt"}))
    with pytest.raises(InvalidToken, match="typ 'JWT'"):
        await verifier.verify(mint(claims(), KEY))
    relaxed = make(client, clock, Issuer(issuer=ISS, audience=None, jwks_uri=JWKS_URI))
    assert await relaxed.verify(mint(claims(), KEY))
    with pytest.raises(InvalidToken):
        await relaxed.verify(mint(claims(jti="2"), KEY), token_types=("at+jwt",))


async def test_discovery_finds_the_jwks(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = make(client, clock, Issuer(issuer=ISS, audience=None))
    assert await verifier.verify(mint(claims(aud=None), KEY))
    assert idp.requests == [f"{ISS}/.well-known/openid-configuration", JWKS_URI]
    assert (await verifier.metadata(ISS)).jwks_uri == JWKS_URI
    with pytest.raises(UnknownIssuer):
        await verifier.metadata("https://other.test")


async def test_keys_unavailable_is_a_503_and_not_remembered(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = make(client, clock)
    token = mint(claims(), KEY)
    idp.failing = True
    with pytest.raises(KeysUnavailable) as caught:
        await verifier.verify(token)
    assert caught.value.status == 503
    idp.failing = False
    clock.advance(Limits().jwks_cooldown + 1)
    assert await verifier.verify(token)


async def test_hmac_issuer_uses_its_secret(client: httpx.AsyncClient, clock: FakeClock) -> None:
    import hashlib
    import hmac

    from asgi_sso.testing.tokens import b64url

    secret = b"k" * 32
    issuer = Issuer(issuer=ISS, audience=None, algorithms=("HS256",), secret=Secret(secret))
    verifier = make(client, clock, issuer)
    head = b64url(b'{"alg":"HS256"}')
    body = b64url(f'{{"iss":"{ISS}","sub":"svc","exp":{START + 60}}}'.encode())
    signature = b64url(hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest())
    assert (await verifier.verify(f"{head}.{body}.{signature}")).subject == "svc"
    with pytest.raises(InvalidSignature):
        await verifier.verify(f"{head}.{body}.{b64url(b'x' * 32)}")


async def test_cache_hit_and_expiry_with_a_fake_clock(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = make(client, clock)
    token = mint(claims(exp=START + 100), KEY)
    await verifier.verify(token)
    assert verifier.cached(token) is None  # a first sighting is verified, not stored
    first = await verifier.verify(token)
    fetches = len(idp.requests)
    assert await verifier.verify(token) is first
    assert verifier.cached(token) is first
    assert len(idp.requests) == fetches
    clock.advance(100 + 60)  # exp + leeway
    assert verifier.cached(token) is None
    with pytest.raises(ExpiredToken):
        await verifier.verify(token)


@pytest.mark.parametrize("value", [None, b"a.b.c", 7, ["a.b.c"]])
async def test_non_text_is_never_looked_up(
    client: httpx.AsyncClient, clock: FakeClock, value: object
) -> None:
    verifier = make(client, clock)
    assert verifier.cached(value) is None
    with pytest.raises(MalformedToken, match="must be text"):
        await verifier.verify(value)  # type: ignore[arg-type]


async def test_cache_ttl_bounds_long_lived_tokens(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock, limits=Limits(token_cache_ttl=10))
    token = mint(claims(exp=START + 3600), KEY)
    await verifier.verify(token)
    await verifier.verify(token)
    assert verifier.cached(token) is not None
    clock.advance(10)
    assert verifier.cached(token) is None
    assert await verifier.verify(token)  # verified again, not refused


async def test_use_cache_false_bypasses_the_cache(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    token = mint(claims(), KEY)
    first = await verifier.verify(token, use_cache=False)
    assert verifier.cached(token) is None
    assert await verifier.verify(token, use_cache=False) is not first
    assert verifier.cached(token) is None


async def test_evict_subject(client: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier = make(client, clock)
    alice = [mint(claims(jti=str(n)), KEY) for n in range(3)]
    bob = mint(claims(sub="bob"), KEY)
    for token in [*alice, bob, *alice, bob]:
        await verifier.verify(token)
    assert verifier.evict_subject(subject="alice", connection="elsewhere") == 0
    assert verifier.evict_subject(subject="alice", issuer=ISS) == 3
    assert all(verifier.cached(token) is None for token in alice)
    assert verifier.cached(bob) is not None


async def test_tokens_are_stored_from_their_second_sighting(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock, limits=Limits(token_cache_size=4))
    kept = mint(claims(jti="kept"), KEY)
    await verifier.verify(kept)
    assert len(verifier.cache) == 0
    stored = await verifier.verify(kept)
    assert len(verifier.cache) == 1
    # A flood of one-off tokens is verified (each one fully) but stores nothing, so it
    # cannot push out the token that comes back.
    for n in range(20):
        assert (await verifier.verify(mint(claims(jti=f"once-{n}"), KEY))).subject == "alice"
    assert len(verifier.cache) == 1
    assert verifier.cached(kept) is stored
    assert await verifier.verify(kept) is stored


async def test_a_first_sighting_is_checked_completely(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    good = mint(claims(), KEY)
    head, _, sig = good.split(".")
    other = mint(claims(sub="mallory"), KEY).split(".")[1]
    for _ in range(2):
        await verifier.verify(good)
    assert len(verifier.cache) == 1
    for _ in range(3):  # first sighting, then from the remembered refusal
        with pytest.raises(InvalidSignature):  # alice's signature over mallory's claims
            await verifier.verify(f"{head}.{other}.{sig}")
    # Sightings forgotten: the stored verification is not served to the lookup that
    # reports a first sighting, the token is verified again.
    verifier.cache._sightings.clear()
    assert verifier.cache.lookup(good, clock.time()) == (None, b"")
    assert (await verifier.verify(good)).subject == "alice"


async def test_refusals_are_remembered_only_briefly(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    verifier = make(client, clock)
    token = mint(claims(exp=START + 600), KEY)
    clock.advance(1000)
    with pytest.raises(ExpiredToken) as first:
        await verifier.verify(token)
    clock.now = START + 1  # even if time went back, the refusal is remembered ...
    with pytest.raises(ExpiredToken) as second:
        await verifier.verify(token)
    assert type(second.value) is type(first.value)
    assert second.value.description == first.value.description
    assert second.value is not first.value  # a new error: no traceback of an old request
    clock.advance(Limits().failure_cache_ttl)  # ... but only for failure_cache_ttl
    assert await verifier.verify(token)


class _TrackedToken(str):
    """A token text that a weak reference can watch (plain ``str`` cannot be)."""


async def test_a_remembered_refusal_keeps_no_token_or_traceback_alive(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    head, claims_part, _ = mint(claims(), KEY).split(".")
    forged = mint(claims(sub="mallory"), KEY).split(".")[2]
    token = _TrackedToken(f"{head}.{claims_part}.{forged}")
    token_alive = weakref.ref(token)
    errors = []
    for _ in range(3):  # refused, remembered, then refused from memory
        with pytest.raises(InvalidSignature) as refused:
            await verifier.verify(token)
        errors.append(weakref.ref(refused.value))
        del refused
    assert verifier.cache.has_failures
    del token
    gc.collect()
    assert token_alive() is None
    assert all(error() is None for error in errors)


async def test_events_are_emitted_when_enabled(client: httpx.AsyncClient, clock: FakeClock) -> None:
    events: list[Event] = []
    verifier = make(client, clock, emitter=Emitter([events.append]))
    token = mint(claims(), KEY)
    for _ in range(3):  # stored from its second sighting on
        await verifier.verify(token)
    with pytest.raises(AuthError):
        await verifier.verify("not-a-token")
    ours = [e for e in events if e.name in ("verify", "cache.hit", "cache.miss")]
    names = [(e.name, e.outcome) for e in ours]
    assert names == [
        ("cache.miss", "ok"),
        ("verify", "ok"),
        ("cache.miss", "ok"),
        ("verify", "ok"),
        ("cache.hit", "ok"),
        ("cache.miss", "ok"),
        ("verify", "refused"),
    ]
    ok = ours[1]
    assert (ok.subject, ok.connection, ok.issuer) == ("alice", ISS, ISS)
    assert ok.duration is not None
    assert ok.duration >= 0
    assert ours[-1].reason == "malformed"
    assert all(token not in repr(e) for e in events)


async def test_unexpected_exceptions_become_malformed_token(
    client: httpx.AsyncClient, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = make(client, clock)

    def explode(*args: object) -> None:
        raise RecursionError("boom")

    monkeypatch.setattr("asgi_sso.verify.verifier.verify_signature", explode)
    with pytest.raises(MalformedToken) as caught:
        await verifier.verify(mint(claims(), KEY))
    assert isinstance(caught.value.__cause__, RecursionError)


async def test_errors_never_echo_the_token(client: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier = make(client, clock)
    token = mint(claims(aud="someone-else"), KEY)
    with pytest.raises(AuthError) as caught:
        await verifier.verify(token)
    for part in token.split("."):
        assert part not in str(caught.value)


async def test_prefetch_loads_discovery_and_keys_and_never_raises(
    client: httpx.AsyncClient, clock: FakeClock, idp: IdP
) -> None:
    entra = Issuer(
        issuer=ENTRA, audience=None, jwks_uri="https://login.microsoftonline.com/{tenant}/keys"
    )
    verifier = make(client, clock, Issuer(issuer=ISS, audience=None), entra)
    await verifier.prefetch()
    assert idp.requests == [f"{ISS}/.well-known/openid-configuration", JWKS_URI]
    assert verifier.jwks.cached(JWKS_URI) is not None
    idp.failing = True
    await make(client, clock, Issuer(issuer="https://down.test", audience=None)).prefetch()


async def test_aclose_closes_only_its_own_client(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await make(client, clock).aclose()
    assert not client.is_closed
    own = TokenVerifier([Issuer(issuer=ISS, audience=None)])
    assert own.registry.issuers[0].issuer == ISS
    assert own.cache is not None
    assert own.discovery is not None
    await own.aclose()
    assert own._client is not None
    assert own._client.is_closed


async def test_scopes_are_read_from_the_scope_claim(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    first = await verifier.verify(mint(claims(jti="1", scope="read write"), KEY))
    second = await verifier.verify(mint(claims(jti="2", scope="write read"), KEY))
    other = await verifier.verify(mint(claims(jti="3", scope="read"), KEY))
    assert first.scopes == second.scopes == {"read", "write"}
    assert other.scopes == {"read"}


async def test_cached_verifications_keep_claims_as_bytes(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    verifier = make(client, clock)
    token = mint(claims(extra={"n": 1}), KEY)
    await verifier.verify(token)
    verified = await verifier.verify(token)
    assert isinstance(verified.payload, bytes)
    assert not hasattr(verified, "__dict__")
    first = verified.claims
    first["sub"] = "mallory"  # each read is a fresh dict: callers cannot corrupt the cache
    assert verifier.cached(token).claims["sub"] == "alice"  # type: ignore[union-attr]
    assert verifier.cached(token).claims["extra"] == {"n": 1}  # type: ignore[union-attr]


async def test_id_tokens_follow_their_own_rules_and_never_touch_the_cache(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    web = {"issuer": ISS, "jwks_uri": JWKS_URI, "audience": "web", "client_id": "web"}
    id_claims = {k: v for k, v in claims(aud="web", nonce="n-1").items() if k != "scope"}
    id_token = mint(id_claims, KEY)  # typ JWT
    at_typed = mint(id_claims, KEY, headers={"typ": "at+jwt"})
    access = mint(claims(aud="web"), KEY, headers={"typ": "at+jwt"})
    for issuer, refusal in (
        (Issuer(**web), "an ID token is not accepted as a bearer token"),
        (Issuer(**web, token_types=AT_JWT_TYPES), "expected at\\+jwt"),
    ):
        verifier = make(client, clock, issuer)
        with pytest.raises(InvalidToken, match=refusal):
            await verifier.verify(id_token)  # as a bearer token
        for _ in range(3):  # a bearer token is stored from its second sighting
            verified = await verifier.verify(id_token, audience="web", id_token=True)
            assert verified.subject == "alice"
            assert verifier.cached(id_token) is None
        with pytest.raises(InvalidToken, match="an ID token must have no 'typ'"):
            await verifier.verify(at_typed, audience="web", id_token=True)
        # Access tokens of the same audience still pass (RFC 9068 typ).
        assert (await verifier.verify(access)).scopes == {"read", "write"}


async def test_tokens_of_one_header_shape_and_scope_set_share_them(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    # A full cache holds one header dict and one scope set per shape, not per token.
    verifier = make(client, clock)
    first = await verifier.verify(mint(claims(sub="alice"), KEY))
    second = await verifier.verify(mint(claims(sub="bob"), KEY))
    other = await verifier.verify(mint(claims(sub="carol", scope="read"), KEY))
    assert second.header is first.header
    assert second.scopes is first.scopes
    assert other.scopes == {"read"}
    assert other.scopes is not first.scopes
    odd = await verifier.verify(mint(claims(sub="dan"), KEY, headers={"cty": "JWT"}))
    assert odd.header is not first.header  # only alg/kid/typ headers are shared
    assert odd.header["cty"] == "JWT"


async def test_shared_values_are_bounded(client: httpx.AsyncClient, clock: FakeClock) -> None:
    verifier = make(client, clock, limits=Limits(shared_values=2))
    scopes = [
        (await verifier.verify(mint(claims(sub=f"u{n}", scope=f"s{n}"), KEY))).scopes
        for n in range(5)
    ]
    assert [sorted(s) for s in scopes] == [[f"s{n}"] for n in range(5)]
    assert len(verifier._shared._values) <= 2
