//! The token endpoint (and its neighbours `/oauth/revoke` and `/oauth/introspect`) as the
//! service serves it: the whole route tree of `latchkey::startup::routes` with the middleware
//! of `observe`, on an in-memory embedded store, called in-process on one tokio runtime.
//!
//! An input is `SELECTOR AUTHORIZATION \n CONTENT-TYPE \n BODY`:
//! - SELECTOR: `r` revoke, `i` introspect, anything else the token endpoint; an upper-case
//!   letter leaves out `Content-Length`.
//! - AUTHORIZATION: the header as is; empty for none; `B:id:secret` for `Basic` with
//!   `base64(id:secret)`.
//! - CONTENT-TYPE: `f` form, `j` JSON, empty for none, anything else as is.
//! - BODY: as is. In the body and the header, `@RT@` and `@AT@` become a live refresh and
//!   access token just issued to `alice` through the public client `web`.
//!
//! Registered: `web` (public; password and refresh_token; scopes read, write, admin), `svc`
//! (confidential, secret [`SVC_SECRET`]; client_credentials; scope read; audience orders),
//! users `alice` (`correct horse`, role user) and `root` (`root password`, role admin).
//!
//! Asserted for every input: no panic; no 5xx but 503; every error is a JSON object with an
//! `error` member; `invalid_client` comes with `WWW-Authenticate: Basic`; a token response has
//! `Cache-Control: no-store` and tokens within what the client and user may have: scopes of the
//! client, `admin` only for an admin, and then alone and with the admin audience (a token with
//! the admin audience always has scope `admin`); otherwise an audience the client may use or the
//! default.
#![no_main]

use std::collections::BTreeSet;
use std::sync::{Arc, LazyLock};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latchkey::accounts::{self, Change};
use latchkey::audit::Actor;
use latchkey::configuration::{PasswordSettings, Settings};
use latchkey::credentials::{PasswordHasher, hash_client_secret};
use latchkey::domain::{ClientId, GrantType, Scope, Secret, now};
use latchkey::keys::{KeyRing, KeySet};
use latchkey::oauth::Authority;
use latchkey::shutdown::Drain;
use latchkey::store::{ClientRecord, SharedStore, embedded::EmbeddedStore};
use latchkey_fuzz::{FIXED_SEED, ISSUER, SVC_SECRET, issuer_key};
use libfuzzer_sys::fuzz_target;
use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use poem::{Endpoint, EndpointExt, Request};
use serde_json::Value;

/// The default audience of access tokens (`tokens.audience`).
const DEFAULT_AUDIENCE: &str = "api";
/// The audience of tokens for the admin API (`admin.audience`).
const ADMIN_AUDIENCE: &str = "latchkey-admin";

static OPERATOR: Actor = Actor::Operator("fuzz");

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: BoxEndpoint<'static>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app = runtime.block_on(build_app());
    Fixture { runtime, app }
});

async fn build_app() -> BoxEndpoint<'static> {
    let mut settings = Settings {
        issuer: ISSUER.into(),
        // The cheapest argon2 there is: the target is about parsing, not hashing.
        passwords: PasswordSettings {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            max_concurrent: 1,
            max_queue: 64,
        },
        ..Settings::default()
    };
    // No lock-outs, so that every input reaches the code behind them.
    let security = &mut settings.security;
    security.max_failed_logins_per_user = 1 << 40;
    security.max_failed_logins_per_address = 1 << 40;
    security.max_failed_logins_per_user_address = 1 << 40;
    security.max_failed_client_auths_per_address = 1 << 40;
    latchkey::metrics::init();
    let store: SharedStore = Arc::new(EmbeddedStore::open_in_memory().expect("a store"));
    let keys = KeySet::from_keys(vec![issuer_key(&FIXED_SEED)]).expect("a key set");
    let passwords = PasswordHasher::new(&settings.passwords).expect("a hasher");
    let change = Change {
        store: store.as_ref(),
        by: &OPERATOR,
        now: now(),
    };
    let web = accounts::ClientSpec {
        public: true,
        grants: [GrantType::Password, GrantType::RefreshToken].into(),
        scopes: vec!["read".into(), "write".into(), "admin".into()],
        audiences: BTreeSet::new(),
    };
    accounts::add_client(&change, "web", web)
        .await
        .expect("client web");
    let svc = ClientRecord {
        client_id: ClientId::parse("svc").expect("a client id"),
        secret_hash: Some(hash_client_secret(&Secret::new(SVC_SECRET))),
        grants: [GrantType::ClientCredentials].into(),
        scope: Scope::parse("read").expect("a scope"),
        audiences: ["orders".to_owned()].into(),
        created_at: now(),
    };
    store.create_client(&svc).await.expect("client svc");
    for (name, password, role) in [
        ("alice", "correct horse", "user"),
        ("root", "root password", "admin"),
    ] {
        accounts::add_user(
            &change,
            &passwords,
            name,
            Secret::new(password),
            [role.to_owned()].into(),
        )
        .await
        .expect("a user");
    }
    let authority = Arc::new(Authority::new(
        &settings,
        store,
        Arc::new(KeyRing::fixed(keys)),
        passwords,
    ));
    let drain = Drain::new();
    latchkey::startup::routes(authority, &settings)
        .around(move |endpoint, request| {
            latchkey::api::observe::observe(endpoint, request, drain.clone())
        })
        .boxed()
}

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |b| *b == b'\n');
    let authorization = parts.next().unwrap_or_default();
    let content_type = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let path = match selector.to_ascii_lowercase() {
        b'r' => "/oauth/revoke",
        b'i' => "/oauth/introspect",
        _ => "/oauth/token",
    };
    fixture.runtime.block_on(async {
        let live = if contains(authorization, b"@RT@")
            || contains(authorization, b"@AT@")
            || contains(body, b"@RT@")
            || contains(body, b"@AT@")
        {
            Some(login(&fixture.app).await)
        } else {
            None
        };
        let substitute = |bytes: &[u8]| match &live {
            Some((access, refresh)) => replace(
                &replace(bytes, b"@RT@", refresh.as_bytes()),
                b"@AT@",
                access.as_bytes(),
            ),
            None => bytes.to_vec(),
        };
        let authorization = match authorization.strip_prefix(b"B:") {
            Some(pair) => format!("Basic {}", STANDARD.encode(substitute(pair))).into_bytes(),
            None => substitute(authorization),
        };
        let content_type: &[u8] = match content_type {
            b"f" => b"application/x-www-form-urlencoded",
            b"j" => b"application/json",
            other => other,
        };
        let body = substitute(body);
        let mut request = Request::builder()
            .method(Method::POST)
            .uri_str(path)
            .finish();
        let headers = request.headers_mut();
        let mut set = |name: HeaderName, value: &[u8]| {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                headers.insert(name, value);
            }
        };
        if !authorization.is_empty() {
            set(header::AUTHORIZATION, &authorization);
        }
        if !content_type.is_empty() {
            set(header::CONTENT_TYPE, content_type);
        }
        if !selector.is_ascii_uppercase() {
            set(header::CONTENT_LENGTH, body.len().to_string().as_bytes());
        }
        request.set_body(body);
        let response = fixture.app.get_response(request).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .into_bytes()
            .await
            .expect("the response body");
        check(path, status, &headers, &body);
    });
});

