//! Password hashing with argon2id on a bounded blocking pool.
//!
//! Each hash takes tens of milliseconds of CPU and ~19 MiB of memory, so hashes run on tokio's
//! blocking threads, at most one per core at once, with a bounded queue: past it, callers are
//! told to come back later rather than piling up memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

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
}

/// A password that the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("the password must be at least 8 characters")]
    TooShort,
    #[error("the password must be at most 1024 bytes")]
    TooLong,
}

/// NIST SP 800-63B: length is what matters; no composition rules.
pub fn check_password_policy(password: &Secret) -> Result<(), PasswordPolicyError> {
    let value = password.expose();
    if value.chars().count() < 8 {
        return Err(PasswordPolicyError::TooShort);
    }
    if value.len() > 1024 {
        return Err(PasswordPolicyError::TooLong);
    }
    Ok(())
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    permits: Semaphore,
    concurrency: usize,
    max_queue: usize,
    /// Hashes running or waiting to run.
    in_flight: AtomicUsize,
    /// Verifications started since start-up: shows that refused logins cost no argon2 time.
    verifications: AtomicU64,
    /// Verified against when the user does not exist, so that case costs what a wrong password
    /// costs.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(settings: &PasswordSettings) -> Result<PasswordHasher, PasswordError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| PasswordError::Internal(e.to_string()))?;
        let concurrency = match settings.max_concurrent {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let dummy_hash = hash_now(&params, &Secret::new(super::random_token(16)))?;
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                permits: Semaphore::new(concurrency),
                concurrency,
                max_queue: settings.max_queue,
                in_flight: AtomicUsize::new(0),
                verifications: AtomicU64::new(0),
                dummy_hash,
            }),
        })
    }

    /// Hashes with the configured parameters, as a PHC string.
    pub async fn hash(&self, password: Secret) -> Result<String, PasswordError> {
        let params = self.inner.params.clone();
        self.run(move || hash_now(&params, &password)).await
    }

    /// Checks `password` against `stored` (a PHC string); with no stored hash, checks against a
    /// dummy so that the time spent does not reveal whether the user exists.
    pub async fn verify(
        &self,
        password: Secret,
        stored: Option<String>,
    ) -> Result<bool, PasswordError> {
        let (hash, real) = match stored {
            Some(hash) => (hash, true),
            None => (self.inner.dummy_hash.clone(), false),
        };
        self.inner.verifications.fetch_add(1, Ordering::Relaxed);
        let matched = self.run(move || verify_now(&password, &hash)).await?;
        Ok(matched && real)
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
        F: FnOnce() -> Result<T, PasswordError> + Send + 'static,
        T: Send + 'static,
    {
        let inner = &self.inner;
        let slot = InFlight::enter(&inner.in_flight, inner.concurrency + inner.max_queue)
            .ok_or(PasswordError::Busy)?;
        let _permit = inner
            .permits
            .acquire()
            .await
            .map_err(|e| PasswordError::Internal(e.to_string()))?;
        let result = tokio::task::spawn_blocking(work).await;
        drop(slot);
        result.map_err(|e| PasswordError::Internal(e.to_string()))?
    }
}

/// A place among the hashes in flight, given back on drop, so a request that is cancelled while
/// it waits does not leak its place.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize, limit: usize) -> Option<InFlight<'a>> {
        if counter.fetch_add(1, Ordering::AcqRel) >= limit {
            counter.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(counter))
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn argon2(params: &Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
}

fn hash_now(params: &Params, password: &Secret) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    argon2(params)
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Internal(e.to_string()))
}

fn verify_now(password: &Secret, stored: &str) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(|e| PasswordError::Internal(e.to_string()))?;
    // The stored hash carries its own parameters, so hashes made under older settings still
    // verify.
    Ok(Argon2::default()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordSettings {
        PasswordSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            max_queue: 2,
        }
    }

    #[tokio::test]
    async fn a_hashed_password_verifies_and_a_wrong_one_does_not() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        let hash = hasher.hash(Secret::new("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        let ok = hasher.verify(Secret::new("correct horse"), Some(hash.clone()));
        assert!(ok.await.unwrap());
        let wrong = hasher.verify(Secret::new("battery staple"), Some(hash));
        assert!(!wrong.await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
        let hasher = PasswordHasher::new(&cheap()).unwrap();
        assert!(!hasher.verify(Secret::new("anything"), None).await.unwrap());
    }

    #[test]
    fn the_default_parameters_are_owasps() {
        let defaults = crate::configuration::Settings::default().passwords;
        let params = Params::new(
            defaults.memory_kib,
            defaults.iterations,
            defaults.parallelism,
            None,
        )
        .unwrap();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (19_456, 2, 1)
        );
    }

    #[test]
    fn short_and_huge_passwords_are_refused() {
        assert_eq!(
            check_password_policy(&Secret::new("short")),
            Err(PasswordPolicyError::TooShort)
        );
        let huge = Secret::new("x".repeat(2000));
        assert_eq!(
            check_password_policy(&huge),
            Err(PasswordPolicyError::TooLong)
        );
        assert!(check_password_policy(&Secret::new("long enough")).is_ok());
    }

    #[tokio::test]
    async fn past_the_queue_bound_hashing_is_refused_as_busy() {
        let hasher = PasswordHasher::new(&PasswordSettings {
            memory_kib: 8192,
            iterations: 3,
            parallelism: 1,
            max_concurrent: 1,
            max_queue: 1,
        })
        .unwrap();
        let attempts = (0..16).map(|_| {
            let hasher = hasher.clone();
            tokio::spawn(async move { hasher.hash(Secret::new("password")).await })
        });
        let results = futures_join(attempts).await;
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(PasswordError::Busy)))
        );
        assert!(results.iter().any(|r| r.is_ok()));
    }

    async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
        let mut out = Vec::new();
        for handle in handles.collect::<Vec<_>>() {
            out.push(handle.await.unwrap());
        }
        out
    }
}
