//! Attempt limits, kept in the store so that every replica sees the same counts, and shaped so
//! that an attacker cannot aim them at someone else:
//!
//! - Passwords. An attempt is reserved (counted) before the password is checked, atomically,
//!   so parallel guesses cannot all slip past a limit; a right password gives its reservation
//!   back. A username from one address (an IPv6 /64) is locked past its limit, an address
//!   across all usernames likewise; the username across all addresses is only slowed down, each
//!   attempt past a threshold waiting twice as long as the one before, up to a cap (OWASP's
//!   advice), and not at all from an address where the user has signed in before. Guessing
//!   stays bounded while the user, elsewhere, still gets in.
//! - Client secrets are 256-bit and made by the server, so guessing one is not the threat:
//!   client authentication is limited per address only, never per client id, or one loop of
//!   wrong secrets from anywhere would lock a service out. The count is read with the client.
//!   From an address without failures in the window (every well-configured caller) the check
//!   goes ahead with no write, and a failure is counted after it; once the address has
//!   failed, each attempt from it is reserved before its secret is checked, as passwords are,
//!   so a burst of parallel guesses cannot run past the limit. Reserving every attempt would
//!   instead cap the requests a caller may have in flight at the limit (a gateway making 256
//!   concurrent calls would be refused) and cost a durable write per token.
//! - Registration is limited per address: each account costs an argon2 hash.
//!
//! A refused attempt is answered 429 with `Retry-After` before any credential is looked at, so
//! it costs no argon2 time and learns nothing, not even when the password is right.

use super::Authority;
use crate::audit::{Event, Origin, Record};
use crate::domain::UnixTime;
use crate::error::ServiceError;
use crate::security::{SecuritySettings, address_bucket};
use crate::store::{self, AttemptRule, Reservation};

/// How long an address where a user signed in counts as theirs: exempt from the slow-down of
/// the user's name.
const KNOWN_ADDRESS_SECS: u64 = 30 * 24 * 3600;
/// The first wait of the username's slow-down, in seconds; it doubles with each attempt.
const BACKOFF_BASE_SECS: u64 = 1;

/// Store keys hold caller input only in a bounded, case-folded form.
fn key_part(value: &str) -> String {
    value.chars().take(64).collect::<String>().to_lowercase()
}

/// The client-authentication failures of one address, read before and counted after the
/// check of a secret.
#[derive(Debug, Default)]
pub(super) struct Attempt {
    key: Option<String>,
    limit: u64,
}

impl Attempt {
    pub(super) fn client(settings: &SecuritySettings, origin: &Origin) -> Attempt {
        let limit = settings.max_failed_client_auths_per_address;
        let key = origin
            .source
            .as_deref()
            .filter(|_| limit > 0)
            .map(|ip| format!("client:addr:{}", address_bucket(ip)));
        Attempt { key, limit }
    }

    /// The store keys to read, in the order [`Attempt::refuse_if_limited`] takes.
    pub(super) fn keys(&self) -> Vec<String> {
        self.key.iter().cloned().collect()
    }

    /// Refuses with 429 when the address is at its limit, given its count and the seconds left
    /// in its window as read from the store; `client_id` is who tried, for the audit trail.
    pub(super) fn refuse_if_limited(
        &self,
        counts: &[(u64, u64)],
        client_id: &str,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        match counts.first() {
            Some(&(count, secs_left)) if self.key.is_some() && count >= self.limit => Err(refused(
                secs_left,
                CLIENT_ADDRESS_LIMIT,
                client_id,
                Some(client_id),
                origin,
            )),
            _ => Ok(()),
        }
    }
}

/// A password attempt's reservations, to give back if the password is right.
#[derive(Debug, Default)]
pub(super) struct LoginAttempt {
    /// Given back on success: the username's and the address's.
    reserved: Vec<String>,
    /// The username from this address: cleared on success.
    pair: Option<String>,
    /// Marks the address as the user's on success.
    known: Option<String>,
}

/// A 429 from the limit `limit`, recorded in the audit trail with who tried (a username or
/// client id as given, never a credential), through which client, and from where.
fn refused(
    retry_after: u64,
    limit: &'static str,
    who: &str,
    client_id: Option<&str>,
    origin: &Origin,
) -> ServiceError {
    let retry_after = retry_after.max(1);
    crate::metrics::rate_limit_refused();
    let record = Record::new(Event::RateLimited, who, origin).limit(limit, retry_after);
    match client_id {
        Some(client_id) => record.client(client_id).emit(),
        None => record.emit(),
    }
    ServiceError::TooManyRequests { retry_after }
}

/// The name of the client-authentication limit in the audit trail.
const CLIENT_ADDRESS_LIMIT: &str = "client_auth_per_address";

impl Authority {
    /// Refuses with 429 when the client-authentication failures of `attempt`'s address are at
    /// their limit.
    pub(super) async fn refuse_if_limited(
        &self,
        attempt: &Attempt,
        client_id: &str,
        origin: &Origin,
    ) -> Result<(), ServiceError> {
        let counts = store::failure_counts(&*self.store, &attempt.keys()).await?;
        attempt.refuse_if_limited(&counts, client_id, origin)
    }

