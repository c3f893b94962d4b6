from __future__ import annotations

from typing import Any

import msgspec

from asgi_sso.errors import (
    CredentialsMissing,
    ExpiredToken,
    InsufficientScope,
    KeysUnavailable,
)
from asgi_sso.responses import challenge_header, send_http_error, send_websocket_denial


def test_missing_credentials_challenge_has_no_error_code() -> None:
    assert challenge_header(CredentialsMissing(), "api") == b'Bearer realm="api"'


def test_invalid_token_challenge_carries_code_and_description() -> None:
    value = challenge_header(ExpiredToken('expired 42 s ago "x" \\ \u00e9'), "my api")
    assert value == (
        b'Bearer realm="my api", error="invalid_token", '
        b"error_description=\"expired 42 s ago 'x' ' '\""
    )


def test_insufficient_scope_lists_scopes() -> None:
    value = challenge_header(InsufficientScope("need admin", scopes=("admin", "write")), "api")
    assert value is not None
    assert b'error="insufficient_scope"' in value
    assert b'scope="admin write"' in value


def test_unavailable_has_no_challenge() -> None:
    assert challenge_header(KeysUnavailable(), "api") is None


async def test_http_error_is_json_with_retry_after_for_503() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await send_http_error(send, KeysUnavailable(retry_after=7), "api")
    start, body = sent
    assert start["status"] == 503
    headers = dict(start["headers"])
    assert headers[b"retry-after"] == b"7"
    assert headers[b"cache-control"] == b"no-store"
    assert b"www-authenticate" not in headers
    assert msgspec.json.decode(body["body"])["status"] == 503


async def test_websocket_denial_uses_the_extension_when_offered() -> None:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "extensions": {"websocket.http.response": {}}}
    await send_websocket_denial(scope, receive, send, ExpiredToken(), "api")
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == 401

    sent.clear()
    await send_websocket_denial({"type": "websocket"}, receive, send, ExpiredToken(), "api")
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "the token has expired"}]
