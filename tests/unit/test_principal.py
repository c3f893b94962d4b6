from __future__ import annotations

import pytest
from starlette.authentication import AuthCredentials, BaseUser

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
