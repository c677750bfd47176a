//! Signing keys: parsed once, kept in memory, published as a JWKS.
//!
//! A key pair is parsed when it is loaded and reused for every signature; parsing per signature
//! would cost more than the signature itself.

mod set;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use crate::domain::UnixTime;

pub use set::{KeySet, LoadedKeys, generate_in};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("key generation failed")]
    Generation,
    #[error("signing failed")]
    Signing,
    #[error("no signing key in {0}")]
    Empty(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A JWS algorithm Latchkey signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
        }
    }

    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

/// A public key as RFC 7517 publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub usage: &'static str,
    pub alg: &'static str,
    pub kid: String,
    pub n: String,
    pub e: String,
}

/// A private key ready to sign, with everything derived from it computed once.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    pair: RsaKeyPair,
    jwk: Jwk,
    decoding: jsonwebtoken::DecodingKey,
    created_at: UnixTime,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new RSA key of `bits` (2048, 3072 or 4096).
    pub fn generate_rsa(bits: usize, created_at: UnixTime) -> Result<(SigningKey, String), KeyError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            _ => return Err(KeyError::Generation),
        };
        let pair = RsaKeyPair::generate(size).map_err(|_| KeyError::Generation)?;
        let der = pair.as_der().map_err(|_| KeyError::Generation)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()));
        Ok((Self::from_rsa(pair, created_at), pem))
    }

    /// Parses a PEM private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub fn from_pem(pem_text: &[u8], created_at: UnixTime) -> Result<SigningKey, String> {
        let parsed = pem::parse(pem_text).map_err(|e| format!("not PEM: {e}"))?;
        let pair = match parsed.tag() {
            "PRIVATE KEY" => RsaKeyPair::from_pkcs8(parsed.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(parsed.contents()),
            other => return Err(format!("unsupported PEM block '{other}'")),
        }
        .map_err(|e| format!("not a usable RSA private key: {e}"))?;
        if pair.public_modulus_len() < 256 {
            return Err("RSA keys must have at least 2048 bits".into());
        }
        Ok(Self::from_rsa(pair, created_at))
    }

    fn from_rsa(pair: RsaKeyPair, created_at: UnixTime) -> SigningKey {
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let kid = rsa_thumbprint(&n, &e);
        let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        let jwk = Jwk {
            kty: "RSA",
            usage: "sig",
            alg: Algorithm::RS256.as_str(),
            kid: kid.clone(),
            n,
            e,
        };
        SigningKey {
            kid,
            algorithm: Algorithm::RS256,
            pair,
            jwk,
            decoding,
            created_at,
            rng: SystemRandom::new(),
        }
    }

    /// The RFC 7638 thumbprint, used as `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    pub fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.decoding
    }

    pub fn created_at(&self) -> UnixTime {
        self.created_at
    }

    /// Signs `message` with the parsed key pair.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
            .map_err(|_| KeyError::Signing)?;
        Ok(signature)
    }
}

/// RFC 7638 §3.1: SHA-256 over the required members in lexicographic order, no whitespace.
fn rsa_thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_matches_the_rfc_7638_example() {
        // The key and expected thumbprint of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            rsa_thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn a_generated_key_survives_a_round_trip_through_pem() {
        let (key, pem) = SigningKey::generate_rsa(2048, 1).unwrap();
        let again = SigningKey::from_pem(pem.as_bytes(), 1).unwrap();
        assert_eq!(key.kid(), again.kid());
        assert_eq!(key.jwk(), again.jwk());
    }

    #[test]
    fn rsa_signatures_verify_with_the_published_modulus() {
        let (key, _) = SigningKey::generate_rsa(2048, 1).unwrap();
        let signature = key.sign(b"message").unwrap();
        let n = URL_SAFE_NO_PAD.decode(&key.jwk().n).unwrap();
        let e = URL_SAFE_NO_PAD.decode(&key.jwk().e).unwrap();
        let public = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
        public
            .verify(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256, b"message", &signature)
            .unwrap();
    }

    #[test]
    fn garbage_is_not_a_key() {
        assert!(SigningKey::from_pem(b"hello", 1).is_err());
        let ec = pem::encode(&pem::Pem::new("EC PRIVATE KEY", vec![1, 2, 3]));
        assert!(SigningKey::from_pem(ec.as_bytes(), 1).is_err());
    }
}
