from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import asgi_sso

# What an application author touches: the middleware and its settings, the
# principal, the errors, the stores, the sinks. Internals are reached through
# their subpackage (asgi_sso.verify, asgi_sso.keys, ...), not the front door.
FRONT_DOOR = {
    "SSOMiddleware",
    # settings an entry point accepts
    "Backends",
    "CertificateHeader",
    "Clock",
    "CredentialSources",
    "IdentityConfig",
    "Introspection",
    "Issuer",
    "Limits",
    "LoginConfig",
    "PathRules",
    "ScimConfig",
    "Secret",
    "SystemClock",
    "TokenVerifier",
    # the principal in scope["user"] and scope["auth"]
    "ANONYMOUS",
    "AnonymousPrincipal",
    "Credentials",
    "Principal",
    # the error tree
    "AuthError",
    "ConfigurationError",
    "CredentialsMissing",
    "CrossOriginRequest",
    "DisallowedAlgorithm",
    "ExpiredToken",
    "InsufficientScope",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidRequest",
    "InvalidSignature",
    "InvalidToken",
    "KeysUnavailable",
    "MalformedToken",
    "NotYetValid",
    "PayloadTooLarge",
    "SSOError",
    "ServiceUnavailable",
    "StoreUnavailable",
    "UnknownIssuer",
    "UnknownKey",
    "UserDeactivated",
    # plug-ins: tiers, users, sessions, revocation
    "ConnectionTiers",
    "PriorityTierMapper",
    "Tier",
    "TierDecision",
    "TierMapper",
    "MemoryUserStore",
    "StoredUser",
    "UserStore",
    "CookieSessionStore",
    "MemorySessionStore",
    "SessionInvalid",
    "SessionRecord",
    "SessionStore",
    "Revocation",
    "RevocationBus",
    # sinks
    "AuditLogger",
    "Event",
    "EventSink",
    "PrometheusSink",
    "ProtectedResource",
    # diagnostics
}

SUBPACKAGES = [
    name
    for _, name, is_package in pkgutil.walk_packages(asgi_sso.__path__, "asgi_sso.")
    if is_package
]


def test_all_is_sorted_and_complete() -> None:
    assert asgi_sso.__all__ == sorted(asgi_sso.__all__)
    for name in asgi_sso.__all__:
        assert hasattr(asgi_sso, name), name


def test_the_front_door_holds_what_an_application_touches() -> None:
    assert set(asgi_sso.__all__) == FRONT_DOOR


@pytest.mark.parametrize(
    "internal",
    ["IdentityResolver", "BackchannelConfig", "BackchannelLogoutApp", "ScimApp", "Environment"],
)
def test_nothing_no_entry_point_accepts_is_exported(internal: str) -> None:
    assert internal not in asgi_sso.__all__
    assert not hasattr(asgi_sso, internal)


def test_init_only_re_exports() -> None:
    tree = ast.parse(Path(asgi_sso.__file__).read_text())
    for node in tree.body:
        assert isinstance(node, ast.ImportFrom | ast.Assign | ast.Expr), ast.dump(node)[:80]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_a_subpackage_init_is_a_small_sorted_api(name: str) -> None:
    package = importlib.import_module(name)
    tree = ast.parse(Path(str(package.__file__)).read_text())
    allowed: tuple[type[ast.stmt], ...] = (ast.ImportFrom, ast.Assign, ast.Expr)
    if name in ("asgi_sso.testing", "asgi_sso.connections"):
        # The test kit and the SQL connection store load on first use (a module
        # __getattr__), so the package imports without their extra and names it
        # when missing.
        allowed = (*allowed, ast.Import, ast.If, ast.FunctionDef)
    for node in tree.body:
        assert isinstance(node, allowed), ast.dump(node)[:80]
    assert package.__all__ == sorted(package.__all__)
    for exported in package.__all__:
        assert hasattr(package, exported), exported


def test_public_classes_and_functions_have_docstrings() -> None:
    for name in asgi_sso.__all__:
        obj = getattr(asgi_sso, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"
