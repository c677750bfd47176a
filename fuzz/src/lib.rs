//! What the fuzz targets share: fixed keys, the issuer's names, how an input becomes a token,
//! and the seed inputs (also written to `fuzz/seeds/` by `examples/seeds.rs`).
//!
//! Every target reads its first input byte as a mode:
//! - `r` (raw): the rest of the input is the token (or an `Authorization` value) as a client
//!   would send it. Only a token the fixed key really signed may pass, and then only the exact
//!   bytes it signed: nothing the fuzzer makes of a token may be accepted.
//! - `s` (signed): the rest is `SIGNER HEADER \0 CLAIMS \0 SIGNATURE`. The target signs
//!   `base64url(HEADER).base64url(CLAIMS)` with the key `SIGNER` picks (see [`Signer`]) and
//!   verifies the result: whatever passes must satisfy every rule of the verifier, checked
//!   independently on the JSON that was signed. This reaches the claim checks, which the raw
//!   mode cannot get past the signature to.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

/// `iss` the verifiers expect.
pub const ISSUER: &str = "https://issuer.fuzz.test";
/// The audience latchkey-verify is configured for.
pub const AUDIENCE: &str = "orders";
/// Clock skew both verifiers tolerate, in seconds.
pub const LEEWAY: i64 = 5;
/// 2100-01-01: `exp` of the seed tokens that are valid.
pub const FAR_FUTURE: i64 = 4_102_444_800;
/// 2020-09-13: `iat`/`nbf` of the seed tokens, and `exp` of the expired ones.
pub const LONG_AGO: i64 = 1_600_000_000;

/// The seed of the Ed25519 key whose tokens are in the seed corpora. Fixed, so that the seeds
/// stay valid; it signs nothing but fuzz inputs.
pub const FIXED_SEED: [u8; 32] = *b"latchkey fuzzing key, not secret";
/// A key the verifiers do not know: what a forger would sign with.
pub const FORGER_SEED: [u8; 32] = *b"a key no verifier has ever known";

/// Which key signs a signed-mode input (the byte after `s`, modulo 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Signer {
    /// The fixed Ed25519 key (kid `ed` in latchkey-verify, `$ed` in issuer headers).
    Ed25519,
    /// An RSA-2048 key made at start (`rsa` / `$rsa`).
    Rsa,
    /// A P-256 key made at start (`ec` / `$ec`).
    P256,
    /// The forger's Ed25519 key, which the verifiers do not hold.
    Forger,
    /// No signature at all (an unsecured JWS).
    Unsigned,
    /// The input's SIGNATURE bytes, as they are.
    Verbatim,
}

impl Signer {
    pub fn from_byte(byte: u8) -> Signer {
        match byte % 6 {
            0 => Signer::Ed25519,
            1 => Signer::Rsa,
            2 => Signer::P256,
            3 => Signer::Forger,
            4 => Signer::Unsigned,
            _ => Signer::Verbatim,
        }
    }

    /// Whether a verifier holds this signer's public key.
    pub fn is_trusted(self) -> bool {
        matches!(self, Signer::Ed25519 | Signer::Rsa | Signer::P256)
    }

    /// The JWS `alg` of the key.
    pub fn alg(self) -> Option<&'static str> {
        match self {
            Signer::Ed25519 | Signer::Forger => Some("EdDSA"),
            Signer::Rsa => Some("RS256"),
            Signer::P256 => Some("ES256"),
            Signer::Unsigned | Signer::Verbatim => None,
        }
    }
}

/// A signed-mode input, split.
#[derive(Debug)]
pub struct SignedInput<'a> {
    pub signer: Signer,
    pub header: &'a [u8],
    pub claims: &'a [u8],
    pub signature: &'a [u8],
}

