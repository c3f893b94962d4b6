"""The connection model, its data form, the static store and file, and the live snapshot."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from joserfc.jwk import ECKey

from asgi_sso.config import Secret
from asgi_sso.connections import (
    Connection,
    ConnectionDirectory,
    ConnectionStore,
    LiveConnections,
    StaticConnections,
    connection_from_data,
    normalize_domain,
)
from asgi_sso.errors import (
    ConfigurationError,
    ConnectionConflict,
    StoreUnavailable,
    UnknownConnection,
)
from asgi_sso.observe.events import Emitter, Event
from asgi_sso.testing import FakeClock

BASE: dict[str, Any] = {"id": "acme", "issuer": "https://idp.acme.example", "audience": ("api",)}
SIGN_IN: dict[str, Any] = {**BASE, "client_id": "app", "client_secret": Secret("s3cret-value")}


def make(**changes: Any) -> Connection:
    return Connection(**{**BASE, **changes})


# -- Connection ---------------------------------------------------------------------------

REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"id": "Acme"}, r"Connection\.id 'Acme' must be 1-63 characters"),
    ({"id": ""}, r"Connection\.id '' must be"),
    ({"id": "-acme"}, r"Connection\.id '-acme' must be"),
    ({"id": "a" * 64}, r"Connection\.id 'a{64}' must be"),
    ({"name": "n" * 2049}, r"Connection\.name is too long"),
    ({"issuer": "https://x.example/{tenant}/{tenant}", "tenant": "t"}, "one '{tenant}' at most"),
    ({"issuer": "https://x.example/{tid}"}, "one '{tenant}' at most"),
    ({"tenant": "t1"}, "a tenant is given exactly when the issuer is a template"),
    ({"issuer": "https://x.example/{tenant}"}, "a tenant is given exactly when"),
    ({"issuer": "https://x.example/{tenant}", "tenant": "a/b"}, "tenant must be 1-128"),
    ({"issuer": "https://x.example/{tenant}", "tenant": "t" * 129}, "tenant must be 1-128"),
    ({"issuer": "http://idp.acme.example"}, "issuer 'http://idp.acme.example' must be an https"),
    ({"issuer": "idp.acme.example"}, "must be an https URL"),
    ({"discovery_url": "http://idp.example/x"}, "discovery_url .* must be an https URL"),
    ({"jwks_uri": "ftp://idp.example/keys"}, "jwks_uri .* must be an https URL"),
    ({"client_secret": Secret("s")}, "client credentials need a client_id"),
    ({"audience": ()}, "neither a client_id .* nor an audience"),
    ({"client_id": "", "client_secret": Secret("s")}, "client_id must not be empty"),
    ({"client_id": "app"}, "token_endpoint_auth='client_secret_basic' needs a client_secret"),
    (
        {"client_id": "a", "token_endpoint_auth": "private_key_jwt", "client_secret": Secret("s")},
        "token_endpoint_auth='private_key_jwt' takes no client_secret",
    ),
    (
        {"client_id": "a", "token_endpoint_auth": "private_key_jwt"},
        "a client_key goes with token_endpoint_auth='private_key_jwt'",
    ),
    (
        {"client_id": "a", "client_secret": Secret("s"), "client_key": Secret("k")},
        "a client_key goes with",
    ),
    ({"algorithms": ("HS256",)}, "algorithms must be asymmetric"),
    ({"algorithms": ()}, "algorithms must be asymmetric"),
    ({"user_claim": ""}, "user_claim must name a claim"),
    ({"audience": ("",)}, "each audience must be non-empty"),
    ({"scopes": ("profile",)}, "scopes must include 'openid'"),
    (
        {"domains": ("Acme.Example",)},
        "domain 'Acme.Example' must be a lowercase DNS name .*'acme.example'",
    ),
    ({"domains": ("localhost",)}, "domain 'localhost' must be a lowercase DNS name"),
    ({"domains": ("acme.example", "acme.example")}, "a domain is listed twice"),
    ({"domains": tuple(f"d{i}.example" for i in range(1001))}, "at most 1000 domains"),
    ({"not_before": float("nan")}, "not_before takes a float, got NaN"),
    ({"not_before": float("inf")}, "not_before must be a finite time"),
]


@pytest.mark.parametrize(("changes", "message"), REFUSALS)
def test_each_invalid_connection_is_refused_with_a_reason(
    changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        make(**changes)
    assert "s3cret" not in str(caught.value)


def test_a_templated_issuer_gives_the_concrete_issuer_and_its_urls() -> None:
    connection = make(
        issuer="https://login.example/{tenant}/v2.0",
        tenant="t-1",
        jwks_uri="https://login.example/{tenant}/keys",
    )
    assert connection.iss == "https://login.example/t-1/v2.0"
    issuer = connection.issuer_config()
    assert issuer.issuer == connection.iss
    assert issuer.jwks_uri == "https://login.example/t-1/keys"
    assert issuer.connection == "acme"


def test_http_is_allowed_to_a_loopback_issuer_only() -> None:
    assert make(issuer="http://127.0.0.1:8080").iss == "http://127.0.0.1:8080"
    assert make(issuer="http://localhost/realms/x").accepts_bearer
    with pytest.raises(ConfigurationError):
        make(issuer="http://127.0.0.1.evil.example")


def test_a_sign_in_only_connection_accepts_no_bearer_token() -> None:
    connection = Connection(**{**SIGN_IN, "audience": ()})
    assert not connection.accepts_bearer
    assert connection.issuer_config().audience == ("app",)
    assert not make(enabled=False).accepts_bearer
    assert make().label == "acme"
    assert make(name="Acme Corp").label == "Acme Corp"


def test_public_shows_whether_secrets_exist_never_what_they_are() -> None:
    connection = Connection(**SIGN_IN, scim_secret=Secret("scim-value"))
    public = connection.public()
    assert public["has_client_secret"] is True
    assert public["has_scim_secret"] is True
    assert public["has_client_key"] is False
    assert not {"client_secret", "scim_secret", "client_key"} & set(public)
    text = json.dumps(public) + repr(connection)
    assert "s3cret-value" not in text
    assert "scim-value" not in text


# -- connection_from_data -----------------------------------------------------------------


def test_data_builds_a_connection_with_secrets_wrapped() -> None:
    connection = connection_from_data(
        {
            "id": "acme",
            "issuer": "https://idp.acme.example",
            "client_id": "app",
            "client_secret": "from-data",
            "audience": ["api"],
            "domains": ["acme.example"],
            "tiers": {"default_tier": "free", "groups": {"admins": "pro"}},
        }
    )
    assert isinstance(connection.client_secret, Secret)
    assert connection.client_secret.reveal_str() == "from-data"
    assert connection.audience == ("api",)
    assert connection.domains == ("acme.example",)
    assert connection.tiers.groups == {"admins": "pro"}


def test_data_may_hold_secrets_already_opened() -> None:
    secret = Secret(b"\xff\x00binary")
    connection = connection_from_data({**SIGN_IN, "client_secret": secret})
    assert connection.client_secret is secret


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({**BASE, "colour": "red"}, "invalid connection: .*colour"),
        ({**BASE, "audience": 7}, "invalid connection: Expected `array`"),
        ({**BASE, "enabled": "maybe"}, "invalid connection"),
        (
            {**BASE, "client_id": "a", "client_secret": ""},
            "client_secret must be a non-empty string",
        ),
        (
            {**BASE, "client_id": "a", "client_secret": 12},
            "client_secret must be a non-empty string",
        ),
        ({**BASE, "domains": ["ACME.example"]}, "must be a lowercase DNS name"),
        ({"issuer": "https://x.example"}, "invalid connection: Object missing required field `id`"),
    ],
)
def test_bad_data_is_a_configuration_error(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        connection_from_data(data)


# -- StaticConnections and its file -------------------------------------------------------

TOML = """
[[connections]]
id = "acme"
issuer = "https://idp.acme.example"
client_id = "app"
client_secret = { env = "ACME_SECRET" }
domains = ["acme.example"]

