"""The cookie codec: JWE round trips, purpose and app binding, key rotation, chunking."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_sso.config import Secret
from asgi_sso.errors import ConfigurationError
from asgi_sso.sessions.base import SessionInvalid
from asgi_sso.sessions.codec import CookieCodec, join_chunks, split_chunks

OLD = Secret(b"o" * 32)
NEW = Secret(b"n" * 32)


def test_round_trip_hides_the_plaintext() -> None:
    codec = CookieCodec([NEW], purpose="session")
    sealed = codec.encode(b"alice@corp.example")
    assert b"alice" not in sealed.encode()
    assert codec.decode(sealed) == b"alice@corp.example"


def test_purpose_binds_the_key() -> None:
    sealed = CookieCodec([NEW], purpose="state").encode(b"x")
    with pytest.raises(SessionInvalid):
        CookieCodec([NEW], purpose="session").decode(sealed)


def test_binding_keeps_apps_sharing_a_secret_apart() -> None:
    web = CookieCodec([NEW], purpose="p", binding=("https://idp.example", "web"))
    sealed = web.encode(b"x")
    assert CookieCodec([NEW], purpose="p", binding=("https://idp.example", "web")).decode(sealed)
    for other in (("https://idp.example", "admin"), ("https://idp.other", "web"), ()):
        with pytest.raises(SessionInvalid):
            CookieCodec([NEW], purpose="p", binding=other).decode(sealed)


_part = st.text(max_size=12)


@given(first=st.lists(_part, max_size=3), second=st.lists(_part, max_size=3))
def test_a_cookie_opens_only_under_its_own_binding(first: list[str], second: list[str]) -> None:
    # Length prefixes keep parts apart: ("ab", "c") and ("a", "bc") are two bindings.
    sealed = CookieCodec([NEW], purpose="p", binding=first).encode(b"x")
    other = CookieCodec([OLD, NEW], purpose="p", binding=second)
    if first == second:
        assert other.decode(sealed) == b"x"
    else:
        with pytest.raises(SessionInvalid):
            other.decode(sealed)


def test_rotation_works_under_a_binding() -> None:
    app = ("https://idp.example", "web")
    old_only = CookieCodec([OLD], purpose="p", binding=app)
    rotated = CookieCodec([OLD, NEW], purpose="p", binding=app)
    assert rotated.decode(old_only.encode(b"a")) == b"a"
    assert CookieCodec([NEW], purpose="p", binding=app).decode(rotated.encode(b"b")) == b"b"
    with pytest.raises(SessionInvalid):
        CookieCodec([OLD, NEW], purpose="p", binding=(app[0], "admin")).decode(
            old_only.encode(b"c")
        )


def test_newest_secret_encrypts_and_all_decrypt() -> None:
    old_only = CookieCodec([OLD], purpose="p")
    rotated = CookieCodec([OLD, NEW], purpose="p")
    new_only = CookieCodec([NEW], purpose="p")
    assert rotated.decode(old_only.encode(b"a")) == b"a"
    assert new_only.decode(rotated.encode(b"b")) == b"b"
    with pytest.raises(SessionInvalid):
        new_only.decode(old_only.encode(b"c"))


@pytest.mark.parametrize(
    "value",
    ["", "a.b.c.d.e", "....", "x" * 70_000, "eyJhbGciOiJub25lIn0.." + "A" * 10 + ".B.C"],
)
def test_garbage_is_refused_not_crashed(value: str) -> None:
    with pytest.raises(SessionInvalid):
        CookieCodec([NEW], purpose="p").decode(value)


def test_every_flipped_character_is_detected() -> None:
    codec = CookieCodec([NEW], purpose="p")
    sealed = codec.encode(b"payload")
    for index in range(0, len(sealed), 7):
        if sealed[index] == ".":
            continue
        flipped = sealed[:index] + ("A" if sealed[index] != "A" else "B") + sealed[index + 1 :]
        with pytest.raises(SessionInvalid):
            codec.decode(flipped)


def test_short_or_missing_secrets_fail_at_build_time() -> None:
    with pytest.raises(ConfigurationError):
        CookieCodec([Secret(b"short")], purpose="p")
    with pytest.raises(ConfigurationError):
        CookieCodec([], purpose="p")


def test_chunks_round_trip_and_small_values_stay_whole() -> None:
    assert split_chunks("s", "abc", chunk_size=10) == [("s", "abc")]
    parts = split_chunks("s", "x" * 25, chunk_size=10)
    assert [name for name, _ in parts] == ["s.0", "s.1", "s.2"]
    assert join_chunks(dict(parts), "s", max_chunks=4) == "x" * 25
    assert join_chunks({}, "s", max_chunks=4) is None


def test_too_many_chunks_are_refused() -> None:
    cookies = dict(split_chunks("s", "x" * 60, chunk_size=10))
    with pytest.raises(SessionInvalid):
        join_chunks(cookies, "s", max_chunks=4)


def test_secret_never_appears_in_repr() -> None:
    codec = CookieCodec([NEW], purpose="p")
    assert "nnnn" not in repr(codec)
