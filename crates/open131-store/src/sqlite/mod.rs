//! The embedded backend: SQLite in WAL mode with `synchronous=FULL`, one writer
//! thread with grouped commits ([`writer`]) and a small pool of read connections.
//!
//! Point reads by primary key take microseconds, less than handing them to a
//! blocking thread would cost, so readers run on the caller's thread.

mod payouts;
pub(crate) mod writer;

/// SQL written once for both backends (`$1`, `$2`, … as PostgreSQL numbers
/// its parameters) in SQLite's explicit form (`?1`, `?2`, …). SQLite reads
/// `$1` as a *named* parameter numbered by first appearance, so `$4` written
/// first would bind the first value: the explicit form binds by the number.
pub(crate) fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use open131_domain::kyc::{self, CheckEvent, CheckState};
use rusqlite::{params, Connection, OptionalExtension};
use time::OffsetDateTime;

use crate::rows::{format_date, from_us, to_us, CheckRow, ProjectRow, CHECK_COLUMNS, PROJECT_COLUMNS};
use crate::{CommitWatch, InstanceStore};
use crate::{
    NpdLinkRecord, NpdRequestRecord, NpdStore, PublicTokenRecord, SealedItem, SubscriptionRecord, SubscriptionStore,
    SubscriptionWrite, VaultAccountRecord, VaultCardRecord, VaultKind, WidgetStore,
};
use open131_domain::ident::CardExpiry;

use crate::{
    AttemptRecord, AttemptResult, Backend, CheckRecord, CheckStore, ContractorWalletRecord, Decision, DueTimer,
    InsertCheck, LedgerStore, MetaStore, NewCheck, OutboxStore, ProjectKey, ProjectRecord, ProjectStore, Result,
    SessionPostingRecord, SessionRecord, SessionStore, SessionWrite, SettingsChange, StatementRecord, Store,
    StoreError, WalletRecord, WebhookFilter, WebhookRecord, WriteOutcome,
};
use open131_domain::fx::FxRate;
use open131_domain::ledger::{Book, Leg, Movement};
use open131_domain::lifecycle::Timer;
use writer::{db, Writer};

pub use writer::{WRITE_BATCH_MAX_JOBS, WRITE_QUEUE_MAX_JOBS};

/// Read connections kept open.
pub const READ_POOL_CONNECTIONS: usize = 4;
/// How long a connection waits for another process's write lock (the admin CLI), in ms.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Versioned migrations (version, name, SQL), applied in order, each once.
/// Public so that upgrade tests can build an older installation from a prefix.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "init", include_str!("../../migrations/sqlite/0001_init.sql")),
    (2, "payouts", include_str!("../../migrations/sqlite/0002_payouts.sql")),
    (3, "kyc_v2", include_str!("../../migrations/sqlite/0003_kyc_v2.sql")),
    (4, "webhook_revival", include_str!("../../migrations/sqlite/0004_webhook_revival.sql")),
    (5, "allowed_ips", include_str!("../../migrations/sqlite/0005_allowed_ips.sql")),
    (6, "webhook_lease", include_str!("../../migrations/sqlite/0006_webhook_lease.sql")),
    (7, "webhook_subjects", include_str!("../../migrations/sqlite/0007_webhook_subjects.sql")),
    (8, "check_postponed", include_str!("../../migrations/sqlite/0008_check_postponed.sql")),
    (9, "payouts", include_str!("../../migrations/sqlite/0009_payouts.sql")),
    (10, "payout_state", include_str!("../../migrations/sqlite/0010_payout_state.sql")),
    (11, "payouts_complete", include_str!("../../migrations/sqlite/0011_payouts_complete.sql")),
    (12, "books_and_exchange", include_str!("../../migrations/sqlite/0012_books_and_exchange.sql")),
    (13, "acquiring", include_str!("../../migrations/sqlite/0013_acquiring.sql")),
    (14, "payment_refunds", include_str!("../../migrations/sqlite/0014_payment_refunds.sql")),
    (15, "recurrent", include_str!("../../migrations/sqlite/0015_recurrent.sql")),
    (16, "operation_finished", include_str!("../../migrations/sqlite/0016_operation_finished.sql")),
    (17, "split_and_subscriptions", include_str!("../../migrations/sqlite/0017_split_and_subscriptions.sql")),
    (18, "widgets", include_str!("../../migrations/sqlite/0018_widgets.sql")),
    (19, "npd_links", include_str!("../../migrations/sqlite/0019_npd_links.sql")),
    (20, "lease_owners", include_str!("../../migrations/sqlite/0020_lease_owners.sql")),
    (21, "fiscal_payouts", include_str!("../../migrations/sqlite/0021_fiscal_payouts.sql")),
    (22, "receipts", include_str!("../../migrations/sqlite/0022_receipts.sql")),
    (23, "webhook_faults", include_str!("../../migrations/sqlite/0023_webhook_faults.sql")),
    (24, "project_clocks", include_str!("../../migrations/sqlite/0024_project_clocks.sql")),
    (25, "postings_by_session", include_str!("../../migrations/sqlite/0025_postings_by_session.sql")),
    (26, "posting_operations", include_str!("../../migrations/sqlite/0026_posting_operations.sql")),
    (27, "report_runs", include_str!("../../migrations/sqlite/0027_report_runs.sql")),
    (28, "fiscal_inn_partial", include_str!("../../migrations/sqlite/0028_fiscal_inn_partial.sql")),
    (29, "keyed_without_rowid", include_str!("../../migrations/sqlite/0029_keyed_without_rowid.sql")),
    (30, "no_id_sequences", include_str!("../../migrations/sqlite/0030_no_id_sequences.sql")),
];

