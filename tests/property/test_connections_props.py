"""Properties of the connection directory: one owner per key, emails reach only their owner."""

from __future__ import annotations

from collections import Counter

import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from asgi_sso.connections import Connection, ConnectionDirectory, domain_of, normalize_domain
from asgi_sso.errors import ConfigurationError
from asgi_sso.testing import strategies as sso_st

ACME = Connection(
    id="acme", issuer="https://idp.example", audience=("a",), domains=("acme.example",)
)
TEMPLATED = Connection(
    id="globex", issuer="https://login.example/{tenant}/v2.0", tenant="t1", audience=("a",)
)
EXACT_T1 = Connection(id="initech", issuer="https://login.example/t1/v2.0", audience=("a",))
DISABLED = Connection(id="off", issuer="https://off.example", audience=("a",), enabled=False)

connection_lists = st.lists(sso_st.connections(), max_size=8)


def concrete_issuer(connection: Connection) -> str:
    # Written out here rather than read from Connection.iss: the oracle of the tests.
    if connection.tenant is None:
        return connection.issuer
    return connection.issuer.replace("{tenant}", connection.tenant)


def shares_a_key(connections: list[Connection]) -> bool:
    """Whether two connections share an id, a concrete issuer or a domain."""
    keys = [
        *(("id", c.id) for c in connections),
        *(("iss", concrete_issuer(c)) for c in connections),
        *(("domain", d) for c in connections for d in c.domains),
    ]
    return any(n > 1 for n in Counter(keys).values())


def build(connections: list[Connection]) -> ConnectionDirectory | None:
    """The directory, or ``None`` when it was refused (and only when it must be)."""
    try:
        directory = ConnectionDirectory(connections)
    except ConfigurationError:
        assert shares_a_key(connections)
        return None
    assert not shares_a_key(connections)
    return directory


@given(connection_lists)
@example([TEMPLATED, EXACT_T1])
@example([ACME, Connection(id="acme", issuer="https://other.example", audience=("a",))])
@example(
    [ACME, Connection(id="b", issuer="https://b.example", audience=("a",), domains=ACME.domains)]
)
def test_a_directory_is_refused_exactly_when_a_key_is_shared(
    connections: list[Connection],
) -> None:
    build(connections)


@given(connection_lists)
def test_no_two_connections_share_a_user_key(connections: list[Connection]) -> None:
    directory = build(connections)
    if directory is None:
        return
    assert len(directory) == len(connections)
    for connection in connections:
        # A user is keyed by (connection id, user claim): the id and the issuer each
        # lead back to this one connection.
        assert directory.get(connection.id) is connection
        assert directory.by_issuer(concrete_issuer(connection)) is connection
        assert connection.id in directory


@given(connection_lists, st.lists(sso_st.emails(), max_size=12))
@example([ACME, DISABLED], ["jo@ACME.example.", "jo@off.example", "@acme.example", "acme.example"])
def test_an_email_reaches_only_the_enabled_owner_of_its_domain(
    connections: list[Connection], emails: list[str]
) -> None:
    directory = build(connections)
    if directory is None:
        return
    owners = {domain: c for c in connections for domain in c.domains}
    for email in emails:
        domain = domain_of(email)
        owner = owners.get(domain) if domain is not None else None
        found = directory.for_email(email)
        assert found is (owner if owner is not None and owner.enabled else None)
        if found is not None:
            assert found.enabled
            assert domain in found.domains


@given(connection_lists, st.data())
def test_every_spelling_of_an_owned_domain_reaches_its_owner(
    connections: list[Connection], data: st.DataObject
) -> None:
    directory = build(connections)
    if directory is None:
        return
    for connection in connections:
        for domain in connection.domains:
            email = data.draw(sso_st.emails_at(domain))
            expected = connection if connection.enabled else None
            assert directory.for_email(email) is expected
            assert directory.for_domain(domain.upper() + ".") is expected


@given(connection_lists, sso_st.connections())
@example([ACME], Connection(id="acme", issuer="https://moved.example", audience=("a",)))
@example([ACME, TEMPLATED], EXACT_T1)
def test_replacing_one_connection_is_building_the_set_again(
    connections: list[Connection], replacement: Connection
) -> None:
    directory = build(connections)
    if directory is None:
        return
    rest = [c for c in connections if c.id != replacement.id]
    expected = build([*rest, replacement])
    try:
        replaced = directory.replaced(replacement)
    except ConfigurationError:
        assert expected is None
        return
    assert expected is not None
    assert list(replaced) == list(expected)
    assert list(directory) == connections  # the old snapshot is unchanged


@given(st.text(max_size=300))
@example("Example.COM.")
@example("xn--bcher-kva.example")
@example("bücher.example")
@example("a" * 64 + ".example")
@example("\udcff.example")
@example("1.2.3.4")
def test_normalize_domain_never_raises_and_is_idempotent(value: str) -> None:
    normal = normalize_domain(value)
    if normal is not None:
        assert normalize_domain(normal) == normal
        assert normal == normal.lower()
        assert normal.isascii()
        assert not normal.endswith(".")


@given(sso_st.email_domains(), st.data())
def test_normalize_domain_ignores_case_a_trailing_dot_and_spaces(
    domain: str, data: st.DataObject
) -> None:
    assert normalize_domain(domain) == domain
    flips = data.draw(st.lists(st.booleans(), min_size=len(domain), max_size=len(domain)))
    spelled = "".join(ch.upper() if up else ch for ch, up in zip(domain, flips, strict=True))
    dots = data.draw(st.sampled_from(["", ".", ".."]))
    pad = data.draw(st.sampled_from(["", " ", "\t"]))
    assert normalize_domain(pad + spelled + dots + pad) == domain


def test_an_international_domain_has_one_normal_form() -> None:
    assert normalize_domain("Bücher.Example") == "xn--bcher-kva.example"
    assert normalize_domain("BÜCHER.example.") == "xn--bcher-kva.example"
    assert domain_of("jo@bücher.example") == "xn--bcher-kva.example"


@given(st.one_of(st.text(max_size=400), sso_st.emails(), st.just("@" * 1000)))
@example("a" * 10_000 + "@acme.example")
@example("jo@acme.example\x00")
@example("jo@\udcff.example")
def test_domain_of_never_raises_on_any_text(value: str) -> None:
    domain = domain_of(value)
    if domain is not None:
        assert normalize_domain(domain) == domain
        assert "@" in value
    directory = ConnectionDirectory([ACME])
    assert directory.for_email(value) in (None, ACME)
    assert directory.for_domain(value) in (None, ACME)


@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_domain_of_refuses_what_is_not_text(value: object) -> None:
    assert domain_of(value) is None  # type: ignore[arg-type]
    assert ConnectionDirectory([ACME]).for_domain(value) is None  # type: ignore[arg-type]


@given(sso_st.connections(), st.lists(st.text(max_size=200), min_size=1, max_size=12))
@example(ACME, ["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"])
def test_a_bearer_only_connection_never_takes_published_keys(
    connection: Connection, published: list[str]
) -> None:
    # Its one rule left to break: nothing unchecked is ever stored or shown.
    bearer_only = msgspec.structs.replace(
        connection, client_id=None, client_secret=None, client_key=None,
        token_endpoint_auth="client_secret_basic", audience=("api",),
    )  # fmt: skip
    data = {**msgspec.structs.asdict(bearer_only), "published_keys": tuple(published)}
    with pytest.raises(ConfigurationError, match="published_keys go with client_key"):
        Connection(**data)
