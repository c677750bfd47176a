//! The verifier against a stand-in issuer: discovery, key-set caching and refetching, the
//! revocation feed, and what happens when the issuer is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod stub;

use std::time::Duration;

use latchkey_verify::{SetupError, Verifier, VerifyError, WhenUnreachable};
use serde_json::json;
use stub::{AUDIENCE, FEED_ID, FEED_SECRET, Stub, TestKey, claims, eventually, now};

fn builder(stub: &Stub) -> latchkey_verify::Builder {
    Verifier::builder(&stub.url, AUDIENCE).feed_client(FEED_ID, FEED_SECRET)
}

#[tokio::test]
async fn a_verifier_discovers_the_issuer_and_verifies_its_tokens() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let verifier = builder(&stub).connect().await.unwrap();
    let token = verifier
        .verify(&key.token(&claims(&stub.url, AUDIENCE, now())))
        .await
        .unwrap();
    assert_eq!(token.subject, "alice");
    assert_eq!(verifier.status().keys, 1);
    assert_eq!(stub.jwks_fetches(), 1);
    let other_audience = key.token(&claims(&stub.url, "billing", now()));
    assert_eq!(
        verifier.verify(&other_audience).await,
        Err(VerifyError::WrongAudience)
    );
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    *stub.state.metadata_issuer.lock().unwrap() = Some("https://evil.test".into());
    let result = builder(&stub).connect().await;
    assert!(
        matches!(result, Err(SetupError::Protocol { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn wrong_feed_credentials_stop_connect() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let result = Verifier::builder(&stub.url, AUDIENCE)
        .feed_client(FEED_ID, "wrong")
        .connect()
        .await;
    assert!(
        matches!(result, Err(SetupError::Unreachable { .. })),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_forged_kids_costs_one_key_set_fetch_per_interval() {
    let key = TestKey::rsa("k1");
    let forger = TestKey::rsa("unused");
    let stub = Stub::start(&[&key]).await;
    let verifier = builder(&stub)
        .min_refetch_interval(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    assert_eq!(stub.jwks_fetches(), 1);
    let claims = claims(&stub.url, AUDIENCE, now());
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let mut header = forger.header();
            header["kid"] = json!(format!("forged-{i}"));
            let token = forger.sign(&header, &claims);
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&token).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), Err(VerifyError::UnknownKey));
    }
    assert_eq!(stub.jwks_fetches(), 2, "500 forged kids, one refetch");
    // Real tokens keep verifying meanwhile, from the cache.
    assert!(verifier.verify(&key.token(&claims)).await.is_ok());
    assert_eq!(stub.jwks_fetches(), 2);
}

#[tokio::test]
async fn a_key_published_after_start_is_fetched_when_a_token_names_it() {
    let (old, new) = (TestKey::rsa("old"), TestKey::rsa("new"));
    let stub = Stub::start(&[&old]).await;
    let verifier = builder(&stub).connect().await.unwrap();
    stub.publish(&[&old, &new]);
    let token = new.token(&claims(&stub.url, AUDIENCE, now()));
    assert!(
        verifier.verify_cached(&token).is_err(),
        "not known without a fetch"
    );
    assert!(verifier.verify(&token).await.is_ok());
    assert_eq!(stub.jwks_fetches(), 2);
    assert_eq!(verifier.status().keys, 2);
}

#[tokio::test]
async fn revocations_from_the_feed_take_effect_within_the_bound() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let bound = Duration::from_secs(1);
    let verifier = builder(&stub)
        .revocation_bound(bound)
        .connect()
        .await
        .unwrap();
    let now = now();
    let mut by_jti = claims(&stub.url, AUDIENCE, now);
    by_jti["sid"] = json!(null);
    let mut by_session = claims(&stub.url, AUDIENCE, now);
    by_session["sid"] = json!("fam-9");
    let mut by_subject = claims(&stub.url, AUDIENCE, now - 10);
    by_subject["sub"] = json!("bob");
    let mut later = claims(&stub.url, AUDIENCE, now);
    later["sub"] = json!("bob");
    let tokens: Vec<String> = [&by_jti, &by_session, &by_subject, &later]
        .iter()
        .map(|c| key.token(c))
        .collect();
    for token in &tokens {
        assert!(verifier.verify(token).await.is_ok());
    }
    stub.revoke(json!({"type": "token", "jti": by_jti["jti"], "exp": now + 900}));
    stub.revoke(json!({"type": "family", "fam": "fam-9", "exp": now + 900}));
    stub.revoke(json!({"type": "subject", "sub": "bob", "not_before": now - 5, "exp": now + 900}));
    let margin = Duration::from_millis(500);
    let took = eventually(bound + margin, async || {
        verifier.verify(&tokens[2]).await == Err(VerifyError::Revoked)
    })
    .await;
    assert!(took.is_some(), "revoked within the bound");
    assert_eq!(verifier.verify(&tokens[0]).await, Err(VerifyError::Revoked));
    assert_eq!(verifier.verify(&tokens[1]).await, Err(VerifyError::Revoked));
    assert!(
        verifier.verify(&tokens[3]).await.is_ok(),
        "issued after the password change"
    );
    assert_eq!(verifier.status().revoked, (1, 1, 1));
}

/// A verifier following a stand-in issuer whose feed holds one token revocation, of `jti`.
async fn following_one_revocation(jti: &str) -> (TestKey, Stub, Verifier, i64) {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let now = now();
    stub.revoke(json!({"type": "token", "jti": jti, "exp": now + 900}));
    let verifier = builder(&stub)
        .revocation_bound(Duration::from_secs(1))
        .connect()
        .await
        .unwrap();
    assert_eq!(verifier.status().revoked, (1, 0, 0));
    (key, stub, verifier, now)
}

#[tokio::test]
async fn an_unknown_cursor_makes_the_verifier_resync_from_the_start() {
    let (_key, stub, verifier, now) = following_one_revocation("gone").await;
    // The issuer's store was replaced: its feed starts over, holding other events.
    stub.replace_feed(vec![
        json!({"type": "family", "fam": "f", "exp": now + 900}),
    ]);
    let resynced = eventually(Duration::from_secs(3), async || {
        verifier.status().revoked == (0, 1, 0)
    })
    .await;
    assert!(resynced.is_some(), "{:?}", verifier.status());
}

#[tokio::test]
async fn a_resync_that_fails_after_its_first_page_goes_on_and_forgets_nothing() {
    let (key, stub, verifier, now) = following_one_revocation("before").await;
    let mut revoked = claims(&stub.url, AUDIENCE, now);
    revoked["jti"] = json!("gone");
    let revoked = key.token(&revoked);
    // The issuer's store was replaced by one with more than a page of events, the first of
    // them revoking `gone`; the read of the second page fails once.
    let mut events = vec![json!({"type": "token", "jti": "gone", "exp": now + 900})];
    events.extend(
        (1..=1000).map(|i| json!({"type": "token", "jti": format!("f{i}"), "exp": now + 900})),
    );
    *stub.state.fail_once_after.lock().unwrap() = Some(stub.next_generation_cursor(1000));
    stub.replace_feed(events);
    let resynced = eventually(Duration::from_secs(5), async || {
        stub.state.fail_once_after.lock().unwrap().is_none()
            && verifier.verify(&revoked).await == Err(VerifyError::Revoked)
    })
    .await;
    assert!(resynced.is_some(), "{:?}", verifier.status());
    assert_eq!(verifier.status().revoked, (1001, 0, 0));
}

/// Two events per page and two pages per round: a feed of nine events takes three rounds.
fn in_short_rounds(stub: &Stub) -> latchkey_verify::Builder {
    builder(stub).feed_paging(2, 2)
}

fn token_with_jti(key: &TestKey, stub: &Stub, now: i64, jti: &str) -> String {
    let mut claims = claims(&stub.url, AUDIENCE, now);
    claims["jti"] = json!(jti);
    key.token(&claims)
}

#[tokio::test]
async fn a_verifier_connects_knowing_every_revocation_of_a_feed_longer_than_one_round() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let now = now();
    for i in 1..=9 {
        stub.revoke(json!({"type": "token", "jti": format!("t{i}"), "exp": now + 900}));
    }
    let verifier = in_short_rounds(&stub).connect().await.unwrap();
    assert_eq!(verifier.status().revoked, (9, 0, 0));
    assert_eq!(
        verifier
            .verify(&token_with_jti(&key, &stub, now, "t9"))
            .await,
        Err(VerifyError::Revoked)
    );
}

