//! Every token the issuer issues, it accepts itself. A user and a client at every limit on
//! names, roles, scopes and audiences get the largest access token those limits allow (signed
//! with an RSA-4096 key, the largest signature), and that token passes `/userinfo` (over HTTP/1.1
//! and HTTP/2), introspection, latchkey-verify and revocation (with its feed event), with the
//! least body limit the configuration allows; the session refreshes. One role more, or a name
//! one character longer, is refused by the admin API (tests/admin/) and by the CLI (here).
//!
//! The issuer's own URL is the one length this cannot push to its limit (the service must be
//! reachable at it); `tokens::verify`'s unit test signs a token with a 256-character issuer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use latchkey::configuration::MIN_BODY_BYTES;
use latchkey::domain::{GrantType, limits, now};
use latchkey::keys::{Algorithm, generate_in};
use latchkey::tokens::MAX_TOKEN_BYTES;
use serde_json::{Value, json};
use support::process::Workdir;
use support::{TestApp, decode_jwt};

const PASSWORD: &str = "correct horse battery";

/// `n` distinct names of exactly `len` characters, starting with `prefix`.
fn names(prefix: &str, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:0>width$}", width = len - prefix.len()))
        .collect()
}

struct Largest {
    app: TestApp,
    username: String,
    client_id: String,
    client_secret: String,
    audience: String,
    /// The confidential client `rs` that introspects and follows the feed.
    rs_secret: String,
    _dir: tempfile::TempDir,
}

/// The service signing with an RSA-4096 key, with the least body limit allowed, a user with the
/// longest name and the most and longest roles, and a confidential client with the longest id,
/// the most and longest scopes, and the most and longest audiences.
async fn largest() -> Largest {
    let tempdir = tempfile::tempdir().expect("temp dir");
    let dir = tempdir.path().to_path_buf();
    generate_in(&dir.join("keys"), Algorithm::RS256, 4096, now() - 86_400).expect("RSA-4096 key");
    let audiences = names("https://a", limits::MAX_AUDIENCES, limits::MAX_AUDIENCE_LEN);
    // The longest audience is the default one: `/userinfo` takes only default-audience tokens.
    let longest = audiences.last().expect("an audience").clone();
    let app = TestApp::spawn_in(dir, |s| {
        s.server.max_body_bytes = MIN_BODY_BYTES;
        s.tokens.audience = longest;
    })
    .await;
    let username = names("u", 1, limits::MAX_NAME_LEN).remove(0);
    let client_id = names("c", 1, limits::MAX_NAME_LEN).remove(0);
    let roles = names("r", limits::MAX_ROLES, limits::MAX_NAME_LEN);
    let scopes = names("s", limits::MAX_SCOPES, limits::MAX_SCOPE_LEN);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    app.add_user(&username, PASSWORD, &roles).await;
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let audience_refs: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let client_secret = app
        .add_client(
            &client_id,
            false,
            &[GrantType::Password, GrantType::RefreshToken],
            &scopes,
            &audience_refs,
        )
        .await
        .expect("a confidential client's secret");
    let rs_secret = app
        .add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a secret");
    Largest {
        app,
        username,
        client_id,
        client_secret,
        audience: audiences.last().expect("an audience").clone(),
        rs_secret,
        _dir: tempdir,
    }
}

impl Largest {
    /// A request to `path` with the client's credentials and `form` in the body
    /// (`client_secret_post`, so the body is as large as it gets).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields = form.to_vec();
        fields.push(("client_id", &self.client_id));
        fields.push(("client_secret", &self.client_secret));
        self.app.post_form(path, &fields).await
    }

    async fn tokens(&self, form: &[(&str, &str)]) -> Value {
        let response = self.post("/oauth/token", form).await;
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert_eq!(status, 200, "{body}");
        body
    }

    async fn introspect(&self, token: &str) -> Value {
        let response = self
            .app
            .post_form(
                "/oauth/introspect",
                &[
                    ("token", token),
                    ("client_id", "rs"),
                    ("client_secret", &self.rs_secret),
                ],
            )
            .await;
        assert_eq!(response.status(), 200, "introspection answers");
        response.json().await.expect("json")
    }

    async fn feed(&self) -> Vec<Value> {
        let response = self
            .app
            .http
            .get(self.app.url("/oauth/revocations"))
            .basic_auth("rs", Some(&self.rs_secret))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 200, "the feed answers");
        let page: Value = response.json().await.expect("json");
        page["events"].as_array().expect("events").clone()
    }
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

