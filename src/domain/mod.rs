//! Newtypes for the identifiers, secrets and sets that flow through the service.
//!
//! Each type validates on construction, so code that holds one never has to ask again whether a
//! username is well formed or a scope string is canonical.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

mod secret;

pub use secret::{
    MultipleLines, PasswordPolicyError, Secret, TokenId, check_password_policy, random_bytes,
    random_token,
};

/// Seconds since the Unix epoch. Time is always passed in, never read deep inside logic.
pub type UnixTime = i64;

/// The current time as Unix seconds.
pub fn now() -> UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The current time as Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Bounds on everything that goes into a token, so that every token the issuer signs is one it
/// accepts itself, and so do latchkey-verify, HTTP servers and proxies (an `Authorization`
/// header) and the body limit of `/oauth/revoke` and `/oauth/introspect`.
///
/// The largest access token they allow (a 64-character `sub` and `client_id`, a 256-character
/// `aud` and `iss`, 32 scopes and 32 roles of 64 characters each, `sid` and `jti`), signed with
/// an RSA-4096 key, is under 7.5 KiB: below the 8 KiB [`limits::MAX_TOKEN_BYTES`] of the issuer
/// and latchkey-verify, hyper's 16 KiB HTTP/2 header list and ~400 KiB HTTP/1 header buffer,
/// common proxies' 8 KiB header line, and the 16 KiB least `server.max_body_bytes`. A test in
/// `tokens` signs that token and checks it.
pub mod limits {
    /// Usernames, client ids and role names: characters.
    pub const MAX_NAME_LEN: usize = 64;
    /// Roles one user may hold.
    pub const MAX_ROLES: usize = 32;
    /// One scope token: characters.
    pub const MAX_SCOPE_LEN: usize = 64;
    /// Scope tokens in one set: a client's scopes, `tokens.admin_scopes`, and so any token's.
    pub const MAX_SCOPES: usize = 32;
    /// One audience (a client's, `tokens.audience`): characters.
    pub const MAX_AUDIENCE_LEN: usize = 256;
    /// Audiences one client may ask for besides the default (a token carries one).
    pub const MAX_AUDIENCES: usize = 32;
    /// The issuer URL (`iss`, and `aud` of refresh tokens): characters.
    pub const MAX_ISSUER_LEN: usize = 256;
    /// The largest token the issuer accepts, its own included (`TokenVerifier` refuses anything
    /// longer before decoding it), and so the largest it signs. The limits on names, roles, scopes
    /// and audiences (above) keep every token well under it: the largest one
    /// they allow, signed with an RSA-4096 key, is about 6 KiB (a test in `tokens` checks it).
    pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct InvalidIdentifier {
    pub what: &'static str,
    pub reason: &'static str,
}

const LONGER_THAN_A_NAME: &str = "must be at most 64 characters";
const _: () = assert!(
    limits::MAX_NAME_LEN == 64,
    "LONGER_THAN_A_NAME names the limit"
);

/// The punctuation every kind of name may hold besides letters and digits.
const NAME_PUNCTUATION: &[u8] = b"._-@";
/// Usernames may also hold `+`: email addresses with a tag (`ann+work@example.com`) are common
/// usernames in the systems users are brought from. Client ids and roles may not, so no
/// username can ever be read as a client id.
const USERNAME_PUNCTUATION: &[u8] = b"._-@+";

fn check_identifier(
    what: &'static str,
    value: &str,
    punctuation: &[u8],
) -> Result<(), InvalidIdentifier> {
    let refuse = |reason| Err(InvalidIdentifier { what, reason });
    if value.is_empty() {
        return refuse("must not be empty");
    }
    // `.` and `..` are path segments no HTTP client sends as they are (so `/admin/users/..`
    // could never be reached), and a leading `-` reads as an option on a command line.
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return refuse("must start with a letter or a digit");
    }
    if value.len() > limits::MAX_NAME_LEN {
        return refuse(LONGER_THAN_A_NAME);
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || punctuation.contains(&b))
    {
        return refuse(if punctuation.contains(&b'+') {
            "may contain only letters, digits and . _ - @ +"
        } else {
            "may contain only letters, digits and . _ - @"
        });
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $punctuation:expr, $canonical:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The identifier in its canonical form, if it is well formed.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidIdentifier> {
                let canonical: fn(String) -> String = $canonical;
                let value = canonical(value.into());
                check_identifier($what, &value, $punctuation)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidIdentifier;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

identifier!(
    /// A user's login name; also the `sub` of the user's tokens. Usernames are
    /// case-insensitive: the canonical form, which is stored, signed into tokens, counted by
    /// the login limits and used by the admin API, is ASCII lowercase, so `Alice` and `ALICE`
    /// both name the user `alice`.
    Username,
    "username",
    USERNAME_PUNCTUATION,
    |mut value| {
        value.make_ascii_lowercase();
        value
    }
);
identifier!(
    /// A registered OAuth client. Client ids are compared exactly, as RFC 6749 has it (a
    /// client id never equals a username, whatever the case: see the store's name claims).
    ClientId,
    "client_id",
    NAME_PUNCTUATION,
    |value| value
);
identifier!(
    /// A role a user holds; also an entry of the `roles` claim of the user's access tokens.
    Role,
    "role",
    NAME_PUNCTUATION,
    |value| value
);

/// The role that opens the admin API and the admin-only scopes (`tokens.admin_scopes`).
pub const ADMIN_ROLE: &str = "admin";

/// A set of values refused as a whole or for one of its members, with a message that says why
/// and echoes at most the first 64 characters of the member at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidSet(String);

/// `value` as a message may echo it: its first 64 characters.
fn echo(value: &str) -> String {
    let mut chars = value.chars();
    let shown: String = chars.by_ref().take(64).collect();
    if chars.next().is_some() {
        format!("{shown}...")
    } else {
        shown
    }
}

/// A user's roles: at most [`limits::MAX_ROLES`], each a valid [`Role`].
pub fn check_roles<'a>(roles: impl IntoIterator<Item = &'a String>) -> Result<(), InvalidSet> {
    let mut count = 0;
    for role in roles {
        count += 1;
        if let Err(error) = Role::parse(role.as_str()) {
            return Err(InvalidSet(format!(
                "'{}' is not a valid role name: {error}",
                echo(role)
            )));
        }
    }
    if count > limits::MAX_ROLES {
        return Err(InvalidSet(format!(
            "a user may have at most {} roles, not {count}",
            limits::MAX_ROLES
        )));
    }
    Ok(())
}

/// One audience (`aud`): 1 to [`limits::MAX_AUDIENCE_LEN`] printable ASCII characters other than
/// space, quote and backslash (a URI or a name, never anything JSON must escape).
pub fn check_audience(audience: &str) -> Result<(), InvalidSet> {
    if audience.is_empty() || audience.len() > limits::MAX_AUDIENCE_LEN {
        return Err(InvalidSet(format!(
            "an audience must be 1 to {} characters; '{}' is {}",
            limits::MAX_AUDIENCE_LEN,
            echo(audience),
            audience.chars().count()
        )));
    }
    if !audience.bytes().all(is_nqchar) {
        return Err(InvalidSet(format!(
            "'{}' is not a valid audience: it may contain only printable ASCII other than \
             space, quote and backslash",
            echo(audience)
        )));
    }
    Ok(())
}

/// Whether `audience` is one the issuer keeps for itself: the issuer (the audience of refresh
/// tokens) or the endpoint URL a client assertion may name as its audience. Other URLs under the
/// issuer may be resource servers of the same site.
pub fn is_issuers_own_audience(audience: &str, issuer: &str) -> bool {
    const ASSERTION_AUDIENCES: [&str; 4] =
        ["", "/oauth/token", "/oauth/revoke", "/oauth/introspect"];
    audience
        .trim_end_matches('/')
        .strip_prefix(issuer.trim_end_matches('/'))
        .is_some_and(|path| ASSERTION_AUDIENCES.contains(&path))
}

/// A client's audiences: at most [`limits::MAX_AUDIENCES`], each valid.
pub fn check_audiences<'a>(
    audiences: impl IntoIterator<Item = &'a String>,
) -> Result<(), InvalidSet> {
    let mut count = 0;
    for audience in audiences {
        count += 1;
        check_audience(audience)?;
    }
    if count > limits::MAX_AUDIENCES {
        return Err(InvalidSet(format!(
            "a client may have at most {} audiences, not {count}",
            limits::MAX_AUDIENCES
        )));
    }
    Ok(())
}

/// RFC 6749 §3.3's NQCHAR: printable ASCII other than space, quote and backslash.
fn is_nqchar(b: u8) -> bool {
    b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
}

/// An OAuth scope set (RFC 6749 §3.3): space-separated tokens, kept sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(BTreeSet<String>);

/// A scope that breaks RFC 6749 §3.3's grammar, or the limits of a scope set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidScope {
    #[error("scope tokens may contain only printable ASCII other than space, quote and backslash")]
    Characters,
    #[error("a scope token must be 1 to {max} characters; '{0}' is longer", max = limits::MAX_SCOPE_LEN)]
    TooLong(String),
    #[error("a scope set may have at most {max} tokens, not {0}", max = limits::MAX_SCOPES)]
    TooMany(usize),
}

