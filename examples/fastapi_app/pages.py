"""The FastAPI example's HTML pages: plain strings, every value escaped."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from asgi_sso import Principal, StoredUser

__all__ = ["admin_page", "dashboard_page", "error_page", "home_page"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2.5rem auto;padding:0 1rem;"
    "color:#1d2330}a.button,button{display:inline-block;padding:.55rem 1rem;border-radius:.4rem;"
    "border:0;background:#2757d6;color:#fff;text-decoration:none;font-size:1rem;cursor:pointer}"
    "dl{display:grid;grid-template-columns:9rem 1fr;gap:.4rem}dt{color:#667}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #dde;padding:.4rem;"
    "text-align:left}nav{margin-bottom:1.5rem}nav a{margin-right:1rem}"
)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · Acme Analytics</title><style>{_STYLE}</style></head>"
        "<body><nav><a href='/'>Home</a><a href='/dashboard'>Dashboard</a>"
        f"<a href='/admin/users'>Admin</a><a href='/docs'>API docs</a></nav>{body}</body></html>"
    )


def home_page(user: Principal | None = None) -> str:
    """The public landing page: who is signed in, or the "Sign in with SSO" button."""
    if user is None:
        action = (
            "<p><a class=button id=signin href='/auth/login?return_to=/dashboard'>"
            "Sign in with SSO</a></p>"
        )
    else:
        action = (
            f"<p id=signed-in>Signed in as <b>{escape(user.email or user.display_name)}</b>"
            f" ({escape(user.connection)})</p>"
            "<p><a class=button href='/dashboard'>Open your dashboard</a></p>"
        )
    return _page(
        "Welcome",
        "<h1>Acme Analytics</h1><p>Dashboards for your whole company, "
        f"signed in through your company's identity provider.</p>{action}",
    )


def dashboard_page(user: Principal) -> str:
    """The signed-in user's dashboard: who, which company, which tier, and "Sign out"."""
    rows = {
        "Email": user.email or "(not released by the provider)",
        "Name": user.display_name,
        "Company": user.connection,
        "Tier": user.tier or "(none)",
        "Scopes": " ".join(sorted(user.scopes)) or "(none)",
        "Signed in via": user.source,
    }
    details = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows.items())
    return _page(
        "Dashboard",
        f"<h1>Hello, <span id=email>{escape(user.email or user.display_name)}</span></h1>"
        f"<dl>{details}</dl>"
        "<form method=post action='/auth/logout'>"
        "<button type=submit id=signout>Sign out</button></form>",
    )


def admin_page(admin: Principal, users: Iterable[StoredUser]) -> str:
    """The connection's provisioned users, for an admin of that connection."""
    rows = "".join(
        f"<tr><td>{escape(u.profile.email or '')}</td><td>{escape(u.profile.name or '')}</td>"
        f"<td>{escape(u.profile.tier or '')}</td><td>{'active' if u.active else 'deactivated'}</td>"
        "</tr>"
        for u in users
    )
    return _page(
        "Users",
        f"<h1>Users of {escape(admin.connection)}</h1><table id=users><thead><tr><th>Email</th>"
        f"<th>Name</th><th>Tier</th><th>Status</th></tr></thead><tbody>{rows}</tbody></table>",
    )


def error_page(status: int, message: str) -> str:
    """A refusal shown to a browser (the API gets the JSON body instead)."""
    title = "Not allowed" if status == 403 else "Sign-in required" if status == 401 else "Error"
    return _page(title, f"<h1 id=error>{status} · {escape(title)}</h1><p>{escape(message)}</p>")
