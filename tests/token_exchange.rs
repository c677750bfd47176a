//! RFC 8693 token exchange (design §10): a service that holds a user's access token trades it
//! for a narrower one naming the service as the actor. Scope and audience only narrow, chains
//! nest `act`, no refresh token is issued, and the subject's session and every client the token
//! went through keep their power to revoke it. Each test runs on the embedded store and on
//! Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[macro_use]
mod support;

#[path = "token_exchange/audit.rs"]
mod audit;

use latchkey::domain::GrantType;
use serde_json::{Value, json};
use support::redis_server::RedisServer;
use support::{TestApp, assert_oauth_error, decode_jwt};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

on_both_stores!(
    an_exchanged_token_keeps_the_user_and_session_and_names_the_exchanging_client_as_actor,
    a_chain_of_two_exchanges_nests_the_earlier_actor_inside_the_newer,
    a_narrower_scope_is_granted_and_a_wider_one_is_invalid_scope,
    an_audience_the_exchanging_client_may_not_use_is_invalid_target,
    a_token_for_the_admin_api_is_never_exchanged,
    revoked_expired_and_refresh_tokens_are_no_subject_tokens,
    a_client_without_the_grant_is_unauthorized_and_a_public_one_cannot_have_it,
    missing_and_unsupported_token_types_are_invalid_request,
    logging_out_of_the_subjects_session_ends_the_exchanged_token,
    a_service_holding_an_exchanged_token_cannot_log_the_user_out,
    removing_the_client_the_chain_began_with_ends_the_exchanged_token,
    removing_the_exchanging_client_ends_the_exchanged_token,
    an_actor_token_of_the_exchanging_client_makes_it_the_actor,
    another_clients_token_is_no_actor_token,
);

const PASSWORD: &str = "correct horse";

/// `gateway` (confidential, password + refresh) signs users in; `orders` and `payments` may
/// exchange. Returns the secrets of (gateway, orders, payments).
async fn services(app: &TestApp) -> (String, String, String) {
    app.add_user("alice", PASSWORD, &["user"]).await;
    let gateway = app
        .add_client(
            "gateway",
            false,
            &[GrantType::Password, GrantType::RefreshToken],
            &["orders:read", "orders:write", "payments:charge", "profile"],
            &[],
        )
        .await
        .unwrap();
    let orders = app
        .add_client(
            "orders",
            false,
            &[GrantType::TokenExchange, GrantType::ClientCredentials],
            &["orders:read", "orders:write", "payments:charge"],
            &["orders-api", "payments-api"],
        )
        .await
        .unwrap();
    let payments = app
        .add_client(
            "payments",
            false,
            &[GrantType::TokenExchange],
            &["payments:charge"],
            &["ledger-api"],
        )
        .await
        .unwrap();
    (gateway, orders, payments)
}

/// alice's token response through `gateway`.
async fn sign_in(app: &TestApp, gateway: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("gateway", Some(gateway))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "alice signs in");
    response.json().await.unwrap()
}

async fn exchange(
    app: &TestApp,
    client: &str,
    secret: &str,
    subject: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", ACCESS_TOKEN_TYPE),
    ];
    form.extend_from_slice(extra);
    app.http
        .post(app.url("/oauth/token"))
        .basic_auth(client, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// The body of a successful exchange, checked for what every one carries.
async fn exchanged(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200, "exchange succeeds");
    assert_eq!(
        response.headers()["cache-control"].to_str().unwrap(),
        "no-store"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(body["token_type"], "Bearer");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token: {body}"
    );
    body
}

fn access(body: &Value) -> &str {
    body["access_token"].as_str().expect("access_token")
}

async fn active(app: &TestApp, secret: &str, token: &str) -> bool {
    app.introspect_as("orders", secret, token).await["active"]
        .as_bool()
        .unwrap()
}

