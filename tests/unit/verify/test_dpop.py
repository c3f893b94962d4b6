"""DPoPChecker: each rule of RFC 9449 §4.3 refuses its own kind of bad proof."""

from __future__ import annotations

import pytest

from asgi_sso.config import Limits, Secret
from asgi_sso.errors import (
    InvalidDPoPProof,
    InvalidToken,
    ServiceUnavailable,
    StoreUnavailable,
    UseDPoPNonce,
)
from asgi_sso.testing import FakeClock
from asgi_sso.testing.dpop import DPoPClient
from asgi_sso.testing.tokens import tamper_signature
from asgi_sso.verify.dpop import (
    NONCE_LENGTH,
    DPoPChecker,
    DPoPNonces,
    ReplayCache,
    bound_key,
    normalize_htu,
)

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


async def check(checker: DPoPChecker, client: DPoPClient, proof: object, **kw: str) -> str | None:
    # The nonce to send back, once the proof is accepted for the client's key.
    request = {"method": "GET", "url": URL, "token": TOKEN, "jkt": client.jkt, **kw}
    checked = await checker.check(proof, **request)
    assert checked.thumbprint == client.jkt
    return checked.nonce


@pytest.mark.parametrize("alg", ["ES256", "ES384", "RS256", "PS256", "EdDSA"])
async def test_a_fresh_proof_is_accepted(clock: FakeClock, checker: DPoPChecker, alg: str) -> None:
    client = DPoPClient(alg, clock=clock)
    await check(checker, client, client.proof("GET", URL, TOKEN))
    assert len(checker.replay) == 1


async def test_a_replayed_proof_is_refused_until_its_window_passed(
    clock: FakeClock, client: DPoPClient, checker: DPoPChecker
) -> None:
    proof = client.proof("GET", URL, TOKEN)
    await check(checker, client, proof)
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await check(checker, client, proof)
    clock.advance(61)
    with pytest.raises(InvalidDPoPProof, match="window"):  # stale by then anyway
        await check(checker, client, proof)


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
async def test_a_proof_for_another_request_token_or_key_is_refused(
    client: DPoPClient, checker: DPoPChecker, kw: dict[str, str], match: str
) -> None:
    with pytest.raises(InvalidDPoPProof, match=match):
        await check(checker, client, client.proof("GET", URL, TOKEN), **kw)
    assert len(checker.replay) == 0  # a refused proof takes no place in the memory


@pytest.mark.parametrize("skew", [-61, 61])
async def test_a_proof_issued_outside_the_window_is_refused(
    client: DPoPClient, checker: DPoPChecker, clock: FakeClock, skew: int
) -> None:
    proof = client.proof("GET", URL, TOKEN, claims={"iat": int(clock.time()) + skew})
    with pytest.raises(InvalidDPoPProof, match="window"):
        await check(checker, client, proof)


@pytest.mark.parametrize(
    ("variant", "match"),
    [
        ("none_proof", "malformed"),
        ("hmac_proof", "algorithm"),
        ("private_key_proof", "private key"),
    ],
)
async def test_unsigned_mac_and_private_key_proofs_are_refused(
    client: DPoPClient, checker: DPoPChecker, variant: str, match: str
) -> None:
    proof = getattr(client, variant)("GET", URL, TOKEN)
    with pytest.raises(InvalidDPoPProof, match=match):
        await check(checker, client, proof)


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
async def test_malformed_proofs_are_refused(
    client: DPoPClient,
    checker: DPoPChecker,
    claims: dict[str, object],
    headers: dict[str, object],
    match: str,
) -> None:
    proof = client.proof("GET", URL, TOKEN, claims=claims, headers=headers)
    with pytest.raises(InvalidDPoPProof, match=match):
        await check(checker, client, proof)


async def test_a_proof_signed_by_another_key_is_refused(
    client: DPoPClient, checker: DPoPChecker, clock: FakeClock
) -> None:
    other = DPoPClient(clock=clock)
    # The other client's signature under this client's jwk.
    forged = other.proof("GET", URL, TOKEN, headers={"jwk": client.jwk})
    with pytest.raises(InvalidDPoPProof, match="signature"):
        await check(checker, client, forged)
    with pytest.raises(InvalidDPoPProof, match="signature"):
        await check(checker, client, tamper_signature(client.proof("GET", URL, TOKEN)))


