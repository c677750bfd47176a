//! Password hashing with argon2id on a bounded set of hashing threads.
//!
//! Each hash takes tens of milliseconds of CPU and ~19 MiB of memory, so hashes run on their
//! own threads (see [`super::workers`]), at most one per core at once, with a bounded queue:
//! past it, callers are told to come back later rather than piling up memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::workers::{Memory, Workers};
use crate::configuration::PasswordSettings;
use crate::domain::Secret;

/// Why a password could not be hashed or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Too many hashes are queued; retry shortly.
    #[error("password hashing is saturated")]
    Busy,
    #[error("password hashing failed: {0}")]
    Internal(String),
    /// A stored hash no verifier here can read (the store was changed by hand).
    #[error("a stored password hash cannot be read: {0}")]
    Unreadable(String),
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    workers: Workers,
    concurrency: usize,
    max_queue: usize,
    /// Hashes running or waiting to run; shared with the queued jobs, which give their place
    /// back when they end.
    in_flight: Arc<AtomicUsize>,
    /// Verifications started since start-up: shows that refused logins cost no argon2 time.
    verifications: AtomicU64,
    /// Verified against when the user does not exist, so that case costs what a wrong password
    /// costs.
    dummy_hash: String,
    /// The least time (ns) a refused password is answered in once the store holds hashes of
    /// other costs than the dummy's (see [`PasswordHasher::calibrate`]); 0 while it holds none.
    refusal_floor: AtomicU64,
    /// Wakes the task that surveys the store's hashes (an import changed them).
    hashes_changed: tokio::sync::Notify,
}

