//! The one place where service errors become HTTP answers.
//!
//! OAuth endpoints answer in RFC 6749 §5.2 form and bearer-protected ones in RFC 6750 §3 form;
//! both are `{"error": ..., "error_description": ...}` bodies, so one type carries them all.
//! Which of them an operation can give, and with which example, each operation says in its
//! return type (`Answer<T, L>`, see [`ErrorList`]).

use std::marker::PhantomData;

use poem::{IntoResponse, Response};
use poem_openapi::payload::Json;
use poem_openapi::registry::{
    MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{Example, Type};
use poem_openapi::{ApiResponse, Object};

use crate::error::ServiceError;

/// An error answer (RFC 6749 §5.2, RFC 6750 §3).
#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ErrorBody {
    /// A machine-readable error code, such as `invalid_grant`.
    pub error: String,
    /// A human-readable explanation.
    #[oai(skip_serializing_if_is_none)]
    pub error_description: Option<String>,
}

impl Example for ErrorBody {
    fn example() -> Self {
        ErrorBody {
            error: "invalid_request".into(),
            error_description: Some("grant_type is required".into()),
        }
    }
}

impl ErrorBody {
    pub fn new(error: &str, description: impl Into<String>) -> Json<ErrorBody> {
        Json(ErrorBody {
            error: error.to_owned(),
            error_description: Some(description.into()),
        })
    }
}

/// Every error a handler can answer with. What each operation documents of them is its
/// [`ErrorList`].
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed, or the grant, scope or audience is refused.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Client authentication failed (`invalid_client`, Basic challenge) or the bearer token is
    /// missing, invalid or revoked (`invalid_token`, Bearer challenge).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The caller is authenticated but may not do this (`access_denied`), or the bearer token
    /// lacks a scope the operation needs (`insufficient_scope`, with a Bearer challenge).
    #[oai(status = 403)]
    Forbidden(
        Json<ErrorBody>,
        #[oai(header = "WWW-Authenticate")] Option<String>,
    ),
    /// The resource does not exist.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource exists already.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
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
            quotable(description)
        ),
    }
}

/// The RFC 6750 §3.1 challenge of `insufficient_scope`, naming the scope the resource needs.
pub fn insufficient_scope_challenge(description: &str, scope: &str) -> String {
    format!(
        "{}, scope=\"{}\"",
        bearer_challenge(Some(("insufficient_scope", description))),
        quotable(scope)
    )
}

/// `value` fit for a quoted-string: no quote or backslash of its own.
fn quotable(value: &str) -> String {
    value.replace(['"', '\\'], "'")
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        let message = error.to_string();
        let bad = |code: &str| ApiError::BadRequest(ErrorBody::new(code, message.clone()));
        match error {
            ServiceError::InvalidRequest(_) => bad("invalid_request"),
            ServiceError::InvalidGrant(_) => bad("invalid_grant"),
            ServiceError::UnauthorizedClient(_) => bad("unauthorized_client"),
            ServiceError::UnsupportedGrantType(_) => bad("unsupported_grant_type"),
            ServiceError::InvalidScope(_) => bad("invalid_scope"),
            ServiceError::InvalidTarget(_) => bad("invalid_target"),
            ServiceError::InvalidClient(_) => ApiError::Unauthorized(
                ErrorBody::new("invalid_client", message),
                BASIC_CHALLENGE.to_owned(),
            ),
            ServiceError::InvalidToken(_) => ApiError::Unauthorized(
                ErrorBody::new("invalid_token", message.clone()),
                bearer_challenge(Some(("invalid_token", &message))),
            ),
            ServiceError::InsufficientScope { required, .. } => ApiError::Forbidden(
                ErrorBody::new("insufficient_scope", message.clone()),
                Some(insufficient_scope_challenge(&message, &required)),
            ),
            ServiceError::Forbidden(_) => {
                ApiError::Forbidden(ErrorBody::new("access_denied", message), None)
            }
            ServiceError::NotFound(_) => ApiError::NotFound(ErrorBody::new("not_found", message)),
            ServiceError::Conflict(_) => ApiError::Conflict(ErrorBody::new("conflict", message)),
            ServiceError::TooManyRequests { retry_after } => ApiError::TooManyRequests(
                ErrorBody::new("too_many_requests", "too many attempts; retry later"),
                retry_after,
            ),
            ServiceError::Unavailable {
                reason,
                retry_after,
            } => ApiError::Unavailable(
                ErrorBody::new("temporarily_unavailable", reason),
                retry_after,
            ),
            ServiceError::Internal(source) => {
                tracing::error!(error = %source, "internal error");
                ApiError::Internal(ErrorBody::new("server_error", "an internal error occurred"))
            }
        }
    }
}

/// What a handler returns: `T`, or an error that the operation's [`ErrorList`] `L` documents.
pub type Answer<T, L> = Result<T, Refusal<L>>;

/// An [`ApiError`] answered by an operation whose document lists the errors of `L`.
pub struct Refusal<L>(ApiError, PhantomData<fn() -> L>);

impl<L> From<ApiError> for Refusal<L> {
    fn from(error: ApiError) -> Self {
        Refusal(error, PhantomData)
    }
}

