"""The revocation feed (``GET /oauth/revocations``): what the verifier knows of revocations,
and how it reads the feed.

Events, as the issuer writes them (``type`` says which kind; unknown kinds are skipped, so the
issuer can add kinds without breaking older readers):

- ``token``: ``jti``, ``exp``: refuse the access token with this ``jti``;
- ``family``: ``fam``, ``exp``: refuse every access token whose ``sid`` names this session;
- ``subject``: ``sub``, ``not_before``, ``exp``: refuse users' tokens of ``sub`` issued
  (``iat``) before ``not_before`` (a password change or reset, a disabled account, a change of
  roles);
- ``client``: ``client_id``, ``not_before``, ``exp``: refuse every token issued through the
  client before ``not_before`` (the client was removed or its secret rotated). A token is issued
  through a client when the client is its ``client_id``, any ``sub`` of its ``act`` chain, or
  its ``subject_client_id`` (the client a token-exchange chain began with).

Each entry is kept until no token it concerns can be live (its ``exp``), then pruned.
"""

from __future__ import annotations

import threading
from typing import Any, Dict, List, Optional, Tuple

from ._token import AccessToken

#: Events asked for per page of the feed.
PAGE = 1000
#: Pages read in one round at most; the rest waits for the next round.
MAX_PAGES = 1000


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not an integer")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


class Revocations:
    """Revoked token ids, sessions, users and clients. Not locked itself: the verifier guards
    it, or builds a fresh one on the side and swaps it in."""

    def __init__(self) -> None:
        self.tokens: Dict[str, int] = {}
        self.families: Dict[str, int] = {}
        #: A user's ``sub`` -> (not_before, exp)
        self.subjects: Dict[str, Tuple[int, int]] = {}
        #: ``client_id`` -> (not_before, exp)
        self.clients: Dict[str, Tuple[int, int]] = {}

    def apply(self, event: Dict[str, Any]) -> None:
        """Applies one event; raises ``ValueError`` for a known kind with a malformed body."""
        kind = event.get("type")
        if kind == "token":
            key, exp = _text(event["jti"]), _integer(event["exp"])
            self.tokens[key] = max(exp, self.tokens.get(key, exp))
        elif kind == "family":
            key, exp = _text(event["fam"]), _integer(event["exp"])
            self.families[key] = max(exp, self.families.get(key, exp))
        elif kind in ("subject", "client"):
            table = self.subjects if kind == "subject" else self.clients
            key = _text(event["sub"] if kind == "subject" else event["client_id"])
            not_before, exp = _integer(event["not_before"]), _integer(event["exp"])
            old = table.get(key, (not_before, exp))
            table[key] = (max(old[0], not_before), max(old[1], exp))

    def is_revoked(self, token: AccessToken) -> bool:
        """Whether the issuer revoked this token: its ``jti``, its session, or the tokens of its
        user or of its clients issued before a point in time. A user's cut-off applies to users'
        tokens only, a client's to every token issued through it (``client_id``, the actors of
        ``act``, ``subject_client_id``)."""
        if token.jti in self.tokens:
            return True
        sid = token.session_id
        if sid is not None and sid in self.families:
            return True
        iat = token.issued_at
        if token.is_user:
            cut_off = self.subjects.get(token.subject)
            if cut_off is not None and iat < cut_off[0]:
                return True
        for client in token.clients:
            cut_off = self.clients.get(client)
            if cut_off is not None and iat < cut_off[0]:
                return True
        return False

    def prune(self, now: int, leeway: int) -> None:
        """Forgets entries whose tokens have all expired by ``now`` (less ``leeway``)."""
        self.tokens = {k: e for k, e in self.tokens.items() if e + leeway > now}
        self.families = {k: e for k, e in self.families.items() if e + leeway > now}
        self.subjects = {k: v for k, v in self.subjects.items() if v[1] + leeway > now}
        self.clients = {k: v for k, v in self.clients.items() if v[1] + leeway > now}

    def counts(self) -> Tuple[int, int, int]:
        """Entries held: (token ids, sessions, users and clients)."""
        return len(self.tokens), len(self.families), len(self.subjects) + len(self.clients)


class Page:
    """One page of the feed."""

    __slots__ = ("events", "next_cursor", "poll_after")

    def __init__(self, events: List[Dict[str, Any]], next_cursor: str, poll_after: int) -> None:
        self.events = events
        self.next_cursor = next_cursor
        self.poll_after = poll_after

    @staticmethod
    def parse(document: Any) -> "Page":
        if not isinstance(document, dict) or not isinstance(document.get("events"), list):
            raise ValueError("not a revocation feed page")
        events = [e for e in document["events"] if isinstance(e, dict)]
        if len(events) != len(document["events"]):
            raise ValueError("an event is not an object")
        scratch = Revocations()
        for event in events:  # the whole page is checked before any of it is applied
            try:
                scratch.apply(event)
            except (KeyError, ValueError) as error:
                raise ValueError(f"a malformed {event.get('type')!r} event: {error}") from None
        return Page(events, _text(document.get("next_cursor")), _integer(document.get("poll_after")))


class FeedState:
    """Where the last read stopped, and a resynchronisation under way; the lock serialises
    synchronisations."""

    def __init__(self, url: str, client_id: str, secret: str) -> None:
        self.url = url
        self.client_id = client_id
        self.secret = secret
        #: Following: the cursor after the last event applied to the verifier's state.
        self.cursor: Optional[str] = None
        #: Resynchronising: a fresh state read from the feed's start, which replaces the
        #: verifier's only once the feed's end is reached (a partial state would forget the
        #: revocations on the pages not yet read), and where its reading stopped.
        self.fresh: Optional[Revocations] = Revocations()
        self.fresh_cursor: Optional[str] = None
        self.lock = threading.Lock()

    def start_over(self) -> None:
        """Reads the feed again from its start, into a fresh state."""
        self.cursor = None
        self.fresh = Revocations()
        self.fresh_cursor = None

    def position(self) -> Optional[str]:
        """The cursor the next page is asked after."""
        return self.fresh_cursor if self.fresh is not None else self.cursor

    def __repr__(self) -> str:
        return f"FeedState(url={self.url!r}, client_id={self.client_id!r})"