/// How much longer than the slowest check measured a refusal is held, so that the ordinary
/// jitter of a check does not show through the floor.
const FLOOR_MARGIN: f64 = 1.25;

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<PasswordHasher, PasswordError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(internal)?;
        let concurrency = match settings.max_concurrent {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let dummy_hash = unmatchable_hash(&params)?;
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                workers: Workers::start(concurrency).map_err(internal)?,
                concurrency,
                max_queue: settings.max_queue,
                in_flight: Arc::new(AtomicUsize::new(0)),
                verifications: AtomicU64::new(0),
                dummy_hash,
                refusal_floor: AtomicU64::new(0),
                hashes_changed: tokio::sync::Notify::new(),
            }),
        })
    }

    /// Hashes with the configured parameters, as a PHC string.
    pub async fn hash(&self, password: Secret) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        self.run(move |memory| hash_now(&params, &password, memory))
            .await
    }

    /// Checks `password` against `stored` (an argon2 PHC string, or a hash imported from
    /// another system); with no stored hash, checks against a dummy so that the time spent does
    /// not reveal whether the user exists. The password is accepted only if it matches and
    /// the account `may_sign_in`; every other outcome (a disabled account's right password
    /// included) is a refusal, held to the refusal floor, so that a hash of another cost (an
    /// imported one) is not told from an unknown user either. A stored hash that cannot be read
    /// is refused the same way, and logged.
    pub async fn verify(
        &self,
        password: Secret,
        stored: Option<String>,
        may_sign_in: bool,
    ) -> Result<bool, PasswordError> {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (self.inner.dummy_hash.clone(), false),
        };
        let other_cost = !self.costs_as_configured(&hash);
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let (matched, spent) = match self.timed_check(password, hash).await {
            Ok(checked) => checked,
            Err(PasswordError::Unreadable(why)) => {
                tracing::error!(%why, "a stored password hash cannot be read; refusing the password");
                (false, Duration::ZERO)
            }
            Err(error) => return Err(error),
        };
        let floor = self.raise_floor(spent, other_cost);
        let accepted = matched && real && may_sign_in;
        if !accepted && floor > spent {
            // Not on a hashing thread: holding a refusal costs no CPU.
            tokio::time::sleep(floor - spent).await;
        }
        Ok(accepted)
    }

    /// Whether checking `stored` costs what checking the dummy costs: argon2id of the
    /// configured parameters.
    pub fn costs_as_configured(&self, stored: &str) -> bool {
        cost_part(stored) == cost_part(&self.inner.dummy_hash)
    }

    /// Sets the refusal floor from the store's hashes: `costliest` holds, for each scheme of
    /// another cost than the configured argon2id, its costliest hash (the accounts' survey of
    /// the store finds them). The floor is the longest of one check of each and
    /// of the dummy, with a margin; with none, refusals are not held (every check costs the
    /// same already). Until the next calibration, a check that takes longer raises it.
    pub async fn calibrate(&self, costliest: Vec<String>) -> Result<Duration, PasswordError> {
        if costliest.is_empty() {
            self.inner.refusal_floor.store(0, Ordering::Relaxed);
            return Ok(Duration::ZERO);
        }
        let mut longest = Duration::ZERO;
        for hash in std::iter::once(self.inner.dummy_hash.clone()).chain(costliest) {
            let unguessable = Secret::new(crate::domain::random_token(16));
            match self.timed_check(unguessable, hash).await {
                Ok((_, spent)) => longest = longest.max(spent),
                // One unreadable hash must not keep the others from being measured.
                Err(PasswordError::Unreadable(why)) => {
                    tracing::warn!(%why, "a stored password hash cannot be read; not measured");
                }
                Err(error) => return Err(error),
            }
        }
        let floor = longest.mul_f64(FLOOR_MARGIN);
        self.inner
            .refusal_floor
            .store(as_nanos(floor), Ordering::Relaxed);
        Ok(floor)
    }

    /// The least time a refused password takes right now (zero: not held).
    pub fn refusal_floor(&self) -> Duration {
        Duration::from_nanos(self.inner.refusal_floor.load(Ordering::Relaxed))
    }

    /// Asks for the store's hashes to be surveyed again now (users were imported).
    pub fn hashes_changed(&self) {
        self.inner.hashes_changed.notify_one();
    }

    /// Completes when [`Self::hashes_changed`] was called.
    pub async fn hashes_changed_notice(&self) {
        self.inner.hashes_changed.notified().await;
    }

    async fn timed_check(
        &self,
        password: Secret,
        hash: String,
    ) -> Result<(bool, Duration), PasswordError> {
        self.run(move |memory| {
            let started = Instant::now();
            let matched = verify_now(&password, &hash, memory)?;
            Ok((matched, started.elapsed()))
        })
        .await
    }

    /// Once the floor is set, or a hash of another cost is checked, no check may take longer
    /// than the floor without raising it: a loaded machine, or a hash imported since the last
    /// calibration, must not show through. Returns the floor.
    fn raise_floor(&self, spent: Duration, other_cost: bool) -> Duration {
        let floor = &self.inner.refusal_floor;
        let current = floor.load(Ordering::Relaxed);
        if (current == 0 && !other_cost) || as_nanos(spent) <= current {
            return Duration::from_nanos(current);
        }
        let raised = as_nanos(spent.mul_f64(FLOOR_MARGIN));
        Duration::from_nanos(floor.fetch_max(raised, Ordering::Relaxed).max(raised))
    }

    /// Whether `stored` should be made again as argon2id once the password is known: a hash
    /// imported from another system (see [`super::legacy`]), or argon2i. An argon2id hash of
    /// other parameters stays as it is: operators lower the cost on purpose (test users, bulk
    /// accounts), and raising it is a password reset's job.
    pub fn needs_rehash(&self, stored: &str) -> bool {
        !stored.starts_with("$argon2id$")
    }

    /// Password verifications started so far (by this hasher and its clones).
    pub fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }

    /// Hashes waiting for a core right now.
    pub fn queue_depth(&self) -> usize {
        let in_flight = self.inner.in_flight.load(Ordering::Relaxed);
        in_flight.saturating_sub(self.inner.concurrency)
    }

    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        F: FnOnce(&mut Memory) -> Result<T, PasswordError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = &self.inner;
        let place = InFlight::enter(&inner.in_flight, inner.concurrency + inner.max_queue)
            .ok_or(PasswordError::Busy)?;
        let (answer, result) = tokio::sync::oneshot::channel();
        let job = Box::new(move |memory: &mut Memory| {
            let _place = place;
            // A caller that went away (a cancelled request) no longer needs its hash.
            if !answer.is_closed() {
                let _ = answer.send(work(memory));
            }
        });
        if !inner.workers.submit(job) {
            return Err(PasswordError::Internal(
                "the hashing threads stopped".into(),
            ));
        }
        result
            .await
            .map_err(|_| PasswordError::Internal("a hashing thread failed".into()))?
    }
}

