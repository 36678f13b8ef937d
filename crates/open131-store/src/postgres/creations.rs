//! New sessions on PostgreSQL, created in groups: every plain creation of the
//! node waiting to be written (a session with its idempotency key, payouts,
//! webhooks and timers, no money moved) goes into one statement of
//! multi-row `INSERT … SELECT FROM UNNEST(…)`s, a transaction of its own.
//!
//! Why not the shared group commit ([`super::batch`]): there each creation is
//! its own statement of six data-modifying CTEs, and PostgreSQL's executor
//! start-up, per-statement protocol work and triggers' set-up for such a
//! statement cost more than its five rows (`perf` of `open131 bench payouts`:
//! executor start 17 % of PostgreSQL's CPU, the network 7 %). One statement
//! for a group pays that once (figures in ARCHITECTURE.md).
//!
//! Invariant: a caller hears `Applied` only after the statement holding its
//! session committed (an autocommit statement commits before it answers).
//! Invariant: idempotency is still the primary key of `idempotency_keys`: a
//! session whose key the statement skipped (`ON CONFLICT DO NOTHING`) is not
//! written, and its caller hears `IdempotencyConflict`, as alone.
//! Invariant: a group the server refused (one bad row refuses them all) is
//! never answered as a whole: each of its writes is told to go [`Grouped::Alone`]
//! through the shared group commit, which answers it exactly as before.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::Pool;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::rows::{to_us, PayoutValues, SessionValues};
use crate::{BackendError, Result, SessionWrite, StoreError, WriteOutcome};

/// Most sessions one statement creates.
pub const CREATION_GROUP_MAX_SESSIONS: usize = 128;
/// Creations waiting for the writers at most; past it callers wait for room.
pub const CREATION_QUEUE_MAX_SESSIONS: usize = 8_192;
/// Writer tasks per node, each with a statement in flight at a time (as
/// [`super::inserts::CHECK_INSERTERS`]).
pub const CREATION_WRITERS: usize = 2;

/// Whether `w` is a plain creation this writer takes: a new session with no
/// money moved, no payment and no subscription (everything else keeps the
/// shared group commit, whose one statement per write knows every part).
pub(super) fn groupable(w: &SessionWrite) -> bool {
    w.expected_version.is_none()
        && w.movements.is_empty()
        && w.subscription.is_none()
        && w.consumed_timer.is_none()
        && w.record.payments.is_empty()
}

/// What a creation's caller is told.
pub(super) enum Grouped {
    /// Done: the write's outcome.
    Outcome(WriteOutcome),
    /// Not written: run it through the shared group commit instead.
    Alone,
}

struct Waiting {
    write: Arc<SessionWrite>,
    now: OffsetDateTime,
    reply: oneshot::Sender<Result<Grouped>>,
}

/// The queue of one node's creation writers.
pub(super) struct Creator {
    queue: mpsc::Sender<Waiting>,
}

impl Creator {
    /// Starts the writers on the current tokio runtime; they end when this is dropped.
    pub(super) fn start(pool: Pool, commits: crate::CommitWatch) -> Self {
        let queue = super::batch::shared_queue(CREATION_QUEUE_MAX_SESSIONS, CREATION_WRITERS, |waiting| {
            create_groups(pool.clone(), waiting, commits.clone())
        });
        Self { queue }
    }

    /// Creates `write`'s session with the creations waiting beside it and
    /// answers after the commit; a retryable failure (nothing sent) is tried again.
    pub(super) async fn create(&self, write: Arc<SessionWrite>, now: OffsetDateTime) -> Result<Grouped> {
        crate::with_retries(|| super::batch::ask(&self.queue, |reply| Waiting { write: write.clone(), now, reply }))
            .await
    }
}

