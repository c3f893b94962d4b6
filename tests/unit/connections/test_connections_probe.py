"""The connection probe against real HTTP servers: what it finds, in plain words."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest
from _document_server import DocumentServer

from asgi_sso.config import Limits, Secret
from asgi_sso.connections import Connection
from asgi_sso.connections.manage import connection_from_input
from asgi_sso.connections.probe import ProbeReport, probe_connection
from asgi_sso.testing import DevIdP, free_port, generate_key, public_jwk

DISCOVERY = "/.well-known/openid-configuration"


@pytest.fixture(scope="module")
def rs256_idp() -> Iterator[DevIdP]:
    idp = DevIdP()
    with idp.serve():
        yield idp


@pytest.fixture
async def server() -> AsyncIterator[DocumentServer]:
    served = DocumentServer()
    await served.start()
    yield served
    await served.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


def connection(issuer: str, **fields: Any) -> Connection:
    values: dict[str, Any] = {"id": "acme", "issuer": issuer, "audience": ["api://app"]}
    values.update(fields)
    return connection_from_input(values)


def metadata(base: str, **changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "issuer": base,
        "jwks_uri": base + "/jwks",
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "userinfo_endpoint": base + "/userinfo",
        "end_session_endpoint": base + "/logout",
    }
    document.update(changes)
    return {name: value for name, value in document.items() if value is not None}


def serve_idp(
    server: DocumentServer, *, algs: tuple[str, ...] = ("RS256",), **changes: Any
) -> None:
    server.json(DISCOVERY, metadata(server.base, **changes))
    server.json("/jwks", {"keys": [public_jwk(generate_key(alg)) for alg in algs]})


def check(report: ProbeReport, name: str) -> tuple[bool, str, bool]:
    found = [c for c in report.checks if c.name == name]
    assert len(found) == 1, report
    return found[0].ok, found[0].detail, found[0].note


def failed(report: ProbeReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


async def test_a_working_provider_passes_every_check(
    rs256_idp: DevIdP, client: httpx.AsyncClient
) -> None:
    signs_in = connection(
        rs256_idp.issuer, client_id="app", client_secret=Secret("client-secret-0123")
    )
    report = await probe_connection(signs_in, client)
    assert report.ok, report
    assert [c.name for c in report.checks] == [
        "discovery",
        "issuer",
        "jwks_uri",
        "jwks",
        "keys",
        "authorization_endpoint",
        "token_endpoint",
    ]
    assert "for RS256" in check(report, "keys")[1]
    assert not any(c.note for c in report.checks)


async def test_no_key_for_the_allowed_algorithm_is_named(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, algs=("ES256",))
    report = await probe_connection(connection(server.base), client)
    both = await probe_connection(connection(server.base, algorithms=["RS256", "ES256"]), client)
    assert not report.ok
    assert failed(report) == ["keys"]
    assert check(report, "keys")[1].startswith("no RS256 key among the 1 usable key(s)")
    # One of two allowed algorithms without a key is worth a note, not a failure.
    assert both.ok
    notes = [c.detail for c in both.checks if c.note]
    assert notes == ["no RS256 key: tokens signed with RS256 would be refused"]


async def test_an_issuer_mismatch_shows_both_issuers(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, issuer="https://other.example")
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["issuer"]
    detail = check(report, "issuer")[1]
    assert "'https://other.example'" in detail
    assert repr(server.base) in detail


async def test_a_trailing_slash_is_a_different_issuer(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server)
    report = await probe_connection(connection(server.base + "/"), client)
    assert failed(report) == ["issuer"]


async def test_an_unreachable_provider_says_so(client: httpx.AsyncClient) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    report = await probe_connection(connection(base), client)
    assert not report.ok
    ok, detail, _ = check(report, "discovery")
    assert not ok
    assert detail.startswith(f"cannot fetch the discovery document at {base}{DISCOVERY}")
    assert "unreachable" in detail


async def test_a_non_200_answer_names_the_status(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    server.json(DISCOVERY, {"error": "down"}, status=503)
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["discovery"]
    assert "it answered HTTP status 503" in check(report, "discovery")[1]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"<html>sign in</html>", "is not JSON"),
        (b'{"issuer": "x"', "is not JSON"),
        (b"\xff\xfe{}", "is not JSON"),
        (b'["a list"]', "JSON but not an object"),
    ],
)
async def test_a_document_that_is_not_a_json_object_says_so(
    server: DocumentServer, client: httpx.AsyncClient, body: bytes, words: str
) -> None:
    server.documents[DISCOVERY] = (200, body)
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["discovery"]
    assert words in check(report, "discovery")[1]


async def test_a_document_without_jwks_uri_fails_that_check(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, jwks_uri=None)
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["jwks_uri"]
    assert check(report, "jwks_uri")[1] == "the discovery document names no jwks_uri"


async def test_an_unreachable_or_broken_key_set_fails_the_jwks_check(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, jwks_uri=server.base + "/missing")
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["jwks"]
    assert "HTTP status 404" in check(report, "jwks")[1]

    serve_idp(server)
    server.json("/jwks", {"no": "keys"})
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["keys"]
    assert "has no 'keys' list" in check(report, "keys")[1]


async def test_skipped_keys_are_counted(server: DocumentServer, client: httpx.AsyncClient) -> None:
    serve_idp(server)
    good = public_jwk(generate_key("RS256"))
    server.json("/jwks", {"keys": [good, {"kty": "RSA", "kid": "broken"}]})
    report = await probe_connection(connection(server.base), client)
    assert report.ok
    assert "1 key(s) skipped" in check(report, "keys")[1]


async def test_sign_in_needs_authorization_and_token_endpoints(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, authorization_endpoint=None, token_endpoint=None)
    signs_in = connection(server.base, client_id="app", client_secret=Secret("client-secret-0123"))
    report = await probe_connection(signs_in, client)
    assert failed(report) == ["authorization_endpoint", "token_endpoint"]
    assert "client_id is set" in check(report, "token_endpoint")[1]
    # A bearer-only connection never uses them.
    assert (await probe_connection(connection(server.base), client)).ok


async def test_missing_end_session_and_userinfo_are_notes(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, end_session_endpoint=None, userinfo_endpoint=None)
    report = await probe_connection(
        connection(server.base, client_id="a", client_secret=Secret("client-secret-0123")), client
    )
    assert report.ok
    assert check(report, "end_session_endpoint")[2] is True
    assert "signing out ends the app's session only" in check(report, "end_session_endpoint")[1]
    assert check(report, "userinfo_endpoint")[2] is True


async def test_a_configured_jwks_uri_needs_no_discovery_for_bearer_tokens(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    server.json("/keys", {"keys": [public_jwk(generate_key("RS256"))]})
    bearer = connection(server.base, jwks_uri=server.base + "/keys")
    report = await probe_connection(bearer, client)
    assert report.ok, report
    ok, detail, note = check(report, "discovery")
    assert (ok, note) == (True, True)
    assert "not needed" in detail
    # Signing in reads the document, so then it is a failure.
    signs_in = connection(
        server.base,
        jwks_uri=server.base + "/keys",
        client_id="a",
        client_secret=Secret("client-secret-0123"),
    )
    assert failed(await probe_connection(signs_in, client)) == ["discovery"]


async def test_a_templated_issuer_is_probed_at_its_tenant(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    tenant_base = server.base + "/t-42"
    server.json("/t-42" + DISCOVERY, metadata(tenant_base, jwks_uri=server.base + "/jwks"))
    server.json("/jwks", {"keys": [public_jwk(generate_key("RS256"))]})
    report = await probe_connection(connection(server.base + "/{tenant}", tenant="t-42"), client)
    assert report.ok, report
    assert check(report, "issuer")[1].endswith(tenant_base)


async def test_a_document_verification_would_refuse_fails_the_metadata_check(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, token_endpoint=42)
    report = await probe_connection(connection(server.base), client)
    assert failed(report) == ["metadata"]
    assert "token_endpoint" in check(report, "metadata")[1]


async def test_an_oversized_document_is_refused_while_streaming(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server, padding="x" * 5000)
    report = await probe_connection(
        connection(server.base), client, limits=Limits(max_document_bytes=1000)
    )
    assert failed(report) == ["discovery"]
    assert "larger than 1000 bytes" in check(report, "discovery")[1]


async def test_a_trickling_provider_times_out_per_fetch_and_overall(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server)
    server.trickle.add(DISCOVERY)
    report = await probe_connection(
        connection(server.base), client, limits=Limits(fetch_timeout=0.3)
    )
    assert failed(report) == ["discovery"]
    assert "timed out" in check(report, "discovery")[1]
    report = await probe_connection(
        connection(server.base), client, limits=Limits(fetch_timeout=5.0), deadline=0.3
    )
    assert failed(report) == ["deadline"]
    assert "0.3 s" in check(report, "deadline")[1]


async def test_a_disabled_connection_is_probed_with_a_note(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server)
    report = await probe_connection(connection(server.base, enabled=False), client)
    assert report.ok
    assert check(report, "enabled") == (
        True,
        "the connection is disabled: it signs nobody in",
        True,
    )


async def test_a_password_in_a_url_is_never_reported(
    server: DocumentServer, client: httpx.AsyncClient
) -> None:
    serve_idp(server)
    with_password = f"http://ops:hunter2-password@127.0.0.1:{server.port}/keys"
    report = await probe_connection(connection(server.base, jwks_uri=with_password), client)
    assert "hunter2" not in msgspec.json.encode(report).decode()
    assert f"http://127.0.0.1:{server.port}/keys" in check(report, "jwks")[1]
