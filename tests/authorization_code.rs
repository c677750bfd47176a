//! Sign-in in a browser, black-box over HTTP: the authorization endpoint and its sign-in page,
//! the form, the redirect with the code, and the `authorization_code` grant with PKCE, on the
//! embedded store and on a real Redis. Each refusal is a test of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;
#[path = "authorization_code/audit.rs"]
mod audit;

use latchkey::domain::{ClientId, GrantType, Scope, Username, now};
use latchkey::store::AuthorizationCode;
use serde_json::Value;
use support::redis_server::RedisServer;
use support::sign_in::{self, hidden};
use support::*;

const CLIENT: &str = "spa";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery";

/// A PKCE pair: a random verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let pair = sign_in::pkce();
    (pair.verifier, pair.challenge)
}

/// A public browser client and the user alice.
async fn setup(app: &TestApp) {
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        scopes: vec!["read".into(), "write".into()],
        redirect_uris: vec![REDIRECT.into()],
        first_party: true,
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), CLIENT, spec)
        .await
        .expect("client added");
    app.add_user("alice", PASSWORD, &["user"]).await;
}

/// `GET /oauth/authorize` with the usual parameters, `changes` replacing or adding some (an
/// empty value leaves the parameter out).
async fn authorize(app: &TestApp, challenge: &str, changes: &[(&str, &str)]) -> reqwest::Response {
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid read"),
        ("state", "st-123"),
        ("nonce", "n-456"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (name, value) in changes {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() {
            params.push((name, value));
        }
    }
    app.http
        .get(app.url("/oauth/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap()
}

/// The sign-in form as a browser holds it: its hidden fields and the CSRF cookie.
struct Form {
    request: String,
    csrf_token: String,
    cookie: String,
}

async fn form_of(response: reqwest::Response) -> Form {
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("latchkey_csrf="))
        .expect("the CSRF cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let html = response.text().await.unwrap();
    Form {
        request: hidden(&html, "request"),
        csrf_token: hidden(&html, "csrf_token"),
        cookie,
    }
}

async fn post_form(
    app: &TestApp,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = app.http.post(app.url("/oauth/authorize")).form(fields);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn sign_in(app: &TestApp, form: &Form, username: &str, password: &str) -> reqwest::Response {
    post_form(
        app,
        &[
            ("request", &form.request),
            ("csrf_token", &form.csrf_token),
            ("username", username),
            ("password", password),
        ],
        Some(&form.cookie),
    )
    .await
}

/// The query parameters of a redirect's `Location`, which must lead to `REDIRECT`.
fn redirect_params(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    assert_eq!(
        format!("{}://{}{}", url.scheme(), url.authority(), url.path()),
        REDIRECT
    );
    url.query_pairs().into_owned().collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The whole sign-in: a code for the challenge.
async fn code_for(app: &TestApp, challenge: &str) -> String {
    let form = form_of(authorize(app, challenge, &[]).await).await;
    let response = sign_in(app, &form, "alice", PASSWORD).await;
    let params = redirect_params(&response);
    param(&params, "code").expect("a code").to_owned()
}

async fn redeem(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    redeem_as(app, CLIENT, code, verifier).await
}

async fn redeem_as(app: &TestApp, client: &str, code: &str, verifier: &str) -> reqwest::Response {
    app.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ])
    .await
}

async fn a_user_signs_in_and_the_client_redeems_the_code_for_tokens(app: &TestApp) {
    let (verifier, challenge) = pkce();
    let page = authorize(app, &challenge, &[]).await;
    assert_eq!(page.status(), 200);
    let html_type = page.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(html_type.starts_with("text/html"), "{html_type}");
    let form = form_of(page).await;
    let response = sign_in(app, &form, "alice", PASSWORD).await;
    let params = redirect_params(&response);
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.address.as_str()));
    let code = param(&params, "code").unwrap();

    let tokens = redeem(app, code, &verifier).await;
    assert_eq!(tokens.status(), 200);
    assert_eq!(tokens.headers()["cache-control"], "no-store");
    let body: Value = tokens.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid read");
    let (_, access) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(access["sub"], "alice");
    assert_eq!(access["client_id"], CLIENT);
    let (header, id) = decode_jwt(body["id_token"].as_str().unwrap());
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["alg"], "RS256");
    assert_eq!(id["iss"], app.address.as_str());
    assert_eq!(id["sub"], "alice");
    assert_eq!(id["aud"], CLIENT);
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["sid"], access["sid"]);
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    assert!(id["exp"].as_i64().unwrap() > id["iat"].as_i64().unwrap());

    // The refresh token rotates as the password grant's does.
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(
        refreshed["scope"], "openid read",
        "openid stays with the session"
    );
    assert_eq!(
        app.userinfo(body["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn without_openid_there_is_no_id_token(app: &TestApp) {
    let (verifier, challenge) = pkce();
    let form = form_of(authorize(app, &challenge, &[("scope", "read write")]).await).await;
    let params = redirect_params(&sign_in(app, &form, "alice", PASSWORD).await);
    let body: Value = redeem(app, param(&params, "code").unwrap(), &verifier)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["scope"], "read write");
    assert!(body.get("id_token").is_none(), "{body}");
}

async fn a_wrong_verifier_is_refused_as_invalid_grant(app: &TestApp) {
    let (_, challenge) = pkce();
    let code = code_for(app, &challenge).await;
    let (other, _) = pkce();
    assert_oauth_error(redeem(app, &code, &other).await, 400, "invalid_grant").await;
}

async fn a_code_redeemed_with_another_redirect_uri_is_refused(app: &TestApp) {
    let (verifier, challenge) = pkce();
    let code = code_for(app, &challenge).await;
    let response = app
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", CLIENT),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", &verifier),
        ])
        .await;
    assert_oauth_error(response, 400, "invalid_grant").await;
}

