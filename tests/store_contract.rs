//! The store contract: every backend must pass the same suite.
//!
//! `store_contract!(name, open_expr)` instantiates the whole suite for one backend; `open_expr`
//! is a future of `(SharedStore, guard)`, where the guard keeps whatever backs the store (a temp
//! dir, a server) alive for the test. Each test gets a fresh store. Times are derived from one
//! reading of the clock per test, so backends that expire entries by real time (Redis TTLs) see
//! realistic values, while the store's answers depend only on the `now` passed in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use latchkey::domain::{ClientId, GrantType, Scope, TokenId, UnixTime, Username};
use latchkey::store::embedded::{DB_FILE, EmbeddedStore, SCHEMA_VERSION};
use latchkey::store::{
    AttemptRule, ClientKeys, ClientRead, ClientRecord, FAMILY_EVENT_MARGIN, Family,
    RefreshGeneration, Reservation, RevocationEvent, Rotation, RotationOutcome, SharedStore, Store,
    StoreError, StoreResult, Subject, SubjectKind, TokenLifetimes, UserCutOffs, UserRecord,
    failure_count, failure_counts,
};

type Guard = Box<dyn Any + Send>;

async fn open_embedded() -> (SharedStore, Guard) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path()).expect("open the embedded store");
    (Arc::new(store), Box::new(dir))
}

