//! The store: users, clients, refresh-token families, the revocation list and its feed, and
//! failed-login counters, behind one interface with two backends that pass one contract suite.
//!
//! Every operation that must be atomic across replicas (refresh rotation above all) is a single
//! method here, so a backend implements it as one transaction or one script, never as a
//! read-then-write in the caller.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::domain::{ClientId, GrantType, Scope, TokenId, UnixTime, Username};

pub mod attempts;
pub mod codes;
pub mod embedded;
pub mod lifetimes;
pub mod redis;
pub mod revocations;

pub use attempts::{AttemptRule, Reservation};
pub use codes::{AuthorizationCode, CodeRedemption};
pub use lifetimes::{CutOffReach, TokenLifetimes};
pub use revocations::{
    FeedPage, RevocationEvent, Subject, SubjectKind, UserCutOffs, next_not_before,
};

/// A registered user. The password is held as an argon2id PHC string, or, for a user imported
/// with another system's hash, as that hash until the user's next sign-in replaces it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub username: Username,
    pub password_hash: String,
    pub roles: BTreeSet<String>,
    pub disabled: bool,
    pub created_at: UnixTime,
    pub updated_at: UnixTime,
    /// The hash was made by another system (even if it is argon2id): the next sign-in that
    /// proves the password makes it argon2id of the configured cost.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl UserRecord {
    /// Whether the user is an enabled administrator.
    pub fn is_admin(&self) -> bool {
        !self.disabled && self.roles.contains(crate::domain::ADMIN_ROLE)
    }
}

/// A registered client. Public clients have neither secret nor keys; confidential ones keep
/// only the SHA-256 of their secret, or their public keys (`private_key_jwt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: ClientId,
    /// Lowercase hex SHA-256 of the secret; `None` for a public client or one with keys.
    pub secret_hash: Option<String>,
    pub grants: BTreeSet<GrantType>,
    pub scope: Scope,
    pub audiences: BTreeSet<String>,
    pub created_at: UnixTime,
    /// The public keys of a client that authenticates with signed assertions (RFC 7523
    /// §2.2). Optional, so that records written before keys existed still load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<ClientKeys>,
    /// A fresh random id each time keys are given (at registration or by an update), so that
    /// a cached copy of a published set knows a re-keying even at the same URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys_version: Option<String>,
    /// The redirect URIs of a client that signs users in through a browser
    /// (`authorization_code`), compared exactly. Empty for records written before them.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub redirect_uris: BTreeSet<String>,
    /// A client of the issuer's own operator: its users are not asked for consent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_party: bool,
}

impl ClientRecord {
    /// A client with nothing to authenticate with: no secret and no keys.
    pub fn is_public(&self) -> bool {
        self.secret_hash.is_none() && self.keys.is_none()
    }
}

/// Where a `private_key_jwt` client's public keys are: given at registration, or published by
/// the client at a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKeys {
    /// An RFC 7517 key set of public keys, as registered (checked then).
    Jwks(serde_json::Value),
    /// The URL of the client's key set, fetched and cached by the issuer.
    JwksUri(String),
}

/// One refresh token of a family: the only one that may be redeemed next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshGeneration {
    pub jti: TokenId,
    pub issued_at: UnixTime,
    pub expires_at: UnixTime,
    /// The longest lifetime, in seconds, of the access tokens issued in the family up to this
    /// generation. Access tokens (and tokens exchanged from them) are the only ones that carry
    /// the family's `sid` to resource servers, so a revoked family's feed event is kept until
    /// the last of them can have expired, not for the refresh token's weeks.
    ///
    /// The longest rather than the last, so that it stays right while replicas run with
    /// different `tokens.access_ttl` (a change rolling out). `None` (a family stored before it
    /// was recorded, or rotated since by a replica of such a version) is never replaced by a
    /// number: the tokens issued before are not known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_lifetime: Option<i64>,
}

/// How long the feed keeps an event past the tokens it concerns (a session's event has it in its
/// `exp`): room for the verifiers' clock leeway, for replicas whose clocks differ, and for a
/// follower that asks a little late.
pub const FAMILY_EVENT_MARGIN: i64 = 300;

impl RefreshGeneration {
    /// The lifetime to record for `successor` when it replaces `self` (see `access_lifetime`).
    pub fn successor_access_lifetime(&self, successor: &RefreshGeneration) -> Option<i64> {
        self.access_lifetime
            .zip(successor.access_lifetime)
            .map(|(before, now)| before.max(now))
    }
}

