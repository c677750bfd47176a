//! `POST /admin/users/import`: users with the password hashes another system made.

use reqwest::Method;
use serde_json::json;

use super::*;

/// "correct horse" as Werkzeug 3 hashes it (pbkdf2 form, 1000 iterations).
const WERKZEUG: &str = "pbkdf2:sha256:1000$5TLlvcP1iVirdSsn$40325dcf67e0185c6699fa646de2f8c86abf7ab7ad4e60296b4513d0737c059a";

#[tokio::test]
async fn an_admin_imports_users_with_their_hashes_and_learns_which_were_refused() {
    let app = app().await;
    let token = root_token(&app).await;
    let users = json!({"users": [
        {"username": "Carol", "password_hash": WERKZEUG, "roles": ["user"]},
        {"username": "dave", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"},
        {"username": "alice", "password_hash": WERKZEUG},
        {"username": "erin", "password_hash": WERKZEUG.replace(":1000$", ":9000000$")},
    ]});
    let (status, body) = answer(
        call(
            &app,
            Method::POST,
            "/admin/users/import",
            Some(&token),
            Some(users),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["imported"], json!(["carol"]));
    let refused: Vec<(u64, &str)> = body["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_u64().unwrap(), r["username"].as_str().unwrap()))
        .collect();
    assert_eq!(refused, [(2, "dave"), (3, "alice"), (4, "erin")]);
    assert!(
        body["refused"][0]["error"]
            .as_str()
            .unwrap()
            .contains("format")
    );
    assert!(
        body["refused"][2]["error"]
            .as_str()
            .unwrap()
            .contains("costs more")
    );

    let (status, carol) =
        answer(call(&app, Method::GET, "/admin/users/carol", Some(&token), None).await).await;
    assert_eq!(status, 200);
    assert_eq!(carol["password_scheme"], "pbkdf2-sha256");
    assert!(!carol.to_string().contains("5TLlvcP1iVirdSsn"), "{carol}");
    login(&app, "carol", "correct horse").await;
    let (_, carol) =
        answer(call(&app, Method::GET, "/admin/users/carol", Some(&token), None).await).await;
    assert_eq!(carol["password_scheme"], "argon2id");
    // Nothing of a refused user was stored.
    let (status, _) =
        answer(call(&app, Method::GET, "/admin/users/dave", Some(&token), None).await).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_user_named_import_is_read_and_changed_like_any_other() {
    let app = app().await;
    app.add_user("import", "a password", &[]).await;
    let token = root_token(&app).await;
    let (status, user) =
        answer(call(&app, Method::GET, "/admin/users/import", Some(&token), None).await).await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["username"], "import");
    let (status, user) = answer(
        call(
            &app,
            Method::PATCH,
            "/admin/users/import",
            Some(&token),
            Some(json!({"disabled": true})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["disabled"], true);
    let response = call(
        &app,
        Method::POST,
        "/admin/users/import/password",
        Some(&token),
        Some(json!({"password": "a new password"})),
    )
    .await;
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn an_import_needs_an_admin_and_at_most_a_thousand_users() {
    let app = app().await;
    let alice = login(&app, "alice", "correct horse").await;
    let one = json!({"users": [{"username": "x", "password_hash": WERKZEUG}]});
    let response = call(
        &app,
        Method::POST,
        "/admin/users/import",
        alice["access_token"].as_str(),
        Some(one),
    )
    .await;
    assert!(
        matches!(response.status().as_u16(), 401 | 403),
        "{}",
        response.status()
    );
    let token = root_token(&app).await;
    let many: Vec<_> = (0..1001)
        .map(|i| json!({"username": format!("u{i}"), "password_hash": "x"}))
        .collect();
    let response = call(
        &app,
        Method::POST,
        "/admin/users/import",
        Some(&token),
        Some(json!({"users": many})),
    )
    .await;
    assert!(
        matches!(response.status().as_u16(), 400 | 413),
        "{}",
        response.status()
    );
}
