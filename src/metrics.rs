//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! One registry per process: the HTTP layer, the OAuth flows (through the audit trail), and the
//! store backends record into it wherever they run, without a handle threaded through every
//! constructor. A process serves one Latchkey, so nothing is lost by that; tests that start
//! several services in one process read the counts of the real binary instead.
//!
//! Recording is cheap: counters whose labels are known up front are resolved once here, so an
//! increment is one atomic add; the per-request HTTP series take a hash lookup under a read lock
//! and allocate nothing once a series exists. Labels are bounded: the route label is the route
//! template (`/admin/users/{username}`), never the path, and unknown methods count as `other`.
//! Values that exist only at scrape time (the argon2 queue, key ages) are read when scraped.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use poem::http::{Method, StatusCode};
use prometheus::core::Collector;
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::domain::{GrantType, UnixTime};
use crate::keys::KeySet;

/// The `Content-Type` of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route label of a request that matched no route (a 404 from routing).
pub const UNMATCHED_ROUTE: &str = "unmatched";

const HTTP_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const STORE_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    http_in_flight: IntGauge,
    /// Indexed like [`GrantType::ALL`].
    tokens_issued: [IntCounter; GrantType::ALL.len()],
    refreshes_rotated: IntCounter,
    refreshes_repeated: IntCounter,
    reuse_detected: IntCounter,
    revoked_by_request: IntCounter,
    revoked_by_logout: IntCounter,
    failed_logins: IntCounter,
    client_auth_failures: IntCounter,
    rate_limit_refusals: IntCounter,
    legacy_password_hashes: IntGauge,
    store_duration: HistogramVec,
    store_errors: IntCounterVec,
    /// Scrape-time values: kept out of the registry and filled in by [`render`].
    hash_queue_depth: IntGauge,
    key_ages: GaugeVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[allow(
    clippy::expect_used,
    reason = "metric names, labels and buckets are constants: registration cannot fail at run time"
)]
fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let counter = IntCounter::new(name, help).expect("a valid metric name");
    registry
        .register(Box::new(counter.clone()))
        .expect("a metric registered once");
    counter
}

#[allow(
    clippy::expect_used,
    reason = "metric names are constants: registration cannot fail at run time"
)]
fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let gauge = IntGauge::new(name, help).expect("a valid metric name");
    registry
        .register(Box::new(gauge.clone()))
        .expect("a metric registered once");
    gauge
}

#[allow(
    clippy::expect_used,
    reason = "metric names, labels and buckets are constants: registration cannot fail at run time"
)]
fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric name");
    registry
        .register(Box::new(vec.clone()))
        .expect("a metric registered once");
    vec
}

#[allow(
    clippy::expect_used,
    reason = "metric names, labels and buckets are constants: registration cannot fail at run time"
)]
fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    let vec = HistogramVec::new(opts, labels).expect("a valid metric name");
    registry
        .register(Box::new(vec.clone()))
        .expect("a metric registered once");
    vec
}

