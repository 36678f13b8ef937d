//! The PostgreSQL backend, for several nodes sharing one database.
//!
//! Why tokio-postgres + deadpool-postgres: both are async on tokio like the
//! rest of the server, need no database (nor offline query data) at compile
//! time, keep a prepared-statement cache per pooled connection
//! (`prepare_cached`), and are widely used. sqlx would need a live database or
//! checked-in offline data to build, and its pool and macros add little to the
//! hand-written SQL here, which mirrors the SQLite backend statement for statement.
//!
//! Invariants:
//! - A write that returns `Ok` has committed (default `synchronous_commit`).
//! - Semantics equal the SQLite backend's ([`crate::sqlite`]): the same guarded
//!   UPDATEs, ON CONFLICT rules and leases; rows decode through [`crate::rows`].
//! - Claims lock with `FOR UPDATE SKIP LOCKED`, so concurrent claimers on any
//!   node never get the same item while its lease runs. A claim of a table with
//!   a composite key updates the rows it locked by `ctid` (a TID scan, whatever
//!   the statistics): the generic plan of `(project_id, id) IN (…)`, made while
//!   `kyc_checks` was empty, looked each claimed row up through another index
//!   by `project_id` alone, and under a burst of checks every claim ran into the
//!   statement timeout (the verifier stalled with 14,000 checks pending).
//! - Check ids are unique per project across nodes, taken in blocks
//!   ([`ids`]); one node keeps them dense, a restart or a second node leaves gaps.
//! - Retries ([`crate::with_retries`]) repeat a whole transaction only when no
//!   commit can have happened, or when repeating it is harmless: a lost
//!   connection during the COMMIT of a write whose repetition would change money
//!   or the answer (see [`after_commit_sent`]) is reported, not retried.

mod batch;
mod checks;
mod creations;
mod ids;
mod inserts;
mod outbox;
mod sessions;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};

use crate::error::BackendError;
use crate::rows::{from_us, to_us, ProjectRow, PROJECT_COLUMNS};
use crate::{
    with_retries, Backend, MetaStore, ProjectKey, ProjectRecord, ProjectStore, Result, SettingsChange, Store,
    StoreError,
};

/// Most connections one node opens. PostgreSQL shares this machine's two cores:
/// more backends than a few per core only queue for CPU, yet a few more than the
/// cores keep both busy while other transactions wait on their commit's WAL
/// flush (which PostgreSQL groups across concurrent commits). Eight does both.
pub const POOL_SIZE_MAX: usize = 8;
/// Longest a statement may run before the server cancels it, in ms.
pub const STATEMENT_TIMEOUT_MS: u64 = 5_000;
/// How PostgreSQL plans the prepared statements of this store: every one of
/// them finds rows by key or by a due-time index, so the generic plan is as
/// good as a custom one and planning each execution anew only costs CPU
/// (the profile of a payout load showed 5% of PostgreSQL's time in
/// `GetCachedPlan`/the planner).
pub const PLAN_CACHE_MODE: &str = "force_generic_plan";
/// Longest a call waits for a free pooled connection, in ms.
pub const POOL_WAIT_TIMEOUT_MS: u64 = 5_000;
/// Longest opening a new connection may take, in ms.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Idle time before TCP keepalive probes start on a pooled connection, in seconds.
pub const KEEPALIVE_IDLE_S: u64 = 10;
/// How long sent data may stay unacknowledged before the connection is
/// dropped, in ms (longer than any statement may run).
pub const TCP_USER_TIMEOUT_MS: u64 = 2 * STATEMENT_TIMEOUT_MS;
/// Check ids a node takes from `id_sequences` at once: one short autocommit per
/// this many checks instead of a row lock held through every insert's commit.
pub const ID_BLOCK_SIZE: i64 = 64;
/// The advisory lock key that serializes migrations of all nodes ("o131mig").
pub const MIGRATION_LOCK_KEY: i64 = 0x006f_3133_316d_6967;

