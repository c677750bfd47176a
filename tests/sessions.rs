//! What happens to tokens after issue: rotation and reuse detection, revocation,
//! introspection, logout, and bearer checks against forged tokens.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::domain::GrantType;
use latchkey::keys::SigningKey;
use latchkey::tokens::{AccessClaims, TokenKind, sign};
use serde_json::{Value, json};
use support::{TestApp, assert_oauth_error, decode_jwt};

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// The JSON answer to a refresh with `token`.
async fn refreshed(app: &TestApp, token: &str) -> Value {
    app.refresh(token).await.json().await.unwrap()
}

async fn introspector(app: &TestApp) -> String {
    app.add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, secret: &str, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("rs", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn revoke(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_form("/oauth/revoke", &[("token", token), ("client_id", "web")])
        .await
}

#[tokio::test]
async fn a_refresh_rotates_the_refresh_token_and_issues_a_fresh_access_token() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let first = app.login().await;
    let response = app.refresh(str_of(&first, "refresh_token")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second: Value = response.json().await.unwrap();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_ne!(second["access_token"], first["access_token"]);
    let (_, old) = decode_jwt(str_of(&first, "refresh_token"));
    let (_, new) = decode_jwt(str_of(&second, "refresh_token"));
    assert_eq!(old["fam"], new["fam"]);
    assert_ne!(old["jti"], new["jti"]);
    assert_eq!(
        app.userinfo(str_of(&second, "access_token")).await.status(),
        200
    );
}

#[tokio::test]
async fn a_repeat_inside_the_grace_window_gets_the_same_successor() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let first = app.login().await;
    let a = refreshed(&app, str_of(&first, "refresh_token")).await;
    let b = refreshed(&app, str_of(&first, "refresh_token")).await;
    assert_eq!(a["refresh_token"], b["refresh_token"]);
    // The successor is live and rotates normally.
    let c = app.refresh(str_of(&a, "refresh_token")).await;
    assert_eq!(c.status(), 200);
}

#[tokio::test]
async fn a_repeat_says_how_long_its_access_token_has_left_not_its_whole_lifetime() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let first = app.login().await;
    let a = refreshed(&app, str_of(&first, "refresh_token")).await;
    let (_, claims) = decode_jwt(str_of(&a, "access_token"));
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(a["expires_in"], exp - iat);
    // Two seconds on the clock after the first answer, well inside the 5 s grace window.
    while latchkey::domain::now() < iat + 2 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let b = refreshed(&app, str_of(&first, "refresh_token")).await;
    assert_eq!(a["refresh_token"], b["refresh_token"], "a repeat");
    let (_, repeated) = decode_jwt(str_of(&b, "access_token"));
    assert_eq!(repeated["exp"], exp, "dated as the first answer");
    let left = b["expires_in"].as_i64().unwrap();
    let now = latchkey::domain::now();
    assert!(
        (exp - now..=exp - iat - 2).contains(&left),
        "expires_in {left} for a token expiring at {exp}, answered at {now}"
    );
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_whole_family() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_grace = 0).await;
    app.with_user_and_web_client().await;
    let first = app.login().await;
    let second = refreshed(&app, str_of(&first, "refresh_token")).await;
    let reuse = app.refresh(str_of(&first, "refresh_token")).await;
    let body = assert_oauth_error(reuse, 400, "invalid_grant").await;
    assert!(
        str_of(&body, "error_description").contains("revoked"),
        "{body}"
    );
    // The legitimate successor dies with the family, and so do the session's access tokens.
    let successor = app.refresh(str_of(&second, "refresh_token")).await;
    assert_oauth_error(successor, 400, "invalid_grant").await;
    assert_eq!(
        app.userinfo(str_of(&second, "access_token")).await.status(),
        401
    );
    assert_eq!(
        app.userinfo(str_of(&first, "access_token")).await.status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_of_one_token_yield_one_successor() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let first = app.login().await;
    let token = str_of(&first, "refresh_token").to_owned();
    let requests = (0..50).map(|_| {
        let http = app.http.clone();
        let url = app.url("/oauth/token");
        let token = token.clone();
        tokio::spawn(async move {
            http.post(url)
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "web"),
                ])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    });
    let mut successors = HashSet::new();
    for request in requests.collect::<Vec<_>>() {
        let body = request.await.unwrap();
        successors.insert(str_of(&body, "refresh_token").to_owned());
    }
    assert_eq!(
        successors.len(),
        1,
        "one successor, got {}",
        successors.len()
    );
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(app.refresh(&successor).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_access_token_kills_it_everywhere_at_once() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = introspector(&app).await;
    let tokens = app.login().await;
    let access = str_of(&tokens, "access_token");
    assert_eq!(introspect(&app, &secret, access).await["active"], true);
    assert_eq!(revoke(&app, access).await.status(), 200);
    assert_eq!(
        introspect(&app, &secret, access).await,
        json!({"active": false})
    );
    assert_eq!(app.userinfo(access).await.status(), 401);
    // The refresh token of the session is untouched by revoking one access token.
    assert_eq!(
        app.refresh(str_of(&tokens, "refresh_token")).await.status(),
        200
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family_and_the_family_s_access_tokens() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = introspector(&app).await;
    let first = app.login().await;
    let second = refreshed(&app, str_of(&first, "refresh_token")).await;
    let response = app
        .post_form(
            "/oauth/revoke",
            &[
                ("token", str_of(&second, "refresh_token")),
                ("token_type_hint", "refresh_token"),
                ("client_id", "web"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_oauth_error(
        app.refresh(str_of(&second, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    let refresh_state = introspect(&app, &secret, str_of(&second, "refresh_token")).await;
    assert_eq!(refresh_state["active"], false);
    assert_eq!(
        app.userinfo(str_of(&second, "access_token")).await.status(),
        401
    );
    // Another session of the same user lives on.
    let other = app.login().await;
    assert_eq!(
        app.userinfo(str_of(&other, "access_token")).await.status(),
        200
    );
}

#[tokio::test]
async fn revoking_unknown_or_garbage_tokens_answers_200() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    for token in ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        assert_eq!(revoke(&app, token).await.status(), 200, "{token}");
    }
}

#[tokio::test]
async fn revocation_needs_client_authentication_and_the_token_s_own_client() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = introspector(&app).await;
    let tokens = app.login().await;
    let anonymous = app
        .post_form(
            "/oauth/revoke",
            &[("token", str_of(&tokens, "access_token"))],
        )
        .await;
    assert_oauth_error(anonymous, 401, "invalid_client").await;
    let foreign = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth("rs", Some(secret))
        .form(&[("token", str_of(&tokens, "access_token"))])
        .send()
        .await
        .unwrap();
    assert_oauth_error(foreign, 400, "unauthorized_client").await;
    assert_eq!(
        app.userinfo(str_of(&tokens, "access_token")).await.status(),
        200
    );
    let missing = app
        .post_form("/oauth/revoke", &[("client_id", "web")])
        .await;
    assert_oauth_error(missing, 400, "invalid_request").await;
}

#[tokio::test]
async fn introspection_describes_live_tokens_and_needs_an_authenticated_client() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = introspector(&app).await;
    let tokens = app.login().await;
    let access = introspect(&app, &secret, str_of(&tokens, "access_token")).await;
    assert_eq!(access["active"], true);
    assert_eq!(access["token_type"], "access_token");
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["username"], "alice");
    assert_eq!(access["client_id"], "web");
    assert_eq!(access["scope"], "read write");
    assert_eq!(access["aud"], "api");
    assert_eq!(access["iss"], app.address.as_str());
    let refresh = introspect(&app, &secret, str_of(&tokens, "refresh_token")).await;
    assert_eq!(refresh["active"], true);
    assert_eq!(refresh["token_type"], "refresh_token");
    assert_eq!(
        introspect(&app, &secret, "garbage").await,
        json!({"active": false})
    );
    let anonymous = app
        .post_form(
            "/oauth/introspect",
            &[("token", str_of(&tokens, "access_token"))],
        )
        .await;
    assert_oauth_error(anonymous, 401, "invalid_client").await;
}

#[tokio::test]
async fn introspection_is_for_confidential_clients_only() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = introspector(&app).await;
    let tokens = app.login().await;
    let access = str_of(&tokens, "access_token");
    let refresh = str_of(&tokens, "refresh_token");
    // A public client may introspect nothing: not another client's token, not its own, not a
    // refresh token, however it names itself (RFC 7662 §2.1).
    for token in [access, refresh] {
        let attempts = [
            app.http
                .post(app.url("/oauth/introspect"))
                .form(&[("token", token), ("client_id", "web")]),
            app.http.post(app.url("/oauth/introspect")).form(&[
                ("token", token),
                ("client_id", "web"),
                ("client_secret", ""),
            ]),
            app.http
                .post(app.url("/oauth/introspect"))
                .json(&json!({"token": token, "client_id": "web"})),
            app.http
                .post(app.url("/oauth/introspect"))
                .basic_auth("web", None::<&str>)
                .form(&[("token", token)]),
            app.http
                .post(app.url("/oauth/introspect"))
                .basic_auth("web", Some("anything"))
                .form(&[("token", token)]),
            // Nor a confidential client's id without its secret.
            app.http
                .post(app.url("/oauth/introspect"))
                .form(&[("token", token), ("client_id", "rs")]),
        ];
        for attempt in attempts {
            let response = attempt.send().await.unwrap();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = assert_oauth_error(response, 401, "invalid_client").await;
            assert!(challenge.starts_with("Basic"), "{challenge}");
            assert!(body.get("active").is_none(), "{body}");
        }
    }
    // The confidential client, by Basic or in the body, may.
    assert_eq!(introspect(&app, &secret, access).await["active"], true);
    let posted = app
        .post_form(
            "/oauth/introspect",
            &[
                ("token", refresh),
                ("client_id", "rs"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(posted.status(), 200);
    assert_eq!(posted.json::<Value>().await.unwrap()["active"], true);
    // Revocation stays open to the public client, for its own tokens (RFC 7009).
    assert_eq!(revoke(&app, access).await.status(), 200);
    assert_eq!(introspect(&app, &secret, access).await["active"], false);
    // The metadata says as much: no `none` for introspection, `none` for revocation.
    let metadata = app.metadata().await;
    assert_eq!(
        metadata["introspection_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    let revocation = metadata["revocation_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(revocation.contains(&json!("none")));
}

#[tokio::test]
async fn a_rotated_refresh_token_is_inactive_once_its_grace_window_has_passed() {
    let app = TestApp::spawn_with(|s| s.tokens.refresh_grace = 0).await;
    app.with_user_and_web_client().await;
    let secret = introspector(&app).await;
    let first = app.login().await;
    let second = refreshed(&app, str_of(&first, "refresh_token")).await;
    assert_eq!(
        introspect(&app, &secret, str_of(&first, "refresh_token")).await["active"],
        false
    );
    assert_eq!(
        introspect(&app, &secret, str_of(&second, "refresh_token")).await["active"],
        true
    );
}

#[tokio::test]
async fn logout_revokes_the_access_token_and_the_session() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let other_session = app.login().await;
    let response = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(str_of(&tokens, "access_token"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_eq!(
        app.userinfo(str_of(&tokens, "access_token")).await.status(),
        401
    );
    assert_oauth_error(
        app.refresh(str_of(&tokens, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
    // Logging out with another session's refresh token in the body ends that one too.
    let third = app.login().await;
    let response = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(str_of(&third, "access_token"))
        .form(&[("refresh_token", str_of(&other_session, "refresh_token"))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    assert_oauth_error(
        app.refresh(str_of(&other_session, "refresh_token")).await,
        400,
        "invalid_grant",
    )
    .await;
}

#[tokio::test]
async fn logout_ends_no_session_of_another_client_of_the_same_user() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    app.add_client(
        "mobile",
        true,
        &[GrantType::Password, GrantType::RefreshToken],
        &["read"],
        &[],
    )
    .await;
    let web = app.login().await;
    let mobile: serde_json::Value = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "mobile"),
        ])
        .await
        .json()
        .await
        .unwrap();
    let response = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(str_of(&web, "access_token"))
        .form(&[("refresh_token", str_of(&mobile, "refresh_token"))])
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 400, "invalid_request").await;
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", "mobile"),
            ("refresh_token", str_of(&mobile, "refresh_token")),
        ])
        .await;
    assert_eq!(refreshed.status(), 200, "the mobile session goes on");
}

#[tokio::test]
async fn userinfo_returns_the_profile_and_never_the_password_hash() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let response = app.userinfo(str_of(&tokens, "access_token")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["roles"], json!(["user"]));
    assert!(!body.to_string().contains("argon2"));
}

#[tokio::test]
async fn a_client_token_has_no_user_profile() {
    let app = TestApp::spawn().await;
    let secret = introspector(&app).await;
    let tokens: Value = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "rs"),
            ("client_secret", &secret),
        ])
        .await
        .json()
        .await
        .unwrap();
    let response = app.userinfo(str_of(&tokens, "access_token")).await;
    assert_oauth_error(response, 403, "access_denied").await;
}

fn forge(header: Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn assert_refused(app: &TestApp, token: &str, what: &str) {
    let response = app.userinfo(token).await;
    assert_eq!(response.status(), 401, "{what} must be refused");
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "{what}: {challenge}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{what}");
}

#[tokio::test]
async fn forged_tampered_and_misused_tokens_are_refused_as_invalid_token() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let access = str_of(&tokens, "access_token");
    let (header, claims) = decode_jwt(access);
    let kid = header["kid"].clone();
    let keys = app.keys();

    let none = forge(
        json!({"alg": "none", "typ": "at+jwt", "kid": kid}),
        &claims,
        b"",
    );
    assert_refused(&app, &none, "alg none").await;

    let jwk = serde_json::to_vec(keys.signer().jwk()).unwrap();
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(hs_header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &jwk),
        input.as_bytes(),
    );
    let hs = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    assert_refused(&app, &hs, "HS256 keyed with the public key").await;

    let mut altered = claims.clone();
    altered["sub"] = json!("admin");
    let signature = URL_SAFE_NO_PAD
        .decode(access.rsplit('.').next().unwrap())
        .unwrap();
    assert_refused(
        &app,
        &forge(header.clone(), &altered, &signature),
        "altered claims",
    )
    .await;

    let (stranger, _) = SigningKey::generate_rsa(2048).unwrap();
    let base: AccessClaims = serde_json::from_value(claims.clone()).unwrap();
    let foreign = sign(&stranger, TokenKind::Access, &base).unwrap();
    assert_refused(&app, &foreign, "another key").await;
    let (_, foreign_claims) = decode_jwt(&foreign);
    let forged_kid = forge(
        header.clone(),
        &foreign_claims,
        &URL_SAFE_NO_PAD
            .decode(foreign.rsplit('.').next().unwrap())
            .unwrap(),
    );
    assert_refused(&app, &forged_kid, "our kid on another key's signature").await;

    let signer = keys.signer();
    let now = latchkey::domain::now();
    let with = |change: &dyn Fn(&mut AccessClaims)| {
        let mut claims = base.clone();
        change(&mut claims);
        sign(signer, TokenKind::Access, &claims).unwrap()
    };
    let expired = with(&|c| {
        c.claims.exp = now - 120;
        c.claims.iat = now - 1000;
        c.claims.nbf = now - 1000;
    });
    assert_refused(&app, &expired, "expired").await;
    let early = with(&|c| c.claims.nbf = now + 600);
    assert_refused(&app, &early, "not yet valid").await;
    let wrong_issuer = with(&|c| c.claims.iss = "https://evil.example".into());
    assert_refused(&app, &wrong_issuer, "wrong issuer").await;

    assert_refused(
        &app,
        str_of(&tokens, "refresh_token"),
        "a refresh token as access token",
    )
    .await;
    let huge = format!("{access}{}", "A".repeat(100_000));
    assert_refused(&app, &huge, "a 100 KB token").await;
    assert_refused(&app, "not-a-jwt", "garbage").await;
}
