//! `private_key_jwt` client authentication (RFC 7523 §2.2) over HTTP: clients registered with
//! public keys prove themselves with signed assertions on the token, revocation and
//! introspection endpoints; replays, forged or misdirected assertions and unusable key sets
//! are `invalid_client`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "private_key_jwt/jwks_uri.rs"]
mod jwks_uri;
#[path = "private_key_jwt/key_server.rs"]
mod key_server;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{EncodingKey, Header};
use latchkey::accounts::{self, ClientSpec};
use latchkey::domain::{GrantType, now};
use latchkey::keys::{Algorithm, SigningKey};
use latchkey::store::ClientKeys;
use serde_json::{Value, json};
use support::process::Workdir;
use support::redis_server::RedisServer;
use support::{TestApp, assert_oauth_error};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A client's key pair, made with aws-lc-rs: the private half signs, the public half is
/// registered.
struct ClientKey {
    key: SigningKey,
}

impl ClientKey {
    fn new(algorithm: Algorithm) -> ClientKey {
        let (key, _pem) = SigningKey::generate(algorithm, 2048).expect("key");
        ClientKey { key }
    }

    fn kid(&self) -> &str {
        self.key.kid()
    }

    fn jwk(&self) -> Value {
        serde_json::to_value(self.key.jwk()).expect("jwk")
    }

    /// Signs an assertion with the header a client library would send.
    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": self.key.algorithm().as_str(), "typ": "JWT", "kid": self.kid()});
        self.sign_raw(&header, claims)
    }

    /// Signs `header` and `claims` as given, whatever they say.
    fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(input.as_bytes()).expect("signature");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

fn key_set(keys: &[&ClientKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()})
}

/// Claims of a fresh assertion by `client` for `aud`, with a `jti` of its own.
fn claims(client: &str, aud: &str) -> Value {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    json!({
        "iss": client, "sub": client, "aud": aud,
        "iat": now(), "exp": now() + 60, "jti": format!("jti-{}-{n}", now()),
    })
}

async fn register(app: &TestApp, id: &str, keys: ClientKeys) {
    let spec = ClientSpec {
        grants: [GrantType::ClientCredentials].into(),
        keys: Some(keys),
        ..ClientSpec::default()
    };
    let registered = accounts::add_client(&app.change(), id, spec)
        .await
        .expect("client added");
    assert!(
        registered.secret.is_none(),
        "a client with keys gets no secret"
    );
}

async fn post(app: &TestApp, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.post_form(path, form).await
}

