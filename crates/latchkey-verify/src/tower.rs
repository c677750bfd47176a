//! tower glue (feature `tower`): a layer that requires a valid access token on every request
//! of the service it wraps and puts the verified [`AccessToken`](crate::AccessToken) in the request's extensions.
//! Refusals are answered per RFC 6750 with a JSON body, so the response body type must be
//! buildable from a `String` (axum's `Body`, `http_body_util::Full<Bytes>`, `String`...).
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # fn app(verifier: latchkey_verify::Verifier) {
//! // With axum (feature `axum`), the token is also an extractor:
//! // Router::new().route("/protected", get(handler)).layer(VerifyLayer::new(verifier))
//! // async fn handler(token: AccessToken) -> String { token.subject }
//! let _layer = latchkey_verify::tower::VerifyLayer::new(verifier);
//! # }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use tower_layer::Layer;
use tower_service::Service;

use crate::{Verifier, VerifyError, bearer_token};

/// Wraps a service so that only requests with a valid access token reach it.
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    verifier: Verifier,
}

impl VerifyLayer {
    pub fn new(verifier: Verifier) -> Self {
        VerifyLayer { verifier }
    }
}

impl<S> Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The service [`VerifyLayer`] makes.
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    verifier: Verifier,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for VerifyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: From<String>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone takes its place.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let verifier = self.verifier.clone();
        Box::pin(async move {
            let token = req
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .map(str::to_owned);
            let verified = match token {
                Some(token) => verifier.verify(&token).await,
                None => Err(VerifyError::Missing),
            };
            match verified {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    inner.call(req).await
                }
                Err(error) => Ok(error_response(&error)),
            }
        })
    }
}

/// The RFC 6750 answer to a refusal: status, `WWW-Authenticate`, and a JSON body.
pub fn error_response<B: From<String>>(error: &VerifyError) -> Response<B> {
    let mut response = Response::new(B::from(error.body()));
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(challenge) = error
        .www_authenticate()
        .and_then(|c| HeaderValue::from_str(&c).ok())
    {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    if let Some(seconds) = error.retry_after() {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
