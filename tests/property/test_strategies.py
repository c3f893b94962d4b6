"""The exported strategies generate what they promise, checked against the core verifier."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from asgi_sso.connections import Connection, domain_of, normalize_domain
from asgi_sso.connections.model import CONNECTION_ID
from asgi_sso.errors import AuthError
from asgi_sso.testing import DevIdP, FakeClock
from asgi_sso.testing import strategies as sso_st
from asgi_sso.verify import TokenVerifier

AUDIENCE = "api://test"
NOW = 1_700_000_000
IDP = DevIdP("http://strategies.idp.test")


@pytest.fixture(scope="module")
def verify() -> Iterator[object]:
    loop = asyncio.new_event_loop()
    client = IDP.http_client()
    verifier = TokenVerifier(
        [IDP.issuer_config(audience=AUDIENCE)], client=client, clock=FakeClock(NOW + 5)
    )

    def run(token: str) -> object:
        return loop.run_until_complete(verifier.verify(token, use_cache=False))

    yield run
    loop.run_until_complete(client.aclose())
    loop.close()


@settings(max_examples=40)
@given(token=sso_st.valid_tokens(IDP.keys.current, issuer=IDP.issuer, audience=AUDIENCE, now=NOW))
def test_valid_tokens_verify(verify: object, token: str) -> None:
    verified = verify(token)  # type: ignore[operator]
    assert verified.claims["iss"] == IDP.issuer


@settings(max_examples=80)
@given(token=sso_st.hostile_tokens(IDP.keys.current, issuer=IDP.issuer, audience=AUDIENCE))
def test_hostile_tokens_are_refused_with_an_auth_error(verify: object, token: str) -> None:
    with pytest.raises(AuthError):
        verify(token)  # type: ignore[operator]


@given(claims=sso_st.claim_sets(now=NOW))
def test_claim_sets_are_current_and_well_typed(claims: dict[str, object]) -> None:
    assert claims["iss"] == "https://idp.example"
    assert isinstance(claims["sub"], str)
    assert claims["sub"]
    assert claims["iat"] <= NOW < claims["exp"]  # type: ignore[operator]


@given(groups=sso_st.group_lists())
def test_group_lists_are_lists_of_non_empty_strings(groups: list[str]) -> None:
    assert all(isinstance(g, str) and g for g in groups)


@given(value=sso_st.hostile_return_to())
def test_hostile_return_to_values_are_refused_by_the_login_guard(value: str) -> None:
    from asgi_sso.login.return_to import safe_return_to

    assert safe_return_to(value) is None


@given(junk=sso_st.junk_tokens())
def test_junk_never_has_a_valid_three_part_shape_with_signature(junk: str) -> None:
    assert isinstance(junk, str)


@given(data=st.data())
def test_strategies_are_importable_without_a_running_loop(data: st.DataObject) -> None:
    assert data.draw(sso_st.group_lists(max_size=2)) is not None


@given(connection=sso_st.connections())
def test_connections_are_valid_and_their_domains_normal(connection: Connection) -> None:
    assert CONNECTION_ID.fullmatch(connection.id)
    assert connection.accepts_bearer == connection.enabled
    assert all(normalize_domain(d) == d for d in connection.domains)
    assert len(set(connection.domains)) == len(connection.domains)


@given(data=st.data(), domain=sso_st.email_domains())
def test_emails_at_a_domain_lead_back_to_it(data: st.DataObject, domain: str) -> None:
    assert normalize_domain(domain) == domain
    assert domain_of(data.draw(sso_st.emails_at(domain))) == domain


@pytest.mark.parametrize(
    "shared",
    [
        lambda cs: len({c.id for c in cs}) < len(cs),
        lambda cs: len({c.iss for c in cs}) < len(cs),
        lambda cs: any(a.tenant and not b.tenant and a.iss == b.iss for a in cs for b in cs),
        lambda cs: len({d for c in cs for d in c.domains}) < sum(len(c.domains) for c in cs),
    ],
    ids=["id", "issuer", "template-equals-exact", "domain"],
)
def test_connection_lists_meet_every_kind_of_shared_key(
    shared: Callable[[list[Connection]], bool],
) -> None:
    # The property tests of the directory exercise its refusals only if the strategy
    # makes collisions; find() raises NoSuchExample when it cannot.
    found = find(st.lists(sso_st.connections(), max_size=4), shared)
    assert shared(found)
