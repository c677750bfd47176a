//! Talking to the issuer: discovery (RFC 8414), and the background task that keeps the key set
//! fresh and follows the revocation feed.

use std::sync::Weak;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::revocation::{FeedPage, Revocations};
use crate::{Inner, SetupError, unix_now};

/// Events asked for per page of the feed.
pub(crate) const PAGE: usize = 1000;
/// Pages read in one round at most; the rest waits for the next round.
pub(crate) const MAX_PAGES: usize = 1000;
/// The shortest wait between two rounds.
const MIN_WAIT: Duration = Duration::from_millis(100);
/// How often expired revocations are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// The parts of the issuer's metadata the verifier uses.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    /// A Latchkey extension.
    #[serde(default)]
    pub revocation_feed_endpoint: Option<String>,
}

/// Fetches `{issuer}/.well-known/oauth-authorization-server`; its `issuer` must be ours
/// exactly (RFC 8414 §3.3), or a look-alike could hand out its own keys.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Metadata, SetupError> {
    let url = format!("{issuer}/.well-known/oauth-authorization-server");
    let unreachable = |reason: String| SetupError::Unreachable {
        url: url.clone(),
        reason,
    };
    let response = http
        .get(&url)
        .send()
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if !response.status().is_success() {
        return Err(unreachable(format!("status {}", response.status())));
    }
    let metadata: Metadata = response.json().await.map_err(|e| SetupError::Protocol {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if metadata.issuer != issuer {
        return Err(SetupError::Protocol {
            url,
            reason: format!("the metadata names the issuer {:?}", metadata.issuer),
        });
    }
    Ok(metadata)
}

/// The feed endpoint, its client, and where the last read stopped.
pub struct Feed {
    url: String,
    client_id: String,
    secret: String,
    paging: Paging,
    position: Mutex<Position>,
}

/// Events per page, and pages per round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paging {
    pub page: usize,
    pub max_pages: usize,
}

/// Where the next round reads from, and into which state.
enum Position {
    /// Following the feed: the cursor after the last event applied to the live state.
    Following(String),
    /// Reading the feed from its beginning into a fresh state, which replaces the live one only
    /// once the feed's end is reached: a partial state would forget the revocations on the
    /// pages not yet read. Until then the live state keeps serving.
    Resync {
        state: Revocations,
        cursor: Option<String>,
    },
}

impl Position {
    fn start_over() -> Position {
        Position::Resync {
            state: Revocations::default(),
            cursor: None,
        }
    }

    fn cursor(&self) -> Option<&str> {
        match self {
            Position::Following(cursor) => Some(cursor),
            Position::Resync { cursor, .. } => cursor.as_deref(),
        }
    }
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Feed {
    pub fn new(url: String, client_id: String, secret: String, paging: Paging) -> Feed {
        Feed {
            url,
            client_id,
            secret,
            paging,
            position: Mutex::new(Position::start_over()),
        }
    }
}

/// What one round of reading the feed achieved.
pub(crate) struct Round {
    /// The feed was read to its end.
    pub caught_up: bool,
    /// How long the issuer suggests waiting before the next round.
    pub poll_after: Duration,
}

/// The answer to one page request.
enum PageAnswer {
    Page(FeedPage),
    /// The issuer does not know the cursor: start over.
    UnknownCursor,
}

impl Inner {
    async fn read_page(&self, feed: &Feed, after: Option<&str>) -> Result<PageAnswer, SetupError> {
        let mut url = format!("{}?limit={}", feed.url, feed.paging.page);
        if let Some(cursor) = after {
            url.push_str("&after=");
            url.push_str(&percent_encode(cursor));
        }
        let fail = |reason: String| SetupError::Unreachable {
            url: feed.url.clone(),
            reason,
        };
        let response = self
            .http
            .get(&url)
            .basic_auth(
                percent_encode(&feed.client_id),
                Some(percent_encode(&feed.secret)),
            )
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        match response.status() {
            StatusCode::OK => response
                .json::<FeedPage>()
                .await
                .map(PageAnswer::Page)
                .map_err(|e| SetupError::Protocol {
                    url: feed.url.clone(),
                    reason: e.to_string(),
                }),
            StatusCode::BAD_REQUEST if after.is_some() => Ok(PageAnswer::UnknownCursor),
            status => Err(fail(format!("status {status}"))),
        }
    }

