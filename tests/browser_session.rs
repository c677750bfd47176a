//! The browser's sign-in session, consent and RP-initiated logout, black-box over HTTP on the
//! embedded store and on a real Redis: a second authorization skips the page, `prompt` is
//! honoured, clients that are not first-party get a consent page, and a logout (or a password
//! change) ends the session on the server, not only in the browser.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use latchkey::domain::{GrantType, Username, now};
use latchkey::store::Subject;
use serde_json::Value;
use support::redis_server::RedisServer;
use support::sign_in::{Pkce, cookie_of, hidden, pkce, set_cookie_header};
use support::*;

const FIRST_PARTY: &str = "notes";
const THIRD_PARTY: &str = "gadget";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery";

async fn setup(app: &TestApp) {
    for (id, first_party) in [(FIRST_PARTY, true), (THIRD_PARTY, false)] {
        let spec = latchkey::accounts::ClientSpec {
            public: true,
            grants: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
            scopes: vec!["read".into()],
            redirect_uris: vec![REDIRECT.into()],
            first_party,
            ..Default::default()
        };
        latchkey::accounts::add_client(&app.change(), id, spec)
            .await
            .expect("client added");
    }
    app.add_user("alice", PASSWORD, &["user"]).await;
}

async fn authorize(
    app: &TestApp,
    client: &str,
    pkce: &Pkce,
    extra: &[(&str, &str)],
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", "openid read"),
        ("state", "st"),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    params.extend_from_slice(extra);
    let mut request = app.http.get(app.url("/oauth/authorize")).query(&params);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

/// Posts a page's form (its hidden fields, with the CSRF cookie) with `fields` added.
async fn post_page(
    app: &TestApp,
    page: reqwest::Response,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    assert_eq!(page.status(), 200);
    let csrf_cookie = cookie_of(&page, "latchkey_csrf").expect("the CSRF cookie");
    let html = page.text().await.unwrap();
    let mut form = vec![
        ("request".to_owned(), hidden(&html, "request")),
        ("csrf_token".to_owned(), hidden(&html, "csrf_token")),
    ];
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    app.http
        .post(app.url("/oauth/authorize"))
        .header("cookie", csrf_cookie)
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn sign_in(app: &TestApp, page: reqwest::Response) -> reqwest::Response {
    post_page(app, page, &[("username", "alice"), ("password", PASSWORD)]).await
}

fn query(response: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 303, "a redirect");
    let location = response.headers()["location"].to_str().unwrap();
    reqwest::Url::parse(location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

async fn redeem(app: &TestApp, client: &str, code: &str, pkce: &Pkce) -> reqwest::Response {
    app.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", client),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", &pkce.verifier),
    ])
    .await
}

/// Signs alice in to the first-party client; returns the session cookie and the tokens.
async fn signed_in(app: &TestApp) -> (String, Value) {
    let pkce = pkce();
    let page = authorize(app, FIRST_PARTY, &pkce, &[], None).await;
    let response = sign_in(app, page).await;
    let session = cookie_of(&response, "latchkey_session").expect("a session cookie");
    let code = param(&query(&response), "code").unwrap();
    let tokens = redeem(app, FIRST_PARTY, &code, &pkce)
        .await
        .json()
        .await
        .unwrap();
    (session, tokens)
}

async fn a_second_authorization_with_the_session_skips_the_page(app: &TestApp) {
    let pkce1 = pkce();
    let page = authorize(app, FIRST_PARTY, &pkce1, &[], None).await;
    let response = sign_in(app, page).await;
    let session = cookie_of(&response, "latchkey_session").unwrap();
    let header = set_cookie_header(&response, "latchkey_session").unwrap();
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    assert!(!header.contains("Secure"), "loopback http: {header}");
    let first = param(&query(&response), "code").unwrap();
    let first: Value = redeem(app, FIRST_PARTY, &first, &pkce1)
        .await
        .json()
        .await
        .unwrap();

    let pkce2 = pkce();
    let again = authorize(app, FIRST_PARTY, &pkce2, &[("nonce", "n2")], Some(&session)).await;
    let params = query(&again);
    assert_eq!(param(&params, "state").as_deref(), Some("st"));
    let code = param(&params, "code").expect("a code without the page");
    let second: Value = redeem(app, FIRST_PARTY, &code, &pkce2)
        .await
        .json()
        .await
        .unwrap();
    let (_, first_id) = decode_jwt(first["id_token"].as_str().unwrap());
    let (_, second_id) = decode_jwt(second["id_token"].as_str().unwrap());
    assert_eq!(second_id["auth_time"], first_id["auth_time"], "one sign-in");
    assert_eq!(second_id["nonce"], "n2");
    assert_ne!(
        second_id["sid"], first_id["sid"],
        "a session per client sign-in"
    );
}

