//! Verify Latchkey access tokens in a resource server, without a call to
//! the issuer per request.
//!
//! A [`Verifier`] discovers the issuer from its URL (RFC 8414 metadata), keeps its key set
//! cached as its `Cache-Control` says, validates access tokens per RFC 9068 §4 and RFC 8725,
//! and follows the issuer's revocation feed in the background, so that a revoked token is
//! refused within a configured bound (5 s by default) although no request asks the issuer.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use latchkey_verify::Verifier;
//!
//! let verifier = Verifier::builder("https://auth.example.com", "orders-api")
//!     .feed_client("orders-api", "its-client-secret")
//!     .connect()
//!     .await?;
//! let token = verifier.verify("eyJhbGciOi...").await?;
//! token.require_scope("orders:read")?;
//! println!("{} may read orders", token.subject);
//! # Ok(()) }
//! ```
//!
//! What a token must be to pass:
//! - a compact JWS of at most 8 KiB whose header is exactly what the issuer writes: `typ:
//!   at+jwt`, a `kid` of the issuer's key set, and the `alg` of that key (the key decides the
//!   algorithm, never the header), each once and nothing else. `none` and HMAC are refused, and
//!   so is any other header member, whatever its value: `jku`, `x5u`, `jwk`, `x5c` (a key named
//!   by the token), `crit` (RFC 7515 §4.1.11; no extension is implemented), `zip` and `enc`
//!   (JWE), `cty` (a nested token), and unregistered ones. A header or claim set that names a
//!   member twice is malformed;
//! - signed by that key; `iss` equal to the issuer; `aud` including the configured audience;
//!   `exp` in the future and `nbf` (if any) and `iat` not in the future, give or take the
//!   leeway; `sub`, `client_id`, `iat` and `jti` present;
//! - not revoked: its `jti`, its session (`sid`), or its subject's tokens issued before a
//!   password change, as the feed reported them.
//!
//! Features: `poem` (an extractor and a middleware), `tower` (a layer for any tower stack),
//! `axum` (the layer plus an extractor).

#![forbid(unsafe_code)]

mod bearer;
mod error;
mod jwks;
mod keys;
mod revocation;
mod sync;
#[cfg(test)]
mod testkit;
mod token;
mod validate;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "poem")]
pub mod poem;
#[cfg(feature = "tower")]
pub mod tower;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use bearer::bearer_token;
pub use error::{SetupError, VerifyError};
pub use jwks::declared_max_age;
// `VerifyKey` is public for the issuer, which checks client assertions (RFC 7523) with the same
// key parsing: one algorithm per key, taken from the key and never from a header.
pub use keys::{Algorithm, VerifyKey};
pub use token::{AccessToken, require_actor, require_role, require_scope};

use jwks::JwksCache;
use revocation::Revocations;
use validate::Expectations;

/// What to do when the issuer cannot be reached and revocations cannot be synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenUnreachable {
    /// Keep verifying with the cached keys and revocations (the default): availability over a
    /// revocation that might be missed while the issuer is away.
    #[default]
    KeepVerifying,
    /// Refuse every token with 503 once the last successful synchronisation is older than the
    /// revocation bound.
    FailClosed,
}

/// Credentials of the confidential client that reads the revocation feed.
#[derive(Clone)]
struct FeedClient {
    id: String,
    secret: String,
}

impl std::fmt::Debug for FeedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedClient")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Verifier`]; made by [`Verifier::builder`].
#[derive(Debug, Clone)]
pub struct Builder {
    issuer: String,
    audience: String,
    feed: Option<FeedClient>,
    bound: Duration,
    when_unreachable: WhenUnreachable,
    leeway: Duration,
    min_refetch: Duration,
    max_token_bytes: usize,
    connect_timeout: Duration,
    http: Option<reqwest::Client>,
    paging: sync::Paging,
}

/// The largest leeway allowed: the issuer keeps a revocation in its feed for 300 s past the
/// revoked token's `exp`, so a verifier that accepted tokens longer past `exp` and started, or
/// resynchronised, in between would not know they were revoked.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

impl Builder {
    /// Follow the issuer's revocation feed as this confidential client. Without it, tokens are
    /// only checked for signature and lifetime: a revoked token passes until it expires.
    pub fn feed_client(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.feed = Some(FeedClient {
            id: client_id.into(),
            secret: secret.into(),
        });
        self
    }

    /// How soon a revocation must take effect here (default 5 s). The feed is polled at least
    /// twice within it.
    pub fn revocation_bound(mut self, bound: Duration) -> Self {
        self.bound = bound;
        self
    }

