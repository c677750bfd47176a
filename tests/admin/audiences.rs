//! Tokens for the admin API and tokens for everything else. Only a token asked for with an
//! admin scope, by a user with role admin, through a client allowed the scope, carries the
//! admin audience (`latchkey-admin`) and it carries nothing but admin scopes; the admin API
//! takes no other token, however admin its user is, and nothing else takes it. `/userinfo`
//! and `/logout` take only tokens for the default audience (`api`).

use latchkey::domain::{GrantType, Username};
use reqwest::Method;
use serde_json::Value;

use super::refusals::reissued;
use super::support::{ADMIN_CONSOLE, assert_oauth_error, decode_jwt};
use super::*;

const ADMIN_AUDIENCE: &str = "latchkey-admin";

/// `app()` plus `reports-app`, a resource server's first-party client (public; password +
/// refresh_token; scopes read and admin; audience `reports-api`), and `svc`, a confidential
/// client (client_credentials; scopes read and admin; audiences `reports-api` and, wrongly,
/// the admin audience); returns `svc`'s secret.
async fn with_resource_clients() -> (TestApp, String) {
    let app = app().await;
    app.add_client(
        "reports-app",
        true,
        &[GrantType::Password, GrantType::RefreshToken],
        &["read", "admin"],
        &["reports-api"],
    )
    .await;
    let secret = app
        .add_client(
            "svc",
            false,
            &[GrantType::ClientCredentials],
            &["read", "admin"],
            &["reports-api", ADMIN_AUDIENCE],
        )
        .await
        .unwrap();
    (app, secret)
}

/// A password grant of `username` through `client` with extra parameters.
async fn password_grant(
    app: &TestApp,
    client: &str,
    username: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "password"),
        ("username", username),
        ("password", password),
        ("client_id", client),
    ];
    form.extend_from_slice(extra);
    app.token(&form).await
}

/// The body and access-token claims of a successful token response.
async fn granted(response: reqwest::Response) -> (Value, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let (_, claims) = decode_jwt(&access(&body));
    (body, claims)
}

async fn root_grant(app: &TestApp, client: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    password_grant(app, client, "root", ROOT_PASSWORD, extra).await
}

/// Asserts a 401 `invalid_token` with an RFC 6750 Bearer challenge naming the error.
async fn assert_invalid_token(response: reqwest::Response, what: &str) -> Value {
    assert_eq!(response.status(), 401, "{what}");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
    let (_, body) = answer(response).await;
    assert_eq!(body["error"], "invalid_token", "{what}: {body}");
    body
}

async fn list_users(app: &TestApp, token: &str) -> reqwest::Response {
    call(app, Method::GET, "/admin/users", Some(token), None).await
}

async fn logout(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_admin_s_token_for_a_resource_server_cannot_be_replayed_at_the_admin_api() {
    let (app, _) = with_resource_clients().await;
    // What a resource server receives: root's token for it, through its own client.
    for asked in [("audience", "reports-api"), ("resource", "reports-api")] {
        let (body, claims) =
            granted(root_grant(&app, "reports-app", &[asked, ("scope", "read")]).await).await;
        assert_eq!(claims["aud"], "reports-api");
        assert_eq!(claims["roles"], serde_json::json!(["admin"]));
        let body = assert_invalid_token(
            list_users(&app, &access(&body)).await,
            "a reports-api token",
        )
        .await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("not for the admin API"),
            "{body}"
        );
    }
    // Nor does any ordinary token of root's, for the default audience, open the admin API.
    let (body, claims) = granted(root_grant(&app, "web", &[]).await).await;
    assert_eq!(claims["aud"], "api");
    assert_invalid_token(list_users(&app, &access(&body)).await, "a default token").await;
}

#[tokio::test]
async fn an_admin_s_login_that_asks_for_no_scope_gets_no_admin_scope_and_no_admin_api() {
    let (app, _) = with_resource_clients().await;
    // `reports-app` may have scope admin, but an ordinary login through it does not get it.
    let (body, claims) = granted(root_grant(&app, "reports-app", &[]).await).await;
    assert_eq!(body["scope"], "read");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["aud"], "api");
    assert_invalid_token(list_users(&app, &access(&body)).await, "no scope asked").await;
    // `admin-console` has nothing but scope admin: a login without `scope` gets an empty one.
    let (body, claims) = granted(root_grant(&app, ADMIN_CONSOLE, &[]).await).await;
    assert_eq!(claims["scope"], "");
    assert_eq!(claims["aud"], "api");
    assert_invalid_token(list_users(&app, &access(&body)).await, "empty scope").await;
}

