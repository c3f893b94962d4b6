"""Which provider a sign-in, a session or a logout token belongs to, in the current snapshot."""

from __future__ import annotations

import base64
import json
from typing import Any

import msgspec
import pytest
from joserfc.jwk import ECKey

from _certs import bad_version
from asgi_sso import LoginConfig, Secret
from asgi_sso.connections import (
    Connection,
    ConnectionDirectory,
    LiveConnections,
    StaticConnections,
)
from asgi_sso.errors import ConfigurationError
from asgi_sso.login import providers as providers_module
from asgi_sso.login.client_auth import ClientAuth, ClientKey, load_client_key
from asgi_sso.login.oidc import new_flow
from asgi_sso.login.providers import Providers
from asgi_sso.login.sessions import CONNECTIONS_BINDING, app_binding
from asgi_sso.sessions import SessionRecord
from asgi_sso.testing import ClientCertificate, FakeClock
from asgi_sso.testing.tokens import generate_key

KEY = (Secret(b"k" * 32),)
HOME = "https://home.example"


class Live:
    """Stands in for LiveConnections: only its ``directory`` is read."""

    admitting = None  # never in the middle of a load

    def __init__(self, *connections: Connection) -> None:
        self.directory = ConnectionDirectory(connections)

    def set(self, *connections: Connection) -> None:
        self.directory = ConnectionDirectory(connections)


def conn(cid: str = "acme", **changes: Any) -> Connection:
    fields: dict[str, Any] = {
        "id": cid,
        "issuer": f"https://{cid}.example",
        "client_id": f"app-{cid}",
        "client_secret": Secret(f"{cid}-secret"),
        "domains": (f"{cid}.test",),
        **changes,
    }
    return Connection(**fields)


def providers(live: Live | None, **login: Any) -> Providers:
    return Providers(LoginConfig(cookie_secrets=KEY, **login), connections=live, clock=FakeClock())  # type: ignore[arg-type]


def record(
    connection: str, issuer: str, client_id: str, created_at: float = 100.0
) -> SessionRecord:
    return SessionRecord(
        id="s1", subject="u", issuer=issuer, connection=connection, client_id=client_id,
        created_at=created_at,
    )  # fmt: skip


# -- LoginConfig ---------------------------------------------------------------------------


