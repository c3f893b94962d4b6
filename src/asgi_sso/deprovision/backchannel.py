"""OIDC Back-Channel Logout 1.0: the endpoint an IdP posts ``logout_token`` to.

The token must come from a sign-in provider, like an ID token (§2.6 step 3, OIDC
Core §3.1.3.7): the default one (``BackchannelConfig.issuer``) or an enabled
sign-in connection. Its (not yet trusted) ``iss`` picks the provider, whose
client id is the audience the core verifier then requires (with the signature
and ``exp``); the verified ``iss`` must be that same provider's. A logout token of
any other trusted issuer is refused.
It is then checked against §2.6: the back-channel logout event, ``sub`` and/or
``sid``, no ``nonce``, ``iat`` and ``jti`` present, a short life, and a ``jti``
not seen before (remembered in process until the token expires).

It ends the sessions the token names (§2.7), as ``Revocation(kind="logout")``:
those signed in at that issuer with that ``sid``, with that ID-token ``sub``, or
with both. The issuer alone scopes the match: a logout from one connection never
ends a session of another, as each connection has its own issuer, and a logout
token carries no broker connection claim. Answers 200 once those sessions are gone, 400 with a
JSON ``invalid_request`` body (§2.8), or 503 when the session store cannot be
reached (the token may be sent again); always with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeGuard
from urllib.parse import parse_qsl

import msgspec

from asgi_sso.config import Clock, SystemClock
from asgi_sso.deprovision.scim_input import ScimError, read_body
from asgi_sso.errors import AuthError, ConfigurationError, ServiceUnavailable
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event
from asgi_sso.responses import error_document
from asgi_sso.verify.claims import normalize_type

__all__ = ["BACKCHANNEL_LOGOUT_EVENT", "BackchannelConfig", "BackchannelLogoutApp"]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_REQUIRED = ("iss", "aud", "iat", "exp", "jti", "events")
_MAX_PAYLOAD = 16 * 1024


class _Issuer(Protocol):
    iss: str


class _Verified(Protocol):
    claims: Mapping[str, Any]
    header: Mapping[str, Any]

    @property
    def issuer(self) -> _Issuer: ...


class LogoutTokenVerifier(Protocol):
    """What the endpoint needs of :class:`asgi_sso.verify.verifier.TokenVerifier`."""

    async def verify(
        self,
        token: str,
        *,
        audience: str | None = ...,
        token_types: tuple[str, ...] | None = ...,
        required_claims: tuple[str, ...] | None = ...,
        use_cache: bool = ...,
    ) -> Any:
        """Verify ``token`` or raise an ``AuthError``."""
        ...


class BackchannelConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The back-channel logout endpoint's settings.

    Attributes:
        client_id: this relying party's client id at the default provider: the
            required ``aud`` of its logout tokens.
        issuer: the default sign-in provider (``LoginConfig.issuer``), whose logout
            tokens are honoured; ``None`` (with ``client_id``) when users sign in only
            through connections (see ``BackchannelLogoutApp(audiences=...)``).
        token_types: accepted ``typ`` headers (§2.4 recommends ``logout+jwt``); a
            token with another ``typ`` is refused.
        require_typ: refuse a token without ``typ``. Off by default: explicit typing
            is only recommended and several providers omit it; the ``events`` claim
            and the absence of ``nonce`` still tell a logout token from other JWTs.
        max_lifetime: longest accepted ``exp - iat`` in seconds ("short exp").
        max_body_bytes: larger POST bodies are refused while being read.
        replay_cache_size: ``jti`` values remembered at most.
    """

    client_id: str | None = None
    issuer: str | None = None
    token_types: tuple[str, ...] = ("logout+jwt",)
    require_typ: bool = False
    max_lifetime: float = 600.0
    max_body_bytes: int = 16 * 1024
    replay_cache_size: int = 10_000

    def __post_init__(self) -> None:
        if (self.client_id is None) != (self.issuer is None):
            raise ConfigurationError("BackchannelConfig.client_id and issuer go together")
        if self.client_id is not None and not self.client_id:
            raise ConfigurationError("BackchannelConfig.client_id must not be empty")
        if self.issuer is not None and not self.issuer:
            raise ConfigurationError("BackchannelConfig.issuer must not be empty")
        if self.max_lifetime <= 0 or self.max_body_bytes < 1 or self.replay_cache_size < 1:
            raise ConfigurationError("BackchannelConfig limits must be positive")


class _Refused(Exception):
    pass


