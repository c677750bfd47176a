//! How a Redis store connects: its options, and the CA file of a private TLS deployment.

use std::time::Duration;

use crate::store::StoreError;

/// How a [`RedisStore`] connects and names its keys.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Put before every key; must not contain `{` or `}` (they would change the hash tags).
    pub prefix: String,
    /// Connection and response timeout of the Redis clients (about 2 s).
    pub timeout: Duration,
    /// Kept past each entry's expiry before Redis drops it; covers clock skew between replicas.
    pub expiry_slack: Duration,
    /// For `rediss://` servers whose certificates a private CA signs: that CA's certificate
    /// (PEM), trusted instead of the system's roots. Not used with Sentinel.
    pub tls_root_cert: Option<Vec<u8>>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            prefix: "latchkey:".to_owned(),
            timeout: Duration::from_secs(2),
            expiry_slack: Duration::from_secs(60),
            tls_root_cert: None,
        }
    }
}

/// Reads `store.tls_ca_file` now, so that a missing or unreadable CA stops start-up naming the
/// setting instead of failing every connection later.
pub fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, StoreError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let fail = |reason: String| {
        StoreError::Internal(format!("store.tls_ca_file: {} {reason}", path.display()))
    };
    let pem = std::fs::read(path).map_err(|e| fail(format!("cannot be read: {e}")))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("is not PEM: {e}")))?;
    if certificates.is_empty() {
        return Err(fail("holds no certificate".to_owned()));
    }
    Ok(pem)
}
