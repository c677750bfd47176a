//! Tests of the embedded store alone: what lives in its file and directory.

use super::fixtures::*;
use super::*;

#[tokio::test]
async fn embedded_data_survives_closing_and_reopening_the_store() -> StoreResult<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = now();
    let feed_before = {
        let store = EmbeddedStore::open(dir.path())?;
        store.create_user(&user("alice", now)).await?;
        store.create_client(&client("app", now)).await?;
        store.create_family(&family("fam", "rt1", now)).await?;
        let r = rotation("fam", "rt1", "rt2", now * 1000, 5000);
        expect_outcome("rotated", store.rotate_refresh(&r).await?);
        store.revoke_token(&tid("at1"), now + HOUR).await?;
        store
            .revoke_subject(&user_subject("bob"), now, 3600)
            .await?;
        store.record_failure("login:alice", 600).await?;
        store.revocations_after(None, 100, now).await?
    };

    let store = EmbeddedStore::open(dir.path())?;
    assert_eq!(
        store.get_user(&user("alice", now).username).await?,
        Some(user("alice", now))
    );
    assert!(
        store
            .get_client(&client("app", now).client_id)
            .await?
            .is_some()
    );
    let fam = store.get_family(&tid("fam")).await?.expect("family kept");
    assert_eq!(fam.current.jti, tid("rt2"));
    assert!(store.is_token_revoked(&tid("at1"), now).await?);
    assert_eq!(
        store.subject_not_before(&user_subject("bob"), now).await?,
        Some(now + 1)
    );
    assert_eq!(failure_count(&store, "login:alice").await?.0, 1);
    assert_eq!(store.revocations_after(None, 100, now).await?, feed_before);

    // Sequence numbers keep growing across restarts, so followers' cursors stay valid.
    store.revoke_token(&tid("at2"), now + HOUR).await?;
    let next = store
        .revocations_after(Some(&feed_before.next_cursor), 100, now)
        .await?;
    assert_eq!(next.events.len(), 1);
    let last: u64 = feed_before.next_cursor.parse().expect("decimal");
    assert!(next.next_cursor.parse::<u64>().expect("decimal") > last);

    drop(store);
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("raw open");
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(mode, "wal");
    let version: i64 = raw
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("pragma");
    assert_eq!(version, SCHEMA_VERSION);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_embedded_stores_on_one_directory_see_each_others_writes() -> StoreResult<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let service: SharedStore = Arc::new(EmbeddedStore::open(dir.path())?);
    let cli: SharedStore = Arc::new(EmbeddedStore::open(dir.path())?);
    let now = now();

    cli.create_user(&user("alice", now)).await?;
    assert!(
        service
            .get_user(&user("alice", now).username)
            .await?
            .is_some()
    );
    assert!(matches!(
        service.create_user(&user("alice", now)).await,
        Err(StoreError::Conflict)
    ));

    service.revoke_token(&tid("at1"), now + HOUR).await?;
    assert!(cli.is_token_revoked(&tid("at1"), now).await?);
    assert_eq!(all_events(&*cli, now).await?.len(), 1);

    // Rotation is atomic across connections, not just within one.
    service.create_family(&family("fam", "rt1", now)).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let store = Arc::clone(if i % 2 == 0 { &service } else { &cli });
        let r = rotation("fam", "rt1", &format!("succ{i}"), now * 1000, 60_000);
        tasks.spawn(async move { store.rotate_refresh(&r).await });
    }
    let outcomes = tasks.join_all().await;
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(RotationOutcome::Rotated(_))))
        .count();
    let repeated = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(RotationOutcome::Repeated(_))))
        .count();
    assert_eq!((rotated, repeated), (1, 19), "{outcomes:?}");
    let a = service.get_family(&tid("fam")).await?.expect("family");
    let b = cli.get_family(&tid("fam")).await?.expect("family");
    assert_eq!(a, b);
    Ok(())
}

