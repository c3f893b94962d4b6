"""Find the keys that may verify a routed token: an issuer's HMAC secret or its JWKS.

Keys already at hand are returned synchronously (:meth:`IssuerKeys.warm`), so a
warm cold-verification never awaits; :meth:`IssuerKeys.find` awaits discovery
and the JWKS cache when they must fetch.
"""

from __future__ import annotations

from collections.abc import Mapping

from asgi_sso.config import Clock, Limits, SystemClock
from asgi_sso.errors import DisallowedAlgorithm, KeysUnavailable
from asgi_sso.keys.discovery import DiscoveryCache, ProviderMetadata
from asgi_sso.keys.jwk import VerificationKey
from asgi_sso.keys.jwks import JWKSCache
from asgi_sso.verify.issuers import ResolvedIssuer

__all__ = ["HMAC_ALGORITHMS", "IssuerKeys"]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


class IssuerKeys:
    """Candidate keys by (issuer, ``kid``, ``alg``).

    Args:
        jwks: the key cache.
        discovery: the provider metadata cache.
        hmac_keys: each configured issuer's HMAC key (``None`` without a secret).
        limits: the new-tenant fetch budget and its window (``jwks_cooldown``).
        clock: monotonic time for the budget window.
    """

    __slots__ = (
        "_budgets",
        "_clock",
        "_discovery",
        "_hmac_keys",
        "_jwks",
        "_limits",
    )

    def __init__(
        self,
        jwks: JWKSCache,
        discovery: DiscoveryCache,
        hmac_keys: Mapping[str, VerificationKey | None],
        *,
        limits: Limits | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._jwks = jwks
        self._discovery = discovery
        self._hmac_keys = hmac_keys
        self._limits = limits or Limits()
        self._clock = clock or SystemClock()
        # templated issuer -> (window start, fetches for never-seen tenants in it)
        self._budgets: dict[str, tuple[float, int]] = {}

    async def find(
        self, resolved: ResolvedIssuer, kid: str | None, alg: str
    ) -> tuple[VerificationKey, ...]:
        """The candidate keys, fetching discovery and the JWKS when needed.

        Raises:
            DisallowedAlgorithm: an HMAC algorithm for an issuer without a secret.
            UnknownKey: no key fits.
            KeysUnavailable: keys or metadata cannot be fetched.
        """
        if alg in HMAC_ALGORITHMS:
            secret_key = self._hmac_keys.get(resolved.config.issuer)
            if secret_key is None:
                raise DisallowedAlgorithm("the issuer has no secret for HMAC algorithms")
            return (secret_key,)
        found = self.warm(resolved, kid, alg)
        if found is not None:
            return found
        self._charge_new_tenant(resolved)
        uri = resolved.jwks_uri
        if uri is None:
            uri = (await self.metadata_for(resolved)).jwks_uri
        return await self._jwks.find(uri, kid, alg)

    def warm(
        self, resolved: ResolvedIssuer, kid: str | None, alg: str
    ) -> tuple[VerificationKey, ...] | None:
        """The candidate keys if they are at hand without I/O, else ``None`` (then :meth:`find`)."""
        if alg in HMAC_ALGORITHMS:
            secret_key = self._hmac_keys.get(resolved.config.issuer)
            return None if secret_key is None else (secret_key,)
        uri = resolved.jwks_uri
        if uri is None:
            metadata = self._cached_metadata(resolved)
            if metadata is None:
                return None
            uri = metadata.jwks_uri
        keyset = self._jwks.cached(uri)
        if keyset is None:
            return None
        return keyset.candidates(kid, alg) or None

    async def metadata_for(self, resolved: ResolvedIssuer) -> ProviderMetadata:
        """The discovery document naming ``resolved``'s issuer (fetched when not fresh).

        Raises:
            KeysUnavailable: the document cannot be fetched or names another issuer.
        """
        cached = self._cached_metadata(resolved)
        if cached is not None:
            return cached
        return await self._discovery.get(
            resolved.discovery_url, expected_issuer=_expected_issuer(resolved)
        )

    def _charge_new_tenant(self, resolved: ResolvedIssuer) -> None:
        """Bound the fetches that never-seen tenants of a template can cause.

        Only per-tenant document URLs count (a ``{tenant}`` in ``jwks_uri`` or
        ``discovery_url``) and only before the first fetch of that URL: the token is
        not verified yet, so random tenants must not each cost the IdP a call.

        Raises:
            KeysUnavailable: the budget of this window is spent (503, retry later).
        """
        config = resolved.config
        if resolved.tenant is None:
            return
        if config.jwks_uri is not None:
            if "{tenant}" not in config.jwks_uri or self._jwks.fetch_count(resolved.jwks_uri or ""):
                return
        elif "{tenant}" not in resolved.config.discovery_document_url or (
            self._discovery.fetch_count(resolved.discovery_url)
        ):
            return
        now = self._clock.monotonic()
        window = self._limits.jwks_cooldown
        started, used = self._budgets.get(config.issuer, (now, 0))
        if now - started >= window:
            started, used = now, 0
        if used >= self._limits.new_tenant_fetches:
            raise KeysUnavailable(
                "too many new tenants at once for this issuer; retry shortly",
                retry_after=max(1, int(window - (now - started)) + 1),
            )
        self._budgets[config.issuer] = (started, used + 1)

    def _cached_metadata(self, resolved: ResolvedIssuer) -> ProviderMetadata | None:
        cached = self._discovery.cached(resolved.discovery_url)
        if cached is not None and cached.issuer == _expected_issuer(resolved):
            return cached
        return None


def _expected_issuer(resolved: ResolvedIssuer) -> str:
    # A tenant's own document names the concrete issuer; one shared by every
    # tenant of a template names the configured template text.
    shared = resolved.tenant is not None and resolved.discovery_url == resolved.config.discovery_url
    return resolved.config.issuer if shared else resolved.iss
