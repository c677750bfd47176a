//! The issuer's checks of its own tokens, with fixed clocks and hand-made tokens.

use super::*;
use crate::keys::SigningKey;
use crate::tokens::{Claims, sign};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

const ISSUER: &str = "https://issuer.test";

fn keys() -> KeySet {
    let (key, _) = SigningKey::generate_rsa(2048).unwrap();
    KeySet::from_keys(vec![key]).unwrap()
}

fn claims(now: i64, aud: &str, jti: &str) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: "alice".into(),
        aud: aud.into(),
        exp: now + 60,
        iat: now,
        nbf: now,
        jti: jti.into(),
        client_id: "app".into(),
        scope: "read".into(),
    }
}

fn access(now: i64) -> AccessClaims {
    AccessClaims {
        claims: claims(now, "api", "j1"),
        roles: Some(vec!["user".into()]),
        sid: None,
        act: None,
        subject_client_id: None,
    }
}

fn refresh(now: i64) -> RefreshClaims {
    RefreshClaims {
        claims: Claims {
            exp: now + 600,
            ..claims(now, ISSUER, "r1")
        },
        fam: "f1".into(),
    }
}

fn now() -> i64 {
    crate::domain::now()
}

fn with_header(token: &str, header: serde_json::Value) -> String {
    let mut parts = token.splitn(2, '.');
    parts.next();
    let rest = parts.next().unwrap();
    format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), rest)
}

#[test]
fn a_signed_access_token_verifies_and_round_trips_its_claims() {
    let keys = keys();
    let claims = access(now());
    let token = sign(keys.signer(), TokenKind::Access, &claims).unwrap();
    let verifier = TokenVerifier::new(ISSUER);
    assert_eq!(verifier.verify_access(&keys, &token).unwrap(), claims);
}

#[test]
fn a_refresh_token_is_never_accepted_as_an_access_token_and_back() {
    let keys = keys();
    let verifier = TokenVerifier::new(ISSUER);
    let rt = sign(keys.signer(), TokenKind::Refresh, &refresh(now())).unwrap();
    let at = sign(keys.signer(), TokenKind::Access, &access(now())).unwrap();
    assert!(matches!(
        verifier.verify_access(&keys, &rt),
        Err(TokenError::WrongKind(_))
    ));
    assert!(matches!(
        verifier.verify_refresh(&keys, &at),
        Err(TokenError::WrongKind(_))
    ));
}

#[test]
fn alg_none_is_refused() {
    let keys = keys();
    let token = sign(keys.signer(), TokenKind::Access, &access(now())).unwrap();
    let kid = keys.signer().kid().to_owned();
    let forged = with_header(
        &token,
        serde_json::json!({"alg":"none","typ":"at+jwt","kid":kid}),
    );
    let unsigned = format!("{}.", forged.rsplit_once('.').unwrap().0);
    let verifier = TokenVerifier::new(ISSUER);
    assert!(verifier.verify_access(&keys, &unsigned).is_err());
    assert!(verifier.verify_access(&keys, &forged).is_err());
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let keys = keys();
    let kid = keys.signer().kid().to_owned();
    let header = URL_SAFE_NO_PAD
        .encode(serde_json::json!({"alg":"HS256","typ":"at+jwt","kid":kid}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&access(now())).unwrap());
    let input = format!("{header}.{payload}");
    let secret = serde_json::to_vec(keys.signer().jwk()).unwrap();
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    let result = TokenVerifier::new(ISSUER).verify_access(&keys, &token);
    assert_eq!(result, Err(TokenError::WrongAlgorithm));
}

#[test]
fn a_token_signed_by_another_key_with_our_kid_is_refused() {
    let ours = keys();
    let (other, _) = SigningKey::generate_rsa(2048).unwrap();
    let token = sign(&other, TokenKind::Access, &access(now())).unwrap();
    let forged = with_header(
        &token,
        serde_json::json!({"alg":"RS256","typ":"at+jwt","kid": ours.signer().kid()}),
    );
    let result = TokenVerifier::new(ISSUER).verify_access(&ours, &forged);
    assert_eq!(result, Err(TokenError::BadSignature));
    let result = TokenVerifier::new(ISSUER).verify_access(&ours, &token);
    assert_eq!(result, Err(TokenError::UnknownKey));
}