class BackchannelLogoutApp:
    """The back-channel logout endpoint as an ASGI app (POST only).

    Args:
        config: the default provider's client id and issuer, and limits.
        verifier: the core token verifier.
        revocations: receives the ``logout`` revocations.
        emitter: receives ``backchannel_logout`` events.
        clock: wall time for expiry and the replay cache.
        audiences: the other sign-in providers: maps an ``iss`` to the client id
            whose logout tokens from it are honoured, or ``None`` (asked on every
            request, so a disabled connection's tokens are refused at once).
    """

    def __init__(
        self,
        config: BackchannelConfig,
        verifier: LogoutTokenVerifier,
        *,
        revocations: RevocationBus,
        emitter: Emitter = NULL_EMITTER,
        clock: Clock | None = None,
        audiences: Callable[[str], str | None] | None = None,
    ) -> None:
        self.config = config
        self._audiences = audiences
        self._types = frozenset(normalize_type(t) for t in config.token_types)
        self._verifier = verifier
        self._bus = revocations
        self._emitter = emitter
        self._clock = clock or SystemClock()
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Serve one logout request (other scope types are ignored)."""
        if scope["type"] != "http":
            return
        headers = [(b"cache-control", b"no-store")]
        if scope.get("method") != "POST":
            await _respond(send, 405, [*headers, (b"allow", b"POST")], b"")
            return
        json_type = (b"content-type", b"application/json")
        try:
            revocation, replay_key = await self._logout(scope, receive)
        except _Refused as exc:
            self._emit("refused", str(exc), None)
            body = error_document("invalid_request", str(exc), 400)
            await _respond(send, 400, [*headers, json_type], body)
            return
        try:
            await self._bus.publish(revocation)
        except Exception as exc:  # a listener (the session store) failed: nothing is promised
            self._seen.pop(replay_key, None)  # so the provider may send the token again
            reason = exc.reason if isinstance(exc, AuthError) else "listener_failed"
            self._emit("error", reason, revocation)
            body = error_document(
                "temporarily_unavailable", "the sessions could not be ended; try again later", 503
            )
            retry = str(exc.retry_after if isinstance(exc, ServiceUnavailable) else 5).encode()
            await _respond(send, 503, [*headers, json_type, (b"retry-after", retry)], body)
            return
        self._emit("ok", revocation.kind, revocation)
        await _respond(send, 200, headers, b"")

    async def _logout(self, scope: Any, receive: Any) -> tuple[Revocation, bytes]:
        try:
            raw = await read_body(receive, scope, self.config.max_body_bytes)
            form = parse_qsl(raw.decode("ascii"), strict_parsing=True, errors="strict")
        except ScimError as exc:
            raise _Refused(exc.detail) from exc
        except ValueError as exc:
            raise _Refused("the body must be application/x-www-form-urlencoded") from exc
        tokens = [v for k, v in form if k == "logout_token"]
        if len(tokens) != 1:
            raise _Refused("exactly one logout_token is required")
        claimed = _claimed_issuer(tokens[0])
        if claimed is None and self.config.issuer is not None:
            claimed = self.config.issuer  # unreadable: the verifier says why
        audience = self._audience(claimed) if claimed is not None else None
        if audience is None:
            raise _Refused("the logout token was not issued by a sign-in provider")
        try:
            verified = await self._verifier.verify(
                tokens[0],
                audience=audience,
                token_types=(),  # checked below: typ is optional (§2.4)
                required_claims=_REQUIRED,  # sub and/or sid: checked below (§2.4)
                use_cache=False,
            )
        except AuthError as exc:
            raise _Refused(exc.description) from exc
        # The provider is asked again: its connection may have changed during the await.
        if verified.issuer.iss != claimed or self._audience(verified.issuer.iss) != audience:
            raise _Refused("the logout token was not issued by the sign-in provider")
        return self._check(verified)

    def _audience(self, iss: str) -> str | None:
        """The client id whose logout tokens from ``iss`` are honoured, if any."""
        if self.config.issuer is not None and iss == self.config.issuer:
            return self.config.client_id
        return self._audiences(iss) if self._audiences is not None else None

    def _check(self, verified: _Verified) -> tuple[Revocation, bytes]:
        typ = verified.header.get("typ")
        if typ is None:
            if self.config.require_typ:
                raise _Refused("the logout token has no typ header")
        elif not isinstance(typ, str) or normalize_type(typ) not in self._types:
            raise _Refused("the logout token's typ header is not logout+jwt")
        claims = verified.claims
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(
            events.get(BACKCHANNEL_LOGOUT_EVENT), dict
        ):
            raise _Refused("the events claim lacks the back-channel logout event")
        sub, sid = claims.get("sub"), claims.get("sid")
        if not isinstance(sub, str | None) or not isinstance(sid, str | None) or not (sub or sid):
            raise _Refused("a logout token needs sub, sid or both")
        if "nonce" in claims:
            raise _Refused("a logout token must not carry a nonce")
        iat, exp, jti = claims.get("iat"), claims.get("exp"), claims.get("jti")
        if not _number(iat) or not _number(exp):
            raise _Refused("a logout token needs iat and exp")
        if exp - iat > self.config.max_lifetime:
            raise _Refused("the logout token lives too long")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise _Refused("a logout token needs a jti")
        iss = verified.issuer.iss
        replay_key = hashlib.sha256(f"{iss}\x00{jti}".encode()).digest()
        self._remember(replay_key, float(exp))
        revocation = Revocation(
            kind="logout", issuer=iss, subject=sub or None, session_id=sid or None,
            time=self._clock.time(),
        )  # fmt: skip
        return revocation, replay_key

    def _remember(self, key: bytes, expires: float) -> None:
        now = self._clock.time()
        while self._seen:
            oldest_key, oldest_exp = next(iter(self._seen.items()))
            if oldest_exp > now and len(self._seen) < self.config.replay_cache_size:
                break
            del self._seen[oldest_key]
        if key in self._seen:
            raise _Refused("this logout token was already used")
        # Entries are evicted in insertion order; expiries are roughly monotonic.
        self._seen[key] = max(expires, now) + 300.0

    def _emit(self, outcome: str, reason: str, revocation: Revocation | None) -> None:
        if not self._emitter.enabled:
            return
        self._emitter.emit(
            Event(
                name="backchannel_logout",
                outcome=outcome,
                reason=reason if revocation is not None else "invalid_request",
                time=self._clock.time(),
                issuer=None if revocation is None else revocation.issuer,
                connection=None if revocation is None else revocation.connection,
                subject=None if revocation is None else revocation.subject,
            )
        )


def _claimed_issuer(token: str) -> str | None:
    """The ``iss`` a compact JWS claims, read without trusting it (only to pick the audience)."""
    parts = token.split(".")
    if len(parts) != 3 or len(parts[1]) > _MAX_PAYLOAD:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = msgspec.json.decode(payload)
    except Exception:  # hostile input: unreadable means unknown
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) and iss else None


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


async def _respond(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
