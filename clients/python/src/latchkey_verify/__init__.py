"""Verify Latchkey access tokens in a Python resource server, without a call to the issuer per
request.

A :class:`Verifier` discovers the issuer from its URL (RFC 8414 metadata), keeps its key set
cached as its ``Cache-Control`` says, validates access tokens per RFC 9068 §4 and RFC 8725, and
follows the issuer's revocation feed in a background thread, so that a revoked token is refused
within a bound (5 s by default) although no request asks the issuer::

    from latchkey_verify import InvalidToken, Verifier

    verifier = Verifier("https://auth.example.com", "orders-api",
                        feed_client_id="orders-api", feed_client_secret=secret)
    try:
        token = verifier.verify(bearer, scopes=("orders:read",))
    except InvalidToken as refused:
        ...  # refused.status, refused.error, refused.description
    print(token.subject, token.roles, token["scope"])

Flask: :func:`latchkey_verify.flask.require_token`; FastAPI: ``verifier.fastapi(...)`` and
:func:`latchkey_verify.fastapi.install`.
"""

from ._errors import InvalidToken, SetupError
from ._token import AccessToken, Actor, require_roles, require_scopes
from ._validate import MAX_LEEWAY
from ._verifier import Status, Verifier, bearer_token

__all__ = [
    "AccessToken",
    "Actor",
    "InvalidToken",
    "MAX_LEEWAY",
    "SetupError",
    "Status",
    "Verifier",
    "bearer_token",
    "require_roles",
    "require_scopes",
]

__version__ = "0.1.0"
