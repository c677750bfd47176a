"""Flask glue: a decorator that requires a valid bearer token on a view.

::

    from flask import Flask, g
    from latchkey_verify import Verifier
    from latchkey_verify.flask import require_token

    app = Flask(__name__)
    verifier = Verifier("https://auth.example.com", "orders-api",
                        feed_client_id="orders-api", feed_client_secret=secret)

    @app.get("/orders")
    @require_token(verifier, scopes=("orders:read",))
    def orders():
        return {"owner": g.token.subject}

    @app.get("/admin/report")
    @require_token(verifier, roles=("admin",))
    def report():
        ...

Refusals are answered per RFC 6750, with a JSON body ``{"error", "error_description"}``: 401
with ``WWW-Authenticate: Bearer error="invalid_token", error_description="..."`` for a bad
token, ``WWW-Authenticate: Bearer`` alone when the request has none, 403
``insufficient_scope`` (with ``scope="..."`` for a missing scope) for a good token that may not
do this, 400 ``invalid_request`` for a malformed ``Authorization`` header, 503 with
``Retry-After`` when the verifier fails closed.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Optional, TypeVar, cast

from flask import Response, g, jsonify, request

from ._errors import InvalidToken
from ._token import AccessToken
from ._verifier import Verifier

__all__ = ["require_token", "error_response", "current_token"]

F = TypeVar("F", bound=Callable[..., Any])


def error_response(error: InvalidToken, realm: Optional[str] = None) -> Response:
    """The RFC 6750 answer to a refused token."""
    response = jsonify(error.body())
    response.status_code = error.status
    for name, value in error.headers(realm).items():
        response.headers[name] = value
    return response


def require_token(
    verifier: Verifier,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    realm: Optional[str] = None,
) -> Callable[[F], F]:
    """Decorates a view so that it runs only for a request whose bearer token ``verifier``
    accepts and which carries every scope of ``scopes`` and every role of ``roles``. The
    verified :class:`~latchkey_verify.AccessToken` is in ``flask.g.token``. ``realm``, if
    given, goes into every ``WWW-Authenticate`` challenge."""
    scopes, roles = tuple(scopes), tuple(roles)

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                token = verifier.verify_authorization(
                    request.headers.get("Authorization"), scopes, roles
                )
            except InvalidToken as error:
                return error_response(error, realm)
            g.token = token
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def current_token() -> AccessToken:
    """The token :func:`require_token` verified for this request (``flask.g.token``), typed."""
    token = g.get("token")
    if not isinstance(token, AccessToken):
        raise RuntimeError("no verified token: is the view decorated with require_token?")
    return token
