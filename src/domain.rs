//! Newtypes for the identifiers, secrets and sets that flow through the service.
//!
//! Each type validates on construction, so code that holds one never has to ask again whether a
//! username is well formed or a scope string is canonical.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

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

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {reason}")]
pub struct InvalidIdentifier {
    pub what: &'static str,
    pub reason: &'static str,
}

fn check_identifier(what: &'static str, value: &str) -> Result<(), InvalidIdentifier> {
    let refuse = |reason| Err(InvalidIdentifier { what, reason });
    if value.is_empty() {
        return refuse("must not be empty");
    }
    // `.` and `..` are path segments no HTTP client sends as they are (so `/admin/users/..`
    // could never be reached), and a leading `-` reads as an option on a command line.
    if !value.as_bytes()[0].is_ascii_alphanumeric() {
        return refuse("must start with a letter or a digit");
    }
    if value.len() > 64 {
        return refuse("must be at most 64 characters");
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
    {
        return refuse("may contain only letters, digits and . _ - @");
    }
    Ok(())
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident, $what:literal, $canonical:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The identifier in its canonical form, if it is well formed.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidIdentifier> {
                let canonical: fn(String) -> String = $canonical;
                let value = canonical(value.into());
                check_identifier($what, &value)?;
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
    |value| value
);

/// A random identifier: token ids (`jti`) and refresh-token family ids (`fam`).
///
/// 128 random bits, base64url without padding, so ids are unguessable and URL-safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(String);

impl TokenId {
    pub fn generate() -> Self {
        Self(crate::credentials::random_token(16))
    }

    /// Wraps an id read back from a verified token or the store.
    pub fn from_trusted(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password or client secret as received. Its `Debug` never shows the value, so it cannot
/// reach a log by accident.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret written as one line of text (on standard input, in a secret file): one
    /// trailing line break (`\n` or `\r\n`, as `echo` and most secret stores end a file) is
    /// not part of it. A second line is refused rather than silently dropped or kept.
    pub fn from_line(text: &str) -> Result<Secret, MultipleLines> {
        let line = text.strip_suffix('\n').unwrap_or(text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.contains(['\n', '\r']) {
            return Err(MultipleLines);
        }
        Ok(Secret::new(line))
    }
}

/// Text meant as one line that has more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("has more than one line (only one trailing newline is allowed)")]
pub struct MultipleLines;

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// An OAuth scope set (RFC 6749 §3.3): space-separated tokens, kept sorted and deduplicated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(BTreeSet<String>);

/// A scope string that breaks RFC 6749 §3.3's grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope tokens may contain only printable ASCII other than space, quote and backslash")]
pub struct InvalidScope;

impl Scope {
    pub fn parse(value: &str) -> Result<Self, InvalidScope> {
        let mut set = BTreeSet::new();
        for token in value.split(' ').filter(|t| !t.is_empty()) {
            let valid = token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                return Err(InvalidScope);
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, InvalidScope>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = tokens.into_iter().map(|s| s.as_ref().to_owned()).collect();
        if joined.iter().any(|t| t.contains(' ') || t.is_empty()) {
            return Err(InvalidScope);
        }
        Self::parse(&joined.join(" "))
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    Password,
    ClientCredentials,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::Password,
        GrantType::ClientCredentials,
        GrantType::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::Password => "password",
            GrantType::ClientCredentials => "client_credentials",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_with_spaces_or_slashes_are_refused() {
        assert!(Username::parse("alice").is_ok());
        assert!(Username::parse("alice smith").is_err());
        assert!(Username::parse("../etc").is_err());
        assert!(Username::parse("").is_err());
        assert!(Username::parse("a".repeat(65)).is_err());
    }

    #[test]
    fn usernames_are_folded_to_lowercase() {
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "alice");
        assert_eq!(
            Username::parse("ALICE").unwrap(),
            Username::parse("alice").unwrap()
        );
        assert_eq!(ClientId::parse("Web").unwrap().as_str(), "Web");
    }

    #[test]
    fn path_segments_and_option_like_names_are_refused() {
        for name in [".", "..", ".hidden", "-rf", "_x", "@home"] {
            assert!(Username::parse(name).is_err(), "{name}");
            assert!(ClientId::parse(name).is_err(), "{name}");
        }
        assert!(Username::parse("a.b-c_d@e").is_ok());
        assert!(Username::parse("1st").is_ok());
    }

    #[test]
    fn scopes_are_sorted_and_deduplicated() {
        let scope = Scope::parse("write  read read").unwrap();
        assert_eq!(scope.to_string(), "read write");
    }

    #[test]
    fn scope_tokens_with_quotes_are_refused() {
        assert_eq!(Scope::parse("read \"x\""), Err(InvalidScope));
    }

    #[test]
    fn a_narrower_scope_is_a_subset() {
        let wide = Scope::parse("read write").unwrap();
        let narrow = Scope::parse("read").unwrap();
        assert!(narrow.is_subset(&wide));
        assert!(!wide.is_subset(&narrow));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn a_secret_line_loses_one_trailing_newline_and_may_not_have_two_lines() {
        for (text, secret) in [
            ("pass word", "pass word"),
            ("pass word\n", "pass word"),
            ("pass word\r\n", "pass word"),
            (" spaced \n", " spaced "),
        ] {
            assert_eq!(
                Secret::from_line(text).unwrap().expose(),
                secret,
                "{text:?}"
            );
        }
        for text in [
            "first\nsecond",
            "first\nsecond\n",
            "pass\n\n",
            "a\rb",
            "\n\n",
        ] {
            assert_eq!(
                Secret::from_line(text).err(),
                Some(MultipleLines),
                "{text:?}"
            );
        }
    }

    #[test]
    fn grant_types_round_trip_through_their_names() {
        for grant in GrantType::ALL {
            assert_eq!(GrantType::parse(grant.as_str()), Some(grant));
        }
        assert_eq!(GrantType::parse("implicit"), None);
    }
}
