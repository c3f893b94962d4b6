"""One uvicorn process serving an app module of this directory, stopped by PID."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


class AppProcess:
    """``uvicorn <app>`` on ``port``, with ``env`` added to this process's environment.

    Args:
        name: the process's name (``MP_NAME`` in its environment).
        port: the 127.0.0.1 port it listens on.
        env: what it must share with its siblings (Redis URL, issuer, secrets).
        app: the ``module:attribute`` to serve, from this directory.
    """

    def __init__(
        self, name: str, port: int, env: dict[str, str], app: str = "_multiprocess_app:app"
    ) -> None:
        self.name = name
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "uvicorn", app,
                "--app-dir", str(HERE), "--host", "127.0.0.1", "--port", str(port),
                "--lifespan", "on", "--log-level", "warning",
            ],
            env={**os.environ, **env, "MP_NAME": name},
        )  # fmt: skip

    def wait_healthy(self) -> None:
        """Wait until ``/healthz`` answers 200 (30 s at most)."""
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"app process {self.name} did not become healthy")
            time.sleep(0.05)

    def stop(self) -> None:
        """Terminate the process (kill it after 10 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
