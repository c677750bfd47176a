//! The JWKS without the stack around the API.
//!
//! Every resource server polls `/.well-known/jwks.json`, so it is the most requested document
//! and the cheapest to make: prebuilt bytes and tag (see [`KeySet`]). Passed through the
//! span, access line, body limit, timeout and OpenAPI routing that the other requests need,
//! serving it cost four times a bare poem request. Answered here, before all of that, with
//! the same headers, status codes and metrics; only the access line is left out (the route
//! keeps its request counter and latency histogram). The OpenAPI operation in `well_known`
//! still documents it and answers whatever this lane hands on (`HEAD`, CORS requests).

use std::sync::Arc;
use std::time::Instant;

use poem::http::header::{
    CACHE_CONTROL, CONNECTION, CONTENT_TYPE, ETAG, IF_NONE_MATCH, ORIGIN, X_CONTENT_TYPE_OPTIONS,
};
use poem::http::{HeaderValue, Method, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result};

use super::observe::{REQUEST_ID, request_id};
use super::well_known::matches_etag;
use crate::keys::KeyRing;
use crate::metrics::{self, RouteMetrics};
use crate::shutdown::Drain;

/// The path this lane answers.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// Answers `GET /.well-known/jwks.json` itself and hands every other request to `next`.
pub struct JwksFirst<E> {
    next: E,
    keys: Arc<KeyRing>,
    cache_control: HeaderValue,
    drain: Drain,
    metrics: RouteMetrics,
}

impl<E> JwksFirst<E> {
    pub fn new(next: E, keys: Arc<KeyRing>, max_age: u64, drain: Drain) -> JwksFirst<E> {
        let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("public"));
        JwksFirst {
            next,
            keys,
            cache_control,
            drain,
            metrics: RouteMetrics::new(
                &Method::GET,
                JWKS_PATH,
                &[StatusCode::OK, StatusCode::NOT_MODIFIED],
            ),
        }
    }

    fn serve(&self, req: &Request) -> Response {
        let keys = self.keys.current();
        let not_modified = req
            .headers()
            .get(IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| matches_etag(value, keys.etag()));
        let mut response = if not_modified {
            Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .finish()
        } else {
            Response::builder()
                .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                .body(keys.jwks())
        };
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, self.cache_control.clone());
        if let Ok(etag) = HeaderValue::from_str(keys.etag()) {
            headers.insert(ETAG, etag);
        }
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(REQUEST_ID.clone(), request_id(req.headers()));
        if self.drain.is_draining() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Plain `GET`s only: a CORS request needs the CORS layer's headers.
fn takes(req: &Request) -> bool {
    req.method() == Method::GET
        && req.uri().path() == JWKS_PATH
        && !req.headers().contains_key(ORIGIN)
}

impl<E: Endpoint> Endpoint for JwksFirst<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        if !takes(&req) {
            return self.next.call(req).await.map(IntoResponse::into_response);
        }
        let started = Instant::now();
        let _in_flight = metrics::InFlight::start();
        let response = self.serve(&req);
        self.metrics.record(response.status(), started.elapsed());
        Ok(response)
    }
}
