from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgi_sso._asgi import PathMatcher, ScopeRules, ambiguous
from asgi_sso.errors import ConfigurationError


def test_exact_path_does_not_match_lookalikes() -> None:
    m = PathMatcher(["/health"])
    assert m.matches("/health")
    assert m.matches("/health/")
    assert not m.matches("/admin/health-report")
    assert not m.matches("/healthz")
    assert not m.matches("/health/secret")


def test_prefix_is_anchored_at_a_segment() -> None:
    m = PathMatcher(["/static/*"])
    assert m.matches("/static")
    assert m.matches("/static/app.js")
    assert not m.matches("/staticfiles/x")
    assert not m.matches("/api/static/x")


@pytest.mark.parametrize("bad", ["health", "/a*b", "/*x"])
def test_bad_patterns_fail_at_start_up(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        PathMatcher([bad])


def test_empty_matcher_is_falsy() -> None:
    assert not PathMatcher([])
    assert not PathMatcher([]).matches("/")


def test_scope_rules_longest_pattern_wins() -> None:
    rules = ScopeRules({"/api/*": ["read"], "/api/admin/*": ["admin"]})
    assert rules.required("/api/items") == ("read",)
    assert rules.required("/api/admin/users") == ("admin",)
    assert rules.required("/other") == ()


@given(st.text(alphabet="/abch-_.", max_size=30))
def test_unanchored_match_never_happens(path: str) -> None:
    m = PathMatcher(["/health", "/pub/*"])
    if m.matches(path):
        assert path in {"/health", "/health/", "/pub"} or path.startswith("/pub/")


@pytest.mark.parametrize(
    "path", ["/static/../admin", "/static/./x", "/static/..", "/static//admin", "/x/../../admin"]
)
def test_paths_a_server_may_resolve_differently_are_ambiguous(path: str) -> None:
    assert ambiguous(path)


@pytest.mark.parametrize("path", ["/static/app.js", "/.well-known/jwks.json", "/a/..b/.c", "/"])
def test_plain_paths_are_not_ambiguous(path: str) -> None:
    assert not ambiguous(path)


@pytest.mark.parametrize(
    "path", ["/public/../admin/users", "/admin/./users", "//admin/users", "/public/..//admin/x"]
)
def test_scope_rules_also_apply_to_the_resolved_path(path: str) -> None:
    rules = ScopeRules({"/admin/*": ["admin"], "/public/*": ["read"]})
    assert "admin" in rules.required(path)


def test_scope_rules_keep_the_raw_path_rule_of_an_ambiguous_path() -> None:
    # An app that does not resolve "..": the raw path's rule must hold as well.
    rules = ScopeRules({"/admin/*": ["admin"]})
    assert rules.required("/admin/../health") == ("admin",)


def test_framework_is_found_through_middleware_wrappers() -> None:
    import warnings

    from fastapi import FastAPI
    from starlette.applications import Starlette
    from starlette.middleware.cors import CORSMiddleware

    from asgi_sso._asgi import framework_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FastAPI deprecates its own root_path
        api = FastAPI(root_path="/api")
    assert framework_of(CORSMiddleware(api, allow_origins=["*"])) == ("starlette", "/api")
    assert framework_of(Starlette()) == ("starlette", None)
    assert framework_of(lambda scope, receive, send: None) == ("unknown", None)
