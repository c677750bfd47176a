"""Verifies Latchkey access tokens the way a Python resource server would: PyJWT + PyJWKClient.

Usage:
    pyjwt_verify.py --issuer URL [--audience api] [--jwks-uri URL] [--refresh-token RT] [TOKEN...]

Access tokens come from argv, or one per line on stdin when none are given. Each must verify
against the published JWKS with RS256 only, the audience and the issuer, carry the RFC 9068
claims, and have the header `typ: at+jwt`. The refresh token, when given, must be refused as an
access token for the audience; a tampered copy of each access token must be refused as well.
Exits 0 when every check passes, 1 with a message naming the failed check otherwise.
"""

import argparse
import base64
import json
import sys
import urllib.request

import jwt

# RFC 9068 §2.2 claims, plus the ones the Latchkey contract adds.
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "client_id"]
ACCESS_TYP = "at+jwt"
REFRESH_TYP = "rt+jwt"


class CheckFailed(Exception):
    pass


def fail(message):
    raise CheckFailed(message)


def discover_jwks_uri(issuer):
    url = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    with urllib.request.urlopen(url, timeout=10) as response:
        metadata = json.load(response)
    if metadata.get("issuer") != issuer:
        fail(f"metadata issuer {metadata.get('issuer')!r} is not {issuer!r}")
    if "jwks_uri" not in metadata:
        fail(f"metadata at {url} has no jwks_uri")
    return metadata["jwks_uri"]


def validate_access_token(jwks, token, issuer, audience):
    """What a resource server does; raises jwt.PyJWTError (or CheckFailed) on refusal."""
    signing_key = jwks.get_signing_key_from_jwt(token)
    decoded = jwt.decode_complete(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=issuer,
        options={"require": REQUIRED_CLAIMS},
    )
    typ = decoded["header"].get("typ")
    if typ != ACCESS_TYP:
        raise jwt.InvalidTokenError(f"header typ is {typ!r}, not {ACCESS_TYP!r}")
    return decoded


def b64url_json(segment):
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def b64url_encode(obj):
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def tampered_copies(token):
    """The token with a changed claim (signature kept), and with one signature bit flipped."""
    header, payload, signature = token.split(".")
    claims = b64url_json(payload)
    claims["sub"] = claims.get("sub", "") + "-mallory"
    claims["scope"] = (claims.get("scope", "") + " admin").strip()
    yield "changed claims", f"{header}.{b64url_encode(claims)}.{signature}"
    sig = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    sig[len(sig) // 2] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(sig)).rstrip(b"=").decode()
    yield "flipped signature bit", f"{header}.{payload}.{flipped}"


def check_access_token(jwks, token, issuer, audience, index):
    try:
        decoded = validate_access_token(jwks, token, issuer, audience)
    except jwt.PyJWTError as e:
        fail(f"access token #{index} was refused: {type(e).__name__}: {e}")
    claims = decoded["payload"]
    header = decoded["header"]
    if header.get("alg") != "RS256":
        fail(f"access token #{index}: alg {header.get('alg')!r}")
    if not header.get("kid"):
        fail(f"access token #{index}: no kid in header {header}")
    if not isinstance(claims.get("scope", ""), str):
        fail(f"access token #{index}: scope is not a space-separated string: {claims['scope']!r}")
    if "roles" in claims and not isinstance(claims["roles"], list):
        fail(f"access token #{index}: roles is not an array: {claims['roles']!r}")
    print(
        f"ok: access token #{index} verified (kid {header['kid'][:12]}..., sub {claims['sub']!r}, "
        f"client_id {claims['client_id']!r}, scope {claims.get('scope')!r}, aud {claims['aud']!r})"
    )

    for what, forged in tampered_copies(token):
        try:
            validate_access_token(jwks, forged, issuer, audience)
        except jwt.InvalidSignatureError:
            print(f"ok: access token #{index} with {what} refused (InvalidSignatureError)")
        except jwt.PyJWTError as e:
            fail(
                f"access token #{index} with {what} was refused, but not for its signature: "
                f"{type(e).__name__}: {e}"
            )
        else:
            fail(f"access token #{index} with {what} was ACCEPTED")


def check_refresh_token(jwks, token, issuer, audience):
    try:
        validate_access_token(jwks, token, issuer, audience)
    except jwt.PyJWTError as e:
        print(f"ok: refresh token refused as an access token ({type(e).__name__}: {e})")
    else:
        fail(f"a refresh token was ACCEPTED as an access token for audience {audience!r}")

    # The contract says both typ and aud differ: check each defence on its own, with the
    # signature verified, so the refusal above is not down to a bad signature.
    signing_key = jwks.get_signing_key_from_jwt(token)
    try:
        decoded = jwt.decode_complete(
            token, signing_key.key, algorithms=["RS256"], issuer=issuer,
            options={"verify_aud": False},
        )
    except jwt.PyJWTError as e:
        fail(f"the refresh token does not verify against the JWKS: {type(e).__name__}: {e}")
    typ = decoded["header"].get("typ")
    if typ != REFRESH_TYP:
        fail(f"refresh token header typ is {typ!r}, not {REFRESH_TYP!r}")
    try:
        jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=audience, issuer=issuer)
    except jwt.InvalidAudienceError:
        print(f"ok: refresh token's aud {decoded['payload'].get('aud')!r} is not {audience!r}")
    except jwt.PyJWTError as e:
        fail(f"refresh token refused, but not for its audience: {type(e).__name__}: {e}")
    else:
        fail(f"the refresh token carries the access audience {audience!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", default="api")
    parser.add_argument("--jwks-uri", help="default: jwks_uri from the issuer's RFC 8414 metadata")
    parser.add_argument("--refresh-token")
    parser.add_argument("tokens", nargs="*", metavar="TOKEN")
    args = parser.parse_args()

    tokens = args.tokens or [line.strip() for line in sys.stdin if line.strip()]
    try:
        if not tokens:
            fail("no access token given (argv or stdin)")
        jwks_uri = args.jwks_uri or discover_jwks_uri(args.issuer)
        jwks = jwt.PyJWKClient(jwks_uri)
        for index, token in enumerate(tokens, 1):
            check_access_token(jwks, token, args.issuer, args.audience, index)
        if args.refresh_token:
            check_refresh_token(jwks, args.refresh_token, args.issuer, args.audience)
    except CheckFailed as e:
        print(f"FAIL (PyJWT {jwt.__version__}): {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a crash is a failure too, with its cause named
        print(f"FAIL (PyJWT {jwt.__version__}): {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"pyjwt_verify: all checks passed (PyJWT {jwt.__version__}, {len(tokens)} access tokens)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
