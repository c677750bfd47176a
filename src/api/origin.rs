//! Where a request came from, for the audit trail and the failed-login limits: the client's
//! address and `X-Request-Id`.

use poem::Request;

use crate::audit::Origin;
use crate::security::TrustedProxies;

/// The header that carries a request's id, set by the caller or by the request-id middleware.
const REQUEST_ID: &str = "x-request-id";

/// The client's IP address (the port says nothing about who called) and the request id. The
/// peer is the client unless it is one of the trusted proxies (request data set by
/// `startup::routes`); then `X-Forwarded-For` says who is behind it.
pub fn origin(req: &Request) -> Origin {
    let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
    let source = match req.data::<TrustedProxies>() {
        Some(proxies) => {
            let hops = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok());
            proxies.client_address(peer, hops)
        }
        None => peer.map(|ip| ip.to_canonical()),
    };
    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
    Origin::new(source.map(|ip| ip.to_string()), request_id)
}
