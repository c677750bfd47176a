//! Hashing and verification, the refusal floor and the queue bound, on cheap parameters unless
//! a test is about the configured ones.

use super::*;

/// Werkzeug's pbkdf2 form, matched by no password used here.
fn imported(iterations: u32) -> String {
    format!("pbkdf2:sha256:{iterations}$salt${}", "ab".repeat(32))
}

#[test]
fn only_argon2id_of_the_configured_parameters_costs_what_the_dummy_costs() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    let configured = unmatchable_hash(&hasher.inner.params).unwrap();
    assert!(hasher.costs_as_configured(&configured));
    let costlier = configured.replace("m=1024,t=1", "m=2048,t=1");
    assert!(!hasher.costs_as_configured(&costlier));
    assert!(!hasher.costs_as_configured(&imported(1000)));
    assert!(
        !hasher.costs_as_configured("$2b$04$Eoj89ramYZP0krHAwqsg/uvBCvWNlyMoJ4HMBSSeIRVoSHptvAZoO")
    );
}

#[tokio::test]
async fn with_no_hash_of_another_cost_refusals_are_not_held() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    assert_eq!(hasher.calibrate(Vec::new()).await.unwrap(), Duration::ZERO);
    assert!(!hasher.verify(Secret::new("x"), None, true).await.unwrap());
    assert_eq!(hasher.refusal_floor(), Duration::ZERO);
}

#[tokio::test]
async fn once_an_imported_hash_costs_more_every_refusal_takes_at_least_as_long_as_it() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    let floor = hasher.calibrate(vec![imported(500_000)]).await.unwrap();
    assert!(floor > Duration::ZERO);
    let own = hasher.hash(Secret::new("correct horse")).await.unwrap();
    for stored in [None, Some(own.clone()), Some(imported(1000))] {
        let started = Instant::now();
        assert!(
            !hasher
                .verify(Secret::new("wrong"), stored, true)
                .await
                .unwrap()
        );
        assert!(
            started.elapsed() >= floor,
            "{:?} < {floor:?}",
            started.elapsed()
        );
    }
    // A success is not held: it tells the caller nothing they did not know.
    let started = Instant::now();
    assert!(
        hasher
            .verify(Secret::new("correct horse"), Some(own), true)
            .await
            .unwrap()
    );
    assert!(started.elapsed() < floor);
}

#[tokio::test]
async fn a_disabled_accounts_right_password_is_held_like_a_wrong_one() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    let floor = hasher.calibrate(vec![imported(500_000)]).await.unwrap();
    let own = hasher.hash(Secret::new("correct horse")).await.unwrap();
    let started = Instant::now();
    let accepted = hasher.verify(Secret::new("correct horse"), Some(own), false);
    assert!(!accepted.await.unwrap());
    assert!(
        started.elapsed() >= floor,
        "{:?} < {floor:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_stored_hash_nobody_can_read_is_a_refusal_not_a_failure() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    for stored in [
        "$argon2id$v=19$m=1024,t=1,p=1$YWJj$AAAA",
        "pbkdf2:sha256:x$y$z",
    ] {
        let verified = hasher.verify(Secret::new("x"), Some(stored.to_owned()), true);
        assert!(!verified.await.unwrap(), "{stored}");
    }
    // And measuring it does not keep the others from being measured.
    let floor = hasher.calibrate(vec!["garbage".into(), imported(100_000)]);
    assert!(floor.await.unwrap() > Duration::ZERO);
}

#[tokio::test]
async fn a_hash_of_another_cost_checked_before_any_calibration_raises_the_floor() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    assert!(
        !hasher
            .verify(Secret::new("x"), Some(imported(100_000)), true)
            .await
            .unwrap()
    );
    let floor = hasher.refusal_floor();
    assert!(floor > Duration::ZERO);
    let started = Instant::now();
    assert!(!hasher.verify(Secret::new("x"), None, true).await.unwrap());
    assert!(started.elapsed() >= floor);
}

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
    let ok = hasher.verify(Secret::new("correct horse"), Some(hash.clone()), true);
    assert!(ok.await.unwrap());
    let wrong = hasher.verify(Secret::new("battery staple"), Some(hash), true);
    assert!(!wrong.await.unwrap());
}

#[test]
fn hashes_are_standard_phc_strings_that_other_argon2_implementations_accept() {
    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
    let params = Params::new(1024, 1, 1, None).unwrap();
    let mut memory = Memory::default();
    let ours = hash_now(&params, &Secret::new("correct horse"), &mut memory).unwrap();
    let parsed = PasswordHash::new(&ours).unwrap();
    let reference = Argon2::default();
    assert!(reference.verify_password(b"correct horse", &parsed).is_ok());
    assert!(
        reference
            .verify_password(b"battery staple", &parsed)
            .is_err()
    );

    // And a hash made elsewhere, with other parameters, verifies here in the same memory.
    let salt = SaltString::generate(&mut OsRng);
    let theirs = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(2048, 2, 1, None).unwrap(),
    )
    .hash_password(b"correct horse", &salt)
    .unwrap()
    .to_string();
    assert!(verify_now(&Secret::new("correct horse"), &theirs, &mut memory).unwrap());
    assert!(!verify_now(&Secret::new("correct horsf"), &theirs, &mut memory).unwrap());
    assert!(verify_now(&Secret::new("correct horse"), &ours, &mut memory).unwrap());
}

#[test]
fn a_stored_hash_without_salt_or_output_is_an_error_not_a_match() {
    let mut memory = Memory::default();
    let stored = "$argon2id$v=19$m=1024,t=1,p=1";
    assert!(verify_now(&Secret::new("anything"), stored, &mut memory).is_err());
}

#[tokio::test]
async fn an_unknown_user_never_verifies_even_with_the_dummy_password() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    assert!(
        !hasher
            .verify(Secret::new("anything"), None, true)
            .await
            .unwrap()
    );
}

#[test]
fn the_dummy_hash_has_the_configured_cost_and_a_full_output_so_checking_it_costs_the_same() {
    let hasher = PasswordHasher::new(&cheap()).unwrap();
    let real = hash_now(
        &hasher.inner.params,
        &Secret::new("x"),
        &mut Memory::default(),
    )
    .unwrap();
    let (dummy, real) = (
        PasswordHash::new(&hasher.inner.dummy_hash).unwrap(),
        PasswordHash::new(&real).unwrap(),
    );
    assert_eq!(dummy.algorithm, real.algorithm);
    assert_eq!(dummy.version, real.version);
    assert_eq!(dummy.params, real.params);
    assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
    assert_ne!(dummy.salt, real.salt);
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