#[tokio::test]
async fn the_largest_token_the_limits_allow_is_accepted_everywhere_the_issuer_sends_it() {
    let setup = largest().await;
    let app = &setup.app;
    let tokens = setup
        .tokens(&[
            ("grant_type", "password"),
            ("username", &setup.username),
            ("password", PASSWORD),
            ("audience", &setup.audience),
        ])
        .await;
    let access = str_of(&tokens, "access_token").to_owned();
    let refresh = str_of(&tokens, "refresh_token").to_owned();
    let (header, claims) = decode_jwt(&access);
    assert_eq!(
        claims["roles"].as_array().expect("roles").len(),
        limits::MAX_ROLES
    );
    assert_eq!(
        claims["scope"].as_str().expect("scope").split(' ').count(),
        32
    );
    assert_eq!(claims["aud"], setup.audience.as_str());
    assert_eq!(claims["sub"], setup.username.as_str());
    assert_eq!(claims["client_id"], setup.client_id.as_str());
    println!(
        "the largest access token: {} bytes ({header})",
        access.len()
    );
    // The largest there is (short of the issuer's URL), and under every limit on its path.
    assert!(access.len() > 7_000, "{}", access.len());
    assert!(access.len() < MAX_TOKEN_BYTES);

    // /userinfo, over HTTP/1.1 and HTTP/2 (whose header list hyper bounds at 16 KiB).
    let me = app.userinfo(&access).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.expect("json");
    assert_eq!(
        me["roles"].as_array().expect("roles").len(),
        limits::MAX_ROLES
    );
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let response = h2
        .get(app.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("sent over HTTP/2");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(response.status(), 200);

    // Introspection (a body with the token, within the least body limit): active.
    let answer = setup.introspect(&access).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], setup.audience.as_str());
    assert_eq!(setup.introspect(&refresh).await["active"], true);

    // latchkey-verify, at the client's longest audience, following the feed.
    let verifier = latchkey_verify::Verifier::builder(&app.address, &setup.audience)
        .feed_client("rs", &setup.rs_secret)
        .connect()
        .await
        .expect("latchkey-verify connects");
    let verified = verifier
        .verify(&access)
        .await
        .expect("latchkey-verify accepts it");
    assert_eq!(verified.roles.len(), limits::MAX_ROLES);
    assert_eq!(verified.scopes.len(), limits::MAX_SCOPES);

    // The session refreshes, and the next largest token is as good.
    let next = setup
        .tokens(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)])
        .await;
    let next_access = str_of(&next, "access_token").to_owned();
    let next_refresh = str_of(&next, "refresh_token").to_owned();
    assert_eq!(app.userinfo(&next_access).await.status(), 200);
    verifier
        .verify(&next_access)
        .await
        .expect("latchkey-verify accepts the refreshed token");

    // Revocation: 200, and the event reaches the feed, introspection and latchkey-verify.
    let revoked = setup.post("/oauth/revoke", &[("token", &access)]).await;
    assert_eq!(revoked.status(), 200);
    let jti = decode_jwt(&access).1["jti"].clone();
    let events = setup.feed().await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "token" && e["jti"] == jti),
        "the revocation is in the feed: {events:?}"
    );
    assert_eq!(setup.introspect(&access).await, json!({"active": false}));
    assert_eq!(app.userinfo(&access).await.status(), 401);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match verifier.verify(&access).await {
            Err(latchkey_verify::VerifyError::Revoked) => break,
            other => assert!(
                Instant::now() < deadline,
                "latchkey-verify still answers {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The refresh token (its whole session) too, as JSON this time.
    let response = app
        .http
        .post(app.url("/oauth/revoke"))
        .json(&json!({
            "token": next_refresh,
            "client_id": setup.client_id,
            "client_secret": setup.client_secret,
        }))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200);
    let sid = decode_jwt(&next_access).1["sid"].clone();
    let events = setup.feed().await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "family" && e["fam"] == sid),
        "the session's revocation is in the feed: {events:?}"
    );
    assert_eq!(
        setup.introspect(&next_access).await,
        json!({"active": false})
    );
}

