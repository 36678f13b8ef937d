//! The single writer: one thread owns the write connection and commits every
//! job that is waiting as one transaction (group commit).
//!
//! Why: with `synchronous=FULL` each commit costs an fsync. Committing one
//! request at a time caps a signed endpoint near 3.4k/s here; grouping the
//! requests that arrive during one fsync reaches several times that. Each job
//! runs in its own SAVEPOINT, so one failing job rolls back alone, and no caller
//! hears `Ok` before the COMMIT that holds its change has returned.

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{CommitWatch, Result, StoreError};

/// Most jobs folded into one transaction.
pub const WRITE_BATCH_MAX_JOBS: usize = 1024;
/// Jobs that may wait for the writer before callers are slowed down.
pub const WRITE_QUEUE_MAX_JOBS: usize = 8192;

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

#[derive(Clone)]
pub struct Writer {
    sender: mpsc::Sender<Job>,
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
    pub async fn write<R, E, F>(&self, f: F) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(&Connection) -> Result<R, E> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = in_savepoint(conn, f);
            Box::new(move |commit: Result<()>| {
                let _ = reply.send(match commit {
                    Ok(()) => outcome,
                    Err(e) => Err(E::from(e)),
                });
            })
        });
        self.sender.send(job).await.map_err(|_| E::from(StoreError::Closed))?;
        answer.await.map_err(|_| E::from(StoreError::Closed))?
    }
}

fn in_savepoint<R, E: From<StoreError>>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<R, E>,
) -> Result<R, E> {
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

fn run(conn: Connection, mut receiver: mpsc::Receiver<Job>, commits: &CommitWatch) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < WRITE_BATCH_MAX_JOBS {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let jobs = batch.len();
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            commits.report(jobs, std::time::Duration::ZERO, false);
            tracing::error!(error = %e, jobs, "could not begin a write transaction");
            for job in batch {
                // Nothing ran: answer every job with the error without touching the database.
                drop(job);
            }
            continue;
        }
        let completions: Vec<Completion> = batch
            .into_iter()
            .filter_map(|job| {
                // A panicking job must not take the writer (and every later write) down
                // with it: undo its savepoint and carry on. Its caller sees the reply
                // channel close (an error), never a success.
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&conn))) {
                    Ok(completion) => Some(completion),
                    Err(_) => {
                        tracing::error!("a write job panicked; its changes are rolled back");
                        let _ = conn.execute_batch("ROLLBACK TO job; RELEASE job");
                        None
                    }
                }
            })
            .collect();
        let began = std::time::Instant::now();
        let commit = conn.execute_batch("COMMIT").map_err(|e| std::sync::Arc::new(crate::BackendError::Sqlite(e)));
        if let Err(e) = &commit {
            tracing::error!(error = %e, jobs, "group commit failed; every job in it is answered with an error");
            let _ = conn.execute_batch("ROLLBACK");
        }
        commits.report(jobs, began.elapsed(), commit.is_ok());
        for complete in completions {
            complete(match &commit {
                Ok(()) => Ok(()),
                Err(e) => Err(StoreError::CommitFailed(e.clone())),
            });
        }
    }
}

pub(crate) fn db(e: rusqlite::Error) -> StoreError {
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let values: Vec<i64> = writer
            .write(|c: &Connection| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v").map_err(db)?;
                let rows = s.query_map([], |r| r.get(0)).map_err(db)?;
                rows.collect::<rusqlite::Result<Vec<i64>>>().map_err(db)
            })
            .await
            .unwrap();
        assert_eq!(values, vec![1, 3], "the panicking job's insert was rolled back");
    }
}
