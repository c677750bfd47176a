//! poem glue (feature `poem`): [`AccessToken`] as an extractor, a middleware that requires a
//! valid token on every route it wraps, and [`VerifyError`] as a response.
//!
//! ```no_run
//! use latchkey_verify::{AccessToken, Verifier, VerifyError};
//! use poem::{EndpointExt, Route, get, handler};
//!
//! #[handler]
//! fn report(token: AccessToken) -> Result<String, VerifyError> {
//!     token.require_role("admin")?;
//!     Ok(format!("hello, {}", token.subject))
//! }
//!
//! # fn app(verifier: Verifier) -> impl poem::Endpoint {
//! // The extractor finds the verifier in the request data.
//! Route::new().at("/admin/report", get(report)).data(verifier)
//! # }
//! ```

use poem::error::ResponseError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, FromRequest, Middleware, Request, RequestBody, Response};

use crate::{AccessToken, Verifier, VerifyError, bearer_token};

impl ResponseError for VerifyError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(VerifyError::status(self)).unwrap_or(StatusCode::UNAUTHORIZED)
    }

    /// RFC 6750 §3: the status, a `WWW-Authenticate: Bearer` challenge with the error code,
    /// and a JSON body `{"error", "error_description"}`.
    fn as_response(&self) -> Response {
        let mut builder = Response::builder()
            .status(ResponseError::status(self))
            .content_type("application/json")
            .header(header::CACHE_CONTROL, "no-store");
        if let Some(challenge) = self.www_authenticate() {
            builder = builder.header(header::WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after() {
            builder = builder.header(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        builder.body(self.body())
    }
}

/// Verifies the request's bearer token with `verifier`.
pub async fn verify_request(
    verifier: &Verifier,
    req: &Request,
) -> Result<AccessToken, VerifyError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(VerifyError::Missing)?;
    verifier.verify(token).await
}

/// The verified token: the one [`RequireToken`] put in the request, or else verified here with
/// the [`Verifier`] found in the request data (`.data(verifier)`).
impl<'a> FromRequest<'a> for AccessToken {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        if let Some(token) = req.extensions().get::<AccessToken>() {
            return Ok(token.clone());
        }
        let verifier = req.data::<Verifier>().ok_or_else(|| {
            poem::Error::from_string(
                "no latchkey_verify::Verifier in the request data",
                StatusCode::INTERNAL_SERVER_ERROR,
            )
        })?;
        Ok(verify_request(verifier, req).await?)
    }
}

/// Middleware: every request must carry a valid access token; the verified [`AccessToken`] is
/// put in the request's extensions for handlers to extract.
#[derive(Debug, Clone)]
pub struct RequireToken {
    verifier: Verifier,
}

impl RequireToken {
    pub fn new(verifier: Verifier) -> Self {
        RequireToken { verifier }
    }
}

impl<E: Endpoint> Middleware<E> for RequireToken {
    type Output = RequireTokenEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        RequireTokenEndpoint {
            inner,
            verifier: self.verifier.clone(),
        }
    }
}

/// The endpoint [`RequireToken`] makes.
pub struct RequireTokenEndpoint<E> {
    inner: E,
    verifier: Verifier,
}

impl<E: Endpoint> Endpoint for RequireTokenEndpoint<E> {
    type Output = E::Output;

    async fn call(&self, mut req: Request) -> poem::Result<Self::Output> {
        let token = verify_request(&self.verifier, &req).await?;
        req.extensions_mut().insert(token);
        self.inner.call(req).await
    }
}
