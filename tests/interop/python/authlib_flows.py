"""Runs Latchkey's grants, refresh rotation and revocation through authlib's OAuth2Session.

Usage:
    INTEROP_PASSWORD=... INTEROP_CLIENT_SECRET=... authlib_flows.py --issuer URL \
        --public-client ID --username NAME --confidential-client ID [--scope "read write"]

Endpoints are discovered from the issuer's /.well-known/oauth-authorization-server.
The public client must allow password + refresh_token; the confidential client
client_credentials. Exits 0 when every check passes, 1 with a message naming the failed one.
"""

import argparse
import os
import sys

import authlib
import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError

from checks import CheckFailed, check, metadata, ok


def discover(issuer):
    found = metadata(issuer)
    for key in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        check(key in found, f"metadata lacks {key}: {found}")
    for method in ("client_secret_basic", "client_secret_post", "none"):
        check(
            method in found.get("token_endpoint_auth_methods_supported", []),
            f"token_endpoint_auth_methods_supported lacks {method}",
        )
    for grant in ("password", "client_credentials", "refresh_token"):
        check(grant in found.get("grant_types_supported", []), f"grant_types_supported lacks {grant}")
    ok(f"discovered endpoints from {issuer}")
    return found


class RequestRecorder:
    """Keeps the last request a session sent, to see how authlib authenticated the client."""

    def __init__(self, session):
        self.last = None
        session.hooks["response"].append(self._record)

    def _record(self, response, *args, **kwargs):
        self.last = response.request


def body_params(request):
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    return {k for k, _, _ in (pair.partition("=") for pair in body.split("&") if pair)}


def check_token_response(token, what, want_refresh):
    check(token.get("token_type", "").lower() == "bearer", f"{what}: token_type {token.get('token_type')!r}")
    check(token.get("access_token"), f"{what}: no access_token in {sorted(token)}")
    check(isinstance(token.get("expires_in"), int) and token["expires_in"] > 0,
          f"{what}: expires_in {token.get('expires_in')!r}")
    check("expires_at" in token, f"{what}: authlib computed no expires_at")
    if want_refresh:
        check(token.get("refresh_token"), f"{what}: no refresh_token")
    else:
        check("refresh_token" not in token, f"{what}: unexpected refresh_token")


def introspect(session, url, token, hint=None):
    response = session.introspect_token(url, token=token, token_type_hint=hint)
    check(response.status_code == 200, f"introspection: HTTP {response.status_code} {response.text}")
    return response.json()


