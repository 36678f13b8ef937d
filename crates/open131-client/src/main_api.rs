//! The main API (sessions, payouts, card payments, refunds, tokens, the
//! self-employed methods): requests signed over their exact bytes
//! (`X-PARTNER-SIGN`), an idempotency key on every change, typed answers,
//! and retries that are safe for each method.
//!
//! Retries: a read (`session/status`, balances, `token/info`, …) is asked
//! again after a lost connection, a timeout or a 5xx, up to
//! [`RETRIES_MAX`] times. A change is asked again only with the same
//! idempotency key, so it cannot apply twice; when the repeat meets
//! `idempotency_key_already_exists`, the first try went through and the
//! client answers [`ClientError::AlreadyApplied`]: read the session's status.
//!
//! ```no_run
//! # async fn demo() -> Result<(), open131_client::ClientError> {
//! use open131_client::MainClient;
//! use open131_wire::sign::SigningKey;
//! let key = SigningKey::from_pem(&std::fs::read_to_string("demo.key.pem").unwrap()).unwrap();
//! let client = MainClient::new("http://127.0.0.1:8131", "demo", key);
//! let body = serde_json::json!({
//!     "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
//!     "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
//!     "amount_details": {"amount": 1000, "currency": "rub"}
//! });
//! let session = client.session("session/init/payout", &body).await?.session;
//! let confirmed = client.confirm(&session.id).await?;
//! println!("{} {:?}", confirmed.session.status, confirmed.session.next_action);
//! # Ok(()) }
//! ```

use std::time::Duration;

use open131_wire::api::{ApiError, SessionResponse, WalletBalanceResponse};
use open131_wire::headers;
use open131_wire::sign::SigningKey;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::ClientError;

/// Tries after the first for a method safe to ask again.
pub const RETRIES_MAX: u32 = 3;
/// Wait before the first retry, in ms; doubles for each next one.
pub const RETRY_BASE_MS: u64 = 200;

/// The main-API methods that change nothing: asked again freely.
pub const READ_METHODS: &[&str] = &[
    "session/status",
    "wallet/balance",
    "report/account_balance",
    "account_balance",
    "report/account_statement",
    "recurrent/status",
    "token/info",
    "fps/banks",
    "npd/request/status",
];

/// Whether `method` only reads (safe to retry without a key).
pub fn is_read(method: &str) -> bool {
    READ_METHODS.contains(&method)
}

/// An answer of the main API: its HTTP status and body.
#[derive(Debug, Clone, PartialEq)]
pub struct MainAnswer {
    pub http_status: u16,
    pub body: Value,
}

impl MainAnswer {
    /// The answer as `T`, or its error (the API's own, or an unexpected shape).
    pub fn typed<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if let Some(error) = self.error() {
            return Err(ClientError::Api { http_status: self.http_status, error });
        }
        serde_json::from_value(self.body.clone())
            .map_err(|_| ClientError::Unexpected { status: self.http_status, body: self.body.to_string() })
    }

    /// The API's error, when it answered one.
    pub fn error(&self) -> Option<ApiError> {
        (self.body["status"] == "error").then(|| serde_json::from_value(self.body["error"].clone()).ok()).flatten()
    }
}

/// A partner's client of the main API (`/api/v1/…` or `/api/v2/…`).
pub struct MainClient {
    http: reqwest::Client,
    base_url: String,
    project: String,
    key: SigningKey,
    version: String,
}

impl MainClient {
    /// A v1 client for `base_url` (e.g. `http://127.0.0.1:8131` or the bank's host).
    pub fn new(base_url: &str, project: &str, key: SigningKey) -> Self {
        Self {
            http: crate::http_client(),
            base_url: base_url.trim_end_matches('/').to_string(),
            project: project.to_string(),
            key,
            version: "v1".into(),
        }
    }

    /// Uses the v2 names (`payout_details`, `payout_list`, …): `v1` or `v2`.
    pub fn with_version(mut self, version: &str) -> Self {
        self.version = version.to_string();
        self
    }

    /// Calls `method` with `body`; a change gets a new idempotency key.
    pub async fn call(&self, method: &str, body: &Value) -> Result<MainAnswer, ClientError> {
        let key = (!is_read(method)).then(new_idempotency_key);
        self.call_with_key(method, body, key.as_deref()).await
    }

