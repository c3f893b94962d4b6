"""Properties of certificate binding (RFC 8705): hostile input is a 400 or 401, never more."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.config import CertificateHeader
from asgi_sso.errors import InvalidRequest, InvalidToken
from asgi_sso.testing import ClientCertificate
from asgi_sso.testing.strategies import hostile_certificate_requests
from asgi_sso.verify.mtls import ClientCertificates, bound_certificate, check_certificate_binding

CERT = ClientCertificate()
BOUND = msgspec.json.encode({"sub": "alice", **CERT.cnf()})
READERS = {
    fmt: ClientCertificates(CertificateHeader(trusted_proxies=("127.0.0.1",), format=fmt))
    for fmt in ("rfc9440", "nginx")
}
HEADERS = {"rfc9440": "client-cert", "nginx": "x-ssl-client-cert"}


def refusal(fragment: dict[str, Any], fmt: str) -> str | None:
    """The error code refusing the bound token for this request; ``None`` if accepted."""
    try:
        check_certificate_binding(READERS[fmt], {"type": "http", **fragment}, BOUND, "allow")
    except (InvalidToken, InvalidRequest) as error:
        return error.error
    return None


@pytest.mark.parametrize("fmt", ["rfc9440", "nginx"])
def test_the_right_certificate_passes_the_same_reader(fmt: str) -> None:
    # The properties below would hold for a reader refusing everything.
    value = CERT.rfc9440() if fmt == "rfc9440" else CERT.nginx()
    fragment = {"headers": [(HEADERS[fmt].encode(), value.encode())], "client": ("127.0.0.1", 1)}
    assert refusal(fragment, fmt) is None


@given(hostile_certificate_requests(CERT))
def test_hostile_rfc9440_requests_are_refused(fragment: dict[str, Any]) -> None:
    assert refusal(fragment, "rfc9440") in ("invalid_token", "invalid_request")


@given(hostile_certificate_requests(CERT, fmt="nginx", header="X-SSL-Client-Cert"))
def test_hostile_nginx_requests_are_refused(fragment: dict[str, Any]) -> None:
    assert refusal(fragment, "nginx") in ("invalid_token", "invalid_request")


@given(st.sampled_from(["rfc9440", "nginx"]), st.binary(max_size=400))
@example("rfc9440", b":" + b"A" * 40_000 + b":")
@example("nginx", b"%" * 50_000)
def test_any_header_bytes_give_a_thumbprint_or_an_invalid_token(fmt: str, value: bytes) -> None:
    scope = {"headers": [(HEADERS[fmt].encode(), value)], "client": ("127.0.0.1", 1)}
    try:
        found = READERS[fmt].thumbprint(scope)
    except InvalidToken:
        return
    assert found is None or len(found) == 43


junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=8,
)


@given(junk, st.dictionaries(st.sampled_from(["client_cert_chain", "client_cert_error"]), junk))
def test_any_tls_extension_gives_none_a_thumbprint_or_an_invalid_token(
    extensions: Any, tls: dict[str, Any]
) -> None:
    for scope in ({"extensions": extensions}, {"extensions": {"tls": tls}}):
        try:
            found = ClientCertificates(None).thumbprint(scope)
        except InvalidToken:
            continue
        assert found is None or len(found) == 43


@given(junk)
@example({"x5t#S256": CERT.thumbprint})
@example({"x5t#S256": "A" * 43, "jkt": "x"})
def test_any_cnf_is_a_binding_none_or_an_invalid_token(cnf: Any) -> None:
    payload = msgspec.json.encode({"sub": "alice", "cnf": cnf})
    try:
        found = bound_certificate(payload)
    except InvalidToken:
        assert isinstance(cnf, dict)
        assert "x5t#S256" in cnf
        return
    if isinstance(cnf, dict) and "x5t#S256" in cnf:
        assert found == cnf["x5t#S256"]
    else:
        assert found is None
