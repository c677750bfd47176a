//! Shared by the bench tools: reading a process's CPU time and memory from `/proc`.
//!
//! Nothing here is part of the service; `bench/run` drives these tools.

use std::fs;
use std::time::Duration;

/// Clock ticks per second of `utime`/`stime` in `/proc/PID/stat` (`USER_HZ`, 100 on Linux).
pub const USER_HZ: f64 = 100.0;

/// `pid` and every process below it, depth first (gunicorn's and node cluster's workers).
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    // Bounded: a tree of more than 4096 processes is not a server under test.
    while i < out.len() && out.len() < 4096 {
        out.extend(children(out[i]));
        i += 1;
    }
    out
}

fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut kids = Vec::new();
    for task in tasks.flatten() {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            kids.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
    }
    kids
}

/// User plus system CPU time of one process, all its threads (live and exited) included.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / USER_HZ))
}

/// Summed CPU time of the processes `roots` and their descendants.
pub fn tree_cpu_time(roots: &[u32]) -> Duration {
    roots
        .iter()
        .flat_map(|&root| process_tree(root))
        .filter_map(cpu_time)
        .sum()
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Summed `field` over the processes `roots` and their descendants, in KiB.
pub fn tree_status_kib(roots: &[u32], field: &str) -> u64 {
    roots
        .iter()
        .flat_map(|&root| process_tree(root))
        .filter_map(|pid| status_kib(pid, field))
        .sum()
}

/// CPU time the calling thread has run, in nanoseconds (`/proc/thread-self/schedstat`).
pub fn thread_cpu_ns() -> u64 {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// CPU time of this whole process (all threads).
pub fn own_cpu_time() -> Duration {
    cpu_time(std::process::id()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_a_resident_size() {
        let me = std::process::id();
        assert!(cpu_time(me).is_some());
        assert!(status_kib(me, "VmRSS").unwrap_or(0) > 0);
        assert!(process_tree(me).contains(&me));
    }
}