impl Metrics {
    // Runs once, from `init()` at start-up before any request. Names, labels and buckets are
    // constants, so nothing here can fail at run time; the `expect`s state that (the unit test
    // below runs this very code).
    #[allow(
        clippy::expect_used,
        reason = "metric names, labels and buckets are constants: registration cannot fail at run time"
    )]
    fn new() -> Metrics {
        let registry = Registry::new();
        let tokens = counter_vec(
            &registry,
            "latchkey_tokens_issued_total",
            "Access tokens issued, by grant.",
            &["grant"],
        );
        let refreshes = counter_vec(
            &registry,
            "latchkey_refreshes_total",
            "Refresh-token redemptions that issued tokens: rotated, or repeated inside the grace window.",
            &["outcome"],
        );
        let revocations = counter_vec(
            &registry,
            "latchkey_revocations_total",
            "Tokens revoked through POST /oauth/revoke or POST /logout.",
            &["via"],
        );
        let build = IntGaugeVec::new(
            Opts::new("latchkey_build_info", "The running version; always 1."),
            &["version"],
        )
        .expect("a valid metric name");
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        registry
            .register(Box::new(build))
            .expect("a metric registered once");
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            registry
                .register(Box::new(process))
                .expect("a metric registered once");
        }
        let http_in_flight = IntGauge::new(
            "latchkey_http_requests_in_flight",
            "HTTP requests being handled now.",
        )
        .expect("a valid metric name");
        registry
            .register(Box::new(http_in_flight.clone()))
            .expect("a metric registered once");
        Metrics {
            http_requests: counter_vec(
                &registry,
                "latchkey_http_requests_total",
                "HTTP requests answered, by method, route template and status.",
                &["method", "route", "status"],
            ),
            http_duration: histogram_vec(
                &registry,
                "latchkey_http_request_duration_seconds",
                "Time from receiving a request to having its response, by method and route template.",
                &["method", "route"],
                HTTP_BUCKETS,
            ),
            http_in_flight,
            tokens_issued: GrantType::ALL.map(|grant| tokens.with_label_values(&[grant.name()])),
            refreshes_rotated: refreshes.with_label_values(&["rotated"]),
            refreshes_repeated: refreshes.with_label_values(&["repeated"]),
            reuse_detected: counter(
                &registry,
                "latchkey_refresh_reuse_detected_total",
                "Refresh tokens presented again after rotation; each revoked its whole family.",
            ),
            revoked_by_request: revocations.with_label_values(&["revoke"]),
            revoked_by_logout: revocations.with_label_values(&["logout"]),
            failed_logins: counter(
                &registry,
                "latchkey_failed_logins_total",
                "Password grants refused for a wrong username or password, or a disabled account.",
            ),
            client_auth_failures: counter(
                &registry,
                "latchkey_client_auth_failures_total",
                "Client authentications that failed.",
            ),
            rate_limit_refusals: counter(
                &registry,
                "latchkey_rate_limit_refusals_total",
                "Requests refused with 429 because of too many failed logins.",
            ),
            legacy_password_hashes: gauge(
                &registry,
                "latchkey_legacy_password_hashes",
                "Users whose password hash was imported from another system and is not yet \
                 argon2id (each becomes argon2id at the user's first sign-in); counted from the \
                 store every few minutes.",
            ),
            store_duration: histogram_vec(
                &registry,
                "latchkey_store_operation_duration_seconds",
                "Time taken by store operations, by backend.",
                &["backend"],
                STORE_BUCKETS,
            ),
            store_errors: counter_vec(
                &registry,
                "latchkey_store_errors_total",
                "Store operations that failed: the store was unavailable, or failed internally.",
                &["backend", "kind"],
            ),
            hash_queue_depth: IntGauge::new(
                "latchkey_password_hash_queue_depth",
                "Password hashes (argon2id) waiting for a core.",
            )
            .expect("a valid metric name"),
            key_ages: GaugeVec::new(
                Opts::new(
                    "latchkey_signing_key_age_seconds",
                    "Seconds since each loaded signing key was published, by kid and lifecycle \
                     state. The first key of a fresh installation counts as published at the \
                     Unix epoch.",
                ),
                &["kid", "state"],
            )
            .expect("a valid metric name"),
            registry,
        }
    }
}

/// Registers every metric now, so that the first scrape already lists them all at zero.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// An access token was issued through `grant`.
pub fn token_issued(grant: GrantType) {
    let index = GrantType::ALL.iter().position(|g| *g == grant).unwrap_or(0);
    METRICS.tokens_issued[index].inc();
}

/// `latchkey_legacy_password_hashes` between scrapes: an atomic, so that upgrades at once
/// never take it below zero (the gauge has no compare-and-set); copied at every scrape.
static LEGACY_PASSWORD_HASHES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The users with an imported (not argon2id) password hash, as counted in the store.
pub fn legacy_password_hashes(count: u64) {
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    LEGACY_PASSWORD_HASHES.store(count, std::sync::atomic::Ordering::Relaxed);
}

/// One user's imported hash became argon2id (until the next count says so for all replicas).
pub fn legacy_password_hash_upgraded() {
    use std::sync::atomic::Ordering::Relaxed;
    let _ = LEGACY_PASSWORD_HASHES.fetch_update(Relaxed, Relaxed, |n| (n > 0).then(|| n - 1));
}

/// A request was refused with 429 by the failed-login limit.
pub fn rate_limit_refused() {
    METRICS.rate_limit_refusals.inc();
}

/// What the audit trail counts: each variant is one counter, so the trail and the metrics always
/// agree (the audit module says which of its events count as which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditCounter {
    FailedLogin,
    ClientAuthFailure,
    RefreshRotated,
    RefreshRepeated,
    ReuseDetected,
    RevokedByRequest,
    RevokedByLogout,
}

/// Counts one audited event.
pub fn audit_event(counter: AuditCounter) {
    let metrics = &*METRICS;
    match counter {
        AuditCounter::FailedLogin => metrics.failed_logins.inc(),
        AuditCounter::ClientAuthFailure => metrics.client_auth_failures.inc(),
        AuditCounter::RefreshRotated => metrics.refreshes_rotated.inc(),
        AuditCounter::RefreshRepeated => metrics.refreshes_repeated.inc(),
        AuditCounter::ReuseDetected => metrics.reuse_detected.inc(),
        AuditCounter::RevokedByRequest => metrics.revoked_by_request.inc(),
        AuditCounter::RevokedByLogout => metrics.revoked_by_logout.inc(),
    }
}