async fn an_exchanged_token_keeps_the_user_and_session_and_names_the_exchanging_client_as_actor(
    app: &TestApp,
) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let (_, subject) = decode_jwt(access(&signed_in));
    let body = exchanged(
        exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[("audience", "orders-api")],
        )
        .await,
    )
    .await;
    let (header, claims) = decode_jwt(access(&body));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["user"]));
    assert_eq!(claims["sid"], subject["sid"], "the subject's session");
    assert!(claims["sid"].is_string());
    assert_eq!(claims["client_id"], "orders");
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["act"], json!({"sub": "orders"}));
    assert_eq!(claims["subject_client_id"], "gateway");
    assert_eq!(
        claims["scope"], "orders:read orders:write payments:charge",
        "all that the subject token and the client share"
    );
    assert!(claims["exp"].as_i64().unwrap() <= subject["exp"].as_i64().unwrap());
    assert!(active(app, &orders, access(&body)).await);
    let metadata = app.metadata().await;
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(EXCHANGE)), "{grants:?}");
    // Without `audience`, the default one, as the other grants choose it.
    let body = exchanged(exchange(app, "orders", &orders, access(&signed_in), &[]).await).await;
    assert_eq!(
        decode_jwt(access(&body)).1["aud"],
        app.settings.tokens.audience
    );
}

async fn a_chain_of_two_exchanges_nests_the_earlier_actor_inside_the_newer(app: &TestApp) {
    let (gateway, orders, payments) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let first = exchanged(
        exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[("audience", "payments-api"), ("scope", "payments:charge")],
        )
        .await,
    )
    .await;
    let second = exchanged(
        exchange(
            app,
            "payments",
            &payments,
            access(&first),
            &[("audience", "ledger-api")],
        )
        .await,
    )
    .await;
    let (_, claims) = decode_jwt(access(&second));
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["client_id"], "payments");
    assert_eq!(
        claims["act"],
        json!({"sub": "payments", "act": {"sub": "orders"}})
    );
    assert_eq!(
        claims["subject_client_id"], "gateway",
        "where the chain began"
    );
    assert_eq!(claims["scope"], "payments:charge");
    let introspected = app.introspect_as("orders", &orders, access(&second)).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["act"], claims["act"], "RFC 8693 §4.1");
    // latchkey-verify reads the chain, the newest actor first.
    let verifier = latchkey_verify::Verifier::builder(&app.address, "ledger-api")
        .feed_client("orders", &orders)
        .connect()
        .await
        .unwrap();
    let verified = verifier.verify(access(&second)).await.unwrap();
    assert_eq!(verified.actors, ["payments", "orders"]);
    assert!(verified.require_actor("payments").is_ok());
    assert!(verified.require_actor("orders").is_err());
}

async fn a_narrower_scope_is_granted_and_a_wider_one_is_invalid_scope(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let narrow = exchanged(
        exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[("scope", "orders:read")],
        )
        .await,
    )
    .await;
    assert_eq!(narrow["scope"], "orders:read");
    // `profile` is the subject token's but not the client's; `orders:write` is both, but the
    // narrowed token no longer holds it.
    for (subject, scope) in [
        (access(&signed_in), "orders:read profile"),
        (access(&narrow), "orders:read orders:write"),
        (access(&signed_in), "admin"),
    ] {
        let response = exchange(app, "orders", &orders, subject, &[("scope", scope)]).await;
        assert_oauth_error(response, 400, "invalid_scope").await;
    }
}

async fn an_audience_the_exchanging_client_may_not_use_is_invalid_target(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    for (name, audience) in [
        ("audience", "ledger-api"),
        ("resource", "ledger-api"),
        ("audience", "latchkey-admin"),
    ] {
        let response = exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[(name, audience)],
        )
        .await;
        assert_oauth_error(response, 400, "invalid_target").await;
    }
}

async fn a_token_for_the_admin_api_is_never_exchanged(app: &TestApp) {
    let (_, orders, _) = services(app).await;
    app.with_admin_console().await;
    app.add_user("root", PASSWORD, &["admin"]).await;
    let admin = app.admin_token("root", PASSWORD).await;
    let response = exchange(app, "orders", &orders, &admin, &[]).await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains("admin API"), "{description}");
}

