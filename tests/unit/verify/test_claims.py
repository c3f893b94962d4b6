"""Claim validation against an issuer's policy, and scope extraction."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.config import AT_JWT_TYPES, Issuer
from asgi_sso.errors import (
    ExpiredToken,
    InvalidAudience,
    InvalidClaim,
    InvalidToken,
    NotYetValid,
)
from asgi_sso.verify.claims import (
    ClaimPolicy,
    check_id_token_type,
    normalize_type,
    scopes_from,
    validate_claims,
)

ISS = "https://idp.test"
NOW = 1_700_000_000.0


def policy(**kw: Any) -> ClaimPolicy:
    return ClaimPolicy(Issuer(issuer=ISS, audience=kw.pop("audience", "api://x"), **kw))


def claims(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS, "sub": "alice", "aud": "api://x", "exp": NOW + 60}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not None}


def check(values: dict[str, Any], rules: ClaimPolicy | None = None, **kw: Any) -> float:
    header = kw.pop("header", {"alg": "RS256"})
    return validate_claims(values, header, ISS, rules or policy(), now=NOW, **kw)


def test_valid_claims_return_exp() -> None:
    assert check(claims()) == NOW + 60


def test_missing_exp_is_refused_when_essential() -> None:
    with pytest.raises(InvalidClaim, match="no 'exp'"):
        check(claims(exp=None))


def test_exp_not_required_returns_infinity() -> None:
    rules = policy(required_claims=("iss",))
    assert check(claims(exp=None), rules) == float("inf")


@pytest.mark.parametrize("value", ["1700000060", True, False, [1], {"t": 1}])
def test_exp_must_be_a_number_not_string_or_bool(value: object) -> None:
    with pytest.raises(InvalidClaim, match="'exp' claim must be a number"):
        check(claims(exp=value))


def test_token_exactly_at_exp_is_expired_without_leeway() -> None:
    rules = policy(leeway=0)
    with pytest.raises(ExpiredToken, match="expired 0 s ago"):
        check(claims(exp=NOW), rules)
    assert check(claims(exp=NOW + 1), rules) == NOW + 1


def test_expiry_description_says_how_long_ago() -> None:
    with pytest.raises(ExpiredToken, match="the token expired 102 s ago"):
        check(claims(exp=NOW - 102))


def test_leeway_is_honoured_on_exp() -> None:
    rules = policy(leeway=30)
    assert check(claims(exp=NOW - 29), rules) == NOW - 29
    with pytest.raises(ExpiredToken):
        check(claims(exp=NOW - 30), rules)


def test_nbf_in_the_future_beyond_leeway_is_refused() -> None:
    rules = policy(leeway=10)
    assert check(claims(nbf=NOW + 10), rules)
    with pytest.raises(NotYetValid, match="not valid for another 11 s"):
        check(claims(nbf=NOW + 11), rules)


def test_iat_in_the_future_beyond_leeway_is_refused() -> None:
    rules = policy(leeway=5)
    assert check(claims(iat=NOW + 5), rules)
    with pytest.raises(NotYetValid, match="issued 6 s in the future"):
        check(claims(iat=NOW + 6), rules)
    with pytest.raises(InvalidClaim, match="'iat'"):
        check(claims(iat="now"), rules)


@pytest.mark.parametrize("name", ["nbf", "iat", "exp"])
@pytest.mark.parametrize("value", [None, "1700000000", True, [NOW], {"t": NOW}])
def test_a_present_time_claim_must_be_a_numeric_date(name: str, value: object) -> None:
    # RFC 7519 §2, §4.1.4-6: a present exp/nbf/iat is a NumericDate; JSON null is not
    # one, and is refused rather than read as an absent claim.
    values = {**claims(), name: value}
    rules = policy(required_claims=("iss",))
    with pytest.raises(InvalidClaim, match=f"the '{name}' claim must be a number"):
        check(values, rules)


@pytest.mark.parametrize("name", ["nbf", "iat", "exp"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_time_claim_is_refused(name: str, value: float) -> None:
    # Not reachable through a token (JSON has no NaN and the parser refuses 1e999),
    # but validate_claims is public: a non-finite date is no point in time.
    with pytest.raises(InvalidClaim, match=f"the '{name}' claim must be a finite number"):
        check({**claims(), name: value})


def test_huge_numbers_do_not_overflow() -> None:
    assert check(claims(exp=10**400)) == 1e15
    with pytest.raises(ExpiredToken):
        check(claims(exp=-(10**400)))
    with pytest.raises(NotYetValid):
        check(claims(nbf=10**400))


def test_audience_string_and_list() -> None:
    assert check(claims(aud="api://x"))
    assert check(claims(aud=["other", "api://x"]))
    with pytest.raises(InvalidAudience, match="expected 'api://x'"):
        check(claims(aud="other"))
    with pytest.raises(InvalidAudience):
        check(claims(aud=[]))


def test_any_configured_audience_matches() -> None:
    rules = policy(audience=("a", "b"))
    assert check(claims(aud="b"), rules)
    with pytest.raises(InvalidAudience, match="expected 'a' or 'b'"):
        check(claims(aud="c"), rules)


@pytest.mark.parametrize("aud", [7, ["api://x", 7], {"api://x": 1}, True])
def test_audience_must_be_string_or_list_of_strings(aud: object) -> None:
    with pytest.raises(InvalidClaim, match="'aud'"):
        check(claims(aud=aud))


def test_audience_override() -> None:
    assert check(claims(aud="client-1"), audiences=frozenset({"client-1"}))
    with pytest.raises(InvalidAudience):
        check(claims(), audiences=frozenset({"client-1"}))


def test_no_audience_configured_skips_the_match_but_checks_the_type() -> None:
    rules = ClaimPolicy(Issuer(issuer=ISS, audience=None))
    assert check(claims(aud="anything"), rules)
    assert check(claims(aud=None), rules)
    with pytest.raises(InvalidClaim):
        check(claims(aud=3), rules)


def test_missing_audience_when_required() -> None:
    with pytest.raises(InvalidClaim, match="no 'aud'"):
        check(claims(aud=None))


@pytest.mark.parametrize("sub", ["", 7, ["alice"]])
def test_sub_must_be_a_non_empty_string(sub: object) -> None:
    with pytest.raises(InvalidClaim, match="'sub'"):
        check(claims(sub=sub))


def test_required_claims_are_enforced() -> None:
    rules = policy(required_claims=("iss", "exp", "email"))
    with pytest.raises(InvalidClaim, match="no 'email'"):
        check(claims(), rules)
    assert check(claims(email="a@b.test", sub=None), rules)


def test_iss_is_rechecked() -> None:
    with pytest.raises(InvalidClaim, match="'iss'"):
        check(claims(iss="https://other.test"))


@pytest.mark.parametrize("name", ["scope", "scp"])
def test_scope_claims_must_be_string_or_list_of_strings(name: str) -> None:
    assert check(claims(**{name: "a b"}))
    assert check(claims(**{name: ["a", "b"]}))
    with pytest.raises(InvalidClaim, match=f"'{name}'"):
        check(claims(**{name: 5}))
    with pytest.raises(InvalidClaim):
        check(claims(**{name: ["a", 5]}))


def test_typ_at_jwt_when_configured() -> None:
    rules = policy(token_types=AT_JWT_TYPES)
    for typ in ("at+jwt", "AT+JWT", "application/at+jwt", "Application/At+Jwt"):
        assert check(claims(), rules, header={"alg": "RS256", "typ": typ})
    for header in ({"alg": "RS256", "typ": "JWT"}, {"alg": "RS256"}):
        with pytest.raises(InvalidToken, match="expected at\\+jwt"):
            check(claims(), rules, header=header)


def test_typ_ignored_when_not_configured() -> None:
    assert check(claims(), header={"alg": "RS256", "typ": "whatever"})


def test_typ_override() -> None:
    with pytest.raises(InvalidToken):
        check(claims(), header={"alg": "RS256", "typ": "JWT"}, token_types=frozenset({"at+jwt"}))


def test_normalize_type() -> None:
    assert normalize_type("application/AT+JWT") == "at+jwt"
    assert normalize_type("JWT") == "jwt"
    assert normalize_type("application/x/y") == "application/x/y"


def test_descriptions_never_echo_claim_values() -> None:
    secret_looking = "eyJhbGciOi.secret.value"
    for values in (claims(aud=secret_looking), claims(sub=[secret_looking])):
        with pytest.raises(InvalidToken) as caught:
            check(values)
        assert secret_looking not in caught.value.description


def test_scopes_from_strings_and_lists() -> None:
    values = {"scope": "read  write\tadmin", "scp": ["x", "", 3], "roles": "r"}
    assert scopes_from(values, ("scope", "scp")) == {"read", "write", "admin", "x"}
    assert scopes_from({}, ("scope",)) == frozenset()
    assert scopes_from({"roles": "r"}, ("roles",)) == {"r"}


def test_required_override_replaces_the_policys_claims() -> None:
    sid_only = claims(sub=None, sid="s-1")
    with pytest.raises(InvalidClaim, match="no 'sub'"):
        check(sid_only)
    assert check(sid_only, required=("iss", "exp", "sid")) == NOW + 60
    with pytest.raises(InvalidClaim, match="no 'jti'"):
        check(sid_only, required=("iss", "jti"))


def test_an_empty_type_override_turns_the_typ_check_off() -> None:
    rules = policy(token_types=AT_JWT_TYPES)
    assert check(claims(), rules, header={"alg": "RS256"}, token_types=frozenset())


# -- ID tokens are never bearer tokens ------------------------------------------------

CLIENT = "web-client"


def signed_in(**kw: Any) -> dict[str, Any]:
    """The claims of an ID token of the sign-in client (OIDC Core §2)."""
    base = {"aud": CLIENT, "iat": NOW, "nonce": "n-0S6_WzA2Mj", "azp": CLIENT}
    return claims(**{**base, **kw})


def sign_in_policy(**kw: Any) -> ClaimPolicy:
    return policy(client_id=CLIENT, **kw)


@pytest.mark.parametrize("audience", [CLIENT, ("api://x", CLIENT), None])
@pytest.mark.parametrize("aud", [CLIENT, [CLIENT], ["api://x", CLIENT]])
@pytest.mark.parametrize("typ", [None, "JWT", "application/jwt"])
def test_an_id_token_of_the_sign_in_client_is_refused_as_a_bearer_token(
    audience: str | tuple[str, ...] | None, aud: object, typ: str | None
) -> None:
    header = {"alg": "RS256"} if typ is None else {"alg": "RS256", "typ": typ}
    with pytest.raises(InvalidToken, match="an ID token is not accepted as a bearer token"):
        check(signed_in(aud=aud), sign_in_policy(audience=audience), header=header)


def test_an_id_token_from_a_refresh_has_no_nonce_and_is_refused_too() -> None:
    # OIDC Core §12.2: a refreshed ID token should not carry the nonce.
    with pytest.raises(InvalidToken, match="ID token"):
        check(signed_in(nonce=None), sign_in_policy(audience=CLIENT))


def test_a_nonce_outweighs_scope_claims() -> None:
    with pytest.raises(InvalidToken, match="ID token"):
        check(signed_in(scp="read"), sign_in_policy(audience=CLIENT))


@pytest.mark.parametrize(
    "grant", [{"scp": "user.read"}, {"roles": ["Reports.Read"], "azpacr": "1"}]
)
def test_entra_access_tokens_for_the_apps_own_api_are_accepted(grant: dict[str, Any]) -> None:
    # Entra ID access tokens for an app's own API: aud = its client id, no nonce claim
    # (only a nonce header), scp (delegated) or roles (app-only, with the v2 token's
    # client-authentication claim azpacr).
    values = claims(aud=CLIENT, azp="caller", **grant)
    header = {"alg": "RS256", "typ": "JWT", "nonce": "entra-header-nonce"}
    assert check(values, sign_in_policy(audience=CLIENT), header=header) == NOW + 60


@pytest.mark.parametrize("typ", ["at+jwt", "application/AT+JWT"])
def test_an_at_jwt_token_is_an_access_token_whatever_its_claims(typ: str) -> None:
    # RFC 9068 §2.1: the type marks an access token unambiguously.
    header = {"alg": "RS256", "typ": typ}
    assert check(signed_in(), sign_in_policy(audience=CLIENT), header=header)


def test_tokens_for_another_audience_or_without_a_sign_in_client_are_not_judged() -> None:
    assert check(signed_in(aud="api://x"), sign_in_policy())
    assert check(signed_in(aud="api://x"), sign_in_policy(audience=None))
    assert check(signed_in(aud=None), sign_in_policy(audience=None))
    assert check(signed_in(), policy(audience=CLIENT))  # no client_id: nothing to judge by


def test_verifying_for_a_client_audience_does_not_refuse_its_tokens() -> None:
    # ID tokens and logout tokens are checked with the client id as audience.
    rules = sign_in_policy(audience=CLIENT)
    assert check(signed_in(), rules, audiences=frozenset({CLIENT}), id_token=True)
    logout = claims(aud=CLIENT, iat=NOW, jti="j", events={})
    assert check(logout, rules, audiences=frozenset({CLIENT}), token_types=frozenset())


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "application/jwt"])
def test_an_id_token_may_be_untyped_or_jwt_whatever_the_bearer_types(typ: str | None) -> None:
    rules = sign_in_policy(token_types=AT_JWT_TYPES)
    header = {"alg": "RS256"} if typ is None else {"alg": "RS256", "typ": typ}
    assert check(signed_in(), rules, header=header, audiences=frozenset({CLIENT}), id_token=True)


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "logout+jwt", "JOSE+JSON"])
def test_an_id_token_typed_as_another_kind_of_token_is_refused(typ: str) -> None:
    header = {"alg": "RS256", "typ": typ}
    with pytest.raises(InvalidToken, match="an ID token must have no 'typ' or typ 'JWT'"):
        check(
            signed_in(),
            sign_in_policy(),
            header=header,
            audiences=frozenset({CLIENT}),
            id_token=True,
        )
    with pytest.raises(InvalidToken):
        check_id_token_type(header)
