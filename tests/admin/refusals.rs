//! Who is refused, and how: no or bad token (401), expired, a token that is not for the admin
//! API (401), non-admin (403), a disabled admin, an admin who just lost the role, a client's
//! own token; and 404, 409, 400 for bad requests. (Tokens of other audiences and scopes:
//! `audiences.rs`.)

use latchkey::domain::{GrantType, Username, now};
use latchkey::tokens::{AccessClaims, TokenKind, sign};
use reqwest::Method;
use serde_json::json;

use super::support::{assert_oauth_error, decode_jwt};
use super::*;

#[tokio::test]
async fn requests_without_a_valid_token_get_401_with_a_bearer_challenge() {
    let app = app().await;
    for token in [None, Some("not-a-jwt")] {
        for (method, path) in [
            (Method::GET, "/admin/users"),
            (Method::GET, "/admin/users/alice"),
            (Method::GET, "/admin/clients"),
            (Method::DELETE, "/admin/clients/web"),
        ] {
            let response = call(&app, method.clone(), path, token, None).await;
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
            let challenge = response.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let (_, body) = answer(response).await;
            assert_eq!(body["error"], "invalid_token", "{body}");
        }
    }
}

#[tokio::test]
async fn a_token_without_role_admin_gets_403() {
    let app = app().await;
    // Alice's ordinary token is not for the admin API at all (401, `audiences.rs`), and she
    // cannot get one that is (`invalid_scope`); so this is a token for the admin API that the
    // issuer would have given her had she had the role at the time (as a demoted admin has).
    let ordinary = access(&app.login().await);
    let alice = reissued(&app, &ordinary, |claims| {
        claims.claims.aud = "latchkey-admin".into();
        claims.claims.scope = "admin".into();
    });
    for (method, path, body) in [
        (Method::GET, "/admin/users", None),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "eve", "password": "eve's password", "roles": ["admin"]})),
        ),
        (
            Method::PATCH,
            "/admin/users/alice",
            Some(json!({"roles": ["admin"]})),
        ),
        (
            Method::POST,
            "/admin/clients",
            Some(json!({"client_id": "evil"})),
        ),
    ] {
        let (status, answer_body) =
            answer(call(&app, method.clone(), path, Some(&alice), body).await).await;
        assert_eq!(status, 403, "{method} {path}");
        assert_eq!(answer_body["error"], "access_denied");
    }
    // Nothing was changed by the refused requests.
    let (_, claims) = decode_jwt(&access(&app.login().await));
    assert_eq!(claims["roles"], json!(["user"]));
}

/// `token` with its claims changed by `change` and a fresh `jti`, signed with the service's
/// own key: a token the issuer might have issued.
pub(super) fn reissued(
    app: &TestApp,
    token: &str,
    change: impl FnOnce(&mut AccessClaims),
) -> String {
    let (_, claims) = decode_jwt(token);
    let mut claims: AccessClaims = serde_json::from_value(claims).unwrap();
    claims.claims.jti = format!("{}-reissued", claims.claims.jti);
    change(&mut claims);
    sign(app.keys().signer(), TokenKind::Access, &claims).unwrap()
}

#[tokio::test]
async fn an_expired_admin_token_gets_401() {
    let app = app().await;
    let token = root_token(&app).await;
    let (_, claims) = decode_jwt(&token);
    let mut claims: AccessClaims = serde_json::from_value(claims).unwrap();
    let now = now();
    claims.claims.exp = now - 120;
    claims.claims.iat = now - 1000;
    claims.claims.nbf = now - 1000;
    let keys = app.keys();
    let expired = sign(keys.signer(), TokenKind::Access, &claims).unwrap();
    let response = call(&app, Method::GET, "/admin/users", Some(&expired), None).await;
    assert_eq!(response.status(), 401);
    let (_, body) = answer(response).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn a_disabled_admin_is_refused_at_once() {
    let app = app().await;
    app.add_user("second", "second password", &["admin"]).await;
    let second = app.admin_token("second", "second password").await;
    assert_eq!(
        call(&app, Method::GET, "/admin/users", Some(&second), None)
            .await
            .status(),
        200
    );
    let root = root_token(&app).await;
    let (status, body) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/users/second",
            Some(&root),
            Some(json!({"disabled": true})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], true);
    // Disabling revoked the token, so it is no longer a valid token at all.
    assert_eq!(
        call(&app, Method::GET, "/admin/users", Some(&second), None)
            .await
            .status(),
        401
    );
    let refused = app
        .token(&[
            ("grant_type", "password"),
            ("username", "second"),
            ("password", "second password"),
            ("client_id", "web"),
        ])
        .await;
    assert_oauth_error(refused, 400, "invalid_grant").await;
}

