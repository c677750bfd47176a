//! Attempt counters and single-use markers in the embedded store. Reservations run the pure
//! decision of [`crate::store::attempts::reserve`] inside the write transaction, so a check and
//! its count are one step.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::sql::{Cached, DbResult, non_negative};
use crate::domain::UnixTime;
use crate::store::StoreResult;
use crate::store::attempts::{self, AttemptRule, AttemptState, Reservation};

/// Counts one failure in a window of `window_secs` from the first; the count and the seconds
/// left in the window.
pub(super) fn record_failure(
    conn: &Connection,
    key: &str,
    window_secs: u64,
    now: UnixTime,
) -> StoreResult<(u64, u64)> {
    let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
    // One statement, so atomic: a window that has ended starts over at this failure.
    let (count, ends): (i64, i64) = conn
        .query_row_cached(
            "INSERT INTO login_failures (key, count, window_ends) VALUES (?1, 1, ?3) \
             ON CONFLICT (key) DO UPDATE SET \
             count = CASE WHEN window_ends > ?2 THEN count + 1 ELSE 1 END, \
             window_ends = CASE WHEN window_ends > ?2 THEN window_ends ELSE ?3 END \
             RETURNING count, window_ends",
            params![key, now, now.saturating_add(window)],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .db()?;
    Ok((non_negative(count), non_negative(ends - now)))
}

pub(super) fn clear(conn: &Connection, key: &str) -> StoreResult<()> {
    conn.execute_cached("DELETE FROM login_failures WHERE key = ?1", [key])
        .db()?;
    Ok(())
}

pub(super) fn reserve(
    tx: &Transaction<'_>,
    key: &str,
    rule: &AttemptRule,
    now: UnixTime,
) -> StoreResult<Reservation> {
    let stored: Option<(i64, i64, i64)> = tx
        .query_row_cached(
            "SELECT count, window_ends, last_at FROM login_failures WHERE key = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .db()?;
    let state = stored.map(|(count, window_ends, last)| AttemptState {
        count: count.max(0).unsigned_abs(),
        window_ends,
        last,
    });
    let (decision, next) = attempts::reserve(rule, state, now);
    if let Some(next) = next {
        tx.execute_cached(
            "INSERT INTO login_failures (key, count, window_ends, last_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE SET \
             count = excluded.count, window_ends = excluded.window_ends, \
             last_at = excluded.last_at",
            params![
                key,
                i64::try_from(next.count).unwrap_or(i64::MAX),
                next.window_ends,
                next.last
            ],
        )
        .db()?;
    }
    Ok(decision)
}

pub(super) fn release(tx: &Transaction<'_>, key: &str) -> StoreResult<()> {
    tx.execute_cached(
        "UPDATE login_failures SET count = max(count - 1, 0) WHERE key = ?1",
        [key],
    )
    .db()?;
    Ok(())
}

pub(super) fn use_once(
    tx: &Transaction<'_>,
    key: &str,
    expires_at: UnixTime,
    now: UnixTime,
) -> StoreResult<bool> {
    // One statement: a new key is inserted, an expired one taken over, a live one left alone
    // (no row changed).
    let changed = tx
        .execute_cached(
            "INSERT INTO used_once (key, expires_at) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at \
             WHERE used_once.expires_at < ?3",
            params![key, expires_at, now],
        )
        .db()?;
    Ok(changed == 1)
}
