"""The verifier: discovery, the key-set cache, validation, and the background thread that keeps
the keys fresh and follows the revocation feed."""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Tuple
from urllib.parse import quote

import requests

from ._errors import InvalidToken, SetupError, invalid_request, missing, unavailable
from ._feed import MAX_PAGES, PAGE, FeedState, Page, Revocations
from ._jwks import JwksCache
from ._token import AccessToken, require_roles, require_scopes
from ._validate import (
    DEFAULT_MAX_TOKEN_BYTES,
    MAX_LEEWAY,
    Expectations,
    UnknownKey,
    unknown_key,
    verify,
)

if TYPE_CHECKING:
    from typing import Literal

    WhenUnreachable = Literal["keep_verifying", "fail_closed"]
else:
    WhenUnreachable = str

logger = logging.getLogger("latchkey_verify")

#: The shortest wait between two rounds of the background thread.
MIN_WAIT = 0.1
#: How often expired revocations are pruned.
PRUNE_EVERY = 30.0
#: RFC 6750 §2.1: ``b64token``.
_B64TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")


def bearer_token(authorization: Optional[str]) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value. Raises
    :class:`InvalidToken`: 401 without an error code when there is no header or another scheme
    (RFC 6750 §3.1), 400 ``invalid_request`` for a malformed Bearer credential."""
    if authorization is None or not authorization.strip():
        raise missing()
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise missing()
    token = token.strip()
    if not token:
        raise invalid_request("the Bearer credential is empty")
    if not _B64TOKEN.match(token):
        raise invalid_request("the Bearer credential is malformed")
    return token


def _encode(value: str) -> str:
    """Percent-encodes all but RFC 3986 unreserved characters (RFC 6749 §2.3.1)."""
    return quote(value, safe="")


class Status:
    """What the verifier holds, for health checks and metrics."""

    __slots__ = ("keys", "jwks_fetches", "revoked", "since_last_sync")

    def __init__(
        self,
        keys: int,
        jwks_fetches: int,
        revoked: Tuple[int, int, int],
        since_last_sync: Optional[float],
    ) -> None:
        #: Keys in the cached key set.
        self.keys = keys
        #: How many times the key set was fetched since start.
        self.jwks_fetches = jwks_fetches
        #: Revoked token ids, sessions, and user or client cut-offs held.
        self.revoked = revoked
        #: Seconds since the revocation feed was last read to its end; ``None`` without a feed.
        self.since_last_sync = since_last_sync

    def __repr__(self) -> str:
        return (
            f"Status(keys={self.keys}, jwks_fetches={self.jwks_fetches}, "
            f"revoked={self.revoked}, since_last_sync={self.since_last_sync})"
        )


class Verifier:
    """Verifies access tokens of one issuer for one audience.

    The constructor discovers the issuer (``{issuer}/.well-known/oauth-authorization-server``,
    whose ``issuer`` must be ``issuer`` exactly), fetches its key set, reads the revocation feed
    to its end when feed credentials are given, and starts a daemon thread that keeps the key
    set fresh and follows the feed. It raises :class:`SetupError` if the issuer cannot be
    reached: a resource server should not start accepting tokens it cannot check.

    Thread-safe: one verifier serves every request thread. Stop its thread with :meth:`close`
    or a ``with`` block (it also stops once the verifier is garbage-collected).

    :param issuer: the issuer's URL, exactly as in its tokens' ``iss``.
    :param audience: the ``aud`` tokens must include: this resource server's audience.
    :param feed_client_id: a confidential client of the issuer to read the revocation feed as.
        Without feed credentials, tokens are only checked for signature and lifetime: a revoked
        token passes until it expires.
    :param feed_client_secret: that client's secret.
    :param revocation_bound: seconds within which a revocation takes effect here (default 5);
        the feed is polled at least twice within it.
    :param when_unreachable: ``"keep_verifying"`` (the default): while the feed cannot be read,
        keep verifying with the revocations already known; ``"fail_closed"``: refuse every token
        with 503 once the last complete read of the feed is older than ``revocation_bound``.
    :param leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat`` (default 5, at
        most :data:`MAX_LEEWAY`, 300).
    :param min_refetch_interval: the least seconds between two key-set fetches caused by
        unknown ``kid``s (default 10).
    :param max_token_bytes: larger tokens are malformed (default 8 KiB).
    :param timeout: seconds each request to the issuer may take (default 5).
    :param setup_timeout: seconds the constructor may take in all, discovery, key set and the
        whole feed included (default 10); past them it raises :class:`SetupError`, also while an
        answer is still arriving.
    :param session: the ``requests.Session`` to reach the issuer with (default: new ones).
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        feed_client_id: Optional[str] = None,
        feed_client_secret: Optional[str] = None,
        *,
        revocation_bound: float = 5.0,
        when_unreachable: WhenUnreachable = "keep_verifying",
        leeway: int = 5,
        min_refetch_interval: float = 10.0,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        timeout: float = 5.0,
        setup_timeout: float = 10.0,
        session: Optional[requests.Session] = None,
    ) -> None:
        issuer = issuer.rstrip("/")
        if not issuer or not audience:
            raise SetupError("invalid configuration: the issuer and the audience must not be empty")
        if (feed_client_id is None) != (feed_client_secret is None):
            raise SetupError(
                "invalid configuration: give both feed_client_id and feed_client_secret, or neither"
            )
        if revocation_bound < 0.2:
            raise SetupError("invalid configuration: the revocation bound must be at least 0.2 s")
        if when_unreachable not in ("keep_verifying", "fail_closed"):
            raise SetupError(
                "invalid configuration: when_unreachable is 'keep_verifying' or 'fail_closed'"
            )
        if not 0 <= leeway <= MAX_LEEWAY:
            raise SetupError(
                f"invalid configuration: the leeway must be between 0 and {MAX_LEEWAY} s: the "
                "issuer keeps revocations only that long past a token's expiry"
            )
        if not 0 < setup_timeout < math.inf:
            raise SetupError("invalid configuration: the setup timeout must be positive and finite")
        self._expect = Expectations(issuer, audience, int(leeway), max_token_bytes)
        self._bound = float(revocation_bound)
        self._fail_closed = when_unreachable == "fail_closed"
        self._timeout = timeout
        self._feed_session = session or requests.Session()
        self._feed: Optional[FeedState] = None
        self._revocations = Revocations()
        self._revocations_lock = threading.Lock()
        self._last_sync: Optional[float] = None
        self._stop = threading.Event()
        feed_credentials = None
        if feed_client_id is not None and feed_client_secret is not None:
            feed_credentials = (feed_client_id, feed_client_secret)
        # On a thread of its own, so that an issuer that answers a byte at a time, or a feed
        # without end, cannot hold the constructor past its deadline: requests' timeouts bound
        # each read, not a request or the whole.
        outcome: Dict[str, BaseException] = {}

        def set_up() -> None:
            try:
                self._set_up(session or requests.Session(), min_refetch_interval, feed_credentials)
            except BaseException as error:  # re-raised by the constructor
                outcome["error"] = error

        setting_up = threading.Thread(target=set_up, name="latchkey-verify-setup", daemon=True)
        setting_up.start()
        setting_up.join(setup_timeout)
        if setting_up.is_alive():
            self._stop.set()  # the set-up gives up at its next request
            raise SetupError(f"the issuer at {issuer} was not ready within {setup_timeout} s")
        if "error" in outcome:
            raise outcome["error"]
        self._thread = threading.Thread(
            target=_run, args=(weakref.ref(self), self._stop), name="latchkey-verify", daemon=True
        )
        weakref.finalize(self, self._stop.set)
        self._thread.start()

    # ---- public API ---------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return self._expect.issuer

    @property
    def audience(self) -> str:
        return self._expect.audience

    def verify(
        self, token: str, scopes: Iterable[str] = (), roles: Iterable[str] = ()
    ) -> AccessToken:
        """Verifies a bearer token and returns its claims, or raises :class:`InvalidToken`.
        A ``kid`` the cached key set lacks triggers one refetch (shared with concurrent
        requests, at most once per ``min_refetch_interval``); nothing else touches the network.
        ``scopes`` and ``roles`` the token must carry are checked last (403)."""
        try:
            claims = self._verify_cached(token)
        except UnknownKey as miss:
            if not self._jwks.refresh_for_unknown(miss.kid):
                raise unknown_key() from None
            try:
                claims = self._verify_cached(token)
            except UnknownKey:
                raise unknown_key() from None
        require_scopes(claims, scopes)
        require_roles(claims, roles)
        return claims

    def verify_cached(self, token: str) -> AccessToken:
        """Verifies a bearer token with what is cached, never waiting for the network: a
        ``kid`` the cache lacks is refused (``reason == "unknown_key"``)."""
        try:
            return self._verify_cached(token)
        except UnknownKey:
            raise unknown_key() from None

    def verify_authorization(
        self,
        authorization: Optional[str],
        scopes: Iterable[str] = (),
        roles: Iterable[str] = (),
    ) -> AccessToken:
        """Verifies the token of an ``Authorization`` header value (``None`` when the request
        has none): what the Flask and FastAPI helpers call."""
        return self.verify(bearer_token(authorization), scopes, roles)

    def fastapi(
        self, scopes: Iterable[str] = (), roles: Iterable[str] = (), realm: Optional[str] = None
    ) -> Callable[..., AccessToken]:
        """A FastAPI dependency that returns the verified :class:`AccessToken` or raises an
        ``HTTPException`` with the RFC 6750 status and ``WWW-Authenticate`` header; see
        :mod:`latchkey_verify.fastapi`."""
        from .fastapi import require_token

        return require_token(self, scopes=scopes, roles=roles, realm=realm)

    def status(self) -> Status:
        """What the verifier holds now."""
        with self._revocations_lock:
            revoked = self._revocations.counts()
        return Status(len(self._jwks.keys), self._jwks.fetches, revoked, self._since_last_sync())

    def close(self) -> None:
        """Stops the background thread (waits for it at most ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._timeout + 1)

    def __enter__(self) -> "Verifier":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Verifier(issuer={self.issuer!r}, audience={self.audience!r})"

    # ---- internals ----------------------------------------------------------------------

    def _verify_cached(self, token: str) -> AccessToken:
        self._check_freshness()
        claims = verify(token, self._jwks.keys, self._expect, int(time.time()))
        with self._revocations_lock:
            revoked = self._revocations.is_revoked(claims)
        if revoked:
            raise InvalidToken("revoked", "the token has been revoked")
        return claims

    def _check_freshness(self) -> None:
        """When failing closed, refuses once revocations are older than the bound."""
        if self._fail_closed and self._feed is not None:
            age = self._since_last_sync()
            if age is None or age > self._bound:
                raise unavailable()

    def _since_last_sync(self) -> Optional[float]:
        if self._feed is None or self._last_sync is None:
            return None
        return time.monotonic() - self._last_sync

    def _set_up(
        self,
        session: requests.Session,
        min_refetch_interval: float,
        feed_credentials: Optional[Tuple[str, str]],
    ) -> None:
        """Discovery, the key set, and the whole revocation feed: what the constructor waits
        for."""
        metadata = self._discover(session)
        feed_url = metadata.get("revocation_feed_endpoint")
        if feed_credentials is not None:
            if not isinstance(feed_url, str):
                raise SetupError(
                    f"unexpected answer from {self.issuer}: the issuer publishes no "
                    "revocation_feed_endpoint"
                )
            self._feed = FeedState(feed_url, *feed_credentials)
        self._jwks = JwksCache(
            str(metadata["jwks_uri"]), session, min_refetch_interval, self._timeout
        )
        if self._stop.is_set():
            return
        self._jwks.refresh()
        if not self._jwks.keys:
            logger.warning("the issuer's key set holds no usable key; every token will fail")
        # A resource server starts with every revocation: the whole feed, however many rounds
        # that takes (within the set-up timeout).
        while self._feed is not None and not self._stop.is_set() and not self._sync_feed()[0]:
            pass

    def _discover(self, session: requests.Session) -> Dict[str, Any]:
        """Fetches the RFC 8414 metadata; its ``issuer`` must be ours exactly (RFC 8414 §3.3),
        or a look-alike could hand out its own keys."""
        url = f"{self.issuer}/.well-known/oauth-authorization-server"
        try:
            response = session.get(url, timeout=self._timeout)
        except requests.RequestException as error:
            raise SetupError(f"cannot reach the issuer at {url}: {error}") from None
        if response.status_code != 200:
            raise SetupError(f"cannot reach the issuer at {url}: status {response.status_code}")
        try:
            metadata = response.json()
        except ValueError as error:
            raise SetupError(f"unexpected answer from {url}: {error}") from None
        if not isinstance(metadata, dict) or not isinstance(metadata.get("jwks_uri"), str):
            raise SetupError(f"unexpected answer from {url}: no jwks_uri")
        if metadata.get("issuer") != self.issuer:
            raise SetupError(
                f"unexpected answer from {url}: the metadata names the issuer "
                f"{metadata.get('issuer')!r}"
            )
        return metadata

    def _read_page(self, feed: FeedState, after: Optional[str]) -> Optional[Page]:
        """One page of the feed; ``None`` when the issuer does not know the cursor."""
        params = {"limit": str(PAGE)}
        if after is not None:
            params["after"] = after
        try:
            response = self._feed_session.get(
                feed.url,
                params=params,
                auth=(_encode(feed.client_id), _encode(feed.secret)),
                timeout=self._timeout,
            )
        except requests.RequestException as error:
            raise SetupError(f"cannot reach the issuer at {feed.url}: {error}") from None
        if response.status_code == 400 and after is not None:
            return None
        if response.status_code != 200:
            raise SetupError(f"cannot reach the issuer at {feed.url}: status {response.status_code}")
        try:
            return Page.parse(response.json())
        except ValueError as error:
            raise SetupError(f"unexpected answer from {feed.url}: {error}") from None

    def _sync_feed(self) -> Tuple[bool, float]:
        """Reads the feed, at most ``MAX_PAGES`` pages, and applies what it read; returns
        whether it reached the feed's end, and the seconds the issuer suggests waiting. An
        unknown cursor starts over from the beginning into a fresh state, which replaces the one
        in use only once the feed's end is reached, however many rounds that takes, so no
        revocation is forgotten in between. Only a round that reaches the end counts as a
        synchronisation.

        Each page moves its cursor together with the state it went into, so a page that fails
        leaves a position the next round goes on from, whether following or resynchronising."""
        feed = self._feed
        if feed is None:
            return True, 60.0
        with feed.lock:
            for _ in range(MAX_PAGES):
                if self._stop.is_set():
                    return False, 0.0
                page = self._read_page(feed, feed.position())
                if page is None:
                    logger.warning("the issuer does not know our feed cursor; resynchronising")
                    feed.start_over()
                    continue
                at_end = len(page.events) < PAGE or page.poll_after > 0
                if feed.fresh is not None:
                    for event in page.events:
                        feed.fresh.apply(event)
                    feed.fresh_cursor = page.next_cursor
                else:
                    with self._revocations_lock:
                        for event in page.events:
                            self._revocations.apply(event)
                    feed.cursor = page.next_cursor
                if not at_end:
                    continue
                fresh = feed.fresh
                if fresh is not None:
                    fresh.prune(int(time.time()), self._expect.leeway)
                    with self._revocations_lock:
                        self._revocations = fresh
                    feed.cursor, feed.fresh, feed.fresh_cursor = feed.fresh_cursor, None, None
                self._last_sync = time.monotonic()
                return True, float(page.poll_after)
            return False, 0.0

    def _round(self, state: "_LoopState") -> float:
        """One round of the background thread; returns how long to wait before the next."""
        if self._jwks.is_stale():
            try:
                self._jwks.refresh()
            except SetupError as error:
                logger.warning(
                    "refreshing the issuer's key set failed; keeping the cached one: %s", error
                )
        half_bound = self._bound / 2
        wait = half_bound
        if self._feed is not None:
            try:
                _, suggested = self._sync_feed()
            except SetupError as error:
                if not state.failing:
                    logger.warning("reading the revocation feed failed; retrying: %s", error)
                    state.failing = True
                wait = min(1.0, half_bound)
            else:
                if state.failing:
                    logger.info("the revocation feed is reachable again")
                    state.failing = False
                wait = min(suggested, half_bound)
        if time.monotonic() - state.pruned >= PRUNE_EVERY:
            with self._revocations_lock:
                self._revocations.prune(int(time.time()), self._expect.leeway)
            state.pruned = time.monotonic()
        until_stale = max(0.0, self._jwks.stale_at - time.monotonic())
        return max(min(wait, until_stale), MIN_WAIT)


class _LoopState:
    def __init__(self) -> None:
        self.failing = False
        self.pruned = time.monotonic()


def _run(verifier: "weakref.ref[Verifier]", stop: threading.Event) -> None:
    """The background thread: keeps the key set fresh per its max-age and follows the feed,
    polling at least twice within the revocation bound. Holds the verifier only during a round,
    so that it ends when the verifier is closed or garbage-collected."""
    state = _LoopState()
    while not stop.is_set():
        this = verifier()
        if this is None:
            return
        try:
            wait = this._round(state)
        except Exception:  # never let the thread die: the next round tries again
            logger.exception("the latchkey-verify background round failed")
            wait = 1.0
        del this
        stop.wait(wait)
