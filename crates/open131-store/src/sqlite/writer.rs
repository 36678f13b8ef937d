//! The single writer: one thread owns the write connection and commits every
//! job that is waiting as one transaction (group commit).
//!
//! Why: with `synchronous=FULL` each commit costs an fsync. Committing one
//! request at a time caps a signed endpoint near 3.4k/s here; grouping the
//! requests that arrive during one fsync reaches several times that. No
//! caller hears `Ok` before the COMMIT that holds its change has returned.
//!
//! One failing job rolls back alone. The jobs of a group first run straight;
//! only when one of them fails (or panics) is the group rolled back and run
//! again, each job in its own SAVEPOINT. Why: a savepoint copies every page
//! its job changes into the sub-journal, about a sixth of the writer's time
//! under `session/init/payout` (`perf`, issue 12), and jobs rarely fail. A
//! job is therefore `Fn`: it may run twice, and only its last run counts.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{CommitWatch, Result, StoreError};

/// Most jobs folded into one transaction.
pub const WRITE_BATCH_MAX_JOBS: usize = 1024;
/// Jobs that may wait for the writer before callers are slowed down.
pub const WRITE_QUEUE_MAX_JOBS: usize = 8192;

/// A queued write: runs on the writer's connection (perhaps twice, see the
/// module's doc), keeps its last outcome, and is answered after the COMMIT.
trait Job: Send {
    /// Runs the job, alone in a savepoint when `alone`; true when it succeeded.
    fn run(&mut self, conn: &Connection, alone: bool) -> bool;
    /// Answers the caller with the job's outcome, or with the commit's error.
    fn complete(self: Box<Self>, commit: Result<()>);
}

struct Pending<R, E, F> {
    f: F,
    outcome: Option<Result<R, E>>,
    reply: oneshot::Sender<Result<R, E>>,
}

impl<R, E, F> Job for Pending<R, E, F>
where
    R: Send,
    E: From<StoreError> + Send,
    F: Fn(&Connection) -> Result<R, E> + Send,
{
    fn run(&mut self, conn: &Connection, alone: bool) -> bool {
        let outcome = if alone { in_savepoint(conn, &self.f) } else { (self.f)(conn) };
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn complete(self: Box<Self>, commit: Result<()>) {
        let answer = match (commit, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            (Err(e), _) => Err(E::from(e)),
            // Never run (a panic): the caller hears the writer's error, never a success.
            (Ok(()), None) => Err(E::from(StoreError::Closed)),
        };
        let _ = self.reply.send(answer);
    }
}

#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn spawn(conn: Connection, commits: CommitWatch) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(WRITE_QUEUE_MAX_JOBS);
        std::thread::Builder::new()
            .name("open131-sqlite-writer".into())
            .spawn(move || run(conn, receiver, &commits))
            .map_err(|e| StoreError::io(std::path::Path::new("open131-sqlite-writer thread"), e))?;
        Ok(Self { sender })
    }

    /// Runs `f` inside the next group transaction and answers after its COMMIT.
    /// An `Err` from `f` rolls back `f`'s changes alone and is passed back as is.
    /// `f` may run twice (the module's doc says when); its last run is the one kept.
    pub async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: Fn(&Connection) -> Result<R, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Pending { f, outcome: None, reply });
        self.sender.send(job).await.map_err(|_| E::from(StoreError::Closed))?;
        answer.await.map_err(|_| E::from(StoreError::Closed))?
    }
}

fn in_savepoint<R, E: From<StoreError>>(conn: &Connection, f: impl Fn(&Connection) -> Result<R, E>) -> Result<R, E> {
    // Prepared once per connection (a batch statement is parsed at every call).
    run_cached(conn, "SAVEPOINT job").map_err(|e| E::from(db(e)))?;
    match f(conn) {
        Ok(value) => {
            run_cached(conn, "RELEASE job").map_err(|e| E::from(db(e)))?;
            Ok(value)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO job; RELEASE job").map_err(|e| E::from(db(e)))?;
            Err(e)
        }
    }
}

fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn run(conn: Connection, mut receiver: mpsc::Receiver<Box<dyn Job>>, commits: &CommitWatch) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH_MAX_JOBS {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let jobs = batch.len();
        let Some(batch) = run_group(&conn, batch) else {
            // Nothing is kept: every job is dropped unanswered, so its caller hears an error.
            commits.report(jobs, std::time::Duration::ZERO, false);
            continue;
        };
        let began = std::time::Instant::now();
        let commit = conn.execute_batch("COMMIT").map_err(|e| std::sync::Arc::new(crate::BackendError::Sqlite(e)));
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs, "group commit failed; every job in it is answered with an error");
            let _ = conn.execute_batch("ROLLBACK");
        }
        commits.report(jobs, began.elapsed(), commit.is_ok());
        for job in batch {
            job.complete(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::CommitFailed(e.clone())),
            });
        }
    }
}

