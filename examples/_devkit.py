"""What both examples share: reading the ``OIDC_*`` settings and running embedded dev IdPs.

With ``OIDC_ISSUER`` unset an example runs in *dev mode*: it trusts one or more
in-process :class:`~asgi_sso.testing.DevIdP` instances, served on 127.0.0.1 so a
browser (or ``curl``) can reach them, and prints where they are and who can sign in.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec

from asgi_sso import ConfigurationError, Issuer, Secret
from asgi_sso.testing import DevIdP

__all__ = ["LOOPBACK_HOSTS", "OidcSettings", "in_process_client", "is_loopback_http", "serving"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A real OpenID provider, from the ``OIDC_*`` environment variables.

    Attributes:
        issuer: ``OIDC_ISSUER``, the provider's issuer URL (discovery is used).
        client_id: ``OIDC_CLIENT_ID``, this app's client at the provider.
        client_secret: ``OIDC_CLIENT_SECRET``.
        redirect_uri: ``OIDC_REDIRECT_URI``, the registered callback
            (``<app url>/auth/callback``).
        audience: ``OIDC_AUDIENCE``, the ``aud`` of access tokens sent to the API
            (defaults to the client id).
        algorithms: ``OIDC_ALGORITHMS``, comma-separated (default ``RS256``).
        docs_client_id: ``OIDC_DOCS_CLIENT_ID``, a public client (PKCE, redirect URI
            ``<app url>/docs/oauth2-redirect``) for "Authorize" in ``/docs``; unset: none.
        docs_scopes: ``OIDC_DOCS_SCOPES``, comma-separated, what "Authorize" asks for
            (default ``openid``; Entra ID: ``api://<your api>/.default``).
    """

    issuer: str
    client_id: str | None = None
    client_secret: Secret | None = None
    redirect_uri: str | None = None
    audience: str | None = None
    algorithms: tuple[str, ...] = ("RS256",)
    docs_client_id: str | None = None
    docs_scopes: tuple[str, ...] = ("openid",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> OidcSettings | None:
        """The provider settings, or ``None`` (dev mode) when ``OIDC_ISSUER`` is unset."""
        env = os.environ if environ is None else environ
        issuer = env.get("OIDC_ISSUER", "").strip()
        if not issuer:
            return None
        secret = env.get("OIDC_CLIENT_SECRET", "")
        algorithms = tuple(a.strip() for a in env.get("OIDC_ALGORITHMS", "RS256").split(","))
        docs_scopes = tuple(s.strip() for s in env.get("OIDC_DOCS_SCOPES", "openid").split(","))
        return cls(
            issuer=issuer,
            client_id=env.get("OIDC_CLIENT_ID") or None,
            client_secret=Secret(secret) if secret else None,
            redirect_uri=env.get("OIDC_REDIRECT_URI") or None,
            audience=env.get("OIDC_AUDIENCE") or None,
            algorithms=tuple(a for a in algorithms if a),
            docs_client_id=env.get("OIDC_DOCS_CLIENT_ID") or None,
            docs_scopes=tuple(s for s in docs_scopes if s),
        )

    def api_issuer(self) -> Issuer:
        """The trusted issuer of the API's access tokens (``OIDC_AUDIENCE`` required).

        No default from the client id: that is the audience of ID tokens, not of the
        access tokens the API accepts; naming the client lets the middleware refuse
        its ID tokens as bearer tokens.
        """
        if self.audience is None:
            raise ConfigurationError(
                "OIDC_AUDIENCE is required: the 'aud' of the access tokens the API accepts"
            )
        return Issuer(
            issuer=self.issuer,
            audience=self.audience,
            client_id=self.client_id,
            algorithms=self.algorithms,
        )


def is_loopback_http(url: str) -> bool:
    """Whether ``url`` is plain ``http://`` on this machine (where insecure cookies may go)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS


def cookie_security(app_url: str, *, dev_mode: bool) -> bool:
    """Whether session cookies must be ``Secure``.

    Raises:
        ConfigurationError: an ``http://`` app URL that is not loopback, or outside dev mode
            on a non-loopback host.
    """
    if urlsplit(app_url).scheme == "https":
        return True
    if is_loopback_http(app_url):
        return False
    raise ConfigurationError(
        f"APP_URL {app_url!r}: plain http is only allowed on 127.0.0.1/localhost"
        + (" (dev mode)" if dev_mode else "")
    )


def session_secret(environ: Mapping[str, str] | None = None) -> Secret:
    """``SESSION_SECRET`` (>= 32 bytes), or a random one: sessions then end on restart."""
    env = os.environ if environ is None else environ
    value = env.get("SESSION_SECRET", "")
    return Secret(value if value else secrets.token_urlsafe(32))


def in_process_client(idps: Sequence[DevIdP]) -> httpx.AsyncClient:
    """One ``httpx.AsyncClient`` reaching every dev IdP in process (no sockets)."""
    first, *others = idps
    return first.http_client(mounts={idp.origin: httpx.ASGITransport(app=idp) for idp in others})


@contextmanager
def serving(idps: Sequence[DevIdP], banner: Sequence[str] = ()) -> Iterator[None]:
    """Serve the dev IdPs on their loopback ports and print ``banner`` once they listen."""
    with ExitStack() as stack:
        for idp in idps:
            stack.enter_context(idp.serve())
        if banner:
            print("\n".join(banner), flush=True)
        yield


def user_lines(idp: DevIdP, describe: Any = None) -> list[str]:
    """One line per test user of ``idp``: sub, email, groups, and the connection claim if any."""
    lines = []
    for user in idp.users.values():
        where = user.connection_id or user.tenant
        extra = f"  {describe(user)}" if describe is not None else ""
        lines.append(
            f"  {user.sub:<22} {user.email or '':<24} groups={','.join(user.groups) or '-':<28}"
            + (f" connection={where}" if where else "")
            + extra
        )
    return lines
