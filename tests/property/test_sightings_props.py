"""The cache's admission filter: no token sighted within a generation is ever reported new.

Small filters make collisions and generation ends frequent, which is where a
mistake would show; a false positive (a new token reported seen) is allowed.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_sso.verify.sightings import Sightings


@given(
    tokens=st.lists(st.text(max_size=12), max_size=300),
    size=st.sampled_from([1, 2, 16, 1024]),
    marks=st.integers(min_value=1, max_value=40),
)
def test_a_token_sighted_within_the_last_generation_is_seen(
    tokens: list[str], size: int, marks: int
) -> None:
    filter_ = Sightings(size, marks)
    history: list[str] = []
    for token in tokens:
        seen = filter_.sight(token)
        if token in history[-marks:]:
            assert seen, (token, history[-marks:])
        history.append(token)


@given(tokens=st.lists(st.text(max_size=12), min_size=1, max_size=50, unique=True))
def test_new_tokens_are_reported_new_by_a_roomy_filter(tokens: list[str]) -> None:
    filter_ = Sightings()
    reported = [filter_.sight(token) for token in tokens]
    # 2**23 bits for at most 50 tokens: a collision is about one chance in 7,000 per
    # example; allow one so the test cannot flake, while a filter that reports
    # everything seen still fails.
    assert sum(reported) <= 1
    assert all(filter_.sight(token) for token in tokens)


def test_clear_forgets_and_bad_shapes_are_refused() -> None:
    filter_ = Sightings(16, 4)
    assert not filter_.sight("a")
    filter_.clear()
    assert not filter_.sight("a")
    assert filter_.nbytes == 32
    for size, marks in ((3, 4), (0, 4), (16, 0)):
        with pytest.raises(ValueError, match="power of two"):
            Sightings(size, marks)
