//! A revocation is final when it is answered: after a password change, a disable, a client's
//! removal or a secret rotation returns, no token issued before that answer verifies,
//! introspects as active or refreshes, and no issuance that read the old credential completes
//! with a live token. Users and clients are separate subjects. Each test runs on the embedded
//! store and on Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use latchkey::accounts::{self, UserChanges};
use latchkey::credentials::PasswordHasher;
use latchkey::domain::{GrantType, Secret};
use serde_json::Value;
use support::redis_server::RedisServer;
use support::{TestApp, assert_oauth_error};
use tokio::sync::Semaphore;

on_both_stores!(
    tokens_issued_in_the_second_of_a_password_reset_die_with_it,
    logins_racing_a_password_reset_leave_no_session_that_read_the_old_password,
    a_disabled_user_enabled_again_in_the_same_second_gets_no_old_token_back,
    a_removed_client_takes_every_token_issued_through_it,
    a_rotated_secret_takes_the_tokens_issued_with_the_old_one,
    a_name_held_by_a_client_cannot_be_registered_by_a_user_nor_the_other_way,
    a_change_of_roles_ends_the_access_tokens_with_the_old_roles_but_not_the_session,
    a_removal_cut_short_before_its_revocation_is_completed_by_its_retry,
    a_login_waiting_out_one_reset_gets_no_live_token_when_a_second_reset_follows,
);

const PASSWORD: &str = "correct horse";

async fn set_password(app: &TestApp, password: &str) {
    let hasher = PasswordHasher::new(&app.settings.passwords).expect("hasher");
    accounts::set_password(
        &app.change(),
        &hasher,
        &app.settings.tokens,
        "alice",
        Secret::new(password),
    )
    .await
    .expect("password changed");
}

/// An introspecting resource server.
async fn add_introspector(app: &TestApp) -> String {
    app.add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a secret")
}

async fn introspect(app: &TestApp, secret: &str, token: &str) -> bool {
    let answer = app.introspect_as("rs", secret, token).await;
    answer["active"].as_bool().expect("active")
}

