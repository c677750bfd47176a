//! The service's one error type, shared by the account and OAuth layers. The API maps each
//! variant to one HTTP answer in `api::errors`; nothing else decides statuses.

use crate::credentials::PasswordError;
use crate::keys::KeyError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// RFC 6749 `invalid_request`: missing or malformed parameters.
    #[error("{0}")]
    InvalidRequest(String),
    /// RFC 6749 `invalid_client`: client authentication failed.
    #[error("{0}")]
    InvalidClient(String),
    /// RFC 6749 `invalid_grant`: bad credentials, or a refresh token that is not live.
    #[error("{0}")]
    InvalidGrant(String),
    /// RFC 6749 `unauthorized_client`: the client may not use this grant.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// RFC 6749 `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// RFC 6749 `invalid_scope`: wider than the client or the grant allows.
    #[error("{0}")]
    InvalidScope(String),
    /// RFC 8707 `invalid_target`: an audience the client may not ask for.
    #[error("{0}")]
    InvalidTarget(String),
    /// RFC 6750 `invalid_token`: a bearer token that is missing, invalid or revoked.
    #[error("{0}")]
    InvalidToken(String),
    /// RFC 6750 `insufficient_scope`: a valid bearer token without a scope the resource
    /// needs (`required`, space-separated: any one of them will do).
    #[error("{reason}")]
    InsufficientScope { reason: String, required: String },
    /// The caller is known but may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The resource to change exists already.
    #[error("{0}")]
    Conflict(String),
    /// The resource asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Too many attempts; retry after the given seconds.
    #[error("too many attempts")]
    TooManyRequests { retry_after: u64 },
    /// A dependency (store, hashing pool) cannot serve now; retry after the given seconds.
    #[error("{reason}")]
    Unavailable { reason: String, retry_after: u64 },
    /// A bug, corrupt data or a failed dependency. Logged with its source; answered without it.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ServiceError {
    /// Whether the error is about what was asked (a bad value, a name taken) rather than the
    /// service's state: a batch reports these per item and goes on.
    pub fn is_about_the_request(&self) -> bool {
        matches!(
            self,
            ServiceError::InvalidRequest(_) | ServiceError::Conflict(_) | ServiceError::NotFound(_)
        )
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "store unavailable");
                ServiceError::Unavailable {
                    reason: "the token store is unavailable".into(),
                    retry_after: 2,
                }
            }
            StoreError::Conflict => ServiceError::Conflict("it exists already".into()),
            StoreError::NameTaken(kind) => ServiceError::Conflict(format!(
                "the name belongs to a {}: users and clients never share a name",
                kind.as_str()
            )),
            StoreError::NotFound => ServiceError::NotFound("not found".into()),
            StoreError::InvalidCursor => ServiceError::InvalidRequest("unknown cursor".into()),
            error @ StoreError::Internal(_) => ServiceError::Internal(Box::new(error)),
        }
    }
}

impl From<PasswordError> for ServiceError {
    fn from(error: PasswordError) -> Self {
        match error {
            PasswordError::Busy => ServiceError::Unavailable {
                reason: "too many logins at once".into(),
                retry_after: 1,
            },
            error @ (PasswordError::Internal(_) | PasswordError::Unreadable(_)) => {
                ServiceError::Internal(Box::new(error))
            }
        }
    }
}

impl From<KeyError> for ServiceError {
    fn from(error: KeyError) -> Self {
        ServiceError::Internal(Box::new(error))
    }
}