#[test]
fn expired_and_not_yet_valid_tokens_are_refused() {
    let keys = keys();
    let verifier = TokenVerifier::new(ISSUER);
    let mut old = access(now() - 3600);
    old.claims.exp = now() - 60;
    let token = sign(keys.signer(), TokenKind::Access, &old).unwrap();
    assert_eq!(
        verifier.verify_access(&keys, &token),
        Err(TokenError::Expired)
    );
    let mut future = access(now());
    future.claims.nbf = now() + 600;
    let token = sign(keys.signer(), TokenKind::Access, &future).unwrap();
    assert_eq!(
        verifier.verify_access(&keys, &token),
        Err(TokenError::NotYetValid)
    );
}

#[test]
fn a_token_of_another_issuer_is_refused() {
    let keys = keys();
    let mut claims = access(now());
    claims.claims.iss = "https://evil.test".into();
    let token = sign(keys.signer(), TokenKind::Access, &claims).unwrap();
    let result = TokenVerifier::new(ISSUER).verify_access(&keys, &token);
    assert_eq!(result, Err(TokenError::WrongIssuer));
}

#[test]
fn a_refresh_token_for_another_audience_is_refused() {
    let keys = keys();
    let mut claims = refresh(now());
    claims.claims.aud = "api".into();
    let token = sign(keys.signer(), TokenKind::Refresh, &claims).unwrap();
    let result = TokenVerifier::new(ISSUER).verify_refresh(&keys, &token);
    assert_eq!(result, Err(TokenError::WrongAudience));
}

#[test]
fn a_header_pointing_to_a_foreign_key_is_refused() {
    let keys = keys();
    let token = sign(keys.signer(), TokenKind::Access, &access(now())).unwrap();
    let kid = keys.signer().kid().to_owned();
    let forged = with_header(
        &token,
        serde_json::json!({"alg":"RS256","typ":"at+jwt","kid":kid,"jku":"https://evil.test/jwks"}),
    );
    let result = TokenVerifier::new(ISSUER).verify_access(&keys, &forged);
    assert_eq!(result, Err(TokenError::ForeignKeyReference));
}

