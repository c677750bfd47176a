//! Verification of the tokens this issuer signed.
//!
//! The header is read here, not by jsonwebtoken (whose `decode_header` drops members it does not
//! know): it must be a JSON object of exactly `alg`, `typ` and `kid`, each once, as [`super::sign`]
//! writes it. Anything else is refused: members that point to a key elsewhere (`jku`, `jwk`,
//! `x5u`, `x5c`), `crit` (RFC 7515 §4.1.11: extensions this issuer does not implement), the JWE
//! members `zip` and `enc`, `cty` (a nested token), and any member nobody registered. The
//! algorithm comes from the key named by `kid`, never from the header.
//!
//! Times: the issuer's own answers (bearer checks, introspection, the refresh grant) call a token
//! expired at its exact `exp`; the leeway is for resource servers' clocks, not for the issuer's
//! own answer. `nbf` and `iat` keep [`LEEWAY`] for clock skew between replicas: a token issued
//! by a replica whose clock runs ahead passes, one that claims to be issued further in the future
//! does not.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::{AccessClaims, Claims, MAX_TOKEN_BYTES, RefreshClaims, TokenKind};
use crate::domain::UnixTime;
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
    /// `crit`, `zip`, `enc`, `cty` or any member besides `alg`, `typ` and `kid`.
    #[error("the token's header has a member this issuer does not implement")]
    UnsupportedHeader,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    /// `nbf` or `iat` later than now plus the leeway.
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued by another issuer")]
    WrongIssuer,
    #[error("the token is for another audience")]
    WrongAudience,
}

/// Clock skew tolerated between replicas on `nbf` and `iat`, in seconds. Never on `exp`.
pub const LEEWAY: i64 = 5;

/// The largest decoded header accepted: the issuer's own are under 100 bytes.
const MAX_HEADER_BYTES: usize = 1024;

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

    /// An access token of this issuer, for any audience, live now.
    pub fn verify_access(&self, keys: &KeySet, token: &str) -> Result<AccessClaims, TokenError> {
        self.verify_access_at(keys, token, crate::domain::now())
    }

    /// An access token of this issuer, for any audience, live at `now` (Unix seconds).
    pub fn verify_access_at(
        &self,
        keys: &KeySet,
        token: &str,
        now: UnixTime,
    ) -> Result<AccessClaims, TokenError> {
        self.verify(keys, token, TokenKind::Access, None, now)
    }

    /// A refresh token of this issuer, live now; its audience must be the issuer itself.
    pub fn verify_refresh(&self, keys: &KeySet, token: &str) -> Result<RefreshClaims, TokenError> {
        self.verify_refresh_at(keys, token, crate::domain::now())
    }

    /// A refresh token of this issuer, live at `now` (Unix seconds).
    pub fn verify_refresh_at(
        &self,
        keys: &KeySet,
        token: &str,
        now: UnixTime,
    ) -> Result<RefreshClaims, TokenError> {
        self.verify(keys, token, TokenKind::Refresh, Some(&self.issuer), now)
    }

    /// A token of `kind` that this issuer signed for itself (a sign-in form's pending request,
    /// a browser's sign-in session), live at `now`.
    pub fn verify_own_at<C>(
        &self,
        keys: &KeySet,
        token: &str,
        kind: TokenKind,
        now: UnixTime,
    ) -> Result<C, TokenError>
    where
        C: DeserializeOwned + std::ops::Deref<Target = Claims>,
    {
        self.verify(keys, token, kind, Some(&self.issuer), now)
    }

    /// An ID token this issuer signed, for any client (its `aud`), live at `now`.
    pub fn verify_id_token_at<C>(
        &self,
        keys: &KeySet,
        token: &str,
        now: UnixTime,
    ) -> Result<C, TokenError>
    where
        C: DeserializeOwned + std::ops::Deref<Target = Claims>,
    {
        self.verify(keys, token, TokenKind::Id, None, now)
    }

    fn verify<C>(
        &self,
        keys: &KeySet,
        token: &str,
        kind: TokenKind,
        audience: Option<&str>,
        now: UnixTime,
    ) -> Result<C, TokenError>
    where
        C: DeserializeOwned + std::ops::Deref<Target = Claims>,
    {
        // Refuse huge input before decoding it: every token this issuer signs is smaller (the
        // limits on names, roles, scopes and audiences see to that, `tokens::sign` checks it).
        if token.len() > MAX_TOKEN_BYTES || token.bytes().filter(|b| *b == b'.').count() != 2 {
            return Err(TokenError::Malformed);
        }
        let header = Header::read(token)?;
        if header.typ.as_deref() != Some(kind.typ()) {
            return Err(TokenError::WrongKind(match kind {
                TokenKind::Access => "access token",
                TokenKind::Refresh => "refresh token",
                TokenKind::Id => "ID token",
                TokenKind::SignIn => "sign-in form",
                TokenKind::Session => "sign-in session",
                TokenKind::Logout => "logout form",
            }));
        }
        if header.foreign_key {
            return Err(TokenError::ForeignKeyReference);
        }
        if header.unsupported {
            return Err(TokenError::UnsupportedHeader);
        }
        let kid = header.kid.as_deref().ok_or(TokenError::UnknownKey)?;
        let key = keys.find(kid).ok_or(TokenError::UnknownKey)?;
        if header.alg.as_deref() != Some(key.algorithm().as_str()) {
            return Err(TokenError::WrongAlgorithm);
        }
        // The signature first, with the key parsed when it was loaded and only its algorithm;
        // nothing of the payload is read before it holds.
        let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        if !key.verify(message.as_bytes(), &signature) {
            return Err(TokenError::BadSignature);
        }
        let (_, payload) = message.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| TokenError::Malformed)?;
        // Every registered claim the issuer writes is a required field of `Claims`: a token
        // without one is malformed.
        let claims: C = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if audience.is_some_and(|aud| claims.aud != aud) {
            return Err(TokenError::WrongAudience);
        }
        check_times(&claims, now)?;
        Ok(claims)
    }
}

