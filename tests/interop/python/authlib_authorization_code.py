"""Sign-in in a browser as an authlib web app does it: the authorization URL with PKCE (S256),
state and nonce, then, given the URL the browser came back to, the code exchange and the
validation of the OpenID Connect ID token against the issuer's JWKS.

Usage:
    authlib_authorization_code.py start --issuer URL --client ID --redirect URI
        prints {"url", "verifier", "state", "nonce"} as JSON
    authlib_authorization_code.py finish --issuer URL --client ID --redirect URI \
        --callback URL --verifier V --state S --nonce N --user NAME

Exits 0 when every check passes, 1 with a message naming the failed one.
"""

import argparse
import json
import sys

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from authlib.oidc.core import CodeIDToken

from checks import CheckFailed, check, metadata, ok


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["start", "finish"])
    for name in ("issuer", "client", "redirect"):
        parser.add_argument(f"--{name}", required=True)
    for name in ("callback", "verifier", "state", "nonce", "user"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    found = metadata(args.issuer)
    check("S256" in found.get("code_challenge_methods_supported", []), "S256 is not listed")

    if args.step == "start":
        session = OAuth2Session(
            args.client,
            redirect_uri=args.redirect,
            scope="openid read",
            code_challenge_method="S256",
        )
        verifier = generate_token(48)
        nonce = generate_token(20)
        url, state = session.create_authorization_url(
            found["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        print(json.dumps({"url": url, "verifier": verifier, "state": state, "nonce": nonce}))
        return

    session = OAuth2Session(
        args.client,
        redirect_uri=args.redirect,
        code_challenge_method="S256",
        state=args.state,
        token_endpoint_auth_method="none",
    )
    token = session.fetch_token(
        found["token_endpoint"],
        authorization_response=args.callback,
        code_verifier=args.verifier,
    )
    check(token.get("id_token"), f"no id_token in {sorted(token)}")
    check(token.get("refresh_token"), f"no refresh_token in {sorted(token)}")
    keys = JsonWebKey.import_key_set(requests.get(found["jwks_uri"], timeout=10).json())
    claims = jwt.decode(
        token["id_token"],
        keys,
        claims_cls=CodeIDToken,
        claims_options={"iss": {"essential": True, "values": [args.issuer]}},
        claims_params={"nonce": args.nonce, "client_id": args.client},
    )
    claims.validate()
    check(claims["sub"] == args.user, f"sub {claims['sub']!r}")
    check(claims["aud"] == args.client, f"aud {claims['aud']!r}")
    ok(f"{claims['sub']} signed in to {args.client}; the ID token validates")


if __name__ == "__main__":
    try:
        main()
    except (CheckFailed, Exception) as error:  # noqa: BLE001 - any failure is the script's answer
        print(f"FAIL: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
