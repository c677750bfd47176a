//! The Redis store behind Sentinel: it finds the master through the sentinels, follows a
//! failover, and never uses a server the sentinels no longer name. Each test starts its own
//! master, replica and sentinel (see `support/redis_server.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/redis_fixtures.rs"]
mod fixtures;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use latchkey::store::{Store, StoreResult};
use redis_server::{RedisSentinel, RedisServer, RedisServerOptions, wait_until};

use fixtures::{HOUR, eventually, family, now, open, tid};

/// A master (started with `master_args`), a replica in sync with it, and a sentinel that sees
/// both.
fn master_replica_and_sentinel(master_args: &[&str]) -> (RedisServer, RedisServer, RedisSentinel) {
    let master = RedisServer::start_with(RedisServerOptions {
        args: master_args.iter().map(|arg| (*arg).to_owned()).collect(),
        ..RedisServerOptions::default()
    });
    let replica = RedisServer::start_with(RedisServerOptions {
        args: vec![
            "--replicaof".to_owned(),
            format!("127.0.0.1 {}", master.port()),
        ],
        ..RedisServerOptions::default()
    });
    assert!(
        wait_until(Duration::from_secs(30), || replica
            .command(&["INFO", "replication"])
            .is_some_and(|info| info.contains("master_link_status:up"))),
        "the replica never synced"
    );
    let sentinel = RedisSentinel::start(&master, "lkmaster");
    assert!(
        wait_until(Duration::from_secs(15), || sentinel
            .command(&["SENTINEL", "replicas", "lkmaster"])
            .is_some_and(|r| r.contains(&replica.port().to_string()))),
        "the sentinel never saw the replica"
    );
    (master, replica, sentinel)
}

/// A replication offset from `INFO replication`, e.g. the master's `master_repl_offset` or how
/// far a replica has processed its stream (`slave_repl_offset`).
fn replication_offset(server: &RedisServer, field: &str) -> Option<u64> {
    let info = server.command(&["INFO", "replication"])?;
    info.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
        .trim()
        .parse()
        .ok()
}

/// Kills the master once the replica holds every write, and waits until the sentinel has
/// promoted the replica and ended the failover.
fn fail_over(master: &mut RedisServer, replica: &RedisServer, sentinel: &RedisSentinel) {
    // Not `WAIT`: from a connection that wrote nothing it returns at once, whatever the replica
    // has received.
    let written = replication_offset(master, "master_repl_offset").expect("the master's offset");
    assert!(
        wait_until(Duration::from_secs(5), || replication_offset(
            replica,
            "slave_repl_offset"
        )
        .is_some_and(|offset| offset >= written)),
        "the replica did not catch up with the master's {written} bytes of writes"
    );
    master.stop();
    let promoted = format!("port\n{}\n", replica.port());
    assert!(
        wait_until(Duration::from_secs(30), || sentinel
            .command(&["SENTINEL", "MASTER", "lkmaster"])
            .is_some_and(
                |master| master.contains(&promoted) && !master.contains("failover_in_progress")
            )),
        "no failover: {}",
        sentinel.log()
    );
}

#[tokio::test]
async fn through_sentinel_the_store_finds_the_master_and_follows_a_failover() -> StoreResult<()> {
    let (mut master, replica, sentinel) = master_replica_and_sentinel(&[]);

    let store = open(&sentinel.url(), "lk:", Duration::from_secs(60)).await;
    let now = now();
    store
        .create_family(&family("fam", "rt1", now + HOUR))
        .await?;
    store.revoke_token(&tid("at1"), now + 900).await?;
    assert!(master.keys().iter().any(|k| k == "lk:family:{fam}"));
    // The master crashes; the sentinel notices after a second and promotes the replica.
    let started = Instant::now();
    fail_over(&mut master, &replica, &sentinel);
    // Operations fail while the master is gone (a broken connection is dropped and the next
    // operation asks the sentinel again); once the sentinel names the new master, writes go there.
    let followed = eventually(Duration::from_secs(20), || async {
        store
            .create_family(&family("fam-after", "rt1", now + HOUR))
            .await
            .is_ok()
    })
    .await;
    assert!(followed, "the store never followed the failover");
    eprintln!(
        "writes resumed {:?} after the master crashed",
        started.elapsed()
    );
    let keys = replica.keys();
    assert!(
        keys.iter().any(|k| k == "lk:family:{fam-after}"),
        "{keys:?}"
    );
    assert!(
        store.get_family(&tid("fam")).await?.is_some(),
        "the family written before the failover is gone from what the store reads; the new \
         master holds {keys:?}; sentinel: {}",
        sentinel.log()
    );
    assert!(store.is_token_revoked(&tid("at1"), now).await?);
    Ok(())
}

#[tokio::test]
async fn through_sentinel_a_restarted_old_master_is_neither_read_nor_written() -> StoreResult<()> {
    // The old master refuses the sentinels' REPLICAOF, so once restarted it stays an empty
    // master: the window in which a real one is a stale master before the sentinels demote it
    // stays open for the whole test.
    let (mut master, replica, sentinel) = master_replica_and_sentinel(&[
        "--rename-command",
        "REPLICAOF",
        "lk-test-disabled-replicaof",
        "--rename-command",
        "SLAVEOF",
        "lk-test-disabled-slaveof",
    ]);
    let store = open(&sentinel.url(), "lk:", Duration::from_secs(60)).await;
    let now = now();
    store.revoke_token(&tid("at1"), now + 900).await?;
    assert!(store.is_token_revoked(&tid("at1"), now).await?);

    // The store is idle through the failover; then the old master answers again at the address
    // the store last used, empty and claiming to be a master.
    fail_over(&mut master, &replica, &sentinel);
    master.restart();
    assert!(
        master
            .command(&["ROLE"])
            .is_some_and(|role| role.starts_with("master")),
        "the restarted server should be a master"
    );

    // The connection to the old master broke, so an operation may fail; no answer may come
    // from the restarted server.
    let mut answers = Vec::new();
    for _ in 0..30 {
        answers.push(store.is_token_revoked(&tid("at1"), now).await.ok());
    }
    assert!(
        !answers.contains(&Some(false)),
        "a revoked token was read as live from the restarted old master: {answers:?}"
    );
    assert_eq!(answers.last(), Some(&Some(true)), "{answers:?}");
    store.revoke_token(&tid("at2"), now + 900).await?;
    assert!(
        replica.keys().iter().any(|k| k == "lk:revoked:{at2}"),
        "{:?}",
        replica.keys()
    );
    assert!(
        master.keys().is_empty(),
        "the restarted old master took writes: {:?}",
        master.keys()
    );
    Ok(())
}
