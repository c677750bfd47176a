//! The JWT attack matrix against the library alone, on a fixed key set: each row is a forged,
//! tampered or misused token and the error it must get. (tests/jwt_attacks.rs at the workspace
//! root runs the same attacks against the library connected to a live Latchkey.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/testkit.rs"]
mod testkit;

use aws_lc_rs::signature::{RSA_PKCS1_SHA384, RSA_PSS_SHA256};
use latchkey_verify::{Verifier, VerifyError};
use serde_json::{Value, json};
use testkit::{AUDIENCE, ISSUER, TestKey, b64, claims, jwks, now};

fn hmac(secret: &[u8], message: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    b64(aws_lc_rs::hmac::sign(&key, message.as_bytes()))
}

fn input(header: &str, claims: &str) -> String {
    format!("{}.{}", b64(header), b64(claims))
}

fn with(claims: &Value, change: impl Fn(&mut Value)) -> Value {
    let mut changed = claims.clone();
    change(&mut changed);
    changed
}

#[test]
fn every_attack_token_is_refused_with_its_own_error() {
    let key = TestKey::rsa("current");
    // A retired key: it signed tokens once, but the issuer no longer publishes it.
    let retired = TestKey::rsa("retired");
    let stranger = TestKey::rsa("current");
    let verifier = Verifier::builder(ISSUER, AUDIENCE)
        .with_static_keys(jwks(&[&key]).to_string().as_bytes())
        .unwrap();
    let now = now();
    let good = claims(ISSUER, AUDIENCE, now);
    let genuine = key.token(&good);
    verifier
        .verify_cached(&genuine)
        .expect("the genuine token verifies");

    let kid = &key.kid;
    let header = |alg: &str| format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#);
    let signed = |header: &str, claims: &str| {
        key.sign_input(
            &aws_lc_rs::signature::RSA_PKCS1_SHA256,
            &input(header, claims),
        )
    };
    let with_header = |extra: Value| {
        let mut h = key.header();
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        key.sign(&h, &good)
    };
    let body = good.to_string();
    let (unsigned, signature) = genuine.rsplit_once('.').unwrap();
    let mut flipped = signature.as_bytes().to_vec();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let jwk_secret = key.jwk.to_string();
    let der = key.public_der();
    use VerifyError::*;
    let table: Vec<(&str, String, VerifyError)> = vec![
        (
            "alg none",
            format!("{}.", input(&header("none"), &body)),
            ForbiddenHeader,
        ),
        (
            "HS256 keyed with the public JWK",
            {
                let i = input(&header("HS256"), &body);
                format!("{i}.{}", hmac(jwk_secret.as_bytes(), &i))
            },
            ForbiddenHeader,
        ),
        (
            "HS256 keyed with the public key DER",
            {
                let i = input(&header("HS256"), &body);
                format!("{i}.{}", hmac(&der, &i))
            },
            ForbiddenHeader,
        ),
        (
            "PS256 header on an RS256 signature",
            signed(&header("PS256"), &body),
            WrongAlgorithm,
        ),
        (
            "PS256 header with a real PSS signature",
            key.sign_input(&RSA_PSS_SHA256, &input(&header("PS256"), &body)),
            WrongAlgorithm,
        ),
        (
            "RS256 header on a PSS signature",
            key.sign_input(&RSA_PSS_SHA256, &input(&header("RS256"), &body)),
            BadSignature,
        ),
        (
            "RS384 signature under RS256",
            key.sign_input(&RSA_PKCS1_SHA384, &input(&header("RS256"), &body)),
            BadSignature,
        ),
        (
            "kid naming no key",
            with_header(json!({"kid": "nope"})),
            UnknownKey,
        ),
        (
            "kid as a path",
            with_header(json!({"kid": "../../etc/passwd"})),
            UnknownKey,
        ),
        (
            "jku pointing elsewhere",
            with_header(json!({"jku": "https://evil.test/jwks"})),
            ForbiddenHeader,
        ),
        (
            "x5u pointing elsewhere",
            with_header(json!({"x5u": "https://evil.test/cert"})),
            ForbiddenHeader,
        ),
        (
            "embedded jwk",
            with_header(json!({"jwk": stranger.jwk})),
            ForbiddenHeader,
        ),
        (
            "x5c chain",
            with_header(json!({"x5c": ["MIIB"]})),
            ForbiddenHeader,
        ),
        (
            "crit extension",
            with_header(json!({"crit": ["exp"]})),
            ForbiddenHeader,
        ),
        (
            "zip: a JWE compression header",
            with_header(json!({"zip": "DEF"})),
            ForbiddenHeader,
        ),
        (
            "enc: a JWE encryption header",
            with_header(json!({"enc": "A256GCM"})),
            ForbiddenHeader,
        ),
        (
            "cty: a nested token",
            with_header(json!({"cty": "JWT"})),
            ForbiddenHeader,
        ),
        (
            "an unregistered header member",
            with_header(json!({"latchkey": true})),
            ForbiddenHeader,
        ),
        // An empty signature is how `none` tokens look, whatever the header says.
        (
            "stripped signature",
            format!("{unsigned}."),
            ForbiddenHeader,
        ),
        ("two parts only", unsigned.to_owned(), Malformed),
        (
            "altered signature",
            format!("{unsigned}.{}", String::from_utf8(flipped).unwrap()),
            BadSignature,
        ),
        (
            "altered claims",
            format!(
                "{}.{}",
                input(
                    &key.header().to_string(),
                    &with(&good, |c| c["sub"] = json!("admin")).to_string()
                ),
                signature
            ),
            BadSignature,
        ),
        (
            "another key under our kid",
            stranger.token(&good),
            BadSignature,
        ),
        (
            "expired",
            key.token(&with(&good, |c| {
                c["exp"] = json!(now - 3600);
                c["nbf"] = json!(now - 7200);
            })),
            Expired,
        ),
        (
            "nbf in the future",
            key.token(&with(&good, |c| c["nbf"] = json!(now + 3600))),
            NotYetValid,
        ),
        (
            "iat an hour in the future",
            key.token(&with(&good, |c| c["iat"] = json!(now + 3600))),
            NotYetValid,
        ),
        (
            "wrong iss",
            key.token(&with(&good, |c| c["iss"] = json!("https://evil.test"))),
            WrongIssuer,
        ),
        (
            "wrong aud",
            key.token(&claims(ISSUER, "billing", now)),
            WrongAudience,
        ),
        ("typ JWT", with_header(json!({"typ": "JWT"})), WrongType),
        (
            "a refresh token",
            with_header(json!({"typ": "rt+jwt"})),
            WrongType,
        ),
        (
            "a 100 KB token",
            format!("{genuine}{}", "A".repeat(100 * 1024)),
            Malformed,
        ),
        (
            "two alg members",
            signed(
                &format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#),
                &body,
            ),
            Malformed,
        ),
        (
            "two sub claims",
            signed(
                &header("RS256"),
                &body.replacen('{', r#"{"sub":"admin","#, 1),
            ),
            Malformed,
        ),
        (
            "a valid signature by a retired key",
            retired.token(&good),
            UnknownKey,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, token, expected) in &table {
        let got = verifier.verify_cached(token);
        if got.as_ref().err() != Some(expected) {
            wrong.push(format!("{name}: expected {expected:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
