//! Keys and tokens for tests: an RSA key with its JWK, and compact JWS signed with it. Shared
//! by the unit tests and (through `#[path]`) the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaEncoding, RsaKeyPair, RsaPublicKeyComponents};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

pub const ISSUER: &str = "https://issuer.test";
pub const AUDIENCE: &str = "orders";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An RSA-2048 signing key and its public JWK.
pub struct TestKey {
    pair: RsaKeyPair,
    pub kid: String,
    pub jwk: Value,
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let public: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
        let jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
            "n": b64(&public.n), "e": b64(&public.e),
        });
        TestKey {
            pair,
            kid: kid.to_owned(),
            jwk,
        }
    }

    /// The public key as DER (RFC 8017 RSAPublicKey).
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }

    /// A compact JWS of `header` and `claims`, signed with `encoding`.
    pub fn sign_with(
        &self,
        encoding: &'static dyn RsaEncoding,
        header: &Value,
        claims: &Value,
    ) -> String {
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        self.sign_input(encoding, &input)
    }

    /// Signs a prepared `header.payload` input.
    pub fn sign_input(&self, encoding: &'static dyn RsaEncoding, input: &str) -> String {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(encoding, &SystemRandom::new(), input.as_bytes(), &mut sig)
            .unwrap();
        format!("{input}.{}", b64(sig))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_with(&signature::RSA_PKCS1_SHA256, header, claims)
    }

    /// The header this issuer puts on access tokens.
    pub fn header(&self) -> Value {
        json!({"alg": "RS256", "typ": "at+jwt", "kid": self.kid})
    }

    /// An access token with `claims`, signed as the issuer signs.
    pub fn token(&self, claims: &Value) -> String {
        self.sign(&self.header(), claims)
    }
}

/// A key set publishing `keys`.
pub fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// The claims of a user's access token as Latchkey issues it, valid from `now` for 15 minutes.
pub fn claims(issuer: &str, audience: &str, now: i64) -> Value {
    json!({
        "iss": issuer, "sub": "alice", "aud": audience,
        "exp": now + 900, "iat": now, "nbf": now,
        "jti": format!("jti-{}", now_nanos()), "client_id": "web", "scope": "read write",
        "roles": ["user"], "sid": "fam-1",
    })
}

fn now_nanos() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    u128::from(NEXT.fetch_add(1, Ordering::Relaxed))
        + std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
}
