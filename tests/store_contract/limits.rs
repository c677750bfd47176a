//! The store contract: failure counters, attempt reservations, single-use keys and purging.

use super::*;

pub async fn failures_are_counted_within_one_window_and_cleared(
    store: &dyn Store,
) -> StoreResult<()> {
    assert_eq!(failure_count(store, "login:alice").await?, (0, 0));
    let (count, left) = store.record_failure("login:alice", 600).await?;
    assert_eq!(count, 1);
    assert!((598..=600).contains(&left), "seconds left: {left}");
    assert_eq!(store.record_failure("login:alice", 600).await?.0, 2);
    let (count, left) = store.record_failure("login:alice", 600).await?;
    assert_eq!(count, 3);
    assert!(
        (597..=600).contains(&left),
        "the window runs from the first failure: {left}"
    );
    let (count, left) = failure_count(store, "login:alice").await?;
    assert_eq!(count, 3);
    assert!(left > 0 && left <= 600);
    assert_eq!(failure_count(store, "login:bob").await?, (0, 0));

    store.clear_failures("login:alice").await?;
    assert_eq!(failure_count(store, "login:alice").await?, (0, 0));
    assert_eq!(store.record_failure("login:alice", 600).await?.0, 1);
    Ok(())
}

pub async fn a_client_and_failure_counts_are_read_together(store: &dyn Store) -> StoreResult<()> {
    let app = client("app", now());
    store.create_client(&app).await?;
    store.record_failure("client:id:app", 600).await?;
    store.record_failure("client:id:app", 600).await?;
    let keys = [
        "client:id:app".to_owned(),
        "client:addr:10.0.0.1".to_owned(),
    ];

    let read = store
        .client_and_failures(Some(&app.client_id), &keys, now())
        .await?;
    assert_eq!(read.client, Some(app));
    assert_eq!(read.not_before, None);
    let counts = read.failures;
    assert_eq!(counts.len(), 2);
    assert_eq!(counts[0].0, 2);
    assert!(
        (1..=600).contains(&counts[0].1),
        "seconds left: {}",
        counts[0].1
    );
    assert_eq!(counts[1], (0, 0));
    assert_eq!(failure_counts(store, &keys).await?, counts);

    let unknown = ClientId::parse("nobody").expect("client id");
    let read = store
        .client_and_failures(Some(&unknown), &keys[1..], now())
        .await?;
    assert_eq!(read.client, None);
    assert_eq!(read.failures, vec![(0, 0)]);
    let read = store.client_and_failures(None, &[], now()).await?;
    assert_eq!(read, ClientRead::default());
    Ok(())
}

pub async fn attempts_are_reserved_past_their_free_count_only_after_their_wait(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let lock = AttemptRule::lock(2, 600);
    let reserve = |key: &'static str, rule: AttemptRule, at: UnixTime| async move {
        store.reserve_attempt(key, &rule, at).await
    };
    assert_eq!(reserve("pair", lock, now).await?, Reservation::Granted);
    assert_eq!(reserve("pair", lock, now).await?, Reservation::Granted);
    let Reservation::Refused { retry_after } = reserve("pair", lock, now).await? else {
        panic!("a third attempt past a lock of two");
    };
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    // A success gives its reservation back: one more attempt may go ahead.
    store.release_attempt("pair").await?;
    assert_eq!(reserve("pair", lock, now).await?, Reservation::Granted);
    assert!(matches!(
        reserve("pair", lock, now).await?,
        Reservation::Refused { .. }
    ));

    let backoff = AttemptRule {
        free: 1,
        base: 2,
        cap: 5,
        window: 900,
    };
    assert_eq!(reserve("user", backoff, now).await?, Reservation::Granted);
    assert_eq!(
        reserve("user", backoff, now + 1).await?,
        Reservation::Refused { retry_after: 1 }
    );
    assert_eq!(
        reserve("user", backoff, now + 2).await?,
        Reservation::Granted
    );
    assert_eq!(
        reserve("user", backoff, now + 5).await?,
        Reservation::Refused { retry_after: 1 }
    );
    assert_eq!(
        reserve("user", backoff, now + 6).await?,
        Reservation::Granted
    );
    assert_eq!(
        reserve("user", backoff, now + 7).await?,
        Reservation::Refused { retry_after: 4 },
        "capped at 5 s after the last"
    );
    // Releasing never goes below zero; reservations show in the failure counts.
    for _ in 0..5 {
        store.release_attempt("user").await?;
    }
    assert_eq!(failure_count(store, "user").await?.0, 0);
    assert_eq!(failure_count(store, "pair").await?.0, 2);
    Ok(())
}

