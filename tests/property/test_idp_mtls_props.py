"""Hostile client-certificate headers at the dev IdP's token endpoint (RFC 8705 §3).

Whatever the header holds and whoever sends it, the answer is a token bound to the
certificate actually presented or a 400 ``invalid_request``: never a 500, and never a
token bound to a certificate the request did not present.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from _jwt import claims_of
from asgi_sso import CertificateHeader
from asgi_sso.testing import ClientCertificate, DevClient, DevIdP
from asgi_sso.testing.strategies import hostile_certificate_requests

PROXY = "127.0.0.1"
CERT = ClientCertificate("the-client")
IDP = DevIdP(
    "http://idp.test",
    clients=[
        DevClient(client_id="svc", client_secret="s", grant_types=("client_credentials",),
                  certificate_bound=True),
    ],
    client_cert_header=CertificateHeader(trusted_proxies=(PROXY,)),
)  # fmt: skip
BODY = b"grant_type=client_credentials"
BASIC = b"Basic " + base64.b64encode(b"svc:s")
LOOP = asyncio.new_event_loop()


async def _post(headers: list[tuple[bytes, bytes]], client: Any) -> tuple[int, bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/token", "raw_path": b"/token", "root_path": "",
        "query_string": b"", "server": ("idp.test", 80), "client": client,
        "headers": [
            (b"host", b"idp.test"), (b"authorization", BASIC),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(BODY)).encode()), *headers,
        ],
    }  # fmt: skip
    messages = [{"type": "http.request", "body": BODY, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await IDP(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def answer(headers: list[tuple[bytes, bytes]], client: Any = (PROXY, 4000)) -> tuple[int, Any]:
    status, body = LOOP.run_until_complete(_post(headers, client))
    return status, json.loads(body)


def test_the_right_certificate_from_the_proxy_is_bound() -> None:
    # The properties below would hold for an endpoint refusing every certificate.
    status, body = answer([(b"client-cert", CERT.rfc9440().encode())])
    assert status == 200, body
    assert claims_of(body["access_token"])["cnf"] == {"x5t#S256": CERT.thumbprint}


@settings(max_examples=150, deadline=None)
@given(hostile_certificate_requests(CERT, proxy=PROXY))
def test_hostile_requests_never_get_a_token_bound_to_the_certificate(
    fragment: dict[str, Any],
) -> None:
    status, body = answer(fragment["headers"], fragment["client"])
    if status == 200:  # another, genuine certificate: bound to that one
        assert claims_of(body["access_token"])["cnf"] != CERT.cnf()["cnf"]
    else:
        assert (status, body["error"]) == (400, "invalid_request")
        assert "access_token" not in body


@settings(max_examples=150, deadline=None)
@given(
    st.binary(max_size=300),
    st.sampled_from([(PROXY, 4000), ("192.0.2.1", 4000), None, ("::ffff:127.0.0.1", 1)]),
)
@example(b":" + b"A" * 40_000 + b":", (PROXY, 4000))
@example(b"%FF" * 100, (PROXY, 4000))
def test_header_junk_from_anyone_is_a_400_never_a_500(raw: bytes, client: Any) -> None:
    status, body = answer([(b"client-cert", raw)], client)
    assert (status, body["error"]) == (400, "invalid_request")
