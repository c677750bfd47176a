//! Signing keys: parsed once, kept in memory, published as a JWKS, rotated by time.
//!
//! A key pair is parsed when it is loaded and reused for every signature; parsing per signature
//! would cost more than the signature itself.

mod lifecycle;
mod ring;
mod set;

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair,
    Ed25519KeyPair, KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
    RsaKeyPair, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

pub use lifecycle::{KeyState, Policy, lifecycle};
pub use ring::KeyRing;
pub use set::{
    DirectoryKey, KeySet, LoadedKeys, generate_in, read_dir, retire, rotate_on_schedule,
};

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("key generation failed: {0}")]
    Generation(String),
    #[error("signing failed")]
    Signing,
    #[error("no signing key in {0}")]
    Empty(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A JWS algorithm Latchkey signs with. RS256 is the default and the one every client handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    RS256,
    ES256,
    EdDSA,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(value: &str) -> Option<Algorithm> {
        [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(value))
    }

    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

/// A public key as RFC 7517 (and RFC 8037 for OKP) publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Jwk {
    pub kty: &'static str,
    #[serde(rename = "use")]
    pub usage: &'static str,
    pub alg: &'static str,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

enum Material {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key ready to sign, with everything derived from it computed once.
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    material: Material,
    jwk: Jwk,
    /// The public half, parsed once: the issuer checks its own tokens (refresh, introspection,
    /// bearer tokens) with it, as latchkey-verify does, rather than rebuilding the key per call.
    verifying: ParsedPublicKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn parse_public(
    algorithm: &'static dyn VerificationAlgorithm,
    public: &[u8],
) -> Result<ParsedPublicKey, String> {
    ParsedPublicKey::new(algorithm, public).map_err(|e| format!("unusable public key: {e}"))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn generation(error: impl std::fmt::Display) -> KeyError {
    KeyError::Generation(error.to_string())
}

impl SigningKey {
    /// A new RSA key of `bits` (2048, 3072 or 4096), with its PKCS#8 PEM.
    pub fn generate_rsa(bits: usize) -> Result<(SigningKey, String), KeyError> {
        Self::generate(Algorithm::RS256, bits)
    }

    /// A new key for `algorithm` (`bits` matters only for RSA), with its PKCS#8 PEM.
    pub fn generate(algorithm: Algorithm, bits: usize) -> Result<(SigningKey, String), KeyError> {
        let der = match algorithm {
            Algorithm::RS256 => {
                let size = match bits {
                    2048 => KeySize::Rsa2048,
                    3072 => KeySize::Rsa3072,
                    4096 => KeySize::Rsa4096,
                    _ => {
                        return Err(KeyError::Refused(format!(
                            "RSA keys have 2048, 3072 or 4096 bits, not {bits}"
                        )));
                    }
                };
                let pair = RsaKeyPair::generate(size).map_err(generation)?;
                pair.as_der().map_err(generation)?.as_ref().to_vec()
            }
            Algorithm::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                    .map_err(generation)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                .map_err(generation)?
                .as_ref()
                .to_vec(),
        };
        let key = Self::from_pkcs8(&der).map_err(KeyError::Generation)?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", der));
        Ok((key, pem))
    }

    /// Parses a PEM private key: PKCS#8 `PRIVATE KEY` (RSA, P-256 or Ed25519) or PKCS#1
    /// `RSA PRIVATE KEY`.
    pub fn from_pem(pem_text: &[u8]) -> Result<SigningKey, String> {
        let parsed = pem::parse(pem_text).map_err(|e| format!("not PEM: {e}"))?;
        match parsed.tag() {
            "PRIVATE KEY" => Self::from_pkcs8(parsed.contents()),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(parsed.contents())
                .map_err(|e| format!("not a usable RSA private key: {e}"))
                .and_then(Self::from_rsa),
            other => Err(format!("unsupported PEM block '{other}'")),
        }
    }

    fn from_pkcs8(der: &[u8]) -> Result<SigningKey, String> {
        if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
            return Self::from_rsa(pair);
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Self::from_p256(pair);
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            return Self::from_ed25519(pair);
        }
        Err("not an RSA, P-256 or Ed25519 private key".into())
    }

    fn from_rsa(pair: RsaKeyPair) -> Result<SigningKey, String> {
        if pair.public_modulus_len() < 256 {
            return Err("RSA keys must have at least 2048 bits".into());
        }
        let public = pair.public_key();
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        let (n64, e64) = (b64(&n), b64(&e));
        let kid = thumbprint(&format!(r#"{{"e":"{e64}","kty":"RSA","n":"{n64}"}}"#));
        let jwk = Jwk {
            n: Some(n64),
            e: Some(e64),
            ..Jwk::blank("RSA", Algorithm::RS256, kid.clone(), None)
        };
        let verifying = parse_public(&RSA_PKCS1_2048_8192_SHA256, public.as_ref())?;
        Ok(Self::assemble(
            kid,
            Algorithm::RS256,
            Material::Rsa(pair),
            jwk,
            verifying,
        ))
    }

    fn from_p256(pair: EcdsaKeyPair) -> Result<SigningKey, String> {
        // An uncompressed point: 0x04 || X (32 bytes) || Y (32 bytes).
        let point = pair.public_key().as_ref().to_vec();
        let (x, y) = (b64(&point[1..33]), b64(&point[33..65]));
        let kid = thumbprint(&format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#
        ));
        let jwk = Jwk {
            x: Some(x),
            y: Some(y),
            ..Jwk::blank("EC", Algorithm::ES256, kid.clone(), Some("P-256"))
        };
        let verifying = parse_public(&ECDSA_P256_SHA256_FIXED, &point)?;
        Ok(Self::assemble(
            kid,
            Algorithm::ES256,
            Material::P256(pair),
            jwk,
            verifying,
        ))
    }

    fn from_ed25519(pair: Ed25519KeyPair) -> Result<SigningKey, String> {
        let public = pair.public_key().as_ref().to_vec();
        let x = b64(&public);
        let kid = thumbprint(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#));
        let jwk = Jwk {
            x: Some(x),
            ..Jwk::blank("OKP", Algorithm::EdDSA, kid.clone(), Some("Ed25519"))
        };
        let verifying = parse_public(&ED25519, &public)?;
        Ok(Self::assemble(
            kid,
            Algorithm::EdDSA,
            Material::Ed25519(pair),
            jwk,
            verifying,
        ))
    }

    fn assemble(
        kid: String,
        algorithm: Algorithm,
        material: Material,
        jwk: Jwk,
        verifying: ParsedPublicKey,
    ) -> SigningKey {
        SigningKey {
            kid,
            algorithm,
            material,
            jwk,
            verifying,
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

    /// Whether `signature` (in the JWS format of this key's algorithm) signs `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.verifying.verify_sig(message, signature).is_ok()
    }

    /// Signs `message` with the parsed key pair, in the JWS signature format of its algorithm.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.material {
            Material::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut signature)
                    .map_err(|_| KeyError::Signing)?;
                Ok(signature)
            }
            Material::P256(pair) => pair
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Signing),
            Material::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

impl Jwk {
    fn blank(kty: &'static str, alg: Algorithm, kid: String, crv: Option<&'static str>) -> Jwk {
        Jwk {
            kty,
            usage: "sig",
            alg: alg.as_str(),
            kid,
            crv,
            n: None,
            e: None,
            x: None,
            y: None,
        }
    }
}

/// RFC 7638 §3: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(canonical: &str) -> String {
    b64(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_thumbprint_matches_the_rfc_7638_example() {
        // The key and expected thumbprint of RFC 7638 §3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(&format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#)),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_keys_of_every_algorithm_survive_a_round_trip_through_pem() {
        for algorithm in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let (key, pem) = SigningKey::generate(algorithm, 2048).unwrap();
            let again = SigningKey::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(key.kid(), again.kid(), "{algorithm:?}");
            assert_eq!(key.jwk(), again.jwk());
            assert_eq!(again.algorithm(), algorithm);
        }
    }

    #[test]
    fn signatures_of_every_algorithm_verify_through_jsonwebtoken() {
        for algorithm in [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA] {
            let (key, _) = SigningKey::generate(algorithm, 2048).unwrap();
            let message = b"header.payload";
            let signature = key.sign(message).unwrap();
            // Through the published JWK, as a resource server would read it.
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(serde_json::to_value(key.jwk()).unwrap()).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let valid = jsonwebtoken::crypto::verify(
                &b64(&signature),
                message,
                &decoding,
                algorithm.to_jsonwebtoken(),
            )
            .unwrap();
            assert!(valid, "{algorithm:?}");
            assert!(key.verify(message, &signature), "{algorithm:?}");
            assert!(!key.verify(b"header.other", &signature), "{algorithm:?}");
        }
    }

    #[test]
    fn jwks_members_follow_the_key_type() {
        let (ec, _) = SigningKey::generate(Algorithm::ES256, 0).unwrap();
        let json = serde_json::to_value(ec.jwk()).unwrap();
        assert_eq!(json["kty"], "EC");
        assert_eq!(json["crv"], "P-256");
        assert!(json.get("n").is_none() && json["y"].is_string());
        let (ed, _) = SigningKey::generate(Algorithm::EdDSA, 0).unwrap();
        let json = serde_json::to_value(ed.jwk()).unwrap();
        assert_eq!(
            (json["kty"].as_str(), json["crv"].as_str()),
            (Some("OKP"), Some("Ed25519"))
        );
    }

    #[test]
    fn garbage_and_small_keys_are_not_keys() {
        assert!(SigningKey::from_pem(b"hello").is_err());
        let ec = pem::encode(&pem::Pem::new("EC PRIVATE KEY", vec![1, 2, 3]));
        assert!(SigningKey::from_pem(ec.as_bytes()).is_err());
        assert!(SigningKey::generate(Algorithm::RS256, 1024).is_err());
    }
}
