from __future__ import annotations

import msgspec
import pytest

from asgi_sso.config import Issuer, Limits, Secret, issuers_from
from asgi_sso.errors import ConfigurationError


def test_issuer_defaults_require_iss_sub_exp_and_aud_when_audience_set() -> None:
    assert Issuer(issuer="https://idp.example", audience=None).essential_claims == (
        "iss",
        "sub",
        "exp",
    )
    with_aud = Issuer(issuer="https://idp.example", audience="api")
    assert with_aud.essential_claims == ("iss", "sub", "exp", "aud")
    assert with_aud.audiences == frozenset({"api"})


def test_a_user_claim_other_than_sub_is_always_essential() -> None:
    assert Issuer(issuer="https://idp.example", audience=None).user_claim == "sub"
    entra = Issuer(issuer="https://idp.example", audience="api", user_claim="oid")
    assert entra.essential_claims == ("iss", "sub", "exp", "aud", "oid")
    explicit = Issuer(
        issuer="https://idp.example", audience=None, required_claims=("iss",), user_claim="oid"
    )
    assert explicit.essential_claims == ("iss", "oid")
    # sub stays optional when the application chose so (e.g. client-credentials tokens).
    assert Issuer(
        issuer="https://idp.example", audience=None, required_claims=("iss",)
    ).essential_claims == ("iss",)


def test_discovery_url_is_derived_from_the_issuer() -> None:
    assert (
        Issuer(issuer="https://idp.example/", audience=None).discovery_document_url
        == "https://idp.example/.well-known/openid-configuration"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"issuer": ""}, "must not be empty"),
        ({"issuer": "https://x/{tenant}/{tenant}", "jwks_uri": "https://k"}, "at most one"),
        ({"issuer": "https://x/{other}"}, "at most one"),
        ({"issuer": "https://x/{tenant}/v2.0"}, "needs jwks_uri or discovery_url"),
        ({"issuer": "https://x", "algorithms": ()}, "must not be empty"),
        ({"issuer": "https://x", "algorithms": ("none",)}, "not supported"),
        ({"issuer": "https://x", "leeway": -1}, "leeway"),
        ({"issuer": "https://x", "audience": ()}, "empty list"),
        ({"issuer": "https://x", "user_claim": ""}, "user_claim"),
    ],
)
def test_bad_issuer_fails_when_built(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Issuer(**{"audience": None, **kwargs})  # type: ignore[arg-type]


KEY32 = Secret(b"k" * 32)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithms": ("HS256",)}, r"allows HS256 but has no secret: set Issuer\.secret"),
        ({"algorithms": ("RS256", "HS384")}, "allows HS384 but has no secret"),
        ({"secret": KEY32}, r"used only with HS256.*add one to Issuer\.algorithms"),
        ({"algorithms": ("HS256",), "secret": Secret(b"k" * 31)}, "31 bytes; HS256 needs"),
        ({"algorithms": ("HS512",), "secret": KEY32}, "32 bytes; HS512 needs at least 64"),
        ({"algorithms": ("HS256",), "secret": KEY32, "jwks_uri": "https://k"}, "remove jwks_uri"),
    ],
)
def test_an_hmac_secret_and_hs_algorithms_come_together(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Issuer(issuer="https://x", audience=None, **kwargs)  # type: ignore[arg-type]
    assert "kkkk" not in str(caught.value)


def test_an_hmac_issuer_holds_its_secret_redacted() -> None:
    issuer = Issuer(issuer="https://x", audience=None, algorithms=("HS256", "RS256"), secret=KEY32)
    assert issuer.secret == KEY32
    assert "kkkk" not in repr(issuer)
    # A template signed with HS* alone has no keys to discover.
    assert Issuer(
        issuer="https://x/{tenant}", audience=None, algorithms=("HS384",), secret=Secret(b"k" * 48)
    )


def test_issuer_is_frozen_and_forbids_unknown_fields() -> None:
    issuer = Issuer(issuer="https://x", audience=None)
    with pytest.raises(AttributeError):
        issuer.issuer = "https://y"  # type: ignore[misc]
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"issuer": "https://x", "audiance": "typo"}, Issuer)


