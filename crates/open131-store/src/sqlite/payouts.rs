//! SQL of the payout side: sessions with optimistic versions, idempotency
//! keys, timers, wallets and postings, and the webhook outbox.

use open131_domain::fx::FxRate;
use open131_domain::ledger::{postings, Book, Leg};
use open131_domain::lifecycle::Timer;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use time::OffsetDateTime;

use super::writer::db;
use crate::payouts::*;
use crate::rows::{
    attempt_outcome, decode_rate, due_timer, from_us, parking, to_us, wallet_deltas, PaymentValues, PayoutValues,
    PostingRow, RefundValues, SessionPostingRow, SessionRows, SessionValues, WalletRow, WebhookRow, INSERT_PAYOUT,
    POSTING_COLUMNS, RATE_COLUMNS, SELECT_SESSION, SESSION_POSTING_COLUMNS, SETTLE_ATTEMPT, UPSERT_PAYMENT,
    UPSERT_REFUND, WALLET_COLUMNS, WALLET_CREATE, WALLET_UPDATE, WEBHOOK_COLUMNS, WEBHOOK_PROJECT_HAS_URL,
};
use crate::rows::{contractor_wallet, CONTRACTOR_WALLETS, CONTRACTOR_WALLET_CREATE, CONTRACTOR_WALLET_UPDATE};
use crate::rows::{
    SubscriptionRow, SubscriptionValues, INSERT_SUBSCRIPTION, SUBSCRIPTION_COLUMNS, UPDATE_SUBSCRIPTION,
};
use crate::{Result, StoreError};

/// Why a change was refused inside its savepoint (rolled back by returning it as Err).
pub(crate) enum Refusal {
    Outcome(WriteOutcome),
    Error(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Error(e)
    }
}

fn err(e: rusqlite::Error) -> Refusal {
    Refusal::Error(db(e))
}

