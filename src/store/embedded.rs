//! The embedded store (SQLite in WAL mode).
//!
//! One database file, `latchkey.db`, in the data directory. WAL journal mode with
//! `synchronous=FULL` makes every committed transaction durable across a crash or power loss, and
//! lets the CLI open the same file while the service runs (writers wait up to the busy timeout).
//!
//! Records are JSON text in a `data` column keyed by their id, with extra columns only where a
//! query needs them (expiry, order). Every read-modify-write is one `BEGIN IMMEDIATE`
//! transaction, so it takes the write lock before it reads and two processes can never
//! interleave a check and a set. Writes are committed by one writer thread, the point reads of
//! the request path run in place, and everything else on Tokio's blocking pool (see
//! [`EmbeddedStore`]).

use async_trait::async_trait;
use rusqlite::params;

use super::attempts::{AttemptRule, Reservation};
use super::{
    AuthorizationCode, ClientRead, ClientRecord, CodeRedemption, CutOffReach, Family, FeedPage,
    RevocationEvent, Rotation, RotationOutcome, Store, StoreResult, Subject, SubjectKind,
    TokenLifetimes, UserCutOffs, UserRecord,
};
use crate::domain::{self, ClientId, TokenId, UnixTime, Username};

mod codes;
mod connections;
mod feed;
mod limits;
mod schema;
mod sql;
mod writer;
use connections::{Shared, with_connection};
use writer::Writer;
#[cfg(test)]
mod tests;

pub use schema::SCHEMA_VERSION;
use sql::{
    Cached, DbResult, access_key, append_event, cut_off, failure_count, get_json, in_one_read,
    insert_account, insert_error, list_json, load_family, not_before, parse_cursor, raise_cut_off,
    record_lifetimes, revoke_loaded_family, rotate, sql_limit, subject_key, to_json,
    update_existing,
};

/// The database file inside the data directory.
pub const DB_FILE: &str = "latchkey.db";

/// The files SQLite keeps beside the database in WAL mode.
pub const DB_COMPANIONS: [&str; 2] = ["latchkey.db-wal", "latchkey.db-shm"];

const CLIENT_BY_ID: &str = "SELECT data FROM clients WHERE client_id = ?1";