impl<L> From<ServiceError> for Refusal<L> {
    fn from(error: ServiceError) -> Self {
        Refusal(error.into(), PhantomData)
    }
}

impl<L> IntoResponse for Refusal<L> {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl<L> From<Refusal<L>> for poem::Error {
    fn from(refusal: Refusal<L>) -> Self {
        poem::Error::from_response(refusal.0.into_response())
    }
}

impl<L: ErrorList> ApiResponse for Refusal<L> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: L::ERRORS.iter().map(ErrorDoc::meta).collect(),
        }
    }

    fn register(registry: &mut Registry) {
        ErrorBody::register(registry);
    }
}

/// The errors an operation can answer with, as its OpenAPI document lists them: every status
/// its handler, the extractors and the middleware can produce for it, each with an example.
pub trait ErrorList: Send + Sync + 'static {
    const ERRORS: &'static [ErrorDoc];
}

/// Declares `$name`, an [`ErrorList`] of the given [`ErrorDoc`]s.
macro_rules! error_list {
    ($(#[$doc:meta])* $name:ident: $($error:expr),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl $crate::api::errors::ErrorList for $name {
            const ERRORS: &'static [$crate::api::errors::ErrorDoc] = &[$($error),+];
        }
    };
}
pub(crate) use error_list;

/// A header that comes with an error answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorHeader {
    /// `Retry-After`, in seconds.
    RetryAfter,
    /// `WWW-Authenticate` with a Basic challenge (RFC 6749 §5.2 `invalid_client`).
    BasicChallenge,
    /// `WWW-Authenticate` with a Bearer challenge (RFC 6750 §3).
    BearerChallenge,
    /// `WWW-Authenticate` with a Bearer challenge, sent with `insufficient_scope` only.
    InsufficientScopeChallenge,
}

impl ErrorHeader {
    fn meta(self) -> MetaHeader {
        let required = self != ErrorHeader::InsufficientScopeChallenge;
        let (name, description, schema) = match self {
            ErrorHeader::RetryAfter => (
                "RETRY-AFTER",
                "Seconds to wait before trying again.",
                u64::schema_ref(),
            ),
            ErrorHeader::BasicChallenge => (
                "WWW-AUTHENTICATE",
                "`Basic realm=\"latchkey\", charset=\"UTF-8\"`",
                String::schema_ref(),
            ),
            ErrorHeader::BearerChallenge => (
                "WWW-AUTHENTICATE",
                "A Bearer challenge (RFC 6750 §3), such as `Bearer realm=\"latchkey\", \
                 error=\"invalid_token\", error_description=\"the token has been revoked\"`.",
                String::schema_ref(),
            ),
            ErrorHeader::InsufficientScopeChallenge => (
                "WWW-AUTHENTICATE",
                "With `insufficient_scope` only: a Bearer challenge (RFC 6750 §3.1) naming the \
                 scope needed, such as `Bearer realm=\"latchkey\", error=\"insufficient_scope\", \
                 error_description=\"the admin API needs scope admin\", scope=\"admin\"`.",
                String::schema_ref(),
            ),
        };
        MetaHeader {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            required,
            deprecated: false,
            schema,
        }
    }
}

/// One error answer as an operation documents it: its status, when it happens, an example body
/// and the header that comes with it.
#[derive(Debug, Clone, Copy)]
pub struct ErrorDoc {
    pub status: u16,
    pub description: &'static str,
    /// The example's `error`.
    pub error: &'static str,
    /// The example's `error_description`.
    pub error_description: &'static str,
    pub header: Option<ErrorHeader>,
}

impl ErrorDoc {
    /// An answer with no particular header.
    pub const fn new(
        status: u16,
        description: &'static str,
        error: &'static str,
        error_description: &'static str,
    ) -> ErrorDoc {
        ErrorDoc {
            status,
            description,
            error,
            error_description,
            header: None,
        }
    }

    /// The same answer with `header`.
    pub const fn with(self, header: ErrorHeader) -> ErrorDoc {
        ErrorDoc {
            header: Some(header),
            ..self
        }
    }

    fn meta(&self) -> MetaResponse {
        let example = serde_json::json!({
            "error": self.error,
            "error_description": self.error_description,
        });
        MetaResponse {
            description: self.description,
            status: Some(self.status),
            status_range: None,
            content: vec![MetaMediaType {
                content_type: JSON,
                schema: with_example(ErrorBody::schema_ref(), example),
            }],
            headers: self.header.map(ErrorHeader::meta).into_iter().collect(),
        }
    }
}

/// The media type of every JSON answer, as poem-openapi's `Json` sends it.
const JSON: &str = "application/json; charset=utf-8";

/// `schema` with an example of its own: `allOf` the schema alone, which generators (such as
/// openapi-python-client) resolve to the schema's own type rather than a new one.
pub fn with_example(schema: MetaSchemaRef, example: serde_json::Value) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        all_of: vec![schema],
        example: Some(example),
        ..MetaSchema::ANY
    }))
}

// The answers that many operations share. Examples are answers the service really gives.

