"""The ``asgi-sso`` command: serve the dev IdP, explain why a token verifies or not, list JWKS keys.

Exit codes: 0 ok, 1 verification failed, 2 usage, bad input or a missing extra, 3 network
or IdP unavailable. A token's signature is never printed. ``verify`` and ``jwks`` need only
the core dependencies; ``dev-idp`` needs the ``testing`` extra and says so when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import msgspec

from asgi_sso.config import Issuer
from asgi_sso.errors import AuthError, ConfigurationError, ServiceUnavailable

if TYPE_CHECKING:
    from asgi_sso.testing.idp import DevClient, DevIdP, DevUser

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_OK", "EXIT_UNAVAILABLE", "main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DISCOVERY = "/.well-known/openid-configuration"
_T = TypeVar("_T")


class _Usage(Exception):
    """Bad input: printed and answered with exit code 2."""


class _Unavailable(Exception):
    """The network or the IdP failed: printed and answered with exit code 3."""


class _DevIdPFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Users and clients stay raw JSON until the test kit is imported (the `testing`
    # extra): this module imports only the core, so `verify` and `jwks` run without it.
    users: list[msgspec.Raw] = msgspec.field(default_factory=list)
    clients: list[msgspec.Raw] = msgspec.field(default_factory=list)
    algorithm: str | None = None
    auto_approve: bool | None = None


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


def _decode_each(raws: list[msgspec.Raw], kind: type[_T], where: str) -> list[_T]:
    out: list[_T] = []
    for index, raw in enumerate(raws):
        try:
            out.append(msgspec.json.decode(raw, type=kind))
        except msgspec.ValidationError as exc:
            raise msgspec.ValidationError(f"{exc} - in {where}[{index}]") from exc
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
        file = msgspec.json.decode(Path(path).read_bytes(), type=_DevIdPFile)
        users = _decode_each(file.users, DevUser, "users")
        clients = _decode_each(file.clients, DevClient, "clients")
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise _Usage(f"cannot read {path}: {exc}") from exc
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
            )
        )
    port = args.port or _free_port(host)
    bracketed = f"[{host}]" if ":" in host else host
    return DevIdP(
        args.issuer or f"http://{bracketed}:{port}",
        users=users or DEMO_USERS,
        clients=clients or DEMO_CLIENTS,
        algorithm=args.algorithm or file.algorithm or "RS256",
        auto_approve=bool(args.auto_approve or file.auto_approve),
    )


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
    sys.stdout.flush()
    _serve_forever(idp, args.host, port)
    return EXIT_OK


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
    try:
        error = asyncio.run(_verify(args, token))
    except ConfigurationError as exc:
        raise _Usage(str(exc)) from exc
    report["valid"] = error is None
    if error is not None:
        report["reason"] = error.reason
        report["error"] = error.description
    print(json.dumps(report, indent=2, sort_keys=True))
    if error is None:
        return EXIT_OK
    print(f"verification failed ({error.reason}): {error.description}", file=sys.stderr)
    return EXIT_UNAVAILABLE if isinstance(error, ServiceUnavailable) else EXIT_FAILED


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asgi-sso", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser("dev-idp", help="serve the development OpenID provider")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    dev.add_argument("--allow-remote", action="store_true", help="allow a non-loopback --host")
    dev.add_argument("--issuer", help="the issuer URL (default http://HOST:PORT)")
    dev.add_argument("--config", help="a JSON file with users, clients, algorithm, auto_approve")
    dev.add_argument("--user", action="append", default=[], metavar="SUB[:EMAIL[:G1,G2]]")
    dev.add_argument("--client-id")
    dev.add_argument("--client-secret", help="omit for a public (PKCE-only) client")
    dev.add_argument("--redirect-uri", action="append", default=[])
    dev.add_argument("--post-logout-redirect-uri", action="append", default=[])
    dev.add_argument("--backchannel-logout-uri", help="where to POST logout tokens on sign-out")
    dev.add_argument("--audience")
    dev.add_argument("--algorithm", choices=["RS256", "ES256", "EdDSA", "Ed25519"])
    dev.add_argument("--auto-approve", action="store_true")
    dev.set_defaults(handler=_cmd_dev_idp, extra=_TESTING)

    verify = commands.add_parser("verify", help="verify a token and say exactly why it fails")
    verify.add_argument("token", help="the JWT, or - to read it from stdin")
    verify.add_argument("--issuer", required=True)
    verify.add_argument("--audience")
    verify.add_argument("--jwks-uri", help="skip discovery and use these keys")
    verify.add_argument("--algorithm", action="append", help="allowed algorithm (repeatable)")
    verify.add_argument("--timeout", type=float, default=10.0)
    verify.set_defaults(handler=_cmd_verify)

    jwks = commands.add_parser("jwks", help="list an issuer's signing keys")
    jwks.add_argument("target", metavar="ISSUER_OR_URL")
    jwks.add_argument("--timeout", type=float, default=10.0)
    jwks.set_defaults(handler=_cmd_jwks)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``asgi-sso`` command line.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 verification failed, 2 bad input or a missing extra,
        3 network or IdP unavailable.
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
    return code


if __name__ == "__main__":
    raise SystemExit(main())
