//! latchkey-verify's access-token validation (`Verifier::verify_cached`, `bearer_token`) against
//! a fixed key set: an Ed25519 key with a fixed seed (`ed`), an RSA-2048 key (`rsa`) and a
//! P-256 key (`ec`) made at start.
//!
//! `r` inputs: never a panic, and nothing passes but the exact seed tokens the fixed key
//! signed. `s` inputs (signed here, see the crate docs): whatever passes was signed by a key of
//! the set with that key's algorithm, has an acceptable header, and carries claims that meet
//! every rule, checked again on the signed JSON.
#![no_main]

use std::collections::HashSet;
use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use latchkey_fuzz::{
    AUDIENCE, FIXED_SEED, FORGER_SEED, ISSUER, LEEWAY, SignedInput, Signer, b64, ed25519,
    signing_input, unix_now, verifier_seeds,
};
use latchkey_verify::{AccessToken, Verifier, bearer_token};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

struct Fixture {
    verifier: Verifier,
    ed: Ed25519KeyPair,
    forger: Ed25519KeyPair,
    rsa: RsaKeyPair,
    ec: EcdsaKeyPair,
    rng: SystemRandom,
    /// The seed tokens the fixed key signed: the only raw input that may pass.
    genuine: HashSet<String>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ed = ed25519(&FIXED_SEED);
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("an RSA key");
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key");
    let rsa_public: RsaPublicKeyComponents<Vec<u8>> = rsa.public_key().into();
    let point = ec.public_key().as_ref();
    let jwks = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "ed",
         "x": b64(ed.public_key().as_ref())},
        {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "rsa",
         "n": b64(&rsa_public.n), "e": b64(&rsa_public.e)},
        {"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "ec",
         "x": b64(&point[1..33]), "y": b64(&point[33..65])},
    ]});
    let verifier = Verifier::builder(ISSUER, AUDIENCE)
        .with_static_keys(jwks.to_string().as_bytes())
        .expect("the key set parses");
    assert_eq!(verifier.status().keys, 3, "all three keys are usable");
    let (tokens, _) = verifier_seeds();
    Fixture {
        verifier,
        ed,
        forger: ed25519(&FORGER_SEED),
        rsa,
        ec,
        rng: SystemRandom::new(),
        genuine: tokens.into_iter().collect(),
    }
});

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    match data.split_first() {
        Some((b's', rest)) => signed(fixture, rest),
        Some((_, rest)) => raw(fixture, rest),
        None => {}
    }
});

fn raw(fixture: &Fixture, rest: &[u8]) {
    let text = String::from_utf8_lossy(rest);
    check_raw(fixture, &text);
    if let Some(token) = bearer_token(&text) {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b);
        assert!(
            !token.is_empty() && token.bytes().all(allowed),
            "bearer_token returned {token:?}"
        );
        assert!(text.contains(token), "bearer_token invented {token:?}");
        check_raw(fixture, token);
    }
}

fn check_raw(fixture: &Fixture, token: &str) {
    let first = fixture.verifier.verify_cached(token);
    // The per-thread scratch buffers must not carry anything from one call to the next.
    let again = fixture.verifier.verify_cached(token);
    assert_eq!(
        format!("{first:?}"),
        format!("{again:?}"),
        "the same token verified twice"
    );
    if first.is_ok() {
        assert!(
            fixture.genuine.contains(token),
            "accepted a token the issuer never signed: {token:?}"
        );
    }
}

fn signed(fixture: &Fixture, rest: &[u8]) {
    let Some(input) = SignedInput::parse(rest) else {
        return;
    };
    let message = signing_input(input.header, input.claims);
    let signature = match input.signer {
        Signer::Ed25519 => fixture.ed.sign(message.as_bytes()).as_ref().to_vec(),
        Signer::Forger => fixture.forger.sign(message.as_bytes()).as_ref().to_vec(),
        Signer::Rsa => {
            let mut signature = vec![0; fixture.rsa.public_modulus_len()];
            fixture
                .rsa
                .sign(
                    &RSA_PKCS1_SHA256,
                    &fixture.rng,
                    message.as_bytes(),
                    &mut signature,
                )
                .expect("RSA signs");
            signature
        }
        Signer::P256 => fixture
            .ec
            .sign(&fixture.rng, message.as_bytes())
            .expect("P-256 signs")
            .as_ref()
            .to_vec(),
        Signer::Unsigned => Vec::new(),
        Signer::Verbatim => input.signature.to_vec(),
    };
    let token = format!("{message}.{}", b64(&signature));
    let before = unix_now();
    let result = fixture.verifier.verify_cached(&token);
    let after = unix_now();
    if let Ok(accepted) = result {
        check_accepted(&input, &accepted, before, after);
    }
}

/// Everything an accepted token must be, checked on what was signed.
fn check_accepted(input: &SignedInput<'_>, accepted: &AccessToken, before: i64, after: i64) {
    let context = || {
        format!(
            "accepted {:?}: header {:?}, claims {:?}",
            input.signer,
            String::from_utf8_lossy(input.header),
            String::from_utf8_lossy(input.claims)
        )
    };
    assert!(input.signer.is_trusted(), "signer unknown: {}", context());
    let header: Value = serde_json::from_slice(input.header).expect("an accepted header is JSON");
    let claims: Value = serde_json::from_slice(input.claims).expect("accepted claims are JSON");
    let kid = match input.signer {
        Signer::Ed25519 => "ed",
        Signer::Rsa => "rsa",
        _ => "ec",
    };
    assert_eq!(header["kid"], kid, "kid: {}", context());
    assert_eq!(
        header["alg"].as_str(),
        input.signer.alg(),
        "alg: {}",
        context()
    );
    let typ = header["typ"].as_str().unwrap_or_default();
    assert!(
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"),
        "typ: {}",
        context()
    );
    for member in ["jku", "x5u", "jwk", "x5c", "crit", "zip", "enc", "cty"] {
        assert!(header.get(member).is_none(), "{member}: {}", context());
    }
    assert!(
        latchkey_fuzz::only_issuer_members(&header),
        "a header member besides alg, typ and kid: {}",
        context()
    );
    assert_eq!(claims["iss"], ISSUER, "iss: {}", context());
    let audience_ok = match &claims["aud"] {
        Value::String(one) => one == AUDIENCE,
        Value::Array(many) => many.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(audience_ok, "aud: {}", context());
    let exp = claims["exp"].as_i64().expect("exp is an integer");
    assert_eq!(accepted.exp, exp, "exp: {}", context());
    assert!(
        exp.saturating_add(LEEWAY) > before,
        "expired: {}",
        context()
    );
    if let Some(nbf) = claims.get("nbf").filter(|v| !v.is_null()) {
        let nbf = nbf.as_i64().expect("nbf is an integer");
        assert!(nbf <= after + LEEWAY, "not yet valid: {}", context());
    }
    assert_eq!(
        claims["iat"].as_i64(),
        Some(accepted.iat),
        "iat: {}",
        context()
    );
    assert!(
        accepted.iat <= after + LEEWAY,
        "issued in the future: {}",
        context()
    );
    assert_eq!(claims["sub"], accepted.subject, "sub: {}", context());
    assert_eq!(
        claims["client_id"],
        accepted.client_id,
        "client_id: {}",
        context()
    );
    assert_eq!(claims["jti"], accepted.jti, "jti: {}", context());
    assert_eq!(
        claims.get("sid").and_then(Value::as_str),
        accepted.sid.as_deref(),
        "sid: {}",
        context()
    );
}
