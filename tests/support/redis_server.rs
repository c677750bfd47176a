//! Real `redis-server` processes for tests: a standalone server, a 3-master Cluster and a
//! Sentinel, each on free loopback ports, each stopped when dropped.
//!
//! Include it with `#[path = "support/redis_server.rs"] mod redis_server;`.
//!
//! Every process is started under a small `sh` watchdog that holds a pipe from the test
//! process: when the test process ends in any way (even killed, or holding a server in a
//! `static` that is never dropped), the pipe closes and the watchdog kills its redis-server. No
//! test leaves a server running.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer PING after its start.
const START_DEADLINE: Duration = Duration::from_secs(20);
/// Attempts at finding ports that nobody grabs between our probe and redis' bind.
const PORT_ATTEMPTS: usize = 5;

/// Runs `redis-server "$@"` and kills it (SIGKILL) as soon as our end of stdin closes; exits
/// when redis-server exits. (A background job's stdin is /dev/null in `sh`, so the watcher reads
/// the pipe through fd 3.)
const WATCHDOG: &str = r#"exec 3<&0
redis-server "$@" 3<&- </dev/null &
pid=$!
(read _eof <&3; kill -9 "$pid" 2>/dev/null) &
exec 3<&-
wait "$pid""#;

fn spawn_redis(args: &[String]) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("redis-watchdog")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server (is it installed?)")
}