/// A role name, scope or audience one character over its limit, as the CLI gets it.
fn one_over(prefix: &str, limit: usize) -> String {
    names(prefix, 1, limit + 1).remove(0)
}

#[test]
fn the_cli_refuses_one_role_scope_or_audience_more_or_one_character_longer() {
    let dir = Workdir::new();
    let password = Some("correct horse battery\n");
    let roles = names("r", limits::MAX_ROLES, limits::MAX_NAME_LEN);
    let mut at_limit = vec!["users", "add", "full", "--password-stdin"];
    for role in &roles {
        at_limit.extend(["--role", role.as_str()]);
    }
    let user = dir.run_with_stdin(&at_limit, password).json();
    assert_eq!(user["roles"].as_array().expect("roles").len(), 32);

    let extra = "one-more".to_owned();
    let mut one_more = at_limit.clone();
    one_more[2] = "over";
    one_more.extend(["--role", extra.as_str()]);
    let stderr = dir.run_with_stdin(&one_more, password).failure();
    assert!(stderr.contains("at most 32 roles"), "{stderr}");
    let long_role = one_over("r", limits::MAX_NAME_LEN);
    let stderr = dir
        .run_with_stdin(
            &[
                "users",
                "add",
                "long",
                "--password-stdin",
                "--role",
                &long_role,
            ],
            password,
        )
        .failure();
    assert!(stderr.contains("not a valid role name"), "{stderr}");
    // Replacing the roles is bounded the same way, and leaves them as they were.
    let mut replace = vec!["users", "roles", "full"];
    for role in &roles {
        replace.extend(["--role", role.as_str()]);
    }
    replace.extend(["--role", extra.as_str()]);
    let stderr = dir.run(&replace).failure();
    assert!(stderr.contains("at most 32 roles"), "{stderr}");
    let shown = dir.run(&["users", "show", "full"]).json();
    assert_eq!(shown["roles"].as_array().expect("roles").len(), 32);
    let users = dir.run(&["users", "list"]).json();
    assert_eq!(users.as_array().expect("users").len(), 1, "{users}");

    let scopes = names("s", limits::MAX_SCOPES, limits::MAX_SCOPE_LEN);
    let audiences = names("https://a", limits::MAX_AUDIENCES, limits::MAX_AUDIENCE_LEN);
    let mut client = vec![
        "clients",
        "add",
        "full-client",
        "--grant",
        "client_credentials",
    ];
    for scope in &scopes {
        client.extend(["--scope", scope.as_str()]);
    }
    for audience in &audiences {
        client.extend(["--audience", audience.as_str()]);
    }
    dir.run(&client).json();
    let shown = dir.run(&["clients", "show", "full-client"]).json();
    assert_eq!(shown["audiences"].as_array().expect("audiences").len(), 32);

    let long_scope = one_over("s", limits::MAX_SCOPE_LEN);
    let long_audience = one_over("https://a", limits::MAX_AUDIENCE_LEN);
    let refusals: [(Vec<&str>, &str); 5] = [
        (
            [&client[..], &["--scope", "one-more"][..]].concat(),
            "at most 32 tokens",
        ),
        (
            [&client[..], &["--audience", "https://one-more"][..]].concat(),
            "at most 32 audiences",
        ),
        (
            vec!["clients", "add", "x", "--scope", &long_scope],
            "1 to 64 characters",
        ),
        (
            vec!["clients", "add", "x", "--audience", &long_audience],
            "1 to 256 characters",
        ),
        (
            vec!["clients", "add", "x", "--audience", "my api"],
            "not a valid audience",
        ),
    ];
    for (mut args, message) in refusals {
        args[2] = "over";
        let stderr = dir.run(&args).failure();
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    let stderr = dir
        .run(&["clients", "update", "full-client", "--scope", &long_scope])
        .failure();
    assert!(stderr.contains("1 to 64 characters"), "{stderr}");
    let stderr = dir
        .run(&[
            "clients",
            "update",
            "full-client",
            "--audience",
            &long_audience,
        ])
        .failure();
    assert!(stderr.contains("1 to 256 characters"), "{stderr}");
    let clients = dir.run(&["clients", "list"]).json();
    let ids: Vec<&str> = clients
        .as_array()
        .expect("clients")
        .iter()
        .map(|c| c["client_id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ["full-client"], "nothing refused was stored");
}
