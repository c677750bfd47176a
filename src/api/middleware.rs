//! What every response gets, whichever endpoint made it: a JSON body for every error (also the
//! ones raised by routing and request parsing), a bounded request body, no JSON body with a
//! member given twice nor a header that may appear once given twice, and safe headers.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use poem::http::{HeaderValue, Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, PathPattern, Request, Response, Result};
use tokio::io::{AsyncRead, ReadBuf};

use super::errors::bearer_challenge;
use super::strict_json;

/// Wraps an endpoint with the body limit, the duplicate-member check of JSON bodies, error
/// normalisation and default headers.
pub async fn harden<E: Endpoint>(next: E, mut req: Request, max_body: usize) -> Result<Response> {
    let oauth = req.uri().path().starts_with("/oauth/");
    // The browser's pages: a request they cannot read is answered with a page too.
    let browser = matches!(req.uri().path(), "/oauth/authorize" | "/oauth/logout");
    if let Some(name) = repeated_singleton(&req) {
        let refused = error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("the request has more than one {name} header"),
        );
        return Ok(finish(refused, oauth, browser).await);
    }
    let withheld = match limit_body(&mut req, max_body).await {
        Ok(withheld) => withheld,
        Err(response) => return Ok(finish(response, oauth, browser).await),
    };
    let mut response = match next.call(req).await {
        Ok(output) => output.into_response(),
        Err(error) => error.into_response(),
    };
    if let Some(withheld) = withheld.filter(Withheld::was_read) {
        let pattern = response.data::<PathPattern>().cloned();
        response = match withheld.why {
            Why::TooLarge => error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                &format!("the request body exceeds {max_body} bytes"),
            ),
            Why::DuplicateMember(name) => error_response(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("the JSON body has the member '{name}' more than once"),
            ),
        };
        // The route template labels the request's metrics; the answer that replaces it keeps it.
        if let Some(pattern) = pattern {
            response.set_data(pattern);
        }
    }
    Ok(finish(response, oauth, browser).await)
}

/// A header that may appear once (RFC 9110) but appears more often. We would read the first,
/// a proxy in front might read the last: as with a JSON member given twice, the request is
/// refused rather than read one way here and another way there.
fn repeated_singleton(req: &Request) -> Option<&'static str> {
    [
        (header::AUTHORIZATION, "Authorization"),
        (header::CONTENT_TYPE, "Content-Type"),
    ]
    .into_iter()
    .find(|(name, _)| req.headers().get_all(name).iter().nth(1).is_some())
    .map(|(_, shown)| shown)
}

/// Reads the body up to `max` bytes, so no handler ever sees more. A body the handler must not
/// see (larger than `max`, declared or read; or JSON with a member given twice) is withheld:
/// the request goes on with a body that fails when read, and the returned [`Withheld`] says
/// whether anything tried. So an operation that reads its body answers 413 or 400, and one that
/// takes no body answers as it would without one.
async fn limit_body(req: &mut Request, max: usize) -> Result<Option<Withheld>, Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(None);
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max as u64) {
        return Ok(Some(Withheld::replace(req, Why::TooLarge)));
    }
    match req.take_body().into_bytes_limit(max).await {
        Ok(bytes) => {
            let json = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(strict_json::is_json);
            if let Some(name) = json
                .then(|| strict_json::duplicate_member(&bytes))
                .flatten()
            {
                // Bounded: the name goes back to the caller in the answer.
                let name = name.chars().take(64).collect();
                return Ok(Some(Withheld::replace(req, Why::DuplicateMember(name))));
            }
            req.set_body(Body::from(bytes));
            Ok(None)
        }
        Err(poem::error::ReadBodyError::PayloadTooLarge) => {
            Ok(Some(Withheld::replace(req, Why::TooLarge)))
        }
        Err(_) => Err(error_response(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the request body could not be read",
        )),
    }
}

/// Why a request's body is kept from the handler.
enum Why {
    TooLarge,
    DuplicateMember(String),
}

/// A body kept from the handler, and whether the handler tried to read it.
struct Withheld {
    why: Why,
    read: Arc<AtomicBool>,
}

