"""The SQL ``UserStore``: SQLAlchemy's async engine on SQLite (aiosqlite) or PostgreSQL (asyncpg).

One implementation for both dialects. The schema is created or migrated on
:meth:`SQLUserStore.start` and its version stored in a table of its own. A
unique constraint on ``(connection, subject)`` and ``INSERT … ON CONFLICT DO
NOTHING`` followed by a ``SELECT`` make concurrent first sign-ins race-safe:
every racer gets the one row that won. Each write is one transaction, so a
failure never leaves a half-written user; any backend failure becomes
:class:`~asgi_sso.errors.StoreUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from asgi_sso.config import Clock, SystemClock
from asgi_sso.errors import ConfigurationError
from asgi_sso.identity.stores._boundary import StoreBoundary
from asgi_sso.identity.stores._urls import async_database_url
from asgi_sso.identity.stores.base import MAX_PAGE_SIZE, Profile, StoredUser, UserPage

__all__ = ["SCHEMA_VERSION", "SQLUserStore"]

SCHEMA_VERSION = 1
"""The schema version this code writes; :meth:`SQLUserStore.start` migrates older ones."""

_log = logging.getLogger(__name__)

_guarded = StoreBoundary("user store", _log)


def _tables(metadata: sa.MetaData, prefix: str) -> tuple[sa.Table, sa.Table]:
    # The schema-version table and the users table, named with ``prefix``.
    versions = sa.Table(
        f"{prefix}schema",
        metadata,
        sa.Column("component", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    users = sa.Table(
        f"{prefix}users",
        metadata,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("connection", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("name", sa.Text),
        sa.Column("given_name", sa.Text),
        sa.Column("family_name", sa.Text),
        sa.Column("user_name", sa.Text),
        sa.Column("user_name_folded", sa.Text),
        sa.Column("groups", sa.JSON, nullable=False),
        sa.Column("tier", sa.Text),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.UniqueConstraint("connection", "subject", name=f"{prefix}users_conn_sub"),
        sa.Index(f"{prefix}users_conn_uname", "connection", "user_name_folded"),
    )
    return versions, users


class SQLUserStore:
    """Users in SQLite or PostgreSQL.

    Args:
        url: a SQLAlchemy async URL, e.g. ``sqlite+aiosqlite:///users.db`` or
            ``postgresql+asyncpg://user@host/db``.
        engine: an existing :class:`AsyncEngine` instead of ``url`` (not disposed on close).
        table_prefix: prefix of the two table names (letters, digits, ``_``).
        clock: where ``created_at`` / ``updated_at`` come from.

    Raises:
        ConfigurationError: neither or both of ``url`` and ``engine``, an
            unsupported dialect, or a bad prefix.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        table_prefix: str = "asgi_sso_",
        clock: Clock | None = None,
    ) -> None:
        if (url is None) == (engine is None):
            raise ConfigurationError("SQLUserStore needs exactly one of url or engine")
        if not table_prefix.replace("_", "a").isalnum() or not table_prefix.isascii():
            raise ConfigurationError("table_prefix may hold only ASCII letters, digits and '_'")
        self._owns_engine = engine is None
        self._engine = (
            engine
            if engine is not None
            else create_async_engine(async_database_url(str(url), setting="SQLUserStore url"))
        )
        dialect = self._engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise ConfigurationError(f"SQLUserStore supports sqlite and postgresql, not {dialect}")
        self._dialect = dialect
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        # SQLite has one writer at a time; queueing writes here avoids "database is locked".
        self._write_lock = asyncio.Lock() if dialect == "sqlite" else None
        self._clock = clock or SystemClock()
        self.metadata = sa.MetaData()
        self.versions, self.users = _tables(self.metadata, table_prefix)
        self._migrations: dict[int, Callable[[sa.Connection], None]] = {
            1: lambda sync: self.users.create(sync, checkfirst=True),
        }

    @_guarded
    async def start(self) -> None:
        """Create the tables or migrate them to :data:`SCHEMA_VERSION`.

        Raises:
            ConfigurationError: the stored schema is newer than this code.
            StoreUnavailable: the database cannot be reached.
        """
        async with self._engine.begin() as conn:
            if self._dialect == "postgresql":
                # Serialise concurrent starts of several workers (released at commit).
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
            else:
                await conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            await conn.run_sync(lambda sync: self.versions.create(sync, checkfirst=True))
            table = self.versions
            stored = (
                await conn.execute(sa.select(table.c.version).where(table.c.component == "users"))
            ).scalar_one_or_none()
            current = stored or 0
            if current > SCHEMA_VERSION:
                raise ConfigurationError(
                    f"the user store schema is version {current}, newer than this "
                    f"asgi_sso ({SCHEMA_VERSION}); upgrade asgi_sso"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                await conn.run_sync(self._migrations[version])
            if stored is None:
                await conn.execute(table.insert().values(component="users", version=SCHEMA_VERSION))
            elif stored != SCHEMA_VERSION:
                await conn.execute(
                    table.update()
                    .where(table.c.component == "users")
                    .values(version=SCHEMA_VERSION)
                )

    async def close(self) -> None:
        """Dispose of the engine, if this store created it."""
        if self._owns_engine:
            await self._engine.dispose()

    @_guarded
    async def get_or_provision(
        self, connection: str, subject: str, profile: Profile, *, update: bool = True
    ) -> tuple[StoredUser, bool]:
        """See :meth:`asgi_sso.identity.stores.UserStore.get_or_provision`."""
        user = await self.get_by_subject(connection, subject)
        if user is None:
            now = self._clock.time()
            new_id = str(uuid.uuid4())
            values = {
                "id": new_id,
                "connection": connection,
                "subject": subject,
                "active": True,
                "deleted": False,
                "created_at": now,
                "updated_at": now,
                **_profile_columns(profile),
            }
            stmt = self._insert(self.users).values(values)
            stmt = stmt.on_conflict_do_nothing(index_elements=["connection", "subject"])
            async with self._writing() as conn:
                await conn.execute(stmt)
                row = (await conn.execute(self._by_key(connection, subject))).one()
            user = _to_user(row._mapping)
            if user.id == new_id:
                return user, True
        if update and not user.deleted and user.profile != profile:
            changed = await self.update(user.id, profile=profile)
            user = changed or user
        return user, False

    @_guarded
    async def get(self, user_id: str) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.get`."""
        return await self._one(sa.select(self.users).where(self.users.c.id == user_id))

    @_guarded
    async def get_by_subject(self, connection: str, subject: str) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.get_by_subject`."""
        return await self._one(self._by_key(connection, subject))

    @_guarded
    async def find_by_user_name(self, connection: str, user_name: str) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.find_by_user_name`."""
        c = self.users.c
        stmt = (
            sa.select(self.users)
            .where(c.connection == connection)
            .where(c.user_name_folded == user_name.casefold())
            .where(c.deleted.is_(False))
            .order_by(c.id)
            .limit(1)
        )
        return await self._one(stmt)

    @_guarded
    async def update(
        self,
        user_id: str,
        *,
        profile: Profile | None = None,
        active: bool | None = None,
        deleted: bool | None = None,
    ) -> StoredUser | None:
        """See :meth:`asgi_sso.identity.stores.UserStore.update`."""
        values: dict[str, Any] = {"updated_at": self._clock.time()}
        if profile is not None:
            values.update(_profile_columns(profile))
        if active is not None:
            values["active"] = active
        if deleted is not None:
            values["deleted"] = deleted
            if deleted:
                values["active"] = False
        c = self.users.c
        async with self._writing() as conn:
            await conn.execute(self.users.update().where(c.id == user_id).values(values))
            row = (await conn.execute(sa.select(self.users).where(c.id == user_id))).first()
        return None if row is None else _to_user(row._mapping)

    @_guarded
    async def list(
        self, connection: str, *, limit: int = 100, after: str | None = None
    ) -> UserPage:
        """See :meth:`asgi_sso.identity.stores.UserStore.list`."""
        limit = max(1, min(limit, MAX_PAGE_SIZE))
        c = self.users.c
        stmt = sa.select(self.users).where(c.connection == connection)
        if after is not None:
            stmt = stmt.where(c.id > after)
        stmt = stmt.order_by(c.id).limit(limit + 1)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        users = tuple(_to_user(r._mapping) for r in rows[:limit])
        return UserPage(users=users, next_cursor=users[-1].id if len(rows) > limit else None)

    def _by_key(self, connection: str, subject: str) -> sa.Select[Any]:
        c = self.users.c
        return sa.select(self.users).where(c.connection == connection).where(c.subject == subject)

    async def _one(self, stmt: sa.Select[Any]) -> StoredUser | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _to_user(row._mapping)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self._engine.begin() as conn:
            yield conn


def _profile_columns(profile: Profile) -> dict[str, Any]:
    return {
        "email": profile.email,
        "name": profile.name,
        "given_name": profile.given_name,
        "family_name": profile.family_name,
        "user_name": profile.user_name,
        "user_name_folded": None if profile.user_name is None else profile.user_name.casefold(),
        "groups": list(profile.groups),
        "tier": profile.tier,
    }


def _to_user(row: sa.RowMapping) -> StoredUser:
    groups = row["groups"]
    return StoredUser(
        id=row["id"],
        connection=row["connection"],
        subject=row["subject"],
        profile=Profile(
            email=row["email"],
            name=row["name"],
            given_name=row["given_name"],
            family_name=row["family_name"],
            user_name=row["user_name"],
            groups=tuple(g for g in groups if isinstance(g, str))
            if isinstance(groups, list)
            else (),
            tier=row["tier"],
        ),
        active=bool(row["active"]),
        deleted=bool(row["deleted"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )
