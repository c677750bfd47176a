//! The command line on the store: clients, users and their passwords, the audit trail of
//! what it changes, also while the service runs; `latchkey openapi`.

use super::*;

#[test]
fn clients_add_prints_the_secret_once_and_list_never_shows_it() {
    let dir = Workdir::new();
    let confidential = dir
        .run(&[
            "clients",
            "add",
            "backend",
            "--grant",
            "client_credentials",
            "--scope",
            "read",
            "--scope",
            "write",
            "--audience",
            "billing",
        ])
        .json();
    assert_eq!(confidential["client_id"], "backend", "{confidential}");
    let secret = confidential["client_secret"]
        .as_str()
        .unwrap_or_else(|| panic!("a secret for a confidential client: {confidential}"))
        .to_owned();
    assert!(secret.len() >= 32, "a long random secret: {secret}");

    let public = dir
        .run(&["clients", "add", "spa", "--public", "--grant", "password"])
        .json();
    assert_eq!(public["client_id"], "spa", "{public}");
    assert!(
        public.get("client_secret").is_none_or(Value::is_null),
        "no secret for a public client: {public}"
    );

    let listing = dir.run(&["clients", "list"]);
    let list = listing.json();
    let text = listing.stdout();
    let ids: Vec<&str> = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|c| c["client_id"].as_str().expect("client_id"))
        .collect();
    assert!(
        ids.contains(&"backend") && ids.contains(&"spa"),
        "both listed: {list}"
    );
    assert!(
        !text.contains(&secret),
        "the secret is never listed: {text}"
    );
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("secret") && !lower.contains("hash"),
        "no secret or hash fields: {text}"
    );
}

/// The audit events a command wrote on standard error (JSON lines, as when piped).
fn audit_events(output: &support::process::CommandOutput) -> Vec<Value> {
    output
        .stderr()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "audit")
        .collect()
}

#[test]
fn changes_made_on_the_command_line_are_in_the_audit_trail_beside_the_answer() {
    let dir = Workdir::new();
    let added = dir.run(&["clients", "add", "backend", "--grant", "client_credentials"]);
    // The answer on stdout stays one JSON document, the secret in it.
    assert!(added.json()["client_secret"].is_string());
    let events = audit_events(&added);
    assert_eq!(events.len(), 1, "{}", added.stderr());
    assert_eq!(events[0]["what"], "client_created");
    assert_eq!(events[0]["who"], "cli");
    assert!(
        !added
            .stderr()
            .contains(added.json()["client_secret"].as_str().unwrap())
    );

    let user = dir.run_with_stdin(
        &[
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--role",
            "admin",
        ],
        Some(&format!("{USER_PASSWORD}\n")),
    );
    assert_eq!(user.json()["username"], "alice");
    let events = audit_events(&user);
    assert!(
        events
            .iter()
            .any(|e| e["what"] == "user_created" && e["subject"] == "alice"),
        "{}",
        user.stderr()
    );
    assert!(!user.stderr().contains(USER_PASSWORD));

    for (args, what) in [
        (&["users", "disable", "alice"][..], "user_disabled"),
        (
            &["users", "roles", "alice", "--clear"][..],
            "user_roles_changed",
        ),
        (&["clients", "remove", "backend"][..], "client_deleted"),
    ] {
        let output = dir.run(args);
        assert!(output.success(), "{args:?}: {}", output.stderr());
        let events = audit_events(&output);
        assert!(
            events
                .iter()
                .any(|e| e["what"] == what && e["who"] == "cli"),
            "{args:?} is audited as {what}: {}",
            output.stderr()
        );
    }
}

#[test]
fn clients_remove_deletes_a_client_and_refuses_an_unknown_id() {
    let dir = Workdir::new();
    dir.run(&["clients", "add", "gone", "--grant", "client_credentials"])
        .json();
    dir.run(&["clients", "add", "kept", "--grant", "client_credentials"])
        .json();
    dir.run(&["clients", "remove", "gone"]).json();

    let list = dir.run(&["clients", "list"]).json();
    let ids: Vec<&str> = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|c| c["client_id"].as_str().expect("client_id"))
        .collect();
    assert_eq!(ids, ["kept"], "only the other client is left: {list}");

    let stderr = dir.run(&["clients", "remove", "gone"]).failure();
    assert!(stderr.contains("gone"), "names the unknown id: {stderr}");
    let stderr = dir.run(&["clients", "remove", "never-existed"]).failure();
    assert!(
        stderr.contains("never-existed"),
        "names the unknown id: {stderr}"
    );
}

