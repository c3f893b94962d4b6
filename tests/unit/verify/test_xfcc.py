"""Envoy's x-forwarded-client-cert grammar: one element, its pairs, and each malformed shape."""

from __future__ import annotations

import hashlib

import pytest

from asgi_sso.testing import ClientCertificate
from asgi_sso.verify.xfcc import MalformedXFCC, only_element

BY = "spiffe://cluster.local/ns/edge/sa/envoy"


@pytest.fixture(scope="module")
def cert() -> ClientCertificate:
    return ClientCertificate("Test Client")


def test_envoys_default_element_is_by_and_hash(cert: ClientCertificate) -> None:
    # forward_client_cert_details: SANITIZE_SET and no set_current_client_cert_details
    digest = hashlib.sha256(cert.der).hexdigest()
    pairs = only_element(cert.xfcc(cert=False, by=BY).encode())
    assert pairs == {"hash": digest.encode()}


def test_an_element_with_the_certificate_gives_it_unquoted(cert: ClientCertificate) -> None:
    pairs = only_element(cert.xfcc(by=BY).encode())
    assert pairs["cert"].startswith(b"-----BEGIN%20CERTIFICATE-----%0A")
    assert pairs["hash"] == hashlib.sha256(cert.der).hexdigest().encode()
    assert pairs["subject"] == b"CN=Test Client"


def test_quoted_values_may_hold_separators_and_escaped_quotes() -> None:
    value = b'Hash=ab;Subject="CN=a\\,b\\;c,O=\\"Acme\\", Inc.";URI=;DNS=a.example;DNS=b.example'
    pairs = only_element(value)
    assert pairs == {"hash": b"ab", "subject": b'CN=a,b;c,O="Acme", Inc.'}


def test_a_quote_that_would_swallow_envoys_own_element_is_refused(
    cert: ClientCertificate,
) -> None:
    # APPEND_FORWARD: the client opens a quote, and a '"' at the end of a URI name in
    # its certificate, which Envoy writes unquoted, closes it. Read as one element,
    # the header would name the client's chosen Hash; a raw ';' inside quotes, which
    # Envoy never writes, gives it away.
    victim = hashlib.sha256(b"victim").hexdigest()
    own = hashlib.sha256(cert.der).hexdigest()
    for san in ('URI=spiffe://corp/evil"', 'DNS=evil.corp"'):
        header = f'Hash={victim};Subject=",By=spiffe://corp/edge;Hash={own};{san}'
        with pytest.raises(MalformedXFCC):
            only_element(header.encode())


def test_keys_are_case_insensitive_and_repeatable_ones_repeat() -> None:
    value = b"by=spiffe://a;BY=spiffe://b;HASH=ab;uri=x;Uri=y;dns=a;Dns=b;Future-Key=1"
    assert only_element(value) == {"hash": b"ab"}


def test_a_bare_value_may_hold_an_equals_sign() -> None:
    # Envoy writes By and URI unquoted whatever they hold (a query's '=' among them).
    assert only_element(b"By=https://p.example/?a=b;Hash=ab") == {"hash": b"ab"}


def test_surrounding_whitespace_is_tolerated() -> None:
    assert only_element(b" \tHash=ab ") == {"hash": b"ab"}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"Hash=ab,Hash=cd", "more than one element"),
        (b"By=spiffe://a;Hash=ab,By=spiffe://b;Hash=cd;URI=spiffe://a", "more than one element"),
        (b'Hash=ab;Subject="x",Hash=cd', "more than one element"),
        (b"Hash=ab;Hash=ab", "Hash more than once"),
        (b"Hash=ab;hash=cd", "Hash more than once"),
        (b'Cert="a";CERT="b"', "Cert more than once"),
        (b'Subject="a";Subject="b"', "Subject more than once"),
        (b'Chain="a";chain="b"', "Chain more than once"),
    ],
)
def test_several_elements_or_a_once_only_key_twice_are_refused(value: bytes, why: str) -> None:
    # Several elements: APPEND_FORWARD hops; a key twice: a value that smuggled a pair in.
    with pytest.raises(MalformedXFCC, match=why):
        only_element(value)


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"Hash",
        b"=ab",
        b"Hash=ab;",
        b"Hash=ab,",
        b";Hash=ab",
        b"Hash=ab;;URI=x",
        b"Ha sh=ab",
        b'Hash=a"b',
        b'Subject="unterminated',
        b'Subject="ends in a backslash\\"',
        b'Subject="a"b;Hash=ab',
        b'Subject="a" ;Hash=ab',
        b'Hash=ab;Subject="a"x',
        b"Hash=ab Subject=x",
        b"URI=a b;Hash=ab",
        b"Hash=ab\x00",
    ],
)
def test_malformed_elements_are_refused(value: bytes) -> None:
    with pytest.raises(MalformedXFCC):
        only_element(value)


def test_a_long_unterminated_quote_is_refused_in_one_pass() -> None:
    # Linear: the quoted-string pattern has one way to match each character.
    for body in (b'\\"' * 30_000, b"a\\" * 30_000, b"\\" * 60_000):
        value = b'Hash=ab;Subject="' + body
        with pytest.raises(MalformedXFCC):
            only_element(value)
