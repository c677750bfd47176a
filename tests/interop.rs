//! Interop: Latchkey's tokens and endpoints as seen by client and resource-server libraries
//! nobody here wrote (PyJWT, authlib, jose). Each test spawns the service, registers what the
//! script needs, and runs the script as a subprocess; the script's output is shown on failure.
//!
//! The interpreters and packages come from `scripts/setup-interop`, which the README's test
//! command (`scripts/test`) runs: `<repo>/.venv` for Python, `tests/interop/node/node_modules`
//! for Node. Without them these tests fail; they never pass by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey::domain::GrantType;
use serde_json::Value;
use support::TestApp;
use support::script::{Outcome, Script, repo, venv_python};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const SETUP_HINT: &str = "run the README's test command, `scripts/test` (it runs \
                          `scripts/setup-interop`, which installs the interop clients)";

const CONFIDENTIAL: &str = "reporting";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

fn interop_dir() -> PathBuf {
    repo().join("tests/interop")
}

/// `<repo>/.venv/bin/python` with the interop requirements installed.
fn python() -> PathBuf {
    venv_python(".latchkey-interop.stamp", SETUP_HINT)
}

/// `tests/interop/node`, once its `node_modules` is installed; else a failure saying how.
fn node_dir() -> PathBuf {
    let dir = interop_dir().join("node");
    let jose = dir.join("node_modules/jose/package.json");
    assert!(
        jose.is_file(),
        "the interop Node packages are missing ({} not found): {SETUP_HINT}",
        jose.display()
    );
    dir
}

/// Runs `program args` in `cwd` with `stdin` fed in (see [`Script`]).
async fn run(
    program: &Path,
    args: Vec<String>,
    cwd: &Path,
    env: Vec<(&'static str, String)>,
    stdin: String,
) -> Outcome {
    Script {
        program,
        args,
        cwd,
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        stdin,
        timeout: SCRIPT_TIMEOUT,
        setup_hint: SETUP_HINT,
    }
    .run()
    .await
}

async fn run_python(
    script: &str,
    args: &[&str],
    env: Vec<(&'static str, String)>,
    stdin: String,
) -> Outcome {
    let python = python();
    let dir = interop_dir().join("python");
    let mut argv = vec![dir.join(script).display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    run(&python, argv, &dir, env, stdin).await
}

async fn run_node(script: &str, args: &[&str], stdin: String) -> Outcome {
    let dir = node_dir();
    let mut argv = vec![script.to_owned()];
    argv.extend(args.iter().map(|a| a.to_string()));
    run(Path::new("node"), argv, &dir, Vec::new(), stdin).await
}

/// The service with public client `web` (password, refresh), user alice, and confidential
/// client `reporting` (client_credentials); returns it and the confidential client's secret.
async fn service() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = app
        .add_client(
            CONFIDENTIAL,
            false,
            &[GrantType::ClientCredentials],
            &["reports:read"],
            &[],
        )
        .await
        .expect("a confidential client has a secret");
    (app, secret)
}

/// Tokens to verify: alice's access and refresh tokens (password grant through `web`) and a
/// client_credentials access token.
struct Tokens {
    user_access: String,
    refresh: String,
    client_access: String,
}

async fn issue_tokens(app: &TestApp, secret: &str) -> Tokens {
    let login = app.login().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(CONFIDENTIAL, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), 200, "client_credentials succeeds");
    let client: Value = response.json().await.expect("json body");
    let text = |v: &Value, key: &str| {
        v[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key} in {v}"))
            .to_owned()
    };
    Tokens {
        user_access: text(&login, "access_token"),
        refresh: text(&login, "refresh_token"),
        client_access: text(&client, "access_token"),
    }
}

#[tokio::test]
async fn pyjwt_verifies_access_tokens_through_the_jwks() {
    let (app, secret) = service().await;
    let tokens = issue_tokens(&app, &secret).await;
    let stdin = format!("{}\n{}\n", tokens.user_access, tokens.client_access);
    let outcome = run_python(
        "pyjwt_verify.py",
        &[
            "--issuer",
            &app.address,
            "--audience",
            "api",
            "--refresh-token",
            &tokens.refresh,
        ],
        Vec::new(),
        stdin,
    )
    .await;
    outcome.assert_success();
}

#[tokio::test]
async fn pyjwt_verification_fails_for_another_audience() {
    let (app, secret) = service().await;
    let tokens = issue_tokens(&app, &secret).await;
    let outcome = run_python(
        "pyjwt_verify.py",
        &[
            "--issuer",
            &app.address,
            "--audience",
            "billing",
            &tokens.user_access,
        ],
        Vec::new(),
        String::new(),
    )
    .await;
    outcome.assert_failure_mentioning("InvalidAudienceError");
}

#[tokio::test]
async fn authlib_runs_the_grants_rotates_refresh_tokens_and_revokes_them() {
    let (app, secret) = service().await;
    let outcome = run_python(
        "authlib_flows.py",
        &[
            "--issuer",
            &app.address,
            "--public-client",
            "web",
            "--username",
            USER,
            "--confidential-client",
            CONFIDENTIAL,
            "--scope",
            "read write",
        ],
        vec![
            ("INTEROP_PASSWORD", PASSWORD.to_owned()),
            ("INTEROP_CLIENT_SECRET", secret),
        ],
        String::new(),
    )
    .await;
    outcome.assert_success();
}

#[tokio::test]
async fn jose_verifies_access_tokens_through_the_jwks() {
    let (app, secret) = service().await;
    let tokens = issue_tokens(&app, &secret).await;
    let outcome = run_node(
        "verify.mjs",
        &[
            "--issuer",
            &app.address,
            "--audience",
            "api",
            "--refresh-token",
            &tokens.refresh,
            &tokens.user_access,
            &tokens.client_access,
        ],
        String::new(),
    )
    .await;
    outcome.assert_success();
}

#[tokio::test]
async fn jose_verification_fails_for_another_issuer() {
    let (app, secret) = service().await;
    let tokens = issue_tokens(&app, &secret).await;
    let jwks_uri = app.url("/.well-known/jwks.json");
    let outcome = run_node(
        "verify.mjs",
        &[
            "--issuer",
            "https://elsewhere.example",
            "--jwks-uri",
            &jwks_uri,
        ],
        format!("{}\n", tokens.user_access),
    )
    .await;
    outcome.assert_failure_mentioning("(claim iss)");
}
