//! The store contract: refresh-token families, their rotation, reuse detection and revocation.

use super::*;

pub async fn a_created_family_can_be_read_back(store: &dyn Store) -> StoreResult<()> {
    let fam = family("fam", "rt1", now());
    store.create_family(&fam).await?;
    assert_eq!(store.get_family(&fam.id).await?, Some(fam));
    assert_eq!(store.get_family(&tid("unknown")).await?, None);
    Ok(())
}

pub async fn presenting_the_current_token_rotates_the_family(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    store.create_family(&family("fam", "rt1", now)).await?;
    let first = rotation("fam", "rt1", "rt2", now * 1000, GRACE_MS);
    let rotated = expect_outcome("rotated", store.rotate_refresh(&first).await?);
    assert_eq!(rotated.current, first.successor);
    assert_eq!(rotated.previous, Some(tid("rt1")));
    assert_eq!(rotated.rotated_at_ms, Some(now * 1000));
    assert!(!rotated.revoked);
    assert_eq!(store.get_family(&tid("fam")).await?, Some(rotated));

    // The successor is current now, so it rotates in turn.
    let second = rotation("fam", "rt2", "rt3", now * 1000 + 60_000, GRACE_MS);
    let again = expect_outcome("rotated", store.rotate_refresh(&second).await?);
    assert_eq!(again.current.jti, tid("rt3"));
    assert_eq!(again.previous, Some(tid("rt2")));
    Ok(())
}

pub async fn a_repeated_refresh_inside_the_grace_window_gets_the_same_successor(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let t0 = now * 1000;
    store.create_family(&family("fam", "rt1", now)).await?;
    let first = rotation("fam", "rt1", "rt2", t0, GRACE_MS);
    let rotated = expect_outcome("rotated", store.rotate_refresh(&first).await?);

    for at in [t0, t0 + 1, t0 + GRACE_MS] {
        let retry = rotation("fam", "rt1", "other", at, GRACE_MS);
        let repeated = expect_outcome("repeated", store.rotate_refresh(&retry).await?);
        assert_eq!(repeated, rotated, "unchanged, with the first successor");
    }
    assert_eq!(store.get_family(&tid("fam")).await?, Some(rotated));
    assert!(
        all_events(store, now).await?.is_empty(),
        "a repeat revokes nothing"
    );
    Ok(())
}

pub async fn a_repeat_after_the_grace_window_is_reuse_and_revokes_the_family(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let t0 = now * 1000;
    store.create_family(&family("fam", "rt1", now)).await?;
    let first = rotation("fam", "rt1", "rt2", t0, GRACE_MS);
    expect_outcome("rotated", store.rotate_refresh(&first).await?);

    let late = rotation("fam", "rt1", "rt3", t0 + GRACE_MS + 1, GRACE_MS);
    let reused = expect_outcome("reused", store.rotate_refresh(&late).await?);
    assert!(reused.revoked);
    assert_eq!(reused.current, first.successor);
    assert_eq!(store.get_family(&tid("fam")).await?, Some(reused));

    // Kept as long as the last access token, which carries the family's `sid`.
    let expected = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: first.successor.issued_at + ACCESS_TTL + FAMILY_EVENT_MARGIN,
    };
    assert_eq!(all_events(store, now).await?, [expected]);

    let successor = rotation("fam", "rt2", "rt4", t0 + GRACE_MS + 2, GRACE_MS);
    assert_eq!(
        store.rotate_refresh(&successor).await?,
        RotationOutcome::Inactive,
        "the successor dies with its family"
    );
    Ok(())
}

pub async fn with_a_zero_grace_window_any_repeat_is_reuse(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    store.create_family(&family("fam", "rt1", now)).await?;
    let first = rotation("fam", "rt1", "rt2", now * 1000, 0);
    expect_outcome("rotated", store.rotate_refresh(&first).await?);
    let same_instant = rotation("fam", "rt1", "rt3", now * 1000, 0);
    let reused = expect_outcome("reused", store.rotate_refresh(&same_instant).await?);
    assert!(reused.revoked);
    assert_eq!(all_events(store, now).await?.len(), 1);
    Ok(())
}

pub async fn a_token_that_never_belonged_to_the_family_is_reuse(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    store.create_family(&family("fam", "rt1", now)).await?;
    let forged = rotation("fam", "forged", "rt2", now * 1000, GRACE_MS);
    let reused = expect_outcome("reused", store.rotate_refresh(&forged).await?);
    assert!(reused.revoked);
    assert_eq!(reused.current.jti, tid("rt1"));
    let current = rotation("fam", "rt1", "rt3", now * 1000, GRACE_MS);
    let outcome = store.rotate_refresh(&current).await?;
    assert_eq!(outcome, RotationOutcome::Inactive);
    Ok(())
}

pub async fn an_unknown_family_is_inactive(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let r = rotation("nope", "rt1", "rt2", now * 1000, GRACE_MS);
    assert_eq!(store.rotate_refresh(&r).await?, RotationOutcome::Inactive);
    assert_eq!(store.get_family(&tid("nope")).await?, None);
    assert!(all_events(store, now).await?.is_empty());
    Ok(())
}

