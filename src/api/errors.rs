//! The one place where service errors become HTTP answers.
//!
//! OAuth endpoints answer in RFC 6749 §5.2 form and bearer-protected ones in RFC 6750 §3 form;
//! both are `{"error": ..., "error_description": ...}` bodies, so one type carries them all.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::oauth::AuthError;

/// An error answer (RFC 6749 §5.2, RFC 6750 §3).
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// A machine-readable error code, such as `invalid_grant`.
    pub error: String,
    /// A human-readable explanation.
    #[oai(skip_serializing_if_is_none)]
    pub error_description: Option<String>,
}

impl ErrorBody {
    pub fn new(error: &str, description: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: error.to_owned(),
            error_description: Some(description.into()),
        })
    }
}

/// Every error an endpoint can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed, or the grant, scope or audience is refused.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Client authentication failed (`invalid_client`, Basic challenge) or the bearer token is
    /// missing, invalid or revoked (`invalid_token`, Bearer challenge).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The caller is authenticated but may not do this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// The resource does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource exists already.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request body is larger than the service accepts (`server.max_body_bytes`).
    #[oai(status = 413)]
    #[allow(dead_code)] // answered by the middleware (api::middleware); documented here
    PayloadTooLarge(Json<ErrorBody>),
    /// The request body's `Content-Type` is missing or not one the operation accepts.
    #[oai(status = 415)]
    #[allow(dead_code)] // answered by poem-openapi's body extractors; documented here
    UnsupportedMediaType(Json<ErrorBody>),
    /// Too many attempts; retry after the number of seconds in `Retry-After`.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// An unexpected failure; the details are in the service's log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency is unavailable for the moment; retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

/// The challenge sent with `invalid_client`.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"latchkey\", charset=\"UTF-8\"";

/// An RFC 6750 §3 challenge.
pub fn bearer_challenge(error: Option<(&str, &str)>) -> String {
    match error {
        None => "Bearer realm=\"latchkey\"".to_owned(),
        Some((code, description)) => format!(
            "Bearer realm=\"latchkey\", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ),
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        let bad = |code: &str| ApiError::BadRequest(ErrorBody::new(code, message.clone()));
        match error {
            AuthError::InvalidRequest(_) => bad("invalid_request"),
            AuthError::InvalidGrant(_) => bad("invalid_grant"),
            AuthError::UnauthorizedClient(_) => bad("unauthorized_client"),
            AuthError::UnsupportedGrantType(_) => bad("unsupported_grant_type"),
            AuthError::InvalidScope(_) => bad("invalid_scope"),
            AuthError::InvalidTarget(_) => bad("invalid_target"),
            AuthError::InvalidClient(_) => ApiError::Unauthorized(
                ErrorBody::new("invalid_client", message),
                BASIC_CHALLENGE.to_owned(),
            ),
            AuthError::InvalidToken(_) => ApiError::Unauthorized(
                ErrorBody::new("invalid_token", message.clone()),
                bearer_challenge(Some(("invalid_token", &message))),
            ),
            AuthError::Forbidden(_) => {
                ApiError::Forbidden(ErrorBody::new("access_denied", message))
            }
            AuthError::NotFound(_) => ApiError::NotFound(ErrorBody::new("not_found", message)),
            AuthError::Conflict(_) => ApiError::Conflict(ErrorBody::new("conflict", message)),
            AuthError::TooManyRequests { retry_after } => ApiError::TooManyRequests(
                ErrorBody::new("too_many_requests", "too many attempts; retry later"),
                retry_after,
            ),
            AuthError::Unavailable {
                reason,
                retry_after,
            } => ApiError::Unavailable(
                ErrorBody::new("temporarily_unavailable", reason),
                retry_after,
            ),
            AuthError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                ApiError::Internal(ErrorBody::new("server_error", "an internal error occurred"))
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
