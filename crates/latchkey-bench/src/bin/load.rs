//! A closed-loop HTTP/1.1 load generator for `bench/run`.
//!
//! `--concurrency` connections (keep-alive, reconnecting whenever the server closes one) each
//! send one request after another for `--warmup` plus `--duration` seconds, stopping early at
//! `--max-requests` or when the `--vars` file runs out. Only answers that arrive inside the
//! measured window count. Latency percentiles are exact (every latency is kept; at most
//! `--max-requests` of them).
//!
//! `--vars FILE` gives one value per line, each used by exactly one request, substituted for
//! `{var}` in the body and header values: every refresh request gets its own refresh token.
//! `--capture FIELD --capture-out FILE` writes the string member FIELD of every 2xx JSON answer
//! to FILE, one per line (pre-issuing a pool of refresh tokens).
//!
//! With `--pid`, the server processes (and their descendants) are watched: their CPU time
//! (`utime + stime` from `/proc/PID/stat`) over the measured window, their resident memory
//! sampled every 50 ms (peak of the sum), and `VmHWM` at the end.
//!
//! Prints a JSON summary (to `--out` or stdout) and a one-line digest to stderr.

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, HOST, HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use latchkey_bench::{own_cpu_time, tree_cpu_time, tree_status_kib};
use serde_json::json;
use tokio::net::TcpStream;

#[derive(Debug, Parser)]
#[command(about = "Closed-loop HTTP/1.1 load generator (bench/run)")]
struct Args {
    /// Target, `http://HOST:PORT/PATH`; several spread the connections round-robin (replicas).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// `Name: value`; may contain `{var}`.
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Request body; may contain `{var}`.
    #[arg(long)]
    body: Option<String>,
    /// One value per line, each used by one request.
    #[arg(long)]
    vars: Option<PathBuf>,
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Requests to send at most, warm-up included.
    #[arg(long, default_value_t = 5_000_000)]
    max_requests: u64,
    /// Seconds one request (connect included) may take before it counts as an error.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Threads of the generator itself.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long)]
    capture: Option<String>,
    #[arg(long)]
    capture_out: Option<PathBuf>,
    /// Server process to watch (with its descendants); repeatable.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    #[arg(long, default_value = "")]
    label: String,
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A parsed `http://` URL.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    path: String,
}

fn parse_target(url: &str) -> Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("only http:// targets: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .ok_or_else(|| anyhow!("{authority} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        bail!("{authority}: the bench only targets loopback addresses");
    }
    Ok(Target {
        addr,
        host: HeaderValue::from_str(authority)?,
        path: path.to_owned(),
    })
}

/// What every request is made of.
struct Template {
    method: Method,
    headers: Vec<(HeaderName, String)>,
    body: Option<String>,
}

impl Template {
    fn request(&self, target: &Target, var: Option<&str>) -> Result<Request<Full<Bytes>>> {
        let fill = |s: &str| match var {
            Some(v) => s.replace("{var}", v),
            None => s.to_owned(),
        };
        let mut builder = Request::builder()
            .method(self.method.clone())
            .uri(target.path.as_str())
            .header(HOST, target.host.clone());
        for (name, value) in &self.headers {
            builder = builder.header(name, fill(value));
        }
        let body = self.body.as_deref().map(fill).unwrap_or_default();
        Ok(builder.body(Full::new(Bytes::from(body)))?)
    }
}

