"""Browser sign-in settings: :class:`LoginConfig`, validated when built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

import msgspec

from asgi_sso.config import Secret, check_fields, is_loopback, plain_http_host
from asgi_sso.errors import ConfigurationError
from asgi_sso.keys.client_auth import (
    ClientKey,
    credentials_problem,
    load_client_key,
    load_public_key,
)
from asgi_sso.login.discovery import DiscoveryPage
from asgi_sso.login.return_to import safe_return_to
from asgi_sso.mcp.resource import canonical_resource
from asgi_sso.sessions.codec import MIN_SECRET_BYTES

__all__ = ["LoginConfig"]

_RESERVED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
     "code_challenge", "code_challenge_method", "resource"}
)  # fmt: skip
_COOKIE_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class LoginConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Browser sign-in settings.

    Sign-in goes to the *default provider* (``issuer``, ``client_id``) and, when the
    middleware is given ``connections``, to each enabled connection with a
    ``client_id``, found by home-realm discovery: ``{prefix}/login?email=…``,
    ``?domain=…`` or ``?connection=<id>``. ``{prefix}/login`` without any of them
    goes to the default provider, or shows a "sign in with your work email" page
    when there is none (see ``discovery_page``). Every connection uses its own
    client, scopes and ``authorize_params``; the settings here that name a client
    (``client_secret``, ``client_key``, ``token_endpoint_auth``, ``scopes``,
    ``extra_authorize_params``) are the default provider's. ``par`` and
    ``jwks_path`` apply to every provider.

    Attributes:
        issuer: the default sign-in provider: exactly one configured (non-template)
            ``Issuer.issuer``. ``None``: users sign in only through connections.
        client_id: this app's OAuth client id at the default provider (given exactly
            when ``issuer`` is).
        client_secret: the client secret (``None`` for a public client with ``"none"``).
        client_key: the private key (PEM, or a JWK as JSON; RSA or P-256) for
            ``token_endpoint_auth="private_key_jwt"``, and only for it; read when built.
            :meth:`~asgi_sso.config.Secret.from_file` reads it from a file. The text may
            also hold the key's X.509 certificate (the key and certificate PEM blocks,
            in either order, or a JWK with ``x5c``), as Entra ID requires: it must be
            the key's own, each assertion then names it by ``x5t`` and ``x5t#S256``,
            and an expired certificate is logged at WARNING when the middleware starts.
        published_keys: more keys served at ``jwks_path`` after ``client_key`` but never
            used to sign: the next key before a rotation, the previous one for a while
            after (PEM or JWK, public or private, with a certificate or not). Every
            ``kid`` must differ. Goes with ``client_key``.
        redirect_uri: the registered callback URL; ``None`` derives it from the request's
            scheme and host plus ``{prefix}/callback``.
        scopes: requested scopes; must contain ``openid``.
        prefix: where the routes live: ``{prefix}/login``, ``/callback``, ``/logout``.
        cookie_secrets: cookie encryption secrets, oldest to newest (each >= 32 bytes);
            the newest encrypts, all decrypt.
        secure_cookies: ``Secure`` cookies with the ``__Host-``/``__Secure-`` prefixes. Set
            ``False`` only for ``http://localhost`` development (a plain-http
            ``redirect_uri`` needs it: browsers never send a ``Secure`` cookie there).
            ``False`` with a ``redirect_uri`` on another host needs ``allow_insecure_http``.
        session_lifetime: how long a session lasts after the provider last vouched for the
            user (the sign-in, or a successful refresh when ``max_session_lifetime`` allows
            extending), seconds.
        idle_timeout: a session unused this long ends, seconds.
        state_lifetime: how long a started sign-in may take, seconds.
        token_endpoint_auth: ``client_secret_basic``, ``client_secret_post``,
            ``private_key_jwt`` (a JWT signed with ``client_key``, RFC 7523) or ``none``.
        use_userinfo: merge the UserInfo claims (groups and email often live only there).
        end_session: continue logout at the provider's ``end_session_endpoint``.
        post_logout_redirect_uri: absolute URL the provider returns to after logout.
        default_return_to: where to land after sign-in without a valid ``return_to``.
        extra_authorize_params: extra authorization request parameters (``prompt``,
            ``domain_hint``, ``organization`` …); cannot override the protocol ones.
        discovery_page: renders the home-realm discovery page in place of the built-in
            one: called with a :class:`~asgi_sso.login.discovery.DiscoveryPage` (the
            form's action URL, the ``return_to`` to carry in a hidden field, the email
            typed so far and an error message or ``None``), it returns the whole HTML
            document, and must escape every value it shows. The status (200, or 404
            for an unknown domain) and the headers are set by the caller.
        session_cookie: the session cookie's base name.
        state_cookie: the state cookies' base name.
        http_timeout: overall deadline of one token or userinfo call, seconds.
        touch_interval: the idle clock is advanced at most this often, seconds.
        refresh: use the provider's refresh token (kept only in a server-side store, never
            in a cookie) when the access/ID token nears its end: the user's claims are
            renewed, a user the provider has disabled is signed out (``invalid_grant``),
            and the session may be extended up to ``max_session_lifetime``. Most providers
            issue refresh tokens only for the ``offline_access`` scope (Google wants
            ``access_type=offline`` in ``extra_authorize_params``).
        max_session_lifetime: the absolute cap on a session since sign-in, however often
            it is refreshed, seconds. ``None`` makes it ``session_lifetime``: refreshes then
            revalidate the user but never extend the session.
        refresh_leeway: refresh this long before the tokens expire (and never more often),
            seconds.
        refresh_retry: after a failed attempt (provider down or answering garbage), wait
            this long before trying again; the session lives on meanwhile, seconds.
        dpop: ``"auto"`` makes each sign-in a DPoP key (RFC 9449) when its provider
            lists ``ES256`` in ``dpop_signing_alg_values_supported``, for the default
            provider and every connection alike: the token requests (code and
            refresh grants) and userinfo calls then prove it, and the provider may
            bind the tokens to it. ``"off"`` never sends a proof (a session already
            holding a key keeps using it: its refresh token may be bound to it).
        allow_insecure_http: accept a plain-http ``redirect_uri`` or
            ``post_logout_redirect_uri`` on another machine, and ``secure_cookies=False``
            there: session cookies and authorization codes would cross the network
            readable by anyone on the way (development on a LAN only; logged once at
            WARNING). ``http://localhost`` needs no switch.
        resource: this app's canonical resource URL, sent as ``resource`` (RFC 8707)
            in the authorization and token requests of every provider, so that the
            access token is issued for this resource (e.g. an MCP server's
            ``ProtectedResource.resource``); canonicalised when built. Leave it unset
            for providers that refuse the parameter (Entra ID v2 wants scopes of the
            Application ID URI instead).
        jwks_path: where the public halves of the client keys (the default provider's
            ``client_key`` and every enabled connection's) are served as a JWK Set,
            for the IdP to fetch (register this URL as the client's JWKS URL);
            ``None`` serves them at ``{prefix}/jwks.json``. Answers 404 while no
            provider uses ``private_key_jwt``.
        par: pushed authorization requests (RFC 9126), for every provider: ``"auto"``
            pushes when the provider's metadata sets
            ``require_pushed_authorization_requests``; ``"always"`` pushes to every
            provider and refuses to sign in (503) at one that advertises no
            ``pushed_authorization_request_endpoint``; ``"never"`` sends every
            parameter through the browser.

    Raises:
        ConfigurationError: a value of the wrong type, an unsafe setting without
            ``allow_insecure_http``, or settings that contradict each other; the
            message names the fix.
    """

    cookie_secrets: tuple[Secret, ...]
    issuer: str | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    redirect_uri: str | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    prefix: str = "/auth"
    secure_cookies: bool = True
    session_lifetime: float = 8 * 3600.0
    idle_timeout: float = 3600.0
    state_lifetime: float = 600.0
    client_key: Secret | None = None
    published_keys: tuple[Secret, ...] = ()
    token_endpoint_auth: Literal[
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
    ] = "client_secret_basic"
    use_userinfo: bool = True
    end_session: bool = True
    post_logout_redirect_uri: str | None = None
    default_return_to: str = "/"
    extra_authorize_params: dict[str, str] = {}
    session_cookie: str = "sso_session"
    state_cookie: str = "sso_state"
    http_timeout: float = 10.0
    touch_interval: float = 60.0
    refresh: bool = True
    max_session_lifetime: float | None = None
    refresh_leeway: float = 60.0
    refresh_retry: float = 60.0
    dpop: Literal["auto", "off"] = "auto"
    discovery_page: Callable[[DiscoveryPage], str] | None = None
    allow_insecure_http: bool = False
    resource: str | None = None
    jwks_path: str | None = None
    par: Literal["auto", "always", "never"] = "auto"

    def __post_init__(self) -> None:
        fail = ConfigurationError
        check_fields(self)
        if self.resource is not None:
            # One spelling everywhere: the token's aud is compared as a string.
            msgspec.structs.force_setattr(self, "resource", canonical_resource(self.resource))
        self._check_default_provider()
        if not self.cookie_secrets:
            raise fail("LoginConfig.cookie_secrets needs at least one secret")
        if any(len(s.reveal()) < MIN_SECRET_BYTES for s in self.cookie_secrets):
            raise fail(f"every LoginConfig.cookie_secrets entry needs >= {MIN_SECRET_BYTES} bytes")
        if self.discovery_page is not None and not callable(self.discovery_page):
            raise fail("LoginConfig.discovery_page must be a callable returning HTML")
        if "openid" not in self.scopes:
            raise fail("LoginConfig.scopes must include 'openid'")
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise fail("LoginConfig.prefix must start with '/' and not end with '/'")
        self._check_jwks_path()
        for name in ("session_lifetime", "idle_timeout", "state_lifetime", "http_timeout",
                     "refresh_leeway", "refresh_retry"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise fail(f"LoginConfig.{name} must be positive")
        cap = self.max_session_lifetime
        if cap is not None and cap < self.session_lifetime:
            raise fail("LoginConfig.max_session_lifetime must not be below session_lifetime")
        if self.idle_timeout > self.session_lifetime:
            raise fail("LoginConfig.idle_timeout must not exceed session_lifetime")
        if not 0 <= self.touch_interval < self.idle_timeout:
            raise fail("LoginConfig.touch_interval must be >= 0 and below idle_timeout")
        for name in ("redirect_uri", "post_logout_redirect_uri"):
            value = getattr(self, name)
            if value is not None and (
                urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).netloc
            ):
                raise fail(f"LoginConfig.{name} must be an absolute http(s) URL")
        self._check_transport()
        if safe_return_to(self.default_return_to) != self.default_return_to:
            raise fail("LoginConfig.default_return_to must be a path inside the app")
        clash = _RESERVED_PARAMS.intersection(self.extra_authorize_params)
        if clash:
            raise fail(f"extra_authorize_params cannot set {sorted(clash)}")
        for name in (self.session_cookie, self.state_cookie):
            if not name or not set(name) <= _COOKIE_NAME_CHARS or name.startswith("__"):
                raise fail(f"cookie name {name!r} must be letters, digits, '_' or '-'")
        if self.session_cookie == self.state_cookie:
            raise fail("session_cookie and state_cookie must differ")

    def _check_default_provider(self) -> None:
        fail = ConfigurationError
        if (self.issuer is None) != (self.client_id is None):
            raise fail(
                "LoginConfig.issuer and client_id go together: set both (the default "
                "provider) or neither (sign-in only through connections)"
            )
        if self.published_keys and self.client_key is None:
            raise fail("LoginConfig.published_keys go with client_key (private_key_jwt)")
        if self.issuer is None:
            for name in ("client_secret", "client_key"):
                if getattr(self, name) is not None:
                    raise fail(f"LoginConfig.{name} belongs to the default provider: set issuer")
            return
        if not self.issuer or "{tenant}" in self.issuer:
            raise fail("LoginConfig.issuer must be one exact issuer URL, not a template")
        if not self.client_id:
            raise fail("LoginConfig.client_id must not be empty")
        problem = credentials_problem(
            self.token_endpoint_auth,
            secret=self.client_secret is not None,
            key=self.client_key is not None,
        )
        if problem is not None:
            raise fail(f"LoginConfig: {problem}")
        if self.client_key is not None:
            self._check_keys()

    def _check_keys(self) -> None:
        # An unreadable key fails now, not on a user's sign-in; the IdP picks a key by
        # kid, so two published keys may never share one.
        signing = self.signing_key()
        kids = [key.kid for key in (signing, *self.published_public_keys()) if key is not None]
        twice = sorted({kid for kid in kids if kids.count(kid) > 1})
        if twice:
            raise ConfigurationError(
                f"LoginConfig.published_keys: the kid {twice[0]!r} names two published keys "
                "(a key given twice, or the client_key again): each key needs its own kid"
            )

    def signing_key(self) -> ClientKey | None:
        """The parsed ``client_key``, or ``None`` without one.

        Raises:
            ConfigurationError: the key is not a private RSA or P-256 key (PEM or JWK).
        """
        if self.client_key is None:
            return None
        try:
            text = self.client_key.reveal_str()
        except UnicodeDecodeError as exc:
            raise ConfigurationError("LoginConfig.client_key must be text (PEM or JWK)") from exc
        return load_client_key(text, "LoginConfig.client_key")

    def published_public_keys(self) -> tuple[ClientKey, ...]:
        """The parsed ``published_keys``, in the order given.

        Raises:
            ConfigurationError: a key that is not an RSA or P-256 key (PEM or JWK).
        """
        keys = []
        for index, secret in enumerate(self.published_keys):
            name = f"LoginConfig.published_keys[{index}]"
            try:
                text = secret.reveal_str()
            except UnicodeDecodeError as exc:
                raise ConfigurationError(f"{name} must be text (PEM or JWK)") from exc
            keys.append(load_public_key(text, name))
        return tuple(keys)

    def _check_jwks_path(self) -> None:
        path = self.jwks_route
        names = ("/login", "/callback", "/logout", "/backchannel-logout")
        routes = {self.prefix + name for name in names}
        if path == "/" or not path.startswith("/") or path in routes or set("?#") & set(path):
            raise ConfigurationError(
                "LoginConfig.jwks_path must be a path starting with '/' that is not one of "
                "the sign-in routes"
            )

    @property
    def jwks_route(self) -> str:
        """Where the client keys' JWK Set is served (``jwks_path`` or ``{prefix}/jwks.json``)."""
        return self.jwks_path if self.jwks_path is not None else self.prefix + "/jwks.json"

    def _check_transport(self) -> None:
        # Cookies and authorization codes must not cross the network in the clear.
        fail = ConfigurationError
        redirect = urlsplit(self.redirect_uri) if self.redirect_uri else None
        if self.secure_cookies and redirect is not None and redirect.scheme == "http":
            raise fail(
                f"LoginConfig.redirect_uri {self.redirect_uri!r} is plain http, where "
                "browsers never send the Secure session cookie: use an https redirect_uri, "
                "or set secure_cookies=False for http://localhost development"
            )
        if self.allow_insecure_http:
            return
        for name in ("redirect_uri", "post_logout_redirect_uri"):
            host = plain_http_host(getattr(self, name))
            if host is not None:
                raise fail(
                    f"LoginConfig.{name} is plain http to {host}: the authorization code "
                    "and the session cookie would cross the network readable by anyone on "
                    "the way. Use https, or pass allow_insecure_http=True for development "
                    "(http://localhost needs no switch)"
                )
        if not self.secure_cookies and redirect is not None and not is_loopback(redirect.hostname):
            raise fail(
                f"LoginConfig(secure_cookies=False) with the redirect_uri host "
                f"{redirect.hostname}: the session cookie would also be sent over plain "
                "http. Remove secure_cookies=False (it is meant for http://localhost), or "
                "pass allow_insecure_http=True for development"
            )

    @property
    def unsafe_choices(self) -> tuple[str, ...]:
        """The protections this configuration turns off on purpose, in words."""
        if not self.allow_insecure_http:
            return ()
        choices = [
            f"LoginConfig.{name} is plain http to {plain_http_host(getattr(self, name))}"
            for name in ("redirect_uri", "post_logout_redirect_uri")
            if plain_http_host(getattr(self, name)) is not None
        ]
        host = urlsplit(self.redirect_uri).hostname if self.redirect_uri else None
        if not self.secure_cookies and host is not None and not is_loopback(host):
            choices.append(f"LoginConfig has secure_cookies=False on {host}")
        return tuple(
            f"{choice} (allow_insecure_http=True): session cookies and authorization "
            "codes can be read on the network"
            for choice in choices
        )

    @property
    def session_cap(self) -> float:
        """The absolute session lifetime since sign-in, seconds."""
        return self.max_session_lifetime or self.session_lifetime
