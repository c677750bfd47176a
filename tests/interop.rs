//! Interop: Latchkey's tokens and endpoints as seen by client and resource-server libraries
//! nobody here wrote (PyJWT, authlib, jose, openid-client), client authentication by
//! private_key_jwt and token exchange included. Each test spawns the service, registers what the
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
    for package in ["jose", "openid-client"] {
        let manifest = dir.join("node_modules").join(package).join("package.json");
        assert!(
            manifest.is_file(),
            "the interop Node packages are missing ({} not found): {SETUP_HINT}",
            manifest.display()
        );
    }
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

/// The PKCS#8 v1 form of an Ed25519 key that aws-lc-rs writes as v2 (RFC 8410 §7, with the
/// public key): Python's cryptography reads only v1. Both carry the same 32-byte seed.
fn ed25519_pkcs8_v1(v2_pem: &str) -> String {
    let v2 = pem::parse(v2_pem).expect("pem");
    let seed_at = v2
        .contents()
        .windows(4)
        .position(|w| w == [0x04, 0x22, 0x04, 0x20])
        .expect("the seed's OCTET STRING")
        + 4;
    let mut v1 = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    v1.extend_from_slice(&v2.contents()[seed_at..seed_at + 32]);
    pem::encode(&pem::Pem::new("PRIVATE KEY", v1))
}

/// Registers one client_credentials client per key type, each with a key pair made here;
/// returns (client id, algorithm, kid, PKCS#8 PEM of the private key).
async fn key_pair_clients(app: &TestApp) -> Vec<(&'static str, &'static str, String, String)> {
    use latchkey::keys::{Algorithm, SigningKey};
    let mut clients = Vec::new();
    for (client, algorithm) in [
        ("signer-rsa", Algorithm::RS256),
        ("signer-ec", Algorithm::ES256),
        ("signer-ed", Algorithm::EdDSA),
    ] {
        let (key, mut pem) = SigningKey::generate(algorithm, 2048).expect("key");
        if algorithm == Algorithm::EdDSA {
            pem = ed25519_pkcs8_v1(&pem);
        }
        let jwks = serde_json::json!({"keys": [key.jwk()]});
        let spec = latchkey::accounts::ClientSpec {
            grants: [GrantType::ClientCredentials].into(),
            keys: Some(latchkey::store::ClientKeys::Jwks(jwks)),
            ..Default::default()
        };
        latchkey::accounts::add_client(&app.change(), client, spec)
            .await
            .expect("client added");
        clients.push((client, algorithm.as_str(), key.kid().to_owned(), pem));
    }
    clients
}

#[tokio::test]
async fn authlib_authenticates_by_private_key_jwt_with_rsa_p256_and_ed25519_keys() {
    let app = TestApp::spawn().await;
    for (client, alg, kid, pem) in key_pair_clients(&app).await {
        // A thumbprint may begin with `-`: joined to its option so no parser reads it as one.
        let kid = format!("--kid={kid}");
        let args = [
            "--issuer",
            &app.address,
            "--client",
            client,
            "--alg",
            alg,
            &kid,
        ];
        let outcome = run_python("authlib_private_key_jwt.py", &args, Vec::new(), pem).await;
        outcome.assert_success();
    }
}

#[tokio::test]
async fn openid_client_authenticates_by_private_key_jwt_with_rsa_p256_and_ed25519_keys() {
    let app = TestApp::spawn().await;
    for (client, alg, kid, pem) in key_pair_clients(&app).await {
        // A thumbprint may begin with `-`: joined to its option so no parser reads it as one.
        let kid = format!("--kid={kid}");
        let args = [
            "--issuer",
            &app.address,
            "--client",
            client,
            "--alg",
            alg,
            &kid,
        ];
        let outcome = run_node("private_key_jwt.mjs", &args, pem).await;
        outcome.assert_success();
    }
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

#[tokio::test]
async fn openid_client_exchanges_a_users_token_for_one_naming_its_service_as_actor() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = app
        .add_client(
            "orders",
            false,
            &[GrantType::TokenExchange],
            &["read"],
            &["orders-api"],
        )
        .await
        .expect("a confidential client has a secret");
    let login = app.login().await;
    let subject = login["access_token"].as_str().expect("access_token");
    let args = [
        "--issuer",
        &app.address,
        "--client",
        "orders",
        "--subject-token",
        subject,
        "--audience",
        "orders-api",
        "--scope",
        "read",
        "--user",
        USER,
    ];
    let outcome = run_node("token_exchange.mjs", &args, secret).await;
    outcome.assert_success();
}
