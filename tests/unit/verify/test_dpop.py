"""DPoPChecker: each rule of RFC 9449 §4.3 refuses its own kind of bad proof."""

from __future__ import annotations

import pytest

from asgi_sso.config import Limits
from asgi_sso.errors import InvalidDPoPProof, InvalidToken, ServiceUnavailable
from asgi_sso.testing import FakeClock
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.testing.tokens import tamper_signature
from asgi_sso.verify.dpop import DPoPChecker, ReplayCache, bound_key, normalize_htu

URL = "https://api.test/things"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> DPoPClient:
    return DPoPClient(clock=clock)


@pytest.fixture
def checker(clock: FakeClock) -> DPoPChecker:
    return DPoPChecker(Limits(dpop_proof_window=60.0, dpop_replay_size=100), clock)


def check(checker: DPoPChecker, client: DPoPClient, proof: object, **kw: str) -> None:
    request = {"method": "GET", "url": URL, "token": TOKEN, "jkt": client.jkt, **kw}
    checker.check(proof, **request)


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "PS256", "EdDSA"])
def test_a_fresh_proof_is_accepted(clock: FakeClock, checker: DPoPChecker, alg: str) -> None:
    client = DPoPClient(alg, clock=clock)
    check(checker, client, client.proof("GET", URL, TOKEN))
    assert len(checker.replay) == 1


def test_a_replayed_proof_is_refused_until_its_window_passed(
    clock: FakeClock, client: DPoPClient, checker: DPoPChecker
) -> None:
    proof = client.proof("GET", URL, TOKEN)
    check(checker, client, proof)
    with pytest.raises(InvalidDPoPProof, match="already used"):
        check(checker, client, proof)
    clock.advance(61)
    with pytest.raises(InvalidDPoPProof, match="window"):  # stale by then anyway
        check(checker, client, proof)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"method": "POST"}, "htm"),
        ({"url": "https://api.test/other"}, "htu"),
        ({"url": "https://evil.test/things"}, "htu"),
        ({"token": TOKEN + "x"}, "ath"),
        ({"jkt": "A" * 43}, "bound to"),
    ],
)
def test_a_proof_for_another_request_token_or_key_is_refused(
    client: DPoPClient, checker: DPoPChecker, kw: dict[str, str], match: str
) -> None:
    with pytest.raises(InvalidDPoPProof, match=match):
        check(checker, client, client.proof("GET", URL, TOKEN), **kw)
    assert len(checker.replay) == 0  # a refused proof takes no place in the memory


@pytest.mark.parametrize("skew", [-61, 61])
def test_a_proof_issued_outside_the_window_is_refused(
    client: DPoPClient, checker: DPoPChecker, clock: FakeClock, skew: int
) -> None:
    proof = client.proof("GET", URL, TOKEN, claims={"iat": int(clock.time()) + skew})
    with pytest.raises(InvalidDPoPProof, match="window"):
        check(checker, client, proof)


@pytest.mark.parametrize(
    ("variant", "match"),
    [
        ("none_proof", "malformed"),
        ("hmac_proof", "algorithm"),
        ("private_key_proof", "private key"),
    ],
)
def test_unsigned_mac_and_private_key_proofs_are_refused(
    client: DPoPClient, checker: DPoPChecker, variant: str, match: str
) -> None:
    proof = getattr(client, variant)("GET", URL, TOKEN)
    with pytest.raises(InvalidDPoPProof, match=match):
        check(checker, client, proof)


