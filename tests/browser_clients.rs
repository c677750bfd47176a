//! Registering clients for sign-in in a browser (the CLI's and the admin API's redirect URIs),
//! the metadata that describes the flow, and the answer to a sign-in form that cannot be read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use latchkey::domain::{ClientId, GrantType};
use serde_json::Value;
use support::*;

#[tokio::test]
async fn the_authorization_code_grant_needs_a_redirect_uri_and_redirect_uris_are_checked() {
    let app = TestApp::spawn().await;
    let add = |id: &'static str, grants: Vec<GrantType>, uris: Vec<&str>| {
        let spec = latchkey::accounts::ClientSpec {
            public: true,
            grants: grants.into_iter().collect(),
            redirect_uris: uris.into_iter().map(str::to_owned).collect(),
            ..Default::default()
        };
        let change = app.change();
        async move {
            latchkey::accounts::add_client(&change, id, spec)
                .await
                .map(|_| ())
        }
    };
    assert!(
        add("a", vec![GrantType::AuthorizationCode], vec![])
            .await
            .is_err()
    );
    assert!(
        add("b", vec![], vec!["https://app.example/cb#frag"])
            .await
            .is_err()
    );
    assert!(
        add("c", vec![], vec!["http://app.example/cb"])
            .await
            .is_err()
    );
    assert!(
        add("d", vec![], vec!["http://localhost:8000/cb"])
            .await
            .is_ok()
    );
    let client = app
        .store
        .get_client(&ClientId::parse("d").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(client.grants.contains(&GrantType::AuthorizationCode));
}

#[tokio::test]
async fn the_metadata_describes_the_browser_sign_in() {
    let app = TestApp::spawn().await;
    let metadata = app.metadata().await;
    let base = app.address.as_str();
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{base}/oauth/authorize")
    );
    assert_eq!(
        metadata["response_types_supported"],
        serde_json::json!(["code"])
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        metadata["subject_types_supported"],
        serde_json::json!(["public"])
    );
    assert_eq!(
        metadata["id_token_signing_alg_values_supported"],
        serde_json::json!(["RS256"])
    );
    assert!(
        metadata["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"openid".into())
    );
    assert_eq!(metadata["userinfo_endpoint"], format!("{base}/userinfo"));
    assert!(
        metadata["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"authorization_code".into())
    );
}

#[tokio::test]
async fn a_sign_in_posted_without_a_form_gets_a_page_not_json() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/oauth/authorize"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
}

#[tokio::test]
async fn the_admin_api_registers_redirect_uris_and_refuses_ones_that_cannot_be_matched_safely() {
    let app = TestApp::spawn().await;
    app.with_admin_console().await;
    app.add_user("root", "root password", &["admin"]).await;
    let token = app.admin_token("root", "root password").await;
    let create = |body: Value| {
        app.http
            .post(app.url("/admin/clients"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let created = create(serde_json::json!({
        "client_id": "spa",
        "public": true,
        "redirect_uris": ["https://app.example/cb", "http://127.0.0.1:8400/cb"],
        "first_party": true,
    }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(
        created["grants"],
        serde_json::json!(["refresh_token", "authorization_code"])
    );
    assert_eq!(
        created["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:8400/cb", "https://app.example/cb"])
    );
    assert_eq!(created["first_party"], true);
    for refused in [
        serde_json::json!({"client_id": "a", "public": true, "redirect_uris": ["https://app.example/cb#x"]}),
        serde_json::json!({"client_id": "b", "public": true, "redirect_uris": ["http://app.example/cb"]}),
        serde_json::json!({"client_id": "c", "public": true, "grants": ["authorization_code"]}),
    ] {
        let response = create(refused.clone()).await.unwrap();
        assert_eq!(response.status(), 400, "{refused}");
    }
    // Taking the redirect URIs away needs the grant taken away too.
    let update = app
        .http
        .patch(app.url("/admin/clients/spa"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"redirect_uris": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), 400);
}
