//! Sessions, timers and the ledger on PostgreSQL: one transaction per session
//! change with its idempotency key, ledger movements, webhooks and timers.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use open131_domain::fx::FxRate;
use open131_domain::ledger::{postings, Book, Leg, Movement};
use open131_domain::lifecycle::Timer;
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;

use std::sync::Arc;

use super::batch::{statements, Statements, Step};
use super::{after_commit_sent, PgStore};
use crate::payouts::*;
use crate::rows::{
    contractor_wallet, decode_rate, due_timer, to_us, wallet_deltas, PaymentValues, PayoutValues, PostingRow,
    RefundValues, SessionPostingRow, SessionRows, SessionValues, TokenRow, WalletRow, CONTRACTOR_WALLETS,
    CONTRACTOR_WALLET_CREATE, CONTRACTOR_WALLET_UPDATE, DISABLE_TOKEN, DROP_CLAIMED_TIMER, POSTING_COLUMNS,
    RATE_COLUMNS, SELECT_SESSION, SELECT_TOKEN, SESSION_POSTING_COLUMNS, WALLET_COLUMNS, WALLET_CREATE, WALLET_UPDATE,
};
use crate::rows::{
    SubscriptionRow, SubscriptionValues, INSERT_SUBSCRIPTION, SUBSCRIPTION_COLUMNS, UPDATE_SUBSCRIPTION,
};
use crate::{with_retries, LedgerStore, NpdStore, Result, SessionStore, StoreError, SubscriptionStore, WidgetStore};

type Param<'a> = &'a (dyn ToSql + Sync);

/// Why a session change did not apply (its transaction is rolled back).
enum Refusal {
    Outcome(WriteOutcome),
    Error(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Error(e)
    }
}

impl From<tokio_postgres::Error> for Refusal {
    fn from(e: tokio_postgres::Error) -> Self {
        Refusal::Error(e.into())
    }
}

/// A session change as a group-commit job: a refusal rolls it back.
fn session_job(write: SessionWrite, now: OffsetDateTime) -> Statements<WriteOutcome> {
    let write = Arc::new(write);
    statements(move |tx| {
        let w = write.clone();
        Box::pin(async move {
            match write_session_in(tx, &w, now).await {
                Ok(version) => Ok(Step::Commit(WriteOutcome::Applied(version))),
                Err(Refusal::Outcome(o)) => Ok(Step::Refuse(o)),
                Err(Refusal::Error(e)) => Err(e),
            }
        })
    })
}

async fn write_session_in(tx: &Transaction<'_>, w: &SessionWrite, now: OffsetDateTime) -> Result<i64, Refusal> {
    let r = &w.record;
    let version = change_in_one_statement(tx, w, now).await?;
    for leg in &w.movements {
        if !apply_movement(tx, &r.project_id, leg, Some(&r.id), now).await? {
            return Err(Refusal::Outcome(WriteOutcome::Insufficient));
        }
    }
    Ok(version)
}

/// The SQL text of one statement and its parameters, each typed by a cast so
/// that `INSERT ... SELECT` needs no inference.
struct Sql<'a> {
    text: String,
    params: Vec<Param<'a>>,
}

impl<'a> Sql<'a> {
    /// Adds a parameter and returns its placeholder, cast to `ty`.
    fn p(&mut self, value: Param<'a>, ty: &str) -> String {
        self.params.push(value);
        format!("${}::{ty}", self.params.len())
    }
}

