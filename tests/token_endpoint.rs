//! POST /oauth/token: the three grants, client authentication, and every refusal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latchkey::domain::GrantType;
use serde_json::{Value, json};
use support::{TestApp, assert_oauth_error, decode_jwt};

async fn service_client(app: &TestApp) -> String {
    app.add_client(
        "svc",
        false,
        &[GrantType::ClientCredentials],
        &["read", "write"],
        &["billing"],
    )
    .await
    .expect("a confidential client has a secret")
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

#[tokio::test]
async fn the_password_grant_issues_an_rfc_9068_access_token_and_a_refresh_token() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "web"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert_eq!(
        response.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");

    let (header, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    let kid = app.keys().signer().kid().to_owned();
    assert_eq!(header, json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}));
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "api");
    assert_eq!(claims["client_id"], "web");
    assert_eq!(claims["scope"], "read write");
    assert_eq!(claims["roles"], json!(["user"]));
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 900);
    // What is left of the 900 s when answered.
    let left = body["expires_in"].as_i64().unwrap();
    assert!(
        (iat + 900 - latchkey::domain::now()..=900).contains(&left),
        "{left}"
    );
    assert!(claims["jti"].as_str().unwrap().len() >= 22);

    let (header, claims) = decode_jwt(body["refresh_token"].as_str().unwrap());
    assert_eq!(header["typ"], "rt+jwt");
    assert_eq!(header["kid"], kid.as_str());
    assert_eq!(claims["aud"], app.address.as_str());
    assert_eq!(claims["sub"], "alice");
    assert!(claims["fam"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap() + 2_592_000
    );
}

#[tokio::test]
async fn a_json_body_is_accepted_like_a_form() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .json(&json!({
            "grant_type": "password",
            "username": "alice",
            "password": "correct horse",
            "client_id": "web",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn client_credentials_issue_an_access_token_for_the_client_and_no_refresh_token() {
    let app = TestApp::spawn().await;
    let secret = service_client(&app).await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", basic("svc", &secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert!(body.get("refresh_token").is_none());
    assert_eq!(body["scope"], "read");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "svc");
    assert_eq!(claims["client_id"], "svc");
    assert!(claims.get("roles").is_none());
}

#[tokio::test]
async fn client_secrets_are_accepted_in_the_body_too() {
    let app = TestApp::spawn().await;
    let secret = service_client(&app).await;
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", &secret),
        ])
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_client_secret_is_invalid_client_with_a_basic_challenge() {
    let app = TestApp::spawn().await;
    service_client(&app).await;
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", basic("svc", "wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    assert_oauth_error(response, 401, "invalid_client").await;
}

#[tokio::test]
async fn unknown_and_missing_clients_are_invalid_client() {
    let app = TestApp::spawn().await;
    let unknown = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "nobody"),
            ("client_secret", "x"),
        ])
        .await;
    assert_oauth_error(unknown, 401, "invalid_client").await;
    let missing = app.token(&[("grant_type", "client_credentials")]).await;
    assert_oauth_error(missing, 401, "invalid_client").await;
}

#[tokio::test]
async fn garbage_in_the_authorization_header_is_invalid_client() {
    let app = TestApp::spawn().await;
    for header in ["Basic %%%", "Bearer abc", "Basic", "Basic Zm9v"] {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .header("authorization", header)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, 401, "invalid_client").await;
    }
}

#[tokio::test]
async fn a_client_may_not_use_a_grant_it_was_not_registered_with() {
    let app = TestApp::spawn().await;
    let secret = service_client(&app).await;
    app.add_user("alice", "correct horse", &[]).await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "svc"),
            ("client_secret", &secret),
        ])
        .await;
    assert_oauth_error(response, 400, "unauthorized_client").await;
}

#[tokio::test]
async fn a_scope_may_narrow_but_never_widen_what_the_client_was_given() {
    let app = TestApp::spawn().await;
    let secret = service_client(&app).await;
    let form = |scope: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", secret.as_str()),
            ("scope", scope),
        ]
    };
    let narrow = app.token(&form("write")).await;
    assert_eq!(narrow.status(), 200);
    let wide = app.token(&form("read admin")).await;
    assert_oauth_error(wide, 400, "invalid_scope").await;
}

#[tokio::test]
async fn an_audience_is_granted_only_if_the_client_was_registered_for_it() {
    let app = TestApp::spawn().await;
    let secret = service_client(&app).await;
    let form = |key: &'static str, audience: &'static str| {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", secret.as_str()),
            (key, audience),
        ]
    };
    for key in ["audience", "resource"] {
        let granted: Value = app.token(&form(key, "billing")).await.json().await.unwrap();
        let (_, claims) = decode_jwt(granted["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], "billing");
        let refused = app.token(&form(key, "payroll")).await;
        assert_oauth_error(refused, 400, "invalid_target").await;
    }
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let mut answers = Vec::new();
    for user in ["alice", "mallory", "../etc"] {
        let response = app
            .token(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", "wrong password"),
                ("client_id", "web"),
            ])
            .await;
        answers.push(assert_oauth_error(response, 400, "invalid_grant").await);
    }
    let (wrong, unknown, malformed) = (&answers[0], &answers[1], &answers[2]);
    assert_eq!(wrong, unknown);
    assert_eq!(wrong, malformed);
}

