//! `GET /metrics`: the Prometheus text exposition.
//!
//! A plain route outside the OpenAPI document: its body is Prometheus' format, not JSON, and it
//! is meant for the scraper, not for API clients. It needs no credentials, like `/healthz`, so
//! keep it off the public side of the proxy (the shipped haproxy and Kubernetes configurations
//! do) and let Prometheus scrape each replica directly.

use std::sync::Arc;

use poem::http::header;
use poem::{Endpoint, EndpointExt, Response};

use crate::domain::now;
use crate::metrics::{self, Snapshot};
use crate::oauth::Authority;

/// The endpoint, for `GET` (and `HEAD`) only.
pub fn endpoint(authority: Arc<Authority>) -> impl Endpoint {
    poem::get(poem::endpoint::make_sync(move |_| {
        let keys = authority.keys().current();
        let snapshot = Snapshot {
            hash_queue_depth: authority.passwords().queue_depth(),
            keys: &keys,
            now: now(),
        };
        Response::builder()
            .content_type(metrics::CONTENT_TYPE)
            .header(header::CACHE_CONTROL, "no-store")
            .body(metrics::render(&snapshot))
    }))
    .map_to_response()
}
