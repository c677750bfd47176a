//! The admin API: every endpoint, and every way a caller is refused (no token, an expired
//! one, a non-admin, a disabled admin, an admin who just lost the role, a client's token, a
//! token minted for another audience or without the admin scope), and what tokens for the
//! admin API are good for elsewhere (nothing).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "admin/audiences.rs"]
mod audiences;
#[path = "admin/clients.rs"]
mod clients;
#[path = "admin/import.rs"]
mod import;
#[path = "admin/refusals.rs"]
mod refusals;
#[path = "admin/users.rs"]
mod users;

use reqwest::Method;
use serde_json::Value;
use support::TestApp;

const ROOT_PASSWORD: &str = "root password";

/// The service with client `web` (public: password + refresh_token; scopes read write),
/// client `admin-console` (public: password + refresh_token; scope admin), an administrator
/// `root` and a plain user `alice`.
async fn app() -> TestApp {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    app.with_admin_console().await;
    app.add_user("root", ROOT_PASSWORD, &["admin"]).await;
    app
}

async fn login(app: &TestApp, username: &str, password: &str) -> Value {
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", "web"),
        ])
        .await;
    assert_eq!(response.status(), 200, "{username} logs in");
    response.json().await.unwrap()
}

/// An access token of `root` for the admin API: through `admin-console`, with `scope=admin`.
async fn root_token(app: &TestApp) -> String {
    app.admin_token("root", ROOT_PASSWORD).await
}

fn access(tokens: &Value) -> String {
    tokens["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

/// One admin API request with an optional bearer token and JSON body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> reqwest::Response {
    let mut request = app.http.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

/// Status and JSON body; fails on a body that is not JSON.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, body)
}

async fn client_credentials(app: &TestApp, id: &str, secret: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, secret: &str, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("rs", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn assert_no_hashes(body: &Value) {
    let text = body.to_string();
    assert!(!text.contains("hash"), "no hash field in {text}");
    assert!(!text.contains("$argon2"), "no password hash in {text}");
}
