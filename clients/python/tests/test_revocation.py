"""The revocation feed: a token the issuer revokes is refused here within 5 s, however it was
revoked, and what happens while the feed cannot be read."""

from __future__ import annotations

import io
import json
import threading
import time
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import requests
import urllib3
from requests.adapters import HTTPAdapter

from conftest import AUDIENCE, ISSUER, Issuer, env, eventually
from latchkey_verify import MAX_LEEWAY, InvalidToken, SetupError, Status, Verifier
from latchkey_verify._feed import PAGE

BOUND = 5.0


def refused_as_revoked(verifier: Verifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except InvalidToken as error:
        assert error.reason == "revoked", repr(error)
        assert (error.status, error.error) == (401, "invalid_token")
        return True
    return False


def test_a_revoked_access_token_is_refused_within_five_seconds(
    verifier: Verifier, issuer: Issuer
) -> None:
    token = issuer.user_token()
    assert verifier.verify(token)
    issuer.revoke(token)
    took = eventually(lambda: refused_as_revoked(verifier, token), BOUND, "refusing the revoked token")
    print(f"revoked access token refused after {took:.2f} s")
    assert verifier.verify(issuer.user_token()), "another token of the same user still passes"


def test_a_revoked_session_takes_its_access_tokens_with_it(verifier: Verifier, issuer: Issuer) -> None:
    login = issuer.login(env("TEST_LATCHKEY_USER"), env("TEST_LATCHKEY_PASSWORD"))
    access = str(login["access_token"])
    assert verifier.verify(access).session_id
    issuer.revoke(str(login["refresh_token"]))
    eventually(lambda: refused_as_revoked(verifier, access), BOUND, "refusing the session's token")


def test_a_change_of_roles_refuses_the_tokens_that_carry_the_old_roles(
    verifier: Verifier, issuer: Issuer
) -> None:
    old = str(issuer.login("dave", env("TEST_LATCHKEY_PASSWORD"))["access_token"])
    assert verifier.verify(old).roles == ("user",)
    issuer.set_roles("dave", ["user", "editor"])
    eventually(lambda: refused_as_revoked(verifier, old), BOUND, "refusing the old roles")
    new = str(issuer.login("dave", env("TEST_LATCHKEY_PASSWORD"))["access_token"])
    assert set(verifier.verify(new).roles) == {"user", "editor"}


def test_removing_a_client_refuses_every_token_issued_through_it(
    verifier: Verifier, issuer: Issuer
) -> None:
    registered = issuer.admin(
        "POST",
        "/clients",
        {
            "client_id": "kiosk",
            "public": False,
            "grants": ["client_credentials", "password"],
            "scopes": [],
            "audiences": [],
        },
    )
    auth = ("kiosk", str(registered["client_secret"]))
    own = str(issuer.token({"grant_type": "client_credentials"}, auth)["access_token"])
    users = issuer.token(
        {
            "grant_type": "password",
            "username": env("TEST_LATCHKEY_USER"),
            "password": env("TEST_LATCHKEY_PASSWORD"),
        },
        auth,
    )
    user_token = str(users["access_token"])
    assert not verifier.verify(own).is_user and verifier.verify(user_token).is_user
    issuer.admin("DELETE", "/clients/kiosk")
    eventually(lambda: refused_as_revoked(verifier, own), BOUND, "refusing the client's own token")
    eventually(lambda: refused_as_revoked(verifier, user_token), BOUND, "refusing a user's token")
    assert verifier.verify(issuer.user_token()), "tokens through other clients still pass"


def _exchanged_through(issuer: Issuer, first: str, second: str) -> str:
    """A user's token from client ``first`` (password grant), exchanged by ``second``."""
    credentials: dict[str, tuple[str, str]] = {}
    for client_id, grants in ((first, ["password"]), (second, ["token-exchange"])):
        registered = issuer.admin(
            "POST",
            "/clients",
            {
                "client_id": client_id,
                "public": False,
                "grants": grants,
                "scopes": [],
                "audiences": [],
            },
        )
        credentials[client_id] = (client_id, str(registered["client_secret"]))
    subject = issuer.token(
        {
            "grant_type": "password",
            "username": env("TEST_LATCHKEY_USER"),
            "password": env("TEST_LATCHKEY_PASSWORD"),
        },
        credentials[first],
    )
    exchanged = issuer.token(
        {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": str(subject["access_token"]),
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        },
        credentials[second],
    )
    return str(exchanged["access_token"])


@pytest.mark.parametrize("removed", ["front", "middle"])
def test_removing_any_client_an_exchanged_token_went_through_refuses_it(
    verifier: Verifier, issuer: Issuer, removed: str
) -> None:
    first, second = f"{removed}-start", f"{removed}-actor"
    token = _exchanged_through(issuer, first, second)
    verified = verifier.verify(token)
    assert verified.actor == second and verified.subject_client_id == first
    assert verified.clients == (second, second, first)
    gone = first if removed == "front" else second
    issuer.admin("DELETE", f"/clients/{gone}")
    eventually(lambda: refused_as_revoked(verifier, token), BOUND, f"refusing after {gone} left")
    assert verifier.verify(issuer.user_token()), "tokens through other clients still pass"


def test_without_feed_credentials_a_revoked_token_passes_until_it_expires(
    verifier: Verifier, issuer: Issuer
) -> None:
    token = issuer.user_token()
    with Verifier(ISSUER, AUDIENCE) as blind:
        issuer.revoke(token)
        eventually(lambda: refused_as_revoked(verifier, token), BOUND, "the feed's refusal")
        assert blind.verify(token).subject == env("TEST_LATCHKEY_USER")
        assert blind.status().since_last_sync is None


class Partition(HTTPAdapter):
    """A network between the verifier and the issuer that can be cut: not a stand-in for the
    issuer, which keeps answering whoever else asks."""

    def __init__(self) -> None:
        super().__init__()
        self.cut = threading.Event()

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if self.cut.is_set():
            raise requests.ConnectionError("the network to the issuer is cut")
        return super().send(request, *args, **kwargs)


def partitioned_session() -> tuple[requests.Session, Partition]:
    session = requests.Session()
    partition = Partition()
    session.mount("http://", partition)
    return session, partition


class FeedStub(HTTPAdapter):
    """The issuer's revocation feed played by the test, everything else (discovery, keys) left
    to the live issuer: a feed read from its start gets a full first page holding the revoked
    ``jti``, whose second page fails once with 503. Until :meth:`resync` is called the feed is
    empty; then the issuer forgets the cursor it gave (400), so the verifier has to start over."""

    def __init__(self, feed_path: str, revoked_jti: str) -> None:
        super().__init__()
        self.feed_path = feed_path
        self.revoked_jti = revoked_jti
        self.lock = threading.Lock()
        #: The ``after`` of every read of the feed, in order (``None``: from the start).
        self.reads: List[Optional[str]] = []
        self.forgotten = False
        self.failed_once = False

    def resync(self) -> None:
        with self.lock:
            self.forgotten = True

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        url = urlsplit(str(request.url))
        if url.path != self.feed_path:
            return super().send(request, *args, **kwargs)
        after = parse_qs(url.query).get("after", [None])[0]
        with self.lock:
            self.reads.append(after)
            status, body = self.answer(after)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(json.dumps(body).encode()),
            status=status,
            headers={"Content-Type": "application/json"},
            preload_content=False,
        )
        return self.build_response(request, raw)

    def answer(self, after: Optional[str]) -> tuple[int, Dict[str, Any]]:
        empty_tail = {"events": [], "next_cursor": "tail", "poll_after": 1}
        if not self.forgotten:
            return 200, dict(empty_tail, next_cursor="forgotten")
        if after is None:
            exp = int(time.time()) + 600
            events = [{"type": "token", "jti": self.revoked_jti, "exp": exp}] + [
                {"type": "token", "jti": f"filler-{n}", "exp": exp} for n in range(PAGE - 1)
            ]
            return 200, {"events": events, "next_cursor": "second-page", "poll_after": 0}
        if after == "second-page":
            if not self.failed_once:
                self.failed_once = True
                return 503, {"error": "temporarily_unavailable"}
            return 200, empty_tail
        if after == "tail":
            return 200, empty_tail
        return 400, {"error": "invalid_request"}


