//! No password, client secret, refresh token or access token ever reaches a log: every flow is
//! run against the real binary with every target at `trace`, and its whole output searched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::process::Workdir;

const ROOT_PASSWORD: &str = "root-password-f00d";
const ALICE_PASSWORD: &str = "alice-password-c0ffee";

struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: &str, value: &str) {
        assert!(value.len() >= 8, "{what} is too short to search for");
        self.0.push((what.to_owned(), value.to_owned()));
        // A token's signature alone is as secret as the token (it completes a forged copy).
        if let Some((_, signature)) = value.rsplit_once('.') {
            self.0
                .push((format!("{what} (signature)"), signature.to_owned()));
        }
    }
}

fn text(body: &Value, key: &str) -> String {
    body[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {body}"))
        .to_owned()
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "{}", response.url());
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test]
async fn no_secret_of_any_flow_appears_in_trace_logs() {
    let work = Workdir::new()
        .env("LATCHKEY_LOG__LEVEL", "trace")
        .env("LATCHKEY_LOG__FORMAT", "json")
        .env("LATCHKEY_REGISTRATION__ENABLED", "true")
        .env("LATCHKEY_BOOTSTRAP__ADMIN_USERNAME", "root")
        .env("LATCHKEY_BOOTSTRAP__ADMIN_PASSWORD", ROOT_PASSWORD);
    let mut service = work.serve();
    let added = work.run(&[
        "clients",
        "add",
        "web",
        "--public",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
    ]);
    assert!(added.success(), "{}", added.failure());
    let added = work.run(&[
        "clients",
        "add",
        "admin-console",
        "--public",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
        "--scope",
        "admin",
    ]);
    assert!(added.success(), "{}", added.failure());
    let http = reqwest::Client::new();
    let url = |path: &str| service.url(path);
    let mut secrets = Secrets(Vec::new());
    secrets.add("root's password", ROOT_PASSWORD);
    secrets.add("alice's password", ALICE_PASSWORD);

    let registered = http
        .post(url("/users"))
        .json(&json!({"username": "alice", "password": ALICE_PASSWORD}))
        .send()
        .await
        .expect("sent");
    json_of(registered, 201).await;
    let login = |username: &'static str, password: &'static str| {
        http.post(url("/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", username),
                ("password", password),
                ("client_id", "web"),
            ])
            .send()
    };
    let wrong = login("alice", "wrong-password-beef").await.expect("sent");
    secrets.add("a wrong password", "wrong-password-beef");
    json_of(wrong, 400).await;
    let root = http
        .post(url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "root"),
            ("password", ROOT_PASSWORD),
            ("client_id", "admin-console"),
            ("scope", "admin"),
        ])
        .send()
        .await
        .expect("sent");
    let root = json_of(root, 200).await;
    let root_access = text(&root, "access_token");
    secrets.add("root's access token", &root_access);
    secrets.add("root's refresh token", &text(&root, "refresh_token"));

    let created = http
        .post(url("/admin/clients"))
        .bearer_auth(&root_access)
        .json(&json!({"client_id": "svc", "grants": ["client_credentials"]}))
        .send()
        .await
        .expect("sent");
    let first_secret = text(&json_of(created, 201).await, "client_secret");
    secrets.add("a new client secret", &first_secret);
    let rotated = http
        .post(url("/admin/clients/svc/secret"))
        .bearer_auth(&root_access)
        .send()
        .await
        .expect("sent");
    let secret = text(&json_of(rotated, 200).await, "client_secret");
    secrets.add("a rotated client secret", &secret);
    let bad_client = http
        .post(url("/oauth/token"))
        .basic_auth("svc", Some(&first_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent");
    json_of(bad_client, 401).await;
    let service_token = http
        .post(url("/oauth/token"))
        .basic_auth("svc", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent");
    secrets.add(
        "a client's access token",
        &text(&json_of(service_token, 200).await, "access_token"),
    );

    let alice = json_of(login("alice", ALICE_PASSWORD).await.expect("sent"), 200).await;
    secrets.add("alice's first access token", &text(&alice, "access_token"));
    secrets.add(
        "alice's first refresh token",
        &text(&alice, "refresh_token"),
    );
    let refreshed = http
        .post(url("/oauth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", text(&alice, "refresh_token").as_str()),
            ("client_id", "web"),
        ])
        .send()
        .await
        .expect("sent");
    let refreshed = json_of(refreshed, 200).await;
    let access = text(&refreshed, "access_token");
    let refresh = text(&refreshed, "refresh_token");
    let (_, claims) = support::decode_jwt(&access);
    assert_eq!(claims["sub"], "alice");
    secrets.add("alice's second access token", &access);
    secrets.add("alice's second refresh token", &refresh);

    let introspected = http
        .post(url("/oauth/introspect"))
        .basic_auth("svc", Some(&secret))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .expect("sent");
    assert_eq!(json_of(introspected, 200).await["active"], true);
    let userinfo = http
        .get(url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("sent");
    json_of(userinfo, 200).await;
    let revoked = http
        .post(url("/oauth/revoke"))
        .form(&[
            ("token", text(&alice, "access_token").as_str()),
            ("client_id", "web"),
        ])
        .send()
        .await
        .expect("sent");
    json_of(revoked, 200).await;
    let logout = http
        .post(url("/logout"))
        .bearer_auth(&access)
        .form(&[("refresh_token", refresh.as_str())])
        .send()
        .await
        .expect("sent");
    assert!(logout.status().is_success(), "{}", logout.status());
    // The logout's audit line is the last thing this test caused; once it is in, so is the rest.
    service
        .wait_for_log(support::process::START_DEADLINE, |line| {
            line.to_string().contains("logout")
        })
        .expect("the logout is logged");

    let stdout: Vec<String> = service.logs().iter().map(Value::to_string).collect();
    let output = format!("{}\n{}", stdout.join("\n"), service.stderr());
    assert!(
        stdout.len() > 20,
        "trace logging is on: {} lines",
        stdout.len()
    );
    let leaked: Vec<&str> = secrets
        .0
        .iter()
        .filter(|(_, value)| output.contains(value.as_str()))
        .map(|(what, _)| what.as_str())
        .collect();
    assert!(leaked.is_empty(), "found in the logs: {leaked:?}");
    println!(
        "{} log lines, {} secrets, none found",
        stdout.len(),
        secrets.0.len()
    );
}