/// The embedded backend: one SQLite connection for writes and everything else, shared behind a
/// mutex (SQLite serialises writers anyway) and used only from threads that may block: the
/// writer thread, which commits the write transactions queued together as one (see [`writer`]),
/// and the blocking pool; and, for a database on disk, a read-only connection for the point
/// reads every token request makes.
///
/// Those reads (a client, a user, a revocation) take microseconds from the page cache, less
/// than the hand-off to a blocking thread and back, and in WAL mode they never wait for a
/// writer, so they run where the request runs. They cannot go through the write connection,
/// whose mutex is held through each commit's fsync.
///
/// One read connection, not a pool: under the bench's mixed workload 0.4–2% of the reads found
/// it held by the other runtime thread, and their waits came to about 0.5% of the two threads'
/// time, while each further connection keeps a page cache of its own (up to 2 MiB) against a
/// memory budget the embedded store meets with less than a MiB to spare.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    conn: Shared,
    reader: Option<Shared>,
    writer: Writer,
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(|conn| conn.query_row_cached("SELECT 1", [], |_| Ok(())).db())
            .await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let (key, data) = (user.username.as_str().to_owned(), to_json(user)?);
        self.write(move |tx| {
            insert_account(
                tx,
                "INSERT INTO users (username, data) VALUES (?1, ?2)",
                &key,
                SubjectKind::User,
                &data,
            )
        })
        .await
    }

    async fn get_user(&self, username: &Username) -> StoreResult<Option<UserRecord>> {
        let key = username.as_str().to_owned();
        self.read(move |conn| get_json(conn, "SELECT data FROM users WHERE username = ?1", &key))
            .await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        let (key, data) = (user.username.as_str().to_owned(), to_json(user)?);
        self.run(move |conn| {
            update_existing(
                conn,
                "UPDATE users SET data = ?2 WHERE username = ?1",
                &key,
                &data,
            )
        })
        .await
    }

    async fn replace_user_if_unchanged(
        &self,
        read: &UserRecord,
        updated: &UserRecord,
    ) -> StoreResult<bool> {
        let key = read.username.as_str().to_owned();
        let (read, updated) = (to_json(read)?, to_json(updated)?);
        self.run(move |conn| {
            let changed = conn
                .execute_cached(
                    "UPDATE users SET data = ?3 WHERE username = ?1 AND data = ?2",
                    params![key, read, updated],
                )
                .db()?;
            Ok(changed == 1)
        })
        .await
    }

    async fn list_users(
        &self,
        after: Option<&Username>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        let after = after.map(|u| u.as_str().to_owned());
        self.run(move |conn| {
            list_json(
                conn,
                "SELECT data FROM users WHERE ?1 IS NULL OR username > ?1 \
                 ORDER BY username LIMIT ?2",
                params![after, sql_limit(limit)],
            )
        })
        .await
    }

    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let (key, data) = (client.client_id.as_str().to_owned(), to_json(client)?);
        self.write(move |tx| {
            insert_account(
                tx,
                "INSERT INTO clients (client_id, data) VALUES (?1, ?2)",
                &key,
                SubjectKind::Client,
                &data,
            )
        })
        .await
    }

    async fn get_client(&self, client_id: &ClientId) -> StoreResult<Option<ClientRecord>> {
        let key = client_id.as_str().to_owned();
        self.read(move |conn| get_json(conn, CLIENT_BY_ID, &key))
            .await
    }

    async fn update_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let (key, data) = (client.client_id.as_str().to_owned(), to_json(client)?);
        self.run(move |conn| {
            update_existing(
                conn,
                "UPDATE clients SET data = ?2 WHERE client_id = ?1",
                &key,
                &data,
            )
        })
        .await
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.run(|conn| list_json(conn, "SELECT data FROM clients ORDER BY client_id", []))
            .await
    }

    async fn delete_client(&self, client_id: &ClientId) -> StoreResult<bool> {
        let key = client_id.as_str().to_owned();
        self.run(move |conn| {
            let deleted = conn
                .execute_cached("DELETE FROM clients WHERE client_id = ?1", [key])
                .db()?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn create_family(&self, family: &Family) -> StoreResult<()> {
        let (key, expires_at) = (family.id.as_str().to_owned(), family.current.expires_at);
        let data = to_json(family)?;
        self.run(move |conn| {
            conn.execute_cached(
                "INSERT INTO families (id, expires_at, data) VALUES (?1, ?2, ?3)",
                params![key, expires_at, data],
            )
            .map_err(insert_error)?;
            Ok(())
        })
        .await
    }

    async fn get_family(&self, id: &TokenId) -> StoreResult<Option<Family>> {
        let key = id.as_str().to_owned();
        self.read(move |conn| load_family(conn, &key)).await
    }

    async fn rotate_refresh(&self, rotation: &Rotation) -> StoreResult<RotationOutcome> {
        let rotation = rotation.clone();
        self.write(move |tx| rotate(tx, &rotation)).await
    }

    async fn revoke_family(&self, id: &TokenId, now: UnixTime) -> StoreResult<bool> {
        let key = id.as_str().to_owned();
        self.write(move |tx| {
            let Some(mut family) = load_family(tx, &key)? else {
                return Ok(false);
            };
            if family.revoked || family.current.expires_at <= now {
                return Ok(false);
            }
            revoke_loaded_family(tx, &mut family)?;
            Ok(true)
        })
        .await
    }

    async fn revoke_token(&self, jti: &TokenId, expires_at: UnixTime) -> StoreResult<()> {
        let jti = jti.as_str().to_owned();
        self.write(move |tx| {
            let changed = tx
                .execute_cached(
                    "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2) \
                     ON CONFLICT (jti) DO UPDATE SET expires_at = excluded.expires_at \
                     WHERE excluded.expires_at > revoked_tokens.expires_at",
                    params![jti, expires_at],
                )
                .db()?;
            // A revocation already recorded (and announced, in the same transaction) adds
            // nothing to the feed, so repeating one cannot fill it.
            if changed == 0 {
                return Ok(());
            }
            append_event(
                tx,
                &RevocationEvent::Token {
                    jti,
                    exp: expires_at,
                },
            )
        })
        .await
    }

    async fn is_token_revoked(&self, jti: &TokenId, now: UnixTime) -> StoreResult<bool> {
        let jti = jti.as_str().to_owned();
        self.read(move |conn| {
            conn.query_row_cached(
                "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1 AND expires_at >= ?2)",
                params![jti, now],
                |row| row.get(0),
            )
            .db()
        })
        .await
    }

    async fn record_token_lifetimes(
        &self,
        lifetimes: TokenLifetimes,
    ) -> StoreResult<TokenLifetimes> {
        self.write(move |tx| record_lifetimes(tx, lifetimes)).await
    }

    async fn revoke_subject(
        &self,
        subject: &Subject,
        now: UnixTime,
        lifetime: u64,
    ) -> StoreResult<UnixTime> {
        let subject = subject.clone();
        self.write(move |tx| {
            // A user's revocation reaches past the user's access cut-off too, so that access
            // tokens issued between the two, in one second, die as well.
            let floor = match &subject {
                Subject::User(name) => Some(access_key(name.as_str())),
                Subject::Client(_) => None,
            };
            let key = subject_key(&subject);
            let reach = CutOffReach::Every;
            let cut_off = raise_cut_off(tx, &key, floor.as_deref(), now, lifetime, reach)?;
            append_event(tx, &subject.event(cut_off.0, cut_off.1))?;
            Ok(cut_off.0)
        })
        .await
    }

    async fn revoke_user_access(
        &self,
        username: &Username,
        now: UnixTime,
        lifetime: u64,
    ) -> StoreResult<UnixTime> {
        let subject = Subject::User(username.clone());
        self.write(move |tx| {
            let key = access_key(subject.name());
            let floor = subject_key(&subject);
            let reach = CutOffReach::Access;
            let cut_off = raise_cut_off(tx, &key, Some(&floor), now, lifetime, reach)?;
            append_event(tx, &subject.event(cut_off.0, cut_off.1))?;
            Ok(cut_off.0)
        })
        .await
    }

    async fn subject_not_before(
        &self,
        subject: &Subject,
        now: UnixTime,
    ) -> StoreResult<Option<UnixTime>> {
        let subject = subject.clone();
        self.read(move |conn| not_before(conn, &subject, now)).await
    }

    async fn user_and_not_before(
        &self,
        username: &Username,
        now: UnixTime,
    ) -> StoreResult<(Option<UserRecord>, UserCutOffs)> {
        let subject = Subject::User(username.clone());
        self.read(move |conn| {
            in_one_read(conn, |conn| {
                let user = get_json(
                    conn,
                    "SELECT data FROM users WHERE username = ?1",
                    subject.name(),
                )?;
                let cut_offs = UserCutOffs {
                    tokens: not_before(conn, &subject, now)?,
                    access: cut_off(conn, &access_key(subject.name()), now)?,
                };
                Ok((user, cut_offs))
            })
        })
        .await
    }

    async fn revocations_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> StoreResult<FeedPage> {
        let after = parse_cursor(cursor)?;
        let asked = cursor.unwrap_or("0").to_owned();
        self.run(move |conn| feed::page(conn, after, &asked, limit, now))
            .await
    }

    async fn record_failure(&self, key: &str, window_secs: u64) -> StoreResult<(u64, u64)> {
        let key = key.to_owned();
        self.run(move |conn| limits::record_failure(conn, &key, window_secs, domain::now()))
            .await
    }

    async fn client_and_failures(
        &self,
        client_id: Option<&ClientId>,
        keys: &[String],
        now: UnixTime,
    ) -> StoreResult<ClientRead> {
        let (subject, keys) = (client_id.cloned().map(Subject::Client), keys.to_vec());
        self.read(move |conn| {
            in_one_read(conn, |conn| {
                let (client, not_before) = match &subject {
                    Some(subject) => (
                        get_json(conn, CLIENT_BY_ID, subject.name())?,
                        not_before(conn, subject, now)?,
                    ),
                    None => (None, None),
                };
                let counts = keys.iter().map(|key| failure_count(conn, key, now));
                Ok(ClientRead {
                    client,
                    not_before,
                    failures: counts.collect::<StoreResult<_>>()?,
                })
            })
        })
        .await
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.run(move |conn| limits::clear(conn, &key)).await
    }

    async fn reserve_attempt(
        &self,
        key: &str,
        rule: &AttemptRule,
        now: UnixTime,
    ) -> StoreResult<Reservation> {
        let (key, rule) = (key.to_owned(), *rule);
        self.write(move |tx| limits::reserve(tx, &key, &rule, now))
            .await
    }

    async fn release_attempt(&self, key: &str) -> StoreResult<()> {
        let key = key.to_owned();
        self.write(move |tx| limits::release(tx, &key)).await
    }

    async fn use_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        let key = key.to_owned();
        self.write(move |tx| limits::use_once(tx, &key, expires_at, now))
            .await
    }

    async fn create_code(&self, key: &str, code: &AuthorizationCode) -> StoreResult<()> {
        let (key, code) = (key.to_owned(), code.clone());
        self.write(move |tx| codes::create(tx, &key, &code)).await
    }

    async fn redeem_code(
        &self,
        key: &str,
        family: &TokenId,
        now: UnixTime,
    ) -> StoreResult<CodeRedemption> {
        let (key, family) = (key.to_owned(), family.clone());
        self.write(move |tx| codes::redeem(tx, &key, &family, now))
            .await
    }

    async fn get_code(&self, key: &str) -> StoreResult<Option<AuthorizationCode>> {
        let key = key.to_owned();
        self.read(move |conn| codes::get(conn, &key)).await
    }

    async fn code_replayed(&self, key: &str) -> StoreResult<bool> {
        let key = key.to_owned();
        self.read(move |conn| codes::replayed(conn, &key)).await
    }

    async fn purge_expired(&self, now: UnixTime) -> StoreResult<u64> {
        self.write(move |tx| {
            let mut deleted = 0;
            for sql in [
                "DELETE FROM families WHERE expires_at < ?1",
                "DELETE FROM revoked_tokens WHERE expires_at < ?1",
                "DELETE FROM revoked_subjects WHERE keep_until < ?1",
                "DELETE FROM revocation_feed WHERE expires_at < ?1",
                "DELETE FROM login_failures WHERE window_ends <= ?1",
                "DELETE FROM used_once WHERE expires_at < ?1",
                "DELETE FROM authorization_codes WHERE keep_until < ?1",
            ] {
                deleted += tx.execute_cached(sql, [now]).db()?;
            }
            Ok(u64::try_from(deleted).unwrap_or(u64::MAX))
        })
        .await
    }

    async fn close(&self) -> StoreResult<()> {
        self.close_connections().await
    }
}
