//! RP-initiated logout against logout CSRF, black-box over HTTP on the embedded store and on a
//! real Redis: another site can send a browser to `GET /oauth/logout`, so a live sign-in
//! session ends at once only for an `id_token_hint` of that very session; any other request
//! gets a page that asks the user, and only its own form, posted with the browser's CSRF
//! cookie, ends the session.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

use latchkey::domain::GrantType;
use serde_json::Value;
use support::redis_server::RedisServer;
use support::sign_in::{cookie_of, hidden, pkce, set_cookie_header};
use support::*;

const CLIENT: &str = "notes";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const PASSWORD: &str = "correct horse battery";

async fn setup(app: &TestApp) {
    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        scopes: vec!["read".into()],
        redirect_uris: vec![REDIRECT.into()],
        first_party: true,
        ..Default::default()
    };
    latchkey::accounts::add_client(&app.change(), CLIENT, spec)
        .await
        .expect("client added");
    app.add_user("alice", PASSWORD, &["user"]).await;
}

/// `GET /oauth/authorize` for the client, with the cookies given.
async fn authorize(app: &TestApp, challenge: &str, cookies: Option<&str>) -> reqwest::Response {
    let mut request = app.http.get(app.url("/oauth/authorize")).query(&[
        ("response_type", "code"),
        ("client_id", CLIENT),
        ("redirect_uri", REDIRECT),
        ("scope", "openid read"),
        ("state", "st"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]);
    if let Some(cookies) = cookies {
        request = request.header("cookie", cookies);
    }
    request.send().await.unwrap()
}

/// Whether the browser's session still signs in without the page.
async fn still_signed_in(app: &TestApp, session: &str) -> bool {
    let response = authorize(app, &pkce().challenge, Some(session)).await;
    response.status() == 303
}

/// Whether the client's session (its refresh token) is still live. Rotates the token.
async fn refreshes(app: &TestApp, tokens: &mut Value) -> bool {
    let response = app
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    if response.status() != 200 {
        return false;
    }
    *tokens = response.json().await.unwrap();
    true
}

/// Signs alice in, in a browser of its own; returns its session cookie and the tokens.
async fn signed_in(app: &TestApp) -> (String, Value) {
    signed_in_as(app, "alice").await
}

async fn signed_in_as(app: &TestApp, username: &str) -> (String, Value) {
    let pkce = pkce();
    let page = authorize(app, &pkce.challenge, None).await;
    assert_eq!(page.status(), 200);
    let csrf = cookie_of(&page, "latchkey_csrf").unwrap();
    let html = page.text().await.unwrap();
    let response = app
        .http
        .post(app.url("/oauth/authorize"))
        .header("cookie", csrf)
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("username", username.to_owned()),
            ("password", PASSWORD.to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let session = cookie_of(&response, "latchkey_session").expect("a session cookie");
    let code = code_of(&response);
    let tokens = redeem(app, &code, &pkce.verifier).await;
    assert_eq!(tokens.status(), 200);
    (session, tokens.json().await.unwrap())
}

/// The logout page for `params`, confirmed from the browser signed in with `session`.
async fn confirmed_logout(
    app: &TestApp,
    params: &[(&str, &str)],
    session: &str,
) -> reqwest::Response {
    let form = confirmation(logout(app, params, session).await).await;
    post(
        app,
        &[("request", &form.request), ("csrf_token", &form.csrf_token)],
        &format!("{session}; {}", form.csrf_cookie),
    )
    .await
}

/// The client's redemption of a code.
async fn redeem(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    app.token(&[
        ("grant_type", "authorization_code"),
        ("client_id", CLIENT),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier),
    ])
    .await
}

/// `GET /oauth/logout` with `params`, from a browser with `cookies`.
async fn logout(app: &TestApp, params: &[(&str, &str)], cookies: &str) -> reqwest::Response {
    app.http
        .get(app.url("/oauth/logout"))
        .query(params)
        .header("cookie", cookies)
        .send()
        .await
        .unwrap()
}

/// The `code` of an authorization's redirect.
fn code_of(redirect: &reqwest::Response) -> String {
    let location = reqwest::Url::parse(redirect.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(name, _)| name == "code");
    code.expect("a code").1.into_owned()
}

/// What another site can send the browser to: the client's return address and `state`, no hint.
async fn logout_from_another_site(app: &TestApp, cookies: &str) -> reqwest::Response {
    logout(
        app,
        &[
            ("client_id", CLIENT),
            ("post_logout_redirect_uri", REDIRECT),
            ("state", "bye"),
        ],
        cookies,
    )
    .await
}

/// The confirmation page's form: its hidden fields and the CSRF cookie set with it.
struct Confirmation {
    request: String,
    csrf_token: String,
    csrf_cookie: String,
    html: String,
}

async fn confirmation(page: reqwest::Response) -> Confirmation {
    let csrf_cookie = cookie_of(&page, "latchkey_csrf").expect("the CSRF cookie");
    let html = page.text().await.unwrap();
    Confirmation {
        request: hidden(&html, "request"),
        csrf_token: hidden(&html, "csrf_token"),
        csrf_cookie,
        html,
    }
}

/// A form's fields, by name.
type Fields<'a> = Vec<(&'a str, &'a str)>;

/// `POST /oauth/logout` with `fields`, from a browser with `cookies`.
async fn post(app: &TestApp, fields: &[(&str, &str)], cookies: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/logout"))
        .header("cookie", cookies)
        .form(fields)
        .send()
        .await
        .unwrap()
}

/// The request another site can make: a navigation to the logout endpoint without a hint.
async fn a_logout_without_a_hint_asks_the_user_and_ends_nothing(app: &TestApp) {
    let (session, mut tokens) = signed_in(app).await;
    let page = logout_from_another_site(app, &session).await;
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("frame-ancestors 'none'")
            && policy.contains("form-action 'self' http://127.0.0.1:9")
            && !policy.contains("script-src"),
        "{policy}"
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        set_cookie_header(&page, "latchkey_session").is_none(),
        "the session cookie is left alone"
    );
    let header = set_cookie_header(&page, "latchkey_csrf").expect("a CSRF cookie");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Lax"),
        "{header}"
    );
    let form = confirmation(page).await;
    assert!(
        form.html.contains("Sign out?")
            && form.html.contains("<strong>notes</strong> asks")
            && form.html.contains("action=\"logout\"")
            && form.html.contains("value=\"stay\"")
            && !form.html.contains("<script"),
        "{}",
        form.html
    );
    assert!(
        still_signed_in(app, &session).await,
        "the session skips the page"
    );
    assert!(
        refreshes(app, &mut tokens).await,
        "the client's session too"
    );
}

