//! The schema, versioned with `PRAGMA user_version` and created or migrated at open.

use rusqlite::{Connection, TransactionBehavior};

use super::sql::DbResult;
use crate::store::{StoreError, StoreResult};

/// `MIGRATIONS[n]` takes the schema from `PRAGMA user_version` n to n + 1.
///
/// 1 → 2: users and clients became separate subject namespaces. `account_names` remembers
/// which kind of account each name (lowercased) belongs to, and revoked subjects are keyed
/// `user:<name>` or `client:<id>`; a cut-off from before, whose kind is unknown, is kept for
/// both kinds, since revoking too much is the safe side.
///
/// 2 → 3: attempt counters remember their last attempt, for back-off between attempts.
///
/// 3 → 4: single-use markers (the `jti` of client assertions), kept until they expire.
///
/// 4 → 5: authorization codes, under the SHA-256 of the code: `family` is set when the code is
/// redeemed, `replayed` when it is presented again.
///
/// 5 → 6: the longest token lifetimes issued against the store (`access`, `refresh`), which
/// revocations are remembered for at least (see `store::lifetimes`).
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE users (
    username TEXT PRIMARY KEY NOT NULL,
    data     TEXT NOT NULL
) STRICT;
CREATE TABLE clients (
    client_id TEXT PRIMARY KEY NOT NULL,
    data      TEXT NOT NULL
) STRICT;
CREATE TABLE families (
    id         TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL,
    data       TEXT NOT NULL
) STRICT;
CREATE INDEX families_expiry ON families (expires_at);
CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_tokens_expiry ON revoked_tokens (expires_at);
CREATE TABLE revoked_subjects (
    subject    TEXT PRIMARY KEY NOT NULL,
    not_before INTEGER NOT NULL,
    keep_until INTEGER NOT NULL
) STRICT;
CREATE INDEX revoked_subjects_expiry ON revoked_subjects (keep_until);
CREATE TABLE revocation_feed (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    expires_at INTEGER NOT NULL,
    data       TEXT NOT NULL
) STRICT;
CREATE INDEX revocation_feed_expiry ON revocation_feed (expires_at);
CREATE TABLE login_failures (
    key         TEXT PRIMARY KEY NOT NULL,
    count       INTEGER NOT NULL,
    window_ends INTEGER NOT NULL
) STRICT;
CREATE INDEX login_failures_expiry ON login_failures (window_ends);
",
    r"
CREATE TABLE account_names (
    name TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL
) STRICT;
INSERT OR IGNORE INTO account_names SELECT lower(username), 'user' FROM users;
INSERT OR IGNORE INTO account_names SELECT lower(client_id), 'client' FROM clients;
INSERT INTO revoked_subjects SELECT 'client:' || subject, not_before, keep_until
    FROM revoked_subjects WHERE instr(subject, ':') = 0;
UPDATE revoked_subjects SET subject = 'user:' || subject
    WHERE instr(subject, ':') = 0;
",
    r"
ALTER TABLE login_failures ADD COLUMN last_at INTEGER NOT NULL DEFAULT 0;
",
    r"
CREATE TABLE used_once (
    key        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX used_once_expiry ON used_once (expires_at);
",
    r"
CREATE TABLE authorization_codes (
    key        TEXT PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL,
    keep_until INTEGER NOT NULL,
    family     TEXT,
    replayed   INTEGER NOT NULL DEFAULT 0,
    data       TEXT NOT NULL
) STRICT;
CREATE INDEX authorization_codes_expiry ON authorization_codes (keep_until);
",
    r"
CREATE TABLE token_lifetimes (
    kind    TEXT PRIMARY KEY NOT NULL,
    seconds INTEGER NOT NULL
) STRICT;
",
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Creates or migrates the schema in one `BEGIN IMMEDIATE` transaction, so a second process
/// opening the same database at the same moment waits, then finds the work done. A database
/// written by a newer build is refused rather than guessed at.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let version: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .db()?;
    let pending = usize::try_from(version)
        .ok()
        .and_then(|v| MIGRATIONS.get(v..))
        .ok_or_else(|| {
            StoreError::Internal(format!(
                "database schema version {version} is not one this build knows \
                 (it writes {SCHEMA_VERSION})"
            ))
        })?;
    if pending.is_empty() {
        return Ok(());
    }
    for step in pending {
        tx.execute_batch(step).db()?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .db()?;
    tx.commit().db()
}