def test_templated_issuer_is_recognised() -> None:
    entra = Issuer(
        issuer="https://login.microsoftonline.com/{tenant}/v2.0",
        audience=None,
        jwks_uri="https://login.microsoftonline.com/common/discovery/v2.0/keys",
    )
    assert entra.is_template


def test_limits_validate() -> None:
    with pytest.raises(ConfigurationError):
        Limits(fetch_timeout=0)
    with pytest.raises(ConfigurationError):
        Limits(jwks_min_ttl=10, jwks_max_ttl=1)
    with pytest.raises(ConfigurationError):
        Limits(token_cache_size=-1)
    with pytest.raises(ConfigurationError, match="max_kid_length"):
        Limits(max_kid_length=0)


def test_secret_never_prints_its_value() -> None:
    secret = Secret("hunter2-very-secret")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret!r} {secret}"
    assert secret.reveal() == b"hunter2-very-secret"
    assert secret == Secret(b"hunter2-very-secret")
    with pytest.raises(ConfigurationError):
        Secret("")


def test_issuers_from_needs_at_least_one() -> None:
    with pytest.raises(ConfigurationError):
        issuers_from([])
    one = Issuer(issuer="https://x", audience=None)
    assert issuers_from(one) == (one,)


ENTRA = "https://login.microsoftonline.com/{tenant}/v2.0"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        # A literal on a template would merge every tenant's `sub` namespace.
        ({"issuer": ENTRA, "jwks_uri": "https://k", "connection": "entra"}, "must contain"),
        ({"issuer": "https://x", "connection_claim": "c", "connection": "broker"}, "must contain"),
        ({"issuer": "https://x", "connection": "a{tenant}"}, "nothing fills"),
        ({"issuer": "https://x", "connection": ""}, "must not be empty"),
        ({"issuer": "https://x", "connection": "{other}"}, "at most one"),
        ({"issuer": "https://x", "connection_claim": "c", "connection": "{tenant}{tenant}"},
         "at most one"),
        ({"issuer": ENTRA, "jwks_uri": "https://k", "connection_claim": "c"}, "exact issuer"),
        ({"issuer": "https://x", "connection_claim": ""}, "must not be empty"),
    ],
)  # fmt: skip
def test_connection_settings_that_would_merge_namespaces_fail_when_built(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Issuer(**{"audience": None, **kwargs})  # type: ignore[arg-type]
    assert "Issuer.connection" in str(caught.value)


def test_connection_pattern_defaults_to_the_issuer() -> None:
    assert Issuer(issuer="https://x", audience=None).connection_pattern == "https://x"
    assert Issuer(issuer=ENTRA, audience=None, jwks_uri="https://k").connection_pattern == ENTRA
    broker = Issuer(issuer="https://x", audience=None, connection_claim="c")
    assert broker.connection_pattern == "https://x#{tenant}"
    assert Issuer(issuer="https://x", audience=None, connection="acme").connection_pattern == "acme"


# -- unsafe settings speak up (issue 23) ----------------------------------------------------


def test_an_issuer_without_an_audience_is_refused_naming_both_fixes() -> None:
    with pytest.raises(ConfigurationError) as caught:
        Issuer(issuer="https://idp.example")
    message = str(caught.value)
    assert "has no audience" in message
    assert "audience='api://your-api'" in message
    assert "audience=None" in message


def test_audience_none_written_out_skips_the_check_and_says_so() -> None:
    issuer = Issuer(issuer="https://idp.example", audience=None)
    assert issuer.audiences == frozenset()
    assert "aud" not in issuer.essential_claims
    assert len(issuer.unsafe_choices) == 1
    assert "audience=None" in issuer.unsafe_choices[0]
    assert Issuer(issuer="https://idp.example", audience="api").unsafe_choices == ()


@pytest.mark.parametrize("audience", ["", ("api", ""), ()])
def test_an_empty_audience_is_refused(audience: str | tuple[str, ...]) -> None:
    with pytest.raises(ConfigurationError, match=r"Issuer\.audience must not"):
        Issuer(issuer="https://idp.example", audience=audience)


@pytest.mark.parametrize(
    "urls",
    [
        {"issuer": "http://idp.example.com"},
        {"issuer": "https://idp.example.com", "jwks_uri": "http://idp.example.com/keys"},
        {"issuer": "https://idp.example.com", "discovery_url": "http://10.0.0.5/.well-known/x"},
        {"issuer": "http://idp.example.com/{tenant}/v2.0", "jwks_uri": "https://k.example/k"},
        {"issuer": "HTTP://IDP.EXAMPLE.COM"},
    ],
)
def test_plain_http_to_another_host_is_refused_unless_allowed(urls: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match=r"plain http to .*allow_insecure_http=True"):
        Issuer(audience="api", **urls)
    allowed = Issuer(audience="api", allow_insecure_http=True, **urls)
    assert [c for c in allowed.unsafe_choices if "allow_insecure_http" in c]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080",
        "http://127.0.0.1:9000/realms/dev",
        "http://127.1.2.3",
        "http://[::1]:8080",
        "http://idp.localhost",
        "https://idp.example.com",
    ],
)
def test_https_and_loopback_http_need_no_switch(url: str) -> None:
    issuer = Issuer(issuer=url, audience="api", jwks_uri=url + "/keys")
    assert issuer.unsafe_choices == ()
    # The switch changes nothing where nothing is insecure: no warning either.
    assert Issuer(issuer=url, audience="api", allow_insecure_http=True).unsafe_choices == ()


