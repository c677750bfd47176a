//! Stopping the real binary under load loses nothing it took in: SIGTERM while clients hammer
//! it fails no request that reached it (a refused connection after the stop is the only error
//! allowed), the process exits 0 within its bound and closes its store; and a rolling restart of
//! two replicas on one Redis, behind a proxy that retries only refused connections, loses no
//! request at all.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/process.rs"]
mod process;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use process::{Service, Workdir};
use redis_server::{RedisServer, free_port};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

/// How long the load may take to reach a milestone before the test gives up.
const MILESTONE_DEADLINE: Duration = Duration::from_secs(60);

/// What the clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    refused: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
    /// Woken whenever a request ends, however it ended.
    progress: tokio::sync::Notify,
}

impl Tally {
    fn ok(&self) -> usize {
        self.ok.load(Ordering::Acquire)
    }

    fn failures(&self) -> Vec<String> {
        self.failures.lock().unwrap().clone()
    }

    /// Waits (bounded) until `more` requests have succeeded since `since`.
    async fn wait_for_successes(&self, since: usize, more: usize) {
        let end = tokio::time::Instant::now() + MILESTONE_DEADLINE;
        loop {
            let progress = self.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            assert!(
                self.failures().is_empty(),
                "failures: {:?}",
                self.failures()
            );
            if self.ok() >= since + more {
                return;
            }
            let waited = tokio::time::timeout_at(end, progress).await;
            assert!(
                waited.is_ok(),
                "the load stalled at {} successes",
                self.ok()
            );
        }
    }
}

/// A request the load sends again and again.
#[derive(Clone)]
struct Request {
    url: String,
    form: Vec<(String, String)>,
    basic: Option<(String, String)>,
}

/// Sends `request` in a loop, each time on a new connection and with its own request id, until
/// `stop` is set or (with `until_refused`) the service refuses a connection.
async fn load(
    worker: usize,
    request: Request,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    until_refused: bool,
) {
    // No pooling: every request opens its own connection, so "refused" means exactly that the
    // service took nothing in.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    for n in 0.. {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let id = format!("load-{worker}-{n}");
        let mut builder = http
            .post(&request.url)
            .header("x-request-id", &id)
            .form(&request.form);
        if let Some((user, password)) = &request.basic {
            builder = builder.basic_auth(user, Some(password));
        }
        match builder.send().await {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(_) if status == 200 => {
                        tally.ok.fetch_add(1, Ordering::AcqRel);
                    }
                    Ok(body) => tally
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("{id}: {status} {}", String::from_utf8_lossy(&body))),
                    Err(error) => tally
                        .failures
                        .lock()
                        .unwrap()
                        .push(format!("{id}: body: {error:?}")),
                }
            }
            Err(error) if error.is_connect() => {
                tally.refused.fetch_add(1, Ordering::AcqRel);
                if until_refused {
                    tally.progress.notify_waiters();
                    return;
                }
            }
            Err(error) => tally
                .failures
                .lock()
                .unwrap()
                .push(format!("{id}: {error:?}")),
        }
        tally.progress.notify_waiters();
    }
}

/// Starts `workers` load loops.
fn start_load(
    workers: usize,
    request: &Request,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
    until_refused: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|worker| {
            tokio::spawn(load(
                worker,
                request.clone(),
                tally.clone(),
                stop.clone(),
                until_refused,
            ))
        })
        .collect()
}

async fn join_all(handles: Vec<tokio::task::JoinHandle<()>>) {
    for handle in handles {
        tokio::time::timeout(MILESTONE_DEADLINE, handle)
            .await
            .expect("a load worker ends")
            .unwrap();
    }
}