def test_login_config_may_leave_out_the_default_provider() -> None:
    config = LoginConfig(cookie_secrets=KEY)
    assert (config.issuer, config.client_id) == (None, None)
    assert app_binding(config) == CONNECTIONS_BINDING
    default = LoginConfig(
        cookie_secrets=KEY, issuer=HOME, client_id="web", client_secret=Secret("s")
    )
    assert app_binding(default) == (HOME, "web")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"issuer": HOME}, "go together"),
        ({"client_id": "web"}, "go together"),
        ({"client_secret": Secret("s")}, "belongs to the default provider"),
        ({"issuer": HOME, "client_id": "web"}, "needs a client_secret"),
        ({"discovery_page": "not callable"}, "callable"),
    ],
)
def test_login_config_refuses_half_a_default_provider(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        LoginConfig(cookie_secrets=KEY, **fields)


def test_providers_need_a_default_provider_or_connections() -> None:
    with pytest.raises(ConfigurationError, match="connections"):
        providers(None)


# -- lookups ---------------------------------------------------------------------------------


def test_a_connection_is_found_by_id_email_domain_and_issuer_while_it_signs_in() -> None:
    live = Live(conn("acme"), conn("off", enabled=False), conn("api", client_id=None,
                client_secret=None, audience=("api://x",)))  # fmt: skip
    found = providers(live)
    acme = found.connection("acme")
    assert acme is not None
    assert (acme.iss, acme.client_id, acme.connection) == (
        "https://acme.example",
        "app-acme",
        "acme",
    )
    assert found.for_email("Someone@ACME.test") is acme  # built once per connection
    assert found.for_domain("acme.test.") is acme
    assert found.for_issuer("https://acme.example") is acme
    assert found.logout_audience("https://acme.example") == "app-acme"
    for missing in ("off", "api", "nope"):
        assert found.connection(missing) is None
    assert found.for_email("x@off.test") is None
    assert found.for_issuer("https://off.example") is None
    assert found.logout_audience("https://api.example") is None
    assert found.default is None


def test_a_new_snapshot_rebuilds_changed_providers_only() -> None:
    acme, globex = conn("acme"), conn("globex")
    live = Live(acme, globex)
    found = providers(live)
    first = found.connection("acme")
    kept = found.connection("globex")
    changed = msgspec.structs.replace(acme, scopes=("openid", "email"))
    live.set(changed, globex)
    again = found.connection("acme")
    assert again is not first
    assert again is not None
    assert again.scopes == ("openid", "email")
    assert found.connection("globex") is not None
    assert kept is not None


def test_a_session_is_in_force_only_with_its_connection_unchanged_and_enabled() -> None:
    live = Live(conn("acme", not_before=50.0))
    found = providers(live)
    ok = record("acme", "https://acme.example", "app-acme", created_at=100.0)
    assert found.for_record(ok) is found.connection("acme")
    assert found.for_record(record("acme", "https://acme.example", "other")) is None
    assert found.for_record(record("acme", "https://other.example", "app-acme")) is None
    assert found.for_record(record("globex", "https://acme.example", "app-acme")) is None
    assert found.for_record(msgspec.structs.replace(ok, created_at=49.0)) is None
    live.set(conn("acme", enabled=False, not_before=200.0))
    assert found.for_record(ok) is None
    live.set(conn("acme", not_before=200.0))  # enabled again: the old session stays dead
    assert found.for_record(ok) is None


def test_the_default_provider_keeps_its_sessions_beside_connections() -> None:
    found = providers(Live(conn("acme")), issuer=HOME, client_id="web", client_secret=Secret("s"))
    assert found.default is not None
    assert found.for_record(record(HOME, HOME, "web")) is found.default
    assert found.for_record(record("broker#x", HOME, "web")) is found.default
    assert found.for_record(record(HOME, HOME, "admin")) is None
    assert found.for_issuer(HOME) is found.default
    assert found.logout_audience(HOME) == "web"


def test_a_flow_finishes_only_with_the_provider_it_started_with() -> None:
    live = Live(conn("acme"))
    found = providers(live, issuer=HOME, client_id="web", client_secret=Secret("s"))

    def flow(**fields: Any) -> Any:
        return new_flow(return_to="/", redirect_uri="https://app/cb", expires_at=1e10, **fields)

    acme = {"connection": "acme", "iss": "https://acme.example", "client_id": "app-acme"}
    assert found.for_flow(flow(**acme, started_at=10.0)) is found.connection("acme")
    assert found.for_flow(flow(iss=HOME, client_id="web")) is found.default
    assert found.for_flow(flow()) is found.default  # a state cookie from before connections
    assert found.for_flow(flow(iss=HOME, client_id="admin")) is None
    assert found.for_flow(flow(**{**acme, "client_id": "other"})) is None
    live.set(conn("acme", not_before=20.0))
    assert found.for_flow(flow(**acme, started_at=10.0)) is None
    assert found.for_flow(flow(**acme, started_at=20.0)) is not None


def test_an_unreadable_client_key_is_a_problem_and_signs_nobody_in() -> None:
    pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
    bad = conn("acme", client_secret=None, token_endpoint_auth="private_key_jwt",
               client_key=Secret(pem))  # fmt: skip
    found = providers(Live(bad))
    problem = found.problem(bad)
    assert problem is not None
    assert "client_key" in problem
    assert "AAAA" not in problem
    assert found.connection("acme") is None
    good = conn("globex", client_secret=None, token_endpoint_auth="private_key_jwt",
                client_key=Secret(generate_key("ES256").as_pem(private=True)))  # fmt: skip
    assert found.problem(good) is None
    assert found.problem(conn("plain")) is None


# -- client authentication -------------------------------------------------------------------


def test_client_auth_methods_put_credentials_where_rfc_6749_says() -> None:
    basic: dict[str, str] = {}
    headers = ClientAuth(client_id="a b", method="client_secret_basic", secret=b"s:/").apply(
        basic, endpoint="https://idp/token"
    )
    assert headers == {"authorization": "Basic YStiOnMlM0ElMkY="}  # form-encoded, §2.3.1
    assert basic == {}
    post: dict[str, str] = {}
    assert (
        ClientAuth(client_id="c", method="client_secret_post", secret=b"s").apply(
            post, endpoint="https://idp/token"
        )
        == {}
    )
    assert post == {"client_id": "c", "client_secret": "s"}
    public: dict[str, str] = {}
    ClientAuth(client_id="c", method="none").apply(public, endpoint="https://idp/token")
    assert public == {"client_id": "c"}
    assert "zz9" not in repr(ClientAuth(client_id="c", method="client_secret_post", secret=b"zz9"))
    with pytest.raises(ConfigurationError):
        ClientAuth(client_id="c", method="private_key_jwt")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "junk",
        "{}",
        '{"kty": "oct", "k": "AAAA"}',
        json.dumps(generate_key("RS256").as_dict(private=False)),
        generate_key("RS256").as_pem(private=False).decode(),
        generate_key("ES384").as_pem(private=True).decode(),
        generate_key("EdDSA").as_pem(private=True).decode(),
        "x" * 20_000,
    ],
    ids=[
        "empty",
        "junk",
        "empty-jwk",
        "oct",
        "public-jwk",
        "public-pem",
        "p384",
        "ed25519",
        "huge",
    ],
)
def test_a_client_key_must_be_a_private_rsa_or_p256_key(text: str) -> None:
    with pytest.raises(ConfigurationError, match="client_key") as info:
        load_client_key(text)
    assert text[40:80] not in str(info.value) or not text[40:80]


