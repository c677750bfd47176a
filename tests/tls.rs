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
        let builder = reqwest::Client::builder().tls_certs_only([root.clone()]);
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

/// Runs `latchkey healthcheck` with `env` (off the runtime: the service answers on it).
async fn healthcheck(env: Vec<(&'static str, String)>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().expect("temp dir");
        std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("healthcheck")
            .current_dir(dir.path())
            .env_clear()
            .envs(env)
            .output()
            .expect("run latchkey healthcheck")
    })
    .await
    .expect("healthcheck thread")
}

#[tokio::test]
async fn the_healthcheck_speaks_tls_to_a_service_with_a_configured_certificate_and_trusts_only_it()
{
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key, _) = certificate(dir.path());
    let other = tempfile::tempdir().expect("temp dir");
    let (other_cert, other_key, _) = certificate(other.path());
    let app = TestApp::spawn_with(|s| {
        s.server.tls_cert = Some(cert.clone());
        s.server.tls_key = Some(key.clone());
    })
    .await;
    let bind = app.address.trim_start_matches("http://").to_owned();
    let env = |cert: &std::path::Path, key: &std::path::Path| {
        vec![
            ("LATCHKEY_SERVER__BIND", bind.clone()),
            ("LATCHKEY_SERVER__TLS_CERT", cert.display().to_string()),
            ("LATCHKEY_SERVER__TLS_KEY", key.display().to_string()),
        ]
    };

    let healthy = healthcheck(env(&cert, &key)).await;
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    // A certificate other than the configured one is a failed check, not a warning.
    let impostor = healthcheck(env(&other_cert, &other_key)).await;
    assert!(!impostor.status.success());
    let stderr = String::from_utf8_lossy(&impostor.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}

/// A private CA and a server certificate it signed for 127.0.0.1, written under `dir`:
/// (CA certificate, server certificate, server key).
fn private_ca(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let server_key = KeyPair::generate().expect("server key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("server params")
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server certificate");
    let files = [
        dir.join("ca.pem"),
        dir.join("redis.pem"),
        dir.join("redis.key"),
    ];
    let contents = [ca.pem(), server.pem(), server_key.serialize_pem()];
    for (file, content) in files.iter().zip(contents) {
        std::fs::write(file, content).expect("write PEM");
    }
    files
}

#[tokio::test]
async fn redis_over_tls_with_a_private_ca_is_trusted_through_store_tls_ca_file() {
    use support::redis_server::{RedisServer, RedisServerOptions, free_port};
    let dir = tempfile::tempdir().expect("temp dir");
    let [ca, cert, key] = private_ca(dir.path());
    let tls_port = free_port();
    let args = [
        "--tls-port".to_owned(),
        tls_port.to_string(),
        "--tls-cert-file".to_owned(),
        cert.display().to_string(),
        "--tls-key-file".to_owned(),
        key.display().to_string(),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
    ];
    let redis = RedisServer::start_with(RedisServerOptions {
        args: args.to_vec(),
        ..RedisServerOptions::default()
    });
    let url = format!("rediss://127.0.0.1:{tls_port}");

    let app = TestApp::spawn_on_redis(&url, |s| s.store.tls_ca_file = Some(ca.clone())).await;
    let ready = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    app.with_user_and_web_client().await;
    let tokens = app.login().await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    assert!(redis.dbsize() > 0, "the session is in the TLS Redis");

    // The system's roots do not know the private CA: without the setting, no connection.
    let untrusting = TestApp::spawn_on_redis(&url, |_| {}).await;
    let ready = untrusting
        .http
        .get(untrusting.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 503);
}

#[test]
fn a_redis_ca_file_is_refused_where_it_would_be_ignored() {
    use latchkey::configuration::Settings;
    let load = |pairs: &[(&str, &str)]| {
        let env = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::load_from(None, Some(env))
    };
    let ca = ("LATCHKEY_STORE__TLS_CA_FILE", "/etc/ssl/private-ca.pem");
    let redis = ("LATCHKEY_STORE__BACKEND", "redis");
    for ignored in [
        vec![ca],
        vec![ca, redis, ("LATCHKEY_STORE__URL", "redis://127.0.0.1:6379")],
        vec![
            ca,
            redis,
            ("LATCHKEY_STORE__URL", "redis+sentinel://s:26379/m"),
        ],
    ] {
        let message = load(&ignored).expect_err("refused").to_string();
        assert!(message.contains("store.tls_ca_file"), "{message}");
    }
    let tls = ("LATCHKEY_STORE__URL", "rediss://127.0.0.1:6380");
    assert!(load(&[ca, redis, tls]).is_ok());
}

#[tokio::test]
async fn an_unreadable_redis_ca_file_stops_start_up_naming_the_setting() {
    let mut settings = support::app::test_settings(std::path::Path::new("/nonexistent"));
    settings.store.backend = latchkey::configuration::StoreBackend::Redis;
    settings.store.url = Some("rediss://127.0.0.1:1".to_owned());
    settings.store.tls_ca_file = Some("/nonexistent/ca.pem".into());
    let Err(error) = latchkey::store::open(&settings.store).await else {
        panic!("a store opened without its CA file");
    };
    assert!(error.to_string().contains("store.tls_ca_file"), "{error}");
}
