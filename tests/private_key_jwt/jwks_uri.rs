//! Clients that publish their keys at a `jwks_uri`: the set is cached and refetched sparingly,
//! an unusable one is `invalid_client`, and the fetch goes only where the service may connect.

use std::sync::atomic::{AtomicUsize, Ordering};

use latchkey::keys::Algorithm;
use latchkey::store::ClientKeys;
use serde_json::json;

use super::key_server::KeyServer;
use super::support::TestApp;
use super::{ClientKey, assert_invalid_client, claims, key_set, register, token_with};

#[tokio::test]
async fn a_jwks_uri_is_cached_and_refetched_once_for_an_unknown_kid_then_not_again() {
    let app = TestApp::spawn().await;
    let first = ClientKey::new(Algorithm::ES256);
    let server = KeyServer::start(key_set(&[&first]).to_string()).await;
    register(&app, "svc", ClientKeys::JwksUri(server.url.clone())).await;
    for _ in 0..3 {
        let issued = token_with(&app, &first.sign(&claims("svc", &app.address))).await;
        assert_eq!(issued.status(), 200);
    }
    assert_eq!(server.fetches(), 1, "fetched once, then cached");

    // The client rotates: a kid the cached set lacks makes the service fetch again, once.
    let second = ClientKey::new(Algorithm::EdDSA);
    *server.body.lock().unwrap() = key_set(&[&first, &second]).to_string();
    let rotated = token_with(&app, &second.sign(&claims("svc", &app.address))).await;
    assert_eq!(rotated.status(), 200, "the new key is fetched");
    assert_eq!(server.fetches(), 2);

    // Made-up kids do not turn into fetches: one a minute at most.
    let third = ClientKey::new(Algorithm::RS256);
    *server.body.lock().unwrap() = key_set(&[&first, &second, &third]).to_string();
    for _ in 0..3 {
        let unknown = token_with(&app, &third.sign(&claims("svc", &app.address))).await;
        assert_invalid_client(unknown, "a kid seen within the minute").await;
    }
    assert_eq!(server.fetches(), 2, "no refetch within the minute");
}

#[tokio::test]
async fn an_unreachable_oversized_malformed_or_redirected_jwks_uri_is_invalid_client() {
    let app = TestApp::spawn().await;
    let key = ClientKey::new(Algorithm::EdDSA);
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", listener.local_addr().unwrap())
    };
    let mut padded = key_set(&[&key]);
    padded["padding"] = json!("x".repeat(100 * 1024));
    let oversized = KeyServer::start(padded.to_string()).await;
    let malformed = KeyServer::start("{not json".to_owned()).await;
    let private = {
        let mut jwk = key.jwk();
        jwk["d"] = json!("AAAA");
        KeyServer::start(json!({"keys": [jwk]}).to_string()).await
    };
    let good = KeyServer::start(key_set(&[&key]).to_string()).await;
    let moved = |path: &str| good.url.replace("/jwks.json", path);
    for (id, uri) in [
        ("unreachable", closed),
        ("oversized", oversized.url.clone()),
        ("malformed", malformed.url.clone()),
        ("private", private.url.clone()),
        ("redirected", moved("/elsewhere")),
    ] {
        register(&app, id, ClientKeys::JwksUri(uri)).await;
        let response = token_with(&app, &key.sign(&claims(id, &app.address))).await;
        assert_invalid_client(response, id).await;
    }
    assert_eq!(
        good.fetches(),
        0,
        "a redirect to another host is not followed"
    );
    register(&app, "moved", ClientKeys::JwksUri(moved("/here"))).await;
    let within = token_with(&app, &key.sign(&claims("moved", &app.address))).await;
    assert_eq!(
        within.status(),
        200,
        "a redirect within the origin is followed"
    );
}

/// A listener on every interface that counts the connections made to it, and answers none.
async fn canary() -> (u16, std::sync::Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    (port, hits)
}

/// The machine's own name: it resolves to a loopback or private address of this host, as
/// a name an attacker points at a network they should not reach would.
fn own_name() -> String {
    use std::net::ToSocketAddrs;
    let name = std::process::Command::new("hostname").output().unwrap();
    let name = String::from_utf8(name.stdout).unwrap().trim().to_owned();
    let addrs: Vec<_> = (name.as_str(), 0).to_socket_addrs().unwrap().collect();
    assert!(
        !addrs.is_empty() && addrs.iter().all(|a| !latchkey::outbound::is_public(a.ip())),
        "the test needs the host name {name} to resolve to this host's own, non-public \
         addresses; it resolves to {addrs:?}"
    );
    name
}

#[tokio::test]
async fn a_jwks_uri_whose_name_leads_into_a_private_network_is_not_connected_to_unless_allowed() {
    let key = ClientKey::new(Algorithm::EdDSA);
    let (port, hits) = canary().await;
    let uri = format!("https://{}:{port}/jwks.json", own_name());

    let guarded = TestApp::spawn().await;
    register(&guarded, "inside", ClientKeys::JwksUri(uri.clone())).await;
    let response = token_with(&guarded, &key.sign(&claims("inside", &guarded.address))).await;
    assert_invalid_client(response, "a name resolving to this host").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "no connection was made");

    let allowed = TestApp::spawn_with(|s| {
        s.security.jwks_uri_networks = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12"]
            .into_iter()
            .chain(["192.168.0.0/16", "::1/128", "fc00::/7"])
            .map(str::to_owned)
            .collect();
    })
    .await;
    register(&allowed, "inside", ClientKeys::JwksUri(uri)).await;
    let response = token_with(&allowed, &key.sign(&claims("inside", &allowed.address))).await;
    assert_invalid_client(response, "no TLS there").await;
    assert!(
        hits.load(Ordering::SeqCst) > 0,
        "with the network allowed, the key server is reached"
    );
}
