"""The shop after the move: Latchkey keeps the users and issues the tokens; this app only
verifies them.

What changed from ``before/app.py``:

- no ``users`` table, no password hashing, no signing secret: the users were exported with
  their hashes and imported into Latchkey (``before/export_users.py``, ``latchkey users
  import``), and sign in with the same passwords;
- ``/login`` is a thin proxy to Latchkey's ``POST /oauth/token`` (password grant), kept so that
  existing clients need not change at once; new clients can call Latchkey directly;
- ``@jwt_required()``, the blocklist and ``admin_required`` are all
  ``latchkey_verify.flask.require_token``: tokens are checked against Latchkey's published keys,
  and revocations come from its feed, on every replica, within 5 s;
- ``/logout`` revokes the token at Latchkey (``POST /oauth/revoke``), which every resource
  server then refuses, not just this process.

Run it::

    SHOP_DATABASE=shop.db SHOP_ISSUER=http://127.0.0.1:8080 SHOP_AUDIENCE=shop \\
    SHOP_CLIENT_ID=shop-web SHOP_FEED_CLIENT_ID=shop-api SHOP_FEED_CLIENT_SECRET=... \\
    flask --app after.app run
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any, Dict, Tuple

import requests
from flask import Flask, g, jsonify, request

from latchkey_verify import Verifier
from latchkey_verify.flask import require_token


def connect(database: str) -> sqlite3.Connection:
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    return db


def create_app(
    database: str, verifier: Verifier, client_id: str, http: requests.Session | None = None
) -> Flask:
    app = Flask(__name__)
    issuer = verifier.issuer
    http = http or requests.Session()

    def latchkey(path: str, form: Dict[str, str]) -> Tuple[Any, int]:
        response = http.post(f"{issuer}{path}", data=form, timeout=10)
        body = response.json() if response.content else {}
        return body, response.status_code

    @app.post("/login")
    def login() -> Any:
        """Kept for the clients that post ``{"username", "password"}`` here; the answer is now
        Latchkey's token response (``access_token``, ``refresh_token``, ``expires_in``)."""
        body = request.get_json(silent=True) or {}
        answer, status = latchkey(
            "/oauth/token",
            {
                "grant_type": "password",
                "username": str(body.get("username", "")),
                "password": str(body.get("password", "")),
                "client_id": client_id,
                "audience": verifier.audience,
            },
        )
        if status != 200:
            # The old answer, so old clients keep understanding it (Latchkey says
            # invalid_grant with 400, or 429 after too many failures).
            return jsonify(msg="Bad username or password", error=answer.get("error")), (
                429 if status == 429 else 401
            )
        return jsonify(answer)

    @app.post("/logout")
    @require_token(verifier)
    def logout() -> Any:
        """Revokes the access token (and the refresh token, if the client sends it) at
        Latchkey: every resource server refuses them within seconds."""
        bearer = request.headers["Authorization"].split(" ", 1)[1].strip()
        latchkey("/oauth/revoke", {"token": bearer, "client_id": client_id})
        refresh = (request.get_json(silent=True) or {}).get("refresh_token")
        if isinstance(refresh, str):
            latchkey("/oauth/revoke", {"token": refresh, "client_id": client_id})
        return jsonify(msg="Access token revoked")

    @app.get("/orders")
    @require_token(verifier)
    def orders() -> Any:
        with connect(database) as db:
            rows = db.execute(
                "SELECT item FROM orders WHERE username = ?", (g.token.subject,)
            ).fetchall()
        return jsonify(owner=g.token.subject, orders=[r["item"] for r in rows])

    @app.get("/admin/orders")
    @require_token(verifier, roles=("admin",))
    def all_orders() -> Any:
        with connect(database) as db:
            rows = db.execute("SELECT username, item FROM orders").fetchall()
        return jsonify(orders=[dict(r) for r in rows])

    return app


if os.environ.get("SHOP_DATABASE"):
    app = create_app(
        os.environ["SHOP_DATABASE"],
        Verifier(
            os.environ["SHOP_ISSUER"],
            os.environ["SHOP_AUDIENCE"],
            feed_client_id=os.environ["SHOP_FEED_CLIENT_ID"],
            feed_client_secret=os.environ["SHOP_FEED_CLIENT_SECRET"],
        ),
        os.environ["SHOP_CLIENT_ID"],
    )
