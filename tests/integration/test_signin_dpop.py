"""Sign-in with DPoP-bound tokens (RFC 9449) through the in-process browser harness.

:class:`DPoPProvider` puts a small DPoP authorization server in front of the
DevIdP: it advertises the proof algorithms, checks every proof at ``/token``
(signature by its own ``jwk``, ``typ``, ``htm``, ``htu``, the nonce it handed
out), answers ``token_type: DPoP`` and remembers which key each access token is
bound to, and lets ``/userinfo`` in only with that key's proof (the resource
server's own checker). The real-socket test against the DevIdP's own DPoP
support is in test_signin_dpop_devidp.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest
from _browser_env import Env, Forward
from joserfc import jws
from joserfc.jwk import ECKey

from asgi_sso.config import Limits
from asgi_sso.keys.jwk import parse_jwk
from asgi_sso.login.dpop import DPoPKey
from asgi_sso.sessions import MemorySessionStore, SessionRecord
from asgi_sso.sessions.codec import CookieCodec
from asgi_sso.testing import FakeClock
from asgi_sso.verify.dpop import DPoPChecker

IDP = "https://idp.example"


class DPoPProvider:
    """A DPoP authorization server and userinfo endpoint in front of ``env``'s DevIdP.

    Args:
        env: the harness whose ``/token``, ``/userinfo`` and discovery it takes over.
        algs: the advertised ``dpop_signing_alg_values_supported`` (``None``: none).
        bind: answer a proved token request with ``token_type: DPoP`` (else ``Bearer``).
        nonce: demand a server nonce (§8, §9) in every proof.
    """

    def __init__(
        self, env: Env, *, algs: list[str] | None = None, bind: bool = True, nonce: bool = False
    ) -> None:
        self.algs = ["ES256"] if algs is None else algs
        self.bind = bind
        self.nonce = "server-nonce-1" if nonce else None
        self.checker = DPoPChecker(Limits(), env.clock)
        self.token_proofs: list[str | None] = []  # the jkt each token request proved, or None
        self.userinfo_schemes: list[str] = []
        self.bound: dict[str, str] = {}  # access token -> jkt
        env.overrides["/.well-known/openid-configuration"] = self._discovery
        env.overrides["/token"] = self._token
        env.overrides["/userinfo"] = self._userinfo

    async def _discovery(self, request: httpx.Request, forward: Forward) -> httpx.Response:
        document = (await forward(request)).json()
        if self.algs:
            document["dpop_signing_alg_values_supported"] = self.algs
        return httpx.Response(200, json=document)

    def _proof_key(self, proof: str, method: str, url: str) -> tuple[str, dict[str, Any]]:
        """The proof's key thumbprint and claims, after the §4.3 checks of a token endpoint."""
        header = dict(jws.extract_compact(proof.encode()).headers())
        assert header["typ"] == "dpop+jwt"
        assert header["alg"] == "ES256"
        assert not {"d", "p", "q"} & set(header["jwk"])
        key = ECKey.import_key(header["jwk"])
        claims = json.loads(jws.deserialize_compact(proof, key, algorithms=["ES256"]).payload)
        assert (claims["htm"], claims["htu"]) == (method, url)
        return parse_jwk(header["jwk"]).thumbprint, claims

    async def _token(self, request: httpx.Request, forward: Forward) -> httpx.Response:
        proof = request.headers.get("dpop")
        if proof is None:
            self.token_proofs.append(None)
            return await forward(request)
        jkt, claims = self._proof_key(proof, "POST", IDP + "/token")
        self.token_proofs.append(jkt)
        if self.nonce is not None and claims.get("nonce") != self.nonce:
            body = {"error": "use_dpop_nonce", "error_description": "use the nonce"}
            return httpx.Response(400, json=body, headers={"DPoP-Nonce": self.nonce})
        answer = await forward(request)
        tokens = answer.json()
        if answer.status_code == 200 and self.bind:
            tokens["token_type"] = "DPoP"
            self.bound[tokens["access_token"]] = jkt
        return httpx.Response(answer.status_code, json=tokens)

    async def _userinfo(self, request: httpx.Request, forward: Forward) -> httpx.Response:
        scheme, _, token = request.headers["authorization"].partition(" ")
        self.userinfo_schemes.append(scheme)
        if token in self.bound:  # a bound token only with its key's proof (§7.1)
            assert scheme == "DPoP"
            proof = request.headers["dpop"]
            claims = json.loads(jws.extract_compact(proof.encode()).payload)
            if self.nonce is not None and claims.get("nonce") != self.nonce:
                challenge = 'DPoP error="use_dpop_nonce", error_description="use the nonce"'
                headers = {"WWW-Authenticate": challenge, "DPoP-Nonce": self.nonce}
                return httpx.Response(401, headers=headers)
            url = IDP + "/userinfo"
            self.checker.check(proof, method="GET", url=url, token=token, jkt=self.bound[token])
        else:
            assert scheme == "Bearer"
        plain = httpx.Request("GET", request.url, headers={"authorization": f"Bearer {token}"})
        return await forward(plain)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemorySessionStore:
    return MemorySessionStore(clock=clock)