/// Closes the watchdog's stdin (it kills redis-server with SIGKILL) and waits for both to end.
fn kill(mut child: Child) {
    drop(child.stdin.take());
    let ended = wait_until(Duration::from_secs(10), || {
        matches!(child.try_wait(), Ok(Some(_)) | Err(_))
    });
    if !ended {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A port that was free a moment ago, for servers that must be told their port (redis cannot
/// bind port 0 and report it back; a replica restarts on its port). It is drawn below the
/// kernel's ephemeral range, where the outgoing connections of the tests running alongside
/// (which take their local ports from that range) cannot take it before the server binds it.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let (low, high) = (10_000u64, ephemeral_range_start().max(10_001));
    for _ in 0..1000 {
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u64(0);
        let Ok(port) = u16::try_from(low + random.finish() % (high - low)) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a probe socket on 127.0.0.1")
}

/// The first port of the kernel's ephemeral range (32768 when it cannot be read).
fn ephemeral_range_start() -> u64 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Sends one command in RESP and returns the reply flattened to text (array items one per
/// line), or None if nothing answered.
pub fn command(port: u16, args: &[&str]) -> Option<String> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500))
            .ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut request = format!("*{}\r\n", args.len());
    for arg in args {
        request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    stream.write_all(request.as_bytes()).ok()?;
    read_reply(&mut BufReader::new(stream))
}

fn read_reply(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let line = line.trim_end().to_owned();
    let (kind, rest) = line.split_at_checked(1)?;
    match kind {
        "+" | "-" | ":" => Some(line),
        "$" => {
            let len: i64 = rest.parse().ok()?;
            if len < 0 {
                return Some("$nil".to_owned());
            }
            let mut body = vec![0; usize::try_from(len).ok()? + 2];
            reader.read_exact(&mut body).ok()?;
            body.truncate(body.len() - 2);
            String::from_utf8(body).ok()
        }
        "*" => {
            let count: i64 = rest.parse().ok()?;
            let mut items = Vec::new();
            for _ in 0..count.max(0) {
                items.push(read_reply(reader)?);
            }
            Some(items.join("\n"))
        }
        _ => None,
    }
}

/// Polls `check` every 20 ms until it holds or `deadline` passes; returns whether it held.
pub fn wait_until(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Options for one server.
#[derive(Debug, Clone, Default)]
pub struct RedisServerOptions {
    /// AOF with `appendfsync always`: every write is on disk before it is acknowledged.
    pub aof_always: bool,
    /// A Redis Cluster node (`--cluster-enabled yes`, its bus on another free port).
    pub cluster: bool,
    /// Extra arguments, e.g. `["--replicaof", "127.0.0.1 6379"]`.
    pub args: Vec<String>,
}

/// One `redis-server` on 127.0.0.1 with its own data directory. Killed when dropped.
pub struct RedisServer {
    port: u16,
    /// The cluster bus port of a cluster node; kept across restarts (nodes.conf names it).
    bus_port: Option<u16>,
    dir: tempfile::TempDir,
    options: RedisServerOptions,
    child: Option<Child>,
}

impl RedisServer {
    /// A throwaway server: no RDB snapshots, no AOF.
    pub fn start() -> RedisServer {
        Self::start_with(RedisServerOptions::default())
    }

    pub fn start_with(options: RedisServerOptions) -> RedisServer {
        let mut server = RedisServer {
            port: 0,
            bus_port: None,
            dir: tempfile::tempdir().expect("create a temp dir for redis"),
            options,
            child: None,
        };
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            server.bus_port = server.options.cluster.then(free_port);
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            &self.dir.path().display().to_string(),
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "notice",
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let aof: &[&str] = if self.options.aof_always {
            &["--appendonly", "yes", "--appendfsync", "always"]
        } else {
            &["--appendonly", "no"]
        };
        args.extend(aof.iter().map(|s| (*s).to_owned()));
        if let Some(bus_port) = self.bus_port {
            let cluster = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--cluster-port",
                &bus_port.to_string(),
            ];
            args.extend(cluster.iter().map(|s| (*s).to_owned()));
        }
        args.extend(self.options.args.iter().cloned());
        args
    }

    fn spawn(&mut self) -> Result<(), String> {
        self.child = Some(spawn_redis(&self.args()));
        let end = Instant::now() + START_DEADLINE;
        loop {
            if command(self.port, &["PING"]).as_deref() == Some("+PONG") {
                return Ok(());
            }
            let exited = !matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)));
            if exited {
                if let Some(child) = self.child.take() {
                    kill(child);
                }
                return Err(format!("redis-server exited: {}", self.log_tail()));
            }
            if Instant::now() >= end {
                return Err(format!("redis-server on {} never answered PING", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(8)..].join("\n")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Runs a command and returns its reply as text.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        command(self.port, args)
    }

    /// DBSIZE.
    pub fn dbsize(&self) -> i64 {
        self.command(&["DBSIZE"])
            .and_then(|reply| reply.trim_start_matches(':').parse().ok())
            .expect("DBSIZE answers")
    }

    /// Every key (KEYS *: test data sets are small).
    pub fn keys(&self) -> Vec<String> {
        let reply = self.command(&["KEYS", "*"]).expect("KEYS answers");
        reply
            .lines()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Kills the server with SIGKILL, like a crash, and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; retry briefly in case something lingers on it.
        let end = Instant::now() + START_DEADLINE;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(error) if Instant::now() >= end => panic!("restart redis-server: {error}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(RedisServerOptions {
                    cluster: true,
                    ..RedisServerOptions::default()
                })
            })
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        let output = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = RedisCluster { nodes };
        let ok = wait_until(START_DEADLINE, || {
            cluster.nodes.iter().all(|node| {
                node.command(&["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            })
        });
        assert!(ok, "the cluster never reached cluster_state:ok");
        cluster
    }

    /// The seed-node list that `RedisStore::connect` takes for a Cluster.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Keys on all masters together.
    pub fn dbsize(&self) -> i64 {
        self.nodes.iter().map(RedisServer::dbsize).sum()
    }

    pub fn keys(&self) -> Vec<String> {
        self.nodes.iter().flat_map(RedisServer::keys).collect()
    }
}

/// One Sentinel process watching a master.
pub struct RedisSentinel {
    port: u16,
    master_name: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisSentinel {
    /// Starts a sentinel for `master` under `master_name` with quorum 1 and a one-second
    /// down-after, and waits until it names the master.
    pub fn start(master: &RedisServer, master_name: &str) -> RedisSentinel {
        let dir = tempfile::tempdir().expect("create a temp dir for the sentinel");
        let config = dir.path().join("sentinel.conf");
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port();
            let text = format!(
                "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile sentinel.log\n\
                 sentinel monitor {master_name} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {master_name} 1000\n\
                 sentinel failover-timeout {master_name} 5000\n",
                dir = dir.path().display(),
                master_port = master.port(),
            );
            std::fs::write(&config, text).expect("write sentinel.conf");
            let mut child = spawn_redis(&[config.display().to_string(), "--sentinel".to_owned()]);
            let ready = wait_until(START_DEADLINE, || {
                matches!(child.try_wait(), Ok(Some(_)) | Err(_))
                    || command(port, &["SENTINEL", "get-master-addr-by-name", master_name])
                        .is_some_and(|reply| reply.contains("127.0.0.1"))
            });
            if ready && matches!(child.try_wait(), Ok(None)) {
                return RedisSentinel {
                    port,
                    master_name: master_name.to_owned(),
                    dir,
                    child: Some(child),
                };
            }
            kill(child);
            last_error =
                std::fs::read_to_string(dir.path().join("sentinel.log")).unwrap_or_default();
        }
        panic!("could not start a sentinel: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL `RedisStore::connect` takes.
    pub fn url(&self) -> String {
        format!(
            "redis+sentinel://127.0.0.1:{}/{}",
            self.port, self.master_name
        )
    }

    pub fn command(&self, args: &[&str]) -> Option<String> {
        command(self.port, args)
    }

    /// The port of the master the sentinel names now.
    pub fn master_port(&self) -> Option<u16> {
        let reply = self.command(&["SENTINEL", "get-master-addr-by-name", &self.master_name])?;
        reply.lines().nth(1)?.parse().ok()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            kill(child);
        }
    }
}
