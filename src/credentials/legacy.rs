//! Password hashes brought from other systems (design §9): Werkzeug's `pbkdf2:` and `scrypt:`
//! (Flask's defaults), Django's `pbkdf2_sha256$`, bcrypt, and the PHC strings of argon2,
//! pbkdf2-sha256 and scrypt (passlib's and RustCrypto's). Each is checked when it is imported,
//! so that what the store holds is a hash Latchkey can verify at a bounded cost: an import
//! cannot plant a hash that ties up a hashing thread for seconds per login.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};

/// The most PBKDF2-SHA256 iterations accepted: Werkzeug 3.1's default (about half a second of
/// one core here; the hash becomes argon2id at the first login).
pub const MAX_PBKDF2_ITERATIONS: u32 = 1_000_000;
/// The most memory one scrypt check may take (128 · N · r bytes): passlib's default, 64 MiB.
pub const MAX_SCRYPT_MEMORY: u64 = 64 << 20;
/// The most scrypt work accepted (N · r · p): twice Werkzeug's default of 2^15 · 8 · 1.
pub const MAX_SCRYPT_WORK: u64 = 1 << 19;
/// The highest bcrypt cost accepted (2^14 rounds: about a second of one core).
pub const MAX_BCRYPT_COST: u32 = 14;
/// The most memory (KiB), passes and lanes of an imported argon2 hash.
pub const MAX_ARGON2_MEMORY_KIB: u32 = 64 * 1024;
pub const MAX_ARGON2_ITERATIONS: u32 = 10;
pub const MAX_ARGON2_LANES: u32 = 4;
/// The largest scrypt block size and parallelism accepted: Werkzeug and passlib use r=8, p=1.
/// PBKDF2's pass over the salt runs once per 128·r·p bytes, so they bound it too.
pub const MAX_SCRYPT_R: u64 = 32;
pub const MAX_SCRYPT_P: u64 = 16;
/// The longest salt of any scheme (bytes): others use 8 to 32. A longer one costs a pass of
/// PBKDF2 over it per block, a cost the other ceilings do not see.
pub const MAX_SALT_BYTES: usize = 64;
/// The longest hash text accepted: the longest real one (scrypt, 64-byte output) is under 250.
pub const MAX_HASH_LEN: usize = 512;

/// How a stored password hash is made, as `password_scheme` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Argon2id,
    Argon2i,
    Pbkdf2Sha256,
    Scrypt,
    Bcrypt,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Argon2id => "argon2id",
            Scheme::Argon2i => "argon2i",
            Scheme::Pbkdf2Sha256 => "pbkdf2-sha256",
            Scheme::Scrypt => "scrypt",
            Scheme::Bcrypt => "bcrypt",
        }
    }

    /// The scheme of a hash already in the store (one that [`parse`] accepted, or argon2id
    /// made here), by its form alone.
    pub fn of(stored: &str) -> Option<Scheme> {
        const FORMS: [(&str, Scheme); 10] = [
            ("$argon2id$", Scheme::Argon2id),
            ("$argon2i$", Scheme::Argon2i),
            ("pbkdf2:", Scheme::Pbkdf2Sha256),
            ("pbkdf2_sha256$", Scheme::Pbkdf2Sha256),
            ("$pbkdf2-sha256$", Scheme::Pbkdf2Sha256),
            ("scrypt:", Scheme::Scrypt),
            ("$scrypt$", Scheme::Scrypt),
            ("$2a$", Scheme::Bcrypt),
            ("$2b$", Scheme::Bcrypt),
            ("$2y$", Scheme::Bcrypt),
        ];
        FORMS
            .iter()
            .find(|(prefix, _)| stored.starts_with(prefix))
            .map(|(_, scheme)| *scheme)
    }
}

/// Why an imported hash was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error(
        "not a password hash format Latchkey accepts (Werkzeug pbkdf2:/scrypt:, Django \
         pbkdf2_sha256$, bcrypt $2a$/$2b$/$2y$, or a PHC string of argon2id, argon2i, \
         pbkdf2-sha256 or scrypt)"
    )]
    UnknownFormat,
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        scheme: &'static str,
        reason: &'static str,
    },
    #[error("{scheme} hash costs more than Latchkey checks per login: {reason}")]
    TooCostly {
        scheme: &'static str,
        reason: String,
    },
}

