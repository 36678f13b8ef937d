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

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// How long a new check stays `pending` before the verifier decides it.
    pub kyc_delay: Duration,
    pub body_size_max_bytes: usize,
    pub request_timeout: Duration,
    /// Run the verifier in the background. Tests that drive time by hand turn it
    /// off and call [`crate::App::verify_due`] themselves.
    pub background_verifier: bool,
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            listen: LISTEN_DEFAULT.parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8131))),
            data_dir,
            kyc_delay: Duration::from_secs(KYC_DELAY_DEFAULT_S),
            body_size_max_bytes: BODY_SIZE_MAX_BYTES,
            request_timeout: Duration::from_secs(REQUEST_TIMEOUT_S),
            background_verifier: true,
        }
    }
}
