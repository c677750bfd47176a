"""The issuer's key set, cached per its ``Cache-Control: max-age`` and refetched early when a
token names a ``kid`` the cache does not know: at most once per interval, with every
concurrent miss waiting for that one fetch, so a flood of forged kids never becomes a flood of
requests to the issuer."""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict, Mapping, Optional

import requests

from ._errors import SetupError
from ._keys import VerifyKey, parse_key_set

logger = logging.getLogger("latchkey_verify")

#: Used when the key set names no ``max-age``.
DEFAULT_MAX_AGE = 300.0
#: Bounds on the honoured ``max-age``: fetching more often is pointless, less often risks
#: missing a rotation for too long.
MIN_MAX_AGE = 1.0
MAX_MAX_AGE = 3600.0


def max_age(header: Optional[str]) -> float:
    """``max-age`` of a ``Cache-Control`` header, within bounds; ``no-cache``/``no-store``
    mean the shortest."""
    if header is None:
        return DEFAULT_MAX_AGE
    age: Optional[float] = None
    for directive in (d.strip().lower() for d in header.split(",")):
        if directive in ("no-cache", "no-store"):
            return MIN_MAX_AGE
        if directive.startswith("max-age="):
            try:
                age = float(int(directive[len("max-age=") :].strip('"')))
            except ValueError:
                age = None
    if age is None:
        return DEFAULT_MAX_AGE
    return min(max(age, MIN_MAX_AGE), MAX_MAX_AGE)


class JwksCache:
    """The key set as last fetched. Reads take no lock (the mapping is swapped whole)."""

    def __init__(
        self, url: str, session: requests.Session, min_refetch: float, timeout: float
    ) -> None:
        self.url = url
        self._session = session
        self._timeout = timeout
        self._min_refetch = min_refetch
        self.keys: Mapping[str, VerifyKey] = {}
        self.stale_at = time.monotonic()
        self._etag: Optional[str] = None
        #: One fetch at a time (the session is not shared across threads otherwise).
        self._fetch_lock = threading.Lock()
        #: What concurrent unknown-kid misses share, and when the last such refetch ran.
        self._miss_lock = threading.Lock()
        self._last_miss: Optional[float] = None
        self.fetches = 0

    def is_stale(self) -> bool:
        return time.monotonic() >= self.stale_at

    def refresh(self) -> None:
        """Fetches the key set (conditionally, with the last ``ETag``) and swaps it in."""
        with self._fetch_lock:
            self.fetches += 1
            headers: Dict[str, str] = {}
            if self._etag is not None:
                headers["If-None-Match"] = self._etag
            try:
                response = self._session.get(self.url, headers=headers, timeout=self._timeout)
            except requests.RequestException as error:
                raise SetupError(f"cannot reach the issuer at {self.url}: {error}") from None
            stale_at = time.monotonic() + max_age(response.headers.get("Cache-Control"))
            if response.status_code == 304 and self._etag is not None:
                self.stale_at = stale_at  # the same keys, fresh again
                return
            if response.status_code != 200:
                raise SetupError(
                    f"cannot reach the issuer at {self.url}: status {response.status_code}"
                )
            try:
                keys = parse_key_set(response.content)
            except ValueError as error:
                raise SetupError(f"unexpected answer from {self.url}: {error}") from None
            logger.debug("fetched the issuer's key set: %d keys", len(keys))
            self.keys = keys
            self._etag = response.headers.get("ETag")
            self.stale_at = stale_at

    def refresh_for_unknown(self, kid: str) -> bool:
        """Called when a token names ``kid`` and the cache lacks it: refetches unless a fetch
        for a miss ran within the minimum interval, and reports whether ``kid`` is known now.
        Concurrent callers wait for one fetch and share its result."""
        with self._miss_lock:
            if kid in self.keys:
                return True
            now = time.monotonic()
            if self._last_miss is not None and now - self._last_miss < self._min_refetch:
                return False
            self._last_miss = now
            try:
                self.refresh()
            except SetupError as error:
                logger.warning("refetching the issuer's key set for an unknown kid failed: %s", error)
            return kid in self.keys
