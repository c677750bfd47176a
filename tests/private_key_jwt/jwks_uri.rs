//! Clients that publish their keys at a `jwks_uri`: the set is cached and refetched sparingly,
//! an unusable one is `invalid_client`, and the fetch goes only where the service may connect.

use std::sync::atomic::{AtomicUsize, Ordering};

use latchkey::accounts::{self, ClientChanges};
use latchkey::domain::GrantType;
use latchkey::keys::Algorithm;
use latchkey::store::ClientKeys;
use serde_json::json;

use super::key_server::KeyServer;
use super::support::TestApp;
use super::support::process::Workdir;
use super::{
    ClientKey, assert_invalid_client, behind_a_proxy_failing_thrice, claims, key_set, register,
    token_from, token_with,
};

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

    // Made-up kids do not turn into fetches: one per interval at most.
    let third = ClientKey::new(Algorithm::RS256);
    *server.body.lock().unwrap() = key_set(&[&first, &second, &third]).to_string();
    for _ in 0..3 {
        let unknown = token_with(&app, &third.sign(&claims("svc", &app.address))).await;
        assert_invalid_client(unknown, "a kid unknown within the interval").await;
    }
    assert_eq!(server.fetches(), 2, "no refetch within the interval");
}

#[tokio::test]
async fn a_strangers_made_up_kid_does_not_turn_the_clients_rotation_into_a_lockout() {
    let app = behind_a_proxy_failing_thrice().await;
    let old = ClientKey::new(Algorithm::ES256);
    let server = KeyServer::start(key_set(&[&old]).to_string()).await;
    register(&app, "svc", ClientKeys::JwksUri(server.url.clone())).await;
    let client = "10.20.30.40";
    let issued = token_from(&app, &old.sign(&claims("svc", &app.address)), client).await;
    assert_eq!(issued.status(), 200);

    // A stranger, knowing only the client id, spends the refetch with a key of its own.
    let stranger = ClientKey::new(Algorithm::ES256);
    let forged = stranger.sign(&claims("svc", &app.address));
    let refused = token_from(&app, &forged, "198.51.100.7").await;
    assert_invalid_client(refused, "a stranger's key").await;
    assert_eq!(server.fetches(), 2, "the stranger's kid was looked for");

    // The client publishes a new key and signs with it at once, more often than its address
    // may fail: the set is not fetched again yet, and none of it counts as a failure.
    let new = ClientKey::new(Algorithm::ES256);
    *server.body.lock().unwrap() = key_set(&[&old, &new]).to_string();
    for _ in 0..4 {
        let early = token_from(&app, &new.sign(&claims("svc", &app.address)), client).await;
        assert_invalid_client(early, "a key published within the interval").await;
    }
    assert_eq!(server.fetches(), 2);
    let issued = token_from(&app, &old.sign(&claims("svc", &app.address)), client).await;
    assert_eq!(
        issued.status(),
        200,
        "the client's address is not locked out"
    );
}

#[tokio::test]
async fn a_key_dropped_from_a_jwks_uri_is_forgotten_once_the_client_is_given_keys_or_removed() {
    let app = TestApp::spawn().await;
    let leaked = ClientKey::new(Algorithm::ES256);
    let server = KeyServer::start(key_set(&[&leaked]).to_string()).await;
    register(&app, "svc", ClientKeys::JwksUri(server.url.clone())).await;
    let signed_with = |key: &ClientKey| key.sign(&claims("svc", &app.address));
    let give_keys_again = || async {
        let again = ClientChanges {
            keys: Some(ClientKeys::JwksUri(server.url.clone())),
            ..Default::default()
        };
        accounts::update_client(&app.change(), &app.settings.tokens, "svc", again)
            .await
            .expect("keys given again");
    };
    assert_eq!(token_with(&app, &signed_with(&leaked)).await.status(), 200);
    // Keys given again before the client's server dropped the key: fetched again, still there.
    give_keys_again().await;
    assert_eq!(token_with(&app, &signed_with(&leaked)).await.status(), 200);
    assert_eq!(server.fetches(), 2);

    // The client's server drops the leaked key; the cached set still holds it, for its max-age.
    let next = ClientKey::new(Algorithm::ES256);
    *server.body.lock().unwrap() = key_set(&[&next]).to_string();
    assert_eq!(
        token_with(&app, &signed_with(&leaked)).await.status(),
        200,
        "cached until the set's max-age"
    );
    assert_eq!(server.fetches(), 2);

    // The operator gives the client its keys again, the same URL (within the same second,
    // most likely): the cached set is dropped.
    give_keys_again().await;
    assert_invalid_client(
        token_with(&app, &signed_with(&leaked)).await,
        "the leaked key, once the keys are given again",
    )
    .await;
    assert_eq!(server.fetches(), 3, "fetched afresh");
    assert_eq!(token_with(&app, &signed_with(&next)).await.status(), 200);

    // Removed and registered again at the same URL: nothing of the old registration is kept.
    let last = ClientKey::new(Algorithm::ES256);
    *server.body.lock().unwrap() = key_set(&[&last]).to_string();
    accounts::delete_client(&app.change(), &app.settings.tokens, "svc")
        .await
        .expect("removed");
    register(&app, "svc", ClientKeys::JwksUri(server.url.clone())).await;
    assert_invalid_client(
        token_with(&app, &signed_with(&next)).await,
        "a key of the removed client's set",
    )
    .await;
    assert_eq!(server.fetches(), 4, "fetched afresh");
    assert_eq!(token_with(&app, &signed_with(&last)).await.status(), 200);
}

