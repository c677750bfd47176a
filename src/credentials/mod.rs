//! Passwords and client secrets: hashing, verification and generation.

pub mod legacy;
mod password;
mod secret;
mod workers;

pub use password::{PasswordError, PasswordHasher};
pub use secret::{ClientSecret, hash_client_secret, verify_client_secret};