@pytest.mark.parametrize(
    ("claims", "headers", "match"),
    [
        ({}, {"typ": "JWT"}, "typ"),
        ({}, {"jwk": None}, "no jwk"),
        ({}, {"jwk": {"kty": "oct", "k": "c2VjcmV0"}}, "private key"),
        ({}, {"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}, "unusable"),
        ({"iat": "now"}, {}, "iat"),
        ({"iat": 10**400}, {}, "iat"),
        ({"iat": True}, {}, "iat"),
        ({"jti": None}, {}, "jti"),
        ({"jti": "j" * 300}, {}, "jti"),
        ({"ath": None}, {}, "ath"),
        ({"htu": None}, {}, "htu"),
        ({"htu": "ftp://api.test/things"}, {}, "htu"),
    ],
)
def test_malformed_proofs_are_refused(
    client: DPoPClient,
    checker: DPoPChecker,
    claims: dict[str, object],
    headers: dict[str, object],
    match: str,
) -> None:
    proof = client.proof("GET", URL, TOKEN, claims=claims, headers=headers)
    with pytest.raises(InvalidDPoPProof, match=match):
        check(checker, client, proof)


def test_a_proof_signed_by_another_key_is_refused(
    client: DPoPClient, checker: DPoPChecker, clock: FakeClock
) -> None:
    other = DPoPClient(clock=clock)
    # The other client's signature under this client's jwk.
    forged = other.proof("GET", URL, TOKEN, headers={"jwk": client.jwk})
    with pytest.raises(InvalidDPoPProof, match="signature"):
        check(checker, client, forged)
    with pytest.raises(InvalidDPoPProof, match="signature"):
        check(checker, client, tamper_signature(client.proof("GET", URL, TOKEN)))


@pytest.mark.parametrize("proof", [None, "", "a.b", "x" * 9000, 42, "a.b.c"])
def test_missing_or_garbage_proofs_are_refused(
    client: DPoPClient, checker: DPoPChecker, proof: object
) -> None:
    with pytest.raises(InvalidDPoPProof):
        check(checker, client, proof)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://API.test:443/things?q=1#f", "https://api.test/things"),
        ("http://api.test:80", "http://api.test/"),
        ("http://api.test:8080/a%7eb%2f", "http://api.test:8080/a~b%2F"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x"),
        ("https://user:pw@api.test/", None),
        ("https://api.test:99999/", None),
        ("/relative", None),
        ("https://api.tést/", None),
        (None, None),
    ],
)
def test_htu_is_compared_normalised(url: object, expected: str | None) -> None:
    assert normalize_htu(url) == expected


def test_the_replay_memory_is_bounded_and_refuses_when_full() -> None:
    cache = ReplayCache(2)
    assert cache.add("a", until=10, now=0)
    assert not cache.add("a", until=10, now=1)
    assert cache.add("b", until=20, now=1)
    with pytest.raises(ServiceUnavailable):
        cache.add("c", until=20, now=2)
    assert cache.add("c", until=30, now=11)  # "a" has left its window
    assert len(cache) == 2


def test_bound_key_reads_cnf_jkt_only() -> None:
    assert bound_key(b'{"sub":"a"}') is None
    assert bound_key(b'{"cnf":{"x5t#S256":"abc"}}') is None
    assert bound_key(b'{"cnf":{"jkt":"abc"}}') == "abc"
    with pytest.raises(InvalidToken):
        bound_key(b'{"cnf":{"jkt":42}}')


def test_a_token_request_proof_needs_no_ath_and_names_its_key(
    clock: FakeClock, client: DPoPClient, checker: DPoPChecker
) -> None:
    # At a token endpoint (RFC 9449 §5) there is no token yet and any key may ask.
    token_url = "https://idp.test/token"
    found = checker.check(
        client.proof("POST", token_url), method="POST", url=token_url, token=None, jkt=None
    )
    assert found == client.jkt
    other = DPoPClient(clock=clock)
    proof = other.proof("POST", token_url, claims={"ath": "anything"})
    assert checker.check(proof, method="POST", url=token_url, token=None, jkt=None) == other.jkt
    with pytest.raises(InvalidDPoPProof, match="already used"):
        checker.check(proof, method="POST", url=token_url, token=None, jkt=None)
    with pytest.raises(InvalidDPoPProof, match="htu"):
        checker.check(client.proof("POST", URL), method="POST", url=token_url, token=None, jkt=None)