async fn revoked_expired_and_refresh_tokens_are_no_subject_tokens(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let refresh = signed_in["refresh_token"].as_str().unwrap();
    let response = exchange(app, "orders", &orders, refresh, &[]).await;
    assert_oauth_error(response, 400, "invalid_request").await;

    let revoked = sign_in(app, &gateway).await;
    let answer = app
        .http
        .post(app.url("/oauth/revoke"))
        .basic_auth("gateway", Some(&gateway))
        .form(&[("token", access(&revoked))])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let response = exchange(app, "orders", &orders, access(&revoked), &[]).await;
    assert_oauth_error(response, 400, "invalid_request").await;

    // Expired: signed by the service's own key, with `exp` in the past.
    let (_, mut claims) = decode_jwt(access(&signed_in));
    claims["exp"] = json!(claims["iat"].as_i64().unwrap() - 1);
    claims["iat"] = json!(claims["iat"].as_i64().unwrap() - 100);
    claims["nbf"] = claims["iat"].clone();
    let keys = app.keys();
    let expired =
        latchkey::tokens::sign(keys.signer(), latchkey::tokens::TokenKind::Access, &claims)
            .unwrap();
    let response = exchange(app, "orders", &orders, &expired, &[]).await;
    let body = assert_oauth_error(response, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    let response = exchange(app, "orders", &orders, "not-a-token", &[]).await;
    assert_oauth_error(response, 400, "invalid_request").await;
}

async fn a_client_without_the_grant_is_unauthorized_and_a_public_one_cannot_have_it(app: &TestApp) {
    let (gateway, _, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let response = exchange(app, "gateway", &gateway, access(&signed_in), &[]).await;
    assert_oauth_error(response, 400, "unauthorized_client").await;

    let spec = latchkey::accounts::ClientSpec {
        public: true,
        grants: [GrantType::TokenExchange].into_iter().collect(),
        scopes: vec![],
        ..Default::default()
    };
    let refused = latchkey::accounts::add_client(&app.change(), "kiosk", spec).await;
    assert!(refused.is_err(), "a public client may not have the grant");
    app.add_client("web", true, &[GrantType::Password], &["read"], &[])
        .await;
    let response = app
        .token(&[
            ("grant_type", EXCHANGE),
            ("client_id", "web"),
            ("subject_token", access(&signed_in)),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ])
        .await;
    assert_oauth_error(response, 400, "unauthorized_client").await;
}

async fn missing_and_unsupported_token_types_are_invalid_request(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let token = access(&signed_in);
    let cases: [&[(&str, &str)]; 4] = [
        &[("grant_type", EXCHANGE), ("subject_token", token)],
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
        ],
        &[
            ("grant_type", EXCHANGE),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
        ],
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", token),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
        ],
    ];
    for form in cases {
        let response = app
            .http
            .post(app.url("/oauth/token"))
            .basic_auth("orders", Some(&orders))
            .form(form)
            .send()
            .await
            .unwrap();
        assert_oauth_error(response, 400, "invalid_request").await;
    }
}

async fn logging_out_of_the_subjects_session_ends_the_exchanged_token(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let body = exchanged(exchange(app, "orders", &orders, access(&signed_in), &[]).await).await;
    assert!(active(app, &orders, access(&body)).await);
    let response = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(access(&signed_in))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204, "logout succeeds");
    assert!(!active(app, &orders, access(&body)).await);
}

async fn a_service_holding_an_exchanged_token_cannot_log_the_user_out(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let body = exchanged(exchange(app, "orders", &orders, access(&signed_in), &[]).await).await;
    let response = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(access(&body))
        .send()
        .await
        .unwrap();
    assert_oauth_error(response, 403, "access_denied").await;
    // The user's session with the gateway goes on.
    let refresh = signed_in["refresh_token"].as_str().unwrap();
    let refreshed = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("gateway", Some(&gateway))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
}

