"""Where connections are kept: the :class:`ConnectionStore` protocol and the static store.

A store holds the connections and a *revision* that changes with every change,
so each worker can tell cheaply whether its snapshot is current. Two backends:
:class:`StaticConnections` (a list in code, or a TOML/JSON file re-read when it
changes) and :class:`~asgi_sso.connections.sql.SQLConnections` (SQLite or
PostgreSQL, the ``sql`` extra).
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from asgi_sso.connections.directory import ConnectionDirectory
from asgi_sso.connections.model import Connection, connection_from_data
from asgi_sso.errors import ConfigurationError, ConnectionConflict, UnknownConnection

__all__ = ["ConnectionStore", "StaticConnections", "load_connections_file"]


@runtime_checkable
class ConnectionStore(Protocol):
    """Keeps the connections; every implementation passes ``tests/contract``.

    Writes are checked against every other connection: an id, a concrete issuer
    and an email domain each belong to one connection at most.
    """

    async def start(self) -> None:
        """Open connections and create or migrate the schema (idempotent)."""
        ...

    async def close(self) -> None:
        """Release what :meth:`start` opened."""
        ...

    async def revision(self) -> str:
        """A value that changes whenever any connection is added, changed or deleted."""
        ...

    async def load(self) -> tuple[str, list[Connection]]:
        """Every connection, and the revision they belong to (read together)."""
        ...

    async def get(self, connection_id: str) -> Connection | None:
        """The connection with this id, if any."""
        ...

    async def add(self, connection: Connection) -> None:
        """Add a new connection.

        Raises:
            ConnectionConflict: its id, issuer or a domain is taken.
        """
        ...

    async def update(self, connection: Connection) -> None:
        """Replace the connection with the same id.

        Raises:
            UnknownConnection: there is none.
            ConnectionConflict: its issuer or a domain belongs to another connection.
        """
        ...

    async def delete(self, connection_id: str) -> None:
        """Delete a connection.

        Raises:
            UnknownConnection: there is none.
        """
        ...


class StaticConnections:
    """Connections from code or a file, kept in this process.

    Changes through :meth:`add`, :meth:`update` and :meth:`delete` apply to this
    process only (tests, a single worker). A store read from a file is re-read when
    the file changes, and cannot be written through the store (edit the file).

    Args:
        connections: the connections.
    """

    def __init__(self, connections: Iterable[Connection] = ()) -> None:
        self._directory = ConnectionDirectory(connections)
        self._counter = 0
        self._path: Path | None = None
        self._stamp: tuple[int, int] | None = None
        self._digest = ""

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> StaticConnections:
        """A store reading ``path`` (``.toml`` or ``.json``), re-read whenever it changes.

        Raises:
            ConfigurationError: the file cannot be read or holds an invalid connection.
        """
        store = cls()
        store._path = Path(path)
        store._reload_file()
        return store

    async def start(self) -> None:
        """Nothing to open."""

    async def close(self) -> None:
        """Nothing to release."""

    async def revision(self) -> str:
        """Counts in-process changes; for a file, also its contents."""
        if self._path is not None:
            self._reload_file()
        return f"{self._counter}:{self._digest}"

    async def load(self) -> tuple[str, list[Connection]]:
        """Every connection and the current revision."""
        revision = await self.revision()
        return revision, list(self._directory)

    async def get(self, connection_id: str) -> Connection | None:
        """The connection with this id, if any."""
        return self._directory.get(connection_id)

    async def add(self, connection: Connection) -> None:
        """Add a new connection (this process only)."""
        self._writable()
        if connection.id in self._directory:
            raise ConnectionConflict(f"a connection {connection.id!r} exists already")
        self._replace(connection)

    async def update(self, connection: Connection) -> None:
        """Replace the connection with the same id (this process only)."""
        self._writable()
        if connection.id not in self._directory:
            raise UnknownConnection(f"no connection {connection.id!r}")
        self._replace(connection)

    async def delete(self, connection_id: str) -> None:
        """Delete a connection (this process only)."""
        self._writable()
        if connection_id not in self._directory:
            raise UnknownConnection(f"no connection {connection_id!r}")
        self._directory = ConnectionDirectory(c for c in self._directory if c.id != connection_id)
        self._counter += 1

    def _replace(self, connection: Connection) -> None:
        try:
            self._directory = self._directory.replaced(connection)
        except ConfigurationError as exc:
            raise ConnectionConflict(str(exc)) from exc
        self._counter += 1

    def _writable(self) -> None:
        if self._path is not None:
            raise ConfigurationError(
                f"connections read from {self._path} change when the file does; edit it"
            )

    def _reload_file(self) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            raw = self._path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read connections from {self._path}: {exc}") from exc
        digest = hashlib.sha256(raw).hexdigest()[:16]
        if digest != self._digest:
            self._directory = ConnectionDirectory(load_connections_file(self._path, raw))
            self._digest = digest
        self._stamp = stamp


def load_connections_file(path: Path, raw: bytes | None = None) -> list[Connection]:
    """Parse a connections file: TOML (``[[connections]]`` tables) or JSON (a list).

    A secret may be written in place or as ``{env = "NAME"}``, read from the
    environment variable ``NAME``.

    Raises:
        ConfigurationError: the file is malformed or holds an invalid connection.
    """
    raw = path.read_bytes() if raw is None else raw
    try:
        if path.suffix == ".toml":
            items: Any = tomllib.loads(raw.decode()).get("connections", [])
        elif path.suffix == ".json":
            items = json.loads(raw)
        else:
            raise ConfigurationError(f"{path}: a connections file is .toml or .json")
    except (
        UnicodeDecodeError,
        tomllib.TOMLDecodeError,
        json.JSONDecodeError,
        RecursionError,
    ) as exc:
        raise ConfigurationError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigurationError(f"{path}: expected a list of connections")
    return [connection_from_data(_with_env_secrets(item)) for item in items]


def _with_env_secrets(item: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(item)
    for name in ("client_secret", "client_key", "scim_secret"):
        value = values.get(name)
        if isinstance(value, Mapping):
            if set(value) != {"env"} or not isinstance(value["env"], str):
                raise ConfigurationError(f'{name} is a string or {{env = "NAME"}}')
            secret = os.environ.get(value["env"])
            if not secret:
                raise ConfigurationError(
                    f"{name} names the environment variable {value['env']!r}, which is unset"
                )
            values[name] = secret
    return values


def connections_of(value: ConnectionStore | Sequence[Connection]) -> ConnectionStore:
    """A store for ``value``: itself, or a :class:`StaticConnections` of a list."""
    if isinstance(value, ConnectionStore):
        return value
    return StaticConnections(value)
