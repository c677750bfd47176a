//! Nobody learns whether a username exists from how long a refusal takes: with the real
//! (OWASP) argon2 parameters, refusing an unknown username and refusing a wrong password take
//! the same time. (Registration hashes the password before it looks for the name, so a taken
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

async fn timed(request: reqwest::RequestBuilder, status: u16) -> Duration {
    let started = Instant::now();
    let response = request.send().await.expect("sent");
    let elapsed = started.elapsed();
    assert_eq!(response.status(), status);
    elapsed
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
    let login = |username: &str| {
        let form = [
            ("grant_type", "password"),
            ("username", username),
            ("password", "wrong password"),
            ("client_id", "web"),
        ];
        app.http.post(app.url("/oauth/token")).form(&form)
    };
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
