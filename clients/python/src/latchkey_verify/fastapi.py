"""FastAPI glue: a dependency that returns the verified token.

::

    from fastapi import Depends, FastAPI
    from latchkey_verify import AccessToken, Verifier
    from latchkey_verify.fastapi import install

    verifier = Verifier("https://auth.example.com", "orders-api",
                        feed_client_id="orders-api", feed_client_secret=secret)
    app = FastAPI()
    install(app)  # RFC 6750 JSON bodies: {"error", "error_description"}

    @app.get("/orders")
    def orders(token: AccessToken = Depends(verifier.fastapi(scopes=("orders:read",)))):
        return {"owner": token.subject}

A refusal raises :class:`BearerError`, an ``HTTPException`` with the RFC 6750 status and
headers (401 with ``WWW-Authenticate: Bearer error="invalid_token", ...``, ``Bearer`` alone
without a token, 403 ``insufficient_scope``, 400 ``invalid_request``, 503 when failing closed).
Without :func:`install`, FastAPI's own handler answers it with the same status and headers and
a body ``{"detail": {"error": ..., "error_description": ...}}``; with it, the body is RFC 6750's
``{"error": ..., "error_description": ...}``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from ._errors import InvalidToken
from ._token import AccessToken
from ._verifier import Verifier

__all__ = ["BearerError", "install", "require_token", "bearer_error_handler"]


class BearerError(HTTPException):
    """A refused token as an ``HTTPException``; ``.error`` is the :class:`InvalidToken`."""

    def __init__(self, error: InvalidToken, realm: Optional[str] = None) -> None:
        super().__init__(status_code=error.status, detail=error.body(), headers=error.headers(realm))
        self.error = error


async def bearer_error_handler(request: Request, exc: Exception) -> Response:
    """Answers a :class:`BearerError` with RFC 6750's JSON body and its headers."""
    if not isinstance(exc, BearerError):  # registered for BearerError only
        raise exc
    return JSONResponse(exc.error.body(), status_code=exc.status_code, headers=exc.headers)


def install(app: FastAPI) -> None:
    """Registers :func:`bearer_error_handler`, so refusals have RFC 6750's JSON body."""
    app.add_exception_handler(BearerError, bearer_error_handler)


def require_token(
    verifier: Verifier,
    scopes: Iterable[str] = (),
    roles: Iterable[str] = (),
    realm: Optional[str] = None,
) -> Callable[[Request], AccessToken]:
    """A dependency returning the verified :class:`~latchkey_verify.AccessToken` of the
    request, which must carry every scope of ``scopes`` and every role of ``roles``. Declared
    sync on purpose: FastAPI runs it in its thread pool, so a key-set refetch for an unknown
    ``kid`` never blocks the event loop."""
    scopes, roles = tuple(scopes), tuple(roles)

    def dependency(request: Request) -> AccessToken:
        try:
            return verifier.verify_authorization(
                request.headers.get("Authorization"), scopes, roles
            )
        except InvalidToken as error:
            raise BearerError(error, realm) from None

    return dependency
