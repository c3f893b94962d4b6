"""Whatever a PAR endpoint answers, or whatever is pushed to the dev IdP's: never a crash.

The app's side (:func:`push_authorization_request`) returns a printable ASCII
``request_uri`` or raises a 502/503 :class:`AuthError`; the dev IdP's ``/par``
answers 201 only for a request ``/authorize`` would take, and 4xx otherwise.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from asgi_sso.errors import AuthError
from asgi_sso.login.client_auth import ClientAuth
from asgi_sso.login.oidc import push_authorization_request
from asgi_sso.testing import DevClient, DevIdP

PAR = "https://idp.test/par"
_PRINTABLE = re.compile(r"[\x21-\x7e]{1,2048}")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(msgspec.json.encode),
    st.dictionaries(
        st.sampled_from(["request_uri", "expires_in", "error", "error_description"]),
        json_values,
    ).map(msgspec.json.encode),
)


def _push(status: int, body: bytes) -> str | AuthError:
    async def run() -> str | AuthError:
        def answer(request: httpx.Request) -> httpx.Response:
            return httpx.Response(status, content=body)

        auth = ClientAuth(client_id="web", method="client_secret_basic", secret=b"s")
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            try:
                return await push_authorization_request(
                    client, PAR, {"state": "s"}, auth, deadline=5, max_bytes=1024
                )
            except AuthError as exc:
                return exc

    return asyncio.run(run())


@settings(max_examples=150, deadline=None)
@given(st.integers(100, 599), bodies)
@example(201, b'{"request_uri": "urn:ietf:params:oauth:request_uri:abc", "expires_in": 60}')
@example(201, b'{"request_uri": "urn:\\u00e9"}')
@example(400, b'{"error": "invalid_request"}')
def test_a_par_answer_gives_a_printable_request_uri_or_a_502_503(status: int, body: bytes) -> None:
    result = _push(status, body)
    if isinstance(result, str):
        assert status in (200, 201)
        assert _PRINTABLE.fullmatch(result)
    else:
        assert result.status in (502, 503)
        assert len(result.description) < 200


_DEV = DevIdP(
    "http://dev-idp.test",
    clients=[DevClient(client_id="pub", redirect_uris=("https://rp.example/cb",))],
)
_KEYS = ["client_id", "redirect_uri", "response_type", "scope", "code_challenge",
         "code_challenge_method", "request_uri", "client_secret", "client_assertion",
         "client_assertion_type", "state", "resource"]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(_KEYS), st.text(max_size=60), max_size=8))
def test_whatever_is_pushed_to_the_dev_idp_is_a_201_or_a_4xx(form: dict[str, Any]) -> None:
    async def run() -> httpx.Response:
        async with _DEV.http_client() as http:
            return await http.post("http://dev-idp.test/par", data=form)

    response = asyncio.run(run())
    assert response.status_code in (201, 400, 401), response.text
    if response.status_code == 201:
        assert form.get("client_id", "pub") == "pub"
        assert form.get("redirect_uri") == "https://rp.example/cb"
        assert "request_uri" not in form
