"""The signal that tells an ID token from a bearer token, tried with real providers' claim sets."""

from __future__ import annotations

from typing import Any

import pytest

from asgi_sso.config import Issuer
from asgi_sso.errors import InvalidToken
from asgi_sso.verify.claims import ClaimPolicy, validate_claims

ISS = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
CLIENT = "6731de76-14a6-49ae-97bc-6eba6914391e"
NOW = 1_700_000_000.0


def entra_policy() -> ClaimPolicy:
    # The app's own API: Entra access tokens for it carry aud = the client id.
    return ClaimPolicy(Issuer(issuer=ISS, audience=CLIENT, client_id=CLIENT, user_claim="oid"))


def refreshed_id_token(**kw: Any) -> dict[str, Any]:
    """An Entra ID v2 ID token from a refresh grant: no nonce (OIDC Core §12.2), and the
    user's app roles in ``roles`` (Entra puts assigned app roles in ID tokens too)."""
    return {
        "iss": ISS, "aud": CLIENT, "exp": NOW + 3600, "iat": NOW, "nbf": NOW,
        "sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "ver": "2.0",
        "oid": "00000000-0000-0000-66f3-3332eca7ea81", "tid": ISS.split("/")[3],
        "sid": "0002b9d0-2a2c-4d1f-9c1e-1b3a8f0f8f3b", "aio": "Df2UVXL1ix!lMCWM",
        "roles": ["Reports.Read"], "name": "Megan Bowen",
        **kw,
    }  # fmt: skip


def test_a_refreshed_entra_id_token_with_app_roles_is_not_a_bearer_token() -> None:
    with pytest.raises(InvalidToken, match="ID token"):
        validate_claims(
            refreshed_id_token(), {"alg": "RS256", "typ": "JWT"}, ISS, entra_policy(), now=NOW
        )


def test_a_refreshed_entra_id_token_without_roles_is_refused() -> None:
    claims = {k: v for k, v in refreshed_id_token().items() if k != "roles"}
    with pytest.raises(InvalidToken, match="ID token"):
        validate_claims(claims, {"alg": "RS256", "typ": "JWT"}, ISS, entra_policy(), now=NOW)


@pytest.mark.parametrize("marker", [{"azpacr": "1"}, {"appidacr": "1"}, {"idtyp": "app"},
                                    {"client_id": CLIENT}])  # fmt: skip
def test_an_app_only_access_token_granting_roles_opens_the_api(marker: dict[str, str]) -> None:
    # Entra's app-only tokens for the app's own API: aud = the client id, app roles, no
    # scp, and a client-authentication claim no ID token carries.
    claims = {k: v for k, v in refreshed_id_token().items() if k not in ("sid", "name")}
    validate_claims({**claims, **marker}, {"alg": "RS256", "typ": "JWT"}, ISS, entra_policy(),
                    now=NOW)  # fmt: skip
