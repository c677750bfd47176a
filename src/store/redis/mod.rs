//! The Redis backend: one store shared by any number of replicas, on a standalone server
//! (`redis://`, `rediss://`), behind Sentinel (`redis+sentinel://`) or on a Redis Cluster (a
//! comma-separated list of `redis://` seed nodes, or `redis+cluster://`).
//!
//! # Key layout
//!
//! Every key starts with the configurable prefix `P` (the app uses `latchkey:`). The part in
//! braces is the Cluster hash tag: keys that one script touches share it.
//!
//! | key                         | type       | holds                                   | expiry |
//! |-----------------------------|------------|-----------------------------------------|--------|
//! | `P{users}:user:<username>`  | string     | `UserRecord` as JSON                    | none   |
//! | `P{users}:index`            | sorted set | usernames, score 0 (lexicographic)      | none   |
//! | `P{clients}:client:<id>`    | string     | `ClientRecord` as JSON                  | none   |
//! | `P{clients}:index`          | sorted set | client ids, score 0 (lexicographic)     | none   |
//! | `Pfamily:{<fam>}`           | hash       | one refresh-token family (fields below) | current generation's expiry |
//! | `Prevoked:{<jti>}`          | string     | the revoked token's latest `exp`        | that `exp` |
//! | `Prevoked:{<jti>}:owed`     | string     | `1` until that revocation's feed event is in | that `exp` |
//! | `P{users}:nb:<username>`    | string     | a user's cut-off: `<not_before> <keep_until>` | `keep_until` |
//! | `P{users}:anb:<username>`   | string     | a user's access-token cut-off (roles changed), the same way | `keep_until` |
//! | `P{clients}:nb:<id>`        | string     | a client's cut-off, the same way        | `keep_until` |
//! | `P{names}:<name>`           | string     | `user` or `client`: who holds the name (lowercased) | none |
//! | `P{feed}:stream`            | stream     | revocation events: `e` JSON, `exp`      | the longest-retained entry |
//! | `P{feed}:deadlines`         | sorted set | stream id -> retention deadline         | as the stream |
//! | `Pfailures:{<key>}`         | string     | failed-login count, or attempts reserved | the window |
//! | `Pfailures:{<key>}:last`    | string     | when the last attempt was reserved      | the window |
//! | `Ponce:{<key>}`             | string     | a single-use marker's `expires_at`      | that time |
//!
//! Family hash fields: `id sub cid scope aud jti iat exp` (the current generation is `jti iat
//! exp`), `prev` and `rot` (the replaced jti and when, in ms) once rotated, `rev` (`1` when
//! revoked), `feed` (`owed` while a revocation's feed event is unconfirmed), and `attl` with
//! `ajti` (the longest access-token lifetime issued in the family, valid while `ajti` is the
//! current `jti`; see `RefreshGeneration::access_lifetime`).
//!
//! Numbers are stored as decimal strings and compared in Lua with `tonumber`; Lua never formats
//! a number back into a stored field, so no value loses precision.
//!
//! # Feed
//!
//! One Redis Stream, so every replica reads the same order; a cursor is a stream id
//! (`<ms>-<seq>`, `0` for the start), and a well-formed id beyond the stream's last generated
//! id is [`StoreError::InvalidCursor`]. Entries expire individually (a token event after
//! minutes, a family event after weeks), so each append also drops the entries whose retention
//! deadline has passed, found through the `deadlines` sorted set, whatever their position.
//!
//! On Cluster the feed lives in its own slot. Revocations therefore happen first, in a script
//! on the revoked entry's own keys, and the event is appended by a second call; for families a
//! `feed = owed` mark makes that second step survive a failure in between (see
//! `append_family_event`).
//!
//! # Expiry
//!
//! Correctness never depends on a Redis TTL: every answer compares stored expiry times with the
//! `now` that the caller passes. TTLs only bound memory. Each entry's TTL is its expiry (counted
//! from this replica's clock, capped at [`MAX_RETENTION`]) plus a slack
//! ([`RedisOptions::expiry_slack`], a minute by default) so clock skew between replicas never
//! drops an entry that some replica still considers live. Users and clients are permanent.
//!
//! # Failures
//!
//! Every operation runs under one deadline (the connection/response timeout plus half a
//! second); a Redis that is down, black-holed, loading, or refusing writes answers
//! [`StoreError::Unavailable`], never a hang. The clients reconnect by themselves; with
//! Sentinel, a connection that fails is dropped and the next operation asks the sentinels for
//! the master again (never reconnecting to an address they no longer name).
//! (Sentinel failover is asynchronous replication: writes that the old master acknowledged just
//! before it failed can be lost; `min-replicas-to-write` on the servers bounds that.)

