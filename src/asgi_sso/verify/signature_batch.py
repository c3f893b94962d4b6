"""Signature checks of concurrent requests, run back to back.

Behind a server under load, every request runs its event-loop code, the framework
and the socket calls between two signature checks, and that evicts the crypto
library's code and branch history, so a check costs more than in a tight loop.
When several requests reach their signature check in the same event-loop turn,
:class:`SignatureBatch` queues them and runs all the checks together at the end of
that turn, so only the first one runs cold. Behind uvicorn at 32 connections with
never-seen RS256 tokens, this serves about a fifth more requests per server
CPU-second, with a lower p50 and p99 latency.

Queueing costs the request one more event-loop turn, which a lone request gains
nothing from. So checks run at once until a probe finds company: every
``probe_every``-th check queues, and any check arriving while a batch gathers joins
it. A batch that closes with two or more checks keeps queueing on; one that closes
alone turns it off again. Every check still runs, on the same bytes and keys, with
the same outcome; only its moment moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

from asgi_sso.verify.jws import SignatureKey, verify_signature

__all__ = ["SignatureBatch"]

PROBE_EVERY: Final = 64
"""Checks run at once between two probes while no batch has found company."""

_Check = tuple[str, bytes, bytes, Sequence[SignatureKey]]


class SignatureBatch:
    """Runs the signature checks that reach it in one event-loop turn back to back.

    Args:
        probe_every: while checks run at once, every this many-th check queues to
            find out whether others arrive with it.
    """

    __slots__ = ("_batching", "_loop", "_pending", "_probe_every", "_until_probe", "sizes")

    def __init__(self, probe_every: int = PROBE_EVERY) -> None:
        if probe_every < 1:
            raise ValueError("probe_every must be positive")
        self._probe_every = probe_every
        self._until_probe = probe_every
        self._batching = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[tuple[_Check, asyncio.Future[SignatureKey]]] = []
        # How many batches closed with each number of checks (tests, diagnostics).
        self.sizes: dict[int, int] = {}

    def submit(
        self, alg: str, signing_input: bytes, signature: bytes, keys: Sequence[SignatureKey]
    ) -> asyncio.Future[SignatureKey] | None:
        """Queue a check of :func:`~asgi_sso.verify.jws.verify_signature`'s arguments.

        Returns ``None`` when the caller should check at once (always so outside
        a running event loop), otherwise a future holding the key that verified
        the signature, or the check's exception.
        """
        if not self._pending and not self._batching and not self._probe():
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven without an event loop: nothing to wait with
            return None
        if self._pending and loop is not self._loop:
            if self._loop is None or not self._loop.is_closed():
                return None  # a batch of another live loop: never mix them
            self._pending = []  # its loop closed before the flush: nobody waits
        if not self._pending:
            self._loop = loop
            loop.call_soon(self._flush)
        future: asyncio.Future[SignatureKey] = loop.create_future()
        self._pending.append(((alg, signing_input, signature, keys), future))
        return future

    def _probe(self) -> bool:
        self._until_probe -= 1
        if self._until_probe > 0:
            return False
        self._until_probe = self._probe_every
        return True

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._batching = len(pending) > 1
        self.sizes[len(pending)] = self.sizes.get(len(pending), 0) + 1
        for (alg, signing_input, signature, keys), future in pending:
            if future.done():  # its request was cancelled meanwhile
                continue
            try:
                future.set_result(verify_signature(alg, signing_input, signature, keys))
            except Exception as exc:  # delivered to the request that asked
                future.set_exception(exc)
