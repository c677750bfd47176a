//! Sign-in in a browser across replicas: three instances of the real binary on one Redis,
//! each request of the flow sent to another one. The client is registered with the CLI
//! (`clients add --redirect-uri --first-party`) while they run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::assert_oauth_error;
use support::process::{Service, Workdir};
use support::redis_server::RedisServer;
use support::sign_in::{cookie_of, hidden, pkce};

const REDIRECT: &str = "http://127.0.0.1:9/callback";
const ISSUER: &str = "http://latchkey.test";

fn code_of(response: &reqwest::Response) -> String {
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert!(params.contains(&("iss".to_owned(), ISSUER.to_owned())));
    params
        .into_iter()
        .find(|(n, _)| n == "code")
        .map(|(_, v)| v)
        .expect("a code")
}

async fn authorize(
    http: &reqwest::Client,
    replica: &Service,
    challenge: &str,
    cookie: Option<&str>,
) -> reqwest::Response {
    let mut request = http.get(replica.url("/oauth/authorize")).query(&[
        ("response_type", "code"),
        ("client_id", "spa"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ]);
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    request.send().await.unwrap()
}

async fn redeem(
    http: &reqwest::Client,
    replica: &Service,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    http.post(replica.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", "spa"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_from_one_replica_signs_in_on_another_and_the_session_and_its_logout_reach_all() {
    let redis = RedisServer::start();
    let dir = Workdir::new()
        .env("LATCHKEY_STORE__BACKEND", "redis")
        .env("LATCHKEY_STORE__URL", &redis.url())
        .env("LATCHKEY_ISSUER", ISSUER);
    let replicas: Vec<Service> = (0..3).map(|_| dir.serve()).collect();
    let client = dir.run(&[
        "clients",
        "add",
        "spa",
        "--public",
        "--redirect-uri",
        REDIRECT,
        "--first-party",
    ]);
    assert!(client.success(), "{}", client.failure());
    let shown = dir.run(&["clients", "show", "spa"]).json();
    assert_eq!(shown["redirect_uris"], serde_json::json!([REDIRECT]));
    assert_eq!(shown["first_party"], true);
    let user = dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("correct horse battery\n"),
    );
    assert!(user.success(), "{}", user.failure());
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let pair = pkce();
    let (verifier, challenge) = (pair.verifier, pair.challenge);

    // The page from replica 0, the form posted to replica 1, the code redeemed at replica 2.
    let page = authorize(&http, &replicas[0], &challenge, None).await;
    assert_eq!(page.status(), 200);
    let csrf = cookie_of(&page, "__Host-latchkey_csrf").unwrap();
    let html = page.text().await.unwrap();
    let signed_in = http
        .post(replicas[1].url("/oauth/authorize"))
        .header("cookie", csrf)
        .form(&[
            ("request", hidden(&html, "request")),
            ("csrf_token", hidden(&html, "csrf_token")),
            ("username", "alice".to_owned()),
            ("password", "correct horse battery".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    let session = cookie_of(&signed_in, "__Host-latchkey_session").unwrap();
    let code = code_of(&signed_in);
    let tokens = redeem(&http, &replicas[2], &code, &verifier).await;
    assert_eq!(tokens.status(), 200);
    let tokens: serde_json::Value = tokens.json().await.unwrap();
    // The code is spent for every replica.
    assert_oauth_error(
        redeem(&http, &replicas[0], &code, &verifier).await,
        400,
        "invalid_grant",
    )
    .await;

    // The session skips the page on another replica...
    let again = authorize(&http, &replicas[2], &challenge, Some(&session)).await;
    assert!(!code_of(&again).is_empty());

    // ...until a logout on one replica ends it for all.
    let logout = http
        .get(replicas[0].url("/oauth/logout"))
        .query(&[("id_token_hint", tokens["id_token"].as_str().unwrap())])
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    for replica in &replicas {
        let after = authorize(&http, replica, &challenge, Some(&session)).await;
        assert_eq!(after.status(), 200, "the sign-in page again");
    }
}