async fn create_groups(pool: Pool, waiting: Arc<Mutex<mpsc::Receiver<Waiting>>>, commits: crate::CommitWatch) {
    while let Some(group) = super::batch::next_group(&waiting, CREATION_GROUP_MAX_SESSIONS).await {
        // In a task of its own: a panic fails this group's callers (their
        // answers are dropped: `Closed`), never the writer.
        let _ = tokio::spawn(create_group(pool.clone(), group, commits.clone())).await;
    }
}

/// A write's idempotency key, with its project.
fn key(w: &SessionWrite) -> Option<(&str, &str)> {
    w.idempotency.as_ref().map(|(key, _)| (w.record.project_id.as_str(), key.as_str()))
}

async fn create_group(pool: Pool, mut group: Vec<Waiting>, commits: crate::CommitWatch) {
    // In key order: two groups waiting on each other's keys then take them in
    // one order, so they cannot deadlock.
    group.sort_by(|a, b| key(&a.write).cmp(&key(&b.write)));
    // A key used twice in one group: the later writes go alone, after this
    // group, and conflict with the first there (one statement could not tell
    // which of them its key row belongs to).
    let mut seen = HashSet::new();
    let (together, again): (Vec<Waiting>, Vec<Waiting>) =
        group.into_iter().partition(|w| key(&w.write).is_none_or(|k| seen.insert((k.0.to_owned(), k.1.to_owned()))));
    let writes: Vec<(&SessionWrite, OffsetDateTime)> = together.iter().map(|w| (w.write.as_ref(), w.now)).collect();
    let answers = create_together(&pool, &writes, &commits).await;
    drop(writes);
    for (i, w) in together.into_iter().enumerate() {
        let answer = match &answers {
            Ok(created) => Ok(created.get(i).copied().flatten().map_or(Grouped::Alone, Grouped::Outcome)),
            Err(Together::Refused) => Ok(Grouped::Alone),
            Err(Together::NotSent(e)) => Err(StoreError::Retryable(BackendError::Shared(e.clone()))),
            Err(Together::Unanswered(e)) => Err(StoreError::CommitFailed(e.clone())),
        };
        // The caller may have gone away (its request timed out).
        let _ = w.reply.send(answer);
    }
    for w in again {
        let _ = w.reply.send(Ok(Grouped::Alone));
    }
}

/// Why a group's statement gave no outcomes.
enum Together {
    /// The server refused it (one row may be the cause): nothing committed.
    Refused,
    /// No connection: nothing was sent, nothing committed.
    NotSent(Arc<BackendError>),
    /// Sent, no answer (the connection was lost): it may have committed.
    Unanswered(Arc<BackendError>),
}

/// The group's statement: keys, then sessions whose key was new (or that
/// have none), then the rows of the sessions written. Column types are
/// spelled out: the arrays carry them. Webhooks keep their order: their ids
/// (the identity default) are drawn above the sort, which `OFFSET 0` keeps in
/// a subquery of its own (a sort does not project, so a default evaluated
/// beside it would be drawn before the rows are sorted).
const CREATE_GROUP: &str = "WITH k AS (
    INSERT INTO idempotency_keys (project_id, key, method, created_at_us)
    SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[])
    ON CONFLICT (project_id, key) DO NOTHING
    RETURNING project_id, key),
