//! The key sets of `private_key_jwt` clients: the registered set, or the one a client publishes
//! at its `jwks_uri`, fetched and cached here.
//!
//! A published set is fetched once and kept for its `Cache-Control: max-age` (bounded), so
//! that requests rarely wait on the client's server; a `kid` the cached set lacks (the client
//! rotated its key) triggers one refetch, at most every 10 s per client, and a failed fetch is
//! not retried for a minute, so assertions with made-up `kid`s or a dead server cannot turn the
//! issuer into a request amplifier. Anyone who knows a client id can spend that refetch (the
//! assertion cannot be checked without the key), so an assertion whose `kid` is unknown while
//! the set may not be fetched again is refused as keys unavailable, not as a failed assertion:
//! a stranger's made-up `kid` must not turn the client's own rotation into failures that lock
//! its address out. Fetches are bounded in time and size and follow redirects only within the
//! URL's origin (scheme, host and port).
//!
//! What is cached belongs to one registration: the URL, the client's creation and the version
//! of its keys, which changes each time keys are given (the same URL included). So after the
//! client is removed or given its keys again, every replica drops the set it holds at the
//! client's next assertion and fetches again: that is how an operator makes the service forget a
//! leaked key at once, whatever max-age it came with.
//!
//! Fetches never go through a proxy named in the environment (`HTTPS_PROXY` and the like): a
//! proxy would resolve the name itself, past the address checks of [`crate::outbound`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::credentials::{ClientKeySet, check_jwks_uri};
use crate::domain::{ClientId, UnixTime};
use crate::outbound::OutboundPolicy;
use crate::store::{ClientKeys, ClientRecord};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set accepted from a `jwks_uri`.
pub const MAX_SET_BYTES: usize = 64 * 1024;
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MIN_MAX_AGE: Duration = Duration::from_secs(60);
const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);
/// Least time between two fetches of one client's set for an unknown `kid`.
const REFETCH_FOR_KID_AFTER: Duration = Duration::from_secs(10);
/// Least time between a failed fetch and the next.
const RETRY_FAILED_AFTER: Duration = Duration::from_secs(60);

/// What a cached set was fetched for: a new registration or new keys start afresh.
#[derive(Default, PartialEq, Eq)]
struct Registration {
    uri: String,
    created_at: UnixTime,
    keys_version: Option<String>,
}

/// One client's published set as last fetched.
#[derive(Default)]
struct Cached {
    registration: Registration,
    keys: Option<Arc<ClientKeySet>>,
    fresh_until: Option<Instant>,
    /// When a fetch for an unknown `kid` last started.
    refetched_at: Option<Instant>,
    /// When the last fetch failed, if it did.
    failed_at: Option<Instant>,
}

/// Why there are no keys to check a client's assertion with.
#[derive(Debug)]
pub enum NoKeys {
    /// The client has none, or its registered set is unusable: the assertion fails.
    Refused(String),
    /// The set the client publishes could not be fetched, or was unusable: the client's own
    /// server is at fault, not the caller's assertion.
    Unavailable(String),
}

/// The published key sets, per client.
pub struct ClientKeySets {
    /// The client for every fetch; an error (no TLS roots, say) is answered to each fetch.
    http: Result<reqwest::Client, String>,
    /// Checks the addresses URLs name; names are checked by the client's resolver.
    policy: Arc<OutboundPolicy>,
    /// One entry per client, each behind its own lock: a fetch holds only its client's, so
    /// concurrent requests of one client wait for one fetch instead of each starting theirs.
    cache: Mutex<HashMap<ClientId, Arc<tokio::sync::Mutex<Cached>>>>,
}

