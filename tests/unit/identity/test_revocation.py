from __future__ import annotations

import pytest

from asgi_sso.identity.revocation import Revocation, RevocationBus


async def test_every_listener_runs_in_order_even_when_one_fails() -> None:
    bus = RevocationBus()
    seen: list[str] = []

    def first(r: Revocation) -> None:
        seen.append("first")
        raise RuntimeError("store down")

    async def second(r: Revocation) -> None:
        seen.append(f"second:{r.subject}")

    bus.subscribe(first)
    bus.subscribe(second)
    with pytest.raises(RuntimeError, match="store down"):
        await bus.publish(Revocation(kind="user", connection="acme", subject="ann"))
    assert seen == ["first", "second:ann"]


async def test_local_bus_start_and_close_are_harmless() -> None:
    bus = RevocationBus()
    gaps: list[int] = []
    bus.subscribe_gaps(lambda: gaps.append(1))
    await bus.start()
    await bus.close()
    assert gaps == []  # an in-process bus never misses a revocation