#[tokio::test]
async fn a_token_for_the_admin_audience_without_an_admin_scope_gets_403_insufficient_scope() {
    let app = app().await;
    // The issuer never makes one (an admin-audience token always has an admin scope), but the
    // admin API does not rely on that.
    let token = reissued(&app, &root_token(&app).await, |claims| {
        claims.claims.scope = "read write".into();
    });
    let response = list_users(&app, &token).await;
    assert_eq!(response.status(), 403);
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer")
            && challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"admin\""),
        "{challenge}"
    );
    let (_, body) = answer(response).await;
    assert_eq!(body["error"], "insufficient_scope", "{body}");
}

#[tokio::test]
async fn a_token_asked_for_with_scope_admin_is_for_the_admin_api_and_only_for_it() {
    let (app, _) = with_resource_clients().await;
    for (client, extra) in [
        (ADMIN_CONSOLE, vec![("scope", "admin")]),
        (
            ADMIN_CONSOLE,
            vec![("scope", "admin"), ("audience", ADMIN_AUDIENCE)],
        ),
        (
            ADMIN_CONSOLE,
            vec![("scope", "admin"), ("resource", ADMIN_AUDIENCE)],
        ),
        // A client need not list the admin audience to be allowed the admin scope.
        ("reports-app", vec![("scope", "admin")]),
    ] {
        let (body, claims) = granted(root_grant(&app, client, &extra).await).await;
        assert_eq!(body["scope"], "admin", "{client} {extra:?}");
        assert_eq!(claims["scope"], "admin");
        assert_eq!(claims["aud"], ADMIN_AUDIENCE);
        let token = access(&body);
        assert_eq!(list_users(&app, &token).await.status(), 200);
        // Good for nothing else: not for the user endpoints of the default audience.
        assert_invalid_token(app.userinfo(&token).await, "userinfo, admin token").await;
    }
}

#[tokio::test]
async fn a_non_admin_who_asks_for_an_admin_token_is_refused() {
    let (app, _) = with_resource_clients().await;
    for client in [ADMIN_CONSOLE, "reports-app"] {
        let refused = password_grant(
            &app,
            client,
            "alice",
            "correct horse",
            &[("scope", "admin")],
        )
        .await;
        assert_oauth_error(refused, 400, "invalid_scope").await;
    }
    // Nor by asking for the admin audience without the scope.
    let refused = password_grant(
        &app,
        "reports-app",
        "alice",
        "correct horse",
        &[("audience", ADMIN_AUDIENCE)],
    )
    .await;
    assert_oauth_error(refused, 400, "invalid_target").await;
}

#[tokio::test]
async fn an_admin_scope_goes_with_the_admin_audience_and_no_other_scope() {
    let (app, _) = with_resource_clients().await;
    let cases: [(&[(&str, &str)], &str); 7] = [
        (
            &[("scope", "admin"), ("audience", "reports-api")],
            "invalid_target",
        ),
        (
            &[("scope", "admin"), ("resource", "reports-api")],
            "invalid_target",
        ),
        (&[("scope", "admin"), ("audience", "api")], "invalid_target"),
        (
            &[
                ("scope", "admin"),
                ("audience", ADMIN_AUDIENCE),
                ("resource", "reports-api"),
            ],
            "invalid_target",
        ),
        // The admin audience needs an admin scope, asked for.
        (
            &[("scope", "read"), ("audience", ADMIN_AUDIENCE)],
            "invalid_target",
        ),
        (&[("resource", ADMIN_AUDIENCE)], "invalid_target"),
        // An admin token carries admin scopes only.
        (&[("scope", "admin read")], "invalid_scope"),
    ];
    for (extra, error) in cases {
        let refused = root_grant(&app, "reports-app", extra).await;
        let body = assert_oauth_error(refused, 400, error).await;
        assert!(body["error_description"].is_string(), "{extra:?}: {body}");
    }
}

#[tokio::test]
async fn a_client_never_gets_an_admin_token() {
    let (app, secret) = with_resource_clients().await;
    let grant = |extra: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(extra);
        app.http
            .post(app.url("/oauth/token"))
            .basic_auth("svc", Some(&secret))
            .form(&form)
            .send()
    };
    let (body, claims) = granted(grant(vec![]).await.unwrap()).await;
    assert_eq!(body["scope"], "read", "admin scopes only when asked for");
    assert_eq!(claims["aud"], "api");
    let refused = grant(vec![("scope", "admin")]).await.unwrap();
    assert_oauth_error(refused, 400, "invalid_scope").await;
    // Registered with the admin audience, and still refused it.
    for extra in [
        vec![("audience", ADMIN_AUDIENCE)],
        vec![("resource", ADMIN_AUDIENCE), ("scope", "read")],
    ] {
        let refused = grant(extra).await.unwrap();
        assert_oauth_error(refused, 400, "invalid_target").await;
    }
}

