//! axum glue (feature `axum`): with [`crate::tower::VerifyLayer`] on the router, a handler
//! takes the verified [`AccessToken`] as an argument, and [`VerifyError`] is a response, so
//! `token.require_role("admin")?` answers 403 by itself.

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;

use crate::{AccessToken, VerifyError};

impl<S: Send + Sync> FromRequestParts<S> for AccessToken {
    type Rejection = VerifyError;

    /// The token the layer verified; without the layer, every request is refused as if it
    /// carried no token.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<AccessToken>()
            .cloned()
            .ok_or(VerifyError::Missing)
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        crate::tower::error_response(&self)
    }
}