@pytest.mark.parametrize("proof", [None, "", "a.b", "x" * 9000, 42, "a.b.c"])
async def test_missing_or_garbage_proofs_are_refused(
    client: DPoPClient, checker: DPoPChecker, proof: object
) -> None:
    with pytest.raises(InvalidDPoPProof):
        await check(checker, client, proof)


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


def test_a_proof_is_remembered_through_the_last_instant_of_its_window() -> None:
    cache = ReplayCache(2)
    assert cache.add("a", until=10, now=0)
    assert not cache.add("a", until=10, now=10)
    assert cache.add("a", until=20, now=10.001)


async def test_a_proof_replayed_at_the_end_of_its_window_is_refused(
    clock: FakeClock, client: DPoPClient, checker: DPoPChecker
) -> None:
    proof = client.proof("GET", URL, TOKEN)
    await check(checker, client, proof)
    clock.advance(60.0)  # still inside the window: iat + window is accepted
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await check(checker, client, proof)


def test_bound_key_reads_cnf_jkt_only() -> None:
    assert bound_key(b'{"sub":"a"}') is None
    assert bound_key(b'{"cnf":{"x5t#S256":"abc"}}') is None
    assert bound_key(b'{"cnf":{"jkt":"abc"}}') == "abc"
    with pytest.raises(InvalidToken):
        bound_key(b'{"cnf":{"jkt":42}}')


def test_bound_key_sees_a_binding_spelled_with_json_escapes() -> None:
    # JSON may spell "cnf" as "\u0063nf": the same claim, so the same binding. A
    # substring search alone would let such a bound token pass as a bearer one.
    assert bound_key(b'{"\\u0063nf":{"jkt":"abc"}}') == "abc"
    assert bound_key(b'{"cnf":{"\\u006akt":"abc"}}') == "abc"
    assert bound_key(b'{"sub":"\\u0061"}') is None


async def test_a_token_request_proof_needs_no_ath_and_names_its_key(
    clock: FakeClock, client: DPoPClient, checker: DPoPChecker
) -> None:
    # At a token endpoint (RFC 9449 §5) there is no token yet and any key may ask.
    token_url = "https://idp.test/token"
    found = await checker.check(
        client.proof("POST", token_url), method="POST", url=token_url, token=None, jkt=None
    )
    assert found.thumbprint == client.jkt
    other = DPoPClient(clock=clock)
    proof = other.proof("POST", token_url, claims={"ath": "anything"})
    checked = await checker.check(proof, method="POST", url=token_url, token=None, jkt=None)
    assert checked.thumbprint == other.jkt
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await checker.check(proof, method="POST", url=token_url, token=None, jkt=None)
    with pytest.raises(InvalidDPoPProof, match="htu"):
        await checker.check(
            client.proof("POST", URL), method="POST", url=token_url, token=None, jkt=None
        )


