"""``python -m examples.mcp_server``: serve the MCP example on ``APP_URL``'s port.

In dev mode the embedded dev IdP is served on its own loopback port first, and the
banner says how to connect an MCP client.
"""

from __future__ import annotations

from contextlib import ExitStack
from urllib.parse import urlsplit

import uvicorn

from examples.mcp_server.app import ADMIN_SCOPE, READ_SCOPE, Settings, create_app


def banner(resource: str, issuer: str, users: list[str]) -> list[str]:
    """How to connect, printed once the dev IdP listens."""
    parts = urlsplit(resource)
    metadata_url = (
        f"{parts.scheme}://{parts.netloc}/.well-known/oauth-protected-resource{parts.path}"
    )
    return [
        f"MCP server (Streamable HTTP): {resource}",
        f"Protected resource metadata: {metadata_url}",
        f"Dev IdP (dynamic client registration, PKCE): {issuer}",
        "Test users (the sign-in page lets you pick one):",
        *users,
        "Connect any MCP client with OAuth support (Streamable HTTP, the URL above): it finds",
        "  the dev IdP from the 401, registers itself and opens the sign-in page; the Python",
        "  SDK's OAuthClientProvider does it in tests/integration/test_mcp_client.py.",
        f"Tools: list_reports needs {READ_SCOPE}; delete_report needs {ADMIN_SCOPE}",
        "  (a reader asking for it gets 403 insufficient_scope and a step-up challenge).",
    ]


def main() -> None:
    """Build the example from the environment and serve it on 127.0.0.1."""
    settings = Settings.from_env()
    example = create_app(settings)
    port = urlsplit(settings.app_url).port or 8000
    with ExitStack() as stack:
        if example.idp is not None:
            stack.enter_context(example.idp.serve())
            users = [
                f"  {u.sub:<6} {u.email or '':<22} scopes: {' '.join(u.scopes or ('any',))}"
                for u in example.idp.users.values()
            ]
            print("\n".join(banner(settings.resource, example.idp.issuer, users)), flush=True)
        uvicorn.run(example.app, host="127.0.0.1", port=port, log_level="info")


if __name__ == "__main__":
    main()