/// A stored hash in a format Latchkey verifies, its cost within the ceilings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyHash {
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// Verified by the bcrypt crate from its text.
    Bcrypt(String),
    /// Verified by the service's own argon2 path from its PHC text.
    Argon2 { scheme: Scheme, phc: String },
}

impl LegacyHash {
    pub fn scheme(&self) -> Scheme {
        match self {
            LegacyHash::Pbkdf2 { .. } => Scheme::Pbkdf2Sha256,
            LegacyHash::Scrypt { .. } => Scheme::Scrypt,
            LegacyHash::Bcrypt(_) => Scheme::Bcrypt,
            LegacyHash::Argon2 { scheme, .. } => *scheme,
        }
    }

    /// The work one check of this hash takes, comparable between hashes of one scheme only:
    /// iterations, N·r·p, 2^cost, or argon2's memory times passes.
    pub fn work(&self) -> u64 {
        match self {
            LegacyHash::Pbkdf2 { iterations, .. } => u64::from(*iterations),
            LegacyHash::Scrypt { log_n, r, p, .. } => {
                (1u64 << log_n).saturating_mul(u64::from(*r) * u64::from(*p))
            }
            LegacyHash::Bcrypt(text) => text
                .get(4..6)
                .and_then(|cost| cost.parse::<u32>().ok())
                .map_or(0, |cost| 1u64 << cost.min(63)),
            LegacyHash::Argon2 { phc, .. } => argon2::password_hash::PasswordHash::new(phc)
                .ok()
                .and_then(|parsed| argon2::Params::try_from(&parsed).ok())
                .map_or(0, |params| {
                    u64::from(params.m_cost()) * u64::from(params.t_cost())
                }),
        }
    }

    /// Whether `password` matches, compared in constant time. `None` for argon2 hashes, which
    /// the service checks on its hashing threads with their kept memory.
    pub fn verify(&self, password: &[u8]) -> Option<bool> {
        Some(match self {
            LegacyHash::Pbkdf2 {
                iterations,
                salt,
                hash,
            } => {
                let Some(rounds) = std::num::NonZeroU32::new(*iterations) else {
                    return Some(false);
                };
                aws_lc_rs::pbkdf2::verify(
                    aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
                    rounds,
                    salt,
                    password,
                    hash,
                )
                .is_ok()
            }
            LegacyHash::Scrypt {
                log_n,
                r,
                p,
                salt,
                hash,
            } => {
                let Ok(params) = scrypt::Params::new(*log_n, *r, *p) else {
                    return Some(false);
                };
                let mut computed = vec![0u8; hash.len()];
                scrypt::scrypt(password, salt, &params, &mut computed).is_ok()
                    && verify_slices_are_equal(&computed, hash).is_ok()
            }
            LegacyHash::Bcrypt(text) => bcrypt::verify(password, text).unwrap_or(false),
            LegacyHash::Argon2 { .. } => return None,
        })
    }
}

/// Reads a hash as another system stored it, refusing unknown formats and costs above the
/// ceilings.
pub fn parse(text: &str) -> Result<LegacyHash, HashError> {
    let text = text.trim();
    if text.len() > MAX_HASH_LEN {
        return Err(HashError::Malformed {
            scheme: "password hash",
            reason: "longer than 512 characters",
        });
    }
    if let Some(rest) = text.strip_prefix("pbkdf2:") {
        return werkzeug_pbkdf2(rest);
    }
    if let Some(rest) = text.strip_prefix("scrypt:") {
        return werkzeug_scrypt(rest);
    }
    if let Some(rest) = text.strip_prefix("pbkdf2_sha256$") {
        return django_pbkdf2(rest);
    }
    if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
        return bcrypt_hash(text);
    }
    if let Some(rest) = text.strip_prefix("$pbkdf2-sha256$") {
        return phc_pbkdf2(rest);
    }
    if let Some(rest) = text.strip_prefix("$scrypt$") {
        return phc_scrypt(rest);
    }
    if text.starts_with("$argon2id$") || text.starts_with("$argon2i$") {
        return argon2_hash(text);
    }
    Err(HashError::UnknownFormat)
}