macro_rules! store_contract {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            #[tokio::test]
            async fn a_key_is_used_once_until_it_expires_then_free_again() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_key_is_used_once_until_it_expires_then_free_again(&*store).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn fifty_concurrent_uses_of_one_key_succeed_once() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::fifty_concurrent_uses_of_one_key_succeed_once(store).await
            }

            #[tokio::test]
            async fn purging_drops_expired_single_use_markers_only() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::purging_drops_expired_single_use_markers_only(&*store).await
            }

            #[tokio::test]
            async fn a_revocation_is_remembered_as_long_as_the_longest_token_lifetime_recorded() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_revocation_is_remembered_as_long_as_the_longest_token_lifetime_recorded(&*store).await
            }

            #[tokio::test]
            async fn repeating_a_revocation_adds_nothing_to_the_feed() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::repeating_a_revocation_adds_nothing_to_the_feed(&*store).await
            }

            #[tokio::test]
            async fn a_fresh_store_answers_ping() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_fresh_store_answers_ping(&*store).await
            }

            #[tokio::test]
            async fn a_created_user_can_be_read_back_and_updated() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_created_user_can_be_read_back_and_updated(&*store).await
            }

            #[tokio::test]
            async fn a_user_is_replaced_only_if_unchanged_since_it_was_read() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_user_is_replaced_only_if_unchanged_since_it_was_read(&*store).await
            }

            #[tokio::test]
            async fn creating_a_user_twice_is_a_conflict() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::creating_a_user_twice_is_a_conflict(&*store).await
            }

            #[tokio::test]
            async fn updating_a_missing_user_is_not_found() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::updating_a_missing_user_is_not_found(&*store).await
            }

            #[tokio::test]
            async fn users_are_listed_in_username_order_a_page_at_a_time() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::users_are_listed_in_username_order_a_page_at_a_time(&*store).await
            }

            #[tokio::test]
            async fn a_created_client_can_be_read_back_updated_and_listed() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_created_client_can_be_read_back_updated_and_listed(&*store).await
            }

            #[tokio::test]
            async fn creating_a_client_twice_is_a_conflict_and_updating_a_missing_one_is_not_found() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::creating_a_client_twice_is_a_conflict_and_updating_a_missing_one_is_not_found(&*store).await
            }

            #[tokio::test]
            async fn deleting_a_client_reports_whether_it_was_there() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::deleting_a_client_reports_whether_it_was_there(&*store).await
            }

            #[tokio::test]
            async fn a_created_family_can_be_read_back() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_created_family_can_be_read_back(&*store).await
            }

            #[tokio::test]
            async fn presenting_the_current_token_rotates_the_family() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::presenting_the_current_token_rotates_the_family(&*store).await
            }

            #[tokio::test]
            async fn a_repeated_refresh_inside_the_grace_window_gets_the_same_successor() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_repeated_refresh_inside_the_grace_window_gets_the_same_successor(&*store).await
            }

            #[tokio::test]
            async fn a_repeat_after_the_grace_window_is_reuse_and_revokes_the_family() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_repeat_after_the_grace_window_is_reuse_and_revokes_the_family(&*store).await
            }

            #[tokio::test]
            async fn with_a_zero_grace_window_any_repeat_is_reuse() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::with_a_zero_grace_window_any_repeat_is_reuse(&*store).await
            }

            #[tokio::test]
            async fn a_token_that_never_belonged_to_the_family_is_reuse() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_token_that_never_belonged_to_the_family_is_reuse(&*store).await
            }

            #[tokio::test]
            async fn an_unknown_family_is_inactive() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::an_unknown_family_is_inactive(&*store).await
            }

            #[tokio::test]
            async fn a_revoked_family_is_inactive() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_revoked_family_is_inactive(&*store).await
            }

            #[tokio::test]
            async fn an_expired_family_is_inactive() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::an_expired_family_is_inactive(&*store).await
            }

            #[tokio::test]
            async fn revoking_a_family_reports_true_once_then_false() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::revoking_a_family_reports_true_once_then_false(&*store).await
            }

            #[tokio::test]
            async fn a_revoked_family_leaves_the_feed_when_its_last_access_token_expires(
            ) -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_revoked_family_leaves_the_feed_when_its_last_access_token_expires(
                    &*store,
                )
                .await
            }

            #[tokio::test]
            async fn a_family_stored_without_an_access_lifetime_stays_in_the_feed_as_long_as_its_refresh_token(
            ) -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_family_stored_without_an_access_lifetime_stays_in_the_feed_as_long_as_its_refresh_token(
                    &*store,
                )
                .await
            }

            #[tokio::test]
            async fn a_revoked_token_stays_revoked_until_it_expires() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_revoked_token_stays_revoked_until_it_expires(&*store).await
            }

            #[tokio::test]
            async fn a_subject_revocation_cuts_off_at_the_next_second_and_never_lowers_the_cut_off() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_subject_revocation_cuts_off_at_the_next_second_and_never_lowers_the_cut_off(&*store).await
            }

            #[tokio::test]
            async fn users_and_clients_of_one_name_are_separate_subjects() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::users_and_clients_of_one_name_are_separate_subjects(&*store).await
            }

            #[tokio::test]
            async fn a_name_held_by_one_kind_of_account_is_refused_to_the_other() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_name_held_by_one_kind_of_account_is_refused_to_the_other(&*store).await
            }

            #[tokio::test]
            async fn a_user_and_their_cut_offs_are_read_together() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_user_and_their_cut_offs_are_read_together(&*store).await
            }

            #[tokio::test]
            async fn a_user_s_access_cut_off_and_token_cut_off_each_reach_past_the_other() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_user_s_access_cut_off_and_token_cut_off_each_reach_past_the_other(&*store).await
            }

            #[tokio::test]
            async fn a_subject_revocation_is_forgotten_after_its_lifetime() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_subject_revocation_is_forgotten_after_its_lifetime(&*store).await
            }

            #[tokio::test]
            async fn the_feed_pages_through_events_in_order_with_cursors() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::the_feed_pages_through_events_in_order_with_cursors(&*store).await
            }

            #[tokio::test]
            async fn the_feed_leaves_out_expired_events() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::the_feed_leaves_out_expired_events(&*store).await
            }

            #[tokio::test]
            async fn an_unparseable_feed_cursor_is_invalid() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::an_unparseable_feed_cursor_is_invalid(&*store).await
            }

            #[tokio::test]
            async fn a_feed_cursor_never_handed_out_is_invalid() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_feed_cursor_never_handed_out_is_invalid(&*store).await
            }

            #[tokio::test]
            async fn failures_are_counted_within_one_window_and_cleared() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::failures_are_counted_within_one_window_and_cleared(&*store).await
            }

            #[tokio::test]
            async fn a_client_and_failure_counts_are_read_together() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::a_client_and_failure_counts_are_read_together(&*store).await
            }

            #[tokio::test]
            async fn attempts_are_reserved_past_their_free_count_only_after_their_wait() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::attempts_are_reserved_past_their_free_count_only_after_their_wait(&*store).await
            }

            #[tokio::test]
            async fn the_failure_count_restarts_after_the_window() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::the_failure_count_restarts_after_the_window(&*store).await
            }

            #[tokio::test]
            async fn purging_keeps_live_entries_and_hides_expired_ones() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::purging_keeps_live_entries_and_hides_expired_ones(&*store).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn fifty_concurrent_rotations_of_one_token_yield_one_successor() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                contract::fifty_concurrent_rotations_of_one_token_yield_one_successor(store).await
            }

            #[tokio::test]
            async fn a_code_is_redeemed_once_and_a_replay_gets_the_first_family() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                codes::a_code_is_redeemed_once_and_a_replay_gets_the_first_family(&*store).await
            }

            #[tokio::test]
            async fn a_code_expires_by_the_caller_s_clock() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                codes::a_code_expires_by_the_caller_s_clock(&*store).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn fifty_concurrent_redemptions_of_one_code_succeed_once() -> StoreResult<()> {
                let (store, _guard) = $open.await;
                codes::fifty_concurrent_redemptions_of_one_code_succeed_once(store).await
            }
        }
    };
}

store_contract!(embedded, open_embedded());
store_contract!(redis, open_redis());
store_contract!(redis_cluster, open_redis_cluster());

#[path = "support/redis_server.rs"]
mod redis_server;