/// A token signed by our key with `header` written exactly as given.
fn signed_with_header(keys: &KeySet, header: &str, claims: &impl serde::Serialize) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
    );
    let signature = keys.signer().sign(input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[test]
fn header_members_this_issuer_does_not_implement_are_refused() {
    let keys = keys();
    let kid = keys.signer().kid().to_owned();
    let verifier = TokenVerifier::new(ISSUER);
    let claims = access(now());
    for (member, value) in [
        ("crit", r#"["exp"]"#),
        ("crit", "[]"),
        ("zip", r#""DEF""#),
        ("enc", r#""A256GCM""#),
        ("cty", r#""JWT""#),
        ("x5t", r#""dGh1bWI""#),
        ("b64", "false"),
        ("note", r#""hello""#),
        ("zip", "null"),
        ("\\u007aip", r#""DEF""#),
    ] {
        let header =
            format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","{member}":{value}}}"#);
        let token = signed_with_header(&keys, &header, &claims);
        assert_eq!(
            verifier.verify_access(&keys, &token),
            Err(TokenError::UnsupportedHeader),
            "{header}"
        );
    }
    // Exactly the three members, in any order, pass.
    let header = format!(r#"{{"kid":"{kid}","alg":"RS256","typ":"at+jwt"}}"#);
    let token = signed_with_header(&keys, &header, &claims);
    assert_eq!(verifier.verify_access(&keys, &token), Ok(claims.clone()));
}

#[test]
fn a_header_that_names_a_member_twice_or_is_not_an_object_is_malformed() {
    let keys = keys();
    let kid = keys.signer().kid().to_owned();
    let verifier = TokenVerifier::new(ISSUER);
    let claims = access(now());
    for header in [
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","alg":"none"}}"#),
        format!(r#"{{"alg":"none","typ":"at+jwt","kid":"{kid}","alg":"RS256"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","\u0061lg":"RS256"}}"#),
        format!(r#"{{"alg":"RS256","typ":"at+jwt","kid":"{kid}","zip":"DEF","zip":1}}"#),
        "[]".to_owned(),
        r#"{"alg":"RS256"} trailing"#.to_owned(),
    ] {
        let token = signed_with_header(&keys, &header, &claims);
        assert_eq!(
            verifier.verify_access(&keys, &token),
            Err(TokenError::Malformed),
            "{header}"
        );
    }
}

#[test]
fn a_token_is_expired_at_its_exact_exp() {
    let keys = keys();
    let verifier = TokenVerifier::new(ISSUER);
    let issued = now();
    let claims = access(issued);
    let exp = claims.exp;
    let token = sign(keys.signer(), TokenKind::Access, &claims).unwrap();
    assert!(verifier.verify_access_at(&keys, &token, exp - 1).is_ok());
    for at in [exp, exp + 1, exp + LEEWAY] {
        assert_eq!(
            verifier.verify_access_at(&keys, &token, at),
            Err(TokenError::Expired),
            "{at}"
        );
    }
    let refresh = refresh(issued);
    let token = sign(keys.signer(), TokenKind::Refresh, &refresh).unwrap();
    assert!(
        verifier
            .verify_refresh_at(&keys, &token, refresh.exp - 1)
            .is_ok()
    );
    assert_eq!(
        verifier.verify_refresh_at(&keys, &token, refresh.exp),
        Err(TokenError::Expired)
    );
}

#[test]
fn a_token_issued_in_the_future_is_refused_beyond_the_leeway() {
    let keys = keys();
    let verifier = TokenVerifier::new(ISSUER);
    let now = now();
    for iat in [now + LEEWAY + 1, now + 3600] {
        let mut claims = access(now);
        claims.claims.iat = iat;
        let token = sign(keys.signer(), TokenKind::Access, &claims).unwrap();
        assert_eq!(
            verifier.verify_access_at(&keys, &token, now),
            Err(TokenError::NotYetValid),
            "iat {iat}"
        );
        let mut claims = refresh(now);
        claims.claims.iat = iat;
        let token = sign(keys.signer(), TokenKind::Refresh, &claims).unwrap();
        assert_eq!(
            verifier.verify_refresh_at(&keys, &token, now),
            Err(TokenError::NotYetValid),
            "iat {iat}"
        );
    }
    // Another replica's clock a little ahead: `iat` and `nbf` within the leeway pass.
    let mut ahead = access(now);
    ahead.claims.iat = now + LEEWAY;
    ahead.claims.nbf = now + LEEWAY;
    let token = sign(keys.signer(), TokenKind::Access, &ahead).unwrap();
    assert!(verifier.verify_access_at(&keys, &token, now).is_ok());
}

/// `n` distinct names of exactly `len` characters.
fn names(prefix: char, n: usize, len: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i:0>width$}", width = len - 1))
        .collect()
}

#[test]
fn the_largest_token_the_limits_allow_fits_under_every_size_limit_on_its_path() {
    use crate::domain::{Role, Scope, TokenId, Username, check_audience, check_roles, limits};
    // Every value at its limit, each accepted by the rule that bounds it.
    let issuer = format!("https://{}", "i".repeat(limits::MAX_ISSUER_LEN - 8));
    let sub = Username::parse("u".repeat(limits::MAX_NAME_LEN)).unwrap();
    let client_id = "c".repeat(limits::MAX_NAME_LEN);
    let aud = "a".repeat(limits::MAX_AUDIENCE_LEN);
    check_audience(&aud).unwrap();
    check_audience(&issuer).unwrap();
    let scope = Scope::from_tokens(names('s', limits::MAX_SCOPES, limits::MAX_SCOPE_LEN)).unwrap();
    let roles = names('r', limits::MAX_ROLES, limits::MAX_NAME_LEN);
    check_roles(&roles).unwrap();
    assert!(roles.iter().all(|r| Role::parse(r.as_str()).is_ok()));
    // The largest signature: RSA-4096 (512 bytes); ES256 and EdDSA sign with 64.
    let (key, _) = SigningKey::generate_rsa(4096).unwrap();
    let keys = KeySet::from_keys(vec![key]).unwrap();
    let now = now();
    // `exp` of a refresh token is as far off as `tokens.refresh_ttl` says: count 20 digits.
    let far = 10_i64.pow(18);
    let claims = Claims {
        iss: issuer.clone(),
        sub: sub.to_string(),
        aud,
        exp: far,
        iat: now,
        nbf: now,
        jti: TokenId::generate().to_string(),
        client_id,
        scope: scope.to_string(),
    };
    let access = AccessClaims {
        claims: claims.clone(),
        roles: Some(roles),
        sid: Some(TokenId::generate().to_string()),
        act: None,
        subject_client_id: None,
    };
    let token = sign(keys.signer(), TokenKind::Access, &access).unwrap();
    let refresh = RefreshClaims {
        claims: Claims {
            aud: issuer.clone(),
            ..claims
        },
        fam: TokenId::generate().to_string(),
    };
    let refresh_token = sign(keys.signer(), TokenKind::Refresh, &refresh).unwrap();
    println!(
        "largest access token: {} bytes, refresh token: {} bytes",
        token.len(),
        refresh_token.len()
    );
    // Under the issuer's own limit (and latchkey-verify's default, the same 8 KiB) with room
    // to spare: a longer `exp` (3 digits more at most) and a larger JSON key order change
    // cannot use it up.
    assert!(token.len() + 256 <= MAX_TOKEN_BYTES, "{}", token.len());
    assert!(refresh_token.len() + 256 <= MAX_TOKEN_BYTES);
    // An `Authorization: Bearer` header line within the 8 KiB of common proxies (nginx's
    // large_client_header_buffers), and so within hyper's HTTP/2 header list of 16 KiB.
    assert!("Authorization: Bearer ".len() + token.len() + 2 <= 8 * 1024);
    // A revocation or introspection body with it and a client's credentials (a 64-character
    // id, percent-encoded at worst, and a secret) within the least `server.max_body_bytes`.
    let body = format!(
        "token={token}&token_type_hint=access_token&client_id={}&client_secret={}",
        "%41".repeat(64),
        "s".repeat(43)
    );
    assert!(body.len() <= crate::configuration::MIN_BODY_BYTES);
    // And it verifies: every token the issuer issues, it accepts itself.
    let verifier = TokenVerifier::new(issuer);
    assert_eq!(verifier.verify_access(&keys, &token), Ok(access));
    assert_eq!(verifier.verify_refresh(&keys, &refresh_token), Ok(refresh));
}

#[test]
fn the_issuer_never_signs_a_token_it_would_refuse() {
    let keys = keys();
    let mut claims = access(now());
    claims.roles = Some(names('r', 1500, 64));
    let refused = sign(keys.signer(), TokenKind::Access, &claims);
    assert!(
        matches!(refused, Err(crate::keys::KeyError::Refused(_))),
        "{refused:?}"
    );
}

#[test]
fn signing_the_same_claims_twice_gives_the_same_token() {
    let keys = keys();
    let claims = refresh(now());
    let a = sign(keys.signer(), TokenKind::Refresh, &claims).unwrap();
    let b = sign(keys.signer(), TokenKind::Refresh, &claims).unwrap();
    assert_eq!(a, b);
}

#[test]
fn oversized_and_garbage_tokens_are_malformed() {
    let keys = keys();
    let verifier = TokenVerifier::new(ISSUER);
    assert_eq!(
        verifier.verify_access(&keys, "garbage"),
        Err(TokenError::Malformed)
    );
    let huge = format!("a.{}.c", "b".repeat(100_000));
    assert_eq!(
        verifier.verify_access(&keys, &huge),
        Err(TokenError::Malformed)
    );
}
