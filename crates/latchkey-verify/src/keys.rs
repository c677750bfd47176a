//! The issuer's public keys, parsed once per key-set fetch: each key carries the one algorithm
//! it verifies, so a token's header can never choose another (RFC 8725 §3.1).

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};

/// The algorithms a key may verify. HMAC is absent on purpose: a resource server holds no
/// shared secret, and a "key" from a public key set must never become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

impl Algorithm {
    /// The name in a JWS header.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    fn from_jwk(alg: &KeyAlgorithm) -> Option<Algorithm> {
        Some(match alg {
            KeyAlgorithm::RS256 => Algorithm::RS256,
            KeyAlgorithm::RS384 => Algorithm::RS384,
            KeyAlgorithm::RS512 => Algorithm::RS512,
            KeyAlgorithm::PS256 => Algorithm::PS256,
            KeyAlgorithm::PS384 => Algorithm::PS384,
            KeyAlgorithm::PS512 => Algorithm::PS512,
            KeyAlgorithm::ES256 => Algorithm::ES256,
            KeyAlgorithm::ES384 => Algorithm::ES384,
            KeyAlgorithm::EdDSA => Algorithm::EdDSA,
            _ => return None,
        })
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &sig::ED25519,
        }
    }
}

/// One verification key: its algorithm and the parsed public key.
pub struct VerifyKey {
    algorithm: Algorithm,
    key: ParsedPublicKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Checks `signature` over `message` with this key and only its algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// Parses one JWK; `Err` says why it cannot verify tokens.
    pub fn from_jwk(jwk: &Jwk) -> Result<(String, VerifyKey), String> {
        let kid = jwk.common.key_id.clone().ok_or("the key has no kid")?;
        if let Some(usage) = &jwk.common.public_key_use
            && *usage != PublicKeyUse::Signature
        {
            return Err(format!("key {kid} is not for signatures"));
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.contains(&KeyOperations::Verify)
        {
            return Err(format!("key {kid} may not verify"));
        }
        let declared = match &jwk.common.key_algorithm {
            Some(alg) => {
                Some(Algorithm::from_jwk(alg).ok_or(format!("key {kid} has an unusable alg"))?)
            }
            None => None,
        };
        let (algorithm, bytes) = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let algorithm = declared.unwrap_or(Algorithm::RS256);
                if !algorithm.as_str().starts_with('R') && !algorithm.as_str().starts_with('P') {
                    return Err(format!(
                        "key {kid}: RSA key with alg {}",
                        algorithm.as_str()
                    ));
                }
                let n = decode(&rsa.n, &kid)?;
                let e = decode(&rsa.e, &kid)?;
                if n.iter().skip_while(|b| **b == 0).count() < 256 {
                    return Err(format!("key {kid}: RSA keys under 2048 bits are refused"));
                }
                (algorithm, rsa_public_key_der(&n, &e))
            }
            AlgorithmParameters::EllipticCurve(ec) => {
                let algorithm = match ec.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => return Err(format!("key {kid}: unsupported curve")),
                };
                if declared.is_some_and(|d| d != algorithm) {
                    return Err(format!("key {kid}: alg does not match its curve"));
                }
                let mut point = vec![4u8];
                point.extend(decode(&ec.x, &kid)?);
                point.extend(decode(&ec.y, &kid)?);
                (algorithm, point)
            }
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                if declared.is_some_and(|d| d != Algorithm::EdDSA) {
                    return Err(format!("key {kid}: alg does not match Ed25519"));
                }
                (Algorithm::EdDSA, decode(&okp.x, &kid)?)
            }
            _ => return Err(format!("key {kid}: unsupported key type")),
        };
        let key = ParsedPublicKey::new(algorithm.verification(), bytes)
            .map_err(|e| format!("key {kid} is rejected: {e}"))?;
        Ok((kid, VerifyKey { algorithm, key }))
    }
}

fn decode(value: &str, kid: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("key {kid}: a parameter is not base64url"))
}

/// DER of an RSAPublicKey (RFC 8017 A.1.1): `SEQUENCE { INTEGER n, INTEGER e }`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn length(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    fn integer(out: &mut Vec<u8>, value: &[u8]) {
        let trimmed = match value.iter().position(|b| *b != 0) {
            Some(start) => &value[start..],
            None => &[0u8][..],
        };
        let pad = trimmed.first().is_some_and(|b| b & 0x80 != 0);
        out.push(0x02);
        length(out, trimmed.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(trimmed);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 16);
    integer(&mut body, n);
    integer(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 8);
    out.push(0x30);
    length(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

/// The keys of one fetch of the issuer's key set, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    /// A handful of keys at most: a linear scan beats hashing the `kid`.
    keys: Vec<(String, VerifyKey)>,
}

impl KeySet {
    /// Parses an RFC 7517 key set. Keys that cannot verify tokens (HMAC, encryption keys,
    /// unknown types, malformed) are left out, each with a warning; the rest are kept.
    pub fn from_json(body: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("not a JWK set: {e}"))?;
        let mut keys: Vec<(String, VerifyKey)> = Vec::new();
        for value in raw.keys {
            let parsed = serde_json::from_value::<Jwk>(value)
                .map_err(|e| format!("not a JWK: {e}"))
                .and_then(|jwk| VerifyKey::from_jwk(&jwk));
            match parsed {
                Ok((kid, key)) => {
                    keys.retain(|(k, _)| *k != kid);
                    keys.push((kid, key));
                }
                Err(reason) => tracing::warn!(%reason, "ignoring a key of the issuer's key set"),
            }
        }
        Ok(KeySet { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&VerifyKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        let der = rsa_public_key_der(&[0x00, 0x80, 0x01], &[0x01, 0x00, 0x01]);
        assert_eq!(
            der,
            [
                0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01
            ]
        );
    }

    #[test]
    fn long_lengths_use_the_long_form() {
        let n = vec![0x7f; 256];
        let der = rsa_public_key_der(&n, &[1, 0, 1]);
        assert_eq!(&der[..4], &[0x30, 0x82, 0x01, 0x09]);
        assert_eq!(&der[4..8], &[0x02, 0x82, 0x01, 0x00]);
    }

    #[test]
    fn hmac_and_encryption_keys_are_left_out() {
        let set = KeySet::from_json(
            br#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0","alg":"HS256"},
                {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"},
                {"kty":"RSA","kid":"small","n":"AQAB","e":"AQAB"}]}"#,
        )
        .unwrap();
        assert!(set.is_empty());
    }
}
