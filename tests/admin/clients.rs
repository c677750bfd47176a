//! Clients: register (secret shown once), list in pages, rotate the secret, update, delete;
//! and the whole admin API in the OpenAPI document.

use latchkey::domain::GrantType;
use reqwest::Method;
use serde_json::{Value, json};

use super::support::{assert_oauth_error, decode_jwt};
use super::*;

#[tokio::test]
async fn a_registered_client_s_secret_is_shown_once_and_works() {
    let app = app().await;
    let root = root_token(&app).await;
    let created = call(
        &app,
        Method::POST,
        "/admin/clients",
        Some(&root),
        Some(json!({"client_id": "reports", "scopes": ["read"], "audiences": ["billing"]})),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/admin/clients/reports");
    assert_eq!(created.headers()["cache-control"], "no-store");
    let (_, body) = answer(created).await;
    assert_eq!(body["client_id"], "reports");
    assert_eq!(body["public"], false);
    assert_eq!(body["grants"], json!(["client_credentials"]));
    assert_eq!(body["scopes"], json!(["read"]));
    assert_eq!(body["audiences"], json!(["billing"]));
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43);

    for path in ["/admin/clients/reports", "/admin/clients"] {
        let (status, shown) = answer(call(&app, Method::GET, path, Some(&root), None).await).await;
        assert_eq!(status, 200);
        assert!(
            !shown.to_string().contains(&secret),
            "{path} shows the secret again"
        );
        assert!(shown.get("client_secret").is_none());
        assert_no_hashes(&shown);
    }
    let response = client_credentials(&app, "reports", &secret).await;
    assert_eq!(response.status(), 200);
    let (_, claims) = decode_jwt(&access(&response.json().await.unwrap()));
    assert_eq!(claims["scope"], "read");
    let billing = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("reports", Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", "billing"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(billing.status(), 200);
}

#[tokio::test]
async fn clients_are_listed_in_pages() {
    let app = app().await;
    for id in ["c1", "c2", "c3"] {
        app.add_client(id, false, &[GrantType::ClientCredentials], &[], &[])
            .await;
    }
    let root = root_token(&app).await;
    let (_, first) = answer(
        call(
            &app,
            Method::GET,
            "/admin/clients?limit=2",
            Some(&root),
            None,
        )
        .await,
    )
    .await;
    let ids = |page: &Value| -> Vec<String> {
        page["clients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["client_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["admin-console", "c1"]);
    let next_page = |page: Value| {
        let next = page["next"].as_str().unwrap().to_owned();
        let root = root.clone();
        let app = &app;
        async move {
            answer(
                call(
                    app,
                    Method::GET,
                    &format!("/admin/clients?limit=2&after={next}"),
                    Some(&root),
                    None,
                )
                .await,
            )
            .await
            .1
        }
    };
    let second = next_page(first).await;
    assert_eq!(ids(&second), ["c2", "c3"]);
    let third = next_page(second).await;
    assert_eq!(ids(&third), ["web"]);
    assert!(third.get("next").is_none(), "{third}");
    assert_eq!(third["clients"][0]["public"], true);
    assert_eq!(
        third["clients"][0]["grants"],
        json!(["password", "refresh_token"])
    );
}

#[tokio::test]
async fn a_rotated_secret_replaces_the_old_one_at_once() {
    let app = app().await;
    let old = app
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let root = root_token(&app).await;
    let (status, body) = answer(
        call(
            &app,
            Method::POST,
            "/admin/clients/svc/secret",
            Some(&root),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["client_id"], "svc");
    let new = body["client_secret"].as_str().unwrap();
    assert_ne!(new, old);
    assert_oauth_error(
        client_credentials(&app, "svc", &old).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(client_credentials(&app, "svc", new).await.status(), 200);
}

#[tokio::test]
async fn a_deleted_client_cannot_get_tokens_and_its_own_tokens_die() {
    let app = app().await;
    let rs_secret = app
        .add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let secret = app
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let token = access(
        &client_credentials(&app, "svc", &secret)
            .await
            .json()
            .await
            .unwrap(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let root = root_token(&app).await;
    let response = call(
        &app,
        Method::DELETE,
        "/admin/clients/svc",
        Some(&root),
        None,
    )
    .await;
    assert_eq!(response.status(), 204);
    assert_oauth_error(
        client_credentials(&app, "svc", &secret).await,
        401,
        "invalid_client",
    )
    .await;
    assert_eq!(
        call(&app, Method::GET, "/admin/clients/svc", Some(&root), None)
            .await
            .status(),
        404
    );
    assert_eq!(
        introspect(&app, &rs_secret, &token).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn a_client_update_replaces_its_grants_scopes_and_audiences() {
    let app = app().await;
    let secret = app
        .add_client(
            "svc",
            false,
            &[GrantType::ClientCredentials],
            &["read", "write"],
            &[],
        )
        .await
        .unwrap();
    let root = root_token(&app).await;
    let (status, body) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/clients/svc",
            Some(&root),
            Some(json!({"scopes": ["read"], "audiences": ["billing"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scopes"], json!(["read"]));
    assert_eq!(body["audiences"], json!(["billing"]));
    assert_eq!(
        body["grants"],
        json!(["client_credentials"]),
        "grants left out stay"
    );
    let write = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "write")])
        .send()
        .await
        .unwrap();
    assert_oauth_error(write, 400, "invalid_scope").await;
    let billing = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("audience", "billing"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(billing.status(), 200);

    // Taking the refresh grant away from `web` ends its users' sessions' renewals.
    let tokens = app.login().await;
    let patched = call(
        &app,
        Method::PATCH,
        "/admin/clients/web",
        Some(&root),
        Some(json!({"grants": ["password"]})),
    )
    .await;
    assert_eq!(patched.status(), 200);
    assert_oauth_error(
        app.refresh(tokens["refresh_token"].as_str().unwrap()).await,
        400,
        "unauthorized_client",
    )
    .await;
}

#[tokio::test]
async fn every_admin_endpoint_is_in_the_openapi_document() {
    let app = app().await;
    let document: Value = app
        .http
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = &document["paths"];
    for (path, methods) in [
        ("/admin/users", &["get", "post"][..]),
        ("/admin/users/{username}", &["get", "patch"]),
        ("/admin/users/{username}/password", &["post"]),
        ("/admin/clients", &["get", "post"]),
        ("/admin/clients/{client_id}", &["get", "patch", "delete"]),
        ("/admin/clients/{client_id}/secret", &["post"]),
    ] {
        for method in methods {
            let operation = &paths[path][method];
            assert!(operation.is_object(), "{method} {path} documented");
            for status in ["401", "403"] {
                assert!(
                    operation["responses"][status].is_object(),
                    "{method} {path} documents {status}"
                );
            }
            assert!(
                operation["security"].is_array(),
                "{method} {path} needs a bearer token"
            );
        }
    }
}

/// `n` distinct names of exactly `len` characters.
fn names(prefix: &str, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:0>width$}", width = len - prefix.len()))
        .collect()
}

#[tokio::test]
async fn scopes_and_audiences_are_bounded_in_number_and_length() {
    let app = app().await;
    let token = root_token(&app).await;
    let scopes = names("s", 32, 64);
    let audiences = names("https://a", 32, 256);
    let created = call(
        &app,
        Method::POST,
        "/admin/clients",
        Some(&token),
        Some(json!({
            "client_id": "c".repeat(64),
            "grants": ["client_credentials"],
            "scopes": scopes,
            "audiences": audiences,
        })),
    )
    .await;
    assert_eq!(created.status(), 201, "the limits themselves are fine");

    let one_more_scope = [scopes.clone(), vec!["extra".into()]].concat();
    let one_more_audience = [audiences.clone(), vec!["https://extra".into()]].concat();
    let refused = [
        json!({"scopes": one_more_scope}),
        json!({"scopes": ["s".repeat(65)]}),
        json!({"audiences": one_more_audience}),
        json!({"audiences": ["a".repeat(257)]}),
        json!({"audiences": ["my api"]}),
        json!({"audiences": ["a\"b"]}),
    ];
    for change in refused {
        let mut new = json!({"client_id": "over", "grants": ["client_credentials"]});
        for (key, value) in change.as_object().unwrap() {
            new[key] = value.clone();
        }
        for (method, path, body) in [
            (Method::POST, "/admin/clients", new),
            (Method::PATCH, "/admin/clients/web", change.clone()),
        ] {
            let response = call(&app, method.clone(), path, Some(&token), Some(body)).await;
            let body = assert_oauth_error(response, 400, "invalid_request").await;
            let description = body["error_description"].as_str().unwrap_or_default();
            assert!(
                ["32", "64", "256", "audience"]
                    .iter()
                    .any(|s| description.contains(s)),
                "{method} {path}: a clear reason: {body}"
            );
        }
    }
    let (status, _) =
        answer(call(&app, Method::GET, "/admin/clients/over", Some(&token), None).await).await;
    assert_eq!(status, 404, "nothing refused was stored");
    let (_, web) =
        answer(call(&app, Method::GET, "/admin/clients/web", Some(&token), None).await).await;
    assert_eq!(web["scopes"], json!(["read", "write"]));
    assert_eq!(web["audiences"], json!([]));
}

#[tokio::test]
async fn client_audiences_are_validated_like_the_configured_ones() {
    let app = app().await;
    let root = root_token(&app).await;
    let issuer = app.settings.issuer.clone();
    let refused = [
        json!(["a b"]),
        json!(["line\nbreak"]),
        json!([issuer]),
        json!([format!("{issuer}/")]),
        json!([format!("{issuer}/oauth/token")]),
        json!([format!("{issuer}/oauth/introspect/")]),
        json!([format!("{issuer}/oauth/revoke")]),
        json!(["latchkey-admin"]),
    ];
    for (i, audiences) in refused.iter().enumerate() {
        let created = call(
            &app,
            Method::POST,
            "/admin/clients",
            Some(&root),
            Some(json!({"client_id": format!("c{i}"), "audiences": audiences})),
        )
        .await;
        assert_oauth_error(created, 400, "invalid_request").await;
        let updated = call(
            &app,
            Method::PATCH,
            "/admin/clients/web",
            Some(&root),
            Some(json!({ "audiences": audiences })),
        )
        .await;
        assert_oauth_error(updated, 400, "invalid_request").await;
    }
    let (_, web) =
        answer(call(&app, Method::GET, "/admin/clients/web", Some(&root), None).await).await;
    assert_eq!(web["audiences"], json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn an_admin_cannot_remove_the_client_their_own_session_came_through() {
    let app = app().await;
    let root = root_token(&app).await;
    let (_, claims) = decode_jwt(&root);
    let own = claims["client_id"].as_str().expect("client_id").to_owned();
    let removed = call(
        &app,
        Method::DELETE,
        &format!("/admin/clients/{own}"),
        Some(&root),
        None,
    )
    .await;
    assert_oauth_error(removed, 409, "conflict").await;
    let (status, _) =
        answer(call(&app, Method::GET, "/admin/users", Some(&root), None).await).await;
    assert_eq!(status, 200, "the session goes on");
}

#[tokio::test]
async fn a_client_registered_with_public_keys_gets_no_secret_and_private_keys_are_refused() {
    let app = app().await;
    let root = root_token(&app).await;
    let (key, _) =
        latchkey::keys::SigningKey::generate(latchkey::keys::Algorithm::EdDSA, 0).expect("key");
    let public = json!({"keys": [key.jwk()]});
    let create = |body: Value| {
        call(
            &app,
            Method::POST,
            "/admin/clients",
            Some(&root),
            Some(body),
        )
    };
    let (status, body) = answer(create(json!({"client_id": "signer", "jwks": public})).await).await;
    assert_eq!(status, 201, "{body}");
    assert!(body.get("client_secret").is_none(), "no secret: {body}");
    assert_eq!(body["public"], false);
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(body["jwks"], public);

    let mut leaked = public.clone();
    leaked["keys"][0]["d"] = json!("AAAA");
    let uri = "https://keys.example.com/jwks.json";
    for (case, body) in [
        (
            "a private key",
            json!({"client_id": "leaky", "jwks": leaked}),
        ),
        (
            "a symmetric key",
            json!({"client_id": "hmac", "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        (
            "http elsewhere",
            json!({"client_id": "plain", "jwks_uri": "http://keys.example.com/jwks"}),
        ),
        (
            "both",
            json!({"client_id": "both", "jwks": public, "jwks_uri": uri}),
        ),
        (
            "a public client",
            json!({"client_id": "spa", "public": true, "grants": ["password"], "jwks": public}),
        ),
    ] {
        let (status, refused) = answer(create(body).await).await;
        assert_eq!(status, 400, "{case}: {refused}");
        assert_eq!(refused["error"], "invalid_request", "{case}");
    }
    let (status, body) =
        answer(create(json!({"client_id": "fetched", "jwks_uri": uri})).await).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["jwks_uri"], uri);

    // Keys are replaced on a client with keys, and replace the secret of one with a secret.
    let (status, _) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/clients/signer",
            Some(&root),
            Some(json!({"jwks_uri": uri})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200);
    app.add_client(
        "secretive",
        false,
        &[GrantType::ClientCredentials],
        &[],
        &[],
    )
    .await;
    let (status, body) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/clients/secretive",
            Some(&root),
            Some(json!({"jwks": public})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "private_key_jwt");
}
