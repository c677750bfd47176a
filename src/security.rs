//! The `security` settings and what enforces them at the edge: which address a request comes
//! from (behind trusted proxies), and the thresholds of the failed-login limits that
//! `oauth::throttle` applies.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Brute-force limits, trusted proxies and CORS. A limit of 0 turns that limit off.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecuritySettings {
    /// Failed password logins for one username from one address (an IPv6 /64), per window,
    /// before that username is locked for that address (429).
    pub max_failed_logins_per_user_address: u64,
    /// Failed password logins for one username from all addresses, per window, before each
    /// further attempt must wait twice as long as the one before (1 s, 2 s, 4 s, ... up to
    /// `login_backoff_max`); addresses where the user signed in before are not slowed down.
    pub max_failed_logins_per_user: u64,
    /// The longest wait between attempts for a username under attack, in seconds.
    pub login_backoff_max: u64,
    /// Failed password logins from one address, per window, before 429.
    pub max_failed_logins_per_address: u64,
    /// Failed client authentications from one address, per window, before 429. Never per
    /// client id: anyone could then lock a service out.
    pub max_failed_client_auths_per_address: u64,
    /// Seconds a window lasts from its first failure.
    pub failed_login_window: u64,
    /// Proxies whose `X-Forwarded-For` is believed, as CIDR blocks (`10.0.0.0/8`) or single
    /// addresses: a list, or one comma-separated string as an environment variable gives it.
    #[serde(default, deserialize_with = "joined_list")]
    pub trusted_proxies: Vec<String>,
    /// Origins allowed to call the API from a browser; empty (the default) turns CORS off.
    #[serde(default, deserialize_with = "joined_list")]
    pub cors_origins: Vec<String>,
    /// Private address blocks a client's `jwks_uri` may lead to, beside public addresses (a key
    /// server inside the cluster, say); as `trusted_proxies` is given. Empty by default: a
    /// `jwks_uri` whose name resolves into a private network, the host or link-local space
    /// (a cloud's metadata service) is not fetched.
    #[serde(default, deserialize_with = "joined_list")]
    pub jwks_uri_networks: Vec<String>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            max_failed_logins_per_user_address: 10,
            max_failed_logins_per_user: 20,
            login_backoff_max: 60,
            max_failed_logins_per_address: 100,
            max_failed_client_auths_per_address: 100,
            failed_login_window: 900,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            jwks_uri_networks: Vec::new(),
        }
    }
}

impl SecuritySettings {
    /// Checks the values; the error names the key at fault.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.failed_login_window == 0 || self.failed_login_window > 86_400 {
            return Err((
                "security.failed_login_window",
                "must be between 1 and 86400 seconds".into(),
            ));
        }
        if self.login_backoff_max == 0 || self.login_backoff_max > self.failed_login_window {
            return Err((
                "security.login_backoff_max",
                "must be between 1 and security.failed_login_window seconds".into(),
            ));
        }
        TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ("security.trusted_proxies", e))?;
        AddressBlocks::parse(&self.jwks_uri_networks)
            .map_err(|e| ("security.jwks_uri_networks", e))?;
        for origin in &self.cors_origins {
            let scheme_ok = origin.starts_with("https://") || origin.starts_with("http://");
            if !scheme_ok || origin.ends_with('/') || origin.contains('*') {
                return Err((
                    "security.cors_origins",
                    format!("'{origin}' is not an origin such as https://app.example.com"),
                ));
            }
        }
        Ok(())
    }
}

impl SecuritySettings {
    /// Settings that work but weaken the defences, with their keys.
    pub fn warnings(&self) -> Vec<(&'static str, String)> {
        let mut warnings = Vec::new();
        for entry in &self.trusted_proxies {
            if Cidr::parse(entry.trim()).is_some_and(|cidr| cidr.is_wide()) {
                warnings.push((
                    "security.trusted_proxies",
                    format!(
                        "'{entry}' trusts a large part of the internet as proxies: any client \
                         there can name its own address in X-Forwarded-For, and so escape the \
                         per-address limits and hide from the audit trail; list your proxies' \
                         addresses only"
                    ),
                ));
            }
        }
        let limits = [
            (
                "security.max_failed_logins_per_user_address",
                self.max_failed_logins_per_user_address,
                "password guesses per username from one address",
            ),
            (
                "security.max_failed_logins_per_user",
                self.max_failed_logins_per_user,
                "how fast a username is guessed at from many addresses",
            ),
            (
                "security.max_failed_logins_per_address",
                self.max_failed_logins_per_address,
                "password guesses per address",
            ),
            (
                "security.max_failed_client_auths_per_address",
                self.max_failed_client_auths_per_address,
                "client secret guesses per address",
            ),
        ];
        for (key, limit, what) in limits {
            if limit == 0 {
                warnings.push((key, format!("is 0: nothing limits {what}")));
            }
        }
        warnings
    }
}

