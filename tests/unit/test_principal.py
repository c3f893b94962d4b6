from __future__ import annotations

import pytest
from starlette.authentication import AuthCredentials, BaseUser

from asgi_sso.errors import ConfigurationError
from asgi_sso.principal import ANONYMOUS, Credentials, Principal


def make(**kw: object) -> Principal:
    base: dict[str, object] = {
        "identity": "u1",
        "claims": {"sub": "u1"},
        "issuer": "https://idp",
        "tenant": "acme",
    }
    base.update(kw)
    return Principal(**base)  # type: ignore[arg-type]


def test_principal_has_the_starlette_user_shape() -> None:
    p = make(claims={"sub": "u1", "email": "a@acme.test"})
    for name in ("is_authenticated", "display_name", "identity"):
        assert hasattr(BaseUser, name)
        assert hasattr(p, name)
    assert p.is_authenticated
    assert p.display_name == "a@acme.test"
    assert p.email == "a@acme.test"


def test_display_name_prefers_profile_then_claims_then_sub() -> None:
    assert make().display_name == "u1"
    assert make(claims={"name": "Ada"}).display_name == "Ada"
    assert make(claims={"name": "Ada"}, profile={"name": "Ada L."}).display_name == "Ada L."


def test_scopes_and_repr() -> None:
    p = make(scopes=frozenset({"read", "write"}))
    assert p.has_scopes("read")
    assert not p.has_scopes("read", "admin")
    assert "u1" in repr(p)
    assert "claims" not in repr(p)


def test_anonymous_is_unauthenticated_with_no_scopes() -> None:
    assert not ANONYMOUS.is_authenticated
    assert ANONYMOUS.display_name == ""
    assert not ANONYMOUS.has_scopes("x")
    assert ANONYMOUS.has_scopes()


def test_credentials_look_like_starlette_auth_credentials() -> None:
    creds = Credentials(frozenset({"a"}))
    assert "a" in creds.scopes
    assert hasattr(AuthCredentials(["a"]), "scopes")


def test_claims_decode_lazily_from_the_payload_once_per_principal() -> None:
    p = Principal(
        identity="u1",
        issuer="https://idp",
        tenant="acme",
        payload=b'{"sub":"u1","email":"a@acme.test"}',
    )
    assert p._claims is None  # nothing decoded until read
    assert p.claims == {"sub": "u1", "email": "a@acme.test"}
    assert p.claims is p.claims
    assert p.email == "a@acme.test"
    other = Principal(identity="u1", issuer="https://idp", tenant="acme", payload=b'{"sub":"u1"}')
    assert other.claims is not p.claims
    assert Principal(identity="u1", issuer="https://idp", tenant="acme").claims == {}


def test_credentials_are_read_only_so_they_can_be_shared() -> None:
    creds = Credentials(frozenset({"a"}))
    with pytest.raises(AttributeError):
        creds.scopes = frozenset({"admin"})
    assert creds.scopes == frozenset({"a"})


def test_a_principal_built_from_a_payload_decodes_its_claims_on_first_read() -> None:
    principal = Principal(
        identity="u1", payload=b'{"sub":"u1"}', issuer="https://idp", tenant="acme"
    )
    assert principal.claims == {"sub": "u1"}
    assert principal.claims is principal.claims


def test_connection_is_the_connection_id_and_tenant_its_alias() -> None:
    p = Principal(identity="u1", issuer="https://idp.acme", connection="acme")
    assert p.connection == p.tenant == "acme"
    assert p.issuer == "https://idp.acme"
    assert make().connection == "acme"  # built with tenant=, its old name
    assert "connection='acme'" in repr(p)
    with pytest.raises(TypeError):
        Principal(identity="u1", issuer="i")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Principal(identity="u1", issuer="i", connection="a", tenant="b")
    assert ANONYMOUS.connection == ANONYMOUS.tenant == ""


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"groups": ["staff", "admins"], "roles": ["admins", "reader"]},
            ("staff", "admins", "reader"),
        ),
        ({"realm_access": {"roles": ["k1"]}}, ("k1",)),
        ({"groups": "single"}, ("single",)),
        ({"groups": ["a", 3, None, "a", "", {"x": 1}]}, ("a",)),
        ({"groups": {"not": "a list"}}, ()),
        # Client roles need the API's own client id; the token's azp never names it.
        ({"azp": "my.app", "resource_access": {"my.app": {"roles": ["c1"]}}}, ()),
    ],
)
def test_roles_come_from_the_token_without_any_tier_mapper(
    claims: dict[str, object], expected: tuple[str, ...]
) -> None:
    assert make(claims=claims).roles == expected


def test_roles_follow_the_configured_claim_paths_and_client() -> None:
    claims = {
        "https://acme.example/roles": ["ns-role"],
        "groups": ["g"],
        "resource_access": {"my.api": {"roles": ["api-reader"]}, "web": {"roles": ["x"]}},
    }
    custom = make(claims=claims, role_claims=("https://acme.example/roles",))
    assert custom.roles == ("ns-role",)
    client = make(claims=claims, role_client_id="my.api")
    assert client.roles == ("g", "api-reader")


def test_roles_are_read_only_when_used() -> None:
    p = Principal(identity="u1", issuer="i", connection="c", payload=b'{"groups":["g"]}')
    assert p._claims is None
    assert p._roles is None
    assert p.roles == ("g",)
    assert p.roles is p.roles
    assert make(roles=("given",), claims={"groups": ["g"]}).roles == ("given",)
    assert ANONYMOUS.roles == ()


def test_has_tier_follows_the_mapper_ranking_on_the_principal() -> None:
    ranks = {"enterprise": 3, "pro": 2, "free": 1}
    assert make(tier="enterprise", tier_ranks=ranks).has_tier("pro")
    assert make(tier="pro", tier_ranks=ranks).has_tier("pro")
    assert not make(tier="free", tier_ranks=ranks).has_tier("pro")
    assert not make(tier=None, tier_ranks=ranks).has_tier("free")
    assert not make(tier="legacy", tier_ranks=ranks).has_tier("free")
    with pytest.raises(ConfigurationError, match="'por' is not one of the tier mapper's tiers"):
        make(tier="pro", tier_ranks=ranks).has_tier("por")
    # Without an ordering only the tier itself counts.
    assert make(tier="pro").has_tier("pro")
    assert not make(tier="enterprise").has_tier("pro")
    assert not ANONYMOUS.has_tier("free")
