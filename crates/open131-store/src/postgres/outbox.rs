//! The webhook outbox on PostgreSQL: leased claims with `SKIP LOCKED`, attempts
//! recorded only by the claim they belong to, operator commands that leave a
//! webhook being delivered alone.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::Row;

use super::PgStore;
use crate::payouts::*;
use crate::rows::{
    attempt_outcome, from_us, parking, to_us, WebhookRow, SETTLE_ATTEMPT, WEBHOOK_COLUMNS, WEBHOOK_PROJECT_HAS_URL,
};
use crate::{with_retries, OutboxStore, Result};

fn decode_webhooks(rows: &[Row]) -> Result<Vec<WebhookRecord>> {
    rows.iter().map(|r| WebhookRow::read(r)?.decode()).collect()
}

/// Records one attempt, unless another claim recorded one since this one's.
async fn record_attempt(tx: &impl GenericClient, a: &AttemptResult) -> Result<()> {
    if a.parked {
        // Not an attempt: the project has nowhere to send it yet. Its row is
        // read under a share lock, so a URL being set either commits first
        // (and is seen here) or waits for this park (and then releases it).
        let url = tx.prepare_cached(&format!("{WEBHOOK_PROJECT_HAS_URL} FOR SHARE OF p")).await?;
        let has_url = match tx.query_opt(&url, &[&a.webhook_id]).await? {
            Some(row) => row.try_get(0)?,
            None => false,
        };
        let (next, error) = parking(a, has_url);
        let stmt = tx
            .prepare_cached(
                "UPDATE webhooks SET next_attempt_at_us = $2, last_error = $3, leased_until_us = NULL
                 WHERE id = $1 AND attempts = $4",
            )
            .await?;
        tx.execute(&stmt, &[&a.webhook_id, &next, &error, &a.claimed_attempts]).await?;
        return Ok(());
    }
    let (state, next, delivered) = attempt_outcome(a);
    let settle = tx.prepare_cached(SETTLE_ATTEMPT).await?;
    let values: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&a.webhook_id, &a.claimed_attempts, &state, &next, &a.status, &a.error, &delivered];
    // Another claim (after this one's lease ran out) already recorded a result.
    let Some(settled) = tx.query_opt(&settle, &values).await? else { return Ok(()) };
    let attempt: i64 = settled.try_get(0)?;
    let log = tx
        .prepare_cached(
            "INSERT INTO webhook_attempts (webhook_id, attempt, at_us, status, error, duration_ms, injected)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let row: [&(dyn tokio_postgres::types::ToSql + Sync); 7] =
        [&a.webhook_id, &attempt, &to_us(a.at), &a.status, &a.error, &a.duration_ms, &a.injected];
    tx.execute(&log, &row).await?;
    Ok(())
}

