"""The FastAPI dependency on a real app, with tokens from the live issuer."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from conftest import Issuer, env
from latchkey_verify import AccessToken, Verifier
from latchkey_verify.fastapi import install


def make_app(verifier: Verifier, rfc6750_bodies: bool) -> TestClient:
    app = FastAPI()
    if rfc6750_bodies:
        install(app)

    @app.get("/orders")
    def orders(token: AccessToken = Depends(verifier.fastapi(scopes=("read",)))) -> Any:
        return {"owner": token.subject}

    @app.get("/admin/report")
    def report(token: AccessToken = Depends(verifier.fastapi(roles=("admin",)))) -> Any:
        return {"admin": token["sub"]}

    return TestClient(app)


@pytest.fixture(scope="module")
def client(verifier: Verifier) -> TestClient:
    return make_app(verifier, rfc6750_bodies=True)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_request_without_a_token_gets_401_and_a_bare_bearer_challenge(client: TestClient) -> None:
    response = client.get("/orders")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error_description"] == "a bearer access token is required"


def test_a_bad_token_gets_401_invalid_token_with_an_rfc_6750_body(client: TestClient) -> None:
    response = client.get("/orders", headers=bearer("not.a.token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json() == {"error": "invalid_token", "error_description": "the token is malformed"}


def test_a_token_whose_kid_is_a_lone_surrogate_gets_401_not_500(client: TestClient) -> None:
    token = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ilx1ZDgwMCJ9.e30.AAAA"
    response = client.get("/orders", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_token", "error_description": "the token is malformed"}


def test_without_the_handler_the_same_answer_comes_in_fastapis_detail_body(verifier: Verifier) -> None:
    plain = make_app(verifier, rfc6750_bodies=False)
    response = plain.get("/orders", headers=bearer("not.a.token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json() == {
        "detail": {"error": "invalid_token", "error_description": "the token is malformed"}
    }


def test_a_token_without_the_scope_gets_403_insufficient_scope(
    client: TestClient, issuer: Issuer
) -> None:
    response = client.get("/orders", headers=bearer(issuer.user_token(scope="write")))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'scope="read"' in response.headers["WWW-Authenticate"]


def test_a_user_without_the_role_gets_403_and_an_admin_gets_200(
    client: TestClient, issuer: Issuer
) -> None:
    assert client.get("/admin/report", headers=bearer(issuer.user_token())).status_code == 403
    admin = issuer.login(env("TEST_LATCHKEY_ADMIN_USER"), env("TEST_LATCHKEY_ADMIN_PASSWORD"))
    ok = client.get("/admin/report", headers=bearer(str(admin["access_token"])))
    assert ok.status_code == 200, ok.json()
    assert ok.json() == {"admin": env("TEST_LATCHKEY_ADMIN_USER")}


def test_a_valid_token_reaches_the_handler(client: TestClient, issuer: Issuer) -> None:
    response = client.get("/orders", headers=bearer(issuer.user_token()))
    assert response.status_code == 200, response.json()
    assert response.json() == {"owner": env("TEST_LATCHKEY_USER")}
