//! The physical limits a token issuer is measured against, printed as JSON:
//!
//! - RS256 (RSA-2048, PKCS#1 v1.5, SHA-256) signatures with aws-lc-rs and a key pair parsed
//!   once, on one core;
//! - RS256 verification with aws-lc-rs, and through jsonwebtoken (what latchkey-verify uses);
//! - jsonwebtoken's stock signing, which parses the private key again on every signature;
//! - argon2id verifications with the service's parameters, on one core and on every core.
//!
//! Each figure is a count over a fixed time, with the CPU time the measuring thread really got
//! (`/proc/thread-self/schedstat`), so a busy machine lowers the rate but not the cost per
//! operation.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair, UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Parser;
use latchkey_bench::thread_cpu_ns;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Measure the RS256 and argon2id limits of this machine")]
struct Args {
    /// Seconds per crypto figure.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Seconds for each argon2id figure.
    #[arg(long, default_value_t = 4.0)]
    argon_duration: f64,
    /// Threads for the all-cores argon2id figure; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    #[arg(long, default_value_t = 19_456)]
    argon_memory_kib: u32,
    #[arg(long, default_value_t = 2)]
    argon_iterations: u32,
    #[arg(long, default_value_t = 1)]
    argon_parallelism: u32,
    /// Where to write the JSON (stdout when absent).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only the RS256 signing figure: the bench takes it again around each grant scenario, since
    /// a shared VM's speed drifts over minutes.
    #[arg(long)]
    sign_only: bool,
}

#[derive(Debug, Serialize)]
struct Figure {
    what: String,
    threads: usize,
    ops: u64,
    wall_s: f64,
    cpu_s: f64,
    /// Operations per wall-clock second, all threads together.
    per_s: f64,
    /// CPU microseconds per operation.
    cpu_us_per_op: f64,
    /// Operations per CPU second of one core: the rate one core reaches when it is not shared.
    per_cpu_s: f64,
}

impl Figure {
    fn new(what: &str, threads: usize, ops: u64, wall: Duration, cpu_ns: u64) -> Figure {
        let wall_s = wall.as_secs_f64();
        let cpu_s = cpu_ns as f64 / 1e9;
        Figure {
            what: what.to_owned(),
            threads,
            ops,
            wall_s,
            cpu_s,
            per_s: ops as f64 / wall_s,
            cpu_us_per_op: cpu_s * 1e6 / ops.max(1) as f64,
            per_cpu_s: ops as f64 / cpu_s.max(1e-9),
        }
    }
}

/// Runs `op` on this thread for `duration` (and at most `max_ops` times).
fn timed(
    what: &str,
    duration: f64,
    max_ops: u64,
    mut op: impl FnMut() -> Result<()>,
) -> Result<Figure> {
    // A short warm-up so the first figure is not paying for page faults.
    for _ in 0..16 {
        op()?;
    }
    let deadline = Duration::from_secs_f64(duration);
    let (started, cpu0) = (Instant::now(), thread_cpu_ns());
    let mut ops = 0;
    while ops < max_ops {
        op()?;
        ops += 1;
        if ops % 8 == 0 && started.elapsed() >= deadline {
            break;
        }
    }
    Ok(Figure::new(
        what,
        1,
        ops,
        started.elapsed(),
        thread_cpu_ns() - cpu0,
    ))
}

/// A signing input of the size Latchkey signs: a JOSE header and RFC 9068 claims, base64url.
fn signing_input() -> String {
    let header =
        br#"{"alg":"RS256","typ":"at+jwt","kid":"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}"#;
    let claims = br#"{"iss":"http://127.0.0.1:8080","sub":"svc","aud":"api","exp":1900000900,"iat":1900000000,"nbf":1900000000,"jti":"q6T0o2m1hJXQyCgC6d8w2A","client_id":"svc","scope":"read"}"#;
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (what jsonwebtoken's DER
/// constructor takes): SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING key }.
fn pkcs1_of_pkcs8(der: &[u8]) -> Option<&[u8]> {
    fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            let bytes = rest.get(..n)?;
            (
                bytes
                    .iter()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b)),
                &rest[n..],
            )
        };
        Some((tag, rest.get(..len)?, rest.get(len..)?))
    }
    let (0x30, info, _) = element(der)? else {
        return None;
    };
    let (0x02, _, rest) = element(info)? else {
        return None;
    };
    let (0x30, _, rest) = element(rest)? else {
        return None;
    };
    let (0x04, key, _) = element(rest)? else {
        return None;
    };
    Some(key)
}

