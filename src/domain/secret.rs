//! Values that must stay secret or unguessable: secrets as received, the password policy, and
//! random identifiers.

use std::fmt;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// `count` random bytes from the system CSPRNG.
pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut buf = vec![0u8; count];
    // aws-lc aborts the process itself when the OS has no entropy to give, so this branch is
    // unreachable in practice; there is nothing secure to fall back on either way.
    if SystemRandom::new().fill(&mut buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
    buf
}

/// `bytes` random bytes from the system CSPRNG, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

/// A random identifier: token ids (`jti`) and refresh-token family ids (`fam`).
///
/// 128 random bits, base64url without padding, so ids are unguessable and URL-safe.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenId(String);

impl TokenId {
    pub fn generate() -> Self {
        Self(random_token(16))
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

/// A password that the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("the password must be at least 8 characters")]
    TooShort,
    #[error("the password must be at most 1024 bytes")]
    TooLong,
}

/// NIST SP 800-63B: length is what matters; no composition rules.
pub fn check_password_policy(password: &Secret) -> Result<(), PasswordPolicyError> {
    let value = password.expose();
    if value.chars().count() < 8 {
        return Err(PasswordPolicyError::TooShort);
    }
    if value.len() > 1024 {
        return Err(PasswordPolicyError::TooLong);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn short_and_huge_passwords_are_refused() {
        assert_eq!(
            check_password_policy(&Secret::new("short")),
            Err(PasswordPolicyError::TooShort)
        );
        let huge = Secret::new("x".repeat(2000));
        assert_eq!(
            check_password_policy(&huge),
            Err(PasswordPolicyError::TooLong)
        );
        assert!(check_password_policy(&Secret::new("long enough")).is_ok());
    }
}
