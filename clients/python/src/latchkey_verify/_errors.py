"""What can go wrong: a refused token (:class:`InvalidToken`, with its RFC 6750 answer) and a
failure to set up or reach the issuer (:class:`SetupError`)."""

from __future__ import annotations

import json
from typing import Dict, Optional

#: Machine-readable reasons, as ``InvalidToken.reason``.
REASONS = (
    "missing",
    "invalid_request",
    "malformed",
    "forbidden_header",
    "wrong_type",
    "unknown_key",
    "wrong_algorithm",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "missing_claim",
    "revoked",
    "insufficient_scope",
    "insufficient_role",
    "unavailable",
)


def _quoted(value: str) -> str:
    """A value for a quoted-string of an auth-param: quotes and backslashes become ``'``."""
    return '"' + value.replace('"', "'").replace("\\", "'") + '"'


class InvalidToken(Exception):
    """A bearer token was refused. Carries its RFC 6750 answer:

    - ``status``: 401 for a missing or bad token, 403 for a good token lacking a scope or role,
      400 for a malformed ``Authorization`` header, 503 when revocations cannot be checked and
      the verifier fails closed;
    - ``error``: ``invalid_token``, ``insufficient_scope``, ``invalid_request``,
      ``temporarily_unavailable``, or ``None`` when no token was presented (RFC 6750 §3.1: the
      challenge then carries no error code);
    - ``description``: a message safe to show the caller;
    - ``reason``: which check failed, for logs and tests (see ``REASONS``);
    - ``scope``: the missing scope of an ``insufficient_scope`` answer, if it is a scope.
    """

    def __init__(
        self,
        reason: str,
        description: str,
        *,
        status: int = 401,
        error: Optional[str] = "invalid_token",
        scope: Optional[str] = None,
    ) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.status = status
        self.error = error
        self.scope = scope

    def __repr__(self) -> str:
        return f"InvalidToken(status={self.status}, error={self.error!r}, reason={self.reason!r})"

    def www_authenticate(self, realm: Optional[str] = None) -> Optional[str]:
        """The ``WWW-Authenticate`` challenge (RFC 6750 §3); ``None`` for a 503."""
        if self.status == 503:
            return None
        params = []
        if realm is not None:
            params.append(f"realm={_quoted(realm)}")
        if self.error is not None:
            params.append(f"error={_quoted(self.error)}")
            params.append(f"error_description={_quoted(self.description)}")
        if self.scope is not None:
            params.append(f"scope={_quoted(self.scope)}")
        if not params:
            return "Bearer"
        return "Bearer " + ", ".join(params)

    def body(self) -> Dict[str, str]:
        """The JSON body of the answer: ``{"error": ..., "error_description": ...}``."""
        return {"error": self.error or "invalid_token", "error_description": self.description}

    def headers(self, realm: Optional[str] = None) -> Dict[str, str]:
        """The headers of the answer: the challenge, ``Cache-Control: no-store``, and
        ``Retry-After`` for a 503."""
        headers = {"Cache-Control": "no-store"}
        challenge = self.www_authenticate(realm)
        if challenge is not None:
            headers["WWW-Authenticate"] = challenge
        if self.status == 503:
            headers["Retry-After"] = "5"
        return headers

    def json(self) -> str:
        return json.dumps(self.body())


class SetupError(Exception):
    """The verifier could not be configured, or the issuer could not be reached or answered
    with something the protocol does not allow. Raised by the constructor: a resource server
    should not start accepting tokens it cannot check."""


def missing() -> InvalidToken:
    return InvalidToken("missing", "a bearer access token is required", error=None)


def invalid_request(description: str) -> InvalidToken:
    return InvalidToken("invalid_request", description, status=400, error="invalid_request")


def refused(reason: str, description: str) -> InvalidToken:
    return InvalidToken(reason, description)


def insufficient_scope(scope: str) -> InvalidToken:
    return InvalidToken(
        "insufficient_scope",
        f"the token lacks the scope '{scope}'",
        status=403,
        error="insufficient_scope",
        scope=scope,
    )


def insufficient_role(role: str) -> InvalidToken:
    return InvalidToken(
        "insufficient_role",
        f"the token lacks the role '{role}'",
        status=403,
        error="insufficient_scope",
    )


def wrong_actor(actor: str) -> InvalidToken:
    return InvalidToken(
        "wrong_actor",
        f"the token is not presented by '{actor}' on its subject's behalf",
        status=403,
        error="insufficient_scope",
    )


def unavailable() -> InvalidToken:
    return InvalidToken(
        "unavailable",
        "tokens cannot be checked right now",
        status=503,
        error="temporarily_unavailable",
    )
