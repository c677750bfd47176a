//! Access and refresh tokens: their claims, signing as compact JWS, and verification.

mod verify;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::keys::{KeyError, SigningKey};

pub use verify::{LEEWAY, TokenError, TokenVerifier};

pub use crate::domain::limits::MAX_TOKEN_BYTES;

/// The JOSE `typ` of each kind of token. It is part of the signed header, so one kind can never
/// be passed off as the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// RFC 9068 access token.
    Access,
    Refresh,
    /// OpenID Connect ID token: `typ` `JWT`, as relying parties expect. Never accepted by the
    /// issuer as a credential (its `aud` is a client, and no verifier here takes `JWT`).
    Id,
    /// A sign-in form's pending authorization request (`oauth::authorize`), signed so that the
    /// form carries it without the store; accepted only by the sign-in form's handler.
    SignIn,
    /// A browser's sign-in session (the `latchkey_session` cookie); accepted only by the
    /// authorization and logout endpoints.
    Session,
    /// A logout confirmation form's pending logout (`oauth::logout`); accepted only by the
    /// logout form's handler.
    Logout,
}

impl TokenKind {
    pub fn typ(self) -> &'static str {
        match self {
            TokenKind::Access => "at+jwt",
            TokenKind::Refresh => "rt+jwt",
            TokenKind::Id => "JWT",
            TokenKind::SignIn => "signin+jwt",
            TokenKind::Session => "session+jwt",
            TokenKind::Logout => "logout+jwt",
        }
    }
}

/// The claims every token of this issuer carries (RFC 7519 registered claims plus RFC 9068's
/// `client_id` and `scope`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
}

/// RFC 9068 access-token claims, plus `roles` for users and `sid` naming the refresh-token
/// family (the session) the token was issued in, so revoking the family reaches it too.
///
/// A token from token exchange (RFC 8693) also carries `act`, the chain of actors, and
/// `subject_client_id`, the client the chain began with: a client's removal ends every token
/// issued through it, and these name every client an exchanged token went through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    #[serde(flatten)]
    pub claims: Claims,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Act>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_client_id: Option<String>,
}

impl AccessClaims {
    /// Every client the token was issued through: its `client_id`, each actor of its `act`
    /// chain (actors are clients), and the client its exchange chain began with.
    pub fn clients(&self) -> Vec<&str> {
        let mut clients = vec![self.claims.client_id.as_str()];
        clients.extend(self.act.iter().flat_map(Act::actors));
        clients.extend(self.subject_client_id.as_deref());
        clients.sort_unstable();
        clients.dedup();
        clients
    }
}

/// RFC 8693 §4.1 `act`: who acts for the token's subject, and, nested, for whom that actor was
/// acting in turn (the newest actor outermost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Act {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Act>>,
}

impl Act {
    /// The actors, the current one first.
    pub fn actors(&self) -> impl Iterator<Item = &str> {
        std::iter::successors(Some(self), |link| link.act.as_deref()).map(|link| link.sub.as_str())
    }

    /// How many actors the chain names.
    pub fn depth(&self) -> usize {
        self.actors().count()
    }
}

/// Refresh-token claims: the audience is the issuer itself, `fam` names the family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshClaims {
    #[serde(flatten)]
    pub claims: Claims,
    pub fam: String,
}

impl std::ops::Deref for AccessClaims {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

impl std::ops::Deref for RefreshClaims {
    type Target = Claims;
    fn deref(&self) -> &Claims {
        &self.claims
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    typ: &'static str,
    kid: &'a str,
}

/// Signs `claims` as a compact JWS with `key`. RSA PKCS#1 v1.5 signatures are deterministic,
/// so the same claims and key always give the same token.
pub fn sign<C: Serialize>(
    key: &SigningKey,
    kind: TokenKind,
    claims: &C,
) -> Result<String, KeyError> {
    let header = serde_json::to_vec(&Header {
        alg: key.algorithm().as_str(),
        typ: kind.typ(),
        kid: key.kid(),
    })
    .map_err(|_| KeyError::Signing)?;
    let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Signing)?;
    let mut token = String::with_capacity(64 + (header.len() + payload.len()) * 4 / 3 + 350);
    URL_SAFE_NO_PAD.encode_string(&header, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
    // Every token the issuer issues, it accepts itself: never hand out one it would refuse.
    if token.len() > MAX_TOKEN_BYTES {
        return Err(KeyError::Refused(format!(
            "a {} token of {} bytes exceeds the {MAX_TOKEN_BYTES} bytes the issuer accepts; \
             the subject's roles or the client's scopes exceed the limits",
            kind.typ(),
            token.len()
        )));
    }
    Ok(token)
}
