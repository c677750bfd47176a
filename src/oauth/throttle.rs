//! Failed-login limits: failures are counted in the store (so every replica sees the same
//! counts) per username and per address for passwords, per client id and per address for
//! client authentication. Past a limit the request is refused with 429 *before* any credential
//! is checked, so a locked-out attacker costs no argon2 time and learns nothing, not even when
//! the password is right.

use super::{AuthError, Authority};
use crate::audit::Origin;
use crate::security::{SecuritySettings, address_bucket};

/// One counter and its limit (0 = no limit).
#[derive(Debug, Clone)]
pub(super) struct Counter {
    key: String,
    limit: u64,
    /// Cleared by a success: the username's and the client's, never the address's, or one
    /// valid account would wipe an attacker's record.
    cleared_by_success: bool,
}

/// The counters of one attempt, with what the check read, so a success knows what to clear.
#[derive(Debug, Default)]
pub(super) struct Attempt {
    counters: Vec<Counter>,
    dirty: Vec<bool>,
}

/// Store keys hold caller input only in a bounded, case-folded form.
fn key_part(value: &str) -> String {
    value.chars().take(64).collect::<String>().to_lowercase()
}

impl Attempt {
    pub(super) fn login(settings: &SecuritySettings, username: &str, origin: &Origin) -> Attempt {
        Attempt::of(
            Counter {
                key: format!("login:user:{}", key_part(username)),
                limit: settings.max_failed_logins_per_user,
                cleared_by_success: true,
            },
            origin.source.as_deref().map(|ip| Counter {
                key: format!("login:addr:{}", address_bucket(ip)),
                limit: settings.max_failed_logins_per_address,
                cleared_by_success: false,
            }),
        )
    }

    pub(super) fn client(settings: &SecuritySettings, client_id: &str, origin: &Origin) -> Attempt {
        Attempt::of(
            Counter {
                key: format!("client:id:{}", key_part(client_id)),
                limit: settings.max_failed_client_auths_per_client,
                cleared_by_success: true,
            },
            origin.source.as_deref().map(|ip| Counter {
                key: format!("client:addr:{}", address_bucket(ip)),
                limit: settings.max_failed_client_auths_per_address,
                cleared_by_success: false,
            }),
        )
    }

    /// The store keys of the counters, in the order [`Attempt::refuse_if_limited`] takes.
    pub(super) fn keys(&self) -> Vec<String> {
        self.counters.iter().map(|c| c.key.clone()).collect()
    }

    /// Refuses with 429 when any counter is at its limit, given each counter's count and the
    /// seconds left in its window as read from the store.
    pub(super) fn refuse_if_limited(&mut self, counts: &[(u64, u64)]) -> Result<(), AuthError> {
        let mut retry_after = 0;
        for ((counter, dirty), &(count, secs_left)) in
            self.counters.iter().zip(&mut self.dirty).zip(counts)
        {
            *dirty = count > 0;
            if count >= counter.limit {
                retry_after = retry_after.max(secs_left.max(1));
            }
        }
        if retry_after == 0 {
            return Ok(());
        }
        crate::metrics::rate_limit_refused();
        // The key names the username or address, never a credential.
        tracing::warn!(target: "audit", event = "rate_limited", retry_after, "too many failed attempts");
        Err(AuthError::TooManyRequests { retry_after })
    }

    fn of(first: Counter, second: Option<Counter>) -> Attempt {
        let counters: Vec<Counter> = std::iter::once(first)
            .chain(second)
            .filter(|c| c.limit > 0)
            .collect();
        Attempt {
            dirty: vec![false; counters.len()],
            counters,
        }
    }
}

impl Authority {
    /// Refuses with 429 when any counter of `attempt` is at its limit.
    pub(super) async fn refuse_if_limited(&self, attempt: &mut Attempt) -> Result<(), AuthError> {
        let counts = self.store.failure_counts(&attempt.keys()).await?;
        attempt.refuse_if_limited(&counts)
    }

    /// Counts a failure on every counter of `attempt`.
    pub(super) async fn count_failure(&self, attempt: &Attempt) -> Result<(), AuthError> {
        for counter in &attempt.counters {
            self.store
                .record_failure(&counter.key, self.security.failed_login_window)
                .await?;
        }
        Ok(())
    }

    /// A success clears the username's or client's counter, if it had any failures: a store
    /// write only then, so the common case costs the reads alone.
    pub(super) async fn count_success(&self, attempt: &Attempt) -> Result<(), AuthError> {
        for (counter, dirty) in attempt.counters.iter().zip(&attempt.dirty) {
            if *dirty && counter.cleared_by_success {
                self.store.clear_failures(&counter.key).await?;
            }
        }
        Ok(())
    }
}
