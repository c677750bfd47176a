//! The bodies of the store contract, each run against a fresh store of every backend by
//! `store_contract!` in `tests/store_contract.rs`: accounts and subjects here, the rest by
//! theme in the modules below.

use std::time::{Duration, Instant};

use super::fixtures::*;
use super::*;

#[path = "families.rs"]
mod families;
#[path = "limits.rs"]
mod limits;
#[path = "revocations.rs"]
mod revocations;

pub use families::*;
pub use limits::*;
pub use revocations::*;

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