def test_a_jwk_client_key_keeps_its_kid() -> None:
    key = generate_key("RS256", kid="my-key")
    loaded = load_client_key(json.dumps(key.as_dict(private=True)))
    assert (loaded.alg, loaded.kid) == ("RS256", "my-key")


@pytest.mark.parametrize(
    "conflict", [{"alg": "RS512"}, {"use": "enc"}, {"key_ops": ["verify"]}], ids=str
)
def test_a_jwk_that_forbids_signing_is_refused_when_loaded(conflict: dict[str, Any]) -> None:
    # Found when the connection is loaded (left out of sign-in), never on a callback.
    from joserfc.jwk import RSAKey

    data = {**RSAKey.generate_key(2048, private=True).as_dict(private=True), **conflict}
    with pytest.raises(ConfigurationError, match="cannot sign"):
        load_client_key(json.dumps(data))


# -- a key that fails to load ---------------------------------------------------------------


def _keyed(cid: str, **changes: Any) -> Connection:
    key = Secret(generate_key("ES256").as_pem(private=True))
    return conn(cid, client_secret=None, token_endpoint_auth="private_key_jwt", client_key=key,
                **changes)  # fmt: skip


def test_a_client_key_with_an_unreadable_certificate_leaves_the_others_signing_in() -> None:
    cert = ClientCertificate("bad-version")
    jwk = {**ECKey.import_key(cert.key_pem()).as_dict(private=True),
           "x5c": [base64.b64encode(bad_version(cert.der)).decode()]}  # fmt: skip
    bad = conn("acme", client_secret=None, token_endpoint_auth="private_key_jwt",
               client_key=Secret(json.dumps(jwk)))  # fmt: skip
    found = providers(Live(bad, _keyed("globex")))
    assert "certificate" in str(found.problem(bad))
    assert found.connection("acme") is None
    assert found.connection("globex") is not None
    jwks = found.jwks()
    assert jwks is not None
    assert len(json.loads(jwks)["keys"]) == 1


