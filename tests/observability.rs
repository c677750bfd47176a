//! What operators see of the real binary: Prometheus metrics that count a flow exactly, JSON log
//! lines that carry the request id, an access line per request that leaks nothing, and the
//! `healthcheck` command that container images use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/process.rs"]
mod process;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeMap;

use process::{Service, Workdir};
use redis_server::free_port;
use serde_json::Value;

/// A service on the embedded store with client `web` (public; password and refresh_token),
/// client `svc` (confidential; client_credentials) and user `alice`. Returns `svc`'s secret.
fn service_with_accounts(dir: &Workdir) -> (Service, String) {
    let service = dir.serve();
    let web = dir.run(&[
        "clients",
        "add",
        "web",
        "--public",
        "--grant",
        "password",
        "--grant",
        "refresh_token",
    ]);
    assert!(web.success(), "{}", web.stderr());
    let svc = dir.run(&["clients", "add", "svc"]).json();
    let secret = svc["client_secret"].as_str().unwrap().to_owned();
    let alice = dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("correct horse\n"),
    );
    assert!(alice.success(), "{}", alice.stderr());
    (service, secret)
}

async fn token(
    http: &reqwest::Client,
    service: &Service,
    form: &[(&str, &str)],
) -> reqwest::Response {
    http.post(service.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn login(http: &reqwest::Client, service: &Service, password: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", password),
        ("client_id", "web"),
    ];
    token(http, service, &form).await
}

async fn refresh(
    http: &reqwest::Client,
    service: &Service,
    refresh_token: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_id", "web"),
    ];
    token(http, service, &form).await
}

/// One sample of the exposition: metric name and labels.
type Series = (String, BTreeMap<String, String>);

/// Parses the Prometheus text format (the subset the encoder writes: no escapes in our labels).
fn parse_exposition(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap();
                (key.to_owned(), value.trim_matches('"').to_owned())
            })
            .collect();
        samples.insert((name.to_owned(), labels), value.parse().unwrap());
    }
    samples
}

struct Scrape(BTreeMap<Series, f64>);

impl Scrape {
    /// The value of the series with exactly these labels; `None` if it is not exposed.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.0.get(&(name.to_owned(), labels)).copied()
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "{name}{labels:?} is not exposed; series: {:#?}",
                self.0.keys()
            )
        })
    }

    fn series_named(&self, name: &str) -> Vec<&BTreeMap<String, String>> {
        self.0
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l)
            .collect()
    }
}

