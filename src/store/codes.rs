//! Authorization codes as the store keeps them: under the SHA-256 of the code (a copy of the
//! store holds no code that could be redeemed), live for a minute, then remembered as spent a
//! while longer so that a late second use still revokes what the first one issued.

use serde::{Deserialize, Serialize};

use crate::domain::{ClientId, Scope, TokenId, UnixTime, Username};

/// How long a redeemed or expired code is remembered after its expiry, in seconds: a second
/// use within it revokes the session the first use opened (RFC 6749 §4.1.2, RFC 9700
/// §4.5.3.1); later, the code is merely unknown.
pub const SPENT_CODE_MEMORY: i64 = 3600;

/// What a code was issued for; the token endpoint checks the request against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCode {
    pub client_id: ClientId,
    pub redirect_uri: String,
    /// The PKCE S256 challenge (base64url, no padding).
    pub code_challenge: String,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub username: Username,
    /// When the user signed in (OpenID Connect `auth_time`).
    pub auth_time: UnixTime,
    /// The browser's sign-in session the code was made in, named in the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The code may be redeemed before this second, not at it.
    pub expires_at: UnixTime,
}

impl AuthorizationCode {
    /// Until when the store keeps the code: its life, then the memory of a spent code.
    pub fn keep_until(&self) -> UnixTime {
        self.expires_at.saturating_add(SPENT_CODE_MEMORY)
    }
}

/// What redeeming a code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeRedemption {
    /// The first use of a live code: it is spent now, and remembers the family given.
    Redeemed(AuthorizationCode),
    /// The code was redeemed before and opened `family`: this use is a replay, and the code
    /// is now marked as replayed.
    Spent { family: TokenId },
    /// Unknown, or expired unused.
    Invalid,
}
