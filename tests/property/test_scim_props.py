"""Whatever a SCIM filter value decodes to, a character no store keeps is a 400 ``invalidValue``."""

from __future__ import annotations

import asyncio
import unicodedata
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.config import Secret
from asgi_sso.deprovision.scim import ScimApp, ScimConfig
from asgi_sso.deprovision.scim_input import ScimError, filter_value
from asgi_sso.identity.stores import MemoryUserStore

SECRET = "acme-secret-0123456789"
APP = ScimApp(ScimConfig(tokens={"acme": Secret(SECRET)}), MemoryUserStore())
LOOP = asyncio.new_event_loop()

_bad_chars = st.one_of(
    st.characters(categories=["Cc"]),  # NUL, other C0/C1 controls, DEL
    st.characters(categories=["Cs"]),  # lone surrogates (only as \u escapes)
)


def _escape(char: str, raw: bool) -> str:
    if char in '"\\' or not raw or unicodedata.category(char) == "Cs":
        return f"\\u{ord(char):04x}"
    return char


@st.composite
def hostile_values(draw: st.DrawFn) -> str:
    """The escaped text of a filter value holding at least one bad character."""
    before = draw(st.text(max_size=20))
    after = draw(st.text(max_size=20))
    chars = [*before, draw(_bad_chars), *after]
    return "".join(_escape(c, draw(st.booleans())) for c in chars)


def search(value: str) -> tuple[int, dict[str, Any]]:
    query = urlencode({"filter": f'userName eq "{value}"'}).encode()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/scim/v2/Users",
        "headers": [(b"authorization", f"Bearer {SECRET}".encode())],
        "query_string": query,
    }
    LOOP.run_until_complete(APP(scope, receive, send))
    return sent[0]["status"], msgspec.json.decode(sent[1]["body"])


@given(hostile_values())
@example("a\\u0000b")
@example("\\ud800")
@example("x\\udc00")
@example("tab\\u0009")
def test_bad_characters_in_a_filter_value_are_invalid_value(value: str) -> None:
    status, body = search(value)
    assert status == 400
    assert body["scimType"] == "invalidValue"


@given(hostile_values())
def test_filter_value_refuses_every_bad_character(value: str) -> None:
    with pytest.raises(ScimError) as caught:
        filter_value(value)
    assert (caught.value.status, caught.value.scim_type) == (400, "invalidValue")


@given(st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=40))
def test_clean_values_decode_to_themselves(text: str) -> None:
    escaped = "".join(_escape(c, raw=True) for c in text)
    assert filter_value(escaped) == text
