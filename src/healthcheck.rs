//! `latchkey healthcheck`: asks a running service for `/healthz` over HTTP/1.1 and succeeds
//! on a 200. Container images without a shell or curl (distroless) use it as their
//! HEALTHCHECK. A service with in-process TLS is asked over TLS, trusting exactly the
//! certificate it is configured with (`server.tls_cert`), whatever its issuer and names.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The `/healthz` URL of a service listening on `bind` (`https://` when it speaks TLS): an
/// unspecified address (`0.0.0.0`, `[::]`) is reached through the loopback address of its
/// family.
pub fn default_url(bind: SocketAddr, tls: bool) -> String {
    let ip = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{}/healthz", SocketAddr::new(ip, bind.port()))
}

/// GETs `url` (`http://` or `https://host[:port][/path]`) and succeeds if the answer is 200.
/// An `https://` URL needs `tls_cert`, the certificate the service must present.
pub fn check(url: &str, timeout: Duration, tls_cert: Option<&Path>) -> anyhow::Result<()> {
    let target = split_url(url)?;
    let tls = match (target.tls, tls_cert) {
        (false, _) => None,
        (true, Some(path)) => Some(client_config(path)?),
        (true, None) => bail!(
            "'{url}' is https://, and the certificate to expect is configured nowhere: set \
             server.tls_cert"
        ),
    };
    let addresses: Vec<SocketAddr> = target
        .authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", target.authority))?
        .collect();
    let mut last_error = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, timeout) {
            Ok(stream) => {
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return match tls {
                    None => ask(stream, &target),
                    Some(config) => {
                        let name = ServerName::try_from(target.host().to_owned())
                            .with_context(|| format!("'{}' is not a host name", target.host()))?;
                        let connection = rustls::ClientConnection::new(config, name)?;
                        ask(rustls::StreamOwned::new(connection, stream), &target)
                    }
                };
            }
            Err(error) => last_error = Some(error),
        }
    }
    match last_error {
        Some(error) => {
            Err(error).with_context(|| format!("cannot connect to {}", target.authority))
        }
        None => bail!("{} resolves to no address", target.authority),
    }
}

fn ask(mut stream: impl Read + Write, target: &Target<'_>) -> anyhow::Result<()> {
    write!(
        stream,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: latchkey-healthcheck\r\nConnection: close\r\n\r\n",
        target.path, target.authority
    )?;
    stream.flush()?;
    let mut status_line = String::new();
    BufReader::new(stream)
        .read_line(&mut status_line)
        .context("no answer")?;
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status != "200" {
        bail!("unhealthy: {}", status_line.trim_end());
    }
    Ok(())
}

/// A TLS client that accepts the service's certificate when it is the configured one: the
/// check runs next to the service and knows its certificate, which may be self-signed or
/// issued for names other than the address the check connects to.
fn client_config(cert_path: &Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(cert_path)
        .with_context(|| format!("server.tls_cert: cannot read {}", cert_path.display()))?;
    let leaf = CertificateDer::pem_slice_iter(&pem)
        .next()
        .with_context(|| {
            format!(
                "server.tls_cert: {} holds no certificate",
                cert_path.display()
            )
        })?
        .with_context(|| format!("server.tls_cert: {} is not PEM", cert_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(Pinned {
        leaf,
        algorithms: provider.signature_verification_algorithms,
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Trusts one certificate, and checks that the server holds its key as any TLS client does.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the service presents a certificate other than server.tls_cert".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// What a health-check URL names.
#[derive(Debug, PartialEq, Eq)]
struct Target<'a> {
    tls: bool,
    /// `host:port`, the port filled in.
    authority: String,
    path: &'a str,
}

impl Target<'_> {
    /// The host, without the port or an IPv6 literal's brackets.
    fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(host, _)| host);
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// What an `http://` or `https://` URL names; the port defaults to the scheme's and the path
/// to `/healthz`.
fn split_url(url: &str) -> anyhow::Result<Target<'_>> {
    let (tls, rest, default_port) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest, 80)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest, 443)
    } else {
        bail!("'{url}' is not an http:// or https:// URL");
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/healthz"),
    };
    if authority.is_empty() || authority.contains('@') {
        bail!("'{url}' has no usable host");
    }
    // A port is present when the text after the last ':' is digits and not inside an IPv6
    // literal's brackets.
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
        && !authority.ends_with(']');
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{default_port}")
    };
    Ok(Target {
        tls,
        authority,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn the_default_url_reaches_an_unspecified_bind_address_through_loopback() {
        assert_eq!(
            default_url("0.0.0.0:8080".parse().unwrap(), false),
            "http://127.0.0.1:8080/healthz"
        );
        assert_eq!(
            default_url("[::]:9000".parse().unwrap(), true),
            "https://[::1]:9000/healthz"
        );
        assert_eq!(
            default_url("10.1.2.3:80".parse().unwrap(), false),
            "http://10.1.2.3:80/healthz"
        );
    }

    #[test]
    fn urls_are_split_into_scheme_authority_and_path() {
        let target = |tls, authority: &str, path| Target {
            tls,
            authority: authority.to_owned(),
            path,
        };
        assert_eq!(
            split_url("http://a:1/x").unwrap(),
            target(false, "a:1", "/x")
        );
        assert_eq!(
            split_url("http://a").unwrap(),
            target(false, "a:80", "/healthz")
        );
        let v6 = split_url("https://[::1]/h").unwrap();
        assert_eq!(v6, target(true, "[::1]:443", "/h"));
        assert_eq!(v6.host(), "::1");
        assert!(split_url("ftp://a/").is_err());
        assert!(split_url("http://user@a/").is_err());
    }

    #[test]
    fn https_without_a_configured_certificate_is_refused_before_connecting() {
        let error = check("https://127.0.0.1:1/healthz", Duration::from_secs(1), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("server.tls_cert"), "{error}");
    }

    fn serve_once(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            while reader.read_line(&mut request).unwrap() > 2 {
                request.clear();
            }
            stream.write_all(answer.as_bytes()).unwrap();
        });
        address
    }

    #[test]
    fn a_200_is_healthy_and_anything_else_is_not() {
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        check(
            &format!("http://{ok}/healthz"),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        let bad = serve_once("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        let error = check(
            &format!("http://{bad}/healthz"),
            Duration::from_secs(5),
            None,
        )
        .unwrap_err();
        assert!(error.to_string().contains("503"), "{error}");
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let address = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            check(
                &format!("http://{address}/healthz"),
                Duration::from_secs(2),
                None
            )
            .is_err()
        );
    }
}
