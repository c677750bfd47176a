//! A stand-in issuer on a loopback port: metadata, a key set whose fetches are counted, and a
//! revocation feed the test writes to, can make unreachable, or can replace (new cursors).
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../src/testkit.rs"]
pub mod testkit;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json, Query};
use poem::{EndpointExt, Response, Route, Server, get, handler};
use serde::Deserialize;
use serde_json::{Value, json};

pub use testkit::*;

pub const FEED_ID: &str = "rs";
pub const FEED_SECRET: &str = "s3cret";

#[derive(Default)]
pub struct State {
    pub issuer: Mutex<String>,
    pub metadata_issuer: Mutex<Option<String>>,
    pub jwks: Mutex<Value>,
    pub jwks_fetches: AtomicUsize,
    /// Events with their sequence numbers; cursors are `GEN-SEQ`.
    pub events: Mutex<Vec<Value>>,
    pub generation: AtomicU64,
    pub feed_down: AtomicBool,
    pub feed_reads: AtomicUsize,
    /// A cursor whose next read answers 503, once.
    pub fail_once_after: Mutex<Option<String>>,
}

pub struct Stub {
    pub url: String,
    pub state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[handler]
fn metadata(state: Data<&Arc<State>>) -> Json<Value> {
    let issuer = state.issuer.lock().unwrap().clone();
    let named = state
        .metadata_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| issuer.clone());
    Json(json!({
        "issuer": named,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "revocation_feed_endpoint": format!("{issuer}/oauth/revocations"),
    }))
}

#[handler]
fn key_set(state: Data<&Arc<State>>) -> Response {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .header("Cache-Control", "public, max-age=300")
        .content_type("application/json")
        .body(state.jwks.lock().unwrap().to_string())
}

#[derive(Deserialize)]
struct FeedQuery {
    after: Option<String>,
    limit: Option<usize>,
}

#[handler]
fn feed(state: Data<&Arc<State>>, query: Query<FeedQuery>, req: &poem::Request) -> Response {
    state.feed_reads.fetch_add(1, Ordering::SeqCst);
    if state.feed_down.load(Ordering::SeqCst) {
        return Response::builder()
            .status(StatusCode::SERVICE_UNAVAILABLE)
            .finish();
    }
    {
        let mut fail = state.fail_once_after.lock().unwrap();
        if fail.is_some() && *fail == query.after {
            *fail = None;
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .finish();
        }
    }
    let expected = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{FEED_ID}:{FEED_SECRET}")
        )
    );
    if req.header("authorization") != Some(expected.as_str()) {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .body(r#"{"error":"invalid_client"}"#);
    }
    let generation = state.generation.load(Ordering::SeqCst);
    let after = match query.after.as_deref() {
        None => 0,
        Some(cursor) => match cursor.split_once('-') {
            Some((g, seq)) if g == generation.to_string() => seq.parse::<usize>().unwrap_or(0),
            _ => {
                return Response::builder().status(StatusCode::BAD_REQUEST).body(
                    r#"{"error":"invalid_request","error_description":"unknown cursor; resync"}"#,
                );
            }
        },
    };
    let limit = query.limit.unwrap_or(500);
    let events = state.events.lock().unwrap();
    let page: Vec<Value> = events
        .iter()
        .enumerate()
        .skip(after)
        .take(limit)
        .map(|(i, e)| {
            let mut e = e.clone();
            e["cursor"] = json!(format!("{generation}-{}", i + 1));
            e
        })
        .collect();
    let next = page
        .last()
        .map(|e| e["cursor"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| format!("{generation}-{after}"));
    let full = page.len() == limit;
    Response::builder().content_type("application/json").body(
        json!({"events": page, "next_cursor": next, "poll_after": if full {0} else {1}})
            .to_string(),
    )
}

impl Stub {
    pub async fn start(keys: &[&TestKey]) -> Stub {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().copied().unwrap();
        let url = format!("http://{addr}");
        let state = Arc::new(State::default());
        *state.issuer.lock().unwrap() = url.clone();
        *state.jwks.lock().unwrap() = jwks(keys);
        let app = Route::new()
            .at("/.well-known/oauth-authorization-server", get(metadata))
            .at("/jwks.json", get(key_set))
            .at("/oauth/revocations", get(feed))
            .data(state.clone());
        let server = tokio::spawn(async move {
            let _ = Server::new_with_acceptor(acceptor).run(app).await;
        });
        Stub { url, state, server }
    }

    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.jwks.lock().unwrap() = jwks(keys);
    }

    pub fn revoke(&self, event: Value) {
        self.state.events.lock().unwrap().push(event);
    }

    /// A new feed (as after the issuer's store was replaced): old cursors become unknown.
    pub fn replace_feed(&self, events: Vec<Value>) {
        *self.state.events.lock().unwrap() = events;
        self.state.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The cursor the feed gives after `seq` events of the next feed (see `replace_feed`).
    pub fn next_generation_cursor(&self, seq: usize) -> String {
        format!("{}-{seq}", self.state.generation.load(Ordering::SeqCst) + 1)
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }
}

/// Polls `check` until it holds or `deadline` passes; returns how long it took.
pub async fn eventually(
    deadline: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