#[tokio::test]
async fn missing_and_unknown_grant_types_are_refused_as_rfc_6749_says() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let missing = app.token(&[("client_id", "web")]).await;
    assert_oauth_error(missing, 400, "invalid_request").await;
    let unknown = app
        .token(&[("grant_type", "implicit"), ("client_id", "web")])
        .await;
    assert_oauth_error(unknown, 400, "unsupported_grant_type").await;
    let not_registered = app
        .token(&[("grant_type", "authorization_code"), ("client_id", "web")])
        .await;
    assert_oauth_error(not_registered, 400, "unauthorized_client").await;
    let no_password = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("client_id", "web"),
        ])
        .await;
    assert_oauth_error(no_password, 400, "invalid_request").await;
    let no_refresh = app
        .token(&[("grant_type", "refresh_token"), ("client_id", "web")])
        .await;
    assert_oauth_error(no_refresh, 400, "invalid_request").await;
}

#[tokio::test]
async fn malformed_bodies_are_invalid_request_never_a_server_error() {
    let app = TestApp::spawn().await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text/plain", b"grant_type=password".to_vec()),
        ("application/json", b"{not json".to_vec()),
        ("application/json", b"[1,2,3]".to_vec()),
        ("application/json", br#"{"grant_type": 5}"#.to_vec()),
        (
            "application/x-www-form-urlencoded",
            vec![0xff, 0xfe, b'=', 0x80],
        ),
        (
            "application/x-www-form-urlencoded",
            b"grant_type=a&grant_type=b".to_vec(),
        ),
    ];
    for (content_type, body) in cases {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .header("content-type", content_type)
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            status == 400 || status == 401,
            "{content_type} {body:?} answered {status}"
        );
        let error: Value = response.json().await.unwrap();
        assert!(error["error"].is_string());
    }
    let no_body = app.http.post(app.url("/oauth/token")).send().await.unwrap();
    assert_oauth_error(no_body, 400, "invalid_request").await;
}

#[tokio::test]
async fn an_oversized_body_is_refused_before_it_is_read() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(2 * 1024 * 1024);
    let response = app
        .token(&[("grant_type", "password"), ("username", huge.as_str())])
        .await;
    assert_oauth_error(response, 413, "invalid_request").await;
}

#[tokio::test]
async fn an_access_token_is_not_a_refresh_token() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let response = app.refresh(tokens["access_token"].as_str().unwrap()).await;
    assert_oauth_error(response, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_refresh_token_is_bound_to_its_client() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    app.add_client("other", true, &[GrantType::RefreshToken], &[], &[])
        .await;
    let tokens = app.login().await;
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", "other"),
        ])
        .await;
    assert_oauth_error(response, 400, "invalid_grant").await;
}

#[tokio::test]
async fn a_disabled_user_cannot_log_in_or_refresh() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let name = latchkey::domain::Username::parse("alice").unwrap();
    let mut user = app.store.get_user(&name).await.unwrap().unwrap();
    user.disabled = true;
    app.store.update_user(&user).await.unwrap();
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "web"),
        ])
        .await;
    assert_oauth_error(login, 400, "invalid_grant").await;
    let refresh = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(refresh, 400, "invalid_grant").await;
    let userinfo = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(userinfo.status(), 401);
}

#[tokio::test]
async fn a_request_with_two_authorization_or_content_type_headers_is_refused_whichever_comes_first()
{
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = service_client(&app).await;
    let other = app
        .add_client(
            "other",
            false,
            &[GrantType::ClientCredentials],
            &["read"],
            &["billing"],
        )
        .await
        .expect("a secret");
    let access = app.login().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (svc, other) = (basic("svc", &secret), basic("other", &other));
    let token_request = |first: &str, second: Option<&str>, content_type: &[&str]| {
        let mut request = app
            .http
            .post(app.url("/oauth/token"))
            .header("authorization", first)
            .body("grant_type=client_credentials");
        if let Some(second) = second {
            request = request.header("authorization", second);
        }
        content_type.iter().fold(request, |request, kind| {
            request.header("content-type", *kind)
        })
    };
    let form = "application/x-www-form-urlencoded";
    let cases = [
        token_request(&svc, Some(&other), &[form]),
        token_request(&other, Some(&svc), &[form]),
        token_request(&svc, None, &[form, "application/json"]),
        app.http
            .get(app.url("/oauth/userinfo"))
            .header("authorization", format!("Bearer {access}"))
            .header("authorization", "Bearer another"),
        app.http
            .get(app.url("/oauth/authorize?client_id=web"))
            .header("authorization", format!("Bearer {access}"))
            .header("authorization", "Bearer another"),
    ];
    for request in cases {
        let response = request.send().await.unwrap();
        let body = assert_oauth_error(response, 400, "invalid_request").await;
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("more than one")),
            "{body}"
        );
    }
}
