"""``python -m examples.fastapi_app``: run the example with uvicorn on ``APP_URL``'s port."""

from __future__ import annotations

from urllib.parse import urlsplit

import uvicorn

from examples.fastapi_app.app import Settings, create_app


def main() -> None:
    """Build the app from the environment and serve it on 127.0.0.1."""
    settings = Settings.from_env()
    port = urlsplit(settings.app_url).port or 8000
    uvicorn.run(create_app(settings).app, host="127.0.0.1", port=port, log_level="info")


if __name__ == "__main__":
    main()
