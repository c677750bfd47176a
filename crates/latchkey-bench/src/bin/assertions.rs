//! Client assertions (RFC 7523 `private_key_jwt`) for the benchmark's client_credentials
//! scenario with a key-pair client: `keygen` makes an RSA-2048 key pair and writes its private
//! key (PKCS#8 DER) and its public JWK Set, which the client is registered with; `sign` writes
//! one assertion per line, each with its own `jti`, for the load generator's `--vars` file
//! (the issuer accepts each `jti` once).

use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Parser, Subcommand};
use serde_json::json;

const KID: &str = "bench-client-key";

#[derive(Debug, Parser)]
#[command(about = "Key pairs and signed client assertions for the private_key_jwt benchmark")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a key pair: the private key to `--key`, the public JWK Set to `--jwks`.
    Keygen {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        jwks: PathBuf,
    },
    /// Write `--count` assertions of `--client` for `--audience`, one per line, to `--out`.
    Sign {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        client: String,
        #[arg(long)]
        audience: String,
        #[arg(long)]
        count: usize,
        /// Seconds each assertion stays valid (the issuer takes at most 300).
        #[arg(long, default_value_t = 290)]
        lifetime: u64,
        #[arg(long)]
        out: PathBuf,
    },
}

fn main() -> Result<()> {
    match Args::parse().command {
        Command::Keygen { key, jwks } => keygen(&key, &jwks),
        Command::Sign {
            key,
            client,
            audience,
            count,
            lifetime,
            out,
        } => sign(&key, &client, &audience, count, lifetime, &out),
    }
}

fn keygen(key: &PathBuf, jwks: &PathBuf) -> Result<()> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| anyhow!("{e}"))?;
    let der = pair.as_der().map_err(|e| anyhow!("{e}"))?;
    std::fs::write(key, der.as_ref()).with_context(|| format!("writing {}", key.display()))?;
    let public = pair.public_key();
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let set = json!({"keys": [{
        "kty": "RSA",
        "kid": KID,
        "use": "sig",
        "alg": "RS256",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    }]});
    std::fs::write(jwks, serde_json::to_vec_pretty(&set)?)
        .with_context(|| format!("writing {}", jwks.display()))
}

fn sign(
    key: &PathBuf,
    client: &str,
    audience: &str,
    count: usize,
    lifetime: u64,
    out: &PathBuf,
) -> Result<()> {
    let der = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
    let pair = RsaKeyPair::from_pkcs8(&der).map_err(|e| anyhow!("{e}"))?;
    let rng = SystemRandom::new();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(
        &json!({"alg": "RS256", "typ": "JWT", "kid": KID}),
    )?);
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("writing {}", out.display()))?,
    );
    let mut signature = vec![0u8; pair.public_modulus_len()];
    for n in 0..count {
        let claims = json!({
            "iss": client,
            "sub": client,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime,
            "jti": format!("bench-{now}-{n}"),
        });
        let input = format!(
            "{header}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?)
        );
        pair.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut signature)
            .map_err(|e| anyhow!("{e}"))?;
        writeln!(file, "{input}.{}", URL_SAFE_NO_PAD.encode(&signature))?;
    }
    file.flush()?;
    Ok(())
}
