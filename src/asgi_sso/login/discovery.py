"""Home-realm discovery: which provider a browser signs in at, and the page that asks.

``{prefix}/login`` takes one of ``?connection=<id>``, ``?email=<address>`` or
``?domain=<domain>`` and picks the enabled sign-in connection that owns it (an
email also becomes the provider's ``login_hint``). Without any of them it goes
to the default provider, or shows a page asking for a work email when there is
none. Whatever names no usable connection (unknown, disabled, bearer-only,
malformed) gets the same page with the same message and status 404, so the
answer never tells which domains or ids exist. Every echoed value is escaped.
"""

from __future__ import annotations

import html
import unicodedata
from typing import TYPE_CHECKING, Any, Final

import msgspec

from asgi_sso._asgi import header
from asgi_sso.connections.directory import MAX_EMAIL_LENGTH
from asgi_sso.responses import error_document

if TYPE_CHECKING:
    from collections.abc import Callable

    from asgi_sso.login.providers import Provider, Providers

__all__ = [
    "MAX_EMAIL",
    "NOT_SET_UP",
    "DiscoveryPage",
    "Pick",
    "pick",
    "render_page",
    "send_discovery",
]

MAX_EMAIL: Final = MAX_EMAIL_LENGTH
"""Longest email address read (RFC 3696 errata 1690)."""
NOT_SET_UP: Final = (
    "No single sign-on is set up for that email domain \N{EM DASH} ask your administrator."
)
"""The one answer for every value that names no usable connection."""
_MALFORMED: Final = "The sign-in link is malformed; enter your work email."
_ONE_OF: Final = "Give one of email, domain or connection."
_ENTER_EMAIL: Final = "Enter your work email address."
_KEYS: Final = ("connection", "email", "domain")
_NO_STORE: Final = (b"cache-control", b"no-store")
# No form-action: browsers apply it to the redirects after a submission too, and the
# form's answer is a redirect to whichever connection's IdP owns the domain.
_BUILT_IN_CSP: Final = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


class DiscoveryPage(msgspec.Struct, frozen=True, kw_only=True):
    """What a home-realm discovery page shows (``LoginConfig.discovery_page`` renders it).

    Attributes:
        action: the URL the form sends to with ``GET`` (``{root_path}{prefix}/login``).
        return_to: the path to carry in a hidden ``return_to`` field, or ``None``.
        email: the email typed so far ("" when none), to show in the field.
        error: why the last attempt failed, or ``None``.
    """

    action: str
    return_to: str | None = None
    email: str = ""
    error: str | None = None


class Pick:
    """The outcome of discovery: a provider to sign in at, or a page with a status.

    Attributes:
        provider: where to sign in, or ``None`` to show the page.
        login_hint: the email to pass as ``login_hint``, if one was given.
        status: the page's status (200, 400 or 404).
        error: the page's message, or ``None``.
        email: the (clean) email to show again.
    """

    __slots__ = ("email", "error", "login_hint", "provider", "status")

    def __init__(
        self,
        provider: Provider | None = None,
        *,
        login_hint: str | None = None,
        status: int = 200,
        error: str | None = None,
        email: str = "",
    ) -> None:
        self.provider = provider
        self.login_hint = login_hint
        self.status = status
        self.error = error
        self.email = email


def pick(params: dict[str, list[str]] | None, providers: Providers) -> Pick:
    """Choose the provider for a ``/login`` query (already parsed; ``None``: unreadable)."""
    if params is None or any(len(params.get(n, ())) > 1 for n in (*_KEYS, "return_to")):
        return Pick(status=400, error=_MALFORMED)
    asked = [name for name in _KEYS if name in params]
    if len(asked) > 1:
        return Pick(status=400, error=_ONE_OF)
    if not asked:
        return Pick(providers.default) if providers.default is not None else Pick()
    name, value = asked[0], params[asked[0]][0]
    if name == "email":
        return _by_email(value, providers)
    found = providers.connection(value) if name == "connection" else providers.for_domain(value)
    return Pick(found) if found is not None else Pick(status=404, error=NOT_SET_UP)


def _by_email(value: str, providers: Providers) -> Pick:
    email = clean_email(value)
    if email == "":
        return Pick(status=400, error=_ENTER_EMAIL)
    found = providers.for_email(email) if email is not None else None
    if found is None:
        return Pick(status=404, error=NOT_SET_UP, email=email or "")
    return Pick(found, login_hint=email)


def clean_email(value: str) -> str | None:
    """``value`` stripped, or ``None`` when too long or holding spaces or control characters."""
    email = value.strip()
    if len(email) > MAX_EMAIL:
        return None
    if any(char.isspace() or unicodedata.category(char)[0] == "C" for char in email):
        return None
    return email


def render_page(page: DiscoveryPage) -> str:
    """The built-in page: one labelled email field and one button, no JavaScript."""
    esc = html.escape
    error = ""
    described = ""
    if page.error:
        error = f'<p id="sso-error" role="alert">{esc(page.error)}</p>\n'
        described = ' aria-describedby="sso-error" aria-invalid="true"'
    hidden = ""
    if page.return_to:
        hidden = f'<input type="hidden" name="return_to" value="{esc(page.return_to)}">\n'
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        "<head>\n"
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>Sign in</title>\n"
        "</head>\n"
        "<body>\n"
        "<main>\n"
        "<h1>Sign in with your work email</h1>\n"
        f"{error}"
        f'<form method="get" action="{esc(page.action)}">\n'
        '<label for="sso-email">Work email</label>\n'
        f'<input id="sso-email" name="email" type="email" autocomplete="email" required '
        f'maxlength="{MAX_EMAIL}" value="{esc(page.email)}"{described}>\n'
        f"{hidden}"
        '<button type="submit">Continue</button>\n'
        "</form>\n"
        "</main>\n"
        "</body>\n"
        "</html>\n"
    )


def _wants_json(scope: Any) -> bool:
    accept = (header(scope, b"accept") or "").lower()
    return "application/json" in accept and "text/html" not in accept


async def send_discovery(
    scope: Any,
    send: Any,
    page: DiscoveryPage,
    status: int,
    renderer: Callable[[DiscoveryPage], str] | None,
) -> None:
    """The discovery page (HTML), or for a JSON client its error as JSON."""
    if _wants_json(scope):
        if page.error is None:  # the page asks a person; a program must ask for one
            status, code, text = 400, "invalid_request", _ONE_OF
        else:
            code = "unknown_connection" if status == 404 else "invalid_request"
            text = page.error
        body = error_document(code, text, status)
        headers = [(b"content-type", b"application/json")]
    else:
        body = (renderer or render_page)(page).encode()
        csp = _BUILT_IN_CSP if renderer is None else b"frame-ancestors 'none'"
        headers = [
            (b"content-type", b"text/html; charset=utf-8"),
            (b"content-security-policy", csp),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
    headers += [(b"content-length", str(len(body)).encode()), _NO_STORE]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