[[connections]]
id = "globex"
issuer = "https://login.example/{tenant}/v2.0"
tenant = "globex-tenant"
audience = ["api"]
scim_secret = "written-in-place"
"""


def test_a_toml_file_with_env_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_SECRET", "from-the-environment")
    path = tmp_path / "connections.toml"
    path.write_text(TOML)
    store = StaticConnections.from_file(path)
    acme = asyncio.run(store.get("acme"))
    assert acme is not None
    assert acme.client_secret is not None
    assert acme.client_secret.reveal_str() == "from-the-environment"
    globex = asyncio.run(store.get("globex"))
    assert globex is not None
    assert globex.iss == "https://login.example/globex-tenant/v2.0"
    assert globex.scim_secret == Secret("written-in-place")


def test_a_json_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCIM", "scim-from-env")
    path = tmp_path / "connections.json"
    path.write_text(json.dumps([{**BASE, "audience": ["api"], "scim_secret": {"env": "SCIM"}}]))
    _, items = asyncio.run(StaticConnections.from_file(path).load())
    assert [c.id for c in items] == ["acme"]
    assert items[0].scim_secret == Secret("scim-from-env")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.toml", "[[connections]\nid = 1", "is not valid TOML"),
        ("c.json", "[{", "is not valid JSON"),
        ("c.json", b"\xff\xfe[]", "is not valid JSON"),
        ("c.toml", b"id = '\xff'", "is not valid TOML"),
        ("c.json", '{"connections": []}', "expected a list of connections"),
        ("c.json", "[1, 2]", "expected a list of connections"),
        ("c.toml", "connections = 3", "expected a list of connections"),
        ("c.yaml", "connections: []", "a connections file is .toml or .json"),
        ("c.json", '[{"id": "acme"}]', "invalid connection"),
        (
            "c.json",
            json.dumps(
                [{**BASE, "audience": ["a"], "client_id": "a", "client_secret": {"env": 3}}]
            ),
            'client_secret is a string or {env = "NAME"}',
        ),
        (
            "c.json",
            json.dumps([{**BASE, "audience": ["a"], "scim_secret": {"env": "X", "y": 1}}]),
            'scim_secret is a string or {env = "NAME"}',
        ),
        (
            "c.json",
            json.dumps([{**BASE, "audience": ["a"], "scim_secret": {"env": "ASGI_SSO_UNSET_VAR"}}]),
            "environment variable 'ASGI_SSO_UNSET_VAR', which is unset",
        ),
        (
            "c.json",
            json.dumps([{**BASE, "audience": ["a"]}, {**BASE, "audience": ["b"]}]),
            "connection 'acme' is listed twice",
        ),
    ],
)
def test_a_malformed_file_is_a_configuration_error(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=message):
        StaticConnections.from_file(path)


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read connections from"):
        StaticConnections.from_file(tmp_path / "absent.toml")


def _rewrite(path: Path, text: str) -> None:
    path.write_text(text)
    stat = path.stat()
    # A new mtime even on a coarse filesystem clock, as an editor's save gives.
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


async def test_a_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    path.write_text(json.dumps([{**BASE, "audience": ["api"]}]))
    store = StaticConnections.from_file(path)
    first = await store.revision()
    assert await store.revision() == first
    _rewrite(path, path.read_text())  # touched, same content
    assert await store.revision() == first
    _rewrite(path, json.dumps([{**BASE, "audience": ["api"], "name": "Acme Inc"}]))
    second = await store.revision()
    assert second != first
    revision, items = await store.load()
    assert revision == second
    assert [c.name for c in items] == ["Acme Inc"]


async def test_a_file_broken_by_an_edit_keeps_the_last_good_connections(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    path.write_text(json.dumps([{**BASE, "audience": ["api"]}]))
    store = StaticConnections.from_file(path)
    good = await store.revision()
    _rewrite(path, "[{")
    with pytest.raises(ConfigurationError, match="is not valid JSON"):
        await store.revision()
    assert (await store.get("acme")) is not None
    _rewrite(path, json.dumps([{**BASE, "audience": ["api"], "id": "globex"}]))
    assert await store.revision() != good
    assert [c.id for c in (await store.load())[1]] == ["globex"]


async def test_a_file_store_is_changed_by_editing_the_file(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    path.write_text("[]")
    store = StaticConnections.from_file(path)
    for call in (store.add(make()), store.update(make()), store.delete("acme")):
        with pytest.raises(ConfigurationError, match="edit it"):
            await call


async def test_the_static_store_refuses_what_the_directory_would() -> None:
    store = StaticConnections([make(domains=("acme.example",))])
    with pytest.raises(ConnectionConflict, match="exists already"):
        await store.add(make())
    with pytest.raises(ConnectionConflict, match=r"acme\.example"):
        await store.add(make(id="globex", issuer="https://g.example", domains=("acme.example",)))
    with pytest.raises(UnknownConnection):
        await store.update(make(id="nobody", issuer="https://n.example"))
    with pytest.raises(UnknownConnection):
        await store.delete("nobody")


def test_a_static_store_from_a_conflicting_list_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="same issuer"):
        StaticConnections([make(), make(id="globex")])


# -- LiveConnections ----------------------------------------------------------------------


class CountingStore:
    """A static store that counts the reads made of it and can be made to fail."""

    def __init__(self, connections: list[Connection]) -> None:
        self.inner = StaticConnections(connections)
        self.revisions = 0
        self.loads = 0
        self.started = 0
        self.closed = 0
        self.failing = False
        self.forced: list[Connection] | None = None

    async def start(self) -> None:
        self.started += 1

    async def close(self) -> None:
        self.closed += 1

    async def revision(self) -> str:
        self.revisions += 1
        if self.failing:
            raise StoreUnavailable("down")
        return await self.inner.revision()

    async def load(self) -> tuple[str, list[Connection]]:
        self.loads += 1
        revision, items = await self.inner.load()
        if self.forced is not None:
            return revision + "!", self.forced
        return revision, items

    async def get(self, connection_id: str) -> Connection | None:
        return await self.inner.get(connection_id)

    async def add(self, connection: Connection) -> None:
        await self.inner.add(connection)

    async def update(self, connection: Connection) -> None:
        await self.inner.update(connection)

    async def delete(self, connection_id: str) -> None:
        await self.inner.delete(connection_id)


INTERVAL = 0.02
"""The background check's period in these tests, seconds (real time, kept short)."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
async def live(clock: FakeClock, events: list[Event]) -> AsyncIterator[LiveConnections]:
    store = CountingStore([make(domains=("acme.example",))])
    live = LiveConnections(
        store, clock=clock, poll_interval=INTERVAL, emitter=Emitter([events.append])
    )
    await live.start()
    yield live
    await live.close()