impl<'a> SignedInput<'a> {
    /// `SIGNER HEADER \0 CLAIMS \0 SIGNATURE`; missing parts are empty.
    pub fn parse(data: &'a [u8]) -> Option<SignedInput<'a>> {
        let (&signer, rest) = data.split_first()?;
        let mut parts = rest.splitn(3, |b| *b == 0);
        Some(SignedInput {
            signer: Signer::from_byte(signer),
            header: parts.next().unwrap_or_default(),
            claims: parts.next().unwrap_or_default(),
            signature: parts.next().unwrap_or_default(),
        })
    }
}

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `base64url(header).base64url(claims)`, the JWS signing input.
pub fn signing_input(header: &[u8], claims: &[u8]) -> String {
    format!("{}.{}", b64(header), b64(claims))
}

/// The PKCS#8 v1 PEM of the Ed25519 key with `seed` (RFC 8410).
pub fn ed25519_pem(seed: &[u8; 32]) -> String {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed);
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        STANDARD.encode(der)
    )
}

/// The Ed25519 key pair with `seed`.
pub fn ed25519(seed: &[u8; 32]) -> aws_lc_rs::signature::Ed25519KeyPair {
    aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed)
        .expect("a 32-byte seed is an Ed25519 key")
}

/// Claims as the issuer puts them in an access token, valid until 2100.
pub fn access_claims(issuer: &str, audience: &str) -> Value {
    json!({
        "iss": issuer, "sub": "alice", "aud": audience,
        "exp": FAR_FUTURE, "iat": LONG_AGO, "nbf": LONG_AGO,
        "jti": "seed-access", "client_id": "web", "scope": "read write",
        "roles": ["user"], "sid": "fam-seed",
    })
}

/// Claims as the issuer puts them in a refresh token (audience: the issuer), valid until 2100.
pub fn refresh_claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "alice", "aud": issuer,
        "exp": FAR_FUTURE, "iat": LONG_AGO, "nbf": LONG_AGO,
        "jti": "seed-refresh", "client_id": "web", "scope": "read write", "fam": "fam-seed",
    })
}