const PBKDF2: &str = "pbkdf2-sha256";
const SCRYPT: &str = "scrypt";

fn malformed(scheme: &'static str, reason: &'static str) -> HashError {
    HashError::Malformed { scheme, reason }
}

/// `pbkdf2:sha256:ITERATIONS$SALT$HEX`: the salt's text is the salt, the output is 32 bytes.
fn werkzeug_pbkdf2(rest: &str) -> Result<LegacyHash, HashError> {
    let (method, salt, hex) = three_parts(rest, PBKDF2)?;
    let iterations = method
        .strip_prefix("sha256:")
        .ok_or_else(|| malformed(PBKDF2, "only pbkdf2:sha256 is accepted"))?;
    pbkdf2_hash(iterations, salt.as_bytes().to_vec(), decode_hex(hex)?)
}

/// `pbkdf2_sha256$ITERATIONS$SALT$BASE64`: Django's, the salt's text is the salt.
fn django_pbkdf2(rest: &str) -> Result<LegacyHash, HashError> {
    let (iterations, salt, b64) = three_parts(rest, PBKDF2)?;
    let hash = STANDARD
        .decode(b64)
        .map_err(|_| malformed(PBKDF2, "the output is not base64"))?;
    pbkdf2_hash(iterations, salt.as_bytes().to_vec(), hash)
}

/// `$pbkdf2-sha256$ITERATIONS$SALT$HASH` (passlib's adapted base64) or
/// `$pbkdf2-sha256$i=ITERATIONS[,l=LEN]$SALT$HASH` (PHC base64).
fn phc_pbkdf2(rest: &str) -> Result<LegacyHash, HashError> {
    let (params, salt, hash) = three_parts(rest, PBKDF2)?;
    let iterations = match params.strip_prefix("i=") {
        Some(phc) => phc.split(',').next().unwrap_or_default(),
        None => params,
    };
    pbkdf2_hash(
        iterations,
        decode_b64(salt, PBKDF2)?,
        decode_b64(hash, PBKDF2)?,
    )
}

fn pbkdf2_hash(iterations: &str, salt: Vec<u8>, hash: Vec<u8>) -> Result<LegacyHash, HashError> {
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| malformed(PBKDF2, "the iteration count is not a number"))?;
    if iterations == 0 || salt.is_empty() || salt.len() > MAX_SALT_BYTES {
        return Err(malformed(
            PBKDF2,
            "no iterations, or a salt of none or over 64 bytes",
        ));
    }
    if !(16..=64).contains(&hash.len()) {
        return Err(malformed(PBKDF2, "the output is not 16 to 64 bytes"));
    }
    // Each 32 bytes of output is a run of all the iterations.
    let blocks = hash.len().div_ceil(32) as u64;
    if u64::from(iterations) * blocks > u64::from(MAX_PBKDF2_ITERATIONS) {
        return Err(HashError::TooCostly {
            scheme: PBKDF2,
            reason: format!(
                "{iterations} iterations for {} bytes of output: at most \
                 {MAX_PBKDF2_ITERATIONS} per 32 bytes",
                hash.len()
            ),
        });
    }
    Ok(LegacyHash::Pbkdf2 {
        iterations,
        salt,
        hash,
    })
}

