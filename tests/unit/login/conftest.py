"""Fixtures of the sign-in unit tests: a fake clock and a DPoP key that reads it."""

from __future__ import annotations

import pytest

from asgi_sso.login.dpop import DPoPKey
from asgi_sso.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key(clock: FakeClock) -> DPoPKey:
    return DPoPKey.generate(clock)
