//! The revocation feed as the embedded store reads it: events in sequence order.

use rusqlite::{Connection, params};

use super::sql::{Cached, DbResult, from_json, sql_limit};
use crate::domain::UnixTime;
use crate::store::{FeedPage, StoreError, StoreResult};

/// Events after sequence number `after`, at most `limit`, leaving out those expired before
/// `now`; `asked` is the cursor given, answered back when there is nothing newer.
pub(super) fn page(
    conn: &Connection,
    after: i64,
    asked: &str,
    limit: usize,
    now: UnixTime,
) -> StoreResult<FeedPage> {
    // A cursor past the highest sequence number ever handed out (a store that was replaced or
    // wiped) would make its follower skip the new events silently.
    if after > 0 {
        let highest: i64 = conn
            .query_row_cached(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence \
                 WHERE name = 'revocation_feed'), 0)",
                [],
                |row| row.get(0),
            )
            .db()?;
        if after > highest {
            return Err(StoreError::InvalidCursor);
        }
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, data FROM revocation_feed WHERE seq > ?1 AND expires_at >= ?2 \
             ORDER BY seq LIMIT ?3",
        )
        .db()?;
    let rows = stmt
        .query_map(params![after, now, sql_limit(limit)], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })
        .db()?;
    let mut events = Vec::new();
    for row in rows {
        let (seq, data) = row.db()?;
        events.push((seq.to_string(), from_json(&data)?));
    }
    let next_cursor = events
        .last()
        .map_or_else(|| asked.to_owned(), |(c, _)| c.clone());
    Ok(FeedPage {
        events,
        next_cursor,
    })
}
