"""A real HTTP/1.1 server on 127.0.0.1 serving whatever documents a probe test sets up.

Built on ``asyncio.start_server`` in the test's own loop, as ``_jwks_server`` is:
no threads, no sleeps to wait for start-up, every connection closed on ``stop()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

MAX_HEAD_BYTES = 16 * 1024


class DocumentServer:
    """Serves ``documents[path]`` as ``(status, body)``; any other path is a 404.

    Attributes:
        documents: path → (status, body bytes).
        trickle: paths answered one byte per ``trickle_every`` seconds.
    """

    def __init__(self, *, trickle_every: float = 0.2) -> None:
        self.documents: dict[str, tuple[int, bytes]] = {}
        self.trickle: set[str] = set()
        self.trickle_every = trickle_every
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json(self, path: str, document: Any, status: int = 200) -> None:
        self.documents[path] = (status, msgspec.json.encode(document))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
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
                await self._answer(path, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        finally:
            self._connections.discard(task)
            writer.close()

    async def _answer(self, path: str, writer: asyncio.StreamWriter) -> None:
        status, body = self.documents.get(path, (404, b'{"error": "not found"}'))
        head = (
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode())
        if path not in self.trickle:
            writer.write(body)
            await writer.drain()
            return
        for index in range(len(body)):
            writer.write(body[index : index + 1])
            await writer.drain()
            await asyncio.sleep(self.trickle_every)
