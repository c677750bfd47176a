//! Scopes, audiences and grants: a request narrows what the client (and, for admin-only
//! scopes, the user) may have, never widens it; the metadata lists the password grant only
//! while some client has it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use latchkey::accounts::{self, ClientChanges};
use latchkey::domain::{GrantType, Username};
use serde_json::{Value, json};
use support::{TestApp, assert_oauth_error, decode_jwt};

/// Client `web` (public; password + refresh_token; scopes read, write, admin), the
/// administrator `root` and the plain user `alice`.
async fn app() -> TestApp {
    let app = TestApp::spawn().await;
    app.add_client(
        "web",
        true,
        &[GrantType::Password, GrantType::RefreshToken],
        &["read", "write", "admin"],
        &["billing"],
    )
    .await;
    app.add_user("alice", "correct horse", &["user"]).await;
    app.add_user("root", "root password", &["admin"]).await;
    app
}

async fn password_grant(
    app: &TestApp,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", "web"),
    ];
    form.extend_from_slice(extra);
    app.token(&form).await
}

async fn granted(response: reqwest::Response) -> (Value, Value) {
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    (body, claims)
}

#[tokio::test]
async fn a_non_admin_who_asks_for_the_admin_scope_gets_invalid_scope() {
    let app = app().await;
    let response = password_grant(&app, "alice", "correct horse", &[("scope", "read admin")]).await;
    assert_oauth_error(response, 400, "invalid_scope").await;
}

#[tokio::test]
async fn the_admin_scope_is_left_out_of_a_non_admin_s_default_scope() {
    let app = app().await;
    let (body, claims) = granted(password_grant(&app, "alice", "correct horse", &[]).await).await;
    assert_eq!(body["scope"], "read write");
    assert_eq!(claims["scope"], "read write");
}

#[tokio::test]
async fn an_admin_receives_the_admin_scope_only_on_request_and_then_the_admin_audience() {
    let app = app().await;
    let (body, claims) = granted(password_grant(&app, "root", "root password", &[]).await).await;
    assert_eq!(body["scope"], "read write");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["roles"], json!(["admin"]));
    let (_, claims) =
        granted(password_grant(&app, "root", "root password", &[("scope", "admin")]).await).await;
    assert_eq!(claims["scope"], "admin");
    assert_eq!(claims["aud"], "latchkey-admin");
    let response = password_grant(&app, "root", "root password", &[("scope", "admin read")]).await;
    assert_oauth_error(response, 400, "invalid_scope").await;
}

#[tokio::test]
async fn after_losing_the_admin_role_a_refresh_may_not_ask_for_the_admin_scope() {
    let app = app().await;
    let (body, _) = granted(password_grant(&app, "root", "root password", &[]).await).await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let mut root = app
        .store
        .get_user(&Username::parse("root").unwrap())
        .await
        .unwrap()
        .unwrap();
    root.roles.clear();
    app.store.update_user(&root).await.unwrap();
    let asked = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "web"),
            ("scope", "admin"),
        ])
        .await;
    assert_oauth_error(asked, 400, "invalid_scope").await;
    let (body, claims) = granted(app.refresh(&refresh).await).await;
    assert_eq!(body["scope"], "read write");
    assert_eq!(claims["roles"], json!([]));
}

