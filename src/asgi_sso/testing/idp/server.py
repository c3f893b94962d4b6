"""Run an ASGI app (the dev IdP) under uvicorn on a loopback port in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from starlette.types import ASGIApp

from asgi_sso.errors import ConfigurationError

__all__ = ["LOOPBACK", "free_port", "serve_in_thread"]

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_START_TIMEOUT = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve_in_thread(app: ASGIApp, url: str, *, lifespan: bool = False) -> Iterator[None]:
    """Serve ``app`` on the loopback host and port of ``url`` until the block ends.

    ``lifespan=True`` runs the app's lifespan (an app with background tasks, such as
    an MCP server's session manager, starts them there).

    Raises:
        ConfigurationError: ``url`` is not ``http://`` on a loopback host with a port,
            or the server did not start within the deadline.
    """
    import uvicorn

    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or parts.port is None:
        raise ConfigurationError("serving needs an issuer like http://127.0.0.1:<port>")
    host = "::1" if parts.hostname == "::1" else "127.0.0.1"
    config = uvicorn.Config(
        app,
        host=host,
        port=parts.port,
        log_level="warning",
        lifespan="on" if lifespan else "off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"dev-idp:{parts.port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + _START_TIMEOUT
    while not server.started:  # bounded: the thread dies or the deadline passes
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(_START_TIMEOUT)
            raise ConfigurationError(f"could not listen on {host}:{parts.port}")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(_START_TIMEOUT)
