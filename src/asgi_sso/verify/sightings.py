"""Which tokens were seen before: the admission filter of the verified-token cache.

Most tokens an API sees come back (a client sends one token until it expires), but
some never do: one-off tokens, a flood of distinct tokens. Caching a token only on
its second sighting keeps those out of the cache, so they neither cost an insert
(and the memory it keeps) nor push out the tokens that do come back. The first
sighting costs a string hash and a bit test, and skips the keyed digest.

The filter is two generations of a bit array indexed by Python's ``hash`` of the
token. A sighting sets the token's bit in the current generation; a token counts
as seen when its bit is set in either. Once a generation has marked
``_GENERATION_MARKS`` tokens it becomes the previous one and a fresh array takes
its place, so a token seen within the last generation stays seen and the false
positive rate stays below ``2 * _GENERATION_MARKS / (8 * _BYTES)`` (1 in 16).

A false positive only admits a token on its first sighting (the behaviour of a
cache without this filter); a false negative — a token not seen for two
generations — costs one more full verification. Neither ever serves a verification
the cache does not hold: the filter decides what to *store*, never what to *serve*.

What it buys: behind uvicorn, under a stream of never-seen tokens at 32
connections, the p99 latency is less than half of what it is when every token is
stored (the cache, and the collector's work over it, grow with each one-off
token), for a string hash and a bit test per cold request.
"""

from __future__ import annotations

from typing import Final

__all__ = ["Sightings"]

_BYTES: Final = 1 << 20
_GENERATION_MARKS: Final = 1 << 18


class Sightings:
    """A two-generation bit filter of token hashes (2 MiB with the defaults).

    A token sighted within the last ``generation_marks`` sightings is always
    reported as seen (at most one generation can have ended since).

    Args:
        size: bytes per generation (a power of two).
        generation_marks: new marks after which a generation ends.
    """

    __slots__ = ("_current", "_limit", "_marks", "_mask", "_previous")

    def __init__(self, size: int = _BYTES, generation_marks: int = _GENERATION_MARKS) -> None:
        if size < 1 or size & (size - 1) or generation_marks < 1:
            raise ValueError("size must be a power of two and generation_marks positive")
        self._mask = size - 1
        self._limit = generation_marks
        self._current = bytearray(size)
        self._previous = bytearray(size)
        self._marks = 0

    def sight(self, token: str) -> bool:
        """Record a sighting of ``token``; return whether it was seen before."""
        h = hash(token)
        index = (h >> 3) & self._mask
        bit = 1 << (h & 7)
        current = self._current
        if current[index] & bit:
            return True
        current[index] |= bit
        seen = bool(self._previous[index] & bit)
        self._marks += 1
        if self._marks >= self._limit:
            self._previous = current
            self._current = bytearray(len(current))
            self._marks = 0
        return seen

    @property
    def nbytes(self) -> int:
        """Memory held by the two generations (fixed)."""
        return len(self._current) + len(self._previous)

    def clear(self) -> None:
        """Forget every sighting."""
        self._current = bytearray(self._mask + 1)
        self._previous = bytearray(self._mask + 1)
        self._marks = 0
