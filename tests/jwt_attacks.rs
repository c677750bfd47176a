//! Every known JWT attack, as one table, against the running service (a bearer endpoint and the
//! refresh grant) and against latchkey-verify connected to that same service: each forged,
//! tampered or misused token must be refused by both.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey::domain::now;
use latchkey::keys::{Algorithm, SigningKey, generate_in};
use serde_json::{Value, json};
use support::{TestApp, assert_oauth_error, decode_jwt};

const DAY: i64 = 86_400;

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` from raw header text (so duplicate members survive), claims,
/// and a signature over the first two parts made by `sign`.
fn token_with(header: &str, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    raw_token(header, &claims.to_string(), sign)
}

fn raw_token(header: &str, claims: &str, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// The RSA key pair behind a PEM key file, for signatures the service itself never makes
/// (RSA-PSS with its own key).
fn rsa_pair(file: &std::path::Path) -> aws_lc_rs::rsa::KeyPair {
    let text = std::fs::read(file).expect("key file");
    let der = pem::parse(text).expect("pem").into_contents();
    aws_lc_rs::rsa::KeyPair::from_pkcs8(&der)
        .or_else(|_| aws_lc_rs::rsa::KeyPair::from_der(&der))
        .expect("an RSA key")
}

fn pss(pair: &aws_lc_rs::rsa::KeyPair, message: &[u8]) -> Vec<u8> {
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PSS_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .expect("pss signature");
    signature
}

fn hmac(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
}

struct Attack {
    name: &'static str,
    token: String,
}

/// The service with two keys in its directory: one retired long ago, and the signer.
async fn service_with_a_retired_key() -> (TestApp, SigningKey, tempfile::TempDir) {
    let tempdir = tempfile::tempdir().expect("temp dir");
    let dir = tempdir.path().to_path_buf();
    let keys = dir.join("keys");
    let retired = generate_in(&keys, Algorithm::RS256, 2048, now() - 100 * DAY).expect("old key");
    generate_in(&keys, Algorithm::RS256, 2048, now() - 90 * DAY).expect("signing key");
    let app = TestApp::spawn_in(dir, |_| {}).await;
    app.with_user_and_web_client().await;
    let retired = SigningKey::from_pem(&std::fs::read(&retired.file).expect("retired key file"))
        .expect("retired key");
    (app, retired, tempdir)
}

/// The attack table, built from a genuine access token of `app`, and a control: the same
/// token re-signed by the helpers that make the attacks, which must pass.
fn attacks(
    app: &TestApp,
    access: &str,
    refresh: &str,
    retired: &SigningKey,
) -> (String, Vec<Attack>) {
    let (header, claims) = decode_jwt(access);
    let kid = header["kid"].as_str().expect("kid").to_owned();
    let keys = app.keys();
    let signer = keys.signer().clone();
    let key_file = latchkey::keys::read_dir(&app.settings.keys.dir)
        .expect("key dir")
        .into_iter()
        .find(|k| k.key.kid() == kid)
        .expect("the signer's file")
        .file;
    let pair = rsa_pair(&key_file);
    let ours = |message: &[u8]| signer.sign(message).expect("signature");
    let header_text = |alg: &str| format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#);
    let with_claims = |change: &dyn Fn(&mut Value)| {
        let mut changed = claims.clone();
        change(&mut changed);
        token_with(&header_text("RS256"), &changed, ours)
    };
    let with_header = |extra: Value| {
        let mut h = header.clone();
        for (k, v) in extra.as_object().expect("object") {
            h[k] = v.clone();
        }
        token_with(&h.to_string(), &claims, ours)
    };
    let jwk_text = serde_json::to_vec(keys.signer().jwk()).expect("jwk");
    let public_der = aws_lc_rs::signature::KeyPair::public_key(&pair)
        .as_ref()
        .to_vec();
    let public_pem = pem::encode(&pem::Pem::new("RSA PUBLIC KEY", public_der.clone()));
    let (stranger, _) = SigningKey::generate_rsa(2048).expect("key");
    let now = now();
    let mut signature = URL_SAFE_NO_PAD
        .decode(access.rsplit('.').next().expect("signature"))
        .expect("base64");
    signature[10] ^= 1;
    let unsigned = access.rsplit_once('.').expect("parts").0;

    let control = with_claims(&|_| {});
    let attack = |name, token| Attack { name, token };
    let table = vec![
        attack(
            "alg none",
            token_with(&header_text("none"), &claims, |_| Vec::new()),
        ),
        attack(
            "alg None, any case",
            token_with(&header_text("None"), &claims, |_| Vec::new()),
        ),
        attack(
            "HS256 keyed with the public JWK",
            token_with(&header_text("HS256"), &claims, |m| hmac(&jwk_text, m)),
        ),
        attack(
            "HS256 keyed with the public key DER",
            token_with(&header_text("HS256"), &claims, |m| hmac(&public_der, m)),
        ),
        attack(
            "HS256 keyed with the public key PEM",
            token_with(&header_text("HS256"), &claims, |m| {
                hmac(public_pem.as_bytes(), m)
            }),
        ),
        attack(
            "PS256 header on an RS256 signature",
            token_with(&header_text("PS256"), &claims, ours),
        ),
        attack(
            "PS256 header with a real PSS signature by our key",
            token_with(&header_text("PS256"), &claims, |m| pss(&pair, m)),
        ),
        attack(
            "RS256 header on a PSS signature by our key",
            token_with(&header_text("RS256"), &claims, |m| pss(&pair, m)),
        ),
        attack(
            "RS384 header",
            token_with(&header_text("RS384"), &claims, ours),
        ),
        attack(
            "kid naming no key",
            with_header(json!({"kid": "no-such-key"})),
        ),
        attack(
            "kid as a path",
            with_header(json!({"kid": "../../etc/passwd"})),
        ),
        attack(
            "kid as an absolute path",
            with_header(json!({"kid": "/dev/null"})),
        ),
        attack(
            "no kid",
            token_with(r#"{"alg":"RS256","typ":"at+jwt"}"#, &claims, ours),
        ),
        attack(
            "jku pointing elsewhere",
            with_header(json!({"jku": "https://evil.example/jwks.json"})),
        ),
        attack(
            "x5u pointing elsewhere",
            with_header(json!({"x5u": "https://evil.example/cert.pem"})),
        ),
        attack("embedded jwk", with_header(json!({"jwk": stranger.jwk()}))),
        attack("x5c chain", with_header(json!({"x5c": ["MIIB"]}))),
        attack("crit extension", with_header(json!({"crit": ["exp"]}))),
        attack("crit, empty", with_header(json!({"crit": []}))),
        attack(
            "zip: a JWE compression header on a JWS",
            with_header(json!({"zip": "DEF"})),
        ),
        attack(
            "enc: a JWE encryption header on a JWS",
            with_header(json!({"enc": "A256GCM"})),
        ),
        attack("cty: a nested token", with_header(json!({"cty": "JWT"}))),
        attack(
            "an unregistered header member",
            with_header(json!({"x-latchkey": true})),
        ),
        attack(
            "an escaped member name spelling zip",
            token_with(
                &format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","\u007aip":"DEF"}}"#),
                &claims,
                ours,
            ),
        ),
        attack("stripped signature", format!("{unsigned}.")),
        attack("two parts only", unsigned.to_owned()),
        attack(
            "altered signature",
            format!("{unsigned}.{}", b64(&signature)),
        ),
        attack("altered claims", {
            let mut altered = claims.clone();
            altered["sub"] = json!("admin");
            format!(
                "{}.{}.{}",
                b64(header.to_string()),
                b64(altered.to_string()),
                access.rsplit('.').next().unwrap_or_default()
            )
        }),
        attack("signed by another key under our kid", {
            let theirs = |m: &[u8]| stranger.sign(m).expect("signature");
            token_with(&header_text("RS256"), &claims, theirs)
        }),
        attack(
            "expired",
            with_claims(&|c| {
                c["exp"] = json!(now - 3600);
                c["iat"] = json!(now - 7200);
                c["nbf"] = json!(now - 7200);
            }),
        ),
        attack(
            "nbf in the future",
            with_claims(&|c| c["nbf"] = json!(now + 3600)),
        ),
        attack(
            "iat an hour in the future",
            with_claims(&|c| c["iat"] = json!(now + 3600)),
        ),
        attack(
            "iat a minute in the future, nbf now",
            with_claims(&|c| {
                c["iat"] = json!(now + 60);
                c["nbf"] = json!(now);
            }),
        ),
        attack(
            "wrong iss",
            with_claims(&|c| c["iss"] = json!("https://evil.example")),
        ),
        attack("typ JWT", with_header(json!({"typ": "JWT"}))),
        attack(
            "no typ",
            token_with(
                &format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#),
                &claims,
                ours,
            ),
        ),
        attack(
            "typ of a refresh token",
            with_header(json!({"typ": "rt+jwt"})),
        ),
        attack("a refresh token", refresh.to_owned()),
        attack(
            "a 100 KB token",
            format!("{access}{}", "A".repeat(100 * 1024)),
        ),
        attack(
            "a 100 KB header",
            token_with(
                &format!(
                    r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","x":"{}"}}"#,
                    "x".repeat(100 * 1024)
                ),
                &claims,
                ours,
            ),
        ),
        attack(
            "two alg members, none last",
            token_with(
                &format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#),
                &claims,
                ours,
            ),
        ),
        attack(
            "two alg members, RS256 last",
            token_with(
                &format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}","alg":"RS256"}}"#),
                &claims,
                ours,
            ),
        ),
        attack(
            "two kid members",
            token_with(
                &format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"nope","kid":"{kid}"}}"#),
                &claims,
                ours,
            ),
        ),
        attack("two sub claims", {
            let doubled = claims.to_string().replacen('{', r#"{"sub":"admin","#, 1);
            raw_token(&header_text("RS256"), &doubled, ours)
        }),
        attack("a valid signature by a retired key", {
            let by_retired = |m: &[u8]| retired.sign(m).expect("signature");
            let header = format!(
                r#"{{"alg":"RS256","typ":"at+jwt","kid":"{}"}}"#,
                retired.kid()
            );
            token_with(&header, &claims, by_retired)
        }),
        attack("garbage", "not-a-jwt".to_owned()),
        attack("empty segments", "..".to_owned()),
    ];
    (control, table)
}

#[tokio::test]
async fn every_attack_token_is_refused_by_the_service_and_by_latchkey_verify() {
    let (app, retired, _dir) = service_with_a_retired_key().await;
    let tokens = app.login().await;
    let access = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let verifier = latchkey_verify::Verifier::builder(&app.address, "api")
        .connect()
        .await
        .expect("latchkey-verify connects to the service");

    // The genuine token passes both, so every refusal below is the attack's doing.
    assert_eq!(app.userinfo(&access).await.status(), 200);
    verifier
        .verify(&access)
        .await
        .expect("the genuine token verifies");

    let (control, table) = attacks(&app, &access, &refresh, &retired);
    assert_eq!(
        app.userinfo(&control).await.status(),
        200,
        "the re-signed control passes"
    );
    verifier
        .verify(&control)
        .await
        .expect("the re-signed control verifies");
    let mut accepted = Vec::new();
    for attack in &table {
        let response = app.userinfo(&attack.token).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or_default();
        if status != 401 || body["error"] != "invalid_token" {
            accepted.push(format!("service: {} -> {status} {body}", attack.name));
        }
        if let Ok(token) = verifier.verify(&attack.token).await {
            accepted.push(format!(
                "latchkey-verify: {} -> accepted for {}",
                attack.name, token.subject
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "attacks that got through:\n{}",
        accepted.join("\n")
    );
    println!("{} attacks refused by both targets", table.len());
}

#[tokio::test]
async fn a_token_for_another_audience_is_refused_by_latchkey_verify() {
    let app = TestApp::spawn().await;
    app.add_client(
        "svc",
        true,
        &[latchkey::domain::GrantType::Password],
        &[],
        &["billing"],
    )
    .await;
    app.add_user("alice", "correct horse", &["user"]).await;
    let response = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "svc"),
            ("audience", "billing"),
        ])
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    let access = body["access_token"].as_str().expect("access token");
    let orders = latchkey_verify::Verifier::builder(&app.address, "api")
        .connect()
        .await;
    let result = orders.expect("connects").verify(access).await;
    assert_eq!(
        result.err(),
        Some(latchkey_verify::VerifyError::WrongAudience)
    );
}

#[tokio::test]
async fn an_access_token_at_the_refresh_grant_is_invalid_grant() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    let access = tokens["access_token"].as_str().expect("access token");
    assert_oauth_error(app.refresh(access).await, 400, "invalid_grant").await;
    // Nor as the refresh token to revoke a family at logout.
    let logout = app
        .http
        .post(app.url("/logout"))
        .bearer_auth(access)
        .form(&[("refresh_token", access)])
        .send()
        .await
        .expect("sent");
    assert_oauth_error(logout, 400, "invalid_request").await;
}

/// Introspects `token` as the confidential client `rs`.
async fn introspect(app: &TestApp, secret: &str, token: &str) -> Value {
    let response = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("rs", Some(secret))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), 200, "introspection answers");
    response.json().await.expect("json")
}

#[tokio::test]
async fn the_issuer_calls_its_own_tokens_expired_at_their_exact_exp() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let secret = app
        .add_client(
            "rs",
            false,
            &[latchkey::domain::GrantType::ClientCredentials],
            &[],
            &[],
        )
        .await
        .expect("a secret");
    let tokens = app.login().await;
    let access = tokens["access_token"].as_str().expect("access token");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let keys = app.keys();
    let signer = keys.signer().clone();
    let ours = |message: &[u8]| signer.sign(message).expect("signature");
    // The genuine tokens with `exp` moved, signed with the issuer's own key: the same `jti`,
    // session and family, so nothing but the expiry can refuse them.
    let expiring = |token: &str, exp: i64| {
        let (header, mut claims) = decode_jwt(token);
        claims["exp"] = json!(exp);
        claims["iat"] = json!(exp - 60);
        claims["nbf"] = json!(exp - 60);
        token_with(&header.to_string(), &claims, ours)
    };
    let now = now();
    let live = expiring(access, now + 60);
    assert_eq!(
        app.userinfo(&live).await.status(),
        200,
        "the control passes"
    );
    assert_eq!(introspect(&app, &secret, &live).await["active"], true);
    // At `exp` and within the 5 s a resource server allows for its clock, the issuer's own
    // answer is: expired.
    for exp in [now, now - 2, now - 4] {
        let token = expiring(access, exp);
        let answer = introspect(&app, &secret, &token).await;
        assert_eq!(
            answer,
            json!({"active": false}),
            "exp = now - {}",
            now - exp
        );
        let response = app.userinfo(&token).await;
        assert_oauth_error(response, 401, "invalid_token").await;
        let logout = app
            .http
            .post(app.url("/logout"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("sent");
        assert_oauth_error(logout, 401, "invalid_token").await;
        let expired_refresh = expiring(refresh, exp);
        assert_eq!(
            introspect(&app, &secret, &expired_refresh).await,
            json!({"active": false})
        );
        assert_oauth_error(app.refresh(&expired_refresh).await, 400, "invalid_grant").await;
    }
    // None of it touched the session: the genuine tokens still work.
    assert_eq!(app.userinfo(access).await.status(), 200);
    assert_eq!(app.refresh(refresh).await.status(), 200);
}