pub struct SqliteStore {
    writer: Writer,
    commits: CommitWatch,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The owner this handle's claims record ([`crate::InstanceStore`]).
    instance: String,
}

impl SqliteStore {
    /// Claims due checks of `project` (on its own clock), or of every project
    /// not on a clock of its own.
    async fn claim_checks(
        &self,
        project: Option<String>,
        created_up_to: OffsetDateTime,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>> {
        let owner = self.instance.clone();
        let scope = if project.is_some() {
            "project_id = ?6".to_string()
        } else {
            format!("?6 IS NULL AND {}", crate::NOT_CLOCKED)
        };
        let rows = self
            .writer
            .write(move |conn| {
                conn.prepare_cached(&format!(
                    "UPDATE kyc_checks SET retry_at_us = ?4, postponed = 0, lease_owner = ?5
                     WHERE (project_id, id) IN (
                         SELECT project_id, id FROM kyc_checks WHERE outcome IS NULL AND created_at_us <= ?1
                             AND (retry_at_us IS NULL OR retry_at_us <= ?3) AND {scope}
                         ORDER BY created_at_us LIMIT ?2)
                     RETURNING {CHECK_COLUMNS}"
                ))
                .map_err(db)?
                .query_map(
                    params![to_us(created_up_to), limit as i64, to_us(now), to_us(lease_until), owner, project],
                    |r| CheckRow::read(r),
                )
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)
            })
            .await?;
        let mut checks = rows.into_iter().map(CheckRow::decode).collect::<Result<Vec<_>>>()?;
        checks.sort_by_key(|c| c.created_at);
        Ok(checks)
    }

    /// Opens (creating if needed) the database in `data_dir` and migrates it.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let path = crate::layout::DataDir::new(data_dir).database();
        let write_conn = connect(&path)?;
        migrate(&write_conn)?;
        let readers = (0..READ_POOL_CONNECTIONS)
            .map(|_| {
                let conn = connect(&path)?;
                conn.execute_batch("PRAGMA query_only = ON").map_err(db)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>>>()?;
        let commits = CommitWatch::default();
        Ok(Self {
            writer: Writer::spawn(write_conn, commits.clone())?,
            commits,
            readers,
            next_reader: AtomicUsize::new(0),
            instance: crate::new_instance_id(),
        })
    }

    fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        // Take the first idle connection, else wait for the one in turn.
        for offset in 0..self.readers.len() {
            if let Ok(conn) = self.readers[(start + offset) % self.readers.len()].try_lock() {
                return f(&conn);
            }
        }
        let conn = self.readers[start % self.readers.len()].lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn)
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(db)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS)).map_err(db)?;
    // temp_store = MEMORY: SQLite copies every page a statement that may
    // abort (an upsert, a foreign key) or a savepoint (a group run again after
    // a failing job) first changes into a sub-journal, a temp file past
    // 64 KiB; `perf` showed those pwrite calls at a fifth of the writer's time
    // under `session/init/payout` when every job had its savepoint. Held in
    // memory, a sub-journal costs no system call; it lives only until its
    // statement or RELEASE ends, so durability is untouched (the WAL and its
    // fsync are).
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(db)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_us INTEGER NOT NULL) STRICT",
    )
    .map_err(db)?;
    for (version, name, sql) in MIGRATIONS {
        // IMMEDIATE: a server and an admin command starting together migrate once.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(db)?;
        let applied: bool = conn
            .query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [version], |r| r.get(0))
            .map_err(db)?;
        let result = if applied {
            Ok(())
        } else {
            conn.execute_batch(sql).and_then(|_| {
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at_us) VALUES (?1, ?2, ?3)",
                    params![version, name, to_us(OffsetDateTime::now_utc())],
                )
                .map(|_| ())
            })
        };
        match result {
            Ok(()) => conn.execute_batch("COMMIT").map_err(db)?,
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(StoreError::Migration { version: *version, name, source: e.into() });
            }
        }
    }
    Ok(())
}

impl crate::rows::Columns for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn text(&self, i: usize) -> rusqlite::Result<String> {
        self.get(i)
    }
    fn opt_text(&self, i: usize) -> rusqlite::Result<Option<String>> {
        self.get(i)
    }
    fn int(&self, i: usize) -> rusqlite::Result<i64> {
        self.get(i)
    }
    fn opt_int(&self, i: usize) -> rusqlite::Result<Option<i64>> {
        self.get(i)
    }
    fn bytes(&self, i: usize) -> rusqlite::Result<Vec<u8>> {
        self.get(i)
    }
    /// SQLite has no boolean type: 0 is false.
    fn flag(&self, i: usize) -> rusqlite::Result<bool> {
        Ok(self.get::<_, i64>(i)? != 0)
    }
}