mod codes;
mod conn;
mod encoding;
mod families;
mod keys;
mod limits;
mod options;
mod records;
mod scripts;
mod sentinel;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::FutureExt;
use redis::{RedisError, Value};

use self::conn::{Backend, Conn, Target, map_error};
use self::encoding::{START_CURSOR, parse_cursor};
use self::keys::Keys;
pub use self::options::{RedisOptions, read_ca_file};
use self::records::{parse_not_before, parse_record};
use self::scripts::*;
use super::attempts::{AttemptRule, Reservation};
use super::{
    AuthorizationCode, ClientRead, ClientRecord, CodeRedemption, CutOffReach, Family, FeedPage,
    RevocationEvent, Rotation, RotationOutcome, Store, StoreError, StoreResult, Subject,
    SubjectKind, TokenLifetimes, UserCutOffs, UserRecord,
};
use crate::domain::{ClientId, TokenId, UnixTime, Username};

/// No entry is retained longer than this, whatever expiry it was given (ten years).
pub const MAX_RETENTION: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// The Redis store. Cheap to share behind an `Arc`; its clients multiplex every request over
/// one connection per server.
pub struct RedisStore {
    backend: Backend,
    keys: Keys,
    deadline: Duration,
    slack_secs: i64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Opens a store on `url` (see the module docs for the forms) with keys under `prefix`.
    ///
    /// This does not wait for Redis: a bad URL fails here, an unreachable Redis fails each
    /// operation with [`StoreError::Unavailable`] until it answers (call [`Store::ping`] to
    /// check).
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisStore, StoreError> {
        Self::connect_with(
            url,
            RedisOptions {
                prefix: prefix.to_owned(),
                ..RedisOptions::default()
            },
        )
        .await
    }

    /// [`RedisStore::connect`] with every option.
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<RedisStore, StoreError> {
        if options.prefix.contains(['{', '}']) {
            return Err(StoreError::Internal(
                "the redis key prefix must not contain '{' or '}'".to_owned(),
            ));
        }
        let backend = Backend::open(Target::parse(url)?, options.timeout, options.tls_root_cert)?;
        Ok(RedisStore {
            backend,
            keys: Keys {
                prefix: options.prefix,
            },
            deadline: options.timeout + Duration::from_millis(500),
            slack_secs: i64::try_from(options.expiry_slack.as_secs()).unwrap_or(i64::MAX / 4),
        })
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.keys.prefix
    }

    /// Runs one store operation under the deadline and maps its errors.
    ///
    /// A combinator, not an `async fn`: a request's store future stays in memory for as long as
    /// Redis takes to answer, once per request in flight, and nested `async fn`s would each
    /// keep their own copy of `op`.
    fn run<T>(&self, op: impl Future<Output = Op<T>>) -> impl Future<Output = StoreResult<T>> {
        let started = std::time::Instant::now();
        tokio::time::timeout(self.deadline, op).map(move |outcome| {
            let result = self.settle(outcome);
            crate::store::record_operation("redis", started, &result);
            result
        })
    }