/// Sends SIGTERM from a blocking thread (the wait for the exit blocks) while the load goes on.
async fn terminate(service: Service) -> process::Stopped {
    tokio::task::spawn_blocking(move || service.terminate())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_request_the_service_took_in() {
    // Real-sized password hashes, so that requests are still running when the signal comes.
    let dir = Workdir::new()
        .env("LATCHKEY_PASSWORDS__MEMORY_KIB", "8192")
        .env("LATCHKEY_PASSWORDS__ITERATIONS", "2");
    let service = dir.serve();
    let client = dir.run(&["clients", "add", "web", "--public", "--grant", "password"]);
    assert!(client.success(), "{}", client.stderr());
    let user = dir.run_with_stdin(
        &["users", "add", "alice", "--password-stdin"],
        Some("correct horse\n"),
    );
    assert!(user.success(), "{}", user.stderr());

    let request = Request {
        url: service.url("/oauth/token"),
        form: [
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "correct horse"),
            ("client_id", "web"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .to_vec(),
        basic: None,
    };
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_load(6, &request, &tally, &stop, true);
    tally.wait_for_successes(0, 30).await;

    let started = Instant::now();
    let stopped = terminate(service).await;
    let took = started.elapsed();
    join_all(workers).await;

    stopped.assert_clean_exit();
    assert!(took < Duration::from_secs(13), "the stop took {took:?}");
    assert_eq!(
        tally.failures(),
        Vec::<String>::new(),
        "requests taken in must succeed"
    );
    assert!(tally.ok() >= 30);
    assert_eq!(
        tally.refused.load(Ordering::Acquire),
        6,
        "every worker ended on a refusal"
    );

    // Requests were in flight when the drain began, and they were answered.
    let messages: Vec<&Value> = stopped.logs.iter().collect();
    let drain = messages
        .iter()
        .position(|line| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutting down"))
        })
        .expect("the drain is logged");
    let finished_after = messages[drain..]
        .iter()
        .filter(|line| line["target"] == "access" && line["status"] == 200)
        .count();
    assert!(
        finished_after >= 1,
        "no request was in flight at the signal"
    );
    assert!(
        messages
            .iter()
            .any(|line| line["message"] == "store closed")
    );
    // Closing the last connection folds the write-ahead log back into the database file.
    let wal = dir.join("data/latchkey.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "{wal:?} is left"
    );
}

/// A loopback TCP proxy like the compose file's: round-robin over the replicas, and another
/// replica when one refuses the connection, never a retry once bytes have gone upstream.
struct Proxy {
    address: SocketAddr,
    /// Refused connections that were sent to another replica.
    retried: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    async fn start(upstreams: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let retried = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(0));
        let counter = retried.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let upstreams = upstreams.clone();
                let next = next.clone();
                let retried = counter.clone();
                tokio::spawn(async move {
                    let Some(mut outbound) = connect(&upstreams, &next, &retried).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Proxy {
            address,
            retried,
            task,
        }
    }
}

/// The next replica that accepts the connection. Only refusals are retried; while every
/// replica refuses (none should, in a rolling restart), it keeps trying for a bounded time.
async fn connect(
    upstreams: &[SocketAddr],
    next: &AtomicUsize,
    retried: &AtomicUsize,
) -> Option<TcpStream> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let upstream = upstreams[next.fetch_add(1, Ordering::AcqRel) % upstreams.len()];
        match TcpStream::connect(upstream).await {
            Ok(stream) => return Some(stream),
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                retried.fetch_add(1, Ordering::AcqRel);
                if Instant::now() >= end {
                    return None;
                }
                tokio::task::yield_now().await;
            }
            Err(_) => return None,
        }
    }
}

/// One replica's directory: its own port, the shared Redis and the first replica's keys.
fn replica(redis: &RedisServer, port: u16, keys: Option<&Workdir>) -> Workdir {
    let mut dir = Workdir::new()
        .env("LATCHKEY_STORE__BACKEND", "redis")
        .env("LATCHKEY_STORE__URL", &redis.url())
        .env("LATCHKEY_ISSUER", "http://latchkey.test")
        .env("LATCHKEY_SERVER__BIND", &format!("127.0.0.1:{port}"));
    if let Some(first) = keys {
        dir.set_env("LATCHKEY_KEYS__DIR", first.join("keys").to_str().unwrap());
    }
    dir
}

/// Whether a replica's log shows a request of the load answered.
fn served_load(logs: &[Value]) -> bool {
    logs.iter().any(|line| {
        line["target"] == "access"
            && line["status"] == 200
            && line["span"]["request_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("load-"))
    })
}

/// Restarts `service` (same directory, same port) while the load runs, and waits until the new
/// process has answered part of the load.
async fn restart(service: Service, dir: &Workdir, tally: &Tally) -> Service {
    let stopped = terminate(service).await;
    stopped.assert_clean_exit();
    assert!(
        served_load(&stopped.logs),
        "the replica had taken part in the load"
    );
    let mut fresh = dir.serve();
    let end = Instant::now() + MILESTONE_DEADLINE;
    while !served_load(fresh.logs()) {
        assert!(Instant::now() < end, "the restarted replica got no request");
        tally.wait_for_successes(tally.ok(), 1).await;
    }
    fresh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_two_replicas_behind_a_retrying_proxy_loses_no_request() {
    let redis = RedisServer::start();
    let (port_a, port_b) = (free_port(), free_port());
    let dir_a = replica(&redis, port_a, None);
    let first = dir_a.serve();
    let dir_b = replica(&redis, port_b, Some(&dir_a));
    let second = dir_b.serve();
    let secret = dir_a.run(&["clients", "add", "svc"]).json()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();

    let upstreams = vec![
        SocketAddr::from(([127, 0, 0, 1], port_a)),
        SocketAddr::from(([127, 0, 0, 1], port_b)),
    ];
    let proxy = Proxy::start(upstreams).await;
    let request = Request {
        url: format!("http://{}/oauth/token", proxy.address),
        form: vec![("grant_type".into(), "client_credentials".into())],
        basic: Some(("svc".into(), secret)),
    };
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let workers = start_load(4, &request, &tally, &stop, false);
    tally.wait_for_successes(0, 50).await;

    let first = restart(first, &dir_a, &tally).await;
    tally.wait_for_successes(tally.ok(), 50).await;
    let second = restart(second, &dir_b, &tally).await;
    tally.wait_for_successes(tally.ok(), 50).await;

    stop.store(true, Ordering::Release);
    join_all(workers).await;
    assert_eq!(
        tally.failures(),
        Vec::<String>::new(),
        "no request may be lost"
    );
    assert_eq!(
        tally.refused.load(Ordering::Acquire),
        0,
        "the proxy always found a replica"
    );
    assert!(
        proxy.retried.load(Ordering::Acquire) >= 1,
        "a stopped replica refused connections"
    );
    terminate(first).await.assert_clean_exit();
    terminate(second).await.assert_clean_exit();
}
