"""An MCP server built with the official ``mcp`` SDK, protected by asgi_sso."""
