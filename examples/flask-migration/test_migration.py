"""The migration, end to end, against a live Latchkey (tests/flask_migration.rs starts it and
passes it in the environment; a missing variable fails the run, never skips it).

The story: the "before" shop signs its users in with its own tokens; its users are exported
with their Werkzeug hashes and imported with the real ``latchkey users import``; the same
people sign in through Latchkey with their original passwords; the "after" shop accepts
Latchkey's tokens, keeps its admin route for admins, and refuses a token within 5 s of logout.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, Iterator

import pytest
import requests

from latchkey_verify import Verifier

HERE = Path(__file__).resolve().parent
REQUIRED = (
    "TEST_LATCHKEY_ISSUER",
    "TEST_LATCHKEY_BIN",
    "TEST_LATCHKEY_WORKDIR",
    "TEST_LATCHKEY_CLIENT_ID",
    "TEST_LATCHKEY_AUDIENCE",
    "TEST_LATCHKEY_FEED_CLIENT_ID",
    "TEST_LATCHKEY_FEED_CLIENT_SECRET",
)
absent = [name for name in REQUIRED if not os.environ.get(name)]
if absent:
    raise RuntimeError(
        "this test runs against a live Latchkey; run it through "
        "`cargo nextest run --test flask_migration` (missing: " + ", ".join(absent) + ")"
    )
ISSUER = os.environ["TEST_LATCHKEY_ISSUER"]
CLIENT_ID = os.environ["TEST_LATCHKEY_CLIENT_ID"]

#: The before app's HS256 key (Flask-JWT-Extended's JWT_SECRET_KEY).
OLD_SECRET = "the before app's signing secret, 32 bytes or more"

#: The shop's users, each with the password they have always had and how Werkzeug hashed it:
#: scrypt is Werkzeug 3's default, pbkdf2:sha256 (1,000,000 rounds) what older apps chose.
USERS = {
    "ann": ("ann's old password", "scrypt", False),
    "bob": ("hunter2 but longer", "pbkdf2", False),
    "carol": ("carol administers", "scrypt", True),
}


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


before = load("shop_before", HERE / "before" / "app.py")
export_users = load("shop_export_users", HERE / "before" / "export_users.py")
after = load("shop_after", HERE / "after" / "app.py")


def latchkey(*args: str) -> subprocess.CompletedProcess[str]:
    """The real ``latchkey`` binary, on the store of the running service (the CLI may use the
    embedded store while the service runs), without the caller's ``LATCHKEY_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LATCHKEY_")}
    return subprocess.run(
        [os.environ["TEST_LATCHKEY_BIN"], *args],
        cwd=os.environ["TEST_LATCHKEY_WORKDIR"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def scheme_of(username: str) -> str:
    shown = latchkey("users", "show", username)
    assert shown.returncode == 0, shown.stderr
    return str(json.loads(shown.stdout)["password_scheme"])


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("shop") / "shop.db")
    for username, (password, method, is_admin) in USERS.items():
        before.add_user(path, username, password, is_admin=is_admin, method=method)
    before.add_order(path, "ann", "teapot")
    before.add_order(path, "bob", "kettle")
    return path


@pytest.fixture(scope="module")
def imported(database: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Users exported with their hashes and imported into Latchkey with its CLI."""
    export = tmp_path_factory.mktemp("export") / "users.jsonl"
    with export.open("w") as out:
        assert export_users.export(database, out) == len(USERS)
    result = latchkey("users", "import", str(export))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"imported": len(USERS), "refused": 0}
    return export


@pytest.fixture(scope="module")
def verifier() -> Iterator[Verifier]:
    with Verifier(
        ISSUER,
        os.environ["TEST_LATCHKEY_AUDIENCE"],
        feed_client_id=os.environ["TEST_LATCHKEY_FEED_CLIENT_ID"],
        feed_client_secret=os.environ["TEST_LATCHKEY_FEED_CLIENT_SECRET"],
    ) as shared:
        yield shared


@pytest.fixture(scope="module")
def shop_after(database: str, imported: Path, verifier: Verifier) -> Any:
    return after.create_app(database, verifier, CLIENT_ID).test_client()


def old_login(client: Any, username: str) -> Any:
    return client.post("/login", json={"username": username, "password": USERS[username][0]})


def test_the_before_app_signs_users_in_with_its_own_tokens_and_blocklists_logouts(
    database: str,
) -> None:
    client = before.create_app(database, OLD_SECRET).test_client()
    assert client.post("/login", json={"username": "ann", "password": "wrong"}).status_code == 401
    ann = old_login(client, "ann").json["access_token"]
    orders = client.get("/orders", headers=bearer(ann))
    assert orders.status_code == 200 and orders.json == {"owner": "ann", "orders": ["teapot"]}
    assert client.get("/orders").status_code == 401
    assert client.get("/admin/orders", headers=bearer(ann)).status_code == 403
    carol = old_login(client, "carol").json["access_token"]
    assert client.get("/admin/orders", headers=bearer(carol)).status_code == 200
    assert client.post("/logout", headers=bearer(ann)).status_code == 200
    assert client.get("/orders", headers=bearer(ann)).status_code == 401, "blocklisted"


def test_the_export_keeps_each_werkzeug_hash_as_it_is_and_maps_admins_to_a_role(
    database: str,
) -> None:
    out = io.StringIO()
    export_users.export(database, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    by_name = {line["username"]: line for line in lines}
    assert set(by_name) == set(USERS)
    assert by_name["ann"]["password_hash"].startswith("scrypt:32768:8:1$")
    assert by_name["bob"]["password_hash"].startswith("pbkdf2:sha256:1000000$")
    assert by_name["carol"]["roles"] == ["user", "admin"]
    assert by_name["ann"]["roles"] == ["user"]
    assert all(set(line) == {"username", "password_hash", "roles"} for line in lines)


def test_imported_users_sign_in_through_latchkey_with_their_original_passwords(
    imported: Path, shop_after: Any
) -> None:
    assert scheme_of("ann") == "scrypt" and scheme_of("bob") == "pbkdf2-sha256"
    wrong = shop_after.post("/login", json={"username": "ann", "password": "wrong"})
    assert wrong.status_code == 401 and wrong.json["msg"] == "Bad username or password"
    for username in USERS:
        response = old_login(shop_after, username)
        assert response.status_code == 200, response.json
        assert response.json["token_type"] == "Bearer" and response.json["refresh_token"]
    assert scheme_of("ann") == "argon2id", "the first sign-in moved the hash to argon2id"
    assert scheme_of("bob") == "argon2id"
    direct = requests.post(
        f"{ISSUER}/oauth/token",
        data={
            "grant_type": "password",
            "username": "bob",
            "password": USERS["bob"][0],
            "client_id": CLIENT_ID,
        },
        timeout=10,
    )
    assert direct.status_code == 200, "new clients can sign in at Latchkey directly"


def test_the_after_app_accepts_latchkey_tokens_and_keeps_the_admin_route_for_admins(
    shop_after: Any,
) -> None:
    ann = old_login(shop_after, "ann").json["access_token"]
    orders = shop_after.get("/orders", headers=bearer(ann))
    assert orders.status_code == 200 and orders.json == {"owner": "ann", "orders": ["teapot"]}
    missing = shop_after.get("/orders")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    refused = shop_after.get("/admin/orders", headers=bearer(ann))
    assert refused.status_code == 403 and refused.json["error"] == "insufficient_scope"
    carol = old_login(shop_after, "carol").json["access_token"]
    everything = shop_after.get("/admin/orders", headers=bearer(carol))
    assert everything.status_code == 200
    assert {o["item"] for o in everything.json["orders"]} == {"teapot", "kettle"}


def test_the_after_app_refuses_the_before_apps_tokens(database: str, shop_after: Any) -> None:
    old_app = before.create_app(database, OLD_SECRET).test_client()
    old_token = old_login(old_app, "ann").json["access_token"]
    response = shop_after.get("/orders", headers=bearer(old_token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_logout_revokes_the_token_and_the_after_app_refuses_it_within_five_seconds(
    shop_after: Any,
) -> None:
    login = old_login(shop_after, "bob").json
    token = login["access_token"]
    assert shop_after.get("/orders", headers=bearer(token)).status_code == 200
    logout = shop_after.post(
        "/logout", headers=bearer(token), json={"refresh_token": login["refresh_token"]}
    )
    assert logout.status_code == 200
    started = time.monotonic()
    while shop_after.get("/orders", headers=bearer(token)).status_code == 200:
        assert time.monotonic() - started < 5, "the revoked token still passes after 5 s"
        time.sleep(0.05)
    print(f"refused {time.monotonic() - started:.2f} s after logout", file=sys.stderr)
    refreshed = requests.post(
        f"{ISSUER}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": login["refresh_token"],
            "client_id": CLIENT_ID,
        },
        timeout=10,
    )
    assert refreshed.status_code == 400, "the refresh token went with it"
