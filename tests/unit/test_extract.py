from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.errors import AuthError, InvalidRequest, MalformedToken
from asgi_sso.extract import Extractor, parse_cookie_header


def scope(headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "headers": headers, "query_string": query, "path": "/"}


def test_bearer_header_is_found_with_any_scheme_case() -> None:
    ex = Extractor()
    for scheme in (b"Bearer", b"bearer", b"BEARER", b"bEaReR"):
        found = ex.extract(scope([(b"authorization", scheme + b" abc.def.ghi")]))
        assert found is not None
        assert found.token == "abc.def.ghi"
        assert found.source == "header"


def test_two_authorization_headers_are_refused_not_resolved() -> None:
    ex = Extractor()
    with pytest.raises(InvalidRequest, match="more than one Authorization"):
        ex.extract(
            scope([(b"authorization", b"Bearer a.b.c"), (b"authorization", b"Bearer d.e.f")])
        )


def test_other_schemes_are_not_our_credential() -> None:
    assert Extractor().extract(scope([(b"authorization", b"Basic dXNlcjpwYXNz")])) is None


def test_no_credentials_gives_none() -> None:
    assert Extractor().extract(scope([(b"accept", b"*/*")])) is None


def test_oversized_token_is_refused_before_parsing() -> None:
    ex = Extractor(max_token_bytes=100)
    with pytest.raises(MalformedToken, match="larger than 100 bytes"):
        ex.extract(scope([(b"authorization", b"Bearer " + b"a" * 101)]))


def test_characters_outside_b64token_are_refused() -> None:
    with pytest.raises(MalformedToken):
        Extractor().extract(scope([(b"authorization", b"Bearer a.b.c<script>")]))


def test_empty_bearer_is_malformed() -> None:
    with pytest.raises(MalformedToken, match="empty"):
        Extractor().extract(scope([(b"authorization", b"Bearer ")]))


def test_cookie_names_are_tried_in_order_and_header_wins() -> None:
    ex = Extractor(cookie_names=("id_token", "access_token"))
    found = ex.extract(scope([(b"cookie", b"other=1; access_token=x.y.z; id_token=a.b.c")]))
    assert found == ("a.b.c", "cookie")
    found = ex.extract(scope([(b"cookie", b"id_token=a.b.c"), (b"authorization", b"Bearer h.h.h")]))
    assert found == ("h.h.h", "header")


def test_cookies_are_ignored_unless_configured() -> None:
    assert Extractor().extract(scope([(b"cookie", b"access_token=x.y.z")])) is None


def test_query_token_is_ignored_unless_enabled() -> None:
    assert Extractor().extract(scope([], b"access_token=a.b.c")) is None
    found = Extractor(allow_query_token=True).extract(scope([], b"x=1&access_token=a.b.c"))
    assert found == ("a.b.c", "query")


def test_query_and_header_together_are_refused() -> None:
    ex = Extractor(allow_query_token=True)
    with pytest.raises(InvalidRequest, match="more than one method"):
        ex.extract(scope([(b"authorization", b"Bearer a.b.c")], b"access_token=a.b.c"))


def test_repeated_query_token_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        Extractor(allow_query_token=True).extract(scope([], b"access_token=a&access_token=b"))


def test_presented_tells_api_clients_from_browsers() -> None:
    ex = Extractor()
    assert ex.presented(scope([(b"authorization", b"Bearer x")]))
    assert not ex.presented(scope([(b"cookie", b"a=b")]))


def test_parse_cookie_header_first_occurrence_wins() -> None:
    assert parse_cookie_header('a=1; b="2"; a=3; junk; =x') == {"a": "1", "b": "2"}


@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=300)), max_size=6))
@example([(b"authorization", b"\xff\xfe Bearer"), (b"cookie", b"\x00=\x00")])
def test_arbitrary_headers_never_raise_anything_but_auth_errors(
    headers: list[tuple[bytes, bytes]],
) -> None:
    ex = Extractor(cookie_names=("tok",), allow_query_token=True, max_token_bytes=200)
    with contextlib.suppress(AuthError):
        ex.extract(scope([(k.lower(), v) for k, v in headers], b"access_token=%00"))


def _outcome(call: Any) -> object:
    try:
        return call()
    except AuthError as exc:
        return (type(exc), str(exc))


@given(
    value=st.binary(max_size=80)
    | st.builds(
        lambda scheme, gap, token: scheme + gap + token,
        st.sampled_from([b"Bearer", b"bearer", b"Basic", b"DPoP"]),
        st.sampled_from([b" ", b"  ", b"\t", b""]),
        st.text('ABCabc012-._~+/= \t"é', max_size=40).map(lambda s: s.encode()),
    ),
    cookie=st.none() | st.just(b"session=x.y.z"),
)
@example(value=b"Basic dXNlcjpwYXNz", cookie=b"session=x.y.z")
def test_a_remembered_authorization_header_gives_what_a_fresh_extractor_gives(
    value: bytes, cookie: bytes | None
) -> None:
    # Extractors remember the tokens of recent headers (one extractor across all
    # examples): a repeat must give exactly what the header gives the first time.
    headers = [(b"authorization", value)] + ([(b"cookie", cookie)] if cookie else [])
    fresh = Extractor(cookie_names=("session",), max_token_bytes=32)
    expected = _outcome(lambda: fresh.extract(scope(headers)))
    for _ in range(2):
        assert _outcome(lambda: _REMEMBERING.extract(scope(headers))) == expected


_REMEMBERING = Extractor(cookie_names=("session",), max_token_bytes=32)


def test_a_repeated_header_hands_on_the_same_token_and_the_memory_stays_small() -> None:
    ex = Extractor()
    header = [(b"authorization", b"Bearer a.b.c")]
    first, again = ex.extract(scope(header)), ex.extract(scope(header))
    assert first is not None
    assert again is not None
    assert again.token is first.token  # its hash is computed once
    for n in range(1000):
        ex.extract(scope([(b"authorization", f"Bearer t{n}".encode())]))
    assert 0 < len(ex._recent) <= 256
    big = b"Bearer " + b"a" * 5000
    assert ex.extract(scope([(b"authorization", big)])) is not None
    assert big not in ex._recent
    for bad in (b"Bearer a<b", b"Basic dXNlcjpwYXNz"):  # refused or not ours: not kept
        with contextlib.suppress(AuthError):
            ex.extract(scope([(b"authorization", bad)]))
        assert bad not in ex._recent