    fn settle<T>(&self, outcome: Result<Op<T>, tokio::time::error::Elapsed>) -> StoreResult<T> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(OpError::Redis(error))) => Err(map_error(error)),
            Ok(Err(OpError::Store(error))) => Err(error),
            Err(_) => {
                self.backend.observe_timeout();
                Err(StoreError::Unavailable(format!(
                    "redis did not answer within {} ms",
                    self.deadline.as_millis()
                )))
            }
        }
    }

    async fn conn(&self) -> Op<Conn> {
        Ok(self.backend.conn().await?)
    }

    /// The TTL (seconds) and retention deadline (Unix seconds, this replica's clock) for an
    /// entry that matters until `expires_at`.
    fn retention(&self, expires_at: UnixTime) -> (i64, i64) {
        let now = crate::domain::now();
        let cap = i64::try_from(MAX_RETENTION.as_secs()).unwrap_or(i64::MAX / 4);
        let remaining = expires_at.saturating_sub(now).clamp(0, cap);
        let ttl = remaining.saturating_add(self.slack_secs).max(1);
        (ttl, now.saturating_add(ttl))
    }
}

/// An operation's failure before mapping: Redis errors are mapped (and shown to the Sentinel
/// logic) in one place, [`RedisStore::run`].
enum OpError {
    Redis(RedisError),
    Store(StoreError),
}

impl From<RedisError> for OpError {
    fn from(error: RedisError) -> Self {
        OpError::Redis(error)
    }
}

impl From<StoreError> for OpError {
    fn from(error: StoreError) -> Self {
        OpError::Store(error)
    }
}

type Op<T> = Result<T, OpError>;

fn internal(error: impl std::fmt::Display) -> OpError {
    OpError::Store(StoreError::Internal(format!("redis store: {error}")))
}

