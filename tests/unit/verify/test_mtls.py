"""Certificate-bound tokens (RFC 8705 §3): where the certificate comes from, and each refusal."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

import msgspec
import pytest

from asgi_sso.config import CertificateHeader
from asgi_sso.errors import ConfigurationError, InvalidRequest, InvalidToken
from asgi_sso.testing import ClientCertificate
from asgi_sso.verify import mtls
from asgi_sso.verify.mtls import (
    MAX_CERTIFICATE_BYTES,
    MAX_XFCC_BYTES,
    ClientCertificates,
    bound_certificate,
    check_certificate_binding,
    thumbprint,
)

PROXY = "10.1.2.3"


@pytest.fixture(scope="module")
def cert() -> ClientCertificate:
    return ClientCertificate()


@pytest.fixture(scope="module")
def other() -> ClientCertificate:
    return ClientCertificate("someone-else")


def scope(
    *headers: tuple[str, str], peer: str | None = PROXY, tls: dict[str, Any] | None = None
) -> dict[str, Any]:
    built: dict[str, Any] = {
        "type": "http",
        "headers": [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers],
        "client": (peer, 50000) if peer is not None else None,
    }
    if tls is not None:
        built["extensions"] = {"tls": tls}
    return built


def payload(claims: dict[str, Any]) -> bytes:
    return msgspec.json.encode({"sub": "alice", **claims})


def proxied(fmt: str = "rfc9440", **kw: Any) -> ClientCertificates:
    return ClientCertificates(CertificateHeader(trusted_proxies=("10.0.0.0/8",), format=fmt, **kw))  # type: ignore[arg-type]


# -- the token's binding ---------------------------------------------------------------------


def test_an_unbound_token_has_no_binding_and_costs_no_decode() -> None:
    assert bound_certificate(payload({})) is None
    assert bound_certificate(payload({"cnf": {"jkt": "x" * 43}})) is None
    assert bound_certificate(b"not json at all") is None  # never decoded


def test_the_binding_is_read_even_when_its_name_is_escaped(cert: ClientCertificate) -> None:
    escaped = b'{"sub":"a","cnf":{"x5t\\u0023S256":"' + cert.thumbprint.encode() + b'"}}'
    assert bound_certificate(escaped) == cert.thumbprint
    assert bound_certificate(payload(cert.cnf())) == cert.thumbprint


@pytest.mark.parametrize("value", ["", "short", "a" * 44, "a" * 42 + "=", 12, None, ["x"]])
def test_a_binding_that_is_not_a_thumbprint_is_refused(value: object) -> None:
    with pytest.raises(InvalidToken, match="not a SHA-256 certificate thumbprint"):
        bound_certificate(payload({"cnf": {"x5t#S256": value}}))


def test_the_thumbprint_is_base64url_sha256_of_the_der(cert: ClientCertificate) -> None:
    assert thumbprint(cert.der) == cert.thumbprint
    assert len(cert.thumbprint) == 43
    assert "=" not in cert.thumbprint


# -- where the certificate comes from ----------------------------------------------------------


def test_the_tls_extension_gives_the_certificate(cert: ClientCertificate) -> None:
    assert ClientCertificates(None).thumbprint(scope(tls=cert.tls_extension())) == cert.thumbprint
    assert proxied().thumbprint(scope(peer="192.0.2.1", tls=cert.tls_extension())) == (
        cert.thumbprint
    )


@pytest.mark.parametrize(
    "tls",
    [
        {"client_cert_chain": []},
        {"client_cert_chain": None},
        {},
        "not a dict",
        {"client_cert_chain": ["x"], "client_cert_error": "unknown CA"},
    ],
)
def test_no_usable_certificate_in_the_extension_is_none(tls: Any) -> None:
    built = scope()
    built["extensions"] = {"tls": tls}
    assert ClientCertificates(None).thumbprint(built) is None
    assert ClientCertificates(None).thumbprint(scope()) is None


def test_a_failed_verification_in_the_extension_is_no_certificate(cert: ClientCertificate) -> None:
    tls = cert.tls_extension(error="certificate has expired")
    assert ClientCertificates(None).thumbprint(scope(tls=tls)) is None


NAMES = {"rfc9440": "client-cert", "nginx": "x-ssl-client-cert", "xfcc": "x-forwarded-client-cert"}


@pytest.mark.parametrize("fmt", ["rfc9440", "nginx", "xfcc"])
def test_a_trusted_proxy_header_gives_the_certificate(cert: ClientCertificate, fmt: str) -> None:
    certificates = proxied(fmt)
    value = {"rfc9440": cert.rfc9440, "nginx": cert.nginx, "xfcc": cert.xfcc}[fmt]()
    assert certificates.thumbprint(scope((NAMES[fmt], value))) == cert.thumbprint


def test_rfc9440_tolerates_spaces_and_missing_padding(cert: ClientCertificate) -> None:
    unpadded = ":" + base64.b64encode(cert.der).decode().rstrip("=") + ":"
    for value in (f"  {cert.rfc9440()}\t", unpadded):
        assert proxied().thumbprint(scope(("client-cert", value))) == cert.thumbprint


def test_a_header_from_an_untrusted_peer_is_never_used(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    certificates = proxied()
    forged = ("client-cert", cert.rfc9440())
    for peer in ("192.0.2.1", "11.0.0.1", "::1", "testclient", "", None):
        with pytest.raises(InvalidToken, match="does not come from a trusted proxy"):
            certificates.thumbprint(scope(forged, peer=peer))
        # the connection's own certificate still counts
        own = scope(forged, peer=peer, tls=other.tls_extension())
        assert certificates.thumbprint(own) == other.thumbprint
    # and without a configured header, no peer is trusted with it
    assert ClientCertificates(None).thumbprint(scope(forged)) is None


def test_a_trusted_peer_in_ipv4_mapped_ipv6_form_is_trusted(cert: ClientCertificate) -> None:
    built = scope(("client-cert", cert.rfc9440()), peer="::ffff:10.9.9.9")
    assert proxied().thumbprint(built) == cert.thumbprint


def test_from_a_trusted_proxy_the_header_is_the_only_source(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    # The proxy's own TLS certificate towards the app is not the client's.
    assert proxied().thumbprint(scope(tls=other.tls_extension())) is None
    both = scope(("client-cert", cert.rfc9440()), tls=other.tls_extension())
    assert proxied().thumbprint(both) == cert.thumbprint


def test_an_empty_header_is_no_certificate() -> None:
    assert proxied().thumbprint(scope(("client-cert", ""))) is None


def test_a_header_given_twice_is_a_bad_request(cert: ClientCertificate) -> None:
    twice = scope(("client-cert", cert.rfc9440()), ("client-cert", cert.rfc9440()))
    with pytest.raises(InvalidRequest, match="more than one client certificate header"):
        proxied().thumbprint(twice)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("MIIB", "not a structured-field byte sequence"),
        (":MIIB", "not a structured-field byte sequence"),
        (":not base64!:", "not a structured-field byte sequence"),
        (":QUJD:;param=1", "not a structured-field byte sequence"),
        (":A:", "not valid base64"),
        (":QUJD:", "not an X.509 certificate"),
        ("::", "not an X.509 certificate"),
        (":" + "A" * (2 * MAX_CERTIFICATE_BYTES) + ":", "longer than"),
        (":" + "AAAA" * (MAX_CERTIFICATE_BYTES // 3 + 1) + ":", "longer than 16384 bytes"),
    ],
)
def test_a_malformed_rfc9440_header_is_refused(value: str, match: str) -> None:
    with pytest.raises(InvalidToken, match=match):
        proxied().thumbprint(scope(("client-cert", value)))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("-----BEGIN%20CERTIFICATE-----%0AQUJD%0A-----END%20CERTIFICATE-----", "not an X.509"),
        ("%ZZ", "not an X.509"),
        ("A" * (MAX_CERTIFICATE_BYTES + 1), "longer than"),
    ],
)
def test_a_malformed_nginx_header_is_refused(value: str, match: str) -> None:
    with pytest.raises(InvalidToken, match=match):
        proxied("nginx").thumbprint(scope(("x-ssl-client-cert", value)))


def xfcc(value: str) -> dict[str, Any]:
    return scope(("x-forwarded-client-cert", value))


def hex_digest(cert: ClientCertificate) -> str:
    return hashlib.sha256(cert.der).hexdigest()


def test_envoys_hash_alone_is_the_thumbprint(cert: ClientCertificate) -> None:
    # Envoy's default element (By and Hash): the SHA-256 of the DER it verified, in hex.
    assert proxied("xfcc").thumbprint(xfcc(cert.xfcc(cert=False))) == cert.thumbprint
    upper = f"Hash={hex_digest(cert).upper()}"
    assert proxied("xfcc").thumbprint(xfcc(upper)) == cert.thumbprint


def test_an_xfcc_cert_without_hash_or_unquoted_is_read(cert: ClientCertificate) -> None:
    for value in (f'Cert="{cert.nginx()}"', f"Cert={cert.nginx()}", f"cert={cert.nginx()}"):
        assert proxied("xfcc").thumbprint(xfcc(value)) == cert.thumbprint


def test_an_xfcc_hash_that_is_not_its_certs_is_refused(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    for value in (
        f'Hash={hex_digest(other)};Cert="{cert.nginx()}"',
        f'Cert="{other.nginx()}";Hash={hex_digest(cert)}',
    ):
        with pytest.raises(InvalidToken, match="Hash is not the SHA-256 of its Cert"):
            proxied("xfcc").thumbprint(xfcc(value))


def test_an_xfcc_element_naming_no_certificate_names_the_envoy_setting() -> None:
    with pytest.raises(InvalidToken, match="set_current_client_cert_details"):
        proxied("xfcc").thumbprint(xfcc('By=spiffe://edge;Subject="CN=x";URI=;DNS=a.example'))


def test_several_xfcc_elements_are_refused_whatever_their_order(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    # APPEND_FORWARD: a client's own header comes first, the proxy's element last; a
    # mesh hop after the proxy that saw the client appends its peer's certificate.
    for value in (f"{cert.xfcc()},{other.xfcc()}", f"{other.xfcc()},{cert.xfcc()}"):
        with pytest.raises(InvalidToken, match="SANITIZE_SET"):
            proxied("xfcc").thumbprint(xfcc(value))


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("Hash=abc", "Hash is not a hex SHA-256"),
        ("Hash=" + "g" * 64, "Hash is not a hex SHA-256"),
        ("Hash=", "Hash is not a hex SHA-256"),
        ('Cert="QUJD"', "not an X.509 certificate"),
        ('Cert=""', "not an X.509 certificate"),
        ('Cert="%ZZ"', "not an X.509 certificate"),
        ("Hash=ab;Hash=ab", "more than once"),
        ('Subject="unterminated', "not an x-forwarded-client-cert"),
        ("Hash=" + "a" * MAX_XFCC_BYTES, "longer than"),
    ],
)
def test_a_malformed_xfcc_header_is_refused(value: str, match: str) -> None:
    with pytest.raises(InvalidToken, match=match):
        proxied("xfcc").thumbprint(xfcc(value))


def test_an_xfcc_cert_of_more_than_one_pem_certificate_is_refused(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    two = quote(cert.pem + other.pem, safe="")
    with pytest.raises(InvalidToken, match="not one PEM certificate"):
        proxied("xfcc").thumbprint(xfcc(f'Cert="{two}"'))


def test_pem_holding_more_than_one_certificate_is_refused(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    # The PEM parser would take the first and ignore the rest.
    two = cert.pem + other.pem
    with pytest.raises(InvalidToken, match="not one PEM certificate"):
        proxied("nginx").thumbprint(scope(("x-ssl-client-cert", quote(two, safe=""))))
    with pytest.raises(InvalidToken, match="not one PEM certificate"):
        ClientCertificates(None).thumbprint(scope(tls={"client_cert_chain": [two]}))


def test_a_malformed_extension_certificate_is_refused() -> None:
    for chain in (["garbage"], ["\u00e9t\u00e9"], [b"bytes"]):
        with pytest.raises(InvalidToken, match="client certificate"):
            ClientCertificates(None).thumbprint(scope(tls={"client_cert_chain": chain}))


def test_a_named_header_is_read_in_lower_case(cert: ClientCertificate) -> None:
    certificates = proxied(header="X-Client-Cert")
    assert certificates.thumbprint(scope(("x-client-cert", cert.rfc9440()))) == cert.thumbprint


# -- the binding check -------------------------------------------------------------------------


def test_a_bound_token_with_its_certificate_passes(cert: ClientCertificate) -> None:
    for mode in ("allow", "require"):
        check_certificate_binding(
            ClientCertificates(None), scope(tls=cert.tls_extension()), payload(cert.cnf()), mode
        )


def test_a_bound_token_without_its_certificate_is_refused(
    cert: ClientCertificate, other: ClientCertificate
) -> None:
    certificates = ClientCertificates(None)
    with pytest.raises(InvalidToken, match="presents none"):
        check_certificate_binding(certificates, scope(), payload(cert.cnf()), "allow")
    with pytest.raises(InvalidToken, match="not the one the token is bound to"):
        check_certificate_binding(
            certificates, scope(tls=other.tls_extension()), payload(cert.cnf()), "allow"
        )


def test_require_refuses_unbound_tokens_and_allow_takes_them(cert: ClientCertificate) -> None:
    certificates = ClientCertificates(None)
    check_certificate_binding(certificates, scope(), payload({}), "allow")
    with pytest.raises(InvalidToken, match="requires certificate-bound tokens"):
        check_certificate_binding(
            certificates, scope(tls=cert.tls_extension()), payload({}), "require"
        )


def test_an_unbound_token_never_reads_the_header() -> None:
    twice = scope(("client-cert", "junk"), ("client-cert", "junk"))
    check_certificate_binding(proxied(), twice, payload({}), "allow")


# -- the setting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"trusted_proxies": ()}, "must name the proxies"),
        ({"trusted_proxies": ("10.0.0.1/8",)}, "not an IP address or network"),
        ({"trusted_proxies": ("proxy.internal",)}, "not an IP address or network"),
        ({"trusted_proxies": ("0.0.0.0/0",)}, "covers every address"),
        ({"trusted_proxies": ("10.0.0.0/8", "::/0")}, "covers every address"),
        ({"trusted_proxies": ("0.0.0.0/1", "128.0.0.0/1")}, "covers every address"),
        ({"trusted_proxies": ("::/1", "8000::/1", "10.0.0.1")}, "covers every address"),
        ({"trusted_proxies": ("10.0.0.0/8",), "header": "bad header"}, "not a header name"),
        ({"trusted_proxies": ("10.0.0.0/8",), "header": ""}, "not a header name"),
        ({"trusted_proxies": ("10.0.0.0/8",), "format": "envoy"}, "format takes one of"),
    ],
)
def test_a_bad_certificate_header_fails_when_built(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        CertificateHeader(**kw)


def test_the_header_name_follows_the_format() -> None:
    assert CertificateHeader(trusted_proxies=("::1",)).name == b"client-cert"
    assert CertificateHeader(trusted_proxies=["::1"], format="nginx").name == b"x-ssl-client-cert"
    xfcc = CertificateHeader(trusted_proxies=["::1"], format="xfcc")
    assert xfcc.name == b"x-forwarded-client-cert"


def test_thumbprints_are_remembered_by_certificate_text_and_bounded(
    monkeypatch: pytest.MonkeyPatch, cert: ClientCertificate, other: ClientCertificate
) -> None:
    monkeypatch.setattr(mtls, "KNOWN_CERTIFICATES", 2)
    certificates = proxied()
    third = ClientCertificate("third")
    for _ in range(2):  # the second round answers from memory, the same
        for c in (cert, other, third):
            assert certificates.thumbprint(scope(("client-cert", c.rfc9440()))) == c.thumbprint
        assert certificates.thumbprint(scope(peer="192.0.2.1", tls=cert.tls_extension())) == (
            cert.thumbprint
        )
    assert len(certificates._known) == 2  # the oldest went first
    with pytest.raises(InvalidToken):
        certificates.thumbprint(scope(("client-cert", ":QUJD:")))
    assert b":QUJD:" not in certificates._known  # a refusal is not remembered
    for peer in ("10.0.0.1", "192.0.2.1", "10.0.0.2", "192.0.2.1", "10.0.0.1"):
        built = scope(("client-cert", cert.rfc9440()), peer=peer)
        if peer.startswith("10."):
            assert certificates.thumbprint(built) == cert.thumbprint
        else:
            with pytest.raises(InvalidToken, match="trusted proxy"):
                certificates.thumbprint(built)
    assert len(certificates._peers) == 2
