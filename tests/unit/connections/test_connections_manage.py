"""ConnectionAdmin: each operation, its checks, its announcement and its audit event."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.config import Secret
from asgi_sso.connections import Connection, StaticConnections
from asgi_sso.connections.manage import (
    ConnectionAdmin,
    announce_on,
    connection_from_input,
    merge_patch,
)
from asgi_sso.errors import (
    ConnectionChangeError,
    ConnectionConflict,
    StoreUnavailable,
    UnknownConnection,
)
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock

SECRET = "client-secret-value-0123456789"


def acme(**changes: Any) -> Connection:
    values: dict[str, Any] = {
        "id": "acme",
        "name": "Acme",
        "issuer": "https://idp.acme.example",
        "audience": ["api://app"],
        "client_id": "app",
        "client_secret": SECRET,
        "domains": ["acme.com"],
        "tiers": {"default_tier": "pro", "groups": {"admins": "enterprise"}},
    }
    values.update(changes)
    return connection_from_input(values)


class Recorder:
    def __init__(self) -> None:
        self.announced: list[str] = []
        self.events: list[Event] = []

    async def announce(self, connection_id: str) -> None:
        self.announced.append(connection_id)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


@pytest.fixture
def admin(clock: FakeClock, seen: Recorder) -> ConnectionAdmin:
    return ConnectionAdmin(
        StaticConnections([acme()]),
        clock=clock,
        announce=seen.announce,
        emitter=Emitter([seen.events.append]),
    )


async def test_list_is_sorted_by_id_and_show_finds_one(admin: ConnectionAdmin) -> None:
    await admin.add(acme(id="zeta", issuer="https://z.example", domains=[]))
    await admin.add(acme(id="beta", issuer="https://b.example", domains=[]))
    assert [c.id for c in await admin.list()] == ["acme", "beta", "zeta"]
    assert (await admin.show("beta")).issuer == "https://b.example"


@pytest.mark.parametrize("connection_id", ["nope", "", "UPPER", "x" * 500, "../acme"])
async def test_show_of_an_unknown_or_malformed_id_is_unknown(
    admin: ConnectionAdmin, connection_id: str
) -> None:
    with pytest.raises(UnknownConnection) as caught:
        await admin.show(connection_id)
    assert caught.value.status == 404
    assert len(str(caught.value)) < 120


async def test_add_writes_announces_and_emits(admin: ConnectionAdmin, seen: Recorder) -> None:
    new = acme(id="globex", issuer="https://idp.globex.example", domains=["globex.com"])
    assert await admin.add(new) == new
    assert await admin.store.get("globex") == new
    assert seen.announced == ["globex"]
    assert [(e.name, e.reason, e.connection, e.outcome) for e in seen.events] == [
        ("connections.change", "add", "globex", "ok")
    ]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({}, "exists already"),
        ({"id": "other"}, "same issuer"),
        ({"id": "other", "issuer": "https://o.example"}, "acme.com"),
    ],
)
async def test_add_refuses_a_taken_id_issuer_or_domain_before_writing(
    admin: ConnectionAdmin, seen: Recorder, changes: dict[str, Any], words: str
) -> None:
    before = await admin.store.revision()
    with pytest.raises(ConnectionConflict, match=words) as caught:
        await admin.add(acme(**changes))
    assert caught.value.status == 409
    assert await admin.store.revision() == before
    assert seen.announced == []


async def test_admit_refusal_is_a_422_before_writing(clock: FakeClock) -> None:
    def admit(connection: Connection) -> str | None:
        return "names the unknown tier 'gold'" if connection.tiers.default_tier == "gold" else None

    admin = ConnectionAdmin(StaticConnections(), clock=clock, admit=admit)
    with pytest.raises(ConnectionChangeError, match="unknown tier 'gold'") as caught:
        await admin.add(acme(tiers={"default_tier": "gold"}))
    assert caught.value.status == 422
    assert await admin.list() == []


async def test_an_admission_check_that_raises_is_a_422_before_writing(clock: FakeClock) -> None:
    def admit(connection: Connection) -> str | None:
        raise RuntimeError("a bug in the check")

    admin = ConnectionAdmin(StaticConnections(), clock=clock, admit=admit)
    with pytest.raises(
        ConnectionChangeError, match=r"could not be checked \(RuntimeError\)"
    ) as caught:
        await admin.add(acme())
    assert caught.value.status == 422
    assert await admin.list() == []


async def test_update_is_a_merge_patch_validated_as_a_whole(
    admin: ConnectionAdmin, seen: Recorder
) -> None:
    changed = await admin.update(
        "acme",
        {"name": "Acme Corp", "domains": ["ACME.io"], "tiers": {"groups": {"ops": "pro"}}},
    )
    assert changed.name == "Acme Corp"
    assert changed.domains == ("acme.io",)  # a list replaces; a domain is normalised
    assert changed.tiers.default_tier == "pro"  # members of an object merge
    assert dict(changed.tiers.groups) == {"admins": "enterprise", "ops": "pro"}
    assert changed.client_secret == Secret(SECRET)  # untouched secrets are kept
    assert await admin.store.get("acme") == changed
    assert seen.announced == ["acme"]


async def test_update_with_null_removes_a_secret_and_a_group(admin: ConnectionAdmin) -> None:
    changed = await admin.update(
        "acme",
        {
            "client_secret": None,
            "client_id": None,
            "tiers": {"groups": {"admins": None}},
        },
    )
    assert changed.client_secret is None
    assert dict(changed.tiers.groups) == {}
    assert changed.public()["has_client_secret"] is False


@pytest.mark.parametrize(
    ("changes", "error", "words"),
    [
        ({"id": "renamed"}, ConnectionChangeError, "never changes"),
        ({"issuer": "http://idp.example"}, ConnectionChangeError, "https"),
        ({"colour": "blue"}, ConnectionChangeError, "colour"),
        ({"audience": "api://app"}, ConnectionChangeError, "audience"),
        ({"client_secret": None}, ConnectionChangeError, "needs a client_secret"),
    ],
)
async def test_update_refuses_invalid_results_and_writes_nothing(
    admin: ConnectionAdmin,
    seen: Recorder,
    changes: dict[str, Any],
    error: type[Exception],
    words: str,
) -> None:
    before = await admin.store.revision()
    with pytest.raises(error, match=words):
        await admin.update("acme", changes)
    assert await admin.store.revision() == before
    assert seen.announced == []


async def test_update_refuses_a_domain_of_another_connection(admin: ConnectionAdmin) -> None:
    await admin.add(acme(id="globex", issuer="https://g.example", domains=["globex.com"]))
    with pytest.raises(ConnectionConflict, match=r"globex\.com"):
        await admin.update("acme", {"domains": ["acme.com", "globex.com"]})


async def test_update_of_an_unknown_connection_is_unknown(admin: ConnectionAdmin) -> None:
    with pytest.raises(UnknownConnection):
        await admin.update("nope", {"name": "x"})


async def test_disable_sets_not_before_now_and_enable_keeps_it(
    admin: ConnectionAdmin, seen: Recorder, clock: FakeClock
) -> None:
    disabled = await admin.disable("acme")
    assert disabled.enabled is False
    assert disabled.not_before == clock.time()
    clock.advance(60)
    assert await admin.disable("acme") == disabled  # already disabled: nothing written
    enabled = await admin.enable("acme")
    assert enabled.enabled is True
    # Sessions opened before the disable stay refused after it is enabled again.
    assert enabled.not_before == disabled.not_before
    assert await admin.enable("acme") == enabled
    assert seen.announced == ["acme", "acme"]
    assert [e.reason for e in seen.events] == ["disable", "enable"]


async def test_update_turning_enabled_off_ends_earlier_sessions_too(
    admin: ConnectionAdmin, clock: FakeClock
) -> None:
    changed = await admin.update("acme", {"enabled": False})
    assert (changed.enabled, changed.not_before) == (False, clock.time())


async def test_delete_removes_and_announces(admin: ConnectionAdmin, seen: Recorder) -> None:
    await admin.delete("acme")
    assert await admin.store.get("acme") is None
    assert seen.announced == ["acme"]
    with pytest.raises(UnknownConnection):
        await admin.delete("acme")


async def test_a_failed_announcement_leaves_the_change_in_place(
    clock: FakeClock, seen: Recorder
) -> None:
    async def broken(connection_id: str) -> None:
        raise StoreUnavailable("redis down")

    admin = ConnectionAdmin(
        StaticConnections([acme()]),
        clock=clock,
        announce=broken,
        emitter=Emitter([seen.events.append]),
    )
    await admin.disable("acme")
    assert (await admin.show("acme")).enabled is False
    assert [e.outcome for e in seen.events] == ["unannounced"]


async def test_a_store_read_from_a_file_refuses_writes_as_a_change_error(
    tmp_path: Any, clock: FakeClock
) -> None:
    path = tmp_path / "connections.json"
    path.write_text('[{"id": "acme", "issuer": "https://idp.acme.example", "audience": ["a"]}]')
    admin = ConnectionAdmin(StaticConnections.from_file(path), clock=clock)
    with pytest.raises(ConnectionChangeError, match="edit it"):
        await admin.disable("acme")


async def test_announce_on_publishes_a_connection_revocation(clock: FakeClock) -> None:
    bus = RevocationBus()
    heard: list[Revocation] = []
    bus.subscribe(heard.append)
    admin = ConnectionAdmin(
        StaticConnections([acme()]), clock=clock, announce=announce_on(bus, clock)
    )
    await admin.update("acme", {"name": "New"})
    assert heard == [Revocation(kind="connection", connection="acme", time=clock.time())]


def test_merge_patch_follows_rfc_7396() -> None:
    # RFC 7396 Appendix A, a few of its examples.
    assert merge_patch({"a": "b"}, {"a": "c"}) == {"a": "c"}
    assert merge_patch({"a": "b"}, {"a": None}) == {}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch({"e": None}, {"a": 1}) == {"e": None, "a": 1}
    assert merge_patch({}, {"a": {"bb": {"ccc": None}}}) == {"a": {"bb": {}}}
    assert merge_patch({"a": "foo"}, "bar") == "bar"


def test_merge_patch_refuses_deep_nesting() -> None:
    deep: dict[str, Any] = {}
    for _ in range(20):
        deep = {"x": deep}
    with pytest.raises(ConnectionChangeError, match="deeply"):
        merge_patch({}, deep)


def test_connection_from_input_maps_invalid_data_to_422() -> None:
    with pytest.raises(ConnectionChangeError) as caught:
        connection_from_input(
            {"id": "x", "issuer": "https://x.example", "audience": ["a"], "domains": ["not a"]}
        )
    assert caught.value.status == 422
    assert "not a" in str(caught.value)