s AS (
    INSERT INTO sessions (project_id, id, phase, refund_id, refunded_at_us, updated_at_us, finished_at_us, draft,
        api_version, created_at_us, submerchant, book, shape, version)
    SELECT x.project_id, x.id, x.phase, x.refund_id, x.refunded_at_us, x.updated_at_us, x.finished_at_us, x.draft,
        x.api_version, x.created_at_us, x.submerchant, x.book, x.shape, 1
    FROM UNNEST($5::TEXT[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::BIGINT[], $11::BIGINT[],
        $12::BIGINT[], $13::TEXT[], $14::TEXT[], $15::BIGINT[], $16::TEXT[], $17::TEXT[], $18::TEXT[])
        AS x(project_id, id, key, phase, refund_id, refunded_at_us, updated_at_us, finished_at_us, draft,
            api_version, created_at_us, submerchant, book, shape)
    WHERE x.key IS NULL OR (x.project_id, x.key) IN (SELECT project_id, key FROM k)
    RETURNING project_id, id),
p AS (
    INSERT INTO payouts (project_id, session_id, id, amount, currency, method_masked, participant_details, customer,
        metadata, plan, created_at_us, state, charged_amount, charged_currency, fx_rate_millionths,
        confirm_information, finished_at_us, fiscalization, fiscal_inn, receipt)
    SELECT * FROM UNNEST($19::TEXT[], $20::TEXT[], $21::TEXT[], $22::BIGINT[], $23::TEXT[], $24::TEXT[],
        $25::TEXT[], $26::TEXT[], $27::TEXT[], $28::TEXT[], $29::BIGINT[], $30::TEXT[], $31::BIGINT[], $32::TEXT[],
        $33::BIGINT[], $34::TEXT[], $35::BIGINT[], $36::TEXT[], $37::TEXT[], $38::TEXT[])
        AS y(project_id, session_id, id, amount, currency, method_masked, participant_details, customer, metadata,
            plan, created_at_us, state, charged_amount, charged_currency, fx_rate_millionths, confirm_information,
            finished_at_us, fiscalization, fiscal_inn, receipt)
    WHERE (y.project_id, y.session_id) IN (SELECT project_id, id FROM s)),
w AS (
    INSERT INTO webhooks (project_id, subject_kind, subject_id, type, body, created_at_us, state,
        next_attempt_at_us, last_error)
    SELECT * FROM (
        SELECT h.project_id, 'session', h.session_id, h.kind, h.body, h.at, 'pending',
            CASE WHEN pr.webhook_url IS NULL THEN h.at + $44 ELSE h.at END,
            CASE WHEN pr.webhook_url IS NULL THEN $45 END
        FROM UNNEST($39::TEXT[], $40::TEXT[], $41::TEXT[], $42::BYTEA[], $43::BIGINT[])
            WITH ORDINALITY AS h(project_id, session_id, kind, body, at, n)
        JOIN projects pr ON pr.id = h.project_id
        WHERE (h.project_id, h.session_id) IN (SELECT project_id, id FROM s)
        ORDER BY h.n OFFSET 0) AS ordered),
t AS (
    INSERT INTO session_timers (project_id, session_id, timer, due_at_us)
    SELECT * FROM UNNEST($46::TEXT[], $47::TEXT[], $48::TEXT[], $49::BIGINT[]) AS z(project_id, session_id, timer, due)
    WHERE (z.project_id, z.session_id) IN (SELECT project_id, id FROM s))
SELECT project_id, id FROM s";

/// Every column of a group, one array each, in [`CREATE_GROUP`]'s order.
#[derive(Default)]
struct Columns<'a> {
    key_projects: Vec<&'a str>,
    keys: Vec<&'a str>,
    key_methods: Vec<&'a str>,
    key_at: Vec<i64>,
    sessions: SessionColumns<'a>,
    payouts: PayoutColumns<'a>,
    hook_projects: Vec<&'a str>,
    hook_sessions: Vec<&'a str>,
    hook_kinds: Vec<&'a str>,
    hook_bodies: Vec<&'a [u8]>,
    hook_at: Vec<i64>,
    timer_projects: Vec<&'a str>,
    timer_sessions: Vec<&'a str>,
    timer_names: Vec<&'static str>,
    timer_due: Vec<i64>,
}