async fn confirming_the_logout_ends_the_session_and_returns_to_the_client(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let page = logout_from_another_site(app, &session).await;
    let form = confirmation(page).await;
    let response = post(
        app,
        &[
            ("request", &form.request),
            ("csrf_token", &form.csrf_token),
            ("decision", "sign_out"),
        ],
        &format!("{session}; {}", form.csrf_cookie),
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}?state=bye")
    );
    assert_eq!(
        cookie_of(&response, "latchkey_session").as_deref(),
        Some("latchkey_session=")
    );
    assert!(!still_signed_in(app, &session).await, "logged out");

    // Without a return address, the confirmed logout shows the signed-out page.
    let (session, _) = signed_in(app).await;
    let response = confirmed_logout(app, &[], &session).await;
    assert_eq!(response.status(), 200);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out")
    );
    assert!(!still_signed_in(app, &session).await, "logged out");
}

async fn a_logout_form_without_this_browser_s_csrf_token_ends_nothing(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let mine = confirmation(logout(app, &[], &session).await).await;
    // An attacker's own browser gets a page and a CSRF cookie of its own.
    let (theirs, _) = signed_in(app).await;
    let theirs = confirmation(logout(app, &[], &theirs).await).await;
    let with_cookie = format!("{session}; {}", mine.csrf_cookie);
    let attempts: Vec<(&str, Fields, &str)> = vec![
        (
            "no CSRF token",
            vec![("request", mine.request.as_str())],
            with_cookie.as_str(),
        ),
        (
            "a wrong CSRF token",
            vec![("request", mine.request.as_str()), ("csrf_token", "wrong")],
            with_cookie.as_str(),
        ),
        (
            "no CSRF cookie",
            vec![
                ("request", mine.request.as_str()),
                ("csrf_token", mine.csrf_token.as_str()),
            ],
            session.as_str(),
        ),
        (
            "another browser's form",
            vec![
                ("request", theirs.request.as_str()),
                ("csrf_token", theirs.csrf_token.as_str()),
            ],
            with_cookie.as_str(),
        ),
        ("no form at all", vec![], with_cookie.as_str()),
    ];
    for (what, fields, cookies) in attempts {
        let response = post(app, &fields, cookies).await;
        assert_eq!(response.status(), 400, "{what}");
        assert!(
            set_cookie_header(&response, "latchkey_session").is_none(),
            "{what}"
        );
        assert!(
            response.text().await.unwrap().contains("You are still"),
            "{what}"
        );
        assert!(still_signed_in(app, &session).await, "{what}");
    }
    // Stay signed in, from the page's own form, ends nothing either.
    let stay = post(
        app,
        &[
            ("request", &mine.request),
            ("csrf_token", &mine.csrf_token),
            ("decision", "stay"),
        ],
        &with_cookie,
    )
    .await;
    assert_eq!(stay.status(), 200);
    assert!(stay.text().await.unwrap().contains("Still signed in"));
    assert!(still_signed_in(app, &session).await, "stayed");
}

