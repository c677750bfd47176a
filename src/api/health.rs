//! Liveness and readiness.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;
use crate::oauth::Authority;

/// The state of the service.
#[derive(Debug, Object)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    pub status: String,
    /// Why the service is not ready, when it is not.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
}

#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// The store answers and a signing key is loaded.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// The store does not answer.
    #[oai(status = 503)]
    NotReady(Json<Health>, #[oai(header = "Retry-After")] u64),
}

pub struct HealthApi {
    pub authority: Arc<Authority>,
}

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
            reason: None,
        })
    }

    /// Readiness
    ///
    /// 200 when the store answers and a signing key is loaded; 503 otherwise.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self) -> ReadinessResponse {
        match self.authority.store().ping().await {
            Ok(()) => ReadinessResponse::Ready(Json(Health {
                status: "ready".into(),
                reason: None,
            })),
            Err(error) => ReadinessResponse::NotReady(
                Json(Health {
                    status: "unavailable".into(),
                    reason: Some(error.to_string()),
                }),
                2,
            ),
        }
    }
}