/// Everything of a session change but its ledger movements, in one statement
/// of data-modifying CTEs: the idempotency key, the session (inserted, or
/// updated from its expected version), its payouts (inserted, or moved to
/// their new state), its webhooks and timers, the consumed timer's deletion.
/// Every part after the session's runs only when the session row changed.
///
/// Why: PostgreSQL's CPU binds first here and its cost follows the number of
/// statements; a payout's creation was four, a timer's firing five.
async fn change_in_one_statement(tx: &Transaction<'_>, w: &SessionWrite, now: OffsetDateTime) -> Result<i64, Refusal> {
    let r = &w.record;
    let v = SessionValues::of(r);
    let now_us = to_us(now);
    let park_until = now_us + crate::WEBHOOK_PARK_US;
    let payouts: Vec<PayoutValues<'_>> = r.payouts.iter().map(PayoutValues::of).collect();
    let payments: Vec<PaymentValues<'_>> = r.payments.iter().map(PaymentValues::of).collect();
    let refunds = RefundValues::of(r);
    let timers: Vec<(&'static str, i64)> = w.timers.iter().map(|(t, due)| (t.as_str(), to_us(*due))).collect();
    // A timer both consumed and scheduled is simply rescheduled by its upsert
    // (one statement may not both delete and upsert one row).
    let consumed = w.consumed_timer.filter(|t| !w.timers.iter().any(|(s, _)| s == t)).map(Timer::as_str);
    let mut q = Sql { text: String::from("WITH "), params: Vec::new() };
    let (project, id) = (q.p(&r.project_id, "TEXT"), q.p(&r.id, "TEXT"));
    let gate = match &w.idempotency {
        Some((key, method)) => {
            let (key, method, at) = (q.p(key, "TEXT"), q.p(method, "TEXT"), q.p(&now_us, "BIGINT"));
            q.text += &format!(
                "k AS (INSERT INTO idempotency_keys (project_id, key, method, created_at_us)
                     VALUES ({project}, {key}, {method}, {at}) ON CONFLICT (project_id, key) DO NOTHING RETURNING 1), "
            );
            " WHERE EXISTS (SELECT 1 FROM k)"
        }
        None => "",
    };
    // A subscription changed with the session gates it: a stale version writes nothing.
    let subscription = w.subscription.as_ref().map(|s| (s.expected_version, SubscriptionValues::of(&s.record)));
    let gate = match &subscription {
        Some((Some(expected), u)) => {
            let values = [
                q.p(expected, "BIGINT"),
                q.p(&u.state, "TEXT"),
                q.p(&u.next_point_us, "BIGINT"),
                q.p(&u.failures, "BIGINT"),
                q.p(&u.charges, "BIGINT"),
                q.p(&u.updated_at_us, "BIGINT"),
                q.p(&u.project_id, "TEXT"),
                q.p(&u.id, "TEXT"),
            ];
            let [v, state, next, failures, charges, updated, p, i] = values;
            q.text += &format!(
                "u AS (UPDATE subscriptions SET version = {v} + 1, state = {state}, next_point_us = {next},
                     failures = {failures}, charges = {charges}, updated_at_us = {updated}, lease_until_us = NULL
                 WHERE project_id = {p} AND id = {i} AND version = {v} RETURNING 1), "
            );
            match gate {
                "" => " WHERE EXISTS (SELECT 1 FROM u)",
                _ => " WHERE EXISTS (SELECT 1 FROM k) AND EXISTS (SELECT 1 FROM u)",
            }
        }
        _ => gate,
    };
    let (phase, refund_id) = (q.p(&v.phase, "TEXT"), q.p(&v.refund_id, "TEXT"));
    let (refunded, updated, finished) =
        (q.p(&v.refunded_at_us, "BIGINT"), q.p(&v.updated_at_us, "BIGINT"), q.p(&v.finished_at_us, "BIGINT"));
    let draft = q.p(&v.draft, "TEXT");
    let session = match &w.expected_version {
        None => {
            let (api, created) = (q.p(&v.api_version, "TEXT"), q.p(&v.created_at_us, "BIGINT"));
            let (submerchant, book, shape) = (q.p(&v.submerchant, "TEXT"), q.p(&v.book, "TEXT"), q.p(&v.shape, "TEXT"));
            format!(
                "INSERT INTO sessions (project_id, id, phase, refund_id, refunded_at_us, updated_at_us, finished_at_us,
                     draft, api_version, created_at_us, submerchant, book, shape, version)
                 SELECT {project}, {id}, {phase}, {refund_id}, {refunded}, {updated}, {finished}, {draft}, {api},
                     {created}, {submerchant}, {book}, {shape}, 1{gate}
                 RETURNING version"
            )
        }
        Some(expected) => {
            let expected = q.p(expected, "BIGINT");
            let gate = gate.replace(" WHERE", " AND");
            format!(
                "UPDATE sessions SET phase = {phase}, version = version + 1, refund_id = {refund_id},
                     refunded_at_us = {refunded}, updated_at_us = {updated}, finished_at_us = {finished},
                     draft = {draft}
                 WHERE project_id = {project} AND id = {id} AND version = {expected}{gate}
                 RETURNING version"
            )
        }
    };
    q.text += &format!("s AS ({session})");
    for (i, p) in payouts.iter().enumerate() {
        let values = [
            q.p(&p.id, "TEXT"),
            q.p(&p.amount, "BIGINT"),
            q.p(&p.currency, "TEXT"),
            q.p(&p.method_masked, "TEXT"),
            q.p(&p.participant_details, "TEXT"),
            q.p(&p.customer, "TEXT"),
            q.p(&p.metadata, "TEXT"),
            q.p(&p.plan, "TEXT"),
            q.p(&p.created_at_us, "BIGINT"),
            q.p(&p.state, "TEXT"),
            q.p(&p.charged_amount, "BIGINT"),
            q.p(&p.charged_currency, "TEXT"),
            q.p(&p.fx_rate_millionths, "BIGINT"),
            q.p(&p.confirm_information, "TEXT"),
            q.p(&p.finished_at_us, "BIGINT"),
            q.p(&p.fiscalization, "TEXT"),
            q.p(&p.fiscal_inn, "TEXT"),
            q.p(&p.receipt, "TEXT"),
        ]
        .join(", ");
        q.text += &format!(
            ", p{i} AS (INSERT INTO payouts (project_id, session_id, id, amount, currency, method_masked,
                 participant_details, customer, metadata, plan, created_at_us, state, charged_amount,
                 charged_currency, fx_rate_millionths, confirm_information, finished_at_us, fiscalization, fiscal_inn,
                 receipt)
             SELECT {project}, {id}, {values} FROM s
             ON CONFLICT (project_id, id) DO UPDATE SET state = excluded.state,
                 finished_at_us = excluded.finished_at_us, fiscalization = excluded.fiscalization,
                 fiscal_inn = excluded.fiscal_inn, receipt = excluded.receipt)"
        );
    }
    for (i, p) in payments.iter().enumerate() {
        let values = [
            q.p(&p.id, "TEXT"),
            q.p(&p.amount, "BIGINT"),
            q.p(&p.currency, "TEXT"),
            q.p(&p.method_masked, "TEXT"),
            q.p(&p.customer, "TEXT"),
            q.p(&p.participant_details, "TEXT"),
            q.p(&p.metadata, "TEXT"),
            q.p(&p.return_url, "TEXT"),
            q.p(&p.plan, "TEXT"),
            q.p(&p.state, "TEXT"),
            q.p(&p.captured_amount, "BIGINT"),
            q.p(&p.created_at_us, "BIGINT"),
            q.p(&p.fee_amount, "BIGINT"),
            q.p(&p.three_ds_attempts, "BIGINT"),
            q.p(&p.recurrent, "BOOLEAN"),
            q.p(&p.recurrent_token, "TEXT"),
            q.p(&p.recurrent_created_at_us, "BIGINT"),
            q.p(&p.recurrent_finished_at_us, "BIGINT"),
            q.p(&p.finished_at_us, "BIGINT"),
            q.p(&p.revenue_split, "TEXT"),
            q.p(&p.subscription_period, "TEXT"),
            q.p(&p.subscription_id, "TEXT"),
            q.p(&p.subscription_initial, "BOOLEAN"),
            q.p(&p.card_expiry, "TEXT"),
        ]
        .join(", ");
        q.text += &format!(
            ", q{i} AS (INSERT INTO payments (project_id, session_id, id, amount, currency, method_masked, customer,
                 participant_details, metadata, return_url, plan, state, captured_amount, created_at_us, fee_amount,
                 three_ds_attempts, recurrent, recurrent_token, recurrent_created_at_us, recurrent_finished_at_us,
                 finished_at_us, revenue_split, subscription_period, subscription_id, subscription_initial,
                 card_expiry)
             SELECT {project}, {id}, {values} FROM s
             ON CONFLICT (project_id, id) DO UPDATE SET state = excluded.state,
                 captured_amount = excluded.captured_amount, fee_amount = excluded.fee_amount,
                 three_ds_attempts = excluded.three_ds_attempts, recurrent_token = excluded.recurrent_token,
                 recurrent_created_at_us = excluded.recurrent_created_at_us,
                 recurrent_finished_at_us = excluded.recurrent_finished_at_us,
                 finished_at_us = excluded.finished_at_us, revenue_split = excluded.revenue_split,
                 subscription_id = excluded.subscription_id)"
        );
    }
    for (i, f) in refunds.iter().enumerate() {
        let values = [
            q.p(&f.payment_id, "TEXT"),
            q.p(&f.id, "TEXT"),
            q.p(&f.amount, "BIGINT"),
            q.p(&f.state, "TEXT"),
            q.p(&f.is_chargeback, "BOOLEAN"),
            q.p(&f.metadata, "TEXT"),
            q.p(&f.created_at_us, "BIGINT"),
            q.p(&f.finished_at_us, "BIGINT"),
            q.p(&f.seq, "BIGINT"),
            q.p(&f.revenue_split, "TEXT"),
        ]
        .join(", ");
        q.text += &format!(
            ", r{i} AS (INSERT INTO payment_refunds (project_id, session_id, payment_id, id, amount, state,
                 is_chargeback, metadata, created_at_us, finished_at_us, seq, revenue_split)
             SELECT {project}, {id}, {values} FROM s
             ON CONFLICT (project_id, id) DO UPDATE SET state = excluded.state,
                 finished_at_us = excluded.finished_at_us, revenue_split = excluded.revenue_split)"
        );
    }
    if let Some((None, u)) = &subscription {
        let values = [
            q.p(&u.project_id, "TEXT"),
            q.p(&u.id, "TEXT"),
            q.p(&1_i64, "BIGINT"),
            q.p(&u.state, "TEXT"),
            q.p(&u.period, "TEXT"),
            q.p(&u.next_point_us, "BIGINT"),
            q.p(&u.failures, "BIGINT"),
            q.p(&u.charges, "BIGINT"),
            q.p(&u.amount, "BIGINT"),
            q.p(&u.currency, "TEXT"),
            q.p(&u.method_masked, "TEXT"),
            q.p(&u.card_expiry, "TEXT"),
            q.p(&u.customer, "TEXT"),
            q.p(&u.metadata, "TEXT"),
            q.p(&u.api_version, "TEXT"),
            q.p(&u.first_session_id, "TEXT"),
            q.p(&u.created_at_us, "BIGINT"),
            q.p(&u.updated_at_us, "BIGINT"),
            q.p(&u.anchor_us, "BIGINT"),
            q.p(&u.submerchant, "TEXT"),
        ]
        .join(", ");
        q.text += &format!(", n AS (INSERT INTO subscriptions ({SUBSCRIPTION_COLUMNS}) SELECT {values} FROM s)");
    }
    if !w.webhooks.is_empty() {
        webhooks_cte(&mut q, &w.webhooks, (&now_us, &park_until), (&project, &id));
    }
    if let Some(timer) = &consumed {
        let timer = q.p(timer, "TEXT");
        q.text += &format!(
            ", d AS (DELETE FROM session_timers
                 WHERE project_id = {project} AND session_id = {id} AND timer = {timer} AND EXISTS (SELECT 1 FROM s))"
        );
    }
    for (i, (timer, due)) in timers.iter().enumerate() {
        let (timer, due) = (q.p(timer, "TEXT"), q.p(due, "BIGINT"));
        q.text += &format!(
            ", t{i} AS (INSERT INTO session_timers (project_id, session_id, timer, due_at_us)
             SELECT {project}, {id}, {timer}, {due} FROM s
             ON CONFLICT (project_id, session_id, timer) DO UPDATE SET due_at_us = excluded.due_at_us,
                 lease_owner = NULL)"
        );
    }
    let keyed = if w.idempotency.is_some() { "(SELECT count(*) FROM k)" } else { "1::BIGINT" };
    q.text += &format!(" SELECT {keyed}, (SELECT version FROM s)");
    let stmt = tx.prepare_cached(&q.text).await?;
    // A taken session id is a unique violation: an error, as on SQLite.
    let row = tx.query_one(&stmt, &q.params).await?;
    let (keyed, version): (i64, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
    match version {
        Some(version) => Ok(version),
        None if keyed == 0 => Err(Refusal::Outcome(WriteOutcome::IdempotencyConflict)),
        None => Err(Refusal::Outcome(WriteOutcome::VersionConflict)),
    }
}

