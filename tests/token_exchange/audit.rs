//! The audit trail of token exchange, read from the binary's log.

use serde_json::Value;

use super::{ACCESS_TOKEN_TYPE, EXCHANGE, access, exchanged};
use crate::support;

/// One `token_exchanged` event per exchange, naming who acted, for whom, through which client
/// and for which audience; never the token.
#[tokio::test]
async fn an_exchange_is_one_audit_event_naming_subject_actors_client_and_audience() {
    let dir = support::process::Workdir::new();
    dir.run(&[
        "clients", "add", "web", "--public", "--grant", "password", "--scope", "read",
    ])
    .json();
    let orders = dir
        .run(&[
            "clients",
            "add",
            "orders",
            "--grant",
            "token-exchange",
            "--scope",
            "read",
            "--audience",
            "orders-api",
        ])
        .json();
    let secret = orders["client_secret"].as_str().unwrap().to_owned();
    dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("alice's own password\n"),
    )
    .json();
    let mut service = dir.serve();
    let http = reqwest::Client::new();
    let login: Value = http
        .post(service.url("/oauth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "alice's own password"),
            ("client_id", "web"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = http
        .post(service.url("/oauth/token"))
        .basic_auth("orders", Some(&secret))
        .form(&[
            ("grant_type", EXCHANGE),
            ("subject_token", access(&login)),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("audience", "orders-api"),
        ])
        .send()
        .await
        .unwrap();
    let body = exchanged(response).await;
    let event = service
        .wait_for_log(std::time::Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "token_exchanged"
        })
        .expect("a token_exchanged audit event");
    assert_eq!(event["who"], "orders", "{event}");
    assert_eq!(event["client_id"], "orders", "{event}");
    assert_eq!(event["subject"], "alice", "{event}");
    assert_eq!(event["actors"], "orders", "{event}");
    assert_eq!(event["audience"], "orders-api", "{event}");
    let all: Vec<String> = service.logs().iter().map(Value::to_string).collect();
    assert!(
        !all.join("\n").contains(access(&body)),
        "the log holds no token"
    );
}
