"""The Flask peer: a token service built the way the Flask-JWT-Extended tutorials build one.

gunicorn (sync workers, one per core) serves it. RS256 tokens from flask_jwt_extended, a Redis
blocklist checked on every protected request (token_in_blocklist_loader), argon2 password
hashes through argon2-cffi with the same parameters as Latchkey (m=19456 KiB, t=2, p=1), and
rotating refresh tokens (the spent one goes on the blocklist).

Two key modes (PEER_KEY_MODE):
- ``pem``: JWT_PRIVATE_KEY / JWT_PUBLIC_KEY are PEM strings, as the extension's documentation
  shows; PyJWT then parses the key again for every signature and every verification.
- ``parsed``: the same keys as `cryptography` key objects, parsed once at start-up: the fair
  baseline.

Users and clients come from the JSON file named by PEER_SEED and are kept in memory (a
tutorial would keep them in SQLAlchemy; memory is the cheaper choice, so this favours the peer).

Only for bench/run; loopback only.
"""

import hashlib
import hmac
import json
import os
from datetime import timedelta

import redis
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError, InvalidHashError
from cryptography.hazmat.primitives import serialization
from flask import Flask, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
)
from jwt.algorithms import RSAAlgorithm

ACCESS_TTL = 900
REFRESH_TTL = 30 * 24 * 3600
ISSUER = os.environ.get("PEER_ISSUER", "http://127.0.0.1")

with open(os.environ["PEER_PRIVATE_KEY"], "rb") as f:
    PRIVATE_PEM = f.read()
PRIVATE_KEY = serialization.load_pem_private_key(PRIVATE_PEM, password=None)
PUBLIC_KEY = PRIVATE_KEY.public_key()
PUBLIC_PEM = PUBLIC_KEY.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)

app = Flask(__name__)
app.config["JWT_ALGORITHM"] = "RS256"
if os.environ.get("PEER_KEY_MODE", "pem") == "pem":
    app.config["JWT_PRIVATE_KEY"] = PRIVATE_PEM.decode()
    app.config["JWT_PUBLIC_KEY"] = PUBLIC_PEM.decode()
else:
    app.config["JWT_PRIVATE_KEY"] = PRIVATE_KEY
    app.config["JWT_PUBLIC_KEY"] = PUBLIC_KEY
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(seconds=ACCESS_TTL)
app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(seconds=REFRESH_TTL)
app.config["JWT_ENCODE_ISSUER"] = ISSUER
app.config["JWT_DECODE_ISSUER"] = ISSUER
jwt = JWTManager(app)

blocklist = redis.StrictRedis(
    host="127.0.0.1", port=int(os.environ["PEER_REDIS_PORT"]), db=0, decode_responses=True
)

hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)

with open(os.environ["PEER_SEED"]) as f:
    SEED = json.load(f)
USERS = {}
for name, user in SEED["users"].items():
    chosen = cheap if user.get("cheap") else hasher
    USERS[name] = {"hash": chosen.hash(user["password"]), "roles": user.get("roles", [])}
CLIENTS = {
    cid: {
        "secret_sha256": hashlib.sha256(c["secret"].encode()).hexdigest(),
        "scope": c.get("scope", ""),
    }
    for cid, c in SEED["clients"].items()
}
DUMMY_HASH = hasher.hash("no such user")

KID = "peer-1"
JWKS = json.dumps(
    {"keys": [dict(json.loads(RSAAlgorithm.to_jwk(PUBLIC_KEY)), kid=KID, use="sig", alg="RS256")]}
)


@jwt.token_in_blocklist_loader
def check_if_token_revoked(jwt_header, jwt_payload):
    return blocklist.get(jwt_payload["jti"]) is not None


def oauth_error(code, description, status=400):
    return jsonify(error=code, error_description=description), status


def tokens(identity, claims, with_refresh):
    body = {
        "access_token": create_access_token(identity=identity, additional_claims=claims),
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "scope": claims.get("scope", ""),
    }
    if with_refresh:
        body["refresh_token"] = create_refresh_token(identity=identity, additional_claims=claims)
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@app.post("/oauth/token")
def token():
    grant = request.form.get("grant_type")
    if grant == "client_credentials":
        auth = request.authorization
        client = CLIENTS.get(auth.username) if auth and auth.username else None
        if client is None or not hmac.compare_digest(
            hashlib.sha256((auth.password or "").encode()).hexdigest(), client["secret_sha256"]
        ):
            return oauth_error("invalid_client", "client authentication failed", 401)
        return tokens(
            auth.username, {"client_id": auth.username, "scope": client["scope"]}, False
        )
    if grant == "password":
        username = request.form.get("username", "")
        password = request.form.get("password", "")
        user = USERS.get(username)
        try:
            # argon2-cffi reads the parameters from the stored hash.
            hasher.verify(DUMMY_HASH if user is None else user["hash"], password)
            ok = user is not None
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            return oauth_error("invalid_grant", "invalid username or password")
        claims = {
            "client_id": request.form.get("client_id", ""),
            "scope": "read write",
            "roles": user["roles"],
        }
        return tokens(username, claims, True)
    return oauth_error("unsupported_grant_type", "grant_type is not supported")


@app.post("/oauth/refresh")
@jwt_required(refresh=True)
def refresh():
    spent = get_jwt()
    # Rotation: the presented refresh token is spent; later use is refused by the blocklist.
    blocklist.set(spent["jti"], "", ex=REFRESH_TTL)
    claims = {"client_id": spent.get("client_id", ""), "scope": spent.get("scope", ""),
              "roles": spent.get("roles", [])}
    return tokens(get_jwt_identity(), claims, True)


@app.get("/userinfo")
@jwt_required()
def userinfo():
    name = get_jwt_identity()
    user = USERS.get(name)
    if user is None:
        return oauth_error("invalid_token", "unknown user", 401)
    return jsonify(sub=name, username=name, roles=user["roles"])


@app.get("/.well-known/jwks.json")
def jwks():
    return app.response_class(JWKS, mimetype="application/json")


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
