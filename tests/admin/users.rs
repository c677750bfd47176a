//! Users: create, read, list in pages, change roles, disable and enable, reset passwords.

use latchkey::domain::{GrantType, now};
use reqwest::Method;
use serde_json::json;

use super::support::{assert_oauth_error, decode_jwt};
use super::*;

#[tokio::test]
async fn an_admin_creates_reads_and_lists_users_and_never_sees_a_hash() {
    let app = app().await;
    let token = root_token(&app).await;
    let created = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&token),
        Some(json!({"username": "bob", "password": "bob's password", "roles": ["user", "ops"]})),
    )
    .await;
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["location"], "/admin/users/bob");
    let (_, body) = answer(created).await;
    assert_eq!(body["username"], "bob");
    assert_eq!(body["roles"], json!(["ops", "user"]));
    assert_eq!(body["disabled"], false);
    assert!(!body.to_string().contains("bob's password"));
    assert_no_hashes(&body);

    let (status, body) =
        answer(call(&app, Method::GET, "/admin/users/bob", Some(&token), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["username"], "bob");
    assert_no_hashes(&body);
    // The new user can log in with the password the admin set.
    login(&app, "bob", "bob's password").await;

    let (status, body) =
        answer(call(&app, Method::GET, "/admin/users", Some(&token), None).await).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "root"]);
    assert!(body.get("next").is_none(), "one page only: {body}");
    assert_no_hashes(&body);
}