#[tokio::test]
async fn an_admin_who_loses_the_role_is_refused_from_the_next_request_on() {
    let app = app().await;
    app.add_user("second", "second password", &["admin"]).await;
    let second = app.admin_token("second", "second password").await;
    assert_eq!(
        call(&app, Method::GET, "/admin/users", Some(&second), None)
            .await
            .status(),
        200
    );
    let root = root_token(&app).await;
    let demoted = call(
        &app,
        Method::PATCH,
        "/admin/users/second",
        Some(&root),
        Some(json!({"roles": ["user"]})),
    )
    .await;
    assert_eq!(demoted.status(), 200);
    // The token still says `roles: ["admin"]`, but a change of roles ends the access tokens
    // issued before it.
    let (_, claims) = decode_jwt(&second);
    assert_eq!(claims["roles"], json!(["admin"]));
    let (status, body) =
        answer(call(&app, Method::GET, "/admin/users", Some(&second), None).await).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "invalid_token");
    // Also when the role is taken away behind the API's back, by the CLI on the store.
    let third = root_token(&app).await;
    let root_name = Username::parse("root").unwrap();
    let mut user = app.store.get_user(&root_name).await.unwrap().unwrap();
    user.roles.clear();
    app.store.update_user(&user).await.unwrap();
    assert_eq!(
        call(&app, Method::GET, "/admin/users", Some(&third), None)
            .await
            .status(),
        403
    );
}

#[tokio::test]
async fn a_client_cannot_take_an_admin_s_name_and_a_client_s_token_is_refused() {
    let app = app().await;
    let spec = latchkey::accounts::ClientSpec {
        public: false,
        grants: [GrantType::ClientCredentials].into(),
        scopes: Default::default(),
        audiences: Default::default(),
        keys: None,
        ..Default::default()
    };
    let taken = latchkey::accounts::add_client(&app.change(), "root", spec).await;
    assert!(taken.is_err(), "a client named like the administrator");
    let secret = app
        .add_client(
            "ops",
            false,
            &[GrantType::ClientCredentials],
            &["admin", "read"],
            &[],
        )
        .await
        .unwrap();
    let response = client_credentials(&app, "ops", &secret).await;
    assert_eq!(response.status(), 200);
    let token = access(&response.json().await.unwrap());
    let (_, claims) = decode_jwt(&token);
    assert_eq!(claims["sub"], "ops");
    assert_eq!(claims["scope"], "read", "no admin scope unless asked for");
    assert_eq!(claims["aud"], "api");
    let (status, body) =
        answer(call(&app, Method::GET, "/admin/users", Some(&token), None).await).await;
    assert_eq!(status, 401, "not a token for the admin API: {body}");
    assert_eq!(body["error"], "invalid_token");
    // Nor does a client get one when it asks (`audiences.rs`). Even a client token that did
    // carry the admin audience and scope would be refused, for want of a user.
    let forged = reissued(&app, &token, |claims| {
        claims.claims.aud = "latchkey-admin".into();
        claims.claims.scope = "admin".into();
    });
    let (status, body) =
        answer(call(&app, Method::GET, "/admin/users", Some(&forged), None).await).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "access_denied");
}

