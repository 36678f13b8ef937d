//! New passport checks on PostgreSQL, inserted in groups: every check of the
//! node waiting to be written goes into one multi-row `INSERT … SELECT FROM
//! UNNEST(…)`, a transaction of its own.
//!
//! Why not the shared group commit ([`super::batch`]): there each job is its
//! own statement, and for a check the statement is all the work. Measured
//! with `open131 bench kyc` on PostgreSQL, a commit carried about 30 checks
//! and took about 3.9 ms, mostly per-statement round trips and protocol work
//! on both sides; one statement for all of them does the same work in one
//! exchange (figures in ARCHITECTURE.md).
//!
//! Invariant: a caller hears of its check only after the statement holding
//! it committed (an autocommit statement commits before it answers); a
//! statement with no answer is tried again by every caller of its group,
//! which finds a check that did commit as its own row.
//! Invariant: the duplicate rule is still the UNIQUE constraint: a row the
//! statement skipped (`ON CONFLICT DO NOTHING`, also against a row of the same
//! group) is answered with the id of the committed row it conflicts with.
//! Invariant: a group the server refused (one bad row refuses them all) is
//! never answered as a whole: each of its checks is then inserted alone, so no
//! check fails for a neighbour.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::rows::to_us;
use crate::{BackendError, InsertCheck, NewCheck, Result, StoreError};

/// Most checks one statement inserts.
pub const CHECK_INSERT_GROUP_MAX_CHECKS: usize = 256;
/// Checks waiting for the inserters at most; past it callers wait for room.
pub const CHECK_INSERT_QUEUE_MAX_CHECKS: usize = 8_192;
/// Inserter tasks per node, each with a statement in flight at a time: while
/// one group is being written the next one gathers and goes on a second
/// connection (one inserter was busy all the time under load).
pub const CHECK_INSERTERS: usize = 2;

/// The columns of a new check, as stored.
pub(super) struct CheckInsert {
    pub(super) check: NewCheck,
    pub(super) id: i64,
    pub(super) birthday: String,
    pub(super) issuer_date: Option<String>,
}

struct Waiting {
    insert: Arc<CheckInsert>,
    reply: oneshot::Sender<Result<InsertCheck>>,
}

/// The queue of one node's check inserter.
pub(super) struct CheckInserter {
    queue: mpsc::Sender<Waiting>,
}

impl CheckInserter {
    /// Starts the inserters on the current tokio runtime; they end when this is dropped.
    pub(super) fn start(pool: Pool, commits: crate::CommitWatch) -> Self {
        let queue = super::batch::shared_queue(CHECK_INSERT_QUEUE_MAX_CHECKS, CHECK_INSERTERS, |waiting| {
            insert_groups(pool.clone(), waiting, commits.clone())
        });
        Self { queue }
    }

    /// Inserts `insert` with the checks waiting beside it and answers after
    /// the commit; a retryable failure (nothing committed) is tried again.
    pub(super) async fn insert(&self, insert: Arc<CheckInsert>) -> Result<InsertCheck> {
        crate::with_retries(|| super::batch::ask(&self.queue, |reply| Waiting { insert: insert.clone(), reply })).await
    }
}

async fn insert_groups(pool: Pool, waiting: Arc<Mutex<mpsc::Receiver<Waiting>>>, commits: crate::CommitWatch) {
    while let Some(group) = super::batch::next_group(&waiting, CHECK_INSERT_GROUP_MAX_CHECKS).await {
        // In a task of its own: a panic fails this group's callers (their
        // answers are dropped: `Closed`), never the inserter.
        let _ = tokio::spawn(insert_group(pool.clone(), group, commits.clone())).await;
    }
}

/// What became of a group's statement.
enum Grouped {
    /// Committed: each check's answer, in the group's order.
    Answered(Vec<Result<InsertCheck>>),
    /// The server refused the statement (one row may be the cause): nothing committed.
    Refused(StoreError),
    /// No answer (no connection, or it was lost): nothing or everything may
    /// have committed. Every check of the group may be tried again: a check
    /// that did commit is then found as its own row, and answered `Created`.
    Unanswered(Arc<BackendError>),
}

/// What a check of a group that had no answer is told: try again.
fn try_again(e: &Arc<BackendError>) -> StoreError {
    StoreError::Retryable(BackendError::Shared(e.clone()))
}

