"""Session cookies of browser sign-in: issue, read, slide, clear and revoke them.

Cookie-only mode seals the whole :class:`~asgi_sso.sessions.SessionRecord` into
the (chunked) cookie; with a server-side store the cookie only names the record.

Cookie keys are bound to the app (:func:`app_binding`): the default provider's
``(issuer, client_id)`` when there is one, else a fixed binding for sign-in only
through connections. Either way every request also checks that the session's
provider is still in force (:meth:`~asgi_sso.login.providers.Providers.for_record`):
the default provider, or an enabled connection of this app's snapshot with the
record's id, issuer and client id, opened at or after its ``not_before``. That
check is what keeps out a session sealed by another app sharing the cookie
secret, exactly as the binding does for the default provider: its record names
another OAuth client (or a connection this app does not have).

An app at the host's root uses ``__Host-<name>`` with ``Path=/``. An app mounted
under an ASGI ``root_path`` (``/app``) scopes its cookie to that path, which
``__Host-`` forbids, so it uses ``__Secure-<name>``: two apps on one host never
overwrite each other's sessions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import msgspec

from asgi_sso.config import Clock
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.login import http as web
from asgi_sso.login.config import LoginConfig
from asgi_sso.login.providers import Providers
from asgi_sso.principal import Principal
from asgi_sso.sessions.base import SessionInvalid, SessionRecord, SessionStore
from asgi_sso.sessions.codec import CookieCodec, join_chunks, split_chunks
from asgi_sso.sessions.cookie import CHUNK_SIZE, MAX_CHUNKS, CookieSessionStore

if TYPE_CHECKING:
    from asgi_sso.login.refresh import SessionRefresher

__all__ = ["CONNECTIONS_BINDING", "SessionCookies", "app_binding", "principal_from"]

CONNECTIONS_BINDING: Final = ("asgi_sso connections",)
"""The cookie binding of an app whose users sign in only through connections."""


def app_binding(config: LoginConfig) -> tuple[str, ...]:
    """The app part of the cookie keys (HKDF ``info``): sessions and sign-in state.

    The default provider's ``(issuer, client_id)`` when set, as before connections
    (its sessions survive turning connections on); else :data:`CONNECTIONS_BINDING`.
    """
    if config.issuer is not None and config.client_id is not None:
        return (config.issuer, config.client_id)
    return CONNECTIONS_BINDING


class _SessionRef(msgspec.Struct, frozen=True):
    """What the cookie holds when a server-side store keeps the record."""

    id: str


_ref_decoder = msgspec.json.Decoder(_SessionRef)
_encoder = msgspec.json.Encoder()


def principal_from(record: SessionRecord) -> Principal:
    """The principal a session stands for.

    The claims travel as JSON and are decoded on first read: each request gets its
    own mapping, so an app editing ``request.user.claims`` (even nested values)
    never changes a record a store keeps in memory.
    """
    return Principal(
        identity=record.subject,
        payload=_encoder.encode(record.claims),
        issuer=record.issuer,
        connection=record.connection,
        source="session",
        session_id=record.id,
    )


class SessionCookies:
    """The session cookie(s) of one :class:`~asgi_sso.login.app.BrowserLogin`."""

    def __init__(
        self,
        config: LoginConfig,
        *,
        store: SessionStore | None,
        clock: Clock,
        revocations: RevocationBus,
        refresher: SessionRefresher | None = None,
        providers: Providers | None = None,
    ) -> None:
        self.config = config
        self.providers = providers or Providers(config, connections=None, clock=clock)
        self._store = store
        self._clock = clock
        self._revocations = revocations
        self._refresher = refresher
        self._secure = config.secure_cookies
        self._root_name = ("__Host-" if self._secure else "") + config.session_cookie
        self._mounted_name = ("__Secure-" if self._secure else "") + config.session_cookie
        self.state_prefix = ("__Secure-" if self._secure else "") + config.state_cookie + "."
        # Sessions belong to one app: apps sharing a cookie secret (and a store) derive
        # different keys, and a record opens only while its provider is in force here.
        self._app = app_binding(config)
        self._cookies = CookieSessionStore(
            CookieCodec(config.cookie_secrets, purpose="asgi_sso session", binding=self._app),
            clock=clock,
            lifetime=config.session_lifetime,
        )
        self._ref_codec = CookieCodec(
            config.cookie_secrets, purpose="asgi_sso session ref", binding=self._app
        )

    def _jar(self, root: str) -> tuple[str, str]:
        """The session cookie's name and ``Path`` for an app mounted at ``root``."""
        return (self._mounted_name, root) if root else (self._root_name, "/")

    def value(self, cookies: dict[str, str], root: str) -> str | None:
        """The (joined) session cookie value, or ``None`` when absent."""
        return join_chunks(cookies, self._jar(root)[0], max_chunks=MAX_CHUNKS)

    def first_use(self, key: str, ttl: float) -> bool:
        """One-time use of a sign-in state in cookie-only mode (this process)."""
        return self._cookies.first_use(key, ttl)

    async def live(
        self, value: str, cookies: dict[str, str], root: str, *, read_only: bool = False
    ) -> tuple[SessionRecord, list[tuple[bytes, bytes]]]:
        """The session named by ``value`` if it is still live, and the cookies to set.

        With ``read_only`` the session is neither refreshed nor slid: nothing is
        written and no cookie is set (a public page a shared cache may keep).

        Raises:
            SessionInvalid: expired, idle, revoked, or ended by the provider on refresh.
        """
        record = await self.open(value)
        now = self._clock.time()
        if record.expires_at <= now:
            raise SessionInvalid("the session has expired")
        if now - record.last_seen > self.config.idle_timeout:
            raise SessionInvalid("the session has been idle too long")
        if self._store is None and self._cookies.is_revoked(record):
            raise SessionInvalid("the session was revoked")
        if read_only:
            return record, []
        if self._refresher is not None and self._refresher.due(record, now):
            return await self._refresher.refresh(record), []
        if now - record.last_seen < self.config.touch_interval:
            return record, []
        record = msgspec.structs.replace(record, last_seen=now)
        if self._store is not None:
            await self._store.update(record)
            return record, []
        return record, self.issue(record, cookies, root)

    async def open(self, value: str) -> SessionRecord:
        """The record ``value`` names, if this app sealed it and its provider is in force.

        Raises:
            SessionInvalid: undecryptable, ended, a session of another app, or of a
                connection disabled or changed since (a server-side record is deleted).
        """
        if self._store is None:
            record = self._cookies.open(value)
        else:
            try:
                ref = _ref_decoder.decode(self._ref_codec.decode(value))
            except msgspec.DecodeError as exc:
                raise SessionInvalid("the session cookie is malformed") from exc
            found = await self._store.get(ref.id)
            if found is None:
                raise SessionInvalid("the session has ended")
            record = found
        if self.providers.for_record(record) is None:
            if self._store is not None:
                await self._store.delete(record.id)
            if record.connection in self.providers.directory:
                raise SessionInvalid("the session's connection was disabled or changed")
            raise SessionInvalid("the session belongs to another app")
        return record

    async def end(self, cookies: dict[str, str], root: str) -> SessionRecord | None:
        """End the session named by ``cookies`` (logout, or a new sign-in on top of one)."""
        try:
            value = self.value(cookies, root)
            record = await self.open(value) if value is not None else None
        except SessionInvalid:
            return None
        if record is not None:
            await self._revocations.publish(
                Revocation(
                    kind="session",
                    connection=record.connection,
                    subject=record.subject,
                    issuer=record.issuer,
                    session_id=record.id,
                    time=self._clock.time(),
                )
            )
        return record

    def issue(
        self, record: SessionRecord, cookies: dict[str, str], root: str
    ) -> list[tuple[bytes, bytes]]:
        """``Set-Cookie`` headers carrying ``record`` (or its reference); stale chunks cleared."""
        name, path = self._jar(root)
        if self._store is None:
            value = self._cookies.seal(record)
        else:
            value = self._ref_codec.encode(_encoder.encode(_SessionRef(record.id)))
        max_age = int(record.expires_at - self._clock.time())
        parts = split_chunks(name, value, chunk_size=CHUNK_SIZE)
        written = {part_name for part_name, _ in parts}
        headers = [
            web.set_cookie(part_name, part, path=path, max_age=max_age, secure=self._secure)
            for part_name, part in parts
        ]
        for stale in sorted(self._session_names(cookies, name) - written):
            headers.append(web.clear_cookie(stale, path=path, secure=self._secure))
        return headers

    def clear(self, cookies: dict[str, str], root: str) -> list[tuple[bytes, bytes]]:
        """``Set-Cookie`` headers deleting every session cookie (all chunks)."""
        name, path = self._jar(root)
        names = self._session_names(cookies, name) | {name}
        return [web.clear_cookie(n, path=path, secure=self._secure) for n in sorted(names)]

    @staticmethod
    def _session_names(cookies: dict[str, str], base: str) -> set[str]:
        return {
            n
            for n in cookies
            if n == base or (n.startswith(base + ".") and n[len(base) + 1 :].isdigit())
        }

    def is_ours(self, name: str) -> bool:
        """Whether cookie ``name`` belongs to sign-in (stripped before the app sees it)."""
        return name in (self._root_name, self._mounted_name) or name.startswith(
            (self._root_name + ".", self._mounted_name + ".", self.state_prefix)
        )

    async def on_revocation(self, revocation: Revocation) -> None:
        """End what ``revocation`` covers: server-side records, or cookie-only marks."""
        if revocation.kind == "user" and revocation.connection and revocation.subject:
            at = revocation.time or self._clock.time()
            self._cookies.revoke_user(revocation.connection, revocation.subject, at)
            if self._store is not None:
                await self._store.delete_user(revocation.connection, revocation.subject)
        elif revocation.kind == "session" and revocation.session_id:
            self._cookies.revoke_session(revocation.session_id)
            if self._store is not None:
                await self._store.delete(revocation.session_id)
        elif revocation.kind == "logout" and revocation.issuer:
            sub, sid = revocation.subject, revocation.session_id
            at = revocation.time or self._clock.time()
            self._cookies.revoke_logout(revocation.issuer, sub, sid, at)
            if self._store is not None:
                await self._store.delete_by_provider(revocation.issuer, sub=sub, sid=sid)