/// Variations on `claims` that a verifier must refuse or that probe its parsing: expired, not
/// yet valid, another issuer or audience, claims missing, given twice, or of the wrong type.
pub fn claim_variants(claims: &Value) -> Vec<Vec<u8>> {
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        serde_json::to_vec(&c).expect("JSON")
    };
    let without = |key: &str| {
        let mut c = claims.clone();
        c.as_object_mut().expect("an object").remove(key);
        serde_json::to_vec(&c).expect("JSON")
    };
    let plain = serde_json::to_string(claims).expect("JSON");
    let inner = plain.trim_start_matches('{');
    vec![
        serde_json::to_vec(claims).expect("JSON"),
        with("exp", json!(LONG_AGO)),
        with("nbf", json!(FAR_FUTURE)),
        with("iss", json!("https://evil.test")),
        with("aud", json!(["elsewhere", AUDIENCE])),
        with("aud", json!("elsewhere")),
        with("exp", json!(1e300)),
        with("exp", json!(-1)),
        with("exp", json!("4102444800")),
        with("sub", Value::Null),
        without("exp"),
        without("nbf"),
        without("jti"),
        format!(r#"{{"iss":"https://evil.test",{inner}"#).into_bytes(),
        format!(r#"{{"exp":{LONG_AGO},{inner}"#).into_bytes(),
        format!(r#"{{"aud":"elsewhere",{inner}"#).into_bytes(),
    ]
}

/// Headers a verifier must refuse, or that probe its header parsing, for a token that is
/// otherwise as `good` (the header the issuer writes).
pub fn header_variants(good: &Value) -> Vec<Vec<u8>> {
    let with = |key: &str, value: Value| {
        let mut h = good.clone();
        h[key] = value;
        serde_json::to_vec(&h).expect("JSON")
    };
    let plain = serde_json::to_string(good).expect("JSON");
    let inner = plain.trim_start_matches('{');
    vec![
        serde_json::to_vec(good).expect("JSON"),
        with("alg", json!("none")),
        with("alg", json!("HS256")),
        with("alg", json!("RS256")),
        with("alg", json!("PS256")),
        with("typ", json!("JWT")),
        with("typ", json!("rt+jwt")),
        with("typ", json!("application/at+jwt")),
        with("jku", json!("https://evil.test/jwks.json")),
        with("x5u", json!("https://evil.test/cert.pem")),
        with("jwk", json!({"kty": "oct", "k": "c2VjcmV0"})),
        with("crit", json!(["exp"])),
        with("kid", json!("../../etc/passwd")),
        with("kid", Value::Null),
        format!(r#"{{"alg":"none",{inner}"#).into_bytes(),
        format!(r#"{{"typ":"rt+jwt",{inner}"#).into_bytes(),
    ]
}

/// `s` inputs signed by `signer` (a [`Signer`] byte): each header variant with good claims and
/// each claim variant with the good header.
pub fn signed_seeds(signer: u8, header: &Value, claims: &Value) -> Vec<Vec<u8>> {
    let good_header = serde_json::to_vec(header).expect("JSON");
    let good_claims = serde_json::to_vec(claims).expect("JSON");
    let input = |h: &[u8], c: &[u8]| {
        let mut input = vec![b's', signer];
        input.extend_from_slice(h);
        input.push(0);
        input.extend_from_slice(c);
        input.push(0);
        input
    };
    let mut seeds: Vec<Vec<u8>> = header_variants(header)
        .iter()
        .map(|h| input(h, &good_claims))
        .collect();
    seeds.extend(
        claim_variants(claims)
            .iter()
            .map(|c| input(&good_header, c)),
    );
    seeds
}

/// `r` inputs for each token, and for each as an `Authorization: Bearer` value; plus garbage.
pub fn raw_seeds(tokens: &[String]) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for token in tokens {
        seeds.push(format!("r{token}").into_bytes());
        seeds.push(format!("rBearer {token}").into_bytes());
    }
    for junk in [
        "",
        ".",
        "..",
        "a.b.c",
        "e30.e30.",
        "e30.e30.e30",
        "Bearer   x.y.z  ",
    ] {
        seeds.push(format!("r{junk}").into_bytes());
    }
    seeds
}

/// The compact JWS of `header` and `claims` signed by `sign`.
pub fn compact(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = signing_input(
        &serde_json::to_vec(header).expect("JSON"),
        &serde_json::to_vec(claims).expect("JSON"),
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// Whether a JOSE header names a member that points to a key elsewhere or must be understood.
pub fn names_foreign_key(header: &Value) -> bool {
    ["jku", "x5u", "jwk", "x5c", "crit"]
        .iter()
        .any(|m| header.get(m).is_some_and(|v| !v.is_null()))
}

/// Whether a JOSE header has exactly the members the issuer writes: `alg`, `typ` and `kid`.
/// (A member given twice never parses into a `Value` that shows it; the verifiers refuse it,
/// and the seeds and unit tests cover that.)
pub fn only_issuer_members(header: &Value) -> bool {
    header.as_object().is_some_and(|members| {
        members.len() == 3 && ["alg", "typ", "kid"].iter().all(|m| members.contains_key(*m))
    })
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The seeds of `verifier_token`, and the tokens among them that the fixed key signed (the only
/// ones that may ever pass there). latchkey-verify knows the fixed key as `ed`.
pub fn verifier_seeds() -> (Vec<String>, Vec<Vec<u8>>) {
    let key = ed25519(&FIXED_SEED);
    let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ed"});
    let claims = access_claims(ISSUER, AUDIENCE);
    let sign = |h: &Value, c: &Value| compact(h, c, |m| key.sign(m).as_ref().to_vec());
    let mut tokens: Vec<String> = vec![sign(&header, &claims)];
    for c in claim_variants(&claims).iter().skip(1).take(5) {
        let c: Value = serde_json::from_slice(c).expect("JSON");
        tokens.push(sign(&header, &c));
    }
    for h in header_variants(&header).iter().skip(1).take(12) {
        let h: Value = serde_json::from_slice(h).expect("JSON");
        tokens.push(sign(&h, &claims));
    }
    let mut seeds = raw_seeds(&tokens);
    let signers = [
        (
            Signer::Ed25519,
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ed"}),
        ),
        (
            Signer::Rsa,
            json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa"}),
        ),
        (
            Signer::P256,
            json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec"}),
        ),
        (
            Signer::Forger,
            json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "ed"}),
        ),
    ];
    for (signer, header) in signers {
        let all = signed_seeds(signer as u8, &header, &claims);
        // Every variant for the fixed key; the good token alone for the others.
        let keep = if signer == Signer::Ed25519 {
            all.len()
        } else {
            1
        };
        seeds.extend(all.into_iter().take(keep));
    }
    (tokens, seeds)
}

/// The seeds of `issuer_token`, and the tokens among them that `key` (the issuer's fixed key,
/// see [`issuer_key`]) signed. In `s` inputs, `$ed`, `$rsa` and `$ec` in the header stand for
/// the kids of the issuer's keys, which are RFC 7638 thumbprints.
pub fn issuer_seeds() -> (Vec<String>, Vec<Vec<u8>>) {
    let key = issuer_key(&FIXED_SEED);
    let kid = key.kid();
    let sign = |h: &Value, c: &Value| compact(h, c, |m| key.sign(m).expect("signed"));
    let access_header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
    let refresh_header = json!({"alg": "EdDSA", "typ": "rt+jwt", "kid": kid});
    let access = access_claims(ISSUER, "api");
    let refresh = refresh_claims(ISSUER);
    let mut tokens = vec![
        sign(&access_header, &access),
        sign(&refresh_header, &refresh),
    ];
    for c in claim_variants(&access).iter().skip(1).take(5) {
        let c: Value = serde_json::from_slice(c).expect("JSON");
        tokens.push(sign(&access_header, &c));
    }
    for c in claim_variants(&refresh).iter().skip(1).take(5) {
        let c: Value = serde_json::from_slice(c).expect("JSON");
        tokens.push(sign(&refresh_header, &c));
    }
    for h in header_variants(&access_header).iter().skip(1).take(12) {
        let h: Value = serde_json::from_slice(h).expect("JSON");
        tokens.push(sign(&h, &access));
    }
    let mut seeds = raw_seeds(&tokens);
    let headers = [
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "$ed"}),
        json!({"alg": "RS256", "typ": "at+jwt", "kid": "$rsa"}),
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "$ec"}),
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "$ed"}),
    ];
    for (i, h) in headers.iter().enumerate() {
        let all = signed_seeds(i as u8, h, &access);
        let keep = if i == 0 { all.len() } else { 1 };
        seeds.extend(all.into_iter().take(keep));
    }
    let refresh_header = json!({"alg": "EdDSA", "typ": "rt+jwt", "kid": "$ed"});
    seeds.extend(signed_seeds(0, &refresh_header, &refresh));
    (tokens, seeds)
}