#[tokio::test]
async fn purging_the_embedded_store_deletes_and_counts_expired_rows() -> StoreResult<()> {
    let (store, _guard) = open_embedded().await;
    let now = now();
    let soon = now + 100;
    let mut short = family("short", "rt-s", now);
    short.current.expires_at = soon;
    store.create_family(&short).await?;
    store.create_family(&family("long", "rt-l", now)).await?;
    store.revoke_token(&tid("at-short"), soon).await?;
    store.revoke_token(&tid("at-long"), now + HOUR).await?;
    store
        .revoke_subject(&user_subject("bob"), now, (soon - now - 1) as u64)
        .await?;
    store.record_failure("ended", 0).await?;
    store.record_failure("running", 3600).await?;

    // The short family, token, subject, their two feed events, and the ended counter.
    assert_eq!(store.purge_expired(now + 500).await?, 6);
    assert_eq!(store.purge_expired(now + 500).await?, 0);
    assert!(store.get_family(&tid("short")).await?.is_none());
    assert!(store.get_family(&tid("long")).await?.is_some());
    assert!(store.is_token_revoked(&tid("at-long"), now + 500).await?);
    assert_eq!(failure_count(&*store, "running").await?.0, 1);
    assert_eq!(all_events(&*store, now).await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn after_an_embedded_store_is_restored_from_a_backup_its_followers_read_the_new_events()
-> StoreResult<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let now = now();
    let backup = dir.path().join("backup.db");
    let store = EmbeddedStore::open(dir.path()).expect("open");
    store.revoke_token(&tid("before"), now + HOUR).await?;
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("raw open");
    raw.execute("VACUUM INTO ?1", [backup.to_str().expect("path")])
        .expect("backup");
    drop(raw);
    // A follower reads events the backup does not hold.
    store.revoke_token(&tid("lost-1"), now + HOUR).await?;
    store.revoke_token(&tid("lost-2"), now + HOUR).await?;
    let follower = store.revocations_after(None, 10, now).await?.next_cursor;
    store.close().await?;
    drop(store);

    // Restored as the README says: the file replaced, the WAL and its index deleted.
    std::fs::rename(&backup, dir.path().join(DB_FILE)).expect("restore");
    for companion in latchkey::store::embedded::DB_COMPANIONS {
        let _ = std::fs::remove_file(dir.path().join(companion));
    }
    let store = EmbeddedStore::open(dir.path()).expect("reopen");
    store.revoke_token(&tid("after-1"), now + HOUR).await?;
    store.revoke_token(&tid("after-2"), now + HOUR).await?;
    store.revoke_token(&tid("after-3"), now + HOUR).await?;
    let page = store.revocations_after(Some(&follower), 10, now).await?;
    let read: Vec<_> = page
        .events
        .iter()
        .map(|(_, event)| match event {
            RevocationEvent::Token { jti, .. } => jti.as_str(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(read, ["after-1", "after-2", "after-3"]);
    Ok(())
}

#[tokio::test]
async fn an_empty_embedded_feed_starts_at_cursor_zero() -> StoreResult<()> {
    let (store, _guard) = open_embedded().await;
    let page = store.revocations_after(None, 10, now()).await?;
    assert!(page.events.is_empty());
    assert_eq!(page.next_cursor, "0");
    let again = store.revocations_after(Some("0"), 10, now()).await?;
    assert_eq!(again.next_cursor, "0");
    Ok(())
}

#[test]
fn an_embedded_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(EmbeddedStore::open(dir.path()).expect("open"));
    let raw = rusqlite::Connection::open(dir.path().join(DB_FILE)).expect("raw open");
    raw.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .expect("pragma");
    drop(raw);
    assert!(matches!(
        EmbeddedStore::open(dir.path()),
        Err(StoreError::Internal(_))
    ));
}

#[tokio::test]
async fn the_embedded_sweeper_drops_a_spent_code_once_its_memory_ends() -> StoreResult<()> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(dir.path())?;
    let now = now();
    let issued = codes::code(now);
    store.create_code("spent", &issued).await?;
    let family = tid("fam");
    store.redeem_code("spent", &family, now).await?;
    // Kept while a replay could still revoke the session...
    store.purge_expired(issued.keep_until() - 1).await?;
    assert!(matches!(
        store.redeem_code("spent", &tid("other"), now).await?,
        latchkey::store::CodeRedemption::Spent { .. }
    ));
    // ...and gone after.
    store.purge_expired(issued.keep_until() + 1).await?;
    assert_eq!(
        store.redeem_code("spent", &tid("other"), now).await?,
        latchkey::store::CodeRedemption::Invalid
    );
    Ok(())
}
