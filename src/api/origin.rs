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
    let trusted = req.data::<TrustedProxies>();
    if req.headers().contains_key("x-forwarded-for")
        && trusted.is_none_or(|proxies| peer.is_some_and(|ip| !proxies.trusts(ip.to_canonical())))
    {
        warn_untrusted_forwarding(peer);
    }
    let source = match trusted {
        Some(proxies) => {
            // Bytes that are not text are kept (as replacement characters), not the whole
            // header dropped: the hops a trusted proxy appended after them still count.
            let values: Vec<std::borrow::Cow<'_, str>> = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()))
                .collect();
            proxies.client_address(peer, values.iter().map(AsRef::as_ref))
        }
        None => peer.map(|ip| ip.to_canonical()),
    };
    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok());
    Origin::new(source.map(|ip| ip.to_string()), request_id)
}

/// A proxy that sets `X-Forwarded-For` but is not in `security.trusted_proxies` makes every
/// request count against its own address in the failed-login limits. Said once per process,
/// not per request.
fn warn_untrusted_forwarding(peer: Option<std::net::IpAddr>) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            peer = ?peer,
            "a request carries X-Forwarded-For from a peer that is not a trusted proxy: the \
             header is ignored and the limits count the peer's address; if this peer is your \
             proxy, add it to security.trusted_proxies"
        );
    });
}