#[tokio::test]
async fn a_client_removed_while_its_assertion_waits_on_its_key_server_gets_no_token() {
    let app = TestApp::spawn().await;
    let key = ClientKey::new(Algorithm::ES256);
    let server = KeyServer::start(key_set(&[&key]).to_string()).await;
    register(&app, "svc", ClientKeys::JwksUri(server.url.clone())).await;
    server.hold();
    let assertion = key.sign(&claims("svc", &app.address));
    let (response, ()) = tokio::join!(token_with(&app, &assertion), async {
        server.arrived().await;
        accounts::delete_client(&app.change(), &app.settings.tokens, "svc")
            .await
            .expect("removed while the key set is being fetched");
        server.release();
    });
    assert_invalid_client(
        response,
        "a client removed while its credentials were checked",
    )
    .await;
}

#[tokio::test]
async fn a_refresh_by_a_client_removed_while_its_assertion_waits_gets_no_token() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "correct horse", &["user"]).await;
    let key = ClientKey::new(Algorithm::ES256);
    let server = KeyServer::start(key_set(&[&key]).to_string()).await;
    let spec = accounts::ClientSpec {
        grants: [GrantType::Password, GrantType::RefreshToken].into(),
        scopes: vec!["read".to_owned()],
        keys: Some(ClientKeys::JwksUri(server.url.clone())),
        ..Default::default()
    };
    accounts::add_client(&app.change(), "svc", spec)
        .await
        .expect("client added");
    let assertion = key.sign(&claims("svc", &app.address));
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_assertion_type", super::ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ])
        .await;
    assert_eq!(login.status(), 200);
    let login: serde_json::Value = login.json().await.unwrap();
    let refresh_token = login["refresh_token"].as_str().unwrap();

    // Signed with a key the cached set lacks, the refresh's assertion waits on a fetch.
    let rotated = ClientKey::new(Algorithm::ES256);
    *server.body.lock().unwrap() = key_set(&[&key, &rotated]).to_string();
    server.hold();
    let assertion = rotated.sign(&claims("svc", &app.address));
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_assertion_type", super::ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (response, ()) = tokio::join!(app.token(&form), async {
        server.arrived().await;
        accounts::delete_client(&app.change(), &app.settings.tokens, "svc")
            .await
            .expect("removed while the key set is being fetched");
        server.release();
    });
    assert_invalid_client(response, "a refresh by a client removed meanwhile").await;
}

#[tokio::test]
async fn an_exchanging_client_given_new_keys_while_its_assertion_waits_gets_no_token() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    let subject = app.login().await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = ClientKey::new(Algorithm::ES256);
    let server = KeyServer::start(key_set(&[&key]).to_string()).await;
    let spec = accounts::ClientSpec {
        grants: [GrantType::TokenExchange].into(),
        scopes: vec!["read".to_owned()],
        keys: Some(ClientKeys::JwksUri(server.url.clone())),
        ..Default::default()
    };
    accounts::add_client(&app.change(), "orders", spec)
        .await
        .expect("exchanging client added");
    server.hold();
    let assertion = key.sign(&claims("orders", &app.address));
    let form = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        ("subject_token", subject.as_str()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
        ("client_assertion_type", super::ASSERTION_TYPE),
        ("client_assertion", assertion.as_str()),
    ];
    let (response, ()) = tokio::join!(app.token(&form), async {
        server.arrived().await;
        let rekeyed = ClientChanges {
            keys: Some(ClientKeys::JwksUri(server.url.clone())),
            ..Default::default()
        };
        accounts::update_client(&app.change(), &app.settings.tokens, "orders", rekeyed)
            .await
            .expect("keys given again while the key set is being fetched");
        server.release();
    });
    assert_invalid_client(response, "an exchange by a client re-keyed meanwhile").await;
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

#[tokio::test]
async fn a_key_server_that_is_down_does_not_lock_its_clients_address_out() {
    let app = TestApp::spawn_with(|s| s.security.max_failed_client_auths_per_address = 2).await;
    let key = ClientKey::new(Algorithm::EdDSA);
    // A port that was just free: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/jwks.json", listener.local_addr().unwrap())
    };
    register(&app, "down", ClientKeys::JwksUri(closed)).await;
    for _ in 0..4 {
        let refused = token_with(&app, &key.sign(&claims("down", &app.address))).await;
        assert_invalid_client(refused, "no key set to check the assertion with").await;
    }
    register(&app, "svc", ClientKeys::Jwks(key_set(&[&key]))).await;
    let issued = token_with(&app, &key.sign(&claims("svc", &app.address))).await;
    assert_eq!(issued.status(), 200, "the address is not at its limit");
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

#[tokio::test]
async fn a_proxy_named_in_the_environment_does_not_carry_a_jwks_uri_fetch_past_the_address_checks()
{
    let key = ClientKey::new(Algorithm::EdDSA);
    let (proxy, hits) = canary().await;
    let proxy = format!("http://127.0.0.1:{proxy}");
    let dir = Workdir::new()
        .env("HTTPS_PROXY", &proxy)
        .env("HTTP_PROXY", &proxy)
        .env("ALL_PROXY", &proxy)
        // Nothing of the caller's environment may exempt the name from the proxy.
        .env("NO_PROXY", "")
        .env("no_proxy", "")
        .env("LATCHKEY_ISSUER", "https://issuer.example");
    let uri = format!("https://{}:9/jwks.json", own_name());
    let added = dir.run(&["clients", "add", "inside", "--jwks-uri", &uri]);
    assert!(added.success(), "{}", added.failure());
    let service = dir.serve();
    let assertion = key.sign(&claims("inside", "https://issuer.example"));
    let response = reqwest::Client::new()
        .post(service.url("/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", super::ASSERTION_TYPE),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_invalid_client(response, "a name resolving to this host, through a proxy").await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the proxy was not asked to connect"
    );
}
