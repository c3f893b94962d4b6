"""Managing connections: the operations the ``asgi-sso connections`` command and admin API share.

:class:`ConnectionAdmin` lists, shows, adds, changes, disables, enables, deletes
and tests connections in a :class:`~asgi_sso.connections.store.ConnectionStore`.
Every write is checked against the whole directory first (an id, an issuer, a
domain belong to one connection), written, then announced, so that every worker
loads the change at once instead of at its next poll.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import httpx
import msgspec

from asgi_sso.config import Clock, Limits
from asgi_sso.connections.directory import ConnectionDirectory
from asgi_sso.connections.live import admission
from asgi_sso.connections.model import (
    CONNECTION_ID,
    Connection,
    connection_from_data,
    normalize_domain,
)
from asgi_sso.connections.probe import PROBE_DEADLINE, ProbeReport, probe_connection
from asgi_sso.connections.store import ConnectionStore
from asgi_sso.errors import (
    ConfigurationError,
    ConnectionChangeError,
    ConnectionConflict,
    UnknownConnection,
)
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event

__all__ = [
    "SECRET_FIELDS",
    "Announce",
    "ConnectionAdmin",
    "announce_on",
    "connection_from_input",
    "merge_patch",
]

Announce = Callable[[str], Awaitable[None]]
"""Tells every worker that the connection with this id changed."""

SECRET_FIELDS: Final = ("client_secret", "client_key", "scim_secret")
"""Fields that are written, never read back (``Connection.public()`` shows ``has_<field>``)."""

_MAX_PATCH_DEPTH: Final = 8


def connection_from_input(data: Mapping[str, Any]) -> Connection:
    """A :class:`Connection` from operator input (JSON, CLI flags), domains normalised.

    ``Example.COM`` is taken as ``example.com``; secrets are plain strings.

    Raises:
        ConnectionChangeError: a field is unknown, mistyped or invalid (status 422).
    """
    values = dict(data)
    domains = values.get("domains")
    if isinstance(domains, list | tuple):
        values["domains"] = [_normal_domain(d) for d in domains]
    try:
        return connection_from_data(values)
    except ConfigurationError as exc:
        raise ConnectionChangeError(str(exc)) from exc


def _normal_domain(value: Any) -> Any:
    normal = normalize_domain(value) if isinstance(value, str) else None
    return value if normal is None else normal  # an invalid one is refused by name


def merge_patch(target: Any, patch: Any, depth: int = 0) -> Any:
    """Apply a JSON merge patch (RFC 7396): objects merge, ``null`` removes, the rest replaces."""
    if not isinstance(patch, Mapping):
        return patch
    if depth > _MAX_PATCH_DEPTH:
        raise ConnectionChangeError("the change is nested too deeply")
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value, depth + 1)
    return result


def _as_data(connection: Connection) -> dict[str, Any]:
    """A connection as data for a merge patch, secrets kept as :class:`Secret`."""
    data = msgspec.structs.asdict(connection)
    data["tiers"] = msgspec.structs.asdict(connection.tiers)  # its members merge one by one
    return {name: value for name, value in data.items() if value is not None}


def announce_on(bus: RevocationBus, clock: Clock) -> Announce:
    """An :data:`Announce` publishing ``Revocation(kind="connection")`` on ``bus``.

    With a :class:`~asgi_sso.identity.redis_bus.RedisRevocationBus` every worker
    hears it and reloads its connections at once.
    """

    async def announce(connection_id: str) -> None:
        await bus.publish(
            Revocation(kind="connection", connection=connection_id, time=clock.time())
        )

    return announce


class ConnectionAdmin:
    """The operations on connections, shared by the CLI and the admin API.

    Args:
        store: where the connections are kept.
        clock: wall time for ``not_before`` and events.
        announce: awaited with the connection id after each write (see :func:`announce_on`);
            when it fails the change stands and workers see it at their next poll.
        admit: returns why a connection cannot be used (it collides with an issuer
            configured in code, names an unknown tier), or ``None``: the same check
            :class:`~asgi_sso.connections.live.LiveConnections` applies, made before a
            write so the operator hears of it.
        emitter: receives a ``connections.change`` event per write (for the audit log).
        limits: the fetch deadline and body cap of :meth:`test`.
    """

    def __init__(
        self,
        store: ConnectionStore,
        *,
        clock: Clock,
        announce: Announce | None = None,
        admit: Callable[[Connection], str | None] | None = None,
        emitter: Emitter = NULL_EMITTER,
        limits: Limits = Limits(),  # noqa: B008 - a frozen Struct is a safe default
    ) -> None:
        self.store = store
        self._clock = clock
        self._announce = announce
        self._admit = admit
        self._emitter = emitter
        self.limits = limits

    async def list(self) -> builtins.list[Connection]:
        """Every connection, by id."""
        _, items = await self.store.load()
        return sorted(items, key=lambda connection: connection.id)

    async def show(self, connection_id: str) -> Connection:
        """The connection with this id.

        Raises:
            UnknownConnection: there is none.
        """
        found = await self.store.get(connection_id) if _is_id(connection_id) else None
        if found is None:
            raise UnknownConnection(f"no connection {connection_id[:80]!r}")
        return found

    async def add(self, connection: Connection) -> Connection:
        """Add a new connection.

        Raises:
            ConnectionConflict: its id, issuer or one of its domains is taken.
            ConnectionChangeError: ``admit`` refuses it, or the store is read-only.
        """
        directory = await self._directory()
        if connection.id in directory:
            raise ConnectionConflict(f"a connection {connection.id!r} exists already")
        self._check(directory, connection)
        await self._write(self.store.add(connection))
        await self._changed("add", connection.id)
        return connection

    async def update(self, connection_id: str, changes: Mapping[str, Any]) -> Connection:
        """Change some fields of a connection; ``changes`` is a JSON merge patch (RFC 7396).

        Named fields replace the old values (a list replaces the whole list), the
        members of ``tiers`` and ``authorize_params`` merge, ``null`` resets a field to
        its default (it removes a secret). The result is validated as a whole.
        Turning ``enabled`` off also sets ``not_before`` to now, as :meth:`disable` does;
        so does a change of issuer, tenant or ``user_claim`` (existing sessions name
        users in the old namespace).

        Raises:
            UnknownConnection: there is none.
            ConnectionChangeError: the result is invalid or the id would change.
            ConnectionConflict: its issuer or a domain belongs to another connection.
        """
        if not isinstance(changes, Mapping):
            raise ConnectionChangeError("the changes must be an object")
        current = await self.show(connection_id)
        if changes.get("id", connection_id) != connection_id:
            raise ConnectionChangeError("a connection's id never changes (add a new one)")
        values = merge_patch(_as_data(current), changes)
        if current.enabled and values.get("enabled", True) is False and "not_before" not in changes:
            values["not_before"] = self._clock.time()
        changed = connection_from_input(values)
        if "not_before" not in changes and _names_users_differently(current, changed):
            # Sessions opened under the old issuer, organisation or user claim name
            # users this connection no longer has: they end.
            changed = msgspec.structs.replace(changed, not_before=self._clock.time())
        return await self._replace(changed)

    async def disable(self, connection_id: str) -> Connection:
        """Stop a connection: nobody signs in; its tokens and sessions are refused.

        Sessions opened before now stay ended when it is enabled again
        (``not_before``). Disabling a disabled connection changes nothing.

        Raises:
            UnknownConnection: there is none.
        """
        current = await self.show(connection_id)
        if not current.enabled:
            return current
        stopped = msgspec.structs.replace(current, enabled=False, not_before=self._clock.time())
        return await self._replace(stopped, "disable")

    async def enable(self, connection_id: str) -> Connection:
        """Let a disabled connection sign users in again (old sessions stay ended).

        Raises:
            UnknownConnection: there is none.
            ConnectionChangeError: ``admit`` refuses it now.
        """
        current = await self.show(connection_id)
        if current.enabled:
            return current
        return await self._replace(msgspec.structs.replace(current, enabled=True), "enable")

    async def delete(self, connection_id: str) -> None:
        """Delete a connection; its users' tokens and sessions are refused from now on.

        A row that cannot be read any more (sealed with a retired app secret) can be
        deleted too.

        Raises:
            UnknownConnection: there is none.
        """
        await self._write(self.store.delete(connection_id))
        await self._changed("delete", connection_id)

    async def test(
        self,
        target: str | Connection,
        client: httpx.AsyncClient,
        *,
        deadline: float = PROBE_DEADLINE,
    ) -> ProbeReport:
        """Check a connection (by id, or one not stored yet) against its provider.

        Raises:
            UnknownConnection: ``target`` is an id and no connection has it.
        """
        connection = target if isinstance(target, Connection) else await self.show(target)
        return await probe_connection(connection, client, limits=self.limits, deadline=deadline)

    async def _replace(self, connection: Connection, action: str = "update") -> Connection:
        directory = await self._directory()
        if connection.id not in directory:
            raise UnknownConnection(f"no connection {connection.id!r}")
        self._check(directory, connection)
        await self._write(self.store.update(connection))
        await self._changed(action, connection.id)
        return connection

    async def _directory(self) -> ConnectionDirectory:
        _, items = await self.store.load()
        try:
            return ConnectionDirectory(items)
        except ConfigurationError as exc:  # the store let a conflict through
            raise ConnectionConflict(f"the stored connections conflict: {exc}") from exc

    def _check(self, directory: ConnectionDirectory, connection: Connection) -> None:
        try:
            directory.replaced(connection)
        except ConfigurationError as exc:
            raise ConnectionConflict(str(exc)) from exc
        secret = connection.scim_secret
        if secret is not None and any(
            other.id != connection.id and other.scim_secret == secret for other in directory
        ):
            # A SCIM secret names the connection whose users it changes: one each.
            raise ConnectionConflict(
                f"connection {connection.id!r}: another connection has this SCIM secret"
            )
        reason = admission(self._admit, connection) if self._admit is not None else None
        if reason is not None:
            raise ConnectionChangeError(f"connection {connection.id!r}: {reason}")

    @staticmethod
    async def _write(write: Awaitable[None]) -> None:
        try:
            await write
        except ConnectionChangeError:
            raise
        except ConfigurationError as exc:  # a store read from a file cannot be written
            raise ConnectionChangeError(str(exc)) from exc

    async def _changed(self, action: str, connection_id: str) -> None:
        outcome = "ok"
        if self._announce is not None:
            try:
                await self._announce(connection_id)
            except Exception:
                # The change is written; workers still see it at their next poll.
                outcome = "unannounced"
        if self._emitter.enabled:
            self._emitter.emit(
                Event(
                    name="connections.change",
                    outcome=outcome,
                    reason=action,
                    connection=connection_id,
                    time=self._clock.time(),
                )
            )


def _names_users_differently(old: Connection, new: Connection) -> bool:
    """Whether ``new`` keys users differently from ``old`` (another issuer or user claim)."""
    return (old.issuer_key, old.user_claim) != (new.issuer_key, new.user_claim)


def _is_id(value: object) -> bool:
    return isinstance(value, str) and CONNECTION_ID.fullmatch(value) is not None