fn load_project(conn: &Connection, id: &str) -> Result<Option<ProjectRecord>> {
    let head = conn
        .prepare_cached(&format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE id = ?1"))
        .map_err(db)?
        .query_row([id], |r| ProjectRow::read(r))
        .optional()
        .map_err(db)?;
    let Some((id, created_at, settings)) = head.map(ProjectRow::decode).transpose()? else { return Ok(None) };
    let mut stmt = conn
        .prepare_cached(
            "SELECT fingerprint, spki_der, created_at_us FROM project_keys WHERE project_id = ?1 ORDER BY created_at_us, fingerprint",
        )
        .map_err(db)?;
    let keys = stmt
        .query_map([&id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, i64>(2)?)))
        .map_err(db)?
        .map(|row| {
            let (fingerprint, spki_der, at) = row.map_err(db)?;
            Ok(ProjectKey { fingerprint, spki_der, created_at: from_us(at)? })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(ProjectRecord { id, created_at, settings, keys }))
}

#[async_trait]
impl SubscriptionStore for SqliteStore {
    async fn subscription(&self, project_id: &str, id: &str) -> Result<Option<SubscriptionRecord>> {
        self.read(|conn| payouts::subscription(conn, project_id, id))
    }

    async fn write_subscription(&self, write: SubscriptionWrite, _now: OffsetDateTime) -> Result<WriteOutcome> {
        match self.writer.write(move |conn| payouts::write_subscription(conn, &write)).await {
            Ok(version) => Ok(WriteOutcome::Applied(version)),
            Err(payouts::Refusal::Outcome(o)) => Ok(o),
            Err(payouts::Refusal::Error(e)) => Err(e),
        }
    }

    async fn claim_due_subscriptions(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>> {
        // Looked for on a reader first: the processor asks every round, and
        // the one writer is the hot path.
        if !self.read(|conn| payouts::any_due_subscription(conn, now))? {
            return Ok(Vec::new());
        }
        let owner = self.instance.clone();
        let claim = crate::OwnClaim::real(now, lease_until);
        self.writer.write(move |conn| payouts::claim_due_subscriptions(conn, (claim, &owner), limit, None)).await
    }

    async fn claim_project_due_subscriptions(
        &self,
        project_id: &str,
        own: crate::OwnClaim,
        limit: usize,
    ) -> Result<Vec<SubscriptionRecord>> {
        let (owner, project) = (self.instance.clone(), project_id.to_string());
        self.writer
            .write(move |conn| payouts::claim_due_subscriptions(conn, (own, &owner), limit, Some(&project)))
            .await
    }
}

#[async_trait]
impl WidgetStore for SqliteStore {
    async fn insert_public_token(&self, t: PublicTokenRecord) -> Result<()> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached(crate::rows::INSERT_PUBLIC_TOKEN)
                    .map_err(db)?
                    .execute(params![
                        t.token,
                        t.project_id,
                        t.grant.stored(),
                        to_us(t.created_at),
                        to_us(t.expires_at),
                        t.used_at.map(to_us)
                    ])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn put_card(&self, c: VaultCardRecord) -> Result<()> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached(crate::rows::INSERT_VAULT_CARD)
                    .map_err(db)?
                    .execute(params![
                        c.project_id,
                        c.number_hash,
                        c.key_id,
                        c.nonce,
                        c.ciphertext,
                        c.brand,
                        c.bin,
                        c.last4,
                        c.card_expiry.as_ref().map(CardExpiry::stored),
                        to_us(c.created_at)
                    ])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn vault_card(&self, project_id: &str, number_hash: &str) -> Result<Option<VaultCardRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_VAULT_CARD)
                .map_err(db)?
                .query_row(params![project_id, number_hash], |r| crate::rows::vault_card(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }

    async fn put_account(&self, a: VaultAccountRecord) -> Result<bool> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(crate::rows::INSERT_VAULT_ACCOUNT)
                    .map_err(db)?
                    .execute(params![
                        a.project_id,
                        a.token,
                        a.key_id,
                        a.nonce,
                        a.ciphertext,
                        a.bik,
                        a.masked_account,
                        to_us(a.created_at)
                    ])
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn vault_account(&self, project_id: &str, token: &str) -> Result<Option<VaultAccountRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_VAULT_ACCOUNT)
                .map_err(db)?
                .query_row(params![project_id, token], |r| crate::rows::vault_account(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }

    async fn sealed_items(&self, not_key_id: &str, limit: usize) -> Result<Vec<SealedItem>> {
        self.read(|conn| {
            conn.prepare_cached(crate::rows::SEALED_ITEMS)
                .map_err(db)?
                .query_map(params![not_key_id, limit as i64], |r| crate::rows::sealed_item(r))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)
        })
    }

    async fn reseal(&self, item: SealedItem) -> Result<()> {
        self.writer
            .write(move |conn| {
                let sql = match item.kind {
                    VaultKind::Card => crate::rows::RESEAL_CARD,
                    VaultKind::Account => crate::rows::RESEAL_ACCOUNT,
                };
                conn.prepare_cached(sql)
                    .map_err(db)?
                    .execute(params![item.key_id, item.nonce, item.ciphertext, item.project_id, item.name])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn public_token_by_value(&self, token: &str) -> Result<Option<PublicTokenRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_PUBLIC_TOKEN_BY_VALUE)
                .map_err(db)?
                .query_row(params![token], |r| crate::rows::public_token(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }

    async fn use_public_token(&self, token: &str, now: OffsetDateTime) -> Result<Option<PublicTokenRecord>> {
        let token = token.to_string();
        self.writer
            .write(move |conn| {
                let row = conn
                    .prepare_cached(crate::rows::USE_PUBLIC_TOKEN)
                    .map_err(db)?
                    .query_row(params![to_us(now), token], |r| crate::rows::public_token(r))
                    .optional()
                    .map_err(db)?;
                row.transpose()
            })
            .await
    }

    async fn public_token(&self, project_id: &str, token: &str) -> Result<Option<PublicTokenRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_PUBLIC_TOKEN)
                .map_err(db)?
                .query_row(params![project_id, token], |r| crate::rows::public_token(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }
}

#[async_trait]
impl NpdStore for SqliteStore {
    async fn npd_link(&self, project_id: &str, inn: &str) -> Result<Option<NpdLinkRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_NPD_LINK)
                .map_err(db)?
                .query_row(params![project_id, inn], |r| crate::rows::npd_link(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }

    async fn save_npd_link(&self, l: NpdLinkRecord, expected_version: Option<i64>) -> Result<bool> {
        self.writer
            .write(move |conn| {
                let (state, updated) = (l.state.as_str(), to_us(l.updated_at));
                let changed =
                    match expected_version {
                        None => conn.prepare_cached(crate::rows::INSERT_NPD_LINK).map_err(db)?.execute(params![
                            l.project_id,
                            l.inn,
                            state,
                            l.version,
                            updated
                        ]),
                        Some(expected) => conn
                            .prepare_cached(crate::rows::UPDATE_NPD_LINK)
                            .map_err(db)?
                            .execute(params![state, l.version, updated, l.project_id, l.inn, expected]),
                    };
                Ok(changed.map_err(db)? == 1)
            })
            .await
    }

    async fn insert_npd_request(&self, q: NpdRequestRecord) -> Result<()> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached(crate::rows::INSERT_NPD_REQUEST)
                    .map_err(db)?
                    .execute(params![
                        q.project_id,
                        q.id,
                        q.inn,
                        q.kind.as_str(),
                        q.answer.stored(),
                        to_us(q.created_at),
                        to_us(q.ready_at)
                    ])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn npd_request(&self, project_id: &str, id: &str) -> Result<Option<NpdRequestRecord>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_NPD_REQUEST)
                .map_err(db)?
                .query_row(params![project_id, id], |r| crate::rows::npd_request(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }

    async fn fiscal_income(
        &self,
        project_id: &str,
        inn: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<i64> {
        self.read(|conn| {
            conn.prepare_cached(crate::rows::FISCAL_INCOME)
                .map_err(db)?
                .query_row(params![project_id, inn, to_us(from), to_us(to)], |r| r.get::<_, i64>(0))
                .map_err(db)
        })
    }

    async fn npd_taxpayer(&self, inn: &str) -> Result<Option<open131_domain::npd::Taxpayer>> {
        self.read(|conn| {
            let row = conn
                .prepare_cached(crate::rows::SELECT_NPD_TAXPAYER)
                .map_err(db)?
                .query_row(params![inn], |r| crate::rows::npd_taxpayer(r))
                .optional()
                .map_err(db)?;
            row.transpose()
        })
    }

    async fn set_npd_taxpayer(&self, inn: &str, t: &open131_domain::npd::Taxpayer, now: OffsetDateTime) -> Result<()> {
        let (inn, t) = (inn.to_string(), t.clone());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(crate::rows::UPSERT_NPD_TAXPAYER)
                    .map_err(db)?
                    .execute(params![
                        inn,
                        t.status.as_str(),
                        t.full_name,
                        t.phone,
                        i64::from(t.service_error),
                        to_us(now),
                        i64::from(t.receipt_refusals)
                    ])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl InstanceStore for SqliteStore {
    fn instance_id(&self) -> &str {
        &self.instance
    }

    async fn heartbeat(&self, now: OffsetDateTime) -> Result<()> {
        let me = self.instance.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(crate::rows::HEARTBEAT)
                    .map_err(db)?
                    .execute(params![me, to_us(now)])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }

    async fn heartbeats(&self) -> Result<Vec<(String, i64)>> {
        self.read(|conn| {
            conn.prepare_cached(crate::rows::SELECT_HEARTBEATS)
                .map_err(db)?
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)
        })
    }

    async fn release_leases(&self, now: OffsetDateTime, owner: Option<&str>) -> Result<usize> {
        let (me, owner) = (self.instance.clone(), owner.map(str::to_string));
        self.writer
            .write(move |conn| {
                let mut released = 0;
                for sql in crate::rows::RELEASE_LEASES {
                    released +=
                        conn.prepare_cached(sql).map_err(db)?.execute(params![to_us(now), me, owner]).map_err(db)?;
                }
                conn.prepare_cached(crate::rows::FORGET_INSTANCES)
                    .map_err(db)?
                    .execute(params![to_us(now - crate::INSTANCE_FORGET_AFTER)])
                    .map_err(db)?;
                Ok(released)
            })
            .await
    }
}

impl Store for SqliteStore {
    fn commits(&self) -> &CommitWatch {
        &self.commits
    }
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}

#[async_trait]
impl ProjectStore for SqliteStore {
    async fn create_project(&self, id: &str, now: OffsetDateTime) -> Result<bool> {
        let id = id.to_string();
        self.writer
            .write(move |conn| {
                let n = conn
                    .execute(
                        "INSERT INTO projects (id, created_at_us) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                        params![id, to_us(now)],
                    )
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn add_project_key(
        &self,
        project_id: &str,
        fingerprint: &str,
        spki_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool> {
        let (project_id, fingerprint, spki_der) = (project_id.to_string(), fingerprint.to_string(), spki_der.to_vec());
        self.writer
            .write(move |conn| {
                let exists: bool = conn
                    .query_row("SELECT EXISTS(SELECT 1 FROM projects WHERE id = ?1)", [&project_id], |r| r.get(0))
                    .map_err(db)?;
                if !exists {
                    return Err(StoreError::NoSuchProject(project_id.clone()));
                }
                let n = conn
                    .execute(
                        "INSERT INTO project_keys (project_id, fingerprint, spki_der, created_at_us) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (project_id, fingerprint) DO NOTHING",
                        params![project_id, fingerprint, spki_der, to_us(now)],
                    )
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn project(&self, id: &str) -> Result<Option<ProjectRecord>> {
        self.read(|conn| load_project(conn, id))
    }

    async fn move_clock(
        &self,
        project_id: &str,
        from: open131_domain::settings::ClockOffset,
        to: open131_domain::settings::ClockOffset,
    ) -> Result<bool> {
        let project = project_id.to_string();
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(crate::MOVE_CLOCK_SQL)
                    .map_err(db)?
                    .execute(params![project, from.us(), to.us()])
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn clocked_projects(&self) -> Result<Vec<(String, open131_domain::settings::ClockOffset)>> {
        let rows: Vec<(String, i64)> = self.read(|conn| {
            conn.prepare_cached(crate::CLOCKED_PROJECTS_SQL)
                .map_err(db)?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)
        })?;
        rows.into_iter().map(|(id, us)| crate::clocked(id, us)).collect()
    }

    async fn projects(&self) -> Result<Vec<ProjectRecord>> {
        self.read(|conn| {
            let ids: Vec<String> = conn
                .prepare("SELECT id FROM projects ORDER BY id")
                .map_err(db)?
                .query_map([], |r| r.get(0))
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)?;
            ids.iter().filter_map(|id| load_project(conn, id).transpose()).collect()
        })
    }

    async fn set_project_settings(&self, project_id: &str, change: SettingsChange, now: OffsetDateTime) -> Result<()> {
        let project_id = project_id.to_string();
        let stored = change.stored();
        self.writer
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE projects SET
                             webhook_url = CASE WHEN ?2 THEN ?3 ELSE webhook_url END,
                             auto_confirm = COALESCE(?4, auto_confirm),
                             confirm_timeout_s = COALESCE(?5, confirm_timeout_s),
                             methods = COALESCE(?6, methods),
                             kyc_mode = COALESCE(?7, kyc_mode),
                             allowed_ips = COALESCE(?8, allowed_ips),
                             webhook_naming = COALESCE(?9, webhook_naming),
                             submerchants = COALESCE(?10, submerchants),
                             capture_mode = COALESCE(?11, capture_mode),
                             capture_timeout_s = COALESCE(?12, capture_timeout_s),
                             payment_fee_bp = COALESCE(?13, payment_fee_bp),
                             contractors = COALESCE(?14, contractors),
                             widget_origins = COALESCE(?15, widget_origins),
                             webhook_faults = COALESCE(?16, webhook_faults),
                             clock_offset_us = COALESCE(?17, clock_offset_us)
                         WHERE id = ?1",
                        params![
                            project_id,
                            stored.set_webhook_url,
                            stored.webhook_url,
                            stored.auto_confirm.map(i64::from),
                            stored.confirm_timeout_s,
                            stored.methods,
                            stored.kyc_mode,
                            stored.allowed_ips,
                            stored.webhook_naming,
                            stored.submerchants,
                            stored.capture_mode,
                            stored.capture_timeout_s,
                            stored.payment_fee_bp,
                            stored.contractors,
                            stored.widget_origins,
                            stored.webhook_faults,
                            stored.clock_offset_us,
                        ],
                    )
                    .map_err(db)?;
                if n == 0 {
                    return Err(StoreError::NoSuchProject(project_id.clone()));
                }
                if matches!(change.webhook_url, Some(Some(_))) {
                    // A (new) URL releases the webhooks parked while there was none.
                    conn.execute(
                        "UPDATE webhooks SET next_attempt_at_us = ?2 WHERE project_id = ?1 AND state = 'pending'
                             AND (leased_until_us IS NULL OR leased_until_us <= ?2)",
                        params![project_id, to_us(now)],
                    )
                    .map_err(db)?;
                }
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl CheckStore for SqliteStore {
    async fn insert_check(&self, check: NewCheck) -> Result<InsertCheck> {
        let birthday = format_date(check.application.birthday)?;
        let issuer_date = check.application.rf_passport.as_ref().map(|p| format_date(p.issue_date)).transpose()?;
        self.writer
            .write(move |conn| {
                let app = &check.application;
                // The next id is one past the project's last: the only writer
                // runs this inside its transaction, and checks are never deleted,
                // so no id is handed out twice or left unused. (A counter row
                // cost an upsert with RETURNING per check and a page per commit;
                // PostgreSQL, with concurrent writers, keeps its blocks.)
                let id: i64 = conn
                    .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM kyc_checks WHERE project_id = ?1")
                    .map_err(db)?
                    .query_row([&check.project_id], |r| r.get(0))
                    .map_err(db)?;
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO kyc_checks (project_id, id, api_version, passport_number, inn, agent_contract_number,
                             birthday, issuer_date, payload, created_at_us)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                         ON CONFLICT (project_id, passport_number, inn, agent_contract_number) DO NOTHING",
                    )
                    .map_err(db)?
                    .execute(params![
                        check.project_id,
                        id,
                        app.version.as_str(),
                        app.document_key.expose(),
                        app.inn.expose(),
                        app.agent_contract_number.expose(),
                        birthday,
                        issuer_date,
                        check.payload_json.expose(),
                        to_us(check.created_at),
                    ])
                    .map_err(db)?;
                if inserted == 1 {
                    return Ok(InsertCheck::Created(id));
                }
                let earlier: i64 = conn
                    .prepare_cached(
                        "SELECT id FROM kyc_checks WHERE project_id = ?1 AND passport_number = ?2 AND inn = ?3
                             AND agent_contract_number = ?4",
                    )
                    .map_err(db)?
                    .query_row(
                        params![
                            check.project_id,
                            app.document_key.expose(),
                            app.inn.expose(),
                            app.agent_contract_number.expose()
                        ],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                Ok(InsertCheck::Duplicate(earlier))
            })
            .await
    }

    async fn recent_checks(&self, project_id: &str, limit: usize) -> Result<Vec<CheckRecord>> {
        let rows = self.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {CHECK_COLUMNS} FROM kyc_checks WHERE project_id = ?1 ORDER BY id DESC LIMIT ?2"
            ))
            .map_err(db)?
            .query_map(params![project_id, limit as i64], |r| CheckRow::read(r))
            .map_err(db)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db)
        })?;
        rows.into_iter().map(CheckRow::decode).collect()
    }

    async fn check(&self, project_id: &str, id: i64) -> Result<Option<CheckRecord>> {
        let row = self.read(|conn| {
            conn.prepare_cached(&format!("SELECT {CHECK_COLUMNS} FROM kyc_checks WHERE project_id = ?1 AND id = ?2"))
                .map_err(db)?
                .query_row(params![project_id, id], |r| CheckRow::read(r))
                .optional()
                .map_err(db)
        })?;
        row.map(CheckRow::decode).transpose()
    }

    async fn claim_due_checks(
        &self,
        created_up_to: OffsetDateTime,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>> {
        self.claim_checks(None, created_up_to, now, lease_until, limit).await
    }

    async fn claim_project_due_checks(
        &self,
        project_id: &str,
        created_up_to: OffsetDateTime,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>> {
        self.claim_checks(Some(project_id.to_string()), created_up_to, now, lease_until, limit).await
    }

    async fn oldest_pending(&self, now: OffsetDateTime) -> Result<Option<OffsetDateTime>> {
        let us: Option<i64> = self.read(|conn| {
            conn.prepare_cached(
                "SELECT MIN(created_at_us) FROM kyc_checks
                 WHERE outcome IS NULL AND (retry_at_us IS NULL OR retry_at_us <= ?1)",
            )
            .map_err(db)?
            .query_row([to_us(now)], |r| r.get(0))
            .map_err(db)
        })?;
        us.map(from_us).transpose()
    }

    async fn finish_checks(&self, decisions: Vec<Decision>, now: OffsetDateTime) -> Result<Vec<bool>> {
        self.writer
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "UPDATE kyc_checks SET outcome = ?3, finished_at_us = ?4
                         WHERE project_id = ?1 AND id = ?2 AND outcome IS NULL",
                    )
                    .map_err(db)?;
                decisions
                    .iter()
                    .map(|d| {
                        // The domain's lifecycle says a verdict is only legal on a pending
                        // check; the WHERE clause is how the database enforces it.
                        debug_assert!(kyc::transition(CheckState::Pending, CheckEvent::Decide(d.outcome)).is_ok());
                        let n =
                            stmt.execute(params![d.project_id, d.id, d.outcome.as_str(), to_us(now)]).map_err(db)?;
                        Ok(n == 1)
                    })
                    .collect()
            })
            .await
    }

    async fn postpone_checks(&self, checks: Vec<(String, i64)>, until: OffsetDateTime) -> Result<()> {
        self.writer
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "UPDATE kyc_checks SET retry_at_us = ?3, postponed = 1
                         WHERE project_id = ?1 AND id = ?2 AND outcome IS NULL",
                    )
                    .map_err(db)?;
                for (project, id) in &checks {
                    stmt.execute(params![project, id, to_us(until)]).map_err(db)?;
                }
                Ok(())
            })
            .await
    }

    async fn release_postponed_checks(&self) -> Result<usize> {
        self.writer
            .write(|conn| {
                conn.execute(
                    "UPDATE kyc_checks SET retry_at_us = NULL, postponed = 0 WHERE outcome IS NULL AND postponed = 1",
                    [],
                )
                .map_err(db)
            })
            .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn write_session(&self, write: SessionWrite, now: OffsetDateTime) -> Result<WriteOutcome> {
        let result = self.writer.write(move |conn| payouts::write_session(conn, &write, now)).await;
        match result {
            Ok(version) => Ok(WriteOutcome::Applied(version)),
            Err(payouts::Refusal::Outcome(o)) => Ok(o),
            Err(payouts::Refusal::Error(e)) => Err(e),
        }
    }

    async fn idempotency_key_used(&self, project_id: &str, key: &str) -> Result<bool> {
        self.read(|conn| {
            conn.prepare_cached("SELECT EXISTS(SELECT 1 FROM idempotency_keys WHERE project_id = ?1 AND key = ?2)")
                .map_err(db)?
                .query_row(params![project_id, key], |r| r.get(0))
                .map_err(db)
        })
    }

    async fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>> {
        self.read(|conn| payouts::session(conn, project_id, id))
    }

    async fn recent_sessions(&self, project_id: &str, limit: usize) -> Result<Vec<SessionRecord>> {
        self.read(|conn| {
            let ids: Vec<String> = conn
                .prepare_cached(
                    "SELECT id FROM sessions WHERE project_id = ?1 ORDER BY created_at_us DESC, id DESC LIMIT ?2",
                )
                .map_err(db)?
                .query_map(params![project_id, limit as i64], |r| r.get(0))
                .map_err(db)?
                .collect::<rusqlite::Result<_>>()
                .map_err(db)?;
            let sessions = ids.iter().map(|id| payouts::session(conn, project_id, id));
            Ok(sessions.collect::<Result<Vec<_>>>()?.into_iter().flatten().collect())
        })
    }

    async fn recurrent_token(&self, project_id: &str, token: &str) -> Result<Option<crate::RecurrentToken>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(crate::rows::SELECT_TOKEN).map_err(db)?;
            let mut rows = stmt.query(params![project_id, token]).map_err(db)?;
            match rows.next().map_err(db)? {
                Some(row) => crate::rows::TokenRow::read(row, 0).map_err(db)?.map(|t| t.decode()).transpose(),
                None => Ok(None),
            }
        })
    }

    async fn disable_recurrent_token(&self, project_id: &str, token: &str) -> Result<bool> {
        let (project_id, token) = (project_id.to_string(), token.to_string());
        self.writer
            .write(move |conn| {
                let n = conn
                    .prepare_cached(crate::rows::DISABLE_TOKEN)
                    .map_err(db)?
                    .execute(params![project_id, token])
                    .map_err(db)?;
                Ok(n > 0)
            })
            .await
    }

    async fn claim_due_timers(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        let owner = self.instance.clone();
        self.writer.write(move |conn| payouts::claim_due_timers(conn, (now, lease_until, &owner), limit, None)).await
    }

    async fn claim_project_due_timers(
        &self,
        project_id: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<DueTimer>> {
        let (owner, project) = (self.instance.clone(), project_id.to_string());
        self.writer
            .write(move |conn| payouts::claim_due_timers(conn, (now, lease_until, &owner), limit, Some(&project)))
            .await
    }

    async fn drop_timer(
        &self,
        project_id: &str,
        session_id: &str,
        timer: Timer,
        claimed_until: OffsetDateTime,
    ) -> Result<()> {
        let (p, s, due) = (project_id.to_string(), session_id.to_string(), crate::rows::to_us(claimed_until));
        self.writer
            .write(move |conn| {
                conn.prepare_cached(crate::rows::DROP_CLAIMED_TIMER)
                    .map_err(db)?
                    .execute(params![p, s, timer.as_str(), due])
                    .map_err(db)?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl LedgerStore for SqliteStore {
    async fn topup_book(
        &self,
        project_id: &str,
        book: Book,
        currency: &str,
        amount: i64,
        now: OffsetDateTime,
    ) -> Result<()> {
        let (p, leg) = (project_id.to_string(), Leg::own(book, currency, Movement::TopUp, amount));
        let result = self.writer.write(move |conn| payouts::apply_movement(conn, &p, &leg, None, now)).await;
        match result {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::MovementRefused("a top-up cannot make a balance negative")),
            Err(payouts::Refusal::Error(e)) => Err(e),
            Err(payouts::Refusal::Outcome(_)) => Err(StoreError::MovementRefused("a top-up was refused")),
        }
    }

    async fn wallets(&self, project_id: &str) -> Result<Vec<WalletRecord>> {
        self.read(|conn| payouts::wallets(conn, project_id))
    }

    async fn contractor_wallets(&self, project_id: &str) -> Result<Vec<ContractorWalletRecord>> {
        self.read(|conn| payouts::contractor_wallets(conn, project_id))
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
        self.read(|conn| payouts::statement(conn, project_id, book, currency, (from, to), limit))
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
        let sql = numbered(&crate::rows::register_sql(register));
        let (after_us, after_id) = after.map_or((i64::MIN, i64::MIN), |(t, id)| (to_us(t), id));
        self.read(|conn| {
            let rows = conn
                .prepare_cached(&sql)
                .map_err(db)?
                .query_map(
                    params![
                        project_id,
                        book.as_str(),
                        currency,
                        to_us(from),
                        to_us(to),
                        after_us,
                        after_id,
                        limit as i64
                    ],
                    |r| crate::rows::RegisterRow::read(r),
                )
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            rows.into_iter().map(|r| r.decode(book, currency)).collect()
        })
    }

    async fn session_postings(
        &self,
        project_id: &str,
        session_id: &str,
        limit: usize,
    ) -> Result<Vec<SessionPostingRecord>> {
        self.read(|conn| payouts::session_postings(conn, project_id, session_id, limit))
    }

    async fn set_rate(&self, currency: &str, rate: Option<FxRate>, now: OffsetDateTime) -> Result<bool> {
        let currency = currency.to_string();
        self.writer.write(move |conn| payouts::set_rate(conn, &currency, rate, now)).await
    }

    async fn rates(&self) -> Result<Vec<(String, FxRate)>> {
        self.read(payouts::rates)
    }
}

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
        skip_projects: Vec<String>,
    ) -> Result<Vec<WebhookRecord>> {
        let owner = self.instance.clone();
        self.writer
            .write(move |conn| {
                let claim = crate::OwnClaim::real(now, lease_until);
                payouts::claim_webhooks(conn, (claim, &owner), limit, payouts::Scope::AllBut(&skip_projects))
            })
            .await
    }

    async fn claim_project_webhooks(
        &self,
        project_id: &str,
        own: crate::OwnClaim,
        limit: usize,
    ) -> Result<Vec<WebhookRecord>> {
        let (owner, project) = (self.instance.clone(), project_id.to_string());
        self.writer
            .write(move |conn| payouts::claim_webhooks(conn, (own, &owner), limit, payouts::Scope::Only(&project)))
            .await
    }

    async fn record_attempts(&self, results: Vec<AttemptResult>) -> Result<()> {
        self.writer.write(move |conn| payouts::record_attempts(conn, &results)).await
    }

    async fn webhooks(&self, filter: WebhookFilter) -> Result<Vec<WebhookRecord>> {
        self.read(|conn| payouts::webhooks(conn, &filter))
    }

    async fn webhook_attempts(&self, webhook_id: i64) -> Result<Vec<AttemptRecord>> {
        self.read(|conn| payouts::webhook_attempts(conn, webhook_id))
    }

    async fn resend_webhook(&self, webhook_id: i64, now: OffsetDateTime) -> Result<bool> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .execute(
                        "UPDATE webhooks SET state = 'pending', next_attempt_at_us = ?2, attempts_base = attempts
                         WHERE id = ?1 AND (leased_until_us IS NULL OR leased_until_us <= ?2)",
                        params![webhook_id, to_us(now)],
                    )
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn resend_pending(&self, project_id: Option<&str>, now: OffsetDateTime) -> Result<usize> {
        let project_id = project_id.map(str::to_string);
        self.writer
            .write(move |conn| {
                conn.execute(
                    "UPDATE webhooks SET next_attempt_at_us = ?2 WHERE state = 'pending' AND (?1 IS NULL OR project_id = ?1)
                         AND (leased_until_us IS NULL OR leased_until_us <= ?2)",
                    params![project_id, to_us(now)],
                )
                .map_err(db)
            })
            .await
    }

    async fn release_webhooks(&self, ids: Vec<i64>, at: OffsetDateTime) -> Result<()> {
        self.writer
            .write(move |conn| {
                let mut stmt = conn
                    .prepare_cached(
                        "UPDATE webhooks SET next_attempt_at_us = ?2, leased_until_us = NULL WHERE id = ?1 AND state = 'pending'",
                    )
                    .map_err(db)?;
                for id in &ids {
                    stmt.execute(params![id, to_us(at)]).map_err(db)?;
                }
                Ok(())
            })
            .await
    }

    async fn next_webhook_at(&self) -> Result<Option<OffsetDateTime>> {
        let us: Option<i64> = self.read(|conn| {
            conn.prepare_cached("SELECT MIN(next_attempt_at_us) FROM webhooks WHERE state = 'pending'")
                .map_err(db)?
                .query_row([], |r| r.get(0))
                .map_err(db)
        })?;
        us.map(from_us).transpose()
    }
}

#[async_trait]
impl MetaStore for SqliteStore {
    async fn backlog(&self, now: OffsetDateTime) -> Result<crate::Backlog> {
        self.read(|conn| {
            let checks_pending = conn.query_row(crate::BACKLOG_CHECKS_SQL, [], |r| r.get(0)).map_err(db)?;
            let timers_due =
                conn.query_row(&numbered(crate::BACKLOG_TIMERS_SQL), [to_us(now)], |r| r.get(0)).map_err(db)?;
            let mut stmt = conn.prepare_cached(crate::BACKLOG_WEBHOOKS_SQL).map_err(db)?;
            let webhooks_pending = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(db)?;
            Ok(crate::Backlog { checks_pending, timers_due, webhooks_pending })
        })
    }

    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(db)
        })
    }

    async fn claim_report(
        &self,
        project_id: &str,
        report: &str,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Result<bool> {
        let (project, report) = (project_id.to_string(), report.to_string());
        self.writer
            .write(move |conn| {
                let n = conn
                    .execute(
                        &numbered(crate::CLAIM_REPORT_SQL),
                        params![project, report, to_us(lease_until), to_us(now)],
                    )
                    .map_err(db)?;
                Ok(n == 1)
            })
            .await
    }

    async fn finish_report(&self, project_id: &str, report: &str) -> Result<()> {
        let (project, report) = (project_id.to_string(), report.to_string());
        self.writer
            .write(move |conn| {
                conn.execute(&numbered(crate::FINISH_REPORT_SQL), params![project, report]).map(drop).map_err(db)
            })
            .await
    }

    async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>> {
        let key = key.to_string();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                    params![key, value],
                )
                .map_err(db)?;
                conn.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| r.get(0)).map_err(db)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    /// The index of fiscal payouts holds them alone (it is partial), and the
    /// yearly-income sum still reads it (a plan that scanned the table would
    /// still answer, only slowly, so only the plan shows the index is usable).
    #[test]
    fn the_fiscal_income_sum_searches_the_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        drop(super::SqliteStore::open(dir.path()).unwrap());
        let conn = super::connect(&crate::layout::DataDir::new(dir.path()).database()).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", crate::rows::FISCAL_INCOME))
            .unwrap()
            .query_map(rusqlite::params!["shop", "500100732259", 0, 1], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(plan.iter().any(|step| step.contains("USING INDEX payouts_fiscal_inn")), "{plan:?}");
        let partial: bool = conn
            .query_row("SELECT partial FROM pragma_index_list('payouts') WHERE name = 'payouts_fiscal_inn'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(partial, "payouts_fiscal_inn indexes every payout");
    }
}
