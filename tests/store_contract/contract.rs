//! The bodies of the store contract, each run against a fresh store of every backend by
//! `store_contract!` in `tests/store_contract.rs`.

use std::time::{Duration, Instant};

use super::fixtures::*;
use super::*;

const GRACE_MS: i64 = 5_000;

pub async fn a_fresh_store_answers_ping(store: &dyn Store) -> StoreResult<()> {
    store.ping().await?;
    Ok(())
}

pub async fn a_created_user_can_be_read_back_and_updated(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let mut alice = user("alice", now);
    store.create_user(&alice).await?;
    assert_eq!(store.get_user(&alice.username).await?, Some(alice.clone()));

    alice.disabled = true;
    alice.roles.insert("admin".to_owned());
    alice.updated_at = now + 1;
    store.update_user(&alice).await?;
    assert_eq!(store.get_user(&alice.username).await?, Some(alice));

    let nobody = Username::parse("nobody").expect("username");
    assert_eq!(store.get_user(&nobody).await?, None);
    Ok(())
}

pub async fn a_user_is_replaced_only_if_unchanged_since_it_was_read(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let read = user("alice", now);
    store.create_user(&read).await?;
    let mut upgraded = read.clone();
    upgraded.password_hash = "upgraded".to_owned();
    assert!(store.replace_user_if_unchanged(&read, &upgraded).await?);
    assert_eq!(
        store.get_user(&read.username).await?,
        Some(upgraded.clone())
    );

    // A change made meanwhile (a new password) wins over one based on the older read.
    let mut changed = upgraded.clone();
    changed.password_hash = "new password".to_owned();
    store.update_user(&changed).await?;
    assert!(!store.replace_user_if_unchanged(&upgraded, &read).await?);
    assert_eq!(store.get_user(&read.username).await?, Some(changed));

    let ghost = user("ghost", now);
    assert!(!store.replace_user_if_unchanged(&ghost, &ghost).await?);
    assert_eq!(store.get_user(&ghost.username).await?, None);
    Ok(())
}

pub async fn creating_a_user_twice_is_a_conflict(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    store.create_user(&user("alice", now)).await?;
    let mut again = user("alice", now + 1);
    again.password_hash = "other".to_owned();
    assert!(matches!(
        store.create_user(&again).await,
        Err(StoreError::Conflict)
    ));
    let kept = store.get_user(&again.username).await?.expect("user");
    assert_eq!(kept, user("alice", now), "the first record is left alone");
    Ok(())
}