async fn prompt_login_shows_the_page_and_prompt_none_needs_a_session(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let pkce = pkce();
    let forced = authorize(
        app,
        FIRST_PARTY,
        &pkce,
        &[("prompt", "login")],
        Some(&session),
    )
    .await;
    assert_eq!(forced.status(), 200);
    let silent = authorize(
        app,
        FIRST_PARTY,
        &pkce,
        &[("prompt", "none")],
        Some(&session),
    )
    .await;
    assert!(param(&query(&silent), "code").is_some());
    let without = authorize(app, FIRST_PARTY, &pkce, &[("prompt", "none")], None).await;
    assert_eq!(
        param(&query(&without), "error").as_deref(),
        Some("login_required")
    );
}

async fn max_age_shows_the_page_to_an_older_sign_in_and_prompt_none_goes_alone(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let pkce = pkce();
    let ask = |extra: &'static [(&'static str, &'static str)]| {
        authorize(app, FIRST_PARTY, &pkce, extra, Some(&session))
    };
    let recent = ask(&[("max_age", "3600")]).await;
    assert!(
        param(&query(&recent), "code").is_some(),
        "signed in within the hour"
    );
    let empty = ask(&[("max_age", "")]).await;
    assert!(
        param(&query(&empty), "code").is_some(),
        "an empty max_age is none"
    );
    let older = ask(&[("max_age", "0")]).await;
    assert_eq!(
        older.status(),
        200,
        "the page, for a password entered again"
    );
    let silent = ask(&[("max_age", "0"), ("prompt", "none")]).await;
    assert_eq!(
        param(&query(&silent), "error").as_deref(),
        Some("login_required")
    );
    for (extra, why) in [
        (
            &[("prompt", "none consent")][..],
            "prompt=none with another",
        ),
        (&[("max_age", "soon")][..], "max_age not a number"),
    ] {
        let refused = ask(extra).await;
        assert_eq!(
            param(&query(&refused), "error").as_deref(),
            Some("invalid_request"),
            "{why}"
        );
    }
}

async fn a_client_that_is_not_first_party_gets_a_consent_page(app: &TestApp) {
    let pkce = pkce();
    let page = authorize(app, THIRD_PARTY, &pkce, &[], None).await;
    let consent = sign_in(app, page).await;
    assert_eq!(consent.status(), 200);
    assert!(consent.headers()["x-frame-options"] == "DENY");
    let session = cookie_of(&consent, "latchkey_session").unwrap();
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("Allow access?") && html.contains("<code>read</code>"),
        "{html}"
    );
    let decide = |decision: &'static str| {
        let form = [
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("decision", decision.to_owned()),
        ];
        let request = app.http.post(app.url("/oauth/authorize")).form(&form);
        async move { request }
    };
    // The consent form carries the sign-in page's CSRF token, which the browser's cookie from
    // that page still holds.
    let csrf = format!("latchkey_csrf={}", hidden(&html, "csrf_token"));
    let denied = decide("deny")
        .await
        .header("cookie", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(
        param(&query(&denied), "error").as_deref(),
        Some("access_denied")
    );
    let allowed = decide("allow")
        .await
        .header("cookie", &csrf)
        .send()
        .await
        .unwrap();
    let code = param(&query(&allowed), "code").expect("a code once allowed");
    assert_eq!(redeem(app, THIRD_PARTY, &code, &pkce).await.status(), 200);
    // Without the CSRF cookie the consent form is refused.
    let forged = decide("allow").await.send().await.unwrap();
    assert_eq!(forged.status(), 400);
    // With a session, the consent page comes at once, without the sign-in page.
    let again = authorize(app, THIRD_PARTY, &pkce, &[], Some(&session)).await;
    assert_eq!(again.status(), 200);
    assert!(again.text().await.unwrap().contains("Allow access?"));
}

