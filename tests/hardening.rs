//! Limits and headers at the HTTP edge: `no-store` wherever a token or secret travels,
//! `nosniff`, no server banner, CORS off unless configured, header size and count, slow
//! clients, the request body limit, the request timeout, and the argon2 queue bound.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use latchkey::domain::GrantType;
use serde_json::{Value, json};
use support::{TestApp, assert_oauth_error};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn assert_safe_headers(response: &reqwest::Response, what: &str) {
    let headers = response.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff", "{what}");
    assert!(headers.get("server").is_none(), "{what}: a server banner");
}

fn assert_no_store(response: &reqwest::Response, what: &str) {
    assert_safe_headers(response, what);
    assert_eq!(response.headers()["cache-control"], "no-store", "{what}");
}

#[tokio::test]
async fn every_response_carrying_a_token_or_secret_is_no_store_and_none_has_a_banner() {
    let app = TestApp::spawn().await;
    app.with_user_and_web_client().await;
    app.with_admin_console().await;
    app.add_user("root", "root password", &["admin"]).await;
    let login = app
        .token(&[
            ("grant_type", "password"),
            ("username", "root"),
            ("password", "root password"),
            ("client_id", support::ADMIN_CONSOLE),
            ("scope", "admin"),
        ])
        .await;
    assert_no_store(&login, "password grant");
    let tokens: Value = login.json().await.expect("json");
    let root = tokens["access_token"].as_str().expect("token").to_owned();
    let refreshed = app
        .refresh(tokens["refresh_token"].as_str().expect("rt"))
        .await;
    assert_no_store(&refreshed, "refresh grant");

    let admin = |method: reqwest::Method, path: &str| {
        app.http.request(method, app.url(path)).bearer_auth(&root)
    };
    let created = admin(reqwest::Method::POST, "/admin/clients")
        .json(&json!({"client_id": "svc", "grants": ["client_credentials"]}))
        .send()
        .await
        .expect("sent");
    assert_eq!(created.status(), 201);
    assert_no_store(&created, "a new client's secret");
    let secret: Value = created.json().await.expect("json");
    let secret = secret["client_secret"].as_str().expect("secret").to_owned();
    let rotated = admin(reqwest::Method::POST, "/admin/clients/svc/secret")
        .send()
        .await
        .expect("sent");
    assert_eq!(rotated.status(), 200);
    assert_no_store(&rotated, "a rotated secret");
    let rotated: Value = rotated.json().await.expect("json");
    let secret_now = rotated["client_secret"].as_str().expect("secret");
    assert_ne!(secret_now, secret);

    let client = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("svc", Some(secret_now))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("sent");
    assert_no_store(&client, "client_credentials grant");
    let introspect = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("svc", Some(secret_now))
        .form(&[("token", root.as_str())])
        .send()
        .await
        .expect("sent");
    assert_no_store(&introspect, "introspection");
    let alice = app.login().await;
    let alice = alice["access_token"].as_str().expect("token");
    let profile = app.userinfo(alice).await;
    assert_eq!(profile.status(), 200);
    assert_no_store(&profile, "userinfo");
    for path in [
        "/.well-known/jwks.json",
        "/healthz",
        "/metrics",
        "/no/such/page",
    ] {
        let response = app.http.get(app.url(path)).send().await.expect("sent");
        assert_safe_headers(&response, path);
    }
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(reqwest::Method::OPTIONS, app.url("/oauth/token"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("sent")
}

#[tokio::test]
async fn cors_is_off_by_default_and_allows_only_the_configured_origins() {
    let closed = TestApp::spawn().await;
    let answer = preflight(&closed, "https://app.example.com").await;
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let jwks = closed
        .http
        .get(closed.url("/.well-known/jwks.json"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("sent");
    assert!(jwks.headers().get("access-control-allow-origin").is_none());

    let open = TestApp::spawn_with(|s| {
        s.security.cors_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let allowed = preflight(&open, "https://app.example.com").await;
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert!(
        allowed
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let refused = preflight(&open, "https://evil.example").await;
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(refused.headers()["x-content-type-options"], "nosniff");
    // Another origin's request is answered, without CORS headers: the browser keeps the
    // answer from that page. Caches keep answers to different origins apart.
    for origin in ["https://evil.example", "https://app.example.com"] {
        let jwks = open
            .http
            .get(open.url("/.well-known/jwks.json"))
            .header("origin", origin)
            .send()
            .await
            .expect("sent");
        assert_eq!(jwks.status(), 200);
        assert_eq!(jwks.headers()["vary"], "origin");
        let allowed = jwks.headers().get("access-control-allow-origin");
        assert_eq!(
            allowed.is_some(),
            origin == "https://app.example.com",
            "{origin}: {allowed:?}"
        );
    }
}

#[test]
fn cors_origins_that_are_not_origins_stop_start_up() {
    use latchkey::configuration::Settings;
    for bad in ["*", "app.example.com", "https://app.example.com/"] {
        let env = [(
            "LATCHKEY_SECURITY__CORS_ORIGINS".to_string(),
            bad.to_string(),
        )];
        let error = Settings::load_from(None, Some(env.into_iter().collect()));
        let message = error.expect_err("refused").to_string();
        assert!(message.contains("security.cors_origins"), "{message}");
    }
}

/// Sends `head` on a raw connection and reads until the peer closes or `limit` passes;
/// returns what was read and how long it took.
async fn raw_exchange(app: &TestApp, head: &[u8], limit: Duration) -> (String, Duration) {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(head).await.expect("write");
    let started = Instant::now();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut received)).await;
    (
        String::from_utf8_lossy(&received).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_refused_without_a_crash() {
    let app = TestApp::spawn().await;
    let mut many = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    for i in 0..200 {
        many.push_str(&format!("x-h{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let (answer, _) = raw_exchange(&app, many.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let (answer, _) = raw_exchange(&app, huge.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    // And the service is still there.
    let health = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_client_sending_its_headers_byte_by_byte_is_cut_off_within_the_header_timeout() {
    let app = TestApp::spawn_with(|s| s.server.header_timeout = 1).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&address).await.expect("connect");
    let started = Instant::now();
    let request = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-slow: "
        .iter()
        .chain([b'a'; 200].iter());
    let mut cut_off = false;
    for byte in request {
        if stream.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        // Data the peer closed on: a read sees the end or a reset.
        let mut probe = [0u8; 64];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(50), stream.read(&mut probe)).await
        {
            assert!(
                !matches!(read, Ok(n) if n > 0 && probe.starts_with(b"HTTP/1.1 2")),
                "answered"
            );
            cut_off = true;
            break;
        }
    }
    let elapsed = started.elapsed();
    assert!(cut_off, "still connected after {elapsed:?}");
    assert!(
        elapsed < Duration::from_secs(4),
        "cut off after {elapsed:?}"
    );
    // A normal client on a fresh connection is served.
    let health = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("sent");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn an_oversized_body_is_refused_where_it_is_read_and_ignored_where_none_is_taken() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(256 * 1024);
    let post = |path: &str| {
        app.http
            .post(app.url(path))
            .header("content-type", "application/json")
            .body(huge.clone())
            .send()
    };
    // Self-registration reads its body (before it finds registration switched off).
    let register = post("/users").await.expect("sent");
    assert_oauth_error(register, 413, "invalid_request").await;
    // Rotating a secret takes no body: the answer is the one a bodiless request gets.
    let rotate = post("/admin/clients/web/secret").await.expect("sent");
    assert_oauth_error(rotate, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_stalled_request_body_gets_a_json_503_within_the_request_timeout() {
    let app = TestApp::spawn_with(|s| s.server.request_timeout = 1).await;
    let head = b"POST /oauth/token HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type=";
    let (answer, elapsed) = raw_exchange(&app, head, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(
        answer.contains("\"error\":\"temporarily_unavailable\""),
        "{answer}"
    );
    assert!(
        elapsed < Duration::from_secs(4),
        "answered after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_argon2_queue_bound_logins_get_503_with_retry_after() {
    let app = TestApp::spawn_with(|s| {
        s.passwords.memory_kib = 16 * 1024;
        s.passwords.iterations = 4;
        s.passwords.max_concurrent = 1;
        s.passwords.max_queue = 1;
        s.security.max_failed_logins_per_address = 0;
        s.security.max_failed_logins_per_user_address = 0;
        s.security.max_failed_logins_per_user = 0;
    })
    .await;
    app.add_client("web", true, &[GrantType::Password], &[], &[])
        .await;
    let attempts = (0..24).map(|i| {
        let http = app.http.clone();
        let url = app.url("/oauth/token");
        tokio::spawn(async move {
            let user = format!("user{i}");
            let form = [
                ("grant_type", "password"),
                ("username", user.as_str()),
                ("password", "wrong password"),
                ("client_id", "web"),
            ];
            http.post(url).form(&form).send().await.expect("sent")
        })
    });
    let mut busy = None;
    let mut refused = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        let response = attempt.await.expect("joined");
        match response.status().as_u16() {
            503 => busy = Some(response),
            400 => refused += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 1, "some logins were checked");
    let busy = busy.expect("some logins were turned away");
    assert_eq!(busy.headers()["retry-after"], "1");
    assert_oauth_error(busy, 503, "temporarily_unavailable").await;
}

/// POSTs (or sends `method` with) a raw JSON body, so that a member can be given twice.
async fn send_json(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, app.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("sent")
}

#[tokio::test]
async fn a_json_body_with_a_member_twice_is_refused_wherever_a_json_body_is_read() {
    use reqwest::Method;
    let app = TestApp::spawn_with(|s| s.registration.enabled = true).await;
    app.with_user_and_web_client().await;
    app.add_user("root", "root password", &["admin"]).await;
    app.add_client("console", true, &[GrantType::Password], &["admin"], &[])
        .await;

    // The token endpoint's JSON form: a proxy reading the first `username` sees alice.
    let token = send_json(
        &app,
        Method::POST,
        "/oauth/token",
        None,
        r#"{"grant_type":"password","username":"alice","password":"correct horse","client_id":"web","username":"root"}"#,
    )
    .await;
    let body = assert_oauth_error(token, 400, "invalid_request").await;
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("'username'")),
        "{body}"
    );
    // Without the second member the same request is served.
    let token = send_json(
        &app,
        Method::POST,
        "/oauth/token",
        None,
        r#"{"grant_type":"password","username":"root","password":"root password","client_id":"console","scope":"admin"}"#,
    )
    .await;
    assert_eq!(token.status(), 200);
    let tokens: Value = token.json().await.expect("json");
    let root = tokens["access_token"].as_str().expect("token").to_owned();

    // Registration, with the duplicate nested in a member nobody reads.
    let register = send_json(
        &app,
        Method::POST,
        "/users",
        None,
        r#"{"username":"mallory","password":"long enough password","extra":{"x":[{"k":1,"k":2}]}}"#,
    )
    .await;
    assert_oauth_error(register, 400, "invalid_request").await;

    // Every admin body.
    let refused = [
        (
            Method::POST,
            "/admin/users",
            r#"{"username":"bob","password":"long enough password","roles":[],"roles":["admin"]}"#,
        ),
        (
            Method::PATCH,
            "/admin/users/alice",
            r#"{"roles":["user"],"roles":["admin"]}"#,
        ),
        (
            Method::POST,
            "/admin/users/alice/password",
            r#"{"password":"another password","password":"a third password"}"#,
        ),
        (
            Method::POST,
            "/admin/clients",
            r#"{"client_id":"svc","client_id":"svc2","grants":["client_credentials"]}"#,
        ),
        (
            Method::PATCH,
            "/admin/clients/web",
            r#"{"scopes":["read"],"scopes":["read","write","admin"]}"#,
        ),
    ];
    for (method, path, body) in refused {
        let answer = send_json(&app, method.clone(), path, Some(&root), body).await;
        assert_eq!(answer.status(), 400, "{method} {path}");
        assert_oauth_error(answer, 400, "invalid_request").await;
    }
    // Nothing of the refused requests happened.
    for (path, status) in [
        ("/admin/users/mallory", 404),
        ("/admin/users/bob", 404),
        ("/admin/clients/svc", 404),
        ("/admin/clients/svc2", 404),
    ] {
        let answer = app
            .http
            .get(app.url(path))
            .bearer_auth(&root)
            .send()
            .await
            .expect("sent");
        assert_eq!(answer.status(), status, "{path}");
    }
    let alice: Value = app
        .http
        .get(app.url("/admin/users/alice"))
        .bearer_auth(&root)
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    assert_eq!(alice["roles"], json!(["user"]), "{alice}");
    app.login().await;

    // An operation that reads no body answers as it would without one.
    app.add_client("reports", false, &[GrantType::ClientCredentials], &[], &[])
        .await;
    let rotated = send_json(
        &app,
        Method::POST,
        "/admin/clients/reports/secret",
        Some(&root),
        r#"{"a":1,"a":2}"#,
    )
    .await;
    assert_eq!(rotated.status(), 200);
}

/// What an HTTP/2 client sends first, then an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend(payload);
    bytes
}

/// Reads until the peer closes (or errs), at most `limit`; how long that took, or `None` if the
/// connection was still open at the end.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut sink = Vec::new();
    tokio::time::timeout(limit, stream.read_to_end(&mut sink))
        .await
        .ok()
        .map(|_| started.elapsed())
}

/// An h2c connection (prior knowledge) on which `GET /healthz` has been answered.
async fn h2c_after_one_request(app: &TestApp) -> TcpStream {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[]));
    // HPACK: :method GET, :scheme http, :path /healthz, :authority x (RFC 7541 appendix A).
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend(b"/healthz");
    block.extend([0x01, 1, b'x']);
    // END_STREAM | END_HEADERS
    hello.extend(h2_frame(0x1, 0x5, 1, &block));
    stream.write_all(&hello).await.expect("write");
    loop {
        let mut head = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
            .await
            .expect("an answer in time")
            .expect("a frame");
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).await.expect("payload");
        let (kind, flags) = (head[3], head[4]);
        if kind == 0x4 && flags & 0x1 == 0 {
            stream
                .write_all(&h2_frame(0x4, 0x1, 0, &[]))
                .await
                .expect("settings ack");
        }
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        // HEADERS or DATA with END_STREAM on stream 1: answered.
        if stream_id == 1 && (kind == 0x0 || kind == 0x1) && flags & 0x1 != 0 {
            return stream;
        }
    }
}

#[tokio::test]
async fn an_h2c_connection_that_sends_only_the_preface_is_closed_within_the_header_timeout() {
    let app = TestApp::spawn_with(|s| s.server.header_timeout = 1).await;
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.write_all(H2_PREFACE).await.expect("write");
    let closed = until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        closed.is_some_and(|after| after < Duration::from_secs(4)),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn an_h2c_header_block_that_never_ends_is_cut_off_within_the_header_timeout() {
    // The idle timeout is far off: only the header timeout can end this connection in time.
    let app = TestApp::spawn_with(|s| {
        s.server.header_timeout = 1;
        s.server.idle_timeout = 120;
    })
    .await;
    let mut stream = h2c_after_one_request(&app).await;
    // A HEADERS frame without END_HEADERS: the CONTINUATION it announces never comes.
    stream
        .write_all(&h2_frame(0x1, 0x1, 3, &[0x82, 0x86]))
        .await
        .expect("write");
    let closed = until_closed(&mut stream, Duration::from_secs(10)).await;
    assert!(
        closed.is_some_and(|after| after < Duration::from_secs(4)),
        "closed after {closed:?}"
    );
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout_over_http1_and_h2c() {
    let app = TestApp::spawn_with(|s| {
        s.server.request_timeout = 1;
        s.server.idle_timeout = 2;
    })
    .await;
    let mut h2 = h2c_after_one_request(&app).await;
    // A ping is not a request: it does not keep the connection.
    h2.write_all(&h2_frame(0x6, 0, 0, &[0; 8]))
        .await
        .expect("ping");
    let closed = until_closed(&mut h2, Duration::from_secs(10)).await;
    assert!(
        closed
            .is_some_and(|after| after >= Duration::from_secs(1) && after < Duration::from_secs(5)),
        "h2c closed after {closed:?}"
    );

    let address = app.address.trim_start_matches("http://");
    let mut http1 = TcpStream::connect(address).await.expect("connect");
    http1
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = [0u8; 12];
    http1.read_exact(&mut answer).await.expect("an answer");
    assert_eq!(&answer, b"HTTP/1.1 200");
    let closed = until_closed(&mut http1, Duration::from_secs(10)).await;
    assert!(
        closed
            .is_some_and(|after| after >= Duration::from_secs(1) && after < Duration::from_secs(5)),
        "HTTP/1.1 closed after {closed:?}"
    );
}
