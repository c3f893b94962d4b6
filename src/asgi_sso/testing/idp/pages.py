"""The dev IdP's few HTML pages: pick a user, an error, signed out. All values are escaped."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from starlette.responses import HTMLResponse

from asgi_sso.testing.idp.model import DevUser

__all__ = ["error_page", "login_page", "message_page"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}"
    "button{display:block;width:100%;margin:.4rem 0;padding:.6rem;text-align:left}"
    "small{color:#555}.warn{color:#8a2a00}"
)
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    # No form-action: browsers apply it to the redirect that follows the form post, and
    # that redirect goes to the relying party's (already validated) redirect_uri.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def login_page(action: str, params: Mapping[str, str], users: Iterable[DevUser]) -> HTMLResponse:
    """The sign-in page: a button per user, and a field to type any sub or e-mail."""
    hidden = "".join(
        f'<input type=hidden name="{escape(k)}" value="{escape(v)}">' for k, v in params.items()
    )
    buttons = "".join(
        f'<button type=submit name=login value="{escape(u.sub)}">{escape(u.name or u.sub)}'
        f" <small>{escape(u.email or '')} {escape(' '.join(u.groups))}</small></button>"
        for u in users
    )
    body = (
        "<p class=warn>Development identity provider. Never use it in production.</p>"
        f'<form method=post action="{escape(action)}">{hidden}{buttons}</form>'
        f'<form method=post action="{escape(action)}">{hidden}'
        "<label>Any subject or e-mail <input name=login required autocomplete=off></label>"
        "<button type=submit>Sign in</button></form>"
    )
    return _page("Sign in to the dev IdP", body)


def error_page(error: str, description: str, status: int = 400) -> HTMLResponse:
    """An error shown to the user instead of redirecting (OIDC Core §3.1.2.6)."""
    return _page("Sign-in error", f"<p><b>{escape(error)}</b>: {escape(description)}</p>", status)


def message_page(title: str, text: str) -> HTMLResponse:
    """A plain message, e.g. after signing out."""
    return _page(title, f"<p>{escape(text)}</p>")