def run(args, password, client_secret):
    metadata = discover(args.issuer)
    token_url = metadata["token_endpoint"]
    revoke_url = metadata["revocation_endpoint"]
    introspect_url = metadata["introspection_endpoint"]

    # --- client_credentials, client_secret_basic --------------------------------------------
    basic = OAuth2Session(
        client_id=args.confidential_client,
        client_secret=client_secret,
        token_endpoint_auth_method="client_secret_basic",
        revocation_endpoint_auth_method="client_secret_basic",
    )
    recorder = RequestRecorder(basic)
    cc_basic = basic.fetch_token(token_url, grant_type="client_credentials")
    check_token_response(cc_basic, "client_credentials (basic)", want_refresh=False)
    sent = recorder.last
    check(sent.headers.get("Authorization", "").startswith("Basic "), "basic: no Basic header sent")
    check("client_secret" not in body_params(sent), "basic: the secret was also sent in the body")
    ok("client_credentials with client_secret_basic issued an access token")

    # --- client_credentials, client_secret_post ---------------------------------------------
    post = OAuth2Session(
        client_id=args.confidential_client,
        client_secret=client_secret,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
    )
    recorder = RequestRecorder(post)
    cc_post = post.fetch_token(token_url, grant_type="client_credentials")
    check_token_response(cc_post, "client_credentials (post)", want_refresh=False)
    sent = recorder.last
    check("Authorization" not in sent.headers, "post: an Authorization header was sent")
    check({"client_id", "client_secret"} <= body_params(sent), "post: credentials not in the body")
    ok("client_credentials with client_secret_post issued an access token")

    # A wrong secret is refused with invalid_client.
    wrong = OAuth2Session(
        client_id=args.confidential_client,
        client_secret="not-the-secret",
        token_endpoint_auth_method="client_secret_basic",
    )
    try:
        wrong.fetch_token(token_url, grant_type="client_credentials")
    except OAuthError as e:
        check(e.error == "invalid_client", f"wrong secret: error {e.error!r}, want invalid_client")
        ok("a wrong client secret is refused with invalid_client")
    else:
        raise CheckFailed("a wrong client secret was accepted")

    # --- password grant, public client --------------------------------------------------------
    public = OAuth2Session(
        client_id=args.public_client,
        token_endpoint_auth_method="none",
        revocation_endpoint_auth_method="none",
        scope=args.scope,
    )
    recorder = RequestRecorder(public)
    first = public.fetch_token(token_url, username=args.username, password=password, grant_type="password")
    check_token_response(first, "password", want_refresh=True)
    sent = recorder.last
    check("Authorization" not in sent.headers, "public client: an Authorization header was sent")
    check("client_secret" not in body_params(sent), "public client: a client_secret was sent")
    check(set(first.get("scope", "").split()) == set(args.scope.split()),
          f"password: scope {first.get('scope')!r}, asked {args.scope!r}")
    ok("password grant through a public client issued an access and a refresh token")

    # The session attaches the bearer token: userinfo answers for the user.
    if "userinfo_endpoint" in metadata:
        response = public.get(metadata["userinfo_endpoint"])
        check(response.status_code == 200, f"userinfo: HTTP {response.status_code} {response.text}")
        check(response.json().get("sub") == args.username, f"userinfo: {response.json()}")
        ok("userinfo answers the session's bearer token")

    active = introspect(basic, introspect_url, first["access_token"], "access_token")
    check(active.get("active") is True, f"a fresh access token is not active: {active}")
    check(active.get("client_id") == args.public_client, f"introspection client_id: {active}")
    ok("introspection reports the fresh access token active")

    # --- refresh, with rotation ------------------------------------------------------------------
    old_refresh = first["refresh_token"]
    old_access = first["access_token"]
    second = public.refresh_token(token_url, refresh_token=old_refresh)
    check_token_response(second, "refresh", want_refresh=True)
    check(second["refresh_token"] != old_refresh, "refresh did not rotate: the same refresh token came back")
    check(second["access_token"] != old_access, "refresh returned the same access token")
    check(public.token["refresh_token"] == second["refresh_token"], "the session did not keep the new token")
    ok("refresh rotated the refresh token")

    # --- revoke ---------------------------------------------------------------------------------
    new_refresh = second["refresh_token"]
    live = introspect(basic, introspect_url, new_refresh, "refresh_token")
    check(live.get("active") is True, f"the rotated refresh token is not active before revocation: {live}")

    response = public.revoke_token(revoke_url, token=new_refresh, token_type_hint="refresh_token")
    check(response.status_code == 200, f"revoke refresh token: HTTP {response.status_code} {response.text}")
    ok("revoke_token accepted the refresh token")

    dead = introspect(basic, introspect_url, new_refresh, "refresh_token")
    check(dead.get("active") is False, f"a revoked refresh token is still active: {dead}")
    check(set(dead) == {"active"}, f"an inactive token's introspection says more than active: {dead}")
    ok("introspection reports the revoked refresh token inactive")

    try:
        public.refresh_token(token_url, refresh_token=new_refresh)
    except OAuthError as e:
        check(e.error == "invalid_grant", f"refresh after revoke: error {e.error!r}, want invalid_grant")
        ok("the revoked refresh token no longer refreshes (invalid_grant)")
    else:
        raise CheckFailed("a revoked refresh token still refreshed")

    # An access token, revoked by the confidential client that holds it.
    access = cc_post["access_token"]
    check(introspect(basic, introspect_url, access).get("active") is True, "cc access token not active")
    response = post.revoke_token(revoke_url, token=access, token_type_hint="access_token")
    check(response.status_code == 200, f"revoke access token: HTTP {response.status_code} {response.text}")
    dead = introspect(basic, introspect_url, access, "access_token")
    check(dead.get("active") is False, f"a revoked access token is still active: {dead}")
    ok("a revoked access token is reported inactive")

    # RFC 7009 §2.2: an unknown token is answered 200.
    response = post.revoke_token(revoke_url, token="not-a-token")
    check(response.status_code == 200, f"revoke unknown token: HTTP {response.status_code} {response.text}")
    ok("revoking an unknown token answers 200")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--public-client", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--confidential-client", required=True)
    parser.add_argument("--scope", default="read write")
    args = parser.parse_args()
    password = os.environ.get("INTEROP_PASSWORD")
    client_secret = os.environ.get("INTEROP_CLIENT_SECRET")
    versions = f"authlib {authlib.__version__}, requests {requests.__version__}"
    try:
        check(password, "INTEROP_PASSWORD is not set")
        check(client_secret, "INTEROP_CLIENT_SECRET is not set")
        run(args, password, client_secret)
    except CheckFailed as e:
        print(f"FAIL ({versions}): {e}", file=sys.stderr)
        return 1
    except OAuthError as e:
        print(f"FAIL ({versions}): the server answered {e.error}: {e.description}", file=sys.stderr)
        return 1
    except Exception as e:
        print(f"FAIL ({versions}): {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"authlib_flows: all checks passed ({versions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
