//! The revocation feed that resource servers follow (`GET /oauth/revocations`), so that they
//! can refuse revoked access tokens without asking the issuer on every request.
//!
//! The store keeps the events and drops each one once no token it concerns can still be live;
//! this layer checks the caller, bounds the page and tells the follower when to ask again.

use super::Authority;
use crate::domain::UnixTime;
use crate::error::ServiceError;
use crate::store::{ClientRecord, RevocationEvent, StoreError};

/// Events per page when the caller names no limit.
pub const DEFAULT_FEED_LIMIT: usize = 500;
/// The most events one page holds.
pub const MAX_FEED_LIMIT: usize = 1000;
/// Seconds a follower that has caught up should wait before asking again. Followers with a
/// tighter revocation bound of their own may ask sooner.
pub const FEED_POLL_AFTER: u64 = 2;

/// One page of the feed, as the follower gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedAnswer {
    /// Events after the cursor asked with, oldest first, each with its own cursor.
    pub events: Vec<(String, RevocationEvent)>,
    /// The cursor to ask with next.
    pub next_cursor: String,
    /// Seconds to wait before asking again: 0 when the page was full and more are waiting.
    pub poll_after: u64,
}

impl Authority {
    /// Revocation events after `after` (from the start when `None` or empty), at most `limit`.
    /// Only confidential clients may follow the feed: a public client has nothing to prove who
    /// it is with. An unknown cursor is `invalid_request`; the follower then starts over.
    pub async fn revocation_feed(
        &self,
        client: &ClientRecord,
        after: Option<&str>,
        limit: Option<u64>,
        now: UnixTime,
    ) -> Result<FeedAnswer, ServiceError> {
        if client.is_public() {
            return Err(ServiceError::InvalidClient(
                "the revocation feed is for confidential clients".into(),
            ));
        }
        let limit = match limit {
            None => DEFAULT_FEED_LIMIT,
            Some(0) => {
                return Err(ServiceError::InvalidRequest(
                    "limit must be at least 1".into(),
                ));
            }
            Some(n) => usize::try_from(n)
                .unwrap_or(MAX_FEED_LIMIT)
                .min(MAX_FEED_LIMIT),
        };
        let after = after.filter(|a| !a.is_empty());
        let page = self
            .store
            .revocations_after(after, limit, now)
            .await
            .map_err(|error| match error {
                StoreError::InvalidCursor => ServiceError::InvalidRequest(
                    "unknown cursor: this feed never handed it out (the store may have been \
                     replaced); resync by asking again without `after`"
                        .into(),
                ),
                other => other.into(),
            })?;
        let poll_after = if page.events.len() >= limit {
            0
        } else {
            FEED_POLL_AFTER
        };
        Ok(FeedAnswer {
            events: page.events,
            next_cursor: page.next_cursor,
            poll_after,
        })
    }
}
