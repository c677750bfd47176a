//! Nobody learns whether a username exists from how long a refusal takes: with the real
//! (OWASP) argon2 parameters, refusing an unknown username and refusing a wrong password take
//! the same time, for users whose hashes were imported from another system too, cheaper or
//! costlier than argon2id. (Registration hashes the password before it looks for the name, so a taken
//! name costs the same argon2 work; its 409 says the name exists, which the API must say, so a
//! remaining difference — the database write a new account costs — reveals nothing more.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use latchkey::domain::GrantType;
use support::TestApp;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn relative_difference(a: Duration, b: Duration) -> f64 {
    let (a, b) = (a.as_secs_f64(), b.as_secs_f64());
    (a - b).abs() / a.max(b)
}

/// How far apart two series of timings taken in pairs are: the median of the pairs' ratios,
/// as a share of the larger side.
fn paired_difference(a: &[Duration], b: &[Duration]) -> f64 {
    let mut ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(a, b)| b.as_secs_f64() / a.as_secs_f64().max(f64::MIN_POSITIVE))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let ratio = ratios[ratios.len() / 2];
    (ratio - 1.0).abs() / ratio.max(1.0)
}

async fn timed(request: reqwest::RequestBuilder, status: u16) -> Duration {
    let started = Instant::now();
    let response = request.send().await.expect("sent");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), status);
    elapsed
}

/// A password grant for `username` through client `web` with a wrong password.
fn wrong_password(app: &TestApp, username: &str) -> reqwest::RequestBuilder {
    let form = [
        ("grant_type", "password"),
        ("username", username),
        ("password", "wrong password"),
        ("client_id", "web"),
    ];
    app.http.post(app.url("/oauth/token")).form(&form)
}

async fn owasp_app() -> TestApp {
    TestApp::spawn_with(|s| {
        s.passwords = latchkey::configuration::Settings::default().passwords;
        s.registration.enabled = true;
        // Hundreds of refusals from one address are the point here.
        s.security.max_failed_logins_per_address = 0;
        s.security.max_failed_logins_per_user_address = 0;
        s.security.max_failed_logins_per_user = 0;
    })
    .await
}

#[tokio::test]
async fn an_unknown_username_and_a_wrong_password_are_refused_in_the_same_time() {
    let app = owasp_app().await;
    app.add_client("web", true, &[GrantType::Password], &[], &[])
        .await;
    app.add_user("alice", "correct horse", &["user"]).await;
    let login = |username: &str| wrong_password(&app, username);
    // Warm up both paths (connection, caches) before measuring.
    timed(login("alice"), 400).await;
    timed(login("nobody"), 400).await;
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    // Interleaved, so drift in the machine's load falls on both alike.
    for i in 0..200 {
        unknown.push(timed(login(&format!("nobody{i}")), 400).await);
        wrong.push(timed(login("alice"), 400).await);
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    let difference = relative_difference(unknown, wrong);
    println!(
        "median refusal: unknown username {unknown:?}, wrong password {wrong:?} ({:.1}% apart)",
        difference * 100.0
    );
    assert!(difference < 0.10, "{unknown:?} vs {wrong:?}");
}

/// A hash in Werkzeug's pbkdf2 form of `iterations`, which no password used here matches.
fn werkzeug_pbkdf2(iterations: u32) -> String {
    format!(
        "pbkdf2:sha256:{iterations}$imported0salt${}",
        "ab".repeat(32)
    )
}

#[tokio::test]
async fn users_with_imported_hashes_are_refused_in_the_time_an_unknown_username_is() {
    let app = owasp_app().await;
    app.add_client("web", true, &[GrantType::Password], &[], &[])
        .await;
    app.with_admin_console().await;
    app.add_user("root", "root password", &["admin"]).await;
    app.add_user("alice", "correct horse", &["user"]).await;
    let token = app.admin_token("root", "root password").await;
    // A Werkzeug 1.x hash (1,000 iterations: far cheaper than argon2id), and a scrypt and a
    // pbkdf2 hash costlier than it.
    let users = serde_json::json!({"users": [
        {"username": "cheap", "password_hash": werkzeug_pbkdf2(1_000)},
        {"username": "costly", "password_hash": werkzeug_pbkdf2(100_000)},
        {"username": "scrypt", "password_hash":
            format!("scrypt:8192:8:1$imported0salt${}", "cd".repeat(64))},
    ]});
    let response = app
        .http
        .post(app.url("/admin/users/import"))
        .bearer_auth(&token)
        .json(&users)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let imported: serde_json::Value = response.json().await.unwrap();
    assert_eq!(imported["refused"], serde_json::json!([]), "{imported}");

    let login = |username: &str| wrong_password(&app, username);
    let names = ["alice", "cheap", "costly", "scrypt"];
    for name in names.iter().chain(&["nobody"]) {
        timed(login(name), 400).await;
    }
    let mut unknown = Vec::new();
    let mut known: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    for i in 0..40 {
        unknown.push(timed(login(&format!("nobody{i}")), 400).await);
        for (samples, name) in known.iter_mut().zip(names) {
            samples.push(timed(login(name), 400).await);
        }
    }
    for (samples, name) in known.into_iter().zip(names) {
        // Each round's refusals came moments apart, so each pair shares the machine's load
        // at that moment: compare the pairs, not the two medians.
        let difference = paired_difference(&unknown, &samples);
        let (unknown, known) = (median(unknown.clone()), median(samples));
        println!(
            "median refusal: unknown username {unknown:?}, {name} {known:?} (pairs {:.1}% apart)",
            difference * 100.0
        );
        assert!(
            difference < 0.10,
            "{name}: {known:?} vs unknown {unknown:?}"
        );
    }
}
