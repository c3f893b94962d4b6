"""Verification keys: JWK import, the JWKS and discovery caches, and fetching their documents.

This package holds the only network I/O of verification: discovery documents
and key sets are fetched through one injected ``httpx.AsyncClient``, cached,
single-flight and rate-limited. :mod:`asgi_sso.keys.redis` shares fetched
bodies between workers (the ``redis`` extra).
"""

from __future__ import annotations

from asgi_sso.keys.discovery import DiscoveryCache, ProviderMetadata
from asgi_sso.keys.documents import SharedDocuments
from asgi_sso.keys.jwks import JWKSCache

__all__ = ["DiscoveryCache", "JWKSCache", "ProviderMetadata", "SharedDocuments"]
