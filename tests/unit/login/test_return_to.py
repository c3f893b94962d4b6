"""return_to: only paths inside the app survive."""

from __future__ import annotations

import pytest

from asgi_sso.login.return_to import safe_return_to


@pytest.mark.parametrize(
    "value", ["/", "/reports?q=1&x=2", "/a/b#frag", "/ok%20space", "/caf%C3%A9", "/%ff", "/a:b@c"]
)
def test_local_paths_are_kept_unchanged(value: str) -> None:
    assert safe_return_to(value) == value


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "https://evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "/%25252F%25252Fevil.example",
        "/\t/evil.example",
        "/%09/evil.example",
        "/%0d%0aSet-Cookie:x=1",
        "/a/../..//evil.example",
        "/a/%2E%2E/b",
        " /x",
        "/x y",
        "/caf\u00e9",
        "/" + "a" * 3000,
    ],
)
def test_hostile_values_are_refused(value: str | None) -> None:
    assert safe_return_to(value) is None
