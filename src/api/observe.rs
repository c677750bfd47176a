//! What every request gets on its way in and out, around everything else: a request id, a span
//! that puts that id on every log line of the request, one access-log line, the HTTP metrics,
//! and `Connection: close` once the service is shutting down.
//!
//! The access line (target `access`, level info) names the method, the route template, the
//! status and the latency. It never holds the path (which can name a user), the query string or
//! any header value, so no credential can reach the log through it. Operators who do not want a
//! line per request filter it out: `LATCHKEY_LOG__LEVEL=info,access=off`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use poem::http::header::{CONNECTION, HeaderName};
use poem::http::{HeaderMap, HeaderValue};
use poem::{Endpoint, IntoResponse, PathPattern, Request, Response, Result};
use tracing::Instrument;

use crate::metrics::{self, UNMATCHED_ROUTE};
use crate::shutdown::Drain;

/// The header that carries the request id both ways.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest request id taken from a caller.
const MAX_REQUEST_ID: usize = 128;

/// Wraps `next` (the whole HTTP surface) with request ids, logging and metrics.
pub async fn observe<E: Endpoint>(next: E, mut req: Request, drain: Drain) -> Result<Response> {
    let started = Instant::now();
    let _in_flight = metrics::InFlight::start();
    let id = request_id(req.headers());
    // Handlers (the audit trail) read the id from the request, so a generated one goes there too.
    req.headers_mut().insert(REQUEST_ID.clone(), id.clone());
    let method = req.method().clone();
    // Level error so that the span exists whenever any line is logged: a `warn` filter must not
    // strip the request id from the warnings of a request.
    let span = tracing::error_span!("request", request_id = id.to_str().unwrap_or_default());
    async move {
        let mut response = match next.call(req).await {
            Ok(output) => output.into_response(),
            Err(error) => error.into_response(),
        };
        let elapsed = started.elapsed();
        let status = response.status();
        // A path that matched only the nest around the API (no operation) has an empty pattern.
        let route = response
            .data::<PathPattern>()
            .map(|pattern| &*pattern.0)
            .filter(|pattern| !pattern.is_empty())
            .unwrap_or(UNMATCHED_ROUTE);
        metrics::http_request(&method, route, status, elapsed);
        tracing::info!(
            target: "access",
            method = method.as_str(),
            route,
            status = status.as_u16(),
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        let headers = response.headers_mut();
        headers.insert(REQUEST_ID.clone(), id);
        if drain.is_draining() {
            // Ends keep-alive connections after this answer rather than between two requests.
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(response)
    }
    .instrument(span)
    .await
}

/// The caller's request id if it is one we can log and echo safely, else a new one.
pub(super) fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|value| is_safe_id(value.as_bytes()))
        .cloned()
        .unwrap_or_else(generate_id)
}

/// Short, and made of characters that need no escaping in a header, a URL or a log line.
fn is_safe_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:=+/@".contains(b))
}

/// 128 bits in hex: 64 random bits drawn once per process, then a counter. Unique across
/// requests and replicas (ids only need to tell requests apart, not to be secret), without a
/// call to the random generator per request.
fn generate_id() -> HeaderValue {
    static PREFIX: LazyLock<u64> = LazyLock::new(|| {
        let mut bytes = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            // Unreachable in practice (aws-lc aborts when the OS has no entropy); the start
            // time still tells this process's ids from another's.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            return nanos as u64;
        }
        u64::from_be_bytes(bytes)
    });
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = (u128::from(*PREFIX) << 64) | u128::from(sequence);
    let mut hex = [0u8; 32];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = HEX[((id >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&hex).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_incoming_request_id_is_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(&REQUEST_ID, HeaderValue::from_static("req-42_a.b:c"));
        assert_eq!(request_id(&headers), "req-42_a.b:c");
    }

    #[test]
    fn an_unsafe_or_missing_request_id_is_replaced_by_a_fresh_one() {
        let long = "x".repeat(MAX_REQUEST_ID + 1);
        for bad in ["", "has space", "quote\"", "brace{}", long.as_str()] {
            let mut headers = HeaderMap::new();
            headers.insert(&REQUEST_ID, HeaderValue::from_str(bad).unwrap());
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert_eq!(id.len(), 32, "{id:?}");
        }
        let fresh = request_id(&HeaderMap::new());
        assert!(fresh.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(fresh, request_id(&HeaderMap::new()), "ids differ");
    }
}
