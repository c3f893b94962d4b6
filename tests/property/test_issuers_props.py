"""Properties of connection ids: two different issuers never give a user the same key."""

from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from asgi_sso.config import Issuer
from asgi_sso.errors import AuthError, ConfigurationError
from asgi_sso.verify.connection_space import meet
from asgi_sso.verify.issuers import IssuerRegistry

# Few characters, in and out of both charsets, so that collisions are easy to reach.
ALPHABET = "ab.:/#~"
text = st.text(ALPHABET, min_size=0, max_size=4)
name = st.text(ALPHABET, min_size=1, max_size=5)
pattern = st.builds(lambda p, s: p + "{tenant}" + s, text, text)

exact = st.builds(
    lambda iss, conn: {"issuer": "https://" + iss, "connection": conn},
    name,
    st.none() | name,
)
template = st.builds(
    lambda pre, suf, conn: {
        "issuer": "https://" + pre + "{tenant}" + suf,
        "jwks_uri": "https://keys",
        "connection": conn,
    },
    text,
    text,
    st.none() | pattern,
)
broker = st.builds(
    lambda iss, conn: {"issuer": "https://" + iss, "connection": conn, "connection_claim": "c"},
    name,
    st.none() | pattern,
)
# A token: which issuer it imitates, the tenant it names, and its connection claim.
token = st.tuples(st.integers(0, 5), name, st.none() | name)

BROKER_ATTACK = [
    {"issuer": "https://a", "connection": "acme"},
    {"issuer": "https://b", "connection_claim": "c"},
]
ATTACK = [
    {"issuer": "https://a", "connection": "acme"},
    {"issuer": "https://b/{tenant}", "jwks_uri": "https://keys", "connection": "{tenant}"},
]


def registry_of(specs: list[dict[str, object]]) -> IssuerRegistry | None:
    try:
        return IssuerRegistry([Issuer(audience=None, **spec) for spec in specs])  # type: ignore[arg-type]
    except ConfigurationError:
        return None


@given(st.lists(exact | template | broker, min_size=1, max_size=5), st.lists(token, max_size=12))
@example(ATTACK, [(0, "acme", None), (1, "acme", None)])
@example(BROKER_ATTACK, [(0, "x", None), (1, "x", "acme")])
def test_distinct_issuers_never_share_a_connection_id(
    specs: list[dict[str, object]], tokens: list[tuple[int, str, str | None]]
) -> None:
    registry = registry_of(specs)
    assume(registry is not None)
    assert registry is not None
    owner: dict[str, str] = {}
    for index, tenant, claim in tokens:
        config = registry.issuers[index % len(registry.issuers)]
        iss = config.issuer.replace("{tenant}", tenant)
        claims = {"tid": tenant} if claim is None else {"tid": tenant, "c": claim}
        try:
            resolved = registry.resolve(iss, claims)
        except AuthError:
            continue
        assert owner.setdefault(resolved.connection, resolved.iss) == resolved.iss
        assert registry.produces(resolved.connection)


def test_the_attack_configuration_is_refused() -> None:
    assert registry_of(ATTACK) is None


# A regular-language brute force to check the automaton walk against.
@given(st.text("ab", max_size=3), st.text("ab", max_size=3), st.text("ab", max_size=3))
def test_meet_agrees_with_the_regex(prefix: str, suffix: str, literal: str) -> None:
    import re

    from asgi_sso.verify.connection_space import literal_atoms

    run = frozenset("a")
    atoms = (*literal_atoms(prefix), (run, False), (run, True), *literal_atoms(suffix))
    expected = re.fullmatch(re.escape(prefix) + "a+" + re.escape(suffix), literal) is not None
    assert meet(atoms, literal_atoms(literal)) is expected
    assert meet(literal_atoms(literal), atoms) is expected