#[tokio::test]
async fn users_add_reads_the_password_from_stdin_and_refuses_without_the_flag() {
    let dir = Workdir::new();
    dir.run(&["clients", "add", "web", "--public", "--grant", "password"])
        .json();

    // Without --password-stdin: refused, even with a password waiting on stdin.
    let stderr = dir
        .run_with_stdin(
            &["users", "add", "alice", "--role", "user"],
            Some(&format!("{USER_PASSWORD}\n")),
        )
        .failure();
    assert!(
        stderr.contains("--password-stdin"),
        "says how to pass the password: {stderr}"
    );
    let users = dir.run(&["users", "list"]).json();
    assert_eq!(users, serde_json::json!([]), "no user was created");

    let output = dir.run_with_stdin(
        &[
            "users",
            "add",
            "alice",
            "--password-stdin",
            "--role",
            "user",
        ],
        Some(&format!("{USER_PASSWORD}\n")),
    );
    let user = output.json();
    assert_eq!(user["username"], "alice", "{user}");
    assert_eq!(user["roles"], serde_json::json!(["user"]), "{user}");
    assert!(
        !output.stdout().contains(USER_PASSWORD) && !output.stderr().contains(USER_PASSWORD),
        "the password is never echoed"
    );

    let service = dir.serve();
    let (status, body) = password_grant(&service, "web", "alice", USER_PASSWORD).await;
    assert_eq!(status, 200, "the password read from stdin works: {body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], serde_json::json!(["user"]));
}

#[tokio::test]
async fn users_passwd_changes_the_password_and_revokes_earlier_tokens() {
    let dir = Workdir::new();
    add_web_client_and_alice(&dir);
    let service = dir.serve();
    let old = login(&service).await;
    let old_access = old["access_token"].as_str().unwrap();
    let old_refresh = old["refresh_token"].as_str().unwrap();
    assert_eq!(userinfo_status(&service, old_access).await, 200);

    // Without --password-stdin: refused, nothing changes.
    dir.run_with_stdin(
        &["users", "passwd", "alice"],
        Some("a whole new password\n"),
    )
    .failure();
    assert_eq!(userinfo_status(&service, old_access).await, 200);

    let (_, claims) = decode_jwt(old_access);
    wait_until_after(claims["iat"].as_i64().expect("iat"));
    let (_, refresh_claims) = decode_jwt(old_refresh);
    wait_until_after(refresh_claims["iat"].as_i64().expect("iat"));
    let new_password = "a whole new password";
    let changed = dir
        .run_with_stdin(
            &["users", "passwd", "alice", "--password-stdin"],
            Some(&format!("{new_password}\n")),
        )
        .json();
    assert_eq!(changed["username"], "alice", "{changed}");

    assert_invalid_grant(
        password_grant(&service, "web", "alice", USER_PASSWORD).await,
        "the old password",
    );
    let (status, fresh) = password_grant(&service, "web", "alice", new_password).await;
    assert_eq!(status, 200, "the new password: {fresh}");
    assert_eq!(
        userinfo_status(&service, old_access).await,
        401,
        "an access token issued before the change"
    );
    assert_invalid_grant(
        refresh(&service, old_refresh).await,
        "a refresh token issued before the change",
    );
    assert_eq!(
        userinfo_status(&service, fresh["access_token"].as_str().unwrap()).await,
        200,
        "a token issued after the change"
    );
}

#[tokio::test]
async fn a_cli_with_shorter_token_lifetimes_revokes_for_as_long_as_the_services_tokens_live() {
    let mut dir = Workdir::new();
    add_web_client_and_alice(&dir);
    let reader = dir.run(&["clients", "add", "reader"]).json();
    let secret = reader["client_secret"].as_str().expect("secret").to_owned();
    // The service issues with the defaults: month-long sessions.
    let service = dir.serve();
    let session = login(&service).await;
    let (_, claims) = decode_jwt(session["refresh_token"].as_str().expect("refresh token"));
    let session_ends = claims["exp"].as_i64().expect("exp");

    // An operator's shell with other lifetimes in its environment.
    dir.set_env("LATCHKEY_TOKENS__ACCESS_TTL", "60");
    dir.set_env("LATCHKEY_TOKENS__REFRESH_TTL", "120");
    dir.run_with_stdin(
        &["users", "passwd", "alice", "--password-stdin"],
        Some("a whole new password\n"),
    )
    .json();

    let feed = http()
        .get(service.url("/oauth/revocations"))
        .basic_auth("reader", Some(&secret))
        .send()
        .await
        .expect("request sent");
    let (status, feed) = answer(feed).await;
    assert_eq!(status, 200, "{feed}");
    let kept_until = feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|event| event["type"] == "subject" && event["sub"] == "alice")
        .and_then(|event| event["exp"].as_i64())
        .unwrap_or_else(|| panic!("alice's cut-off in {feed}"));
    assert!(
        kept_until >= session_ends,
        "the cut-off is kept until {kept_until}, the session it ended lives until {session_ends}"
    );
}

