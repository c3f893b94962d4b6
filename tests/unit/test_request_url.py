"""The URL a request was addressed to, as a DPoP proof's ``htu`` must name it.

The server decodes ``path``; the client's ``htu`` keeps its percent-escapes. And
``Host`` is the client's to write: only a host and a port are taken from it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso import _asgi
from asgi_sso.verify.dpop import normalize_htu, request_url


def scope(
    path: str,
    raw: bytes | None = None,
    host: bytes | None = b"api.test",
    root: str = "",
    server: Any = ("10.0.0.1", 8000),
) -> dict[str, Any]:
    headers = [] if host is None else [(b"host", host)]
    built: dict[str, Any] = {"type": "http", "scheme": "https", "path": path,
                             "root_path": root, "headers": headers, "server": server}  # fmt: skip
    if raw is not None:
        built["raw_path"] = raw
    return built


@pytest.mark.parametrize(
    ("path", "raw", "expected"),
    [
        ("/things", b"/things", "https://api.test/things"),
        ("/items/a b", b"/items/a%20b", "https://api.test/items/a%20b"),
        ("/items/café", b"/items/caf%C3%A9", "https://api.test/items/caf%C3%A9"),
        ("/a/b", b"/a%2Fb", "https://api.test/a%2Fb"),  # not the resource /a/b
        ("/a/b", b"/a/b?x=%2F", "https://api.test/a/b"),  # the query is never part of it
        ("/items/café", None, "https://api.test/items/caf%C3%A9"),  # no raw_path: re-escaped
        ("/x", b"/other", "https://api.test/x"),  # a raw_path that is not this path
        ("/files/a#b", b"/files/a#b", "https://api.test/files/a%23b"),  # a "#" a server kept
        ("/a b", b"/a b", "https://api.test/a%20b"),
    ],
)
def test_the_path_is_the_one_the_client_spelled(path: str, raw: bytes, expected: str) -> None:
    assert request_url(scope(path, raw)) == expected


@pytest.mark.parametrize(
    ("path", "raw"),
    [("/api/a b", b"/api/a%20b"), ("/a b", b"/a%20b")],  # with and without the mount point
)
def test_a_mount_point_is_spelled_once(path: str, raw: bytes) -> None:
    assert request_url(scope(path, raw, root="/api")) == "https://api.test/api/a%20b"


def test_a_mount_point_spelled_with_escapes_is_kept_out_of_the_route() -> None:
    s = scope("/my api/x", b"/my%20api/x", root="/my api")
    assert _asgi.spelled_route_path(s) == "/x"
    assert request_url(s) == "https://api.test/my%20api/x"


@pytest.mark.parametrize(
    "host",
    [b"api.test/admin", b"api.test:80/a?b#", b"user@api.test", b"api.test\\..", b"a b", b"",
     b"api.test:", b"api.test:123456", b"[::1", b"\xff"],
)  # fmt: skip
def test_a_host_header_that_is_not_a_host_is_not_taken(host: bytes) -> None:
    assert request_url(scope("/x", b"/x", host=host)) == "https://10.0.0.1:8000/x"


@pytest.mark.parametrize(
    ("host", "origin"),
    [(b"API.test:8443", "https://API.test:8443"), (b"[::1]:8000", "https://[::1]:8000"),
     (b"127.0.0.1", "https://127.0.0.1")],
)  # fmt: skip
def test_a_host_and_port_are_taken(host: bytes, origin: str) -> None:
    assert _asgi.request_origin(scope("/x", host=host)) == origin


@pytest.mark.parametrize(
    ("server", "origin"),
    [(("::1", 8000), "https://[::1]:8000"), (("/run/app.sock", None), "https://localhost"),
     (None, "https://localhost")],
)  # fmt: skip
def test_without_a_usable_host_the_server_address_is_used(server: Any, origin: str) -> None:
    assert _asgi.request_origin(scope("/x", host=None, server=server)) == origin


@given(st.text(max_size=30), st.binary(max_size=40))
def test_no_host_header_moves_the_request_to_another_path(path: str, host: bytes) -> None:
    path = "/" + path
    url = request_url(scope(path, quote(path).encode(), host=host))
    parts = urlsplit(url)
    assert (parts.path, parts.query, parts.fragment) == (quote(path), "", "")


@given(st.text(min_size=1, max_size=30))
def test_a_proof_for_the_escaped_path_matches_the_request(path: str) -> None:
    path = "/" + path
    htu = "https://api.test" + quote(path)  # how a client spells the URL it calls
    assert normalize_htu(request_url(scope(path, quote(path).encode()))) == normalize_htu(htu)


def test_a_path_no_encoding_can_spell_is_not_an_error() -> None:
    assert request_url(scope("/a\ud800", None)) == "https://api.test/a%3F"


@given(st.text(max_size=20), st.binary(max_size=30), st.sampled_from(["", "/api", "/my api"]))
@example("a#b", b"/a#b", "").via("a server that keeps the '#'")
@example("a?b", b"/a%3Fb", "/api")
def test_the_url_always_names_the_resource_the_server_routes(
    path: str, raw: bytes, root: str
) -> None:
    # Whatever raw_path a server reports beside it, the URL decodes to the routed path.
    path = root + "/" + path
    parts = urlsplit(request_url(scope(path, raw, root=root)))
    assert (parts.query, parts.fragment) == ("", "")
    assert unquote(parts.path) == path