/// The write's webhooks, in one CTE so that their ids follow their order
/// (PostgreSQL runs a statement's data-modifying CTEs in no promised order;
/// it ran two webhook CTEs last first). The ids (the identity default) are
/// drawn above the sort, which `OFFSET 0` keeps in a subquery of its own.
fn webhooks_cte<'a>(
    q: &mut Sql<'a>,
    hooks: &'a [NewWebhook],
    (now_us, park_until): (&'a i64, &'a i64),
    (project, id): (&str, &str),
) {
    let (at, park_until) = (q.p(now_us, "BIGINT"), q.p(park_until, "BIGINT"));
    let park_error = q.p(&crate::WEBHOOK_PARKED_ERROR, "TEXT");
    let rows: Vec<String> = (0_i64..)
        .zip(hooks)
        .map(|(n, hook)| format!("({n}, {}, {})", q.p(&hook.kind, "TEXT"), q.p(&hook.body, "BYTEA")))
        .collect();
    let rows = rows.join(", ");
    // Parked from the start while the project has no URL. (A URL set by a
    // transaction committing while this statement runs is not seen: such a
    // webhook waits for its hourly re-check, which then finds the URL.)
    q.text += &format!(
        ", w AS (INSERT INTO webhooks (project_id, subject_kind, subject_id, type, body, created_at_us, state,
             next_attempt_at_us, last_error)
         SELECT * FROM (
             SELECT {project}, 'session', {id}, v.kind, v.body, {at}, 'pending',
                 CASE WHEN pr.webhook_url IS NULL THEN {park_until} ELSE {at} END,
                 CASE WHEN pr.webhook_url IS NULL THEN {park_error} END
             FROM s, projects pr, (VALUES {rows}) AS v(n, kind, body) WHERE pr.id = {project}
             ORDER BY v.n OFFSET 0) AS ordered)"
    );
}

