"""The ``asgi-sso`` command: serve the dev IdP, print a token from it, explain why a token
verifies or not, list JWKS keys, manage connections (docs/cli.md).

Exit codes: 0 ok, 1 verification or a connection test failed or the IdP refused a token,
2 usage, bad input (an unknown connection, a conflict, an invalid value) or a missing extra,
3 network, IdP or store unavailable. A token's signature and a connection's secrets are
never printed (``token`` prints the token it was asked for, and nothing else). ``verify``,
``token``, ``jwks`` and ``connections`` on a file need only the core dependencies;
``dev-idp`` needs the ``testing`` extra, a SQL connection store the ``sql`` extra,
``--redis`` the ``redis`` extra, and each says so when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import os
import re
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar
from urllib.parse import quote_plus, urlsplit

import httpx
import msgspec

from asgi_sso.config import CertificateHeader, Issuer, Limits, Secret, SystemClock, is_loopback
from asgi_sso.connections import Connection, ConnectionStore, StaticConnections
from asgi_sso.connections.manage import (
    ConnectionAdmin,
    announce_on,
    connection_from_input,
)
from asgi_sso.connections.probe import ProbeReport
from asgi_sso.errors import (
    AuthError,
    ConfigurationError,
    ConnectionChangeError,
    ServiceUnavailable,
)
from asgi_sso.identity.revocation import RevocationBus
from asgi_sso.keys.discovery import parse_metadata
from asgi_sso.observe.events import Emitter, Event

if TYPE_CHECKING:
    from asgi_sso.testing.dpop import DPoPClient
    from asgi_sso.testing.idp import DevClient, DevIdP, DevUser

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "EXIT_UNAVAILABLE", "main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")
_DISCOVERY = "/.well-known/openid-configuration"
_T = TypeVar("_T", bound=msgspec.Struct)


class _Usage(Exception):
    """Bad input: printed and answered with exit code 2."""


class _Unavailable(Exception):
    """The network or the IdP failed: printed and answered with exit code 3."""


class _Refused(Exception):
    """The IdP refused what was asked (an OAuth error): printed, exit code 1."""


class _DevIdPFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # The `dev-idp --config` file (docs/cli.md). Users and clients stay raw JSON until the
    # test kit is imported (the `testing` extra): this module imports only the core, so
    # `verify`, `jwks` and `token` run without it.
    users: list[msgspec.Raw] = msgspec.field(default_factory=list)
    clients: list[msgspec.Raw] = msgspec.field(default_factory=list)
    algorithm: str | None = None
    auto_approve: bool | None = None
    require_par: bool = False
    client_cert_header: CertificateHeader | None = None


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`")


# A subcommand's needs beyond the core: the extra that installs them and modules to import.
_Extra = tuple[str, tuple[str, ...]]
_TESTING: _Extra = ("testing", ("asgi_sso.testing.idp", "uvicorn"))


def _require(extra: _Extra | None) -> None:
    """Import what a subcommand needs beyond the core, or name the extra that installs it."""
    if extra is None:
        return
    name, modules = extra
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = (exc.name or module).partition(".")[0]
            if missing == "asgi_sso":  # a broken install of this package, not a missing extra
                raise
            raise _Usage(
                f"needs the {name} extra ({missing} is not installed): "
                f"pip install 'asgi-sso[{name}]'"
            ) from exc


def _invalid(exc: msgspec.ValidationError, where: str, kind: type[msgspec.Struct]) -> _Usage:
    """A validation error of the member at ``where``, said as ``where.path: what is wrong``."""
    text = str(exc)
    at = _AT.search(text)
    path = (where + at.group("path")) if at else where
    text = text[: at.start()] + text[at.end() :] if at else text
    if "unknown field" in text:
        known = ", ".join(field.name for field in msgspec.structs.fields(kind))
        text += f" (known: {known})"
    return _Usage(f"{path.lstrip('.')}: {text}" if path.lstrip(".") else text)


def _decode_each(raws: list[msgspec.Raw], kind: type[_T], where: str, key: str) -> list[_T]:
    out: list[_T] = []
    seen: dict[object, int] = {}
    for index, raw in enumerate(raws):
        try:
            item = msgspec.json.decode(raw, type=kind)
        except msgspec.ValidationError as exc:
            raise _invalid(exc, f"{where}[{index}]", kind) from exc
        value = getattr(item, key)
        if value in seen:
            raise _Usage(f"{where}[{index}]: {key} {value!r} is already {where}[{seen[value]}]")
        seen[value] = index
        out.append(item)
    return out


def _parse_user(spec: str) -> DevUser:
    from asgi_sso.testing.idp import DevUser

    sub, _, rest = spec.partition(":")
    email, _, groups = rest.partition(":")
    return DevUser(sub=sub, email=email or None, groups=tuple(g for g in groups.split(",") if g))


def _read_config(path: str | None) -> tuple[_DevIdPFile, list[DevUser], list[DevClient]]:
    from asgi_sso.testing.idp import DevClient, DevUser

    if path is None:
        return _DevIdPFile(), [], []
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        file = msgspec.json.decode(raw, type=_DevIdPFile)
    except msgspec.ValidationError as exc:
        raise _Usage(f"{path}: {_invalid(exc, '', _DevIdPFile)}") from exc
    except msgspec.DecodeError as exc:
        raise _Usage(f"{path} is not valid JSON: {exc}") from exc
    try:
        users = _decode_each(file.users, DevUser, "users", "sub")
        clients = _decode_each(file.clients, DevClient, "clients", "client_id")
    except _Usage as exc:
        raise _Usage(f"{path}: {exc}") from exc
    return file, users, clients


def _build_idp(args: argparse.Namespace) -> DevIdP:
    from asgi_sso.testing.idp import DEMO_CLIENTS, DEMO_USERS, DevClient, DevIdP

    host: str = args.host
    if host not in _LOOPBACK and not args.allow_remote:
        raise _Usage(f"refusing to listen on {host}: the dev IdP is for loopback only "
                     "(pass --allow-remote if you really mean it)")  # fmt: skip
    if not 0 <= args.port <= 65535:
        raise _Usage("--port must be between 0 and 65535")
    file, users, clients = _read_config(args.config)
    users.extend(_parse_user(spec) for spec in args.user)
    if args.client_id:
        clients.append(
            DevClient(
                client_id=args.client_id,
                client_secret=args.client_secret,
                redirect_uris=tuple(args.redirect_uri),
                post_logout_redirect_uris=tuple(args.post_logout_redirect_uri),
                backchannel_logout_uri=args.backchannel_logout_uri,
                audience=args.audience,
                certificate_bound=args.certificate_bound,
            )
        )
    elif args.certificate_bound:
        raise _Usage("--certificate-bound goes with --client-id (the client it binds)")
    port = args.port or _free_port(host)
    bracketed = f"[{host}]" if ":" in host else host
    return DevIdP(
        args.issuer or f"http://{bracketed}:{port}",
        users=users or DEMO_USERS,
        clients=clients or DEMO_CLIENTS,
        algorithm=args.algorithm or file.algorithm or "RS256",
        auto_approve=bool(args.auto_approve or file.auto_approve),
        require_par=file.require_par,
        client_cert_header=_cert_header(args, file.client_cert_header),
    )


def _cert_header(
    args: argparse.Namespace, configured: CertificateHeader | None
) -> CertificateHeader | None:
    """``--client-cert-header`` and ``--trusted-proxy``, else the config file's setting."""
    if args.client_cert_header is None:
        if args.trusted_proxy:
            raise _Usage("--trusted-proxy goes with --client-cert-header")
        return configured
    # Loopback by default: `asgi-sso token --cert` on this machine sends the header itself.
    proxies = tuple(args.trusted_proxy) or _LOOPBACK_ADDRESSES
    return CertificateHeader(trusted_proxies=proxies, format=args.client_cert_header)


