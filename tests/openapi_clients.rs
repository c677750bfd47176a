//! Clients generated from the committed OpenAPI document, run against the live service, and
//! schema fuzzing of the service from the same document.
//!
//! - openapi-python-client generates a Python client from `openapi/openapi.json` into a temp
//!   dir; `tests/openapi-clients/python/flow.py` runs the whole flow through it.
//! - openapi-typescript generates types into `tests/openapi-clients/ts/gen/` (git-ignored), tsc
//!   checks `flow.ts` against them, and node runs it with openapi-fetch.
//! - schemathesis fuzzes every operation with a bounded number of examples
//!   (`tests/openapi-clients/schemathesis.toml` says which checks; `scripts/fuzz-api` runs a
//!   longer pass).
//!
//! Generated code is never edited: when a generator cannot use the document, the document (the
//! code) is what gets fixed. The tools come from `scripts/setup-openapi-clients`, which the
//! README's test command (`scripts/test`) runs; without them these tests fail, never skip.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey::domain::GrantType;
use support::TestApp;
use support::script::{Outcome, Script, repo};

/// How long a generator, script or fuzzing run may take; `scripts/fuzz-api` raises it.
fn script_timeout() -> Duration {
    let seconds = std::env::var("LATCHKEY_SCRIPT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240);
    Duration::from_secs(seconds)
}
const SETUP_HINT: &str = "run the README's test command, `scripts/test` (it runs \
                          `scripts/setup-openapi-clients`, which installs the generators)";

const PUBLIC: &str = "web";
const CONFIDENTIAL: &str = "backend";
/// The public client administrators get tokens for the admin API through (scope `admin`).
const ADMIN_CLIENT: &str = "admin-console";
const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "an admin password";
/// The user whose password the schema fuzzing resets (never the admin it logs in as).
const RESET_USER: &str = "fuzzed";

fn clients_dir() -> PathBuf {
    repo().join("tests/openapi-clients")
}

fn document() -> PathBuf {
    repo().join("openapi/openapi.json")
}

/// A program from `<repo>/.venv/bin`, or a failure that says how to get it.
fn venv_tool(name: &str) -> PathBuf {
    let stamp = repo().join(".venv/.latchkey-openapi-clients.stamp");
    assert!(
        stamp.is_file(),
        "the OpenAPI client tools are not installed ({} not found): {SETUP_HINT}",
        stamp.display()
    );
    let tool = repo().join(".venv/bin").join(name);
    assert!(tool.is_file(), "{} not found: {SETUP_HINT}", tool.display());
    tool
}

/// `tests/openapi-clients/ts` once its `node_modules` is installed.
fn ts_dir() -> PathBuf {
    let dir = clients_dir().join("ts");
    let stamp = dir.join("node_modules/.latchkey-openapi-clients.stamp");
    assert!(
        stamp.is_file(),
        "the TypeScript generator is not installed ({} not found): {SETUP_HINT}",
        stamp.display()
    );
    dir
}

/// Runs `program args` in `cwd`, killing it after `script_timeout()` (see [`Script`]).
async fn run(program: &Path, args: &[&str], cwd: &Path, env: Vec<(&str, String)>) -> Outcome {
    Script {
        program,
        args: args.iter().map(|a| a.to_string()).collect(),
        cwd,
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        stdin: String::new(),
        timeout: script_timeout(),
        setup_hint: SETUP_HINT,
    }
    .run()
    .await
}

/// The service with registration open, public client `web` (password, refresh_token), a
/// confidential client, the admin client (password, refresh_token; scope admin) and an admin;
/// returns it and the confidential client's secret.
async fn service() -> (TestApp, String) {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.add_client(
        PUBLIC,
        true,
        &[GrantType::Password, GrantType::RefreshToken],
        &["read", "write"],
        &[],
    )
    .await;
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
    app.add_client(
        ADMIN_CLIENT,
        true,
        &[GrantType::Password, GrantType::RefreshToken],
        &["admin"],
        &[],
    )
    .await;
    app.add_user(ADMIN, ADMIN_PASSWORD, &["admin"]).await;
    (app, secret)
}

fn flow_args(app: &TestApp) -> Vec<String> {
    [
        "--base-url",
        &app.address,
        "--public-client",
        PUBLIC,
        "--confidential-client",
        CONFIDENTIAL,
        "--admin-client",
        ADMIN_CLIENT,
        "--admin",
        ADMIN,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn flow_env(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CLIENT_SECRET", secret.to_owned()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
    ]
}

#[tokio::test]
async fn a_generated_python_client_runs_the_whole_flow() {
    let generator = venv_tool("openapi-python-client");
    let python = venv_tool("python");
    let out = tempfile::tempdir().expect("temp dir");
    let package = out.path().join("latchkey_client");
    let document = document().display().to_string();
    let package_arg = package.display().to_string();
    // ruff (a post-generation hook) must be on PATH, as the generator finds it there.
    let path = format!(
        "{}:{}",
        repo().join(".venv/bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let generated = run(
        &generator,
        &[
            "generate",
            "--path",
            &document,
            "--meta",
            "none",
            "--output-path",
            &package_arg,
        ],
        out.path(),
        vec![("PATH", path)],
    )
    .await;
    generated.assert_success();
    assert!(
        !generated.stdout.contains("Warning") && !generated.stderr.contains("Warning"),
        "openapi-python-client had warnings about the document; fix the document"
    );

    let (app, secret) = service().await;
    let script = clients_dir().join("python/flow.py").display().to_string();
    let mut args = vec![script.as_str()];
    let flow = flow_args(&app);
    args.extend(flow.iter().map(String::as_str));
    let mut env = flow_env(&secret);
    env.push(("PYTHONPATH", out.path().display().to_string()));
    run(&python, &args, out.path(), env).await.assert_success();
}

#[tokio::test]
async fn a_generated_typescript_client_runs_the_whole_flow() {
    let dir = ts_dir();
    let bin = |name: &str| dir.join("node_modules/.bin").join(name);
    let document = document().display().to_string();
    run(
        &bin("openapi-typescript"),
        &[&document, "-o", "gen/schema.d.ts"],
        &dir,
        Vec::new(),
    )
    .await
    .assert_success();
    run(&bin("tsc"), &["-p", "tsconfig.json"], &dir, Vec::new())
        .await
        .assert_success();

    let (app, secret) = service().await;
    let mut args = vec!["gen/out/flow.js"];
    let flow = flow_args(&app);
    args.extend(flow.iter().map(String::as_str));
    run(Path::new("node"), &args, &dir, flow_env(&secret))
        .await
        .assert_success();
}

#[tokio::test]
async fn schemathesis_finds_no_server_errors_schema_breaks_or_undocumented_statuses() {
    let schemathesis = venv_tool("schemathesis");
    let (app, secret) = service().await;
    app.add_user(RESET_USER, "a password to reset", &[]).await;
    let max_examples = std::env::var("LATCHKEY_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let document = document().display().to_string();
    let config = clients_dir()
        .join("schemathesis.toml")
        .display()
        .to_string();
    let reports = tempfile::tempdir().expect("temp dir");
    run(
        &schemathesis,
        &[
            "--config-file",
            &config,
            "run",
            &document,
            "--url",
            &app.address,
            "--max-examples",
            &max_examples,
            "--seed",
            "1",
            "--no-color",
        ],
        reports.path(),
        vec![
            ("LATCHKEY_FUZZ_ADMIN", ADMIN.to_owned()),
            ("LATCHKEY_FUZZ_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            ("LATCHKEY_FUZZ_ADMIN_CLIENT", ADMIN_CLIENT.to_owned()),
            ("LATCHKEY_FUZZ_RESET_USER", RESET_USER.to_owned()),
            ("LATCHKEY_FUZZ_CLIENT_ID", CONFIDENTIAL.to_owned()),
            ("LATCHKEY_FUZZ_CLIENT_SECRET", secret),
            ("SCHEMATHESIS_HOOKS", String::new()),
        ],
    )
    .await
    .assert_success();
}
