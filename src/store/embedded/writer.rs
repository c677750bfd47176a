//! Group commit for write transactions.
//!
//! Every write transaction waits for its commit's fsync (`synchronous = FULL`), and SQLite runs
//! one writer at a time, so under load writes queue behind each other's fsyncs. Here they queue
//! for one thread instead, which runs everything queued inside a single transaction, each write
//! in its own savepoint (a write that fails undoes its own changes and nothing else), commits
//! once, and only then answers each caller: N writes share one fsync and one round of locking,
//! and no caller hears "done" before its write is durable.

use crossbeam_channel::{Receiver, Sender};
use rusqlite::{Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::sql::{Cached, DbResult};
use super::{Shared, with_connection};
use crate::store::{StoreError, StoreResult};

/// At most this many writes share a commit, so one commit never grows without bound.
const MAX_BATCH: usize = 64;

/// One queued write: run inside the batch's transaction, then told how the commit went.
trait Job: Send {
    /// Runs the write; an error here means the batch cannot be committed.
    fn run(&mut self, tx: &Transaction<'_>) -> StoreResult<()>;
    fn answer(self: Box<Self>, committed: &StoreResult<()>);
}

struct Pending<T, F> {
    work: Option<F>,
    outcome: Option<StoreResult<T>>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send,
{
    fn run(&mut self, tx: &Transaction<'_>) -> StoreResult<()> {
        if let Some(work) = self.work.take() {
            self.outcome = Some(in_savepoint(tx, work)?);
        }
        Ok(())
    }

    fn answer(self: Box<Self>, committed: &StoreResult<()>) {
        let answer = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Ok(()), None) => Err(StoreError::Internal("a write was not run".to_owned())),
            (Err(error), _) => Err(duplicate(error)),
        };
        // The caller may have gone (its request timed out); the write stands all the same.
        let _ = self.reply.send(answer);
    }
}

/// Runs `work` in a savepoint of `tx`: kept when it succeeds, undone when it fails. The outer
/// error is a savepoint that could not be set or ended, which leaves the whole batch in doubt.
fn in_savepoint<T>(
    tx: &Transaction<'_>,
    work: impl FnOnce(&Transaction<'_>) -> StoreResult<T>,
) -> StoreResult<StoreResult<T>> {
    tx.execute_cached("SAVEPOINT job", []).db()?;
    let outcome = work(tx);
    if outcome.is_err() {
        tx.execute_cached("ROLLBACK TO job", []).db()?;
    }
    tx.execute_cached("RELEASE job", []).db()?;
    Ok(outcome)
}

/// The same failure, for each caller of a batch that failed as a whole.
fn duplicate(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(why) => StoreError::Unavailable(why.clone()),
        StoreError::Conflict => StoreError::Conflict,
        StoreError::NameTaken(kind) => StoreError::NameTaken(*kind),
        StoreError::NotFound => StoreError::NotFound,
        StoreError::InvalidCursor => StoreError::InvalidCursor,
        StoreError::Internal(why) => StoreError::Internal(why.clone()),
    }
}

/// The queue of write transactions and the thread that commits them.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    jobs: Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the thread that commits writes on `conn`; it ends when the last handle is dropped.
    pub(super) fn start(conn: Shared) -> StoreResult<Writer> {
        let (jobs, queue) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("latchkey-store-writer".to_owned())
            .spawn(move || commit_batches(&conn, &queue))
            .map_err(|e| StoreError::Internal(format!("cannot start the store's writer: {e}")))?;
        Ok(Writer { jobs })
    }

    /// Queues `work` to run in a write transaction at once (not when the answer is first
    /// awaited); the answer comes once that transaction is committed.
    pub(super) fn write<T, F>(&self, work: F) -> impl Future<Output = StoreResult<T>> + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Pending {
            work: Some(work),
            outcome: None,
            reply,
        };
        let queued = self.jobs.send(Box::new(job));
        async move {
            queued.map_err(|_| {
                StoreError::Unavailable("the store's writer has stopped".to_owned())
            })?;
            answer.await.map_err(|_| {
                StoreError::Internal("the store's writer dropped a write".to_owned())
            })?
        }
    }
}

fn commit_batches(conn: &Shared, queue: &Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = Vec::with_capacity(8);
        batch.push(first);
        batch.extend(queue.try_iter().take(MAX_BATCH - 1));
        let committed = with_connection(conn, |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .db()?;
            for job in &mut batch {
                // On an error the transaction is dropped, which rolls the whole batch back.
                job.run(&tx)?;
            }
            tx.commit().db()
        });
        for job in batch {
            job.answer(&committed);
        }
    }
}
