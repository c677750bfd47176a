//! How fast latchkey-verify verifies access tokens, against raw RS256 verification with the same
//! crypto library (aws-lc-rs), measured in one run on one core. Run it optimised:
//!
//! ```text
//! cargo run --release -p latchkey-verify --example verify_rate
//! ```
//!
//! The baseline is the bare cryptographic operation: an RSA-2048 public key parsed once, the
//! PKCS#1 v1.5 SHA-256 signature already decoded to bytes. latchkey-verify does that plus
//! everything a resource server must do: split and decode the token, parse and check the
//! header, pick the key by `kid`, decode the signature, parse and check the claims, and look the
//! token up in the revocation state. The target is at least 90% of the baseline's rate.

#[path = "../src/testkit.rs"]
mod testkit;

use std::hint::black_box;
use std::time::Duration;

use cpu_time::ThreadTime;

use aws_lc_rs::signature::{self, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_verify::Verifier;
use testkit::{AUDIENCE, ISSUER, TestKey, claims, jwks, now};

/// Verifications per measured round.
const ROUND: u32 = 2_000;
/// Rounds of each, interleaved so that both see the same machine; the best round of each
/// counts (the one least disturbed by anything else running), and so does the median of the
/// ratios of neighbouring rounds.
const ROUNDS: usize = 101;

fn rate(elapsed: Duration) -> f64 {
    f64::from(ROUND) / elapsed.as_secs_f64()
}

/// The CPU time this thread spent on `ROUND` calls: time the scheduler gave to other
/// processes (a build running beside the benchmark) does not count.
fn measure(mut op: impl FnMut()) -> Duration {
    let start = ThreadTime::now();
    for _ in 0..ROUND {
        op();
    }
    start.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn best(values: &[f64]) -> f64 {
    values.iter().copied().fold(0.0, f64::max)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let key = TestKey::rsa("bench-key");
    let token = key.token(&claims(ISSUER, AUDIENCE, now()));
    let verifier = Verifier::builder(ISSUER, AUDIENCE)
        .with_static_keys(jwks(&[&key]).to_string().as_bytes())?;
    verifier.verify_cached(&token)?;

    let (input, sig) = token.rsplit_once('.').ok_or("a compact JWS")?;
    let sig = URL_SAFE_NO_PAD.decode(sig)?;
    let der = key.public_der();
    let parsed = ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &der)?;
    parsed.verify_sig(input.as_bytes(), &sig)?;

    let (mut raw, mut ours, mut unparsed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        raw.push(rate(measure(|| {
            black_box(parsed.verify_sig(black_box(input.as_bytes()), black_box(&sig))).ok();
        })));
        ours.push(rate(measure(|| {
            black_box(verifier.verify_cached(black_box(&token))).ok();
        })));
        unparsed.push(rate(measure(|| {
            let key = UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &der);
            black_box(key.verify(black_box(input.as_bytes()), black_box(&sig))).ok();
        })));
    }
    let paired: Vec<f64> = ours.iter().zip(&raw).map(|(o, r)| o / r).collect();
    let (best_raw, best_ours, best_unparsed) = (best(&raw), best(&ours), best(&unparsed));
    println!("best of {ROUNDS} rounds of {ROUND}, per second of this thread's CPU time:");
    println!("raw RS256 verify, key parsed once (aws-lc-rs):  {best_raw:>9.0} /s");
    println!("raw RS256 verify, key parsed per call:          {best_unparsed:>9.0} /s");
    println!("latchkey-verify verify_cached (full checks):    {best_ours:>9.0} /s");
    println!(
        "ratio to the parsed-once baseline:              {:>9.1} % (median of paired rounds {:.1} %)",
        100.0 * best_ours / best_raw,
        100.0 * median(paired)
    );
    println!(
        "ratio to the parse-per-call baseline:           {:>9.1} %",
        100.0 * best_ours / best_unparsed
    );
    Ok(())
}
