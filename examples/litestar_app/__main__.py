"""``python -m examples.litestar_app``: run the example with uvicorn on ``PORT`` (8000)."""

from __future__ import annotations

import os

import uvicorn

from examples.litestar_app.app import create_app


def main() -> None:
    """Build the API from the environment and serve it on 127.0.0.1."""
    port = int(os.environ.get("PORT", "8000"))
    uvicorn.run(create_app(port=port).app, host="127.0.0.1", port=port, log_level="info")


if __name__ == "__main__":
    main()