pub(crate) fn write_session(conn: &Connection, w: &SessionWrite, now: OffsetDateTime) -> Result<i64, Refusal> {
    let r = &w.record;
    if let Some((key, method)) = &w.idempotency {
        let n = conn
            .prepare_cached(
                "INSERT INTO idempotency_keys (project_id, key, method, created_at_us) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (project_id, key) DO NOTHING",
            )
            .map_err(err)?
            .execute(params![r.project_id, key, method, to_us(now)])
            .map_err(err)?;
        if n == 0 {
            return Err(Refusal::Outcome(WriteOutcome::IdempotencyConflict));
        }
    }
    let v = SessionValues::of(r);
    // The columns a change may set, at the same positions (?1..?8) in both
    // statements; each statement appends what only it needs.
    let columns: [&dyn rusqlite::ToSql; 8] = [
        &v.project_id,
        &v.id,
        &v.phase,
        &v.refund_id,
        &v.refunded_at_us,
        &v.updated_at_us,
        &v.finished_at_us,
        &v.draft,
    ];
    let version = match w.expected_version {
        None => {
            conn.prepare_cached(
                "INSERT INTO sessions (project_id, id, phase, refund_id, refunded_at_us, updated_at_us,
                     finished_at_us, draft, api_version, created_at_us, submerchant, book, shape, version)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 1)",
            )
            .map_err(err)?
            .execute(params_from_iter(columns.into_iter().chain([
                &v.api_version as _,
                &v.created_at_us as _,
                &v.submerchant as _,
                &v.book as _,
                &v.shape as _,
            ])))
            .map_err(err)?;
            1
        }
        Some(expected) => {
            let n = conn
                .prepare_cached(
                    "UPDATE sessions SET phase = ?3, version = version + 1, refund_id = ?4, refunded_at_us = ?5,
                         updated_at_us = ?6, finished_at_us = ?7, draft = ?8
                     WHERE project_id = ?1 AND id = ?2 AND version = ?9",
                )
                .map_err(err)?
                .execute(params_from_iter(columns.into_iter().chain([&expected as _])))
                .map_err(err)?;
            if n == 0 {
                return Err(Refusal::Outcome(WriteOutcome::VersionConflict));
            }
            expected + 1
        }
    };
    for p in &r.payments {
        let p = PaymentValues::of(p);
        conn.prepare_cached(UPSERT_PAYMENT)
            .map_err(err)?
            .execute(params![
                r.project_id,
                r.id,
                p.id,
                p.amount,
                p.currency,
                p.method_masked,
                p.customer,
                p.participant_details,
                p.metadata,
                p.return_url,
                p.plan,
                p.state,
                p.captured_amount,
                p.created_at_us,
                p.fee_amount,
                p.three_ds_attempts,
                p.recurrent,
                p.recurrent_token,
                p.recurrent_created_at_us,
                p.recurrent_finished_at_us,
                p.finished_at_us,
                p.revenue_split,
                p.subscription_period,
                p.subscription_id,
                p.subscription_initial,
                p.card_expiry
            ])
            .map_err(err)?;
    }
    for f in RefundValues::of(r) {
        conn.prepare_cached(UPSERT_REFUND)
            .map_err(err)?
            .execute(params![
                r.project_id,
                r.id,
                f.payment_id,
                f.id,
                f.amount,
                f.state,
                f.is_chargeback,
                f.metadata,
                f.created_at_us,
                f.finished_at_us,
                f.seq,
                f.revenue_split
            ])
            .map_err(err)?;
    }
    for p in &r.payouts {
        let p = PayoutValues::of(p);
        conn.prepare_cached(INSERT_PAYOUT)
            .map_err(err)?
            .execute(params![
                r.project_id,
                r.id,
                p.id,
                p.amount,
                p.currency,
                p.method_masked,
                p.participant_details,
                p.customer,
                p.metadata,
                p.plan,
                p.created_at_us,
                p.state,
                p.charged_amount,
                p.charged_currency,
                p.fx_rate_millionths,
                p.confirm_information,
                p.finished_at_us,
                p.fiscalization,
                p.fiscal_inn,
                p.receipt
            ])
            .map_err(err)?;
    }
    for leg in &w.movements {
        if !apply_movement(conn, &r.project_id, leg, Some(&r.id), now)? {
            return Err(Refusal::Outcome(WriteOutcome::Insufficient));
        }
    }
    if let Some(s) = &w.subscription {
        write_subscription(conn, s)?;
    }
    for hook in &w.webhooks {
        // Parked from the start while the project has no URL (read in this
        // write transaction: a URL set after it releases the webhook).
        conn.prepare_cached(
            "INSERT INTO webhooks (project_id, subject_kind, subject_id, type, body, created_at_us, state,
                 next_attempt_at_us, last_error)
             SELECT ?1, 'session', ?2, ?3, ?4, ?5, 'pending',
                 CASE WHEN webhook_url IS NULL THEN ?5 + ?6 ELSE ?5 END,
                 CASE WHEN webhook_url IS NULL THEN ?7 END
             FROM projects WHERE id = ?1",
        )
        .map_err(err)?
        .execute(params![
            r.project_id,
            r.id,
            hook.kind,
            hook.body,
            to_us(now),
            crate::WEBHOOK_PARK_US,
            crate::WEBHOOK_PARKED_ERROR
        ])
        .map_err(err)?;
    }
    if let Some(t) = w.consumed_timer {
        delete_timer(conn, &r.project_id, &r.id, t).map_err(Refusal::Error)?;
    }
    for (timer, due) in &w.timers {
        conn.prepare_cached(
            "INSERT INTO session_timers (project_id, session_id, timer, due_at_us) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (project_id, session_id, timer) DO UPDATE SET due_at_us = excluded.due_at_us,
                 lease_owner = NULL",
        )
        .map_err(err)?
        .execute(params![r.project_id, r.id, timer.as_str(), to_us(*due)])
        .map_err(err)?;
    }
    Ok(version)
}

pub(crate) fn delete_timer(conn: &Connection, project: &str, session: &str, timer: Timer) -> Result<()> {
    conn.prepare_cached("DELETE FROM session_timers WHERE project_id = ?1 AND session_id = ?2 AND timer = ?3")
        .map_err(db)?
        .execute(params![project, session, timer.as_str()])
        .map_err(db)?;
    Ok(())
}

