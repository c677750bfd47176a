//! Client secrets: 256 random bits made by the server, kept only as SHA-256.

use aws_lc_rs::{constant_time, digest};

use crate::domain::Secret;

/// A freshly generated client secret and the hash to store. The plain secret is shown once.
pub struct ClientSecret {
    pub secret: Secret,
    pub hash: String,
}

impl ClientSecret {
    pub fn generate() -> ClientSecret {
        let secret = Secret::new(crate::domain::random_token(32));
        let hash = hash_client_secret(&secret);
        ClientSecret { secret, hash }
    }
}

/// Lowercase hex SHA-256. A fast hash is enough: the secret has 256 bits of entropy, so there
/// is nothing for a slow hash to protect against.
pub fn hash_client_secret(secret: &Secret) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = digest::digest(&digest::SHA256, secret.expose().as_bytes());
    let mut hex = String::with_capacity(2 * hash.as_ref().len());
    for byte in hash.as_ref() {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// Compares in constant time, so the comparison leaks nothing about the stored hash.
pub fn verify_client_secret(secret: &Secret, stored_hash: &str) -> bool {
    let candidate = hash_client_secret(secret);
    constant_time::verify_slices_are_equal(candidate.as_bytes(), stored_hash.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_verifies_against_its_hash_and_nothing_else() {
        let generated = ClientSecret::generate();
        assert!(verify_client_secret(&generated.secret, &generated.hash));
        assert!(!verify_client_secret(
            &Secret::new("guess"),
            &generated.hash
        ));
    }

    #[test]
    fn the_stored_hash_is_the_lowercase_hex_sha256_of_the_secret() {
        // FIPS 180-2's test vector: hashes stored by earlier versions must still match.
        assert_eq!(
            hash_client_secret(&Secret::new("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn generated_secrets_carry_256_bits() {
        let generated = ClientSecret::generate();
        // 32 bytes in unpadded base64url.
        assert_eq!(generated.secret.expose().len(), 43);
        assert_ne!(
            ClientSecret::generate().secret.expose(),
            generated.secret.expose()
        );
    }
}