def test_a_resync_that_fails_after_its_first_page_goes_on_and_loses_no_revocation(
    issuer: Issuer,
) -> None:
    token = issuer.user_token()
    stub = FeedStub(feed_path(issuer), jti(token))
    session = through(stub)
    with feed(session=session, revocation_bound=1.0) as verifier:
        assert verifier.verify(token)
        stub.resync()
        eventually(lambda: stub.failed_once, BOUND, "the second page of the resync failing")
        eventually(lambda: refused_as_revoked(verifier, token), BOUND, "refusing the revoked token")
        assert verifier.status().revoked[0] == PAGE, "the first page's revocations are all held"
        with stub.lock:
            reads = list(stub.reads)
        failed = reads.index("second-page")
        assert reads[failed + 1] == "second-page", f"after the failure the resync goes on: {reads}"


class LongFeed(FeedStub):
    """A feed that takes the verifier several rounds to read once pages hold two events and a
    round reads two pages (see :func:`short_rounds`): four fillers, then the revoked ``jti``
    alone on the last page. The read after the fourth event fails once. Until :meth:`resync`
    the feed holds one other revocation, of ``old_jti``."""

    def __init__(self, feed_path: str, revoked_jti: str, old_jti: str) -> None:
        super().__init__(feed_path, revoked_jti)
        self.old_jti = old_jti
        #: The thread that read the feed's last page first.
        self.read_to_the_end_by: Optional[str] = None
        #: When the feed was first read from its start after :meth:`resync` (monotonic).
        self.resync_started: Optional[float] = None

    def answer(self, after: Optional[str]) -> tuple[int, Dict[str, Any]]:
        exp = int(time.time()) + 600
        if not self.forgotten:
            if after is None:
                events = [{"type": "token", "jti": self.old_jti, "exp": exp}]
                return 200, {"events": events, "next_cursor": "old", "poll_after": 1}
            return 200, {"events": [], "next_cursor": "old", "poll_after": 1}
        jtis = [f"filler-{n}" for n in range(4)] + [self.revoked_jti]
        start = 0 if after is None else int(after) if after.isdigit() else -1
        if start == 0 and self.resync_started is None:
            self.resync_started = time.monotonic()
        if start < 0:
            return 400, {"error": "invalid_request"}
        if start == 4 and not self.failed_once:
            self.failed_once = True
            return 503, {"error": "temporarily_unavailable"}
        page = [{"type": "token", "jti": jti, "exp": exp} for jti in jtis[start : start + 2]]
        end = start + len(page)
        if end == 5 and self.read_to_the_end_by is None:
            self.read_to_the_end_by = threading.current_thread().name
        return 200, {"events": page, "next_cursor": str(end), "poll_after": 0 if end < 5 else 1}