/// Applies a movement to the wallet (and a split movement to its
/// contractor's wallet) and writes its two postings. `false` when a guarded
/// balance would go negative: the caller rolls the whole write back (the
/// project's wallet may already have moved when the contractor's refuses).
pub(crate) fn apply_movement(
    conn: &Connection,
    project: &str,
    leg: &Leg,
    session: Option<&str>,
    now: OffsetDateTime,
) -> Result<bool, Refusal> {
    let (book, currency) = (leg.book.as_str(), leg.currency.as_str());
    let pair = postings(leg.movement, leg.amount);
    // One UPDATE for both postings, guarded so no checked balance goes negative.
    let deltas = wallet_deltas(&pair);
    let update = || {
        conn.prepare_cached(WALLET_UPDATE)
            .map_err(err)?
            .execute(params_from_iter(deltas.iter().map(|d| d as &dyn rusqlite::ToSql).chain([
                &project as _,
                &book as _,
                &currency as _,
            ])))
            .map_err(err)
    };
    let mut n = update()?;
    // A wallet exists from its first movement on, so it is created only when
    // the UPDATE changed nothing (no wallet yet, or a guard refused), and the
    // UPDATE tried again: one statement fewer on every other movement (issue 12).
    if n == 0 {
        conn.prepare_cached(WALLET_CREATE).map_err(err)?.execute(params![project, book, currency]).map_err(err)?;
        n = update()?;
    }
    if n == 0 || !move_contractor(conn, project, leg)? {
        return Ok(false);
    }
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO ledger_postings (project_id, book, currency, movement, account, amount, session_id,
                 created_at_us, contractor, operation_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .map_err(err)?;
    for p in pair {
        let movement = leg.movement.as_str();
        let row = params![project, book, currency, movement, p.account.as_str(), p.amount, session, to_us(now)];
        let tail = [&leg.contractor as &dyn rusqlite::ToSql, &leg.operation];
        stmt.execute(params_from_iter(row.iter().copied().chain(tail))).map_err(err)?;
    }
    Ok(true)
}

/// The contractor's side of a split movement (nothing for other movements);
/// `false` when it would take more than the contractor's wallet holds.
fn move_contractor(conn: &Connection, project: &str, leg: &Leg) -> Result<bool, Refusal> {
    let delta = leg.contractor_delta();
    let alias = match (&leg.contractor, delta) {
        (None, 0) => return Ok(true),
        (Some(alias), d) if d != 0 => alias,
        _ => return Err(Refusal::Error(StoreError::MovementRefused("a split movement names no contractor"))),
    };
    let (book, currency) = (leg.book.as_str(), leg.currency.as_str());
    conn.prepare_cached(CONTRACTOR_WALLET_CREATE)
        .map_err(err)?
        .execute(params![project, book, currency, alias])
        .map_err(err)?;
    let n = conn
        .prepare_cached(CONTRACTOR_WALLET_UPDATE)
        .map_err(err)?
        .execute(params![delta, project, book, currency, alias])
        .map_err(err)?;
    Ok(n == 1)
}

pub(crate) fn contractor_wallets(conn: &Connection, project: &str) -> Result<Vec<ContractorWalletRecord>> {
    let rows = conn
        .prepare_cached(CONTRACTOR_WALLETS)
        .map_err(db)?
        .query_map([project], |r| contractor_wallet(r))
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter().collect()
}

pub(crate) fn session(conn: &Connection, project: &str, id: &str) -> Result<Option<SessionRecord>> {
    let mut stmt = conn.prepare_cached(SELECT_SESSION).map_err(db)?;
    let mut rows = stmt.query(params![project, id]).map_err(db)?;
    let mut session = SessionRows::new();
    while let Some(row) = rows.next().map_err(db)? {
        session.push(row).map_err(db)?;
    }
    session.decode()
}

/// Inserts a new subscription or changes one at the version it was read at
/// (`VersionConflict` otherwise); returns its new version.
pub(crate) fn write_subscription(conn: &Connection, w: &SubscriptionWrite) -> Result<i64, Refusal> {
    let v = SubscriptionValues::of(&w.record);
    let Some(expected) = w.expected_version else {
        conn.prepare_cached(INSERT_SUBSCRIPTION)
            .map_err(err)?
            .execute(params![
                v.project_id,
                v.id,
                1_i64,
                v.state,
                v.period,
                v.next_point_us,
                v.failures,
                v.charges,
                v.amount,
                v.currency,
                v.method_masked,
                v.card_expiry,
                v.customer,
                v.metadata,
                v.api_version,
                v.first_session_id,
                v.created_at_us,
                v.updated_at_us,
                v.anchor_us,
                v.submerchant
            ])
            .map_err(err)?;
        return Ok(1);
    };
    let n = conn
        .prepare_cached(UPDATE_SUBSCRIPTION)
        .map_err(err)?
        .execute(params![
            expected,
            v.state,
            v.next_point_us,
            v.failures,
            v.charges,
            v.updated_at_us,
            v.project_id,
            v.id
        ])
        .map_err(err)?;
    match n {
        1 => Ok(expected + 1),
        _ => Err(Refusal::Outcome(WriteOutcome::VersionConflict)),
    }
}

pub(crate) fn subscription(conn: &Connection, project: &str, id: &str) -> Result<Option<SubscriptionRecord>> {
    let sql = format!("SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions WHERE project_id = ?1 AND id = ?2");
    let row = conn
        .prepare_cached(&sql)
        .map_err(db)?
        .query_row(params![project, id], |r| SubscriptionRow::read(r))
        .optional()
        .map_err(db)?;
    row.map(SubscriptionRow::decode).transpose()
}

/// Whether any subscription is due and not leased at `now`.
pub(crate) fn any_due_subscription(conn: &Connection, now: OffsetDateTime) -> Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM subscriptions WHERE state = 'active' AND next_point_us <= ?1
             AND (lease_until_us IS NULL OR lease_until_us <= ?1))",
    )
    .map_err(db)?
    .query_row([to_us(now)], |r| r.get(0))
    .map_err(db)
}

