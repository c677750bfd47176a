//! Bounds on how long a request may hold the service: the whole request, body reading
//! included, gets `server.request_timeout`; past it the caller gets a JSON 503 with
//! `Retry-After` and the handler is dropped (so a slow upload or a stuck dependency frees its
//! connection and memory). And which other origins' pages may read the answers (CORS).

use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Result};

/// Runs `next` for at most `limit`.
pub async fn timeout<E: Endpoint>(next: E, req: Request, limit: Duration) -> Result<Response> {
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(Ok(output)) => Ok(output.into_response()),
        Ok(Err(error)) => Ok(error.into_response()),
        Err(_) => {
            tracing::warn!(limit = ?limit, "request timed out");
            Ok(timed_out(limit))
        }
    }
}

fn timed_out(limit: Duration) -> Response {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": format!("the request took longer than {} s", limit.as_secs()),
    });
    let mut response = Response::builder()
        .status(StatusCode::SERVICE_UNAVAILABLE)
        .content_type("application/json")
        .header(header::RETRY_AFTER, "1")
        .header(header::CONNECTION, "close")
        .body(body.to_string());
    // This answer bypasses `harden`, so it sets the headers harden would.
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// CORS for the configured origins only. Credentials stay off: tokens travel in headers the
/// page sets, not in cookies.
///
/// A request from any other origin passes through without CORS headers, so the browser keeps
/// the answer from the page that asked. It is not refused, as poem's `Cors` alone would do: a
/// browser sends `Origin` with every form post, the hosted sign-in and logout pages' own
/// included, and those must keep working when CORS is on.
pub fn cors<E: Endpoint + 'static>(origins: &[String], inner: E) -> BoxEndpoint<'static> {
    let inner = Arc::new(inner);
    let listed = origins
        .iter()
        .filter_map(|origin| HeaderValue::from_str(origin).ok())
        .collect();
    ListedCors {
        listed,
        cors: Arc::clone(&inner).with(cors_middleware(origins)).boxed(),
        plain: inner.map_to_response().boxed(),
    }
    .boxed()
}

fn cors_middleware(origins: &[String]) -> poem::middleware::Cors {
    use poem::http::Method;
    poem::middleware::Cors::new()
        .allow_origins(origins.iter().map(String::as_str))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers(["authorization", "content-type", "x-request-id"])
        .expose_headers(["retry-after", "www-authenticate", "x-request-id"])
        .allow_credentials(false)
        .max_age(600)
}

struct ListedCors {
    listed: Vec<HeaderValue>,
    cors: BoxEndpoint<'static>,
    plain: BoxEndpoint<'static>,
}

impl Endpoint for ListedCors {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let listed = req
            .headers()
            .get(header::ORIGIN)
            .is_some_and(|origin| self.listed.contains(origin));
        let mut response = if listed {
            self.cors.call(req).await?
        } else {
            self.plain.call(req).await?
        };
        // Answers differ by origin (JWKS and metadata are cacheable): caches must keep them
        // apart.
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        Ok(response)
    }
}
