"""A tiny real HTTP/1.1 IdP on 127.0.0.1 for JWKS tests: serves keys, fails, or trickles.

Built on ``asyncio.start_server`` so it shares the test's event loop: no threads,
no sleeps to wait for start-up, and every connection is closed on ``stop()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

MAX_HEAD_BYTES = 16 * 1024
TRICKLE_MAX_BYTES = 200  # bounds a trickling answer even if nobody hangs up


class JWKSServer:
    """Serves ``/jwks`` and ``/.well-known/openid-configuration``.

    Attributes:
        keys: the JWKs served.
        mode: ``"ok"``, ``"error"`` (HTTP 500) or ``"trickle"`` (one byte per ``trickle_every``).
        requests: how many requests reached the server, per path.
    """

    def __init__(self, *, trickle_every: float = 0.2) -> None:
        self.keys: list[dict[str, Any]] = []
        self.mode = "ok"
        self.trickle_every = trickle_every
        self.requests: dict[str, int] = {}
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, path: str = "/jwks") -> int:
        return self.requests.get(path, 0)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening (further connections are refused) and drop open connections."""
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEAD_BYTES:
                    return
                path = head.split(b" ", 2)[1].decode()
                self.requests[path] = self.requests.get(path, 0) + 1
                await self._answer(path, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            self._connections.discard(task)
            writer.close()

    def _document(self, path: str) -> bytes | None:
        if path == "/jwks":
            return msgspec.json.encode({"keys": self.keys})
        if path == "/.well-known/openid-configuration":
            return msgspec.json.encode({"issuer": self.base, "jwks_uri": self.base + "/jwks"})
        return None

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> None:
        body = self._document(path)
        status = "200 OK"
        if body is None:
            status, body = "404 Not Found", b"{}"
        elif self.mode == "error":
            status, body = "500 Internal Server Error", b'{"error": "down"}'
        if self.mode == "trickle":
            body = body.ljust(TRICKLE_MAX_BYTES)
        head = (
            f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\ncache-control: max-age=600\r\n\r\n"
        )
        writer.write(head.encode())
        if self.mode != "trickle":
            writer.write(body)
            await writer.drain()
            return
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(self.trickle_every)
