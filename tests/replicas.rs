//! A fleet on one Redis behaves as one issuer: three `latchkey` processes share families, the
//! revocation list and users; a Redis outage is answered with 503 and recovered from without a
//! restart; the full flow runs on Redis Cluster.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use latchkey::domain::GrantType;
use serde_json::Value;
use support::process::{Service, Workdir};
use support::redis_server::{RedisCluster, RedisServer, RedisServerOptions};
use support::{TestApp, assert_oauth_error};

/// Three replicas of the service on Redis at `url`, sharing one key directory, with a public
/// client `web` and user `alice` created through the CLI.
fn fleet(url: &str) -> (Workdir, Vec<Service>) {
    let dir = Workdir::new()
        .env("LATCHKEY_STORE__BACKEND", "redis")
        .env("LATCHKEY_STORE__URL", url)
        .env("LATCHKEY_ISSUER", "http://latchkey.test");
    let replicas: Vec<Service> = (0..3).map(|_| dir.serve()).collect();
    let client = dir.run(&[
        "clients",
        "add",
        "web",
        "--public",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
    ]);
    assert!(client.success(), "{}", client.failure());
    let user = dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("correct horse\n"),
    );
    assert!(user.success(), "{}", user.failure());
    (dir, replicas)
}

/// Registers the confidential client `rs` that introspects; returns its secret.
fn rs_secret(dir: &Workdir) -> String {
    let out = dir.run(&["clients", "add", "rs"]);
    assert!(out.success(), "{}", out.failure());
    out.json()["client_secret"].as_str().unwrap().to_owned()
}

async fn post(http: &reqwest::Client, url: String, form: &[(&str, &str)]) -> reqwest::Response {
    http.post(url).form(form).send().await.unwrap()
}

async fn login(http: &reqwest::Client, replica: &Service) -> Value {
    let response = post(
        http,
        replica.url("/oauth/token"),
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "web"),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn refresh(http: &reqwest::Client, replica: &Service, token: &str) -> reqwest::Response {
    post(
        http,
        replica.url("/oauth/token"),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", "web"),
        ],
    )
    .await
}