#[tokio::test]
async fn a_flow_of_logins_refreshes_reuse_revocation_and_failures_is_counted_exactly() {
    // No grace window, so presenting a rotated refresh token again is reuse at once.
    let dir = Workdir::new().env("LATCHKEY_TOKENS__REFRESH_GRACE", "0");
    let (service, secret) = service_with_accounts(&dir);
    let http = reqwest::Client::new();

    let first: Value = login(&http, &service, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(login(&http, &service, "wrong horse").await.status(), 400);
    let spent = first["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&http, &service, spent).await.status(), 200);
    assert_eq!(refresh(&http, &service, spent).await.status(), 400, "reuse");
    let second: Value = login(&http, &service, "correct horse")
        .await
        .json()
        .await
        .unwrap();
    let revoke = http
        .post(service.url("/oauth/revoke"))
        .form(&[
            ("token", second["refresh_token"].as_str().unwrap()),
            ("client_id", "web"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    let machine = http
        .post(service.url("/oauth/token"))
        .basic_auth("svc", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(machine.status(), 200);
    assert_eq!(
        http.get(service.url("/nowhere/alice"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let response = http.get(service.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let scrape = Scrape(parse_exposition(&text));

    let issued = "latchkey_tokens_issued_total";
    assert_eq!(scrape.value(issued, &[("grant", "password")]), 2.0);
    assert_eq!(scrape.value(issued, &[("grant", "refresh_token")]), 1.0);
    assert_eq!(
        scrape.value(issued, &[("grant", "client_credentials")]),
        1.0
    );
    assert_eq!(
        scrape.value("latchkey_refreshes_total", &[("outcome", "rotated")]),
        1.0
    );
    assert_eq!(
        scrape.value("latchkey_refreshes_total", &[("outcome", "repeated")]),
        0.0
    );
    assert_eq!(
        scrape.value("latchkey_refresh_reuse_detected_total", &[]),
        1.0
    );
    assert_eq!(
        scrape.value("latchkey_revocations_total", &[("via", "revoke")]),
        1.0
    );
    assert_eq!(
        scrape.value("latchkey_revocations_total", &[("via", "logout")]),
        0.0
    );
    assert_eq!(scrape.value("latchkey_failed_logins_total", &[]), 1.0);
    assert_eq!(
        scrape.value("latchkey_client_auth_failures_total", &[]),
        0.0
    );
    assert_eq!(scrape.value("latchkey_rate_limit_refusals_total", &[]), 0.0);

    let requests = "latchkey_http_requests_total";
    let token_route = [("method", "POST"), ("route", "/oauth/token")];
    assert_eq!(
        scrape.value(
            requests,
            &[token_route[0], token_route[1], ("status", "200")]
        ),
        4.0
    );
    assert_eq!(
        scrape.value(
            requests,
            &[token_route[0], token_route[1], ("status", "400")]
        ),
        2.0
    );
    let revoked = [
        ("method", "POST"),
        ("route", "/oauth/revoke"),
        ("status", "200"),
    ];
    assert_eq!(scrape.value(requests, &revoked), 1.0);
    let lost = [("method", "GET"), ("route", "unmatched"), ("status", "404")];
    assert_eq!(scrape.value(requests, &lost), 1.0);
    let latency = "latchkey_http_request_duration_seconds_count";
    assert_eq!(scrape.value(latency, &token_route), 6.0);
    let in_a_second = [token_route[0], token_route[1], ("le", "1")];
    assert_eq!(
        scrape.value(
            "latchkey_http_request_duration_seconds_bucket",
            &in_a_second
        ),
        6.0
    );
    // The scrape itself is the one request in flight.
    assert_eq!(scrape.value("latchkey_http_requests_in_flight", &[]), 1.0);
    // Route labels are templates: nothing from a path reaches a label.
    for labels in scrape.series_named(requests) {
        assert!(
            !labels["route"].contains("alice") && !labels["route"].contains("nowhere"),
            "{labels:?}"
        );
    }

    assert_eq!(scrape.value("latchkey_password_hash_queue_depth", &[]), 0.0);
    let store = [("backend", "embedded")];
    assert!(scrape.value("latchkey_store_operation_duration_seconds_count", &store) >= 10.0);
    assert!(
        scrape
            .series_named("latchkey_store_errors_total")
            .is_empty(),
        "no store errors"
    );
    let keys = scrape.series_named("latchkey_signing_key_age_seconds");
    assert!(
        keys.iter()
            .any(|l| l["state"] == "active" && !l["kid"].is_empty()),
        "{keys:?}"
    );
    let version = [("version", env!("CARGO_PKG_VERSION"))];
    assert_eq!(scrape.value("latchkey_build_info", &version), 1.0);
    assert!(scrape.value("process_resident_memory_bytes", &[]) > 0.0);

    service.terminate().assert_clean_exit();
}

/// The log lines a request produced: every line whose span names `request_id`.
fn lines_of(logs: &[Value], request_id: &str) -> Vec<Value> {
    logs.iter()
        .filter(|line| line["span"]["request_id"] == request_id)
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_log_line_of_a_request_carries_its_request_id_and_the_response_says_it_too() {
    let dir = Workdir::new();
    let (mut service, secret) = service_with_accounts(&dir);
    let http = reqwest::Client::new();

    // The caller's id is kept: a failed login logs an audit warning and an access line.
    let response = http
        .post(service.url("/oauth/token"))
        .header("x-request-id", "trace-4711.a:b")
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wrong horse"),
            ("client_id", "web"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-request-id"], "trace-4711.a:b");

    // Without one (or with one that is not safe to log), the service makes one.
    let response = http.get(service.url("/healthz")).send().await.unwrap();
    let generated = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(generated.len(), 32, "{generated}");
    let response = http
        .get(service.url("/healthz"))
        .header("x-request-id", "x".repeat(500))
        .send()
        .await
        .unwrap();
    let replaced = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(replaced.len(), 32, "{replaced}");
    assert_ne!(replaced, generated);

    // Credentials in a header and a query string, which the log must never show.
    let machine = http
        .post(service.url("/oauth/token?client_secret=query-secret-value"))
        .basic_auth("svc", Some(&secret))
        .header("x-request-id", "machine-1")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(machine.status(), 200);
    let access_token = machine.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let access = service
        .wait_for_log(process::START_DEADLINE, |line| {
            line["target"] == "access" && line["span"]["request_id"] == "machine-1"
        })
        .unwrap();
    assert_eq!(access["method"], "POST");
    assert_eq!(access["route"], "/oauth/token");
    assert_eq!(access["status"], 200);
    assert!(
        access["latency_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "{access}"
    );
    assert_eq!(access["level"], "INFO");

    let logs = service.logs().to_vec();
    // Every line is one JSON object (the harness keeps any other line as a string).
    for line in &logs {
        assert!(
            ["level", "target", "timestamp"]
                .iter()
                .all(|member| line[member].is_string()),
            "{line}"
        );
    }
    let failed_login = lines_of(&logs, "trace-4711.a:b");
    let targets: Vec<&str> = failed_login
        .iter()
        .filter_map(|l| l["target"].as_str())
        .collect();
    assert!(
        targets.contains(&"audit") && targets.contains(&"access"),
        "{failed_login:?}"
    );
    assert_eq!(
        lines_of(&logs, &generated).len(),
        1,
        "one access line for /healthz"
    );
    assert_eq!(lines_of(&logs, &replaced).len(), 1);

    let everything: String = logs
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    for secret_text in [
        secret.as_str(),
        "query-secret-value",
        "correct horse",
        "wrong horse",
        &access_token,
    ] {
        assert!(
            !everything.contains(secret_text),
            "the log shows {secret_text}"
        );
    }
    assert!(
        !everything.contains("Basic "),
        "no Authorization header value in the log"
    );

    service.terminate().assert_clean_exit();
}

#[test]
fn the_configured_log_level_filters_the_access_lines() {
    let dir = Workdir::new().env("LATCHKEY_LOG__LEVEL", "info,access=off");
    let service = dir.serve();
    let answered = dir.run(&["healthcheck", "--url", &service.url("/healthz")]);
    assert!(answered.success(), "{}", answered.stderr());
    let stopped = service.terminate();
    stopped.assert_clean_exit();
    let logs = &stopped.logs;
    assert!(
        logs.iter().all(|line| line["target"] != "access"),
        "{logs:?}"
    );
    assert!(
        logs.iter().any(|line| line["message"] == "stopped"),
        "other lines still come"
    );
}

#[test]
fn healthcheck_exits_zero_for_a_live_service_and_non_zero_once_it_is_gone() {
    // A fixed port, so that the command finds the service through the configuration alone.
    let port = free_port();
    let dir = Workdir::new().env("LATCHKEY_SERVER__BIND", &format!("127.0.0.1:{port}"));
    let service = dir.serve();
    let healthy = dir.run(&["healthcheck"]);
    assert!(healthy.success(), "{}", healthy.stderr());
    let explicit = dir.run(&["healthcheck", "--url", &service.url("/healthz")]);
    assert!(explicit.success(), "{}", explicit.stderr());
    let not_found = dir.run(&["healthcheck", "--url", &service.url("/nowhere")]);
    assert!(not_found.failure().contains("404"));
    service.terminate().assert_clean_exit();
    let gone = dir.run(&["healthcheck", "--timeout", "2"]);
    assert_eq!(gone.code(), Some(1), "{}", gone.stderr());
}

#[tokio::test]
async fn the_jwks_answered_ahead_of_the_api_is_counted_and_carries_the_usual_headers() {
    let dir = Workdir::new();
    let service = dir.serve();
    let http = reqwest::Client::new();
    let url = service.url("/.well-known/jwks.json");

    let first = http.get(&url).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let headers = first.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
    assert!(headers.get("server").is_none());
    let first_id = headers["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(first_id.len(), 32, "{first_id}");
    let etag = headers["etag"].clone();

    let again = http
        .get(&url)
        .header("if-none-match", etag)
        .header("x-request-id", "poller-1")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["x-request-id"], "poller-1");
    let second = http.get(&url).send().await.unwrap();
    assert_ne!(second.headers()["x-request-id"].to_str().unwrap(), first_id);

    let text = http
        .get(service.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = Scrape(parse_exposition(&text));
    let jwks = [("method", "GET"), ("route", "/.well-known/jwks.json")];
    let count = |status| {
        scrape.value(
            "latchkey_http_requests_total",
            &[jwks[0], jwks[1], ("status", status)],
        )
    };
    assert_eq!(count("200"), 2.0);
    assert_eq!(count("304"), 1.0);
    assert_eq!(
        scrape.value(
            "latchkey_http_request_duration_seconds_count",
            &[jwks[0], jwks[1]]
        ),
        3.0
    );
}