def counting(live: LiveConnections) -> CountingStore:
    assert isinstance(live.store, ConnectionStore)
    assert isinstance(live.store, CountingStore)
    return live.store


async def until(condition: Callable[[], bool], *, steps: int = 300) -> None:
    """Wait (bounded, about three seconds) for the background task to make ``condition`` true."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the background check did not get there in time")


async def test_start_opens_the_store_and_loads_the_first_snapshot(live: LiveConnections) -> None:
    store = counting(live)
    assert (store.started, store.loads) == (1, 1)
    assert live.directory.for_email("jo@acme.example").id == "acme"  # type: ignore[union-attr]


async def test_the_store_is_asked_periodically_and_loaded_only_when_it_moved(
    live: LiveConnections,
) -> None:
    store = counting(live)
    await until(lambda: store.revisions >= 3)
    assert store.loads == 1  # the revision never moved


async def test_a_moved_revision_loads_a_new_snapshot_and_tells_listeners(
    live: LiveConnections,
) -> None:
    store = counting(live)
    seen: list[tuple[ConnectionDirectory, ConnectionDirectory]] = []
    live.subscribe(lambda old, new: seen.append((old, new)))
    before = live.directory
    await store.add(make(id="globex", issuer="https://g.example", domains=("globex.example",)))
    await until(lambda: live.directory is not before)
    assert store.loads == 2
    assert live.directory.for_email("x@globex.example").id == "globex"  # type: ignore[union-attr]
    assert len(seen) == 1
    assert seen[0][0] is before
    assert seen[0][1] is live.directory
    assert "globex" not in before  # the old snapshot never changes


async def test_an_announced_change_is_checked_at_once(clock: FakeClock) -> None:
    store = CountingStore([make(domains=("acme.example",))])
    live = LiveConnections(store, clock=clock, poll_interval=3600)
    await live.start()
    await store.update(make(enabled=False, domains=("acme.example",)))
    await asyncio.sleep(0.05)
    assert live.directory.for_email("jo@acme.example") is not None  # not due for an hour
    live.changed()
    await until(lambda: live.directory.for_email("jo@acme.example") is None)
    assert store.revisions == 1
    await live.close()


async def test_a_store_error_keeps_the_last_snapshot_and_emits_an_event(
    clock: FakeClock, events: list[Event]
) -> None:
    store = CountingStore([make(domains=("acme.example",))])
    live = LiveConnections(store, clock=clock, poll_interval=3600, emitter=Emitter([events.append]))
    await live.start()
    kept = live.directory
    store.failing = True
    assert await live.check() is False
    assert live.directory is kept
    assert [(e.name, e.outcome, e.reason) for e in events] == [
        ("connections.reload", "error", "StoreUnavailable")
    ]
    assert events[0].time == clock.time()
    store.failing = False
    await store.delete("acme")
    assert await live.check() is True
    assert len(live.directory) == 0
    await live.close()


async def test_a_conflicting_load_keeps_the_last_snapshot(
    live: LiveConnections, events: list[Event]
) -> None:
    store = counting(live)
    kept = live.directory
    store.forced = [make(), make(id="globex")]  # one issuer twice: a store that let it in
    assert await live.reload() is kept
    assert live.directory is kept
    assert [(e.outcome, "same issuer" in (e.reason or "")) for e in events] == [("error", True)]


async def test_admit_leaves_out_refused_connections_and_says_why_once(
    clock: FakeClock, events: list[Event]
) -> None:
    store = CountingStore(
        [make(domains=("acme.example",)), make(id="legacy", issuer="https://legacy.example")]
    )
    live = LiveConnections(
        store,
        clock=clock,
        poll_interval=INTERVAL,
        emitter=Emitter([events.append]),
        admit=lambda c: "collides with a configured issuer" if c.id == "legacy" else None,
    )
    await live.start()
    assert [c.id for c in live.directory] == ["acme"]
    assert live.refused == {"legacy": "collides with a configured issuer"}
    await live.reload()
    refused = [e for e in events if e.outcome == "refused"]
    assert len(refused) == 1
    assert refused[0].reason == "connection 'legacy': collides with a configured issuer"
    await store.delete("legacy")
    await live.reload()
    assert live.refused == {}


async def test_an_admission_check_that_raises_refuses_that_connection_only(
    clock: FakeClock, events: list[Event]
) -> None:
    def admit(connection: Connection) -> str | None:
        if connection.id == "broken":
            raise RuntimeError("a bug in the check")
        return None

    acme = make()
    store = CountingStore([acme, make(id="broken", issuer="https://broken.example")])
    live = LiveConnections(store, clock=clock, poll_interval=3600,
                           emitter=Emitter([events.append]), admit=admit)  # fmt: skip
    await live.start()
    assert [c.id for c in live.directory] == ["acme"]
    assert live.refused == {"broken": "it could not be checked (RuntimeError)"}
    refused = [e.reason for e in events if e.outcome == "refused"]
    assert refused == ["connection 'broken': it could not be checked (RuntimeError)"]
    # The snapshot still follows the store: a disable applies.
    await store.update(_disabled(acme))
    assert await live.check()
    found = live.directory.get("acme")
    assert found is not None
    assert not found.enabled
    await live.close()


def _disabled(connection: Connection) -> Connection:
    return msgspec.structs.replace(connection, enabled=False)


async def test_close_stops_the_background_check_and_closes_the_store(
    live: LiveConnections,
) -> None:
    store = counting(live)
    await until(lambda: store.revisions >= 1)
    await live.close()
    assert store.closed == 1
    revisions = store.revisions
    await asyncio.sleep(INTERVAL * 5)
    assert store.revisions == revisions  # nothing asks the store after close


async def test_a_store_raising_anything_leaves_the_poller_running(clock: FakeClock) -> None:
    # A store of the app's own may raise what it likes; the worker must keep polling, or
    # it would never see another change (a disable included).
    store = CountingStore([make(domains=("acme.example",))])
    live = LiveConnections(store, clock=clock, poll_interval=INTERVAL)
    await live.start()
    original = store.revision
    failures = 0

    async def flaky() -> str:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise ConnectionResetError("peer reset")
        return await original()

    store.revision = flaky  # type: ignore[method-assign]
    await store.update(make(enabled=False, domains=("acme.example",)))
    await until(lambda: live.directory.for_email("jo@acme.example") is None)
    assert failures == 3
    await live.close()


def test_a_deeply_nested_file_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "connections.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ConfigurationError):
        StaticConnections.from_file(path)


def test_domains_are_spelt_as_browsers_spell_them() -> None:
    # IDNA 2008 (UTS #46): "straße.de" is its own domain, not "strasse.de".
    assert normalize_domain("straße.de") == "xn--strae-oqa.de"
    assert normalize_domain("xn--strae-oqa.de") == "xn--strae-oqa.de"
    assert normalize_domain("strasse.de") == "strasse.de"


# -- keys a connection publishes beside its client_key ------------------------------------------


_EC_KEY = ECKey.generate_key("P-256")
_NEXT = ECKey.generate_key("P-256")


def _keyed(**changes: Any) -> Connection:
    return make(
        client_id="app",
        client_key=Secret(_EC_KEY.as_pem(private=True)),
        token_endpoint_auth="private_key_jwt",
        **changes,
    )


def test_a_connection_publishes_public_keys_and_keeps_them_in_its_data() -> None:
    public = _NEXT.as_pem(private=False).decode()
    connection = _keyed(published_keys=(public,))
    assert connection.published_keys == (public,)
    assert list(connection.public()["published_keys"]) == [public]
    data = {
        **BASE,
        "client_id": "app",
        "token_endpoint_auth": "private_key_jwt",
        "client_key": _EC_KEY.as_pem(private=True).decode(),
        "published_keys": [public],
    }
    assert connection_from_data(data) == connection


@pytest.mark.parametrize(
    ("published", "message"),
    [
        ((_NEXT.as_pem(private=True).decode(),), r"published_keys\[0\] is a private key"),
        (("not a key",), r"published_keys\[0\] is not a readable"),
        (
            (json.dumps({**_NEXT.as_dict(private=False), "k": "c2VjcmV0"}),),
            r"published_keys\[0\].*private members",
        ),
        (tuple(_NEXT.as_pem(private=False).decode() for _ in range(9)), "at most 8"),
    ],
    ids=["private", "unreadable", "private-members", "too-many"],
)
def test_unusable_published_keys_are_refused_without_showing_them(
    published: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        _keyed(published_keys=published)
    assert "BEGIN" not in str(caught.value)


def test_published_keys_go_with_a_client_key() -> None:
    with pytest.raises(ConfigurationError, match="published_keys go with client_key"):
        make(
            client_id="app",
            client_secret=Secret("s"),
            published_keys=(_NEXT.as_pem(private=False).decode(),),
        )


@pytest.mark.parametrize(
    "published",
    [(_NEXT.as_pem(private=True).decode(),), ("junk",) * 1000],
    ids=["private-key", "unbounded"],
)
def test_a_bearer_only_connection_takes_no_published_keys(published: tuple[str, ...]) -> None:
    # Without a client_id there is no client_key to publish beside: nothing is stored.
    with pytest.raises(ConfigurationError, match="published_keys go with client_key") as caught:
        make(published_keys=published)
    assert "BEGIN" not in str(caught.value)
