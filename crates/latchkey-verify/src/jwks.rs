//! The issuer's key set, cached per its `Cache-Control: max-age` and refetched early when a
//! token names a `kid` the cache does not know — at most once per interval, with every
//! concurrent miss waiting for that one fetch, so a flood of forged kids never becomes a flood
//! of requests to the issuer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, ETAG, IF_NONE_MATCH};
use tokio::sync::Mutex;

use crate::SetupError;
use crate::keys::KeySet;

/// Used when the key set names no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
/// Bounds on the honoured `max-age`: fetching more often is pointless, less often risks
/// missing a rotation for too long.
const MIN_MAX_AGE: Duration = Duration::from_secs(1);
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);

/// One fetched key set and when it goes stale.
#[derive(Debug)]
pub struct Fetched {
    pub keys: Arc<KeySet>,
    pub stale_at: Instant,
    etag: Option<String>,
}

#[derive(Debug)]
pub struct JwksCache {
    /// `None` for a fixed key set that is never fetched.
    url: Option<String>,
    http: reqwest::Client,
    current: ArcSwap<Fetched>,
    /// When an unknown-`kid` refetch last ran; the lock is what concurrent misses share.
    miss: Mutex<Option<Instant>>,
    min_refetch: Duration,
    fetches: AtomicU64,
}

impl JwksCache {
    /// Fetches the key set at `url` once; the cache starts with it.
    pub async fn load(
        url: String,
        http: reqwest::Client,
        min_refetch: Duration,
    ) -> Result<JwksCache, SetupError> {
        let cache = JwksCache {
            url: Some(url),
            http,
            current: ArcSwap::from_pointee(Fetched {
                keys: Arc::default(),
                stale_at: Instant::now(),
                etag: None,
            }),
            miss: Mutex::new(None),
            min_refetch,
            fetches: AtomicU64::new(0),
        };
        cache.refresh().await?;
        Ok(cache)
    }

    /// A key set given once and never fetched.
    pub fn fixed(keys: KeySet) -> JwksCache {
        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        JwksCache {
            url: None,
            http: reqwest::Client::new(),
            current: ArcSwap::from_pointee(Fetched {
                keys: Arc::new(keys),
                stale_at: far,
                etag: None,
            }),
            miss: Mutex::new(None),
            min_refetch: Duration::MAX,
            fetches: AtomicU64::new(0),
        }
    }

    /// The keys as last fetched; no network.
    pub fn current(&self) -> arc_swap::Guard<Arc<Fetched>> {
        self.current.load()
    }

    /// How many times the key set was requested from the issuer.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn is_stale(&self) -> bool {
        Instant::now() >= self.current.load().stale_at
    }

    /// Fetches the key set (conditionally, with the last `ETag`) and swaps it in.
    pub async fn refresh(&self) -> Result<(), SetupError> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let previous = self.current.load_full();
        let mut request = self.http.get(url);
        if let Some(etag) = &previous.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let unreachable = |reason: String| SetupError::Unreachable {
            url: url.clone(),
            reason,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let max_age = max_age(response.headers().get(CACHE_CONTROL));
        let stale_at = Instant::now() + max_age;
        if response.status() == StatusCode::NOT_MODIFIED && previous.etag.is_some() {
            // The same keys, fresh again: nothing is parsed or rebuilt.
            self.current.store(Arc::new(Fetched {
                keys: previous.keys.clone(),
                stale_at,
                etag: previous.etag.clone(),
            }));
            return Ok(());
        }
        if !response.status().is_success() {
            return Err(unreachable(format!("status {}", response.status())));
        }
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let keys = KeySet::from_json(&body).map_err(|reason| SetupError::Protocol {
            url: url.clone(),
            reason,
        })?;
        tracing::debug!(keys = keys.len(), ?max_age, "fetched the issuer's key set");
        self.current.store(Arc::new(Fetched {
            keys: Arc::new(keys),
            stale_at,
            etag,
        }));
        Ok(())
    }

    /// Called when a token names `kid` and the cache lacks it: refetches unless a fetch ran
    /// within the minimum interval, and reports whether `kid` is known now. Concurrent callers
    /// wait for one fetch and share its result.
    pub async fn refresh_for_unknown(&self, kid: &str) -> bool {
        let mut last = self.miss.lock().await;
        if self.current.load().keys.get(kid).is_some() {
            return true;
        }
        if self.url.is_none() || last.is_some_and(|at| at.elapsed() < self.min_refetch) {
            return false;
        }
        *last = Some(Instant::now());
        if let Err(error) = self.refresh().await {
            tracing::warn!(%error, "refetching the issuer's key set for an unknown kid failed");
        }
        self.current.load().keys.get(kid).is_some()
    }
}

/// `max-age` of a `Cache-Control` header, within bounds; `no-cache`/`no-store` mean the
/// shortest.
fn max_age(header: Option<&reqwest::header::HeaderValue>) -> Duration {
    header
        .and_then(|v| v.to_str().ok())
        .and_then(declared_max_age)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

/// The lifetime a `Cache-Control` value declares: its `max-age`, zero for `no-cache` or
/// `no-store`, `None` when it says neither. Callers bound it as suits what they cache.
pub fn declared_max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return Some(Duration::ZERO);
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse::<u64>().ok();
        }
    }
    age.map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn max_age_is_read_and_bounded() {
        let age = |v: &str| max_age(Some(&HeaderValue::from_str(v).unwrap()));
        assert_eq!(age("public, max-age=300"), Duration::from_secs(300));
        assert_eq!(age("max-age=0"), MIN_MAX_AGE);
        assert_eq!(age("max-age=999999"), MAX_MAX_AGE);
        assert_eq!(age("no-store"), MIN_MAX_AGE);
        assert_eq!(age("public"), DEFAULT_MAX_AGE);
        assert_eq!(max_age(None), DEFAULT_MAX_AGE);
    }
}
