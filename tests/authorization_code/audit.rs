//! The audit trail of authorization codes, read from the binary's log.

use std::time::Duration;

use latchkey::domain::{ClientId, Scope, Username, now};
use latchkey::store::embedded::EmbeddedStore;
use latchkey::store::{AuthorizationCode, Store};

use super::{REDIRECT, pkce};
use crate::support::process::Workdir;

/// A code presented by another client is refused, revokes nothing, and leaves a warning that
/// names who presented it and whose sign-in it was: the code has leaked.
#[tokio::test]
async fn a_code_presented_without_its_binding_is_an_audit_warning_naming_who_and_whose() {
    let dir = Workdir::new();
    for client in ["spa", "other"] {
        let added = dir.run(&[
            "clients",
            "add",
            client,
            "--public",
            "--redirect-uri",
            REDIRECT,
        ]);
        assert!(added.success(), "{}", added.failure());
    }
    let mut service = dir.serve();
    let (verifier, challenge) = pkce();
    let code = "a-code-put-in-the-store-beside-the-service";
    let record = AuthorizationCode {
        client_id: ClientId::parse("spa").unwrap(),
        redirect_uri: REDIRECT.into(),
        code_challenge: challenge,
        scope: Scope::parse("openid").unwrap(),
        nonce: None,
        username: Username::parse("alice").unwrap(),
        auth_time: now(),
        session: None,
        expires_at: now() + 60,
    };
    let store = EmbeddedStore::open(&dir.join("data")).expect("the service's store");
    let key = latchkey::oauth::authorize::code_key(code);
    store.create_code(&key, &record).await.unwrap();

    let response = reqwest::Client::new()
        .post(service.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "other"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let event = service
        .wait_for_log(Duration::from_secs(5), |l| {
            l["target"] == "audit" && l["what"] == "code_misused"
        })
        .expect("a code_misused audit event");
    assert_eq!(event["level"], "WARN", "{event}");
    assert_eq!(event["who"], "other", "{event}");
    assert_eq!(event["subject"], "alice", "{event}");
    assert!(!event.to_string().contains(code), "never the code: {event}");
}