#[async_trait]
impl OutboxStore for PgStore {
    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
        skip_projects: Vec<String>,
    ) -> Result<Vec<WebhookRecord>> {
        let scope = format!("project_id <> ALL($4) AND {}", crate::NOT_CLOCKED);
        self.claim(crate::OwnClaim::real(now, lease_until), limit, &scope, &skip_projects).await
    }

    async fn claim_project_webhooks(
        &self,
        project_id: &str,
        own: crate::OwnClaim,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>> {
        self.claim(own, limit, "project_id = $4", &project_id).await
    }

    async fn record_attempts(&self, results: Vec<AttemptResult>) -> Result<()> {
        // Group commit: every delivery records its own result, often many at once.
        let results = std::sync::Arc::new(results);
        self.batch
            .run(super::batch::statements(move |tx| {
                let results = results.clone();
                Box::pin(async move {
                    for a in results.iter() {
                        record_attempt(tx, a).await?;
                    }
                    Ok(super::batch::Step::Commit(()))
                })
            }))
            .await
    }

    async fn webhooks(&self, filter: WebhookFilter) -> Result<Vec<WebhookRecord>> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks
             WHERE ($1::TEXT IS NULL OR project_id = $1) AND ($2::TEXT IS NULL OR subject_id = $2)
             ORDER BY id LIMIT $3"
        );
        let (sql, f) = (sql.as_str(), &filter);
        let limit = filter.limit.map_or(i64::MAX, |l| l as i64);
        let rows =
            with_retries(|| async move { self.query(sql, &[&f.project_id, &f.subject_id, &limit]).await }).await?;
        decode_webhooks(&rows)
    }

    async fn webhook_attempts(&self, webhook_id: i64) -> Result<Vec<AttemptRecord>> {
        let rows = with_retries(|| async move {
            self.query(
                "SELECT attempt, at_us, status, error, duration_ms, injected FROM webhook_attempts WHERE webhook_id = $1
                 ORDER BY attempt",
                &[&webhook_id],
            )
            .await
        })
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRecord {
                    attempt: r.try_get(0)?,
                    at: from_us(r.try_get(1)?)?,
                    status: r.try_get(2)?,
                    error: r.try_get(3)?,
                    duration_ms: r.try_get(4)?,
                    injected: r.try_get(5)?,
                })
            })
            .collect()
    }

    async fn resend_webhook(&self, webhook_id: i64, now: OffsetDateTime) -> Result<bool> {
        let now = to_us(now);
        // Repeating it after a lost commit matches again (same values): harmless.
        let n = with_retries(|| async move {
            self.execute(
                "UPDATE webhooks SET state = 'pending', next_attempt_at_us = $2, attempts_base = attempts
                 WHERE id = $1 AND (leased_until_us IS NULL OR leased_until_us <= $2)",
                &[&webhook_id, &now],
            )
            .await
        })
        .await?;
        Ok(n == 1)
    }

    async fn release_webhooks(&self, ids: Vec<i64>, at: OffsetDateTime) -> Result<()> {
        let (ids, at) = (&ids, to_us(at));
        with_retries(|| async move {
            self.execute(
                "UPDATE webhooks SET next_attempt_at_us = $2, leased_until_us = NULL
                 WHERE id = ANY($1) AND state = 'pending'",
                &[ids, &at],
            )
            .await
        })
        .await?;
        Ok(())
    }

    async fn resend_pending(&self, project_id: Option<&str>, now: OffsetDateTime) -> Result<usize> {
        let now = to_us(now);
        let n = with_retries(|| async move {
            self.execute(
                "UPDATE webhooks SET next_attempt_at_us = $2
                 WHERE state = 'pending' AND ($1::TEXT IS NULL OR project_id = $1)
                     AND (leased_until_us IS NULL OR leased_until_us <= $2)",
                &[&project_id, &now],
            )
            .await
        })
        .await?;
        Ok(n as usize)
    }

    async fn next_webhook_at(&self) -> Result<Option<OffsetDateTime>> {
        let rows = with_retries(|| async move {
            self.query_replanned("SELECT MIN(next_attempt_at_us) FROM webhooks WHERE state = 'pending'", &[]).await
        })
        .await?;
        let us: Option<i64> = rows.first().map(|r| r.try_get(0)).transpose()?.flatten();
        us.map(from_us).transpose()
    }
}

impl PgStore {
    /// Claims due webhooks whose project meets `condition` (on `$4`, `projects`).
    async fn claim(
        &self,
        claim: crate::OwnClaim,
        limit: usize,
        condition: &str,
        projects: &(dyn tokio_postgres::types::ToSql + Sync),
    ) -> Result<Vec<WebhookRecord>> {
        let sql = format!(
            "UPDATE webhooks SET next_attempt_at_us = $2, leased_until_us = $6, lease_owner = $5
             WHERE id IN (SELECT id FROM webhooks WHERE state = 'pending' AND next_attempt_at_us <= $1
                              AND (leased_until_us IS NULL OR leased_until_us <= $7) AND {condition}
                          ORDER BY next_attempt_at_us LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {WEBHOOK_COLUMNS}"
        );
        let sql = sql.as_str();
        let (now, lease, limit) = (to_us(claim.now), to_us(claim.lease_until), limit as i64);
        let (real_now, real_lease) = (to_us(claim.real_now), to_us(claim.real_lease_until));
        // A repeat after a lost commit only delays the first claim's webhooks to its lease end.
        let owner = self.instance.as_str();
        let rows = with_retries(|| async move {
            self.query_replanned(sql, &[&now, &lease, &limit, projects, &owner, &real_lease, &real_now]).await
        })
        .await?;
        let mut out = decode_webhooks(&rows)?;
        out.sort_by_key(|w| w.id);
        Ok(out)
    }
}