async fn introspect(http: &reqwest::Client, replica: &Service, secret: &str, token: &str) -> Value {
    http.post(replica.url("/oauth/introspect"))
        .basic_auth("rs", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_by_one_replica_are_refreshed_by_another_and_revoked_by_a_third_for_all() {
    let redis = RedisServer::start();
    let (dir, replicas) = fleet(&redis.url());
    let secret = rs_secret(&dir);
    let http = reqwest::Client::new();
    let first = login(&http, &replicas[0]).await;
    let second: Value = refresh(
        &http,
        &replicas[1],
        first["refresh_token"].as_str().unwrap(),
    )
    .await
    .json()
    .await
    .unwrap();
    let access = second["access_token"].as_str().unwrap();
    for replica in &replicas {
        assert_eq!(
            introspect(&http, replica, &secret, access).await["active"],
            true
        );
    }
    let revoked = post(
        &http,
        replicas[2].url("/oauth/revoke"),
        &[
            ("token", second["refresh_token"].as_str().unwrap()),
            ("client_id", "web"),
        ],
    )
    .await;
    assert_eq!(revoked.status(), 200);
    for replica in &replicas {
        assert_eq!(
            introspect(&http, replica, &secret, access).await["active"],
            false
        );
        let refreshed = refresh(&http, replica, second["refresh_token"].as_str().unwrap()).await;
        assert_oauth_error(refreshed, 400, "invalid_grant").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logins_on_every_replica_racing_a_password_reset_leave_no_live_session_anywhere() {
    let redis = RedisServer::start();
    let (dir, replicas) = fleet(&redis.url());
    let secret = rs_secret(&dir);
    let http = reqwest::Client::new();
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "correct horse"),
        ("client_id", "web"),
    ];
    // Logins on all three replicas, while the reset runs through the CLI on the same store.
    let logins: Vec<_> = replicas
        .iter()
        .map(|replica| {
            let (http, url) = (http.clone(), replica.url("/oauth/token"));
            tokio::spawn(async move {
                let mut sessions = Vec::new();
                for _ in 0..40 {
                    let response = post(&http, url.clone(), &form).await;
                    if response.status() == 200 {
                        sessions.push(response.json::<Value>().await.unwrap());
                    }
                }
                sessions
            })
        })
        .collect();
    let reset = tokio::task::block_in_place(|| {
        dir.run_with_stdin(
            &["users", "passwd", "alice", "--password-stdin"],
            Some("a new horse\n"),
        )
    });
    let mut sessions = Vec::new();
    for login in logins {
        sessions.extend(login.await.unwrap());
    }
    assert!(reset.success(), "{}", reset.failure());
    assert!(!sessions.is_empty());
    for tokens in &sessions {
        let access = tokens["access_token"].as_str().unwrap();
        let refresh_token = tokens["refresh_token"].as_str().unwrap();
        for replica in &replicas {
            let answer = introspect(&http, replica, &secret, access).await;
            assert_eq!(answer["active"], false, "{}", replica.url(""));
        }
        let refreshed = refresh(&http, &replicas[0], refresh_token).await;
        assert_oauth_error(refreshed, 400, "invalid_grant").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_refreshes_spread_over_three_replicas_leave_one_live_successor() {
    let redis = RedisServer::start();
    let (dir, replicas) = fleet(&redis.url());
    let secret = rs_secret(&dir);
    let http = reqwest::Client::new();
    let first = login(&http, &replicas[0]).await;
    let token = first["refresh_token"].as_str().unwrap().to_owned();
    let requests: Vec<_> = (0..50)
        .map(|i| {
            let http = http.clone();
            let url = replicas[i % 3].url("/oauth/token");
            let token = token.clone();
            tokio::spawn(async move {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "web"),
                ];
                let response = http.post(url).form(&form).send().await.unwrap();
                assert_eq!(response.status(), 200);
                response.json::<Value>().await.unwrap()["refresh_token"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut successors = HashSet::new();
    for request in requests {
        successors.insert(request.await.unwrap());
    }
    assert_eq!(successors.len(), 1, "one successor across the fleet");
    let successor = successors.into_iter().next().unwrap();
    for replica in &replicas {
        assert_eq!(
            introspect(&http, replica, &secret, &successor).await["active"],
            true
        );
    }
}

/// Polls `check` until it holds or `limit` passes.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_answered_with_503_while_discovery_keeps_serving_and_heals_by_itself() {
    let mut redis = RedisServer::start_with(RedisServerOptions {
        aof_always: true,
        ..Default::default()
    });
    let app = TestApp::spawn_on_redis(&redis.url(), |_| {}).await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;

    // Load in flight while Redis goes away: every answer is 200 or 503, none hangs, none is 500.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let http = app.http.clone();
            let url = app.url("/userinfo");
            let token = tokens["access_token"].as_str().unwrap().to_owned();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let status = http
                        .get(&url)
                        .bearer_auth(&token)
                        .send()
                        .await
                        .unwrap()
                        .status();
                    seen.push((status.as_u16(), started.elapsed()));
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        for (status, took) in task.await.unwrap() {
            assert!(
                status == 200 || status == 503,
                "answered {status} under the outage"
            );
            assert!(took < Duration::from_secs(5), "an answer took {took:?}");
        }
    }

    let started = Instant::now();
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "web"),
        ])
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
    assert!(response.headers().contains_key("retry-after"));
    assert_oauth_error(response, 503, "temporarily_unavailable").await;
    let refresh = app.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_oauth_error(refresh, 503, "temporarily_unavailable").await;
    let userinfo = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(userinfo.status(), 503);
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/healthz",
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} keeps serving");
    }
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    redis.restart();
    let healed = eventually(Duration::from_secs(15), || async {
        app.refresh(tokens["refresh_token"].as_str().unwrap())
            .await
            .status()
            == 200
    })
    .await;
    assert!(healed, "the service recovers without a restart");
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_full_flow_and_the_rotation_race_pass_on_redis_cluster() {
    let cluster = RedisCluster::start();
    let app = TestApp::spawn_on_redis(&cluster.url(), |_| {}).await;
    app.with_user_and_web_client().await;
    let secret = app
        .add_client("rs", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let first = app.login().await;
    let token = first["refresh_token"].as_str().unwrap().to_owned();
    let requests: Vec<_> = (0..50)
        .map(|_| {
            let http = app.http.clone();
            let url = app.url("/oauth/token");
            let token = token.clone();
            tokio::spawn(async move {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.as_str()),
                    ("client_id", "web"),
                ];
                let body: Value = http
                    .post(url)
                    .form(&form)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["refresh_token"].as_str().unwrap().to_owned()
            })
        })
        .collect();
    let mut successors = HashSet::new();
    for request in requests {
        successors.insert(request.await.unwrap());
    }
    assert_eq!(successors.len(), 1);
    let successor = successors.into_iter().next().unwrap();
    let next: Value = app.refresh(&successor).await.json().await.unwrap();
    let access = next["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo(access).await.status(), 200);
    let introspection: Value = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("rs", Some(&secret))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspection["active"], true);
    let revoked = app
        .post_form(
            "/oauth/revoke",
            &[
                ("token", next["refresh_token"].as_str().unwrap()),
                ("client_id", "web"),
            ],
        )
        .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(app.userinfo(access).await.status(), 401);
    let reuse = app.refresh(&successor).await;
    assert_oauth_error(reuse, 400, "invalid_grant").await;
}
