//! In-process TLS (`server.tls_cert`, `server.tls_key`): rustls on aws-lc-rs, offering HTTP/2
//! and HTTP/1.1 by ALPN (poem sets both).

use std::path::Path;

use anyhow::{Context, bail};
use poem::listener::{RustlsCertificate, RustlsConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Reads and checks the certificate chain and key now, so that a bad file stops start-up with
/// a message naming it rather than failing each handshake later.
pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<RustlsConfig> {
    // Several providers may be compiled in (through dependencies); the service uses one.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cert = std::fs::read(cert_path)
        .with_context(|| format!("server.tls_cert: cannot read {}", cert_path.display()))?;
    let key = std::fs::read(key_path)
        .with_context(|| format!("server.tls_key: cannot read {}", key_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("server.tls_cert: {} is not PEM", cert_path.display()))?;
    if chain.is_empty() {
        bail!(
            "server.tls_cert: {} holds no certificate",
            cert_path.display()
        );
    }
    let private = PrivateKeyDer::from_pem_slice(&key).with_context(|| {
        format!(
            "server.tls_key: {} holds no private key",
            key_path.display()
        )
    })?;
    rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .context("server.tls_cert and server.tls_key do not form a usable pair")?;
    Ok(RustlsConfig::new().fallback(RustlsCertificate::new().cert(cert).key(key)))
}
