//! The real `latchkey` binary as a child process: each [`Workdir`] is a temp directory used as
//! the process's current directory, so the defaults (`./data`, `./keys`) land inside it. A
//! [`Service`] is a running `latchkey` (serve) whose bound address was read from its JSON log
//! line `listening`; it is killed when dropped, so no test leaves a process behind.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a service may take from spawn to its `listening` line.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a CLI command may take.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// How long a service may take to exit after SIGTERM or SIGKILL.
pub const STOP_DEADLINE: Duration = Duration::from_secs(15);

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_latchkey")
}

/// A temp directory the binary runs in, plus the environment every process there gets.
pub struct Workdir {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// The umask processes start with, if not the test's own.
    umask: Option<u32>,
}

impl Default for Workdir {
    fn default() -> Self {
        Self::new()
    }
}

impl Workdir {
    /// An empty directory; processes get cheap argon2 parameters and bind port 0.
    pub fn new() -> Workdir {
        Workdir {
            dir: tempfile::tempdir().expect("temp dir"),
            env: vec![
                ("LATCHKEY_PASSWORDS__MEMORY_KIB".into(), "1024".into()),
                ("LATCHKEY_PASSWORDS__ITERATIONS".into(), "1".into()),
                ("LATCHKEY_SERVER__BIND".into(), "127.0.0.1:0".into()),
            ],
            umask: None,
        }
    }

    /// Every later process in this directory starts with umask `mask` (through `sh`, which
    /// `exec`s the binary, so the process id is still the binary's).
    pub fn umask(mut self, mask: u32) -> Workdir {
        self.umask = Some(mask);
        self
    }

    /// Sets (or replaces) an environment variable for every later process in this directory.
    pub fn env(mut self, key: &str, value: &str) -> Workdir {
        self.set_env(key, value);
        self
    }

    pub fn set_env(&mut self, key: &str, value: &str) {
        self.remove_env(key);
        self.env.push((key.into(), value.into()));
    }