#[tokio::test]
async fn users_are_listed_in_pages_that_end_without_a_next_cursor() {
    let app = app().await;
    for name in ["u1", "u2", "u3", "u4"] {
        app.add_user(name, "some password", &[]).await;
    }
    let token = root_token(&app).await;
    let mut seen = Vec::new();
    let mut path = "/admin/users?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = answer(call(&app, Method::GET, &path, Some(&token), None).await).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let users = body["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
        match body["next"].as_str() {
            Some(next) => path = format!("/admin/users?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["alice", "root", "u1", "u2", "u3", "u4"]);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn a_bad_page_size_or_cursor_is_a_json_400() {
    let app = app().await;
    let token = root_token(&app).await;
    for path in [
        "/admin/users?limit=0",
        "/admin/users?limit=501",
        "/admin/users?limit=many",
        "/admin/users?after=no%20such%20name",
        "/admin/clients?limit=0",
    ] {
        let (status, body) = answer(call(&app, Method::GET, path, Some(&token), None).await).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request", "{path}");
    }
}

#[tokio::test]
async fn an_admin_changes_roles_and_the_change_is_in_the_next_token() {
    let app = app().await;
    let token = root_token(&app).await;
    let (status, body) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/users/alice",
            Some(&token),
            Some(json!({"roles": ["auditor"]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"], json!(["auditor"]));
    let (_, claims) = decode_jwt(&access(&app.login().await));
    assert_eq!(claims["roles"], json!(["auditor"]));
}

#[tokio::test]
async fn disabling_a_user_kills_every_token_at_once_and_enabling_brings_none_back() {
    let app = app().await;
    let rs_secret = app
        .add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let tokens = app.login().await;
    let alice = access(&tokens);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let feed_start = app
        .store
        .revocations_after(None, 1000, now())
        .await
        .unwrap()
        .next_cursor;
    let root = root_token(&app).await;

    let disabled = call(
        &app,
        Method::PATCH,
        "/admin/users/alice",
        Some(&root),
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(app.userinfo(&alice).await.status(), 401);
    assert_oauth_error(app.refresh(&refresh).await, 400, "invalid_grant").await;
    assert_eq!(
        introspect(&app, &rs_secret, &alice).await,
        json!({"active": false})
    );
    assert_eq!(
        introspect(&app, &rs_secret, &refresh).await,
        json!({"active": false})
    );
    let feed = app
        .store
        .revocations_after(Some(&feed_start), 1000, now())
        .await
        .unwrap();
    let subject = feed.events.iter().find_map(|(_, event)| match event {
        latchkey::store::RevocationEvent::Subject {
            sub, not_before, ..
        } if sub == "alice" => Some(*not_before),
        _ => None,
    });
    let (_, claims) = decode_jwt(&alice);
    let not_before = subject.expect("a subject event for alice in the feed");
    assert!(
        not_before > claims["iat"].as_i64().unwrap(),
        "the feed kills the token at resource servers too"
    );

    let enabled = call(
        &app,
        Method::PATCH,
        "/admin/users/alice",
        Some(&root),
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(enabled.status(), 200);
    assert_eq!(
        app.userinfo(&alice).await.status(),
        401,
        "old access token stays dead"
    );
    assert_oauth_error(app.refresh(&refresh).await, 400, "invalid_grant").await;
    assert_eq!(
        introspect(&app, &rs_secret, &alice).await,
        json!({"active": false})
    );
    // A fresh login works at once, and its tokens live.
    let fresh = app.login().await;
    assert_eq!(app.userinfo(&access(&fresh)).await.status(), 200);
    assert_eq!(
        app.refresh(fresh["refresh_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_password_reset_revokes_every_token_and_the_new_password_works() {
    let app = app().await;
    let tokens = app.login().await;
    let root = root_token(&app).await;
    let feed_start = app
        .store
        .revocations_after(None, 1000, now())
        .await
        .unwrap()
        .next_cursor;
    // Not-before has one-second resolution; make sure the old tokens are from an earlier second.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reset = call(
        &app,
        Method::POST,
        "/admin/users/alice/password",
        Some(&root),
        Some(json!({"password": "a brand new one"})),
    )
    .await;
    assert_eq!(reset.status(), 204);
    assert_eq!(app.userinfo(&access(&tokens)).await.status(), 401);
    assert_oauth_error(
        app.refresh(tokens["refresh_token"].as_str().unwrap()).await,
        400,
        "invalid_grant",
    )
    .await;
    let feed = app
        .store
        .revocations_after(Some(&feed_start), 1000, now())
        .await
        .unwrap();
    assert!(feed.events.iter().any(|(_, e)| matches!(e, latchkey::store::RevocationEvent::Subject { sub, .. } if sub == "alice")));
    let old = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "web"),
        ])
        .await;
    assert_oauth_error(old, 400, "invalid_grant").await;
    let fresh = login(&app, "alice", "a brand new one").await;
    assert_eq!(app.userinfo(&access(&fresh)).await.status(), 200);
}

#[tokio::test]
async fn a_repeated_disable_completes_one_whose_revocation_never_happened() {
    let app = app().await;
    let alice = access(&app.login().await);
    let root = root_token(&app).await;
    // A disable that a store stall cut short after the user was stored as disabled, before its
    // tokens were revoked (the caller was answered 503).
    let name = latchkey::domain::Username::parse("alice").unwrap();
    let subject = latchkey::store::Subject::User(name.clone());
    let mut user = app.store.get_user(&name).await.unwrap().unwrap();
    user.disabled = true;
    app.store.update_user(&user).await.unwrap();
    assert_eq!(
        app.store.subject_not_before(&subject, now()).await.unwrap(),
        None
    );

    // The retry answers as the first would have, and revokes.
    let retried = call(
        &app,
        Method::PATCH,
        "/admin/users/alice",
        Some(&root),
        Some(json!({"disabled": true})),
    )
    .await;
    let (status, body) = answer(retried).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["disabled"], true);
    let not_before = app
        .store
        .subject_not_before(&subject, now())
        .await
        .unwrap()
        .expect("the user's tokens are revoked");
    let (_, claims) = decode_jwt(&alice);
    assert!(not_before > claims["iat"].as_i64().unwrap());
}

/// `n` distinct names of exactly `len` characters.
fn names(prefix: &str, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:0>width$}", width = len - prefix.len()))
        .collect()
}

#[tokio::test]
async fn roles_are_bounded_so_that_every_token_of_the_user_is_one_the_issuer_accepts() {
    let app = app().await;
    let token = root_token(&app).await;
    let roles = names("r", 32, 64);
    let create = |name: &str, roles: &[String]| json!({"username": name, "password": "long enough", "roles": roles});
    let created = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&token),
        Some(create(&"u".repeat(64), &roles)),
    )
    .await;
    assert_eq!(created.status(), 201, "32 roles of 64 characters are fine");

    let one_more = [roles.clone(), vec!["extra".into()]].concat();
    let long = vec!["r".repeat(65)];
    let mut refusals = Vec::new();
    for roles in [&one_more, &long] {
        refusals.push(
            call(
                &app,
                Method::POST,
                "/admin/users",
                Some(&token),
                Some(create("bob", roles)),
            )
            .await,
        );
        refusals.push(
            call(
                &app,
                Method::PATCH,
                "/admin/users/alice",
                Some(&token),
                Some(json!({ "roles": roles })),
            )
            .await,
        );
    }
    for refused in refusals {
        let body = assert_oauth_error(refused, 400, "invalid_request").await;
        let description = body["error_description"].as_str().unwrap_or_default();
        assert!(
            description.contains("roles")
                && (description.contains("32") || description.contains("64")),
            "a clear reason: {body}"
        );
    }
    // Nothing refused was stored.
    let (status, _) =
        answer(call(&app, Method::GET, "/admin/users/bob", Some(&token), None).await).await;
    assert_eq!(status, 404);
    let (_, alice) =
        answer(call(&app, Method::GET, "/admin/users/alice", Some(&token), None).await).await;
    assert_eq!(alice["roles"], json!(["user"]));
    // A name one character too long is refused too.
    let too_long = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&token),
        Some(create(&"u".repeat(65), &[])),
    )
    .await;
    let body = assert_oauth_error(too_long, 400, "invalid_request").await;
    assert!(body.to_string().contains("64"), "{body}");
}

#[tokio::test]
async fn the_admin_api_takes_a_username_in_any_case_and_refuses_path_segments() {
    let app = app().await;
    let root = root_token(&app).await;
    let (status, body) =
        answer(call(&app, Method::GET, "/admin/users/ALICE", Some(&root), None).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["username"], "alice");
    let create = |name: &str| json!({"username": name, "password": "long enough"});
    let taken = call(
        &app,
        Method::POST,
        "/admin/users",
        Some(&root),
        Some(create("Alice")),
    )
    .await;
    assert_oauth_error(taken, 409, "conflict").await;
    for name in [".", "..", "-x"] {
        let refused = call(
            &app,
            Method::POST,
            "/admin/users",
            Some(&root),
            Some(create(name)),
        )
        .await;
        assert_oauth_error(refused, 400, "invalid_request").await;
    }
}