async fn a_client_demoted_from_first_party_gets_consent_from_a_sign_in_form_shown_before(
    app: &TestApp,
) {
    let pkce = pkce();
    let page = authorize(app, FIRST_PARTY, &pkce, &[], None).await;
    let demote = latchkey::accounts::ClientChanges {
        first_party: Some(false),
        ..Default::default()
    };
    latchkey::accounts::update_client(&app.change(), &app.settings.tokens, FIRST_PARTY, demote)
        .await
        .expect("client updated");
    let consent = sign_in(app, page).await;
    assert_eq!(consent.status(), 200, "no code without consent");
    assert!(consent.text().await.unwrap().contains("Allow access?"));
}

async fn logout_ends_the_browser_session_and_the_client_session(app: &TestApp) {
    let (session, tokens) = signed_in(app).await;
    let id_token = tokens["id_token"].as_str().unwrap();
    let response = app
        .http
        .get(app.url("/oauth/logout"))
        .query(&[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", REDIRECT),
            ("state", "bye"),
        ])
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}?state=bye")
    );
    let cleared = cookie_of(&response, "latchkey_session").unwrap();
    let header = set_cookie_header(&response, "latchkey_session").unwrap();
    assert_eq!(cleared, "latchkey_session=");
    assert!(header.contains("Max-Age=0"));

    // The old cookie no longer signs in, on the server's word, and the tokens are revoked.
    let pkce = pkce();
    let after = authorize(app, FIRST_PARTY, &pkce, &[], Some(&session)).await;
    assert_eq!(after.status(), 200, "the sign-in page again");
    let refreshed = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", FIRST_PARTY),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_oauth_error(refreshed, 400, "invalid_grant").await;
    assert_eq!(
        app.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

async fn logout_never_returns_to_an_unregistered_address(app: &TestApp) {
    let (session, tokens) = signed_in(app).await;
    let response = app
        .http
        .get(app.url("/oauth/logout"))
        .query(&[
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ])
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    let plain = app.http.get(app.url("/oauth/logout")).send().await.unwrap();
    assert_eq!(plain.status(), 200);
}

async fn a_password_change_ends_the_browser_session(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let alice = Subject::User(Username::parse("alice").unwrap());
    app.store.revoke_subject(&alice, now(), 3600).await.unwrap();
    let pkce = pkce();
    let after = authorize(app, FIRST_PARTY, &pkce, &[], Some(&session)).await;
    assert_eq!(after.status(), 200, "the sign-in page again");
}

/// A change of roles ends the user's access tokens, not the sign-in: the browser's session goes
/// on and yields codes that redeem into tokens with the new roles. Only a code made before the
/// change (its scope decided on the old roles) is refused.
async fn a_change_of_roles_keeps_the_browser_session(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let early = pkce();
    let before = authorize(app, FIRST_PARTY, &early, &[], Some(&session)).await;
    let early_code = param(&query(&before), "code").expect("a code without the page");
    let alice = Username::parse("alice").unwrap();
    let cut_off = app
        .store
        .revoke_user_access(&alice, now(), 3600)
        .await
        .unwrap();
    assert_oauth_error(
        redeem(app, FIRST_PARTY, &early_code, &early).await,
        400,
        "invalid_grant",
    )
    .await;
    // Once the clock reaches the cut-off, a code made now comes after the change.
    while now() < cut_off {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pkce = pkce();
    let after = authorize(app, FIRST_PARTY, &pkce, &[], Some(&session)).await;
    let code = param(&query(&after), "code").expect("a code without the page");
    let response = redeem(app, FIRST_PARTY, &code, &pkce).await;
    assert_eq!(
        response.status(),
        200,
        "the session goes on after a change of roles"
    );
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(
        app.userinfo(tokens["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

/// A consent page left open in the browser ends nothing once that browser has logged out.
async fn a_consent_form_left_open_gives_no_code_after_the_browser_logs_out(app: &TestApp) {
    let pkce = pkce();
    let page = authorize(app, THIRD_PARTY, &pkce, &[], None).await;
    let consent = sign_in(app, page).await;
    assert_eq!(consent.status(), 200);
    let session = cookie_of(&consent, "latchkey_session").unwrap();
    let html = consent.text().await.unwrap();
    // The same browser signs out, with an ID token of its own session.
    let silent = authorize(app, FIRST_PARTY, &pkce, &[], Some(&session)).await;
    let code = param(&query(&silent), "code").unwrap();
    let tokens: Value = redeem(app, FIRST_PARTY, &code, &pkce)
        .await
        .json()
        .await
        .unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    let logout = app
        .http
        .get(app.url("/oauth/logout"))
        .query(&[("id_token_hint", hint)])
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert!(
        logout.text().await.unwrap().contains("You are signed out"),
        "the session ended"
    );
    // The consent form still on screen is posted, with the browser's CSRF cookie.
    let allowed = app
        .http
        .post(app.url("/oauth/authorize"))
        .header(
            "cookie",
            format!("latchkey_csrf={}", hidden(&html, "csrf_token")),
        )
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("decision", "allow".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 400);
    assert!(allowed.headers().get("location").is_none());
    assert!(
        allowed
            .text()
            .await
            .unwrap()
            .contains("Your sign-in has ended")
    );
}

on_both_stores!(
    setup = crate::setup;
    a_second_authorization_with_the_session_skips_the_page,
    prompt_login_shows_the_page_and_prompt_none_needs_a_session,
    max_age_shows_the_page_to_an_older_sign_in_and_prompt_none_goes_alone,
    a_client_that_is_not_first_party_gets_a_consent_page,
    a_client_demoted_from_first_party_gets_consent_from_a_sign_in_form_shown_before,
    logout_ends_the_browser_session_and_the_client_session,
    logout_never_returns_to_an_unregistered_address,
    a_password_change_ends_the_browser_session,
    a_change_of_roles_keeps_the_browser_session,
    a_consent_form_left_open_gives_no_code_after_the_browser_logs_out,
);

/// Over https the cookies carry the `__Host-` prefix, so browsers accept them only from the
/// issuer's own host. A cookie of the bare name, which a sibling or parent domain can plant
/// (cookie tossing), is never read: a session planted so does not sign the browser in to the
/// planter's account, and a planted CSRF cookie does not pass a form posted with it.
#[tokio::test]
async fn over_https_the_cookies_are_host_only_and_planted_ones_are_ignored() {
    let app = TestApp::spawn_with(|s| s.issuer = "https://id.example.test".into()).await;
    setup(&app).await;
    let page = authorize(&app, FIRST_PARTY, &pkce(), &[], None).await;
    assert_eq!(page.status(), 200);
    let header = set_cookie_header(&page, "__Host-latchkey_csrf").expect("a __Host- CSRF cookie");
    assert!(
        header.contains("; Secure") && header.contains("Path=/") && !header.contains("Domain"),
        "{header}"
    );
    let csrf = cookie_of(&page, "__Host-latchkey_csrf").unwrap();
    let html = page.text().await.unwrap();
    let post = |cookie: String| {
        let form = [
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
        ];
        app.http
            .post(app.url("/oauth/authorize"))
            .header("cookie", cookie)
            .form(&form)
            .send()
    };
    // The same token under the bare name, as another domain could plant it, passes nothing.
    let planted = post(csrf.replacen("__Host-", "", 1)).await.unwrap();
    assert_eq!(planted.status(), 400, "a planted CSRF cookie");
    let response = post(csrf.clone()).await.unwrap();
    assert_eq!(response.status(), 303);
    let session = cookie_of(&response, "__Host-latchkey_session").expect("a __Host- session");

    let again = authorize(&app, FIRST_PARTY, &pkce(), &[], Some(&session)).await;
    assert!(
        param(&query(&again), "code").is_some(),
        "the session signs in"
    );
    let planted = session.replacen("__Host-", "", 1);
    let page = authorize(&app, FIRST_PARTY, &pkce(), &[], Some(&planted)).await;
    assert_eq!(
        page.status(),
        200,
        "a planted session shows the sign-in page"
    );

    // A logout without a hint asks first; its form passes with the __Host- CSRF cookie only.
    let asked = app
        .http
        .get(app.url("/oauth/logout"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 200);
    let csrf = cookie_of(&asked, "__Host-latchkey_csrf").expect("a __Host- CSRF cookie");
    let html = asked.text().await.unwrap();
    let confirm = |cookie: String| {
        let form = [
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
        ];
        app.http
            .post(app.url("/oauth/logout"))
            .header("cookie", format!("{session}; {cookie}"))
            .form(&form)
            .send()
    };
    let planted = confirm(csrf.replacen("__Host-", "", 1)).await.unwrap();
    assert_eq!(planted.status(), 400, "a planted CSRF cookie");
    let out = confirm(csrf).await.unwrap();
    assert_eq!(
        cookie_of(&out, "__Host-latchkey_session").as_deref(),
        Some("__Host-latchkey_session=")
    );
    let after = authorize(&app, FIRST_PARTY, &pkce(), &[], Some(&session)).await;
    assert_eq!(after.status(), 200, "logged out");
}
