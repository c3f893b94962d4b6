"""Reference apps of asgi_sso: a FastAPI B2B SaaS app and a Litestar screenshot-style API.

Each runs with one command (``./scripts/example fastapi`` or ``./scripts/example
litestar``): with no configuration it starts an embedded development identity
provider; with the ``OIDC_*`` environment variables it trusts a real one.
"""
