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

use open131_wire::answers::{
    AccountBalanceResponse, AccountStatementResponse, NpdRequestResponse, NpdStatusResponse, PublicTokenResponse,
    StatusResponse, TokenInfoResponse, TokenizeResponse,
};
use open131_wire::api::{ApiError, BanksResponse, RecurrentResponse, SessionResponse, WalletBalanceResponse};
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

    /// `session/init/payout` (or `session/start/payout` for a payout naming its session).
    /// (`…/fiscalization` when it carries a receipt's details).
    pub async fn payout(&self, payout: &crate::requests::Payout) -> Result<SessionResponse, ClientError> {
        self.session(payout.method(), &payout.body()).await
    }

    /// `session/init/payment` (or `session/start/payment` for a payment naming its session).
    pub async fn payment(&self, payment: &crate::requests::Payment) -> Result<SessionResponse, ClientError> {
        self.session(payment.method(), &payment.body()).await
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

    /// `session/chargeback` [INF] of `amount` minor units (`None`: all that is left).
    pub async fn chargeback(
        &self,
        session_id: &str,
        amount: Option<(i64, &str)>,
    ) -> Result<SessionResponse, ClientError> {
        let mut body = json!({"session_id": session_id});
        if let Some((amount, currency)) = amount {
            body["amount_details"] = json!({"amount": amount, "currency": currency});
        }
        self.session("session/chargeback", &body).await
    }

    /// `recurrent/status` of a recurrent token.
    pub async fn recurrent_status(&self, token: &str) -> Result<RecurrentResponse, ClientError> {
        self.call("recurrent/status", &json!({"recurrent": {"token": token}})).await?.typed()
    }

    /// `recurrent/disable`: the token pays no more (disabling twice is harmless).
    pub async fn recurrent_disable(&self, token: &str) -> Result<RecurrentResponse, ClientError> {
        self.call("recurrent/disable", &json!({"recurrent": {"token": token}})).await?.typed()
    }

    /// `subscription/cancel`.
    pub async fn subscription_cancel(&self, subscription_id: &str) -> Result<StatusResponse, ClientError> {
        self.call("subscription/cancel", &json!({"subscription_id": subscription_id})).await?.typed()
    }

    /// `subscription/restore`.
    pub async fn subscription_restore(&self, subscription_id: &str) -> Result<StatusResponse, ClientError> {
        self.call("subscription/restore", &json!({"subscription_id": subscription_id})).await?.typed()
    }

    /// `sberpay/push`: a push (or SMS) to a SberPay payment's customer.
    pub async fn sberpay_push(&self, session_id: &str, phone: &str) -> Result<StatusResponse, ClientError> {
        self.call("sberpay/push", &json!({"session_id": session_id, "phone": phone})).await?.typed()
    }

    /// `token`: a public token for the widgets `body` asks for
    /// (`acquiring_widget`, `self_employed_widget`, …, as the bank documents them).
    pub async fn public_token(&self, body: &Value) -> Result<PublicTokenResponse, ClientError> {
        self.call("token", body).await?.typed()
    }

    /// `token` for one widget, typed.
    pub async fn widget_token(&self, token: &crate::requests::PublicToken) -> Result<PublicTokenResponse, ClientError> {
        self.public_token(&token.body()).await
    }

    /// `token/info` of a public token.
    pub async fn public_token_info(&self, token: &str) -> Result<TokenInfoResponse, ClientError> {
        self.call("token/info", &json!({"type": "public_token", "public_token": {"token": token}})).await?.typed()
    }

    /// `token/info` of a recurrent token.
    pub async fn recurrent_token_info(&self, token: &str) -> Result<TokenInfoResponse, ClientError> {
        let body = json!({"type": "recurrent_token", "recurrent_token": {"token": token}});
        self.call("token/info", &body).await?.typed()
    }

    /// `token/info` of a card in the project's vault, by its `number_hash`.
    pub async fn card_info(&self, number_hash: &str) -> Result<TokenInfoResponse, ClientError> {
        let body =
            json!({"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": number_hash}}});
        self.call("token/info", &body).await?.typed()
    }

    /// `tokenize/elements`: a card into the project's vault; `info` names it by `number_hash`.
    pub async fn tokenize_card(
        &self,
        number: &str,
        expiry: Option<(u8, u16)>,
    ) -> Result<TokenInfoResponse, ClientError> {
        let mut card = json!({"number": number});
        if let Some((month, year)) = expiry {
            card["expiration_month"] = json!(format!("{month:02}"));
            card["expiration_year"] = json!(format!("{:02}", year % 100));
        }
        let body = json!({"type": "card", "card": {"type": "bank_card", "bank_card": card}});
        self.call("tokenize/elements", &body).await?.typed()
    }

    /// `tokenize`: a Russian bank account into the project's vault.
    pub async fn tokenize_account(&self, bik: &str, account: &str) -> Result<TokenizeResponse, ClientError> {
        let body = json!({"type": "bank_account_ru", "bank_account_ru": {"bik": bik, "account": account}});
        self.call("tokenize", &body).await?.typed()
    }

    /// `fps/banks`: the Faster Payments System's participants.
    pub async fn fps_banks(&self) -> Result<BanksResponse, ClientError> {
        self.call("fps/banks", &json!({})).await?.typed()
    }

    /// `report/account_balance` of one of the project's accounts.
    pub async fn account_balance(&self, account_number: &str) -> Result<AccountBalanceResponse, ClientError> {
        self.call("report/account_balance", &json!({"account_number": account_number})).await?.typed()
    }

    /// `report/account_statement` of one Moscow day (`YYYY-MM-DD`).
    pub async fn account_statement(
        &self,
        account_number: &str,
        date: &str,
    ) -> Result<AccountStatementResponse, ClientError> {
        let body = json!({"account_number": account_number, "date_from": date, "date_to": date});
        self.call("report/account_statement", &body).await?.typed()
    }

    /// `npd/check`: asks the tax service whether the person of `inn` is
    /// self-employed; the answer comes by [`Self::npd_request_status`].
    pub async fn npd_check(&self, inn: &str) -> Result<NpdRequestResponse, ClientError> {
        self.call("npd/check", &json!({"tax_reference": inn})).await?.typed()
    }

    /// `npd/taxpayer/check_personal_info`: whether the name and phone match the register.
    pub async fn npd_check_personal_info(
        &self,
        inn: &str,
        full_name: &str,
        phone: &str,
    ) -> Result<NpdRequestResponse, ClientError> {
        let body = json!({"tax_reference": inn, "full_name": full_name, "phone": phone});
        self.call("npd/taxpayer/check_personal_info", &body).await?.typed()
    }

    /// `npd/request/status`: `pending`, then the answer. The tax service's
    /// refusal (an unknown person, its own failure) is [`ClientError::Api`].
    pub async fn npd_request_status(&self, request_id: &str) -> Result<NpdStatusResponse, ClientError> {
        self.call("npd/request/status", &json!({"request_id": request_id})).await?.typed()
    }

    /// `fiscalization`: the receipt of a succeeded payout that went without one.
    pub async fn fiscalize(
        &self,
        session_id: &str,
        details: &crate::requests::Fiscalization,
    ) -> Result<SessionResponse, ClientError> {
        self.session("fiscalization", &json!({"session_id": session_id, "fiscalization_details": details.details()}))
            .await
    }

    /// `fiscalization/cancel` [INF]: a registered receipt cancelled (`reason`: `mistake` or `refund`).
    pub async fn cancel_receipt(&self, session_id: &str, reason: &str) -> Result<SessionResponse, ClientError> {
        self.session("fiscalization/cancel", &json!({"session_id": session_id, "reason": reason})).await
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
    open131_wire::sign::hex(&bytes)
}