/// A place among the hashes in flight, given back on drop: by the job when it ends, or with the
/// job if it is never run.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(counter: &Arc<AtomicUsize>, limit: usize) -> Option<InFlight> {
        if counter.fetch_add(1, Ordering::AcqRel) >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(counter.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn as_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// What fixes the cost of a PHC string's check: everything before its salt.
fn cost_part(phc: &str) -> &str {
    phc.rsplitn(3, '$').last().unwrap_or(phc)
}

fn unreadable(error: impl std::fmt::Display) -> PasswordError {
    PasswordError::Unreadable(error.to_string())
}

fn internal(error: impl std::fmt::Display) -> PasswordError {
    PasswordError::Internal(error.to_string())
}

/// Longest salt a PHC string may carry (its base64 decodes to at most this many bytes).
const MAX_SALT: usize = 64;

/// Runs argon2 for `params` in `memory`, writing an output of `len` bytes.
fn compute(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &Secret,
    salt: &[u8],
    len: usize,
    memory: &mut Memory,
) -> Result<Output, PasswordError> {
    let blocks = memory.blocks(params.block_count());
    Output::init_with(len, |out| {
        argon2
            .hash_password_into_with_memory(password.expose().as_bytes(), salt, out, &mut *blocks)
            .map_err(Into::into)
    })
    .map_err(internal)
}

fn hash_now(
    params: &Params,
    password: &Secret,
    memory: &mut Memory,
) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; MAX_SALT];
    let salt_bytes = salt
        .as_salt()
        .decode_b64(&mut salt_bytes)
        .map_err(internal)?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let output = compute(
        &argon2,
        params,
        password,
        salt_bytes,
        output_len(params),
        memory,
    )?;
    phc_string(params, &salt, output)
}

/// A hash of the configured parameters that no password matches: a random salt and a random
/// output. Checking a password against it costs exactly what checking a real hash costs, and
/// making it costs no argon2 time and no second block of memory.
fn unmatchable_hash(params: &Params) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let random = crate::domain::random_bytes(output_len(params));
    let output = Output::new(&random).map_err(internal)?;
    phc_string(params, &salt, output)
}

fn output_len(params: &Params) -> usize {
    params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)
}

fn phc_string(params: &Params, salt: &SaltString, output: Output) -> Result<String, PasswordError> {
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(internal)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

fn verify_now(password: &Secret, stored: &str, memory: &mut Memory) -> Result<bool, PasswordError> {
    if !stored.starts_with("$argon2") {
        // Imported from another system; checked at import, so its cost is bounded.
        let legacy = super::legacy::parse(stored).map_err(unreadable)?;
        return Ok(legacy.verify(password.expose().as_bytes()) == Some(true));
    }
    let parsed = PasswordHash::new(stored).map_err(unreadable)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(unreadable("the stored hash has no salt or no output"));
    };
    // The stored hash carries its own algorithm and parameters, so hashes made under older
    // settings still verify.
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(unreadable)?;
    let version = match parsed.version {
        Some(version) => Version::try_from(version).map_err(unreadable)?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(unreadable)?;
    let mut salt_bytes = [0u8; MAX_SALT];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(unreadable)?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed = compute(
        &argon2,
        &params,
        password,
        salt_bytes,
        expected.len(),
        memory,
    )?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
#[path = "password_tests.rs"]
mod tests;
