//! Interop of sign-in in a browser: the client side is a relying-party library nobody here
//! wrote, openid-client (Node) and authlib (Python). Each makes the authorization URL (PKCE
//! S256, state, nonce); this test plays the browser over HTTP (opens the URL, posts the sign-in
//! form with its CSRF token and cookie, reads the redirect); the library then checks the
//! response, redeems the code and validates the ID token.
//!
//! The packages come from `scripts/setup-interop` (run by `scripts/test`); without them these
//! tests fail, never pass by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use latchkey::domain::GrantType;
use serde_json::Value;
use support::TestApp;
use support::script::{Outcome, Script, repo, venv_python};
use support::sign_in::{cookie_of, hidden};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const SETUP_HINT: &str = "run the README's test command, `scripts/test` (it runs \
                          `scripts/setup-interop`, which installs the interop clients)";
const CLIENT: &str = "webapp";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery";

async fn run(program: &Path, args: Vec<String>, cwd: &Path) -> Outcome {
    Script {
        program,
        args,
        cwd,
        env: Vec::new(),
        stdin: String::new(),
        timeout: SCRIPT_TIMEOUT,
        setup_hint: SETUP_HINT,
    }
    .run()
    .await
}

/// A relying party: how to run its script.
enum Library {
    OpenIdClient,
    Authlib,
}

impl Library {
    async fn step(&self, args: &[String]) -> Outcome {
        match self {
            Library::OpenIdClient => {
                let dir = repo().join("tests/interop/node");
                let manifest = dir.join("node_modules/openid-client/package.json");
                assert!(manifest.is_file(), "openid-client is missing: {SETUP_HINT}");
                let mut argv = vec!["authorization_code.mjs".to_owned()];
                argv.extend_from_slice(args);
                run(Path::new("node"), argv, &dir).await
            }
            Library::Authlib => {
                let python: PathBuf = venv_python(".latchkey-interop.stamp", SETUP_HINT);
                let dir = repo().join("tests/interop/python");
                let mut argv = vec![
                    dir.join("authlib_authorization_code.py")
                        .display()
                        .to_string(),
                ];
                argv.extend_from_slice(args);
                run(&python, argv, &dir).await
            }
        }
    }
}

/// What a browser does between the library's two steps: opens the authorization URL, signs
/// in on the page, and returns the URL it is redirected to.
async fn browse(app: &TestApp, url: &str) -> String {
    let page = app.http.get(url).send().await.unwrap();
    assert_eq!(page.status(), 200, "the sign-in page");
    let cookie = cookie_of(&page, "latchkey_csrf").expect("the CSRF cookie");
    let html = page.text().await.unwrap();
    let signed_in = app
        .http
        .post(app.url("/oauth/authorize"))
        .header("cookie", cookie)
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("username", USER.to_owned()),
            ("password", PASSWORD.to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    signed_in.headers()["location"].to_str().unwrap().to_owned()
}

async fn sign_in_through(library: Library) {
    let app = TestApp::spawn().await;
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        scopes: vec!["read".into()],
        redirect_uris: vec![REDIRECT.into()],
        // The operator's own app: no consent page between the sign-in and the redirect.
        first_party: true,
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), CLIENT, spec)
        .await
        .unwrap();
    app.add_user(USER, PASSWORD, &["user"]).await;
    let common = |step: &str| -> Vec<String> {
        [
            step,
            "--issuer",
            &app.address,
            "--client",
            CLIENT,
            "--redirect",
            REDIRECT,
        ]
        .map(str::to_owned)
        .to_vec()
    };

    let started = library.step(&common("start")).await;
    started.assert_success();
    let request: Value =
        serde_json::from_str(started.stdout.trim()).expect("the start step's JSON");
    let callback = browse(&app, request["url"].as_str().unwrap()).await;

    let mut args = common("finish");
    for (name, value) in [
        ("--callback", callback.as_str()),
        ("--verifier", request["verifier"].as_str().unwrap()),
        ("--state", request["state"].as_str().unwrap()),
        ("--nonce", request["nonce"].as_str().unwrap()),
        ("--user", USER),
    ] {
        // `--name=value`: a random value may begin with `-`, which both argument parsers
        // would otherwise take for an option.
        args.push(format!("{name}={value}"));
    }
    library.step(&args).await.assert_success();
}

#[tokio::test]
async fn openid_client_signs_a_user_in_with_pkce_and_validates_the_id_token() {
    sign_in_through(Library::OpenIdClient).await;
}

#[tokio::test]
async fn authlib_signs_a_user_in_with_pkce_and_validates_the_id_token() {
    sign_in_through(Library::Authlib).await;
}