#[derive(Default)]
struct SessionColumns<'a> {
    project_id: Vec<&'a str>,
    id: Vec<&'a str>,
    key: Vec<Option<&'a str>>,
    phase: Vec<&'static str>,
    refund_id: Vec<Option<&'a str>>,
    refunded_at_us: Vec<Option<i64>>,
    updated_at_us: Vec<i64>,
    finished_at_us: Vec<Option<i64>>,
    draft: Vec<Option<&'a str>>,
    api_version: Vec<&'static str>,
    created_at_us: Vec<i64>,
    submerchant: Vec<Option<&'a str>>,
    book: Vec<&'static str>,
    shape: Vec<&'static str>,
}

#[derive(Default)]
struct PayoutColumns<'a> {
    project_id: Vec<&'a str>,
    session_id: Vec<&'a str>,
    id: Vec<&'a str>,
    amount: Vec<i64>,
    currency: Vec<&'a str>,
    method_masked: Vec<&'a str>,
    participant_details: Vec<&'a str>,
    customer: Vec<Option<&'a str>>,
    metadata: Vec<Option<&'a str>>,
    plan: Vec<String>,
    created_at_us: Vec<i64>,
    state: Vec<String>,
    charged_amount: Vec<Option<i64>>,
    charged_currency: Vec<Option<&'a str>>,
    fx_rate_millionths: Vec<Option<i64>>,
    confirm_information: Vec<Option<&'a str>>,
    finished_at_us: Vec<Option<i64>>,
    fiscalization: Vec<Option<&'a str>>,
    fiscal_inn: Vec<Option<String>>,
    receipt: Vec<Option<String>>,
}

