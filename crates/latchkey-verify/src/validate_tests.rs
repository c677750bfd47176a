//! Every attack RFC 8725 lists, and then some, against the validator.

use std::sync::OnceLock;

use aws_lc_rs::signature;
use serde_json::{Value, json};

use super::*;
use crate::keys::KeySet;
use crate::testkit::{AUDIENCE, ISSUER, TestKey, b64, claims, jwks, now};

fn key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::rsa("key-1"))
}

fn other_key() -> &'static TestKey {
    static KEY: OnceLock<TestKey> = OnceLock::new();
    KEY.get_or_init(|| TestKey::rsa("key-2"))
}

fn keys() -> KeySet {
    KeySet::from_json(jwks(&[key()]).to_string().as_bytes()).unwrap()
}

fn expect() -> Expectations {
    Expectations {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        leeway: 5,
        max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
    }
}

fn check(token: &str) -> Result<AccessToken, VerifyError> {
    verify(token, &keys(), &expect(), now())
}

fn valid_claims() -> Value {
    claims(ISSUER, AUDIENCE, now())
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn header_with(key: &str, value: Value) -> Value {
    let mut header = self::key().header();
    header[key] = value;
    header
}

#[test]
fn a_token_as_the_issuer_signs_it_verifies_with_typed_claims() {
    let claims = valid_claims();
    let token = check(&key().token(&claims)).unwrap();
    assert_eq!(token.subject, "alice");
    assert_eq!(token.client_id, "web");
    assert_eq!(token.scopes, ["read", "write"]);
    assert_eq!(token.roles, ["user"]);
    assert!(token.is_user);
    assert_eq!(token.sid.as_deref(), Some("fam-1"));
    assert_eq!(token.jti, claims["jti"].as_str().unwrap());
    assert_eq!(token.exp, claims["exp"].as_i64().unwrap());
    assert_eq!(token.audience, [AUDIENCE]);
    assert!(token.actors.is_empty());
    assert_eq!(token.actor(), None);
}

#[test]
fn an_exchanged_token_names_its_chain_of_actors_current_first() {
    // payments holds a token that orders obtained by exchange from one the gateway obtained.
    let act = json!({"sub": "orders", "act": {"sub": "gateway", "client": "extra"}});
    let token = check(&key().token(&with(valid_claims(), "act", act))).unwrap();
    assert_eq!(token.actors, ["orders", "gateway"]);
    assert!(token.require_actor("orders").is_ok());
    let refused = token.require_actor("gateway").unwrap_err();
    assert_eq!(refused, VerifyError::WrongActor("gateway".into()));
    assert_eq!(
        (refused.status(), refused.error_code()),
        (403, Some("insufficient_scope"))
    );
    let direct = check(&key().token(&valid_claims())).unwrap();
    assert_eq!(direct.require_actor("orders").unwrap_err().status(), 403);
}

#[test]
fn an_act_claim_that_is_not_a_chain_of_subjects_is_malformed() {
    let mut deep = json!({"sub": "a0"});
    for i in 1..=32 {
        deep = json!({"sub": format!("a{i}"), "act": deep});
    }
    for act in [
        json!("gateway"),
        json!({"act": {"sub": "gateway"}}),
        json!({"sub": 7}),
        json!({"sub": "orders", "act": ["gateway"]}),
        deep,
    ] {
        let token = key().token(&with(valid_claims(), "act", act.clone()));
        assert_eq!(check(&token), Err(VerifyError::Malformed), "{act}");
    }
    let null = key().token(&with(valid_claims(), "act", Value::Null));
    assert!(check(&null).unwrap().actors.is_empty());
}

#[test]
fn alg_none_is_refused_with_or_without_a_signature() {
    let header = json!({"alg": "none", "typ": "at+jwt", "kid": key().kid});
    let unsigned = format!(
        "{}.{}.",
        b64(header.to_string()),
        b64(valid_claims().to_string())
    );
    assert_eq!(check(&unsigned), Err(VerifyError::ForbiddenHeader));
    let signed = key().sign(&header, &valid_claims());
    assert_eq!(check(&signed), Err(VerifyError::ForbiddenHeader));
    let upper = key().sign(&header_with("alg", json!("NONE")), &valid_claims());
    assert_eq!(check(&upper), Err(VerifyError::ForbiddenHeader));
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let header = header_with("alg", json!("HS256"));
    let input = format!(
        "{}.{}",
        b64(header.to_string()),
        b64(valid_claims().to_string())
    );
    for secret in [key().public_der(), key().jwk.to_string().into_bytes()] {
        let hmac = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let tag = aws_lc_rs::hmac::sign(&hmac, input.as_bytes());
        let token = format!("{input}.{}", b64(tag.as_ref()));
        assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader));
    }
}