    /// What to do when the issuer cannot be reached (default: keep verifying).
    pub fn when_unreachable(mut self, policy: WhenUnreachable) -> Self {
        self.when_unreachable = policy;
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 5 s, at most [`MAX_LEEWAY`]).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The least time between two key-set fetches caused by unknown `kid`s (default 10 s).
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The largest token accepted, in bytes (default 8 KiB).
    pub fn max_token_bytes(mut self, bytes: usize) -> Self {
        self.max_token_bytes = bytes;
        self
    }

    /// How long [`Builder::connect`] waits for the issuer (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The HTTP client to reach the issuer with (default: rustls, 5 s timeout).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Events asked for per page of the feed, and pages read per round (default 1000 and
    /// 1000). Smaller values make long feeds cheap to test with.
    #[doc(hidden)]
    pub fn feed_paging(mut self, page: usize, max_pages: usize) -> Self {
        self.paging = sync::Paging {
            page: page.max(1),
            max_pages: max_pages.max(1),
        };
        self
    }

    /// Discovers the issuer, fetches its key set, catches up with the revocation feed (if a
    /// feed client is set), and starts following it in the background. Fails if the issuer
    /// cannot be reached within the connect timeout: a resource server should not start
    /// accepting tokens it cannot check.
    pub async fn connect(self) -> Result<Verifier, SetupError> {
        let timeout = self.connect_timeout;
        tokio::time::timeout(timeout, self.connect_now())
            .await
            .map_err(|_| SetupError::Timeout(timeout))?
    }

    /// A verifier with a fixed key set (an RFC 7517 JSON document) and no network at all: no
    /// discovery, no refetch, no revocation feed. For tests and for benchmarks; a service
    /// should [`connect`](Builder::connect).
    pub fn with_static_keys(self, jwks_json: &[u8]) -> Result<Verifier, SetupError> {
        self.check_leeway()?;
        let keys = keys::KeySet::from_json(jwks_json).map_err(SetupError::Config)?;
        Ok(Verifier {
            inner: Arc::new(Inner {
                expect: self.expectations(),
                jwks: JwksCache::fixed(keys),
                revocations: RwLock::new(Revocations::default()),
                feed: None,
                http: reqwest::Client::new(),
                bound: self.bound,
                when_unreachable: self.when_unreachable,
                last_sync: Mutex::new(None),
                task: Mutex::new(None),
            }),
        })
    }

    fn check_leeway(&self) -> Result<(), SetupError> {
        if self.leeway > MAX_LEEWAY {
            return Err(SetupError::Config(format!(
                "the leeway must be at most {} s: the issuer keeps revocations only that long \
                 past a token's expiry",
                MAX_LEEWAY.as_secs()
            )));
        }
        Ok(())
    }

    fn expectations(&self) -> Expectations {
        Expectations {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            max_token_bytes: self.max_token_bytes,
        }
    }

    async fn connect_now(self) -> Result<Verifier, SetupError> {
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(SetupError::Config(
                "the issuer and the audience must not be empty".into(),
            ));
        }
        self.check_leeway()?;
        if self.bound < Duration::from_millis(200) {
            return Err(SetupError::Config(
                "the revocation bound must be at least 200 ms".into(),
            ));
        }
        let http = match self.http.clone() {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .connect_timeout(Duration::from_secs(2))
                .build()
                .map_err(|e| SetupError::Config(format!("cannot build an HTTP client: {e}")))?,
        };
        let metadata = sync::discover(&http, &self.issuer).await?;
        let feed = match (self.feed.clone(), metadata.revocation_feed_endpoint) {
            (Some(client), Some(url)) => Some((url, client)),
            (Some(_), None) => {
                return Err(SetupError::Protocol {
                    url: self.issuer.clone(),
                    reason: "the issuer publishes no revocation_feed_endpoint".into(),
                });
            }
            (None, _) => None,
        };
        let jwks = JwksCache::load(metadata.jwks_uri, http.clone(), self.min_refetch).await?;
        if jwks.current().keys.is_empty() {
            tracing::warn!("the issuer's key set holds no usable key; every token will fail");
        }
        let inner = Arc::new(Inner {
            expect: self.expectations(),
            jwks,
            revocations: RwLock::new(Revocations::default()),
            feed: feed
                .map(|(url, client)| sync::Feed::new(url, client.id, client.secret, self.paging)),
            http,
            bound: self.bound,
            when_unreachable: self.when_unreachable,
            last_sync: Mutex::new(None),
            task: Mutex::new(None),
        });
        // A resource server starts with every revocation: the whole feed, however many
        // rounds that takes (within the connect timeout).
        while !inner.sync_feed().await?.caught_up {}
        let task = tokio::spawn(sync::run(Arc::downgrade(&inner)));
        if let Ok(mut slot) = inner.task.lock() {
            *slot = Some(task);
        }
        Ok(Verifier { inner })
    }
}