pub async fn updating_a_missing_user_is_not_found(store: &dyn Store) -> StoreResult<()> {
    let ghost = user("ghost", now());
    assert!(matches!(
        store.update_user(&ghost).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_user(&ghost.username).await?, None);
    Ok(())
}

pub async fn users_are_listed_in_username_order_a_page_at_a_time(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    for name in ["dave", "alice", "erin", "bob", "carol"] {
        store.create_user(&user(name, now)).await?;
    }
    let mut names = Vec::new();
    let mut after: Option<Username> = None;
    loop {
        let page = store.list_users(after.as_ref(), 2).await?;
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(last.username.clone());
        names.extend(page.iter().map(|u| u.username.to_string()));
    }
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin"]);

    let from_bob = Username::parse("bob").expect("username");
    let rest = store.list_users(Some(&from_bob), 10).await?;
    assert_eq!(rest.len(), 3, "strictly after `after`");
    assert_eq!(rest[0], user("carol", now));
    assert!(store.list_users(None, 0).await?.is_empty());
    Ok(())
}

pub async fn a_created_client_can_be_read_back_updated_and_listed(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let mut app = client("app", now);
    let mut public = client("spa", now);
    public.secret_hash = None;
    store.create_client(&app).await?;
    store.create_client(&public).await?;
    assert_eq!(store.get_client(&app.client_id).await?, Some(app.clone()));
    let fetched = store.get_client(&public.client_id).await?.expect("client");
    assert!(fetched.is_public());

    app.scope = Scope::parse("read").expect("scope");
    app.audiences.insert("billing".to_owned());
    store.update_client(&app).await?;
    assert_eq!(store.get_client(&app.client_id).await?, Some(app.clone()));

    let mut listed = store.list_clients().await?;
    listed.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    assert_eq!(listed, [app, public]);

    // Clients with keys instead of a secret keep them; neither kind is public.
    let mut signer = client("signer", now);
    signer.secret_hash = None;
    signer.keys = Some(ClientKeys::Jwks(
        serde_json::json!({"keys": [{"kty": "OKP"}]}),
    ));
    let mut published = client("published", now);
    published.secret_hash = None;
    published.keys = Some(ClientKeys::JwksUri("https://keys.example/jwks".to_owned()));
    for keyed in [signer, published] {
        store.create_client(&keyed).await?;
        let fetched = store.get_client(&keyed.client_id).await?.expect("client");
        assert!(!fetched.is_public());
        assert_eq!(fetched, keyed);
    }
    Ok(())
}

pub async fn creating_a_client_twice_is_a_conflict_and_updating_a_missing_one_is_not_found(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    store.create_client(&client("app", now)).await?;
    assert!(matches!(
        store.create_client(&client("app", now)).await,
        Err(StoreError::Conflict)
    ));
    let ghost = client("ghost", now);
    assert!(matches!(
        store.update_client(&ghost).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.get_client(&ghost.client_id).await?, None);
    Ok(())
}

pub async fn deleting_a_client_reports_whether_it_was_there(store: &dyn Store) -> StoreResult<()> {
    let app = client("app", now());
    store.create_client(&app).await?;
    assert!(store.delete_client(&app.client_id).await?);
    assert!(!store.delete_client(&app.client_id).await?);
    assert_eq!(store.get_client(&app.client_id).await?, None);
    assert!(store.list_clients().await?.is_empty());
    Ok(())
}

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
        exp: first.successor.issued_at + ACCESS_TTL,
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
    store.create_family(&family("fam", "rt1", now)).await?;
    let rotated = rotation("fam", "rt1", "rt2", now * 1000, GRACE_MS);
    expect_outcome("rotated", store.rotate_refresh(&rotated).await?);
    assert!(store.revoke_family(&tid("fam"), now).await?);

    // The access token issued with the last rotation is the last to carry the family's `sid`.
    let last_access = rotated.successor.issued_at + ACCESS_TTL;
    let event = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: last_access,
    };
    assert_eq!(all_events(store, now).await?, std::slice::from_ref(&event));
    assert_eq!(all_events(store, last_access).await?, [event]);
    assert!(
        all_events(store, last_access + 1).await?.is_empty(),
        "gone once no token of the family can be live, weeks before its refresh token expires"
    );
    Ok(())
}

pub async fn a_family_stored_without_an_access_expiry_stays_in_the_feed_as_long_as_its_refresh_token(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let mut older = family("fam", "rt1", now);
    older.current.access_expires_at = None;
    store.create_family(&older).await?;
    assert!(store.revoke_family(&tid("fam"), now).await?);
    let event = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: older.current.expires_at,
    };
    assert_eq!(all_events(store, now + ACCESS_TTL + 1).await?, [event]);
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
        exp: now + ACCESS_TTL,
    };
    assert_eq!(
        all_events(store, now).await?,
        [expected],
        "one event, for the real revocation"
    );
    Ok(())
}

pub async fn a_revoked_token_stays_revoked_until_it_expires(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let exp = now + 900;
    assert!(!store.is_token_revoked(&tid("at1"), now).await?);
    store.revoke_token(&tid("at1"), exp).await?;
    assert!(store.is_token_revoked(&tid("at1"), now).await?);
    assert!(store.is_token_revoked(&tid("at1"), exp - 1).await?);
    assert!(!store.is_token_revoked(&tid("at1"), exp + 1).await?);
    assert!(!store.is_token_revoked(&tid("at2"), now).await?);
    let expected = RevocationEvent::Token {
        jti: "at1".to_owned(),
        exp,
    };
    assert_eq!(all_events(store, now).await?, [expected]);
    Ok(())
}

