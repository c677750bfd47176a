"""The Flask decorator on a real app, with tokens from the live issuer."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, g

from conftest import Issuer, env
from latchkey_verify import Verifier
from latchkey_verify.flask import current_token, require_token


@pytest.fixture(scope="module")
def client(verifier: Verifier) -> Any:
    app = Flask(__name__)

    @app.get("/orders")
    @require_token(verifier, scopes=("read",))
    def orders() -> Any:
        return {"owner": g.token.subject, "scopes": list(current_token().scopes)}

    @app.get("/admin/report")
    @require_token(verifier, roles=("admin",))
    def report() -> Any:
        return {"admin": g.token["sub"]}

    @app.get("/realm")
    @require_token(verifier, realm="orders")
    def realm() -> Any:
        return {"ok": True}

    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_request_without_a_token_gets_401_and_a_bare_bearer_challenge(client: Any) -> None:
    response = client.get("/orders")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json["error_description"] == "a bearer access token is required"
    assert client.get("/realm").headers["WWW-Authenticate"] == 'Bearer realm="orders"'


def test_a_bad_token_gets_401_invalid_token_with_a_json_body(client: Any) -> None:
    response = client.get("/orders", headers=bearer("not.a.token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer error="invalid_token", error_description="the token is malformed"'
    )
    assert response.json == {"error": "invalid_token", "error_description": "the token is malformed"}
    assert response.headers["Cache-Control"] == "no-store"
    with_realm = client.get("/realm", headers=bearer("not.a.token"))
    assert with_realm.headers["WWW-Authenticate"].startswith('Bearer realm="orders", error="invalid_token"')


def test_a_token_whose_kid_is_a_lone_surrogate_gets_401_not_500(client: Any) -> None:
    token = "eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ilx1ZDgwMCJ9.e30.AAAA"
    response = client.get("/orders", headers=bearer(token))
    assert response.status_code == 401
    assert response.json == {"error": "invalid_token", "error_description": "the token is malformed"}


def test_a_malformed_authorization_header_gets_400_invalid_request(client: Any) -> None:
    response = client.get("/orders", headers={"Authorization": "Bearer a b"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_a_token_without_the_scope_gets_403_insufficient_scope(client: Any, issuer: Issuer) -> None:
    response = client.get("/orders", headers=bearer(issuer.user_token(scope="write")))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer error="insufficient_scope"') and 'scope="read"' in challenge


def test_a_user_without_the_role_gets_403_and_an_admin_gets_200(client: Any, issuer: Issuer) -> None:
    response = client.get("/admin/report", headers=bearer(issuer.user_token()))
    assert response.status_code == 403
    assert response.json["error"] == "insufficient_scope"
    admin = issuer.login(env("TEST_LATCHKEY_ADMIN_USER"), env("TEST_LATCHKEY_ADMIN_PASSWORD"))
    ok = client.get("/admin/report", headers=bearer(str(admin["access_token"])))
    assert ok.status_code == 200, ok.json
    assert ok.json == {"admin": env("TEST_LATCHKEY_ADMIN_USER")}


def test_a_valid_token_reaches_the_view_with_its_claims_in_g(client: Any, issuer: Issuer) -> None:
    response = client.get("/orders", headers=bearer(issuer.user_token()))
    assert response.status_code == 200, response.json
    assert response.json["owner"] == env("TEST_LATCHKEY_USER")
    assert "read" in response.json["scopes"]
