//! Behaviour of the Redis store that only Redis has: key prefix, TTL-bounded memory, faults,
//! durability with AOF, Cluster and Sentinel. Each test starts its own redis-server processes
//! (see `support/redis_server.rs`); the shared contract runs in `store_contract.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/redis_fixtures.rs"]
mod fixtures;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey::domain::{ClientId, GrantType, Scope, UnixTime, Username};
use latchkey::store::Subject;
use latchkey::store::redis::{RedisOptions, RedisStore};
use latchkey::store::{
    ClientRecord, FAMILY_EVENT_MARGIN, RefreshGeneration, RevocationEvent, Rotation,
    RotationOutcome, Store, StoreError, StoreResult, UserRecord,
};
use redis_server::{RedisCluster, RedisServer, RedisServerOptions, free_port, wait_until};

use fixtures::{HOUR, eventually, family, now, open, tid};

fn user(name: &str) -> UserRecord {
    UserRecord {
        username: Username::parse(name).expect("username"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        roles: BTreeSet::from(["reader".to_owned()]),
        disabled: false,
        created_at: now(),
        updated_at: now(),
        imported: false,
    }
}

fn client(id: &str) -> ClientRecord {
    ClientRecord {
        client_id: ClientId::parse(id).expect("client id"),
        secret_hash: None,
        grants: BTreeSet::from([GrantType::RefreshToken]),
        scope: Scope::parse("read").expect("scope"),
        audiences: BTreeSet::from(["api".to_owned()]),
        created_at: now(),
        keys: None,
        keys_version: None,
        redirect_uris: Default::default(),
        first_party: false,
    }
}

/// A family whose current token expires at `expires_at`.
fn rotation(fam: &str, presented: &str, successor: &str, expires_at: UnixTime) -> Rotation {
    Rotation {
        family: tid(fam),
        presented: tid(presented),
        successor: RefreshGeneration {
            jti: tid(successor),
            issued_at: now(),
            expires_at,
            access_lifetime: None,
        },
        now_ms: now() * 1000,
        grace_ms: 5_000,
    }
}

/// The events of the feed from its start, without their cursors.
async fn feed_events(store: &RedisStore, now: UnixTime) -> StoreResult<Vec<RevocationEvent>> {
    let page = store.revocations_after(None, 10, now).await?;
    Ok(page.events.into_iter().map(|(_, event)| event).collect())
}

/// Runs every kind of write once.
async fn exercise(store: &RedisStore) -> StoreResult<()> {
    let now = now();
    store.create_user(&user("alice")).await?;
    store.create_client(&client("app")).await?;
    store
        .create_family(&family("fam1", "rt1", now + HOUR))
        .await?;
    store
        .rotate_refresh(&rotation("fam1", "rt1", "rt2", now + HOUR))
        .await?;
    store
        .create_family(&family("fam2", "rt1", now + HOUR))
        .await?;
    store.revoke_family(&tid("fam2"), now).await?;
    store.revoke_token(&tid("at1"), now + 900).await?;
    store
        .revoke_subject(&user_subject("alice"), now, 3600)
        .await?;
    store.record_failure("login:alice", 600).await?;
    store.revocations_after(None, 10, now).await?;
    Ok(())
}

#[tokio::test]
async fn every_key_carries_the_configured_prefix_and_prefixes_do_not_share_data() -> StoreResult<()>
{
    let server = RedisServer::start();
    let store = open(&server.url(), "tenant-a:", Duration::from_secs(60)).await;
    exercise(&store).await?;

    let keys = server.keys();
    assert!(keys.len() >= 10, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with("tenant-a:")), "{keys:?}");

    let other = open(&server.url(), "tenant-b:", Duration::from_secs(60)).await;
    assert_eq!(other.get_user(&user("alice").username).await?, None);
    assert!(
        other
            .revocations_after(None, 10, now())
            .await?
            .events
            .is_empty()
    );
    other.create_user(&user("alice")).await?;
    assert!(
        RedisStore::connect(&server.url(), "bad{tag}:")
            .await
            .is_err()
    );
    Ok(())
}