pub(crate) fn claim_due_subscriptions(
    conn: &Connection,
    (claim, owner): (crate::OwnClaim, &str),
    limit: usize,
    project: Option<&str>,
) -> Result<Vec<SubscriptionRecord>> {
    // `?6` is the project, or (every project but the clocked ones) NULL.
    let scope = if project.is_some() {
        "project_id = ?6".to_string()
    } else {
        format!("?6 IS NULL AND {}", crate::NOT_CLOCKED)
    };
    let sql = format!(
        "UPDATE subscriptions SET lease_until_us = ?3, lease_owner = ?4
         WHERE (project_id, id) IN (
             SELECT project_id, id FROM subscriptions
             WHERE state = 'active' AND next_point_us <= ?1 AND (lease_until_us IS NULL OR lease_until_us <= ?5)
                 AND {scope}
             ORDER BY next_point_us LIMIT ?2)
         RETURNING {SUBSCRIPTION_COLUMNS}"
    );
    let rows = conn
        .prepare_cached(&sql)
        .map_err(db)?
        .query_map(
            params![
                to_us(claim.now),
                limit as i64,
                to_us(claim.real_lease_until),
                owner,
                to_us(claim.real_now),
                project
            ],
            |r| SubscriptionRow::read(r),
        )
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter().map(SubscriptionRow::decode).collect()
}

pub(crate) fn claim_due_timers(
    conn: &Connection,
    (now, lease_until, owner): (OffsetDateTime, OffsetDateTime, &str),
    limit: usize,
    project: Option<&str>,
) -> Result<Vec<DueTimer>> {
    // `?5` is the project, or (every project but the clocked ones) NULL.
    let scope = if project.is_some() {
        "project_id = ?5".to_string()
    } else {
        format!("?5 IS NULL AND {}", crate::NOT_CLOCKED)
    };
    let rows = conn
        .prepare_cached(&format!(
            "UPDATE session_timers SET due_at_us = ?3, lease_owner = ?4
             WHERE (project_id, session_id, timer) IN (
                 SELECT project_id, session_id, timer FROM session_timers WHERE due_at_us <= ?1 AND {scope}
                 ORDER BY due_at_us LIMIT ?2)
             RETURNING project_id, session_id, timer"
        ))
        .map_err(db)?
        .query_map(params![to_us(now), limit as i64, to_us(lease_until), owner, project], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
        })
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter().map(|(project_id, session_id, t)| due_timer(project_id, session_id, &t)).collect()
}