@pytest.mark.parametrize("loader", ["load_client_key", "load_public_key"])
def test_a_key_failing_in_any_way_makes_its_connection_unusable_never_an_error(
    monkeypatch: pytest.MonkeyPatch, loader: str
) -> None:
    def broken(text: str, name: str = "") -> ClientKey:
        raise RuntimeError("a parser's own bug")

    monkeypatch.setattr(providers_module, loader, broken)
    public = generate_key("ES256").as_pem(private=False).decode()
    bad = _keyed("acme", published_keys=(public,))
    found = providers(Live(bad, conn("plain")))
    assert found.problem(bad) == "its keys cannot be read (RuntimeError)"
    assert found.connection("acme") is None
    assert found.connection("plain") is not None
    assert found.jwks() is None


# -- a kid names one key in the shared key set ----------------------------------------------


def _jwk_keyed(cid: str, kid: str, key: Any = None, **changes: Any) -> Connection:
    jwk = {**(key or generate_key("ES256")).as_dict(private=True), "kid": kid}
    return conn(cid, client_secret=None, token_endpoint_auth="private_key_jwt",
                client_key=Secret(json.dumps(jwk)), **changes)  # fmt: skip


def _published(kid: str, key: Any = None) -> str:
    return json.dumps({**(key or generate_key("ES256")).as_dict(private=False), "kid": kid})


def test_a_connection_taking_another_connections_kid_is_refused() -> None:
    acme = _jwk_keyed("acme", "key-1")
    found = providers(Live(acme))
    # Published under acme's signing kid, another key would push acme's out of the set.
    thief = _keyed("aaa", published_keys=(_published("key-1"),))
    assert "'key-1'" in str(found.problem(thief))
    assert "connection 'acme'" in str(found.problem(thief))
    assert "'key-1'" in str(found.problem(_jwk_keyed("aab", "key-1")))
    assert found.problem(acme) is None  # its own kid, in its own (older) version
    # Disabled, it publishes nothing: nothing to refuse (and a disable always applies).
    assert found.problem(_jwk_keyed("aac", "key-1", enabled=False)) is None


def test_the_same_key_under_the_same_kid_may_be_shared() -> None:
    key = generate_key("ES256")
    found = providers(Live(_jwk_keyed("acme", "key-1", key)))
    assert found.problem(_jwk_keyed("globex", "key-1", key)) is None
    assert found.problem(_keyed("initech", published_keys=(_published("key-1", key),))) is None


def test_the_default_providers_kids_are_its_own() -> None:
    signing = {**generate_key("ES256").as_dict(private=True), "kid": "app-key"}
    found = providers(
        Live(), issuer="https://home.example", client_id="web", client_secret=None,
        token_endpoint_auth="private_key_jwt", client_key=Secret(json.dumps(signing)),
    )  # fmt: skip
    assert "LoginConfig" in str(found.problem(_jwk_keyed("acme", "app-key")))


async def test_connections_in_use_keep_their_kids_in_every_load() -> None:
    acme = _jwk_keyed("acme", "key-1")
    store = StaticConnections([acme])
    holder: dict[str, Providers] = {}
    live = LiveConnections(store, clock=FakeClock(), poll_interval=3600,
                           admit=lambda c: holder["p"].problem(c))  # fmt: skip
    holder["p"] = Providers(LoginConfig(cookie_secrets=KEY), connections=live, clock=FakeClock())
    await live.start()
    # Newcomers come after the connections in use, whatever their order in the store.
    await store.add(_keyed("aaa", published_keys=(_published("key-1"),)))
    await store.add(_jwk_keyed("zed", "key-2"))
    await store.add(_jwk_keyed("zzz", "key-2"))  # another newcomer's kid, in the same load
    await live.reload()
    assert set(live.refused) == {"aaa", "zzz"}
    assert "connection 'acme'" in live.refused["aaa"]
    assert "connection 'zed'" in live.refused["zzz"]
    jwks = holder["p"].jwks()
    assert jwks is not None
    served = {k["kid"]: k for k in json.loads(jwks)["keys"]}
    assert served["key-1"]["x"] == json.loads(acme.client_key.reveal())["x"]  # type: ignore[union-attr]
    # Once acme is gone, its kid is free at the next load: no refusal outlives its cause.
    await store.delete("acme")
    await live.reload()
    assert set(live.refused) == {"zzz"}
    await live.close()