#[tokio::test]
async fn after_families_revocations_events_and_counters_expire_the_key_count_returns_to_its_baseline()
-> StoreResult<()> {
    let server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::ZERO).await;
    // Users and clients are permanent: they make the baseline.
    store.create_user(&user("alice")).await?;
    store.create_client(&client("app")).await?;
    let baseline = server.dbsize();

    let now = now();
    for i in 0..20 {
        let expires_at = now + 1 + i % 2;
        let fam = format!("fam{i}");
        store
            .create_family(&family(&fam, "rt1", expires_at))
            .await?;
        match i % 4 {
            0 => {
                store
                    .rotate_refresh(&rotation(&fam, "rt1", "rt2", expires_at))
                    .await?;
            }
            1 => {
                // Reuse: revokes the family and appends a feed event.
                store
                    .rotate_refresh(&rotation(&fam, "forged", "rt2", expires_at))
                    .await?;
            }
            2 => {
                store.revoke_family(&tid(&fam), now).await?;
            }
            _ => {}
        }
        // Feed events are kept a margin past the tokens they concern: dated that much earlier,
        // these events leave the feed when the families do.
        let early = expires_at - FAMILY_EVENT_MARGIN;
        store.revoke_token(&tid(&format!("at{i}")), early).await?;
        // The cut-off is the second after its date; it is remembered for (expires_at - now - 1)
        // more.
        let dated = now - FAMILY_EVENT_MARGIN;
        store
            .revoke_subject(&user_subject(&format!("user{i}")), dated, (i % 2) as u64)
            .await?;
        store
            .record_failure(&format!("login:{i}"), 1 + (i % 2) as u64)
            .await?;
    }
    let peak = server.dbsize();
    assert!(peak >= baseline + 80, "baseline {baseline}, peak {peak}");
    let feed = store.revocations_after(None, 1000, now).await?;
    assert_eq!(feed.events.len(), 20 + 20 + 10);

    let started = Instant::now();
    let back = wait_until(Duration::from_secs(15), || server.dbsize() == baseline);
    assert!(
        back,
        "still {} keys (baseline {baseline}): {:?}",
        server.dbsize(),
        server.keys()
    );
    eprintln!(
        "{peak} keys fell back to {baseline} within {:?}",
        started.elapsed()
    );
    assert!(store.get_user(&user("alice").username).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn the_feed_drops_each_entry_when_it_expires_even_behind_a_long_lived_one() -> StoreResult<()>
{
    let server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::ZERO).await;
    let now = now();
    store.revoke_token(&tid("long"), now + HOUR).await?;
    // The feed keeps an event a margin past its token's expiry: these leave it at now + 3.
    for i in 0..5 {
        store
            .revoke_token(&tid(&format!("short{i}")), now + 3 - FAMILY_EVENT_MARGIN)
            .await?;
    }
    let xlen = || {
        server
            .command(&["XLEN", "lk:{feed}:stream"])
            .and_then(|r| r.trim_start_matches(':').parse::<i64>().ok())
            .expect("XLEN")
    };
    assert_eq!(xlen(), 6);
    // Trimming happens on appends; wait (on the clock) until the short entries' retention ends.
    // Their retention outlasts the appends above even on a loaded machine.
    assert!(wait_until(
        Duration::from_secs(8),
        || latchkey::domain::now() > now + 3
    ));
    store.revoke_token(&tid("next"), now + HOUR).await?;
    assert_eq!(xlen(), 2, "the long-lived entry and the new one remain");
    let feed = store.revocations_after(None, 10, now).await?;
    let jtis: Vec<_> = feed
        .events
        .iter()
        .map(|(_, e)| match e {
            RevocationEvent::Token { jti, .. } => jti.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(jtis, ["long", "next"]);
    Ok(())
}

#[tokio::test]
async fn a_cursor_past_the_end_of_the_feed_is_invalid() -> StoreResult<()> {
    let server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::from_secs(60)).await;
    // With no feed at all, only cursors from the future can be told apart.
    let future = format!("{}-0", (now() + 3600) * 1000);
    assert!(matches!(
        store.revocations_after(Some(&future), 10, now()).await,
        Err(StoreError::InvalidCursor)
    ));
    store.revoke_token(&tid("at1"), now() + HOUR).await?;
    let page = store.revocations_after(None, 10, now()).await?;
    let (ms, seq) = page.next_cursor.split_once('-').expect("stream id");
    let past_end = format!("{ms}-{}", seq.parse::<u64>().expect("seq") + 1);
    assert!(matches!(
        store.revocations_after(Some(&past_end), 10, now()).await,
        Err(StoreError::InvalidCursor)
    ));
    let at_end = store
        .revocations_after(Some(&page.next_cursor), 10, now())
        .await?;
    assert!(at_end.events.is_empty());
    assert_eq!(at_end.next_cursor, page.next_cursor);
    Ok(())
}

#[tokio::test]
async fn a_revocation_whose_feed_event_was_lost_gets_it_on_the_next_attempt() -> StoreResult<()> {
    let server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::from_secs(60)).await;
    let now = now();
    store
        .create_family(&family("fam", "rt1", now + HOUR))
        .await?;
    // As if a replica died right after the reuse script revoked the family, before the event.
    let reply = server.command(&["HSET", "lk:family:{fam}", "rev", "1", "feed", "owed"]);
    assert_eq!(reply.as_deref(), Some(":1"), "one field added");
    assert!(
        store
            .revocations_after(None, 10, now)
            .await?
            .events
            .is_empty()
    );

    let retry = rotation("fam", "rt1", "rt2", now + HOUR);
    assert_eq!(
        store.rotate_refresh(&retry).await?,
        RotationOutcome::Inactive
    );
    let expected = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp: now + HOUR,
    };
    let events = feed_events(&store, now).await?;
    assert_eq!(events, [expected]);
    // Owed no more: a further attempt appends nothing.
    assert_eq!(
        store.rotate_refresh(&retry).await?,
        RotationOutcome::Inactive
    );
    assert!(!store.revoke_family(&tid("fam"), now).await?);
    assert_eq!(
        store.revocations_after(None, 10, now).await?.events.len(),
        1
    );
    Ok(())
}