/// `scrypt:N:R:P$SALT$HEX`: the salt's text is the salt, the output is 64 bytes.
fn werkzeug_scrypt(rest: &str) -> Result<LegacyHash, HashError> {
    let (params, salt, hex) = three_parts(rest, SCRYPT)?;
    let numbers: Vec<u64> = params
        .split(':')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| malformed(SCRYPT, "N, r and p are not numbers"))?;
    let [n, r, p] = numbers[..] else {
        return Err(malformed(SCRYPT, "expected scrypt:N:r:p"));
    };
    if !n.is_power_of_two() || n < 2 {
        return Err(malformed(SCRYPT, "N is not a power of two"));
    }
    let log_n = u8::try_from(n.trailing_zeros()).unwrap_or(u8::MAX);
    scrypt_hash(log_n, r, p, salt.as_bytes().to_vec(), decode_hex(hex)?)
}

/// `$scrypt$ln=LOG_N,r=R,p=P$SALT$HASH` (PHC base64).
fn phc_scrypt(rest: &str) -> Result<LegacyHash, HashError> {
    let (params, salt, hash) = three_parts(rest, SCRYPT)?;
    let (mut log_n, mut r, mut p) = (None, None, None);
    for pair in params.split(',') {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| malformed(SCRYPT, "parameters are not name=value"))?;
        let value: u64 = value
            .parse()
            .map_err(|_| malformed(SCRYPT, "a parameter is not a number"))?;
        match name {
            "ln" => log_n = Some(value),
            "r" => r = Some(value),
            "p" => p = Some(value),
            _ => return Err(malformed(SCRYPT, "unknown parameter")),
        }
    }
    let (Some(log_n), Some(r), Some(p)) = (log_n, r, p) else {
        return Err(malformed(SCRYPT, "expected ln, r and p"));
    };
    let log_n = u8::try_from(log_n).map_err(|_| malformed(SCRYPT, "ln is too large"))?;
    scrypt_hash(
        log_n,
        r,
        p,
        decode_b64(salt, SCRYPT)?,
        decode_b64(hash, SCRYPT)?,
    )
}

fn scrypt_hash(
    log_n: u8,
    r: u64,
    p: u64,
    salt: Vec<u8>,
    hash: Vec<u8>,
) -> Result<LegacyHash, HashError> {
    if log_n == 0 || log_n >= 32 || r == 0 || p == 0 || salt.is_empty() {
        return Err(malformed(SCRYPT, "N, r, p or the salt out of range"));
    }
    if salt.len() > MAX_SALT_BYTES {
        return Err(malformed(SCRYPT, "the salt is over 64 bytes"));
    }
    if !(16..=64).contains(&hash.len()) {
        return Err(malformed(SCRYPT, "the output is not 16 to 64 bytes"));
    }
    let n = 1u64 << log_n;
    // The table (128·r·N), the blocks of all lanes (128·r·p) and one more block of scratch.
    let memory = 128u64
        .saturating_mul(r)
        .saturating_mul(n.saturating_add(p).saturating_add(1));
    let work = n.saturating_mul(r).saturating_mul(p);
    if memory > MAX_SCRYPT_MEMORY || work > MAX_SCRYPT_WORK || r > MAX_SCRYPT_R || p > MAX_SCRYPT_P
    {
        return Err(HashError::TooCostly {
            scheme: SCRYPT,
            reason: format!(
                "N={n}, r={r}, p={p}: at most {} MiB, N·r·p ≤ {MAX_SCRYPT_WORK}, \
                 r ≤ {MAX_SCRYPT_R} and p ≤ {MAX_SCRYPT_P}",
                MAX_SCRYPT_MEMORY >> 20
            ),
        });
    }
    let (Ok(r), Ok(p)) = (u32::try_from(r), u32::try_from(p)) else {
        return Err(malformed(SCRYPT, "r or p out of range"));
    };
    Ok(LegacyHash::Scrypt {
        log_n,
        r,
        p,
        salt,
        hash,
    })
}

