"""Property tests: no return_to that survives can leave the app, however it is encoded."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.login.return_to import safe_return_to

_HOSTS = st.sampled_from(["evil.example", "evil.example:443", "user@evil.example", "127.0.0.1"])
_LEADS = st.sampled_from(
    ["//", "/\\", "\\\\", "\\/", "/\t/", "/\n/", " //", "https://", "http:", "javascript:",
     "data:", "/%2F", "%2F%2F", "/%5C", "%5C%5C", "/%252F", "/%09/", "///", "/./", "/../"]
)  # fmt: skip


def _encodings(value: str) -> st.SearchStrategy[str]:
    return st.sampled_from([value, quote(value, safe=""), quote(quote(value, safe=""), safe="")])


hostile_return_to = st.builds(lambda lead, host, tail: lead + host + tail, _LEADS, _HOSTS,
                              st.sampled_from(["", "/", "/x?y=1"])).flatmap(_encodings)  # fmt: skip


def _escapes(value: str) -> bool:
    """Whether any decoding of ``value`` names another host or a scheme."""
    current = value
    for _ in range(5):
        for candidate in (current, current.replace("\\", "/")):
            stripped = "".join(c for c in candidate if c not in "\t\n\r").lstrip(" ")
            parts = urlsplit(stripped)
            if parts.scheme or parts.netloc or stripped.startswith("//"):
                return True
        current = unquote(current)
    return False


@given(hostile_return_to)
@example("/%2F%2Fevil.example")
@example("/\\evil.example")
def test_hostile_values_never_survive(value: str) -> None:
    assert safe_return_to(value) is None


@given(st.text(max_size=80))
@example("/%5C%5Cevil")
@example("/\u2028//evil")
def test_whatever_survives_stays_in_the_app(value: str) -> None:
    result = safe_return_to(value)
    if result is not None:
        assert result == value
        assert result.startswith("/")
        assert not _escapes(result)


_SAFE_SEGMENT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_~", min_size=1, max_size=12)


@given(st.lists(_SAFE_SEGMENT, max_size=5), st.none() | _SAFE_SEGMENT)
def test_plain_app_paths_are_kept(segments: list[str], query: str | None) -> None:
    value = "/" + "/".join(segments) + (f"?q={query}" if query else "")
    assert safe_return_to(value) == value
