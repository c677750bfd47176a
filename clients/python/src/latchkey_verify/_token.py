"""The claims of a verified access token, and the checks a handler makes on them."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

from ._errors import insufficient_role, insufficient_scope, wrong_actor

#: How deep an ``act`` chain is followed; the issuer's size limits keep real chains far shorter.
MAX_ACTOR_DEPTH = 32


class Actor:
    """One link of a delegation chain (RFC 8693 §4.1): who acted, and the claims of its ``act``
    object (``sub`` and anything else the issuer put there, without the nested ``act``)."""

    __slots__ = ("subject", "claims")

    def __init__(self, subject: str, claims: Dict[str, Any]) -> None:
        self.subject = subject
        self.claims = claims

    def __repr__(self) -> str:
        return f"Actor(subject={self.subject!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Actor) and (self.subject, self.claims) == (
            other.subject,
            other.claims,
        )

    def __hash__(self) -> int:
        return hash(self.subject)


def actor_chain(act: Any) -> Optional[Tuple[Actor, ...]]:
    """The actors of an ``act`` claim, the current one first; ``None`` if it is malformed."""
    chain: List[Actor] = []
    while act is not None:
        if not isinstance(act, dict) or len(chain) >= MAX_ACTOR_DEPTH:
            return None
        sub = act.get("sub")
        if not isinstance(sub, str):
            return None
        chain.append(Actor(sub, {k: v for k, v in act.items() if k != "act"}))
        act = act.get("act")
    return tuple(chain)


class AccessToken(Dict[str, Any]):
    """A verified access token (RFC 9068): signed by the issuer, for this audience, within its
    lifetime, and not revoked as far as the last synchronisation with the feed knows.

    It is the claim set itself (a ``dict``: ``token["sub"]``, ``jsonify(token)``), with typed
    accessors for what a handler usually needs.
    """

    def __init__(self, claims: Dict[str, Any], actors: Tuple[Actor, ...] = ()) -> None:
        super().__init__(claims)
        self._actors = actors

    @property
    def subject(self) -> str:
        """``sub``: the username, or the client id of a ``client_credentials`` token."""
        return str(self["sub"])

    @property
    def client_id(self) -> str:
        return str(self["client_id"])

    @property
    def scopes(self) -> Tuple[str, ...]:
        """``scope``, split at spaces."""
        scope = self.get("scope")
        return tuple(s for s in scope.split(" ") if s) if isinstance(scope, str) else ()

    @property
    def roles(self) -> Tuple[str, ...]:
        """``roles``: the user's roles; empty for a client's own token."""
        roles = self.get("roles")
        return tuple(roles) if isinstance(roles, list) else ()

    @property
    def is_user(self) -> bool:
        """Whether the token was issued to a user (it carries ``roles``) rather than a client."""
        return isinstance(self.get("roles"), list)

    @property
    def session_id(self) -> Optional[str]:
        """``sid``: the session (refresh-token family) the token belongs to, if any."""
        sid = self.get("sid")
        return sid if isinstance(sid, str) else None

    @property
    def jti(self) -> str:
        return str(self["jti"])

    @property
    def audience(self) -> Tuple[str, ...]:
        aud = self["aud"]
        return (aud,) if isinstance(aud, str) else tuple(aud)

    @property
    def issued_at(self) -> int:
        return int(self["iat"])

    @property
    def expires_at(self) -> int:
        return int(self["exp"])

    @property
    def act(self) -> Optional[Dict[str, Any]]:
        """The raw ``act`` claim (RFC 8693 §4.1) of an exchanged token, or ``None``."""
        act = self.get("act")
        return act if isinstance(act, dict) else None

    @property
    def actors(self) -> Tuple[Actor, ...]:
        """The delegation chain of an exchanged token, the current actor first (``act.sub``),
        then the one it acted for (``act.act.sub``), and so on; empty when nobody acts for the
        subject."""
        return self._actors

    @property
    def subject_client_id(self) -> Optional[str]:
        """``subject_client_id``: in an exchanged token, the client the exchange chain began
        with (the ``client_id`` of the first subject token), or ``None``."""
        value = self.get("subject_client_id")
        return value if isinstance(value, str) else None

    @property
    def clients(self) -> Tuple[str, ...]:
        """Every client the token was issued through: its ``client_id``, the actors of its
        ``act`` chain (clients all) and ``subject_client_id``. A client's revocation reaches the
        token through any of them."""
        clients = [self.client_id]
        clients.extend(actor.subject for actor in self._actors)
        if self.subject_client_id is not None:
            clients.append(self.subject_client_id)
        return tuple(clients)

    @property
    def actor(self) -> Optional[str]:
        """The current actor's subject (``act.sub``), or ``None``."""
        return self._actors[0].subject if self._actors else None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def require_scope(self, *scopes: str) -> "AccessToken":
        """Returns the token if it carries every scope, else raises 403 ``insufficient_scope``
        naming the first one missing."""
        require_scopes(self, scopes)
        return self

    def require_role(self, *roles: str) -> "AccessToken":
        """Returns the token if its subject has every role, else raises 403
        ``insufficient_scope`` (RFC 6750 has no code of its own for roles; the description
        names the role)."""
        require_roles(self, roles)
        return self

    def require_actor(self, actor: str) -> "AccessToken":
        """Returns the token if ``actor`` is its current actor (``act.sub``), else raises 403
        ``insufficient_scope``: a service that takes delegated tokens only from its gateway
        says so here."""
        if self.actor != actor:
            raise wrong_actor(actor)
        return self


def require_scopes(token: AccessToken, scopes: Iterable[str]) -> None:
    """Raises :class:`InvalidToken` (403 ``insufficient_scope``) unless ``token`` carries every
    scope of ``scopes``."""
    held = token.scopes
    for scope in scopes:
        if scope not in held:
            raise insufficient_scope(scope)


def require_roles(token: AccessToken, roles: Iterable[str]) -> None:
    """Raises :class:`InvalidToken` (403 ``insufficient_scope``) unless ``token``'s subject has
    every role of ``roles``."""
    held = token.roles
    for role in roles:
        if role not in held:
            raise insufficient_role(role)
