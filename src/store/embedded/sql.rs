//! SQL helpers, error mapping, and the bodies of the operations that read and then write
//! inside one transaction.

use rusqlite::{Connection, ErrorCode, OptionalExtension, Transaction, ffi, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::UnixTime;
use crate::store::{
    CutOffReach, Family, RevocationEvent, Rotation, RotationOutcome, StoreError, StoreResult,
    Subject, SubjectKind, TokenLifetimes, next_not_before,
};

/// Maps SQLite failures onto the store's errors: lock contention past the busy timeout and I/O
/// trouble are `Unavailable` (retry later), everything else is `Internal`.
pub(super) fn db_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::FileLockingProtocolFailed,
        ) => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// Like [`db_error`], but a duplicate key on insert is a `Conflict`.
pub(super) fn insert_error(error: rusqlite::Error) -> StoreError {
    match error.sqlite_error() {
        Some(e)
            if e.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict
        }
        _ => db_error(error),
    }
}

pub(super) trait DbResult<T> {
    fn db(self) -> StoreResult<T>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> StoreResult<T> {
        self.map_err(db_error)
    }
}

/// `query_row` and `execute` through the connection's statement cache: every statement here
/// runs again and again, and preparing one costs more than running it.
pub(super) trait Cached {
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
}

impl Cached for Connection {
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("cannot encode: {e}")))
}

pub(super) fn from_json<T: DeserializeOwned>(text: &str) -> StoreResult<T> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("corrupt record in the database: {e}")))
}

pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn non_negative(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Reads one JSON `data` column by key; `None` if there is no such row.
pub(super) fn get_json<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    key: &str,
) -> StoreResult<Option<T>> {
    let data: Option<String> = conn
        .query_row_cached(sql, [key], |row| row.get(0))
        .optional()
        .db()?;
    data.map(|d| from_json(&d)).transpose()
}

/// Runs a query whose only column is JSON `data`, decoding every row.
pub(super) fn list_json<T: DeserializeOwned>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).db()?;
    let rows = stmt.query_map(params, |row| row.get::<_, String>(0)).db()?;
    let mut out = Vec::new();
    for data in rows {
        out.push(from_json(&data.db()?)?);
    }
    Ok(out)
}

/// Runs an `UPDATE`; `NotFound` if it touched no row.
pub(super) fn update_existing(
    conn: &Connection,
    sql: &str,
    key: &str,
    data: &str,
) -> StoreResult<()> {
    match conn.execute_cached(sql, params![key, data]).db()? {
        0 => Err(StoreError::NotFound),
        _ => Ok(()),
    }
}

/// When `subject`'s tokens start to count again, if a revocation of them is still kept.
pub(super) fn not_before(
    conn: &Connection,
    subject: &Subject,
    now: UnixTime,
) -> StoreResult<Option<UnixTime>> {
    cut_off(conn, &subject_key(subject), now)
}

/// The row of a user's access cut-off in `revoked_subjects`.
pub(super) fn access_key(username: &str) -> String {
    format!("access:{username}")
}

/// The cut-off stored under `key`, if still remembered at `now`.
pub(super) fn cut_off(
    conn: &Connection,
    key: &str,
    now: UnixTime,
) -> StoreResult<Option<UnixTime>> {
    conn.query_row_cached(
        "SELECT not_before FROM revoked_subjects WHERE subject = ?1 AND keep_until >= ?2",
        params![key, now],
        |row| row.get(0),
    )
    .optional()
    .db()
}

/// Raises the token lifetimes kept to at least `lifetimes`; those now kept.
pub(super) fn record_lifetimes(
    tx: &Transaction<'_>,
    lifetimes: TokenLifetimes,
) -> StoreResult<TokenLifetimes> {
    for (kind, seconds) in [("access", lifetimes.access), ("refresh", lifetimes.refresh)] {
        tx.execute_cached(
            "INSERT INTO token_lifetimes (kind, seconds) VALUES (?1, ?2) \
             ON CONFLICT (kind) DO UPDATE SET seconds = max(seconds, excluded.seconds)",
            params![kind, i64::try_from(seconds).unwrap_or(i64::MAX)],
        )
        .db()?;
    }
    kept_lifetimes(tx)
}

/// The token lifetimes kept (zero where none is recorded).
pub(super) fn kept_lifetimes(conn: &Connection) -> StoreResult<TokenLifetimes> {
    let mut statement = conn
        .prepare_cached("SELECT kind, seconds FROM token_lifetimes")
        .db()?;
    let mut rows = statement.query([]).db()?;
    let mut kept = TokenLifetimes::default();
    while let Some(row) = rows.next().db()? {
        let kind: String = row.get(0).db()?;
        let seconds = u64::try_from(row.get::<_, i64>(1).db()?).unwrap_or(0);
        match kind.as_str() {
            "access" => kept.access = seconds,
            "refresh" => kept.refresh = seconds,
            _ => {}
        }
    }
    Ok(kept)
}