/// The issuer's Ed25519 signing key with `seed`.
pub fn issuer_key(seed: &[u8; 32]) -> latchkey::keys::SigningKey {
    latchkey::keys::SigningKey::from_pem(ed25519_pem(seed).as_bytes())
        .expect("an Ed25519 PKCS#8 key")
}

/// `$ed`, `$rsa` and `$ec` in `header` replaced by the given kids.
pub fn with_kids(header: &[u8], ed: &str, rsa: &str, ec: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(header.len() + 64);
    let mut rest = header;
    while !rest.is_empty() {
        let replaced = [(&b"$ed"[..], ed), (&b"$rsa"[..], rsa), (&b"$ec"[..], ec)]
            .into_iter()
            .find(|(name, _)| rest.starts_with(name));
        match replaced {
            Some((name, kid)) => {
                out.extend_from_slice(kid.as_bytes());
                rest = &rest[name.len()..];
            }
            None => {
                out.push(rest[0]);
                rest = &rest[1..];
            }
        }
    }
    out
}

/// The secret of the confidential client `svc` of `token_endpoint`.
pub const SVC_SECRET: &str = "svc-secret-for-fuzzing";

/// The seeds of `token_endpoint`: `SELECTOR AUTHORIZATION \n CONTENT-TYPE \n BODY` (see the
/// target for what each part means).
pub fn endpoint_seeds() -> Vec<Vec<u8>> {
    let basic =
        |id: &str, secret: &str| format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let svc = basic("svc", SVC_SECRET);
    let (tokens, _) = issuer_seeds();
    let foreign_refresh = tokens[1].clone();
    let inputs: Vec<(u8, String, &str, String)> = vec![
        (b't', String::new(), "f", format!("grant_type=client_credentials&client_id=svc&client_secret={SVC_SECRET}")),
        (b't', svc.clone(), "f", "grant_type=client_credentials&scope=read&audience=orders".into()),
        (b't', format!("B:svc:{SVC_SECRET}"), "f", "grant_type=client_credentials&resource=orders".into()),
        (b't', "B:my%20app:s%3Acret".into(), "f", "grant_type=client_credentials".into()),
        (b't', String::new(), "f", "grant_type=password&username=alice&password=correct+horse&client_id=web&scope=read".into()),
        (b't', String::new(), "j", r#"{"grant_type":"password","username":"root","password":"root password","client_id":"web","scope":"admin read"}"#.into()),
        (b't', String::new(), "j", r#"{"grant_type":"password","username":"alice","password":"correct horse","client_id":"web","scope":"admin"}"#.into()),
        (b't', String::new(), "f", "grant_type=refresh_token&refresh_token=@RT@&client_id=web".into()),
        (b't', String::new(), "j", r#"{"grant_type":"refresh_token","refresh_token":"@RT@","client_id":"web","scope":"read"}"#.into()),
        (b't', String::new(), "f", format!("grant_type=refresh_token&refresh_token={foreign_refresh}&client_id=web")),
        (b't', String::new(), "f", "grant_type=refresh_token&refresh_token=@AT@&client_id=web".into()),
        (b't', String::new(), "f", "grant_type=implicit&client_id=web".into()),
        (b't', String::new(), "f", "grant_type=password&grant_type=password&client_id=web".into()),
        (b't', String::new(), "j", r#"{"grant_type":["password"],"client_id":7}"#.into()),
        (b't', String::new(), "j", "{".into()),
        (b't', String::new(), "text/plain", "grant_type=client_credentials".into()),
        (b't', String::new(), "", String::new()),
        (b't', "Bearer @AT@".into(), "f", "grant_type=client_credentials".into()),
        (b't', svc.clone(), "f", format!("grant_type=client_credentials&client_id=svc&client_secret={SVC_SECRET}")),
        (b't', "Basic !!!".into(), "f", "grant_type=client_credentials".into()),
        (b'r', svc.clone(), "f", "token=@RT@&token_type_hint=refresh_token".into()),
        (b'r', svc.clone(), "j", r#"{"token":"@AT@","token_type_hint":"access_token"}"#.into()),
        (b'r', String::new(), "f", "token=@AT@&client_id=web".into()),
        (b'i', svc.clone(), "f", "token=@AT@".into()),
        (b'i', svc.clone(), "j", r#"{"token":"@RT@","token_type_hint":"refresh_token"}"#.into()),
        (b'i', svc, "f", format!("token={foreign_refresh}")),
    ];
    inputs
        .into_iter()
        .map(|(selector, authorization, content_type, body)| {
            let mut input = vec![selector];
            input.extend_from_slice(authorization.as_bytes());
            input.push(b'\n');
            input.extend_from_slice(content_type.as_bytes());
            input.push(b'\n');
            input.extend_from_slice(body.as_bytes());
            input
        })
        .collect()
}