/// 401 for client authentication on the OAuth endpoints.
pub const INVALID_CLIENT: ErrorDoc = ErrorDoc::new(
    401,
    "Client authentication failed (`invalid_client`): no client credentials, an unknown \
     client, a wrong secret, malformed Basic credentials, a confidential client that sent \
     no secret, or a `client_assertion` that does not verify (wrong key, `alg`, `iss`/`sub`, \
     `aud` or `exp`, a `jti` used before, a key set that cannot be fetched).",
    "invalid_client",
    "client authentication failed",
)
.with(ErrorHeader::BasicChallenge);

/// 401 for bearer-protected endpoints.
pub const INVALID_TOKEN: ErrorDoc = ErrorDoc::new(
    401,
    "The bearer access token is missing, malformed, expired or revoked, its user is disabled \
     or gone, or its audience (`aud`) is not the one this operation takes (`invalid_token`).",
    "invalid_token",
    "the token has been revoked",
)
.with(ErrorHeader::BearerChallenge);

/// 401 for the admin API, which takes only tokens for its own audience.
pub const NOT_AN_ADMIN_TOKEN: ErrorDoc = ErrorDoc {
    description: "The bearer access token is missing, malformed, expired or revoked, its user is \
                  disabled or gone, or it is not a token for the admin API: its `aud` is not \
                  the admin audience (`admin_audience` in the metadata), which only tokens asked \
                  for with an admin scope (`scope=admin`) carry (`invalid_token`).",
    error_description: "the token is not for the admin API: ask for scope admin to get one \
                        with audience 'latchkey-admin'",
    ..INVALID_TOKEN
};

/// 403 for the admin API.
pub const NOT_ADMIN: ErrorDoc = ErrorDoc::new(
    403,
    "The token is for the admin API but its `scope` has no admin scope (`insufficient_scope`, \
     with a `WWW-Authenticate` challenge naming the scope), or its user does not have role \
     `admin` now, or it is a client's own (`client_credentials`) token (`access_denied`).",
    "access_denied",
    "the admin API needs role admin",
)
.with(ErrorHeader::InsufficientScopeChallenge);

/// 413, for operations that read a request body.
pub const BODY_TOO_LARGE: ErrorDoc = ErrorDoc::new(
    413,
    "The request body is larger than `server.max_body_bytes` (64 KiB by default).",
    "invalid_request",
    "the request body exceeds 65536 bytes",
);

/// 415, for operations that read a request body and are not OAuth endpoints (those answer a
/// body they cannot read with RFC 6749's `400 invalid_request`).
pub const UNSUPPORTED_MEDIA_TYPE: ErrorDoc = ErrorDoc::new(
    415,
    "The request has a body whose `Content-Type` the operation does not take.",
    "invalid_request",
    "the `Content-Type` requested by the client is not supported: text/plain",
);

/// 429 from the failed-login, client-authentication and registration limits.
pub const THROTTLED: ErrorDoc = ErrorDoc::new(
    429,
    "Too many attempts for this username or from this address (failed logins or client \
     authentications, or registrations); retry after `Retry-After` seconds.",
    "too_many_requests",
    "too many attempts; retry later",
)
.with(ErrorHeader::RetryAfter);

/// 500.
pub const INTERNAL: ErrorDoc = ErrorDoc::new(
    500,
    "An unexpected failure, such as corrupt data in the store; the details are in the service's \
     log, never in the answer.",
    "server_error",
    "an internal error occurred",
);

/// 503 for operations that use the store (and change nothing, or nothing a retry cares about).
pub const UNAVAILABLE: ErrorDoc = ErrorDoc::new(
    503,
    "The token store does not answer, or the request took longer than \
     `server.request_timeout`; retry after `Retry-After` seconds.",
    "temporarily_unavailable",
    "the token store is unavailable",
)
.with(ErrorHeader::RetryAfter);

/// The 503 of an operation that changes the store, saying which of its 503s may come after
/// the change was made and what a retry answers then (`$then`). With `hashing`, for operations
/// that also hash a password.
macro_rules! unavailable_after_change {
    (hashing, $then:literal) => {
        $crate::api::errors::unavailable_after_change!(
            @ "The token store does not answer, password hashing is saturated, or the request \
               took longer than `server.request_timeout`; retry after `Retry-After` seconds. \
               `too many logins at once` (hashing saturated) always comes before any change. ",
            "too many logins at once",
            $then
        )
    };
    ($then:literal) => {
        $crate::api::errors::unavailable_after_change!(
            @ "The token store does not answer, or the request took longer than \
               `server.request_timeout`; retry after `Retry-After` seconds. ",
            "the token store is unavailable",
            $then
        )
    };
    (@ $causes:literal, $example:literal, $then:literal) => {
        $crate::api::errors::ErrorDoc::new(
            503,
            concat!(
                $causes,
                "`the token store is unavailable` and `the request took longer than N s` may \
                 come after the change was made (the store took it, but its answer came too \
                 late): ",
                $then
            ),
            "temporarily_unavailable",
            $example,
        )
        .with($crate::api::errors::ErrorHeader::RetryAfter)
    };
}
pub(crate) use unavailable_after_change;