/// A replica of an older version rotates a family without a word about access lifetimes, and
/// its tokens may have lived longer than the one recorded for the earlier generation.
#[tokio::test]
async fn after_a_rotation_by_an_older_version_a_session_event_lasts_as_its_refresh_token()
-> StoreResult<()> {
    let server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::from_secs(60)).await;
    let now = now();
    let mut created = family("fam", "rt1", now + HOUR);
    created.current.access_lifetime = Some(300);
    store.create_family(&created).await?;
    // What the older rotation script writes.
    let (rotated_at, iat, exp) = ((now * 1000).to_string(), now.to_string(), now + 2 * HOUR);
    let exp_text = exp.to_string();
    let reply = server.command(&[
        "HSET",
        "lk:family:{fam}",
        "prev",
        "rt1",
        "rot",
        &rotated_at,
        "jti",
        "rt2",
        "iat",
        &iat,
        "exp",
        &exp_text,
    ]);
    assert!(reply.is_some(), "the hash was written");
    assert!(store.revoke_family(&tid("fam"), now).await?);
    let expected = RevocationEvent::Family {
        fam: "fam".to_owned(),
        exp,
    };
    assert_eq!(feed_events(&store, now).await?, [expected]);
    Ok(())
}

#[tokio::test]
async fn a_token_revocation_whose_feed_event_failed_gets_it_when_repeated() -> StoreResult<()> {
    let server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::from_secs(60)).await;
    let now = now();
    // The feed cannot take an event: the token is on the list, its event owed.
    server.command(&["SET", "lk:{feed}:stream", "not a stream"]);
    assert!(store.revoke_token(&tid("at1"), now + 900).await.is_err());
    assert!(store.is_token_revoked(&tid("at1"), now).await?);
    server.command(&["DEL", "lk:{feed}:stream"]);
    // The caller's retry announces it, once.
    store.revoke_token(&tid("at1"), now + 900).await?;
    store.revoke_token(&tid("at1"), now + 900).await?;
    let events = feed_events(&store, now).await?;
    let expected = RevocationEvent::Token {
        jti: "at1".to_owned(),
        exp: now + 900,
    };
    assert_eq!(events, [expected]);
    assert!(!server.keys().iter().any(|k| k.ends_with(":owed")));
    Ok(())
}