#[test]
fn switching_rs256_to_ps256_with_the_same_key_is_refused() {
    let ps = header_with("alg", json!("PS256"));
    let token = key().sign_with(&signature::RSA_PSS_SHA256, &ps, &valid_claims());
    assert_eq!(check(&token), Err(VerifyError::WrongAlgorithm));
    // A PSS signature under an RS256 header is simply a bad signature.
    let token = key().sign_with(&signature::RSA_PSS_SHA256, &key().header(), &valid_claims());
    assert_eq!(check(&token), Err(VerifyError::BadSignature));
    let rs512 = key().sign_with(
        &signature::RSA_PKCS1_SHA512,
        &header_with("alg", json!("RS512")),
        &valid_claims(),
    );
    assert_eq!(check(&rs512), Err(VerifyError::WrongAlgorithm));
}

#[test]
fn an_unknown_kid_or_a_kid_that_is_a_path_is_unknown() {
    let token = other_key().token(&valid_claims());
    assert_eq!(check(&token), Err(VerifyError::UnknownKey));
    for kid in ["../../../../dev/null", "/etc/passwd", "", "' OR 1=1 --"] {
        let token = key().sign(&header_with("kid", json!(kid)), &valid_claims());
        assert_eq!(check(&token), Err(VerifyError::UnknownKey), "{kid}");
    }
    let long = key().sign(&header_with("kid", json!("k".repeat(300))), &valid_claims());
    assert_eq!(check(&long), Err(VerifyError::UnknownKey));
    let none = key().sign(&json!({"alg": "RS256", "typ": "at+jwt"}), &valid_claims());
    assert_eq!(check(&none), Err(VerifyError::UnknownKey));
}

#[test]
fn a_token_signed_by_a_foreign_key_under_our_kid_has_a_bad_signature() {
    let token = other_key().sign(&key().header(), &valid_claims());
    assert_eq!(check(&token), Err(VerifyError::BadSignature));
}

#[test]
fn headers_that_name_their_own_key_or_critical_extensions_are_refused() {
    let cases = [
        ("jku", json!("https://evil.test/jwks.json")),
        ("x5u", json!("https://evil.test/cert.pem")),
        ("jwk", other_key().jwk.clone()),
        ("x5c", json!(["MIIB"])),
        ("crit", json!(["exp"])),
        ("crit", json!([])),
        ("crit", Value::Null),
        ("jku", Value::Null),
    ];
    for (member, value) in cases {
        let token = key().sign(&header_with(member, value), &valid_claims());
        assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader), "{member}");
    }
}

