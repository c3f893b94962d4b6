"""OIDC discovery: fetch, check and cache an IdP's provider metadata.

The document is fetched with the same bounded, single-flight, stale-if-error
machinery as the JWKS. It is accepted only when its ``issuer`` equals the
expected issuer exactly (OIDC Discovery §4.3, RFC 8414 §3.3) and its
``jwks_uri`` is https (plain http only to a loopback host, or when the issuer
itself is http: a dev IdP).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from asgi_sso.config import Clock, Limits, SystemClock
from asgi_sso.errors import KeysUnavailable
from asgi_sso.keys.documents import DocumentCache, SharedDocuments
from asgi_sso.observe.events import NULL_EMITTER, Emitter

__all__ = ["DiscoveryCache", "ProviderMetadata", "issuer_matches", "parse_metadata"]

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class ProviderMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """The OpenID Provider metadata we use (OIDC Discovery §3); unknown fields are ignored.

    Attributes:
        issuer: the issuer identifier, equal to the expected issuer.
        jwks_uri: where the signing keys are.
        authorization_endpoint: where browsers are sent to sign in.
        token_endpoint: where codes are exchanged for tokens.
        userinfo_endpoint: the UserInfo endpoint.
        end_session_endpoint: RP-initiated logout.
        revocation_endpoint: RFC 7009 token revocation.
        introspection_endpoint: RFC 7662 token introspection.
        registration_endpoint: dynamic client registration.
        scopes_supported: advertised scopes.
        response_types_supported: advertised response types.
        grant_types_supported: advertised grant types.
        id_token_signing_alg_values_supported: ID token signature algorithms.
        code_challenge_methods_supported: PKCE methods (RFC 8414 §2).
        dpop_signing_alg_values_supported: DPoP proof algorithms (RFC 9449 §5.1).
        token_endpoint_auth_methods_supported: client authentication methods.
        token_endpoint_auth_signing_alg_values_supported: what a ``private_key_jwt``
            assertion to the token endpoint may be signed with (RFC 8414 §2).
        introspection_endpoint_auth_signing_alg_values_supported: the same for the
            introspection endpoint (RFC 8414 §2).
        claims_supported: advertised claims.
        authorization_response_iss_parameter_supported: RFC 9207 ``iss`` in responses.
        backchannel_logout_supported: OIDC Back-Channel Logout support.
        backchannel_logout_session_supported: whether logout tokens carry ``sid``.
        pushed_authorization_request_endpoint: RFC 9126 §5 PAR endpoint.
        require_pushed_authorization_requests: the provider takes authorization
            requests only through PAR (RFC 9126 §5).
    """

    issuer: str
    jwks_uri: str
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    userinfo_endpoint: str | None = None
    end_session_endpoint: str | None = None
    revocation_endpoint: str | None = None
    introspection_endpoint: str | None = None
    registration_endpoint: str | None = None
    scopes_supported: tuple[str, ...] = ()
    response_types_supported: tuple[str, ...] = ()
    grant_types_supported: tuple[str, ...] = ()
    id_token_signing_alg_values_supported: tuple[str, ...] = ()
    code_challenge_methods_supported: tuple[str, ...] = ()
    dpop_signing_alg_values_supported: tuple[str, ...] = ()
    token_endpoint_auth_methods_supported: tuple[str, ...] = ()
    token_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    introspection_endpoint_auth_signing_alg_values_supported: tuple[str, ...] = ()
    claims_supported: tuple[str, ...] = ()
    authorization_response_iss_parameter_supported: bool = False
    backchannel_logout_supported: bool = False
    backchannel_logout_session_supported: bool = False
    pushed_authorization_request_endpoint: str | None = None
    require_pushed_authorization_requests: bool = False


_DECODER = msgspec.json.Decoder(ProviderMetadata)
_ENDPOINTS = (
    "authorization_endpoint",
    "token_endpoint",
    "userinfo_endpoint",
    "end_session_endpoint",
    "pushed_authorization_request_endpoint",
    "introspection_endpoint",
)


def _check_url(url: str, member: str, *, http_allowed: bool) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise ValueError(f"{member} is not a valid URL") from exc
    if not host:
        raise ValueError(f"{member} has no host")
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and (http_allowed or host in _LOOPBACK_HOSTS):
        return
    raise ValueError(f"{member} must be an https URL")


def issuer_matches(document_issuer: str, expected: str) -> bool:
    """Whether a discovery document names the expected issuer (OIDC Discovery §4.3: exactly).

    One allowance: a document shared by every tenant of a templated issuer (Entra
    ID's ``/common`` or ``/organizations`` metadata) spells the placeholder
    ``{tenantid}`` where our template says ``{tenant}``.
    """
    if document_issuer == expected:
        return True
    return "{tenant}" in expected and document_issuer == expected.replace("{tenant}", "{tenantid}")


def parse_metadata(body: bytes, *, expected_issuer: str) -> ProviderMetadata:
    """Decode and check a discovery document.

    Args:
        body: the raw document; strict UTF-8 JSON.
        expected_issuer: the issuer the document must name exactly.

    Raises:
        ValueError: not a JSON object of the right shape, the issuer differs, or
            ``jwks_uri`` or an endpoint is not https (plain http only for an http
            issuer or a loopback host).
    """
    try:
        metadata = _DECODER.decode(body)
    except msgspec.ValidationError as exc:
        raise ValueError(f"the discovery document is invalid: {exc}") from exc
    except Exception as exc:  # DecodeError, RecursionError, UnicodeDecodeError
        raise ValueError("the discovery document is not valid UTF-8 JSON") from exc
    if not issuer_matches(metadata.issuer, expected_issuer):
        # OIDC Discovery §4.3: exact match, no normalisation (a trailing slash matters).
        raise ValueError(
            f"the discovery document names issuer {metadata.issuer[:200]!r}, "
            f"expected {expected_issuer!r}"
        )
    http_allowed = urlsplit(expected_issuer).scheme == "http"
    _check_url(metadata.jwks_uri, "jwks_uri", http_allowed=http_allowed)
    # The sign-in flow sends codes, secrets and tokens to these: https like the keys.
    for member in _ENDPOINTS:
        url = getattr(metadata, member)
        if url is not None:
            _check_url(url, member, http_allowed=http_allowed)
    return metadata


class DiscoveryCache:
    """Fetches and caches provider metadata per discovery URL; safe to share.

    Args:
        client: the shared ``httpx.AsyncClient``.
        limits: TTL bounds, cooldown, stale window, deadline and size cap (as for JWKS).
        clock: monotonic time for lifetimes.
        emitter: receives a ``discovery.fetch`` event per fetch.
        shared: a store shared with other workers (e.g.
            :class:`~asgi_sso.keys.redis.RedisDocumentCache`), read before the
            IdP and written after each fetch; its bodies are checked like the IdP's.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        limits: Limits = Limits(),  # noqa: B008 - a frozen Struct is a safe default
        clock: Clock = SystemClock(),  # noqa: B008 - stateless
        emitter: Emitter = NULL_EMITTER,
        shared: SharedDocuments | None = None,
    ) -> None:
        self._documents: DocumentCache[ProviderMetadata] = DocumentCache(
            client,
            event_name="discovery.fetch",
            what="metadata",
            limits=limits,
            clock=clock,
            emitter=emitter,
            shared=shared,
        )

    async def get(self, url: str, *, expected_issuer: str) -> ProviderMetadata:
        """Return the checked metadata at ``url``.

        Raises:
            KeysUnavailable: the document cannot be fetched, is malformed, or names
                another issuer, and nothing servable is cached.
        """
        metadata = await self._documents.get(url, _parser(expected_issuer))
        if not issuer_matches(metadata.issuer, expected_issuer):
            # Cached for another expected issuer sharing this URL: a configuration error.
            raise KeysUnavailable(
                f"the discovery document at {url} names another issuer than {expected_issuer!r}"
            )
        return metadata

    def reserve(self, urls: int) -> None:
        """Keep room for at least ``urls`` provider documents (see ``DocumentCache.reserve``)."""
        self._documents.reserve(urls)

    def cached(self, url: str) -> ProviderMetadata | None:
        """The metadata at ``url`` while fresh, else ``None`` (then call :meth:`get`); no I/O."""
        return self._documents.cached(url)

    async def prefetch(self, url: str, *, expected_issuer: str) -> bool:
        """Fetch the metadata ahead of the first request; ``True`` on success, never raises."""
        try:
            await self.get(url, expected_issuer=expected_issuer)
        except KeysUnavailable:
            return False
        return True

    def fetch_count(self, url: str) -> int:
        """How many fetches of ``url`` were started."""
        return self._documents.fetch_count(url)

    def health(self) -> dict[str, Any]:
        """Per discovery URL: age, stale, servable, fetches and last error."""
        return self._documents.health()


def _parser(expected_issuer: str) -> Callable[[bytes], ProviderMetadata]:
    def parse(body: bytes) -> ProviderMetadata:
        return parse_metadata(body, expected_issuer=expected_issuer)

    return parse
