//! Attempt limits that an attacker cannot aim at someone else: a username locked per address,
//! slowed down across addresses (not from where the user signed in before); addresses limited
//! across usernames; client authentication per address only; registrations per address. All
//! refused before any password is checked, reserved atomically, shared by replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use latchkey::accounts::{self, ClientSpec};
use latchkey::audit::{Actor, Origin};
use latchkey::configuration::Settings;
use latchkey::credentials::PasswordHasher;
use latchkey::domain::{GrantType, Secret, now, now_ms};
use latchkey::error::ServiceError;
use latchkey::keys::{KeyRing, KeySet, SigningKey};
use latchkey::oauth::{Authority, ClientCredentials, TokenRequest};
use latchkey::store::SharedStore;
use latchkey::store::embedded::EmbeddedStore;
use support::redis_server::RedisServer;
use support::{TestApp, assert_oauth_error, cheap_passwords};

async fn login_as(app: &TestApp, username: &str, password: &str) -> reqwest::Response {
    app.token(&[
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", "web"),
    ])
    .await
}

async fn login_from(app: &TestApp, username: &str, forwarded_for: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", forwarded_for)
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", "wrong password"),
            ("client_id", "web"),
        ])
        .send()
        .await
        .expect("request sent")
}

/// Asserts the 429 answer: RFC 6749 JSON body, `Retry-After` within the window.
async fn assert_limited(response: reqwest::Response, window: u64) {
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a numeric Retry-After");
    assert!(
        (1..=window).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let body = assert_oauth_error(response, 429, "too_many_requests").await;
    assert!(body["error_description"].is_string(), "{body}");
}

/// The service behind a trusted proxy on loopback, so tests choose the client's address.
async fn behind_proxy(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let app = TestApp::spawn_with(|s| {
        s.security.trusted_proxies = vec!["127.0.0.0/8".into()];
        configure(s);
    })
    .await;
    app.with_user_and_web_client().await;
    app
}

async fn password_from(
    app: &TestApp,
    address: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", address)
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", "web"),
        ])
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn past_the_limit_from_one_address_even_the_right_password_is_refused_there_only() {
    let app = behind_proxy(|s| {
        s.security.max_failed_logins_per_user_address = 3;
        s.security.failed_login_window = 600;
    })
    .await;
    let attacker = "198.51.100.66";
    for _ in 0..3 {
        let wrong = password_from(&app, attacker, "alice", "wrong password").await;
        assert_oauth_error(wrong, 400, "invalid_grant").await;
    }
    let right = password_from(&app, attacker, "alice", "correct horse").await;
    assert_limited(right, 600).await;
    // Case does not open a second counter.
    assert_limited(
        password_from(&app, attacker, "ALICE", "correct horse").await,
        600,
    )
    .await;
    // The user, elsewhere, still gets in; another user from the attacker's address too.
    let elsewhere = password_from(&app, "203.0.113.7", "alice", "correct horse").await;
    assert_eq!(elsewhere.status(), 200);
    app.add_user("bob", "bob's password", &["user"]).await;
    let bob = password_from(&app, attacker, "bob", "bob's password").await;
    assert_eq!(bob.status(), 200);
}

