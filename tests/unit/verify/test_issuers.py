"""Routing a token's ``iss`` to exact and templated issuer configurations."""

from __future__ import annotations

import pytest

from asgi_sso.config import Issuer
from asgi_sso.errors import ConfigurationError, InvalidClaim, UnknownIssuer
from asgi_sso.verify.issuers import IssuerRegistry, printable

ENTRA = "https://login.microsoftonline.com/{tenant}/v2.0"
TID = "9188040d-6c67-4c5b-b112-36a304b66dad"
OKTA = Issuer(issuer="https://acme.okta.com", audience=None, jwks_uri="https://acme.okta.com/keys")


def entra(**kw: object) -> Issuer:
    return Issuer(
        issuer=ENTRA,
        jwks_uri="https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
        **{"audience": None, **kw},  # type: ignore[arg-type]
    )


def test_exact_issuer_resolves_with_issuer_as_connection() -> None:
    resolved = IssuerRegistry([OKTA]).resolve("https://acme.okta.com", {})
    assert resolved.config is OKTA
    assert resolved.iss == "https://acme.okta.com"
    assert resolved.tenant is None
    assert resolved.connection == "https://acme.okta.com"
    assert resolved.jwks_uri == "https://acme.okta.com/keys"
    assert resolved.discovery_url == "https://acme.okta.com/.well-known/openid-configuration"


def test_configured_connection_wins_over_issuer() -> None:
    config = Issuer(issuer="https://idp.test", audience=None, connection="acme")
    assert IssuerRegistry([config]).resolve("https://idp.test", {}).connection == "acme"


def test_connection_claim_names_a_connection_inside_the_broker_issuer() -> None:
    registry = IssuerRegistry(
        [Issuer(issuer="https://broker.test", audience=None, connection_claim="conn")]
    )
    resolved = registry.resolve("https://broker.test", {"conn": "conn_42"})
    assert resolved.connection == "https://broker.test#conn_42"
    assert resolved.tenant is None
    # Without the claim, the user belongs to the broker itself.
    assert registry.resolve("https://broker.test", {}).connection == "https://broker.test"


def test_connection_claim_fills_the_configured_pattern() -> None:
    config = Issuer(
        issuer="https://broker.test", audience=None, connection="b:{tenant}", connection_claim="c"
    )
    resolved = IssuerRegistry([config]).resolve("https://broker.test", {"c": "conn_42"})
    assert resolved.connection == "b:conn_42"


@pytest.mark.parametrize(
    "value", ["", None, 42, ["conn_42"], {"a": 1}, "a/b", "a#b", "a b", "a:b", "\x00", "x" * 129]
)
def test_present_but_invalid_connection_claim_is_refused(value: object) -> None:
    registry = IssuerRegistry(
        [Issuer(issuer="https://broker.test", audience=None, connection_claim="conn")]
    )
    with pytest.raises(InvalidClaim, match="'conn' claim is not a connection id") as caught:
        registry.resolve("https://broker.test", {"conn": value})
    if isinstance(value, str) and value:
        assert value not in caught.value.description


def test_template_substitutes_tenant_and_uses_the_concrete_iss_as_connection() -> None:
    iss = f"https://login.microsoftonline.com/{TID}/v2.0"
    resolved = IssuerRegistry([entra()]).resolve(iss, {"tid": TID})
    assert resolved.iss == iss
    assert resolved.tenant == TID
    assert resolved.connection == iss
    assert resolved.jwks_uri == f"https://login.microsoftonline.com/{TID}/discovery/v2.0/keys"


def test_template_connection_pattern_gets_the_tenant() -> None:
    registry = IssuerRegistry([entra(connection="entra:{tenant}")])
    resolved = registry.resolve(f"https://login.microsoftonline.com/{TID}/v2.0", {"tid": TID})
    assert resolved.connection == f"entra:{TID}"


def test_template_discovery_url_gets_the_tenant() -> None:
    config = Issuer(
        issuer=ENTRA, audience=None, discovery_url="https://idp.test/{tenant}/.well-known/x"
    )
    resolved = IssuerRegistry([config]).resolve(
        "https://login.microsoftonline.com/t1/v2.0", {"tid": "t1"}
    )
    assert resolved.discovery_url == "https://idp.test/t1/.well-known/x"
    assert resolved.jwks_uri is None