pub async fn the_failure_count_restarts_after_the_window(store: &dyn Store) -> StoreResult<()> {
    let (count, left) = store.record_failure("login:alice", 1).await?;
    assert_eq!(count, 1);
    assert!(left <= 1);
    // Failure windows run on the store's own clock; wait (bounded) until this one has ended.
    let deadline = Instant::now() + Duration::from_secs(5);
    while failure_count(store, "login:alice").await?.0 != 0 {
        assert!(
            Instant::now() < deadline,
            "the one-second window never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.record_failure("login:alice", 600).await?.0, 1);
    Ok(())
}

pub async fn purging_keeps_live_entries_and_hides_expired_ones(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let (soon, purge_at) = (now + 100, now + 500);
    let mut short = family("short", "rt-s", now);
    short.current.expires_at = soon;
    store.create_family(&short).await?;
    store.create_family(&family("long", "rt-l", now)).await?;
    store.revoke_token(&tid("at-short"), soon).await?;
    store.revoke_token(&tid("at-long"), now + HOUR).await?;
    store
        .revoke_subject(&user_subject("bob"), now, (soon - now - 1) as u64)
        .await?;
    store
        .revoke_subject(&user_subject("carol"), now, 3600)
        .await?;
    store.record_failure("login:alice", 3600).await?;

    store.purge_expired(purge_at).await?;

    assert!(store.get_family(&tid("long")).await?.is_some());
    let r = rotation("long", "rt-l", "rt-l2", purge_at * 1000, GRACE_MS);
    expect_outcome("rotated", store.rotate_refresh(&r).await?);
    assert!(store.is_token_revoked(&tid("at-long"), purge_at).await?);
    assert!(!store.is_token_revoked(&tid("at-short"), purge_at).await?);
    assert_eq!(
        store
            .subject_not_before(&user_subject("carol"), purge_at)
            .await?,
        Some(now + 1)
    );
    assert_eq!(
        store
            .subject_not_before(&user_subject("bob"), purge_at)
            .await?,
        None
    );
    assert_eq!(failure_count(store, "login:alice").await?.0, 1);
    let feed = store.revocations_after(None, 10, purge_at).await?;
    let live: Vec<_> = feed.events.into_iter().map(|(_, e)| e).collect();
    assert_eq!(
        live,
        [
            RevocationEvent::Token {
                jti: "at-long".to_owned(),
                exp: now + HOUR
            },
            RevocationEvent::Subject {
                sub: "carol".to_owned(),
                not_before: now + 1,
                exp: now + 1 + HOUR
            },
        ]
    );
    Ok(())
}

pub async fn a_key_is_used_once_until_it_expires_then_free_again(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let exp = now + 300;
    assert!(store.use_once("assertion:web:j1", exp, now).await?);
    assert!(!store.use_once("assertion:web:j1", exp, now).await?);
    assert!(!store.use_once("assertion:web:j1", exp + 60, exp).await?);
    // Another key is independent.
    assert!(store.use_once("assertion:api:j1", exp, now).await?);
    // Once the first use has expired, the key is free again (its assertion is dead anyway).
    assert!(
        store
            .use_once("assertion:web:j1", exp + 600, exp + 1)
            .await?
    );
    assert!(
        !store
            .use_once("assertion:web:j1", exp + 600, exp + 2)
            .await?
    );
    Ok(())
}

pub async fn fifty_concurrent_uses_of_one_key_succeed_once(store: SharedStore) -> StoreResult<()> {
    let now = now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.use_once("assertion:web:race", now + 300, now).await });
    }
    let mut firsts = 0;
    for result in tasks.join_all().await {
        firsts += usize::from(result?);
    }
    assert_eq!(firsts, 1);
    Ok(())
}

pub async fn purging_drops_expired_single_use_markers_only(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    assert!(store.use_once("short", now + 10, now).await?);
    assert!(store.use_once("long", now + 3600, now).await?);
    store.purge_expired(now + 100).await?;
    assert!(!store.use_once("long", now + 3600, now + 100).await?);
    assert!(store.use_once("short", now + 200, now + 100).await?);
    Ok(())
}
