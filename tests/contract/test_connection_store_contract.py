"""The contract every ConnectionStore keeps, run against the static store, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc.jwk import ECKey

from asgi_sso.config import Secret
from asgi_sso.connections import (
    Connection,
    ConnectionDirectory,
    ConnectionStore,
    StaticConnections,
)
from asgi_sso.connections.sql import MAX_SECRET_BYTES, SCHEMA_VERSION, SQLConnections
from asgi_sso.errors import (
    ConfigurationError,
    ConnectionChangeError,
    ConnectionConflict,
    StoreUnavailable,
    UnknownConnection,
)
from asgi_sso.observe.events import Emitter, Event

MS_TEMPLATE = "https://login.microsoftonline.com/{tenant}/v2.0"
TENANT = "3f1c2a9e-0000-4000-8000-00000000acme"


def app_secret() -> Secret:
    return Secret(secrets.token_bytes(32))


def conn(connection_id: str = "acme", **fields: Any) -> Connection:
    """A bearer-only connection with its own issuer, unless ``fields`` say otherwise."""
    values: dict[str, Any] = {
        "issuer": f"https://{connection_id}.idp.example",
        "audience": ("api://app",),
    }
    values.update(fields)
    return Connection(id=connection_id, **values)


def with_secrets(connection_id: str = "acme", **fields: Any) -> Connection:
    """A sign-in connection holding a client secret and a SCIM secret, made now."""
    return conn(
        connection_id,
        client_id="app-client",
        client_secret=Secret(f"client-{secrets.token_hex(16)}"),
        scim_secret=Secret(f"scim-{secrets.token_hex(16)}"),
        **fields,
    )


NEXT_KEY = ECKey.generate_key("P-256").as_pem(private=False).decode()


def with_key(connection_id: str = "keyed") -> Connection:
    return conn(
        connection_id,
        client_id="app-client",
        token_endpoint_auth="private_key_jwt",
        client_key=Secret('{"kty":"EC","d":"' + secrets.token_urlsafe(32) + '"}'),
        published_keys=(NEXT_KEY,),  # public, kept with the other plain fields
    )


def plaintexts(connection: Connection) -> list[bytes]:
    found = [connection.client_secret, connection.client_key, connection.scim_secret]
    return [s.reveal() for s in found if s is not None]


class ConnectionStoreContract:
    """Subclasses provide a started ``store`` fixture."""

    async def test_a_new_store_is_empty(self, store: ConnectionStore) -> None:
        revision, items = await store.load()
        assert items == []
        assert revision == await store.revision()
        assert await store.get("acme") is None

    async def test_added_connection_reads_back_with_its_secrets(
        self, store: ConnectionStore
    ) -> None:
        acme = with_secrets(domains=("acme.example", "acme-corp.example"), name="Acme Corp")
        keyed = with_key()
        await store.add(acme)
        await store.add(keyed)
        got = await store.get("acme")
        assert got == acme
        assert got is not None
        assert got.client_secret is not None
        assert acme.client_secret is not None
        assert got.client_secret.reveal() == acme.client_secret.reveal()
        _, items = await store.load()
        assert sorted(items, key=lambda c: c.id) == [acme, keyed]
        assert (await store.get("keyed")) == keyed

    async def test_secrets_never_show_in_a_repr(self, store: ConnectionStore) -> None:
        acme = with_secrets()
        await store.add(acme)
        shown = repr(await store.get("acme")) + repr(await store.load()) + repr(store)
        for plain in plaintexts(acme):
            assert plain.decode() not in shown
        public = (await store.get("acme")).public()  # type: ignore[union-attr]
        assert public["has_client_secret"] is True
        assert "client_secret" not in public

    async def test_every_write_moves_the_revision_and_nothing_else_does(
        self, store: ConnectionStore
    ) -> None:
        seen = [await store.revision()]
        await store.load()
        await store.get("acme")
        assert await store.revision() == seen[-1]
        await store.add(conn("acme"))
        seen.append(await store.revision())
        await store.update(conn("acme", name="Acme"))
        seen.append(await store.revision())
        await store.delete("acme")
        seen.append(await store.revision())
        assert len(set(seen)) == 4
        assert (await store.load())[0] == seen[-1]

    async def test_refused_writes_leave_the_revision(self, store: ConnectionStore) -> None:
        await store.add(conn("acme", domains=("acme.example",)))
        before = await store.revision()
        with pytest.raises(ConnectionConflict):
            await store.add(conn("acme"))
        with pytest.raises(ConnectionConflict):
            await store.add(conn("globex", domains=("acme.example",)))
        with pytest.raises(UnknownConnection):
            await store.update(conn("nobody"))
        with pytest.raises(UnknownConnection):
            await store.delete("nobody")
        assert await store.revision() == before
        assert [c.id for c in (await store.load())[1]] == ["acme"]

    async def test_load_reads_the_revision_with_the_rows(self, store: ConnectionStore) -> None:
        await store.add(conn("acme"))
        revision, items = await store.load()
        assert revision == await store.revision()
        assert [c.id for c in items] == ["acme"]

    async def test_same_id_conflicts(self, store: ConnectionStore) -> None:
        await store.add(conn("acme"))
        with pytest.raises(ConnectionConflict, match="acme"):
            await store.add(conn("acme", issuer="https://other.idp.example"))
        assert (await store.get("acme")) == conn("acme")

    async def test_same_exact_issuer_conflicts(self, store: ConnectionStore) -> None:
        await store.add(conn("acme", issuer="https://idp.shared.example"))
        with pytest.raises(ConnectionConflict, match="issuer"):
            await store.add(conn("globex", issuer="https://idp.shared.example"))

    @pytest.mark.parametrize("template_first", [True, False])
    async def test_a_template_and_tenant_equal_to_an_exact_issuer_conflict(
        self, store: ConnectionStore, template_first: bool
    ) -> None:
        templated = conn("acme", issuer=MS_TEMPLATE, tenant=TENANT)
        exact = conn("globex", issuer=MS_TEMPLATE.replace("{tenant}", TENANT))
        first, second = (templated, exact) if template_first else (exact, templated)
        await store.add(first)
        with pytest.raises(ConnectionConflict, match="issuer"):
            await store.add(second)
        assert [c.id for c in (await store.load())[1]] == [first.id]

    async def test_one_template_with_two_tenants_is_two_connections(
        self, store: ConnectionStore
    ) -> None:
        await store.add(conn("acme", issuer=MS_TEMPLATE, tenant="tenant-a"))
        await store.add(conn("globex", issuer=MS_TEMPLATE, tenant="tenant-b"))
        directory = ConnectionDirectory((await store.load())[1])
        assert directory.by_issuer(MS_TEMPLATE.replace("{tenant}", "tenant-b")).id == "globex"  # type: ignore[union-attr]

    async def test_connections_sharing_an_issuer_need_one_claim_and_distinct_values(
        self, store: ConnectionStore
    ) -> None:
        google = "https://accounts.google.com"

        def workspace(cid: str, hd: str, claim: str = "hd") -> Connection:
            return conn(cid, issuer=google, tenant_claim=claim, tenant=hd)

        await store.add(workspace("initech", "initech.com"))
        await store.add(workspace("hooli", "hooli.com"))
        for refused in (
            conn("plain", issuer=google),
            workspace("again", "hooli.com"),
            workspace("other", "other.com", claim="org"),
        ):
            with pytest.raises(ConnectionConflict, match="same issuer"):
                await store.add(refused)
        assert sorted(c.id for c in (await store.load())[1]) == ["hooli", "initech"]
        await store.delete("hooli")
        await store.delete("initech")
        await store.add(conn("plain", issuer=google))  # alone now, it may be exact

    async def test_same_domain_conflicts(self, store: ConnectionStore) -> None:
        await store.add(conn("acme", domains=("acme.example", "shared.example")))
        with pytest.raises(ConnectionConflict, match=r"shared\.example"):
            await store.add(conn("globex", domains=("globex.example", "shared.example")))
        assert await store.get("globex") is None

    async def test_update_of_an_unknown_connection(self, store: ConnectionStore) -> None:
        with pytest.raises(UnknownConnection, match="nobody"):
            await store.update(conn("nobody"))
        assert await store.get("nobody") is None

    async def test_update_replaces_the_whole_connection(self, store: ConnectionStore) -> None:
        await store.add(with_secrets(domains=("acme.example",)))
        newer = with_secrets(
            name="Acme Inc",
            domains=("acme.test",),
            enabled=False,
            not_before=1_700_000_000.5,
        )
        await store.update(newer)
        assert await store.get("acme") == newer
        directory = ConnectionDirectory((await store.load())[1])
        assert directory.for_domain("acme.example") is None
        assert directory.get("acme") == newer

    async def test_update_onto_a_taken_issuer_or_domain_changes_nothing(
        self, store: ConnectionStore
    ) -> None:
        acme = conn("acme", domains=("acme.example",))
        globex = conn("globex", domains=("globex.example",))
        await store.add(acme)
        await store.add(globex)
        with pytest.raises(ConnectionConflict, match="issuer"):
            await store.update(conn("globex", issuer=acme.issuer))
        with pytest.raises(ConnectionConflict, match=r"acme\.example"):
            await store.update(conn("globex", domains=("globex.example", "acme.example")))
        assert await store.get("globex") == globex
        assert await store.get("acme") == acme

    async def test_delete_frees_the_id_the_issuer_and_the_domains(
        self, store: ConnectionStore
    ) -> None:
        await store.add(conn("acme", domains=("acme.example",)))
        await store.delete("acme")
        assert await store.get("acme") is None
        assert (await store.load())[1] == []
        again = conn("globex", issuer="https://acme.idp.example", domains=("acme.example",))
        await store.add(again)
        await store.add(conn("acme", issuer="https://new.idp.example"))
        assert ConnectionDirectory((await store.load())[1]).for_domain("acme.example") == again

    async def test_delete_of_an_unknown_connection(self, store: ConnectionStore) -> None:
        with pytest.raises(UnknownConnection, match="nobody"):
            await store.delete("nobody")

    async def test_a_domain_moves_from_one_connection_to_another(
        self, store: ConnectionStore
    ) -> None:
        await store.add(conn("acme", domains=("acme.example", "moving.example")))
        await store.add(conn("globex", domains=("globex.example",)))
        with pytest.raises(ConnectionConflict):
            await store.update(conn("globex", domains=("globex.example", "moving.example")))
        await store.update(conn("acme", domains=("acme.example",)))
        await store.update(conn("globex", domains=("globex.example", "moving.example")))
        directory = ConnectionDirectory((await store.load())[1])
        assert directory.for_email("someone@Moving.Example").id == "globex"  # type: ignore[union-attr]
        assert directory.for_email("someone@acme.example").id == "acme"  # type: ignore[union-attr]
        # the old owner cannot take it back while the new one holds it
        with pytest.raises(ConnectionConflict):
            await store.update(conn("acme", domains=("acme.example", "moving.example")))

    async def test_concurrent_adds_of_one_domain_let_exactly_one_win(
        self, store: ConnectionStore
    ) -> None:
        racers = [
            conn(f"racer-{i}", domains=(f"own-{i}.example", "race.example")) for i in range(8)
        ]
        results = await asyncio.gather(*(store.add(c) for c in racers), return_exceptions=True)
        winners = [c for c, r in zip(racers, results, strict=True) if r is None]
        assert len(winners) == 1
        assert all(isinstance(r, ConnectionConflict) for r in results if r is not None)
        _, items = await store.load()
        assert items == winners
        assert ConnectionDirectory(items).for_domain("race.example") == winners[0]

    async def test_concurrent_adds_of_one_id_let_exactly_one_win(
        self, store: ConnectionStore
    ) -> None:
        racers = [conn("same", issuer=f"https://idp-{i}.example") for i in range(6)]
        results = await asyncio.gather(*(store.add(c) for c in racers), return_exceptions=True)
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, ConnectionConflict) for r in results if r is not None)
        assert len((await store.load())[1]) == 1


class TestStaticConnections(ConnectionStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[ConnectionStore]:
        store = StaticConnections()
        await store.start()
        yield store
        await store.close()


OpenStore = Callable[..., Awaitable[SQLConnections]]


class SQLConnectionsContract(ConnectionStoreContract):
    """The SQL store on one backend: subclasses provide ``url``."""

    @pytest.fixture
    def keys(self) -> list[Secret]:
        return [app_secret()]

    @pytest.fixture
    async def open_store(self, url: str, keys: list[Secret]) -> AsyncIterator[OpenStore]:
        """Opens started stores on one database and one prefix; drops the tables after."""
        prefix = f"t{uuid.uuid4().hex[:12]}_"
        opened: list[SQLConnections] = []

        async def open_one(app_secrets: Sequence[Secret] = keys, **kw: Any) -> SQLConnections:
            store = SQLConnections(url, secrets=app_secrets, table_prefix=prefix, **kw)
            opened.append(store)
            await store.start()
            return store

        yield open_one
        if opened:
            async with opened[0]._engine.begin() as c:
                await c.run_sync(opened[0].metadata.drop_all)
        for store in opened:
            await store.close()

    @pytest.fixture
    async def store(self, open_store: OpenStore) -> SQLConnections:
        return await open_store()

    async def raw(self, store: SQLConnections) -> bytes:
        """Everything stored, as the database holds it."""
        parts: list[str] = []
        async with store._engine.connect() as c:
            for table in store.metadata.sorted_tables:
                for row in (await c.execute(sa.select(table))).all():
                    parts.extend(str(value) for value in row)
        return "\n".join(parts).encode()

    async def execute(self, store: SQLConnections, stmt: Any) -> None:
        async with store._engine.begin() as c:
            await c.execute(stmt)

    # -- secrets at rest --------------------------------------------------------------------

    async def test_secrets_are_not_readable_in_the_raw_tables(self, store: SQLConnections) -> None:
        acme, keyed = with_secrets(), with_key()
        await store.add(acme)
        await store.add(keyed)
        await store.update(with_secrets(name="again"))  # a second seal of new secrets
        acme = (await store.get("acme")) or acme
        raw = await self.raw(store)
        assert b"acme.idp.example" in raw  # the dump does hold the rows
        for plain in plaintexts(acme) + plaintexts(keyed):
            assert plain not in raw
            assert base64.urlsafe_b64encode(plain).rstrip(b"=") not in raw
            assert base64.b64encode(plain) not in raw
        c = store.connections.c
        async with store._engine.connect() as db:
            row = (await db.execute(sa.select(store.connections).where(c.id == "acme"))).one()
        assert row.client_secret.count(".") == 4  # a compact JWE
        assert row.client_key is None

    async def test_wrong_app_secret_leaves_the_row_out_and_names_it(
        self, store: SQLConnections, open_store: OpenStore, caplog: pytest.LogCaptureFixture
    ) -> None:
        acme = with_secrets()
        await store.add(acme)
        await store.add(conn("plain"))
        events: list[Event] = []
        other = await open_store([app_secret()], emitter=Emitter([events.append]))
        with caplog.at_level(logging.WARNING, logger="asgi_sso.connections"):
            _, items = await other.load()
            await other.load()  # the same reason is reported once
        assert [c.id for c in items] == ["plain"]
        assert set(other.unreadable) == {"acme"}
        reason = other.unreadable["acme"]
        assert "'acme'" in reason
        assert "cannot be opened" in reason
        assert [(e.name, e.connection) for e in events] == [("connections.unreadable", "acme")]
        assert len([r for r in caplog.records if "'acme'" in r.getMessage()]) == 1
        with pytest.raises(ConfigurationError, match="'acme'"):
            await other.get("acme")
        told = reason + caplog.text + repr(events)
        for plain in plaintexts(acme):
            assert plain.decode() not in told
        # update repairs it, under the secret the reading store holds
        fixed = with_secrets()
        await other.update(fixed)
        assert await other.get("acme") == fixed
        _, items = await other.load()
        assert {c.id for c in items} == {"acme", "plain"}
        assert other.unreadable == {}

    async def test_an_unreadable_row_can_be_deleted(
        self, store: SQLConnections, open_store: OpenStore
    ) -> None:
        await store.add(with_secrets(domains=("acme.example",)))
        other = await open_store([app_secret()])
        await other.delete("acme")
        await other.add(conn("globex", domains=("acme.example",)))
        assert [c.id for c in (await store.load())[1]] == ["globex"]

    @pytest.mark.parametrize(
        ("source", "target"),
        [
            (("acme", "client_secret"), ("globex", "client_secret")),
            (("acme", "client_secret"), ("acme", "scim_secret")),
        ],
    )
    async def test_a_sealed_value_moved_to_another_row_or_field_does_not_open(
        self, store: SQLConnections, source: tuple[str, str], target: tuple[str, str]
    ) -> None:
        await store.add(with_secrets("acme"))
        await store.add(with_secrets("globex"))
        c = store.connections.c
        async with store._engine.connect() as db:
            sealed = (
                await db.execute(sa.select(c[source[1]]).where(c.id == source[0]))
            ).scalar_one()
        await self.execute(
            store, store.connections.update().where(c.id == target[0]).values({target[1]: sealed})
        )
        _, items = await store.load()
        assert target[0] not in {item.id for item in items}
        assert target[1] in store.unreadable[target[0]]
        assert len(items) == 1

    @pytest.mark.parametrize(
        "data",
        [
            "not json",
            "[]",
            '{"issuer": "https://x.example", "audience": ["a"], "surprise": 1}',
            '{"issuer": "https://x.example", "audience": ["a"], "scim_secret": "in the clear"}',
            '{"issuer": "ftp://x.example", "audience": ["a"]}',
            '{"issuer": "https://x.example", "audience": ["a"], "domains": ["'
            + "a" * 2_000_000
            + '"]}',
        ],
        ids=["not-json", "not-an-object", "unknown-field", "secret-in-clear", "bad-issuer", "huge"],
    )
    async def test_hand_edited_rows_are_left_out_with_a_reason(
        self, store: SQLConnections, data: str
    ) -> None:
        await store.add(conn("acme"))
        await store.add(conn("globex"))
        c = store.connections.c
        await self.execute(
            store, store.connections.update().where(c.id == "acme").values(data=data)
        )
        assert [x.id for x in (await store.load())[1]] == ["globex"]
        assert "'acme'" in store.unreadable["acme"]
        assert "in the clear" not in store.unreadable["acme"]
        with pytest.raises(ConfigurationError, match="'acme'"):
            await store.get("acme")

    async def test_rotation_reseals_every_secret_with_the_newest_app_secret(
        self, open_store: OpenStore, keys: list[Secret]
    ) -> None:
        old, new = keys[0], app_secret()
        before = await open_store([old])
        stored = [with_secrets("acme"), with_key("keyed"), conn("plain")]
        for item in stored:
            await before.add(item)
        new_only = await open_store([new])
        assert [c.id for c in (await new_only.load())[1]] == ["plain"]
        both = await open_store([old, new])
        assert sorted((await both.load())[1], key=lambda c: c.id) == sorted(
            stored, key=lambda c: c.id
        )
        revision = await both.revision()
        assert await both.rotate() == 3  # two in acme, one in keyed
        assert await both.revision() == revision  # no connection changed
        _, items = await new_only.load()
        assert sorted(items, key=lambda c: c.id) == sorted(stored, key=lambda c: c.id)
        assert new_only.unreadable == {}
        assert [c.id for c in (await before.load())[1]] == ["plain"]  # old alone opens none

    async def test_rotation_skips_what_it_cannot_open(
        self, store: SQLConnections, open_store: OpenStore
    ) -> None:
        await store.add(with_secrets("acme"))
        other = await open_store([app_secret()])
        await other.add(with_secrets("globex"))
        assert await other.rotate() == 2
        assert set(other.unreadable) == {"acme"}
        assert await store.get("acme") is not None  # left as it was

    async def test_a_write_between_reading_and_resealing_wins(self, store: SQLConnections) -> None:
        await store.add(with_secrets("acme"))
        c = store.connections.c
        async with store._engine.connect() as db:
            row = (await db.execute(sa.select(store.connections).where(c.id == "acme"))).one()
        newer = with_secrets("acme")
        await store.update(newer)
        assert not await store._reseal(
            "acme",
            {"client_secret": row.client_secret, "scim_secret": row.scim_secret},
            {"client_secret": row.client_secret, "scim_secret": row.scim_secret},
        )
        assert await store.get("acme") == newer

    async def test_oversized_secrets_are_refused_with_a_reason(self, store: SQLConnections) -> None:
        big = conn("acme", client_id="c", client_secret=Secret("x" * (MAX_SECRET_BYTES + 1)))
        with pytest.raises(ConnectionChangeError, match="client_secret") as caught:
            await store.add(big)
        assert type(caught.value) is ConnectionChangeError
        assert caught.value.status == 422
        assert await store.get("acme") is None

    # -- schema, start-up, several stores -------------------------------------------------

    async def test_the_schema_version_is_recorded(self, store: SQLConnections) -> None:
        v = store.versions.c
        async with store._engine.connect() as db:
            found = (
                await db.execute(sa.select(v.version).where(v.component == "connections"))
            ).scalar_one()
        assert found == SCHEMA_VERSION

    async def test_start_twice_is_fine(self, store: SQLConnections) -> None:
        await store.add(with_secrets())
        revision = await store.revision()
        await store.start()
        assert await store.revision() == revision
        assert [c.id for c in (await store.load())[1]] == ["acme"]

    async def test_a_newer_schema_is_refused(self, store: SQLConnections) -> None:
        v = store.versions.c
        await self.execute(
            store,
            store.versions.update()
            .where(v.component == "connections")
            .values(version=SCHEMA_VERSION + 1),
        )
        with pytest.raises(ConfigurationError, match="upgrade asgi_sso"):
            await store.start()

    async def test_two_stores_on_one_database_see_each_others_writes(
        self, store: SQLConnections, open_store: OpenStore
    ) -> None:
        other = await open_store()
        start = await other.revision()
        assert start == await store.revision()
        await store.add(with_secrets("acme"))
        moved = await other.revision()
        assert moved != start
        assert [c.id for c in (await other.load())[1]] == ["acme"]
        await other.delete("acme")
        assert await store.revision() not in {start, moved}
        assert (await store.load())[1] == []

    async def test_two_stores_racing_for_one_domain_let_one_win(
        self, store: SQLConnections, open_store: OpenStore
    ) -> None:
        other = await open_store()
        racers = [conn(f"r{i}", domains=("race.example",)) for i in range(6)]
        results = await asyncio.gather(
            *((store if i % 2 else other).add(c) for i, c in enumerate(racers)),
            return_exceptions=True,
        )
        assert sum(r is None for r in results) == 1
        assert all(isinstance(r, ConnectionConflict) for r in results if r is not None)

    async def test_a_constraint_the_checks_missed_is_still_a_conflict(
        self, store: SQLConnections, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        await store.add(conn("acme", domains=("acme.example",)))

        async def no_checks(*_: object) -> None:
            return None

        monkeypatch.setattr(store, "_check_free", no_checks)
        with pytest.raises(ConnectionConflict, match="globex"):
            await store.add(conn("globex", domains=("acme.example",)))
        with pytest.raises(ConnectionConflict, match="globex"):
            await store.add(conn("globex", issuer="https://acme.idp.example"))
        await store.add(conn("globex"))
        with pytest.raises(ConnectionConflict, match="globex"):
            await store.update(conn("globex", domains=("acme.example",)))
        assert [c.id for c in (await store.load())[1]] == ["acme", "globex"]

    async def test_a_store_never_started_is_unavailable(self, url: str) -> None:
        store = SQLConnections(url, secrets=[app_secret()], table_prefix="never_started_")
        try:
            for call in (store.revision(), store.load(), store.add(conn("acme"))):
                with pytest.raises(StoreUnavailable):
                    await call
        finally:
            await store.close()


class TestSQLiteConnections(SQLConnectionsContract):
    @pytest.fixture
    def url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'connections.db'}"

    async def raw(self, store: SQLConnections) -> bytes:
        # The tables as rows, and every byte of the database files (WAL included).
        files = sorted(Path(str(store._engine.url.database)).parent.glob("connections.db*"))
        assert files
        return await super().raw(store) + b"".join(path.read_bytes() for path in files)


@pytest.mark.postgres
class TestPostgresConnections(SQLConnectionsContract):
    @pytest.fixture
    def url(self, postgres_url: str) -> str:
        return postgres_url


def test_the_store_refuses_bad_settings() -> None:
    good = [app_secret()]
    cases: list[tuple[dict[str, Any], str]] = [
        ({"secrets": []}, "needs secrets"),
        ({"secrets": "x" * 40}, "needs secrets"),
        ({"secrets": Secret("x" * 40)}, "needs secrets"),
        ({"secrets": [Secret("short")]}, "at least 32 bytes"),
        ({"secrets": good, "table_prefix": "bad-prefix"}, "table_prefix"),
        ({"secrets": good, "table_prefix": ""}, "table_prefix"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigurationError, match=message):
            SQLConnections("sqlite://", **kwargs)
    with pytest.raises(ConfigurationError, match="exactly one"):
        SQLConnections(secrets=good)
    with pytest.raises(ConfigurationError, match="sqlite:// or postgresql://"):
        SQLConnections("mysql://u:hunter2@db/x", secrets=good)


def test_the_repr_shows_no_password_and_no_secret() -> None:
    key = app_secret()
    store = SQLConnections("postgresql://user:hunter2@db.example/app", secrets=[key])
    shown = repr(store)
    assert "hunter2" not in shown
    assert "db.example" not in shown
    assert str(key.reveal()) not in shown
    assert shown == "SQLConnections(dialect='postgresql', table_prefix='asgi_sso_')"


async def test_an_unreachable_database_is_store_unavailable() -> None:
    store = SQLConnections("postgresql://postgres@127.0.0.1:1/test", secrets=[app_secret()])
    try:
        for call in (store.start(), store.revision(), store.load(), store.add(conn("acme"))):
            with pytest.raises(StoreUnavailable) as info:
                await call
            assert info.value.status == 503
    finally:
        await store.close()


async def test_a_corrupt_sqlite_file_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not a database file" * 100)
    store = SQLConnections(f"sqlite:///{path}", secrets=[app_secret()])
    try:
        with pytest.raises(StoreUnavailable):
            await store.start()
    finally:
        await store.close()


def test_the_domain_table_keys_each_domain_once() -> None:
    store = SQLConnections("sqlite://", secrets=[app_secret()])
    assert [c.name for c in store.domains.primary_key.columns] == ["domain"]
    uniques = [
        tuple(c.name for c in cons.columns)
        for cons in store.connections.constraints
        if isinstance(cons, sa.UniqueConstraint)
    ]
    assert ("iss_key",) in uniques