fn field(tokens: &Value, name: &str) -> String {
    tokens[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {tokens}"))
        .to_owned()
}

/// Asserts that a token pair is dead everywhere the issuer answers for it.
async fn assert_dead(app: &TestApp, introspector: &str, tokens: &Value, why: &str) {
    let access = field(tokens, "access_token");
    assert!(
        !introspect(app, introspector, &access).await,
        "{why}: access token active"
    );
    assert_eq!(app.userinfo(&access).await.status(), 401, "{why}: userinfo");
    if let Some(refresh) = tokens["refresh_token"].as_str() {
        assert!(
            !introspect(app, introspector, refresh).await,
            "{why}: refresh token active"
        );
        let response = app.refresh(refresh).await;
        assert_oauth_error(response, 400, "invalid_grant").await;
    }
}

async fn tokens_issued_in_the_second_of_a_password_reset_die_with_it(app: &TestApp) {
    app.with_user_and_web_client().await;
    let introspector = add_introspector(app).await;
    // Three rounds: each logs in and resets at once, nearly always within one second.
    for round in 0..3 {
        let before = app.login().await;
        set_password(app, PASSWORD).await;
        assert_dead(app, &introspector, &before, &format!("round {round}")).await;
        // The password still works, and a session opened after the reset is live at once.
        let after = app.login().await;
        let access = field(&after, "access_token");
        assert!(
            introspect(app, &introspector, &access).await,
            "round {round}"
        );
        assert_eq!(app.userinfo(&access).await.status(), 200);
        assert_eq!(
            app.refresh(&field(&after, "refresh_token")).await.status(),
            200
        );
    }
}

async fn logins_racing_a_password_reset_leave_no_session_that_read_the_old_password(app: &TestApp) {
    app.with_user_and_web_client().await;
    let introspector = add_introspector(app).await;
    let reset_answered = Arc::new(AtomicBool::new(false));
    let logged_in = Arc::new(Semaphore::new(0));
    let mut loops = Vec::new();
    for _ in 0..3 {
        let (http, url) = (app.http.clone(), app.url("/oauth/token"));
        let (reset_answered, logged_in) = (reset_answered.clone(), logged_in.clone());
        loops.push(tokio::spawn(async move {
            let mut sessions = Vec::new();
            let mut refused_after_reset = 0;
            // Bounded: until three logins after the reset have been refused.
            for _ in 0..500 {
                let after_reset = reset_answered.load(Ordering::SeqCst);
                let response = http
                    .post(&url)
                    .form(&[
                        ("grant_type", "password"),
                        ("username", "alice"),
                        ("password", "correct horse"),
                        ("client_id", "web"),
                    ])
                    .send()
                    .await
                    .expect("request sent");
                match response.status().as_u16() {
                    200 => {
                        if sessions.is_empty() {
                            logged_in.add_permits(1);
                        }
                        sessions.push(response.json::<Value>().await.expect("json"));
                    }
                    400 | 429 if after_reset => refused_after_reset += 1,
                    // Refused while the reset was under way: a failure's count may reach
                    // the limit before this loop sees the reset answered.
                    400 | 429 => {}
                    other => panic!("login answered {other}"),
                }
                if refused_after_reset >= 3 {
                    break;
                }
            }
            assert!(refused_after_reset >= 3, "the old password kept working");
            sessions
        }));
    }
    // Once every loop has logged in, reset while they run.
    let _all = logged_in.acquire_many(3).await.expect("semaphore");
    set_password(app, "a new horse").await;
    reset_answered.store(true, Ordering::SeqCst);
    let mut sessions = 0;
    for handle in loops {
        for tokens in handle.await.expect("login loop") {
            assert_dead(app, &introspector, &tokens, "a session of the old password").await;
            sessions += 1;
        }
    }
    assert!(sessions > 0, "some logins went through before the reset");
}

async fn a_disabled_user_enabled_again_in_the_same_second_gets_no_old_token_back(app: &TestApp) {
    app.with_user_and_web_client().await;
    let introspector = add_introspector(app).await;
    let before = app.login().await;
    let toggle = |disabled| UserChanges {
        roles: None,
        disabled: Some(disabled),
    };
    let tokens = &app.settings.tokens;
    accounts::update_user(&app.change(), tokens, "alice", toggle(true))
        .await
        .expect("disabled");
    accounts::update_user(&app.change(), tokens, "alice", toggle(false))
        .await
        .expect("enabled");
    assert_dead(
        app,
        &introspector,
        &before,
        "a token from before the disable",
    )
    .await;
    let after = app.login().await;
    assert!(introspect(app, &introspector, &field(&after, "access_token")).await);
}

async fn a_removed_client_takes_every_token_issued_through_it(app: &TestApp) {
    app.with_user_and_web_client().await;
    let introspector = add_introspector(app).await;
    let secret = app
        .add_client(
            "svc",
            false,
            &[
                GrantType::ClientCredentials,
                GrantType::Password,
                GrantType::RefreshToken,
            ],
            &["read"],
            &[],
        )
        .await
        .expect("a secret");
    let own = client_credentials(app, "svc", &secret).await;
    let users = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("client_id", "svc"),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(users.status(), 200);
    let users: Value = users.json().await.expect("json");
    let through_web = app.login().await;

    accounts::delete_client(&app.change(), &app.settings.tokens, "svc")
        .await
        .expect("removed");
    for (tokens, what) in [(&own, "the client's own token"), (&users, "a user's token")] {
        let access = field(tokens, "access_token");
        assert!(!introspect(app, &introspector, &access).await, "{what}");
    }
    assert_eq!(
        app.userinfo(&field(&users, "access_token")).await.status(),
        401
    );
    // Another client's session of the same user is not touched.
    let access = field(&through_web, "access_token");
    assert!(introspect(app, &introspector, &access).await);
    let feed = revocation_feed(app, &introspector).await;
    let client_events: Vec<&Value> = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "client")
        .collect();
    assert_eq!(client_events.len(), 1, "{feed}");
    assert_eq!(client_events[0]["client_id"], "svc");
    let (_, claims) = support::decode_jwt(&field(&own, "access_token"));
    assert!(claims["iat"].as_i64() < client_events[0]["not_before"].as_i64());
}

async fn a_rotated_secret_takes_the_tokens_issued_with_the_old_one(app: &TestApp) {
    let introspector = add_introspector(app).await;
    let secret = app
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a secret");
    let before = client_credentials(app, "svc", &secret).await;
    let fresh = accounts::rotate_secret(&app.change(), &app.settings.tokens, "svc")
        .await
        .expect("rotated");
    let access = field(&before, "access_token");
    assert!(!introspect(app, &introspector, &access).await);
    let after = client_credentials(app, "svc", fresh.expose()).await;
    assert!(introspect(app, &introspector, &field(&after, "access_token")).await);
    let old = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", &secret),
        ])
        .await;
    assert_oauth_error(old, 401, "invalid_client").await;
}

