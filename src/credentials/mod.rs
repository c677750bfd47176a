//! Passwords and client secrets: hashing, verification and generation.

mod password;
mod secret;
mod workers;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub use password::{PasswordError, PasswordHasher, PasswordPolicyError, check_password_policy};
pub use secret::{ClientSecret, hash_client_secret, verify_client_secret};

/// `bytes` random bytes from the system CSPRNG, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // aws-lc aborts the process itself when the OS has no entropy to give, so this branch is
    // unreachable in practice; there is nothing secure to fall back on either way.
    if SystemRandom::new().fill(&mut buf).is_err() {
        panic!("the operating system's random number generator failed");
    }
    URL_SAFE_NO_PAD.encode(buf)
}
