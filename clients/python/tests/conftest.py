"""The live service these tests run against, as tests/python_package.rs spawns it and passes it
in the environment, and helpers to talk to it. A missing variable fails the run: these tests
never pass by being skipped."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from latchkey_verify import Verifier

REQUIRED = (
    "TEST_LATCHKEY_ISSUER",
    "TEST_LATCHKEY_AUDIENCE",
    "TEST_LATCHKEY_KEYS_DIR",
    "TEST_LATCHKEY_FEED_CLIENT_ID",
    "TEST_LATCHKEY_FEED_CLIENT_SECRET",
    "TEST_LATCHKEY_PUBLIC_CLIENT",
    "TEST_LATCHKEY_USER",
    "TEST_LATCHKEY_PASSWORD",
    "TEST_LATCHKEY_ADMIN_USER",
    "TEST_LATCHKEY_ADMIN_PASSWORD",
    "TEST_LATCHKEY_ADMIN_CLIENT",
)


def pytest_configure(config: pytest.Config) -> None:
    absent = [name for name in REQUIRED if not os.environ.get(name)]
    if absent:
        raise pytest.UsageError(
            "these tests run against a live Latchkey; run them through "
            "`cargo nextest run --test python_package` (missing: " + ", ".join(absent) + ")"
        )


def env(name: str) -> str:
    return os.environ[name]


ISSUER = os.environ.get("TEST_LATCHKEY_ISSUER", "")
AUDIENCE = os.environ.get("TEST_LATCHKEY_AUDIENCE", "")


def eventually(check: Callable[[], bool], within: float, what: str) -> float:
    """Polls ``check`` until it holds; fails after ``within`` seconds. Returns the time taken."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > within:
            pytest.fail(f"{what} did not happen within {within} s")
        time.sleep(0.05)


class Issuer:
    """The live service: tokens, revocation and the admin API over HTTP."""

    def __init__(self) -> None:
        self.url = ISSUER
        self.http = requests.Session()

    def token(self, form: Dict[str, str], auth: Optional[tuple[str, str]] = None) -> Dict[str, Any]:
        response = self.http.post(f"{self.url}/oauth/token", data=form, auth=auth, timeout=10)
        assert response.status_code == 200, response.text
        body: Dict[str, Any] = response.json()
        return body

    def login(self, username: str, password: str, scope: Optional[str] = None) -> Dict[str, Any]:
        form = {
            "grant_type": "password",
            "username": username,
            "password": password,
            "client_id": env("TEST_LATCHKEY_PUBLIC_CLIENT"),
        }
        if scope is not None:
            form["scope"] = scope
        return self.token(form)

    def user_token(self, scope: Optional[str] = None) -> str:
        return str(self.login(env("TEST_LATCHKEY_USER"), env("TEST_LATCHKEY_PASSWORD"), scope)["access_token"])

    def client_token(self) -> str:
        auth = (env("TEST_LATCHKEY_FEED_CLIENT_ID"), env("TEST_LATCHKEY_FEED_CLIENT_SECRET"))
        return str(self.token({"grant_type": "client_credentials"}, auth)["access_token"])

    def revoke(self, token: str) -> None:
        response = self.http.post(
            f"{self.url}/oauth/revoke",
            data={"token": token, "client_id": env("TEST_LATCHKEY_PUBLIC_CLIENT")},
            timeout=10,
        )
        assert response.status_code == 200, response.text

    def admin_token(self) -> str:
        body = self.token(
            {
                "grant_type": "password",
                "username": env("TEST_LATCHKEY_ADMIN_USER"),
                "password": env("TEST_LATCHKEY_ADMIN_PASSWORD"),
                "client_id": env("TEST_LATCHKEY_ADMIN_CLIENT"),
                "scope": "admin",
            }
        )
        return str(body["access_token"])

    def set_roles(self, username: str, roles: list[str]) -> None:
        self.admin("PATCH", f"/users/{username}", {"roles": roles})

    def admin(self, method: str, path: str, body: Optional[Dict[str, Any]] = None) -> Any:
        response = self.http.request(
            method,
            f"{self.url}/admin{path}",
            json=body,
            headers={"Authorization": f"Bearer {self.admin_token()}"},
            timeout=10,
        )
        assert response.status_code in (200, 201, 204), response.text
        return response.json() if response.content else None

    def published_kids(self) -> list[str]:
        keys = self.http.get(f"{self.url}/.well-known/jwks.json", timeout=10).json()["keys"]
        return [str(k["kid"]) for k in keys]


def thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint of an RSA public key: the issuer's ``kid``."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SigningKey:
    """The issuer's own signing key, read from its key directory, to make tokens the issuer
    would not issue (expired, not yet valid, wrong type...) but which carry its real signature,
    so that each is refused for the one thing wrong with it."""

    def __init__(self, key: rsa.RSAPrivateKey, kid: str) -> None:
        self.key = key
        self.kid = kid

    def sign(self, claims: Dict[str, Any], **header: Any) -> str:
        fields = {"typ": "at+jwt", "kid": self.kid}
        fields.update(header)
        return jwt.encode(claims, self.key, algorithm="RS256", headers=fields)

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def claims(**changes: Any) -> Dict[str, Any]:
    """The claims of a user's access token as the issuer writes them, with ``changes``."""
    now = int(time.time())
    base: Dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "exp": now + 600,
        "iat": now,
        "nbf": now,
        "jti": f"forged-{time.monotonic_ns()}",
        "client_id": "web",
        "scope": "read write",
        "roles": ["user"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def encode_segment(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture(scope="session")
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture(scope="session")
def signing_key(issuer: Issuer) -> SigningKey:
    kid = jwt.get_unverified_header(issuer.user_token())["kid"]
    for path in Path(env("TEST_LATCHKEY_KEYS_DIR")).glob("*.pem"):
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if isinstance(key, rsa.RSAPrivateKey) and thumbprint(key.public_key()) == kid:
            return SigningKey(key, kid)
    pytest.fail(f"no key in TEST_LATCHKEY_KEYS_DIR has the kid {kid}")


@pytest.fixture(scope="session")
def verifier() -> Iterator[Verifier]:
    """A verifier following the feed, shared by the tests that need nothing special."""
    with Verifier(
        ISSUER,
        AUDIENCE,
        feed_client_id=env("TEST_LATCHKEY_FEED_CLIENT_ID"),
        feed_client_secret=env("TEST_LATCHKEY_FEED_CLIENT_SECRET"),
    ) as shared:
        yield shared