#[tokio::test]
async fn the_admin_scopes_and_the_admin_audience_are_configurable() {
    let app = TestApp::spawn_with(|s| {
        s.tokens.admin_scopes = vec!["ops".into()];
        s.admin.audience = "https://ops.example.com".into();
    })
    .await;
    app.add_client("web", true, &[GrantType::Password], &["admin", "ops"], &[])
        .await;
    app.add_user("alice", "correct horse", &[]).await;
    app.add_user("root", "root password", &["admin"]).await;
    let (_, claims) = granted(password_grant(&app, "alice", "correct horse", &[]).await).await;
    assert_eq!(claims["scope"], "admin");
    assert_eq!(claims["aud"], "api");
    let (body, claims) =
        granted(password_grant(&app, "root", "root password", &[("scope", "ops")]).await).await;
    assert_eq!(claims["aud"], "https://ops.example.com");
    let token = body["access_token"].as_str().unwrap();
    let admin = |token: String| {
        let app = &app;
        async move {
            app.http
                .get(app.url("/admin/users"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(admin(token.to_owned()).await, 200);
    let (body, _) =
        granted(password_grant(&app, "root", "root password", &[("scope", "admin")]).await).await;
    assert_eq!(
        admin(body["access_token"].as_str().unwrap().to_owned()).await,
        401,
        "scope admin is an ordinary scope here"
    );
}

#[tokio::test]
async fn a_request_may_narrow_the_audience_to_an_allowed_one_and_no_further() {
    let app = app().await;
    let (_, claims) =
        granted(password_grant(&app, "alice", "correct horse", &[("resource", "billing")]).await)
            .await;
    assert_eq!(claims["aud"], "billing");
    let response = password_grant(&app, "alice", "correct horse", &[("audience", "payroll")]).await;
    assert_oauth_error(response, 400, "invalid_target").await;
    let response = password_grant(
        &app,
        "alice",
        "correct horse",
        &[("audience", "billing"), ("resource", "api")],
    )
    .await;
    assert_oauth_error(response, 400, "invalid_target").await;
}

#[tokio::test]
async fn a_refresh_may_ask_for_an_allowed_audience_and_loses_one_the_client_lost() {
    let app = app().await;
    let (body, claims) =
        granted(password_grant(&app, "alice", "correct horse", &[("audience", "billing")]).await)
            .await;
    assert_eq!(claims["aud"], "billing");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let asked = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "web"),
            ("audience", "payroll"),
        ])
        .await;
    assert_oauth_error(asked, 400, "invalid_target").await;
    let (body, claims) = granted(app.refresh(&refresh).await).await;
    assert_eq!(claims["aud"], "billing", "the family's audience by default");
    // The client loses the audience and the scope `write`: the next refresh follows.
    let changes = ClientChanges {
        scopes: Some(vec!["read".into(), "admin".into()]),
        audiences: Some(Default::default()),
        grants: None,
        keys: None,
        ..Default::default()
    };
    accounts::update_client(&app.change(), &app.settings.tokens, "web", changes)
        .await
        .unwrap();
    let response = app.refresh(body["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(response, 400, "invalid_grant").await;
    let (body, _) = granted(password_grant(&app, "alice", "correct horse", &[]).await).await;
    let (narrowed, claims) =
        granted(app.refresh(body["refresh_token"].as_str().unwrap()).await).await;
    assert_eq!(narrowed["scope"], "read");
    assert_eq!(claims["aud"], "api");
}

async fn advertised_grants(app: &TestApp) -> Value {
    let metadata = app.metadata().await;
    metadata["grant_types_supported"].clone()
}

#[tokio::test]
async fn the_metadata_lists_the_password_grant_only_while_some_client_has_it() {
    let app = TestApp::spawn().await;
    app.add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await;
    assert_eq!(
        advertised_grants(&app).await,
        json!([
            "client_credentials",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );

    // Through the admin API the metadata follows at once.
    app.add_user("root", "root password", &["admin"]).await;
    app.add_client("bootstrap", true, &[GrantType::Password], &["admin"], &[])
        .await;
    let login: Value = password_grant_for(&app, "bootstrap").await;
    let token = login["access_token"].as_str().unwrap();
    // Taking the grant away (removing the client would revoke this very token).
    let narrowed = app
        .http
        .patch(app.url("/admin/clients/bootstrap"))
        .bearer_auth(token)
        .json(&json!({"grants": ["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(narrowed.status(), 200);
    assert_eq!(
        advertised_grants(&app).await,
        json!([
            "client_credentials",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    let created = app
        .http
        .post(app.url("/admin/clients"))
        .bearer_auth(token)
        .json(&json!({"client_id": "web", "public": true, "grants": ["password", "refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(
        advertised_grants(&app).await,
        json!([
            "password",
            "client_credentials",
            "refresh_token",
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
}

async fn password_grant_for(app: &TestApp, client_id: &str) -> Value {
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "root"),
            ("password", "root password"),
            ("client_id", client_id),
            ("scope", "admin"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_refresh_never_moves_a_session_to_another_audience_the_client_may_use() {
    let app = app().await;
    let changes = ClientChanges {
        scopes: None,
        audiences: Some(["billing".to_owned(), "payroll".to_owned()].into()),
        grants: None,
        keys: None,
        ..Default::default()
    };
    accounts::update_client(&app.change(), &app.settings.tokens, "web", changes)
        .await
        .unwrap();
    let (body, _) =
        granted(password_grant(&app, "alice", "correct horse", &[("audience", "billing")]).await)
            .await;
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    for other in ["payroll", "api"] {
        let widened = app
            .token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", "web"),
                ("audience", other),
            ])
            .await;
        assert_oauth_error(widened, 400, "invalid_target").await;
    }
    // Refused before the token was spent; the session's own audience is still granted.
    let (_, claims) = granted(
        app.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", "web"),
            ("resource", "billing"),
        ])
        .await,
    )
    .await;
    assert_eq!(claims["aud"], "billing");
}
