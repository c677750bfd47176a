//! The read connection's fall-backs and the writer's shared commits, which the store contract
//! (run through the public interface) cannot reach.

use std::collections::BTreeSet;

use super::*;
use crate::store::StoreError;

fn alice() -> UserRecord {
    UserRecord {
        username: Username::parse("alice").unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        roles: BTreeSet::new(),
        disabled: false,
        created_at: 0,
        updated_at: 0,
        imported: false,
    }
}

#[tokio::test]
async fn reads_go_through_the_write_connection_when_the_read_connection_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.create_user(&alice()).await.unwrap();
    let reader = store
        .reader
        .as_ref()
        .expect("a store on disk has a read connection");
    drop(reader.lock().unwrap().take());

    let user = store.get_user(&alice().username).await.unwrap();
    assert_eq!(user, Some(alice()));
}

#[tokio::test]
async fn a_closed_store_refuses_reads_and_writes_as_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.create_user(&alice()).await.unwrap();
    store.close().await.unwrap();

    let read = store.get_user(&alice().username).await;
    assert!(matches!(read, Err(StoreError::Unavailable(_))), "{read:?}");
    let written = store.update_user(&alice()).await;
    assert!(
        matches!(written, Err(StoreError::Unavailable(_))),
        "{written:?}"
    );
}

/// Queues `values` as one write each while the writer is busy with another batch, so that
/// they all meet in its next one; each write inserts its value, then runs the SQL `then` gives
/// for it, if any.
async fn write_in_one_batch(
    store: &EmbeddedStore,
    values: &[&str],
    then: impl Fn(&str) -> Option<&'static str>,
) -> Vec<StoreResult<()>> {
    store
        .write(|tx| {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS scratch (x TEXT)")
                .db()
        })
        .await
        .unwrap();
    let (started, writer_busy) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let gate = store.writer.write(move |_| {
        started.send(()).unwrap();
        released.recv().unwrap();
        Ok(())
    });
    writer_busy.recv().unwrap();
    let answers: Vec<_> = values
        .iter()
        .map(|value| {
            let (value, then) = (value.to_string(), then(value));
            store.writer.write(move |tx| {
                tx.execute("INSERT INTO scratch (x) VALUES (?1)", [&value])
                    .db()?;
                then.map_or(Ok(()), |sql| tx.execute_batch(sql).db())
            })
        })
        .collect();
    release.send(()).unwrap();
    gate.await.unwrap();
    let mut out = Vec::new();
    for answer in answers {
        out.push(answer.await);
    }
    out
}

fn scratch(store: &EmbeddedStore) -> Vec<String> {
    let guard = store.conn.lock().unwrap();
    let conn = guard.as_ref().unwrap();
    let mut rows = conn.prepare("SELECT x FROM scratch ORDER BY x").unwrap();
    rows.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn a_failed_write_in_a_shared_commit_undoes_only_its_own_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let answers = write_in_one_batch(&store, &["a", "b", "c", "d"], |v| {
        (v == "b").then_some("SELECT * FROM no_such_table")
    })
    .await;

    assert!(matches!(answers[1], Err(StoreError::Internal(_))));
    assert!(answers[0].is_ok() && answers[2].is_ok() && answers[3].is_ok());
    assert_eq!(scratch(&store), ["a", "c", "d"]);
}

#[tokio::test]
async fn a_batch_left_in_doubt_is_rolled_back_and_every_write_in_it_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    // Ending the transaction from inside a write takes its savepoint with it.
    let answers = write_in_one_batch(&store, &["a", "b", "c"], |v| {
        (v == "b").then_some("ROLLBACK")
    })
    .await;

    assert!(answers.iter().all(Result::is_err), "{answers:?}");
    assert!(scratch(&store).is_empty());
    store
        .write(|tx| tx.execute_batch("INSERT INTO scratch VALUES ('e')").db())
        .await
        .unwrap();
    assert_eq!(
        scratch(&store),
        ["e"],
        "the writer goes on after a failed batch"
    );
}

#[tokio::test]
async fn a_read_transaction_left_open_is_ended_before_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    {
        let reader = store.reader.as_ref().unwrap().lock().unwrap();
        let reader = reader.as_ref().unwrap();
        reader.execute_batch("BEGIN").unwrap();
        // The snapshot is taken at the first read and would hide every later write.
        let users: i64 = reader
            .query_row("SELECT count(*) FROM users", [], |row| row.get(0))
            .unwrap();
        assert_eq!(users, 0);
    }
    store.create_user(&alice()).await.unwrap();

    let (user, _) = store
        .user_and_not_before(&alice().username, 0)
        .await
        .unwrap();
    assert_eq!(user, Some(alice()));
}