async fn an_id_token_of_another_session_does_not_end_this_browser_s_session(app: &TestApp) {
    let (elsewhere, mut other_tokens) = signed_in(app).await;
    let (session, mut tokens) = signed_in(app).await;
    let other_hint = other_tokens["id_token"].as_str().unwrap().to_owned();
    let page = logout(
        app,
        &[
            ("id_token_hint", &other_hint),
            ("post_logout_redirect_uri", REDIRECT),
        ],
        &session,
    )
    .await;
    assert_eq!(page.status(), 200);
    let form = confirmation(page).await;
    assert!(form.html.contains("Sign out?"));
    assert!(
        still_signed_in(app, &session).await,
        "this browser's session"
    );
    assert!(
        refreshes(app, &mut other_tokens).await,
        "nor the hint's session"
    );

    // Confirmed, the logout ends this browser's session and the client session the hint names.
    let response = post(
        app,
        &[("request", &form.request), ("csrf_token", &form.csrf_token)],
        &format!("{session}; {}", form.csrf_cookie),
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], REDIRECT);
    assert!(!still_signed_in(app, &session).await);
    assert!(
        !refreshes(app, &mut other_tokens).await,
        "the hint's session"
    );
    assert!(
        refreshes(app, &mut tokens).await,
        "not this browser's client"
    );
    assert!(
        still_signed_in(app, &elsewhere).await,
        "the other browser's own sign-in is its own to end"
    );
}

