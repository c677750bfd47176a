//! What clients and resource servers discover without credentials (JWKS, metadata, the API
//! document), health checks, registration, and the JSON shape of every error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{Value, json};
use support::{TestApp, assert_oauth_error, decode_jwt};

#[tokio::test]
async fn the_jwks_publishes_the_signing_key_with_caching_headers() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    assert!(key.get("d").is_none(), "no private parts");
    assert_eq!(key["kid"], app.keys().signer().kid());
}

#[tokio::test]
async fn the_jwks_answers_304_to_a_matching_if_none_match() {
    let app = TestApp::spawn().await;
    let first = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    let etag = first.headers()["etag"].clone();
    let again = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag);
    assert_eq!(again.headers()["cache-control"], "public, max-age=300");
    let stale = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .header("if-none-match", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn tokens_name_a_key_that_the_jwks_publishes() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let (header, _) = decode_jwt(tokens["access_token"].as_str().unwrap());
    let kid = header["kid"].as_str().unwrap().to_owned();
    assert!(app.published_kids().await.contains(&kid));
}

#[tokio::test]
async fn the_metadata_is_served_at_both_well_known_paths_and_matches_the_tokens() {
    let app = TestApp::spawn().await;
    // The password grant is listed only while some client has it (tests/scopes.rs).
    app.with_user_and_web_client().await;
    let mut documents = Vec::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        documents.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(documents[0], documents[1]);
    let metadata = &documents[0];
    let base = app.address.as_str();
    assert_eq!(metadata["issuer"], base);
    assert_eq!(metadata["token_endpoint"], format!("{base}/oauth/token"));
    assert_eq!(
        metadata["revocation_endpoint"],
        format!("{base}/oauth/revoke")
    );
    assert_eq!(
        metadata["introspection_endpoint"],
        format!("{base}/oauth/introspect")
    );
    assert_eq!(
        metadata["jwks_uri"],
        format!("{base}/.well-known/jwks.json")
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!([
            "password",
            "client_credentials",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    let methods = metadata["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("client_secret_basic")));
    assert!(methods.contains(&json!("client_secret_post")));
    assert_eq!(metadata["admin_audience"], "latchkey-admin");
}

#[tokio::test]
async fn the_metadata_names_the_configured_admin_audience_which_admin_tokens_carry() {
    let app =
        TestApp::spawn_with(|s| s.admin.audience = "https://auth.example.com/admin".into()).await;
    app.with_admin_console().await;
    app.add_user("root", "root password", &["admin"]).await;
    let metadata = app.metadata().await;
    assert_eq!(metadata["admin_audience"], "https://auth.example.com/admin");
    let token = app.admin_token("root", "root password").await;
    assert_eq!(decode_jwt(&token).1["aud"], metadata["admin_audience"]);
}

#[tokio::test]
async fn liveness_and_readiness_report_ok() {
    let app = TestApp::spawn().await;
    let live = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "ready");
}

#[tokio::test]
async fn the_openapi_document_and_its_docs_page_are_served() {
    let app = TestApp::spawn().await;
    let spec: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/oauth/token",
        "/oauth/revoke",
        "/oauth/introspect",
        "/.well-known/jwks.json",
        "/userinfo",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} is documented");
    }
    let docs = app.http.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert_eq!(
        docs.headers()["x-frame-options"],
        "DENY",
        "the docs page is not framed"
    );
    assert!(docs.text().await.unwrap().contains("openapi"));
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_answer_in_json() {
    let app = TestApp::spawn().await;
    let missing = app
        .http
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_oauth_error(missing, 404, "not_found").await;
    let wrong_method = app.http.get(app.url("/oauth/token")).send().await.unwrap();
    let status = wrong_method.status().as_u16();
    assert!(status == 405 || status == 404, "{status}");
    let body: Value = wrong_method.json().await.unwrap();
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn responses_carry_no_server_banner_and_nosniff() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert!(response.headers().get("server").is_none());
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn registration_is_refused_while_it_is_switched_off() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.url("/users"))
        .json(&json!({"username": "bob", "password": "long enough"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 403, "access_denied").await;
}

#[tokio::test]
async fn registration_creates_a_user_who_can_log_in_and_never_echoes_the_password() {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.with_user_and_web_client().await;
    let response = app
        .http
        .post(app.url("/users"))
        .json(&json!({"username": "bob", "password": "a long passphrase"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body = response.text().await.unwrap();
    assert!(!body.contains("a long passphrase"));
    let profile: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(profile["username"], "bob");
    assert_eq!(profile["roles"], json!([]));
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("username", "bob"),
            ("password", "a long passphrase"),
            ("client_id", "web"),
        ])
        .await;
    assert_eq!(login.status(), 200);
}

#[tokio::test]
async fn registration_refuses_taken_names_weak_passwords_and_bad_names() {
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.add_user("alice", "correct horse", &[]).await;
    let register = |username: &'static str, password: &'static str| {
        app.http
            .post(app.url("/users"))
            .form(&[("username", username), ("password", password)])
            .send()
    };
    assert_oauth_error(
        register("alice", "another password").await.unwrap(),
        409,
        "conflict",
    )
    .await;
    assert_oauth_error(
        register("bob", "short").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    assert_oauth_error(
        register("bob smith", "long enough").await.unwrap(),
        400,
        "invalid_request",
    )
    .await;
    let missing = app
        .http
        .post(app.url("/users"))
        .json(&json!({"username": "bob"}))
        .send()
        .await
        .unwrap();
    assert_oauth_error(missing, 400, "invalid_request").await;
}
