//! Administration through the real binary: the bootstrap admin from the environment, the
//! audit trail in the JSON log, and the CLI doing what the admin API does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::decode_jwt;
use support::process::{Service, Workdir};

const ADMIN_PASSWORD: &str = "first admin password";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Status and JSON body of a password grant through the public client `web`.
async fn password_grant(service: &Service, username: &str, password: &str) -> (u16, Value) {
    password_grant_with(service, username, password, None).await
}

async fn password_grant_with(
    service: &Service,
    username: &str,
    password: &str,
    request_id: Option<&str>,
) -> (u16, Value) {
    let mut request = http().post(service.url("/oauth/token")).form(&[
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", "web"),
    ]);
    if let Some(id) = request_id {
        request = request.header("X-Request-Id", id);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

async fn admin_get(service: &Service, token: &str, path: &str) -> (u16, Value) {
    let response = http()
        .get(service.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Status and JSON body of a password grant for the admin API: through the public client
/// `admin-console` (see [`add_admin_console`]), with `scope=admin`.
async fn admin_grant(service: &Service, username: &str, password: &str) -> (u16, Value) {
    let response = http()
        .post(service.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
            ("client_id", "admin-console"),
            ("scope", "admin"),
        ])
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// What an operator registers to get tokens for the admin API: a public client with the
/// password grant and scope `admin`.
fn add_admin_console(dir: &Workdir) {
    let client = dir
        .run(&[
            "clients",
            "add",
            "admin-console",
            "--public",
            "--grant",
            "password",
            "--scope",
            "admin",
        ])
        .json();
    assert_eq!(client["client_id"], "admin-console");
}

fn add_web_client(dir: &Workdir) {
    dir.run(&[
        "clients",
        "add",
        "web",
        "--public",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
    ])
    .json();
}

/// A directory whose service creates `root` as the bootstrap admin, the password in a file
/// that ends with a newline (as `echo` and most secret stores write it).
fn bootstrapped_dir() -> Workdir {
    let dir = Workdir::new();
    std::fs::write(dir.join("admin-password"), format!("{ADMIN_PASSWORD}\n")).unwrap();
    let file = dir.join("admin-password");
    dir.env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root").env(
        "LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE",
        file.to_str().unwrap(),
    )
}

#[tokio::test]
async fn the_bootstrap_admin_is_created_once_from_a_password_file_and_never_overwritten() {
    let mut dir = bootstrapped_dir();
    add_web_client(&dir);
    add_admin_console(&dir);
    let mut service = dir.serve();
    let created = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["message"] == "created the bootstrap admin"
        })
        .expect("the creation is logged");
    assert_eq!(created["username"], "root");
    assert!(!created.to_string().contains(ADMIN_PASSWORD));

    let (status, tokens) = admin_grant(&service, "root", ADMIN_PASSWORD).await;
    assert_eq!(
        status, 200,
        "the trailing newline is not part of the password: {tokens}"
    );
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(decode_jwt(token).1["roles"], json!(["admin"]));
    assert_eq!(decode_jwt(token).1["aud"], "latchkey-admin");
    let (status, body) = admin_get(&service, token, "/admin/users/root").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"], json!(["admin"]));
    service.terminate().assert_clean_exit();

    // Restarted with another password configured: the admin's own password stays.
    dir.set_env("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "some other password");
    dir.remove_env("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE");
    let service = dir.serve();
    assert_eq!(
        password_grant(&service, "root", ADMIN_PASSWORD).await.0,
        200
    );
    assert_eq!(
        password_grant(&service, "root", "some other password")
            .await
            .0,
        400
    );
    let logs = service.terminate().logs;
    assert!(
        !logs
            .iter()
            .any(|l| l["message"] == "created the bootstrap admin"),
        "not created twice"
    );
}

#[tokio::test]
async fn an_existing_user_without_role_admin_is_left_alone_with_a_warning() {
    let dir = Workdir::new()
        .env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "alice")
        .env("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "00012345678");
    add_web_client(&dir);
    dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("alice's own password\n"),
    )
    .json();
    let mut service = dir.serve();
    let warning = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["level"] == "WARN"
                && l["username"] == "alice"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("bootstrap"))
        })
        .expect("a warning");
    assert_eq!(warning["username"], "alice");
    assert_eq!(
        password_grant(&service, "alice", "alice's own password")
            .await
            .0,
        200
    );
    assert_eq!(
        password_grant(&service, "alice", "00012345678").await.0,
        400
    );
    let user = dir.run(&["users", "show", "alice"]).json();
    assert_eq!(user["roles"], json!([]));
}