/// Runs a group's jobs in one open transaction: straight, and when one of
/// them fails, again from a fresh transaction, each in its own savepoint.
/// The jobs to answer after the COMMIT (a panicking job is left out: its
/// caller hears an error); `None` when no transaction could begin.
fn run_group(conn: &Connection, mut batch: Vec<Box<dyn Job>>) -> Option<Vec<Box<dyn Job>>> {
    begin(conn, batch.len())?;
    // A panic counts as a failure: the group is run again, the job alone.
    let straight = batch
        .iter_mut()
        .all(|job| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn, false))).unwrap_or(false));
    if straight {
        return Some(batch);
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        tracing::error!(error = %e, "could not roll back a group to run its jobs alone");
        return None;
    }
    begin(conn, batch.len())?;
    let kept = batch
        .into_iter()
        .filter_map(|mut job| {
            // A panicking job must not take the writer (and every later write) down
            // with it: undo its savepoint and carry on. Its caller sees the reply
            // channel close (an error), never a success.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run(conn, true))) {
                Ok(_) => Some(job),
                Err(_) => {
                    tracing::error!("a write job panicked; its changes are rolled back");
                    let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                    None
                }
            }
        })
        .collect();
    Some(kept)
}

fn begin(conn: &Connection, jobs: usize) -> Option<()> {
    match conn.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => Some(()),
        Err(e) => {
            tracing::error!(error = %e, jobs, "could not begin a write transaction");
            None
        }
    }
}

pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test table's values, in order, read through the writer.
    async fn values(writer: &Writer) -> Vec<i64> {
        writer
            .write(|c: &Connection| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v").map_err(db)?;
                let rows = s.query_map([], |r| r.get(0)).map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<i64>>>().map_err(db)
            })
            .await
            .unwrap()
    }

    /// A group with a failing job in it: the group is run again with each job
    /// alone, so the failing job's own write is undone and the others commit.
    #[tokio::test]
    async fn a_failing_job_in_a_group_rolls_back_alone() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let writer = Writer::spawn(conn, CommitWatch::default()).unwrap();
        // A first job holds the writer while the four others queue, so those four are one group.
        let (started_tx, started) = std::sync::mpsc::sync_channel::<()>(1);
        let (release, held) = std::sync::mpsc::sync_channel::<()>(1);
        let blocker = writer.write(move |_: &Connection| -> Result<()> {
            let _ = started_tx.send(());
            let _ = held.recv_timeout(std::time::Duration::from_secs(10));
            Ok(())
        });
        let runs = std::sync::Arc::new(AtomicUsize::new(0));
        let one_runs = runs.clone();
        let one = move |c: &Connection| {
            one_runs.fetch_add(1, SeqCst);
            c.execute("INSERT INTO t VALUES (1)", []).map(|_| ()).map_err(db)
        };
        let insert = |v: i64| move |c: &Connection| c.execute("INSERT INTO t VALUES (?1)", [v]).map(|_| ()).map_err(db);
        let failing = |c: &Connection| -> Result<()> {
            c.execute("INSERT INTO t VALUES (2)", []).map_err(db)?;
            Err(StoreError::Closed)
        };
        let group = async {
            while started.try_recv().is_err() {
                tokio::task::yield_now().await;
            }
            let queued = async {
                while writer.sender.capacity() > WRITE_QUEUE_MAX_JOBS - 4 {
                    tokio::task::yield_now().await;
                }
                release.send(()).unwrap();
            };
            let writes = async {
                tokio::join!(writer.write(one), writer.write(failing), writer.write(insert(3)), writer.write(insert(4)))
            };
            tokio::join!(writes, queued).0
        };
        let (blocked, (a, b, c, d)) = tokio::join!(blocker, group);
        assert!(blocked.is_ok() && a.is_ok() && c.is_ok() && d.is_ok(), "the jobs beside the failing one commit");
        assert!(matches!(b, Err(StoreError::Closed)), "the failing job is answered with its own error");
        let values = values(&writer).await;
        assert_eq!(values, vec![1, 3, 4], "the failing job's insert was rolled back, each other job's kept once");
        assert_eq!(runs.load(SeqCst), 2, "the group ran straight, then each job alone");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_writer_goes_on() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER)").unwrap();
        let writer = Writer::spawn(conn, CommitWatch::default()).unwrap();
        let insert = |v: i64| move |c: &Connection| c.execute("INSERT INTO t VALUES (?1)", [v]).map(|_| ()).map_err(db);
        writer.write(insert(1)).await.unwrap();
        let boom = writer
            .write(|c: &Connection| -> Result<()> {
                c.execute("INSERT INTO t VALUES (2)", []).map_err(db)?;
                panic!("job bug");
            })
            .await;
        assert!(boom.is_err(), "the panicking job is answered with an error");
        writer.write(insert(3)).await.unwrap();
        let values = values(&writer).await;
        assert_eq!(values, vec![1, 3], "the panicking job's insert was rolled back");
    }
}
