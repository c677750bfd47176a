//! Settings that work but that a careful operator wants to hear about at start-up.

use super::Settings;

/// A setting worth a warning at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub key: &'static str,
    pub message: String,
}

/// Whether `url`'s host is `localhost` or a loopback address.
fn url_host_is_loopback(url: &str) -> bool {
    let authority = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A configuration that cannot be used, with the key at fault.
impl Settings {
    /// Settings that work but that a careful operator wants to hear about, each with its key.
    /// Start-up logs them as warnings.
    pub fn warnings(&self) -> Vec<Warning> {
        let mut warnings = Vec::new();
        let mut warn = |key: &'static str, message: String| warnings.push(Warning { key, message });
        let bind = self.bind_address().ok();
        let public_bind = bind.is_some_and(|address| !address.ip().is_loopback());
        if public_bind && self.server.tls_cert.is_none() && self.issuer.starts_with("http://") {
            warn(
                "server.tls_cert",
                format!(
                    "the service listens on {} without TLS and the issuer is http://: passwords, \
                     secrets and tokens cross the network in clear; set server.tls_cert and \
                     server.tls_key, or put a TLS-terminating proxy in front and make the issuer \
                     its https:// URL",
                    self.server.bind
                ),
            );
        }
        if public_bind && url_host_is_loopback(&self.issuer) {
            warn(
                "issuer",
                format!(
                    "the issuer {} is a loopback URL while the service listens on {}: set it to \
                     the URL clients and resource servers use",
                    self.issuer, self.server.bind
                ),
            );
        }
        if self.registration.enabled && self.registration.max_per_address == 0 {
            warn(
                "registration.max_per_address",
                "self-registration is open to anyone who can reach the service, and no \
                 per-address limit bounds how many accounts (each an argon2 hash) one address \
                 creates"
                    .into(),
            );
        }
        let p = &self.passwords;
        // OWASP's argon2id configurations trade memory for passes: m=47104 t=1 down to m=7168
        // t=5, about 36 MiB-passes each.
        if u64::from(p.memory_kib) * u64::from(p.iterations) < 35_840 || p.memory_kib < 7_168 {
            warn(
                "passwords.memory_kib",
                format!(
                    "argon2id with m={} KiB and t={} is cheaper to guess against than OWASP's \
                     minimum (m=19456 KiB, t=2, or an equivalent)",
                    p.memory_kib, p.iterations
                ),
            );
        }
        let b = &self.bootstrap;
        if b.admin_username.is_some() && b.admin_password_file.is_none() {
            warn(
                "bootstrap.admin_password",
                "the bootstrap admin's password is given as a setting, where process listings, \
                 container inspection and crash reports can show it; prefer \
                 bootstrap.admin_password_file"
                    .into(),
            );
        }
        for (key, message) in self.security.warnings() {
            warn(key, message);
        }
        warnings
    }
}