/// Applies a movement to the wallet (and a split movement to its
/// contractor's wallet) and writes its two postings. `false` when a guarded
/// balance would go negative: the caller rolls the whole write back (the
/// project's wallet may already have moved when the contractor's refuses).
async fn apply_movement(
    tx: &Transaction<'_>,
    project: &str,
    leg: &Leg,
    session: Option<&str>,
    now: OffsetDateTime,
) -> Result<bool> {
    let (book, currency) = (leg.book.as_str(), leg.currency.as_str());
    let pair = postings(leg.movement, leg.amount);
    // One UPDATE for both postings, guarded so no checked balance goes negative;
    // a concurrent change of the wallet makes it wait and re-check the guard.
    let update = tx.prepare_cached(WALLET_UPDATE).await?;
    let deltas = wallet_deltas(&pair);
    let mut params: Vec<Param<'_>> = deltas.iter().map(|d| d as Param<'_>).collect();
    params.extend([&project as Param<'_>, &book, &currency]);
    let mut n = tx.execute(&update, &params).await?;
    // A wallet exists from its first movement on, so it is created only when
    // the UPDATE changed nothing (no wallet yet, or a guard refused), and the
    // UPDATE tried again: one statement fewer on every other movement (issue 12).
    if n == 0 {
        let create = tx.prepare_cached(WALLET_CREATE).await?;
        tx.execute(&create, &[&project, &book, &currency]).await?;
        n = tx.execute(&update, &params).await?;
    }
    if n == 0 || !move_contractor(tx, project, leg).await? {
        return Ok(false);
    }
    let post = tx
        .prepare_cached(
            "INSERT INTO ledger_postings (project_id, book, currency, movement, account, amount, session_id,
                 created_at_us, contractor, operation_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    for p in pair {
        let movement = leg.movement.as_str();
        let params: [Param<'_>; 10] = [
            &project,
            &book,
            &currency,
            &movement,
            &p.account.as_str(),
            &p.amount,
            &session,
            &to_us(now),
            &leg.contractor,
            &leg.operation,
        ];
        tx.execute(&post, &params).await?;
    }
    Ok(true)
}

/// The contractor's side of a split movement (nothing for other movements);
/// `false` when it would take more than the contractor's wallet holds.
async fn move_contractor(tx: &Transaction<'_>, project: &str, leg: &Leg) -> Result<bool> {
    let delta = leg.contractor_delta();
    let alias = match (&leg.contractor, delta) {
        (None, 0) => return Ok(true),
        (Some(alias), d) if d != 0 => alias,
        _ => return Err(StoreError::MovementRefused("a split movement names no contractor")),
    };
    let (book, currency) = (leg.book.as_str(), leg.currency.as_str());
    let create = tx.prepare_cached(CONTRACTOR_WALLET_CREATE).await?;
    tx.execute(&create, &[&project, &book, &currency, alias]).await?;
    let update = tx.prepare_cached(CONTRACTOR_WALLET_UPDATE).await?;
    Ok(tx.execute(&update, &[&delta, &project, &book, &currency, alias]).await? == 1)
}

async fn topup_once(store: &PgStore, project: &str, leg: &Leg, now: OffsetDateTime) -> Result<()> {
    let mut client = store.client().await?;
    let tx = client.transaction().await?;
    if !apply_movement(&tx, project, leg, None, now).await? {
        return Err(StoreError::MovementRefused("a top-up cannot make a balance negative"));
    }
    // Never repeated after a lost COMMIT: that could credit the money twice.
    tx.commit().await.map_err(after_commit_sent)?;
    Ok(())
}

#[async_trait]
impl SessionStore for PgStore {
    async fn write_session(&self, write: SessionWrite, now: OffsetDateTime) -> Result<WriteOutcome> {
        // A plain creation goes with the others waiting (creations.rs), unless
        // its group was refused; the rest, group commit (batch.rs). Each is
        // retried only when nothing committed.
        if super::creations::groupable(&write) {
            let write = Arc::new(write);
            match self.creations.create(write.clone(), now).await? {
                super::creations::Grouped::Outcome(outcome) => return Ok(outcome),
                super::creations::Grouped::Alone => {
                    return self.batch.run(session_job(Arc::unwrap_or_clone(write), now)).await;
                }
            }
        }
        self.batch.run(session_job(write, now)).await
    }

    async fn recurrent_token(&self, project_id: &str, token: &str) -> Result<Option<RecurrentToken>> {
        let rows = with_retries(|| async move { self.query(SELECT_TOKEN, &[&project_id, &token]).await }).await?;
        match rows.first() {
            Some(row) => TokenRow::read(row, 0)?.map(TokenRow::decode).transpose(),
            None => Ok(None),
        }
    }

    async fn disable_recurrent_token(&self, project_id: &str, token: &str) -> Result<bool> {
        let n = with_retries(|| async move {
            let client = self.client().await?;
            Ok::<_, StoreError>(client.execute(DISABLE_TOKEN, &[&project_id, &token]).await?)
        })
        .await?;
        Ok(n > 0)
    }

    async fn idempotency_key_used(&self, project_id: &str, key: &str) -> Result<bool> {
        let rows = with_retries(|| async move {
            self.query("SELECT 1 FROM idempotency_keys WHERE project_id = $1 AND key = $2", &[&project_id, &key]).await
        })
        .await?;
        Ok(!rows.is_empty())
    }

    async fn recent_sessions(&self, project_id: &str, limit: usize) -> Result<Vec<SessionRecord>> {
        let limit = limit as i64;
        let rows = with_retries(|| async move {
            self.query(
                "SELECT id FROM sessions WHERE project_id = $1 ORDER BY created_at_us DESC, id DESC LIMIT $2",
                &[&project_id, &limit],
            )
            .await
        })
        .await?;
        let mut sessions = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0)?;
            if let Some(s) = self.session(project_id, &id).await? {
                sessions.push(s);
            }
        }
        Ok(sessions)
    }

    async fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>> {
        let rows = with_retries(|| async move { self.query(SELECT_SESSION, &[&project_id, &id]).await }).await?;
        let mut session = SessionRows::new();
        for row in &rows {
            session.push(row)?;
        }
        session.decode()
    }

    async fn claim_due_timers(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        self.claim_timers(None, now, lease_until, limit).await
    }

    async fn claim_project_due_timers(
        &self,
        project_id: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        self.claim_timers(Some(project_id), now, lease_until, limit).await
    }

    async fn drop_timer(
        &self,
        project_id: &str,
        session_id: &str,
        timer: Timer,
        claimed_until: OffsetDateTime,
    ) -> Result<()> {
        let due = to_us(claimed_until);
        with_retries(|| async move {
            let client = self.client().await?;
            client.execute(DROP_CLAIMED_TIMER, &[&project_id, &session_id, &timer.as_str(), &due]).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }
}

#[async_trait]
impl LedgerStore for PgStore {
    async fn topup_book(
        &self,
        project_id: &str,
        book: Book,
        currency: &str,
        amount: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        let leg = Leg::own(book, currency, Movement::TopUp, amount);
        with_retries(|| topup_once(self, project_id, &leg, now)).await
    }

    async fn contractor_wallets(&self, project_id: &str) -> Result<Vec<ContractorWalletRecord>> {
        let rows = with_retries(|| async { self.query(CONTRACTOR_WALLETS, &[&project_id]).await }).await?;
        rows.iter().map(|r| contractor_wallet(r).map_err(StoreError::from).and_then(|w| w)).collect()
    }

    async fn wallets(&self, project_id: &str) -> Result<Vec<WalletRecord>> {
        let sql = format!("SELECT {WALLET_COLUMNS} FROM wallets WHERE project_id = $1 ORDER BY book, currency");
        let rows = with_retries(|| async { self.query(&sql, &[&project_id]).await }).await?;
        rows.iter().map(|r| WalletRow::read(r).map_err(StoreError::from).and_then(WalletRow::decode)).collect()
    }

    async fn statement(
        &self,
        project_id: &str,
        book: Book,
        currency: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<StatementRecord> {
        let (book, from, to, limit) = (book.as_str(), to_us(from), to_us(to), limit as i64);
        // SUM of BIGINT is NUMERIC on PostgreSQL: cast back (a wallet's sums fit, as its balances do).
        let opening = with_retries(|| async move {
            self.query(
                "SELECT account, SUM(amount)::BIGINT FROM ledger_postings
                 WHERE project_id = $1 AND book = $2 AND currency = $3 AND created_at_us < $4
                 GROUP BY account ORDER BY account",
                &[&project_id, &book, &currency, &from],
            )
            .await
        })
        .await?;
        let opening = opening.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        let sql = format!(
            "SELECT {POSTING_COLUMNS} FROM ledger_postings
             WHERE project_id = $1 AND book = $2 AND currency = $3 AND created_at_us >= $4 AND created_at_us < $5
             ORDER BY created_at_us, id LIMIT $6"
        );
        let rows =
            with_retries(|| async { self.query(&sql, &[&project_id, &book, &currency, &from, &to, &limit]).await })
                .await?;
        let postings = rows
            .iter()
            .map(|r| PostingRow::read(r).map_err(StoreError::from).and_then(PostingRow::decode))
            .collect::<Result<_>>()?;
        Ok(StatementRecord { opening, postings })
    }

    async fn register_page(
        &self,
        project_id: &str,
        register: open131_domain::reports::Register,
        book: Book,
        currency: &str,
        (from, to): (OffsetDateTime, OffsetDateTime),
        after: Option<(OffsetDateTime, i64)>,
        limit: usize,
    ) -> Result<Vec<open131_domain::reports::RegisterPosting>> {
        let sql = crate::rows::register_sql(register);
        let (after_us, after_id) = after.map_or((i64::MIN, i64::MIN), |(t, id)| (to_us(t), id));
        let (book_name, from, to, limit) = (book.as_str(), to_us(from), to_us(to), limit as i64);
        let rows = with_retries(|| async {
            self.query(&sql, &[&project_id, &book_name, &currency, &from, &to, &after_us, &after_id, &limit]).await
        })
        .await?;
        rows.iter()
            .map(|r| {
                crate::rows::RegisterRow::read(r).map_err(StoreError::from).and_then(|row| row.decode(book, currency))
            })
            .collect()
    }

    async fn session_postings(
        &self,
        project_id: &str,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<SessionPostingRecord>> {
        let sql = format!(
            "SELECT {SESSION_POSTING_COLUMNS} FROM ledger_postings
             WHERE session_id = $1 AND project_id = $2 ORDER BY id LIMIT $3"
        );
        let limit = limit as i64;
        let rows = with_retries(|| async { self.query(&sql, &[&session_id, &project_id, &limit]).await }).await?;
        rows.iter()
            .map(|r| SessionPostingRow::read(r).map_err(StoreError::from).and_then(SessionPostingRow::decode))
            .collect()
    }

    async fn set_rate(&self, currency: &str, rate: Option<FxRate>, now: OffsetDateTime) -> Result<bool> {
        let now = to_us(now);
        let n = with_retries(|| async move {
            let client = self.client().await?;
            let n = match rate {
                Some(rate) => {
                    client
                        .execute(
                            "INSERT INTO fx_rates (currency, rate_millionths, updated_at_us) VALUES ($1, $2, $3)
                             ON CONFLICT (currency) DO UPDATE SET rate_millionths = excluded.rate_millionths,
                                 updated_at_us = excluded.updated_at_us",
                            &[&currency, &rate.millionths(), &now],
                        )
                        .await?
                }
                None => client.execute("DELETE FROM fx_rates WHERE currency = $1", &[&currency]).await?,
            };
            Ok::<_, StoreError>(n)
        })
        .await?;
        Ok(n > 0)
    }

    async fn rates(&self) -> Result<Vec<(String, FxRate)>> {
        let sql = format!("SELECT {RATE_COLUMNS} FROM fx_rates ORDER BY currency");
        let rows = with_retries(|| async { self.query(&sql, &[]).await }).await?;
        rows.iter().map(|r| decode_rate(r.try_get(0)?, r.try_get(1)?)).collect()
    }
}

#[async_trait]
impl SubscriptionStore for PgStore {
    async fn subscription(&self, project_id: &str, id: &str) -> Result<Option<SubscriptionRecord>> {
        let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE project_id = $1 AND id = $2");
        let rows = with_retries(|| async { self.query(&sql, &[&project_id, &id]).await }).await?;
        let row = rows.first().map(SubscriptionRow::read).transpose()?;
        row.map(SubscriptionRow::decode).transpose()
    }

    async fn write_subscription(&self, write: SubscriptionWrite, _now: OffsetDateTime) -> Result<WriteOutcome> {
        // One statement: a repeat after a lost connection is guarded by the version.
        let v = SubscriptionValues::of(&write.record);
        let n = with_retries(|| async {
            let client = self.client().await?;
            let n = match write.expected_version {
                Some(expected) => {
                    let params: [Param<'_>; 8] = [
                        &expected,
                        &v.state,
                        &v.next_point_us,
                        &v.failures,
                        &v.charges,
                        &v.updated_at_us,
                        &v.project_id,
                        &v.id,
                    ];
                    client.execute(UPDATE_SUBSCRIPTION, &params).await?
                }
                None => {
                    let params: [Param<'_>; 20] = [
                        &v.project_id,
                        &v.id,
                        &1_i64,
                        &v.state,
                        &v.period,
                        &v.next_point_us,
                        &v.failures,
                        &v.charges,
                        &v.amount,
                        &v.currency,
                        &v.method_masked,
                        &v.card_expiry,
                        &v.customer,
                        &v.metadata,
                        &v.api_version,
                        &v.first_session_id,
                        &v.created_at_us,
                        &v.updated_at_us,
                        &v.anchor_us,
                        &v.submerchant,
                    ];
                    client.execute(INSERT_SUBSCRIPTION, &params).await?
                }
            };
            Ok::<_, StoreError>(n)
        })
        .await?;
        Ok(match (n, write.expected_version) {
            (1, Some(expected)) => WriteOutcome::Applied(expected + 1),
            (1, None) => WriteOutcome::Applied(1),
            _ => WriteOutcome::VersionConflict,
        })
    }

    async fn claim_due_subscriptions(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>> {
        self.claim_subscriptions(crate::OwnClaim::real(now, lease_until), limit, None).await
    }

    async fn claim_project_due_subscriptions(
        &self,
        project_id: &str,
        own: crate::OwnClaim,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>> {
        self.claim_subscriptions(own, limit, Some(project_id)).await
    }
}

#[async_trait]
impl WidgetStore for PgStore {
    async fn insert_public_token(&self, t: PublicTokenRecord) -> Result<()> {
        let grant = t.grant.stored();
        let (created, expires, used) = (to_us(t.created_at), to_us(t.expires_at), t.used_at.map(to_us));
        // A repeat after a lost commit meets its own row and fails (a 500 the
        // partner answers by asking again: tokens are cheap, each one new).
        with_retries(|| async {
            let client = self.client().await?;
            let params: [Param<'_>; 6] = [&t.token, &t.project_id, &grant, &created, &expires, &used];
            client.execute(crate::rows::INSERT_PUBLIC_TOKEN, &params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    async fn put_card(&self, c: VaultCardRecord) -> Result<()> {
        let expiry = c.card_expiry.as_ref().map(open131_domain::ident::CardExpiry::stored);
        let created = to_us(c.created_at);
        // A repeat after a lost connection seals the same card again: harmless.
        with_retries(|| async {
            let client = self.client().await?;
            let params: [Param<'_>; 10] = [
                &c.project_id,
                &c.number_hash,
                &c.key_id,
                &c.nonce,
                &c.ciphertext,
                &c.brand,
                &c.bin,
                &c.last4,
                &expiry,
                &created,
            ];
            client.execute(crate::rows::INSERT_VAULT_CARD, &params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    async fn vault_card(&self, project_id: &str, number_hash: &str) -> Result<Option<VaultCardRecord>> {
        let rows =
            with_retries(|| async { self.query(crate::rows::SELECT_VAULT_CARD, &[&project_id, &number_hash]).await })
                .await?;
        let row = rows.first().map(crate::rows::vault_card).transpose()?;
        row.transpose()
    }

    async fn put_account(&self, a: VaultAccountRecord) -> Result<bool> {
        let created = to_us(a.created_at);
        // A repeat after a lost connection meets its own row: the account is there either way.
        let n = with_retries(|| async {
            let client = self.client().await?;
            let params: [Param<'_>; 8] =
                [&a.project_id, &a.token, &a.key_id, &a.nonce, &a.ciphertext, &a.bik, &a.masked_account, &created];
            Ok::<_, StoreError>(client.execute(crate::rows::INSERT_VAULT_ACCOUNT, &params).await?)
        })
        .await?;
        Ok(n == 1)
    }

    async fn vault_account(&self, project_id: &str, token: &str) -> Result<Option<VaultAccountRecord>> {
        let rows =
            with_retries(|| async { self.query(crate::rows::SELECT_VAULT_ACCOUNT, &[&project_id, &token]).await })
                .await?;
        let row = rows.first().map(crate::rows::vault_account).transpose()?;
        row.transpose()
    }

    async fn sealed_items(&self, not_key_id: &str, limit: usize) -> Result<Vec<SealedItem>> {
        let limit = limit as i64;
        let rows =
            with_retries(|| async { self.query(crate::rows::SEALED_ITEMS, &[&not_key_id, &limit]).await }).await?;
        rows.iter().map(|r| crate::rows::sealed_item(r).map_err(StoreError::from)).collect()
    }

    async fn reseal(&self, item: SealedItem) -> Result<()> {
        let sql = match item.kind {
            VaultKind::Card => crate::rows::RESEAL_CARD,
            VaultKind::Account => crate::rows::RESEAL_ACCOUNT,
        };
        // One statement: a repeat writes the same bytes again.
        with_retries(|| async {
            let client = self.client().await?;
            let params: [Param<'_>; 5] = [&item.key_id, &item.nonce, &item.ciphertext, &item.project_id, &item.name];
            client.execute(sql, &params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    async fn public_token_by_value(&self, token: &str) -> Result<Option<PublicTokenRecord>> {
        let rows =
            with_retries(|| async { self.query(crate::rows::SELECT_PUBLIC_TOKEN_BY_VALUE, &[&token]).await }).await?;
        let row = rows.first().map(crate::rows::public_token).transpose()?;
        row.transpose()
    }

    async fn use_public_token(&self, token: &str, now: OffsetDateTime) -> Result<Option<PublicTokenRecord>> {
        let now = to_us(now);
        // Not repeated after a lost commit: a repeat would find it used already.
        let client = self.client().await?;
        let rows = client.query(crate::rows::USE_PUBLIC_TOKEN, &[&now, &token]).await?;
        let row = rows.first().map(crate::rows::public_token).transpose()?;
        row.transpose()
    }

    async fn public_token(&self, project_id: &str, token: &str) -> Result<Option<PublicTokenRecord>> {
        let rows =
            with_retries(|| async { self.query(crate::rows::SELECT_PUBLIC_TOKEN, &[&project_id, &token]).await })
                .await?;
        let row = rows.first().map(crate::rows::public_token).transpose()?;
        row.transpose()
    }
}

#[async_trait]
impl NpdStore for PgStore {
    async fn npd_link(&self, project_id: &str, inn: &str) -> Result<Option<NpdLinkRecord>> {
        let rows =
            with_retries(|| async { self.query(crate::rows::SELECT_NPD_LINK, &[&project_id, &inn]).await }).await?;
        let row = rows.first().map(crate::rows::npd_link).transpose()?;
        row.transpose()
    }

    async fn save_npd_link(&self, l: NpdLinkRecord, expected_version: Option<i64>) -> Result<bool> {
        let (state, updated) = (l.state.as_str(), to_us(l.updated_at));
        // Not repeated after a lost commit: a repeat would meet its own change
        // and say another came first (the caller reads the link again).
        let client = self.client().await?;
        let changed = match expected_version {
            None => {
                let params: [Param<'_>; 5] = [&l.project_id, &l.inn, &state, &l.version, &updated];
                client.execute(crate::rows::INSERT_NPD_LINK, &params).await?
            }
            Some(expected) => {
                let params: [Param<'_>; 6] = [&state, &l.version, &updated, &l.project_id, &l.inn, &expected];
                client.execute(crate::rows::UPDATE_NPD_LINK, &params).await?
            }
        };
        Ok(changed == 1)
    }

    async fn insert_npd_request(&self, q: NpdRequestRecord) -> Result<()> {
        let (kind, answer) = (q.kind.as_str(), q.answer.stored());
        let (created, ready) = (to_us(q.created_at), to_us(q.ready_at));
        // A repeat after a lost commit meets its own row and fails (a 500 the
        // partner answers by asking again: each request is new).
        with_retries(|| async {
            let client = self.client().await?;
            let params: [Param<'_>; 7] = [&q.project_id, &q.id, &q.inn, &kind, &answer, &created, &ready];
            client.execute(crate::rows::INSERT_NPD_REQUEST, &params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    async fn npd_request(&self, project_id: &str, id: &str) -> Result<Option<NpdRequestRecord>> {
        let rows =
            with_retries(|| async { self.query(crate::rows::SELECT_NPD_REQUEST, &[&project_id, &id]).await }).await?;
        let row = rows.first().map(crate::rows::npd_request).transpose()?;
        row.transpose()
    }

    async fn fiscal_income(
        &self,
        project_id: &str,
        inn: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<i64> {
        let (from, to) = (to_us(from), to_us(to));
        let rows =
            with_retries(|| async { self.query(crate::rows::FISCAL_INCOME, &[&project_id, &inn, &from, &to]).await })
                .await?;
        Ok(rows.first().map(|r| r.try_get::<_, i64>(0)).transpose()?.unwrap_or(0))
    }

    async fn npd_taxpayer(&self, inn: &str) -> Result<Option<open131_domain::npd::Taxpayer>> {
        let rows = with_retries(|| async { self.query(crate::rows::SELECT_NPD_TAXPAYER, &[&inn]).await }).await?;
        let row = rows.first().map(crate::rows::npd_taxpayer).transpose()?;
        row.transpose()
    }

    async fn set_npd_taxpayer(&self, inn: &str, t: &open131_domain::npd::Taxpayer, now: OffsetDateTime) -> Result<()> {
        let (status, error, updated) = (t.status.as_str(), i64::from(t.service_error), to_us(now));
        let refusals = i64::from(t.receipt_refusals);
        // The same word again: a repeat after a lost commit is harmless.
        with_retries(|| async {
            let client = self.client().await?;
            let params: [Param<'_>; 7] = [&inn, &status, &t.full_name, &t.phone, &error, &updated, &refusals];
            client.execute(crate::rows::UPSERT_NPD_TAXPAYER, &params).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }
}

#[async_trait]
impl crate::InstanceStore for PgStore {
    fn instance_id(&self) -> &str {
        &self.instance
    }

    async fn heartbeat(&self, now: OffsetDateTime) -> Result<()> {
        let (me, now) = (self.instance.as_str(), to_us(now));
        // Saying it twice is harmless.
        with_retries(|| async {
            let client = self.client().await?;
            client.execute(crate::rows::HEARTBEAT, &[&me, &now]).await?;
            Ok::<_, StoreError>(())
        })
        .await
    }

    async fn heartbeats(&self) -> Result<Vec<(String, i64)>> {
        let rows = with_retries(|| async { self.query(crate::rows::SELECT_HEARTBEATS, &[]).await }).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    async fn release_leases(&self, now: OffsetDateTime, owner: Option<&str>) -> Result<usize> {
        let me = self.instance.as_str();
        let at = to_us(now);
        let forget = to_us(now - crate::INSTANCE_FORGET_AFTER);
        // Releasing twice is harmless: the second finds nothing leased.
        with_retries(|| async {
            let client = self.client().await?;
            let mut released = 0;
            for sql in crate::rows::RELEASE_LEASES {
                released += client.execute(sql, &[&at, &me, &owner]).await?;
            }
            client.execute(crate::rows::FORGET_INSTANCES, &[&forget]).await?;
            Ok::<_, StoreError>(usize::try_from(released).unwrap_or(usize::MAX))
        })
        .await
    }
}

impl PgStore {
    /// Claims due timers of `project` (on its own clock), or of every project
    /// not on a clock of its own.
    async fn claim_timers(
        &self,
        project: Option<&str>,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        let scope = match project {
            Some(_) => "project_id = $5".to_string(),
            None => format!("$5::text IS NULL AND {}", crate::NOT_CLOCKED),
        };
        let sql = format!(
            "UPDATE session_timers SET due_at_us = $3, lease_owner = $4
             WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM session_timers WHERE due_at_us <= $1 AND {scope}
                 ORDER BY due_at_us LIMIT $2 FOR UPDATE SKIP LOCKED))
             RETURNING project_id, session_id, timer"
        );
        let sql = sql.as_str();
        let (now, limit, lease) = (to_us(now), limit as i64, to_us(lease_until));
        let owner = self.instance.as_str();
        // A repeat after a lost commit only delays the first claim's timers to its lease end.
        let rows =
            with_retries(|| async move { self.query_replanned(sql, &[&now, &limit, &lease, &owner, &project]).await })
                .await?;
        rows.iter().map(|r| due_timer(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)).collect()
    }
}

impl PgStore {
    /// Claims due subscriptions of `project` (on its own clock), or of every
    /// project not on a clock of its own; leased on the real clock.
    async fn claim_subscriptions(
        &self,
        claim: crate::OwnClaim,
        limit: usize,
        project: Option<&str>,
    ) -> Result<Vec<SubscriptionRecord>> {
        let scope = match project {
            Some(_) => "project_id = $6".to_string(),
            None => format!("$6::text IS NULL AND {}", crate::NOT_CLOCKED),
        };
        let (now, limit, lease) = (to_us(claim.now), limit as i64, to_us(claim.real_lease_until));
        let real_now = to_us(claim.real_now);
        let sql = format!(
            "UPDATE subscriptions SET lease_until_us = $3, lease_owner = $4
             WHERE ctid = ANY(ARRAY(
                 SELECT ctid FROM subscriptions
                 WHERE state = 'active' AND next_point_us <= $1 AND (lease_until_us IS NULL OR lease_until_us <= $5)
                     AND {scope}
                 ORDER BY next_point_us LIMIT $2 FOR UPDATE SKIP LOCKED))
             RETURNING {SUBSCRIPTION_COLUMNS}"
        );
        let owner = self.instance.as_str();
        let rows = with_retries(|| async {
            self.query_replanned(&sql, &[&now, &limit, &lease, &owner, &real_now, &project]).await
        })
        .await?;
        rows.iter()
            .map(|r| SubscriptionRow::read(r).map_err(StoreError::from).and_then(SubscriptionRow::decode))
            .collect()
    }
}