pub(crate) fn wallets(conn: &Connection, project: &str) -> Result<Vec<WalletRecord>> {
    let rows = conn
        .prepare_cached(&format!("SELECT {WALLET_COLUMNS} FROM wallets WHERE project_id = ?1 ORDER BY book, currency"))
        .map_err(db)?
        .query_map([project], |r| WalletRow::read(r))
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter().map(WalletRow::decode).collect()
}

pub(crate) fn statement(
    conn: &Connection,
    project: &str,
    book: Book,
    currency: &str,
    (from, to): (OffsetDateTime, OffsetDateTime),
    limit: usize,
) -> Result<StatementRecord> {
    let opening = conn
        .prepare_cached(
            "SELECT account, SUM(amount) FROM ledger_postings
             WHERE project_id = ?1 AND book = ?2 AND currency = ?3 AND created_at_us < ?4
             GROUP BY account ORDER BY account",
        )
        .map_err(db)?
        .query_map(params![project, book.as_str(), currency, to_us(from)], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {POSTING_COLUMNS} FROM ledger_postings
             WHERE project_id = ?1 AND book = ?2 AND currency = ?3 AND created_at_us >= ?4 AND created_at_us < ?5
             ORDER BY created_at_us, id LIMIT ?6"
        ))
        .map_err(db)?
        .query_map(params![project, book.as_str(), currency, to_us(from), to_us(to), limit as i64], |r| {
            PostingRow::read(r)
        })
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    let postings = rows.into_iter().map(PostingRow::decode).collect::<Result<_>>()?;
    Ok(StatementRecord { opening, postings })
}

pub(crate) fn session_postings(
    conn: &Connection,
    project: &str,
    session: &str,
    limit: usize,
) -> Result<Vec<SessionPostingRecord>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {SESSION_POSTING_COLUMNS} FROM ledger_postings
             WHERE session_id = ?1 AND project_id = ?2 ORDER BY id LIMIT ?3"
        ))
        .map_err(db)?
        .query_map(params![session, project, limit as i64], |r| SessionPostingRow::read(r))
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter().map(SessionPostingRow::decode).collect()
}

pub(crate) fn set_rate(conn: &Connection, currency: &str, rate: Option<FxRate>, now: OffsetDateTime) -> Result<bool> {
    let n = match rate {
        Some(rate) => conn
            .prepare_cached(
                "INSERT INTO fx_rates (currency, rate_millionths, updated_at_us) VALUES (?1, ?2, ?3)
                 ON CONFLICT (currency) DO UPDATE SET rate_millionths = excluded.rate_millionths,
                     updated_at_us = excluded.updated_at_us",
            )
            .map_err(db)?
            .execute(params![currency, rate.millionths(), to_us(now)]),
        None => conn.prepare_cached("DELETE FROM fx_rates WHERE currency = ?1").map_err(db)?.execute([currency]),
    };
    Ok(n.map_err(db)? > 0)
}

pub(crate) fn rates(conn: &Connection) -> Result<Vec<(String, FxRate)>> {
    let rows = conn
        .prepare_cached(&format!("SELECT {RATE_COLUMNS} FROM fx_rates ORDER BY currency"))
        .map_err(db)?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter().map(|(c, m)| decode_rate(c, m)).collect()
}

