//! Server settings. Every limit is a named field with its unit last.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default listen address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:8131";
/// Default data directory (relative to the working directory).
pub const DATA_DIR_DEFAULT: &str = "./open131-data";
/// Largest request body accepted, in bytes.
pub const BODY_SIZE_MAX_BYTES: usize = 64 * 1024;
/// A request still unanswered after this many seconds gets a 500.
pub const REQUEST_TIMEOUT_S: u64 = 30;
/// How long a new check stays pending by default, in seconds.
pub const KYC_DELAY_DEFAULT_S: u64 = 2;
/// Sandbox provider: time from confirmation to the result, in ms.
pub const PAYOUT_PROCESSING_DELAY_DEFAULT_MS: u64 = 1_000;
/// Sandbox provider: the "slow success" outcome, in seconds.
pub const PAYOUT_SLOW_DELAY_DEFAULT_S: u64 = 60;
/// Sandbox: time from success to the recipient bank's return, in seconds
/// (days at a real bank; short here so tests and demos see it).
pub const BANK_RETURN_DELAY_DEFAULT_S: u64 = 30;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// How long a new check stays `pending` before the verifier decides it.
    pub kyc_delay: Duration,
    pub body_size_max_bytes: usize,
    pub request_timeout: Duration,
    /// Time from `init`/`start` to `ready_to_confirm` (the bank "prepares" the payout).
    pub payout_prepare_delay: Duration,
    pub payout_processing_delay: Duration,
    pub payout_slow_delay: Duration,
    pub bank_return_delay: Duration,
    /// How long a claimed webhook stays reserved for the node delivering it
    /// (at least `webhooks::WEBHOOK_LEASE_MIN_S`).
    pub webhook_lease: Duration,
    /// How long one delivery attempt may take (`webhooks::WEBHOOK_TIMEOUT_S`;
    /// the simulation shortens it to test receivers that hang).
    pub webhook_timeout: Duration,
    /// Run the workers (verifier, payout timers, webhook dispatcher) in the
    /// background. Tests that drive time by hand turn them off and call
    /// [`crate::App::verify_due`], [`crate::App::process_due`] and
    /// [`crate::App::deliver_due`] themselves.
    pub background_workers: bool,
    /// The server's address as customers' browsers reach it (3-D Secure
    /// pages), e.g. `https://open131.example`; by default the listening address.
    pub public_url: Option<String>,
    /// This process holds the SQLite data directory's serve lock: no other
    /// process can hold a lease, so it takes every one over at start
    /// ([`crate::lease`]). Off unless the caller took the lock.
    pub sole_process: bool,
    /// Requests of each project the inspector's log keeps in memory (0: none).
    pub request_log_entries_max: usize,
    /// Where the schedule writes the daily registers and monthly acts
    /// ([`crate::report_schedule`]); `None`: no schedule.
    pub reports_dir: Option<PathBuf>,
    /// Where it e-mails them; `None`: files only.
    pub reports_mail: Option<crate::report_schedule::ReportsMail>,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: LISTEN_DEFAULT.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8131))),
            data_dir,
            kyc_delay: Duration::from_secs(KYC_DELAY_DEFAULT_S),
            body_size_max_bytes: BODY_SIZE_MAX_BYTES,
            request_timeout: Duration::from_secs(REQUEST_TIMEOUT_S),
            payout_prepare_delay: Duration::ZERO,
            payout_processing_delay: Duration::from_millis(PAYOUT_PROCESSING_DELAY_DEFAULT_MS),
            payout_slow_delay: Duration::from_secs(PAYOUT_SLOW_DELAY_DEFAULT_S),
            bank_return_delay: Duration::from_secs(BANK_RETURN_DELAY_DEFAULT_S),
            webhook_lease: Duration::from_secs(crate::webhooks::WEBHOOK_LEASE_S),
            webhook_timeout: Duration::from_secs(crate::webhooks::WEBHOOK_TIMEOUT_S),
            background_workers: true,
            public_url: None,
            sole_process: false,
            request_log_entries_max: crate::request_log::REQUEST_LOG_ENTRIES_DEFAULT,
            reports_dir: None,
            reports_mail: None,
        }
    }
}