pub async fn repeating_a_revocation_adds_nothing_to_the_feed(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let exp = now + 900;
    let event = |exp| RevocationEvent::Token {
        jti: "at1".to_owned(),
        exp,
    };
    store.revoke_token(&tid("at1"), exp).await?;
    store.revoke_token(&tid("at1"), exp).await?;
    store.revoke_token(&tid("at1"), exp - 60).await?;
    assert_eq!(all_events(store, now).await?, [event(exp)]);
    assert!(store.is_token_revoked(&tid("at1"), exp - 1).await?);
    // A later expiry is news: the list keeps it and the feed says so.
    store.revoke_token(&tid("at1"), exp + 60).await?;
    assert_eq!(all_events(store, now).await?, [event(exp), event(exp + 60)]);
    assert!(store.is_token_revoked(&tid("at1"), exp + 59).await?);
    Ok(())
}

pub async fn a_subject_revocation_cuts_off_at_the_next_second_and_never_lowers_the_cut_off(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let alice = user_subject("alice");
    assert_eq!(store.subject_not_before(&alice, now).await?, None);
    assert_eq!(store.revoke_subject(&alice, now, 3600).await?, now + 1);
    assert_eq!(store.subject_not_before(&alice, now).await?, Some(now + 1));
    // A burst within one second does not push the cut-off (and the next login) further.
    assert_eq!(store.revoke_subject(&alice, now, 3600).await?, now + 1);
    // A revocation dated earlier (a replica whose clock is behind) never lowers the cut-off.
    assert_eq!(store.revoke_subject(&alice, now - 60, 3600).await?, now + 1);
    assert_eq!(
        store.revoke_subject(&alice, now + 60, 3600).await?,
        now + 61
    );
    assert_eq!(store.subject_not_before(&alice, now).await?, Some(now + 61));
    assert_eq!(
        store.subject_not_before(&user_subject("bob"), now).await?,
        None
    );

    let events = all_events(store, now).await?;
    let cut_offs: Vec<_> = events
        .iter()
        .map(|e| match e {
            RevocationEvent::Subject {
                sub, not_before, ..
            } if sub == "alice" => *not_before,
            other => panic!("unexpected event {other:?}"),
        })
        .collect();
    assert_eq!(cut_offs, [now + 1, now + 1, now + 1, now + 61]);
    Ok(())
}

pub async fn users_and_clients_of_one_name_are_separate_subjects(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let (user, owner) = (user_subject("shared"), client_subject("shared"));
    let cut_off = store.revoke_subject(&owner, now, 3600).await?;
    assert_eq!(store.subject_not_before(&user, now).await?, None);
    assert_eq!(store.subject_not_before(&owner, now).await?, Some(cut_off));
    let app = client("shared", now);
    let read = store
        .client_and_failures(Some(&app.client_id), &[], now)
        .await?;
    assert_eq!(read.not_before, Some(cut_off));
    assert_eq!(
        store
            .user_and_not_before(&Username::parse("shared").expect("username"), now)
            .await?,
        (None, UserCutOffs::default())
    );
    let expected = RevocationEvent::Client {
        client_id: "shared".to_owned(),
        not_before: cut_off,
        exp: cut_off + 3600,
    };
    assert_eq!(all_events(store, now).await?, [expected]);
    Ok(())
}

pub async fn a_name_held_by_one_kind_of_account_is_refused_to_the_other(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    store.create_user(&user("alice", now)).await?;
    assert!(matches!(
        store.create_client(&client("alice", now)).await,
        Err(StoreError::NameTaken(SubjectKind::User))
    ));
    assert!(matches!(
        store.create_client(&client("ALICE", now)).await,
        Err(StoreError::NameTaken(SubjectKind::User)),
    ));
    store.create_client(&client("svc", now)).await?;
    assert!(matches!(
        store.create_user(&user("svc", now)).await,
        Err(StoreError::NameTaken(SubjectKind::Client))
    ));
    // Also once the client is gone: its `sub` is never given to a user.
    assert!(store.delete_client(&client("svc", now).client_id).await?);
    assert!(matches!(
        store.create_user(&user("Svc", now)).await,
        Err(StoreError::NameTaken(SubjectKind::Client))
    ));
    // The same kind may take its name back.
    store.create_client(&client("svc", now)).await?;
    assert_eq!(store.list_clients().await?.len(), 1);
    assert_eq!(store.list_users(None, 10).await?.len(), 1);
    Ok(())
}