/// Which projects' webhooks a claim may take.
pub(crate) enum Scope<'a> {
    /// Every project but these (whose queues are full).
    AllBut(&'a [String]),
    Only(&'a str),
}

pub(crate) fn claim_webhooks(
    conn: &Connection,
    (claim, owner): (crate::OwnClaim, &str),
    limit: usize,
    scope: Scope<'_>,
) -> Result<Vec<WebhookRecord>> {
    let (condition, projects) = match scope {
        Scope::AllBut(skip) => (
            "project_id NOT IN (SELECT value FROM json_each(?4)) AND project_id NOT IN \
             (SELECT id FROM projects WHERE clock_offset_us <> 0)",
            format!("[{}]", skip.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join(",")),
        ),
        Scope::Only(project) => ("project_id = ?4", project.to_string()),
    };
    let raw = conn
        .prepare_cached(&format!(
            "UPDATE webhooks SET next_attempt_at_us = ?2, leased_until_us = ?6, lease_owner = ?5
             WHERE id IN (SELECT id FROM webhooks WHERE state = 'pending' AND next_attempt_at_us <= ?1
                              AND (leased_until_us IS NULL OR leased_until_us <= ?7) AND {condition}
                          ORDER BY next_attempt_at_us LIMIT ?3)
             RETURNING {WEBHOOK_COLUMNS}"
        ))
        .map_err(db)?
        .query_map(
            params![
                to_us(claim.now),
                to_us(claim.lease_until),
                limit as i64,
                projects,
                owner,
                to_us(claim.real_lease_until),
                to_us(claim.real_now)
            ],
            |r| WebhookRow::read(r),
        )
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    let mut out: Vec<WebhookRecord> = raw.into_iter().map(WebhookRow::decode).collect::<Result<_>>()?;
    out.sort_by_key(|w| w.id);
    Ok(out)
}

pub(crate) fn record_attempts(conn: &Connection, results: &[AttemptResult]) -> Result<()> {
    for a in results {
        if a.parked {
            // Not an attempt: the project has nowhere to send it yet (read in
            // this write transaction, so a URL set since the claim is seen).
            let has_url: bool = conn
                .prepare_cached(&super::numbered(WEBHOOK_PROJECT_HAS_URL))
                .map_err(db)?
                .query_row(params![a.webhook_id], |r| r.get(0))
                .optional()
                .map_err(db)?
                .unwrap_or(false);
            let (next, error) = parking(a, has_url);
            conn.prepare_cached(
                "UPDATE webhooks SET next_attempt_at_us = ?2, last_error = ?3, leased_until_us = NULL
                 WHERE id = ?1 AND attempts = ?4",
            )
            .map_err(db)?
            .execute(params![a.webhook_id, next, error, a.claimed_attempts])
            .map_err(db)?;
            continue;
        }
        let (state, next, delivered) = attempt_outcome(a);
        let attempt: Option<i64> = conn
            .prepare_cached(&super::numbered(SETTLE_ATTEMPT))
            .map_err(db)?
            .query_row(params![a.webhook_id, a.claimed_attempts, state, next, a.status, a.error, delivered], |r| {
                r.get(0)
            })
            .optional()
            .map_err(db)?;
        // Another claim (after this one's lease ran out) already recorded a result.
        let Some(attempt) = attempt else { continue };
        conn.prepare_cached(
            "INSERT INTO webhook_attempts (webhook_id, attempt, at_us, status, error, duration_ms, injected)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(db)?
        .execute(params![a.webhook_id, attempt, to_us(a.at), a.status, a.error, a.duration_ms, a.injected])
        .map_err(db)?;
    }
    Ok(())
}

pub(crate) fn webhooks(conn: &Connection, filter: &WebhookFilter) -> Result<Vec<WebhookRecord>> {
    let raw = conn
        .prepare_cached(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks
             WHERE (?1 IS NULL OR project_id = ?1) AND (?2 IS NULL OR subject_id = ?2)
             ORDER BY id LIMIT ?3"
        ))
        .map_err(db)?
        .query_map(params![filter.project_id, filter.subject_id, filter.limit.map_or(i64::MAX, |l| l as i64)], |r| {
            WebhookRow::read(r)
        })
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    raw.into_iter().map(WebhookRow::decode).collect()
}

pub(crate) fn webhook_attempts(conn: &Connection, id: i64) -> Result<Vec<AttemptRecord>> {
    let rows = conn
        .prepare_cached(
            "SELECT attempt, at_us, status, error, duration_ms, injected FROM webhook_attempts WHERE webhook_id = ?1
             ORDER BY attempt",
        )
        .map_err(db)?
        .query_map([id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get(2)?, r.get(3)?, r.get::<_, i64>(4)?, r.get(5)?))
        })
        .map_err(db)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(db)?;
    rows.into_iter()
        .map(|(attempt, at, status, error, duration_ms, injected)| {
            Ok(AttemptRecord { attempt, at: from_us(at)?, status, error, duration_ms, injected })
        })
        .collect()
}