fn bcrypt_hash(text: &str) -> Result<LegacyHash, HashError> {
    const BCRYPT: &str = "bcrypt";
    // $2b$CC$ + 22 characters of salt + 31 of output, in bcrypt's own base64.
    let cost: u32 = text
        .get(4..6)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| malformed(BCRYPT, "no cost"))?;
    if text.len() != 60 || text.as_bytes().get(6) != Some(&b'$') {
        return Err(malformed(BCRYPT, "expected $2b$CC$ and 53 characters"));
    }
    if text.parse::<bcrypt::HashParts>().is_err() {
        return Err(malformed(
            BCRYPT,
            "the salt or output is not bcrypt's base64",
        ));
    }
    if !(4..=31).contains(&cost) {
        return Err(malformed(BCRYPT, "the cost is not 4 to 31"));
    }
    if cost > MAX_BCRYPT_COST {
        return Err(HashError::TooCostly {
            scheme: BCRYPT,
            reason: format!("cost {cost}, at most {MAX_BCRYPT_COST}"),
        });
    }
    Ok(LegacyHash::Bcrypt(text.to_owned()))
}

fn argon2_hash(text: &str) -> Result<LegacyHash, HashError> {
    use argon2::password_hash::PasswordHash;
    const ARGON2: &str = "argon2";
    let parsed = PasswordHash::new(text).map_err(|_| malformed(ARGON2, "not a PHC string"))?;
    let params =
        argon2::Params::try_from(&parsed).map_err(|_| malformed(ARGON2, "invalid parameters"))?;
    let (Some(salt), Some(_)) = (parsed.salt, parsed.hash) else {
        return Err(malformed(ARGON2, "no salt or no output"));
    };
    // What the verifier does with it, so that every hash imported is one it can check.
    argon2::Algorithm::try_from(parsed.algorithm)
        .map_err(|_| malformed(ARGON2, "unknown algorithm"))?;
    if let Some(version) = parsed.version {
        argon2::Version::try_from(version).map_err(|_| malformed(ARGON2, "unknown version"))?;
    }
    let mut salt_bytes = [0u8; MAX_SALT_BYTES];
    let salt_len = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|_| malformed(ARGON2, "the salt is not base64 of 8 to 64 bytes"))?
        .len();
    if salt_len < 8 {
        return Err(malformed(ARGON2, "the salt is not base64 of 8 to 64 bytes"));
    }
    if params.m_cost() > MAX_ARGON2_MEMORY_KIB
        || params.t_cost() > MAX_ARGON2_ITERATIONS
        || params.p_cost() > MAX_ARGON2_LANES
    {
        return Err(HashError::TooCostly {
            scheme: ARGON2,
            reason: format!(
                "m={}, t={}, p={}: at most m={MAX_ARGON2_MEMORY_KIB}, \
                 t={MAX_ARGON2_ITERATIONS}, p={MAX_ARGON2_LANES}",
                params.m_cost(),
                params.t_cost(),
                params.p_cost()
            ),
        });
    }
    let scheme = match parsed.algorithm.as_str() {
        "argon2id" => Scheme::Argon2id,
        _ => Scheme::Argon2i,
    };
    Ok(LegacyHash::Argon2 {
        scheme,
        phc: text.to_owned(),
    })
}

/// `A$B$C`, each part non-empty.
fn three_parts<'a>(
    text: &'a str,
    scheme: &'static str,
) -> Result<(&'a str, &'a str, &'a str), HashError> {
    let mut parts = text.split('$');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c), None) if !a.is_empty() && !b.is_empty() && !c.is_empty() => {
            Ok((a, b, c))
        }
        _ => Err(malformed(scheme, "expected three $-separated parts")),
    }
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, HashError> {
    // Digits only: `from_str_radix` would also take a sign, reading "+f" as 0x0f.
    if !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(HashError::Malformed {
            scheme: "werkzeug",
            reason: "the output is not hex",
        });
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|byte| u8::from_str_radix(byte, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(HashError::Malformed {
            scheme: "werkzeug",
            reason: "the output is not hex",
        })
}

/// PHC base64 (no padding), also in passlib's adapted form ('.' for '+').
fn decode_b64(text: &str, scheme: &'static str) -> Result<Vec<u8>, HashError> {
    STANDARD_NO_PAD
        .decode(text.replace('.', "+").trim_end_matches('='))
        .map_err(|_| malformed(scheme, "not base64"))
}

#[cfg(test)]
#[path = "legacy_tests.rs"]
mod tests;