#[tokio::test]
async fn a_numeric_looking_bootstrap_password_is_taken_as_written() {
    let dir = Workdir::new()
        .env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root")
        .env("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "00012345678");
    add_web_client(&dir);
    let service = dir.serve();
    assert_eq!(password_grant(&service, "root", "00012345678").await.0, 200);
}

#[test]
fn a_bootstrap_username_without_a_password_stops_start_up_naming_the_key() {
    let dir = Workdir::new().env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root");
    let output = dir
        .run_within(&[], None, Duration::from_secs(10))
        .expect("exits");
    let stderr = output.failure();
    assert!(stderr.contains("bootstrap.admin_password"), "{stderr}");
    let dir = Workdir::new()
        .env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root")
        .env(
            "LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD_FILE",
            "/nonexistent/secret",
        );
    let stderr = dir
        .run_within(&[], None, Duration::from_secs(10))
        .expect("exits")
        .failure();
    assert!(stderr.contains("bootstrap.admin_password_file"), "{stderr}");
    let dir = Workdir::new()
        .env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root")
        .env("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", "short");
    let stderr = dir
        .run_within(&[], None, Duration::from_secs(10))
        .expect("exits")
        .failure();
    assert!(stderr.contains("bootstrap"), "{stderr}");
}

#[tokio::test]
async fn a_failed_login_is_one_audit_event_with_who_what_where_and_no_password() {
    let dir = Workdir::new();
    add_web_client(&dir);
    dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("alice's own password\n"),
    )
    .json();
    let mut service = dir.serve();
    let secret = "hunter2-wrong-guess";
    let (status, _) = password_grant_with(&service, "alice", secret, Some("req-4711")).await;
    assert_eq!(status, 400);
    let event = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "login_failed"
        })
        .expect("a login_failed audit event");
    assert_eq!(event["who"], "alice", "{event}");
    assert_eq!(event["client_id"], "web", "{event}");
    assert_eq!(event["source"], "127.0.0.1", "{event}");
    assert_eq!(event["request_id"], "req-4711", "{event}");
    assert_eq!(event["level"], "WARN", "{event}");

    let (status, tokens) = password_grant(&service, "alice", "alice's own password").await;
    assert_eq!(status, 200);
    let login = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "login"
        })
        .expect("a login audit event");
    assert_eq!(login["who"], "alice");
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let logs: Vec<String> = service.logs().iter().map(Value::to_string).collect();
    let all = logs.join("\n");
    for leaked in [secret, "alice's own password", access, refresh] {
        assert!(!all.contains(leaked), "the log holds no password or token");
    }
    let failures = logs
        .iter()
        .filter(|l| l.contains("\"login_failed\""))
        .count();
    assert_eq!(failures, 1, "one event per failure");
}

#[tokio::test]
async fn a_refusal_by_the_limits_is_an_audit_event_with_who_where_through_which_client_and_why() {
    let dir = Workdir::new()
        .env("LATCHKEY_SECURITY__MAX_FAILED_LOGINS_PER_USER_ADDRESS", "1")
        .env(
            "LATCHKEY_SECURITY__MAX_FAILED_CLIENT_AUTHS_PER_ADDRESS",
            "1",
        );
    add_web_client(&dir);
    dir.run(&["clients", "add", "svc", "--grant", "client_credentials"])
        .json();
    let mut service = dir.serve();
    let (status, _) = password_grant_with(&service, "alice", "a guess", None).await;
    assert_eq!(status, 400);
    let (status, _) = password_grant_with(&service, "alice", "a guess", Some("req-429")).await;
    assert_eq!(status, 429);
    let event = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "rate_limited"
        })
        .expect("a rate_limited audit event");
    assert_eq!(event["who"], "alice", "{event}");
    assert_eq!(event["client_id"], "web", "{event}");
    assert_eq!(event["limit"], "login_per_user_and_address", "{event}");
    assert!(
        event["retry_after"].as_u64().is_some_and(|s| s > 0),
        "{event}"
    );
    assert_eq!(event["source"], "127.0.0.1", "{event}");
    assert_eq!(event["request_id"], "req-429", "{event}");
    assert_eq!(event["level"], "WARN", "{event}");

    let wrong_secret = || {
        http()
            .post(service.url("/oauth/token"))
            .basic_auth("svc", Some("not-the-secret"))
            .header("x-request-id", "svc-429")
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(wrong_secret().await.unwrap().status(), 401);
    assert_eq!(wrong_secret().await.unwrap().status(), 429);
    let event = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["what"] == "rate_limited" && l["request_id"] == "svc-429"
        })
        .expect("a rate_limited audit event for the client");
    assert_eq!(event["who"], "svc", "{event}");
    assert_eq!(event["client_id"], "svc", "{event}");
    assert_eq!(event["limit"], "client_auth_per_address", "{event}");
    assert_eq!(event["source"], "127.0.0.1", "{event}");
}