    /// Calls `method` with `body` and the given idempotency key (a change the
    /// caller may repeat later under the same key).
    pub async fn call_with_key(
        &self,
        method: &str,
        body: &Value,
        idempotency_key: Option<&str>,
    ) -> Result<MainAnswer, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Unexpected { status: 0, body: e.to_string() })?;
        let signature = self.key.sign_base64(&bytes)?;
        // A change is retried only under its key: it cannot apply twice.
        let retries = if is_read(method) || idempotency_key.is_some() { RETRIES_MAX } else { 0 };
        let mut attempt = 0;
        loop {
            let outcome = self.send(method, &bytes, &signature, idempotency_key).await;
            let retryable = match &outcome {
                Ok(answer) => answer.http_status >= 500,
                Err(ClientError::Http(e)) => e.is_timeout() || e.is_connect() || e.is_request(),
                // A gateway's 5xx page in front of the API.
                Err(ClientError::Unexpected { status, .. }) => *status >= 500,
                Err(_) => false,
            };
            if !retryable || attempt >= retries {
                return self.settled(outcome, attempt, idempotency_key);
            }
            tokio::time::sleep(Duration::from_millis(RETRY_BASE_MS << attempt)).await;
            attempt += 1;
        }
    }

    /// What a call came to: a repeat of a change that meets its own key
    /// says the first try went through.
    fn settled(
        &self,
        outcome: Result<MainAnswer, ClientError>,
        attempt: u32,
        key: Option<&str>,
    ) -> Result<MainAnswer, ClientError> {
        let answer = outcome?;
        let repeated = attempt > 0 && answer.error().is_some_and(|e| e.code == "idempotency_key_already_exists");
        match key {
            Some(key) if repeated => Err(ClientError::AlreadyApplied { idempotency_key: key.to_string() }),
            _ => Ok(answer),
        }
    }

    async fn send(
        &self,
        method: &str,
        bytes: &[u8],
        signature: &str,
        idempotency_key: Option<&str>,
    ) -> Result<MainAnswer, ClientError> {
        let mut request = self
            .http
            .post(format!("{}/api/{}/{method}", self.base_url, self.version))
            .header(headers::PROJECT, &self.project)
            .header(headers::SIGN, signature)
            .header("Content-Type", "application/json")
            .body(bytes.to_vec());
        if let Some(key) = idempotency_key {
            request = request.header(headers::IDEMPOTENCY_KEY, key);
        }
        let response = request.send().await?;
        let http_status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).map_err(|_| ClientError::Unexpected {
            status: http_status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })?;
        Ok(MainAnswer { http_status, body })
    }

    /// Calls a method that answers a session (`session/init/payout`,
    /// `session/create`, `session/init/payment`, `session/refund`, …).
    pub async fn session(&self, method: &str, body: &Value) -> Result<SessionResponse, ClientError> {
        self.call(method, body).await?.typed()
    }

    /// `session/status`.
    pub async fn status(&self, session_id: &str) -> Result<SessionResponse, ClientError> {
        self.session("session/status", &json!({"session_id": session_id})).await
    }

    /// `session/confirm`.
    pub async fn confirm(&self, session_id: &str) -> Result<SessionResponse, ClientError> {
        self.session("session/confirm", &json!({"session_id": session_id})).await
    }

    /// `session/cancel`.
    pub async fn cancel(&self, session_id: &str) -> Result<SessionResponse, ClientError> {
        self.session("session/cancel", &json!({"session_id": session_id})).await
    }

    /// `session/capture` of all that was authorized.
    pub async fn capture(&self, session_id: &str) -> Result<SessionResponse, ClientError> {
        self.session("session/capture", &json!({"session_id": session_id})).await
    }

    /// `session/refund` of `amount` minor units (`None`: all that is left).
    pub async fn refund(&self, session_id: &str, amount: Option<(i64, &str)>) -> Result<SessionResponse, ClientError> {
        let mut body = json!({"session_id": session_id});
        if let Some((amount, currency)) = amount {
            body["amount_details"] = json!({"amount": amount, "currency": currency});
        }
        self.session("session/refund", &body).await
    }

    /// `wallet/balance`.
    pub async fn wallet_balance(&self) -> Result<WalletBalanceResponse, ClientError> {
        self.call("wallet/balance", &json!({})).await?.typed()
    }
}

/// A new idempotency key: 32 hex digits from the system's random source.
pub fn new_idempotency_key() -> String {
    let mut bytes = [0u8; 16];
    // A failing random source leaves the clock's nanoseconds, still unique enough per client.
    if open131_wire::sign::random_bytes(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
