//! One canonical username: usernames are case-insensitive (stored, signed and counted in
//! ASCII lowercase), and names that HTTP clients or command lines cannot carry as they are
//! (`.`, `..`, a leading `-`) are refused by registration, the admin API and the CLI alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::process::Workdir;
use support::{TestApp, assert_oauth_error, decode_jwt};

async fn register(app: &TestApp, username: &str) -> reqwest::Response {
    app.http
        .post(app.url("/users"))
        .json(&json!({"username": username, "password": "a long passphrase"}))
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_username_differing_only_in_case_is_the_same_user_everywhere() {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.with_user_and_web_client().await;
    for taken in ["Alice", "ALICE"] {
        assert_oauth_error(register(&app, taken).await, 409, "conflict").await;
    }
    let created = register(&app, "Bob").await;
    assert_eq!(created.status(), 201);
    let profile: Value = created.json().await.expect("json");
    assert_eq!(profile["username"], "bob", "stored in its canonical form");
    for spelling in ["alice", "Alice", "ALICE"] {
        let login = app
            .token(&[
                ("grant_type", "password"),
                ("username", spelling),
                ("password", "correct horse"),
                ("client_id", "web"),
            ])
            .await;
        assert_eq!(login.status(), 200, "{spelling}");
        let tokens: Value = login.json().await.expect("json");
        let (_, claims) = decode_jwt(tokens["access_token"].as_str().expect("token"));
        assert_eq!(claims["sub"], "alice");
    }
}

#[tokio::test]
async fn registering_a_client_s_name_answers_as_a_taken_username_and_names_no_client() {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.with_user_and_web_client().await;
    let bodies = [register(&app, "alice").await, register(&app, "Web").await];
    let mut answers = Vec::new();
    for response in bodies {
        assert_eq!(response.status(), 409);
        let body: Value = response.json().await.expect("json");
        answers.push(body);
    }
    assert_eq!(answers[0], answers[1], "a client id is not told apart");
    assert!(!answers[1].to_string().contains("client"), "{}", answers[1]);
}

#[tokio::test]
async fn an_email_address_with_a_tag_is_a_username_that_signs_in_and_is_administered() {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.with_user_and_web_client().await;
    app.with_admin_console().await;
    app.add_user("root", "root password", &["admin"]).await;
    assert_eq!(register(&app, "Ann+Work@Example.com").await.status(), 201);
    // reqwest form-encodes the `+` as %2B, as every form encoder must.
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("username", "ann+work@example.com"),
            ("password", "a long passphrase"),
            ("client_id", "web"),
        ])
        .await;
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.expect("json");
    let (_, claims) = decode_jwt(tokens["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], "ann+work@example.com");
    // A `+` left unencoded in a form is a space, which no username holds.
    let unencoded = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=ann+work@example.com&password=a+long+passphrase&client_id=web")
        .send()
        .await
        .expect("sent");
    assert_oauth_error(unencoded, 400, "invalid_grant").await;
    let admin = app.admin_token("root", "root password").await;
    let user: Value = app
        .http
        .get(app.url("/admin/users/ann+work@example.com"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(user["username"], "ann+work@example.com", "{user}");
    let client = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(&admin)
        .json(&json!({"client_id": "svc+1", "grants": ["client_credentials"]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(client.status(), 400, "a client id may not hold +");
}

#[tokio::test]
async fn failed_logins_in_any_spelling_count_against_one_user() {
    let app = TestApp::spawn_with(|s| {
        s.security.max_failed_logins_per_user_address = 2;
    })
    .await;
    app.with_user_and_web_client().await;
    for spelling in ["Alice", "ALICE"] {
        let wrong = app
            .token(&[
                ("grant_type", "password"),
                ("username", spelling),
                ("password", "wrong"),
                ("client_id", "web"),
            ])
            .await;
        assert_eq!(wrong.status(), 400);
    }
    let locked = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wrong"),
            ("client_id", "web"),
        ])
        .await;
    assert_eq!(locked.status(), 429);
}

#[tokio::test]
async fn path_segment_names_are_refused_by_registration() {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    for name in [".", "..", ".hidden", "-admin"] {
        assert_oauth_error(register(&app, name).await, 400, "invalid_request").await;
    }
}

#[test]
fn the_cli_refuses_path_segment_names_and_folds_case() {
    let dir = Workdir::new();
    for name in ["..", "."] {
        let out = dir.run_with_stdin(
            &["users", "add", name, "--password-stdin"],
            Some("a long passphrase\n"),
        );
        assert!(!out.success(), "{name} was accepted");
        assert!(out.stderr().contains("username"), "{}", out.stderr());
    }
    let out = dir.run(&["clients", "add", "..", "--public", "--grant", "password"]);
    assert!(!out.success(), "a client named ..");
    let out = dir.run_with_stdin(
        &["users", "add", "Carol", "--password-stdin"],
        Some("a long passphrase\n"),
    );
    assert!(out.success(), "{}", out.failure());
    let again = dir.run_with_stdin(
        &["users", "add", "CAROL", "--password-stdin"],
        Some("a long passphrase\n"),
    );
    assert!(!again.success(), "CAROL next to carol");
}