#[tokio::test]
async fn the_cli_works_on_the_store_while_the_service_runs() {
    let dir = Workdir::new();
    let service = dir.serve();

    let registered = dir
        .run(&[
            "clients",
            "add",
            "backend",
            "--grant",
            "client_credentials",
            "--grant",
            "password",
            "--grant",
            "refresh_token",
            "--scope",
            "read",
        ])
        .json();
    let secret = registered["client_secret"].as_str().expect("secret");
    add_alice(&dir);

    let response = http()
        .post(service.url("/oauth/token"))
        .basic_auth("backend", Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .expect("request sent");
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "client_credentials for the new client: {body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "backend");
    assert_eq!(claims["client_id"], "backend");

    let response = http()
        .post(service.url("/oauth/token"))
        .basic_auth("backend", Some(secret))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", USER_PASSWORD),
        ])
        .send()
        .await
        .expect("request sent");
    let (status, body) = answer(response).await;
    assert_eq!(status, 200, "password grant for the new user: {body}");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");

    // Removal is seen at once too.
    dir.run(&["clients", "remove", "backend"]).json();
    let response = http()
        .post(service.url("/oauth/token"))
        .basic_auth("backend", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("request sent");
    let (status, body) = answer(response).await;
    assert_eq!(status, 401, "a removed client: {body}");
    assert_eq!(body["error"], "invalid_client", "{body}");
}

#[tokio::test]
async fn a_password_of_more_than_one_line_on_stdin_is_refused_by_every_command() {
    let dir = Workdir::new();
    dir.run(&["clients", "add", "web", "--public", "--grant", "password"])
        .json();
    let two_lines = [
        format!("{USER_PASSWORD}\nsecond line\n"),
        format!("{USER_PASSWORD}\n\n"),
        format!("{USER_PASSWORD}\r\nmore"),
    ];
    for stdin in &two_lines {
        let stderr = dir
            .run_with_stdin(&["users", "add", "alice", "--password-stdin"], Some(stdin))
            .failure();
        assert!(stderr.contains("more than one line"), "{stdin:?}: {stderr}");
    }
    assert_eq!(dir.run(&["users", "list"]).json(), serde_json::json!([]));

    // One trailing newline, of either kind, is not part of the password.
    dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some(&format!("{USER_PASSWORD}\r\n")),
    )
    .json();
    for stdin in &two_lines {
        let stderr = dir
            .run_with_stdin(
                &["users", "passwd", "alice", "--password-stdin"],
                Some(stdin),
            )
            .failure();
        assert!(stderr.contains("more than one line"), "{stdin:?}: {stderr}");
    }
    let service = dir.serve();
    let (status, body) = password_grant(&service, "web", "alice", USER_PASSWORD).await;
    assert_eq!(status, 200, "the password stays as it was: {body}");
}

#[test]
fn the_cli_refuses_the_issuer_and_the_admin_api_as_a_client_audience() {
    let dir = Workdir::new().env("LATCHKEY_ISSUER", "https://auth.example.com");
    for audience in [
        "https://auth.example.com",
        "https://auth.example.com/",
        "latchkey-admin",
    ] {
        let out = dir.run(&["clients", "add", "reports", "--audience", audience]);
        assert!(!out.success(), "{audience} was accepted");
        assert!(out.stderr().contains("audience"), "{}", out.stderr());
    }
    let out = dir.run(&["clients", "add", "reports", "--audience", "reports-api"]);
    assert!(out.success(), "{}", out.failure());
    let out = dir.run(&[
        "clients",
        "update",
        "reports",
        "--audience",
        "latchkey-admin",
    ]);
    assert!(
        !out.success(),
        "an update to the admin audience was accepted"
    );
}

#[test]
fn latchkey_openapi_prints_the_document() {
    let dir = Workdir::new();
    let document = dir.run(&["openapi"]).json();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "an OpenAPI 3 document: {}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().expect("paths");
    assert!(
        paths.contains_key("/oauth/token"),
        "paths: {:?}",
        paths.keys()
    );
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "printing the document touches neither keys nor store"
    );
}