/// Versioned migrations, applied in order, each once.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/postgres/0001_init.sql")),
    (2, "check_postponed", include_str!("../../migrations/postgres/0002_check_postponed.sql")),
    (3, "payouts", include_str!("../../migrations/postgres/0003_payouts.sql")),
    (4, "payout_state", include_str!("../../migrations/postgres/0004_payout_state.sql")),
    (5, "payouts_complete", include_str!("../../migrations/postgres/0005_payouts_complete.sql")),
    (6, "books_and_exchange", include_str!("../../migrations/postgres/0006_books_and_exchange.sql")),
    (7, "acquiring", include_str!("../../migrations/postgres/0007_acquiring.sql")),
    (8, "payment_refunds", include_str!("../../migrations/postgres/0008_payment_refunds.sql")),
    (9, "recurrent", include_str!("../../migrations/postgres/0009_recurrent.sql")),
    (10, "operation_finished", include_str!("../../migrations/postgres/0010_operation_finished.sql")),
    (11, "split_and_subscriptions", include_str!("../../migrations/postgres/0011_split_and_subscriptions.sql")),
    (12, "widgets", include_str!("../../migrations/postgres/0012_widgets.sql")),
    (13, "npd_links", include_str!("../../migrations/postgres/0013_npd_links.sql")),
    (14, "lease_owners", include_str!("../../migrations/postgres/0014_lease_owners.sql")),
    (15, "fiscal_payouts", include_str!("../../migrations/postgres/0015_fiscal_payouts.sql")),
    (16, "receipts", include_str!("../../migrations/postgres/0016_receipts.sql")),
    (17, "webhook_faults", include_str!("../../migrations/postgres/0017_webhook_faults.sql")),
    (18, "project_clocks", include_str!("../../migrations/postgres/0018_project_clocks.sql")),
    (19, "postings_by_session", include_str!("../../migrations/postgres/0019_postings_by_session.sql")),
    (20, "posting_operations", include_str!("../../migrations/postgres/0020_posting_operations.sql")),
    (21, "report_runs", include_str!("../../migrations/postgres/0021_report_runs.sql")),
    (22, "fiscal_inn_partial", include_str!("../../migrations/postgres/0022_fiscal_inn_partial.sql")),
];

pub struct PgStore {
    pool: Pool,
    ids: ids::IdBlocks,
    /// Group commit of the hot writes ([`batch`]).
    batch: batch::Batcher,
    /// New checks, many per statement ([`inserts`]).
    inserts: inserts::CheckInserter,
    /// Plain session creations, many per statement ([`creations`]).
    creations: creations::Creator,
    commits: crate::CommitWatch,
    /// The owner this handle's claims record ([`crate::InstanceStore`]).
    pub(crate) instance: String,
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or `key=value` string), applies
    /// pending migrations, and returns the store.
    pub async fn connect(url: &str) -> Result<PgStore> {
        let store = Self::connect_unmigrated(url)?;
        let applied = store.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied PostgreSQL migrations");
        }
        Ok(store)
    }

    /// The pool alone; connections open lazily, on first use.
    fn connect_unmigrated(url: &str) -> Result<PgStore> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Backend(BackendError::from(e)))?;
        // statement_timeout runs on the server and cannot help when the server is
        // gone (a failover, a dropped NAT entry): keepalives and the TCP user
        // timeout make such a connection fail in seconds instead of hours.
        config
            .options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS} -c plan_cache_mode={PLAN_CACHE_MODE}"))
            .connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(KEEPALIVE_IDLE_S))
            .tcp_user_timeout(Duration::from_millis(TCP_USER_TIMEOUT_MS));
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE_MAX)
            .wait_timeout(Some(Duration::from_millis(POOL_WAIT_TIMEOUT_MS)))
            .create_timeout(Some(Duration::from_millis(CONNECT_TIMEOUT_MS)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Backend(BackendError::PoolBuild(e)))?;
        let commits = crate::CommitWatch::default();
        Ok(PgStore {
            batch: batch::Batcher::start(pool.clone(), commits.clone()),
            inserts: inserts::CheckInserter::start(pool.clone(), commits.clone()),
            creations: creations::Creator::start(pool.clone(), commits.clone()),
            commits,
            pool,
            ids: ids::IdBlocks::default(),
            instance: crate::new_instance_id(),
        })
    }

    /// The newest schema version this build knows (its last migration).
    pub fn known_schema_version() -> i64 {
        MIGRATIONS.last().map_or(0, |m| m.0)
    }

    /// Applies the migrations this database lacks; returns their versions.
    /// Each runs in its own transaction under one advisory lock, so nodes
    /// starting together apply it once (the others wait, then skip it).
    pub async fn migrate(&self) -> Result<Vec<i64>> {
        let mut applied = Vec::new();
        for &(version, name, sql) in MIGRATIONS {
            if with_retries(|| self.apply_migration(version, name, sql)).await? {
                applied.push(version);
            }
        }
        Ok(applied)
    }

    /// Applies one migration unless it is there; `true` if it applied it.
    async fn apply_migration(&self, version: i64, name: &'static str, sql: &str) -> Result<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A migration may rewrite a large table, and the nodes waiting for the
        // lock wait as long: the per-statement limit is for requests.
        // No NOTICE ("relation already exists, skipping") in every command's output.
        tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL client_min_messages = warning").await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)",
        )
        .await?;
        let newest: Option<i64> = tx.query_one("SELECT MAX(version) FROM schema_migrations", &[]).await?.try_get(0)?;
        let known = MIGRATIONS.last().map_or(0, |m| m.0);
        if let Some(found) = newest.filter(|&v| v > known) {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        if newest.is_some_and(|v| v >= version) {
            return Ok(false);
        }
        let migration_failed = |e: tokio_postgres::Error| StoreError::Migration { version, name, source: e.into() };
        tx.batch_execute(sql).await.map_err(migration_failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES ($1, $2, $3)",
            &[&version, &name, &to_us(OffsetDateTime::now_utc())],
        )
        .await
        .map_err(migration_failed)?;
        // Safe to retry even if this COMMIT is lost: the next attempt finds the version.
        tx.commit().await?;
        Ok(true)
    }

    async fn client(&self) -> Result<deadpool_postgres::Client> {
        Ok(self.pool.get().await?)
    }

    /// Runs one statement on a pooled connection, returning its row count.
    async fn execute(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.execute(&stmt, params).await?)
    }

    /// Runs one query on a pooled connection.
    async fn query(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<Row>> {
        let client = self.client().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.query(&stmt, params).await?)
    }

    /// Runs `sql` planned for this call (an unnamed statement), not from the
    /// connection's statement cache: for the workers' claims and due-time
    /// queries, run once per round. Why: a cached generic plan is made once,
    /// when a node starts on tables that are often empty, and kept as they
    /// grow; the verifier's claim, planned on an empty `kyc_checks`, cost
    /// 16 ms for 160 checks under a burst, 99 µs a check, more than the
    /// inserts. Planning each round costs a fraction of a millisecond.
    async fn query_replanned(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        let client = self.client().await?;
        Ok(client.query(sql, params).await?)
    }
}