def _free_port(host: str) -> int:
    from asgi_sso.testing import free_port

    return free_port(host if host in _LOOPBACK else "127.0.0.1")


def _serve_forever(idp: DevIdP, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(idp, host=host, port=port, log_level="info", lifespan="off", ws="none")

    async def serve() -> None:
        # Signing out at /end_session tells the clients with a back-channel logout URI.
        async with httpx.AsyncClient(timeout=5.0) as http:
            idp.backchannel_client = http
            await uvicorn.Server(config).serve()

    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl-C it handled
        asyncio.run(serve())


def _cmd_dev_idp(args: argparse.Namespace) -> int:
    try:
        idp = _build_idp(args)
    except ConfigurationError as exc:
        raise _Usage(str(exc)) from exc
    port = urlsplit(idp.issuer).port or args.port
    _print_banner(idp)
    sys.stdout.flush()
    _serve_forever(idp, args.host, port)
    return EXIT_OK


def _print_banner(idp: DevIdP) -> None:
    print(f"dev IdP issuer: {idp.issuer}")
    print(f"discovery:      {idp.discovery_url}")
    print(f"algorithm:      {idp.algorithm}{'  (auto-approve)' if idp.auto_approve else ''}")
    for user in idp.users.values():
        print(f"user   {user.sub:<16} {user.email or '-':<24} groups={','.join(user.groups)}")
    for client in idp.clients.values():
        kind = "public" if client.is_public else "confidential (secret set)"
        print(f"client {client.client_id:<16} {kind}; redirect_uris={list(client.redirect_uris)}")
        if client.backchannel_logout_uri is not None:
            print(f"       back-channel logout: {client.backchannel_logout_uri}")
        if client.certificate_bound:
            print("       certificate-bound: its tokens need its client certificate (RFC 8705)")
    header = idp.client_cert_header
    if header is not None:
        name, proxies = header.name.decode(), ", ".join(header.trusted_proxies)
        print(f"client certificates: the {name} header from {proxies}")
    first = next(iter(idp.users.values()), None)
    if first is not None:
        issuer = "" if idp.issuer == DEV_IDP_ISSUER else f" --issuer {idp.issuer}"
        print(f"a token for curl: asgi-sso token --user {first.sub}{issuer}")


def _segment(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except Exception as exc:  # any decoding failure of untrusted input is bad input
        raise _Usage(f"the token's {what} is not base64url-encoded JSON") from exc
    if not isinstance(value, dict):
        raise _Usage(f"the token's {what} is not a JSON object")
    return value


async def _verify(args: argparse.Namespace, token: str) -> AuthError | None:
    issuer = Issuer(
        issuer=args.issuer,
        audience=args.audience,
        jwks_uri=args.jwks_uri,
        algorithms=tuple(args.algorithm or ("RS256",)),
        leeway=args.leeway,
    )
    from asgi_sso.verify.verifier import TokenVerifier

    async with httpx.AsyncClient(timeout=args.timeout) as client:
        verifier = TokenVerifier([issuer], client=client)
        try:
            await verifier.verify(token)
        except AuthError as error:
            return error
    return None


def _cmd_verify(args: argparse.Namespace) -> int:
    token = sys.stdin.read().strip() if args.token == "-" else args.token.strip()
    parts = token.split(".")
    if len(parts) != 3:
        raise _Usage("the token is not a compact JWS (header.payload.signature)")
    report: dict[str, Any] = {
        "header": _segment(parts[0], "header"),
        "claims": _segment(parts[1], "payload"),
    }
    if args.leeway < 0:
        raise _Usage("--leeway is a number of seconds, 0 or more")
    try:
        error = asyncio.run(_verify(args, token))
    except ConfigurationError as exc:
        raise _Usage(str(exc)) from exc
    report["valid"] = error is None
    if error is not None:
        report["reason"] = error.reason
        report["error"] = error.description
        if error.reason == "issuer":
            report["expected_issuer"] = args.issuer
    print(json.dumps(report, indent=2, sort_keys=True))
    if args.audience is None:
        aud = json.dumps(report["claims"].get("aud"))
        print(f"warning: the audience was not checked (the token's aud is {aud}): "
              "pass --audience with your API's audience", file=sys.stderr)  # fmt: skip
    if error is None:
        return EXIT_OK
    print(f"verification failed ({error.reason}): {error.description}", file=sys.stderr)
    if error.reason == "issuer":
        _explain_issuer(report["claims"].get("iss"), args.issuer)
    return EXIT_UNAVAILABLE if isinstance(error, ServiceUnavailable) else EXIT_FAILED


def _explain_issuer(found: object, expected: str) -> None:
    """Show the two issuers one above the other, and the difference when it is subtle."""
    print(f"  the token's issuer: {json.dumps(found)}", file=sys.stderr)
    print(f"  expected issuer:    {json.dumps(expected)}", file=sys.stderr)
    if isinstance(found, str) and found.rstrip("/") == expected.rstrip("/"):
        print("  they differ only in a trailing slash: issuers are compared exactly "
              "(OIDC Core §3.1.3.7)", file=sys.stderr)  # fmt: skip
    elif isinstance(found, str) and found.lower() == expected.lower():
        print("  they differ only in letter case: issuers are compared exactly", file=sys.stderr)


async def _get_json(client: httpx.AsyncClient, url: str) -> tuple[Any, httpx.Response]:
    try:
        response = await client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise _Unavailable(f"cannot reach {url}: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise _Unavailable(f"{url} answered HTTP {response.status_code}")
    try:
        return response.json(), response
    except ValueError as exc:
        raise _Unavailable(f"{url} did not answer JSON") from exc


async def _fetch_jwks(target: str, fetch_timeout: float) -> tuple[str, Any, httpx.Response]:
    async with httpx.AsyncClient(timeout=fetch_timeout, follow_redirects=False) as client:
        if not target.rstrip("/").endswith(_DISCOVERY):
            try:
                body, response = await _get_json(client, target)
            except _Unavailable:
                body = None
            if isinstance(body, dict) and isinstance(body.get("keys"), list):
                return target, body, response
            target = target.rstrip("/") + _DISCOVERY
        metadata, _ = await _get_json(client, target)
        jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
        if not isinstance(jwks_uri, str):
            raise _Unavailable(f"{target} names no jwks_uri")
        body, response = await _get_json(client, jwks_uri)
        return jwks_uri, body, response


def _cmd_jwks(args: argparse.Namespace) -> int:
    if urlsplit(args.target).scheme not in ("http", "https"):
        raise _Usage("give an issuer or JWKS URL starting with https:// or http://")
    uri, body, response = asyncio.run(_fetch_jwks(args.target, args.timeout))
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list):
        raise _Unavailable(f"{uri} is not a JWK Set")
    print(f"jwks_uri:      {uri}")
    print(f"cache-control: {response.headers.get('cache-control', '(none)')}")
    print(f"keys:          {len(keys)}")
    print(f"{'kid':<44} {'kty':<4} {'alg':<8} {'use':<4} crv")
    for key in keys:
        if not isinstance(key, dict):
            print("(not a JSON object)")
            continue
        fields = [str(key.get(name, "-")) for name in ("kid", "kty", "alg", "use", "crv")]
        print(f"{fields[0]:<44} {fields[1]:<4} {fields[2]:<8} {fields[3]:<4} {fields[4]}")
    return EXIT_OK


# -- asgi-sso token ---------------------------------------------------------------------

DEV_IDP_PORT = 8765
DEV_IDP_ISSUER = f"http://127.0.0.1:{DEV_IDP_PORT}"  # where `asgi-sso dev-idp` listens
_MAX_EXPIRES_IN = 86_400
_PRINTABLE_TOKEN = re.compile(r"[\x21-\x7e]{1,16384}")  # nothing a terminal would act on


def _token_problem(args: argparse.Namespace) -> str | None:
    if args.user is None and args.client is None:
        return "give --user NAME (a dev IdP user) or --client ID (the client credentials grant)"
    if args.user is not None and args.secret_env is not None:
        return ("--secret-env goes with --client alone: with --user, --client only picks the "
                "client the token is for, and the dev IdP asks no secret")  # fmt: skip
    if args.user is None and args.secret_env is None:
        return "--client needs --secret-env NAME, the environment variable holding its secret"
    if args.expires_in is not None and not 1 <= args.expires_in <= _MAX_EXPIRES_IN:
        return f"--expires-in is a number of seconds from 1 to {_MAX_EXPIRES_IN}"
    if urlsplit(args.issuer).scheme not in ("http", "https"):
        return "--issuer is the issuer URL, starting with https:// or http://"
    if (args.cert is None) != (args.key is None):
        return "--cert and --key go together: the client certificate and its private key (PEM)"
    return _dpop_problem(args)


def _dpop_problem(args: argparse.Namespace) -> str | None:
    for flag in ("dpop_key", "save_dpop_key"):
        if getattr(args, flag) is not None and not args.dpop:
            return f"--{flag.replace('_', '-')} goes with --dpop"
    if args.dpop and args.dpop_key is not None and args.save_dpop_key is not None:
        return "give one of --dpop-key FILE (a saved key) and --save-dpop-key FILE (a new one)"
    if args.dpop and args.dpop_key is None and args.save_dpop_key is None:
        return ("--dpop needs --dpop-key FILE or --save-dpop-key FILE: a DPoP-bound token "
                "is useless without its key")  # fmt: skip
    return None


def _token_form(args: argparse.Namespace) -> dict[str, str]:
    form: dict[str, str] = {}
    if args.scope:
        form["scope"] = " ".join(args.scope)
    if args.audience:
        form["audience"] = args.audience
    if args.expires_in is not None:
        form["expires_in"] = str(args.expires_in)
    return form


async def _post_token(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    *,
    not_found: str | None = None,
    headers: dict[str, str] | None = None,
    dpop: DPoPClient | None = None,
) -> str:
    """POST ``form`` to a token endpoint; the access token, or why there is none.

    With ``dpop`` the request carries a proof of its key and the token must come back
    DPoP-bound (RFC 9449 §5).
    """
    response = await _token_request(client, url, form, headers or {}, dpop)
    if response.status_code == 404 and not_found is not None:
        raise _Usage(not_found)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Unavailable(f"{url} answered HTTP {response.status_code}, not a JSON object")
    if response.status_code != 200:
        error = _cell(str(body.get("error", "error"))[:100])
        description = _cell(str(body.get("error_description", ""))[:300])
        raise _Refused(f"{url} refused (HTTP {response.status_code}): {error}: {description}")
    token = body.get("access_token")
    if not isinstance(token, str) or not _PRINTABLE_TOKEN.fullmatch(token):
        raise _Unavailable(f"{url} answered no usable access_token")
    if dpop is not None and str(body.get("token_type", "")).lower() != "dpop":
        raise _Refused(f"{url} issued a bearer token, not a DPoP-bound one: does it support DPoP?")
    return token


async def _token_request(
    client: httpx.AsyncClient,
    url: str,
    form: dict[str, str],
    headers: dict[str, str],
    dpop: DPoPClient | None,
) -> httpx.Response:
    """POST, with a DPoP proof when asked: again once with the server's nonce (RFC 9449 §8)."""
    nonce: str | None = None
    for _ in range(2):
        if dpop is not None:
            headers = {**headers, "DPoP": dpop.proof("POST", url, claims={"nonce": nonce})}
        try:
            response = await client.post(url, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise _Unavailable(f"cannot reach {url}: {exc.__class__.__name__}") from exc
        offered = response.headers.get("dpop-nonce", "")
        if dpop is None or nonce is not None or not _NONCE.fullmatch(offered):
            return response
        if response.status_code != 400 or b"use_dpop_nonce" not in response.content:
            return response
        nonce = offered
    return response


async def _user_token(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    dpop: DPoPClient | None,
    cert: _Certificate | None,
) -> str:
    url = args.issuer.rstrip("/") + "/dev/token"
    form = {"user": args.user, **_token_form(args)}
    if args.client:
        form["client_id"] = args.client
    not_found = (
        f"{args.issuer} has no /dev/token: --user works with a running asgi-sso dev IdP "
        "(asgi-sso dev-idp); for another IdP use --client (the client credentials grant)"
    )
    headers = _cert_headers(url, cert)
    token = await _post_token(client, url, form, not_found=not_found, headers=headers, dpop=dpop)
    return _bound_to(token, url, cert)


async def _client_token(
    args: argparse.Namespace,
    client: httpx.AsyncClient,
    secret: str,
    dpop: DPoPClient | None,
    cert: _Certificate | None,
) -> str:
    discovery = args.issuer.rstrip("/") + _DISCOVERY
    try:
        response = await client.get(discovery, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise _Unavailable(f"cannot reach {discovery}: {exc.__class__.__name__}") from exc
    if response.status_code != 200:
        raise _Unavailable(f"{discovery} answered HTTP {response.status_code}")
    try:
        metadata = parse_metadata(response.content, expected_issuer=args.issuer)
    except ValueError as exc:
        raise _Unavailable(f"{discovery}: {exc}") from exc
    if metadata.token_endpoint is None:
        raise _Unavailable(f"{discovery} names no token_endpoint")
    # RFC 6749 §2.3.1: client_secret_basic form-encodes both before base64.
    basic = f"{quote_plus(args.client)}:{quote_plus(secret)}".encode()
    url = metadata.token_endpoint
    headers = {"Authorization": "Basic " + base64.b64encode(basic).decode("ascii")}
    headers.update(_cert_headers(url, cert))
    form = {"grant_type": "client_credentials", **_token_form(args)}
    token = await _post_token(client, url, form, headers=headers, dpop=dpop)
    return _bound_to(token, url, cert)


def _cmd_token(args: argparse.Namespace) -> int:
    problem = _token_problem(args)
    if problem is not None:
        raise _Usage(problem)
    secret = _env_value(args.secret_env, "--secret-env") if args.user is None else ""
    dpop = _dpop_client(args) if args.dpop else None
    cert = _load_certificate(args.cert, args.key) if args.cert is not None else None
    # With --cert, every https connection presents it (mutual TLS, RFC 8705 §3).
    verify: ssl.SSLContext | bool = True if cert is None else cert.context

    async def fetch() -> str:
        async with httpx.AsyncClient(
            timeout=args.timeout, follow_redirects=False, verify=verify
        ) as client:
            if args.user is not None:
                return await _user_token(args, client, dpop, cert)
            return await _client_token(args, client, secret, dpop, cert)

    print(asyncio.run(fetch()))
    return EXIT_OK


# -- asgi-sso token --dpop, asgi-sso dpop-proof ------------------------------------------

# A key file's algorithm when it names none: the usual one of its key type (RFC 7518).
_KEY_ALGORITHMS = {("EC", "P-256"): "ES256", ("EC", "P-384"): "ES384", ("OKP", "Ed25519"): "EdDSA",
                   ("RSA", None): "RS256"}  # fmt: skip
_NONCE = re.compile(r"[\x21-\x7e]{1,1024}")  # RFC 9449 §8.1: NQCHAR, bounded here
_METHOD = re.compile(r"[A-Za-z]{1,20}")


def _dpop_client(args: argparse.Namespace) -> DPoPClient:
    """The key of ``--dpop-key``, or a new one written to ``--save-dpop-key`` (0600)."""
    from asgi_sso.testing.dpop import DPoPClient

    if args.dpop_key is not None:
        return _load_dpop_key(args.dpop_key)
    client = DPoPClient("ES256")
    private = {**client.key.as_dict(private=True), "alg": client.alg}
    path = Path(args.save_dpop_key)
    _must_be_free(path, "reuse it with --dpop-key, or choose another file")
    _create(path, (json.dumps(private, indent=2) + "\n").encode(), 0o600)
    return client


def _load_dpop_key(path: str) -> DPoPClient:
    """The private JWK in ``path``; its contents are never echoed, even when refused."""
    from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

    from asgi_sso.testing.dpop import DPoPClient
    from asgi_sso.verify.dpop import DPOP_ALGORITHMS

    try:
        raw = Path(path).read_bytes()
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _Usage(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        jwk = json.loads(raw)
    except ValueError:
        jwk = None
    if not isinstance(jwk, dict) or not isinstance(jwk.get("kty"), str):
        raise _Usage(f"{path} is not a JSON Web Key (RFC 7517)")
    kind = (jwk["kty"], None if jwk["kty"] == "RSA" else jwk.get("crv"))
    alg = jwk.get("alg") if jwk.get("alg") in DPOP_ALGORITHMS else _KEY_ALGORITHMS.get(kind)
    if alg is None:
        raise _Usage(f"{path} holds no key DPoP can use (EC P-256/P-384, Ed25519 or RSA)")
    if "d" not in jwk:
        raise _Usage(f'{path} holds no private key (no "d"): DPoP proofs are signed with it')
    try:
        key = JWKRegistry.import_key(jwk)
        if not isinstance(key, ECKey | OKPKey | RSAKey):
            raise TypeError(key.__class__.__name__)
        client = DPoPClient(alg, key=key)
        client.proof("POST", "https://check.invalid/")  # the key signs with alg
    except Exception:  # a malformed key: say so without its contents
        raise _Usage(f"{path} holds no usable {alg} private key") from None
    if mode & 0o077:
        print(f"warning: {path} is readable by others: chmod 600 it", file=sys.stderr)
    return client


def _proof_problem(args: argparse.Namespace) -> str | None:
    from asgi_sso.verify.dpop import normalize_htu

    if not _METHOD.fullmatch(args.method):
        return "--method is an HTTP method (GET, POST ...)"
    if normalize_htu(args.url) is None:
        return "--url is the request's absolute http(s) URL"
    if args.token is not None and not _PRINTABLE_TOKEN.fullmatch(args.token):
        return "--token is the access token (printable ASCII, no spaces)"
    if args.nonce is not None and not _NONCE.fullmatch(args.nonce):
        return "--nonce is the server's DPoP-Nonce value (printable ASCII, no spaces)"
    return None


def _cmd_dpop_proof(args: argparse.Namespace) -> int:
    problem = _proof_problem(args)
    if problem is not None:
        raise _Usage(problem)
    client = _load_dpop_key(args.key)
    url = urlsplit(args.url)._replace(query="", fragment="").geturl()  # §4.2: htu has neither
    extra = {"nonce": args.nonce} if args.nonce is not None else None
    print(client.proof(args.method.upper(), url, args.token, claims=extra))
    return EXIT_OK


def _dpop_parsers(token: Any, commands: Any) -> None:
    token.add_argument(
        "--dpop", action="store_true", help="a DPoP-bound token (RFC 9449), for "
        "`Authorization: DPoP`; with --dpop-key or --save-dpop-key",
    )  # fmt: skip
    token.add_argument("--dpop-key", metavar="FILE", help="the private JWK to bind the token to")
    token.add_argument(
        "--save-dpop-key", metavar="FILE", help="make a new ES256 key and save it here (0600)"
    )
    proof = commands.add_parser(
        "dpop-proof",
        help="print a DPoP proof for one request (for curl)",
        description="Print the DPoP proof of one request, signed with a key saved by "
        "`asgi-sso token --dpop --save-dpop-key FILE`: "
        '`curl -H "Authorization: DPoP $T" -H "DPoP: $(asgi-sso dpop-proof --key FILE '
        '--method GET --url URL --token "$T")" URL`. A proof is good for one request.',
    )
    proof.add_argument("--key", required=True, metavar="FILE", help="the private JWK")
    proof.add_argument("--method", required=True, help="the request's HTTP method")
    proof.add_argument("--url", required=True, help="the request's URL")
    proof.add_argument("--token", help="the access token it presents (its hash is the ath)")
    proof.add_argument("--nonce", help="the server's DPoP-Nonce, when it asks for one")
    proof.set_defaults(handler=_cmd_dpop_proof)


# -- asgi-sso token --cert, asgi-sso cert ----------------------------------------------


class _Certificate(NamedTuple):
    """A client certificate for token requests: its TLS context, header value, thumbprint."""

    context: ssl.SSLContext
    header: str  # RFC 9440 Client-Cert: the DER as a structured-field byte sequence
    thumbprint: str  # x5t#S256 (RFC 8705 §3.1)


def _load_certificate(cert_path: str, key_path: str) -> _Certificate:
    """``--cert`` and ``--key``: a PEM certificate and its unencrypted private key."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from asgi_sso.verify.mtls import thumbprint

    try:
        pem = Path(cert_path).read_bytes()
    except OSError as exc:
        raise _Usage(f"cannot read {cert_path}: {exc.strerror or exc}") from None
    try:
        der = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
    except ValueError:
        raise _Usage(f"{cert_path} holds no PEM certificate") from None
    context = httpx.create_ssl_context()
    try:  # OpenSSL checks that the key is the certificate's; never prompt for a passphrase
        context.load_cert_chain(cert_path, key_path, password=lambda: b"")
    except OSError as exc:  # ssl.SSLError is one; its text names no key material
        raise _Usage(
            f"{key_path} is not the private key of {cert_path} (an unencrypted PEM key): "
            f"{getattr(exc, 'reason', None) or exc.strerror or 'unreadable'}"
        ) from None
    header = ":" + base64.b64encode(der).decode("ascii") + ":"
    return _Certificate(context, header, thumbprint(der))


def _cert_headers(url: str, cert: _Certificate | None) -> dict[str, str]:
    """How a token request to ``url`` presents ``cert``: by TLS for ``https``; for a
    loopback ``http`` dev IdP, in the ``Client-Cert`` header it trusts from this machine
    (``dev-idp --client-cert-header rfc9440``, a dev-only shortcut: nothing proves the key)."""
    if cert is None:
        return {}
    parts = urlsplit(url)
    if parts.scheme == "https":
        return {}
    if is_loopback(parts.hostname):
        return {"Client-Cert": cert.header}
    raise _Usage(
        f"{url} is plain http on another host: --cert needs an https token endpoint "
        "(mutual TLS), or a dev IdP on this machine"
    )


def _bound_to(token: str, url: str, cert: _Certificate | None) -> str:
    """``token``, unless it is a JWT that is not bound to ``cert`` (an opaque one passes)."""
    if cert is None or token.count(".") != 2:
        return token
    try:
        claims = _segment(token.split(".")[1], "payload")
    except _Usage:
        return token
    cnf = claims.get("cnf")
    if not isinstance(cnf, dict) or cnf.get("x5t#S256") != cert.thumbprint:
        raise _Refused(
            f"{url} issued a token not bound to the certificate: is the client registered "
            "for certificate-bound tokens (RFC 8705)?"
        )
    return token


def _must_be_free(path: Path, hint: str) -> None:
    """Refuse, before any work, a file that exists or a path that cannot be looked at."""
    try:
        taken = path.exists()
    except OSError as exc:  # a name too long, a folder not readable
        raise _Usage(f"cannot use {path}: {exc.strerror or exc}") from None
    if taken:
        raise _Usage(f"{path} exists: {hint}")


def _create(path: Path, data: bytes, mode: int) -> None:
    """Write a new file (never overwrite one: a token may be bound to what it holds)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise _Usage(f"{path} exists: reuse it, or choose another place") from None
    except OSError as exc:
        raise _Usage(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "wb") as sink:
        sink.write(data)


def _cmd_cert(args: argparse.Namespace) -> int:
    from asgi_sso.testing.mtls import ClientCertificate

    folder = Path(args.out)
    for name in ("key.pem", "cert.pem"):
        _must_be_free(folder / name, "reuse it, or choose another --out")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _Usage(f"cannot make {folder}: {exc.strerror or exc}") from None
    cert = ClientCertificate(args.name)
    _create(folder / "key.pem", cert.key_pem(), 0o600)
    _create(folder / "cert.pem", cert.pem.encode("ascii"), 0o644)
    print(cert.thumbprint)
    return EXIT_OK


def _cert_parsers(token: Any, commands: Any) -> None:
    token.add_argument(
        "--cert", metavar="PEM", help="a client certificate to bind the token to (RFC 8705), "
        "with --key: mutual TLS to an https IdP; to a loopback dev IdP, its Client-Cert header",
    )  # fmt: skip
    token.add_argument("--key", metavar="PEM", help="--cert's private key (unencrypted PEM)")
    cert = commands.add_parser(
        "cert",
        help="make a self-signed client certificate for tests",
        description="Write DIR/cert.pem and DIR/key.pem (0600): a self-signed P-256 client "
        "certificate valid for a day, for `asgi-sso token --cert DIR/cert.pem --key "
        "DIR/key.pem`; print its x5t#S256 thumbprint. Existing files are never overwritten.",
    )
    cert.add_argument("--out", required=True, metavar="DIR", help="where to write the pair")
    cert.add_argument("--name", default="asgi-sso-dev-client", help="the subject CN (%(default)s)")
    cert.set_defaults(handler=_cmd_cert)


# -- asgi-sso connections ---------------------------------------------------------------

_STORE_ENV = "ASGI_SSO_CONNECTIONS"
_SQL_DRIVERS = {"sqlite": "aiosqlite", "postgres": "asyncpg", "postgresql": "asyncpg"}
_WRITES = frozenset({"add", "update", "disable", "enable", "delete"})
_TEXT_FIELDS = (
    "id", "name", "issuer", "tenant", "tenant_claim", "client_id", "token_endpoint_auth",
    "user_claim", "discovery_url", "jwks_uri",
)  # fmt: skip
_SECRET_FLAGS = (
    ("client_secret", "client_secret_env"),
    ("client_key", "client_key_env"),
    ("scim_secret", "scim_secret_env"),
)


def _env_value(name: str, flag: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise _Usage(f"{flag} names the environment variable {name!r}, which is unset or empty")
    return value


def _app_secrets(args: argparse.Namespace) -> list[Secret]:
    if args.secret_env is None:
        return []
    values = [part.strip() for part in _env_value(args.secret_env, "--secret-env").split(",")]
    return [Secret(value) for value in values if value]


def _open_store(args: argparse.Namespace, *, write: bool) -> ConnectionStore:
    """The store named by ``--store`` or ``ASGI_SSO_CONNECTIONS`` (its URL is never printed)."""
    url: str | None = args.store or os.environ.get(_STORE_ENV)
    if not url:
        raise _Usage(f"name the connection store with --store URL or {_STORE_ENV}")
    scheme, sep, _ = url.partition("://")
    if not sep and url.lower().endswith((".json", ".toml")):
        if write:
            raise _Usage(
                f"{url} is a connections file, read-only here: edit the file, or use a "
                "sqlite:// or postgresql:// store"
            )
        try:
            return StaticConnections.from_file(url)
        except ConfigurationError as exc:
            raise _Usage(str(exc)) from exc
    driver = _SQL_DRIVERS.get(scheme.partition("+")[0].lower()) if sep else None
    if driver is None:
        raise _Usage("--store is a sqlite:// or postgresql:// URL, or a .json or .toml file")
    _require(("sql", ("sqlalchemy", driver)))
    if args.secret_env is None:
        raise _Usage(
            "a SQL store seals the connections' secrets with the app's own: name the "
            "environment variable holding them with --secret-env NAME"
        )
    try:
        sql = importlib.import_module("asgi_sso.connections.sql")
    except ModuleNotFoundError as exc:
        if exc.name != "asgi_sso.connections.sql":
            raise
        raise _Usage("this version of asgi-sso has no SQL connection store") from exc
    try:
        store: ConnectionStore = sql.SQLConnections(
            url, secrets=_app_secrets(args), table_prefix=args.table_prefix
        )
    except ConfigurationError as exc:
        raise _Usage(str(exc)) from exc
    return store


def _read_json_file(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise _Usage(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise _Usage(f"{path}: expected a JSON object (one connection)")
    for name in ("client_secret", "client_key", "scim_secret"):
        value = data.get(name)
        # As in a connections file, a secret may be {"env": "NAME"}, read from the environment.
        if isinstance(value, dict):
            if set(value) != {"env"} or not isinstance(value["env"], str):
                raise _Usage(f'{path}: {name} is a string or {{"env": "NAME"}}')
            data[name] = _env_value(value["env"], f"{name} in {path}")
    return data


def _tier_changes(args: argparse.Namespace, *, partial: bool) -> dict[str, Any] | None:
    tiers: dict[str, Any] = {}
    if args.default_tier is not None:  # "" removes the default tier
        tiers["default_tier"] = args.default_tier or None
    groups: dict[str, str | None] = {}
    for spec in args.group or ():
        group, sep, tier = spec.partition("=")
        if not sep or not group or (not tier and not partial):
            raise _Usage(f"--group takes GROUP=TIER, got {spec!r}")
        groups[group] = tier or None  # GROUP= removes the group (update)
    if groups:
        tiers["groups"] = groups
    return tiers or None


def _combined(base: Any, extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` laid over ``base`` member by member; ``None`` kept (it removes, in a patch)."""
    result = dict(base) if isinstance(base, dict) else {}
    for name, value in extra.items():
        result[name] = _combined(result.get(name), value) if isinstance(value, dict) else value
    return result


def _field_changes(args: argparse.Namespace, *, partial: bool) -> dict[str, Any]:
    """The connection fields given as flags (``--json FILE`` first, flags over it)."""
    data = _read_json_file(args.json) if args.json else {}
    for name in _TEXT_FIELDS:
        value = getattr(args, name, None)  # --id is a flag of add only
        if value is not None:
            data[name] = value
    lists = {
        "audience": "audience",
        "domain": "domains",
        "algorithm": "algorithms",
        "scope": "scopes",
    }
    for flag, name in lists.items():
        if getattr(args, flag):
            data[name] = list(getattr(args, flag))
    for name, flag in _SECRET_FLAGS:
        env = getattr(args, flag)
        if env is not None:
            data[name] = _env_value(env, "--" + flag.replace("_", "-"))
    if args.client_secret_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
        if not secret:
            raise _Usage("--client-secret-stdin read an empty line")
        data["client_secret"] = secret
    tiers = _tier_changes(args, partial=partial)
    if tiers is not None:
        data["tiers"] = _combined(data.get("tiers"), tiers)
    if getattr(args, "disabled", False):
        data["enabled"] = False
    return data


def _cell(text: str) -> str:
    # A stored name is printed to a terminal: no control sequences from it.
    return "".join(char if char.isprintable() else "?" for char in text) or "-"


def _print_table(connections: Sequence[Connection]) -> None:
    if not connections:
        print("no connections")
        return
    rows = [("id", "name", "issuer", "domains", "enabled")]
    for c in connections:
        enabled = "yes" if c.enabled else "no"
        rows.append((c.id, _cell(c.name), _cell(c.iss), ",".join(c.domains) or "-", enabled))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _print_report(report: ProbeReport) -> None:
    failures = sum(not check.ok for check in report.checks)
    verdict = "all checks passed" if report.ok else f"{failures} check(s) failed"
    print(f"connection {report.connection}: {verdict}")
    width = max((len(check.name) for check in report.checks), default=0)
    for check in report.checks:
        mark = "note" if check.note else "ok" if check.ok else "FAIL"
        print(f"  {mark:<4}  {check.name:<{width}}  {check.detail}")


async def _connections_op(args: argparse.Namespace, admin: ConnectionAdmin) -> int:
    op = args.op
    if op == "list":
        _print_table(await admin.list())
    elif op == "show":
        print(json.dumps((await admin.show(args.connection_id)).public(), indent=2, sort_keys=True))
    elif op == "add":
        added = await admin.add(connection_from_input(_field_changes(args, partial=False)))
        print(f"added connection {added.id!r}")
    elif op == "update":
        changes = _field_changes(args, partial=True)
        if not changes:
            raise _Usage("name at least one field to change (see --help)")
        await admin.update(args.connection_id, changes)
        print(f"updated connection {args.connection_id!r}")
    elif op in ("disable", "enable", "delete"):
        await getattr(admin, op)(args.connection_id)
        print(f"{op}d connection {args.connection_id!r}")
    else:
        return await _test_op(args, admin)
    return EXIT_OK


async def _test_op(args: argparse.Namespace, admin: ConnectionAdmin) -> int:
    target: str | Connection = args.connection_id
    if args.json:
        target = connection_from_input(_read_json_file(args.json))
    async with httpx.AsyncClient(timeout=args.timeout, follow_redirects=False) as client:
        report = await admin.test(target, client, deadline=3 * args.timeout)
    _print_report(report)
    return EXIT_OK if report.ok else EXIT_FAILED


async def _run_connections(args: argparse.Namespace) -> int:
    write = args.op in _WRITES
    deferred: list[Event] = []
    redis_url = getattr(args, "redis", None)
    bus = None
    if write and redis_url:
        bus = _revocation_bus(redis_url, args.redis_prefix, deferred)
    if args.op == "test" and args.json:
        store: ConnectionStore = StaticConnections()  # a connection not stored yet
    else:
        store = _open_store(args, write=write)
    clock = SystemClock()
    announce = announce_on(bus, clock) if bus is not None else None
    await store.start()
    try:
        limits = Limits(fetch_timeout=getattr(args, "timeout", Limits().fetch_timeout))
        admin = ConnectionAdmin(store, clock=clock, announce=announce, limits=limits)
        code = await _connections_op(args, admin)
    finally:
        await store.close()
        if bus is not None:
            await bus.close()
    if deferred:
        print(
            "warning: the change is saved but Redis could not be reached to announce it; "
            "workers load it at their next poll",
            file=sys.stderr,
        )
    return code


def _revocation_bus(url: str, prefix: str, deferred: list[Event]) -> RevocationBus:
    _require(("redis", ("redis",)))
    from asgi_sso.identity.redis_bus import RedisRevocationBus

    def sink(event: Event) -> None:
        if event.outcome == "publish_deferred":
            deferred.append(event)

    try:
        return RedisRevocationBus(url, prefix=prefix, emitter=Emitter([sink]))
    except ConfigurationError as exc:
        raise _Usage(str(exc)) from exc


def _refuse_secret_flags(args: argparse.Namespace) -> None:
    for name in ("client_secret", "scim_secret"):
        if getattr(args, name, None) is not None:
            # Never echoed: a command line is kept in shell histories and process lists.
            flag = "--" + name.replace("_", "-")
            hint = " or --client-secret-stdin" if name == "client_secret" else ""
            raise _Usage(f"{flag} is not taken on the command line: use {flag}-env NAME{hint}")


def _cmd_connections(args: argparse.Namespace) -> int:
    _refuse_secret_flags(args)
    if args.op == "test" and bool(args.json) == bool(args.connection_id):
        raise _Usage("test takes a connection id, or --json FILE for one not stored yet")
    try:
        return asyncio.run(_run_connections(args))
    except (ConnectionChangeError, ConfigurationError) as exc:
        raise _Usage(str(exc)) from exc
    except ServiceUnavailable as exc:
        raise _Unavailable(exc.description) from exc


def _field_flags(adding: bool) -> argparse.ArgumentParser:
    """The flags naming a connection's fields (add: a new one; update: the changes)."""
    fields = argparse.ArgumentParser(add_help=False)
    if adding:
        fields.add_argument("--id", help="the stable connection id (a-z 0-9 . _ -)")
    fields.add_argument("--json", metavar="FILE", help="the fields as a JSON object; flags win")
    fields.add_argument("--name", help="the display name")
    fields.add_argument("--issuer", help="the exact issuer, or a template with {tenant}")
    fields.add_argument(
        "--tenant", help="the value of {tenant} in a templated issuer, or of --tenant-claim"
    )
    fields.add_argument(
        "--tenant-claim",
        help="for an issuer shared by many organisations, the claim naming one (Google: hd)",
    )
    fields.add_argument("--client-id", help="this app's client id at the IdP (sign-in)")
    secret = "the environment variable holding the "
    fields.add_argument("--client-secret-env", metavar="NAME", help=secret + "client secret")
    fields.add_argument(
        "--client-secret-stdin", action="store_true", help="read the client secret from stdin"
    )
    for hidden in ("--client-secret", "--scim-secret"):  # refused with a hint, see above
        fields.add_argument(hidden, help=argparse.SUPPRESS)
    fields.add_argument("--client-key-env", metavar="NAME", help=secret + "private_key_jwt key")
    fields.add_argument(
        "--token-endpoint-auth",
        choices=["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
    )
    fields.add_argument("--audience", action="append", help="an API audience (repeatable)")
    fields.add_argument("--domain", action="append", help="an email domain it owns (repeatable)")
    fields.add_argument("--algorithm", action="append", help="an allowed algorithm (repeatable)")
    fields.add_argument("--scope", action="append", help="a sign-in scope (repeatable)")
    fields.add_argument("--user-claim", help="the claim naming a user (sub; oid for Entra ID)")
    fields.add_argument("--default-tier", help="the tier everyone gets ('' removes it)")
    fields.add_argument(
        "--group", action="append", metavar="GROUP=TIER", help="map a group (repeatable)"
    )
    fields.add_argument("--scim-secret-env", metavar="NAME", help=secret + "SCIM bearer secret")
    fields.add_argument("--discovery-url", help="the discovery document, if not at the issuer")
    fields.add_argument("--jwks-uri", help="the key set URL, if not taken from discovery")
    if adding:
        fields.add_argument("--disabled", action="store_true", help="add it disabled")
    return fields


def _connections_parser(commands: Any) -> None:
    conns = commands.add_parser(
        "connections",
        help="manage connections (each customer's IdP)",
        description="Add, change, disable, delete and test connections in a store. A list "
        "given as flags (--domain, --audience ...) replaces the whole list on update; "
        "--group GROUP= removes a group. Secrets are never taken on the command line.",
    )
    conns.set_defaults(handler=_cmd_connections)
    ops = conns.add_subparsers(dest="op", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--store",
        metavar="URL",
        help=f"sqlite:///PATH, postgresql://..., or a .json/.toml file (read-only); "
        f"default ${_STORE_ENV}",
    )
    common.add_argument(
        "--secret-env",
        metavar="NAME",
        help="the environment variable holding the app secret(s) sealing stored secrets "
        "(comma-separated, oldest first)",
    )
    common.add_argument(
        "--table-prefix", default="asgi_sso_", help="the SQL store's table prefix (%(default)s)"
    )
    writes = argparse.ArgumentParser(add_help=False, parents=[common])
    writes.add_argument("--redis", metavar="URL", help="announce the change to every worker")
    writes.add_argument(
        "--redis-prefix", default="asgi_sso:", help="the app's Redis key prefix (%(default)s)"
    )
    ops.add_parser("list", parents=[common], help="list the connections")
    ops.add_parser("show", parents=[common], help="show one (never its secrets)")
    ops.add_parser("add", parents=[writes, _field_flags(True)], help="add a connection")
    ops.add_parser("update", parents=[writes, _field_flags(False)], help="change fields")
    for name, text in (
        ("disable", "disable one (sessions opened before stay ended)"),
        ("enable", "enable a disabled one"),
        ("delete", "delete one"),
    ):
        ops.add_parser(name, parents=[writes], help=text)
    test = ops.add_parser("test", parents=[common], help="check one against its IdP")
    test.add_argument("--json", metavar="FILE", help="test this connection instead (not stored)")
    test.add_argument("--timeout", type=float, default=5.0, help="seconds per fetch")
    for name, parser in ops.choices.items():
        if name not in ("list", "add"):
            parser.add_argument(
                "connection_id", metavar="ID", nargs="?" if name == "test" else None
            )


def _token_parser(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="print an access token from a running dev IdP (for curl)",
        description="Print an access token, for "
        '`curl -H "Authorization: Bearer $(asgi-sso token --user alice)" ...`. '
        "--user asks a running asgi-sso dev IdP for a registered user's token; --client "
        "runs the client credentials grant at any IdP (found by discovery).",
    )
    token.add_argument("--user", metavar="SUB_OR_EMAIL", help="a user of the dev IdP")
    token.add_argument(
        "--client", metavar="ID", help="the client credentials grant as this client (with "
        "--user: the client the user's token is for)",
    )  # fmt: skip
    token.add_argument(
        "--secret-env", metavar="NAME", help="the environment variable holding --client's secret"
    )
    token.add_argument("--scope", action="append", default=[], help="a scope (repeatable)")
    token.add_argument("--expires-in", type=int, metavar="SECONDS", help="the token's lifetime")
    token.add_argument(
        "--issuer", default=DEV_IDP_ISSUER, help="the IdP's issuer URL (%(default)s)"
    )
    token.add_argument("--audience", help="the token's aud (default: the client's audience)")
    token.add_argument("--timeout", type=float, default=10.0)
    token.set_defaults(handler=_cmd_token)
    _dpop_parsers(token, commands)
    _cert_parsers(token, commands)


def _dev_idp_parser(commands: Any) -> None:
    dev = commands.add_parser("dev-idp", help="serve the development OpenID provider")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=DEV_IDP_PORT, help="0 picks a free port")
    dev.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    dev.add_argument("--issuer", help="the issuer URL (default http://HOST:PORT)")
    dev.add_argument(
        "--config",
        metavar="FILE",
        help="a JSON file with users, clients, algorithm, auto_approve (docs/cli.md; "
        "example: examples/dev-idp.json)",
    )
    dev.add_argument("--user", action="append", default=[], metavar="SUB[:EMAIL[:G1,G2]]")
    dev.add_argument("--client-id")
    dev.add_argument("--client-secret", help="omit for a public (PKCE-only) client")
    dev.add_argument("--redirect-uri", action="append", default=[])
    dev.add_argument("--post-logout-redirect-uri", action="append", default=[])
    dev.add_argument("--backchannel-logout-uri", help="where to POST logout tokens on sign-out")
    dev.add_argument("--audience")
    dev.add_argument("--algorithm", choices=["RS256", "ES256", "EdDSA", "Ed25519"])
    dev.add_argument("--auto-approve", action="store_true")
    dev.add_argument(
        "--client-cert-header", choices=["rfc9440", "nginx", "xfcc"], help="read client "
        "certificates (RFC 8705) from a trusted proxy's header: Client-Cert (RFC 9440), "
        "nginx's, or Envoy's x-forwarded-client-cert",
    )  # fmt: skip
    dev.add_argument(
        "--trusted-proxy", action="append", default=[], metavar="ADDR", help="who may set that "
        "header (repeatable; default 127.0.0.1 and ::1, for `asgi-sso token --cert`)",
    )  # fmt: skip
    dev.add_argument(
        "--certificate-bound", action="store_true",
        help="--client-id's tokens are bound to its client certificate (RFC 8705)",
    )  # fmt: skip
    dev.set_defaults(handler=_cmd_dev_idp, extra=_TESTING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asgi-sso", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    _dev_idp_parser(commands)

    verify = commands.add_parser("verify", help="verify a token and say exactly why it fails")
    verify.add_argument("token", help="the JWT, or - to read it from stdin")
    verify.add_argument("--issuer", required=True)
    verify.add_argument("--audience")
    verify.add_argument("--jwks-uri", help="skip discovery and use these keys")
    verify.add_argument("--algorithm", action="append", help="allowed algorithm (repeatable)")
    verify.add_argument("--timeout", type=float, default=10.0)
    verify.add_argument(
        "--leeway",
        type=float,
        default=next(f.default for f in msgspec.structs.fields(Issuer) if f.name == "leeway"),
        metavar="SECONDS",
        help="clock skew allowed for exp, nbf and iat (%(default)s)",
    )
    verify.set_defaults(handler=_cmd_verify)

    _token_parser(commands)

    jwks = commands.add_parser("jwks", help="list an issuer's signing keys")
    jwks.add_argument("target", metavar="ISSUER_OR_URL")
    jwks.add_argument("--timeout", type=float, default=10.0)
    jwks.set_defaults(handler=_cmd_jwks)
    _connections_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asgi-sso`` command line.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 verification failed or the IdP refused, 2 bad input or a
        missing extra, 3 network or IdP unavailable.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage message
        return EXIT_OK if exc.code == 0 else EXIT_BAD_INPUT
    try:
        _require(getattr(args, "extra", None))
        code: int = args.handler(args)
    except _Usage as exc:
        print(f"asgi-sso {args.command}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except _Unavailable as exc:
        print(f"asgi-sso {args.command}: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except _Refused as exc:
        print(f"asgi-sso {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    raise SystemExit(main())