    /// Reserves the attempt (as passwords are) when the address has failed in the window,
    /// given its counts as read; returns whether it did, or refuses with 429 when a parallel
    /// attempt took the last place.
    pub(super) async fn reserve_if_suspect(
        &self,
        attempt: &Attempt,
        counts: &[(u64, u64)],
        client_id: &str,
        origin: &Origin,
    ) -> Result<bool, ServiceError> {
        let Some(key) = &attempt.key else {
            return Ok(false);
        };
        if counts.first().is_none_or(|&(count, _)| count == 0) {
            return Ok(false);
        }
        let rule = AttemptRule::lock(attempt.limit, self.security.failed_login_window);
        match self
            .store
            .reserve_attempt(key, &rule, crate::domain::now())
            .await?
        {
            Reservation::Granted => Ok(true),
            Reservation::Refused { retry_after } => Err(refused(
                retry_after,
                CLIENT_ADDRESS_LIMIT,
                client_id,
                Some(client_id),
                origin,
            )),
        }
    }

    /// Gives back the reservation of an attempt whose secret was right.
    pub(super) async fn release(&self, attempt: &Attempt) -> Result<(), ServiceError> {
        if let Some(key) = &attempt.key {
            self.store.release_attempt(key).await?;
        }
        Ok(())
    }

    /// Counts a failed client authentication against its address.
    pub(super) async fn count_failure(&self, attempt: &Attempt) -> Result<(), ServiceError> {
        if let Some(key) = &attempt.key {
            self.store
                .record_failure(key, self.security.failed_login_window)
                .await?;
        }
        Ok(())
    }

    /// Reserves a password attempt for `username` from `origin` through `client_id`, or
    /// refuses it with 429.
    pub(super) async fn reserve_login(
        &self,
        username: &str,
        client_id: &str,
        origin: &Origin,
        now: UnixTime,
    ) -> Result<LoginAttempt, ServiceError> {
        let settings = &self.security;
        let window = settings.failed_login_window;
        let user = key_part(username);
        let address = origin.source.as_deref().map(address_bucket);
        let known = address
            .as_ref()
            .map(|addr| format!("login:known:{user}:{addr}"));
        let is_known = match &known {
            Some(key) => store::failure_count(&*self.store, key).await?.0 > 0,
            None => false,
        };
        let pair = address
            .as_ref()
            .map(|addr| format!("login:pair:{user}:{addr}"));
        // (key, rule, given back on success, the limit's name in the audit trail)
        let mut steps: Vec<(String, AttemptRule, bool, &'static str)> = Vec::new();
        if let Some(pair) = &pair {
            let free = settings.max_failed_logins_per_user_address;
            let rule = AttemptRule::lock(free, window);
            steps.push((pair.clone(), rule, false, "login_per_user_and_address"));
        }
        if let Some(addr) = &address {
            let free = settings.max_failed_logins_per_address;
            let key = format!("login:addr:{addr}");
            steps.push((
                key,
                AttemptRule::lock(free, window),
                true,
                "login_per_address",
            ));
        }
        if !is_known {
            let rule = AttemptRule {
                free: settings.max_failed_logins_per_user,
                base: BACKOFF_BASE_SECS,
                cap: settings.login_backoff_max,
                window,
            };
            steps.push((format!("login:user:{user}"), rule, true, "login_per_user"));
        }
        let mut attempt = LoginAttempt {
            reserved: Vec::new(),
            pair: None,
            known,
        };
        for (key, rule, give_back, limit) in steps.into_iter().filter(|step| step.1.free > 0) {
            match self.store.reserve_attempt(&key, &rule, now).await {
                Ok(Reservation::Granted) if give_back => attempt.reserved.push(key),
                Ok(Reservation::Granted) => attempt.pair = Some(key),
                Ok(Reservation::Refused { retry_after }) => {
                    self.give_back(&attempt).await?;
                    return Err(refused(
                        retry_after,
                        limit,
                        username,
                        Some(client_id),
                        origin,
                    ));
                }
                Err(error) => {
                    self.give_back(&attempt).await?;
                    return Err(error.into());
                }
            }
        }
        Ok(attempt)
    }

    /// The password was right: the reservations go back, the username's record from this
    /// address is cleared, and the address becomes one the user signs in from.
    pub(super) async fn login_succeeded(&self, attempt: &LoginAttempt) -> Result<(), ServiceError> {
        for key in &attempt.reserved {
            self.store.release_attempt(key).await?;
        }
        if let Some(pair) = &attempt.pair {
            self.store.clear_failures(pair).await?;
        }
        if let Some(known) = &attempt.known {
            self.store.record_failure(known, KNOWN_ADDRESS_SECS).await?;
        }
        Ok(())
    }

    /// Releases what an attempt had reserved: one of its limits said no, or its password could
    /// not be checked.
    pub(super) async fn give_back(&self, attempt: &LoginAttempt) -> Result<(), ServiceError> {
        for key in attempt.reserved.iter().chain(&attempt.pair) {
            self.store.release_attempt(key).await?;
        }
        Ok(())
    }

    /// Reserves a registration from `origin`, or refuses it with 429. Registrations are not
    /// given back: each one cost an argon2 hash.
    pub async fn reserve_registration(
        &self,
        origin: &Origin,
        max_per_address: u64,
        window: u64,
        now: UnixTime,
    ) -> Result<(), ServiceError> {
        let Some(address) = origin.source.as_deref().filter(|_| max_per_address > 0) else {
            return Ok(());
        };
        let key = format!("register:addr:{}", address_bucket(address));
        let rule = AttemptRule::lock(max_per_address, window);
        match self.store.reserve_attempt(&key, &rule, now).await? {
            Reservation::Granted => Ok(()),
            Reservation::Refused { retry_after } => Err(refused(
                retry_after,
                "registration_per_address",
                "anonymous",
                None,
                origin,
            )),
        }
    }
}
