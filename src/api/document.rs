//! What the OpenAPI document says of every operation at once: the headers that the middleware
//! puts on every answer, whichever operation made it.

use std::collections::HashMap;

use poem::endpoint::BoxEndpoint;
use poem::http::Method;
use poem_openapi::OpenApi;
use poem_openapi::registry::{MetaApi, MetaHeader, MetaResponse, Registry};
use poem_openapi::types::Type;

/// The API `A`, documented with the headers every answer carries.
pub struct Documented<A>(pub A);

impl<A: OpenApi> OpenApi for Documented<A> {
    fn meta() -> Vec<MetaApi> {
        let mut apis = A::meta();
        let responses = apis
            .iter_mut()
            .flat_map(|api| api.paths.iter_mut())
            .flat_map(|path| path.operations.iter_mut())
            .flat_map(|operation| operation.responses.responses.iter_mut());
        for response in responses {
            add_common_headers(response);
        }
        apis
    }

    fn register(registry: &mut Registry) {
        A::register(registry);
    }

    fn add_routes(self, route_table: &mut HashMap<String, HashMap<Method, BoxEndpoint<'static>>>) {
        self.0.add_routes(route_table);
    }
}

const REQUEST_ID: &str = "X-REQUEST-ID";
const CACHE_CONTROL: &str = "CACHE-CONTROL";

/// `X-Request-Id` (set by `api::observe` or the JWKS lane) and, unless the operation documents
/// its own, `Cache-Control: no-store` (set by `api::middleware`).
fn add_common_headers(response: &mut MetaResponse) {
    let has = |response: &MetaResponse, name: &str| {
        response
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case(name))
    };
    if !has(response, CACHE_CONTROL) {
        response.headers.push(MetaHeader {
            name: CACHE_CONTROL.to_owned(),
            description: Some("`no-store`.".to_owned()),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        });
    }
    if !has(response, REQUEST_ID) {
        response.headers.push(MetaHeader {
            name: REQUEST_ID.to_owned(),
            description: Some(
                "The request's id, also on every log line of the request: the caller's \
                 `X-Request-Id` when it is 1 to 128 letters, digits and `-_.:=+/@`, else a new \
                 one."
                    .to_owned(),
            ),
            required: true,
            deprecated: false,
            schema: String::schema_ref(),
        });
    }
}
