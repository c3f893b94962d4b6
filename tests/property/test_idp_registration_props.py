"""Over any registration body and any ``resource`` value the dev IdP answers with a reason.

Registration (RFC 7591) answers 201 with a public client or 400 with an RFC 7591 §3.2.2
error, never a 500; a ``resource`` (RFC 8707) is either kept exactly as given (an absolute
URI without a fragment) or refused with ``invalid_target``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.testing import DevIdP
from asgi_sso.testing.idp.requests import BadRequest, resource_param

IDP = DevIdP("http://idp.test")
LOOP = asyncio.new_event_loop()
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
_uris = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}{rest}",
        st.sampled_from(["http", "https", "ftp", "HTTP", ""]),
        st.sampled_from(["127.0.0.1", "localhost", "[::1]", "example.com", "[::1", ""]),
        st.text(max_size=15),
    ),
)
_bodies = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"redirect_uris": st.lists(_uris, max_size=3)},
        optional={
            "token_endpoint_auth_method": st.sampled_from(["none", "client_secret_post", ""]),
            "grant_types": st.lists(st.sampled_from(["authorization_code", "refresh_token", "x"])),
            "client_name": _json,
        },
    ),
)


async def _post(body: Any) -> httpx.Response:
    async with IDP.http_client() as http:
        return await http.post(
            "http://idp.test/register",
            content=json.dumps(body),
            headers={"content-type": "application/json"},
        )


@given(_bodies)
@example({"redirect_uris": ["http://127.0.0.1:1/cb"]})
@example({"redirect_uris": ["http://[::1/cb"]})
@example({"redirect_uris": ["http://localhost:99999/"]})
@example({"redirect_uris": ["HTTP://127.0.0.1"]})  # schemes are case-insensitive (RFC 3986)
def test_any_registration_is_201_with_a_public_client_or_400_with_a_code(body: Any) -> None:
    IDP.clients.clear()
    response = LOOP.run_until_complete(_post(body))
    assert response.status_code in (201, 400), response.text
    answer = response.json()
    if response.status_code == 400:
        assert answer["error"] in {"invalid_redirect_uri", "invalid_client_metadata"}
        return
    client = IDP.clients[answer["client_id"]]
    assert client.is_public
    assert list(client.redirect_uris) == body["redirect_uris"]
    assert all(uri.lower().startswith(("http://", "https://")) for uri in client.redirect_uris)


@given(st.one_of(st.text(max_size=60), _uris))
@example("urn:x")
@example("http://127.0.0.1:8000/mcp#")
@example("http://[::1")
@example(":nothing")
def test_a_resource_is_kept_verbatim_or_refused_as_invalid_target(raw: str) -> None:
    try:
        kept = resource_param({"resource": raw})
    except BadRequest as exc:
        refused = exc.error
    else:
        refused = None
    if refused is not None:
        assert refused == "invalid_target"
        return
    assert kept == raw
    assert "#" not in kept
    scheme, _, rest = kept.partition(":")
    assert scheme[:1].isalpha()
    assert rest
