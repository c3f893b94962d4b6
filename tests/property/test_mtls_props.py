"""Properties of certificate binding (RFC 8705): hostile input is a 400 or 401, never more."""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import quote

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
    for fmt in ("rfc9440", "nginx", "xfcc")
}
HEADERS = {
    "rfc9440": "client-cert",
    "nginx": "x-ssl-client-cert",
    "xfcc": "x-forwarded-client-cert",
}
VALUES = {"rfc9440": CERT.rfc9440, "nginx": CERT.nginx, "xfcc": CERT.xfcc}


def refusal(fragment: dict[str, Any], fmt: str) -> str | None:
    """The error code refusing the bound token for this request; ``None`` if accepted."""
    try:
        check_certificate_binding(READERS[fmt], {"type": "http", **fragment}, BOUND, "allow")
    except (InvalidToken, InvalidRequest) as error:
        return error.error
    return None


@pytest.mark.parametrize("fmt", ["rfc9440", "nginx", "xfcc"])
def test_the_right_certificate_passes_the_same_reader(fmt: str) -> None:
    # The properties below would hold for a reader refusing everything.
    value = VALUES[fmt]()
    fragment = {"headers": [(HEADERS[fmt].encode(), value.encode())], "client": ("127.0.0.1", 1)}
    assert refusal(fragment, fmt) is None


@given(hostile_certificate_requests(CERT))
def test_hostile_rfc9440_requests_are_refused(fragment: dict[str, Any]) -> None:
    assert refusal(fragment, "rfc9440") in ("invalid_token", "invalid_request")


@given(hostile_certificate_requests(CERT, fmt="nginx", header="X-SSL-Client-Cert"))
def test_hostile_nginx_requests_are_refused(fragment: dict[str, Any]) -> None:
    assert refusal(fragment, "nginx") in ("invalid_token", "invalid_request")


@given(hostile_certificate_requests(CERT, fmt="xfcc"))
def test_hostile_xfcc_requests_are_refused(fragment: dict[str, Any]) -> None:
    assert refusal(fragment, "xfcc") in ("invalid_token", "invalid_request")


@given(st.sampled_from(["rfc9440", "nginx", "xfcc"]), st.binary(max_size=400))
@example("rfc9440", b":" + b"A" * 40_000 + b":")
@example("nginx", b"%" * 50_000)
@example("xfcc", b'Subject="' + b'\\"' * 30_000)
@example("xfcc", b"Hash=" + CERT.thumbprint.encode())
def test_any_header_bytes_give_a_thumbprint_or_an_invalid_token(fmt: str, value: bytes) -> None:
    scope = {"headers": [(HEADERS[fmt].encode(), value)], "client": ("127.0.0.1", 1)}
    try:
        found = READERS[fmt].thumbprint(scope)
    except InvalidToken:
        return
    assert found is None or len(found) == 43


OTHER = ClientCertificate("someone-else")
WHO = {"cert": CERT, "other": OTHER}
_bare = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='",;'))


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace(";", "\\;") + '"'


def _certificate_pair(kind: str) -> st.SearchStrategy[tuple[str, str | None, str | None]]:
    # (the pair as sent, the once-only key it sets, whose certificate it names)
    keys = st.sampled_from([kind.capitalize(), kind, kind.upper()])
    if kind == "hash":
        right = [hashlib.sha256(c.der).hexdigest() for c in (CERT, OTHER)]
        values = {"cert": right[0], "other": right[1], "junk": "", "short": right[0][:-1]}
        values["upper"] = right[0].upper()
    else:
        values = {"cert": quote(CERT.pem, safe=""), "other": quote(OTHER.pem, safe="")}
        values |= {"junk": "QUJD", "short": values["cert"][:-30]}
    who = st.sampled_from(sorted(values))
    return st.builds(
        lambda key, name, quoted: (
            f"{key}={_quoted(values[name]) if quoted else values[name]}",
            kind,
            "cert" if name == "upper" else name,
        ),
        keys,
        who,
        st.booleans(),
    )


_other_pair = st.one_of(
    st.builds(lambda t: (f"Subject={_quoted(t)}", "subject", None), st.text(max_size=20)),
    st.builds(
        lambda key, value: (f"{key}={value}", None, None),
        st.sampled_from(["By", "URI", "DNS", "dns", "X-Future"]),
        _bare.filter(lambda v: len(v) < 30) | st.text(max_size=20).map(_quoted),
    ),
)
_pairs = _certificate_pair("hash") | _certificate_pair("cert") | _other_pair


def _accepted(elements: list[list[tuple[str, str | None, str | None]]]) -> str | None:
    """The thumbprint Envoy's rules give, ``None`` where the header must be refused."""
    if len(elements) != 1:
        return None
    once = [kind for _, kind, _ in elements[0] if kind is not None]
    if len(once) != len(set(once)):
        return None
    named = {who for _, kind, who in elements[0] if kind in ("hash", "cert")}
    if len(named) != 1 or not named <= set(WHO):
        return None
    return WHO[named.pop()].thumbprint


_HASH = f"Hash={hashlib.sha256(CERT.der).hexdigest()}"
_CERT = f'Cert="{CERT.nginx()}"'
_OTHERS = f"Hash={hashlib.sha256(OTHER.der).hexdigest()}"


@given(st.lists(st.lists(_pairs, min_size=1, max_size=6), min_size=1, max_size=3))
@example([[(_HASH, "hash", "cert"), (_CERT, "cert", "cert"), ('Subject="a,b"', "subject", None)]])
@example([[(_HASH.upper().replace("HASH", "hash"), "hash", "cert"), ("URI=", None, None)]])
@example([[(_OTHERS, "hash", "other"), (_CERT, "cert", "cert")]])
@example([[(_OTHERS, "hash", "other")], [(_HASH, "hash", "cert")]])
@example([[(_HASH, "hash", "cert"), (_HASH, "hash", "cert")]])
def test_an_xfcc_header_names_one_certificate_or_is_refused(
    elements: list[list[tuple[str, str | None, str | None]]],
) -> None:
    value = ",".join(";".join(pair for pair, _, _ in element) for element in elements)
    scope = {"headers": [(b"x-forwarded-client-cert", value.encode())], "client": ("127.0.0.1", 1)}
    expected = _accepted(elements)
    if expected is None:
        with pytest.raises(InvalidToken):
            READERS["xfcc"].thumbprint(scope)
    else:
        assert READERS["xfcc"].thumbprint(scope) == expected


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
