//! Group commit on PostgreSQL: concurrent writes (session changes, delivery
//! results, verdicts) share one transaction. New checks have a writer of
//! their own, one statement per group ([`super::inserts`]).
//!
//! Why: on this kind of machine PostgreSQL's CPU binds first, and a
//! transaction's BEGIN, COMMIT and WAL flush cost as much as its statements
//! (pgbench here: 13.3k single-insert transactions/s, 4.8k of BEGIN + 2
//! inserts + COMMIT, 9.9k jobs/s when 8 such jobs share a transaction). A
//! writer takes every job waiting in the queue (up to [`BATCH_MAX_JOBS`]),
//! runs them concurrently on one connection (tokio-postgres pipelines their
//! statements), and commits once. A job that is refused (a version or
//! idempotency conflict, an empty wallet) or fails makes the batch roll back,
//! and then each of its jobs runs again alone, in its own transaction: jobs
//! never see a neighbour's failure, and refusals are rare.
//!
//! Invariant: a job's caller hears of its result only after the transaction
//! holding its change committed (or after it was rolled back, for a refusal).
//! Invariant: a job may run more than once (batch, then alone); everything it
//! does outside the database happens in its caller, after the answer.

use std::sync::Arc;

use deadpool_postgres::{Pool, Transaction};
use futures_util::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{after_commit_sent, server_rolled_back};
use crate::{Result, StoreError};

/// Most jobs in one transaction.
pub const BATCH_MAX_JOBS: usize = 256;
/// Jobs waiting for a writer at most; past it callers wait for room.
pub const BATCH_QUEUE_MAX_JOBS: usize = 8_192;
/// Writer tasks per node, each with one connection: PostgreSQL runs one
/// backend per writer, so two keep both cores of a small machine busy.
pub const BATCH_WRITERS: usize = 2;

/// What a job's statements concluded.
pub(super) enum Step<T> {
    /// Keep the change.
    Commit(T),
    /// Undo the change and answer `T` (a refusal such as a version conflict).
    Refuse(T),
}

/// A job with its result type erased, as the writer sees it.
trait Job: Send {
    /// Runs the job's statements in `tx`; `true` when its change may commit.
    fn run<'a>(&'a mut self, tx: &'a Transaction<'a>) -> BoxFuture<'a, bool>;
    /// Whether its last run was refused cleanly (no statement failed, so the
    /// transaction it ran in was not aborted by it).
    fn refused(&self) -> bool;
    /// Answers the caller: with the result of its last run, or with `failure`.
    fn answer(self: Box<Self>, failure: Option<StoreError>);
}

/// The statements of one job, runnable again.
pub(super) type Statements<T> =
    Arc<dyn for<'a> Fn(&'a Transaction<'a>) -> BoxFuture<'a, Result<Step<T>>> + Send + Sync>;

/// Makes a job's statements from a closure (which this signature lets the
/// compiler type for every transaction lifetime).
pub(super) fn statements<T, F>(f: F) -> Statements<T>
where
    F: for<'a> Fn(&'a Transaction<'a>) -> BoxFuture<'a, Result<Step<T>>> + Send + Sync + 'static,
{
    Arc::new(f)
}

struct TypedJob<T> {
    statements: Statements<T>,
    last: Option<Result<Step<T>>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send + 'static> Job for TypedJob<T> {
    fn run<'a>(&'a mut self, tx: &'a Transaction<'a>) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let result = (self.statements)(tx).await;
            let keep = matches!(result, Ok(Step::Commit(_)));
            self.last = Some(result);
            keep
        })
    }

    fn refused(&self) -> bool {
        matches!(self.last, Some(Ok(Step::Refuse(_))))
    }

    fn answer(self: Box<Self>, failure: Option<StoreError>) {
        let result = match (failure, self.last) {
            (Some(e), _) => Err(e),
            (None, Some(Ok(Step::Commit(t) | Step::Refuse(t)))) => Ok(t),
            (None, Some(Err(e))) => Err(e),
            (None, None) => Err(StoreError::Closed),
        };
        // The caller may have gone away (its request timed out): nothing to tell.
        let _ = self.reply.send(result);
    }
}

/// The queue of one node's writers.
pub(super) struct Batcher {
    queue: mpsc::Sender<Box<dyn Job>>,
}

impl Batcher {
    /// Starts the writers on the current tokio runtime; they end when the
    /// batcher is dropped.
    pub(super) fn start(pool: Pool, commits: crate::CommitWatch) -> Self {
        let queue = shared_queue(BATCH_QUEUE_MAX_JOBS, BATCH_WRITERS, |jobs| {
            write_batches(pool.clone(), jobs, commits.clone())
        });
        Self { queue }
    }

    /// Runs `statements` in a shared transaction and answers after its commit;
    /// a retryable failure (nothing committed) is tried again.
    pub(super) async fn run<T: Send + 'static>(&self, statements: Statements<T>) -> Result<T> {
        crate::with_retries(|| {
            ask(&self.queue, |reply| -> Box<dyn Job> {
                Box::new(TypedJob { statements: statements.clone(), last: None, reply })
            })
        })
        .await
    }
}