impl ClientKeySets {
    /// Fetches go only where `policy` admits (see [`crate::outbound`]).
    pub fn new(policy: OutboundPolicy) -> ClientKeySets {
        let policy = Arc::new(policy);
        let http = reqwest::Client::builder()
            .dns_resolver(policy.resolver())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Same scheme, host and port: a redirect may move the set on its server, never
                // to another server, nor from https down to http.
                let same_origin = attempt
                    .previous()
                    .first()
                    .is_some_and(|first| first.origin() == attempt.url().origin());
                if same_origin && attempt.previous().len() < 3 {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for jwks_uri: {e}"));
        ClientKeySets {
            http,
            policy,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The keys to check an assertion of `client` with, whose header names `kid`. `Err` says
    /// why there are none (logged by the caller, answered as `invalid_client`).
    pub async fn keys_for(
        &self,
        client: &ClientRecord,
        kid: Option<&str>,
    ) -> Result<Arc<ClientKeySet>, NoKeys> {
        match &client.keys {
            None => Err(NoKeys::Refused("the client has no keys".into())),
            // Checked when registered; parsed per use, which costs far less than the signature.
            Some(ClientKeys::Jwks(set)) => ClientKeySet::parse(set)
                .map(Arc::new)
                .map_err(NoKeys::Refused),
            Some(ClientKeys::JwksUri(uri)) => {
                let registration = Registration {
                    uri: uri.clone(),
                    created_at: client.created_at,
                    keys_version: client.keys_version.clone(),
                };
                self.published(&client.client_id, registration, kid)
                    .await
                    .map_err(NoKeys::Unavailable)
            }
        }
    }

    async fn published(
        &self,
        client: &ClientId,
        registration: Registration,
        kid: Option<&str>,
    ) -> Result<Arc<ClientKeySet>, String> {
        let entry = {
            let mut cache = self
                .cache
                .lock()
                .map_err(|_| "the key-set cache's lock is poisoned".to_owned())?;
            Arc::clone(cache.entry(client.clone()).or_default())
        };
        let mut cached = entry.lock().await;
        if cached.registration != registration {
            // Registered anew, or its keys given again: nothing cached applies.
            *cached = Cached {
                registration,
                ..Cached::default()
            };
        }
        let uri = cached.registration.uri.clone();
        let uri = uri.as_str();
        let now = Instant::now();
        let within = |at: Option<Instant>, span| at.is_some_and(|at| now.duration_since(at) < span);
        let fresh = cached.fresh_until.is_some_and(|until| now < until);
        let knows_kid = match (&cached.keys, kid) {
            (Some(keys), Some(kid)) => keys.has_kid(kid),
            (Some(_), None) => true,
            (None, _) => false,
        };
        let fetch = if within(cached.failed_at, RETRY_FAILED_AFTER) {
            // A server that just failed is not asked again on every request.
            false
        } else if !fresh {
            true
        } else if !knows_kid && !within(cached.refetched_at, REFETCH_FOR_KID_AFTER) {
            cached.refetched_at = Some(now);
            true
        } else {
            false
        };
        let mut fetched = false;
        if fetch {
            match self.fetch(uri).await {
                Ok((keys, max_age)) => {
                    fetched = true;
                    cached.keys = Some(Arc::new(keys));
                    cached.fresh_until = Some(now + max_age);
                    cached.failed_at = None;
                }
                Err(why) => {
                    tracing::warn!(client_id = %client, jwks_uri = uri, reason = %why,
                        "cannot fetch a client's key set");
                    cached.failed_at = Some(now);
                    if !fresh {
                        cached.keys = None;
                    }
                }
            }
        }
        let keys = cached
            .keys
            .clone()
            .ok_or_else(|| "the client's key set is not available".to_owned())?;
        if !fetched && !knows_kid {
            // Perhaps a key just published: not the caller's failure while the set may not be
            // fetched again.
            return Err(format!(
                "the assertion's kid is not in the client's key set, fetched again for an \
                 unknown kid at most every {} s",
                REFETCH_FOR_KID_AFTER.as_secs()
            ));
        }
        Ok(keys)
    }

    /// Fetches and parses a key set, with the time it may be cached for.
    async fn fetch(&self, uri: &str) -> Result<(ClientKeySet, Duration), String> {
        // Checked at registration too; checked again in case the rules tightened since.
        check_jwks_uri(uri)?;
        let url = reqwest::Url::parse(uri).map_err(|e| format!("not a URL: {e}"))?;
        self.policy.check_url(&url)?;
        let mut response = self
            .http
            .as_ref()
            .map_err(Clone::clone)?
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_SET_BYTES as u64)
        {
            return Err(format!("the key set is larger than {MAX_SET_BYTES} bytes"));
        }
        let max_age = max_age(response.headers());
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading the key set failed: {e}"))?
        {
            if body.len() + chunk.len() > MAX_SET_BYTES {
                return Err(format!("the key set is larger than {MAX_SET_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        Ok((ClientKeySet::parse(&value)?, max_age))
    }
}

/// `Cache-Control: max-age`, within [1 minute, 1 day]; 5 minutes without one.
fn max_age(headers: &reqwest::header::HeaderMap) -> Duration {
    headers
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(latchkey_verify::declared_max_age)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{CACHE_CONTROL, HeaderMap, HeaderValue};

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn max_age_is_honoured_within_a_minute_and_a_day() {
        assert_eq!(max_age(&HeaderMap::new()), DEFAULT_MAX_AGE);
        assert_eq!(
            max_age(&with("public, max-age=600")),
            Duration::from_secs(600)
        );
        assert_eq!(max_age(&with("max-age=0")), MIN_MAX_AGE);
        assert_eq!(max_age(&with("max-age=999999")), MAX_MAX_AGE);
        assert_eq!(max_age(&with("no-store")), MIN_MAX_AGE);
        assert_eq!(max_age(&with("public")), DEFAULT_MAX_AGE);
    }
}
