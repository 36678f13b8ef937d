//! Webhooks as a partner's endpoint receives them: the signature
//! (`X-PARTNER-SIGN`, RSA-SHA256, base64) checked over the exact bytes
//! received with the bank's public key, then the body parsed into a typed
//! event. Check before parsing, and answer HTTP 200 only once the event is
//! stored: the bank sends again until it gets one, so an event may come
//! more than once (keep what you act on idempotent, by session id and type).
//!
//! ```no_run
//! use open131_client::webhooks::{verify, WebhookKind};
//! use open131_wire::sign::VerifyingKey;
//! # fn demo(body: &[u8], signature: &str) {
//! let bank = VerifyingKey::from_pem(&std::fs::read_to_string("bank.pub.pem").unwrap()).unwrap();
//! match verify(body, signature, &bank) {
//!     Ok(event) if event.kind == Some(WebhookKind::ReadyToConfirm) => { /* confirm event.body.session.id */ }
//!     Ok(_) => {}
//!     Err(e) => eprintln!("refused: {e}"),
//! }
//! # }
//! ```

pub use open131_domain::lifecycle::WebhookKind;
use open131_wire::api::WebhookBody;
use open131_wire::sign::VerifyingKey;

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the signature does not match the body (not from the bank, or changed on the way)")]
    BadSignature,
    #[error("the body is not a webhook: {0}")]
    Malformed(String),
}

/// A verified webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// Its kind; `None` for a `type` this SDK does not know yet (see `body.kind`).
    pub kind: Option<WebhookKind>,
    pub body: WebhookBody,
}

/// Checks `signature` over `body` with the bank's key, then parses it.
pub fn verify(body: &[u8], signature: &str, bank_key: &VerifyingKey) -> Result<WebhookEvent, WebhookError> {
    if !bank_key.verify_base64(body, signature.trim()) {
        return Err(WebhookError::BadSignature);
    }
    let body: WebhookBody = serde_json::from_slice(body).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    Ok(WebhookEvent { kind: WebhookKind::parse(&body.kind), body })
}