#[tokio::test]
async fn guesses_spread_over_addresses_are_slowed_down_while_the_user_at_a_known_address_gets_in() {
    let app = behind_proxy(|s| {
        s.security.max_failed_logins_per_user = 2;
        s.security.login_backoff_max = 60;
    })
    .await;
    // The user has signed in from home before.
    let home = "203.0.113.7";
    assert_eq!(
        password_from(&app, home, "alice", "correct horse")
            .await
            .status(),
        200
    );
    // A botnet: each guess from a fresh address. Two go through, then each must wait.
    for bot in ["198.51.100.1", "198.51.100.2"] {
        let wrong = password_from(&app, bot, "alice", "wrong password").await;
        assert_oauth_error(wrong, 400, "invalid_grant").await;
    }
    let slowed = password_from(&app, "198.51.100.3", "alice", "wrong password").await;
    assert_limited(slowed, 60).await;
    let newcomer = password_from(&app, "198.51.100.4", "alice", "correct horse").await;
    assert_limited(newcomer, 60).await;
    // From home the user is not slowed down.
    let login = password_from(&app, home, "alice", "correct horse").await;
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn parallel_wrong_passwords_cannot_race_past_the_limit() {
    let app = TestApp::spawn_with(|s| s.security.max_failed_logins_per_user_address = 10).await;
    app.with_user_and_web_client().await;
    let attempts = (0..40).map(|_| login_as(&app, "alice", "wrong password"));
    let answers = futures_util::future::join_all(attempts).await;
    let checked = answers.iter().filter(|r| r.status() == 400).count();
    let refused = answers.iter().filter(|r| r.status() == 429).count();
    assert_eq!(
        (checked, refused),
        (10, 30),
        "each password checked was reserved first"
    );
}

#[tokio::test]
async fn a_successful_login_resets_the_username_record_from_its_address() {
    let app = TestApp::spawn_with(|s| s.security.max_failed_logins_per_user_address = 3).await;
    app.with_user_and_web_client().await;
    for _ in 0..3 {
        for _ in 0..2 {
            let wrong = login_as(&app, "alice", "wrong password").await;
            assert_oauth_error(wrong, 400, "invalid_grant").await;
        }
        assert_eq!(login_as(&app, "alice", "correct horse").await.status(), 200);
    }
}

#[tokio::test]
async fn registrations_from_one_address_are_limited() {
    let app = TestApp::spawn_with(|s| {
        s.registration.enabled = true;
        s.registration.max_per_address = 3;
        s.security.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let register = |name: String, address: &'static str| {
        app.http
            .post(app.url("/users"))
            .header("x-forwarded-for", address)
            .json(&serde_json::json!({"username": name, "password": "a long passphrase"}))
            .send()
    };
    for i in 0..3 {
        let created = register(format!("bot{i}"), "198.51.100.9")
            .await
            .expect("sent");
        assert_eq!(created.status(), 201);
    }
    let refused = register("bot3".into(), "198.51.100.9").await.expect("sent");
    assert_limited(refused, 3600).await;
    let elsewhere = register("carol".into(), "203.0.113.7").await.expect("sent");
    assert_eq!(elsewhere.status(), 201);
}

#[tokio::test]
async fn failures_from_one_address_are_limited_across_usernames() {
    let app = TestApp::spawn_with(|s| s.security.max_failed_logins_per_address = 4).await;
    app.with_user_and_web_client().await;
    for name in ["u1", "u2", "u3", "u4"] {
        assert_oauth_error(
            login_as(&app, name, "wrong password").await,
            400,
            "invalid_grant",
        )
        .await;
    }
    assert_limited(login_as(&app, "alice", "correct horse").await, 900).await;
}

#[tokio::test]
async fn x_forwarded_for_counts_only_when_the_peer_is_a_trusted_proxy() {
    let behind_proxy = TestApp::spawn_with(|s| {
        s.security.max_failed_logins_per_address = 2;
        s.security.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    behind_proxy.with_user_and_web_client().await;
    // Two clients behind the proxy, two failures each: each is at its own limit only.
    for client in ["198.51.100.1", "198.51.100.2"] {
        for user in ["u1", "u2"] {
            let forwarded = format!("6.6.6.6, {client}");
            let response = login_from(&behind_proxy, user, &forwarded).await;
            assert_oauth_error(response, 400, "invalid_grant").await;
        }
    }
    // The forged leftmost hop is not who is counted: 198.51.100.1 is limited, whatever it says.
    let limited = login_from(&behind_proxy, "u3", "7.7.7.7, 198.51.100.1").await;
    assert_limited(limited, 900).await;
    let fresh = login_from(&behind_proxy, "u3", "198.51.100.3").await;
    assert_oauth_error(fresh, 400, "invalid_grant").await;

    // With no trusted proxy the header is ignored: every request is the peer's.
    let direct = TestApp::spawn_with(|s| s.security.max_failed_logins_per_address = 2).await;
    direct.with_user_and_web_client().await;
    for (user, forged) in [("u1", "198.51.100.1"), ("u2", "198.51.100.2")] {
        let response = login_from(&direct, user, forged).await;
        assert_oauth_error(response, 400, "invalid_grant").await;
    }
    assert_limited(login_from(&direct, "u3", "198.51.100.3").await, 900).await;
}

#[tokio::test]
async fn client_authentication_failures_are_limited_per_address_never_per_client() {
    let app = TestApp::spawn_with(|s| {
        s.security.max_failed_client_auths_per_address = 3;
        s.security.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let secret = app
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a confidential client has a secret");
    let request = |secret: String, address: &'static str| {
        app.http
            .post(app.url("/oauth/token"))
            .header("x-forwarded-for", address)
            .basic_auth("svc", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let attacker = "198.51.100.66";
    for _ in 0..3 {
        let wrong = request("not the secret".into(), attacker)
            .await
            .expect("sent");
        assert_oauth_error(wrong, 401, "invalid_client").await;
    }
    assert_limited(request(secret.clone(), attacker).await.expect("sent"), 900).await;
    // The service itself, from its own address, is not locked out.
    let service = request(secret.clone(), "10.1.2.3").await.expect("sent");
    assert_eq!(service.status(), 200);
    // Introspection authenticates clients the same way.
    let introspect = app
        .http
        .post(app.url("/oauth/introspect"))
        .header("x-forwarded-for", attacker)
        .basic_auth("svc", Some(&secret))
        .form(&[("token", "x")])
        .send()
        .await
        .expect("sent");
    assert_limited(introspect, 900).await;
}

/// Once an address has failed, parallel wrong secrets from it are reserved one by one: no
/// more are checked than the limit leaves, and a right secret gives its place back.
async fn parallel_wrong_client_secrets_from_a_failing_address_stop_at_the_limit(app: TestApp) {
    let secret = app
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a confidential client has a secret");
    let request = |secret: &str| {
        app.http
            .post(app.url("/oauth/token"))
            .header("x-forwarded-for", "198.51.100.66")
            .basic_auth("svc", Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let first = request("not the secret").await.expect("sent");
    assert_oauth_error(first, 401, "invalid_client").await;
    // A right secret from the failing address is reserved too, and gives its place back.
    assert_eq!(request(&secret).await.expect("sent").status(), 200);
    let attempts = (0..40).map(|_| request("not the secret"));
    let answers = futures_util::future::join_all(attempts).await;
    let status = |code| {
        answers
            .iter()
            .filter(|r| r.as_ref().is_ok_and(|r| r.status() == code))
            .count()
    };
    assert_eq!(
        (status(401), status(429)),
        (9, 31),
        "each secret checked after the first failure was reserved first"
    );
}

#[tokio::test]
async fn parallel_wrong_client_secrets_stop_at_the_limit_on_the_embedded_store() {
    let app = TestApp::spawn_with(client_limit_of_ten).await;
    parallel_wrong_client_secrets_from_a_failing_address_stop_at_the_limit(app).await;
}

#[tokio::test]
async fn parallel_wrong_client_secrets_stop_at_the_limit_on_redis() {
    let redis = RedisServer::start();
    let app = TestApp::spawn_on_redis(&redis.url(), client_limit_of_ten).await;
    parallel_wrong_client_secrets_from_a_failing_address_stop_at_the_limit(app).await;
}

fn client_limit_of_ten(settings: &mut Settings) {
    settings.security.max_failed_client_auths_per_address = 10;
    settings.security.trusted_proxies = vec!["127.0.0.0/8".into()];
}

#[tokio::test]
async fn a_public_client_sending_no_secret_is_not_held_to_the_client_limits_but_a_probe_is() {
    let app = TestApp::spawn_with(|s| {
        s.security.max_failed_client_auths_per_address = 1;
    })
    .await;
    app.with_user_and_web_client().await;
    let guess = || {
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth("web", Some("a guessed secret"))
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "correct horse"),
            ])
            .send()
    };
    assert_oauth_error(guess().await.expect("sent"), 401, "invalid_client").await;
    assert_limited(guess().await.expect("sent"), 900).await;

    // Without a secret there is nothing to guess; the password grant has limits of its own.
    let login = login_as(&app, "alice", "correct horse").await;
    assert_eq!(login.status(), 200);
    // A client id that authenticates nothing, secret or not, meets the address's limit.
    let probe = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "no-such-client"),
        ])
        .await;
    assert_limited(probe, 900).await;
}

#[tokio::test]
async fn the_limit_holds_across_replicas_sharing_a_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limit = |s: &mut Settings| s.security.max_failed_logins_per_user_address = 2;
    let first = TestApp::spawn_in(dir.path().to_path_buf(), limit).await;
    let second = TestApp::spawn_in(dir.path().to_path_buf(), limit).await;
    first.with_user_and_web_client().await;
    for app in [&first, &second] {
        let wrong = login_as(app, "alice", "wrong password").await;
        assert_oauth_error(wrong, 400, "invalid_grant").await;
    }
    assert_limited(login_as(&first, "alice", "correct horse").await, 900).await;
    assert_limited(login_as(&second, "alice", "correct horse").await, 900).await;
}

#[tokio::test]
async fn a_refused_login_spends_no_password_verification() {
    let mut settings = Settings {
        passwords: cheap_passwords(),
        ..Settings::default()
    };
    settings.security.max_failed_logins_per_user_address = 2;
    let store: SharedStore = Arc::new(EmbeddedStore::open_in_memory().expect("store"));
    let (key, _) = SigningKey::generate_rsa(2048).expect("key");
    let keys = Arc::new(KeyRing::fixed(
        KeySet::from_keys(vec![key]).expect("key set"),
    ));
    let hasher = PasswordHasher::new(&settings.passwords).expect("hasher");
    let operator = Actor::Operator("test");
    let change = accounts::Change {
        store: store.as_ref(),
        by: &operator,
        now: now(),
    };
    let spec = ClientSpec {
        public: true,
        grants: [GrantType::Password].into_iter().collect(),
        scopes: Default::default(),
        audiences: Default::default(),
        keys: None,
        ..Default::default()
    };
    accounts::add_client(&change, "web", spec)
        .await
        .expect("client");
    let roles = ["user".to_string()].into_iter().collect();
    accounts::add_user(
        &change,
        &hasher,
        "alice",
        Secret::new("correct horse"),
        roles,
    )
    .await
    .expect("user");
    let authority = Authority::new(&settings, store, keys, hasher.clone());
    let attempt = |password: &str| TokenRequest {
        grant_type: Some("password".into()),
        username: Some("alice".into()),
        password: Some(Secret::new(password)),
        client: ClientCredentials {
            client_id: Some("web".into()),
            client_secret: None,
            assertion: None,
            origin: Origin::new(Some("192.0.2.1".into()), None),
        },
        ..TokenRequest::default()
    };
    for _ in 0..2 {
        let refused = authority
            .exchange(attempt("wrong password"), now_ms())
            .await;
        assert!(
            matches!(refused, Err(ServiceError::InvalidGrant(_))),
            "{refused:?}"
        );
    }
    let before = hasher.verifications();
    for _ in 0..20 {
        let refused = authority.exchange(attempt("correct horse"), now_ms()).await;
        assert!(
            matches!(refused, Err(ServiceError::TooManyRequests { .. })),
            "{refused:?}"
        );
    }
    assert_eq!(
        hasher.verifications(),
        before,
        "no argon2 verification while limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_turned_away_by_a_full_hashing_queue_do_not_count_against_the_address() {
    const LIMIT: usize = 12;
    let app = TestApp::spawn_with(|s| {
        s.passwords.memory_kib = 16 * 1024;
        s.passwords.iterations = 4;
        s.passwords.max_concurrent = 1;
        s.passwords.max_queue = 1;
        s.security.max_failed_logins_per_address = LIMIT as u64;
        s.security.max_failed_logins_per_user_address = 0;
        s.security.max_failed_logins_per_user = 0;
    })
    .await;
    app.with_user_and_web_client().await;
    // Guesses at unknown users all at once (each costs a full hash): most find the queue full.
    let attempts = (0..24).map(|i| {
        let app = &app;
        async move { login_as(app, &format!("nobody{i}"), "wrong password").await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let guessed = answers.iter().filter(|r| r.status() == 400).count();
    let busy = answers.iter().filter(|r| r.status() == 503).count();
    assert!(
        guessed < LIMIT && guessed + busy >= LIMIT,
        "{guessed} checked and {busy} turned away: the limit is not where the test needs it"
    );
    // Only the checked ones were guesses: the address is still below its limit.
    let login = login_as(&app, "alice", "correct horse").await;
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn a_forwarded_for_header_with_bytes_that_are_not_text_still_names_the_client() {
    let app = behind_proxy(|s| {
        s.security.max_failed_logins_per_user_address = 0;
        s.security.max_failed_logins_per_user = 0;
        s.security.max_failed_logins_per_address = 2;
    })
    .await;
    // The client wrote a byte that is not text; the proxy appended the client's address.
    let forwarded = reqwest::header::HeaderValue::from_bytes(b"\xe9, 203.0.113.78").unwrap();
    for _ in 0..2 {
        let guess = app
            .http
            .post(app.url("/oauth/token"))
            .header("x-forwarded-for", forwarded.clone())
            .form(&[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wrong password"),
                ("client_id", "web"),
            ])
            .send()
            .await
            .expect("request sent");
        assert_oauth_error(guess, 400, "invalid_grant").await;
    }
    // Those guesses counted against the client's address, not the proxy's.
    let client = password_from(&app, "203.0.113.78", "alice", "correct horse").await;
    assert_limited(client, 900).await;
    let neighbour = password_from(&app, "203.0.113.79", "alice", "correct horse").await;
    assert_eq!(neighbour.status(), 200);
}