#[async_trait]
impl Store for RedisStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(async {
            let mut conn = self.conn().await?;
            let _: Value = redis::cmd("PING").query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }

    async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.run(async {
            let name = user.username.as_str();
            let json = serde_json::to_string(user).map_err(internal)?;
            self.claim_name(name, SubjectKind::User).await?;
            self.create_record(self.keys.user(name), self.keys.users(), name, json)
                .await
        })
        .await
    }

    async fn get_user(&self, username: &Username) -> StoreResult<Option<UserRecord>> {
        self.run(self.read_record(self.keys.user(username.as_str())))
            .await
    }

    async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        self.run(async {
            let json = serde_json::to_string(user).map_err(internal)?;
            self.replace_record(self.keys.user(user.username.as_str()), json)
                .await
        })
        .await
    }

    async fn replace_user_if_unchanged(
        &self,
        read: &UserRecord,
        updated: &UserRecord,
    ) -> StoreResult<bool> {
        self.run(async {
            let read_json = serde_json::to_string(read).map_err(internal)?;
            let json = serde_json::to_string(updated).map_err(internal)?;
            let mut conn = self.conn().await?;
            let replaced: i64 = RECORD_REPLACE_IF
                .key(self.keys.user(read.username.as_str()))
                .arg(read_json)
                .arg(json)
                .invoke_async(&mut conn)
                .await?;
            Ok(replaced == 1)
        })
        .await
    }

    async fn list_users(
        &self,
        after: Option<&Username>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.run(async {
            let mut conn = self.conn().await?;
            let min = match after {
                Some(after) => format!("({after}"),
                None => "-".to_owned(),
            };
            let names: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(self.keys.users())
                .arg(min)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(i64::try_from(limit).unwrap_or(i64::MAX))
                .query_async(&mut conn)
                .await?;
            let keys = names.iter().map(|name| self.keys.user(name)).collect();
            self.read_records(&mut conn, keys).await
        })
        .await
    }

    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        self.run(async {
            let id = client.client_id.as_str();
            let json = serde_json::to_string(client).map_err(internal)?;
            self.claim_name(id, SubjectKind::Client).await?;
            self.create_record(self.keys.client(id), self.keys.clients(), id, json)
                .await
        })
        .await
    }

    async fn get_client(&self, client_id: &ClientId) -> StoreResult<Option<ClientRecord>> {
        self.run(self.read_record(self.keys.client(client_id.as_str())))
            .await
    }

    async fn update_client(&self, client: &ClientRecord) -> StoreResult<()> {
        self.run(async {
            let json = serde_json::to_string(client).map_err(internal)?;
            self.replace_record(self.keys.client(client.client_id.as_str()), json)
                .await
        })
        .await
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        self.run(async {
            let mut conn = self.conn().await?;
            let ids: Vec<String> = redis::cmd("ZRANGE")
                .arg(self.keys.clients())
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            let keys = ids.iter().map(|id| self.keys.client(id)).collect();
            self.read_records(&mut conn, keys).await
        })
        .await
    }

    async fn delete_client(&self, client_id: &ClientId) -> StoreResult<bool> {
        self.run(async {
            let mut conn = self.conn().await?;
            let deleted: i64 = RECORD_DELETE
                .key(self.keys.client(client_id.as_str()))
                .key(self.keys.clients())
                .arg(client_id.as_str())
                .invoke_async(&mut conn)
                .await?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn create_family(&self, family: &Family) -> StoreResult<()> {
        self.family_create(family).await
    }

    async fn get_family(&self, id: &TokenId) -> StoreResult<Option<Family>> {
        self.family_get(id).await
    }

    async fn rotate_refresh(&self, rotation: &Rotation) -> StoreResult<RotationOutcome> {
        self.family_rotate(rotation).await
    }

    async fn revoke_family(&self, id: &TokenId, now: UnixTime) -> StoreResult<bool> {
        self.family_revoke(id, now).await
    }

    async fn revoke_token(&self, jti: &TokenId, expires_at: UnixTime) -> StoreResult<()> {
        self.run(async {
            let mut conn = self.conn().await?;
            let (ttl, _) = self.retention(expires_at);
            // The list entry first, then the event (another slot on Cluster). The entry's owed
            // mark stays until the event is in: if the append fails the caller sees
            // Unavailable, and its retry appends again. A revocation already announced
            // appends nothing, so repeating one cannot fill the feed.
            let owed_mark = self.keys.revoked_event_owed(jti.as_str());
            let owed: i64 = TOKEN_REVOKE
                .key(self.keys.revoked(jti.as_str()))
                .key(&owed_mark)
                .arg(expires_at)
                .arg(ttl)
                .invoke_async(&mut conn)
                .await?;
            if owed == 1 {
                let event = RevocationEvent::Token {
                    jti: jti.as_str().to_owned(),
                    exp: expires_at,
                };
                self.append_event(&mut conn, &event).await?;
                let _: i64 = redis::cmd("DEL")
                    .arg(&owed_mark)
                    .query_async(&mut conn)
                    .await?;
            }
            Ok(())
        })
        .await
    }

    async fn create_code(&self, key: &str, code: &AuthorizationCode) -> StoreResult<()> {
        self.code_create(key, code).await
    }

    async fn redeem_code(
        &self,
        key: &str,
        family: &TokenId,
        now: UnixTime,
    ) -> StoreResult<CodeRedemption> {
        self.code_redeem(key, family, now).await
    }

    async fn get_code(&self, key: &str) -> StoreResult<Option<AuthorizationCode>> {
        self.code_get(key).await
    }

    async fn code_replayed(&self, key: &str) -> StoreResult<bool> {
        self.code_was_replayed(key).await
    }

    async fn is_token_revoked(&self, jti: &TokenId, now: UnixTime) -> StoreResult<bool> {
        self.run(async {
            let mut conn = self.conn().await?;
            let exp: Option<String> = redis::cmd("GET")
                .arg(self.keys.revoked(jti.as_str()))
                .query_async(&mut conn)
                .await?;
            match exp {
                None => Ok(false),
                Some(exp) => {
                    let exp: UnixTime = exp.parse().map_err(internal)?;
                    Ok(exp >= now)
                }
            }
        })
        .await
    }

    async fn record_token_lifetimes(
        &self,
        lifetimes: TokenLifetimes,
    ) -> StoreResult<TokenLifetimes> {
        self.run(self.record_lifetimes(lifetimes)).await
    }

    async fn revoke_subject(
        &self,
        subject: &Subject,
        now: UnixTime,
        lifetime: u64,
    ) -> StoreResult<UnixTime> {
        // A user's revocation reaches past the user's access cut-off too.
        let floor = match subject {
            Subject::User(name) => Some(self.keys.access_not_before(name.as_str())),
            Subject::Client(_) => None,
        };
        let key = (self.keys.not_before(subject), CutOffReach::Every);
        self.run(self.raise_cut_off(subject, key, floor, now, lifetime))
            .await
    }

    async fn revoke_user_access(
        &self,
        username: &Username,
        now: UnixTime,
        lifetime: u64,
    ) -> StoreResult<UnixTime> {
        let subject = Subject::User(username.clone());
        let key = (
            self.keys.access_not_before(username.as_str()),
            CutOffReach::Access,
        );
        let floor = Some(self.keys.not_before(&subject));
        self.run(self.raise_cut_off(&subject, key, floor, now, lifetime))
            .await
    }

    async fn subject_not_before(
        &self,
        subject: &Subject,
        now: UnixTime,
    ) -> StoreResult<Option<UnixTime>> {
        self.run(async {
            let mut conn = self.conn().await?;
            let stored: Option<String> = redis::cmd("GET")
                .arg(self.keys.not_before(subject))
                .query_async(&mut conn)
                .await?;
            parse_not_before(stored, now)
        })
        .await
    }

    async fn user_and_not_before(
        &self,
        username: &Username,
        now: UnixTime,
    ) -> StoreResult<(Option<UserRecord>, UserCutOffs)> {
        let subject = Subject::User(username.clone());
        let keys = [
            self.keys.user(username.as_str()),
            self.keys.not_before(&subject),
            self.keys.access_not_before(username.as_str()),
        ];
        self.run(async move {
            let mut conn = self.conn().await?;
            // One MGET in one slot: the record and its cut-offs as of the same moment.
            let values: Vec<Option<String>> =
                redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
            let [user, tokens, access]: [Option<String>; 3] = values
                .try_into()
                .map_err(|_| internal("MGET of 3 keys answered another number of values"))?;
            let cut_offs = UserCutOffs {
                tokens: parse_not_before(tokens, now)?,
                access: parse_not_before(access, now)?,
            };
            Ok((parse_record(user)?, cut_offs))
        })
        .await
    }

    async fn revocations_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> StoreResult<FeedPage> {
        let position = match cursor {
            None => None,
            Some(text) => Some(parse_cursor(text).ok_or(StoreError::InvalidCursor)?),
        };
        let asked = cursor.unwrap_or(START_CURSOR).to_owned();
        self.run(self.read_feed(position, asked, limit, now)).await
    }

    async fn client_and_failures(
        &self,
        client_id: Option<&ClientId>,
        keys: &[String],
        now: UnixTime,
    ) -> StoreResult<ClientRead> {
        let client = client_id.map(|id| {
            let subject = Subject::Client(id.clone());
            [
                self.keys.client(id.as_str()),
                self.keys.not_before(&subject),
            ]
        });
        let counters = keys.iter().map(|key| self.keys.failures(key)).collect();
        self.run(self.read_client_and_counts(client, counters, now))
            .await
    }

    async fn use_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool> {
        self.once_use(key, expires_at, now).await
    }

    async fn record_failure(&self, key: &str, window_secs: u64) -> StoreResult<(u64, u64)> {
        self.failure_record(key, window_secs).await
    }

    async fn reserve_attempt(
        &self,
        key: &str,
        rule: &AttemptRule,
        now: UnixTime,
    ) -> StoreResult<Reservation> {
        self.attempt_reserve(key, rule, now).await
    }

    async fn release_attempt(&self, key: &str) -> StoreResult<()> {
        self.attempt_release(key).await
    }

    async fn clear_failures(&self, key: &str) -> StoreResult<()> {
        self.failures_clear(key).await
    }
}