impl Scope {
    /// A space-separated scope string, as a request or a token carries it. Only the grammar is
    /// checked: what the issuer stores and signs is bounded where it is set
    /// ([`Scope::from_tokens`]), and a request can only narrow that.
    pub fn parse(value: &str) -> Result<Self, InvalidScope> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            if !token.bytes().all(is_nqchar) {
                return Err(InvalidScope::Characters);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// A scope set as an administrator or the configuration gives it, one token per item:
    /// grammar and limits ([`limits::MAX_SCOPES`] tokens of [`limits::MAX_SCOPE_LEN`]
    /// characters at most).
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = tokens.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if joined.iter().any(|t| t.contains(' ') || t.is_empty()) {
            return Err(InvalidScope::Characters);
        }
        let scope = Self::parse(&joined.join(" "))?;
        scope.check_limits()?;
        Ok(scope)
    }

    /// Whether the set keeps within [`limits::MAX_SCOPES`] tokens of at most
    /// [`limits::MAX_SCOPE_LEN`] characters.
    pub fn check_limits(&self) -> Result<(), InvalidScope> {
        if let Some(long) = self.0.iter().find(|t| t.len() > limits::MAX_SCOPE_LEN) {
            return Err(InvalidScope::TooLong(echo(long)));
        }
        if self.0.len() > limits::MAX_SCOPES {
            return Err(InvalidScope::TooMany(self.0.len()));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The tokens in both sets.
    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// The tokens for which `keep` holds.
    pub fn filter(&self, keep: impl Fn(&str) -> bool) -> Scope {
        Scope(self.0.iter().filter(|t| keep(t)).cloned().collect())
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

impl TryFrom<String> for Scope {
    type Error = InvalidScope;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Scope> for String {
    fn from(value: Scope) -> String {
        value.to_string()
    }
}

/// The grant types Latchkey implements.
///
/// Each has a wire name (`grant_type`, the metadata's `grant_types_supported`) and a short name
/// for registrations (`clients add --grant`, the admin API, the store): the same for the RFC 6749
/// grants, `token-exchange` for RFC 8693's, whose wire name is a URN.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
    RefreshToken,
    /// OAuth 2.1 authorization code with PKCE, for clients registered with redirect URIs.
    AuthorizationCode,
    /// RFC 8693 token exchange.
    #[serde(rename = "token-exchange")]
    TokenExchange,
}

/// The `grant_type` of RFC 8693 token exchange.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
        GrantType::TokenExchange,
    ];

    /// The wire name: what `grant_type` says and the metadata lists.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::TokenExchange => TOKEN_EXCHANGE_GRANT,
        }
    }

    /// The short name a registration uses.
    pub fn name(self) -> &'static str {
        match self {
            GrantType::TokenExchange => "token-exchange",
            other => other.as_str(),
        }
    }

    /// A grant by its wire name (`grant_type`).
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }

    /// A grant by its short name or its wire name, as a registration may give it.
    pub fn from_name(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|g| g.name() == value || g.as_str() == value)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