/// A refresh-token family: the chain of refresh tokens that descend from one login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Family {
    pub id: TokenId,
    /// The `sub` of the family's tokens: a username, or a client id.
    pub subject: String,
    pub client_id: ClientId,
    pub scope: Scope,
    pub audience: String,
    pub current: RefreshGeneration,
    /// The generation that `current` replaced, redeemable again only inside the grace window.
    pub previous: Option<TokenId>,
    /// When `previous` was redeemed, in Unix milliseconds.
    pub rotated_at_ms: Option<i64>,
    pub revoked: bool,
}

impl Family {
    /// Until when the feed event of this family's revocation matters: until every access
    /// token issued in it has expired, with [`FAMILY_EVENT_MARGIN`] (the refresh token's
    /// expiry for families stored without a lifetime).
    pub fn feed_expires_at(&self) -> UnixTime {
        let current = &self.current;
        current
            .access_lifetime
            .map_or(current.expires_at, |lifetime| {
                current
                    .issued_at
                    .saturating_add(lifetime)
                    .saturating_add(FAMILY_EVENT_MARGIN)
            })
    }
}

/// A request to redeem `presented` and, if it is the family's current token, replace it by
/// `successor`.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub family: TokenId,
    pub presented: TokenId,
    pub successor: RefreshGeneration,
    pub now_ms: i64,
    /// How long the replaced token may be presented again for the same successor; 0 disables.
    pub grace_ms: i64,
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// `presented` was current; the family now holds the new successor.
    Rotated(Family),
    /// `presented` was replaced moments ago; the family's current token is its one successor.
    Repeated(Family),
    /// `presented` was replaced longer ago than the grace window, or never belonged here: the
    /// family is now revoked.
    Reused(Family),
    /// The family is unknown, expired or already revoked.
    Inactive,
}

/// What client authentication reads before it checks a secret, in one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientRead {
    /// The client, when one was asked for and exists.
    pub client: Option<ClientRecord>,
    /// The client's revocation cut-off (see [`Store::revoke_subject`]).
    pub not_before: Option<UnixTime>,
    /// For each failure key asked for, in order: its count and the seconds until its window
    /// ends (0, 0 when none).
    pub failures: Vec<(u64, u64)>,
}

/// Store failures, each of which the API maps to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached right now; the caller should retry later (503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The record to create exists already.
    #[error("already exists")]
    Conflict,
    /// The name belongs to the other kind of account (now or once): users and clients never
    /// share a name, so that no `sub` names both.
    #[error("the name belongs to a {}", .0.as_str())]
    NameTaken(SubjectKind),
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// A feed cursor that this store never handed out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Anything else: corrupt data, a bug. Logged, answered as 500.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Records one operation of `backend` in the metrics: its time, and whether the store failed.
/// Conflicts, misses and bad cursors are answers, not failures of the store.
fn record_operation<T>(
    backend: &'static str,
    started: std::time::Instant,
    result: &StoreResult<T>,
) {
    let failure = match result {
        Err(StoreError::Unavailable(_)) => Some("unavailable"),
        Err(StoreError::Internal(_)) => Some("internal"),
        _ => None,
    };
    crate::metrics::store_operation(backend, started, failure);
}

