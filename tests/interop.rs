//! Interop: Latchkey's tokens and endpoints as seen by client and resource-server libraries
//! nobody here wrote (PyJWT, authlib, jose). Each test spawns the service, registers what the
//! script needs, and runs the script as a subprocess; the script's output is shown on failure.
//!
//! The interpreters and packages come from `scripts/setup-interop`, which the README's test
//! command (`scripts/test`) runs: `<repo>/.venv` for Python, `tests/interop/node/node_modules`
//! for Node. Without them these tests fail; they never pass by skipping.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use latchkey::domain::GrantType;
use serde_json::Value;
use support::TestApp;

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const SETUP_HINT: &str = "run the README's test command, `scripts/test` (it runs \
                          `scripts/setup-interop`, which installs the interop clients)";

const CONFIDENTIAL: &str = "reporting";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn interop_dir() -> PathBuf {
    repo().join("tests/interop")
}

/// `<repo>/.venv/bin/python`, or a failure that says how to get it.
fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the interop Python environment is missing ({} not found): {SETUP_HINT}",
        python.display()
    );
    // Written by scripts/setup-interop once every requirement is installed.
    let stamp = repo().join(".venv/.latchkey-interop.stamp");
    assert!(
        stamp.is_file(),
        "the interop Python environment is incomplete ({} not found): {SETUP_HINT}",
        stamp.display()
    );
    python
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

struct Outcome {
    what: String,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Outcome {
    fn report(&self) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after {SCRIPT_TIMEOUT:?}"),
        };
        format!(
            "{} -> {status} in {:.1?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.elapsed, self.stdout, self.stderr
        )
    }

    fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    fn assert_success(&self) {
        assert!(self.succeeded(), "interop script failed: {}", self.report());
        println!("{}", self.report());
    }

    fn assert_failure_mentioning(&self, needle: &str) {
        assert!(
            self.status.is_some_and(|s| !s.success()),
            "the script should have failed: {}",
            self.report()
        );
        assert!(
            self.stderr.contains(needle),
            "the script failed, but its message does not mention {needle:?}: {}",
            self.report()
        );
    }
}

/// Runs `program args` in `cwd` with `stdin` fed in, off the async runtime (the service under
/// test runs on it), killing it after `SCRIPT_TIMEOUT`.
async fn run(
    program: &Path,
    args: Vec<String>,
    cwd: &Path,
    env: Vec<(&'static str, String)>,
    stdin: String,
) -> Outcome {
    let what = format!(
        "{} {}",
        program.display(),
        args.first().map(String::as_str).unwrap_or_default()
    );
    let mut command = Command::new(program);
    command
        .args(&args)
        .current_dir(cwd)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_COLOR", "1")
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}; {SETUP_HINT}"));
        let mut input = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(stdin.as_bytes());
        });
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the script") {
                break Some(status);
            }
            if started.elapsed() > SCRIPT_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let _ = writer.join();
        Outcome {
            what,
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            elapsed: started.elapsed(),
        }
    })
    .await
    .expect("the script runner")
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
