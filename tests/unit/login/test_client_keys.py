"""The default provider's ``private_key_jwt`` settings, key files and the published public keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

from asgi_sso.config import Introspection, Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.login.client_auth import load_client_key
from asgi_sso.login.config import LoginConfig

COOKIE_KEY = Secret(b"k" * 32)
RSA = RSAKey.generate_key(2048)
EC = ECKey.generate_key("P-256")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _pem(key: Any) -> str:
    return str(key.as_pem(private=True).decode())


def _jwk(key: Any, **extra: Any) -> str:
    return json.dumps({**key.as_dict(private=True), **extra})


def login(**changes: Any) -> LoginConfig:
    settings_: dict[str, Any] = {
        "issuer": "https://idp.example",
        "client_id": "web",
        "client_key": Secret(_pem(EC)),
        "token_endpoint_auth": "private_key_jwt",
        "cookie_secrets": (COOKIE_KEY,),
    }
    return LoginConfig(**{**settings_, **changes})


def test_private_key_jwt_takes_a_key_and_no_secret() -> None:
    config = login()
    key = config.signing_key()
    assert key is not None
    assert key.alg == "ES256"
    with pytest.raises(ConfigurationError, match="client_key goes with"):
        login(client_key=None)
    with pytest.raises(ConfigurationError, match="client_key goes with"):
        login(token_endpoint_auth="client_secret_basic", client_secret=Secret("s"))
    with pytest.raises(ConfigurationError, match="takes no client_secret"):
        login(client_secret=Secret("s"))
    with pytest.raises(ConfigurationError, match="belongs to the default provider"):
        login(issuer=None, client_id=None)


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PRIVATE KEY-----\nbm9wZQ==\n-----END PRIVATE KEY-----\n",
        RSA.as_pem(private=False).decode(),
        json.dumps(RSA.as_dict(private=False)),
        _pem(ECKey.generate_key("P-384")),
        "not a key",
    ],
    ids=["garbage-pem", "public-pem", "public-jwk", "p384", "text"],
)
def test_an_unusable_key_fails_when_built_without_showing_it(text: str) -> None:
    with pytest.raises(ConfigurationError, match="client_key") as caught:
        login(client_key=Secret(text))
    assert "bm9wZQ" not in str(caught.value)
    assert "BEGIN" not in str(caught.value)


def test_a_key_that_is_not_text_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="text"):
        login(client_key=Secret(b"\xff\xfe\x00"))


def test_the_jwks_path_defaults_below_the_prefix_and_may_not_shadow_a_route() -> None:
    assert login().jwks_route == "/auth/jwks.json"
    assert login(prefix="/sso").jwks_route == "/sso/jwks.json"
    assert login(jwks_path="/.well-known/client-jwks").jwks_route == "/.well-known/client-jwks"
    shadowing = ("/auth/login", "/auth/callback", "/auth/backchannel-logout", "/", "jwks", "/j?x")
    for path in shadowing:
        with pytest.raises(ConfigurationError, match="jwks_path"):
            login(jwks_path=path)


def test_par_takes_three_words() -> None:
    assert login().par == "auto"
    assert login(par="always").par == "always"
    with pytest.raises(ConfigurationError, match="par"):
        login(par="sometimes")


# -- Secret.from_file -------------------------------------------------------------------------


def test_a_secret_file_is_read_and_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "key.pem"
    path.write_text(_pem(RSA) + "\n\n")
    secret = Secret.from_file(path)
    assert secret.reveal_str() == _pem(RSA).strip()
    assert login(client_key=Secret.from_file(str(path))).signing_key() is not None
    (tmp_path / "secret").write_bytes(b"  web-secret\r\n")
    assert Secret.from_file(tmp_path / "secret").reveal() == b"web-secret"


def test_an_unreadable_empty_or_huge_secret_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the secret file"):
        Secret.from_file(tmp_path / "missing")
    (tmp_path / "empty").write_text(" \n")
    with pytest.raises(ConfigurationError, match="is empty"):
        Secret.from_file(tmp_path / "empty")
    (tmp_path / "huge").write_bytes(b"x" * (1024 * 1024 + 1))
    with pytest.raises(ConfigurationError, match="larger than 1 MiB"):
        Secret.from_file(tmp_path / "huge")
    with pytest.raises(ConfigurationError, match="cannot read"):
        Secret.from_file(tmp_path)  # a directory


# -- the public half --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alg", "kid"),
    [
        (_pem(RSA), None, RSA.thumbprint()),  # RS256 or PS256: no alg published
        (_pem(EC), "ES256", EC.thumbprint()),
        (_jwk(RSA, kid="rsa-2026"), None, "rsa-2026"),
        (_jwk(RSA, kid="rsa-pss", alg="PS256"), "PS256", "rsa-pss"),
        (_jwk(EC, kid="ec-2026", use="sig", key_ops=["sign"]), "ES256", "ec-2026"),
        (_jwk(EC), "ES256", EC.thumbprint()),
    ],
    ids=["rsa-pem", "ec-pem", "rsa-jwk", "rsa-jwk-ps256", "ec-jwk", "ec-jwk-no-kid"],
)
def test_the_public_jwk_has_kid_use_alg_and_no_private_member(
    text: str, alg: str | None, kid: str
) -> None:
    key = load_client_key(text)
    public = key.public_jwk()
    assert public["kid"] == key.kid == kid
    assert (public["use"], public.get("alg")) == ("sig", alg)
    assert not PRIVATE_MEMBERS & set(public)
    assert set(public) <= {"kty", "n", "e", "crv", "x", "y", "kid", "use", "alg"}
    # The assertion names the published kid and verifies with the published key.
    token = key.sign({"iss": "web"})
    header = jws.extract_compact(token.encode()).protected
    assert header["kid"] == public["kid"]
    imported = ECKey.import_key(public) if alg == "ES256" else RSAKey.import_key(public)
    assert not imported.is_private
    jws.deserialize_compact(token, imported, algorithms=[key.alg])


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([RSA, EC]),
    st.dictionaries(
        st.sampled_from(["kid", "use", "alg", "key_ops", "x5c", "ext", "oth", "extra"]),
        st.text(max_size=8),
        max_size=4,
    ),
)
def test_no_member_a_jwk_was_given_beyond_the_public_ones_is_published(
    key: Any, extra: dict[str, Any]
) -> None:
    extra = {k: v for k, v in extra.items() if k not in ("use", "alg", "key_ops")}
    try:
        loaded = load_client_key(_jwk(key, **extra))
    except ConfigurationError:
        return  # a JWK that cannot sign (an empty kid is not refused, an odd member may be)
    public = loaded.public_jwk()
    assert not PRIVATE_MEMBERS & set(public)
    assert set(public) - {"kid", "use", "alg"} <= {"kty", "n", "e", "crv", "x", "y"}
    assert public["kid"]


# -- introspection ----------------------------------------------------------------------------


def test_introspection_takes_exactly_one_credential() -> None:
    Introspection(client_id="api", client_key=Secret(_pem(RSA)))
    with pytest.raises(ConfigurationError, match="exactly one"):
        Introspection(client_id="api")
    with pytest.raises(ConfigurationError, match="exactly one"):
        Introspection(client_id="api", client_secret=Secret("s"), client_key=Secret(_pem(RSA)))


# -- keys published beside the signing key (rotation) -----------------------------------------


def test_published_keys_are_read_when_built_and_may_be_public() -> None:
    nxt = RSAKey.generate_key(2048)
    old = ECKey.generate_key("P-256")
    config = login(published_keys=(Secret(_pem(nxt)), Secret(old.as_pem(private=False))))
    assert [key.kid for key in config.published_public_keys()] == [
        nxt.thumbprint(),
        old.thumbprint(),
    ]
    assert login().published_public_keys() == ()


@pytest.mark.parametrize(
    ("published", "match"),
    [
        ((Secret(_pem(EC)),), "kid"),  # the signing key again
        ((Secret(_jwk(RSA, kid="k")), Secret(_jwk(ECKey.generate_key("P-256"), kid="k"))), "kid"),
        ((Secret("not a key"),), r"published_keys\[0\]"),
        ((Secret(b"\xff\xfe"),), "text"),
    ],
    ids=["signing-key-again", "one-kid-twice", "unreadable", "not-text"],
)
def test_published_keys_with_a_duplicate_kid_or_unreadable_are_refused(
    published: tuple[Secret, ...], match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match) as caught:
        login(published_keys=published)
    assert "BEGIN" not in str(caught.value)


def test_published_keys_go_with_a_client_key() -> None:
    with pytest.raises(ConfigurationError, match="published_keys go with client_key"):
        login(
            client_key=None,
            token_endpoint_auth="client_secret_basic",
            client_secret=Secret("s"),
            published_keys=(Secret(_pem(RSA)),),
        )
    with pytest.raises(ConfigurationError, match="published_keys"):
        login(issuer=None, client_id=None, client_key=None, published_keys=(Secret(_pem(RSA)),))