impl Withheld {
    /// Replaces the body of `req` with a [`RefusedBody`].
    fn replace(req: &mut Request, why: Why) -> Withheld {
        let read = Arc::new(AtomicBool::new(false));
        req.set_body(Body::from_async_read(RefusedBody(read.clone())));
        Withheld { why, read }
    }

    fn was_read(&self) -> bool {
        self.read.load(Ordering::Relaxed)
    }
}

/// The body of a request whose body is withheld: reading it fails, and marks the request.
struct RefusedBody(Arc<AtomicBool>);

impl AsyncRead for RefusedBody {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        _buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.0.store(true, Ordering::Relaxed);
        Poll::Ready(Err(io::Error::other("the request body is withheld")))
    }
}

async fn finish(response: Response, oauth: bool, browser: bool) -> Response {
    let unreadable = matches!(
        response.status(),
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let mut response = if browser && unreadable && is_plain_error(&response) {
        // A sign-in form posted without a body, or with one that is not a form: a page that
        // says so, as every other answer of these endpoints is.
        let pattern = response.data::<PathPattern>().cloned();
        let mut page = super::sign_in_page::stopped(
            "Sign-in cannot continue",
            "The request could not be read.",
        )
        .into_response();
        page.set_status(StatusCode::BAD_REQUEST);
        if let Some(pattern) = pattern {
            page.set_data(pattern);
        }
        page
    } else if is_plain_error(&response) {
        // The route template labels the request's metrics; the fresh error response keeps it.
        let pattern = response.data::<PathPattern>().cloned();
        let mut fresh = normalise_error(response, oauth).await;
        if let Some(pattern) = pattern {
            fresh.set_data(pattern);
        }
        fresh
    } else {
        response
    };
    let headers = response.headers_mut();
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // No page is meant to be framed: the docs page neither (the sign-in pages say so too).
    let page = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/html"));
    if page {
        headers
            .entry(header::X_FRAME_OPTIONS)
            .or_insert(HeaderValue::from_static("DENY"));
    }
    headers.remove(header::SERVER);
    if browser {
        // The pages set it themselves; the redirects that carry a code or an error too.
        headers
            .entry(header::REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("no-referrer"));
    }
    response
}

fn is_plain_error(response: &Response) -> bool {
    let status = response.status();
    // JSON is the handlers' own error; HTML only the sign-in pages make, for a browser.
    let made = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    (status.is_client_error() || status.is_server_error()) && !made
}

/// Turns an error made outside the handlers (routing, parsing, panics) into the JSON form the
/// handlers use. OAuth endpoints answer every malformed request with RFC 6749's 400.
async fn normalise_error(response: Response, oauth: bool) -> Response {
    let status = response.status();
    let allow = response.headers().get(header::ALLOW).cloned();
    // Parsing errors say which field was wrong; keep that, bounded, for the client.
    let detail: String = response
        .into_body()
        .into_string()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let (status, code, description) = match status {
        StatusCode::NOT_FOUND => (status, "not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (status, "method_not_allowed", "method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => {
            (status, "invalid_request", "the request body is too large")
        }
        StatusCode::UNAUTHORIZED => (status, "invalid_token", "a bearer token is required"),
        s if s.is_server_error() => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "an internal error occurred",
        ),
        _ if oauth => (StatusCode::BAD_REQUEST, "invalid_request", detail.as_str()),
        _ => (status, "invalid_request", detail.as_str()),
    };
    let description = if description.trim().is_empty() {
        "the request is malformed"
    } else {
        description
    };
    let mut fresh = error_response(status, code, description);
    if status == StatusCode::UNAUTHORIZED
        && let Ok(value) = HeaderValue::from_str(&bearer_challenge(None))
    {
        fresh.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    if let Some(allow) = allow {
        fresh.headers_mut().insert(header::ALLOW, allow);
    }
    fresh
}

fn error_response(status: StatusCode, code: &str, description: &str) -> Response {
    let body = serde_json::json!({ "error": code, "error_description": description });
    Response::builder()
        .status(status)
        .content_type("application/json")
        .body(body.to_string())
}
