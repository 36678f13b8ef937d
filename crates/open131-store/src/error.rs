//! The store's one error type. Backend errors are kept as they came (typed, with
//! their source), and sorted once, here, into those worth retrying (a lock or
//! serialization conflict, a dropped connection) and the rest.

use std::sync::Arc;

/// The error of a database driver or its connection pool.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("connection pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("connection pool setup: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    /// One failure told to every caller of a group write.
    #[error(transparent)]
    Shared(std::sync::Arc<BackendError>),
}

/// What a stored value failed to decode as.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {detail}")]
pub struct Corrupt {
    pub what: String,
    pub detail: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conflict or a lost connection: the same call may succeed if made again.
    #[error("transient database error (retry): {0}")]
    Retryable(#[source] BackendError),
    #[error("database error: {0}")]
    Backend(#[source] BackendError),
    /// The group commit holding this change failed (every change in it failed with it).
    #[error("commit failed: {0}")]
    CommitFailed(#[source] Arc<BackendError>),
    #[error("stored data is not valid: {0}")]
    Corrupt(#[from] Corrupt),
    #[error("no such project: {0}")]
    NoSuchProject(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i64,
        name: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("the database has schema version {found}, newer than this build knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store is shut down")]
    Closed,
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A data directory or database URL that cannot be used.
    #[error("{0}")]
    BadLocation(&'static str),
    #[error("a ledger movement was refused: {0}")]
    MovementRefused(&'static str),
}

impl StoreError {
    /// Whether making the same call again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable(_))
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: &'static str) -> Self {
        Self::Corrupt(Corrupt { what: what.into(), detail })
    }

    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io { path: path.display().to_string(), source }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
        match e.sqlite_error_code() {
            Some(DatabaseBusy | DatabaseLocked) => Self::Retryable(e.into()),
            _ => Self::Backend(e.into()),
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let retryable = e.is_closed()
            || e.code().is_some_and(|c| {
                *c == SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == SqlState::T_R_DEADLOCK_DETECTED
                    || *c == SqlState::ADMIN_SHUTDOWN
                    || c.code().starts_with("08")
            });
        if retryable {
            Self::Retryable(e.into())
        } else {
            Self::Backend(e.into())
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        // No connection could be had in time, or the server went away: both pass.
        Self::Retryable(e.into())
    }
}

/// Attempts of one call that failed with a retryable error, the first included.
pub const RETRYABLE_ATTEMPTS_MAX: u32 = 3;
/// Pause before the second attempt, doubled for each later one, in ms.
pub const RETRY_BACKOFF_MS: u64 = 20;

/// Runs `call` until it succeeds, fails for good, or has been tried
/// [`RETRYABLE_ATTEMPTS_MAX`] times. Only for calls that are safe to repeat:
/// a transaction that failed retryably rolled back whole.
pub async fn with_retries<T, F, Fut>(mut call: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt < RETRYABLE_ATTEMPTS_MAX => {
                let pause = RETRY_BACKOFF_MS << (attempt - 1);
                tracing::warn!(error = %e, attempt, "retrying a store call");
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
