//! In-process TLS: with `server.tls_cert` and `server.tls_key` the service speaks HTTPS, over
//! HTTP/1.1 and over HTTP/2 (chosen by ALPN), with a certificate made for the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::TestApp;

/// A self-signed certificate for 127.0.0.1 and its key, written under `dir`; returns the
/// certificate's PEM for the client to trust.
fn certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    let issued = rcgen::generate_simple_self_signed(names).expect("certificate");
    let cert_pem = issued.cert.pem();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, issued.key_pair.serialize_pem()).expect("write key");
    (cert, key, cert_pem)
}

#[tokio::test]
async fn the_service_speaks_https_over_http1_and_http2_with_a_configured_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, pem) = certificate(dir.path());
    let app = TestApp::spawn_with(|s| {
        s.server.tls_cert = Some(cert);
        s.server.tls_key = Some(key);
    })
    .await;
    let https = app.address.replace("http://", "https://");
    let root = reqwest::Certificate::from_pem(pem.as_bytes()).expect("ca");
    let client = |version: reqwest::Version| {
        let builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(root.clone());
        let builder = match version {
            reqwest::Version::HTTP_2 => builder.http2_prior_knowledge(),
            _ => builder.http1_only(),
        };
        builder.build().expect("client")
    };
    for version in [reqwest::Version::HTTP_11, reqwest::Version::HTTP_2] {
        let response = client(version)
            .get(format!("{https}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{version:?} over TLS: {e:?}"));
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), version);
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
    // Plain HTTP on the TLS port gets no answer.
    let plain = app.http.get(app.url("/healthz")).send().await;
    assert!(plain.is_err() || !plain.expect("response").status().is_success());
}

#[test]
fn a_certificate_without_its_key_stops_start_up() {
    use latchkey::configuration::Settings;
    let env = [(
        "LATCHKEY_SERVER__TLS_CERT".to_string(),
        "/tmp/cert.pem".to_string(),
    )];
    let message = Settings::load_from(None, Some(env.into_iter().collect()))
        .expect_err("refused")
        .to_string();
    assert!(message.contains("server.tls_key"), "{message}");
}