struct Shared {
    template: Template,
    targets: Vec<Target>,
    vars: Option<Vec<String>>,
    next_var: AtomicUsize,
    issued: AtomicU64,
    max_requests: u64,
    measure_from: Instant,
    measure_until: Instant,
    timeout: Duration,
    stop: AtomicBool,
    exhausted: AtomicBool,
    capture: Option<String>,
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    ok: u64,
    /// 2xx answers in and out of the measured window (warm-up and tail included).
    ok_all: u64,
    non_2xx: u64,
    errors: u64,
    timeouts: u64,
    statuses: BTreeMap<u16, u64>,
    connects: u64,
    captured: Vec<String>,
    last_done: Option<Instant>,
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn capture_field(body: &[u8], field: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let key = format!("\"{field}\":\"");
    let start = text.find(&key)? + key.len();
    let len = text[start..].find('"')?;
    Some(text[start..start + len].to_owned())
}

async fn worker(shared: Arc<Shared>, index: usize) -> Tally {
    let target = shared.targets[index % shared.targets.len()].clone();
    let mut tally = Tally::default();
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        if Instant::now() >= shared.measure_until || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        if shared.issued.fetch_add(1, Ordering::Relaxed) >= shared.max_requests {
            shared.stop.store(true, Ordering::Relaxed);
            break;
        }
        let var = match &shared.vars {
            Some(vars) => {
                let i = shared.next_var.fetch_add(1, Ordering::Relaxed);
                match vars.get(i) {
                    Some(v) => Some(v.as_str()),
                    None => {
                        shared.exhausted.store(true, Ordering::Relaxed);
                        shared.stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            }
            None => None,
        };
        let request = match shared.template.request(&target, var) {
            Ok(request) => request,
            Err(_) => {
                tally.errors += 1;
                break;
            }
        };
        let started = Instant::now();
        let attempt = async {
            if sender.as_ref().is_none_or(|s| s.is_closed()) {
                sender = Some(connect(target.addr).await?);
                tally.connects += 1;
            }
            let Some(s) = sender.as_mut() else {
                bail!("no connection");
            };
            s.ready().await?;
            let response = s.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            Ok::<_, anyhow::Error>((parts, bytes))
        };
        let outcome = tokio::time::timeout(shared.timeout, attempt).await;
        let done = Instant::now();
        let counted = done >= shared.measure_from && done <= shared.measure_until;
        match outcome {
            Ok(Ok((parts, bytes))) => {
                let closing = parts
                    .headers
                    .get(CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                if closing {
                    sender = None;
                }
                let success = parts.status.is_success();
                if success {
                    tally.ok_all += 1;
                }
                if success && let Some(field) = &shared.capture {
                    tally.captured.extend(capture_field(&bytes, field));
                }
                if counted {
                    *tally.statuses.entry(parts.status.as_u16()).or_default() += 1;
                    if success {
                        tally.ok += 1;
                        let us = done.duration_since(started).as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(us).unwrap_or(u32::MAX));
                        tally.last_done = Some(done);
                    } else {
                        tally.non_2xx += 1;
                    }
                }
            }
            Ok(Err(_)) => {
                sender = None;
                if counted {
                    tally.errors += 1;
                }
                // A refused connection must not become a busy loop.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(_) => {
                sender = None;
                if counted {
                    tally.timeouts += 1;
                }
            }
        }
    }
    tally
}

/// Watches the server processes during the measured window, from its own thread so that a
/// saturated generator does not delay the readings.
struct Watch {
    cpu_s: f64,
    peak_rss_kib: u64,
    own_cpu_s: f64,
}

fn watch(shared: &Shared, pids: &[u32]) -> Watch {
    let now = Instant::now();
    if shared.measure_from > now {
        std::thread::sleep(shared.measure_from - now);
    }
    let (cpu0, own0) = (tree_cpu_time(pids), own_cpu_time());
    let mut peak = tree_status_kib(pids, "VmRSS");
    // Bounded by the measured window (and by an early stop).
    while Instant::now() < shared.measure_until && !shared.stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        peak = peak.max(tree_status_kib(pids, "VmRSS"));
    }
    if shared.stop.load(Ordering::Relaxed) {
        // Let the requests in flight at the stop finish, as they are counted.
        std::thread::sleep(Duration::from_millis(50));
    }
    Watch {
        cpu_s: (tree_cpu_time(pids).saturating_sub(cpu0)).as_secs_f64(),
        peak_rss_kib: peak,
        own_cpu_s: (own_cpu_time().saturating_sub(own0)).as_secs_f64(),
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.concurrency > 4096 {
        bail!("--concurrency must be 1..=4096");
    }
    let targets = args
        .urls
        .iter()
        .map(|u| parse_target(u))
        .collect::<Result<Vec<_>>>()?;
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow!("a header is 'Name: value': {header}"))?;
        headers.push((
            HeaderName::from_bytes(name.trim().as_bytes())?,
            value.trim().to_owned(),
        ));
    }
    let vars = match &args.vars {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        ),
        None => None,
    };
    let begin = Instant::now();
    let measure_from = begin + Duration::from_secs_f64(args.warmup);
    let shared = Arc::new(Shared {
        template: Template {
            method: Method::from_bytes(args.method.as_bytes())?,
            headers,
            body: args.body.clone(),
        },
        targets,
        vars,
        next_var: AtomicUsize::new(0),
        issued: AtomicU64::new(0),
        max_requests: args.max_requests,
        measure_from,
        measure_until: measure_from + Duration::from_secs_f64(args.duration),
        timeout: Duration::from_secs_f64(args.timeout),
        stop: AtomicBool::new(false),
        exhausted: AtomicBool::new(false),
        capture: args.capture.clone(),
    });

    let watcher = {
        let (shared, pids) = (shared.clone(), args.pids.clone());
        std::thread::spawn(move || watch(&shared, &pids))
    };
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let tallies: Vec<Tally> = runtime.block_on(async {
        let handles: Vec<_> = (0..args.concurrency)
            .map(|i| tokio::spawn(worker(shared.clone(), i)))
            .collect();
        let mut tallies = Vec::with_capacity(handles.len());
        for handle in handles {
            tallies.push(handle.await.unwrap_or_default());
        }
        tallies
    });
    let watched = watcher
        .join()
        .map_err(|_| anyhow!("the watcher thread panicked"))?;

    let mut total = Tally::default();
    for t in tallies {
        total.latencies_us.extend(t.latencies_us);
        total.ok += t.ok;
        total.ok_all += t.ok_all;
        total.non_2xx += t.non_2xx;
        total.errors += t.errors;
        total.timeouts += t.timeouts;
        total.connects += t.connects;
        total.captured.extend(t.captured);
        for (status, n) in t.statuses {
            *total.statuses.entry(status).or_default() += n;
        }
        total.last_done = total.last_done.max(t.last_done);
    }
    if let (Some(path), true) = (&args.capture_out, args.capture.is_some()) {
        let mut text = total.captured.join("\n");
        text.push('\n');
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let exhausted = shared.exhausted.load(Ordering::Relaxed);
    let stopped_early = shared.stop.load(Ordering::Relaxed);
    let window_end = if stopped_early {
        total
            .last_done
            .unwrap_or(shared.measure_until)
            .min(shared.measure_until)
    } else {
        shared.measure_until
    };
    let window_s = window_end
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-3);
    total.latencies_us.sort_unstable();
    let lat = &total.latencies_us;
    let mean_ms = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64 / 1000.0
    };
    let rps = total.ok as f64 / window_s;
    let watched_pids = !args.pids.is_empty();
    let summary = json!({
        "label": args.label,
        "urls": args.urls,
        "method": args.method,
        "concurrency": args.concurrency,
        "threads": args.threads,
        "window_s": window_s,
        "ok": total.ok,
        "ok_all": total.ok_all,
        "non_2xx": total.non_2xx,
        "errors": total.errors,
        "timeouts": total.timeouts,
        "statuses": total.statuses,
        "connects": total.connects,
        "rps": rps,
        "latency_ms": {
            "p50": percentile(lat, 50.0),
            "p90": percentile(lat, 90.0),
            "p99": percentile(lat, 99.0),
            "p999": percentile(lat, 99.9),
            "max": percentile(lat, 100.0),
            "mean": mean_ms,
        },
        "vars_exhausted": exhausted,
        "stopped_early": stopped_early,
        "captured": total.captured.len(),
        "server": if watched_pids { json!({
            "pids": args.pids,
            "cpu_s": watched.cpu_s,
            "cpu_us_per_ok": if total.ok > 0 { watched.cpu_s * 1e6 / total.ok as f64 } else { 0.0 },
            "cpu_cores_busy": watched.cpu_s / window_s,
            "peak_rss_kib": watched.peak_rss_kib,
            "hwm_kib": tree_status_kib(&args.pids, "VmHWM"),
        }) } else { serde_json::Value::Null },
        "generator_cpu_s": watched.own_cpu_s,
    });
    eprintln!(
        "{:<40} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ok {} non2xx {} err {}{}",
        args.label,
        rps,
        percentile(lat, 50.0),
        percentile(lat, 99.0),
        total.ok,
        total.non_2xx,
        total.errors + total.timeouts,
        if watched_pids {
            format!(
                "  server {:.0} us/req",
                watched.cpu_s * 1e6 / total.ok.max(1) as f64
            )
        } else {
            String::new()
        }
    );
    let text = serde_json::to_string_pretty(&summary)?;
    match &args.out {
        Some(path) => std::fs::write(path, text + "\n")
            .with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    Ok(())
}
