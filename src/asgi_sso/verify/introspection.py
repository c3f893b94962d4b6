"""Opaque access tokens checked by OAuth token introspection (RFC 7662).

:class:`Introspector` asks one issuer's introspection endpoint about a token and
keeps the answer: an active one until the token's ``exp`` and at most
``Introspection.cache_ttl``, an inactive one for ``inactive_ttl``, each kind in
its own bounded LRU (so a flood of made-up tokens never pushes out the answers of
real ones), keyed by a keyed hash of the token (the token itself is never stored,
logged or put in an error). Concurrent requests for one token share one call. An outage,
a timeout, a non-200 or an answer that is not an RFC 7662 JSON object is a 503
with ``Retry-After``, never a pass-through.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import httpx
import msgspec

from asgi_sso.config import Clock, Introspection
from asgi_sso.errors import (
    AuthError,
    ConfigurationError,
    InvalidToken,
    MalformedToken,
    ServiceUnavailable,
)
from asgi_sso.keys.client_auth import ClientAuth, load_client_key

__all__ = ["IntrospectionUnavailable", "Introspector", "is_opaque"]

T = TypeVar("T")
V = TypeVar("V")

# RFC 6750 §2.1 b64token: these characters, then any "="; extract.py already
# refuses other headers, but a token may come from a cookie or a direct call.
_B64TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/")
_MAX_JSON_DEPTH = 8


class _Refusal:
    """A remembered refusal: its class and description, never the exception
    (whose traceback would keep the request's frames, and the token, alive)."""

    __slots__ = ("description", "kind")

    def __init__(self, error: AuthError) -> None:
        self.kind = type(error)
        self.description = error.description

    def error(self) -> AuthError:
        return self.kind(self.description)


class _Remembered(Generic[V]):
    """Values kept until a monotonic time: at most ``size``, least recently used out first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[bytes, tuple[V, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry[1]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: bytes, value: V, until: float) -> None:
        self._entries[key] = (value, until)
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, gone: Callable[[V], bool]) -> int:
        keys = [key for key, (value, _) in self._entries.items() if gone(value)]
        for key in keys:
            del self._entries[key]
        return len(keys)

    def clear(self) -> None:
        self._entries.clear()


class IntrospectionUnavailable(ServiceUnavailable):
    """The introspection endpoint could not give a usable answer (503)."""

    default_description = "the identity provider's token introspection is unavailable"


def is_opaque(token: str) -> bool:
    """Whether ``token`` is not a compact JWS or JWE (not three or five dot-separated parts).

    Such a credential can only be checked by introspection; anything shaped like a
    JWT stays with the local verifier, which refuses it if it is malformed.
    """
    return token.count(".") not in (2, 4)


Build = Callable[[dict[str, Any], float], tuple[T, float]]
"""Turns an active answer into a result and its expiry (wall clock); raises InvalidToken."""


class Introspector(Generic[T]):
    """Introspects opaque tokens at one endpoint, with a bounded, single-flight cache.

    Args:
        config: the issuer's introspection settings.
        client: the HTTP client to call with.
        endpoint: returns the endpoint URL (``config.endpoint`` or discovery's) and
            the algorithms a client assertion to it may be signed with (discovery's
            ``introspection_endpoint_auth_signing_alg_values_supported``; empty when
            unknown, and then the client key signs its default).
        build: checks an active answer's claims and makes the result; an
            :class:`~asgi_sso.errors.InvalidToken` it raises is remembered like an
            inactive answer.
        clock: wall time for ``exp``, monotonic time for cache lifetimes.

    Raises:
        ConfigurationError: ``config.client_key`` is not a private RSA or P-256 key.
    """

    def __init__(
        self,
        config: Introspection,
        *,
        client: httpx.AsyncClient,
        endpoint: Callable[[], Awaitable[tuple[str, tuple[str, ...]]]],
        build: Build[T],
        clock: Clock,
    ) -> None:
        self._config = config
        self._client = client
        self._endpoint = endpoint
        self._build = build
        self._clock = clock
        # A per-process key: cache keys reveal nothing about tokens if dumped.
        self._hash_key = secrets.token_bytes(32)
        self._answers: _Remembered[T] = _Remembered(config.cache_size)
        self._refusals: _Remembered[_Refusal] = _Remembered(config.cache_size)
        self._inflight: dict[bytes, asyncio.Task[T]] = {}
        self._forgets = 0  # evictions so far: an answer asked for before one is not kept
        self._auth = _client_auth(config, clock)

    def __len__(self) -> int:
        return len(self._answers) + len(self._refusals)

    def key(self, token: str) -> bytes:
        """The cache key of ``token``: a keyed hash, never the token."""
        return hmac.new(self._hash_key, token.encode(), hashlib.sha256).digest()

    async def introspect(self, token: str) -> T:
        """Return the checked result for ``token``, from the cache or one endpoint call.

        Raises:
            InvalidToken: the token is inactive, malformed or its claims are refused.
            IntrospectionUnavailable: the endpoint failed (503, not remembered).
        """
        if len(token) > self._config.max_token_bytes:
            raise MalformedToken(f"the token is longer than {self._config.max_token_bytes} bytes")
        body = token.rstrip("=")
        if not body or "=" in body or not _B64TOKEN.issuperset(body):
            raise MalformedToken("the token has characters a bearer token cannot hold")
        key = self.key(token)
        now = self._clock.monotonic()
        refusal = self._refusals.get(key, now)
        if refusal is not None:
            raise refusal.error()
        value = self._answers.get(key, now)
        if value is not None:
            return value
        task = self._inflight.get(key)
        if task is None:
            if len(self._inflight) >= self._config.max_inflight:
                # A flood of new tokens must not take every connection of the HTTP
                # client the key fetches share, nor queue without end.
                raise self._unavailable("too many introspection calls are in progress")
            task = asyncio.ensure_future(self._resolve(token, key))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one cancelled request does not cancel the call the others await.
        return await asyncio.shield(task)

    def evict(self, keep: Callable[[T], bool]) -> int:
        """Drop cached results for which ``keep`` is false; return how many.

        Answers to calls in progress are not cached when they arrive (they may
        predate what caused the eviction).
        """
        self._forgets += 1
        return self._answers.drop(lambda value: not keep(value))

    def clear(self) -> None:
        """Forget every cached answer (and leave uncached the answers in progress)."""
        self._forgets += 1
        self._answers.clear()
        self._refusals.clear()

    async def _resolve(self, token: str, key: bytes) -> T:
        forgets = self._forgets
        answer = await self._call(token)
        if answer.get("active") is not True:
            error = InvalidToken("the token is not active")
            self._refuse(key, error)
            raise error
        now = self._clock.time()
        try:
            value, expires_at = self._build(answer, now)
        except InvalidToken as exc:
            self._refuse(key, exc)
            raise
        ttl = min(self._config.cache_ttl, expires_at - now)
        if ttl > 0 and forgets == self._forgets:
            self._answers.put(key, value, self._clock.monotonic() + ttl)
        return value

    def _refuse(self, key: bytes, error: InvalidToken) -> None:
        if self._config.inactive_ttl > 0:
            until = self._clock.monotonic() + self._config.inactive_ttl
            self._refusals.put(key, _Refusal(error), until)

    async def _call(self, token: str) -> dict[str, Any]:
        config = self._config
        form = {"token": token}
        if config.token_type_hint is not None:
            form["token_type_hint"] = config.token_type_hint
        try:
            async with asyncio.timeout(config.timeout):
                url, accepted = await self._endpoint()
                body = await self._post(url, form, accepted)
        except AuthError:
            raise
        except TimeoutError:
            raise self._unavailable("the introspection endpoint timed out") from None
        except Exception:
            # Never the exception text: it may quote the request (and so the token).
            raise self._unavailable("the introspection endpoint could not be reached") from None
        return self._parse(body)

    async def _post(self, url: str, form: dict[str, str], accepted: tuple[str, ...]) -> bytes:
        limit = self._config.max_response_bytes
        auth = self._auth.accepting(accepted)
        if auth is None:  # every assertion would be refused: say why instead
            assert self._auth.key is not None  # only a key can sign nothing acceptable
            algs = " or ".join(self._auth.key.algs)
            raise self._unavailable(
                "the introspection endpoint takes no client assertion the client_key "
                f"signs ({algs})"
            )
        # HTTP Basic (RFC 6749 §2.3.1), or a fresh assertion for this endpoint (RFC 7523).
        headers = {"Accept": "application/json", **auth.apply(form, endpoint=url)}
        request = self._client.build_request(
            "POST", url, data=form, headers=headers, timeout=self._config.timeout
        )
        response = await self._client.send(request, stream=True, follow_redirects=False)
        try:
            if response.status_code != 200:
                raise self._unavailable(
                    f"the introspection endpoint answered HTTP {response.status_code}"
                )
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise self._unavailable("the introspection answer is too large")
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            await response.aclose()

    def _parse(self, body: bytes) -> dict[str, Any]:
        try:
            answer = msgspec.json.decode(body)
        except Exception:  # DecodeError, RecursionError
            raise self._unavailable("the introspection answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("active"), bool):
            raise self._unavailable("the introspection answer has no boolean 'active'")
        if _depth(answer) > _MAX_JSON_DEPTH:
            raise self._unavailable("the introspection answer is nested too deeply")
        return answer

    def _unavailable(self, reason: str) -> IntrospectionUnavailable:
        return IntrospectionUnavailable(reason, retry_after=self._config.retry_after)


def _client_auth(config: Introspection, clock: Clock) -> ClientAuth:
    if config.client_key is None:
        secret = config.client_secret.reveal() if config.client_secret is not None else None
        return ClientAuth(
            client_id=config.client_id, method="client_secret_basic", secret=secret, clock=clock
        )
    try:
        text = config.client_key.reveal_str()
    except UnicodeDecodeError as exc:
        raise ConfigurationError("Introspection.client_key must be text (PEM or JWK)") from exc
    return ClientAuth(
        client_id=config.client_id,
        method="private_key_jwt",
        key=load_client_key(text),
        clock=clock,
    )


def _depth(value: object, level: int = 0) -> int:
    # Iteration depth is bounded by the caller's limit: deeper values stop the walk.
    if level > _MAX_JSON_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