    /// Drops one of the defaults (say, to let a configuration file's `server.bind` count).
    pub fn remove_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `relative` inside the directory.
    pub fn join(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `latchkey ARGS` in this directory with this directory's environment. Inherited
    /// `LATCHKEY_*` and `RUST_LOG` variables are removed so the caller's shell cannot leak in.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = match self.umask {
            None => Command::new(binary()),
            Some(mask) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("umask {mask:03o} && exec \"$0\" \"$@\""))
                    .arg(binary());
                sh
            }
        };
        command.args(args).current_dir(self.dir.path());
        for (key, _) in std::env::vars_os() {
            let name = key.to_string_lossy();
            if name.starts_with("LATCHKEY_") || name == "RUST_LOG" {
                command.env_remove(&key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs a CLI command to completion with nothing on stdin.
    pub fn run(&self, args: &[&str]) -> CommandOutput {
        self.run_with_stdin(args, None)
    }

    /// Runs a CLI command to completion, writing `stdin` (if any) to its standard input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> CommandOutput {
        self.run_within(args, stdin, COMMAND_DEADLINE)
            .unwrap_or_else(|| {
                panic!(
                    "`latchkey {}` did not finish within {COMMAND_DEADLINE:?}",
                    args.join(" ")
                )
            })
    }

    /// Runs a command, writing `stdin` (if any) to its standard input; `None` (the process
    /// killed) if it has not exited within `deadline`.
    pub fn run_within(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        deadline: Duration,
    ) -> Option<CommandOutput> {
        let mut command = self.command(args);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().expect("spawn latchkey");
        // Written from its own thread: a child that answers while it reads (its audit events
        // on stderr) would otherwise fill its pipes and stop, waiting for us to read.
        let writer = stdin.map(|input| {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            let input = input.to_owned();
            // The child may exit before reading (that is a failure the caller sees in the
            // output), so a broken pipe here is not the test's error.
            std::thread::spawn(move || drop(pipe.write_all(input.as_bytes())))
        });
        let output = ChildGuard(Some(child)).wait_with_output(deadline)?;
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        Some(CommandOutput {
            args: args.iter().map(|a| a.to_string()).collect(),
            elapsed: started.elapsed(),
            output,
        })
    }

    /// Starts `latchkey ARGS` (no arguments: the default `serve`) and waits for its
    /// `listening` log line.
    pub fn spawn(&self, args: &[&str]) -> Service {
        Service::start(self.command(args))
    }

    /// Starts `latchkey` with no arguments.
    pub fn serve(&self) -> Service {
        self.spawn(&[])
    }
}

/// A child killed (SIGKILL) and reaped on drop unless it was already waited for.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("child present")
    }

    /// Collects stdout and stderr and waits for the exit, or kills the child after `deadline`.
    fn wait_with_output(mut self, deadline: Duration) -> Option<Output> {
        let child = self.child();
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = wait_until(child, deadline)?;
        let stdout = stdout.join().expect("stdout reader");
        let stderr = stderr.join().expect("stderr reader");
        self.0 = None;
        Some(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Polls for the child's exit until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A finished CLI command.
pub struct CommandOutput {
    pub args: Vec<String>,
    pub elapsed: Duration,
    pub output: Output,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn describe(&self) -> String {
        format!(
            "`latchkey {}` exited with {}\nstdout: {}\nstderr: {}",
            self.args.join(" "),
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts success and returns stdout parsed as JSON.
    pub fn json(&self) -> Value {
        assert!(self.success(), "{}", self.describe());
        serde_json::from_str(self.stdout().trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }

    /// Asserts a non-zero exit and returns stderr.
    pub fn failure(&self) -> String {
        assert!(!self.success(), "expected a failure: {}", self.describe());
        assert_ne!(self.code(), Some(0), "{}", self.describe());
        self.stderr()
    }
}

/// A running `latchkey serve`.
pub struct Service {
    guard: ChildGuard,
    pid: u32,
    /// `http://127.0.0.1:PORT`
    pub address: String,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Service {
    /// Starts another program (an example, say) that logs the same JSON `listening` line with
    /// its `address`, and waits for that line.
    pub fn start_program(command: Command) -> Service {
        Service::start(command)
    }

    fn start(mut command: Command) -> Service {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn latchkey");
        let pid = child.id();
        let stdout = child.stdout.take().expect("stdout pipe");
        let stderr_pipe = child.stderr.take().expect("stderr pipe");
        let guard = ChildGuard(Some(child));

        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if sender.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let collected = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr_pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = collected.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });

        let mut service = Service {
            guard,
            pid,
            address: String::new(),
            lines,
            seen: Vec::new(),
            stderr,
        };
        let listening = service
            .wait_for_log(START_DEADLINE, |line| line["message"] == "listening")
            .unwrap_or_else(|why| panic!("the service did not start: {why}"));
        let address = listening["address"]
            .as_str()
            .unwrap_or_else(|| panic!("the listening line has no address: {listening}"));
        service.address = format!("http://{address}");
        service
    }

    /// Waits (bounded) for a log line matching `matches`, looking at lines seen before too.
    pub fn wait_for_log(
        &mut self,
        deadline: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        if let Some(line) = self.seen.iter().find(|l| matches(l)) {
            return Ok(line.clone());
        }
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Ok(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no such log line within {deadline:?}; {}",
                        self.diagnostics()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = wait_until(self.guard.child(), STOP_DEADLINE);
                    return Err(format!(
                        "stdout closed (exit: {status:?}); {}",
                        self.diagnostics()
                    ));
                }
            }
        }
    }

    /// Every stdout line so far (JSON values; non-JSON lines as strings).
    pub fn logs(&mut self) -> &[Value] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn diagnostics(&self) -> String {
        let stdout: Vec<String> = self.seen.iter().map(Value::to_string).collect();
        format!("stdout:\n{}\nstderr:\n{}", stdout.join("\n"), self.stderr())
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Sends SIGTERM and waits (bounded) for the exit.
    pub fn terminate(mut self) -> Stopped {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {} failed", self.pid);
        self.wait_for_exit()
    }

    /// SIGKILL: a crash, no chance to clean up.
    pub fn kill(mut self) -> Stopped {
        self.guard.child().kill().expect("SIGKILL");
        self.wait_for_exit()
    }

    fn wait_for_exit(&mut self) -> Stopped {
        let status = wait_until(self.guard.child(), STOP_DEADLINE).unwrap_or_else(|| {
            panic!(
                "the service did not exit within {STOP_DEADLINE:?}; {}",
                self.diagnostics()
            )
        });
        self.guard.0 = None;
        // Collect what it said on the way out, for the caller's diagnostics.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(1)) {
            self.seen.push(line);
        }
        Stopped {
            status,
            logs: std::mem::take(&mut self.seen),
            stderr: self.stderr(),
        }
    }
}

/// A service that has exited, with everything it wrote.
pub struct Stopped {
    pub status: ExitStatus,
    pub logs: Vec<Value>,
    pub stderr: String,
}

impl Stopped {
    /// Asserts a clean exit (status 0).
    pub fn assert_clean_exit(&self) {
        let logs: Vec<String> = self.logs.iter().map(Value::to_string).collect();
        assert!(
            self.status.success(),
            "the service exited with {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            logs.join("\n"),
            self.stderr
        );
    }
}
