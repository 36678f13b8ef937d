//! Storage for open131 behind one trait, [`Store`]. The SQLite backend
//! ([`sqlite::SqliteStore`]) is the embedded default; only the backend modules
//! know SQL.
//!
//! Invariant: a method that returns `Ok` from a write has committed it durably.
#![forbid(unsafe_code)]

pub mod payouts;
pub mod sqlite;

use async_trait::async_trait;
use open131_domain::kyc::{CheckState, KycApplication, Outcome};
use time::OffsetDateTime;

pub use payouts::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(String),
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    #[error("no such project: {0}")]
    NoSuchProject(String),
    #[error("the store is shut down")]
    Closed,
    #[error("io error: {0}")]
    Io(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A partner project and everything needed to authenticate it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: String,
    pub created_at: OffsetDateTime,
    pub settings: ProjectSettings,
    pub keys: Vec<ProjectKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectKey {
    pub fingerprint: String,
    pub spki_der: Vec<u8>,
    pub created_at: OffsetDateTime,
}

/// A check to insert. `payload` is the JSON object as the partner sent it.
#[derive(Debug, Clone)]
pub struct NewCheck {
    pub project_id: String,
    pub api_version: String,
    pub application: KycApplication,
    pub payload_json: String,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertCheck {
    Created(i64),
    /// Same project, passport, INN and contract as check `id`.
    Duplicate(i64),
}

#[derive(Debug, Clone)]
pub struct CheckRecord {
    pub project_id: String,
    pub id: i64,
    pub api_version: String,
    pub state: CheckState,
    pub application: KycApplication,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

/// A verdict to record for a pending check.
#[derive(Debug, Clone)]
pub struct Decision {
    pub project_id: String,
    pub id: i64,
    pub outcome: Outcome,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a project; `false` if it already existed (nothing changes then).
    async fn create_project(&self, id: &str, now: OffsetDateTime) -> Result<bool>;
    /// Registers a public key; `false` if the project already had it.
    async fn add_project_key(
        &self,
        project_id: &str,
        fingerprint: &str,
        spki_der: &[u8],
        now: OffsetDateTime,
    ) -> Result<bool>;
    async fn project(&self, id: &str) -> Result<Option<ProjectRecord>>;
    async fn projects(&self) -> Result<Vec<ProjectRecord>>;

    async fn insert_check(&self, check: NewCheck) -> Result<InsertCheck>;
    /// A check of `project_id`; another project's id is simply absent.
    async fn check(&self, project_id: &str, id: i64) -> Result<Option<CheckRecord>>;
    /// Pending checks created at or before `created_up_to` and not postponed past
    /// `now`, oldest first, at most `limit`. (The verifier passes `now - delay`, so
    /// the delay setting governs old checks too.)
    async fn due_checks(
        &self,
        created_up_to: OffsetDateTime,
        now: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<CheckRecord>>;
    /// Leaves pending checks alone until `until` (a verifier that cannot decide yet).
    async fn postpone_checks(&self, checks: Vec<(String, i64)>, until: OffsetDateTime) -> Result<()>;
    /// Makes every postponed pending check due again (a registry was just loaded); returns how many.
    async fn release_postponed_checks(&self) -> Result<usize>;
    /// Creation time of the oldest pending check that is not postponed past `now`.
    async fn oldest_pending(&self, now: OffsetDateTime) -> Result<Option<OffsetDateTime>>;
    /// Records verdicts in one commit. Per decision: `true` if it finished the
    /// check, `false` if the check was not pending (the lifecycle forbids a second verdict).
    async fn finish_checks(&self, decisions: Vec<Decision>, now: OffsetDateTime) -> Result<Vec<bool>>;

    /// Changes settings; setting a webhook URL makes the project's pending webhooks due at `now`.
    async fn set_project_settings(&self, project_id: &str, change: SettingsChange, now: OffsetDateTime) -> Result<()>;

    // Payout sessions.
    async fn write_session(&self, write: SessionWrite, now: OffsetDateTime) -> Result<WriteOutcome>;
    /// Whether the project has used this idempotency key (to name the right error
    /// when a repeat would also be in the wrong state; the insert still enforces it).
    async fn idempotency_key_used(&self, project_id: &str, key: &str) -> Result<bool>;
    async fn session(&self, project_id: &str, id: &str) -> Result<Option<SessionRecord>>;
    /// Timers due at `now`, oldest first.
    async fn due_timers(&self, now: OffsetDateTime, limit: usize) -> Result<Vec<DueTimer>>;
    /// Drops a timer that fired but no longer applies (the session moved on).
    async fn drop_timer(&self, project_id: &str, session_id: &str, timer: open131_domain::session::Timer)
        -> Result<()>;

    // The ledger.
    async fn topup(&self, project_id: &str, currency: &str, amount: i64, now: OffsetDateTime) -> Result<()>;
    async fn wallets(&self, project_id: &str) -> Result<Vec<WalletRecord>>;
    /// Per-account sums of the postings of a wallet (`account` name → sum).
    async fn posting_sums(&self, project_id: &str, currency: &str) -> Result<Vec<(String, i64)>>;

    // The webhook outbox.
    /// Pending webhooks due at `now`, except those of `skip_projects`; each is
    /// leased until `lease_until` (or until its attempt is recorded) so a crash
    /// mid-delivery only delays it and no operator command reschedules it meanwhile.
    async fn claim_webhooks(
        &self,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
        limit: usize,
        skip_projects: Vec<String>,
    ) -> Result<Vec<WebhookRecord>>;
    async fn record_attempts(&self, results: Vec<AttemptResult>) -> Result<()>;
    async fn webhooks(&self, filter: WebhookFilter) -> Result<Vec<WebhookRecord>>;
    async fn webhook_attempts(&self, webhook_id: i64) -> Result<Vec<AttemptRecord>>;
    /// Makes a webhook pending again, due at `now`; false if there is no such
    /// webhook or it is being delivered right now (leased).
    async fn resend_webhook(&self, webhook_id: i64, now: OffsetDateTime) -> Result<bool>;
    /// Gives claimed webhooks back unattempted, due at `at` (their project was busy).
    async fn release_webhooks(&self, ids: Vec<i64>, at: OffsetDateTime) -> Result<()>;
    /// Makes every pending webhook (of one project, or all) due at `now`; returns how many.
    async fn resend_pending(&self, project_id: Option<&str>, now: OffsetDateTime) -> Result<usize>;
    /// Earliest next attempt among pending webhooks.
    async fn next_webhook_at(&self) -> Result<Option<OffsetDateTime>>;

    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` only if unset; returns the value that is stored afterwards.
    async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>>;
}