/// `exp` exactly (RFC 7519 §4.1.4: the token must not be accepted on or after it); `nbf` and
/// `iat` no later than now plus the leeway.
fn check_times(claims: &Claims, now: UnixTime) -> Result<(), TokenError> {
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    let latest = now.saturating_add(LEEWAY);
    if claims.nbf > latest || claims.iat > latest {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// The members of a token's header, read strictly: a JSON object (UTF-8, RFC 8259 §8.1) in
/// which no member appears twice.
#[derive(Debug, Default)]
struct Header {
    alg: Option<String>,
    typ: Option<String>,
    kid: Option<String>,
    /// `jku`, `jwk`, `x5u` or `x5c`: a key named by the token itself.
    foreign_key: bool,
    /// Any other member: `crit`, `zip`, `enc`, `cty`, `x5t`, or one nobody registered.
    unsupported: bool,
}

impl Header {
    fn read(token: &str) -> Result<Header, TokenError> {
        let encoded = token.split('.').next().unwrap_or_default();
        if encoded.is_empty() || encoded.len() > MAX_HEADER_BYTES.div_ceil(3) * 4 {
            return Err(TokenError::Malformed);
        }
        let decoded = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| TokenError::Malformed)?;
        let text = std::str::from_utf8(&decoded).map_err(|_| TokenError::Malformed)?;
        serde_json::from_str(text).map_err(|_| TokenError::Malformed)
    }
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JOSE header object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut header = Header::default();
        let mut seen: Vec<String> = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if seen.contains(&name) {
                // `{"alg":"RS256","alg":"none"}` must not mean one thing here, another elsewhere.
                return Err(de::Error::custom("a header member appears twice"));
            }
            match name.as_str() {
                "alg" => header.alg = Some(map.next_value()?),
                "typ" => header.typ = Some(map.next_value()?),
                "kid" => header.kid = Some(map.next_value()?),
                "jku" | "jwk" | "x5u" | "x5c" => {
                    map.next_value::<IgnoredAny>()?;
                    header.foreign_key = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    header.unsupported = true;
                }
            }
            seen.push(name);
        }
        Ok(header)
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
