//! `GET /oauth/revocations`: the feed resource servers follow to refuse revoked access tokens on
//! their own, on the embedded store and across replicas on one Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use latchkey::domain::GrantType;
use serde_json::Value;
use support::redis_server::RedisServer;
use support::{TestApp, assert_oauth_error};

/// Registers the confidential client `rs` that follows the feed; returns its secret.
async fn feed_client(app: &TestApp) -> String {
    app.add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a confidential client has a secret")
}

async fn feed(app: &TestApp, secret: &str, query: &str) -> reqwest::Response {
    app.http
        .get(app.url(&format!("/oauth/revocations{query}")))
        .basic_auth("rs", Some(secret))
        .send()
        .await
        .expect("request sent")
}

async fn feed_page(app: &TestApp, secret: &str, query: &str) -> Value {
    let response = feed(app, secret, query).await;
    assert_eq!(response.status(), 200, "feed answers");
    response.json().await.expect("json feed")
}

async fn revoke(app: &TestApp, token: &str) {
    let response = app
        .post_form("/oauth/revoke", &[("token", token), ("client_id", "web")])
        .await;
    assert_eq!(response.status(), 200, "revocation succeeds");
}

fn claims(token: &str) -> Value {
    support::decode_jwt(token).1
}

#[tokio::test]
async fn revoked_tokens_sessions_and_subjects_appear_in_the_feed_in_order() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = feed_client(&app).await;
    let start = feed_page(&app, &secret, "").await;
    assert_eq!(start["events"], serde_json::json!([]));
    assert!(start["poll_after"].as_u64().expect("poll_after") >= 1);

    let first = app.login().await;
    let access = first["access_token"].as_str().unwrap();
    revoke(&app, access).await;
    let second = app.login().await;
    let response = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(second["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "logout succeeds");
    latchkey::accounts::set_password(
        &app.change(),
        &latchkey::credentials::PasswordHasher::new(&app.settings.passwords).unwrap(),
        &app.settings.tokens,
        "alice",
        latchkey::domain::Secret::new("battery staple"),
    )
    .await
    .unwrap();

    let page = feed_page(
        &app,
        &secret,
        &format!("?after={}", start["next_cursor"].as_str().unwrap()),
    )
    .await;
    let events = page["events"].as_array().unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // Logout revokes the session, then the access token.
    assert_eq!(kinds, ["token", "family", "token", "subject"], "{page}");
    assert_eq!(events[0]["jti"], claims(access)["jti"]);
    assert_eq!(events[0]["exp"], claims(access)["exp"]);
    assert_eq!(
        events[1]["fam"],
        claims(second["access_token"].as_str().unwrap())["sid"]
    );
    assert_eq!(events[3]["sub"], "alice");
    assert!(events[3]["not_before"].as_i64().unwrap() > 0);
    assert!(events[3]["exp"].as_i64().unwrap() > events[3]["not_before"].as_i64().unwrap());
    assert_eq!(page["next_cursor"], events[3]["cursor"]);

    // Paging: a full page says to ask again at once; the rest follows the last cursor.
    let one = feed_page(&app, &secret, "?limit=1").await;
    assert_eq!(one["events"].as_array().unwrap().len(), 1);
    assert_eq!(one["poll_after"], 0);
    let rest = feed_page(
        &app,
        &secret,
        &format!("?after={}&limit=10", one["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 3);
    let caught_up = feed_page(
        &app,
        &secret,
        &format!("?after={}", rest["next_cursor"].as_str().unwrap()),
    )
    .await;
    assert_eq!(caught_up["events"], serde_json::json!([]));
    assert_eq!(caught_up["next_cursor"], rest["next_cursor"]);
}

#[tokio::test]
async fn only_an_authenticated_confidential_client_may_read_the_feed() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = feed_client(&app).await;
    let anonymous = app
        .http
        .get(app.url("/oauth/revocations"))
        .send()
        .await
        .unwrap();
    let challenge = anonymous.headers().get("www-authenticate").cloned();
    assert_oauth_error(anonymous, 401, "invalid_client").await;
    assert!(challenge.unwrap().to_str().unwrap().starts_with("Basic"));

    let wrong = app
        .http
        .get(app.url("/oauth/revocations"))
        .basic_auth("rs", Some(format!("{secret}x")))
        .send()
        .await
        .unwrap();
    assert_oauth_error(wrong, 401, "invalid_client").await;
    let public = app
        .http
        .get(app.url("/oauth/revocations"))
        .basic_auth("web", Some(""))
        .send()
        .await
        .unwrap();
    assert_oauth_error(public, 401, "invalid_client").await;
    // A public client's id alone, however it is sent, proves nothing.
    for request in [
        app.http
            .get(app.url("/oauth/revocations"))
            .basic_auth("web", None::<&str>),
        app.http.get(app.url("/oauth/revocations?client_id=web")),
        app.http
            .get(app.url("/oauth/revocations"))
            .basic_auth("web", Some("guess")),
    ] {
        let response = request.send().await.unwrap();
        let challenge = response.headers().get("www-authenticate").cloned();
        assert_oauth_error(response, 401, "invalid_client").await;
        assert!(challenge.unwrap().to_str().unwrap().starts_with("Basic"));
    }
    let bearer = app
        .http
        .get(app.url("/oauth/revocations"))
        .bearer_auth(app.login().await["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_oauth_error(bearer, 401, "invalid_client").await;
}

#[tokio::test]
async fn an_unknown_cursor_tells_the_follower_to_resync_from_the_start() {
    let app = TestApp::spawn().await;
    let secret = feed_client(&app).await;
    for bad in ["?after=not-a-cursor", "?after=999999", "?limit=0"] {
        let body = assert_oauth_error(feed(&app, &secret, bad).await, 400, "invalid_request").await;
        if bad.contains("after") {
            let text = body["error_description"].as_str().unwrap();
            assert!(text.contains("resync"), "{text}");
        }
    }
    let huge = feed_page(&app, &secret, "?limit=100000").await;
    assert_eq!(huge["events"], serde_json::json!([]));
}

#[tokio::test]
async fn the_metadata_names_the_feed() {
    let app = TestApp::spawn().await;
    let metadata = app.metadata().await;
    assert_eq!(
        metadata["revocation_feed_endpoint"],
        app.url("/oauth/revocations")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_serve_one_feed() {
    let redis = RedisServer::start();
    let keys = tempfile::tempdir().unwrap();
    // One issuer: the same `iss` and key directory behind two addresses.
    let shared = |s: &mut latchkey::configuration::Settings| {
        s.keys.dir = keys.path().to_path_buf();
        s.issuer = "http://latchkey.test".into();
    };
    let a = TestApp::spawn_on_redis(&redis.url(), shared).await;
    let b = TestApp::spawn_on_redis(&redis.url(), shared).await;
    a.with_user_and_web_client().await;
    let secret = feed_client(&a).await;
    let start = feed_page(&b, &secret, "").await;

    let tokens = a.login().await;
    revoke(&b, tokens["access_token"].as_str().unwrap()).await;
    revoke(&a, tokens["refresh_token"].as_str().unwrap()).await;

    let after = format!("?after={}", start["next_cursor"].as_str().unwrap());
    let from_a = feed_page(&a, &secret, &after).await;
    let from_b = feed_page(&b, &secret, &after).await;
    assert_eq!(
        from_a["events"], from_b["events"],
        "one feed, whichever replica answers"
    );
    let kinds: Vec<&str> = from_a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["token", "family"]);
    // A cursor from one replica is good at the other.
    let next = format!("?after={}", from_a["next_cursor"].as_str().unwrap());
    assert_eq!(
        feed_page(&b, &secret, &next).await["events"],
        serde_json::json!([])
    );
    let future = assert_oauth_error(
        feed(&b, &secret, "?after=99999999999999-0").await,
        400,
        "invalid_request",
    )
    .await;
    assert!(
        future["error_description"]
            .as_str()
            .unwrap()
            .contains("resync")
    );
}

/// A session's event concerns the access tokens that carry its `sid`; its refresh tokens never
/// reach a resource server. So it leaves the feed shortly after the last of them expires (a
/// margin for verifiers' leeway), not weeks later.
async fn a_revoked_session_stays_in_the_feed_as_long_as_its_last_access_token(app: &TestApp) {
    app.with_user_and_web_client().await;
    let secret = feed_client(app).await;
    let login = app.login().await;
    let refreshed: Value = app
        .refresh(login["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    let access = claims(refreshed["access_token"].as_str().unwrap());
    let refresh_token = refreshed["refresh_token"].as_str().unwrap();
    revoke(app, refresh_token).await;

    let page = feed_page(app, &secret, "").await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["type"], "family");
    assert_eq!(events[0]["fam"], access["sid"]);
    let margin = latchkey::store::FAMILY_EVENT_MARGIN;
    assert_eq!(
        events[0]["exp"].as_i64(),
        Some(access["exp"].as_i64().unwrap() + margin),
        "{page}"
    );
    assert!(access["exp"].as_i64() < claims(refresh_token)["exp"].as_i64());
}

on_both_stores!(a_revoked_session_stays_in_the_feed_as_long_as_its_last_access_token);

/// A repeat inside the grace window gets the same successor, and an access token no longer
/// lived than the family recorded: the session's feed event, kept that long, still covers it
/// when the replica answering has a longer `tokens.access_ttl` (a rolling change of the setting).
#[tokio::test]
async fn a_repeat_on_a_replica_with_a_longer_access_lifetime_keeps_the_recorded_one() {
    let redis = RedisServer::start();
    let keys = tempfile::tempdir().unwrap();
    let shared = |s: &mut latchkey::configuration::Settings, access_ttl| {
        s.keys.dir = keys.path().to_path_buf();
        s.issuer = "http://latchkey.test".into();
        s.tokens.access_ttl = access_ttl;
    };
    let a = TestApp::spawn_on_redis(&redis.url(), |s| shared(s, 300)).await;
    let b = TestApp::spawn_on_redis(&redis.url(), |s| shared(s, 900)).await;
    a.with_user_and_web_client().await;
    let login = a.login().await;
    let refresh_token = login["refresh_token"].as_str().unwrap();

    let first: Value = a.refresh(refresh_token).await.json().await.unwrap();
    let repeat: Value = b.refresh(refresh_token).await.json().await.unwrap();
    assert_eq!(repeat["refresh_token"], first["refresh_token"], "{repeat}");
    let first_access = claims(first["access_token"].as_str().unwrap());
    let repeat_access = claims(repeat["access_token"].as_str().unwrap());
    let lifetime =
        |claims: &Value| claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime(&first_access), 300);
    assert_eq!(repeat_access["exp"], first_access["exp"]);
    assert_eq!(repeat_access["sid"], first_access["sid"]);

    // A rotation on the replica with the longer lifetime records it.
    let next: Value = b
        .refresh(first["refresh_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        lifetime(&claims(next["access_token"].as_str().unwrap())),
        900
    );
}