impl<'a> Columns<'a> {
    fn of(writes: &[(&'a SessionWrite, OffsetDateTime)]) -> Self {
        let mut c = Self::default();
        for (w, now) in writes {
            c.add(w, to_us(*now));
        }
        c
    }

    fn add(&mut self, w: &'a SessionWrite, now_us: i64) {
        let r = &w.record;
        if let Some((key, method)) = &w.idempotency {
            self.key_projects.push(&r.project_id);
            self.keys.push(key);
            self.key_methods.push(method);
            self.key_at.push(now_us);
        }
        self.sessions.add(SessionValues::of(r), w.idempotency.as_ref().map(|(key, _)| key.as_str()));
        for p in &r.payouts {
            self.payouts.add(&r.project_id, &r.id, PayoutValues::of(p));
        }
        for hook in &w.webhooks {
            self.hook_projects.push(&r.project_id);
            self.hook_sessions.push(&r.id);
            self.hook_kinds.push(&hook.kind);
            self.hook_bodies.push(&hook.body);
            self.hook_at.push(now_us);
        }
        for (timer, due) in &w.timers {
            self.timer_projects.push(&r.project_id);
            self.timer_sessions.push(&r.id);
            self.timer_names.push(timer.as_str());
            self.timer_due.push(to_us(*due));
        }
    }
}

impl<'a> SessionColumns<'a> {
    fn add(&mut self, v: SessionValues<'a>, key: Option<&'a str>) {
        self.project_id.push(v.project_id);
        self.id.push(v.id);
        self.key.push(key);
        self.phase.push(v.phase);
        self.refund_id.push(v.refund_id);
        self.refunded_at_us.push(v.refunded_at_us);
        self.updated_at_us.push(v.updated_at_us);
        self.finished_at_us.push(v.finished_at_us);
        self.draft.push(v.draft);
        self.api_version.push(v.api_version);
        self.created_at_us.push(v.created_at_us);
        self.submerchant.push(v.submerchant);
        self.book.push(v.book);
        self.shape.push(v.shape);
    }
}

impl<'a> PayoutColumns<'a> {
    fn add(&mut self, project: &'a str, session: &'a str, v: PayoutValues<'a>) {
        self.project_id.push(project);
        self.session_id.push(session);
        self.id.push(v.id);
        self.amount.push(v.amount);
        self.currency.push(v.currency);
        self.method_masked.push(v.method_masked);
        self.participant_details.push(v.participant_details);
        self.customer.push(v.customer);
        self.metadata.push(v.metadata);
        self.plan.push(v.plan);
        self.created_at_us.push(v.created_at_us);
        self.state.push(v.state);
        self.charged_amount.push(v.charged_amount);
        self.charged_currency.push(v.charged_currency);
        self.fx_rate_millionths.push(v.fx_rate_millionths);
        self.confirm_information.push(v.confirm_information);
        self.finished_at_us.push(v.finished_at_us);
        self.fiscalization.push(v.fiscalization);
        self.fiscal_inn.push(v.fiscal_inn);
        self.receipt.push(v.receipt);
    }
}

type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);

/// Writes a group in one statement: each write's outcome, in order (`None`
/// for one the statement should have written and did not say so).
async fn create_together(
    pool: &Pool,
    writes: &[(&SessionWrite, OffsetDateTime)],
    commits: &crate::CommitWatch,
) -> std::result::Result<Vec<Option<WriteOutcome>>, Together> {
    let client = pool.get().await.map_err(|e| Together::NotSent(Arc::new(BackendError::Pool(e))))?;
    let c = Columns::of(writes);
    let (s, p) = (&c.sessions, &c.payouts);
    let params: [Param<'_>; 49] = [
        &c.key_projects,
        &c.keys,
        &c.key_methods,
        &c.key_at,
        &s.project_id,
        &s.id,
        &s.key,
        &s.phase,
        &s.refund_id,
        &s.refunded_at_us,
        &s.updated_at_us,
        &s.finished_at_us,
        &s.draft,
        &s.api_version,
        &s.created_at_us,
        &s.submerchant,
        &s.book,
        &s.shape,
        &p.project_id,
        &p.session_id,
        &p.id,
        &p.amount,
        &p.currency,
        &p.method_masked,
        &p.participant_details,
        &p.customer,
        &p.metadata,
        &p.plan,
        &p.created_at_us,
        &p.state,
        &p.charged_amount,
        &p.charged_currency,
        &p.fx_rate_millionths,
        &p.confirm_information,
        &p.finished_at_us,
        &p.fiscalization,
        &p.fiscal_inn,
        &p.receipt,
        &c.hook_projects,
        &c.hook_sessions,
        &c.hook_kinds,
        &c.hook_bodies,
        &c.hook_at,
        &crate::WEBHOOK_PARK_US,
        &crate::WEBHOOK_PARKED_ERROR,
        &c.timer_projects,
        &c.timer_sessions,
        &c.timer_names,
        &c.timer_due,
    ];
    let began = std::time::Instant::now();
    let created = async { client.query(&client.prepare_cached(CREATE_GROUP).await?, &params).await }.await;
    let created = match created {
        Ok(created) => created,
        // The server answered with an error: the statement rolled back.
        Err(e) if e.code().is_some() => return Err(Together::Refused),
        Err(e) => {
            commits.report(writes.len(), began.elapsed(), false);
            return Err(Together::Unanswered(Arc::new(BackendError::Postgres(e))));
        }
    };
    commits.report(writes.len(), began.elapsed(), true);
    let mut written: HashSet<(&str, &str)> = HashSet::with_capacity(created.len());
    for row in &created {
        let id = row.try_get::<_, &str>(0).and_then(|project| Ok((project, row.try_get::<_, &str>(1)?)));
        written.insert(id.map_err(|e| Together::Unanswered(Arc::new(BackendError::Postgres(e))))?);
    }
    Ok(writes.iter().map(|(w, _)| outcome(w, &written)).collect())
}

/// A write's outcome from the sessions its group's statement wrote.
fn outcome(w: &SessionWrite, written: &HashSet<(&str, &str)>) -> Option<WriteOutcome> {
    let r = &w.record;
    match written.contains(&(r.project_id.as_str(), r.id.as_str())) {
        true => Some(WriteOutcome::Applied(1)),
        false if w.idempotency.is_some() => Some(WriteOutcome::IdempotencyConflict),
        false => None,
    }
}
