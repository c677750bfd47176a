"""The Latchkey flow through a client that openapi-python-client generated from
openapi/openapi.json, without edits: register, log in (password grant, public client), refresh,
userinfo, revoke, introspect (confidential client, HTTP Basic), an admin token (scope admin,
through the admin client), admin list users, and userinfo refusing the admin token.

Usage: flow.py --base-url URL --public-client ID --confidential-client ID --admin-client ID
               --admin USER
Secrets come from the environment: CLIENT_SECRET (confidential client), ADMIN_PASSWORD.
The generated package `latchkey_client` must be on PYTHONPATH.
"""

import argparse
import base64
import os
import sys

from latchkey_client import Client
from latchkey_client.api.account import register, userinfo
from latchkey_client.api.admin import list_users
from latchkey_client.api.o_auth import introspect, revoke, token
from latchkey_client.models import (
    ErrorBody,
    IntrospectionBody,
    Registration,
    TokenIssued,
    TokenParam,
    TokenParams,
    UserPage,
    UserProfile,
)
from latchkey_client.types import Unset


def check(condition, message):
    if not condition:
        print(f"FAILED: {message}", file=sys.stderr)
        sys.exit(1)


def expect(response, status, kind, what):
    check(
        response.status_code == status and isinstance(response.parsed, kind),
        f"{what}: expected {status} {kind.__name__}, got {response.status_code} "
        f"{response.content!r}",
    )
    print(f"ok  {what}: {response.status_code}")
    return response.parsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--public-client", required=True)
    parser.add_argument("--confidential-client", required=True)
    parser.add_argument("--admin-client", required=True)
    parser.add_argument("--admin", required=True)
    args = parser.parse_args()
    secret = os.environ["CLIENT_SECRET"]
    admin_password = os.environ["ADMIN_PASSWORD"]

    # One Client per identity: with_headers() also changes the httpx client it shares.
    def client(authorization=None):
        headers = {"Authorization": authorization} if authorization else {}
        return Client(base_url=args.base_url, headers=headers, raise_on_unexpected_status=True)

    anonymous = client()
    basic = base64.b64encode(f"{args.confidential_client}:{secret}".encode()).decode()
    confidential = client(f"Basic {basic}")

    username, password = "py-client-user", "generated clients work"
    profile = expect(
        register.sync_detailed(
            client=anonymous, body=Registration(username=username, password=password)
        ),
        201,
        UserProfile,
        "register",
    )
    check(profile.username == username, f"registered username {profile.username}")

    def password_grant(user, pw, client_id=None, scope=None):
        body = TokenParams(
            grant_type="password",
            username=user,
            password=pw,
            client_id=client_id or args.public_client,
        )
        if scope is not None:
            body.scope = scope
        return token.sync_detailed(client=anonymous, body=body)

    tokens = expect(password_grant(username, password), 200, TokenIssued, "password grant")
    check(tokens.token_type == "Bearer", f"token_type {tokens.token_type}")
    check(isinstance(tokens.refresh_token, str), "a refresh token is issued")

    wrong = password_grant(username, "not the password")
    error = expect(wrong, 400, ErrorBody, "password grant with a wrong password")
    check(error.error == "invalid_grant", f"error {error.error}")

    refreshed = expect(
        token.sync_detailed(
            client=anonymous,
            body=TokenParams(
                grant_type="refresh_token",
                refresh_token=tokens.refresh_token,
                client_id=args.public_client,
            ),
        ),
        200,
        TokenIssued,
        "refresh",
    )
    check(refreshed.refresh_token != tokens.refresh_token, "the refresh token rotates")

    bearer = client(f"Bearer {refreshed.access_token}")
    me = expect(userinfo.sync_detailed(client=bearer), 200, UserProfile, "userinfo")
    check(me.username == username, f"userinfo username {me.username}")

    active = expect(
        introspect.sync_detailed(
            client=confidential, body=TokenParam(token=refreshed.access_token)
        ),
        200,
        IntrospectionBody,
        "introspect a live token",
    )
    check(active.active is True, "the access token is active")
    check(active.username == username, f"introspected username {active.username}")

    revoked = revoke.sync_detailed(
        client=anonymous,
        body=TokenParam(token=refreshed.access_token, client_id=args.public_client),
    )
    check(revoked.status_code == 200, f"revoke: {revoked.status_code} {revoked.content!r}")
    print("ok  revoke: 200")

    inactive = expect(
        introspect.sync_detailed(
            client=confidential, body=TokenParam(token=refreshed.access_token)
        ),
        200,
        IntrospectionBody,
        "introspect the revoked token",
    )
    check(inactive.active is False, "the revoked access token is inactive")
    check(isinstance(inactive.username, Unset), "an inactive answer says nothing more")

    denied = expect(userinfo.sync_detailed(client=bearer), 401, ErrorBody, "userinfo after revoke")
    check(denied.error == "invalid_token", f"error {denied.error}")

    # An ordinary token of the admin's is not for the admin API; one asked for with scope
    # admin is, and only for it.
    ordinary = expect(
        password_grant(args.admin, admin_password), 200, TokenIssued, "admin's ordinary login"
    )
    refused = expect(
        list_users.sync_detailed(client=client(f"Bearer {ordinary.access_token}")),
        401,
        ErrorBody,
        "list users with an ordinary token",
    )
    check(refused.error == "invalid_token", f"error {refused.error}")
    admin_tokens = expect(
        password_grant(args.admin, admin_password, args.admin_client, "admin"),
        200,
        TokenIssued,
        "admin login (scope admin)",
    )
    check(admin_tokens.scope == "admin", f"admin token scope {admin_tokens.scope}")
    admin = client(f"Bearer {admin_tokens.access_token}")
    page = expect(list_users.sync_detailed(client=admin, limit=100), 200, UserPage, "list users")
    names = [user.username for user in page.users]
    check(username in names and args.admin in names, f"listed users {names}")
    elsewhere = expect(userinfo.sync_detailed(client=admin), 401, ErrorBody, "userinfo, admin token")
    check(elsewhere.error == "invalid_token", f"error {elsewhere.error}")

    forbidden = expect(list_users.sync_detailed(client=bearer), 401, ErrorBody, "list users, revoked")
    check(forbidden.error == "invalid_token", f"error {forbidden.error}")
    print("python client: every step passed")


if __name__ == "__main__":
    main()
