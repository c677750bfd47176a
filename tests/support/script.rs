//! Runs a script of another ecosystem (Python, Node) against the service under test and keeps
//! everything it said, for the interop and generated-client tests.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<repo>/.venv/bin/python` once `scripts/setup-interop` has written `stamp` into the venv
/// (it does when what the stamp stands for is installed); else a failure that says how to get
/// it, with `hint`. Tests that need Python fail without it; they never pass by skipping.
pub fn venv_python(stamp: &str, hint: &str) -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Python environment is missing ({} not found): {hint}",
        python.display()
    );
    let stamp = repo().join(".venv").join(stamp);
    assert!(
        stamp.is_file(),
        "the Python environment is incomplete ({} not found): {hint}",
        stamp.display()
    );
    python
}

/// What a script did: its exit status (`None` when it was killed at the time limit) and output.
pub struct Outcome {
    pub what: String,
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub timeout: Duration,
}

impl Outcome {
    pub fn report(&self) -> String {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => format!("killed after {:?}", self.timeout),
        };
        format!(
            "{} -> {status} in {:.1?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.elapsed, self.stdout, self.stderr
        )
    }

    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn assert_success(&self) {
        assert!(self.succeeded(), "the script failed: {}", self.report());
        println!("{}", self.report());
    }

    pub fn assert_failure_mentioning(&self, needle: &str) {
        assert!(
            self.status.is_some_and(|s| !s.success()),
            "the script should have failed: {}",
            self.report()
        );
        assert!(
            self.stderr.contains(needle),
            "the script failed, but its message does not mention {needle:?}: {}",
            self.report()
        );
    }
}

/// A script to run: program, arguments, directory, environment and standard input.
pub struct Script<'a> {
    pub program: &'a Path,
    pub args: Vec<String>,
    pub cwd: &'a Path,
    pub env: Vec<(String, String)>,
    pub stdin: String,
    pub timeout: Duration,
    /// Said when the program cannot even start: how to install it.
    pub setup_hint: &'a str,
}

impl Script<'_> {
    /// Runs the script off the async runtime (the service under test runs on it), killing it
    /// at the time limit.
    pub async fn run(self) -> Outcome {
        let what = format!("{} {}", self.program.display(), self.args.join(" "));
        let mut command = Command::new(self.program);
        command
            .args(&self.args)
            .current_dir(self.cwd)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("NO_COLOR", "1")
            .envs(self.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let (stdin, timeout, hint) = (self.stdin, self.timeout, self.setup_hint.to_owned());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut child = command
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {what}: {e}; {hint}"));
            let mut input = child.stdin.take().expect("stdin");
            let writer = std::thread::spawn(move || {
                let _ = input.write_all(stdin.as_bytes());
            });
            let stdout = drain(child.stdout.take().expect("stdout"));
            let stderr = drain(child.stderr.take().expect("stderr"));
            let status = loop {
                if let Some(status) = child.try_wait().expect("wait for the script") {
                    break Some(status);
                }
                if started.elapsed() > timeout {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            let _ = writer.join();
            Outcome {
                what,
                status,
                stdout: stdout.join().unwrap_or_default(),
                stderr: stderr.join().unwrap_or_default(),
                elapsed: started.elapsed(),
                timeout,
            }
        })
        .await
        .expect("the script runner")
    }
}

/// Reads a pipe to its end on a thread of its own, so a chatty script never blocks on a full
/// pipe while we wait for it.
fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    })
}
