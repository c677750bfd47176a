//! The issuer's own token verification (`latchkey::tokens::TokenVerifier`), as the refresh grant,
//! revocation, introspection and the bearer endpoints use it, against a key set of an Ed25519
//! key with a fixed seed, and an RSA-2048 and a P-256 key made at start.
//!
//! `r` inputs go through `verify_access` and `verify_refresh`: never a panic, and nothing passes
//! but the exact seed tokens the fixed key signed. `s` inputs (signed here, see the crate docs;
//! `$ed`, `$rsa`, `$ec` in the header stand for the kids): whatever passes was signed by a key
//! of the set with that key's algorithm, has the `typ` of its kind, a header of exactly `alg`,
//! `typ` and `kid`, and carries the issuer, a live lifetime (`exp` exactly, `nbf` and `iat`
//! within the leeway) and, for a refresh token, the issuer as audience.
#![no_main]

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use latchkey::keys::{Algorithm, KeySet, SigningKey};
use latchkey::tokens::{Claims, TokenVerifier};
use latchkey_fuzz::{
    FIXED_SEED, FORGER_SEED, ISSUER, LEEWAY, SignedInput, Signer, b64, issuer_key, issuer_seeds,
    signing_input, unix_now, with_kids,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

struct Fixture {
    keys: KeySet,
    verifier: TokenVerifier,
    ed: Arc<SigningKey>,
    rsa: Arc<SigningKey>,
    ec: Arc<SigningKey>,
    forger: SigningKey,
    /// The seed tokens the fixed key signed: the only raw input that may pass.
    genuine: HashSet<String>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let ed = issuer_key(&FIXED_SEED);
    let (rsa, _) = SigningKey::generate(Algorithm::RS256, 2048).expect("an RSA key");
    let (ec, _) = SigningKey::generate(Algorithm::ES256, 0).expect("a P-256 key");
    let kids = [
        ed.kid().to_owned(),
        rsa.kid().to_owned(),
        ec.kid().to_owned(),
    ];
    let keys = KeySet::from_keys(vec![ed, rsa, ec]).expect("a key set");
    let find = |kid: &str| keys.find(kid).expect("a key of the set").clone();
    let (ed, rsa, ec) = (find(&kids[0]), find(&kids[1]), find(&kids[2]));
    let (tokens, _) = issuer_seeds();
    Fixture {
        verifier: TokenVerifier::new(ISSUER),
        ed,
        rsa,
        ec,
        forger: issuer_key(&FORGER_SEED),
        genuine: tokens.into_iter().collect(),
        keys,
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
    let token = String::from_utf8_lossy(rest);
    let access = fixture.verifier.verify_access(&fixture.keys, &token);
    let refresh = fixture.verifier.verify_refresh(&fixture.keys, &token);
    assert!(
        access.is_err() || refresh.is_err(),
        "one token passed as both kinds: {token:?}"
    );
    if access.is_ok() || refresh.is_ok() {
        assert!(
            fixture.genuine.contains(&*token),
            "accepted a token the issuer never signed: {token:?}"
        );
    }
}

fn signed(fixture: &Fixture, rest: &[u8]) {
    let Some(input) = SignedInput::parse(rest) else {
        return;
    };
    let header = with_kids(
        input.header,
        fixture.ed.kid(),
        fixture.rsa.kid(),
        fixture.ec.kid(),
    );
    let message = signing_input(&header, input.claims);
    let key = match input.signer {
        Signer::Ed25519 => Some(&*fixture.ed),
        Signer::Rsa => Some(&*fixture.rsa),
        Signer::P256 => Some(&*fixture.ec),
        Signer::Forger => Some(&fixture.forger),
        Signer::Unsigned | Signer::Verbatim => None,
    };
    let signature = match (key, input.signer) {
        (Some(key), _) => key.sign(message.as_bytes()).expect("the key signs"),
        (None, Signer::Verbatim) => input.signature.to_vec(),
        (None, _) => Vec::new(),
    };
    let token = format!("{message}.{}", b64(&signature));
    let before = unix_now();
    let access = fixture.verifier.verify_access(&fixture.keys, &token);
    let refresh = fixture.verifier.verify_refresh(&fixture.keys, &token);
    let after = unix_now();
    let accepted = Accepted {
        input: &input,
        header: &header,
        key,
        before,
        after,
    };
    if let Ok(claims) = &access {
        accepted.check("at+jwt", &claims.claims);
    }
    if let Ok(claims) = &refresh {
        accepted.check("rt+jwt", &claims.claims);
        assert_eq!(claims.aud, ISSUER, "aud: {}", accepted.context());
    }
}

struct Accepted<'a> {
    input: &'a SignedInput<'a>,
    header: &'a [u8],
    key: Option<&'a SigningKey>,
    before: i64,
    after: i64,
}

impl Accepted<'_> {
    fn context(&self) -> String {
        format!(
            "accepted {:?}: header {:?}, claims {:?}",
            self.input.signer,
            String::from_utf8_lossy(self.header),
            String::from_utf8_lossy(self.input.claims)
        )
    }

    /// Everything an accepted token of `typ` must be. The claims checked are the ones the
    /// service goes on to use.
    fn check(&self, typ: &str, claims: &Claims) {
        assert!(
            self.input.signer.is_trusted(),
            "signer unknown: {}",
            self.context()
        );
        let key = self.key.expect("a trusted signer has a key");
        let header: Value =
            serde_json::from_slice(self.header).expect("an accepted header is JSON");
        assert_eq!(header["typ"], typ, "typ: {}", self.context());
        assert_eq!(header["kid"], key.kid(), "kid: {}", self.context());
        assert_eq!(
            header["alg"],
            key.algorithm().as_str(),
            "alg: {}",
            self.context()
        );
        assert!(
            !latchkey_fuzz::names_foreign_key(&header),
            "foreign key reference: {}",
            self.context()
        );
        assert!(
            latchkey_fuzz::only_issuer_members(&header),
            "a header member besides alg, typ and kid: {}",
            self.context()
        );
        assert_eq!(claims.iss, ISSUER, "iss: {}", self.context());
        // The issuer's own answer: expired at the exact `exp`, no leeway.
        assert!(claims.exp > self.before, "expired: {}", self.context());
        assert!(
            claims.nbf <= self.after + LEEWAY,
            "not yet valid: {}",
            self.context()
        );
        assert!(
            claims.iat <= self.after + LEEWAY,
            "issued in the future: {}",
            self.context()
        );
    }
}