#[tokio::test]
async fn admin_changes_are_audited_with_the_admin_and_the_request() {
    let dir = bootstrapped_dir();
    add_admin_console(&dir);
    let mut service = dir.serve();
    let (_, tokens) = admin_grant(&service, "root", ADMIN_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    let response = http()
        .post(service.url("/admin/clients"))
        .bearer_auth(token)
        .header("X-Request-Id", "create-reports")
        .json(&json!({"client_id": "reports"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    let event = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "client_created"
        })
        .expect("a client_created audit event");
    assert_eq!(event["who"], "root");
    assert_eq!(event["subject"], "reports");
    assert_eq!(event["request_id"], "create-reports");
    assert_eq!(event["source"], "127.0.0.1");
    let secret = body["client_secret"].as_str().unwrap();
    let logs: Vec<String> = service.logs().iter().map(Value::to_string).collect();
    assert!(
        !logs.join("\n").contains(secret),
        "the secret never reaches the log"
    );
}

#[tokio::test]
async fn the_cli_does_what_the_admin_api_does() {
    let dir = Workdir::new();
    add_web_client(&dir);
    dir.run_with_stdin(
        &[
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--role",
            "user",
        ],
        Some("alice's own password\n"),
    )
    .json();
    let service = dir.serve();

    let user = dir
        .run(&["users", "roles", "alice", "--role", "user", "--role", "ops"])
        .json();
    assert_eq!(user["roles"], json!(["ops", "user"]));
    assert!(user.get("password_hash").is_none(), "{user}");
    let shown = dir.run(&["users", "show", "alice"]).json();
    assert_eq!(shown["roles"], json!(["ops", "user"]));
    assert!(
        dir.run(&["users", "roles", "alice"])
            .failure()
            .contains("--role")
    );

    let (status, tokens) = password_grant(&service, "alice", "alice's own password").await;
    assert_eq!(status, 200);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let disabled = dir.run(&["users", "disable", "alice"]).json();
    assert_eq!(disabled["disabled"], true);
    assert_eq!(disabled["tokens_revoked"], true);
    let userinfo = |token: String| {
        let service = &service;
        async move {
            http()
                .get(service.url("/userinfo"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(userinfo(access.clone()).await, 401);
    assert_eq!(
        password_grant(&service, "alice", "alice's own password")
            .await
            .0,
        400
    );
    let enabled = dir.run(&["users", "enable", "alice"]).json();
    assert_eq!(enabled["disabled"], false);
    assert_eq!(userinfo(access).await, 401, "enabling brings no token back");
    let (status, tokens) = password_grant(&service, "alice", "alice's own password").await;
    assert_eq!(status, 200);
    assert_eq!(
        userinfo(tokens["access_token"].as_str().unwrap().to_owned()).await,
        200
    );

    let list = dir.run(&["users", "list"]).json();
    assert_eq!(list[0]["username"], "alice");
    assert_eq!(
        list[0]["password_scheme"], "argon2id",
        "the scheme, never the hash"
    );
    assert!(!list.to_string().contains("$argon2"));

    // Clients: add, show, update, rotate the secret, remove.
    let added = dir
        .run(&["clients", "add", "svc", "--scope", "read"])
        .json();
    let first = added["client_secret"].as_str().unwrap().to_owned();
    let shown = dir.run(&["clients", "show", "svc"]).json();
    assert_eq!(shown["scope"], "read");
    assert!(!shown.to_string().contains(&first));
    let updated = dir
        .run(&[
            "clients",
            "update",
            "svc",
            "--scope",
            "read",
            "--scope",
            "write",
            "--audience",
            "billing",
        ])
        .json();
    assert_eq!(updated["scope"], "read write");
    assert_eq!(updated["audiences"], json!(["billing"]));
    assert!(
        dir.run(&["clients", "update", "svc"])
            .failure()
            .contains("nothing to change")
    );
    let rotated = dir.run(&["clients", "rotate-secret", "svc"]).json();
    let second = rotated["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    let grant = |secret: String| {
        let service = &service;
        async move {
            http()
                .post(service.url("/oauth/token"))
                .basic_auth("svc", Some(secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("audience", "billing"),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(grant(first).await, 401);
    assert_eq!(grant(second.clone()).await, 200);
    dir.run(&["clients", "remove", "svc"]).json();
    assert_eq!(grant(second).await, 401);
    assert!(
        dir.run(&["clients", "show", "svc"])
            .failure()
            .contains("svc")
    );
}

#[tokio::test]
async fn an_admin_s_token_for_another_audience_is_refused_by_the_admin_api_and_audited() {
    let dir = bootstrapped_dir();
    add_admin_console(&dir);
    dir.run(&[
        "clients",
        "add",
        "reports-app",
        "--public",
        "--grant",
        "password",
        "--scope",
        "read",
        "--audience",
        "reports-api",
    ])
    .json();
    let mut service = dir.serve();
    // What the reports API receives from root, and might replay.
    let response = http()
        .post(service.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "root"),
            ("password", ADMIN_PASSWORD),
            ("client_id", "reports-app"),
            ("audience", "reports-api"),
            ("scope", "read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let (status, body) = admin_get(&service, token, "/admin/users").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    let event = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "admin_denied"
        })
        .expect("an admin_denied audit event");
    assert_eq!(event["who"], "root", "{event}");
    assert_eq!(event["client_id"], "reports-app", "{event}");
    // The metadata names the audience the admin API takes; root's token for it works.
    let metadata: Value = http()
        .get(service.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["admin_audience"], "latchkey-admin");
    let (_, tokens) = admin_grant(&service, "root", ADMIN_PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(admin_get(&service, token, "/admin/users").await.0, 200);
}

/// `GET /readyz`'s status and body.
async fn readiness(service: &Service) -> (u16, Value) {
    let response = http()
        .get(service.url("/readyz"))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON body"))
}

/// Asks `/readyz` until it answers 200 or `deadline` passes; whether it did.
async fn becomes_ready(service: &Service, deadline: Duration) -> bool {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if readiness(service).await.0 == 200 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test]
async fn with_the_store_unreachable_the_service_starts_unready_with_or_without_a_bootstrap_admin() {
    let mut redis = support::redis_server::RedisServer::start();
    redis.stop();
    let on_redis = |dir: Workdir| {
        dir.env("LATCHKEY_STORE__BACKEND", "redis")
            .env("LATCHKEY_STORE__URL", &redis.url())
    };
    let with_admin = on_redis(bootstrapped_dir());
    let without_admin = on_redis(Workdir::new());
    let mut services = Vec::new();
    for dir in [&with_admin, &without_admin] {
        // Both start and listen, say why they are not ready, and answer 503 meanwhile.
        let mut service = dir.serve();
        service
            .wait_for_log(Duration::from_secs(5), |l| {
                l["level"] == "WARN"
                    && l["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("the store does not answer"))
            })
            .expect("the unreachable store is reported");
        let (status, body) = readiness(&service).await;
        assert_eq!(status, 503, "{body}");
        services.push(service);
    }
    let (_, body) = readiness(&services[0]).await;
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("bootstrap admin")),
        "{body}"
    );

    redis.restart();
    for service in &services {
        assert!(
            becomes_ready(service, Duration::from_secs(20)).await,
            "ready once the store answers"
        );
    }
    let created = services[0]
        .wait_for_log(Duration::from_secs(5), |l| {
            l["message"] == "created the bootstrap admin"
        })
        .expect("the bootstrap admin is created once the store answers");
    assert_eq!(created["username"], "root");
    add_web_client(&with_admin);
    let (status, body) = password_grant(&services[0], "root", ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{body}");
}