async fn token_with(app: &TestApp, assertion: &str) -> reqwest::Response {
    post(
        app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

/// The service behind a trusted proxy on loopback (so `X-Forwarded-For` names the caller),
/// where an address may fail client authentication three times.
async fn behind_a_proxy_failing_thrice() -> TestApp {
    TestApp::spawn_with(|s| {
        s.security.max_failed_client_auths_per_address = 3;
        s.security.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await
}

/// `token_with` from `address`, as a trusted proxy in front of the service tells it.
async fn token_from(app: &TestApp, assertion: &str, address: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/token"))
        .header("x-forwarded-for", address)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .expect("request")
}

async fn assert_invalid_client(response: reqwest::Response, case: &str) {
    assert_eq!(response.status(), 401, "{case}");
    assert!(
        response.headers().contains_key("www-authenticate"),
        "{case}: a challenge"
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"], "invalid_client", "{case}: {body}");
}

#[tokio::test]
async fn an_assertion_signed_with_an_rsa_p256_or_ed25519_key_authenticates_on_every_endpoint() {
    let app = TestApp::spawn().await;
    for (id, algorithm) in [
        ("rsa-svc", Algorithm::RS256),
        ("ec-svc", Algorithm::ES256),
        ("ed-svc", Algorithm::EdDSA),
    ] {
        let key = ClientKey::new(algorithm);
        register(&app, id, ClientKeys::Jwks(key_set(&[&key]))).await;

        // The token endpoint takes the issuer or its own URL as the audience.
        for aud in [app.address.clone(), app.url("/oauth/token")] {
            let issued = token_with(&app, &key.sign(&claims(id, &aud))).await;
            assert_eq!(issued.status(), 200, "{id} gets a token with aud {aud}");
        }
        let issued: Value = token_with(&app, &key.sign(&claims(id, &app.address)))
            .await
            .json()
            .await
            .unwrap();
        let access = issued["access_token"].as_str().expect("access token");

        let introspect = |aud: String| {
            let assertion = key.sign(&claims(id, &aud));
            let app = &app;
            async move {
                let answer = post(
                    app,
                    "/oauth/introspect",
                    &[
                        ("token", access),
                        ("client_assertion_type", ASSERTION_TYPE),
                        ("client_assertion", &assertion),
                    ],
                )
                .await;
                assert_eq!(answer.status(), 200, "{id} introspects");
                answer.json::<Value>().await.unwrap()["active"].clone()
            }
        };
        assert_eq!(introspect(app.url("/oauth/introspect")).await, true);
        assert_eq!(introspect(app.url("/oauth/token")).await, true);
        let revoked = post(
            &app,
            "/oauth/revoke",
            &[
                ("token", access),
                ("client_id", id),
                ("client_assertion_type", ASSERTION_TYPE),
                (
                    "client_assertion",
                    &key.sign(&claims(id, &app.url("/oauth/revoke"))),
                ),
            ],
        )
        .await;
        assert_eq!(revoked.status(), 200, "{id} revokes its token");
        assert_eq!(introspect(app.address.clone()).await, false);
    }
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_on_the_embedded_store() {
    let app = TestApp::spawn().await;
    let key = ClientKey::new(Algorithm::EdDSA);
    register(&app, "svc", ClientKeys::Jwks(key_set(&[&key]))).await;
    let assertion = key.sign(&claims("svc", &app.address));
    assert_eq!(token_with(&app, &assertion).await.status(), 200);
    assert_invalid_client(token_with(&app, &assertion).await, "a replay").await;
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_by_another_instance_sharing_redis() {
    let redis = RedisServer::start();
    let first = TestApp::spawn_on_redis(&redis.url(), |_| {}).await;
    let issuer = first.address.clone();
    let second = TestApp::spawn_on_redis(&redis.url(), |s| s.issuer = issuer).await;
    let key = ClientKey::new(Algorithm::ES256);
    register(&first, "svc", ClientKeys::Jwks(key_set(&[&key]))).await;
    let assertion = key.sign(&claims("svc", &first.address));
    assert_eq!(token_with(&first, &assertion).await.status(), 200);
    assert_invalid_client(token_with(&second, &assertion).await, "a replay elsewhere").await;
    assert_invalid_client(token_with(&first, &assertion).await, "a replay here").await;
}

#[tokio::test]
async fn assertions_that_break_a_rule_are_invalid_client() {
    let app = TestApp::spawn().await;
    let rsa = ClientKey::new(Algorithm::RS256);
    let ec = ClientKey::new(Algorithm::ES256);
    let other = ClientKey::new(Algorithm::EdDSA);
    register(&app, "svc", ClientKeys::Jwks(key_set(&[&rsa, &ec]))).await;
    register(&app, "other", ClientKeys::Jwks(key_set(&[&other]))).await;
    let good = || claims("svc", &app.address);
    let with = |member: &str, value: Value| {
        let mut c = good();
        c[member] = value;
        c
    };
    let without = |member: &str| {
        let mut c = good();
        c.as_object_mut().unwrap().remove(member);
        c
    };
    let header = |alg: &str, kid: &str| json!({"alg": alg, "kid": kid});
    let public_jwk = rsa.jwk().to_string();
    let hs256 = jsonwebtoken::encode(
        &{
            let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
            h.kid = Some(rsa.kid().to_owned());
            h
        },
        &good(),
        &EncodingKey::from_secret(public_jwk.as_bytes()),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": rsa.kid()}).to_string()),
        URL_SAFE_NO_PAD.encode(good().to_string())
    );
    let cases = [
        ("the control", rsa.sign(&good()), true),
        (
            "another audience",
            rsa.sign(&with("aud", json!("https://elsewhere"))),
            false,
        ),
        (
            "another endpoint's URL",
            rsa.sign(&with("aud", json!(app.url("/oauth/introspect")))),
            false,
        ),
        (
            "exp too far ahead",
            rsa.sign(&with("exp", json!(now() + 600))),
            false,
        ),
        ("expired", rsa.sign(&with("exp", json!(now() - 10))), false),
        ("no exp", rsa.sign(&without("exp")), false),
        ("no jti", rsa.sign(&without("jti")), false),
        (
            "iat in the future",
            rsa.sign(&with("iat", json!(now() + 60))),
            false,
        ),
        ("iss not sub", rsa.sign(&with("iss", json!("other"))), false),
        (
            "sub another client",
            rsa.sign(&with("sub", json!("other"))),
            false,
        ),
        ("another client's key", other.sign(&good()), false),
        ("HS256 keyed with the public key", hs256, false),
        (
            "an RS256 header on the EC key",
            ec.sign_raw(&header("RS256", ec.kid()), &good()),
            false,
        ),
        ("alg none", none, false),
        (
            "a jku header",
            rsa.sign_raw(
                &json!({"alg": "RS256", "kid": rsa.kid(), "jku": "https://evil.example/jwks"}),
                &good(),
            ),
            false,
        ),
        (
            "a jwk header",
            other.sign_raw(&json!({"alg": "EdDSA", "jwk": other.jwk()}), &good()),
            false,
        ),
        (
            "a crit header",
            rsa.sign_raw(
                &json!({"alg": "RS256", "kid": rsa.kid(), "crit": ["exp"]}),
                &good(),
            ),
            false,
        ),
        (
            "an unknown kid",
            rsa.sign_raw(&header("RS256", "nope"), &good()),
            false,
        ),
        ("not a JWT", "not.a.jwt".to_owned(), false),
    ];
    for (case, assertion, accepted) in cases {
        let response = token_with(&app, &assertion).await;
        if accepted {
            assert_eq!(response.status(), 200, "{case}");
        } else {
            assert_invalid_client(response, case).await;
        }
    }
    // A `client_id` beside the assertion must be the assertion's client.
    let mismatched = post(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "other"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &rsa.sign(&good())),
        ],
    )
    .await;
    assert_invalid_client(mismatched, "client_id of another client").await;
}

#[tokio::test]
async fn a_client_with_a_secret_moves_to_keys_and_its_secret_and_tokens_stop_working() {
    let app = TestApp::spawn().await;
    let secret = app
        .add_client("mover", false, &[GrantType::ClientCredentials], &[], &[])
        .await
        .expect("a confidential client");
    let with_secret = [
        ("grant_type", "client_credentials"),
        ("client_id", "mover"),
        ("client_secret", secret.as_str()),
    ];
    let before: Value = app.token(&with_secret).await.json().await.unwrap();
    let old_token = before["access_token"].as_str().unwrap().to_owned();

    let key = ClientKey::new(Algorithm::ES256);
    let changes = accounts::ClientChanges {
        keys: Some(ClientKeys::Jwks(key_set(&[&key]))),
        ..Default::default()
    };
    let moved = accounts::update_client(&app.change(), &app.settings.tokens, "mover", changes)
        .await
        .expect("keys replace the secret");
    assert!(moved.secret_hash.is_none(), "no secret is kept beside keys");

    let refused = app.token(&with_secret).await;
    assert_invalid_client(refused, "the old secret").await;
    let with_key = token_with(&app, &key.sign(&claims("mover", &app.address))).await;
    assert_eq!(with_key.status(), 200, "the key authenticates");
    let introspect = |token: String| {
        let assertion = key.sign(&claims("mover", &app.address));
        let app = &app;
        async move {
            let form = [
                ("token", token.as_str()),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", assertion.as_str()),
            ];
            let answer: Value = post(app, "/oauth/introspect", &form)
                .await
                .json()
                .await
                .unwrap();
            answer["active"].clone()
        }
    };
    assert_eq!(
        introspect(old_token).await,
        false,
        "what the secret gave is revoked"
    );

    // Keys given again (a key rotation, or the retry of an update cut short by a 503 after the
    // store changed) revoke again: what the replaced keys gave dies too.
    let key_token: Value = with_key.json().await.unwrap();
    let key_token = key_token["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(key_token.clone()).await, true);
    let again = accounts::ClientChanges {
        keys: Some(ClientKeys::Jwks(key_set(&[&key]))),
        ..Default::default()
    };
    accounts::update_client(&app.change(), &app.settings.tokens, "mover", again)
        .await
        .expect("keys replaced");
    assert_eq!(
        introspect(key_token).await,
        false,
        "what the old keys gave is revoked"
    );
}

#[tokio::test]
async fn a_client_with_keys_cannot_authenticate_with_a_secret_or_nothing() {
    let app = TestApp::spawn().await;
    let key = ClientKey::new(Algorithm::EdDSA);
    register(&app, "svc", ClientKeys::Jwks(key_set(&[&key]))).await;
    let with_secret = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some("a guess"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_invalid_client(with_secret, "a secret").await;
    let bare = post(
        &app,
        "/oauth/token",
        &[("grant_type", "client_credentials"), ("client_id", "svc")],
    )
    .await;
    assert_invalid_client(bare, "no credentials").await;
    let introspect = post(
        &app,
        "/oauth/introspect",
        &[("token", "x"), ("client_id", "svc")],
    )
    .await;
    assert_invalid_client(introspect, "introspection without credentials").await;
}

#[tokio::test]
async fn an_assertion_together_with_a_secret_is_invalid_request() {
    let app = TestApp::spawn().await;
    let key = ClientKey::new(Algorithm::EdDSA);
    register(&app, "svc", ClientKeys::Jwks(key_set(&[&key]))).await;
    let assertion = key.sign(&claims("svc", &app.address));
    let basic = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some("secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(basic, 400, "invalid_request").await;
    let in_body = post(
        &app,
        "/oauth/revoke",
        &[
            ("token", "x"),
            ("client_id", "svc"),
            ("client_secret", "secret"),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_oauth_error(in_body, 400, "invalid_request").await;
    let wrong_type = post(
        &app,
        "/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:example:saml"),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_oauth_error(wrong_type, 400, "invalid_request").await;
    // None of these used the assertion up.
    assert_eq!(token_with(&app, &assertion).await.status(), 200);
}

#[tokio::test]
async fn failed_assertions_count_toward_the_client_authentication_limit() {
    let app = behind_a_proxy_failing_thrice().await;
    let key = ClientKey::new(Algorithm::EdDSA);
    let stranger = ClientKey::new(Algorithm::EdDSA);
    register(&app, "svc", ClientKeys::Jwks(key_set(&[&key]))).await;
    let attacker = "198.51.100.66";
    for _ in 0..3 {
        let forged = token_from(&app, &stranger.sign(&claims("svc", &app.address)), attacker).await;
        assert_invalid_client(forged, "a forged assertion").await;
    }
    let limited = token_from(&app, &key.sign(&claims("svc", &app.address)), attacker).await;
    assert_eq!(limited.status(), 429, "the address is at its limit");
    assert!(limited.headers().contains_key("retry-after"));
    let elsewhere = token_from(&app, &key.sign(&claims("svc", &app.address)), "10.1.2.3").await;
    assert_eq!(elsewhere.status(), 200, "another address is not locked out");
}

#[test]
fn the_cli_registers_a_jwks_file_and_refuses_one_with_a_private_key() {
    let dir = Workdir::new();
    let key = ClientKey::new(Algorithm::ES256);
    let public = dir.join("public.json");
    std::fs::write(&public, key_set(&[&key]).to_string()).unwrap();
    let added = dir.run(&["clients", "add", "svc", "--jwks", public.to_str().unwrap()]);
    assert!(added.success(), "{}", added.failure());
    let shown = added.json();
    assert_eq!(shown["client_id"], "svc");
    assert!(shown.get("client_secret").is_none(), "no secret: {shown}");
    let listed = dir.run(&["clients", "show", "svc"]).json();
    assert_eq!(listed["public"], false);
    assert_eq!(listed["jwks"], key_set(&[&key]));

    let mut jwk = key.jwk();
    jwk["d"] = json!("AAAA");
    let private = dir.join("private.json");
    std::fs::write(&private, json!({"keys": [jwk]}).to_string()).unwrap();
    let refused = dir.run(&[
        "clients",
        "add",
        "leaky",
        "--jwks",
        private.to_str().unwrap(),
    ]);
    assert!(!refused.success(), "a private key file is refused");
    assert!(refused.stderr().contains("private"), "{}", refused.stderr());
    let http = dir.run(&[
        "clients",
        "add",
        "plain",
        "--jwks-uri",
        "http://keys.example/jwks",
    ]);
    assert!(!http.success(), "a non-loopback http jwks_uri is refused");
}

#[tokio::test]
async fn the_metadata_lists_private_key_jwt_and_its_algorithms() {
    let app = TestApp::spawn().await;
    let metadata = app.metadata().await;
    for endpoint in ["token", "revocation", "introspection"] {
        let methods = &metadata[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{endpoint}: {methods}"
        );
        assert_eq!(
            metadata[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")],
            json!(["RS256", "ES256", "EdDSA", "Ed25519"]),
            "{endpoint}"
        );
    }
}
