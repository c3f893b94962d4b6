"""How the dev IdP reads requests and words refusals (RFC 6749 §3.1 / §5.2, RFC 6750 §3)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from asgi_sso.responses import quoted_string

__all__ = [
    "NO_STORE",
    "BadRequest",
    "Params",
    "bearer_error",
    "expires_in_param",
    "oauth_error",
    "read_params",
    "resource_param",
    "with_query",
]

Params = dict[str, str]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_BODY = 64 * 1024
MAX_EXPIRES_IN = 86_400  # a day: a dev token that outlives it is a mistake
MAX_RESOURCE = 2048
_TARGET = "invalid_target"  # RFC 8707 §2
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")  # RFC 3986 §3.1
_URI_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space (RFC 3986 §2)


class BadRequest(Exception):
    """A malformed request, answered with ``error`` (``invalid_request`` unless told)."""

    def __init__(self, description: str, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description = description
        self.error = error


def oauth_error(
    error: str, description: str, status: int = 400, headers: dict[str, str] | None = None
) -> JSONResponse:
    """An RFC 6749 §5.2 error body."""
    body = {"error": error, "error_description": description}
    return JSONResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def bearer_error(error: str, description: str, status: int = 401) -> Response:
    """An RFC 6750 §3 refusal with its ``WWW-Authenticate`` challenge."""
    challenge = f'Bearer error="{error}", error_description="{quoted_string(description)}"'
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": challenge, "Cache-Control": "no-store"},
    )


def with_query(uri: str, params: dict[str, str]) -> str:
    """``uri`` with ``params`` added to its query (and no bare ``?`` when there are none)."""
    if not params:
        return uri
    return uri + ("&" if "?" in uri else "?") + urlencode(params)


def _parse_form(raw: str) -> Params:
    params: Params = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if key in params and key == "resource":  # RFC 8707 §2 allows several; we issue one aud
            raise BadRequest("one resource per request: a token has one audience here", _TARGET)
        if key in params:  # RFC 6749 §3.1: parameters MUST NOT be repeated
            raise BadRequest(f"parameter {key!r} is repeated")
        params[key] = value
    return params


async def read_params(request: Request) -> Params:
    """The query (GET) or form body (POST) parameters, each at most once.

    Raises:
        BadRequest: another method, another content type, a repeated parameter,
            a body over 64 KiB or one that is not UTF-8.
    """
    if request.method == "GET":
        return _parse_form(request.url.query)
    if request.method != "POST":
        raise BadRequest("use GET or POST")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadRequest("the body must be application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_BODY:
            raise BadRequest("the request body is too large")
    try:
        return _parse_form(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest("the body is not UTF-8") from exc


def resource_param(params: Params) -> str | None:
    """The ``resource`` parameter (RFC 8707 §2), or ``None`` when absent.

    Raises:
        BadRequest: (``invalid_target``) not an absolute URI, or one with a fragment,
            or over 2048 characters.
    """
    raw = params.get("resource")
    if raw is None:
        return None
    if len(raw) > MAX_RESOURCE or not _URI_CHARS.fullmatch(raw) or "#" in raw:
        raise BadRequest("resource must be an absolute URI without a fragment", _TARGET)
    scheme, sep, rest = raw.partition(":")
    if not sep or not rest or not _SCHEME.fullmatch(scheme):
        raise BadRequest("resource must be an absolute URI without a fragment", _TARGET)
    try:
        urlsplit(raw)  # a malformed authority ("http://[::1") is not a URI either
    except ValueError as exc:
        raise BadRequest("resource must be an absolute URI without a fragment", _TARGET) from exc
    return raw


def expires_in_param(params: Params, default: int) -> int:
    """The ``expires_in`` parameter (seconds, 1 to a day), or ``default`` when absent.

    A dev IdP extension: ``asgi-sso token --expires-in`` asks for a lifetime (RFC 6749 §3.2
    lets servers ignore parameters they do not know, so real IdPs ignore it).

    Raises:
        BadRequest: not a whole number of seconds between 1 and a day.
    """
    raw = params.get("expires_in")
    if raw is None:
        return default
    ok = 0 < len(raw) <= 6 and raw.isascii() and raw.isdigit()  # no 4300-digit int parse
    if not ok or not 1 <= int(raw) <= MAX_EXPIRES_IN:
        raise BadRequest(f"expires_in must be a whole number of seconds from 1 to {MAX_EXPIRES_IN}")
    return int(raw)
