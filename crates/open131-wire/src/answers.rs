//! The main API's answers that are not a session: tokens, the vault,
//! account reports, the self-employed register's requests, and the bare
//! `{"status": "ok"}`. The server renders them from these types and the
//! SDK reads them with the same ones, so the two cannot drift; the OpenAPI
//! document takes their schemas from here too.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{ApiError, RecurrentWire};

/// `{"status": "ok"}`: `subscription/cancel`, `subscription/restore`, `sberpay/push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusResponse {
    pub status: String,
}

impl StatusResponse {
    pub fn ok() -> Self {
        Self { status: "ok".into() }
    }
}

/// Answer of `token`: the public token that opens the widgets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublicTokenResponse {
    pub status: String,
    pub public_token: String,
}

/// Answer of `token/info` and `tokenize/elements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenInfoResponse {
    pub status: String,
    pub info: TokenInfo,
}

/// What `token/info` knows of a token, by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TokenInfo {
    /// A public token: whether it still opens its widgets, and which.
    PublicToken(PublicTokenInfo),
    /// A recurrent token: the card payments it may repeat.
    RecurrentToken(RecurrentWire),
    /// A card in the project's vault.
    Card(VaultCardWire),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PublicTokenInfo {
    pub token: String,
    pub is_active: bool,
    pub created_at: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_at: Option<String>,
    /// The widgets the token opens, as `token` was asked for them (INN masked).
    pub widgets: Value,
}

/// A card in the vault, named by its `number_hash` in later requests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct VaultCardWire {
    pub number_hash: String,
    pub brand: String,
    pub last4: String,
    pub bin: String,
}

/// Answer of `tokenize`: a bank account in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenizeResponse {
    pub status: String,
    pub token: String,
    pub data: TokenizedAccount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenizedAccount {
    pub masked_account: String,
}

/// Answer of `report/account_balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccountBalanceResponse {
    pub status: String,
    pub account_number: String,
    pub account_currency: String,
    pub balance: AccountBalance,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccountBalance {
    /// Minor units (kopecks).
    pub current_balance: i64,
}

/// Answer of `report/account_statement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccountStatementResponse {
    pub status: String,
    pub method: StatementMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatementMethod {
    /// `account_statement`.
    pub name: String,
    pub account_statement: AccountStatement,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AccountStatement {
    pub date_from: String,
    pub date_to: String,
    pub account_number: String,
    pub total_turnover: Turnover,
    pub total_balance: StatementBalance,
    pub transactions: Vec<StatementTransaction>,
}

/// The spec spells the outgoing side `debet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Turnover {
    pub debet: i64,
    pub credit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatementBalance {
    pub opening: i64,
    pub closing: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatementTransaction {
    pub transaction_id: String,
    pub session_id: Option<String>,
    /// `credit` or `debet`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Minor units, never negative: `type` gives the side.
    pub amount: i64,
    pub currency: String,
    pub payment_date: String,
    pub purpose: String,
}

/// Answer of `npd/check` and `npd/taxpayer/check_personal_info`: the
/// request to the tax service, answered later by `npd/request/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NpdRequestResponse {
    pub status: String,
    pub request_id: String,
}

/// Answer of `npd/request/status`: `pending`, then `ok` with the fields of
/// the question asked, or `error` with the tax service's refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NpdStatusResponse {
    pub status: String,
    pub request_id: String,
    /// `npd/check`: whether the person is self-employed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_professional_income_taxpayer: Option<bool>,
    /// `npd/check`: whether the person has linked the partner's bank.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_linked: Option<bool>,
    /// `npd/taxpayer/check_personal_info`: the fields that differ from the register.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mismatches: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_info_is_told_apart_by_its_type() {
        let card = json!({"status": "ok", "info": {"type": "card", "number_hash": "h", "brand": "visa",
            "last4": "4242", "bin": "424242"}});
        let parsed: TokenInfoResponse = serde_json::from_value(card.clone()).unwrap();
        assert!(matches!(&parsed.info, TokenInfo::Card(c) if c.last4 == "4242"));
        assert_eq!(serde_json::to_value(&parsed).unwrap(), card, "rendered back byte for byte");
        let recurrent = json!({"status": "ok", "info": {"type": "recurrent_token", "token": "t",
            "created_at": "a", "finished_at": "b", "is_active": true}});
        let parsed: TokenInfoResponse = serde_json::from_value(recurrent).unwrap();
        assert!(matches!(parsed.info, TokenInfo::RecurrentToken(r) if r.is_active));
    }
}