async fn a_reused_code_is_refused_and_revokes_the_tokens_of_its_first_use(app: &TestApp) {
    let (verifier, challenge) = pkce();
    let code = code_for(app, &challenge).await;
    let first: Value = redeem(app, &code, &verifier).await.json().await.unwrap();
    let access = first["access_token"].as_str().unwrap();
    let refresh = first["refresh_token"].as_str().unwrap();
    assert_eq!(app.userinfo(access).await.status(), 200);

    assert_oauth_error(redeem(app, &code, &verifier).await, 400, "invalid_grant").await;

    assert_eq!(app.userinfo(access).await.status(), 401);
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", refresh),
        ])
        .await;
    assert_oauth_error(refreshed, 400, "invalid_grant").await;
}

async fn an_unregistered_redirect_uri_gets_a_page_not_a_redirect(app: &TestApp) {
    let (_, challenge) = pkce();
    for uri in [
        "https://evil.example/cb",
        "http://127.0.0.1:9/callback/",
        "",
    ] {
        let response = authorize(app, &challenge, &[("redirect_uri", uri)]).await;
        assert_eq!(response.status(), 400, "{uri}");
        assert!(response.headers().get("location").is_none());
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("redirect_uri"), "{html}");
        assert!(!html.contains("evil.example"));
    }
}

async fn an_unknown_client_gets_a_page_not_a_redirect(app: &TestApp) {
    let (_, challenge) = pkce();
    let response = authorize(app, &challenge, &[("client_id", "nobody")]).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

async fn plain_pkce_is_refused_with_an_error_redirect(app: &TestApp) {
    let (verifier, _) = pkce();
    let response = authorize(app, &verifier, &[("code_challenge_method", "plain")]).await;
    let params = redirect_params(&response);
    assert_eq!(param(&params, "error"), Some("invalid_request"));
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(app.address.as_str()));
    assert_eq!(param(&params, "code"), None);
}