async fn a_name_held_by_a_client_cannot_be_registered_by_a_user_nor_the_other_way(app: &TestApp) {
    app.add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await;
    app.add_user("alice", PASSWORD, &["user"]).await;
    let hasher = PasswordHasher::new(&app.settings.passwords).expect("hasher");
    for name in ["svc", "SVC"] {
        let taken = accounts::add_user(
            &app.change(),
            &hasher,
            name,
            Secret::new(PASSWORD),
            Default::default(),
        )
        .await;
        let message = taken.expect_err("a client's name").to_string();
        assert!(message.contains("client"), "{message}");
    }
    let spec = accounts::ClientSpec {
        public: true,
        grants: [GrantType::Password].into(),
        scopes: Default::default(),
        audiences: Default::default(),
        keys: None,
        ..Default::default()
    };
    let taken = accounts::add_client(&app.change(), "Alice", spec.clone()).await;
    let message = taken.err().expect("a user's name").to_string();
    assert!(message.contains("user"), "{message}");
    // A removed client's name stays its own: its `sub` is never handed to a user.
    accounts::delete_client(&app.change(), &app.settings.tokens, "svc")
        .await
        .expect("removed");
    let taken = accounts::add_user(
        &app.change(),
        &hasher,
        "svc",
        Secret::new(PASSWORD),
        Default::default(),
    )
    .await;
    assert!(taken.is_err());
    accounts::add_client(&app.change(), "svc", spec)
        .await
        .expect("the client's own name back");
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> Value {
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ])
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn revocation_feed(app: &TestApp, introspector: &str) -> Value {
    let response = app
        .http
        .get(app.url("/oauth/revocations"))
        .basic_auth("rs", Some(introspector))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn a_change_of_roles_ends_the_access_tokens_with_the_old_roles_but_not_the_session(
    app: &TestApp,
) {
    app.with_user_and_web_client().await;
    let introspector = add_introspector(app).await;
    let before = app.login().await;
    let changes = UserChanges {
        roles: Some(["auditor".to_owned()].into()),
        disabled: None,
    };
    accounts::update_user(&app.change(), &app.settings.tokens, "alice", changes)
        .await
        .expect("roles changed");
    let old_access = field(&before, "access_token");
    assert!(
        !introspect(app, &introspector, &old_access).await,
        "old roles"
    );
    assert_eq!(app.userinfo(&old_access).await.status(), 401);
    let feed = revocation_feed(app, &introspector).await;
    let (_, claims) = support::decode_jwt(&old_access);
    let cut_off = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "subject" && e["sub"] == "alice")
        .and_then(|e| e["not_before"].as_i64())
        .expect("a subject event for resource servers");
    assert!(claims["iat"].as_i64().expect("iat") < cut_off);
    // Nobody is logged out: the session refreshes into a token with the new roles.
    let refresh = field(&before, "refresh_token");
    assert!(
        introspect(app, &introspector, &refresh).await,
        "the session lives"
    );
    let response = app.refresh(&refresh).await;
    assert_eq!(response.status(), 200);
    let after: Value = response.json().await.expect("json");
    let access = field(&after, "access_token");
    let (_, claims) = support::decode_jwt(&access);
    assert_eq!(claims["roles"], serde_json::json!(["auditor"]));
    assert!(introspect(app, &introspector, &access).await);
}

async fn a_removal_cut_short_before_its_revocation_is_completed_by_its_retry(app: &TestApp) {
    let introspector = add_introspector(app).await;
    let secret = app
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a secret");
    let token = field(
        &client_credentials(app, "svc", &secret).await,
        "access_token",
    );
    // What a 503 between the deletion and the revocation leaves behind.
    let id = latchkey::domain::ClientId::parse("svc").expect("client id");
    assert!(app.store.delete_client(&id).await.expect("deleted"));
    assert!(
        introspect(app, &introspector, &token).await,
        "not revoked yet"
    );
    let retried = accounts::delete_client(&app.change(), &app.settings.tokens, "svc").await;
    assert!(retried.is_err(), "the client is gone: 404");
    assert!(
        !introspect(app, &introspector, &token).await,
        "the retry revoked it"
    );
}

async fn a_login_waiting_out_one_reset_gets_no_live_token_when_a_second_reset_follows(
    app: &TestApp,
) {
    app.with_user_and_web_client().await;
    let introspector = add_introspector(app).await;
    for round in 0..3 {
        let password = format!("password of round {round}");
        set_password(app, &password).await;
        // This login reads the new password and waits for the reset's cut-off to pass...
        let (http, url) = (app.http.clone(), app.url("/oauth/token"));
        let login = tokio::spawn(async move {
            let form = [
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", password.as_str()),
                ("client_id", "web"),
            ];
            http.post(url)
                .form(&form)
                .send()
                .await
                .expect("request sent")
        });
        // ...while a second reset lands within the same second, not moving the cut-off.
        set_password(app, &format!("password after round {round}")).await;
        let response = login.await.expect("login");
        if response.status() == 200 {
            let tokens: Value = response.json().await.expect("json");
            assert_dead(app, &introspector, &tokens, "a login between two resets").await;
        } else {
            assert_oauth_error(response, 400, "invalid_grant").await;
        }
    }
}