fn argon2_figure(args: &Args, threads: usize, stored: &str) -> Result<Figure> {
    let duration = Duration::from_secs_f64(args.argon_duration);
    let started = Instant::now();
    let results: Vec<Result<(u64, u64)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || -> Result<(u64, u64)> {
                    let parsed = PasswordHash::new(stored).map_err(|e| anyhow!("{e}"))?;
                    let cpu0 = thread_cpu_ns();
                    let mut ops = 0u64;
                    // At most 10,000 hashes: a bound far above what any core does in seconds.
                    while ops < 10_000 && started.elapsed() < duration {
                        let ok = Argon2::default()
                            .verify_password(b"correct horse battery", &parsed)
                            .is_ok();
                        if !ok {
                            return Err(anyhow!("argon2 verification failed"));
                        }
                        ops += 1;
                    }
                    Ok((ops, thread_cpu_ns() - cpu0))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("argon2 thread panicked")))
            })
            .collect()
    });
    let wall = started.elapsed();
    let (mut ops, mut cpu) = (0, 0);
    for result in results {
        let (o, c) = result?;
        ops += o;
        cpu += c;
    }
    let what = format!(
        "argon2id verify m={} t={} p={}",
        args.argon_memory_kib, args.argon_iterations, args.argon_parallelism
    );
    Ok(Figure::new(&what, threads, ops, wall, cpu))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = if args.threads == 0 {
        cores
    } else {
        args.threads
    };
    let max_ops = 10_000_000;

    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| anyhow!("{e}"))?;
    let rng = SystemRandom::new();
    let input = signing_input();
    let mut signature = vec![0u8; pair.public_modulus_len()];
    let sign = timed(
        "RS256 sign, aws-lc-rs, parsed key pair",
        args.duration,
        max_ops,
        || {
            pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
                .map_err(|e| anyhow!("{e}"))
        },
    )?;

    if args.sign_only {
        return write_report(&args, &json!({ "cores": cores, "rs256_sign": sign }));
    }

    let public = pair.public_key().as_ref().to_vec();
    let verifier = UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public);
    let verify = timed("RS256 verify, aws-lc-rs", args.duration, max_ops, || {
        verifier
            .verify(input.as_bytes(), &signature)
            .map_err(|e| anyhow!("{e}"))
    })?;

    let n = pair
        .public_key()
        .modulus()
        .big_endian_without_leading_zero()
        .to_vec();
    let e = pair
        .public_key()
        .exponent()
        .big_endian_without_leading_zero()
        .to_vec();
    let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
    let signature_b64 = URL_SAFE_NO_PAD.encode(&signature);
    let jwt_verify = timed(
        "RS256 verify, jsonwebtoken (aws_lc_rs)",
        args.duration,
        max_ops,
        || {
            let ok = jsonwebtoken::crypto::verify(
                &signature_b64,
                input.as_bytes(),
                &decoding,
                jsonwebtoken::Algorithm::RS256,
            )?;
            if ok {
                Ok(())
            } else {
                Err(anyhow!("signature did not verify"))
            }
        },
    )?;

    let der = pair.as_der().map_err(|e| anyhow!("{e}"))?;
    let pkcs1 = pkcs1_of_pkcs8(der.as_ref()).ok_or_else(|| anyhow!("unexpected PKCS#8 layout"))?;
    let encoding = jsonwebtoken::EncodingKey::from_rsa_der(pkcs1);
    let stock = timed(
        "RS256 sign, jsonwebtoken stock provider (parses the key per signature)",
        args.duration,
        max_ops,
        || {
            jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &encoding,
                jsonwebtoken::Algorithm::RS256,
            )?;
            Ok(())
        },
    )?;

    let params = Params::new(
        args.argon_memory_kib,
        args.argon_iterations,
        args.argon_parallelism,
        None,
    )
    .map_err(|e| anyhow!("{e}"))?;
    let stored = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
        .map_err(|e| anyhow!("{e}"))?
        .to_string();
    let argon_one = argon2_figure(&args, 1, &stored)?;
    let argon_all = argon2_figure(&args, threads, &stored)?;

    let report = json!({
        "cores": cores,
        "rs256_sign": sign,
        "rs256_verify": verify,
        "rs256_verify_jsonwebtoken": jwt_verify,
        "rs256_sign_jsonwebtoken_stock": stock,
        "argon2id_one_core": argon_one,
        "argon2id_all_cores": argon_all,
    });
    write_report(&args, &report)
}

fn write_report(args: &Args, report: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    match &args.out {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}
