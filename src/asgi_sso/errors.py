"""The one error tree: every refusal knows its status, RFC 6750 code and description.

Third-party exceptions (joserfc, msgspec, httpx, SQLAlchemy, redis) are mapped
to these at one boundary each with ``raise ... from exc``; responses are
rendered from them by :mod:`asgi_sso.responses`. A description never contains
a token, a cookie or a secret.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuthError",
    "ConfigurationError",
    "ConnectionChangeError",
    "ConnectionConflict",
    "CredentialsMissing",
    "CrossOriginRequest",
    "DisallowedAlgorithm",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidDPoPProof",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "KeysUnavailable",
    "MalformedToken",
    "NotYetValid",
    "SSOError",
    "ServiceUnavailable",
    "StoreUnavailable",
    "UnknownConnection",
    "UnknownIssuer",
    "UnknownKey",
    "UseDPoPNonce",
    "UserDeactivated",
]


class SSOError(Exception):
    """Base of every error asgi_sso raises."""


class ConfigurationError(SSOError, ValueError):
    """A setting is invalid; raised when the configuration is built, never on a request."""


class ConnectionChangeError(SSOError):
    """A change to the connections was refused; ``status`` is its HTTP status.

    Raised by the connection stores and their management API, never on a sign-in or
    an API request.
    """

    status: ClassVar[int] = 422


class UnknownConnection(ConnectionChangeError):
    """No connection has this id."""

    status: ClassVar[int] = 404


class ConnectionConflict(ConnectionChangeError):
    """The change would give an id, issuer or email domain to two connections."""

    status: ClassVar[int] = 409


class AuthError(SSOError):
    """A request is refused. Knows how to answer it.

    Attributes:
        status: the HTTP status of the refusal.
        error: the RFC 6750 §3.1 error code, or ``None`` when no credentials were sent.
        description: a human-readable reason for a developer; never echoes a token.
    """

    status: ClassVar[int] = 401
    error: ClassVar[str | None] = "invalid_token"
    default_description: ClassVar[str] = "the access token is invalid"
    reason: ClassVar[str] = "invalid_token"

    def __init__(self, description: str | None = None) -> None:
        self.description = description or self.default_description
        super().__init__(self.description)


class CredentialsMissing(AuthError):
    """No credentials were sent (RFC 6750 §3.1: no error code in the challenge)."""

    error = None
    default_description = "authentication required"
    reason = "credentials_missing"


class InvalidRequest(AuthError):
    """The request is malformed, e.g. two ``Authorization`` headers (RFC 6750 §3.1)."""

    status = 400
    error = "invalid_request"
    default_description = "the request is malformed"
    reason = "invalid_request"


class PayloadTooLarge(AuthError):
    """A request body the middleware must read is larger than its bound (status 413)."""

    status = 413
    error = "invalid_request"
    default_description = "the request body is too large"
    reason = "payload_too_large"


class InvalidToken(AuthError):
    """The token is not acceptable (base of the specific token errors)."""


class MalformedToken(InvalidToken):
    """The token is not a well-formed compact JWS carrying a JSON claim set."""

    default_description = "the token is malformed"
    reason = "malformed"


class DisallowedAlgorithm(InvalidToken):
    """The header names an algorithm the issuer does not allow."""

    default_description = "the token's algorithm is not allowed"
    reason = "algorithm"


class InvalidSignature(InvalidToken):
    """The signature does not verify with the issuer's key."""

    default_description = "the token signature is invalid"
    reason = "signature"


class InvalidDPoPProof(InvalidToken):
    """The ``DPoP`` proof of a DPoP-bound request is missing or wrong (RFC 9449 §7.1)."""

    error = "invalid_dpop_proof"
    default_description = "the DPoP proof is invalid"
    reason = "dpop_proof"


class UseDPoPNonce(InvalidDPoPProof):
    """The DPoP proof lacks the server nonce this resource requires (RFC 9449 §9).

    Attributes:
        headers: the ``DPoP-Nonce`` header with a fresh nonce, which the client puts
            in its next proof.
    """

    error = "use_dpop_nonce"
    default_description = "the resource server requires a nonce in the DPoP proof"
    reason = "dpop_nonce"

    def __init__(self, nonce: str, description: str | None = None) -> None:
        super().__init__(description)
        self.headers: list[tuple[bytes, bytes]] = [(b"dpop-nonce", nonce.encode("ascii"))]


class UnknownIssuer(InvalidToken):
    """The ``iss`` claim names no trusted issuer (or a tenant not allowed)."""

    default_description = "the token issuer is not trusted"
    reason = "issuer"


class UnknownKey(InvalidToken):
    """No key of the issuer matches the token's ``kid``."""

    default_description = "the token was signed with an unknown key"
    reason = "unknown_key"


class ExpiredToken(InvalidToken):
    """The token is at or past its ``exp`` (RFC 7519 §4.1.4)."""

    default_description = "the token has expired"
    reason = "expired"


class NotYetValid(InvalidToken):
    """``nbf`` or ``iat`` lies in the future beyond the leeway."""

    default_description = "the token is not valid yet"
    reason = "not_yet_valid"


class InvalidAudience(InvalidToken):
    """``aud`` does not contain the configured audience."""

    default_description = "the token audience does not match"
    reason = "audience"


class InvalidClaim(InvalidToken):
    """A claim is missing, of the wrong type or of the wrong value."""

    default_description = "a token claim is invalid"
    reason = "claim"


class CrossOriginRequest(AuthError):
    """A cookie-authenticated unsafe request or WebSocket handshake lacks the app's origin.

    Browsers attach cookies to requests other sites make; such a request must show
    the app's own origin (``Origin`` or ``Sec-Fetch-Site``) or an allowed one (RFC 6455
    §10.2 for WebSockets). Status 403: the credential is fine, its use here is not.
    """

    status = 403
    error = "invalid_request"
    default_description = (
        "a cookie-authenticated unsafe request or WebSocket must come from this app's origin"
    )
    reason = "origin"


class UserDeactivated(AuthError):
    """The user was deprovisioned or their session revoked."""

    default_description = "the user is deactivated"
    reason = "deactivated"


class InsufficientScope(AuthError):
    """The principal lacks a required scope (RFC 6750 §3.1, status 403)."""

    status = 403
    error = "insufficient_scope"
    default_description = "the request requires higher privileges"
    reason = "insufficient_scope"

    def __init__(self, description: str | None = None, *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(description)
        self.scopes = scopes


class ServiceUnavailable(AuthError):
    """A dependency needed to decide is down; answered 503 with ``Retry-After``."""

    status = 503
    error = None
    default_description = "authentication is temporarily unavailable"
    reason = "unavailable"

    def __init__(self, description: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(description)
        self.retry_after = retry_after


class KeysUnavailable(ServiceUnavailable):
    """The issuer's keys or metadata cannot be fetched and nothing usable is cached."""

    default_description = "the identity provider's keys are unavailable"
    reason = "keys_unavailable"


class StoreUnavailable(ServiceUnavailable):
    """The user, session or state store cannot be reached."""

    default_description = "the session or user store is unavailable"
    reason = "store_unavailable"
