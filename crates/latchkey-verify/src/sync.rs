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
const PAGE: usize = 1000;
/// Pages read in one synchronisation at most; the rest waits for the next round.
const MAX_PAGES: usize = 1000;
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
    cursor: Mutex<Option<String>>,
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
    pub fn new(url: String, client_id: String, secret: String) -> Feed {
        Feed {
            url,
            client_id,
            secret,
            cursor: Mutex::new(None),
        }
    }
}

/// The answer to one page request.
enum PageAnswer {
    Page(FeedPage),
    /// The issuer does not know the cursor: start over.
    UnknownCursor,
}

impl Inner {
    async fn read_page(&self, feed: &Feed, after: Option<&str>) -> Result<PageAnswer, SetupError> {
        let mut url = format!("{}?limit={PAGE}", feed.url);
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

    /// Reads the feed to its end and applies it; returns the seconds the issuer suggests
    /// waiting. An unknown cursor starts over from the beginning into a fresh state, swapped
    /// in whole once read, so no revocation is forgotten in between.
    pub(crate) async fn sync_feed(&self) -> Result<Duration, SetupError> {
        let Some(feed) = &self.feed else {
            return Ok(Duration::from_secs(60));
        };
        // The cursor kept for the next round moves only with the state it describes: during a
        // resync, not before the fresh state is swapped in. A page that fails halfway through
        // a resync leaves no cursor, so the next round starts over instead of going on from a
        // point whose earlier events were never applied.
        let mut kept = feed.cursor.lock().await;
        let mut position = kept.clone();
        let mut fresh: Option<Revocations> = position.is_none().then(Revocations::default);
        let mut poll_after = 0;
        for _ in 0..MAX_PAGES {
            let page = match self.read_page(feed, position.as_deref()).await? {
                PageAnswer::Page(page) => page,
                PageAnswer::UnknownCursor => {
                    tracing::warn!("the issuer does not know our feed cursor; resynchronising");
                    position = None;
                    *kept = None;
                    fresh = Some(Revocations::default());
                    continue;
                }
            };
            let count = page.events.len();
            position = Some(page.next_cursor);
            match fresh.as_mut() {
                Some(state) => page.events.into_iter().for_each(|e| state.apply(e)),
                None => {
                    let mut state = self.revocations.write().map_err(|_| poisoned())?;
                    page.events.into_iter().for_each(|e| state.apply(e));
                    kept.clone_from(&position);
                }
            }
            poll_after = page.poll_after;
            if count < PAGE || page.poll_after > 0 {
                break;
            }
        }
        if let Some(mut state) = fresh {
            state.prune(unix_now(), self.expect.leeway);
            *self.revocations.write().map_err(|_| poisoned())? = state;
            *kept = position;
        }
        if let Ok(mut last) = self.last_sync.lock() {
            *last = Some(Instant::now());
        }
        Ok(Duration::from_secs(poll_after))
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
                Ok(suggested) => {
                    if failing {
                        tracing::info!("the revocation feed is reachable again");
                        failing = false;
                    }
                    wait = suggested.min(half_bound);
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
