//! Black-box tests of the real `latchkey` binary: start-up on a fresh directory, configuration
//! errors, restart and crash durability; the CLI on the store (also while the service runs) in
//! `binary/cli.rs`, file modes in `binary/files.rs`. Each test runs the binary in its own temp
//! directory; see `support/process.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "binary/cli.rs"]
mod cli;
#[path = "binary/files.rs"]
mod files;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::decode_jwt;
use support::process::{Service, Workdir};

const USER_PASSWORD: &str = "correct horse battery";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

async fn get(service: &Service, path: &str) -> reqwest::Response {
    http()
        .get(service.url(path))
        .send()
        .await
        .expect("request sent")
}

async fn post_form(service: &Service, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(service.url(path))
        .form(form)
        .send()
        .await
        .expect("request sent")
}

async fn jwks(service: &Service) -> Value {
    let response = get(service, "/.well-known/jwks.json").await;
    assert_eq!(response.status(), 200, "JWKS status");
    response.json().await.expect("JWKS is JSON")
}

/// The only key of the JWKS; fails if there is not exactly one.
async fn only_kid(service: &Service) -> String {
    let set = jwks(service).await;
    let keys = set["keys"].as_array().expect("keys array");
    assert_eq!(keys.len(), 1, "exactly one key in {set}");
    keys[0]["kid"].as_str().expect("kid").to_owned()
}

/// Status and JSON body of a response.
async fn answer(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// A password grant for `username` through the public client `client_id`.
async fn password_grant(
    service: &Service,
    client_id: &str,
    username: &str,
    password: &str,
) -> (u16, Value) {
    answer(
        post_form(
            service,
            "/oauth/token",
            &[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", client_id),
            ],
        )
        .await,
    )
    .await
}

/// Logs `alice` in through the public client `web`; returns the token response.
async fn login(service: &Service) -> Value {
    let (status, body) = password_grant(service, "web", "alice", USER_PASSWORD).await;
    assert_eq!(status, 200, "login succeeds: {body}");
    assert!(body["access_token"].is_string(), "{body}");
    assert!(body["refresh_token"].is_string(), "{body}");
    body
}

async fn refresh(service: &Service, refresh_token: &str) -> (u16, Value) {
    answer(
        post_form(
            service,
            "/oauth/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", "web"),
            ],
        )
        .await,
    )
    .await
}

async fn revoke(service: &Service, token: &str) {
    let (status, body) = answer(
        post_form(
            service,
            "/oauth/revoke",
            &[("token", token), ("client_id", "web")],
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "revocation accepted: {body}");
}

async fn userinfo_status(service: &Service, access_token: &str) -> u16 {
    http()
        .get(service.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

fn assert_invalid_grant((status, body): (u16, Value), what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
}

/// Registers, through the CLI, the public client `web` (password + refresh_token) and the user
/// `alice` with role `user`.
fn add_web_client_and_alice(dir: &Workdir) {
    let client = dir
        .run(&[
            "clients",
            "add",
            "web",
            "--public",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--scope",
            "read",
        ])
        .json();
    assert_eq!(client["client_id"], "web");
    add_alice(dir);
}

fn add_alice(dir: &Workdir) {
    let user = dir
        .run_with_stdin(
            &[
                "users",
                "add",
                "alice",
                "--password-stdin",
                "--role",
                "user",
            ],
            Some(&format!("{USER_PASSWORD}\n")),
        )
        .json();
    assert_eq!(user["username"], "alice", "{user}");
}

/// Waits until the wall clock's second is past `iat`, so that a change made now is strictly
/// later than the token (token times have one-second resolution).
fn wait_until_after(iat: i64) {
    loop {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        let next_second = Duration::from_secs((iat + 1).max(0) as u64);
        if now >= next_second {
            return;
        }
        std::thread::sleep(next_second - now);
    }
}

/// The `*.pem` files of `dir/keys`.
fn pem_files(dir: &Workdir) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("keys"))
        .expect("keys directory exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "pem"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_fresh_directory_starts_with_no_configuration_and_generates_a_key() {
    let dir = Workdir::new();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "starts empty"
    );
    let mut service = dir.serve();

    let pems = pem_files(&dir);
    assert_eq!(pems.len(), 1, "one generated key: {pems:?}");
    let pem = &pems[0];
    let mode = std::fs::metadata(pem).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode of {}", pem.display());
    assert!(
        std::fs::read_to_string(pem)
            .unwrap()
            .contains("PRIVATE KEY"),
        "a PEM private key"
    );
    assert!(dir.join("data/latchkey.db").is_file(), "the embedded store");

    let health = get(&service, "/healthz").await;
    assert_eq!(health.status(), 200);
    let kid = only_kid(&service).await;

    let file_name = pem.file_name().unwrap().to_string_lossy().into_owned();
    let logs = service.logs();
    let announced = logs.iter().any(|line| {
        let text = line.to_string();
        text.contains(&kid)
            && text.contains(&file_name)
            && line["message"]
                .as_str()
                .is_some_and(|m| m.to_lowercase().contains("generated"))
    });
    assert!(
        announced,
        "a log line announces the generated key {kid} at {file_name}: {logs:#?}"
    );
}

#[tokio::test]
async fn an_existing_key_is_never_overwritten() {
    let dir = Workdir::new();
    let first = dir.serve();
    let kid = only_kid(&first).await;
    let pems = pem_files(&dir);
    assert_eq!(pems.len(), 1);
    let content = std::fs::read(&pems[0]).unwrap();
    first.terminate().assert_clean_exit();

    let mut second = dir.serve();
    assert_eq!(only_kid(&second).await, kid, "same key after restart");
    assert_eq!(pem_files(&dir), pems, "no key added");
    assert_eq!(
        std::fs::read(&pems[0]).unwrap(),
        content,
        "same file content"
    );
    let generated_again = second.logs().iter().any(|line| {
        line["message"]
            .as_str()
            .is_some_and(|m| m.to_lowercase().contains("generated"))
    });
    assert!(!generated_again, "no key generated on the second start");
}

/// How soon a refused start-up must have exited.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(10);

/// A setting for [`assert_start_up_refused`]: environment, arguments and files.
#[derive(Debug, Default)]
struct StartUp<'a> {
    env: &'a [(&'a str, &'a str)],
    args: &'a [&'a str],
    /// `(name, content)` written into the directory first.
    files: &'a [(&'a str, &'a str)],
    /// Default environment variables to drop, so that a file's value is the one that counts.
    without_env: &'a [&'a str],
}