/// The error of a COMMIT (or of a lone autocommit write) whose effect may have
/// reached the database: only a conflict the server rolled back is retryable;
/// a lost connection leaves the outcome unknown, so it is reported, not repeated.
pub(crate) fn after_commit_sent(e: tokio_postgres::Error) -> StoreError {
    if server_rolled_back(&e) {
        StoreError::Retryable(e.into())
    } else {
        StoreError::Backend(e.into())
    }
}

/// Whether the server itself rolled the transaction back (a deadlock or a
/// serialization failure), so that running it again is safe.
pub(crate) fn server_rolled_back(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED)
}

impl crate::rows::Columns for Row {
    type Error = tokio_postgres::Error;
    fn text(&self, i: usize) -> Result<String, Self::Error> {
        self.try_get(i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        self.try_get(i)
    }
    fn int(&self, i: usize) -> Result<i64, Self::Error> {
        self.try_get(i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>, Self::Error> {
        self.try_get(i)
    }
    fn bytes(&self, i: usize) -> Result<Vec<u8>, Self::Error> {
        self.try_get(i)
    }
    fn flag(&self, i: usize) -> Result<bool, Self::Error> {
        self.try_get(i)
    }
}

/// Projects (one, or all when `id` is `None`) with their keys, by id.
async fn load_projects(client: &impl GenericClient, id: Option<&str>) -> Result<Vec<ProjectRecord>> {
    let heads = client
        .prepare_cached(&format!(
            "SELECT {PROJECT_COLUMNS} FROM projects WHERE ($1::TEXT IS NULL OR id = $1) ORDER BY id"
        ))
        .await?;
    let heads = client.query(&heads, &[&id]).await?;
    let keys = client
        .prepare_cached(
            "SELECT project_id, fingerprint, spki_der, created_at_us FROM project_keys
             WHERE ($1::TEXT IS NULL OR project_id = $1) ORDER BY project_id, created_at_us, fingerprint",
        )
        .await?;
    let key_rows = client.query(&keys, &[&id]).await?;
    let mut keys = Vec::with_capacity(key_rows.len());
    for k in &key_rows {
        let key =
            ProjectKey { fingerprint: k.try_get(1)?, spki_der: k.try_get(2)?, created_at: from_us(k.try_get(3)?)? };
        keys.push((k.try_get::<_, String>(0)?, key));
    }
    let mut projects = Vec::with_capacity(heads.len());
    for head in &heads {
        let (id, created_at, settings) = ProjectRow::read(head)?.decode()?;
        let own = keys.iter().filter(|(p, _)| *p == id).map(|(_, k)| k.clone()).collect();
        projects.push(ProjectRecord { id, created_at, settings, keys: own });
    }
    Ok(projects)
}

impl Store for PgStore {
    fn commits(&self) -> &crate::CommitWatch {
        &self.commits
    }
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

#[async_trait]
impl ProjectStore for PgStore {
    async fn create_project(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        // Not retried after it was sent: a repeat would answer `false` for a project it created.
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO projects (id, created_at_us) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
                &[&id, &to_us(now)],
            )
            .await
            .map_err(after_commit_sent)?;
        Ok(n == 1)
    }

    async fn add_project_key(
        &self,
        project_id: &str,
        fingerprint: &str,
        spki_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool> {
        let client = self.client().await?;
        // One statement: the key goes in only if the project exists; the
        // project's presence is read after, so a missing one is told apart.
        let n = client
            .execute(
                "INSERT INTO project_keys (project_id, fingerprint, spki_der, created_at_us)
                 SELECT id, $2, $3, $4 FROM projects WHERE id = $1
                 ON CONFLICT (project_id, fingerprint) DO NOTHING",
                &[&project_id, &fingerprint, &spki_der, &to_us(now)],
            )
            .await
            .map_err(after_commit_sent)?;
        if n == 0 && client.query_opt("SELECT 1 FROM projects WHERE id = $1", &[&project_id]).await?.is_none() {
            return Err(StoreError::NoSuchProject(project_id.to_string()));
        }
        Ok(n == 1)
    }

    async fn project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        with_retries(|| async {
            let client = self.client().await?;
            Ok(load_projects(&client, Some(id)).await?.pop())
        })
        .await
    }

    async fn move_clock(
        &self,
        project_id: &str,
        from: open131_domain::settings::ClockOffset,
        to: open131_domain::settings::ClockOffset,
    ) -> Result<bool> {
        let sql = crate::MOVE_CLOCK_SQL.replace("?1", "$1").replace("?2", "$2").replace("?3", "$3");
        let sql = sql.as_str();
        let (from, to) = (from.us(), to.us());
        // A repeat after a lost commit finds the offset moved and answers `false`: the caller reads again.
        let n = with_retries(|| async move { self.execute(sql, &[&project_id, &from, &to]).await }).await?;
        Ok(n == 1)
    }

    async fn clocked_projects(&self) -> Result<Vec<(String, open131_domain::settings::ClockOffset)>> {
        let rows = with_retries(|| async { self.query(crate::CLOCKED_PROJECTS_SQL, &[]).await }).await?;
        rows.iter().map(|r| crate::clocked(r.try_get(0)?, r.try_get(1)?)).collect()
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>> {
        with_retries(|| async {
            let client = self.client().await?;
            load_projects(&client, None).await
        })
        .await
    }

    async fn set_project_settings(&self, project_id: &str, change: SettingsChange, now: OffsetDateTime) -> Result<()> {
        // Idempotent (it sets values), so repeating it after a lost COMMIT is harmless.
        with_retries(|| self.set_project_settings_once(project_id, &change, now)).await
    }
}

impl PgStore {
    async fn set_project_settings_once(
        &self,
        project_id: &str,
        change: &SettingsChange,
        now: OffsetDateTime,
    ) -> Result<()> {
        let s = change.stored();
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let update = tx
            .prepare_cached(
                "UPDATE projects SET
                     webhook_url = CASE WHEN $2 THEN $3 ELSE webhook_url END,
                     auto_confirm = COALESCE($4, auto_confirm),
                     confirm_timeout_s = COALESCE($5, confirm_timeout_s),
                     methods = COALESCE($6, methods),
                     kyc_mode = COALESCE($7, kyc_mode),
                     allowed_ips = COALESCE($8, allowed_ips),
                     webhook_naming = COALESCE($9, webhook_naming),
                     submerchants = COALESCE($10, submerchants),
                     capture_mode = COALESCE($11, capture_mode),
                     capture_timeout_s = COALESCE($12, capture_timeout_s),
                     payment_fee_bp = COALESCE($13, payment_fee_bp),
                     contractors = COALESCE($14, contractors),
                     widget_origins = COALESCE($15, widget_origins),
                     webhook_faults = COALESCE($16, webhook_faults),
                     clock_offset_us = COALESCE($17, clock_offset_us)
                 WHERE id = $1",
            )
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 17] = [
            &project_id,
            &s.set_webhook_url,
            &s.webhook_url,
            &s.auto_confirm,
            &s.confirm_timeout_s,
            &s.methods,
            &s.kyc_mode,
            &s.allowed_ips,
            &s.webhook_naming,
            &s.submerchants,
            &s.capture_mode,
            &s.capture_timeout_s,
            &s.payment_fee_bp,
            &s.contractors,
            &s.widget_origins,
            &s.webhook_faults,
            &s.clock_offset_us,
        ];
        if tx.execute(&update, &params).await? == 0 {
            return Err(StoreError::NoSuchProject(project_id.to_string()));
        }
        if matches!(change.webhook_url, Some(Some(_))) {
            // A (new) URL releases the webhooks parked while there was none.
            tx.execute(
                "UPDATE webhooks SET next_attempt_at_us = $2 WHERE project_id = $1 AND state = 'pending'
                     AND (leased_until_us IS NULL OR leased_until_us <= $2)",
                &[&project_id, &to_us(now)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl MetaStore for PgStore {
    async fn backlog(&self, now: OffsetDateTime) -> Result<crate::Backlog> {
        let now_us = to_us(now);
        with_retries(|| async {
            let client = self.client().await?;
            let checks_pending = client.query_one(crate::BACKLOG_CHECKS_SQL, &[]).await?.try_get(0)?;
            let timers_due = client.query_one(crate::BACKLOG_TIMERS_SQL, &[&now_us]).await?.try_get(0)?;
            let webhooks_pending = client
                .query(crate::BACKLOG_WEBHOOKS_SQL, &[])
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(crate::Backlog { checks_pending, timers_due, webhooks_pending })
        })
        .await
    }

    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        with_retries(|| async {
            let rows = self.query("SELECT value FROM meta WHERE key = $1", &[&key]).await?;
            Ok(rows.first().map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    async fn claim_report(
        &self,
        project_id: &str,
        report: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool> {
        let (now, until) = (to_us(now), to_us(lease_until));
        let n = with_retries(|| async {
            let client = self.client().await?;
            Ok(client.execute(crate::CLAIM_REPORT_SQL, &[&project_id, &report, &until, &now]).await?)
        })
        .await?;
        Ok(n == 1)
    }

    async fn finish_report(&self, project_id: &str, report: &str) -> Result<()> {
        with_retries(|| async {
            let client = self.client().await?;
            client.execute(crate::FINISH_REPORT_SQL, &[&project_id, &report]).await?;
            Ok(())
        })
        .await
    }

    async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        // Two autocommit statements: a concurrent insert of the same key makes
        // ours wait for its commit and do nothing, and the SELECT (a new
        // snapshot) then reads the winner's value. Repeating it is harmless.
        with_retries(|| async {
            let client = self.client().await?;
            client
                .execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&key, &value])
                .await?;
            Ok(client.query_one("SELECT value FROM meta WHERE key = $1", &[&key]).await?.try_get(0)?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// PostgreSQL's side of the SQLite test of the same name: with
    /// sequential scans priced out, the yearly-income sum still plans on the
    /// index, and the index holds fiscal payouts alone.
    #[tokio::test]
    async fn the_fiscal_income_sum_searches_the_partial_index() {
        let Some(admin) = crate::testing::postgres_admin_url() else {
            eprintln!("{} is not set: the PostgreSQL plan is not checked", crate::testing::TEST_POSTGRES_ENV);
            return;
        };
        let store = super::PgStore::connect(&crate::testing::fresh_database(&admin).await.unwrap()).await.unwrap();
        let client = store.client().await.unwrap();
        client.batch_execute("SET enable_seqscan = off").await.unwrap();
        let sql = format!("EXPLAIN {}", crate::rows::FISCAL_INCOME);
        let (from, to) = (0i64, 1i64);
        let rows = client.query(&sql, &[&"shop", &"500100732259", &from, &to]).await.unwrap();
        let plan: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        assert!(plan.iter().any(|line| line.contains("payouts_fiscal_inn")), "{plan:?}");
        let definition: String = client
            .query_one("SELECT indexdef FROM pg_indexes WHERE indexname = 'payouts_fiscal_inn'", &[])
            .await
            .unwrap()
            .get(0);
        assert!(definition.contains("WHERE (fiscal_inn IS NOT NULL)"), "{definition}");
    }
}