/// The one interface both backends implement. Methods that concern expiry take `now`, so tests
/// can pass a fixed time; only the failed-login windows run on the store's own clock.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reports whether the store answers; used by `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    // Users.
    /// `Conflict` when the username exists, `NameTaken` when a client has (or had) the name.
    async fn create_user(&self, user: &UserRecord) -> StoreResult<()>;
    async fn get_user(&self, username: &Username) -> StoreResult<Option<UserRecord>>;
    /// Replaces an existing user; `NotFound` if there is none.
    async fn update_user(&self, user: &UserRecord) -> StoreResult<()>;
    /// Replaces the user `read` with `updated` only if the stored record is still exactly
    /// `read`, atomically; returns whether it did. For a change made on the strength of what
    /// was read (a password hash upgraded at login) that must not undo one made meanwhile.
    async fn replace_user_if_unchanged(
        &self,
        read: &UserRecord,
        updated: &UserRecord,
    ) -> StoreResult<bool>;
    /// Users in username order, strictly after `after`, at most `limit`.
    async fn list_users(
        &self,
        after: Option<&Username>,
        limit: usize,
    ) -> StoreResult<Vec<UserRecord>>;

    // Clients.
    /// `Conflict` when the client id exists, `NameTaken` when a user has (or had) the name.
    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()>;
    async fn get_client(&self, client_id: &ClientId) -> StoreResult<Option<ClientRecord>>;
    /// Replaces an existing client; `NotFound` if there is none.
    async fn update_client(&self, client: &ClientRecord) -> StoreResult<()>;
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    /// Returns whether a client was there to delete.
    async fn delete_client(&self, client_id: &ClientId) -> StoreResult<bool>;

    // Refresh-token families.
    /// Stores a new family; it lives until its current generation expires.
    async fn create_family(&self, family: &Family) -> StoreResult<()>;
    async fn get_family(&self, id: &TokenId) -> StoreResult<Option<Family>>;
    /// Redeems a refresh token atomically: rotation, grace-window repeat, or reuse detection
    /// (which revokes the family and appends a `Family` event to the feed).
    async fn rotate_refresh(&self, rotation: &Rotation) -> StoreResult<RotationOutcome>;
    /// Revokes a family and appends a `Family` event; returns false if it was unknown or already
    /// revoked.
    async fn revoke_family(&self, id: &TokenId, now: UnixTime) -> StoreResult<bool>;

    // Revocation list and feed.
    /// Puts an access token's `jti` on the revocation list until `expires_at` and appends a
    /// `Token` event, unless the list already holds it until then: repeating a revocation adds
    /// nothing to the feed.
    async fn revoke_token(&self, jti: &TokenId, expires_at: UnixTime) -> StoreResult<()>;
    async fn is_token_revoked(&self, jti: &TokenId, now: UnixTime) -> StoreResult<bool>;
    /// Raises the token lifetimes kept (see [`lifetimes`]) to at least `lifetimes`, never
    /// lowering them, and returns those now kept. A service records its own before it issues.
    async fn record_token_lifetimes(
        &self,
        lifetimes: TokenLifetimes,
    ) -> StoreResult<TokenLifetimes>;
    /// Declares every token of `subject` issued so far dead: atomically raises its cut-off to
    /// [`next_not_before`]`(now, cut-off in force)`, remembers it after that for `lifetime`
    /// seconds or the longest lifetime kept, whichever is longer (when the last such token has
    /// expired), appends the subject's feed event, and returns the new cut-off. Tokens whose
    /// `iat` is before the cut-off are dead.
    async fn revoke_subject(
        &self,
        subject: &Subject,
        now: UnixTime,
        lifetime: u64,
    ) -> StoreResult<UnixTime>;
    async fn subject_not_before(
        &self,
        subject: &Subject,
        now: UnixTime,
    ) -> StoreResult<Option<UnixTime>>;
    /// The user and the cut-offs of their tokens, read in one atomic read: an issuance that
    /// sees the user's credential as it was before a revocation also sees the cut-off as it
    /// was, never a newer cut-off with the older credential.
    async fn user_and_not_before(
        &self,
        username: &Username,
        now: UnixTime,
    ) -> StoreResult<(Option<UserRecord>, UserCutOffs)>;
    /// Declares the user's access tokens issued so far dead, not their sessions: raises the
    /// user's access cut-off to the second after `now`, never below either of the user's
    /// cut-offs in force (as [`Store::revoke_subject`] does for the other), remembers it for
    /// `lifetime` seconds after that or the access lifetime kept, whichever is longer, appends
    /// a `Subject` event (resource servers see only access tokens), and returns the new
    /// cut-off.
    async fn revoke_user_access(
        &self,
        username: &Username,
        now: UnixTime,
        lifetime: u64,
    ) -> StoreResult<UnixTime>;

    /// Feed events after `cursor` (from the start when `None`), oldest first, at most `limit`,
    /// leaving out events that expired before `now`.
    async fn revocations_after(
        &self,
        cursor: Option<&str>,
        limit: usize,
        now: UnixTime,
    ) -> StoreResult<FeedPage>;

    // Failed-login counters.
    /// Counts one failure for `key` in a window of `window_secs` starting at its first failure;
    /// returns the count so far and the seconds until the window ends.
    async fn record_failure(&self, key: &str, window_secs: u64) -> StoreResult<(u64, u64)>;
    /// The client (`None` when `client_id` is, or names no client), its cut-off, and the
    /// failure counts of `keys`: what client authentication reads before it checks a secret.
    /// The client and its cut-off are read atomically, as [`Store::user_and_not_before`].
    async fn client_and_failures(
        &self,
        client_id: Option<&ClientId>,
        keys: &[String],
        now: UnixTime,
    ) -> StoreResult<ClientRead>;
    async fn clear_failures(&self, key: &str) -> StoreResult<()>;
    /// Reserves one attempt on `key` under `rule` (see [`attempts::reserve`]), atomically:
    /// counted before the credential is checked, so that parallel attempts cannot all slip
    /// past a limit. The window runs on `now`.
    async fn reserve_attempt(
        &self,
        key: &str,
        rule: &AttemptRule,
        now: UnixTime,
    ) -> StoreResult<Reservation>;
    /// Gives back one reserved attempt (the credential was right); never below zero.
    async fn release_attempt(&self, key: &str) -> StoreResult<()>;

    // Single-use markers.
    /// Marks `key` used until `expires_at`, atomically across every replica sharing the store:
    /// true the first time, false while an earlier use is live (its `expires_at` not before
    /// `now`). After that the key may be used again: what it names (a client assertion's
    /// `jti`) is refused by its own expiry by then.
    async fn use_once(&self, key: &str, expires_at: UnixTime, now: UnixTime) -> StoreResult<bool>;

    // Authorization codes.
    /// Stores a new code under `key` (the SHA-256 of the code, hex) until
    /// [`AuthorizationCode::keep_until`]; `Conflict` if the key exists.
    async fn create_code(&self, key: &str, code: &AuthorizationCode) -> StoreResult<()>;
    /// What the code under `key` was issued for, spent or not, while the store remembers it;
    /// reading it changes nothing.
    async fn get_code(&self, key: &str) -> StoreResult<Option<AuthorizationCode>>;
    /// Redeems a code atomically across replicas: the first use of a live code spends it and
    /// records `family`, the session its tokens open; any later use gets that family back
    /// (and marks the code replayed); an unknown code, or one expired at `now` unused, is
    /// `Invalid`.
    async fn redeem_code(
        &self,
        key: &str,
        family: &TokenId,
        now: UnixTime,
    ) -> StoreResult<CodeRedemption>;
    /// Whether a spent code was presented again: the first redemption asks once its session
    /// exists, so that a replay that came before the session was stored still revokes it.
    async fn code_replayed(&self, key: &str) -> StoreResult<bool>;

    /// Drops entries that expired before `now`; returns how many. Backends whose entries expire
    /// by themselves (Redis TTLs) have nothing to do.
    async fn purge_expired(&self, _now: UnixTime) -> StoreResult<u64> {
        Ok(0)
    }

    /// Releases what the store holds (the embedded store closes its database, which folds the
    /// write-ahead log back into the file); called once at shutdown. Later calls on this handle
    /// answer `Unavailable`. Backends with nothing to release keep the default.
    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}

