"""Properties of every settings object: a value of the wrong type is a ConfigurationError.

Never an ``AttributeError`` on the first request, never a string silently read as a
list of characters. What each field accepts is written out here, coarsely and by
hand: the oracle does not read the annotations the code checks against.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso import (
    Backends,
    CertificateHeader,
    ConnectionTiers,
    CredentialSources,
    DPoPSettings,
    IdentityConfig,
    Introspection,
    Issuer,
    Limits,
    LoginConfig,
    MemoryUserStore,
    PathRules,
    ProtectedResource,
    ScimConfig,
    Secret,
    SSOMiddleware,
    Tier,
)
from asgi_sso.connections import Connection
from asgi_sso.errors import ConfigurationError

SECRET = Secret(b"s" * 64)

# What a field accepts, in coarse kinds: the oracle.
Kind = Callable[[Any], bool]


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _texts(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(i, str) for i in v)


def _text_set(v: Any) -> bool:
    return isinstance(v, list | tuple | set | frozenset) and all(isinstance(i, str) for i in v)


def _secret(v: Any) -> bool:
    return isinstance(v, Secret)


def _secrets(v: Any) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(i, Secret) for i in v)


def _str_map(value_kind: Kind) -> Kind:
    return lambda v: (
        isinstance(v, dict) and all(isinstance(k, str) and value_kind(i) for k, i in v.items())
    )


def _or_none(kind: Kind) -> Kind:
    return lambda v: v is None or kind(v)


def _either(*kinds: Kind) -> Kind:
    return lambda v: any(kind(v) for kind in kinds)


def _one_of(*choices: str) -> Kind:
    return lambda v: isinstance(v, str) and v in choices


def _never(v: Any) -> bool:  # a plug-in: nothing in the pool is one
    return v is None


FIELDS: dict[type[msgspec.Struct], tuple[dict[str, Any], dict[str, Kind]]] = {
    Issuer: (
        {"issuer": "https://idp.example", "audience": "api"},
        {
            "issuer": _text, "audience": _or_none(_either(_text, _texts)),
            "jwks_uri": _or_none(_text), "discovery_url": _or_none(_text),
            "algorithms": _texts, "secret": _or_none(_secret), "leeway": _number,
            "required_claims": _or_none(_texts), "token_types": _or_none(_texts),
            "tenant_claim": _text, "tenants": _or_none(_text_set),
            "connection": _or_none(_text), "connection_claim": _or_none(_text),
            "scope_claims": _texts, "user_claim": _text, "client_id": _or_none(_text),
            "name": _or_none(_text), "allow_insecure_http": _bool,
            "introspection": _or_none(lambda v: isinstance(v, Introspection)),
            "dpop": _one_of("off", "allow", "require"), "mtls": _one_of("allow", "require"),
        },
    ),
    CertificateHeader: (
        {"trusted_proxies": ("10.0.0.0/8",)},
        {"trusted_proxies": _texts, "format": _one_of("rfc9440", "nginx", "xfcc"),
         "header": _or_none(_text)},
    ),
    Introspection: (
        {"client_id": "api", "client_secret": SECRET},
        {
            "client_id": _text, "client_secret": _or_none(_secret),
            "client_key": _or_none(_secret), "endpoint": _or_none(_text),
            "cache_ttl": _number, "inactive_ttl": _number, "cache_size": _int,
            "timeout": _number, "max_inflight": _int, "max_response_bytes": _int,
            "max_token_bytes": _int, "token_type_hint": _or_none(_text), "retry_after": _int,
        },
    ),
    Limits: ({}, dict.fromkeys(Limits.__struct_fields__, _number)),
    PathRules: (
        {},
        {"public": _texts, "scope_rules": _str_map(_texts), "optional": _bool,
         "root_path": _or_none(_text), "realm": _text, "external_url": _or_none(_text)},
    ),
    CredentialSources: (
        {},
        {"cookie_names": _texts, "allow_query_token": _bool, "allowed_origins": _texts,
         "check_origin": _bool,
         "certificate_header": _or_none(lambda v: isinstance(v, CertificateHeader))},
    ),
    Backends: (
        {},
        {"sessions": _never, "revocations": _never, "documents": _never, "dpop_proofs": _never},
    ),
    DPoPSettings: ({}, {"nonce_secrets": _secrets, "nonce_lifetime": _number}),
    IdentityConfig: (
        {"user_store": MemoryUserStore()},
        {"tier_mapper": _never, "user_store": _never, "cache_ttl": _number,
         "cache_size": _int, "provision": _bool, "role_claims": _or_none(_texts),
         "role_client_id": _or_none(_text)},
    ),
    ScimConfig: (
        {},
        {"tokens": _str_map(_secret), "prefix": _text, "max_body_bytes": _int,
         "max_json_depth": _int, "max_operations": _int, "max_page_size": _int,
         "subject_attribute": _one_of("externalId", "userName")},
    ),
    Connection: (
        {"id": "acme", "issuer": "https://idp.example", "audience": ("api",)},
        {
            "id": _text, "issuer": _text, "name": _text, "tenant": _or_none(_text),
            "tenant_claim": _or_none(_text), "discovery_url": _or_none(_text),
            "jwks_uri": _or_none(_text), "client_id": _or_none(_text),
            "client_secret": _or_none(_secret), "client_key": _or_none(_secret),
            "token_endpoint_auth": _one_of(
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
            ),
            "audience": _texts, "algorithms": _texts, "user_claim": _text, "domains": _texts,
            "scopes": _texts, "authorize_params": _str_map(_text),
            "tiers": lambda v: isinstance(v, ConnectionTiers), "scim_secret": _or_none(_secret),
            "enabled": _bool, "not_before": _number, "dpop": _one_of("off", "allow", "require"),
            "mtls": _one_of("allow", "require"), "published_keys": _texts,
        },
    ),
    ConnectionTiers: ({}, {"default_tier": _or_none(_text), "groups": _str_map(_text)}),
    Tier: ({"name": "pro"}, {"name": _text, "scopes": _text_set, "rank": _or_none(_int)}),
    LoginConfig: (
        {"issuer": "https://idp.example", "client_id": "web", "client_secret": SECRET,
         "cookie_secrets": (SECRET,)},
        {
            "cookie_secrets": _secrets, "issuer": _or_none(_text), "client_id": _or_none(_text),
            "client_secret": _or_none(_secret), "client_key": _or_none(_secret),
            "redirect_uri": _or_none(_text),
            "scopes": _texts, "prefix": _text, "secure_cookies": _bool,
            "session_lifetime": _number, "idle_timeout": _number, "state_lifetime": _number,
            "token_endpoint_auth": _one_of(
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
            ),
            "use_userinfo": _bool, "end_session": _bool,
            "post_logout_redirect_uri": _or_none(_text), "default_return_to": _text,
            "extra_authorize_params": _str_map(_text), "session_cookie": _text,
            "state_cookie": _text, "http_timeout": _number, "touch_interval": _number,
            "refresh": _bool, "max_session_lifetime": _or_none(_number),
            "refresh_leeway": _number, "refresh_retry": _number,
            "dpop": _one_of("auto", "off"),
            "discovery_page": _or_none(lambda v: callable(v) and not isinstance(v, type)),
            "allow_insecure_http": _bool, "resource": _or_none(_text),
            "jwks_path": _or_none(_text), "par": _one_of("auto", "always", "never"),
            "published_keys": _secrets,
        },
    ),
}  # fmt: skip

PAIRS = [(struct, field) for struct, (_, kinds) in FIELDS.items() for field in kinds]

# Values of every shape a hand-written configuration (or a parsed file) may hold.
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=12),
    st.lists(st.integers(0, 9) | st.text(max_size=6) | st.none(), max_size=3),
    st.tuples(st.text(max_size=6)),
    st.frozensets(st.text(max_size=6), max_size=3),
    st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=3),
    st.dictionaries(st.text(max_size=6), st.lists(st.text(max_size=6), max_size=2), max_size=2),
    st.sampled_from([object(), SECRET, [SECRET], {"key": SECRET}, Secret, MemoryUserStore,
                     str, print, ConnectionTiers(), b"bytes", bytearray(b"x")]),
)  # fmt: skip


def test_the_oracle_names_every_field() -> None:
    for struct, (_, kinds) in FIELDS.items():
        assert set(kinds) == set(struct.__struct_fields__), struct.__name__


@given(st.sampled_from(PAIRS), values)
@example((Issuer, "algorithms"), "RS256")
@example((Issuer, "audience"), ["api", 1])
@example((PathRules, "public"), "/health")
@example((PathRules, "scope_rules"), {"/admin/*": "admin"})
@example((LoginConfig, "scopes"), "openid email")
@example((LoginConfig, "cookie_secrets"), "k" * 40)
@example((LoginConfig, "client_secret"), {"value": "s"})
@example((Connection, "domains"), "acme.example")
@example((Connection, "client_secret"), "s" * 20)
@example((ScimConfig, "tokens"), {"acme": "s" * 20})
@example((IdentityConfig, "user_store"), MemoryUserStore)
@example((Limits, "retry_after"), True)
@example((Tier, "scopes"), "read")
@example((CertificateHeader, "trusted_proxies"), "10.0.0.0/8")
@example((CertificateHeader, "format"), "xfcc")
@example((CertificateHeader, "format"), "envoy")
def test_a_wrong_type_is_a_configuration_error_and_nothing_else(
    pair: tuple[type[msgspec.Struct], str], value: Any
) -> None:
    struct, field = pair
    base, kinds = FIELDS[struct]
    arguments = {**base, field: value}
    if not kinds[field](value):
        # Refused, naming the field; a message never quotes the value (it may be a secret).
        with pytest.raises(ConfigurationError, match=rf"\b{field}\b"):
            struct(**arguments)
        return
    try:
        built = struct(**arguments)
    except ConfigurationError:
        return  # the right type, a value the struct refuses for another reason
    if isinstance(value, list):
        kept = getattr(built, field)
        assert not isinstance(kept, list), "a list in a frozen setting could change under it"


MIDDLEWARE_KINDS: dict[str, Kind] = {
    "paths": _or_none(lambda v: isinstance(v, PathRules)),
    "sources": _or_none(lambda v: isinstance(v, CredentialSources)),
    "login": _or_none(lambda v: isinstance(v, LoginConfig)),
    "identity": _or_none(lambda v: isinstance(v, IdentityConfig)),
    "scim": _or_none(lambda v: isinstance(v, ScimConfig)),
    "backends": _or_none(lambda v: isinstance(v, Backends)),
    "limits": _or_none(lambda v: isinstance(v, Limits)),
    "http_client": _or_none(lambda v: isinstance(v, httpx.AsyncClient)),
    "clock": _never,
    "prefetch": _bool,
    "resource": _or_none(lambda v: isinstance(v, ProtectedResource)),
    "dpop": _or_none(lambda v: isinstance(v, DPoPSettings)),
    "event_sinks": lambda v: isinstance(v, list | tuple) and all(callable(s) for s in v),
    "connections": lambda v: (
        v is None or (isinstance(v, list | tuple) and all(isinstance(c, Connection) for c in v))
    ),
}

ISSUER = Issuer(issuer="https://idp.example", audience="api", jwks_uri="https://idp.example/k")


async def _inner(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("never called")


@given(st.sampled_from(sorted(MIDDLEWARE_KINDS)), values)
@example("event_sinks", print)
@example("paths", {"public": ["/health"]})
@example("connections", "acme")
@example("prefetch", "no")
@example("limits", Limits)
async def test_a_middleware_argument_of_the_wrong_type_is_refused(name: str, value: Any) -> None:
    async with httpx.AsyncClient() as client:
        arguments: dict[str, Any] = {"http_client": client, "prefetch": False, name: value}
        try:
            SSOMiddleware(_inner, [ISSUER], **arguments)
        except ConfigurationError:
            return
        assert MIDDLEWARE_KINDS[name](value), f"SSOMiddleware({name}={value!r}) was accepted"


def test_the_oracle_names_every_middleware_keyword() -> None:
    parameters = inspect.signature(SSOMiddleware).parameters
    assert set(parameters) - {"app", "issuers"} == set(MIDDLEWARE_KINDS)
