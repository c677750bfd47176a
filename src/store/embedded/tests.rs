//! The read connection's fall-backs, which the store contract (run through the public
//! interface) cannot reach.

use std::collections::BTreeSet;

use super::*;

fn alice() -> UserRecord {
    UserRecord {
        username: Username::parse("alice").unwrap(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        roles: BTreeSet::new(),
        disabled: false,
        created_at: 0,
        updated_at: 0,
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
