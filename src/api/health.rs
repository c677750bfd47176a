//! Liveness and readiness.

use std::sync::Arc;

use poem::Request;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{Value, json};

use super::ApiTags;
use super::examples::{ExampleValue, JsonWith};
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

/// The examples of the health documents.
pub struct Live;
pub struct Ready;
pub struct NotReady;

impl ExampleValue for Live {
    fn value() -> Value {
        json!({ "status": "ok" })
    }
}

impl ExampleValue for Ready {
    fn value() -> Value {
        json!({ "status": "ready" })
    }
}

impl ExampleValue for NotReady {
    fn value() -> Value {
        json!({ "status": "unavailable", "reason": "store unavailable: connection refused" })
    }
}

#[derive(ApiResponse)]
pub enum LivenessResponse {
    /// The process serves requests.
    #[oai(status = 200)]
    Live(JsonWith<Health, Live>),
}

#[derive(ApiResponse)]
pub enum ReadinessResponse {
    /// The store answers and a signing key is loaded.
    #[oai(status = 200)]
    Ready(JsonWith<Health, Ready>),
    /// The store does not answer, or start-up waits for it still; ask again after
    /// `Retry-After` seconds.
    #[oai(status = 503)]
    NotReady(
        JsonWith<Health, NotReady>,
        /// Seconds to wait before asking again.
        #[oai(header = "Retry-After")]
        u64,
    ),
}

pub struct HealthApi {
    pub authority: Arc<Authority>,
}

/// Start-up work still waiting for the store: creating the bootstrap admin when the store did
/// not answer at start-up. Until it is done, `/readyz` answers 503. Given to the routes as
/// request data; without it (a service assembled by tests or fuzzers) nothing is pending.
#[derive(Clone, Default)]
pub struct StartUp {
    pending: Arc<std::sync::atomic::AtomicBool>,
}

impl StartUp {
    /// Start-up work that is still to be done.
    pub fn pending() -> StartUp {
        let start_up = StartUp::default();
        start_up
            .pending
            .store(true, std::sync::atomic::Ordering::Release);
        start_up
    }

    pub fn done(&self) {
        self.pending
            .store(false, std::sync::atomic::Ordering::Release);
    }

    pub fn is_pending(&self) -> bool {
        self.pending.load(std::sync::atomic::Ordering::Acquire)
    }
}

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    ///
    /// 200 while the process serves requests.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> LivenessResponse {
        LivenessResponse::Live(JsonWith::new(Health {
            status: "ok".into(),
            reason: None,
        }))
    }

    /// Readiness
    ///
    /// 200 when the store answers, a signing key is loaded and start-up is complete; 503
    /// otherwise. The service starts when the store does not answer, and is not ready until
    /// it does, its token lifetimes are recorded there and the configured bootstrap admin (if
    /// any) has been created.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, req: &Request) -> ReadinessResponse {
        if req.data::<StartUp>().is_some_and(StartUp::is_pending) {
            return ReadinessResponse::NotReady(
                JsonWith::new(Health {
                    status: "unavailable".into(),
                    reason: Some(
                        "starting: waiting for the store to record the token lifetimes and \
                         create the bootstrap admin, if one is configured"
                            .into(),
                    ),
                }),
                2,
            );
        }
        match self.authority.store().ping().await {
            Ok(()) => ReadinessResponse::Ready(JsonWith::new(Health {
                status: "ready".into(),
                reason: None,
            })),
            Err(error) => ReadinessResponse::NotReady(
                JsonWith::new(Health {
                    status: "unavailable".into(),
                    reason: Some(error.to_string()),
                }),
                2,
            ),
        }
    }
}
