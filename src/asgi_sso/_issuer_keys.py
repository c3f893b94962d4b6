"""Find the keys that may verify a routed token: an issuer's HMAC secret or its JWKS.

Keys already at hand are returned synchronously (:meth:`IssuerKeys.warm`), so a
warm cold-verification never awaits; :meth:`IssuerKeys.find` awaits discovery
and the JWKS cache when they must fetch.
"""

from __future__ import annotations

from collections.abc import Mapping

from asgi_sso.discovery import DiscoveryCache, ProviderMetadata
from asgi_sso.errors import DisallowedAlgorithm
from asgi_sso.issuers import ResolvedIssuer
from asgi_sso.jwks import JWKSCache
from asgi_sso.keys import KeySet, VerificationKey

__all__ = ["HMAC_ALGORITHMS", "IssuerKeys"]

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
_CANDIDATE_MEMO_SIZE = 1024


class IssuerKeys:
    """Candidate keys by (issuer, ``kid``, ``alg``).

    Args:
        jwks: the key cache.
        discovery: the provider metadata cache.
        hmac_keys: each configured issuer's HMAC key (``None`` without a secret).
    """

    __slots__ = ("_candidates", "_discovery", "_hmac_keys", "_jwks")

    def __init__(
        self,
        jwks: JWKSCache,
        discovery: DiscoveryCache,
        hmac_keys: Mapping[str, VerificationKey | None],
    ) -> None:
        self._jwks = jwks
        self._discovery = discovery
        self._hmac_keys = hmac_keys
        self._candidates: dict[
            tuple[str, str | None, str], tuple[KeySet, tuple[VerificationKey, ...]]
        ] = {}

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
            secret_key = self._hmac_keys[resolved.config.issuer]
            if secret_key is None:
                raise DisallowedAlgorithm("the issuer has no secret for HMAC algorithms")
            return (secret_key,)
        found = self.warm(resolved, kid, alg)
        if found is not None:
            return found
        uri = resolved.jwks_uri
        if uri is None:
            uri = (await self.metadata_for(resolved)).jwks_uri
        return await self._jwks.find(uri, kid, alg)

    def warm(
        self, resolved: ResolvedIssuer, kid: str | None, alg: str
    ) -> tuple[VerificationKey, ...] | None:
        """The candidate keys if they are at hand without I/O, else ``None`` (then :meth:`find`)."""
        if alg in HMAC_ALGORITHMS:
            secret_key = self._hmac_keys[resolved.config.issuer]
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
        # Remembered per key set object, so a rotation (a new KeySet) invalidates them.
        memo_key = (uri, kid, alg)
        memo = self._candidates.get(memo_key)
        if memo is not None and memo[0] is keyset:
            return memo[1]
        found = keyset.candidates(kid, alg)
        if not found:
            return None
        if len(self._candidates) >= _CANDIDATE_MEMO_SIZE:
            self._candidates.clear()
        self._candidates[memo_key] = (keyset, found)
        return found

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
