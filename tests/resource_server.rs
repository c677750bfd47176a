//! The issuer and the example resource server (`examples/resource_server.rs`, built on
//! latchkey-verify) as two processes: tokens work there without a call to the issuer per
//! request, revocation, logout and password changes reach it through the feed within its bound
//! (5 s), and a new signing key is picked up without restarting it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::decode_jwt;
use support::process::{Service, Workdir};
use support::redis_server::free_port;

/// The resource server's default revocation bound.
const BOUND: Duration = Duration::from_secs(5);
/// Scheduling slack on top of the bound for a loaded test machine.
const SLACK: Duration = Duration::from_secs(2);

/// The example's binary, next to the issuer's (cargo builds examples with the tests); built
/// here if it is missing.
fn example_binary() -> PathBuf {
    let issuer = PathBuf::from(env!("CARGO_BIN_EXE_latchkey"));
    let dir = issuer.parent().expect("the binary's directory");
    let path = dir.join("examples").join("resource_server");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "resource_server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the example failed");
    }
    path
}

/// An issuer on a fixed port (so it can restart at the same URL) with a public client `web`,
/// the confidential feed client `rs`, user `alice` and admin `root`; and the resource server.
struct Setup {
    dir: Workdir,
    issuer: Option<Service>,
    resource: Service,
    http: reqwest::Client,
}

fn run_ok(dir: &Workdir, args: &[&str], stdin: Option<&str>) -> String {
    let out = dir.run_with_stdin(args, stdin);
    assert!(
        out.success(),
        "`latchkey {}`: {}",
        args.join(" "),
        out.stderr()
    );
    out.stdout()
}

impl Setup {
    fn start() -> Setup {
        let port = free_port();
        let issuer_url = format!("http://127.0.0.1:{port}");
        let dir = Workdir::new()
            .env("LATCHKEY_SERVER__BIND", &format!("127.0.0.1:{port}"))
            .env("LATCHKEY_ISSUER", &issuer_url)
            // A new key is published this long before it signs; short, for the rotation test.
            .env("LATCHKEY_KEYS__JWKS_MAX_AGE", "2")
            .env("LATCHKEY_KEYS__RELOAD_INTERVAL", "1");
        let web = [
            "clients",
            "add",
            "web",
            "--public",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
        ];
        run_ok(&dir, &web, None);
        let rs: Value = serde_json::from_str(&run_ok(&dir, &["clients", "add", "rs"], None))
            .expect("client JSON");
        let secret = rs["client_secret"].as_str().expect("a secret").to_owned();
        let alice = ["users", "add", "alice", "--password-stdin"];
        run_ok(&dir, &alice, Some("correct horse\n"));
        let root = [
            "users",
            "add",
            "root",
            "--password-stdin",
            "--role",
            "admin",
        ];
        run_ok(&dir, &root, Some("root password\n"));
        let issuer = dir.serve();

        let mut command = Command::new(example_binary());
        command
            .env_remove("RUST_LOG")
            .env("RESOURCE_SERVER_BIND", "127.0.0.1:0")
            .env("RESOURCE_SERVER_ISSUER", &issuer_url)
            .env("RESOURCE_SERVER_AUDIENCE", "api")
            .env("RESOURCE_SERVER_CLIENT_ID", "rs")
            .env("RESOURCE_SERVER_CLIENT_SECRET", &secret);
        let resource = Service::start_program(command);
        Setup {
            dir,
            issuer: Some(issuer),
            resource,
            http: reqwest::Client::new(),
        }
    }

    fn issuer(&self) -> &Service {
        self.issuer.as_ref().expect("the issuer runs")
    }

