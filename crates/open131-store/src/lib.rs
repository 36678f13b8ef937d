//! Storage for open131 behind one trait, [`Store`]. The SQLite backend
//! ([`sqlite::SqliteStore`]) is the embedded default; only the backend modules
//! know SQL.
//!
//! Invariant: a method that returns `Ok` from a write has committed it durably.
#![forbid(unsafe_code)]

pub mod sqlite;

use async_trait::async_trait;
use open131_domain::kyc::{CheckState, KycApplication, Outcome};
use time::OffsetDateTime;

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
    /// `sandbox` or `registry`.
    pub kyc_mode: String,
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
    /// Pending checks created at or before `created_up_to`, oldest first, at most `limit`.
    /// (The verifier passes `now - delay`, so the delay setting governs old checks too.)
    async fn due_checks(&self, created_up_to: OffsetDateTime, limit: usize) -> Result<Vec<CheckRecord>>;
    /// Creation time of the oldest pending check.
    async fn oldest_pending(&self) -> Result<Option<OffsetDateTime>>;
    /// Records verdicts in one commit. Per decision: `true` if it finished the
    /// check, `false` if the check was not pending (the lifecycle forbids a second verdict).
    async fn finish_checks(&self, decisions: Vec<Decision>, now: OffsetDateTime) -> Result<Vec<bool>>;

    async fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` only if unset; returns the value that is stored afterwards.
    async fn meta_init(&self, key: &str, value: Vec<u8>) -> Result<Vec<u8>>;
}