#[test]
fn header_members_the_issuer_never_writes_are_refused_whatever_their_value() {
    // JWE's `zip` (a compressed payload) and `enc`, a nested token's `cty`, and members nobody
    // registered: the issuer writes `alg`, `typ` and `kid` and nothing else.
    let cases = [
        ("zip", json!("DEF")),
        ("enc", json!("A256GCM")),
        ("cty", json!("JWT")),
        ("x5t", json!("dGh1bWI")),
        ("x5t#S256", json!("dGh1bWI")),
        ("b64", json!(false)),
        ("epk", json!({})),
        ("note", json!("hello")),
        ("ALG", json!("none")),
        ("zip", Value::Null),
    ];
    for (member, value) in cases {
        let token = key().sign(&header_with(member, value.clone()), &valid_claims());
        assert_eq!(
            check(&token),
            Err(VerifyError::ForbiddenHeader),
            "{member}: {value}"
        );
    }
    // The header as the issuer writes it passes, in any member order.
    let kid = &key().kid;
    let reordered = format!(r#"{{"kid":"{kid}","typ":"at+jwt","alg":"RS256"}}"#);
    let input = format!("{}.{}", b64(&reordered), b64(valid_claims().to_string()));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert!(check(&token).is_ok());
    // An escaped member name is the member it spells: `\u007aip` is `zip`.
    let escaped = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","\u007aip":"DEF"}}"#);
    let input = format!("{}.{}", b64(&escaped), b64(valid_claims().to_string()));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert_eq!(check(&token), Err(VerifyError::ForbiddenHeader));
    let escaped_kid = format!(r#"{{"alg":"RS256","typ":"at+jwt","\u006bid":"{kid}"}}"#);
    let input = format!("{}.{}", b64(&escaped_kid), b64(valid_claims().to_string()));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert!(check(&token).is_ok(), "an escaped name is still kid");
}

#[test]
fn a_header_that_is_not_an_object_or_names_a_member_twice_is_malformed() {
    let kid = &key().kid;
    for header in [
        "[]".to_owned(),
        "null".to_owned(),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","zip":"DEF","zip":"DEF"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","typ":"at+jwt"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","\u0074yp":"at+jwt"}}"#),
    ] {
        let input = format!("{}.{}", b64(&header), b64(valid_claims().to_string()));
        let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
        let result = check(&token);
        assert!(
            matches!(
                result,
                Err(VerifyError::Malformed | VerifyError::ForbiddenHeader)
            ),
            "{header}: {result:?}"
        );
    }
}

#[test]
fn a_stripped_or_altered_signature_or_payload_is_refused() {
    let token = key().token(&valid_claims());
    let (input, sig) = token.rsplit_once('.').unwrap();
    assert_eq!(
        check(&format!("{input}.")),
        Err(VerifyError::ForbiddenHeader)
    );
    assert_eq!(check(input), Err(VerifyError::Malformed));
    let mut altered = sig.as_bytes().to_vec();
    altered[10] = if altered[10] == b'A' { b'B' } else { b'A' };
    let altered = format!("{input}.{}", String::from_utf8(altered).unwrap());
    assert_eq!(check(&altered), Err(VerifyError::BadSignature));
    assert_eq!(
        check(&format!("{input}.!!!")),
        Err(VerifyError::BadSignature)
    );
    let (header, _) = input.split_once('.').unwrap();
    let admin = with(valid_claims(), "roles", json!(["admin"]));
    let forged = format!("{header}.{}.{sig}", b64(admin.to_string()));
    assert_eq!(check(&forged), Err(VerifyError::BadSignature));
}

#[test]
fn expired_tokens_are_refused_beyond_the_leeway_only() {
    let now = now();
    let expired = with(valid_claims(), "exp", json!(now - 60));
    assert_eq!(check(&key().token(&expired)), Err(VerifyError::Expired));
    let just = with(valid_claims(), "exp", json!(now - 2));
    assert!(check(&key().token(&just)).is_ok(), "within the leeway");
}

#[test]
fn tokens_not_valid_yet_are_refused() {
    let future = with(valid_claims(), "nbf", json!(now() + 600));
    assert_eq!(check(&key().token(&future)), Err(VerifyError::NotYetValid));
}

#[test]
fn tokens_issued_in_the_future_are_refused_beyond_the_leeway_only() {
    // The key first: making one takes long enough for the clock to move past a boundary.
    let key = key();
    let now = now();
    // Two seconds past the leeway, so that a second ticking over cannot bring it within.
    for iat in [now + 7, now + 3600, i64::MAX] {
        let future = with(valid_claims(), "iat", json!(iat));
        assert_eq!(
            check(&key.token(&future)),
            Err(VerifyError::NotYetValid),
            "iat {iat}"
        );
    }
    // A replica whose clock runs a little ahead.
    let ahead = with(valid_claims(), "iat", json!(now + 5));
    assert!(check(&key.token(&ahead)).is_ok(), "within the leeway");
}

#[test]
fn the_issuer_must_match_exactly() {
    for iss in [
        "https://evil.test",
        "https://issuer.test/",
        "HTTPS://ISSUER.TEST",
    ] {
        let claims = with(valid_claims(), "iss", json!(iss));
        assert_eq!(
            check(&key().token(&claims)),
            Err(VerifyError::WrongIssuer),
            "{iss}"
        );
    }
}

#[test]
fn the_audience_must_include_ours() {
    let other = with(valid_claims(), "aud", json!("billing"));
    assert_eq!(check(&key().token(&other)), Err(VerifyError::WrongAudience));
    let several = with(valid_claims(), "aud", json!(["billing", AUDIENCE]));
    assert!(check(&key().token(&several)).is_ok());
    let none = with(valid_claims(), "aud", json!([]));
    assert_eq!(check(&key().token(&none)), Err(VerifyError::WrongAudience));
}

#[test]
fn only_at_jwt_is_an_access_token() {
    for typ in [json!("JWT"), json!("jwt"), json!("id+jwt"), json!(1)] {
        let token = key().sign(&header_with("typ", typ.clone()), &valid_claims());
        let result = check(&token);
        assert!(
            matches!(result, Err(VerifyError::WrongType | VerifyError::Malformed)),
            "{typ}: {result:?}"
        );
    }
    let untyped = key().sign(&json!({"alg": "RS256", "kid": key().kid}), &valid_claims());
    assert_eq!(check(&untyped), Err(VerifyError::WrongType));
    let media = key().sign(
        &header_with("typ", json!("application/at+JWT")),
        &valid_claims(),
    );
    assert!(check(&media).is_ok());
}

#[test]
fn a_refresh_token_is_not_an_access_token() {
    let now = now();
    let refresh = json!({
        "iss": ISSUER, "sub": "alice", "aud": ISSUER, "exp": now + 86_400, "iat": now,
        "nbf": now, "jti": "r1", "client_id": "web", "scope": "read", "fam": "fam-1",
    });
    let token = key().sign(&header_with("typ", json!("rt+jwt")), &refresh);
    assert_eq!(check(&token), Err(VerifyError::WrongType));
    // Even relabelled (which breaks the issuer's signature anyway), its audience gives it away.
    let relabelled = key().sign(&key().header(), &refresh);
    assert_eq!(check(&relabelled), Err(VerifyError::WrongAudience));
}

#[test]
fn a_100_kb_token_is_refused_before_any_decoding() {
    let huge = format!(
        "{}.{}.{}",
        "a".repeat(50_000),
        "b".repeat(50_000),
        "c".repeat(400)
    );
    assert_eq!(check(&huge), Err(VerifyError::Malformed));
    let padded = with(valid_claims(), "pad", json!("x".repeat(100_000)));
    assert_eq!(check(&key().token(&padded)), Err(VerifyError::Malformed));
}

#[test]
fn duplicated_json_members_are_refused() {
    let kid = &key().kid;
    let header = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#);
    let input = format!("{}.{}", b64(&header), b64(valid_claims().to_string()));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert_eq!(check(&token), Err(VerifyError::Malformed));
    let kid_twice = format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","kid":"x"}}"#);
    let input = format!("{}.{}", b64(&kid_twice), b64(valid_claims().to_string()));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert_eq!(check(&token), Err(VerifyError::Malformed));

    let claims = valid_claims().to_string();
    let sub_twice = format!(r#"{},"sub":"admin"}}"#, claims.trim_end_matches('}'));
    let input = format!("{}.{}", b64(key().header().to_string()), b64(&sub_twice));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert_eq!(check(&token), Err(VerifyError::Malformed));
}

#[test]
fn invalid_utf8_in_an_ignored_member_is_refused() {
    // serde_json skips the strings of unknown members unchecked; the JSON must be UTF-8 anyway.
    let mut claims = valid_claims().to_string().into_bytes();
    claims.pop();
    claims.extend_from_slice(b",\"note\":\"\x9b\x9e\"}");
    let input = format!("{}.{}", b64(key().header().to_string()), b64(&claims));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert_eq!(check(&token), Err(VerifyError::Malformed));

    let mut header = key().header().to_string().into_bytes();
    header.pop();
    header.extend_from_slice(b",\"note\":\"\xff\"}");
    let input = format!("{}.{}", b64(&header), b64(valid_claims().to_string()));
    let token = key().sign_input(&signature::RSA_PKCS1_SHA256, &input);
    assert_eq!(check(&token), Err(VerifyError::Malformed));
}

#[test]
fn required_claims_must_be_present() {
    for claim in ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"] {
        let token = key().token(&without(valid_claims(), claim));
        assert_eq!(
            check(&token),
            Err(VerifyError::MissingClaim(claim)),
            "{claim}"
        );
    }
    let wrong_type = with(valid_claims(), "exp", json!("tomorrow"));
    assert_eq!(
        check(&key().token(&wrong_type)),
        Err(VerifyError::Malformed)
    );
}

#[test]
fn garbage_is_malformed() {
    for garbage in [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "!!!.e30.e30",
        "e30.e30.e30",
        "bnVsbA.e30.e30",
    ] {
        let result = check(garbage);
        assert!(result.is_err(), "{garbage}: {result:?}");
    }
    assert_eq!(check("a.b.c.d"), Err(VerifyError::Malformed));
}
