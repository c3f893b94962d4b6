"""Refresh a server-side browser session with the provider's refresh token (RFC 6749 §6).

A session whose record holds a refresh token is refreshed on the first request
after its ``refresh_at``, at the provider it was opened with (the default one or
its connection's, with that client's credentials): the tokens are renewed, a
returned ID token is verified (same ``iss`` and ``sub``, OIDC Core §12.2), the
claims are renewed, the rotated refresh token is stored, and the session's end
moves to ``session_lifetime`` from now, never past ``created_at +
max_session_lifetime``.

What the provider says decides the outcome:

* ``invalid_grant`` (revoked, expired, user disabled): the session ends now.
* another refusal (a client not allowed to refresh): refreshing stops; the session
  lives until its normal end.
* no answer, a 5xx or garbage: the session lives until its normal end and the
  refresh is retried after ``refresh_retry``.

One request refreshes a session at a time, across workers too: the store lease
(:meth:`~asgi_sso.sessions.SessionStore.claim`) is taken first, and requests that
do not get it go on with the current record without writing it, so a rotated
refresh token is never sent twice nor overwritten by an older copy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from asgi_sso.config import Clock
from asgi_sso.errors import AuthError, ServiceUnavailable
from asgi_sso.login.config import LoginConfig
from asgi_sso.login.dpop import DPoPKey
from asgi_sso.login.oidc import (
    ProviderError,
    TokenRefused,
    TokenSet,
    check_id_token,
    client_auth_for,
    fetch_userinfo,
    merge_claims,
    token_lifetime,
    token_request,
)
from asgi_sso.sessions.base import SessionInvalid, SessionRecord, SessionStore
from asgi_sso.verify.claims import ID_TOKEN_CLAIMS

if TYPE_CHECKING:
    import httpx

    from asgi_sso.login.providers import Provider, Providers
    from asgi_sso.verify.verifier import TokenVerifier, VerifiedToken

__all__ = [
    "DROPPED_CLAIMS",
    "MAX_RESPONSE",
    "Emit",
    "SessionRefresher",
    "fetch_claims",
    "refresh_due_at",
    "verify_id_token",
]

DROPPED_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "_claim_names", "_claim_sources"})
"""Protocol claims a session does not keep."""
MAX_RESPONSE = 256 * 1024
"""Largest token or userinfo response read, bytes."""
_LEASE_MARGIN = 5.0

Emit = Callable[..., None]
"""``emit(name, *, outcome=..., reason=..., connection=..., subject=...)``."""


def refresh_due_at(config: LoginConfig, now: float, tokens: TokenSet, id_exp: Any) -> float:
    """When tokens obtained at ``now`` should be refreshed.

    The access token's ``expires_in`` decides, else the ID token's ``exp``, else the
    session lifetime; the refresh comes ``refresh_leeway`` early but never sooner
    than ``refresh_leeway`` from now.
    """
    lifetime = token_lifetime(tokens)
    if lifetime is None and isinstance(id_exp, int | float) and not isinstance(id_exp, bool):
        lifetime = float(id_exp) - now
    if lifetime is None:
        lifetime = config.session_lifetime
    leeway = config.refresh_leeway
    return now + max(lifetime - leeway, leeway)


async def verify_id_token(
    verifier: TokenVerifier, provider: Provider, tokens: TokenSet, *, nonce: str | None
) -> VerifiedToken:
    """Verify the ID token of ``provider``'s token response (``nonce`` ``None`` after a refresh).

    The audience is the provider's client id and the issuer must be the provider's.
    """
    # The ID-token rules, not the issuer's bearer ones (its token_types may demand
    # at+jwt), and never the verified-token cache, which serves bearer tokens.
    verified = await verifier.verify(
        tokens.id_token or "",
        audience=provider.client_id,
        required_claims=ID_TOKEN_CLAIMS,
        use_cache=False,
        id_token=True,
    )
    check_id_token(
        verified.claims,
        issuer=provider.iss,
        client_id=provider.client_id,
        nonce=nonce,
        alg=verified.header.get("alg"),
        access_token=tokens.access_token,
    )
    return verified


async def fetch_claims(
    client: httpx.AsyncClient,
    config: LoginConfig,
    endpoint: str,
    access_token: str,
    *,
    dpop: DPoPKey | None = None,
) -> dict[str, Any]:
    """The UserInfo claims under the configured deadline and size cap.

    ``dpop`` is the key ``access_token`` is bound to, if it is DPoP-bound.
    """
    return await fetch_userinfo(
        client,
        endpoint,
        access_token,
        deadline=config.http_timeout,
        max_bytes=MAX_RESPONSE,
        dpop=dpop,
    )


class SessionRefresher:
    """Refreshes the sessions of one :class:`~asgi_sso.login.BrowserLogin` (server-side only)."""

    def __init__(
        self,
        config: LoginConfig,
        *,
        store: SessionStore,
        verifier: TokenVerifier,
        client: httpx.AsyncClient,
        providers: Providers,
        clock: Clock,
        emit: Emit,
    ) -> None:
        self.config = config
        self._store = store
        self._verifier = verifier
        self._client = client
        self._providers = providers
        self._clock = clock
        self._emit = emit

    @staticmethod
    def due(record: SessionRecord, now: float) -> bool:
        """Whether ``record`` should be refreshed now."""
        at = record.refresh_at
        return record.refresh_token is not None and 0 < at <= now and at < record.expires_at

    async def refresh(self, record: SessionRecord) -> SessionRecord:
        """Refresh ``record`` unless another request is doing it; return the record to use.

        Raises:
            SessionInvalid: the provider refused the refresh token (``invalid_grant``)
                or returned an ID token for another user; the record is deleted.
            StoreUnavailable: the store cannot be reached.
        """
        provider = self._providers.for_record(record)
        if provider is None:  # its connection was disabled or changed a moment ago
            await self._end(record, "refresh_connection")
            raise SessionInvalid("the session's connection was disabled or changed")
        key = await self._key(record)
        ttl = self.config.http_timeout + _LEASE_MARGIN
        if not await self._store.claim(f"refresh:{record.id}", ttl):
            return record
        now = self._clock.time()
        try:
            tokens = await self._grant(record, provider, key)
        except TokenRefused as exc:
            if exc.code == "invalid_grant":
                await self._end(record, "refresh_refused")
                raise SessionInvalid("the identity provider ended the session") from exc
            self._report(record, "error", f"refresh_{exc.code}")
            return await self._save(record, refresh_token=None, refresh_at=0.0, last_seen=now)
        except AuthError as exc:
            return await self._postpone(record, now, exc.reason)
        rotated = tokens.refresh_token or record.refresh_token
        try:
            claims, id_token, id_exp = await self._renewed_claims(record, tokens, provider, key)
        except ServiceUnavailable as exc:  # keys or userinfo unreachable: keep the old claims
            return await self._postpone(record, now, exc.reason, refresh_token=rotated)
        except AuthError as exc:
            await self._end(record, "refresh_id_token")
            raise SessionInvalid("the refreshed identity does not match the session") from exc
        cap = record.created_at + self.config.session_cap
        expires_at = max(record.expires_at, min(now + self.config.session_lifetime, cap))
        self._report(record, "ok", None)
        return await self._save(
            record,
            claims=claims,
            id_token=id_token,
            refresh_token=rotated,
            refresh_at=refresh_due_at(self.config, now, tokens, id_exp),
            expires_at=expires_at,
            last_seen=now,
        )

    async def _key(self, record: SessionRecord) -> DPoPKey | None:
        """The session's DPoP key: its refresh proves the key the sign-in proved."""
        if record.dpop_key is None:
            return None
        try:
            return DPoPKey.from_jwk(record.dpop_key, self._clock)
        except ValueError as exc:  # not a record this code wrote: it cannot refresh
            await self._end(record, "refresh_dpop_key")
            raise SessionInvalid("the session's DPoP key is unreadable") from exc

    async def _grant(
        self, record: SessionRecord, provider: Provider, key: DPoPKey | None
    ) -> TokenSet:
        metadata = await self._verifier.metadata(provider.iss)
        if not metadata.token_endpoint:
            raise ProviderError("the provider metadata lacks a token endpoint")
        form = {"grant_type": "refresh_token", "refresh_token": record.refresh_token or ""}
        if self.config.resource is not None:
            form["resource"] = self.config.resource  # RFC 8707 §2.2
        return await token_request(
            self._client,
            metadata.token_endpoint,
            form,
            client_auth_for(provider.auth, metadata),
            deadline=self.config.http_timeout,
            max_bytes=MAX_RESPONSE,
            dpop=key,
        )

    async def _renewed_claims(
        self, record: SessionRecord, tokens: TokenSet, provider: Provider, key: DPoPKey | None
    ) -> tuple[dict[str, Any], str | None, Any]:
        """The session's new claims, ID token and ``exp`` (the old ones when none came)."""
        claims = dict(record.claims)
        id_token = record.id_token
        id_exp: Any = None
        if tokens.id_token:  # optional in a refresh response (OIDC Core §12.2)
            verified = await verify_id_token(self._verifier, provider, tokens, nonce=None)
            if (
                verified.claims.get("sub") != record.id_sub
                or verified.subject != record.subject
                or verified.connection != record.connection
            ):
                raise SessionInvalid("the refreshed ID token names another user")
            claims = {k: v for k, v in verified.claims.items() if k not in DROPPED_CLAIMS}
            id_token, id_exp = tokens.id_token, verified.claims.get("exp")
        metadata = await self._verifier.metadata(provider.iss)
        if self.config.use_userinfo and metadata.userinfo_endpoint and tokens.access_token:
            try:
                userinfo = await fetch_claims(
                    self._client,
                    self.config,
                    metadata.userinfo_endpoint,
                    tokens.access_token,
                    dpop=key if tokens.dpop_bound else None,
                )
            except ProviderError as exc:
                raise ServiceUnavailable("the userinfo endpoint answered garbage") from exc
            found = self._verifier.registry.find(provider.iss)
            user_claim = "sub" if found is None else found.user_claim
            claims = merge_claims(claims, userinfo, user_claim=user_claim)
        return claims, id_token, id_exp

    async def _postpone(
        self, record: SessionRecord, now: float, reason: str, **changes: Any
    ) -> SessionRecord:
        self._report(record, "error", reason)
        retry_at = now + self.config.refresh_retry
        return await self._save(record, refresh_at=retry_at, last_seen=now, **changes)

    async def _save(self, record: SessionRecord, **changes: Any) -> SessionRecord:
        updated = msgspec.structs.replace(record, **changes)
        await self._store.update(updated)
        return updated

    async def _end(self, record: SessionRecord, reason: str) -> None:
        await self._store.delete(record.id)
        self._report(record, "refused", reason)
        self._emit(
            "session.ended",
            outcome="refused",
            reason=reason,
            connection=record.connection,
            subject=record.subject,
        )

    def _report(self, record: SessionRecord, outcome: str, reason: str | None) -> None:
        self._emit(
            "session.refreshed",
            outcome=outcome,
            reason=reason,
            connection=record.connection,
            subject=record.subject,
        )