pub type SharedStore = Arc<dyn Store>;

/// The failure counts of `keys`, in order, as [`Store::client_and_failures`] reads them.
pub async fn failure_counts(store: &dyn Store, keys: &[String]) -> StoreResult<Vec<(u64, u64)>> {
    let now = crate::domain::now();
    Ok(store.client_and_failures(None, keys, now).await?.failures)
}

/// The failure count of one key, as [`failure_counts`] reads it.
pub async fn failure_count(store: &dyn Store, key: &str) -> StoreResult<(u64, u64)> {
    let counts = failure_counts(store, &[key.to_owned()]).await?;
    Ok(counts.first().copied().unwrap_or_default())
}

/// Opens the configured backend.
pub async fn open(settings: &crate::configuration::StoreSettings) -> StoreResult<SharedStore> {
    use crate::configuration::StoreBackend;
    match settings.backend {
        StoreBackend::Embedded => {
            let path = settings.path.clone();
            let store = tokio::task::spawn_blocking(move || embedded::EmbeddedStore::open(&path))
                .await
                .map_err(|e| StoreError::Internal(e.to_string()))??;
            Ok(Arc::new(store))
        }
        StoreBackend::Redis => {
            let url = settings.url.as_deref().unwrap_or_default();
            let tls_root_cert = match &settings.tls_ca_file {
                Some(path) => Some(redis::read_ca_file(path)?),
                None => None,
            };
            let options = redis::RedisOptions {
                prefix: settings.prefix.clone(),
                tls_root_cert,
                ..redis::RedisOptions::default()
            };
            Ok(Arc::new(
                redis::RedisStore::connect_with(url, options).await?,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_record_written_before_keys_existed_still_loads() {
        let stored = r#"{"client_id":"web","secret_hash":null,"grants":["password"],
            "scope":"read","audiences":[],"created_at":1700000000}"#;
        let client: ClientRecord = serde_json::from_str(stored).unwrap();
        assert_eq!(client.keys, None);
        assert!(client.is_public());
        assert!(client.redirect_uris.is_empty());
        assert!(!client.first_party);
    }
}
