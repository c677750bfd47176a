//! Where a request came from, for the audit trail: the peer address and `X-Request-Id`.

use poem::Request;

use crate::audit::Origin;

/// The header that carries a request's id, set by the caller or by the request-id middleware.
const REQUEST_ID: &str = "x-request-id";

/// The peer's IP address (the port says nothing about who called) and the request id.
pub fn origin(req: &Request) -> Origin {
    let source = req
        .remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string());
    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
    Origin::new(source, request_id)
}
