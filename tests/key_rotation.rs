//! Key rotation is a non-event: two replicas and a resource server that caches the JWKS keep
//! accepting every valid token while the key is rotated twice, and a retired key's tokens are
//! refused afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use latchkey::domain::GrantType;
use latchkey::keys::{Algorithm, generate_in};
use serde_json::Value;
use support::{TestApp, decode_jwt};

/// A resource server as RFC 7517 clients build them: the JWKS cached for its `max-age`,
/// refetched when a token names a `kid` the cache lacks.
struct ResourceServer {
    http: reqwest::Client,
    jwks_uri: String,
    issuer: String,
    cached: Option<(Instant, Duration, JwkSet)>,
    fetches: usize,
}

impl ResourceServer {
    async fn fetch(&mut self) {
        let response = self.http.get(&self.jwks_uri).send().await.unwrap();
        let max_age = response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .split("max-age=")
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let set: JwkSet = response.json().await.unwrap();
        self.cached = Some((Instant::now(), Duration::from_secs(max_age), set));
        self.fetches += 1;
    }

    async fn verify(&mut self, token: &str) -> Result<Value, String> {
        let kid = decode_header(token)
            .map_err(|e| e.to_string())?
            .kid
            .ok_or("no kid")?;
        let fresh = |c: &Option<(Instant, Duration, JwkSet)>| {
            c.as_ref()
                .is_some_and(|(at, age, set)| at.elapsed() < *age && set.find(&kid).is_some())
        };
        if !fresh(&self.cached) {
            self.fetch().await;
        }
        let (_, _, set) = self.cached.as_ref().ok_or("no JWKS")?;
        let jwk = set.find(&kid).ok_or_else(|| format!("unknown kid {kid}"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let algorithm = jwk
            .common
            .key_algorithm
            .ok_or("no alg")?
            .to_string()
            .parse()
            .map_err(|_| "alg")?;
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&["api"]);
        decode::<Value>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }
}

async fn issue(app: &TestApp, secret: &str) -> String {
    let response = app
        .token(&[
            ("grant_type", "client_credentials"),
            ("client_id", "svc"),
            ("client_secret", secret),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(app: &TestApp, secret: &str, token: &str) -> bool {
    let body: Value = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("svc", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["active"] == true
}

fn kid_of(token: &str) -> String {
    decode_jwt(token).0["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_the_key_twice_under_load_refuses_no_valid_token_and_retires_the_first_key() {
    let shared = tempfile::tempdir().unwrap();
    let configure = |s: &mut latchkey::configuration::Settings| {
        s.keys.jwks_max_age = 2;
        s.keys.reload_interval = 1;
        s.tokens.access_ttl = 3;
        s.tokens.refresh_ttl = 4;
        s.issuer = "http://latchkey.test".into();
    };
    let a = TestApp::spawn_in(shared.path().to_path_buf(), configure).await;
    let b = TestApp::spawn_in(shared.path().to_path_buf(), configure).await;
    let secret = a
        .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .unwrap();
    let mut resource = ResourceServer {
        http: reqwest::Client::new(),
        jwks_uri: b.url("/.well-known/jwks.json"),
        issuer: "http://latchkey.test".into(),
        cached: None,
        fetches: 0,
    };
    let first_token = issue(&a, &secret).await;
    let first_kid = kid_of(&first_token);
    let mut kids = vec![first_kid.clone()];
    let mut checked = 0;

    for rotation in 0..2 {
        let added = generate_in(
            &a.settings.keys.dir,
            Algorithm::RS256,
            2048,
            latchkey::domain::now(),
        )
        .unwrap();
        let new_kid = added.key.kid().to_owned();
        let deadline = Instant::now() + Duration::from_secs(15);
        // Load until both replicas sign with the new key: every token from either replica is
        // accepted by the resource server and by the other replica.
        loop {
            for (issuer, other) in [(&a, &b), (&b, &a)] {
                let token = issue(issuer, &secret).await;
                resource.verify(&token).await.unwrap_or_else(|e| {
                    panic!("rotation {rotation}: resource server refused a valid token: {e}")
                });
                assert!(
                    introspect(other, &secret, &token).await,
                    "rotation {rotation}: a replica refused a valid token"
                );
                checked += 1;
            }
            let (ta, tb) = (issue(&a, &secret).await, issue(&b, &secret).await);
            if kid_of(&ta) == new_kid && kid_of(&tb) == new_kid {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the new key never started signing"
            );
        }
        kids.push(new_kid);
    }
    assert!(checked > 10, "the load ran ({checked} tokens)");
    assert_eq!(kids.len(), 3);
    assert!(
        resource.fetches <= 2 * 3 + 4,
        "the JWKS was fetched {} times",
        resource.fetches
    );

    // Once its tokens can no longer be live, the first key is retired: gone from the JWKS and
    // its tokens refused by both replicas.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let published = a.published_kids().await.contains(&first_kid);
        let active_a = introspect(&a, &secret, &first_token).await;
        let active_b = introspect(&b, &secret, &first_token).await;
        if !published && !active_a && !active_b {
            break;
        }
        assert!(Instant::now() < deadline, "the first key was never retired");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let published = a.published_kids().await;
    assert!(
        published.contains(&kids[2]),
        "the newest key stays published"
    );
}

#[tokio::test]
async fn es256_and_eddsa_keys_sign_tokens_the_jwks_and_metadata_describe() {
    for algorithm in [Algorithm::ES256, Algorithm::EdDSA] {
        let dir = tempfile::tempdir().unwrap();
        generate_in(&dir.path().join("keys"), algorithm, 0, 0).unwrap();
        let app = TestApp::spawn_in(dir.path().to_path_buf(), |_| {}).await;
        let secret = app
            .add_client("svc", false, &[GrantType::ClientCredentials], &[], &[])
            .await
            .unwrap();
        let token = issue(&app, &secret).await;
        assert_eq!(decode_jwt(&token).0["alg"], algorithm.as_str());
        let mut resource = ResourceServer {
            http: reqwest::Client::new(),
            jwks_uri: app.url("/.well-known/jwks.json"),
            issuer: app.address.clone(),
            cached: None,
            fetches: 0,
        };
        resource.verify(&token).await.unwrap();
        assert!(introspect(&app, &secret, &token).await);
        let metadata = app.metadata().await;
        assert_eq!(
            metadata["token_signing_alg_values_supported"],
            serde_json::json!([algorithm.as_str()])
        );
    }
}
