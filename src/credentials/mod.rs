//! Passwords, client secrets and client keys: hashing, verification and generation.

mod client_keys;
pub mod legacy;
mod password;
mod redirect_uris;
mod secret;
mod workers;

pub use client_keys::{CLIENT_KEY_ALGORITHMS, ClientKeySet, check_jwks_uri, is_loopback};
pub use password::{PasswordError, PasswordHasher};
pub use redirect_uris::{MAX_REDIRECT_URIS, check_redirect_uri, check_redirect_uris};
pub use secret::{ClientSecret, hash_client_secret, verify_client_secret};