async fn remove(app: &TestApp, client: &str) {
    latchkey::accounts::delete_client(&app.change(), &app.settings.tokens, client)
        .await
        .expect("removed");
}

/// Asserts the token is dead at introspection (asked by `asker`) and in latchkey-verify, which
/// learns of it from the feed.
async fn assert_dead(app: &TestApp, asker: (&str, &str), token: &str) {
    let answer = app.introspect_as(asker.0, asker.1, token).await;
    assert_eq!(answer["active"], false, "introspection: {answer}");
    let verifier = latchkey_verify::Verifier::builder(&app.address, "orders-api")
        .feed_client(asker.0, asker.1)
        .connect()
        .await
        .unwrap();
    assert_eq!(
        verifier.verify(token).await.err(),
        Some(latchkey_verify::VerifyError::Revoked)
    );
}

async fn removing_the_client_the_chain_began_with_ends_the_exchanged_token(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let body = exchanged(
        exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[("audience", "orders-api")],
        )
        .await,
    )
    .await;
    assert!(active(app, &orders, access(&body)).await);
    remove(app, "gateway").await;
    assert_dead(app, ("orders", &orders), access(&body)).await;
}

async fn removing_the_exchanging_client_ends_the_exchanged_token(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let watcher = app
        .add_client("watcher", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let signed_in = sign_in(app, &gateway).await;
    let body = exchanged(
        exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[("audience", "orders-api")],
        )
        .await,
    )
    .await;
    remove(app, "orders").await;
    assert_dead(app, ("watcher", &watcher), access(&body)).await;
    // The subject token itself went through gateway only, and lives on.
    assert_eq!(
        app.introspect_as("watcher", &watcher, access(&signed_in))
            .await["active"],
        true
    );
}

/// `orders`' own client_credentials token as the actor token: the actor is `orders`, as
/// without one. A user's token, or one without its type, is no actor token.
async fn an_actor_token_of_the_exchanging_client_makes_it_the_actor(app: &TestApp) {
    let (gateway, orders, _) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let own = client_token(app, "orders", &orders).await;
    let body = exchanged(
        exchange(
            app,
            "orders",
            &orders,
            access(&signed_in),
            &[
                ("actor_token", access(&own)),
                ("actor_token_type", ACCESS_TOKEN_TYPE),
            ],
        )
        .await,
    )
    .await;
    let (_, claims) = decode_jwt(access(&body));
    assert_eq!(claims["act"], json!({"sub": "orders"}));
    assert_eq!(claims["client_id"], "orders");
    let response = exchange(
        app,
        "orders",
        &orders,
        access(&signed_in),
        &[
            ("actor_token", access(&signed_in)),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await;
    assert_oauth_error(response, 400, "invalid_request").await;
    let response = exchange(
        app,
        "orders",
        &orders,
        access(&signed_in),
        &[("actor_token", access(&own))],
    )
    .await;
    assert_oauth_error(response, 400, "invalid_request").await;
}

/// `orders` calls `payments` with its own token as a bearer. `payments` may not use that token
/// as an actor token: the exchanged token would name `orders` as the actor, and a resource
/// server requiring `orders` would take a token `orders` never asked for.
async fn another_clients_token_is_no_actor_token(app: &TestApp) {
    let (gateway, orders, payments) = services(app).await;
    let signed_in = sign_in(app, &gateway).await;
    let presented = client_token(app, "orders", &orders).await;
    let response = exchange(
        app,
        "payments",
        &payments,
        access(&signed_in),
        &[
            ("actor_token", access(&presented)),
            ("actor_token_type", ACCESS_TOKEN_TYPE),
        ],
    )
    .await;
    assert_oauth_error(response, 400, "invalid_request").await;
}

/// A client's own client_credentials token response.
async fn client_token(app: &TestApp, client_id: &str, secret: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}
