//! Verification of the tokens this issuer signed.
//!
//! The algorithm comes from the key named by `kid`, never from the token's header, and the
//! header may carry nothing that points elsewhere for a key.

use jsonwebtoken::{Validation, decode, decode_header};
use serde::de::DeserializeOwned;

use super::{AccessClaims, RefreshClaims, TokenKind};
use crate::keys::KeySet;

/// Why a token was refused. The messages are safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token is not a {0}")]
    WrongKind(&'static str),
    #[error("the token names no key of this issuer")]
    UnknownKey,
    #[error("the token's algorithm does not match its key")]
    WrongAlgorithm,
    #[error("the token's header points to a key elsewhere")]
    ForeignKeyReference,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
}

/// Clock skew tolerated between replicas, in seconds.
const LEEWAY: u64 = 5;

/// Verifies tokens against the issuer's own keys.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuer: String,
}

impl TokenVerifier {
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
        }
    }

    /// An access token of this issuer, for any audience.
    pub fn verify_access(&self, keys: &KeySet, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify(keys, token, TokenKind::Access, None)
    }

    /// A refresh token of this issuer; its audience must be the issuer itself.
    pub fn verify_refresh(&self, keys: &KeySet, token: &str) -> Result<RefreshClaims, TokenError> {
        self.verify(keys, token, TokenKind::Refresh, Some(&self.issuer))
    }

    fn verify<C: DeserializeOwned>(
        &self,
        keys: &KeySet,
        token: &str,
        kind: TokenKind,
        audience: Option<&str>,
    ) -> Result<C, TokenError> {
        // Tokens of this issuer are a few hundred bytes; refuse huge input before decoding it.
        if token.len() > 8 * 1024 || token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Malformed);
        }
        let header = decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.typ.as_deref() != Some(kind.typ()) {
            return Err(TokenError::WrongKind(match kind {
                TokenKind::Access => "access token",
                TokenKind::Refresh => "refresh token",
            }));
        }
        if header.jku.is_some()
            || header.jwk.is_some()
            || header.x5u.is_some()
            || header.x5c.is_some()
            || header.crit.is_some()
        {
            return Err(TokenError::ForeignKeyReference);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = keys.find(kid).ok_or(TokenError::UnknownKey)?;
        let algorithm = key.algorithm().to_jsonwebtoken();
        if header.alg != algorithm {
            return Err(TokenError::WrongAlgorithm);
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "sub", "aud"]);
        match audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        decode::<C>(token, key.decoding_key(), &validation)
            .map(|data| data.claims)
            .map_err(classify)
    }
}

fn classify(error: jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
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
}
