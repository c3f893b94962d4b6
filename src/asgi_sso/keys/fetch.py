"""Fetch one small JSON document from an IdP, bounded.

:func:`fetch_document` does a single GET with a total deadline over the whole
exchange (an IdP that trickles bytes cannot hold a request), a size cap enforced
while streaming, and the Cache-Control lifetime of the answer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

from asgi_sso.config import Limits

__all__ = ["FetchError", "FetchedDocument", "fetch_document", "max_age_of", "reason_of"]


class FetchError(Exception):
    """A document could not be fetched or parsed (internal; mapped to KeysUnavailable).

    Attributes:
        reason: a short, non-secret explanation for events and health reports.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FetchedDocument:
    """A fetched body and how long the server says it stays fresh.

    Attributes:
        body: the raw response body (at most ``Limits.max_document_bytes``).
        max_age: seconds of freshness from Cache-Control, ``0.0`` for ``no-store`` /
            ``no-cache``, ``None`` when the server said nothing usable.
    """

    body: bytes
    max_age: float | None


def _is_delta_seconds(value: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts "²" and other Unicode digits.
    return value.isascii() and value.isdigit()


def max_age_of(cache_control: str | None, age: str | None = None) -> float | None:
    """Read a freshness lifetime from Cache-Control (RFC 9111 §5.2.2), less the ``Age``.

    Args:
        cache_control: the header value, or ``None``.
        age: the ``Age`` header value (RFC 9111 §5.1), or ``None``.

    Returns:
        Seconds, ``0.0`` for ``no-store``/``no-cache``, ``None`` if absent or unusable.
    """
    if not cache_control:
        return None
    max_age: float | None = None
    for directive in cache_control.split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            value = value.strip().strip('"')
            if _is_delta_seconds(value):
                max_age = float(value)
    if max_age is not None and age is not None and _is_delta_seconds(age.strip()):
        max_age = max(0.0, max_age - float(age.strip()))
    return max_age


async def fetch_document(client: httpx.AsyncClient, url: str, *, limits: Limits) -> FetchedDocument:
    """GET ``url`` under a total deadline and a size cap.

    Args:
        client: the shared HTTP client.
        url: the document URL.
        limits: ``fetch_timeout`` bounds the whole exchange (a server trickling one
            byte at a time included); ``max_document_bytes`` bounds the body,
            checked as it streams in.

    Raises:
        FetchError: a network error, the deadline, a non-2xx status or an oversize body.
    """
    cap = limits.max_document_bytes
    try:
        async with asyncio.timeout(limits.fetch_timeout):
            request = client.build_request("GET", url, headers={"Accept": "application/json"})
            response = await client.send(request, stream=True)
            try:
                if not 200 <= response.status_code < 300:
                    raise FetchError(f"HTTP status {response.status_code}")
                declared = response.headers.get("content-length", "")
                if _is_delta_seconds(declared) and int(declared) > cap:
                    raise FetchError(f"body larger than {cap} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > cap:
                        raise FetchError(f"body larger than {cap} bytes")
                    chunks.append(chunk)
            finally:
                await response.aclose()
    except FetchError:
        raise
    except TimeoutError as exc:
        raise FetchError(f"no complete answer within {limits.fetch_timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__} while fetching") from exc
    except Exception as exc:  # the boundary with httpx: nothing else may escape
        raise FetchError(f"{type(exc).__name__} while fetching") from exc
    max_age = max_age_of(response.headers.get("cache-control"), response.headers.get("age"))
    return FetchedDocument(body=b"".join(chunks), max_age=max_age)


def reason_of(exc: Exception, where: str) -> str:
    """A short, non-secret reason for a failed fetch, parse or shared-store call."""
    if isinstance(exc, FetchError):
        return exc.reason
    if isinstance(exc, ValueError):  # parse() explains a bad document
        return str(exc) or "invalid document"
    # Unexpected: the type only, its message could quote the body or a URL's password.
    return f"{type(exc).__name__} {where}"