/// What every answer must be.
fn check(path: &str, status: StatusCode, headers: &poem::http::HeaderMap, body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{path} answered {status}: {text}"
    );
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !status.is_success() {
        assert!(
            content_type.starts_with("application/json"),
            "{path} answered {status} as {content_type:?}: {text}"
        );
        let error: Value = serde_json::from_slice(body).expect("a JSON error");
        let code = error["error"].as_str().expect("an error code");
        if code == "invalid_client" {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "invalid_client: {text}");
            let challenge = headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                challenge.starts_with("Basic"),
                "invalid_client without a Basic challenge: {text}"
            );
        }
        return;
    }
    if path != "/oauth/token" {
        return;
    }
    assert_eq!(status, StatusCode::OK, "{text}");
    let cache = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(cache.contains("no-store"), "token response cached: {cache}");
    let issued: Value = serde_json::from_slice(body).expect("a JSON token response");
    assert_eq!(issued["token_type"], "Bearer", "{text}");
    let access = issued["access_token"].as_str().expect("an access token");
    let claims = payload(access);
    let client = claims["client_id"].as_str().expect("client_id");
    let subject = claims["sub"].as_str().expect("sub");
    let (allowed_scopes, audiences): (&[&str], &[&str]) = match client {
        "web" => (&["read", "write", "admin"], &[]),
        "svc" => (&["read"], &["orders"]),
        other => panic!("a token for unknown client {other}: {text}"),
    };
    let scope = claims["scope"].as_str().expect("scope");
    for granted in scope.split(' ').filter(|s| !s.is_empty()) {
        assert!(
            allowed_scopes.contains(&granted),
            "scope {granted} beyond client {client}: {text}"
        );
        if granted == "admin" {
            assert_eq!(subject, "root", "admin scope for {subject}");
        }
    }
    assert_eq!(issued["scope"], scope, "the answer's scope is the token's");
    let aud = claims["aud"].as_str().expect("aud");
    if scope.split(' ').any(|s| s == "admin") {
        assert_eq!(scope, "admin", "admin scope with others: {text}");
        assert_eq!(
            aud, ADMIN_AUDIENCE,
            "admin scope for audience {aud}: {text}"
        );
    } else {
        assert!(
            aud == DEFAULT_AUDIENCE || audiences.contains(&aud),
            "audience {aud} for client {client}: {text}"
        );
    }
    if client == "svc" {
        assert_eq!(subject, "svc", "client_credentials token names the client");
        assert!(
            issued.get("refresh_token").is_none(),
            "no refresh token for client_credentials"
        );
    }
}

/// The claims of a compact JWS, unverified (the service just signed it).
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWS payload");
    let json = URL_SAFE_NO_PAD.decode(part).expect("base64url");
    serde_json::from_slice(&json).expect("JSON claims")
}

/// A fresh access and refresh token of `alice` through `web`.
async fn login(app: &BoxEndpoint<'static>) -> (String, String) {
    let request = Request::builder()
        .method(Method::POST)
        .uri_str("/oauth/token")
        .content_type("application/x-www-form-urlencoded")
        .body("grant_type=password&username=alice&password=correct+horse&client_id=web");
    let response = app.get_response(request).await;
    assert_eq!(response.status(), StatusCode::OK, "alice logs in");
    let body = response
        .into_body()
        .into_bytes()
        .await
        .expect("the response body");
    let issued: Value = serde_json::from_slice(&body).expect("a JSON token response");
    let token = |name: &str| issued[name].as_str().expect("a token").to_owned();
    (token("access_token"), token("refresh_token"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}