#[tokio::test]
async fn a_resync_longer_than_one_round_keeps_the_previous_revocations_until_the_whole_feed_is_read()
 {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let now = now();
    stub.revoke(json!({"type": "token", "jti": "before", "exp": now + 900}));
    let verifier = in_short_rounds(&stub)
        .revocation_bound(Duration::from_secs(4))
        .connect()
        .await
        .unwrap();
    let (before, gone) = (
        token_with_jti(&key, &stub, now, "before"),
        token_with_jti(&key, &stub, now, "gone"),
    );
    // The issuer's store was replaced by one whose feed takes several rounds to read, its last
    // event revoking `gone`; the read after the fourth event fails once, which holds the next
    // round back for a second.
    let mut events: Vec<_> = (1..=8)
        .map(|i| json!({"type": "token", "jti": format!("f{i}"), "exp": now + 900}))
        .collect();
    events.push(json!({"type": "token", "jti": "gone", "exp": now + 900}));
    *stub.state.fail_once_after.lock().unwrap() = Some(stub.next_generation_cursor(4));
    stub.replace_feed(events);
    let halfway = eventually(Duration::from_secs(5), async || {
        stub.state.fail_once_after.lock().unwrap().is_none()
    })
    .await;
    assert!(halfway.is_some());
    assert_eq!(verifier.status().revoked, (1, 0, 0), "a partial state");
    assert_eq!(verifier.verify(&before).await, Err(VerifyError::Revoked));
    let resynced = eventually(Duration::from_secs(5), async || {
        verifier.verify(&gone).await == Err(VerifyError::Revoked)
    })
    .await;
    assert!(resynced.is_some(), "{:?}", verifier.status());
    assert_eq!(verifier.status().revoked, (9, 0, 0));
    assert!(verifier.verify(&before).await.is_ok());
}