/// Raises the cut-off under `key` to [`next_not_before`] of `now` and the cut-offs in force
/// under `key` and `floor`, remembered past it for `lifetime` seconds or the longest lifetime
/// kept for `reach`, whichever is longer (never shortening an earlier one); returns the new
/// cut-off and until when it is remembered.
pub(super) fn raise_cut_off(
    tx: &Transaction<'_>,
    key: &str,
    floor: Option<&str>,
    now: UnixTime,
    lifetime: u64,
    reach: CutOffReach,
) -> StoreResult<(UnixTime, UnixTime)> {
    let lifetime = lifetime.max(kept_lifetimes(tx)?.longest(reach));
    let stored = |key: &str| -> StoreResult<Option<(UnixTime, UnixTime)>> {
        tx.query_row_cached(
            "SELECT not_before, keep_until FROM revoked_subjects WHERE subject = ?1",
            [key],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .db()
    };
    let in_force = stored(key)?;
    let floor = match floor {
        Some(floor) => stored(floor)?.map(|(nb, _)| nb),
        None => None,
    };
    let not_before = next_not_before(now, in_force.map(|(nb, _)| nb).max(floor));
    let keep_until = not_before
        .saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX))
        .max(in_force.map_or(UnixTime::MIN, |(_, keep)| keep));
    tx.execute_cached(
        "INSERT INTO revoked_subjects (subject, not_before, keep_until) \
         VALUES (?1, ?2, ?3) ON CONFLICT (subject) DO UPDATE SET \
         not_before = excluded.not_before, keep_until = excluded.keep_until",
        params![key, not_before, keep_until],
    )
    .db()?;
    Ok((not_before, keep_until))
}

/// A subject's row in `revoked_subjects`: the kind keeps users and clients apart.
pub(super) fn subject_key(subject: &Subject) -> String {
    format!("{}:{}", subject.kind().as_str(), subject.name())
}

/// Inserts a user or client record after claiming its name for that kind of account: a name
/// that the other kind has (or once had) is `NameTaken`, one of the same kind `Conflict`.
pub(super) fn insert_account(
    tx: &Transaction<'_>,
    sql: &str,
    name: &str,
    kind: SubjectKind,
    data: &str,
) -> StoreResult<()> {
    let owner: Option<String> = tx
        .query_row_cached(
            "SELECT kind FROM account_names WHERE name = lower(?1)",
            [name],
            |row| row.get(0),
        )
        .optional()
        .db()?;
    match owner.as_deref().map(SubjectKind::parse) {
        None => {
            tx.execute_cached(
                "INSERT INTO account_names (name, kind) VALUES (lower(?1), ?2)",
                params![name, kind.as_str()],
            )
            .db()?;
        }
        Some(Some(owner)) if owner == kind => {}
        Some(Some(owner)) => return Err(StoreError::NameTaken(owner)),
        Some(None) => {
            return Err(StoreError::Internal(format!(
                "account name '{name}' has an unknown kind"
            )));
        }
    }
    tx.execute_cached(sql, params![name, data])
        .map_err(insert_error)?;
    Ok(())
}