pub async fn a_user_and_their_cut_offs_are_read_together(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    let alice = user("alice", now);
    let none = UserCutOffs::default();
    let nobody = Username::parse("nobody").expect("username");
    assert_eq!(store.user_and_not_before(&nobody, now).await?, (None, none));
    store.create_user(&alice).await?;
    assert_eq!(
        store.user_and_not_before(&alice.username, now).await?,
        (Some(alice.clone()), none)
    );
    let cut_off = store
        .revoke_subject(&user_subject("alice"), now + 5, HOUR as u64)
        .await?;
    assert_eq!(cut_off, now + 6);
    let tokens_only = UserCutOffs {
        tokens: Some(now + 6),
        access: None,
    };
    assert_eq!(
        store.user_and_not_before(&alice.username, now).await?,
        (Some(alice.clone()), tokens_only)
    );
    assert_eq!(
        store
            .user_and_not_before(&alice.username, now + 6 + HOUR + 1)
            .await?,
        (Some(alice), none),
        "a forgotten revocation no longer counts"
    );
    Ok(())
}

pub async fn a_user_s_access_cut_off_and_token_cut_off_each_reach_past_the_other(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let alice = Username::parse("alice").expect("username");
    // Roles changed on a replica whose clock runs ahead, then the password on one behind it.
    let access = store.revoke_user_access(&alice, now + 10, 900).await?;
    assert_eq!(access, now + 11);
    let tokens = store
        .revoke_subject(&user_subject("alice"), now, 3600)
        .await?;
    assert_eq!(tokens, now + 11, "never below the access cut-off");
    let again = store.revoke_user_access(&alice, now, 900).await?;
    assert_eq!(again, now + 11, "never below the token cut-off");
    let (_, cut_offs) = store.user_and_not_before(&alice, now).await?;
    assert_eq!(
        cut_offs,
        UserCutOffs {
            tokens: Some(now + 11),
            access: Some(now + 11)
        }
    );
    assert_eq!(cut_offs.for_access(), Some(now + 11));
    // A user's access cut-off is no client's, nor the user's token cut-off.
    assert_eq!(
        store
            .subject_not_before(&client_subject("alice"), now)
            .await?,
        None
    );
    let events = all_events(store, now).await?;
    let subject_events = events
        .iter()
        .filter(|e| matches!(e, RevocationEvent::Subject { sub, .. } if sub == "alice"))
        .count();
    assert_eq!(subject_events, 3, "resource servers see every cut-off");
    Ok(())
}

pub async fn a_subject_revocation_is_forgotten_after_its_lifetime(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let alice = user_subject("alice");
    let cut_off = store.revoke_subject(&alice, now, 600).await?;
    let keep_until = cut_off + 600;
    assert_eq!(
        store.subject_not_before(&alice, keep_until).await?,
        Some(cut_off)
    );
    assert_eq!(
        store.subject_not_before(&alice, keep_until + 1).await?,
        None
    );
    Ok(())
}