async fn insert_group(pool: Pool, mut group: Vec<Waiting>, commits: crate::CommitWatch) {
    // In key order: two groups waiting on each other's duplicates then lock
    // them in one order, so they cannot deadlock.
    group.sort_by(|a, b| key(&a.insert).cmp(&key(&b.insert)));
    let rows: Vec<&CheckInsert> = group.iter().map(|w| w.insert.as_ref()).collect();
    match insert_together(&pool, &rows, &commits).await {
        Grouped::Answered(answers) => {
            for (w, answer) in group.into_iter().zip(answers) {
                // The caller may have gone away (its request timed out).
                let _ = w.reply.send(answer);
            }
        }
        Grouped::Unanswered(e) => {
            for w in group {
                let _ = w.reply.send(Err(try_again(&e)));
            }
        }
        Grouped::Refused(e) if group.len() == 1 => {
            if let Some(w) = group.into_iter().next() {
                let _ = w.reply.send(Err(e));
            }
        }
        Grouped::Refused(_) => {
            for w in group {
                let answer = match insert_together(&pool, &[w.insert.as_ref()], &commits).await {
                    Grouped::Answered(mut answers) => answers.pop().unwrap_or(Err(StoreError::Closed)),
                    Grouped::Refused(e) => Err(e),
                    Grouped::Unanswered(e) => Err(try_again(&e)),
                };
                let _ = w.reply.send(answer);
            }
        }
    }
}

/// A check's duplicate key (`UNIQUE (project_id, passport_number, inn, agent_contract_number)`).
fn key(c: &CheckInsert) -> (&str, &str, &str, &str) {
    let app = &c.check.application;
    (&c.check.project_id, app.document_key.expose(), app.inn.expose(), app.agent_contract_number.expose())
}

/// The group's statement. Column types are spelled out: the arrays carry them.
const INSERT_GROUP: &str = "INSERT INTO kyc_checks (project_id, id, api_version, passport_number, inn,
         agent_contract_number, birthday, issuer_date, payload, created_at_us)
     SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
         $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[])
     ON CONFLICT (project_id, passport_number, inn, agent_contract_number) DO NOTHING
     RETURNING project_id, id";

/// The committed check a skipped row conflicts with.
const EARLIER: &str = "SELECT id FROM kyc_checks WHERE project_id = $1 AND passport_number = $2 AND inn = $3
     AND agent_contract_number = $4";

async fn insert_together(pool: &Pool, rows: &[&CheckInsert], commits: &crate::CommitWatch) -> Grouped {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(e) => return Grouped::Unanswered(Arc::new(BackendError::Pool(e))),
    };
    let column = |f: fn(&CheckInsert) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
    let projects = column(|r| &r.check.project_id);
    let versions = column(|r| r.check.application.version.as_str());
    let passports = column(|r| r.check.application.document_key.expose());
    let inns = column(|r| r.check.application.inn.expose());
    let agents = column(|r| r.check.application.agent_contract_number.expose());
    let birthdays = column(|r| &r.birthday);
    let payloads = column(|r| r.check.payload_json.expose());
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let issuer_dates: Vec<Option<&str>> = rows.iter().map(|r| r.issuer_date.as_deref()).collect();
    let created: Vec<i64> = rows.iter().map(|r| to_us(r.check.created_at)).collect();
    let began = std::time::Instant::now();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 10] =
        [&projects, &ids, &versions, &passports, &inns, &agents, &birthdays, &issuer_dates, &payloads, &created];
    let inserted = async { client.query(&client.prepare_cached(INSERT_GROUP).await?, &params).await }.await;
    let inserted = match inserted {
        Ok(inserted) => inserted,
        // The server answered with an error: the statement rolled back.
        Err(e) if e.code().is_some() => return Grouped::Refused(e.into()),
        Err(e) => {
            commits.report(rows.len(), began.elapsed(), false);
            return Grouped::Unanswered(Arc::new(BackendError::Postgres(e)));
        }
    };
    commits.report(rows.len(), began.elapsed(), true);
    let mut created_ids = HashSet::with_capacity(inserted.len());
    for row in &inserted {
        match (row.try_get::<_, String>(0), row.try_get::<_, i64>(1)) {
            (Ok(project), Ok(id)) => created_ids.insert((project, id)),
            (Err(e), _) | (_, Err(e)) => return Grouped::Unanswered(Arc::new(BackendError::Postgres(e))),
        };
    }
    let mut answers = Vec::with_capacity(rows.len());
    for r in rows {
        answers.push(match created_ids.contains(&(r.check.project_id.clone(), r.id)) {
            true => Ok(InsertCheck::Created(r.id)),
            false => earlier(&client, r).await,
        });
    }
    Grouped::Answered(answers)
}

/// The answer for a row that was skipped: the committed check it conflicts
/// with (its own row when an earlier attempt of this very check committed).
async fn earlier(client: &impl GenericClient, r: &CheckInsert) -> Result<InsertCheck> {
    let (project, passport, inn, agent) = key(r);
    let keys: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [&project, &passport, &inn, &agent];
    let statement = client.prepare_cached(EARLIER).await?;
    let found = client
        .query_opt(&statement, &keys)
        .await?
        .ok_or_else(|| StoreError::corrupt(format!("check of {}", r.check.project_id), "duplicate without a row"))?;
    let id: i64 = found.try_get(0)?;
    Ok(if id == r.id { InsertCheck::Created(id) } else { InsertCheck::Duplicate(id) })
}