def test_a_key_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"Issuer\.jwks_uri must be an https URL"):
        Issuer(issuer="https://idp.example", audience="api", jwks_uri="file:///etc/keys.json")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithms": "RS256"}, r"Issuer.algorithms takes a list of str, got a single str"),
        ({"audience": ["a", 1]}, r"Issuer.audience takes .* got"),
        ({"audience": {"a": 1}}, r"Issuer.audience takes a str or a list of str or None"),
        ({"scope_claims": "scp"}, r"Issuer.scope_claims takes a list of str, got a single str"),
        ({"leeway": "60"}, r"Issuer.leeway takes a float, got a str"),
        ({"leeway": True}, r"Issuer.leeway takes a float, got a bool"),
        ({"leeway": float("nan")}, r"Issuer.leeway takes a float, got NaN"),
        ({"secret": {"key": "x"}, "algorithms": ["HS256"]}, r"Issuer.secret takes a Secret"),
        ({"secret": "s" * 40, "algorithms": ["HS256"]}, r"got a str: wrap it, Secret\(\.\.\.\)"),
        ({"tenants": "acme"}, r"Issuer.tenants takes a list of str or None, got a single str"),
        ({"allow_insecure_http": "yes"}, r"Issuer.allow_insecure_http takes a bool"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_the_field(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message) as caught:
        Issuer(**{"issuer": "https://idp.example", "audience": "api", **kwargs})  # type: ignore[arg-type]
    assert "s" * 40 not in str(caught.value)


def test_lists_become_tuples_so_a_frozen_issuer_stays_frozen() -> None:
    issuer = Issuer(
        issuer="https://idp.example",
        audience=["a", "b"],  # type: ignore[arg-type]
        algorithms=["RS256", "ES256"],  # type: ignore[arg-type]
        tenants=["t1"],  # type: ignore[arg-type]
    )
    assert issuer.audience == ("a", "b")
    assert issuer.algorithms == ("RS256", "ES256")
    assert issuer.tenants == frozenset({"t1"})
    assert hash(issuer) == hash(msgspec.structs.replace(issuer))


def test_limits_refuse_wrong_types() -> None:
    with pytest.raises(ConfigurationError, match=r"Limits\.retry_after takes an int, got a float"):
        Limits(retry_after=5.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"Limits\.fetch_timeout takes a float, got a str"):
        Limits(fetch_timeout="5")  # type: ignore[arg-type]
    assert Limits(fetch_timeout=5).fetch_timeout == 5