/// Puts the item `make` builds around its reply channel on a writers'
/// queue and waits for the answer.
pub(super) async fn ask<I, R>(
    queue: &mpsc::Sender<I>,
    make: impl FnOnce(oneshot::Sender<Result<R>>) -> I,
) -> Result<R> {
    let (reply, answer) = oneshot::channel();
    queue.send(make(reply)).await.map_err(|_| StoreError::Closed)?;
    answer.await.map_err(|_| StoreError::Closed)?
}

/// A queue of at most `max_items` shared by `writers` tasks, each made by
/// `writer` and spawned on the current tokio runtime; they end when the
/// returned sender is dropped (their `next_group` answers `None`).
pub(super) fn shared_queue<T, W, F>(max_items: usize, writers: usize, writer: W) -> mpsc::Sender<T>
where
    T: Send + 'static,
    W: Fn(Arc<Mutex<mpsc::Receiver<T>>>) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let (queue, items) = mpsc::channel(max_items);
    let items = Arc::new(Mutex::new(items));
    for _ in 0..writers {
        tokio::spawn(writer(items.clone()));
    }
    queue
}

/// The next group of a queue shared by several writers: the first item to
/// come, then every item already waiting, up to `max`; `None` once the queue
/// is closed. One writer gathers at a time.
pub(super) async fn next_group<T>(queue: &Mutex<mpsc::Receiver<T>>, max: usize) -> Option<Vec<T>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut group = vec![first];
    while group.len() < max {
        match queue.try_recv() {
            Ok(item) => group.push(item),
            Err(_) => break,
        }
    }
    Some(group)
}

async fn write_batches(pool: Pool, jobs: Arc<Mutex<mpsc::Receiver<Box<dyn Job>>>>, commits: crate::CommitWatch) {
    while let Some(batch) = next_group(&jobs, BATCH_MAX_JOBS).await {
        // In a task of its own: a panicking job fails its batch's callers
        // (their answers are dropped: `Closed`), never this writer.
        let _ = tokio::spawn(run_batch(pool.clone(), batch, commits.clone())).await;
    }
}

/// What one shared transaction came to.
enum Together {
    /// Committed (or its COMMIT failed and every job was told): done.
    Done,
    /// Rolled back because these jobs were refused; the others may go again.
    Refused(Vec<usize>),
    /// Rolled back or never begun, for a reason no job can be singled out for.
    Failed,
}

/// Runs a batch together; refused jobs leave it to run alone and the rest go
/// again together, so one refusal does not make a whole batch serial.
async fn run_batch(pool: Pool, mut batch: Vec<Box<dyn Job>>, commits: crate::CommitWatch) {
    loop {
        if batch.len() <= 1 {
            break;
        }
        match run_together(&pool, &mut batch, &commits).await {
            Together::Done => return,
            Together::Failed => break,
            Together::Refused(indices) => {
                for i in indices.into_iter().rev() {
                    run_alone(&pool, batch.swap_remove(i), &commits).await;
                }
            }
        }
    }
    for job in batch {
        run_alone(&pool, job, &commits).await;
    }
}

/// Runs every job in one transaction and commits it, answering them all; on
/// a refusal or an error, rolls back and says which jobs were refused. A
/// failed COMMIT answers every job with it: the outcome is unknown, never
/// retried blindly.
async fn run_together(pool: &Pool, batch: &mut Vec<Box<dyn Job>>, commits: &crate::CommitWatch) -> Together {
    let Ok(mut client) = pool.get().await else { return Together::Failed };
    let Ok(tx) = client.transaction().await else { return Together::Failed };
    let kept = futures_util::future::join_all(batch.iter_mut().map(|job| job.run(&tx))).await;
    if kept.iter().any(|k| !k) {
        // Dropping the transaction rolls it back.
        drop(tx);
        // A failed statement aborts the transaction for every job after it: only
        // when every job that stopped was refused cleanly are the others innocent.
        let stopped: Vec<usize> = (0..batch.len()).filter(|&i| !kept[i]).collect();
        return if stopped.iter().all(|&i| batch[i].refused()) { Together::Refused(stopped) } else { Together::Failed };
    }
    let began = std::time::Instant::now();
    let committed = tx.commit().await;
    commits.report(batch.len(), began.elapsed(), committed.is_ok());
    let failure = match committed {
        Ok(()) => None,
        // The server rolled the batch back (a deadlock, a serialization failure).
        Err(e) if server_rolled_back(&e) => return Together::Failed,
        Err(e) => Some(Arc::new(crate::BackendError::Postgres(e))),
    };
    for job in batch.drain(..) {
        job.answer(failure.clone().map(StoreError::CommitFailed));
    }
    Together::Done
}

/// Runs one job in its own transaction and answers it.
async fn run_alone(pool: &Pool, mut job: Box<dyn Job>, commits: &crate::CommitWatch) {
    let result = async {
        let mut client = pool.get().await?;
        let tx = client.transaction().await?;
        if job.run(&tx).await {
            let began = std::time::Instant::now();
            let committed = tx.commit().await;
            commits.report(1, began.elapsed(), committed.is_ok());
            committed.map_err(after_commit_sent)?;
        }
        Ok::<(), StoreError>(())
    }
    .await;
    job.answer(result.err());
}