async def _record(env: Env, store: MemorySessionStore) -> SessionRecord:
    assert (await env.get("/probe")).status_code == 200
    record = await store.get(env.seen[-1]["session_id"])
    assert record is not None
    return record


def _jkt(record: SessionRecord) -> str:
    assert record.dpop_key is not None
    return DPoPKey.from_jwk(record.dpop_key, FakeClock()).jkt


async def test_sign_in_binds_the_tokens_to_a_key_the_session_keeps(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store, scopes=("openid", "email", "offline_access"))
    provider = DPoPProvider(env)
    assert (await env.sign_in()).status_code == 303
    record = await _record(env, store)
    assert provider.token_proofs == [_jkt(record)]
    assert list(provider.bound.values()) == [_jkt(record)]
    assert provider.userinfo_schemes == ["DPoP"]
    assert record.claims["email"] == "alice@corp.example"  # userinfo merged
    assert record.dpop_key is not None
    assert "d" in json.loads(record.dpop_key)
    assert record.dpop_key not in repr(record)


async def test_refresh_proves_the_sign_in_key_in_any_worker(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    provider = DPoPProvider(env)
    await env.sign_in()
    before = await _record(env, store)
    env.login = env.make_login(env.login.config.cookie_secrets)  # another worker, same store
    clock.advance(241)
    after = await _record(env, store)
    assert after.refresh_token != before.refresh_token  # refreshed
    assert provider.token_proofs == [_jkt(before)] * 2
    assert list(provider.bound.values()) == [_jkt(before)] * 2
    assert provider.userinfo_schemes == ["DPoP", "DPoP"]
    assert after.dpop_key == before.dpop_key


async def test_server_nonces_cost_one_retry_per_call(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    provider = DPoPProvider(env, nonce=True)
    assert (await env.sign_in()).status_code == 303
    jkt = _jkt(await _record(env, store))
    assert provider.token_proofs == [jkt, jkt]
    assert provider.userinfo_schemes == ["DPoP", "DPoP"]
    clock.advance(241)
    await _record(env, store)
    assert provider.token_proofs == [jkt] * 4
    assert len(provider.bound) == 2


async def test_cookie_sessions_prove_a_key_but_never_carry_it(clock: FakeClock) -> None:
    env = Env(clock)
    provider = DPoPProvider(env)
    assert (await env.sign_in()).status_code == 303
    assert provider.token_proofs[0] is not None
    assert provider.userinfo_schemes == ["DPoP"]
    config = env.login.config
    codec = CookieCodec(config.cookie_secrets, purpose="asgi_sso session",
                        binding=(config.issuer, config.client_id))  # fmt: skip
    sealed = "".join(v for _, v in sorted(env.session_cookies().items()))
    record = msgspec.json.decode(codec.decode(sealed), type=SessionRecord)
    assert record.dpop_key is None
    assert record.refresh_token is None


@pytest.mark.parametrize(
    ("algs", "login"),
    [([], {}), (["RS256", "PS256"], {}), (["ES256"], {"dpop": "off"})],
    ids=["not-advertised", "no-es256", "off"],
)
async def test_no_proof_unless_the_provider_takes_es256_and_dpop_is_on(
    clock: FakeClock, store: MemorySessionStore, algs: list[str], login: dict[str, Any]
) -> None:
    env = Env(clock, store=store, **login)
    provider = DPoPProvider(env, algs=algs)
    assert (await env.sign_in()).status_code == 303
    record = await _record(env, store)
    assert record.dpop_key is None
    clock.advance(241)
    await _record(env, store)
    assert provider.token_proofs == [None, None]
    assert provider.userinfo_schemes == ["Bearer", "Bearer"]


async def test_a_provider_ignoring_the_proof_gets_bearer_calls(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    provider = DPoPProvider(env, bind=False)
    assert (await env.sign_in()).status_code == 303
    record = await _record(env, store)
    assert provider.token_proofs == [_jkt(record)]
    assert provider.userinfo_schemes == ["Bearer"]


async def test_turning_dpop_off_keeps_proving_the_key_of_a_live_session(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    # Its refresh token may be bound to that key: dropping the proof would end the session.
    env = Env(clock, store=store)
    provider = DPoPProvider(env)
    await env.sign_in()
    before = await _record(env, store)
    env.login = env.make_login(env.login.config.cookie_secrets, dpop="off")
    clock.advance(241)
    await _record(env, store)
    assert provider.token_proofs == [_jkt(before)] * 2


async def test_an_unreadable_stored_key_ends_the_session_at_refresh(
    clock: FakeClock, store: MemorySessionStore
) -> None:
    env = Env(clock, store=store)
    DPoPProvider(env)
    await env.sign_in()
    record = await _record(env, store)
    await store.update(msgspec.structs.replace(record, dpop_key='{"kty":"EC"}'))
    clock.advance(241)
    response = await env.get("/a")
    assert response.status_code == 401
    assert await store.get(record.id) is None
    assert "refresh_dpop_key" in [e.reason for e in env.events if e.name == "session.ended"]