/// Verifies access tokens of one issuer for one audience. Cheap to clone; the background sync
/// stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    expect: Expectations,
    jwks: JwksCache,
    revocations: RwLock<Revocations>,
    feed: Option<sync::Feed>,
    http: reqwest::Client,
    bound: Duration,
    when_unreachable: WhenUnreachable,
    /// When the feed was last read to its end.
    last_sync: Mutex<Option<Instant>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.task.lock()
            && let Some(task) = slot.take()
        {
            task.abort();
        }
    }
}

/// What the verifier holds, for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Keys in the cached key set.
    pub keys: usize,
    /// How many times the key set was fetched since start.
    pub jwks_fetches: u64,
    /// Revoked token ids, sessions and subjects held.
    pub revoked: (usize, usize, usize),
    /// Time since the revocation feed was last read to its end; `None` without a feed.
    pub since_last_sync: Option<Duration>,
}

impl Verifier {
    /// A verifier for tokens that `issuer` (its exact `iss`, also the base of its metadata URL)
    /// issued for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> Builder {
        Builder {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            audience: audience.into(),
            feed: None,
            bound: Duration::from_secs(5),
            when_unreachable: WhenUnreachable::default(),
            leeway: Duration::from_secs(5),
            min_refetch: Duration::from_secs(10),
            max_token_bytes: validate::DEFAULT_MAX_TOKEN_BYTES,
            connect_timeout: Duration::from_secs(10),
            http: None,
            paging: sync::Paging {
                page: sync::PAGE,
                max_pages: sync::MAX_PAGES,
            },
        }
    }

    /// Verifies a bearer token. A `kid` the cached key set lacks triggers one refetch (shared
    /// with concurrent requests, at most once per minimum interval); nothing else touches the
    /// network.
    pub async fn verify(&self, token: &str) -> Result<AccessToken, VerifyError> {
        match self.verify_cached(token) {
            Err(VerifyError::UnknownKey) => {
                let inner = &self.inner;
                let Some(kid) = validate::unknown_kid(token, &inner.expect) else {
                    return Err(VerifyError::UnknownKey);
                };
                if inner.jwks.refresh_for_unknown(&kid).await {
                    self.verify_cached(token)
                } else {
                    Err(VerifyError::UnknownKey)
                }
            }
            other => other,
        }
    }

    /// Verifies a bearer token with what is cached, never waiting for the network: a `kid` the
    /// cache lacks is [`VerifyError::UnknownKey`].
    pub fn verify_cached(&self, token: &str) -> Result<AccessToken, VerifyError> {
        let inner = &self.inner;
        inner.check_freshness()?;
        let token = validate::verify(token, &inner.jwks.current().keys, &inner.expect, unix_now())?;
        let revoked = match inner.revocations.read() {
            Ok(state) => state.is_revoked(&token),
            Err(_) => return Err(VerifyError::Unavailable),
        };
        if revoked {
            return Err(VerifyError::Revoked);
        }
        Ok(token)
    }

    /// What the verifier holds now.
    pub fn status(&self) -> Status {
        let revoked = self
            .inner
            .revocations
            .read()
            .map(|r| r.counts())
            .unwrap_or_default();
        Status {
            keys: self.inner.jwks.current().keys.len(),
            jwks_fetches: self.inner.jwks.fetch_count(),
            revoked,
            since_last_sync: self.inner.since_last_sync(),
        }
    }

    /// The issuer, as configured.
    pub fn issuer(&self) -> &str {
        &self.inner.expect.issuer
    }

    /// The audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.inner.expect.audience
    }
}

impl Inner {
    /// Under [`WhenUnreachable::FailClosed`], refuses once revocations are older than the bound.
    fn check_freshness(&self) -> Result<(), VerifyError> {
        if self.when_unreachable == WhenUnreachable::FailClosed
            && self.feed.is_some()
            && self.since_last_sync().is_none_or(|age| age > self.bound)
        {
            return Err(VerifyError::Unavailable);
        }
        Ok(())
    }

    fn since_last_sync(&self) -> Option<Duration> {
        self.feed.as_ref()?;
        let last = self.last_sync.lock().ok()?;
        last.map(|at| at.elapsed())
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
