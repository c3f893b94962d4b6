"""The SQL ``ConnectionStore``: SQLAlchemy's async engine on SQLite (aiosqlite) or PostgreSQL.

Three tables, named with ``table_prefix``: ``connections`` (a row per connection:
its non-secret fields as JSON, each secret sealed, a unique key on its concrete
issuer), ``connection_domains`` (a row per email domain, the domain the primary
key, so a domain belongs to one connection however many writers race) and
``connections_revision`` (one row: a counter bumped in the same transaction as
every write, and an epoch drawn when the table was made, so a re-created table
never repeats a revision a worker has seen). Every write bumps the counter
first, which queues writers on that row: the checks that follow see every
earlier write and name the conflict; the unique keys stand behind them.

Secrets at rest are sealed with the app's secrets
(:class:`~asgi_sso.sessions.codec.CookieCodec`, purpose :data:`SEAL_PURPOSE`),
bound to the connection id and the field name, so a sealed value copied to
another row or field does not open. The newest app secret seals, every one
opens; :meth:`SQLConnections.rotate` re-seals everything with the newest.

A row that cannot be read (a secret sealed under an app secret no longer
configured, data edited by hand) is **left out** of :meth:`SQLConnections.load`:
its connection signs nobody in, and the reason (naming the connection, never a
secret) goes to :attr:`SQLConnections.unreadable`, a warning log record and a
``connections.unreadable`` event. One bad row must not stop every worker from
taking up the other changes: a connection disabled meanwhile must still be
disabled everywhere. :meth:`~SQLConnections.get` of that id raises
:class:`~asgi_sso.errors.ConfigurationError`; :meth:`~SQLConnections.update` and
:meth:`~SQLConnections.delete` still work on it (they are how it is repaired).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from asgi_sso.config import Clock, Secret, SystemClock
from asgi_sso.connections.model import Connection, connection_from_data
from asgi_sso.errors import (
    ConfigurationError,
    ConnectionChangeError,
    ConnectionConflict,
    StoreUnavailable,
    UnknownConnection,
)
from asgi_sso.identity.stores._boundary import StoreBoundary
from asgi_sso.identity.stores._urls import async_database_url
from asgi_sso.observe.events import NULL_EMITTER, Emitter, Event
from asgi_sso.sessions.base import SessionInvalid
from asgi_sso.sessions.codec import MIN_SECRET_BYTES, CookieCodec

__all__ = ["MAX_DATA_CHARS", "MAX_SECRET_BYTES", "SCHEMA_VERSION", "SEAL_PURPOSE", "SQLConnections"]

SCHEMA_VERSION: Final = 1
"""The schema version this code writes; :meth:`SQLConnections.start` migrates older ones."""

SEAL_PURPOSE: Final = "asgi_sso connection secret"
"""The key-derivation purpose of sealed secrets: keys made for cookies never open them."""

SECRET_FIELDS: Final = ("client_secret", "client_key", "scim_secret")

MAX_SECRET_BYTES: Final = 16 * 1024
"""Longest secret stored (a PEM or JWK private key fits many times over)."""

MAX_DATA_CHARS: Final = 1024 * 1024
"""Longest non-secret JSON of one connection, written or read."""

_COMPONENT: Final = "connections"
_LOCK_KEY: Final = 727275  # pg_advisory_xact_lock key serialising concurrent starts
_REVISION_ROW: Final = 1
_IN_CHUNK: Final = 500  # bound parameters per IN (…), well under any backend's limit

_logger = logging.getLogger("asgi_sso.connections")

_guarded = StoreBoundary("connection store", _logger)


def _tables(metadata: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table, sa.Table, sa.Table]:
    # The schema-version table (shared with SQLUserStore under the same prefix), then ours.
    versions = sa.Table(
        f"{prefix}schema",
        metadata,
        sa.Column("component", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    connections = sa.Table(
        f"{prefix}connections",
        metadata,
        sa.Column("id", sa.String(63), primary_key=True),
        # An issuer may be 2 KiB, more than a b-tree entry holds: keys are SHA-256 digests.
        # iss_key: of Connection.issuer_key (the issuer, with the organisation of a shared
        # one), unique; iss_hash: of the issuer alone, to find connections sharing it.
        sa.Column("iss_key", sa.String(64), nullable=False),
        sa.Column("iss_hash", sa.String(64), nullable=False, index=True),
        sa.Column("data", sa.Text, nullable=False),
        *(sa.Column(name, sa.Text) for name in SECRET_FIELDS),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("iss_key", name=f"{prefix}connections_iss"),
    )
    domains = sa.Table(
        f"{prefix}connection_domains",
        metadata,
        sa.Column("domain", sa.String(253), primary_key=True),
        sa.Column(
            "connection", sa.String(63), sa.ForeignKey(connections.c.id), nullable=False, index=True
        ),
    )
    revisions = sa.Table(
        f"{prefix}connections_revision",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.String(32), nullable=False),
        sa.Column("counter", sa.BigInteger, nullable=False),
    )
    return versions, connections, domains, revisions


def _checked_secrets(values: Sequence[Secret]) -> tuple[Secret, ...]:
    found = tuple(values) if not isinstance(values, str | bytes | Secret) else ()
    if not found or not all(isinstance(value, Secret) for value in found):
        raise ConfigurationError(
            "SQLConnections needs secrets: a list of Secret values, oldest first, that seal "
            "the connections' secrets"
        )
    if any(len(value.reveal()) < MIN_SECRET_BYTES for value in found):
        raise ConfigurationError(
            f"each SQLConnections secret must be at least {MIN_SECRET_BYTES} bytes"
        )
    return found


def _iss_key(iss: str) -> str:
    return hashlib.sha256(iss.encode("utf-8", "surrogatepass")).hexdigest()


def _plain(value: Any) -> Any:
    # msgspec's enc_hook: a read-only mapping (tier groups) is written as an object.
    if isinstance(value, Mapping):
        return dict(value)
    raise NotImplementedError


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


class SQLConnections:
    """Connections in SQLite or PostgreSQL, their secrets sealed at rest.

    Args:
        url: a database URL, e.g. ``sqlite:///connections.db`` or
            ``postgresql://user@host/db`` (mapped to the async drivers).
        secrets: the app secrets sealing each connection's secrets, oldest to newest,
            each at least 32 bytes: the newest seals, every one opens.
        engine: an existing :class:`AsyncEngine` instead of ``url`` (not disposed on close).
        table_prefix: prefix of the table names (letters, digits, ``_``).
        clock: where ``updated_at`` comes from.
        emitter: receives a ``connections.unreadable`` event for each row newly left
            out of :meth:`load`.

    Attributes:
        unreadable: connection id → why its row was left out of the last :meth:`load`
            (or could not be re-sealed by :meth:`rotate`).

    Raises:
        ConfigurationError: neither or both of ``url`` and ``engine``, an unsupported
            dialect, a bad prefix, or no usable secret.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        secrets: Sequence[Secret],
        engine: AsyncEngine | None = None,
        table_prefix: str = "asgi_sso_",
        clock: Clock | None = None,
        emitter: Emitter = NULL_EMITTER,
    ) -> None:
        if (url is None) == (engine is None):
            raise ConfigurationError("SQLConnections needs exactly one of url or engine")
        if not table_prefix.replace("_", "a").isalnum() or not table_prefix.isascii():
            raise ConfigurationError("table_prefix may hold only ASCII letters, digits and '_'")
        self._secrets = _checked_secrets(secrets)
        self._owns_engine = engine is None
        self._engine = (
            engine
            if engine is not None
            else create_async_engine(async_database_url(str(url), setting="SQLConnections url"))
        )
        dialect = self._engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(
                f"SQLConnections supports sqlite and postgresql, not {dialect}"
            )
        self._dialect = dialect
        # SQLite has one writer at a time; queueing writes here avoids "database is locked".
        self._write_lock = asyncio.Lock() if dialect == "sqlite" else None
        self._clock = clock or SystemClock()
        self._emitter = emitter
        self._prefix = table_prefix
        self.metadata = sa.MetaData()
        self.versions, self.connections, self.domains, self.revisions = _tables(
            self.metadata, table_prefix
        )
        self._migrations: dict[int, Callable[[AsyncConnection], Coroutine[Any, Any, None]]] = {
            1: self._create_v1,
        }
        self.unreadable: dict[str, str] = {}

    def __repr__(self) -> str:
        # Never the URL (it may hold a password) nor a secret.
        return f"SQLConnections(dialect={self._dialect!r}, table_prefix={self._prefix!r})"

    # -- life cycle -----------------------------------------------------------------------

    @_guarded
    async def start(self) -> None:
        """Create the tables or migrate them to :data:`SCHEMA_VERSION` (idempotent).

        Raises:
            ConfigurationError: the stored schema is newer than this code.
            StoreUnavailable: the database cannot be reached.
        """
        async with self._engine.begin() as conn:
            if self._dialect == "postgresql":
                # Serialise concurrent starts of several workers (released at commit).
                await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
            else:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.run_sync(lambda sync: self.versions.create(sync, checkfirst=True))
            v = self.versions.c
            stored = (
                await conn.execute(sa.select(v.version).where(v.component == _COMPONENT))
            ).scalar_one_or_none()
            current = stored or 0
            if current > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the connection store schema is version {current}, newer than this "
                    f"asgi_sso ({SCHEMA_VERSION}); upgrade asgi_sso"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                await self._migrations[version](conn)
            if stored is None:
                await conn.execute(
                    self.versions.insert().values(component=_COMPONENT, version=SCHEMA_VERSION)
                )
            elif stored != SCHEMA_VERSION:
                await conn.execute(
                    self.versions.update()
                    .where(v.component == _COMPONENT)
                    .values(version=SCHEMA_VERSION)
                )

    async def _create_v1(self, conn: AsyncConnection) -> None:
        tables = [self.connections, self.domains, self.revisions]
        await conn.run_sync(
            lambda sync: self.metadata.create_all(sync, tables=tables, checkfirst=True)
        )
        r = self.revisions.c
        found = await conn.execute(sa.select(r.id).where(r.id == _REVISION_ROW))
        if found.first() is None:
            await conn.execute(
                self.revisions.insert().values(id=_REVISION_ROW, epoch=uuid.uuid4().hex, counter=0)
            )

    async def close(self) -> None:
        """Dispose of the engine, if this store created it."""
        if self._owns_engine:
            await self._engine.dispose()

    # -- reads ----------------------------------------------------------------------------

    @_guarded
    async def revision(self) -> str:
        """The current revision: one single-row ``SELECT``."""
        r = self.revisions.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(r.epoch, r.counter).where(r.id == _REVISION_ROW))
            ).first()
        if row is None:
            raise StoreUnavailable("the connection store is not set up: call start() first")
        return f"{row.epoch}:{row.counter}"

    @_guarded
    async def load(self) -> tuple[str, list[Connection]]:
        """Every readable connection and the revision they belong to.

        One statement (the revision row joined to every connection row) reads both
        from one snapshot. Unreadable rows are left out (see the module notes).
        """
        r, c = self.revisions, self.connections
        stmt = (
            sa.select(r.c.epoch, r.c.counter, *c.c)
            .select_from(r.outerjoin(c, sa.true()))
            .where(r.c.id == _REVISION_ROW)
            .order_by(c.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            raise StoreUnavailable("the connection store is not set up: call start() first")
        found: list[Connection] = []
        unreadable: dict[str, str] = {}
        for row in rows:
            if row.id is None:  # the outer join's one row when there are no connections
                continue
            try:
                found.append(self._connection(row._mapping))
            except ConfigurationError as exc:
                unreadable[row.id] = str(exc)
        self._note_unreadable(unreadable, complete=True)
        return f"{rows[0].epoch}:{rows[0].counter}", found

    @_guarded
    async def get(self, connection_id: str) -> Connection | None:
        """The connection with this id, if any.

        Raises:
            ConfigurationError: its row cannot be read (the message says why).
        """
        c = self.connections.c
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(self.connections).where(c.id == connection_id))
            ).first()
        return None if row is None else self._connection(row._mapping)

    # -- writes ---------------------------------------------------------------------------

    @_guarded
    async def add(self, connection: Connection) -> None:
        """Add a new connection.

        Raises:
            ConnectionConflict: its id, issuer or a domain is taken.
            ConnectionChangeError: it cannot be stored (too large, not JSON data).
        """
        row = self._row(connection)
        try:
            async with self._writing() as conn:
                await self._bump(conn)
                c = self.connections.c
                taken = await conn.execute(sa.select(c.id).where(c.id == connection.id))
                if taken.first() is not None:
                    raise ConnectionConflict(f"a connection {connection.id!r} exists already")
                await self._check_free(conn, connection)
                await conn.execute(self.connections.insert().values(row))
                await self._put_domains(conn, connection)
        except IntegrityError as exc:  # a writer the checks did not see (another store's)
            raise ConnectionConflict(
                f"connection {connection.id!r}: its id, issuer or a domain is taken"
            ) from exc

    @_guarded
    async def update(self, connection: Connection) -> None:
        """Replace the connection with the same id (its domains with it).

        Raises:
            UnknownConnection: there is none.
            ConnectionConflict: its issuer or a domain belongs to another connection.
            ConnectionChangeError: it cannot be stored (too large, not JSON data).
        """
        row = self._row(connection)
        c, d = self.connections.c, self.domains.c
        try:
            async with self._writing() as conn:
                await self._bump(conn)
                found = await conn.execute(sa.select(c.id).where(c.id == connection.id))
                if found.first() is None:
                    raise UnknownConnection(f"no connection {connection.id!r}")
                await self._check_free(conn, connection)
                await conn.execute(
                    self.connections.update().where(c.id == connection.id).values(row)
                )
                await conn.execute(self.domains.delete().where(d.connection == connection.id))
                await self._put_domains(conn, connection)
        except IntegrityError as exc:
            raise ConnectionConflict(
                f"connection {connection.id!r}: its issuer or a domain is taken"
            ) from exc

    @_guarded
    async def delete(self, connection_id: str) -> None:
        """Delete a connection and its domains.

        Raises:
            UnknownConnection: there is none.
        """
        c, d = self.connections.c, self.domains.c
        async with self._writing() as conn:
            await self._bump(conn)
            await conn.execute(self.domains.delete().where(d.connection == connection_id))
            done = await conn.execute(self.connections.delete().where(c.id == connection_id))
            if done.rowcount != 1:
                raise UnknownConnection(f"no connection {connection_id!r}")

    @_guarded
    async def rotate(self) -> int:
        """Re-seal every stored secret with the newest app secret.

        After adding a new app secret (last in ``secrets``), run this once; then the
        old one can be dropped. A row changed meanwhile is left alone (its writer
        sealed it with the newest secret already); the revision does not move, since
        no connection changed.

        Returns:
            How many secrets were re-sealed.
        """
        c = self.connections.c
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sa.select(c.id, *(c[n] for n in SECRET_FIELDS)))).all()
        count = 0
        unreadable: dict[str, str] = {}
        for row in rows:
            sealed = {n: row._mapping[n] for n in SECRET_FIELDS if row._mapping[n] is not None}
            try:
                fresh = {
                    n: self._seal(row.id, n, self._open(row.id, n, v)) for n, v in sealed.items()
                }
            except ConfigurationError as exc:
                unreadable[row.id] = str(exc)
                continue
            if fresh and await self._reseal(row.id, sealed, fresh):
                count += len(fresh)
        self._note_unreadable(unreadable, complete=False)
        return count

    async def _reseal(self, connection_id: str, old: dict[str, str], new: dict[str, str]) -> bool:
        # Compare and set: write only over the very values that were opened.
        c = self.connections.c
        stmt = self.connections.update().where(c.id == connection_id)
        for name in SECRET_FIELDS:
            stmt = stmt.where(c[name] == old[name] if name in old else c[name].is_(None))
        async with self._writing() as conn:
            done = await conn.execute(stmt.values(new))
        return bool(done.rowcount == 1)

    async def _bump(self, conn: AsyncConnection) -> None:
        # First in every write: the row lock queues writers (PostgreSQL), and the new
        # revision commits with the change or not at all.
        r = self.revisions.c
        done = await conn.execute(
            self.revisions.update().where(r.id == _REVISION_ROW).values(counter=r.counter + 1)
        )
        if done.rowcount != 1:
            raise StoreUnavailable("the connection store is not set up: call start() first")

    async def _check_free(self, conn: AsyncConnection, connection: Connection) -> None:
        c, d = self.connections.c, self.domains.c
        sharing = await conn.execute(
            sa.select(c.id, c.data)
            .where(c.iss_hash == _iss_key(connection.iss))
            .where(c.id != connection.id)
            .order_by(c.id)
        )
        for owner, data in sharing:
            # Several connections may share an issuer only when each names its
            # organisation by the same claim, with a different value (Google's hd).
            other = msgspec.json.decode(data)
            claim = connection.tenant_claim
            if (
                claim is None
                or other.get("tenant_claim") != claim
                or other.get("tenant") == connection.tenant
            ):
                raise ConnectionConflict(
                    f"connections {owner!r} and {connection.id!r} would have the same issuer "
                    f"{connection.iss!r}; one issuer belongs to one connection, unless each "
                    "names its organisation with tenant_claim and tenant"
                )
        for chunk in _chunks(connection.domains):
            taken = (
                await conn.execute(
                    sa.select(d.domain, d.connection)
                    .where(d.domain.in_(chunk))
                    .where(d.connection != connection.id)
                    .order_by(d.domain)
                    .limit(1)
                )
            ).first()
            if taken is not None:
                raise ConnectionConflict(
                    f"the domain {taken.domain!r} belongs to connection {taken.connection!r}; "
                    f"it cannot also belong to {connection.id!r}"
                )

    async def _put_domains(self, conn: AsyncConnection, connection: Connection) -> None:
        if connection.domains:
            await conn.execute(
                self.domains.insert(),
                [{"domain": domain, "connection": connection.id} for domain in connection.domains],
            )

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self._engine.begin() as conn:
            yield conn

    # -- rows, sealing --------------------------------------------------------------------

    def _row(self, connection: Connection) -> dict[str, Any]:
        """The row storing ``connection``, checked to read back as a connection."""
        fields = msgspec.structs.asdict(connection)
        del fields["id"]
        secrets = {name: fields.pop(name) for name in SECRET_FIELDS}
        fail = ConnectionChangeError
        try:
            data = msgspec.json.encode(fields, enc_hook=_plain).decode()
            connection_from_data({**msgspec.json.decode(data), "id": connection.id, **secrets})
        except (TypeError, ValueError, msgspec.MsgspecError) as exc:
            # ConfigurationError is a ValueError: the stored form would not load again.
            raise fail(f"connection {connection.id!r} cannot be stored: {exc}") from exc
        if len(data) > MAX_DATA_CHARS:
            raise fail(f"connection {connection.id!r} is too large to store")
        row: dict[str, Any] = {
            "id": connection.id,
            "iss_key": _iss_key(connection.issuer_key),
            "iss_hash": _iss_key(connection.iss),
            "data": data,
            "updated_at": self._clock.time(),
        }
        for name, secret in secrets.items():
            if secret is not None and len(secret.reveal()) > MAX_SECRET_BYTES:
                raise fail(
                    f"connection {connection.id!r}: {name} is longer than {MAX_SECRET_BYTES} bytes"
                )
            row[name] = None if secret is None else self._seal(connection.id, name, secret)
        return row

    def _connection(self, row: sa.RowMapping) -> Connection:
        """The connection a row holds, its secrets opened.

        Raises:
            ConfigurationError: naming the connection and why, never a secret.
        """
        connection_id = row["id"]
        data = row["data"]
        values: Any = None
        if isinstance(data, str) and len(data) <= MAX_DATA_CHARS:
            with contextlib.suppress(msgspec.DecodeError):
                values = msgspec.json.decode(data)
        if not isinstance(values, dict) or not values.keys().isdisjoint(("id", *SECRET_FIELDS)):
            raise ConfigurationError(f"connection {connection_id!r}: its stored data is malformed")
        for name in SECRET_FIELDS:
            if row[name] is not None:
                values[name] = self._open(connection_id, name, row[name])
        try:
            return connection_from_data({**values, "id": connection_id})
        except ConfigurationError as exc:
            raise ConfigurationError(
                f"connection {connection_id!r}: its stored data is invalid: {exc}"
            ) from exc

    def _codec(self, connection_id: str, field: str) -> CookieCodec:
        return CookieCodec(self._secrets, purpose=SEAL_PURPOSE, binding=(connection_id, field))

    def _seal(self, connection_id: str, field: str, secret: Secret) -> str:
        return self._codec(connection_id, field).encode(secret.reveal())

    def _open(self, connection_id: str, field: str, sealed: str) -> Secret:
        try:
            return Secret(self._codec(connection_id, field).decode(sealed))
        except (SessionInvalid, ConfigurationError) as exc:
            raise ConfigurationError(
                f"connection {connection_id!r}: its {field} cannot be opened with the "
                "configured secrets (sealed under an app secret no longer listed, or "
                "copied from another row)"
            ) from exc

    def _note_unreadable(self, found: dict[str, str], *, complete: bool) -> None:
        for connection_id, reason in found.items():
            if self.unreadable.get(connection_id) == reason:
                continue
            _logger.warning("%s; it is left out until it is repaired", reason)
            if self._emitter.enabled:
                self._emitter.emit(
                    Event(
                        name="connections.unreadable",
                        outcome="refused",
                        reason="unreadable",
                        time=self._clock.time(),
                        connection=connection_id,
                        detail={"why": reason},
                    )
                )
        self.unreadable = found if complete else {**self.unreadable, **found}