/// A failed-login counter: its count and the seconds until its window ends (0, 0 when none).
pub(super) fn failure_count(
    conn: &Connection,
    key: &str,
    now: UnixTime,
) -> StoreResult<(u64, u64)> {
    let row: Option<(i64, i64)> = conn
        .query_row_cached(
            "SELECT count, window_ends FROM login_failures WHERE key = ?1 AND window_ends > ?2",
            params![key, now],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .db()?;
    Ok(row.map_or((0, 0), |(count, ends)| {
        (non_negative(count), non_negative(ends - now))
    }))
}

/// Runs several reads as one read transaction: one snapshot, and the WAL read lock taken once
/// instead of once per statement (a file lock each time, the larger part of a point read).
/// `BEGIN` and `COMMIT` go through the statement cache too: parsing them cost more than the
/// lock they save.
pub(super) fn in_one_read<T>(
    conn: &Connection,
    reads: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    if !conn.is_autocommit() {
        // A transaction left open would pin an old snapshot for every later read.
        conn.execute_cached("ROLLBACK", []).db()?;
    }
    conn.execute_cached("BEGIN", []).db()?;
    let out = reads(conn);
    // Nothing was written: ending the transaction only releases the read lock (a failed read
    // may have ended it already).
    let ended = if conn.is_autocommit() {
        Ok(0)
    } else {
        conn.execute_cached("COMMIT", [])
    };
    let out = out?;
    ended.db()?;
    Ok(out)
}

pub(super) fn load_family(conn: &Connection, id: &str) -> StoreResult<Option<Family>> {
    get_json(conn, "SELECT data FROM families WHERE id = ?1", id)
}

pub(super) fn save_family(tx: &Transaction<'_>, family: &Family) -> StoreResult<()> {
    tx.execute_cached(
        "UPDATE families SET expires_at = ?2, data = ?3 WHERE id = ?1",
        params![
            family.id.as_str(),
            family.current.expires_at,
            to_json(family)?
        ],
    )
    .db()?;
    Ok(())
}

/// Feed sequence numbers per millisecond of the clock.
const FEED_NUMBERS_PER_MS: i64 = 1024;

/// Appends `event` to the feed. Its sequence number, which followers hold as their cursor, is
/// the clock in milliseconds times [`FEED_NUMBERS_PER_MS`], or the last number plus one where
/// that is not larger. Numbers only grow; and after a restore from a backup the first new event
/// comes after every cursor handed out before, so a follower reads it instead of taking the
/// numbers the restore hands out again for ones it has seen.
pub(super) fn append_event(tx: &Transaction<'_>, event: &RevocationEvent) -> StoreResult<()> {
    let by_clock = crate::domain::now_ms().saturating_mul(FEED_NUMBERS_PER_MS);
    tx.execute_cached(
        "INSERT INTO revocation_feed (seq, expires_at, data) VALUES (max(?1, 1 + COALESCE(\
         (SELECT seq FROM sqlite_sequence WHERE name = 'revocation_feed'), 0)), ?2, ?3)",
        params![by_clock, event.expires_at(), to_json(event)?],
    )
    .db()?;
    Ok(())
}

/// Marks a family revoked and appends its `Family` event.
pub(super) fn revoke_loaded_family(tx: &Transaction<'_>, family: &mut Family) -> StoreResult<()> {
    family.revoked = true;
    save_family(tx, family)?;
    append_event(
        tx,
        &RevocationEvent::Family {
            fam: family.id.as_str().to_owned(),
            exp: family.feed_expires_at(),
        },
    )
}

/// The rotation state machine, run inside one `BEGIN IMMEDIATE` transaction.
pub(super) fn rotate(tx: &Transaction<'_>, rotation: &Rotation) -> StoreResult<RotationOutcome> {
    let Some(mut family) = load_family(tx, rotation.family.as_str())? else {
        return Ok(RotationOutcome::Inactive);
    };
    if family.revoked || family.current.expires_at <= rotation.now_ms.div_euclid(1000) {
        return Ok(RotationOutcome::Inactive);
    }
    if rotation.presented == family.current.jti {
        family.previous = Some(rotation.presented.clone());
        family.rotated_at_ms = Some(rotation.now_ms);
        let access_lifetime = family
            .current
            .successor_access_lifetime(&rotation.successor);
        family.current = rotation.successor.clone();
        family.current.access_lifetime = access_lifetime;
        save_family(tx, &family)?;
        return Ok(RotationOutcome::Rotated(family));
    }
    let repeat_in_grace = rotation.grace_ms > 0
        && family.previous.as_ref() == Some(&rotation.presented)
        && family
            .rotated_at_ms
            .is_some_and(|at| rotation.now_ms.saturating_sub(at) <= rotation.grace_ms);
    if repeat_in_grace {
        return Ok(RotationOutcome::Repeated(family));
    }
    revoke_loaded_family(tx, &mut family)?;
    Ok(RotationOutcome::Reused(family))
}

/// A feed cursor is the decimal sequence number of the last event seen; `None` is the start.
pub(super) fn parse_cursor(cursor: Option<&str>) -> StoreResult<i64> {
    match cursor {
        None => Ok(0),
        Some(c) if !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit()) => {
            c.parse().map_err(|_| StoreError::InvalidCursor)
        }
        Some(_) => Err(StoreError::InvalidCursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_must_be_decimal_sequence_numbers() {
        assert_eq!(parse_cursor(None).ok(), Some(0));
        assert_eq!(parse_cursor(Some("42")).ok(), Some(42));
        for bad in ["", "-1", "+1", "1e3", "abc", " 1", "99999999999999999999"] {
            assert!(matches!(
                parse_cursor(Some(bad)),
                Err(StoreError::InvalidCursor)
            ));
        }
    }
}
