"""The exported strategies generate what they promise, checked against the core verifier."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
