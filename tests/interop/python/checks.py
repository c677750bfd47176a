"""What the interop scripts share: checks that stop a script with a message, and the issuer's
RFC 8414 metadata, fetched and checked against the issuer it names."""

import requests


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def ok(message):
    print(f"ok: {message}")


def metadata(issuer):
    """The issuer's authorization server metadata; its `issuer` must be `issuer` exactly."""
    url = issuer.rstrip("/") + "/.well-known/oauth-authorization-server"
    response = requests.get(url, timeout=10)
    check(response.status_code == 200, f"GET {url}: HTTP {response.status_code}")
    found = response.json()
    check(found.get("issuer") == issuer, f"metadata issuer {found.get('issuer')!r} != {issuer!r}")
    return found