#[tokio::test]
async fn a_refreshed_admin_token_stays_an_admin_token_for_as_long_as_its_user_is_an_admin() {
    let app = app().await;
    let tokens = app.admin_login("root", ROOT_PASSWORD).await;
    let refresh = |refresh_token: String, extra: &'static [(&'static str, &'static str)]| {
        let mut form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token),
            ("client_id", ADMIN_CONSOLE.to_owned()),
        ];
        form.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        app.http.post(app.url("/oauth/token")).form(&form).send()
    };
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    // Asking to take the session elsewhere is refused before the refresh token is spent.
    for extra in [
        &[("audience", "api")][..],
        &[("resource", "reports-api")][..],
    ] {
        let refused = refresh(first.clone(), extra).await.unwrap();
        assert_oauth_error(refused, 400, "invalid_target").await;
    }
    let (body, claims) = granted(refresh(first, &[]).await.unwrap()).await;
    assert_eq!(claims["aud"], ADMIN_AUDIENCE);
    assert_eq!(claims["scope"], "admin");
    assert_eq!(body["scope"], "admin");
    assert_eq!(list_users(&app, &access(&body)).await.status(), 200);
    let (body, claims) = granted(
        refresh(
            body["refresh_token"].as_str().unwrap().to_owned(),
            &[("scope", "admin"), ("audience", ADMIN_AUDIENCE)],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(claims["aud"], ADMIN_AUDIENCE);

    // Root loses the role: the session yields no more admin tokens, nor any other.
    let next = body["refresh_token"].as_str().unwrap().to_owned();
    let name = Username::parse("root").unwrap();
    let mut root = app.store.get_user(&name).await.unwrap().unwrap();
    root.roles.clear();
    app.store.update_user(&root).await.unwrap();
    let refused = refresh(next.clone(), &[("scope", "admin")]).await.unwrap();
    assert_oauth_error(refused, 400, "invalid_scope").await;
    let refused = refresh(next, &[]).await.unwrap();
    assert_oauth_error(refused, 400, "invalid_grant").await;
}

#[tokio::test]
async fn an_admin_session_ends_when_its_client_loses_the_admin_scope() {
    let app = app().await;
    let tokens = app.admin_login("root", ROOT_PASSWORD).await;
    let changes = latchkey::accounts::ClientChanges {
        scopes: Some(vec!["read".into()]),
        ..Default::default()
    };
    latchkey::accounts::update_client(&app.change(), &app.settings.tokens, ADMIN_CONSOLE, changes)
        .await
        .unwrap();
    let refused = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", ADMIN_CONSOLE),
        ])
        .await;
    assert_oauth_error(refused, 400, "invalid_grant").await;
}

#[tokio::test]
async fn userinfo_and_logout_take_only_tokens_for_the_default_audience() {
    let (app, _) = with_resource_clients().await;
    let resource = access(
        &granted(
            password_grant(
                &app,
                "reports-app",
                "alice",
                "correct horse",
                &[("audience", "reports-api")],
            )
            .await,
        )
        .await
        .0,
    );
    let admin = root_token(&app).await;
    for (token, what) in [
        (&resource, "a reports-api token"),
        (&admin, "an admin token"),
    ] {
        let body = assert_invalid_token(app.userinfo(token).await, what).await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("another audience"),
            "{what}: {body}"
        );
        assert_invalid_token(logout(&app, token).await, what).await;
    }
    // The refused logout revoked nothing.
    assert_eq!(list_users(&app, &admin).await.status(), 200);
    // A token for the default audience, asked for or not, is taken.
    for extra in [&[][..], &[("audience", "api")][..]] {
        let (body, claims) =
            granted(password_grant(&app, "reports-app", "alice", "correct horse", extra).await)
                .await;
        assert_eq!(claims["aud"], "api");
        let token = access(&body);
        let me = app.userinfo(&token).await;
        assert_eq!(me.status(), 200);
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["username"], "alice");
        assert_eq!(logout(&app, &token).await.status(), 204);
        assert_eq!(app.userinfo(&token).await.status(), 401, "logged out");
    }
}