async fn missing_pkce_is_refused_with_an_error_redirect(app: &TestApp) {
    for changes in [
        vec![("code_challenge", ""), ("code_challenge_method", "")],
        vec![("code_challenge", "")],
        vec![("code_challenge_method", "")],
    ] {
        let response =
            authorize(app, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", &changes).await;
        let params = redirect_params(&response);
        assert_eq!(
            param(&params, "error"),
            Some("invalid_request"),
            "{changes:?}"
        );
    }
}

async fn other_errors_go_back_to_the_redirect_uri(app: &TestApp) {
    let (_, challenge) = pkce();
    let response = authorize(app, &challenge, &[("response_type", "token")]).await;
    assert_eq!(
        param(&redirect_params(&response), "error"),
        Some("unsupported_response_type")
    );
    let response = authorize(app, &challenge, &[("scope", "openid delete")]).await;
    assert_eq!(
        param(&redirect_params(&response), "error"),
        Some("invalid_scope")
    );
}

async fn a_sign_in_without_the_csrf_token_is_refused(app: &TestApp) {
    let (_, challenge) = pkce();
    let form = form_of(authorize(app, &challenge, &[]).await).await;
    let without_field = post_form(
        app,
        &[
            ("request", &form.request),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
        Some(&form.cookie),
    )
    .await;
    assert_eq!(without_field.status(), 400);
    assert!(without_field.headers().get("location").is_none());
    // The field without the cookie: a form posted from another site.
    let without_cookie = post_form(
        app,
        &[
            ("request", &form.request),
            ("csrf_token", &form.csrf_token),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
        None,
    )
    .await;
    assert_eq!(without_cookie.status(), 400);
    // Another page's token.
    let other = form_of(authorize(app, &challenge, &[]).await).await;
    let mixed = post_form(
        app,
        &[
            ("request", &form.request),
            ("csrf_token", &other.csrf_token),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
        Some(&other.cookie),
    )
    .await;
    assert_eq!(mixed.status(), 400);
}

async fn the_sign_in_page_cannot_be_framed_cached_or_scripted(app: &TestApp) {
    let (_, challenge) = pkce();
    let response = authorize(app, &challenge, &[]).await;
    let headers = response.headers();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    assert!(policy.contains("form-action 'self'"), "{policy}");
    assert!(!policy.contains("script-src"), "{policy}");
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let html = response.text().await.unwrap();
    assert!(!html.contains("<script"));
    assert!(html.contains("<label for=\"username\">"));
    assert!(html.contains("<label for=\"password\">"));
    assert!(html.contains("name=\"viewport\""));
}

/// The redirects that carry a code or an error (after the form, and at once with a session or
/// for an error) say `Referrer-Policy: no-referrer`, as the pages do.
async fn the_redirects_with_a_code_or_an_error_send_no_referrer(app: &TestApp) {
    let (_, challenge) = pkce();
    let form = form_of(authorize(app, &challenge, &[]).await).await;
    let signed_in = sign_in(app, &form, "alice", PASSWORD).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["referrer-policy"], "no-referrer");
    let refused = authorize(app, &challenge, &[("code_challenge_method", "plain")]).await;
    assert_eq!(refused.status(), 303);
    assert_eq!(refused.headers()["referrer-policy"], "no-referrer");
}

async fn a_wrong_password_shows_the_page_again_without_saying_which(app: &TestApp) {
    let (_, challenge) = pkce();
    let form = form_of(authorize(app, &challenge, &[]).await).await;
    let wrong = sign_in(app, &form, "alice", "not the password").await;
    assert_eq!(wrong.status(), 200);
    assert!(wrong.headers().get("location").is_none());
    let wrong = wrong.text().await.unwrap();
    let unknown = sign_in(app, &form, "mallory", "not the password").await;
    assert_eq!(unknown.status(), 200);
    let unknown = unknown.text().await.unwrap();
    let message = "The username or password is not right.";
    assert!(wrong.contains(message) && unknown.contains(message));
    // The page is posted again as it is: the right password then signs in.
    let again = sign_in(app, &form, "alice", PASSWORD).await;
    assert!(param(&redirect_params(&again), "code").is_some());
}

async fn too_many_wrong_passwords_get_a_429_page(app: &TestApp) {
    let (_, challenge) = pkce();
    let form = form_of(authorize(app, &challenge, &[]).await).await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(sign_in(app, &form, "alice", "not the password").await);
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 429);
    assert!(last.headers().contains_key("retry-after"));
    assert!(
        last.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

async fn an_expired_code_is_refused(app: &TestApp) {
    let (verifier, challenge) = pkce();
    let code = "an-expired-code-put-in-the-store-directly";
    let now = now();
    let record = AuthorizationCode {
        client_id: ClientId::parse(CLIENT).unwrap(),
        redirect_uri: REDIRECT.into(),
        code_challenge: challenge,
        scope: Scope::parse("read").unwrap(),
        nonce: None,
        username: Username::parse("alice").unwrap(),
        auth_time: now - 61,
        session: None,
        expires_at: now - 1,
    };
    let key = latchkey::oauth::authorize::code_key(code);
    app.store.create_code(&key, &record).await.unwrap();
    assert_oauth_error(redeem(app, code, &verifier).await, 400, "invalid_grant").await;
}

/// Whoever merely saw a code (another client, or a caller without the verifier) is refused
/// and changes nothing: the code still redeems, and a replay by them after that does not end
/// the session the code opened.
async fn a_code_presented_without_its_client_or_verifier_is_refused_and_left_as_it_was(
    app: &TestApp,
) {
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode].into(),
        redirect_uris: vec![REDIRECT.into()],
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), "other", spec)
        .await
        .unwrap();
    let (verifier, challenge) = pkce();
    let code = code_for(app, &challenge).await;
    let by_other = redeem_as(app, "other", &code, &verifier);
    assert_oauth_error(by_other.await, 400, "invalid_grant").await;
    let (guess, _) = pkce();
    assert_oauth_error(redeem(app, &code, &guess).await, 400, "invalid_grant").await;

    let tokens: Value = redeem(app, &code, &verifier).await.json().await.unwrap();
    let access = tokens["access_token"]
        .as_str()
        .expect("the code still redeems");
    let by_other = redeem_as(app, "other", &code, &verifier);
    assert_oauth_error(by_other.await, 400, "invalid_grant").await;
    assert_oauth_error(redeem(app, &code, &guess).await, 400, "invalid_grant").await;
    assert_eq!(
        app.userinfo(access).await.status(),
        200,
        "no replay by them ended the session"
    );
}

/// Low limits, so that the limit test needs few attempts.
fn limits(settings: &mut latchkey::configuration::Settings) {
    settings.security.max_failed_logins_per_user_address = 3;
}

on_both_stores!(
    configure = crate::limits,
    setup = crate::setup;
    a_user_signs_in_and_the_client_redeems_the_code_for_tokens,
    without_openid_there_is_no_id_token,
    a_wrong_verifier_is_refused_as_invalid_grant,
    a_code_redeemed_with_another_redirect_uri_is_refused,
    a_reused_code_is_refused_and_revokes_the_tokens_of_its_first_use,
    an_unregistered_redirect_uri_gets_a_page_not_a_redirect,
    an_unknown_client_gets_a_page_not_a_redirect,
    plain_pkce_is_refused_with_an_error_redirect,
    missing_pkce_is_refused_with_an_error_redirect,
    other_errors_go_back_to_the_redirect_uri,
    a_sign_in_without_the_csrf_token_is_refused,
    the_sign_in_page_cannot_be_framed_cached_or_scripted,
    the_redirects_with_a_code_or_an_error_send_no_referrer,
    a_wrong_password_shows_the_page_again_without_saying_which,
    too_many_wrong_passwords_get_a_429_page,
    an_expired_code_is_refused,
    a_code_presented_without_its_client_or_verifier_is_refused_and_left_as_it_was,
);

/// A client at the registration limits (32 scopes of 64 characters, a redirect URI of 2,048)
/// asked for all its scopes with the longest `state` and `nonce`, each made of characters JSON
/// doubles: the signed request would pass the size the issuer accepts. The user gets a page that
/// says so, never a 500.
#[tokio::test]
async fn a_request_too_large_for_the_sign_in_form_is_refused_on_a_page() {
    let app = TestApp::spawn().await;
    let scopes: Vec<String> = (0..32)
        .map(|i| format!("{i:02}{}", "s".repeat(62)))
        .collect();
    let redirect = format!("http://127.0.0.1:9/{}", "r".repeat(2048 - 19));
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode].into(),
        scopes: scopes.clone(),
        redirect_uris: vec![redirect.clone()],
        first_party: true,
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), "wide", spec)
        .await
        .expect("a client at the limits");
    let (_, challenge) = pkce();
    let scope = scopes.join(" ");
    let state = "\"".repeat(1024);
    let nonce = "\\".repeat(256);
    let response = app
        .http
        .get(app.url("/oauth/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "wide"),
            ("redirect_uri", redirect.as_str()),
            ("scope", scope.as_str()),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(page.contains("too large"), "{page}");
}

#[tokio::test]
async fn with_cors_on_the_sign_in_form_posted_from_the_issuer_s_own_page_still_signs_in() {
    let app = TestApp::spawn_with(|s| {
        s.security.cors_origins = vec!["https://spa.example.com".into()];
    })
    .await;
    setup(&app).await;
    let (_, challenge) = pkce();
    let form = form_of(authorize(&app, &challenge, &[]).await).await;
    // A browser sends the page's origin with the post.
    let signed_in = app
        .http
        .post(app.url("/oauth/authorize"))
        .header("origin", app.address.as_str())
        .header("cookie", &form.cookie)
        .form(&[
            ("request", form.request.as_str()),
            ("csrf_token", form.csrf_token.as_str()),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let params = redirect_params(&signed_in);
    assert!(params.iter().any(|(name, _)| name == "code"), "{params:?}");
    assert!(
        signed_in
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn a_parameter_given_twice_is_refused_with_a_page_and_never_redirected() {
    let app = TestApp::spawn().await;
    setup(&app).await;
    let (_, challenge) = pkce();
    for (name, second) in [
        ("redirect_uri", "https://evil.example/cb"),
        ("client_id", "other"),
        ("state", "st-2"),
        ("code_challenge", "x"),
    ] {
        let mut url = reqwest::Url::parse(&app.url("/oauth/authorize")).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "openid read")
            .append_pair("state", "st-123")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair(name, second);
        let response = app.http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 400, "{name}");
        assert!(response.headers().get("location").is_none(), "{name}");
        let page = response.text().await.unwrap();
        assert!(
            page.contains(&format!("gives {name} more than once")),
            "{page}"
        );
    }
}