/// Runs `latchkey` in a fresh directory as `setup` says and asserts that it stops quickly
/// with a non-zero exit and a message naming `key`, without ever listening.
fn assert_start_up_refused(setup: StartUp<'_>, key: &str) {
    let mut dir = Workdir::new();
    for name in setup.without_env {
        dir.remove_env(name);
    }
    for (k, v) in setup.env {
        dir.set_env(k, v);
    }
    for (name, content) in setup.files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let output = dir
        .run_within(setup.args, None, REFUSAL_DEADLINE)
        .unwrap_or_else(|| panic!("still running after {REFUSAL_DEADLINE:?}: {setup:?}"));
    let stderr = output.failure();
    assert!(
        stderr.contains(key),
        "stderr names `{key}` for {setup:?}: {stderr}"
    );
    assert!(
        !output.stdout().contains("\"listening\""),
        "never listened: {}",
        output.stdout()
    );
}

#[test]
fn invalid_configuration_stops_start_up_naming_the_key() {
    let env_cases = [
        ("LATCHKEY_TOKENS__ACCESS_TTL", "soon", "tokens.access_ttl"),
        ("LATCHKEY_STORE__BACKEND", "postgres", "store.backend"),
        ("LATCHKEY_SERVER__BIND", "nonsense", "server.bind"),
        (
            "LATCHKEY_SERVER__HEADER_TIMEOUT",
            "0",
            "server.header_timeout",
        ),
        // A misspelt setting is named, not silently ignored.
        (
            "LATCHKEY_SERVER__BIDN",
            "0.0.0.0:8080",
            "LATCHKEY_SERVER__BIDN (did you mean LATCHKEY_SERVER__BIND?)",
        ),
    ];
    for (name, value, key) in env_cases {
        let env = [(name, value)];
        assert_start_up_refused(
            StartUp {
                env: &env,
                ..StartUp::default()
            },
            key,
        );
    }

    // The same through a configuration file, named by `--config` or by `LATCHKEY_CONFIG`.
    // The harness's own LATCHKEY_SERVER__BIND would win over the file, so it is dropped.
    let file_cases = [
        ("[tokens]\naccess_ttl = \"soon\"\n", "tokens.access_ttl"),
        ("[store]\nbackend = \"postgres\"\n", "store.backend"),
        ("[server]\nbind = \"nonsense\"\n", "server.bind"),
        ("[server]\nbidn = \"127.0.0.1:0\"\n", "server.bidn"),
    ];
    for (content, key) in file_cases {
        let files = [("latchkey.toml", content)];
        assert_start_up_refused(
            StartUp {
                args: &["--config", "latchkey.toml"],
                files: &files,
                without_env: &["LATCHKEY_SERVER__BIND"],
                ..StartUp::default()
            },
            key,
        );
        assert_start_up_refused(
            StartUp {
                env: &[("LATCHKEY_CONFIG", "latchkey.toml")],
                args: &["serve"],
                files: &files,
                without_env: &["LATCHKEY_SERVER__BIND"],
            },
            key,
        );
    }

    // A named file that does not exist is an error too, not silently ignored.
    assert_start_up_refused(
        StartUp {
            args: &["--config", "missing.toml"],
            ..StartUp::default()
        },
        "missing.toml",
    );
}

