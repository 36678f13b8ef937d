//! Rust SDK for the Bank 131 API, against the bank or open131: the passport
//! verification (KYC) API ([`KycClient`], v1.1 and v2.0), the main API
//! ([`MainClient`]: sessions, payouts, payments, refunds, tokens, the
//! self-employed methods, with safe retries and idempotency keys) and
//! webhooks ([`webhooks::verify`]: signature and typed event).
//!
//! ```no_run
//! # async fn demo() -> Result<(), open131_client::ClientError> {
//! use open131_client::KycClient;
//! use open131_wire::sign::SigningKey;
//! let key = SigningKey::from_pem(&std::fs::read_to_string("demo.key.pem").unwrap()).unwrap();
//! let client = KycClient::new("http://127.0.0.1:8131", "demo", key);
//! let payload = serde_json::json!({"first_name": "…"});
//! let answer = client.check(&payload).await?;
//! println!("{:?}", answer.body.data);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod main_api;
pub mod requests;
pub mod webhooks;

pub use main_api::{MainAnswer, MainClient};

use open131_wire::canonical::{canonical_bytes, CanonicalError};
use open131_wire::kyc::KycResponse;
use open131_wire::sign::{KeyError, SigningKey};
use serde_json::{json, Value};

use open131_wire::headers::PROJECT as PROJECT_HEADER;
/// Per-request timeout of the SDK, in seconds.
pub const REQUEST_TIMEOUT_S: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("payload cannot be signed: {0}")]
    Canonical(#[from] CanonicalError),
    #[error("signing failed: {0}")]
    Key(#[from] KeyError),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected answer (HTTP {status}): {body}")]
    Unexpected { status: u16, body: String },
    /// The API answered an error (main API).
    #[error("HTTP {http_status}: {} ({})", error.code, error.description)]
    Api { http_status: u16, error: open131_wire::api::ApiError },
    /// A change repeated under its idempotency key met the key: its first try
    /// went through (its answer was lost). Read the session's status.
    #[error("the change under idempotency key {idempotency_key} was applied already")]
    AlreadyApplied { idempotency_key: String },
}

/// An answer: the HTTP status (read it first, as the bank says) and the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub http_status: u16,
    pub body: KycResponse,
}

/// The body of `POST check`: `{"payload": …, "signature": base64(RSA-SHA256(canonical(payload)))}`.
pub fn signed_check_body(payload: &Value, key: &SigningKey) -> Result<Vec<u8>, ClientError> {
    let signature = key.sign_base64(&canonical_bytes(payload)?)?;
    Ok(json!({"payload": payload, "signature": signature}).to_string().into_bytes())
}

pub struct KycClient {
    http: reqwest::Client,
    base_url: String,
    project: String,
    key: SigningKey,
    version: String,
}

impl KycClient {
    /// A v1.1 client for `base_url` (e.g. `http://127.0.0.1:8131`).
    pub fn new(base_url: &str, project: &str, key: SigningKey) -> Self {
        Self {
            http: http_client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            project: project.to_string(),
            key,
            version: "v1.1".into(),
        }
    }

    /// Uses another API version path (`v1.1`, `v2.0`).
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    /// `POST check` for `payload`, signed with the client's key.
    pub async fn check(&self, payload: &Value) -> Result<Answer, ClientError> {
        let body = signed_check_body(payload, &self.key)?;
        let response = self
            .http
            .post(format!("{}/api/{}/check", self.base_url, self.version))
            .header(PROJECT_HEADER, &self.project)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await?;
        answer(response).await
    }

    /// `GET check/{id}`.
    pub async fn status(&self, id: &str) -> Result<Answer, ClientError> {
        let response = self
            .http
            .get(format!("{}/api/{}/check/{}", self.base_url, self.version, id))
            .header(PROJECT_HEADER, &self.project)
            .send()
            .await?;
        answer(response).await
    }
}

/// The SDK's HTTP client: every request bounded by [`REQUEST_TIMEOUT_S`].
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(std::time::Duration::from_secs(REQUEST_TIMEOUT_S)).build().unwrap_or_default()
}

async fn answer(response: reqwest::Response) -> Result<Answer, ClientError> {
    let http_status = response.status().as_u16();
    let bytes = response.bytes().await?;
    match serde_json::from_slice::<KycResponse>(&bytes) {
        Ok(body) => Ok(Answer { http_status, body }),
        Err(_) => {
            Err(ClientError::Unexpected { status: http_status, body: String::from_utf8_lossy(&bytes).into_owned() })
        }
    }
}