    async fn login(&self, username: &str, password: &str) -> Value {
        let response = self
            .http
            .post(self.issuer().url("/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", "web"),
            ])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200, "login as {username}");
        response.json().await.expect("token JSON")
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.resource.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("resource request")
    }

    async fn status(&self, path: &str, token: &str) -> u16 {
        self.get(path, Some(token)).await.status().as_u16()
    }

    /// How long until `/protected` refuses `token`; fails past the bound.
    async fn refused_within_bound(&self, token: &str) -> Duration {
        let start = Instant::now();
        loop {
            let response = self.get("/protected", Some(token)).await;
            if response.status() == 401 {
                let challenge = response.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error_description"], "the token has been revoked");
                return start.elapsed();
            }
            assert_eq!(response.status(), 200);
            assert!(
                start.elapsed() < BOUND + SLACK,
                "still accepted {:?} after the revocation",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().expect("access_token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_works_at_the_resource_server_until_it_is_revoked() {
    let setup = Setup::start();
    let alice = setup.login("alice", "correct horse").await;
    let token = access(&alice);

    let ok = setup.get("/protected", Some(token)).await;
    assert_eq!(ok.status(), 200);
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["sub"], "alice");

    let forbidden = setup.get("/admin/report", Some(token)).await;
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{challenge}"
    );
    let root = setup.login("root", "root password").await;
    assert_eq!(setup.status("/admin/report", access(&root)).await, 200);

    let anonymous = setup.get("/protected", None).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    assert_eq!(setup.status("/protected", "not.a.token").await, 401);
    let refresh = alice["refresh_token"].as_str().unwrap();
    assert_eq!(
        setup.status("/protected", refresh).await,
        401,
        "a refresh token is no access token"
    );

    let revoked = setup
        .http
        .post(setup.issuer().url("/oauth/revoke"))
        .form(&[("token", token), ("client_id", "web")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let took = setup.refused_within_bound(token).await;
    eprintln!("revocation reached the resource server in {took:?}");
    assert_eq!(
        setup.status("/admin/report", access(&root)).await,
        200,
        "others unaffected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_and_a_password_change_reach_the_resource_server() {
    let setup = Setup::start();
    let first = setup.login("alice", "correct horse").await;
    let second = setup.login("alice", "correct horse").await;
    assert_eq!(setup.status("/protected", access(&first)).await, 200);
    assert_eq!(setup.status("/protected", access(&second)).await, 200);

    let logout = setup
        .http
        .post(setup.issuer().url("/logout"))
        .bearer_auth(access(&first))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "logout: {}", logout.status());
    setup.refused_within_bound(access(&first)).await;
    assert_eq!(
        setup.status("/protected", access(&second)).await,
        200,
        "the other session lives"
    );

    // Token times have one-second resolution and a token of the very second of the change
    // survives it, so change the password in a later second than the token's.
    let iat = decode_jwt(access(&second)).1["iat"].as_i64().unwrap();
    while latchkey::domain::now() <= iat {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let passwd = ["users", "passwd", "alice", "--password-stdin"];
    run_ok(&setup.dir, &passwd, Some("battery staple\n"));
    setup.refused_within_bound(access(&second)).await;
    let again = setup.login("alice", "battery staple").await;
    assert_eq!(setup.status("/protected", access(&again)).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_signed_by_a_new_key_are_accepted_without_restarting_the_resource_server() {
    let mut setup = Setup::start();
    let before = setup.login("alice", "correct horse").await;
    let old_kid = decode_jwt(access(&before)).0["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(setup.status("/protected", access(&before)).await, 200);

    let generated_at = latchkey::domain::now();
    let added: Value =
        serde_json::from_str(&run_ok(&setup.dir, &["keys", "generate"], None)).expect("key JSON");
    let signs_from = added["signs_from"].as_i64().expect("signs_from");
    // Published for the key set's max-age (2 s) plus the replicas' reload interval (1 s) first.
    assert!(
        (generated_at + 3..=latchkey::domain::now() + 3).contains(&signs_from),
        "signs_from {signs_from}, generated at {generated_at}"
    );
    let new_kid = added["kid"].as_str().expect("kid").to_owned();
    setup
        .issuer
        .take()
        .expect("issuer")
        .terminate()
        .assert_clean_exit();
    // With the issuer away, the resource server goes on with what it has cached.
    assert_eq!(setup.status("/protected", access(&before)).await, 200);
    setup.issuer = Some(setup.dir.serve());

    // The new key signs once it has been published for the key set's max-age.
    let deadline = Instant::now() + Duration::from_secs(15);
    let after = loop {
        let tokens = setup.login("alice", "correct horse").await;
        if decode_jwt(access(&tokens)).0["kid"] == new_kid.as_str() {
            break tokens;
        }
        assert!(
            Instant::now() < deadline,
            "the new key never started signing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(old_kid, new_kid);
    assert!(
        decode_jwt(access(&after)).1["iat"].as_i64().expect("iat") >= signs_from,
        "the key signed before the time the CLI gave: {added}"
    );
    assert_eq!(setup.status("/protected", access(&after)).await, 200);
    assert_eq!(
        setup.status("/protected", access(&before)).await,
        200,
        "the old key still counts"
    );
    let health: Value = setup.get("/healthz", None).await.json().await.unwrap();
    assert!(health["keys"].as_u64().unwrap() >= 2, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_takes_a_users_token_only_as_the_orders_service_exchanged_it() {
    let setup = Setup::start();
    let orders = ["clients", "add", "orders", "--grant", "token-exchange"];
    let orders: Value = serde_json::from_str(&run_ok(&setup.dir, &orders, None)).unwrap();
    let secret = orders["client_secret"].as_str().unwrap();
    let signed_in = setup.login("alice", "correct horse").await;
    let response = setup
        .http
        .post(setup.issuer().url("/oauth/token"))
        .basic_auth("orders", Some(secret))
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", access(&signed_in)),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "orders exchanges alice's token");
    let exchanged: Value = response.json().await.unwrap();

    let response = setup
        .get("/payments/charge", Some(access(&exchanged)))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["charged"], "alice");
    assert_eq!(body["actors"], serde_json::json!(["orders"]));
    assert_eq!(body["chain_began_with"], "web");
    let response = setup
        .get("/payments/charge", Some(access(&signed_in)))
        .await;
    assert_eq!(
        response.status(),
        403,
        "alice's own token, not through orders"
    );
    let challenge = response.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
}
