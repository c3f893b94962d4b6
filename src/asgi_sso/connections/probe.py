"""Check a connection against its identity provider, and say in plain words what is wrong.

:func:`probe_connection` fetches the discovery document and the key set the way
verification will (bounded bodies, a deadline per fetch and one over the whole
probe), and reports each finding as a :class:`Check`: can the documents be
fetched, are they JSON, does the document name the configured issuer, is there
a key for the connection's algorithms, are the sign-in endpoints there. Missing
optional endpoints are *notes*: worth knowing, never a failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from asgi_sso.config import Limits
from asgi_sso.connections.model import Connection
from asgi_sso.keys.discovery import issuer_matches, parse_metadata
from asgi_sso.keys.fetch import FetchError, fetch_document
from asgi_sso.keys.jwk import KeySet, parse_jwks

__all__ = ["PROBE_DEADLINE", "Check", "ProbeReport", "probe_connection"]

PROBE_DEADLINE: Final = 15.0
"""Seconds a whole probe may take (both fetches), whatever the server does."""

_MAX_SHOWN = 200  # characters of a value from the IdP quoted in a detail


class Check(msgspec.Struct, frozen=True, kw_only=True):
    """One finding of a probe.

    Attributes:
        name: what was checked (``discovery``, ``issuer``, ``jwks_uri``, ``jwks``,
            ``keys``, ``authorization_endpoint``, ``token_endpoint``,
            ``end_session_endpoint``, ``userinfo_endpoint``, ``deadline``).
        ok: whether it passed; a note is always ``ok``.
        detail: what was found, in plain words.
        note: informational only: something missing that the connection can do without.
    """

    name: str
    ok: bool
    detail: str
    note: bool = False


class ProbeReport(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a probe found.

    Attributes:
        connection: the connection id.
        ok: whether every check passed.
        checks: the findings, in the order they were made.
    """

    connection: str
    ok: bool
    checks: tuple[Check, ...]