#[tokio::test]
async fn an_unreachable_redis_is_unavailable_within_three_seconds() {
    // Nothing listens on this port: connection refused.
    let refused = open(
        &format!("redis://127.0.0.1:{}", free_port()),
        "lk:",
        Duration::from_secs(60),
    )
    .await;
    // Something accepts connections but never answers: a black hole.
    let black_hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = open(
        &format!(
            "redis://127.0.0.1:{}",
            black_hole.local_addr().expect("addr").port()
        ),
        "lk:",
        Duration::from_secs(60),
    )
    .await;

    let alice = user("alice").username;
    let late = rotation("fam", "rt1", "rt2", now() + HOUR);
    for (name, store) in [("refused", &refused), ("black hole", &silent)] {
        let started = Instant::now();
        let (ping, rotate, get) = tokio::join!(
            store.ping(),
            store.rotate_refresh(&late),
            store.get_user(&alice)
        );
        let elapsed = started.elapsed();
        eprintln!("{name}: unavailable after {elapsed:?}");
        assert!(
            matches!(ping, Err(StoreError::Unavailable(_))),
            "{name}: {ping:?}"
        );
        assert!(
            matches!(rotate, Err(StoreError::Unavailable(_))),
            "{name}: {rotate:?}"
        );
        assert!(
            matches!(get, Err(StoreError::Unavailable(_))),
            "{name}: {get:?}"
        );
        assert!(elapsed < Duration::from_secs(3), "{name}: {elapsed:?}");
    }
}