    /// Reads the feed, at most `max_pages` pages, and applies what it read. An unknown cursor
    /// starts over from the beginning into a fresh state, swapped in whole once the feed's end
    /// is reached, so no revocation is forgotten in between. Only a round that reaches the end
    /// counts as a synchronisation.
    pub(crate) async fn sync_feed(&self) -> Result<Round, SetupError> {
        let Some(feed) = &self.feed else {
            return Ok(Round {
                caught_up: true,
                poll_after: Duration::from_secs(60),
            });
        };
        // Each page moves its cursor together with the state it went into, so a page that
        // fails leaves a position the next round can go on from, whether following or
        // resynchronising.
        let mut position = feed.position.lock().await;
        for _ in 0..feed.paging.max_pages {
            let page = match self.read_page(feed, position.cursor()).await? {
                PageAnswer::Page(page) => page,
                PageAnswer::UnknownCursor => {
                    tracing::warn!("the issuer does not know our feed cursor; resynchronising");
                    *position = Position::start_over();
                    continue;
                }
            };
            let at_end = page.events.len() < feed.paging.page || page.poll_after > 0;
            let next = page.next_cursor;
            match &mut *position {
                Position::Following(cursor) => {
                    let mut live = self.revocations.write().map_err(|_| poisoned())?;
                    page.events.into_iter().for_each(|e| live.apply(e));
                    *cursor = next;
                }
                Position::Resync { state, cursor } if !at_end => {
                    page.events.into_iter().for_each(|e| state.apply(e));
                    *cursor = Some(next);
                }
                // The feed's end: the fresh state, whole, replaces the live one.
                Position::Resync { state, .. } => {
                    let mut live = self.revocations.write().map_err(|_| poisoned())?;
                    let mut state = std::mem::take(state);
                    page.events.into_iter().for_each(|e| state.apply(e));
                    state.prune(unix_now(), self.expect.leeway);
                    *live = state;
                    drop(live);
                    *position = Position::Following(next);
                }
            }
            if at_end {
                if let Ok(mut last) = self.last_sync.lock() {
                    *last = Some(Instant::now());
                }
                return Ok(Round {
                    caught_up: true,
                    poll_after: Duration::from_secs(page.poll_after),
                });
            }
        }
        Ok(Round {
            caught_up: false,
            poll_after: Duration::ZERO,
        })
    }
}

fn poisoned() -> SetupError {
    SetupError::Config("the revocation state's lock is poisoned".into())
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The background task: keeps the key set fresh per its max-age and follows the feed, polling
/// at least twice within the revocation bound. Ends when the verifier is dropped.
pub async fn run(inner: Weak<Inner>) {
    let mut failing = false;
    let mut pruned = Instant::now();
    loop {
        let Some(this) = inner.upgrade() else { return };
        if this.jwks.is_stale()
            && let Err(error) = this.jwks.refresh().await
        {
            tracing::warn!(%error, "refreshing the issuer's key set failed; keeping the cached one");
        }
        let half_bound = this.bound / 2;
        let mut wait = half_bound;
        if this.feed.is_some() {
            match this.sync_feed().await {
                Ok(round) => {
                    if failing {
                        tracing::info!("the revocation feed is reachable again");
                        failing = false;
                    }
                    wait = round.poll_after.min(half_bound);
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "reading the revocation feed failed; retrying");
                        failing = true;
                    }
                    wait = Duration::from_secs(1).min(half_bound);
                }
            }
        }
        if pruned.elapsed() >= PRUNE_EVERY {
            if let Ok(mut state) = this.revocations.write() {
                state.prune(unix_now(), this.expect.leeway);
            }
            pruned = Instant::now();
        }
        let until_stale = this
            .jwks
            .current()
            .stale_at
            .saturating_duration_since(Instant::now());
        drop(this);
        tokio::time::sleep(wait.min(until_stale).max(MIN_WAIT)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_credentials_are_percent_encoded() {
        assert_eq!(percent_encode("1700000000000-0"), "1700000000000-0");
        assert_eq!(percent_encode("a b:c/é"), "a%20b%3Ac%2F%C3%A9");
    }
}