/// Deserializes a list setting: a list in a file, or one string of items separated by spaces
/// or commas, as an environment variable gives it. It lives here, below `configuration`, so
/// that both reach it.
pub(crate) fn joined_list<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        Joined(String),
        // An environment value such as `007` or `true` arrives as a number or a switch; its text
        // as written replaces this reading afterwards (see `configuration::verbatim`).
        Integer(i64),
        Float(f64),
        Flag(bool),
    }
    let joined = match List::deserialize(deserializer)? {
        List::Many(list) => return Ok(list),
        List::Joined(joined) => joined,
        List::Integer(number) => number.to_string(),
        List::Float(number) => number.to_string(),
        List::Flag(flag) => flag.to_string(),
    };
    Ok(joined
        .split([' ', ','])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// An address block such as `10.0.0.0/8` or `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    /// Wider than any private network: IPv4 blocks wider than a /8 (`10.0.0.0/8` is the widest
    /// private one), IPv6 wider than a /7 (`fc00::/7`, unique local addresses).
    fn is_wide(&self) -> bool {
        let narrowest_private = if self.network.is_ipv4() { 8 } else { 7 };
        self.prefix < narrowest_private
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A list of address blocks, as the settings give them.
#[derive(Debug, Clone, Default)]
pub struct AddressBlocks(Vec<Cidr>);

impl AddressBlocks {
    pub fn parse(list: &[String]) -> Result<AddressBlocks, String> {
        list.iter()
            .map(|entry| {
                Cidr::parse(entry.trim())
                    .ok_or_else(|| format!("'{entry}' is not an address or CIDR block"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(AddressBlocks)
    }

    /// Whether `ip` is in one of the blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(AddressBlocks);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        AddressBlocks::parse(list).map(TrustedProxies)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The address of the client: the peer itself unless it is a trusted proxy; behind trusted
    /// proxies, the rightmost `X-Forwarded-For` hop that is not one of them. Hops further left
    /// were written by the client and prove nothing, so they are never used.
    /// `forwarded_for` holds the header's values in the order they arrived.
    pub fn client_address<'a>(
        &self,
        peer: Option<IpAddr>,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> Option<IpAddr> {
        let mut current = peer?.to_canonical();
        if !self.trusts(current) {
            return Some(current);
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|value| value.split(','))
            .collect();
        for hop in hops.iter().rev() {
            // A trusted proxy writes a valid address; anything else came from the client, so
            // the hop that passed it along is the client as far as anyone can tell.
            let Some(ip) = parse_hop(hop) else {
                return Some(current);
            };
            current = ip.to_canonical();
            if !self.trusts(current) {
                return Some(current);
            }
        }
        Some(current)
    }
}

/// One hop of `X-Forwarded-For`: an address, or as some proxies write it, with a port
/// (`203.0.113.5:4444`, `[2001:db8::1]:443`) or in brackets (`[2001:db8::1]`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| hop.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The part of an address that one party controls: the address itself for IPv4, the /64 for
/// IPv6 (one host commonly holds a whole /64, so counting single addresses would be no limit).
pub fn address_bucket(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
        Ok(IpAddr::V6(v6)) => {
            let masked = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", std::net::Ipv6Addr::from(masked))
        }
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client_address(ip("203.0.113.9"), ["1.2.3.4"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        let header = ["6.6.6.6, 198.51.100.7", "10.1.2.3"];
        assert_eq!(
            trusted.client_address(ip("192.168.1.1"), header),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_garbage_hop_stops_the_walk_at_the_proxy_that_passed_it_on() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_address(ip("10.0.0.1"), ["nonsense, 10.0.0.2"]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn hops_written_with_a_port_or_in_brackets_are_addresses() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for (hop, client) in [
            ("203.0.113.5:4444", "203.0.113.5"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            (" 198.51.100.7 ", "198.51.100.7"),
        ] {
            assert_eq!(
                trusted.client_address(ip("10.0.0.1"), [hop]),
                ip(client),
                "{hop}"
            );
        }
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_its_address() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            trusted.client_address(ip("8.8.8.8"), ["10.0.0.5"]),
            ip("8.8.8.8")
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_match_ipv4_blocks() {
        let trusted = proxies(&["127.0.0.1"]);
        assert_eq!(
            trusted.client_address(ip("::ffff:127.0.0.1"), ["9.9.9.9"]),
            ip("9.9.9.9")
        );
    }

    #[test]
    fn bad_blocks_are_refused() {
        for bad in ["10.0.0.0/33", "fe80::/129", "localhost", "10.0.0.0/x"] {
            assert!(TrustedProxies::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_addresses_are_counted_by_their_64_bit_prefix() {
        assert_eq!(address_bucket("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(address_bucket("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(address_bucket("192.0.2.1"), "192.0.2.1");
    }
}