class _Probe:
    """The findings of one probe, gathered as it goes."""

    def __init__(self, connection: Connection, client: httpx.AsyncClient, limits: Limits) -> None:
        self.connection = connection
        self.issuer = connection.issuer_config()
        self.client = client
        self.limits = limits
        self.checks: list[Check] = []

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name=name, ok=True, detail=detail))

    def failed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name=name, ok=False, detail=detail))

    def noted(self, name: str, detail: str) -> None:
        self.checks.append(Check(name=name, ok=True, detail=detail, note=True))

    async def fetch_json(
        self, name: str, url: str, what: str
    ) -> tuple[bytes, dict[str, Any]] | None:
        """The body and decoded JSON object at ``url``, or ``None`` after a failed check."""
        shown = _shown(url)
        try:
            fetched = await fetch_document(self.client, url, limits=self.limits)
        except FetchError as exc:
            self.failed(name, f"cannot fetch the {what} at {shown}: {_plain(exc.reason)}")
            return None
        try:
            document = msgspec.json.decode(fetched.body)
        except Exception:  # DecodeError, RecursionError: the body is not strict UTF-8 JSON
            self.failed(name, f"the {what} at {shown} is not JSON")
            return None
        if not isinstance(document, dict):
            self.failed(name, f"the {what} at {shown} is JSON but not an object")
            return None
        self.passed(name, f"fetched the {what} at {shown}")
        return fetched.body, document

    async def run(self) -> None:
        jwks_uri = self.issuer.jwks_uri
        needs_discovery = jwks_uri is None or self.connection.client_id is not None
        metadata = await self.discovery(required=needs_discovery)
        if jwks_uri is None and metadata is not None:
            found = metadata.get("jwks_uri")
            if isinstance(found, str) and found:
                jwks_uri = found
                self.passed("jwks_uri", f"the document names the key set {found[:_MAX_SHOWN]}")
            else:
                self.failed("jwks_uri", "the discovery document names no jwks_uri")
        elif jwks_uri is not None:
            self.passed("jwks_uri", f"the connection names the key set {_shown(jwks_uri)}")
        if jwks_uri is not None:
            await self.keys(jwks_uri)
        if metadata is not None:
            self.endpoints(metadata)

    async def discovery(self, *, required: bool) -> dict[str, Any] | None:
        url = self.issuer.discovery_document_url
        found = await self.fetch_json("discovery", url, "discovery document")
        # Bearer tokens with a configured jwks_uri never read the document: then its
        # problems are notes, not failures.
        report = self.failed if required else self.noted
        if found is None:
            if not required:
                failed = self.checks.pop()
                self.noted("discovery", failed.detail + " (not needed: jwks_uri is configured)")
            return None
        body, document = found
        named = document.get("issuer")
        expected = self.connection.iss
        if not isinstance(named, str):
            report("issuer", "the discovery document names no issuer")
        elif not issuer_matches(named, expected):
            # OIDC Discovery §4.3: exactly equal, a trailing slash included.
            report(
                "issuer",
                f"the discovery document names issuer {named[:_MAX_SHOWN]!r}, "
                f"the connection is configured with {expected!r}",
            )
        else:
            self.passed("issuer", f"the discovery document names the issuer {expected}")
            self.metadata(body, expected, report)
        return document

    def metadata(self, body: bytes, expected: str, report: Callable[[str, str], None]) -> None:
        # What verification and sign-in accept: member types, an https jwks_uri.
        try:
            parse_metadata(body, expected_issuer=expected)
        except ValueError as exc:
            reason = str(exc)[: 2 * _MAX_SHOWN]
            if self.issuer.jwks_uri is None and "missing required field `jwks_uri`" in reason:
                return  # the jwks_uri check says so
            report("metadata", f"the document would be refused: {reason}")

    async def keys(self, jwks_uri: str) -> None:
        found = await self.fetch_json("jwks", jwks_uri, "key set")
        if found is None:
            return
        try:
            keys, skipped = parse_jwks(found[0])
        except ValueError as exc:
            self.failed("keys", f"the key set at {_shown(jwks_uri)} is unusable: {exc}")
            return
        self.algorithms(keys, skipped)

    def algorithms(self, keys: KeySet, skipped: list[str]) -> None:
        wanted = self.connection.algorithms
        covered = [alg for alg in wanted if any(key.can_verify(alg) for key in keys)]
        missing = [alg for alg in wanted if alg not in covered]
        ignored = f"; {len(skipped)} key(s) skipped, e.g. {skipped[0]}" if skipped else ""
        if not covered:
            names = " or ".join(missing)
            self.failed("keys", f"no {names} key among the {len(keys)} usable key(s){ignored}")
            return
        self.passed("keys", f"{len(keys)} usable key(s) for {', '.join(covered)}{ignored}")
        for alg in missing:
            self.noted("keys", f"no {alg} key: tokens signed with {alg} would be refused")

    def endpoints(self, metadata: dict[str, Any]) -> None:
        signs_in = self.connection.client_id is not None
        for name in ("authorization_endpoint", "token_endpoint"):
            present = isinstance(metadata.get(name), str) and bool(metadata[name])
            if present:
                self.passed(name, f"the document names the {name}")
            elif signs_in:
                self.failed(
                    name, f"the connection signs users in (client_id is set) but there is no {name}"
                )
        notes = {
            "end_session_endpoint": "signing out ends the app's session only, not the IdP's",
            "userinfo_endpoint": "profile claims come from the ID token only",
        }
        for name, consequence in notes.items():
            if not (isinstance(metadata.get(name), str) and metadata[name]):
                self.noted(name, f"no {name}: {consequence}")


def _shown(url: str) -> str:
    """``url`` fit for a report: without a ``user:password@`` part, and not too long."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(an invalid URL)"
    if "@" in parts.netloc:
        parts = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urlunsplit(parts)[: 2 * _MAX_SHOWN]


def _plain(reason: str) -> str:
    """A fetch failure in plain words (the reasons of :mod:`asgi_sso.keys.fetch` are terse)."""
    if reason.startswith("HTTP status"):
        return f"it answered {reason}"
    if reason.startswith(("ConnectError", "ConnectTimeout")):
        return "unreachable (the host is unknown or refused the connection)"
    if reason.startswith("no complete answer"):
        return f"timed out: {reason}"
    return reason


async def probe_connection(
    connection: Connection,
    client: httpx.AsyncClient,
    *,
    limits: Limits = Limits(),  # noqa: B008 - a frozen Struct is a safe default
    deadline: float = PROBE_DEADLINE,
) -> ProbeReport:
    """Fetch a connection's discovery document and key set, and check them.

    Never raises for anything the IdP does: every problem is a failed :class:`Check`.

    Args:
        connection: the connection to check (enabled or not).
        client: the HTTP client (its redirect and proxy settings apply).
        limits: ``fetch_timeout`` bounds each fetch, ``max_document_bytes`` each body.
        deadline: seconds the whole probe may take.
    """
    probe = _Probe(connection, client, limits)
    try:
        async with asyncio.timeout(deadline):
            await probe.run()
    except TimeoutError:
        probe.failed("deadline", f"the provider did not answer within {deadline:g} s in all")
    if not connection.enabled:
        probe.noted("enabled", "the connection is disabled: it signs nobody in")
    ok = all(check.ok for check in probe.checks)
    return ProbeReport(connection=connection.id, ok=ok, checks=tuple(probe.checks))