def test_template_tenant_must_equal_the_tenant_claim() -> None:
    registry = IssuerRegistry([entra()])
    iss = f"https://login.microsoftonline.com/{TID}/v2.0"
    for claims in ({}, {"tid": "someone-else"}, {"tid": 7}):
        with pytest.raises(UnknownIssuer, match="'tid' claim does not match"):
            registry.resolve(iss, claims)
    # The check is repeated on a cached resolution too.
    registry.resolve(iss, {"tid": TID})
    with pytest.raises(UnknownIssuer):
        registry.resolve(iss, {"tid": "someone-else"})


def test_tenant_claim_name_is_configurable() -> None:
    registry = IssuerRegistry([entra(tenant_claim="org")])
    iss = "https://login.microsoftonline.com/acme/v2.0"
    assert registry.resolve(iss, {"org": "acme"}).tenant == "acme"


def test_tenant_allow_list() -> None:
    registry = IssuerRegistry([entra(tenants=frozenset({TID}))])
    assert registry.resolve(f"https://login.microsoftonline.com/{TID}/v2.0", {"tid": TID})
    with pytest.raises(UnknownIssuer, match="tenant 'other' is not allowed"):
        registry.resolve("https://login.microsoftonline.com/other/v2.0", {"tid": "other"})


@pytest.mark.parametrize(
    "tenant",
    ["a/b", "a?b", "a#b", "a%2Fb", "", ".", "..", "a b", "a\nb", "x" * 129],
)
def test_tenant_is_one_path_safe_bounded_segment(tenant: str) -> None:
    registry = IssuerRegistry([entra()])
    with pytest.raises(UnknownIssuer):
        registry.resolve(f"https://login.microsoftonline.com/{tenant}/v2.0", {"tid": tenant})


def test_template_is_anchored() -> None:
    registry = IssuerRegistry([entra()])
    for iss in (
        "https://login.microsoftonline.com/t/v2.0/extra",
        "xhttps://login.microsoftonline.com/t/v2.0",
        "https://login.microsoftonline.comX/t/v2.0",
    ):
        with pytest.raises(UnknownIssuer):
            registry.resolve(iss, {"tid": "t"})


def test_template_dots_are_literal() -> None:
    registry = IssuerRegistry([entra()])
    with pytest.raises(UnknownIssuer):
        registry.resolve("https://loginXmicrosoftonline.com/t/v2.0", {"tid": "t"})


def test_unknown_issuer_is_named_truncated_and_cleaned() -> None:
    registry = IssuerRegistry([OKTA])
    with pytest.raises(UnknownIssuer) as caught:
        registry.resolve("https://evil.test/\x1b[31m" + "a" * 500, {})
    description = caught.value.description
    assert "https://evil.test/[31m" in description
    assert "\x1b" not in description
    assert len(description) < 200


@pytest.mark.parametrize("iss", [None, "", 7, ["https://acme.okta.com"]])
def test_missing_or_non_string_iss_is_an_invalid_claim(iss: object) -> None:
    with pytest.raises(InvalidClaim, match="'iss'"):
        IssuerRegistry([OKTA]).resolve(iss, {})


def test_exact_issuer_has_no_trailing_slash_tolerance() -> None:
    with pytest.raises(UnknownIssuer):
        IssuerRegistry([OKTA]).resolve("https://acme.okta.com/", {})


def test_find_returns_the_configuration_without_claims() -> None:
    registry = IssuerRegistry([OKTA, entra()])
    assert registry.find("https://acme.okta.com") is OKTA
    assert registry.find(ENTRA) is registry.issuers[1]
    assert registry.find("https://login.microsoftonline.com/t/v2.0") is registry.issuers[1]
    assert registry.find("https://other.test") is None


def test_registry_needs_unique_issuers() -> None:
    assert IssuerRegistry([]).find(OKTA.issuer) is None  # connections may be the only issuers
    with pytest.raises(ConfigurationError, match="twice"):
        IssuerRegistry([OKTA, OKTA])


def test_printable_strips_controls_and_truncates() -> None:
    assert printable("a\x00b\x7fc") == "abc"
    assert printable("x" * 10, limit=4) == "xxxx…"


# -- connection ids never meet across issuers (RFC 7519 §4.1.2: `sub` is unique per issuer) --

BROKER = Issuer(issuer="https://broker.test", audience=None, connection_claim="connection_id")


def test_a_tenant_named_like_another_issuers_connection_keeps_its_own_namespace() -> None:
    registry = IssuerRegistry(
        [Issuer(issuer="https://acme.okta.com", audience=None, connection="acme"), entra()]
    )
    okta = registry.resolve("https://acme.okta.com", {})
    tenant = registry.resolve("https://login.microsoftonline.com/acme/v2.0", {"tid": "acme"})
    assert okta.connection == "acme"
    assert tenant.connection == "https://login.microsoftonline.com/acme/v2.0"