pub async fn a_revoked_family_is_inactive(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    store.create_family(&family("fam", "rt1", now)).await?;
    assert!(store.revoke_family(&tid("fam"), now).await?);
    let r = rotation("fam", "rt1", "rt2", now * 1000, GRACE_MS);
    assert_eq!(store.rotate_refresh(&r).await?, RotationOutcome::Inactive);
    let kept = store.get_family(&tid("fam")).await?.expect("family");
    assert_eq!(kept.current.jti, tid("rt1"), "nothing rotated");
    assert_eq!(all_events(store, now).await?.len(), 1, "no second event");
    Ok(())
}

pub async fn an_expired_family_is_inactive(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let fam = family("fam", "rt1", now);
    store.create_family(&fam).await?;
    let expiry_ms = fam.current.expires_at * 1000;
    let just_before = rotation("fam", "rt1", "rt2", expiry_ms - 1, GRACE_MS);
    let at_expiry = Rotation {
        now_ms: expiry_ms,
        ..just_before.clone()
    };
    assert_eq!(
        store.rotate_refresh(&at_expiry).await?,
        RotationOutcome::Inactive
    );
    assert_eq!(store.get_family(&tid("fam")).await?, Some(fam));
    expect_outcome("rotated", store.rotate_refresh(&just_before).await?);
    Ok(())
}

pub async fn fifty_concurrent_rotations_of_one_token_yield_one_successor(
    store: SharedStore,
) -> StoreResult<()> {
    let now = now();
    store.create_family(&family("fam", "rt1", now)).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let r = rotation("fam", "rt1", &format!("succ{i}"), now * 1000, 60_000);
        tasks.spawn(async move { store.rotate_refresh(&r).await });
    }
    let (mut rotated, mut repeated) = (Vec::new(), Vec::new());
    for outcome in tasks.join_all().await {
        match outcome? {
            RotationOutcome::Rotated(f) => rotated.push(f),
            RotationOutcome::Repeated(f) => repeated.push(f),
            other => panic!("a concurrent retry must not be {other:?}"),
        }
    }
    assert_eq!((rotated.len(), repeated.len()), (1, 49));
    let winner = &rotated[0];
    assert!(repeated.iter().all(|f| f.current.jti == winner.current.jti));
    assert_eq!(store.get_family(&tid("fam")).await?.as_ref(), Some(winner));
    assert!(all_events(&*store, now).await?.is_empty());
    Ok(())
}

pub async fn a_revoked_family_leaves_the_feed_when_its_last_access_token_expires(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    // The first generation's access token was issued by a replica with a longer lifetime.
    let mut first = family("fam", "rt1", now);
    first.current.access_lifetime = Some(3 * ACCESS_TTL);
    store.create_family(&first).await?;
    let rotated = rotation("fam", "rt1", "rt2", now * 1000, GRACE_MS);
    expect_outcome("rotated", store.rotate_refresh(&rotated).await?);
    assert!(store.revoke_family(&tid("fam"), now).await?);

    // Access tokens carry the family's `sid`; the longest lifetime among them counts, from the
    // last generation's issue, with the margin for verifiers' leeway.
    let until = rotated.successor.issued_at + 3 * ACCESS_TTL + FAMILY_EVENT_MARGIN;
    let event = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: until,
    };
    assert_eq!(all_events(store, now).await?, std::slice::from_ref(&event));
    assert_eq!(all_events(store, until).await?, [event]);
    assert!(
        all_events(store, until + 1).await?.is_empty(),
        "gone once no token of the family can be live, long before its refresh token expires"
    );
    Ok(())
}

pub async fn a_family_stored_without_an_access_lifetime_stays_in_the_feed_as_long_as_its_refresh_token(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let mut older = family("fam", "rt1", now);
    older.current.access_lifetime = None;
    store.create_family(&older).await?;
    // A rotation by a replica that records lifetimes cannot know the earlier tokens' ones.
    let rotated = rotation("fam", "rt1", "rt2", now * 1000, GRACE_MS);
    expect_outcome("rotated", store.rotate_refresh(&rotated).await?);
    assert!(store.revoke_family(&tid("fam"), now).await?);
    let event = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: rotated.successor.expires_at,
    };
    let after_every_access_token = now + 3 * HOUR / 4;
    assert_eq!(all_events(store, after_every_access_token).await?, [event]);
    Ok(())
}

pub async fn revoking_a_family_reports_true_once_then_false(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let fam = family("fam", "rt1", now);
    store.create_family(&fam).await?;
    assert!(store.revoke_family(&fam.id, now).await?);
    assert!(!store.revoke_family(&fam.id, now).await?);
    assert!(!store.revoke_family(&tid("unknown"), now).await?);
    let stored = store.get_family(&fam.id).await?.expect("family");
    assert!(stored.revoked);
    let expected = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: now + ACCESS_TTL + FAMILY_EVENT_MARGIN,
    };
    assert_eq!(
        all_events(store, now).await?,
        [expected],
        "one event, for the real revocation"
    );
    Ok(())
}