async fn an_invalid_hint_ends_no_live_session(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let page = logout(
        app,
        &[
            ("id_token_hint", "not.a.token"),
            ("post_logout_redirect_uri", REDIRECT),
        ],
        &session,
    )
    .await;
    assert_eq!(page.status(), 400);
    assert!(page.headers().get("location").is_none());
    assert!(set_cookie_header(&page, "latchkey_session").is_none());
    let form = confirmation(page).await;
    assert!(form.html.contains("id_token_hint"), "{}", form.html);
    assert!(still_signed_in(app, &session).await);
    // Nor does a return address the client did not register; the page's form returns nowhere.
    let page = logout(
        app,
        &[
            ("client_id", CLIENT),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
        &session,
    )
    .await;
    assert_eq!(page.status(), 400);
    let form = confirmation(page).await;
    assert!(still_signed_in(app, &session).await);
    let response = post(
        app,
        &[("request", &form.request), ("csrf_token", &form.csrf_token)],
        &format!("{session}; {}", form.csrf_cookie),
    )
    .await;
    assert_eq!(response.status(), 200, "signed out, sent nowhere");
    assert!(response.headers().get("location").is_none());
    assert!(!still_signed_in(app, &session).await);
}

async fn a_code_of_the_session_not_yet_redeemed_when_it_logs_out_is_refused(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let pkce = pkce();
    let redirect = authorize(app, &pkce.challenge, Some(&session)).await;
    assert_eq!(redirect.status(), 303, "signed in without the page");
    let code = code_of(&redirect);
    let response = confirmed_logout(app, &[], &session).await;
    assert_eq!(response.status(), 200, "signed out");
    let redeemed = redeem(app, &code, &pkce.verifier).await;
    assert_oauth_error(redeemed, 400, "invalid_grant").await;
}

/// An ID token is no secret: logout URLs carry it into histories and logs. Without the
/// browser it was signed in with, it returns the browser to the client and ends nothing.
async fn without_a_session_a_logout_returns_to_the_client_and_ends_no_client_session(
    app: &TestApp,
) {
    let (_, mut tokens) = signed_in(app).await;
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    let response = logout(
        app,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", REDIRECT),
            ("state", "bye"),
        ],
        "",
    )
    .await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"].to_str().unwrap(),
        format!("{REDIRECT}?state=bye")
    );
    assert!(
        refreshes(app, &mut tokens).await,
        "the client's session goes on"
    );

    // Nor does another user's browser end it, confirmed or not.
    app.add_user("mallory", PASSWORD, &["user"]).await;
    let (mallory, _) = signed_in_as(app, "mallory").await;
    let response = confirmed_logout(app, &[("id_token_hint", &hint)], &mallory).await;
    assert_eq!(
        response.status(),
        200,
        "signed out of mallory's own session"
    );
    assert!(
        refreshes(app, &mut tokens).await,
        "alice's client session goes on"
    );
}

/// Single logout: the client signed in to second through the same browser session is logged
/// out with its own hint once the browser's session has ended, even without the cookie. A
/// cookie that was logged out, though, proves nothing for another session's hint.
async fn a_hint_of_a_logged_out_browser_session_ends_its_client_session_and_a_stale_cookie_does_not(
    app: &TestApp,
) {
    let (session, mut first) = signed_in(app).await;
    let pkce = pkce();
    let again = authorize(app, &pkce.challenge, Some(&session)).await;
    let second = redeem(app, &code_of(&again), &pkce.verifier).await;
    let mut second: Value = second.json().await.unwrap();
    let (elsewhere, mut other) = signed_in(app).await;
    // Refreshing replaces the tokens, and a refresh gives no ID token: the hints first.
    let [first_hint, second_hint, other_hint] =
        [&first, &second, &other].map(|tokens| tokens["id_token"].as_str().unwrap().to_owned());

    let ended = logout(app, &[("id_token_hint", &first_hint)], &session).await;
    assert_eq!(ended.status(), 200, "signed out at once");
    assert!(!refreshes(app, &mut first).await);
    assert!(refreshes(app, &mut second).await, "not yet asked to end");

    // The logged-out cookie with another browser's hint: nothing more ends.
    logout(app, &[("id_token_hint", &other_hint)], &session).await;
    assert!(
        refreshes(app, &mut other).await,
        "a stale cookie proves nothing"
    );
    assert!(still_signed_in(app, &elsewhere).await);

    // The second client's logout, after the browser's: its hint alone ends its session.
    let response = logout(app, &[("id_token_hint", &second_hint)], "").await;
    assert_eq!(response.status(), 200);
    assert!(!refreshes(app, &mut second).await, "single logout");
}