class SharedMemory:
    """A ProofMemory two checkers share, as Redis is shared by two workers."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}

    async def remember(self, key: str, until: float) -> bool:
        if key in self.seen:
            return False
        self.seen[key] = until
        return True


async def test_a_shared_memory_refuses_on_one_checker_a_proof_accepted_by_another(
    clock: FakeClock, client: DPoPClient
) -> None:
    memory = SharedMemory()
    limits = Limits(dpop_proof_window=60.0)
    a, b = (DPoPChecker(limits, clock, memory=memory) for _ in range(2))
    proof = client.proof("GET", URL, TOKEN)
    await check(a, client, proof)
    with pytest.raises(InvalidDPoPProof, match="already used"):
        await check(b, client, proof)
    await check(b, client, client.proof("GET", URL, TOKEN))
    assert len(memory.seen) == 2  # remembered until the proof's window has passed
    assert all(u == pytest.approx(clock.time() + 60) for u in memory.seen.values())


async def test_a_memory_outage_refuses_with_503(clock: FakeClock, client: DPoPClient) -> None:
    class Down:
        async def remember(self, key: str, until: float) -> bool:
            raise StoreUnavailable("the DPoP proof memory (Redis) is unavailable")

    checker = DPoPChecker(Limits(), clock, memory=Down())
    with pytest.raises(ServiceUnavailable):
        await check(checker, client, client.proof("GET", URL, TOKEN))


SECRETS = (Secret(b"n" * 32),)


@pytest.fixture
def nonces(clock: FakeClock) -> DPoPNonces:
    return DPoPNonces(SECRETS, 300.0, clock)


@pytest.fixture
def nonce_checker(clock: FakeClock, nonces: DPoPNonces) -> DPoPChecker:
    return DPoPChecker(Limits(), clock, nonces=nonces)


@pytest.mark.parametrize(
    ("nonce", "match"),
    [
        (None, "requires a nonce"),
        ("", "malformed"),
        (42, "malformed"),
        ("x" * 2000, "malformed"),
        ("A" * NONCE_LENGTH, "expired or is unknown"),
        ("é" * NONCE_LENGTH, "malformed"),
    ],
)
async def test_a_proof_without_a_current_nonce_is_refused_with_a_fresh_one(
    client: DPoPClient, nonce_checker: DPoPChecker, nonces: DPoPNonces, nonce: object, match: str
) -> None:
    proof = client.proof("GET", URL, TOKEN, claims={"nonce": nonce})
    with pytest.raises(UseDPoPNonce, match=match) as refused:
        await check(nonce_checker, client, proof)
    assert refused.value.error == "use_dpop_nonce"
    assert refused.value.status == 401
    assert refused.value.headers == [(b"dpop-nonce", nonces.current().encode())]
    assert len(nonce_checker.replay) == 0  # type: ignore[arg-type]


async def test_a_nonce_lives_one_to_two_periods_and_is_renewed_in_the_second(
    client: DPoPClient, nonce_checker: DPoPChecker, nonces: DPoPNonces, clock: FakeClock
) -> None:
    clock.advance(300 - clock.time() % 300)  # the start of a period
    nonce = nonces.current()
    assert len(nonce) == NONCE_LENGTH
    proof = client.proof("GET", URL, TOKEN, claims={"nonce": nonce})
    assert await check(nonce_checker, client, proof) is None  # current: nothing to renew
    clock.advance(300)  # the next period: still accepted, and a fresh one is handed out
    renewed = await check(
        nonce_checker, client, client.proof("GET", URL, TOKEN, claims={"nonce": nonce})
    )
    assert renewed == nonces.current() != nonce
    clock.advance(300)  # two periods on: expired
    with pytest.raises(UseDPoPNonce, match="expired"):
        await check(nonce_checker, client, client.proof("GET", URL, TOKEN, claims={"nonce": nonce}))


async def test_nonces_are_shared_by_workers_and_survive_a_secret_rotation(
    client: DPoPClient, clock: FakeClock
) -> None:
    old, new = Secret(b"o" * 32), Secret(b"w" * 32)
    before = DPoPNonces((old,), 300.0, clock)
    other_worker = DPoPNonces((old,), 300.0, clock)
    rotated = DPoPNonces((old, new), 300.0, clock)
    assert before.current() == other_worker.current()
    assert rotated.current() != before.current()  # the newest secret issues
    assert rotated.check(before.current()) is False  # still accepted, and renewed
    assert DPoPNonces((new,), 300.0, clock).check(rotated.current())
    with pytest.raises(UseDPoPNonce):
        DPoPNonces((new,), 300.0, clock).check(before.current())


async def test_the_external_url_replaces_what_the_server_reports(
    clock: FakeClock, client: DPoPClient
) -> None:
    checker = DPoPChecker(Limits(), clock, external_url="https://api.example.com/base/")
    scope = {"type": "http", "scheme": "http", "path": "/internal/things",
             "root_path": "/internal", "headers": [(b"host", b"10.0.0.5:8000")]}  # fmt: skip
    assert checker.request_url(scope) == "https://api.example.com/base/things"
    assert DPoPChecker(Limits(), clock).request_url(scope) == "http://10.0.0.5:8000/internal/things"


async def test_a_clients_key_is_parsed_once_for_all_its_proofs(
    client: DPoPClient, checker: DPoPChecker, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asgi_sso.verify.dpop as module

    parsed: list[object] = []
    real = module.parse_jwk
    monkeypatch.setattr(module, "parse_jwk", lambda jwk: parsed.append(jwk) or real(jwk))
    for _ in range(3):
        await check(checker, client, client.proof("GET", URL, TOKEN))
    assert len(parsed) == 1
    # The cache never vouches for a signature: a forged proof under that header fails.
    with pytest.raises(InvalidDPoPProof, match="signature"):
        await check(checker, client, tamper_signature(client.proof("GET", URL, TOKEN)))
    other = DPoPClient(clock=client.clock)  # its own key: parsed, and bound to another jkt
    with pytest.raises(InvalidDPoPProof, match="bound to"):
        await check(checker, client, other.proof("GET", URL, TOKEN))
    assert len(parsed) == 2