#[tokio::test]
async fn administrators_cannot_lock_themselves_out() {
    let app = app().await;
    let root = root_token(&app).await;
    for change in [json!({"disabled": true}), json!({"roles": ["user"]})] {
        let (status, body) = answer(
            call(
                &app,
                Method::PATCH,
                "/admin/users/root",
                Some(&root),
                Some(change),
            )
            .await,
        )
        .await;
        assert_eq!(status, 409, "{body}");
    }
    // Adding a role to oneself is fine.
    let (status, body) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/users/root",
            Some(&root),
            Some(json!({"roles": ["admin", "ops"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn unknown_names_are_404_taken_names_409_and_bad_input_400() {
    let app = app().await;
    let root = root_token(&app).await;
    let cases = [
        (Method::GET, "/admin/users/nobody", None, 404),
        (
            Method::PATCH,
            "/admin/users/nobody",
            Some(json!({"disabled": true})),
            404,
        ),
        (
            Method::POST,
            "/admin/users/nobody/password",
            Some(json!({"password": "long enough"})),
            404,
        ),
        (Method::GET, "/admin/clients/nothing", None, 404),
        (Method::DELETE, "/admin/clients/nothing", None, 404),
        (Method::POST, "/admin/clients/nothing/secret", None, 404),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "alice", "password": "long enough"})),
            409,
        ),
        (
            Method::POST,
            "/admin/clients",
            Some(json!({"client_id": "web", "public": true, "grants": ["password"]})),
            409,
        ),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "has space", "password": "long enough"})),
            400,
        ),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "shorty", "password": "short"})),
            400,
        ),
        (
            Method::POST,
            "/admin/users",
            Some(json!({"username": "nopassword"})),
            400,
        ),
        (
            Method::POST,
            "/admin/clients",
            Some(json!({"client_id": "x", "grants": ["implicit"]})),
            400,
        ),
        (
            Method::POST,
            "/admin/clients",
            Some(json!({"client_id": "x", "public": true})),
            400,
        ),
        (
            Method::POST,
            "/admin/clients",
            Some(json!({"client_id": "x", "public": true, "grants": ["client_credentials"]})),
            400,
        ),
        (
            Method::PATCH,
            "/admin/clients/web",
            Some(json!({"grants": []})),
            400,
        ),
        (Method::POST, "/admin/clients/web/secret", None, 400),
        (
            Method::POST,
            "/admin/users/alice/password",
            Some(json!({"password": "short"})),
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let described = format!("{method} {path} {body:?}");
        let (status, answer_body) = answer(call(&app, method, path, Some(&root), body).await).await;
        assert_eq!(status, expected, "{described}: {answer_body}");
        assert!(
            answer_body["error"].is_string(),
            "{described}: {answer_body}"
        );
    }
}

#[tokio::test]
async fn a_member_the_admin_api_does_not_know_is_refused_by_name_and_changes_nothing() {
    let app = app().await;
    let root = root_token(&app).await;
    let cases = [
        (
            Method::PATCH,
            "/admin/users/alice",
            json!({"password": "a brand new password"}),
            "password",
        ),
        (
            Method::PATCH,
            "/admin/users/alice",
            json!({"role": ["admin"]}),
            "role",
        ),
        (
            Method::POST,
            "/admin/users",
            json!({"username": "carol", "password": "long enough", "disable": true}),
            "disable",
        ),
        (
            Method::POST,
            "/admin/users/alice/password",
            json!({"password": "a brand new password", "keep_sessions": true}),
            "keep_sessions",
        ),
        (
            Method::POST,
            "/admin/clients",
            json!({"client_id": "svc", "grants": ["client_credentials"], "audience": ["x"]}),
            "audience",
        ),
        (
            Method::PATCH,
            "/admin/clients/web",
            json!({"public": false, "grants": ["password"]}),
            "public",
        ),
    ];
    for (method, path, body, member) in cases {
        let described = format!("{method} {path} {body}");
        let (status, answer_body) =
            answer(call(&app, method, path, Some(&root), Some(body)).await).await;
        assert_eq!(status, 400, "{described}: {answer_body}");
        assert_eq!(answer_body["error"], "invalid_request", "{described}");
        let description = answer_body["error_description"]
            .as_str()
            .unwrap_or_default();
        assert!(description.contains(member), "{described}: {description}");
    }
    login(&app, "alice", "correct horse").await;
    let (status, alice) =
        answer(call(&app, Method::GET, "/admin/users/alice", Some(&root), None).await).await;
    assert_eq!((status, alice["roles"].clone()), (200, json!(["user"])));
    for path in ["/admin/users/carol", "/admin/clients/svc"] {
        let (status, _) = answer(call(&app, Method::GET, path, Some(&root), None).await).await;
        assert_eq!(status, 404, "{path} was not created");
    }
}
