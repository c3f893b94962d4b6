"""Find the raw credential in a request and say where it came from.

Sources, in order: the ``Authorization: Bearer`` header (RFC 6750 §2.1), then the
configured cookies, then — only when enabled — the ``access_token`` query
parameter (RFC 6750 §2.3). Nothing here parses a token; it only enforces the
size cap so an oversized value is refused before any decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from asgi_sso.errors import InvalidRequest, MalformedToken

__all__ = ["ExtractedToken", "Extractor", "parse_cookie_header"]

_AUTHORIZATION = b"authorization"
_COOKIE = b"cookie"
_BEARER = b"bearer"
_DPOP = b"dpop"
# RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
# Deleting these bytes must leave nothing (one C-level pass; a set of the token's
# characters cost more than the whole rest of a warm request).
_B64TOKEN_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/="
# Headers longer than this are never remembered (see Extractor).
_RECENT_HEADER_BYTES = 4096


class ExtractedToken(NamedTuple):
    """A raw credential and its source (``header``, ``dpop``, ``cookie`` or ``query``).

    ``dpop``: the ``Authorization: DPoP`` scheme (RFC 9449 §7.1), whose proof the
    caller checks.
    """

    token: str
    source: str


_BEARER_PREFIX = b"Bearer "
# A NamedTuple's generated __new__ is a Python function; building the tuple directly
# skips it on every request.
_new_tuple = tuple.__new__


def _found(token: str, source: str) -> ExtractedToken:
    return _new_tuple(ExtractedToken, (token, source))


def parse_cookie_header(value: str) -> dict[str, str]:
    """Parse a ``Cookie`` header into a dict; the first occurrence of a name wins."""
    cookies: dict[str, str] = {}
    for chunk in value.split(";"):
        name, sep, val = chunk.partition("=")
        if not sep:
            continue
        name = name.strip()
        if name and name not in cookies:
            cookies[name] = val.strip().strip('"')
    return cookies


class Extractor:
    """Extracts one credential from an HTTP or WebSocket scope.

    A client sends the same ``Authorization`` header until its token expires, so the
    bearer tokens of the last ``recent`` headers (of up to 4 KB) are remembered by
    the header's bytes. A repeat skips the character check and the decoding, and
    hands on the same ``str`` object, whose hash Python keeps: the verified-token
    cache then finds it without hashing 1-2 KB again. This saves about a tenth of a
    warm request in-process.

    Args:
        cookie_names: cookies that may carry an IdP-issued JWT, tried in order.
        allow_query_token: accept ``?access_token=`` (off by default: URLs end up in logs).
        max_token_bytes: longer credentials are refused before any parsing.
        query_param: the query parameter name when query tokens are allowed.
        recent: how many headers are remembered (``Limits.recent_credentials``).
        dpop: also take the token of ``Authorization: DPoP`` (source ``"dpop"``);
            otherwise that scheme is not a credential of ours.
    """

    __slots__ = (
        "_allow_query",
        "_cookie_names",
        "_dpop",
        "_max",
        "_query_param",
        "_recent",
        "_recent_size",
    )

    def __init__(
        self,
        *,
        cookie_names: Sequence[str] = (),
        allow_query_token: bool = False,
        max_token_bytes: int = 16 * 1024,
        query_param: str = "access_token",
        recent: int = 256,
        dpop: bool = False,
    ) -> None:
        self._dpop = dpop
        self._cookie_names = tuple(cookie_names)
        self._allow_query = allow_query_token
        self._max = max_token_bytes
        self._query_param = query_param
        self._recent: dict[bytes, ExtractedToken] = {}
        self._recent_size = recent

    def read_dpop(self, enabled: bool) -> None:
        """Take (or stop taking) ``Authorization: DPoP`` tokens from now on."""
        if enabled != self._dpop:
            self._dpop = enabled
            self._recent.clear()  # remembered headers carry the previous reading

    def extract(self, scope: Any) -> ExtractedToken | None:
        """Return the credential, or ``None`` when the request carries none.

        Raises:
            InvalidRequest: two ``Authorization`` headers, or a token sent by two methods.
            MalformedToken: a credential over the size cap or with characters a token never has.
        """
        authorization: bytes | None = None
        cookie: bytes | None = None
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION:
                if authorization is not None:
                    # RFC 6750 §2.1 / RFC 9110 §5.3: never pick one of several.
                    raise InvalidRequest("more than one Authorization header was sent")
                authorization = value
            elif name == _COOKIE and cookie is None:
                cookie = value

        found: ExtractedToken | None = None
        if authorization is not None:
            found = self._from_authorization(authorization)
        if self._allow_query:
            query = self._from_query(scope.get("query_string", b""))
            if query is not None:
                if found is not None:
                    # RFC 6750 §2: clients MUST NOT use more than one method.
                    raise InvalidRequest("the access token was sent by more than one method")
                found = query
        if found is None and cookie is not None and self._cookie_names:
            found = self._from_cookies(cookie)
        return found

    def presented(self, scope: Any) -> bool:
        """Whether the request presents a bearer credential of its own (header or query).

        Used to tell an API client with a bad token (answer 401) from a browser
        navigation (redirect to sign-in).
        """
        for name, value in scope["headers"]:
            if name == _AUTHORIZATION and (
                value[:7].lower() == b"bearer " or (self._dpop and value[:5].lower() == b"dpop ")
            ):
                return True
        return self._allow_query and self._query_param.encode() in scope.get("query_string", b"")

    def _checked(self, token: str, source: str) -> ExtractedToken:
        if len(token) > self._max:
            raise MalformedToken(f"the token is larger than {self._max} bytes")
        if not token:
            raise MalformedToken("the token is empty")
        return _found(token, source)

    def _from_authorization(self, raw: bytes) -> ExtractedToken | None:
        # The bearer token in one Authorization header value, None for another scheme.
        found = self._recent.get(raw)
        if found is None:
            found = self._bearer(raw)
            if found is not None and len(raw) <= _RECENT_HEADER_BYTES:
                if len(self._recent) >= self._recent_size:
                    self._recent.clear()
                self._recent[raw] = found
        return found

    def _bearer(self, raw: bytes) -> ExtractedToken | None:
        if len(raw) > self._max + 64:
            raise MalformedToken(f"the token is larger than {self._max} bytes")
        if raw.startswith(_BEARER_PREFIX):
            # The usual spelling: one pass over the token and no splitting.
            token = raw[7:]
            if token and not token.translate(None, _B64TOKEN_BYTES) and len(token) <= self._max:
                return _new_tuple(ExtractedToken, (token.decode("ascii"), "header"))
        scheme, _, rest = raw.strip().partition(b" ")
        scheme = scheme.lower()
        if scheme != _BEARER and (scheme != _DPOP or not self._dpop):
            return None  # another scheme (Basic, DPoP when off…) is not our credential
        token = rest.strip()
        if token.translate(None, _B64TOKEN_BYTES):
            raise MalformedToken("the Authorization header does not hold a bearer token")
        return self._checked(token.decode("ascii"), "header" if scheme == _BEARER else "dpop")

    def _from_cookies(self, raw: bytes) -> ExtractedToken | None:
        cookies = parse_cookie_header(raw.decode("latin-1"))
        for name in self._cookie_names:
            value = cookies.get(name)
            if value:
                return self._checked(value, "cookie")
        return None

    def _from_query(self, raw: bytes) -> ExtractedToken | None:
        if not raw:
            return None
        values = [
            v
            for k, v in parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
            if k == self._query_param
        ]
        if not values:
            return None
        if len(values) > 1:
            raise InvalidRequest("more than one access_token query parameter was sent")
        return self._checked(values[0], "query")