/// Whoever reads the `listening` line (an orchestrator, a test) may stop the service at once:
/// SIGTERM must already be handled then, giving a graceful stop with exit status 0, not death
/// by the signal's default action.
#[test]
fn a_sigterm_right_after_the_listening_line_stops_the_service_cleanly() {
    let dir = Workdir::new();
    for _ in 0..3 {
        dir.serve().terminate().assert_clean_exit();
    }
}

#[tokio::test]
async fn tokens_and_refresh_families_survive_a_restart() {
    let dir = Workdir::new();
    add_web_client_and_alice(&dir);
    let service = dir.serve();
    let kept = login(&service).await;
    let revoked_family = login(&service).await;
    let revoked_access = login(&service).await;
    revoke(&service, revoked_family["refresh_token"].as_str().unwrap()).await;
    revoke(&service, revoked_access["access_token"].as_str().unwrap()).await;
    let stopped = service.terminate();
    stopped.assert_clean_exit();

    let service = dir.serve();
    let kept_access = kept["access_token"].as_str().unwrap();
    assert_eq!(
        userinfo_status(&service, kept_access).await,
        200,
        "the old access token still works"
    );
    let (status, rotated) = refresh(&service, kept["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200, "the refresh token still rotates: {rotated}");
    assert_ne!(rotated["refresh_token"], kept["refresh_token"]);
    assert_eq!(
        userinfo_status(&service, rotated["access_token"].as_str().unwrap()).await,
        200
    );
    assert_invalid_grant(
        refresh(&service, revoked_family["refresh_token"].as_str().unwrap()).await,
        "a refresh token revoked before the restart",
    );
    assert_eq!(
        userinfo_status(&service, revoked_access["access_token"].as_str().unwrap()).await,
        401,
        "an access token revoked before the restart"
    );
}

#[tokio::test]
async fn a_crash_loses_no_committed_family_or_revocation() {
    let dir = Workdir::new().env("LATCHKEY_TOKENS__REFRESH_GRACE", "0");
    add_web_client_and_alice(&dir);
    let service = dir.serve();
    let session = login(&service).await;
    let replaced = session["refresh_token"].as_str().unwrap().to_owned();
    let (status, rotated) = refresh(&service, &replaced).await;
    assert_eq!(status, 200, "{rotated}");
    let current = rotated["refresh_token"].as_str().unwrap().to_owned();
    let other = login(&service).await;
    let other_refresh = other["refresh_token"].as_str().unwrap().to_owned();
    revoke(&service, &other_refresh).await;
    let crashed = service.kill();
    assert!(!crashed.status.success(), "SIGKILL is not a clean exit");

    let service = dir.serve();
    let (status, next) = refresh(&service, &current).await;
    assert_eq!(status, 200, "the rotated refresh token still works: {next}");
    let next_refresh = next["refresh_token"].as_str().unwrap().to_owned();
    assert_invalid_grant(
        refresh(&service, &replaced).await,
        "the replaced refresh token is reuse",
    );
    // Reuse revoked the whole family: the token just issued is dead too, which shows the
    // replaced token was recognised as a member of the family, not as an unknown token.
    assert_invalid_grant(
        refresh(&service, &next_refresh).await,
        "the family after reuse",
    );
    assert_invalid_grant(
        refresh(&service, &other_refresh).await,
        "a family revoked before the crash",
    );
}

#[test]
fn dangerous_settings_are_warned_about_at_start_up_naming_the_setting() {
    let dir = Workdir::new().env("LATCHKEY_SECURITY__TRUSTED_PROXIES", "10.0.0.1,0.0.0.0/0");
    let mut service = dir.serve();
    let warning = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["level"] == "WARN" && l["setting"] == "security.trusted_proxies"
        })
        .expect("a warning about the trusted proxies");
    assert!(
        warning["message"]
            .as_str()
            .is_some_and(|m| m.contains("'0.0.0.0/0'")),
        "{warning}"
    );
}