/// Every ID token of the browser's session names it: one from an authorization that skipped
/// the page ends the session at once as well.
async fn an_id_token_from_a_later_authorization_of_the_session_ends_it_at_once(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let pkce = pkce();
    let again = authorize(app, &pkce.challenge, Some(&session)).await;
    assert_eq!(again.status(), 303, "the page is skipped");
    let code = code_of(&again);
    let tokens: Value = redeem(app, &code, &pkce.verifier)
        .await
        .json()
        .await
        .unwrap();
    let hint = tokens["id_token"].as_str().unwrap();
    let response = logout(app, &[("id_token_hint", hint)], &session).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        cookie_of(&response, "latchkey_session").as_deref(),
        Some("latchkey_session=")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("You are signed out")
    );
    assert!(!still_signed_in(app, &session).await);
}

/// A return address given twice is refused; the session goes on.
async fn a_state_longer_than_an_authorization_may_send_is_not_sent_back(app: &TestApp) {
    let (session, _) = signed_in(app).await;
    let long = "s".repeat(1025);
    let params = [
        ("client_id", CLIENT),
        ("post_logout_redirect_uri", REDIRECT),
        ("state", long.as_str()),
    ];
    let page = logout(app, &params, "").await;
    assert_eq!(page.status(), 400, "a page, not a redirect");
    let confirming = logout(app, &params, &session).await;
    assert_eq!(confirming.status(), 400, "the confirmation returns nowhere");
    let fits = "s".repeat(1024);
    let params = [
        ("client_id", CLIENT),
        ("post_logout_redirect_uri", REDIRECT),
        ("state", fits.as_str()),
    ];
    assert_eq!(logout(app, &params, "").await.status(), 303);
}

async fn a_logout_with_a_parameter_given_twice_ends_nothing(app: &TestApp) {
    let (session, tokens) = signed_in(app).await;
    let hint = tokens["id_token"].as_str().unwrap();
    let response = logout(
        app,
        &[
            ("id_token_hint", hint),
            ("post_logout_redirect_uri", REDIRECT),
            ("post_logout_redirect_uri", "https://evil.example/"),
        ],
        &session,
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("gives post_logout_redirect_uri more than once")
    );
    assert!(still_signed_in(app, &session).await);
}

on_both_stores!(
    setup = crate::setup;
    a_logout_without_a_hint_asks_the_user_and_ends_nothing,
    confirming_the_logout_ends_the_session_and_returns_to_the_client,
    a_logout_form_without_this_browser_s_csrf_token_ends_nothing,
    an_id_token_of_another_session_does_not_end_this_browser_s_session,
    an_invalid_hint_ends_no_live_session,
    a_code_of_the_session_not_yet_redeemed_when_it_logs_out_is_refused,
    without_a_session_a_logout_returns_to_the_client_and_ends_no_client_session,
    a_hint_of_a_logged_out_browser_session_ends_its_client_session_and_a_stale_cookie_does_not,
    an_id_token_from_a_later_authorization_of_the_session_ends_it_at_once,
    a_state_longer_than_an_authorization_may_send_is_not_sent_back,
    a_logout_with_a_parameter_given_twice_ends_nothing,
);

/// A store that does not answer is the service's trouble: the logout answers 503 and a page
/// that says so, never a 400 that blames the application's return address.
#[tokio::test]
async fn with_the_store_down_a_logout_is_unavailable_not_refused() {
    let mut redis = support::redis_server::RedisServer::start();
    let app = TestApp::spawn_on_redis(&redis.url(), |_| {}).await;
    setup(&app).await;
    let (session, tokens) = signed_in(&app).await;
    let hint = tokens["id_token"].as_str().unwrap().to_owned();
    redis.stop();
    let asked = logout_from_another_site(&app, &session).await;
    assert_eq!(asked.status(), 503, "{}", asked.text().await.unwrap());
    let hinted = logout(
        &app,
        &[
            ("id_token_hint", &hint),
            ("post_logout_redirect_uri", REDIRECT),
        ],
        &session,
    )
    .await;
    assert_eq!(hinted.status(), 503, "{}", hinted.text().await.unwrap());
}
