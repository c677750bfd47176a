"""Authenticates a client by private_key_jwt (RFC 7523 §2.2) through authlib's OAuth2Session:
client_credentials, introspection and revocation, each with a fresh assertion.

Usage:
    authlib_private_key_jwt.py --issuer URL --client ID --alg RS256|ES256|EdDSA --kid KID \
        < private-key.pem

The client must be registered with the public half of the key (PKCS#8 PEM on stdin) and the
grant client_credentials. Exits 0 when every check passes, 1 with a message naming the failed one.
"""

import argparse
import sys
import time

from authlib.integrations.requests_client import OAuth2Session, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey, OKPKey, RSAKey

from checks import CheckFailed, check, metadata, ok


class ShortLived(PrivateKeyJWT):
    """authlib's PrivateKeyJWT with an assertion that lives a minute.

    authlib makes assertions that expire an hour ahead, which Latchkey refuses (at most five
    minutes). A fresh claims dict per assertion, too: authlib writes the jti into the dict it is
    given, so a dict kept on the object would send the same jti every time.
    """

    def sign(self, auth, token_endpoint):
        self.claims = {"exp": int(time.time()) + 60}
        return super().sign(auth, token_endpoint)


def session(args, key, method):
    s = OAuth2Session(
        client_id=args.client,
        client_secret=key,
        token_endpoint_auth_method="private_key_jwt",
        revocation_endpoint_auth_method="private_key_jwt",
    )
    s.register_client_auth_method(method)
    return s


def run(args, key):
    found = metadata(args.issuer)
    for endpoint in ("token", "revocation", "introspection"):
        methods = found.get(f"{endpoint}_endpoint_auth_methods_supported", [])
        check("private_key_jwt" in methods, f"{endpoint}: private_key_jwt not in {methods}")
        algs = found.get(f"{endpoint}_endpoint_auth_signing_alg_values_supported", [])
        check(args.alg in algs, f"{endpoint}: {args.alg} not in {algs}")
    ok("the metadata lists private_key_jwt and the key's algorithm")
    token_url = found["token_endpoint"]

    # authlib's own default: an assertion an hour long.
    hour = session(args, key, PrivateKeyJWT(token_url, headers={"kid": args.kid}, alg=args.alg))
    try:
        hour.fetch_token(token_url, grant_type="client_credentials")
    except OAuthError as e:
        check(e.error == "invalid_client", f"an hour-long assertion: {e.error!r}")
        ok("an assertion that expires an hour ahead is refused with invalid_client")
    else:
        raise CheckFailed("an assertion that expires an hour ahead was accepted")

    s = session(args, key, ShortLived(token_url, headers={"kid": args.kid}, alg=args.alg))
    token = s.fetch_token(token_url, grant_type="client_credentials")
    check(token.get("access_token"), f"no access_token in {sorted(token)}")
    check("refresh_token" not in token, "client_credentials issued a refresh token")
    again = s.fetch_token(token_url, grant_type="client_credentials")
    check(again["access_token"] != token["access_token"], "a second token is a new one")
    ok(f"client_credentials with a {args.alg} assertion issued tokens, twice")

    access = token["access_token"]
    answer = s.introspect_token(found["introspection_endpoint"], token=access)
    check(answer.status_code == 200, f"introspection: HTTP {answer.status_code} {answer.text}")
    check(answer.json().get("active") is True, f"introspection: {answer.json()}")
    ok("introspection with an assertion reports the token active")

    revoked = s.revoke_token(found["revocation_endpoint"], token=access)
    check(revoked.status_code == 200, f"revocation: HTTP {revoked.status_code} {revoked.text}")
    answer = s.introspect_token(found["introspection_endpoint"], token=access)
    check(answer.json().get("active") is False, f"after revocation: {answer.json()}")
    ok("revocation with an assertion revoked the token")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--client", required=True)
    parser.add_argument("--alg", required=True, choices=["RS256", "ES256", "EdDSA"])
    parser.add_argument("--kid", required=True)
    args = parser.parse_args()
    pem = sys.stdin.read()
    kind = {"RS256": RSAKey, "ES256": ECKey, "EdDSA": OKPKey}[args.alg]
    try:
        run(args, kind.import_key(pem))
    except CheckFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