#[test]
fn a_leeway_longer_than_the_issuer_keeps_revocations_past_expiry_is_refused() {
    let key = TestKey::rsa("k1");
    let jwks = stub::jwks(&[&key]).to_string();
    let with_leeway = |seconds| {
        Verifier::builder("https://issuer.test", AUDIENCE)
            .leeway(Duration::from_secs(seconds))
            .with_static_keys(jwks.as_bytes())
    };
    assert!(with_leeway(300).is_ok());
    let refused = with_leeway(301);
    assert!(
        matches!(&refused, Err(SetupError::Config(reason)) if reason.contains("300 s")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn by_default_verification_goes_on_while_the_issuer_is_away() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let verifier = builder(&stub)
        .revocation_bound(Duration::from_millis(400))
        .connect()
        .await
        .unwrap();
    stub.state
        .feed_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let token = key.token(&claims(&stub.url, AUDIENCE, now()));
    let stale = eventually(Duration::from_secs(3), async || {
        verifier.status().since_last_sync.unwrap() > Duration::from_millis(800)
    })
    .await;
    assert!(stale.is_some());
    assert!(verifier.verify(&token).await.is_ok());
}

#[tokio::test]
async fn failing_closed_refuses_tokens_once_revocations_are_older_than_the_bound() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let verifier = builder(&stub)
        .revocation_bound(Duration::from_millis(400))
        .when_unreachable(WhenUnreachable::FailClosed)
        .connect()
        .await
        .unwrap();
    let token = key.token(&claims(&stub.url, AUDIENCE, now()));
    assert!(verifier.verify(&token).await.is_ok());
    stub.state
        .feed_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let closed = eventually(Duration::from_secs(3), async || {
        verifier.verify(&token).await == Err(VerifyError::Unavailable)
    })
    .await;
    assert!(closed.is_some(), "fails closed");
    assert_eq!(VerifyError::Unavailable.status(), 503);
    stub.state
        .feed_down
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let open = eventually(Duration::from_secs(3), async || {
        verifier.verify(&token).await.is_ok()
    })
    .await;
    assert!(open.is_some(), "recovers by itself");
}

#[tokio::test]
async fn dropping_the_verifier_stops_its_background_sync() {
    let key = TestKey::rsa("k1");
    let stub = Stub::start(&[&key]).await;
    let verifier = builder(&stub)
        .revocation_bound(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    drop(verifier);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let reads = stub
        .state
        .feed_reads
        .load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after = stub
        .state
        .feed_reads
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reads, after, "no reads after the drop");
}
