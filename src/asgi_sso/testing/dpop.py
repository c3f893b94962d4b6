"""A DPoP client for tests: a key, the thumbprint tokens bind to, signed proofs (RFC 9449).

Pair it with :class:`~asgi_sso.testing.TokenFactory`: ``factory.token(claims=
client.cnf())`` is a token bound to the client's key, and ``client.headers(token,
"GET", url)`` the request headers that present it. The ``*_proof`` variants
are the hostile ones a resource server must refuse. Keys are generated at test time.

Against a server requiring nonces (RFC 9449 §9), :meth:`DPoPClient.request` sends
a request, learns the ``DPoP-Nonce`` it answers with and retries once on
``use_dpop_nonce``, as a real client does; every later proof carries the nonce.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from asgi_sso.config import Clock, SystemClock
from asgi_sso.keys.jwk import parse_jwk
from asgi_sso.login.dpop import PROOF_TYPE as _PROOF_TYPE
from asgi_sso.login.dpop import proof_claims
from asgi_sso.testing.tokens import (
    SigningKey,
    alg_none,
    b64url,
    generate_key,
    merge_claims,
    mint,
    public_jwk,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["DPoPClient"]


class DPoPClient:
    """A client holding one DPoP key.

    Args:
        alg: the proof algorithm (``ES256`` by default; any of the test kit's).
        clock: where a proof's ``iat`` comes from (inject the tests' fake clock).
        key: the private key to hold (for ``alg``); default: a fresh one. Pass the
            same key to clients in several processes to share one binding.

    Attributes:
        nonce: the server nonce every proof carries (``None``: none); set by
            :meth:`learn_nonce` and :meth:`request`, or by hand.
    """

    def __init__(
        self, alg: str = "ES256", *, clock: Clock | None = None, key: SigningKey | None = None
    ) -> None:
        self.alg = alg
        self.key: SigningKey = key if key is not None else generate_key(alg)
        self.clock: Clock = clock or SystemClock()
        self.jwk = {
            name: value
            for name, value in public_jwk(self.key).items()
            if name not in ("kid", "use", "key_ops")
        }
        self.jkt = parse_jwk(self.jwk).thumbprint
        self.nonce: str | None = None

    def __repr__(self) -> str:
        return f"DPoPClient(alg={self.alg!r}, jkt={self.jkt!r})"

    def cnf(self) -> dict[str, Any]:
        """The ``cnf`` claim binding a token to this key: ``{"cnf": {"jkt": ...}}``."""
        return {"cnf": {"jkt": self.jkt}}

    def claims(
        self,
        method: str,
        url: str,
        token: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A proof's claims: ``jti``, ``htm``, ``htu``, ``iat``, ``ath`` when ``token``,
        ``nonce`` when the client holds one.

        ``extra`` is merged last; a ``None`` value removes that claim.
        """
        claims = proof_claims(
            method, url, iat=int(self.clock.time()), access_token=token, nonce=self.nonce
        )
        return merge_claims(claims, extra)

    def proof(
        self,
        method: str,
        url: str,
        token: str | None = None,
        *,
        claims: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """A valid proof for one request (``claims`` and ``headers`` override members)."""
        header = {"typ": _PROOF_TYPE, "jwk": self.jwk, **(headers or {})}
        body = self.claims(method, url, token, extra=claims)
        return mint(body, self.key, alg=self.alg, kid="", headers=header)

    def headers(self, token: str, method: str, url: str, **kw: Any) -> list[tuple[bytes, bytes]]:
        """ASGI request headers presenting ``token`` with a fresh proof."""
        proof = self.proof(method, url, token, **kw)
        return [(b"authorization", f"DPoP {token}".encode()), (b"dpop", proof.encode())]

    def learn_nonce(self, headers: Mapping[str, str]) -> bool:
        """Take the ``DPoP-Nonce`` of a response's headers, if any; whether it was new."""
        nonce = headers.get("dpop-nonce")
        if nonce is None or nonce == self.nonce:
            return False
        self.nonce = nonce
        return True

    async def request(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        token: str,
        *,
        htu: str | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """Send ``token`` with a fresh proof; on ``use_dpop_nonce``, retry once with the nonce.

        Args:
            http: the client sending the request.
            method: the HTTP method.
            url: the URL requested (and named in ``htu`` unless ``htu`` is given).
            token: the DPoP-bound access token.
            htu: the URL the proof names, when it differs from ``url`` (behind a proxy).
            kw: passed to :meth:`httpx.AsyncClient.request` (``json``, ``params`` ...).
        """
        extra = dict(kw.pop("headers", None) or {})
        response = await self._send(http, method, url, token, htu, extra, kw)
        challenges = " ".join(response.headers.get_list("www-authenticate"))
        if self.learn_nonce(response.headers) and 'error="use_dpop_nonce"' in challenges:
            response = await self._send(http, method, url, token, htu, extra, kw)
            self.learn_nonce(response.headers)
        return response

    async def _send(
        self,
        http: httpx.AsyncClient,
        method: str,
        url: str,
        token: str,
        htu: str | None,
        extra: dict[str, str],
        kw: dict[str, Any],
    ) -> httpx.Response:
        proof = self.proof(method, htu or url, token)
        headers = {**extra, "authorization": f"DPoP {token}", "dpop": proof}
        return await http.request(method, url, headers=headers, **kw)

    def private_key_proof(self, method: str, url: str, token: str | None = None) -> str:
        """A proof whose ``jwk`` carries the private key (``d`` ...): must be refused."""
        private = dict(self.key.as_dict(private=True))
        return self.proof(method, url, token, headers={"jwk": private})

    def none_proof(self, method: str, url: str, token: str | None = None) -> str:
        """An unsigned (``alg: none``) proof: must be refused."""
        header = {"typ": _PROOF_TYPE, "jwk": self.jwk}
        return alg_none(self.claims(method, url, token), headers=header)

    def hmac_proof(self, method: str, url: str, token: str | None = None) -> str:
        """A proof MACed with ``HS256`` (keyed by the public JWK's text): must be refused."""
        header = {"alg": "HS256", "typ": _PROOF_TYPE, "jwk": self.jwk}
        unsigned = mint(self.claims(method, url, token), self.key, kid="", headers=header)
        signing_input = unsigned.rpartition(".")[0]
        secret = repr(self.jwk).encode()
        signature = hmac.new(secret, signing_input.encode(), "sha256").digest()
        return f"{signing_input}.{b64url(signature)}"
