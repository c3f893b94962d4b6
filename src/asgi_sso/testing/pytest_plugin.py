"""pytest fixtures: a dev IdP, a token factory and a client for an app behind ``SSOMiddleware``.

Registered through the ``pytest11`` entry point, so installing ``asgi-sso[testing]``
makes ``dev_idp``, ``token_factory`` and ``sso_client`` available everywhere.

pytest loads this plugin wherever ``asgi-sso`` is installed, with or without the
``testing`` extra: so it imports only pytest and the core at start-up, and the test
kit when a fixture is first used (a missing extra is then a usage error naming it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from asgi_sso.testing.idp import DEMO_AUDIENCE, DEMO_CLIENTS, DEMO_USERS, DevIdP
    from asgi_sso.testing.tokens import TokenFactory

__all__ = ["DEMO_AUDIENCE", "DEMO_CLIENTS", "DEMO_USERS", "dev_idp", "sso_client", "token_factory"]

SSOClientFactory = Callable[..., httpx.AsyncClient]
_DEMO_NAMES = frozenset({"DEMO_AUDIENCE", "DEMO_CLIENTS", "DEMO_USERS"})


def _kit() -> ModuleType:
    """The dev IdP module, or a usage error naming the extra that installs it."""
    try:
        from asgi_sso.testing import idp
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] == "asgi_sso":
            raise
        raise pytest.UsageError(
            f"the asgi_sso fixtures need the testing extra ({exc.name} is not installed): "
            "pip install 'asgi-sso[testing]'"
        ) from exc
    return idp


def __getattr__(name: str) -> Any:
    # PEP 562: the demo users, clients and audience, imported with the test kit on first use.
    if name in _DEMO_NAMES:
        return getattr(_kit(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@pytest.fixture
def dev_idp() -> DevIdP:
    """A fresh :class:`DevIdP` with users ``alice`` and ``bob`` and client ``dev-client``.

    Its issuer is ``http://127.0.0.1:<free port>`` (so ``dev_idp.serve()`` works) and
    it auto-approves sign-ins as ``alice``.
    """
    kit = _kit()
    idp: DevIdP = kit.DevIdP(users=kit.DEMO_USERS, clients=kit.DEMO_CLIENTS, auto_approve=True)
    return idp


@pytest.fixture
def token_factory(dev_idp: DevIdP) -> TokenFactory:
    """A :class:`TokenFactory` signing as ``dev_idp`` for the demo audience."""
    factory = dev_idp.tokens
    factory.audience = _kit().DEMO_AUDIENCE
    return factory


async def _sso_client(dev_idp: DevIdP) -> AsyncIterator[SSOClientFactory]:
    """Build an ``httpx.AsyncClient`` for an app wrapped by ``SSOMiddleware`` trusting ``dev_idp``.

    Call it as ``sso_client(app, user="alice", scopes=("read",), audience=..., **middleware_kw)``:
    with ``user`` the client sends a Bearer token for that subject on every request.
    ``async with sso_client(app) as client:`` closes the client in the test; any
    client left open is closed at teardown in the fixture's event loop (pytest-asyncio's
    ``asyncio_default_fixture_loop_scope``), never in a loop made just for closing.
    """
    opened: list[httpx.AsyncClient] = []
    demo_audience: str = _kit().DEMO_AUDIENCE

    def build(
        app: ASGIApp,
        *,
        user: str | None = None,
        scopes: Sequence[str] = (),
        audience: str = demo_audience,
        base_url: str = "http://testserver",
        **middleware_kw: Any,
    ) -> httpx.AsyncClient:
        from asgi_sso.middleware import SSOMiddleware

        idp_client = dev_idp.http_client()
        wrapped = SSOMiddleware(
            app,
            issuers=[dev_idp.issuer_config(audience=audience)],
            http_client=idp_client,
            **middleware_kw,
        )
        headers = {}
        if user is not None:
            token = dev_idp.issue_token(user, audience=audience, scopes=scopes)
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=wrapped), base_url=base_url, headers=headers
        )
        opened.extend((client, idp_client))
        return client

    try:
        yield build
    finally:
        for client in opened:
            await client.aclose()


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - the test extra installs it

    @pytest.fixture(name="sso_client")
    def _sso_client_needs_pytest_asyncio() -> SSOClientFactory:
        raise pytest.UsageError("the sso_client fixture needs pytest-asyncio")

else:
    sso_client = pytest_asyncio.fixture(_sso_client, name="sso_client")
