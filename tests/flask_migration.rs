//! The worked example of moving a Flask app onto Latchkey (`examples/flask-migration`, and
//! `docs/migrating-from-flask.md`), run end to end against the real binary: the "before" app
//! with its own tokens, its users exported with their Werkzeug hashes and imported with
//! `latchkey users import`, the same users signing in through Latchkey with their original
//! passwords, and the "after" app accepting Latchkey's tokens, keeping its admin route for the
//! `admin` role, and refusing a token within 5 s of logout.
//!
//! Python and the packages come from `scripts/setup-interop` (run by `scripts/test`) in
//! `<repo>/.venv`. Without them this test fails; it never passes by skipping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

// Only the process and script helpers are used here, not the in-process service.
#[allow(unused_imports)]
mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::process::{Workdir, binary};
use support::redis_server::free_port;
use support::script::{Script, repo, venv_python};

const SETUP_HINT: &str = "run the README's test command, `scripts/test` (it runs \
                          `scripts/setup-interop`, which installs clients/python into .venv)";

/// `<repo>/.venv/bin/python` with clients/python and the example's requirements installed.
fn python() -> PathBuf {
    venv_python(".latchkey-python-package.stamp", SETUP_HINT)
}

#[tokio::test]
async fn a_flask_app_moves_onto_latchkey_with_its_users_and_their_passwords() {
    let python = python();
    // The issuer's URL must be known before it starts: it is the `iss` of its tokens, which
    // the after app checks.
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let dir = Workdir::new()
        .env("LATCHKEY_SERVER__BIND", &format!("127.0.0.1:{port}"))
        .env("LATCHKEY_ISSUER", &issuer);
    let shop_web = [
        "clients",
        "add",
        "shop-web",
        "--public",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--audience",
        "shop",
    ];
    dir.run(&shop_web).json();
    let feed = dir.run(&["clients", "add", "shop-api"]).json();
    let secret = feed["client_secret"].as_str().expect("a secret").to_owned();
    let _service = dir.serve();

    let env = [
        ("TEST_LATCHKEY_ISSUER", issuer),
        ("TEST_LATCHKEY_BIN", binary().to_owned()),
        ("TEST_LATCHKEY_WORKDIR", dir.path().display().to_string()),
        ("TEST_LATCHKEY_CLIENT_ID", "shop-web".to_owned()),
        ("TEST_LATCHKEY_AUDIENCE", "shop".to_owned()),
        ("TEST_LATCHKEY_FEED_CLIENT_ID", "shop-api".to_owned()),
        ("TEST_LATCHKEY_FEED_CLIENT_SECRET", secret),
    ];
    let example = repo().join("examples/flask-migration");
    let outcome = Script {
        program: &python,
        args: ["-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"]
            .map(str::to_owned)
            .into(),
        cwd: &example,
        env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        stdin: String::new(),
        timeout: Duration::from_secs(180),
        setup_hint: SETUP_HINT,
    }
    .run()
    .await;
    outcome.assert_success();
}
