//! The threads that run argon2.
//!
//! A fixed set of threads, one per hashing slot, each keeping its argon2 memory between hashes:
//! allocating 19 MiB afresh for every hash made the kernel zero thousands of new pages each
//! time (a third of a password grant's CPU) and left the allocator holding hundreds of MiB
//! after a burst of logins. A thread idle for a moment gives its memory back.
//!
//! The threads run at a lower scheduling priority than the rest of the service, so while
//! logins keep every core busy the cheap requests (JWKS, refresh, introspection) still get a
//! core within microseconds instead of waiting for a hash's time slice to end. With nothing
//! else to run, the hashing threads have the whole machine as before.

use std::time::Duration;

use argon2::Block;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

/// A hash waiting for a thread; it borrows the thread's argon2 memory while it runs.
pub type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// How long a hashing thread keeps its memory with nothing to do. Short: a login flood keeps
/// every thread busy, so its hashes reuse the memory, while a service that has gone on to
/// tokens and refreshes does not hold 19 MiB per thread for logins that have stopped (under the
/// mixed workload on Redis the peak fell from 71 to 57 MiB with 30 s → 300 ms). A login
/// after a pause pays for fresh pages once.
const IDLE_RELEASE: Duration = Duration::from_millis(300);

/// How much less CPU share than the service's other threads the hashing threads ask for
/// (nice values added to the service's own: 10 more weighs about a tenth).
const NICENESS: i32 = 10;

/// The largest nice value (the lowest priority) Linux has.
const LOWEST_PRIORITY: i32 = 19;

/// Argon2 blocks kept by one thread, grown to the largest hash it has run.
#[derive(Default)]
pub struct Memory(Vec<Block>);

impl Memory {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// At least `blocks` blocks of scratch memory, allocated only when more are needed.
    pub fn blocks(&mut self, blocks: usize) -> &mut [Block] {
        if self.0.len() < blocks {
            self.0 = vec![Block::default(); blocks];
        }
        &mut self.0[..blocks]
    }
}

/// The sending side of the job queue; the threads stop when it is dropped.
pub struct Workers {
    jobs: Sender<Job>,
}

impl Workers {
    /// Starts `count` hashing threads.
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        for index in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Workers { jobs })
    }

    /// Queues `job`; `false` when the threads are gone (they never stop while `self` lives).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

fn work(queue: &Receiver<Job>) {
    lower_priority();
    let mut memory = Memory::default();
    loop {
        // Holding memory, wait a moment for the next hash; holding none, as long as it takes,
        // so that an idle thread is not woken again and again.
        let next = if memory.is_empty() {
            queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            queue.recv_timeout(IDLE_RELEASE)
        };
        match next {
            Ok(job) => job(&mut memory),
            Err(RecvTimeoutError::Timeout) => memory = Memory::default(),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The nice value of a hashing thread in a service running at `service`: below the service,
/// never above it (a service started with `nice 15` must not get hashing threads at 10).
fn hashing_niceness(service: i32) -> i32 {
    service
        .saturating_add(NICENESS)
        .min(LOWEST_PRIORITY)
        .max(service)
}

fn lower_priority() {
    let thread = rustix::thread::gettid();
    // A thread starts at the service's nice value; unreadable, take the usual 0.
    let own = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
    let niceness = hashing_niceness(own);
    if niceness == own {
        return;
    }
    if let Err(error) = rustix::process::setpriority_process(Some(thread), niceness) {
        // Lowering one's own priority needs no privilege; if a sandbox forbids it anyway,
        // hashing still works, only without the latency protection: say so once.
        static WARNED: std::sync::Once = std::sync::Once::new();
        WARNED.call_once(|| {
            tracing::warn!(
                %error,
                "the password-hashing threads cannot lower their priority (setpriority): a login \
                 flood competes with token signing at equal priority; allow setpriority in the \
                 sandbox (systemd: SystemCallFilter=setpriority)"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_grows_to_the_largest_request_and_is_reused_below_it() {
        let mut memory = Memory::default();
        assert_eq!(memory.blocks(8).len(), 8);
        let first = memory.blocks(8).as_ptr();
        assert_eq!(memory.blocks(4).len(), 4);
        assert_eq!(memory.blocks(8).as_ptr(), first, "no reallocation");
        assert_eq!(memory.blocks(16).len(), 16);
    }

    #[test]
    fn hashing_threads_are_niced_relative_to_the_service_and_never_above_it() {
        assert_eq!(hashing_niceness(0), 10);
        assert_eq!(hashing_niceness(-5), 5);
        assert_eq!(hashing_niceness(5), 15);
        assert_eq!(hashing_niceness(15), 19);
        assert_eq!(hashing_niceness(19), 19);
    }

    #[test]
    fn hashing_threads_run_below_the_priority_of_the_service() {
        let workers = Workers::start(1).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        assert!(workers.submit(Box::new(move |_| {
            let nice = rustix::process::getpriority_process(None).unwrap();
            tx.send(nice).unwrap();
        })));
        let nice = rx.recv().unwrap();
        let own = rustix::process::getpriority_process(None).unwrap();
        assert!(
            nice > own || nice == 19,
            "hashing at {nice}, service at {own}"
        );
    }
}