def test_a_broker_claim_naming_another_issuers_connection_keeps_its_own_namespace() -> None:
    registry = IssuerRegistry(
        [Issuer(issuer="https://acme.okta.com", audience=None, connection="acme"), BROKER]
    )
    brokered = registry.resolve("https://broker.test", {"connection_id": "acme"})
    assert brokered.connection == "https://broker.test#acme"
    assert registry.resolve("https://acme.okta.com", {}).connection == "acme"


@pytest.mark.parametrize(
    ("issuers", "names"),
    [
        # Two operator-chosen names.
        (
            [Issuer(issuer="https://a.test", audience=None, connection="acme"),
             Issuer(issuer="https://b.test", audience=None, connection="acme")],
            ("https://a.test", "https://b.test"),
        ),
        # A bare-tenant connection id against an operator-chosen name.
        (
            [Issuer(issuer="https://a.test", audience=None, connection="acme"),
             entra(connection="{tenant}")],
            ("https://a.test", ENTRA),
        ),
        # Two bare-tenant templates.
        (
            [entra(connection="{tenant}"),
             Issuer(issuer="https://x.test/{tenant}", audience=None, jwks_uri="https://k",
                    connection="{tenant}")],
            (ENTRA, "https://x.test/{tenant}"),
        ),
        # A broker pattern against an operator-chosen name.
        (
            [Issuer(issuer="https://a.test", audience=None, connection="conn_acme"),
             Issuer(issuer="https://broker.test", audience=None, connection="{tenant}",
                    connection_claim="c")],
            ("https://a.test", "https://broker.test"),
        ),
        # A name that spells another issuer's iss.
        (
            [Issuer(issuer="https://a.test", audience=None, connection="https://b.test"),
             Issuer(issuer="https://b.test", audience=None)],
            ("https://a.test", "https://b.test"),
        ),
        # A name inside a template's iss space.
        (
            [Issuer(issuer="https://a.test", audience=None, connection="https://login.microsoftonline.com/t/v2.0"),
             entra()],
            ("https://a.test", ENTRA),
        ),
        # An exact issuer whose iss lies in a broker's default space.
        (
            [BROKER, Issuer(issuer="https://broker.test#conn_1", audience=None)],
            ("https://broker.test", "https://broker.test#conn_1"),
        ),
        # Two patterns whose prefixes and suffixes can meet.
        (
            [entra(connection="t-{tenant}"),
             Issuer(issuer="https://broker.test", audience=None, connection="t-x{tenant}",
                    connection_claim="c")],
            (ENTRA, "https://broker.test"),
        ),
    ],
)  # fmt: skip
def test_issuers_that_could_share_a_connection_id_are_refused_at_start_up(
    issuers: list[Issuer], names: tuple[str, str]
) -> None:
    with pytest.raises(ConfigurationError, match="same connection id") as caught:
        IssuerRegistry(issuers)
    message = str(caught.value)
    assert all(repr(name) in message for name in names)
    assert "Issuer.connection" in message


def test_distinct_issuers_with_distinct_spaces_are_accepted() -> None:
    registry = IssuerRegistry(
        [
            OKTA,
            Issuer(issuer="https://other.okta.com", audience=None, connection="other"),
            entra(),
            Issuer(
                issuer="https://x.test/{tenant}",
                audience=None,
                jwks_uri="https://k",
                connection="x:{tenant}",
            ),
            BROKER,
            Issuer(
                issuer="https://broker2.test",
                audience=None,
                connection="b2:{tenant}",
                connection_claim="c",
            ),
            # Same iss as one of the template's: the same issuer, exact routing wins.
            Issuer(issuer="https://login.microsoftonline.com/acme/v2.0", audience=None),
        ]
    )
    assert len(registry.issuers) == 7


def test_template_iss_and_broker_on_the_same_host_do_not_meet() -> None:
    broker = Issuer(
        issuer="https://login.microsoftonline.com/b/v2.0", audience=None, connection_claim="c"
    )
    assert IssuerRegistry([entra(), broker])


def test_registry_tells_which_connection_ids_it_can_produce() -> None:
    registry = IssuerRegistry([OKTA, entra(), BROKER])
    for connection in (
        "https://acme.okta.com",
        f"https://login.microsoftonline.com/{TID}/v2.0",
        "https://broker.test",
        "https://broker.test#conn_acme",
    ):
        assert registry.produces(connection)
    for connection in ("acme", TID, "conn_acme", "https://broker.test#a/b", ""):
        assert not registry.produces(connection)
