//! The Python package for resource servers (`clients/python`, design §9), tested against the
//! live service: its pytest suite verifies real tokens through the real JWKS, follows the real
//! revocation feed, and drives Flask and FastAPI apps with them; and the package type-checks
//! under `mypy --strict`.
//!
//! Python, the package and its test dependencies come from `scripts/setup-interop` (run by the
//! README's test command, `scripts/test`) in `<repo>/.venv`. Without them these tests fail; they
//! never pass by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey::domain::GrantType;
use support::TestApp;
use support::script::{Outcome, Script, repo, venv_python};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
const SETUP_HINT: &str = "run the README's test command, `scripts/test` (it runs \
                          `scripts/setup-interop`, which installs clients/python into .venv)";

const FEED_CLIENT: &str = "orders-api";
const PASSWORD: &str = "correct horse";

fn package_dir() -> PathBuf {
    repo().join("clients/python")
}

/// `<repo>/.venv/bin/python` with the package and its test tools installed.
fn python() -> PathBuf {
    venv_python(".latchkey-python-package.stamp", SETUP_HINT)
}

async fn run_python(args: &[&str], cwd: &Path, env: Vec<(String, String)>) -> Outcome {
    let python = python();
    Script {
        program: &python,
        args: args.iter().map(|a| a.to_string()).collect(),
        cwd,
        env,
        stdin: String::new(),
        timeout: SCRIPT_TIMEOUT,
        setup_hint: SETUP_HINT,
    }
    .run()
    .await
}

/// The service with what the suite needs: public client `web` (password grant, scopes `read
/// write`), users alice (role `user`), dave (role `user`, whose roles a test changes) and an
/// administrator, the `admin-console` client for the admin API, and the confidential client
/// that reads the revocation feed. Keys are re-read every second, so a key a test publishes
/// appears in the JWKS quickly.
async fn service() -> (TestApp, Vec<(String, String)>) {
    let app = TestApp::spawn_with(|s| s.keys.reload_interval = 1).await;
    app.with_user_and_web_client().await;
    app.with_admin_console().await;
    app.add_user("dave", PASSWORD, &["user"]).await;
    app.add_user("root", PASSWORD, &["admin", "user"]).await;
    let secret = app
        .add_client(
            FEED_CLIENT,
            false,
            &[GrantType::ClientCredentials],
            &["orders:read"],
            &[],
        )
        .await
        .expect("a confidential client has a secret");
    let env = [
        ("TEST_LATCHKEY_ISSUER", app.address.clone()),
        (
            "TEST_LATCHKEY_AUDIENCE",
            app.settings.tokens.audience.clone(),
        ),
        (
            "TEST_LATCHKEY_KEYS_DIR",
            app.settings.keys.dir.display().to_string(),
        ),
        ("TEST_LATCHKEY_FEED_CLIENT_ID", FEED_CLIENT.to_owned()),
        ("TEST_LATCHKEY_FEED_CLIENT_SECRET", secret),
        ("TEST_LATCHKEY_PUBLIC_CLIENT", "web".to_owned()),
        ("TEST_LATCHKEY_USER", "alice".to_owned()),
        ("TEST_LATCHKEY_PASSWORD", PASSWORD.to_owned()),
        ("TEST_LATCHKEY_ADMIN_USER", "root".to_owned()),
        ("TEST_LATCHKEY_ADMIN_PASSWORD", PASSWORD.to_owned()),
        (
            "TEST_LATCHKEY_ADMIN_CLIENT",
            support::ADMIN_CONSOLE.to_owned(),
        ),
    ];
    let env = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    (app, env)
}

#[tokio::test]
async fn the_python_packages_test_suite_passes_against_the_live_service() {
    let (_app, env) = service().await;
    let outcome = run_python(
        &[
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rA",
            "tests",
        ],
        &package_dir(),
        env,
    )
    .await;
    outcome.assert_success();
}

#[tokio::test]
async fn the_python_package_type_checks_under_mypy_strict() {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mypy-cache");
    let cache = cache.display().to_string();
    let outcome = run_python(
        &[
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            &cache,
            "src/latchkey_verify",
        ],
        &package_dir(),
        Vec::new(),
    )
    .await;
    outcome.assert_success();
}
