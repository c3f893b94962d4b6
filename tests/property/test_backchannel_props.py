"""A provider logout ends exactly the sessions it names, in every session mode.

Generated sessions of two issuers, a few ID-token subjects (some behind another
user key, as with Entra's ``oid``) and a few IdP ``sid`` values; a generated
logout (``iss`` with ``sub``, ``sid`` or both) goes through the sign-in
component's revocation listener. A session ends if and only if it was signed
in at that issuer and matches every part the logout names (OIDC Back-Channel
Logout 1.0 §2.7).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from asgi_sso.config import Secret
from asgi_sso.identity.revocation import Revocation, RevocationBus
from asgi_sso.login import LoginConfig
from asgi_sso.login.sessions import SessionCookies
from asgi_sso.sessions import MemorySessionStore, SessionInvalid, SessionRecord, SessionStore
from asgi_sso.testing import FakeClock

ISSUERS = ("https://idp.example", "https://other.example")
CONFIG = LoginConfig(
    issuer=ISSUERS[0],
    client_id="web",
    client_secret=Secret("web-secret-web-secret"),
    cookie_secrets=(Secret(b"k" * 32),),
)

# (issuer, ID-token sub, sid, user key differs from sub)
session_shapes = st.tuples(
    st.sampled_from(ISSUERS),
    st.sampled_from(("s1", "s2", "s3")),
    st.one_of(st.none(), st.sampled_from(("x1", "x2", "x3"))),
    st.booleans(),
)
logouts = st.tuples(
    st.sampled_from(ISSUERS),
    st.one_of(st.none(), st.sampled_from(("s1", "s2", "s3", "oid-s1"))),
    st.one_of(st.none(), st.sampled_from(("x1", "x2", "x3"))),
).filter(lambda logout: logout[1] is not None or logout[2] is not None)


def _records(shapes: list[tuple[str, str, str | None, bool]], now: float) -> list[SessionRecord]:
    return [
        SessionRecord(
            id=f"session-{n}",
            subject=f"oid-{sub}" if keyed else sub,
            sub=sub if keyed else None,
            issuer=issuer,
            connection="acme",  # a logout names no connection: one for all
            client_id=CONFIG.client_id,
            sid=sid,
            created_at=now - 10,
            last_seen=now,
            expires_at=now + 3600,
        )
        for n, (issuer, sub, sid, keyed) in enumerate(shapes)
    ]


def _named(record: SessionRecord, issuer: str, sub: str | None, sid: str | None) -> bool:
    """The oracle, written from the spec rather than from the stores."""
    raw_sub = record.sub if record.sub is not None else record.subject
    return (
        record.issuer == issuer
        and (sub is None or raw_sub == sub)
        and (sid is None or record.sid == sid)
    )


async def _ended(
    store: SessionStore | None, records: list[SessionRecord], logout: tuple[Any, ...]
) -> set[str]:
    """Apply ``logout`` through the sign-in revocation listener; return the ended ids."""
    clock = FakeClock()
    clock.now = records[0].last_seen if records else clock.now
    sessions = SessionCookies(CONFIG, store=store, clock=clock, revocations=RevocationBus())
    values = {}
    for record in records:
        if store is not None:
            await store.create(record)
        [header] = sessions.issue(record, {}, "")
        values[record.id] = header[1].decode().split(";")[0].partition("=")[2]
    # A session of another issuer never opens in this app (sessions are bound to the
    # sign-in issuer and client): only sessions live before the logout can end by it.
    live_before = await _live(sessions, records, values)
    assert live_before == {r.id for r in records if r.issuer == CONFIG.issuer}
    issuer, sub, sid = logout
    await sessions.on_revocation(
        Revocation(kind="logout", issuer=issuer, subject=sub, session_id=sid, time=clock.now)
    )
    return live_before - await _live(sessions, records, values)


async def _live(
    sessions: SessionCookies, records: list[SessionRecord], values: dict[str, str]
) -> set[str]:
    live = set()
    for record in records:
        try:
            await sessions.live(values[record.id], {}, "")
        except SessionInvalid:
            continue
        live.add(record.id)
    return live


def _check(store: SessionStore | None, shapes: Any, logout: Any) -> None:
    records = _records(shapes, FakeClock().now)
    assert asyncio.run(_ended(store, records, logout)) == _expected(records, logout)


def _expected(records: list[SessionRecord], logout: tuple[Any, ...]) -> set[str]:
    return {r.id for r in records if _named(r, *logout) and r.issuer == CONFIG.issuer}


EXAMPLE_SHAPES = [
    (ISSUERS[0], "s1", "x1", True),
    (ISSUERS[1], "s1", "x1", False),
    (ISSUERS[0], "s2", "x1", False),
]


@settings(max_examples=200, deadline=None)
@given(st.lists(session_shapes, max_size=8), logouts)
@example(EXAMPLE_SHAPES, (ISSUERS[0], "s1", None))
@example(EXAMPLE_SHAPES, (ISSUERS[0], None, "x1"))
@example(EXAMPLE_SHAPES, (ISSUERS[0], "s2", "x1"))
@example(EXAMPLE_SHAPES, (ISSUERS[0], "oid-s1", None))
def test_a_logout_ends_exactly_the_cookie_only_sessions_it_names(
    shapes: list[tuple[str, str, str | None, bool]], logout: tuple[Any, ...]
) -> None:
    _check(None, shapes, logout)


@settings(max_examples=200, deadline=None)
@given(st.lists(session_shapes, max_size=8), logouts)
@example(EXAMPLE_SHAPES, (ISSUERS[0], "s1", "x1"))
def test_a_logout_ends_exactly_the_memory_sessions_it_names(
    shapes: list[tuple[str, str, str | None, bool]], logout: tuple[Any, ...]
) -> None:
    _check(MemorySessionStore(clock=FakeClock()), shapes, logout)


@pytest.mark.redis
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(session_shapes, max_size=6), logouts)
@example(EXAMPLE_SHAPES, (ISSUERS[0], "s1", "x1"))
def test_a_logout_ends_exactly_the_redis_sessions_it_names(
    redis_url: str, shapes: list[tuple[str, str, str | None, bool]], logout: tuple[Any, ...]
) -> None:
    from asgi_sso.sessions.redis import RedisSessionStore

    async def run() -> None:
        prefix = f"asgi_sso_test:{uuid.uuid4().hex}:"
        store = RedisSessionStore(redis_url, prefix=prefix, clock=FakeClock())
        records = _records(shapes, FakeClock().now)
        try:
            ended = await _ended(store, records, logout)
        finally:
            redis = store._redis
            keys = [key async for key in redis.scan_iter(match=prefix + "*")]
            if keys:
                await redis.delete(*keys)
            await store.close()
        assert ended == _expected(records, logout)

    asyncio.run(run())