pub async fn the_feed_pages_through_events_in_order_with_cursors(
    store: &dyn Store,
) -> StoreResult<()> {
    let now = now();
    let exp = now + HOUR;
    let start = store.revocations_after(None, 10, now).await?;
    assert!(start.events.is_empty());

    store.revoke_token(&tid("at1"), exp).await?;
    store.revoke_token(&tid("at2"), exp).await?;
    store
        .revoke_subject(&user_subject("alice"), now, (exp - now) as u64)
        .await?;
    store.revoke_token(&tid("at3"), exp).await?;
    store.create_family(&family("fam", "rt1", now)).await?;
    store.revoke_family(&tid("fam"), now).await?;
    let expected = vec![
        RevocationEvent::Token {
            jti: "at1".to_owned(),
            exp,
        },
        RevocationEvent::Token {
            jti: "at2".to_owned(),
            exp,
        },
        RevocationEvent::Subject {
            sub: "alice".to_owned(),
            not_before: now + 1,
            exp: exp + 1,
        },
        RevocationEvent::Token {
            jti: "at3".to_owned(),
            exp,
        },
        RevocationEvent::Family {
            fam: "fam".to_owned(),
            exp: now + ACCESS_TTL,
        },
    ];

    let (mut seen, mut cursors) = (Vec::new(), Vec::new());
    let mut cursor = start.next_cursor.clone();
    loop {
        let page = store.revocations_after(Some(&cursor), 2, now).await?;
        assert!(page.events.len() <= 2);
        let Some((last, _)) = page.events.last() else {
            assert_eq!(page.next_cursor, cursor, "an empty page keeps the cursor");
            break;
        };
        assert_eq!(&page.next_cursor, last);
        cursor = page.next_cursor.clone();
        for (c, event) in page.events {
            cursors.push(c);
            seen.push(event);
        }
    }
    assert_eq!(seen, expected);
    let distinct: BTreeSet<_> = cursors.iter().collect();
    assert_eq!(
        distinct.len(),
        cursors.len(),
        "every event has its own cursor"
    );

    let whole = store.revocations_after(None, 10, now).await?;
    assert_eq!(
        whole
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        expected
    );
    let rest = store.revocations_after(Some(&cursors[2]), 10, now).await?;
    assert_eq!(
        rest.events.iter().map(|(c, _)| c).collect::<Vec<_>>(),
        [&cursors[3], &cursors[4]]
    );
    Ok(())
}

pub async fn the_feed_leaves_out_expired_events(store: &dyn Store) -> StoreResult<()> {
    let now = now();
    store.revoke_token(&tid("short"), now + 10).await?;
    store.revoke_token(&tid("long"), now + HOUR).await?;
    store
        .revoke_subject(&user_subject("alice"), now, 19)
        .await?;
    let later = now + 100;
    let page = store.revocations_after(None, 1, later).await?;
    let long = RevocationEvent::Token {
        jti: "long".to_owned(),
        exp: now + HOUR,
    };
    assert_eq!(
        page.events
            .iter()
            .map(|(_, e)| e.clone())
            .collect::<Vec<_>>(),
        [long]
    );
    let after = store
        .revocations_after(Some(&page.next_cursor), 10, later)
        .await?;
    assert!(after.events.is_empty());
    assert_eq!(
        all_events(store, now).await?.len(),
        3,
        "still there for an earlier `now`"
    );
    Ok(())
}

pub async fn an_unparseable_feed_cursor_is_invalid(store: &dyn Store) -> StoreResult<()> {
    store.revoke_token(&tid("at1"), now() + HOUR).await?;
    for bad in ["not-a-cursor", "", "-1", "1.5"] {
        let result = store.revocations_after(Some(bad), 10, now()).await;
        assert!(
            matches!(result, Err(StoreError::InvalidCursor)),
            "{bad:?} gave {result:?}"
        );
    }
    Ok(())
}

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

pub async fn a_feed_cursor_never_handed_out_is_invalid(store: &dyn Store) -> StoreResult<()> {
    store.revoke_token(&tid("at1"), now() + HOUR).await?;
    let issued = store.revocations_after(None, 10, now()).await?.next_cursor;
    // A cursor from the future of this feed, in the backend's own format: what a follower
    // holds after the store behind the issuer was replaced.
    let future = match issued.split_once('-') {
        Some((ms, _)) => format!("{}-0", ms.parse::<u64>().expect("ms") + 3_600_000),
        None => (issued.parse::<u64>().expect("decimal") + 1000).to_string(),
    };
    let result = store.revocations_after(Some(&future), 10, now()).await;
    assert!(
        matches!(result, Err(StoreError::InvalidCursor)),
        "{future:?} gave {result:?}"
    );
    assert!(
        store
            .revocations_after(Some(&issued), 10, now())
            .await?
            .events
            .is_empty()
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