/// One redis-server for the whole test binary (the harness's watchdog stops it when the binary
/// exits); each test gets a fresh store under a key prefix of its own.
async fn open_redis() -> (SharedStore, Guard) {
    static SERVER: std::sync::OnceLock<redis_server::RedisServer> = std::sync::OnceLock::new();
    let server = SERVER.get_or_init(redis_server::RedisServer::start);
    (open_redis_store(&server.url()).await, Box::new(()))
}

/// One 3-master Redis Cluster for the whole test binary, as `open_redis`.
async fn open_redis_cluster() -> (SharedStore, Guard) {
    static CLUSTER: std::sync::OnceLock<redis_server::RedisCluster> = std::sync::OnceLock::new();
    let cluster = CLUSTER.get_or_init(redis_server::RedisCluster::start);
    (open_redis_store(&cluster.url()).await, Box::new(()))
}

async fn open_redis_store(url: &str) -> SharedStore {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let store = latchkey::store::redis::RedisStore::connect(url, &format!("contract{n}:"))
        .await
        .expect("open the redis store");
    Arc::new(store)
}

/// Fixtures and assertions shared by the contract and the embedded-only tests.
mod fixtures {
    use super::*;

    pub const HOUR: i64 = 3600;
    /// The lifetime of the access token issued with each generation.
    pub const ACCESS_TTL: i64 = 300;

    pub fn now() -> UnixTime {
        latchkey::domain::now()
    }

    pub fn tid(id: &str) -> TokenId {
        TokenId::from_trusted(id)
    }

    pub fn user_subject(name: &str) -> Subject {
        Subject::User(Username::parse(name).expect("username"))
    }

    pub fn client_subject(id: &str) -> Subject {
        Subject::Client(ClientId::parse(id).expect("client id"))
    }

    pub fn user(name: &str, now: UnixTime) -> UserRecord {
        UserRecord {
            username: Username::parse(name).expect("username"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            roles: BTreeSet::from(["reader".to_owned()]),
            disabled: false,
            created_at: now,
            updated_at: now,
            imported: false,
        }
    }

    pub fn client(id: &str, now: UnixTime) -> ClientRecord {
        ClientRecord {
            client_id: ClientId::parse(id).expect("client id"),
            secret_hash: Some("ab".repeat(32)),
            grants: BTreeSet::from([GrantType::ClientCredentials, GrantType::RefreshToken]),
            scope: Scope::parse("read write").expect("scope"),
            audiences: BTreeSet::from(["api".to_owned()]),
            created_at: now,
            keys: None,
            keys_version: None,
            redirect_uris: Default::default(),
            first_party: false,
        }
    }

    /// A refresh token issued at `issued_at`, valid for an hour, with an access token valid
    /// for [`ACCESS_TTL`].
    pub fn generation(jti: &str, issued_at: UnixTime) -> RefreshGeneration {
        RefreshGeneration {
            jti: tid(jti),
            issued_at,
            expires_at: issued_at + HOUR,
            access_lifetime: Some(ACCESS_TTL),
        }
    }

    pub fn family(id: &str, jti: &str, now: UnixTime) -> Family {
        Family {
            id: tid(id),
            subject: "alice".to_owned(),
            client_id: ClientId::parse("app").expect("client id"),
            scope: Scope::parse("read").expect("scope"),
            audience: "api".to_owned(),
            current: generation(jti, now),
            previous: None,
            rotated_at_ms: None,
            revoked: false,
        }
    }

    /// Presents `presented` at `now_ms`, offering a successor issued one second after `now`.
    pub fn rotation(
        fam: &str,
        presented: &str,
        successor: &str,
        now_ms: i64,
        grace_ms: i64,
    ) -> Rotation {
        Rotation {
            family: tid(fam),
            presented: tid(presented),
            successor: generation(successor, now_ms / 1000 + 1),
            now_ms,
            grace_ms,
        }
    }

    /// Asserts that a rotation was `kind` (rotated, repeated or reused); returns its family.
    #[track_caller]
    pub fn expect_outcome(kind: &str, outcome: RotationOutcome) -> Family {
        let (actual, family) = match outcome {
            RotationOutcome::Rotated(f) => ("rotated", f),
            RotationOutcome::Repeated(f) => ("repeated", f),
            RotationOutcome::Reused(f) => ("reused", f),
            RotationOutcome::Inactive => panic!("expected {kind}, got Inactive"),
        };
        assert_eq!(actual, kind, "unexpected rotation outcome");
        family
    }

    /// Every live event of the feed, without cursors.
    pub async fn all_events(store: &dyn Store, now: UnixTime) -> StoreResult<Vec<RevocationEvent>> {
        let page = store.revocations_after(None, 1000, now).await?;
        Ok(page.events.into_iter().map(|(_, e)| e).collect())
    }
}

/// The contract bodies, one per test, each against a fresh store.
#[path = "store_contract/contract.rs"]
mod contract;

/// The contract of authorization codes.
#[path = "store_contract/codes.rs"]
mod codes;

/// Tests of the embedded store alone: its file, its restore, its sweeper.
#[path = "store_contract/embedded_only.rs"]
mod embedded_only;