/// Records one store operation of `backend` that started at `started`; `failure` names how the
/// store failed (`unavailable`, `internal`), `None` when it answered.
pub fn store_operation(backend: &'static str, started: Instant, failure: Option<&'static str>) {
    let metrics = &*METRICS;
    metrics
        .store_duration
        .with_label_values(&[backend])
        .observe(started.elapsed().as_secs_f64());
    if let Some(kind) = failure {
        metrics
            .store_errors
            .with_label_values(&[backend, kind])
            .inc();
    }
}

/// A request in flight, counted until dropped (also when the client goes away mid-request).
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        METRICS.http_in_flight.inc();
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        METRICS.http_in_flight.dec();
    }
}

/// Records one answered HTTP request. `route` is the route template, or [`UNMATCHED_ROUTE`].
pub fn http_request(method: &Method, route: &str, status: StatusCode, elapsed: Duration) {
    let metrics = &*METRICS;
    let method = method_label(method);
    metrics
        .http_requests
        .with_label_values(&[method, route, status.as_str()])
        .inc();
    metrics
        .http_duration
        .with_label_values(&[method, route])
        .observe(elapsed.as_secs_f64());
}

/// The series of one route, looked up once: for a route answered often enough that finding
/// its series by label on every request would show in its cost (the JWKS).
pub struct RouteMetrics {
    method: &'static str,
    route: &'static str,
    counters: Vec<(StatusCode, prometheus::IntCounter)>,
    duration: prometheus::Histogram,
}

impl RouteMetrics {
    /// Handles for `route` answering with any of `statuses`; other statuses are still counted.
    pub fn new(method: &Method, route: &'static str, statuses: &[StatusCode]) -> RouteMetrics {
        let metrics = &*METRICS;
        let method = method_label(method);
        let counters = statuses
            .iter()
            .map(|status| {
                let labels = [method, route, status.as_str()];
                (*status, metrics.http_requests.with_label_values(&labels))
            })
            .collect();
        RouteMetrics {
            method,
            route,
            counters,
            duration: metrics.http_duration.with_label_values(&[method, route]),
        }
    }

    /// Records one answered request, as [`http_request`] would.
    pub fn record(&self, status: StatusCode, elapsed: Duration) {
        match self.counters.iter().find(|(known, _)| *known == status) {
            Some((_, counter)) => counter.inc(),
            None => METRICS
                .http_requests
                .with_label_values(&[self.method, self.route, status.as_str()])
                .inc(),
        }
        self.duration.observe(elapsed.as_secs_f64());
    }
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// What only the running service knows, read at scrape time.
pub struct Snapshot<'a> {
    /// Password hashes waiting for a core.
    pub hash_queue_depth: usize,
    pub keys: &'a KeySet,
    pub now: UnixTime,
}

/// The whole exposition: every registered metric and the scrape-time values of `snapshot`.
pub fn render(snapshot: &Snapshot<'_>) -> String {
    let metrics = &*METRICS;
    metrics
        .legacy_password_hashes
        .set(LEGACY_PASSWORD_HASHES.load(std::sync::atomic::Ordering::Relaxed));
    let mut families = metrics.registry.gather();
    metrics
        .hash_queue_depth
        .set(i64::try_from(snapshot.hash_queue_depth).unwrap_or(i64::MAX));
    families.extend(metrics.hash_queue_depth.collect());
    // Rebuilt on every scrape, so a retired key's series disappears with it.
    metrics.key_ages.reset();
    for loaded in snapshot.keys.keys() {
        let age = snapshot.now.saturating_sub(loaded.published_at).max(0);
        metrics
            .key_ages
            .with_label_values(&[loaded.key.kid(), loaded.state.as_str()])
            .set(age as f64);
    }
    families.extend(metrics.key_ages.collect());
    let mut out = Vec::with_capacity(16 * 1024);
    // Encoding into memory fails only for malformed families, which the constant names above
    // rule out; an empty answer would show up as missing series, never as a crash.
    if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(%error, "encoding the metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_registers_and_renders_before_any_request() {
        init();
        rate_limit_refused();
        let text = metrics_text();
        for name in [
            "latchkey_tokens_issued_total{grant=\"client_credentials\"}",
            "latchkey_refresh_reuse_detected_total",
            "latchkey_rate_limit_refusals_total",
            "latchkey_http_requests_in_flight",
            "latchkey_build_info",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "other");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
    }

    fn metrics_text() -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&METRICS.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }
}
