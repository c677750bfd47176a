"""The shop before the move: a Flask API that keeps its own users and issues its own tokens.

What countless tutorials build: a SQLite ``users`` table with Werkzeug password hashes, a
``/login`` that checks them and hands out Flask-JWT-Extended access tokens, a blocklist (Redis
when ``REDIS_URL`` is set, else memory) so that ``/logout`` can kill a token, an
``admin_required`` decorator, and the routes that need them.

Run it: ``SHOP_DATABASE=shop.db JWT_SECRET_KEY=... flask --app before.app run``.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import timedelta
from functools import wraps
from typing import Any, Callable, Optional, Set

from flask import Flask, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
    verify_jwt_in_request,
)
from werkzeug.security import check_password_hash, generate_password_hash

ACCESS_EXPIRES = timedelta(minutes=15)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT UNIQUE NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    item TEXT NOT NULL
);
"""


def connect(database: str) -> sqlite3.Connection:
    db = sqlite3.connect(database)
    db.row_factory = sqlite3.Row
    db.executescript(SCHEMA)
    return db


def add_user(database: str, username: str, password: str, is_admin: bool = False,
             method: str = "scrypt") -> None:
    """Registers a user the way the app always has: Werkzeug's ``generate_password_hash``."""
    with connect(database) as db:
        db.execute(
            "INSERT INTO users (username, password_hash, is_admin) VALUES (?, ?, ?)",
            (username, generate_password_hash(password, method=method), int(is_admin)),
        )


def add_order(database: str, username: str, item: str) -> None:
    with connect(database) as db:
        db.execute("INSERT INTO orders (username, item) VALUES (?, ?)", (username, item))


class MemoryBlocklist:
    """Revoked token ids, in this process only (and forgotten at restart)."""

    def __init__(self) -> None:
        self._jtis: Set[str] = set()

    def add(self, jti: str, ttl: timedelta) -> None:
        self._jtis.add(jti)

    def __contains__(self, jti: object) -> bool:
        return jti in self._jtis


class RedisBlocklist:
    """Revoked token ids in Redis, each until the token would have expired anyway."""

    def __init__(self, url: str) -> None:
        import redis  # only needed when REDIS_URL is set

        self._redis = redis.Redis.from_url(url)

    def add(self, jti: str, ttl: timedelta) -> None:
        self._redis.set(f"blocklist:{jti}", "", ex=ttl)

    def __contains__(self, jti: object) -> bool:
        return bool(self._redis.exists(f"blocklist:{jti}"))


def admin_required() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Flask-JWT-Extended's documented pattern: a valid token whose claims say admin."""

    def wrapper(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def decorator(*args: Any, **kwargs: Any) -> Any:
            verify_jwt_in_request()
            if get_jwt().get("is_administrator"):
                return fn(*args, **kwargs)
            return jsonify(msg="Admins only!"), 403

        return decorator

    return wrapper


def create_app(database: str, secret_key: str, redis_url: Optional[str] = None) -> Flask:
    app = Flask(__name__)
    app.config["JWT_SECRET_KEY"] = secret_key
    app.config["JWT_ACCESS_TOKEN_EXPIRES"] = ACCESS_EXPIRES
    jwt = JWTManager(app)
    blocklist = RedisBlocklist(redis_url) if redis_url else MemoryBlocklist()

    @jwt.token_in_blocklist_loader
    def check_if_token_revoked(jwt_header: dict, jwt_payload: dict) -> bool:
        return jwt_payload["jti"] in blocklist

    @app.post("/login")
    def login() -> Any:
        body = request.get_json(silent=True) or {}
        with connect(database) as db:
            user = db.execute(
                "SELECT * FROM users WHERE username = ?", (body.get("username"),)
            ).fetchone()
        if user is None or not check_password_hash(user["password_hash"], body.get("password", "")):
            return jsonify(msg="Bad username or password"), 401
        token = create_access_token(
            identity=user["username"],
            additional_claims={"is_administrator": bool(user["is_admin"])},
        )
        return jsonify(access_token=token)

    @app.post("/logout")
    @jwt_required()
    def logout() -> Any:
        blocklist.add(get_jwt()["jti"], ACCESS_EXPIRES)
        return jsonify(msg="Access token revoked")

    @app.get("/orders")
    @jwt_required()
    def orders() -> Any:
        with connect(database) as db:
            rows = db.execute(
                "SELECT item FROM orders WHERE username = ?", (get_jwt_identity(),)
            ).fetchall()
        return jsonify(owner=get_jwt_identity(), orders=[r["item"] for r in rows])

    @app.get("/admin/orders")
    @admin_required()
    def all_orders() -> Any:
        with connect(database) as db:
            rows = db.execute("SELECT username, item FROM orders").fetchall()
        return jsonify(orders=[dict(r) for r in rows])

    return app


if os.environ.get("SHOP_DATABASE"):
    app = create_app(
        os.environ["SHOP_DATABASE"], os.environ["JWT_SECRET_KEY"], os.environ.get("REDIS_URL")
    )
