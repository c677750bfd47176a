//! Passwords, client secrets and client keys: hashing, verification and generation.

mod client_keys;
pub mod legacy;
mod password;
mod secret;
mod workers;

pub use client_keys::{CLIENT_KEY_ALGORITHMS, ClientKeySet, check_jwks_uri, is_loopback};
pub use password::{PasswordError, PasswordHasher};
pub use secret::{ClientSecret, hash_client_secret, verify_client_secret};