@pytest.fixture
def short_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two events per page, two pages per round."""
    import latchkey_verify._verifier as verifier_module

    monkeypatch.setattr(verifier_module, "PAGE", 2)
    monkeypatch.setattr(verifier_module, "MAX_PAGES", 2)


def jti(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["jti"])


def feed_path(issuer: Issuer) -> str:
    metadata = issuer.http.get(f"{ISSUER}/.well-known/oauth-authorization-server", timeout=10).json()
    return urlsplit(metadata["revocation_feed_endpoint"]).path


def through(stub: FeedStub) -> requests.Session:
    """A session whose feed reads the stub answers."""
    session = requests.Session()
    session.mount("http://", stub)
    return session


def long_feed(issuer: Issuer, revoked: str, old: str) -> tuple[LongFeed, requests.Session]:
    stub = LongFeed(feed_path(issuer), jti(revoked), jti(old))
    return stub, through(stub)


def test_a_verifier_starts_knowing_every_revocation_of_a_feed_longer_than_one_round(
    issuer: Issuer, short_rounds: None
) -> None:
    token = issuer.user_token()
    stub, session = long_feed(issuer, token, issuer.user_token())
    stub.resync()
    stub.failed_once = True
    with feed(session=session) as verifier:
        assert stub.read_to_the_end_by == "latchkey-verify-setup", "not the constructor's set-up"
        assert verifier.status().revoked == (5, 0, 0)
        assert refused_as_revoked(verifier, token)


def test_a_resync_longer_than_one_round_keeps_the_previous_revocations_until_the_feed_is_read(
    issuer: Issuer, short_rounds: None
) -> None:
    token, before = issuer.user_token(), issuer.user_token()
    stub, session = long_feed(issuer, token, before)
    with feed(session=session, revocation_bound=4.0) as verifier:
        assert refused_as_revoked(verifier, before)
        stub.resync()
        # The failed read holds the next round back for a second: the state in use is still
        # the previous one, whole.
        eventually(lambda: stub.failed_once, BOUND, "the resync's third page failing")
        now = time.monotonic()
        status = verifier.status()
        assert status.revoked == (1, 0, 0), "a partial state was swapped in"
        assert refused_as_revoked(verifier, before)
        with stub.lock:
            started = stub.resync_started
        assert_no_sync_since(status, now, started)
        eventually(lambda: refused_as_revoked(verifier, token), BOUND, "refusing the revoked token")
        status = verifier.status()
        assert status.revoked == (5, 0, 0)
        assert (status.since_last_sync or 0) < time.monotonic() - started, "the resync is a sync"
        assert verifier.verify(before)
        with stub.lock:
            reads = list(stub.reads)
        failed = reads.index("4")
        assert reads[failed + 1] == "4", f"after the failure the resync goes on: {reads}"


def assert_no_sync_since(status: Status, asked_at: float, started: Optional[float]) -> None:
    """``status``, asked at ``asked_at``, counts no synchronisation since ``started``."""
    assert started is not None
    assert (status.since_last_sync or 0) >= asked_at - started, (
        "a round that did not reach the feed's end was counted as a synchronisation"
    )


class GrowingFeed(FeedStub):
    """A feed followed from its end: empty until :meth:`publish`, then five revocations at once,
    more than one round reads (see :func:`short_rounds`): four fillers, then the revoked ``jti``
    alone on the last page. The read after the fourth event fails once."""

    def __init__(self, feed_path: str, revoked_jti: str) -> None:
        super().__init__(feed_path, revoked_jti)
        self.published = False
        #: When the first published page was read (monotonic).
        self.first_published_read: Optional[float] = None

    def publish(self) -> None:
        with self.lock:
            self.published = True

    def answer(self, after: Optional[str]) -> tuple[int, Dict[str, Any]]:
        if not self.published:
            return 200, {"events": [], "next_cursor": "0", "poll_after": 1}
        start = 0 if after is None else int(after)
        if start == 0 and self.first_published_read is None:
            self.first_published_read = time.monotonic()
        if start == 4 and not self.failed_once:
            self.failed_once = True
            return 503, {"error": "temporarily_unavailable"}
        exp = int(time.time()) + 600
        jtis = [f"filler-{n}" for n in range(4)] + [self.revoked_jti]
        page = [{"type": "token", "jti": jti, "exp": exp} for jti in jtis[start : start + 2]]
        end = start + len(page)
        return 200, {"events": page, "next_cursor": str(end), "poll_after": 0 if end < 5 else 1}


def test_a_round_that_stops_before_the_feeds_end_applies_what_it_read_but_is_no_sync(
    issuer: Issuer, short_rounds: None
) -> None:
    token = issuer.user_token()
    stub = GrowingFeed(feed_path(issuer), jti(token))
    with feed(session=through(stub), revocation_bound=4.0) as verifier:
        assert verifier.verify(token)
        stub.publish()
        eventually(lambda: stub.failed_once, BOUND, "the read after the fourth revocation failing")
        now = time.monotonic()
        status = verifier.status()
        assert status.revoked == (4, 0, 0), "the pages read are in effect"
        with stub.lock:
            started = stub.first_published_read
        assert_no_sync_since(status, now, started)
        eventually(lambda: refused_as_revoked(verifier, token), BOUND, "refusing the revoked token")
        status = verifier.status()
        assert status.revoked == (5, 0, 0)
        assert (status.since_last_sync or 0) < time.monotonic() - started, "the end is a sync"
        with stub.lock:
            reads = list(stub.reads)
        assert reads.count(None) == 1, f"the feed is not read from its start again: {reads}"
        failed = reads.index("4")
        assert reads[failed + 1] == "4", f"after the failure the reading goes on: {reads}"


def test_a_leeway_longer_than_the_issuer_keeps_revocations_past_expiry_is_refused(
    issuer: Issuer,
) -> None:
    for leeway in (MAX_LEEWAY + 1, -1):
        with pytest.raises(SetupError, match="between 0 and 300 s"):
            Verifier(ISSUER, AUDIENCE, leeway=leeway)
    with Verifier(ISSUER, AUDIENCE, leeway=MAX_LEEWAY) as verifier:
        assert verifier.verify(issuer.user_token())


def feed(**options: Any) -> Verifier:
    return Verifier(
        ISSUER,
        AUDIENCE,
        feed_client_id=env("TEST_LATCHKEY_FEED_CLIENT_ID"),
        feed_client_secret=env("TEST_LATCHKEY_FEED_CLIENT_SECRET"),
        **options,
    )


def test_while_the_feed_is_unreachable_tokens_keep_verifying_by_default(issuer: Issuer) -> None:
    session, partition = partitioned_session()
    with feed(session=session, revocation_bound=1.0) as verifier:
        token = issuer.user_token()
        partition.cut.set()
        eventually(
            lambda: (verifier.status().since_last_sync or 0) > 1.5, 5, "the feed going stale"
        )
        assert verifier.verify(token).subject == env("TEST_LATCHKEY_USER")


def test_failing_closed_answers_503_once_the_feed_is_staler_than_the_bound_and_recovers(
    issuer: Issuer,
) -> None:
    session, partition = partitioned_session()
    with feed(session=session, revocation_bound=1.0, when_unreachable="fail_closed") as verifier:
        token = issuer.user_token()
        assert verifier.verify(token)
        partition.cut.set()

        def unavailable() -> bool:
            try:
                verifier.verify(token)
            except InvalidToken as error:
                assert (error.status, error.error) == (503, "temporarily_unavailable")
                assert error.headers()["Retry-After"] == "5"
                return True
            return False

        eventually(unavailable, 5, "failing closed")
        partition.cut.clear()
        eventually(lambda: not unavailable(), 5, "recovering once the feed answers again")


class EndlessFeed(FeedStub):
    """A feed that always has another full page."""

    def answer(self, after: Optional[str]) -> tuple[int, Dict[str, Any]]:
        start = int(after or 0)
        exp = int(time.time()) + 600
        events = [{"type": "token", "jti": f"endless-{n}", "exp": exp} for n in range(start, start + PAGE)]
        return 200, {"events": events, "next_cursor": str(start + PAGE), "poll_after": 0}


def setting_up() -> bool:
    return any(thread.name == "latchkey-verify-setup" for thread in threading.enumerate())


def test_a_feed_without_end_stops_the_constructor_at_its_setup_timeout_and_the_reading_with_it(
    issuer: Issuer,
) -> None:
    stub = EndlessFeed(feed_path(issuer), "none")
    with pytest.raises(SetupError, match="not ready within 1.0 s"):
        feed(session=through(stub), setup_timeout=1.0)
    assert len(stub.reads) > 1, "the feed was being read"
    eventually(lambda: not setting_up(), 5, "the set-up giving up its reading")


def test_close_stops_the_background_thread() -> None:
    verifier = feed()
    thread = verifier._thread
    assert thread.is_alive()
    verifier.close()
    assert not thread.is_alive()


def test_a_wrong_feed_secret_stops_the_verifier_from_starting() -> None:
    from latchkey_verify import SetupError

    with pytest.raises(SetupError, match="status 401"):
        Verifier(ISSUER, AUDIENCE, feed_client_id=env("TEST_LATCHKEY_FEED_CLIENT_ID"), feed_client_secret="nope")