#[tokio::test]
async fn the_store_recovers_by_itself_after_redis_restarts() -> StoreResult<()> {
    let mut server = RedisServer::start();
    let store = open(&server.url(), "lk:", Duration::from_secs(60)).await;
    store.create_user(&user("alice")).await?;

    server.stop();
    let started = Instant::now();
    let down = store.get_user(&user("alice").username).await;
    assert!(matches!(down, Err(StoreError::Unavailable(_))), "{down:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    server.restart();
    let started = Instant::now();
    let back = eventually(Duration::from_secs(10), || async {
        store.ping().await.is_ok()
    })
    .await;
    assert!(back, "the store never reconnected");
    eprintln!("reconnected {:?} after redis came back", started.elapsed());
    // The server ran without persistence, so it is empty; the store writes to it again.
    store.create_user(&user("bob")).await?;
    assert!(store.get_user(&user("bob").username).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn with_aof_always_a_redis_crash_and_restart_loses_no_family_and_no_revocation()
-> StoreResult<()> {
    let mut server = RedisServer::start_with(RedisServerOptions {
        aof_always: true,
        ..RedisServerOptions::default()
    });
    let store = open(&server.url(), "lk:", Duration::from_secs(60)).await;
    let now = now();
    for i in 0..10 {
        store
            .create_family(&family(&format!("fam{i}"), "rt1", now + HOUR))
            .await?;
    }
    let rotated = match store
        .rotate_refresh(&rotation("fam0", "rt1", "rt2", now + 2 * HOUR))
        .await?
    {
        RotationOutcome::Rotated(f) => f,
        other => panic!("{other:?}"),
    };
    assert!(store.revoke_family(&tid("fam1"), now).await?);
    store.revoke_token(&tid("at1"), now + 900).await?;
    let mallory = user_subject("mallory");
    let cut_off = store.revoke_subject(&mallory, now, 3600).await?;
    let feed = store.revocations_after(None, 100, now).await?;
    assert_eq!(feed.events.len(), 3);

    server.stop(); // SIGKILL: no shutdown save, only what the AOF holds.
    server.restart();
    assert!(
        eventually(Duration::from_secs(10), || async {
            store.ping().await.is_ok()
        })
        .await
    );

    assert_eq!(store.get_family(&tid("fam0")).await?, Some(rotated));
    assert!(store.get_family(&tid("fam1")).await?.expect("fam1").revoked);
    for i in 2..10 {
        assert!(store.get_family(&tid(&format!("fam{i}"))).await?.is_some());
    }
    assert!(store.is_token_revoked(&tid("at1"), now).await?);
    assert_eq!(
        store.subject_not_before(&mallory, now).await?,
        Some(cut_off)
    );
    assert_eq!(store.revocations_after(None, 100, now).await?, feed);
    let ttl = server
        .command(&["TTL", "lk:family:{fam2}"])
        .and_then(|r| r.trim_start_matches(':').parse::<i64>().ok())
        .expect("TTL");
    assert!(
        ttl > HOUR && ttl <= HOUR + 60,
        "the TTL survives too: {ttl}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_rotations_on_a_cluster_yield_exactly_one_rotated() -> StoreResult<()> {
    let cluster = RedisCluster::start();
    let store = Arc::new(open(&cluster.url(), "lk:", Duration::from_secs(60)).await);
    let now = now();
    // Families land in different slots, so on different masters.
    for i in 0..6 {
        store
            .create_family(&family(&format!("fam{i}"), "rt1", now + HOUR))
            .await?;
    }
    let masters_with_families = cluster
        .nodes
        .iter()
        .filter(|node| node.keys().iter().any(|k| k.starts_with("lk:family:")))
        .count();
    assert!(
        masters_with_families >= 2,
        "families spread over the masters"
    );

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        let r = rotation("fam0", "rt1", &format!("succ{i}"), now + HOUR);
        tasks.spawn(async move { store.rotate_refresh(&r).await });
    }
    let (mut rotated, mut repeated) = (Vec::new(), Vec::new());
    for outcome in tasks.join_all().await {
        match outcome? {
            RotationOutcome::Rotated(f) => rotated.push(f),
            RotationOutcome::Repeated(f) => repeated.push(f),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((rotated.len(), repeated.len()), (1, 49));
    assert!(
        repeated
            .iter()
            .all(|f| f.current.jti == rotated[0].current.jti)
    );

    // Reuse on Cluster: the script revokes in the family's slot, the event goes to the feed's.
    let late = Rotation {
        now_ms: (now + 60) * 1000,
        ..rotation("fam0", "rt1", "x", now + HOUR)
    };
    assert!(matches!(
        store.rotate_refresh(&late).await?,
        RotationOutcome::Reused(_)
    ));
    let events = store.revocations_after(None, 10, now).await?.events;
    assert_eq!(events.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_rediss_url_talks_tls_to_redis() -> StoreResult<()> {
    let certs = tempfile::tempdir().expect("temp dir");
    // A test CA and a server certificate for 127.0.0.1 that it signs.
    let script = r#"set -e
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=latchkey-test-ca \
  -keyout ca.key -out ca.pem
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout key.pem -out server.csr
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 \
  -extfile server.ext -out cert.pem"#;
    let made = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(certs.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run openssl to make test certificates");
    assert!(
        made.success(),
        "openssl could not make the test certificates"
    );
    let file = |name: &str| certs.path().join(name);
    let (ca, cert, key) = (file("ca.pem"), file("cert.pem"), file("key.pem"));
    let tls_port = free_port();
    let path = |p: &std::path::Path| p.display().to_string();
    let server = RedisServer::start_with(RedisServerOptions {
        args: vec![
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path(&cert),
            "--tls-key-file".to_owned(),
            path(&key),
            "--tls-ca-cert-file".to_owned(),
            path(&ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ],
        ..RedisServerOptions::default()
    });
    let store = RedisStore::connect_with(
        &format!("rediss://127.0.0.1:{tls_port}"),
        RedisOptions {
            prefix: "tls:".to_owned(),
            tls_root_cert: Some(std::fs::read(&ca).expect("read the CA certificate")),
            ..RedisOptions::default()
        },
    )
    .await?;
    store.ping().await?;
    store.create_user(&user("alice")).await?;
    assert!(server.keys().contains(&"tls:{users}:user:alice".to_owned()));
    // Without the CA the server's certificate is refused.
    let untrusting = RedisStore::connect(&format!("rediss://127.0.0.1:{tls_port}"), "tls:").await?;
    assert!(untrusting.ping().await.is_err());
    Ok(())
}

fn user_subject(name: &str) -> Subject {
    Subject::User(Username::parse(name).expect("a username"))
}
