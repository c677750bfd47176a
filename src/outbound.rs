//! Where the service may connect out to. A client's `jwks_uri` is the one URL the service
//! fetches that someone else chose, and its host's DNS is that someone's too: without a check,
//! a name can point at the cloud's metadata service, at the pod network or at the host's own
//! ports, and change between registration and fetch (DNS rebinding). So the addresses are
//! checked when the connection is made, after resolution: public unicast addresses only, plus
//! the blocks an operator allows (`security.jwks_uri_networks`, for key servers inside the
//! cluster). A URL that names a loopback address itself (`127.0.0.1`, `[::1]`, `localhost`) is
//! an administrator's explicit choice for a key server on the same host, and is let through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::security::AddressBlocks;

/// The addresses outbound fetches may reach.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: AddressBlocks,
}

impl OutboundPolicy {
    pub fn new(allowed: AddressBlocks) -> OutboundPolicy {
        OutboundPolicy { allowed }
    }

    /// Whether a connection to `ip` may be made: a public unicast address, or one in the
    /// allowed blocks.
    pub fn admits(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allowed.contains(ip)
    }

    /// Checks a URL's host when it is an address, which no resolver sees: a loopback address
    /// named in the URL goes ahead, any other must be admitted. Names are checked as they
    /// resolve (see [`OutboundPolicy::resolver`]).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let host = url.host_str().unwrap_or_default();
        let Ok(ip) = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        else {
            return Ok(());
        };
        if ip.to_canonical().is_loopback() || self.admits(ip) {
            Ok(())
        } else {
            Err(format!(
                "{ip} is not a public address, nor in security.jwks_uri_networks"
            ))
        }
    }

    /// A resolver for reqwest that keeps only the addresses this policy admits: the check is
    /// made on the very addresses the connection is made to.
    pub fn resolver(self: &Arc<Self>) -> Arc<GuardedResolver> {
        Arc::new(GuardedResolver {
            policy: Arc::clone(self),
        })
    }
}

/// Resolves with the system's resolver, then drops the addresses the policy refuses.
#[derive(Debug)]
pub struct GuardedResolver {
    policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let kept = policy.keep(&host, found);
            if kept.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address, nor to one in \
                     security.jwks_uri_networks"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

impl OutboundPolicy {
    /// The addresses of `host` that may be connected to: `localhost` is a loopback name the
    /// administrator wrote, so its loopback addresses stay.
    fn keep(&self, host: &str, found: impl Iterator<Item = SocketAddr>) -> Vec<SocketAddr> {
        let local_name = host.eq_ignore_ascii_case("localhost");
        found
            .filter(|addr| (local_name && addr.ip().is_loopback()) || self.admits(addr.ip()))
            .collect()
    }
}

/// Whether `ip` is a public unicast address: none of the special-purpose blocks of the IANA
/// registries (RFC 6890 and later) that lead into a private network, the host itself, or
/// nowhere. IPv6 forms that carry an IPv4 address (mapped, NAT64, 6to4) are judged by it.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240; // reserved
    !special
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    let embedded_v4 = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match segments {
        // NAT64 (RFC 6052): the IPv4 address in the last 32 bits is where it leads.
        [0x64, 0xff9b, 0, 0, 0, 0, high, low] => return is_public_v4(embedded_v4(high, low)),
        // 6to4 (RFC 3056): the IPv4 address follows the prefix.
        [0x2002, high, low, ..] => return is_public_v4(embedded_v4(high, low)),
        _ => {}
    }
    let first = segments[0];
    let special = ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first & 0xffc0) == 0xfec0 // site-local, deprecated but routed by some
        || (first == 0x2001 && segments[1] == 0x0db8) // documentation
        || (first == 0x2001 && segments[1] < 0x0200) // IETF protocol assignments, Teredo
        || (first == 0x0064 && segments[1] == 0xff9b) // local-use NAT64 (RFC 8215)
        || (first == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only
        || segments[..5] == [0, 0, 0, 0, 0]; // IPv4-compatible and other deprecated forms
    !special
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn addresses_that_lead_into_a_private_network_or_the_host_are_not_public() {
        for text in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:0a00:0001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::1",
            "::10.0.0.1",
        ] {
            assert!(!is_public(ip(text)), "{text} counted as public");
        }
    }

    #[test]
    fn public_unicast_addresses_are_public() {
        for text in [
            "1.1.1.1",
            "93.184.215.14",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(is_public(ip(text)), "{text} counted as private");
        }
    }

    #[test]
    fn allowed_blocks_are_admitted_beside_public_addresses() {
        let allowed = AddressBlocks::parse(&["10.20.0.0/16".to_owned()]).unwrap();
        let policy = OutboundPolicy::new(allowed);
        assert!(policy.admits(ip("10.20.3.4")));
        assert!(!policy.admits(ip("10.21.3.4")));
        assert!(policy.admits(ip("1.1.1.1")));
        assert!(!OutboundPolicy::default().admits(ip("10.20.3.4")));
    }

    #[test]
    fn a_url_naming_an_address_is_checked_and_a_loopback_one_goes_ahead() {
        let policy = OutboundPolicy::default();
        let check = |url: &str| policy.check_url(&reqwest::Url::parse(url).unwrap());
        assert!(check("https://169.254.169.254/latest/meta-data").is_err());
        assert!(check("https://[fd00::1]/jwks").is_err());
        assert!(check("https://[::ffff:10.0.0.1]/jwks").is_err());
        assert!(check("http://127.0.0.1:8080/jwks").is_ok());
        assert!(check("http://[::1]:8080/jwks").is_ok());
        assert!(check("https://1.1.1.1/jwks").is_ok());
        assert!(
            check("https://keys.example.com/jwks").is_ok(),
            "names resolve later"
        );
    }

    #[test]
    fn a_name_keeps_only_admitted_addresses_and_localhost_its_loopback_ones() {
        let policy = OutboundPolicy::default();
        let found = || {
            ["127.0.0.1:0", "10.0.0.1:0", "1.1.1.1:0"]
                .map(|a| a.parse::<SocketAddr>().unwrap())
                .into_iter()
        };
        let kept = policy.keep("keys.example.com", found());
        assert_eq!(kept, ["1.1.1.1:0".parse::<SocketAddr>().unwrap()]);
        let kept = policy.keep("localhost", found());
        assert_eq!(kept.len(), 2, "{kept:?}");
    }

    #[tokio::test]
    async fn a_name_that_resolves_only_to_private_addresses_is_refused() {
        use reqwest::dns::Resolve;
        let resolver = Arc::new(OutboundPolicy::default()).resolver();
        // The system resolves an address to itself: a name for loopback only, without a hosts
        // file entry to depend on. `localhost` itself is exempt.
        let name: reqwest::dns::Name = "127.0.0.1".parse().unwrap();
        let answer = resolver.resolve(name).await;
        assert!(answer.is_err(), "a loopback-only name was let through");
    }
}
