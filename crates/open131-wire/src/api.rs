//! The main API (sessions, payouts, wallets, webhooks): error codes with their
//! one HTTP-status table, the envelope, and the wire shapes of sessions.
//!
//! v1 and v2 differ only in names: `payments`/`payout_list` for the list of
//! payouts and `payment_method`/`payout_details` for a payout's method. The
//! shapes carry both as options and the server fills the one of its version.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::kyc::FieldDetail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiErrorCode {
    IdentificationError,
    AuthenticationError,
    AuthorizationError,
    InvalidRequest,
    /// Body over the size limit (`invalid_request`, HTTP 413).
    RequestTooLarge,
    /// Too many or too long headers (`invalid_request`, HTTP 431).
    HeadersTooLarge,
    /// A request target past the limit (`invalid_request`, HTTP 414).
    UriTooLong,
    SessionWrongState,
    IdempotencyKeyAlreadyExists,
    /// A refund over what is left of the captured amount.
    RefundAmountTooLarge,
    /// `fiscalization`: the person is not self-employed (or unknown).
    TaxpayerUnknown,
    /// `fiscalization`: the self-employed person is not linked to the bank.
    TaxpayerNotBound,
    /// `token` for the linking widget: the person is linked to the bank already.
    TaxpayerAlreadyBound,
    /// `fiscalization`: the receipt would pass the yearly income limit.
    TaxpayerIncomeExceedsAmountLimit,
    /// `fiscalization`: the self-employed service failed.
    NpdServiceInternalError,
    /// Unknown method path (ours).
    NotFound,
    MethodNotAllowed,
    InternalError,
}

impl ApiErrorCode {
    pub const ALL: [ApiErrorCode; 18] = [
        Self::IdentificationError,
        Self::AuthenticationError,
        Self::AuthorizationError,
        Self::InvalidRequest,
        Self::RequestTooLarge,
        Self::HeadersTooLarge,
        Self::UriTooLong,
        Self::SessionWrongState,
        Self::IdempotencyKeyAlreadyExists,
        Self::RefundAmountTooLarge,
        Self::TaxpayerUnknown,
        Self::TaxpayerNotBound,
        Self::TaxpayerAlreadyBound,
        Self::TaxpayerIncomeExceedsAmountLimit,
        Self::NpdServiceInternalError,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::InternalError,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::IdentificationError => "identification_error",
            Self::AuthenticationError => "authentication_error",
            Self::AuthorizationError => "authorization_error",
            Self::InvalidRequest | Self::RequestTooLarge | Self::HeadersTooLarge | Self::UriTooLong => {
                "invalid_request"
            }
            Self::SessionWrongState => "session_wrong_state",
            Self::IdempotencyKeyAlreadyExists => "idempotency_key_already_exists",
            Self::RefundAmountTooLarge => "refund_amount_too_large",
            Self::TaxpayerUnknown => "taxpayer_unknown",
            Self::TaxpayerNotBound => "taxpayer_not_bound",
            Self::TaxpayerAlreadyBound => "taxpayer_already_bound",
            Self::TaxpayerIncomeExceedsAmountLimit => "taxpayer_income_exceeds_amount_limit",
            Self::NpdServiceInternalError => "npd_service_internal_error",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InternalError => "internal_error",
        }
    }

    pub fn default_description(self) -> &'static str {
        match self {
            Self::IdentificationError => "Partner identification error",
            Self::AuthenticationError => "Authentication error: check the X-PARTNER-SIGN signature",
            Self::AuthorizationError => "Not enough privileges for the operation",
            Self::InvalidRequest => "Invalid request",
            Self::RequestTooLarge => "Request body is too large",
            Self::HeadersTooLarge => "Too many or too long request headers",
            Self::UriTooLong => "The request's path and query are too long",
            Self::SessionWrongState => "Operation is not allowed in the current session status",
            Self::IdempotencyKeyAlreadyExists => {
                "Request with this idempotency key is already in progress or processed"
            }
            Self::RefundAmountTooLarge => "The refund is larger than what is left of the captured amount",
            Self::TaxpayerUnknown => "The person with this INN is not self-employed",
            Self::TaxpayerNotBound => "The self-employed person is not linked to Bank 131",
            Self::TaxpayerAlreadyBound => "The self-employed person is already linked to Bank 131",
            Self::TaxpayerIncomeExceedsAmountLimit => {
                "The receipt would take the person's income this year past the self-employed limit"
            }
            Self::NpdServiceInternalError => "The self-employed (NPD) service failed: try again later",
            Self::NotFound => "Unknown method",
            Self::MethodNotAllowed => "HTTP method not allowed for this path",
            Self::InternalError => "Internal error. Please send the request again later.",
        }
    }

    /// The one table from error code to HTTP status.
    pub fn http_status(self) -> u16 {
        match self {
            Self::IdentificationError | Self::AuthenticationError => 401,
            Self::AuthorizationError => 403,
            Self::InvalidRequest
            | Self::SessionWrongState
            | Self::IdempotencyKeyAlreadyExists
            | Self::RefundAmountTooLarge
            | Self::TaxpayerUnknown
            | Self::TaxpayerNotBound
            | Self::TaxpayerAlreadyBound
            | Self::TaxpayerIncomeExceedsAmountLimit => 400,
            Self::NpdServiceInternalError => 503,
            Self::RequestTooLarge => 413,
            Self::HeadersTooLarge => 431,
            Self::UriTooLong => 414,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::InternalError => 500,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiError {
    pub code: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ErrorEnvelope {
    pub status: String,
    pub error: ApiError,
}

impl ErrorEnvelope {
    pub fn new(code: ApiErrorCode, description: Option<&str>, details: Vec<FieldDetail>) -> Self {
        Self {
            status: "error".into(),
            error: ApiError {
                code: code.code().into(),
                description: description.unwrap_or(code.default_description()).into(),
                details,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Amount {
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RefundWire {
    pub id: String,
    pub status: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub amount_details: Amount,
    /// Always sent: the SDK's `Refund::getAmounts()` is not nullable.
    pub amounts: Amounts,
    pub is_chargeback: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// A split payment's refund: what it took back from each contractor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_split_info: Option<Value>,
}

/// `amounts` of a refund or a payment: gross and net, and on a captured
/// payment of a project with a fee rate the bank's fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Amounts {
    pub gross: Amount,
    pub net: Amount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee: Option<Fee>,
}

/// `amounts.fee` (the SDK's `Fee`: `merchant_fee`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Fee {
    pub merchant_fee: Amount,
}

/// An acquiring payment (`acquiring_payments` in v1, `payment_list` in v2).
/// The SDK's non-nullable getters decide what is always sent: id, status,
/// created_at, customer, payment_details, amount_details, amounts, refunds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AcquiringPaymentWire {
    pub id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub customer: Value,
    pub payment_details: Value,
    pub amount_details: Amount,
    pub amounts: Amounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_options: Option<Value>,
    #[serde(default)]
    pub refunds: Vec<RefundWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_interaction: Option<CustomerInteraction>,
    /// The recurrent token this payment issued (it asked to save the card).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent: Option<RecurrentWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// A split payment's parts, their amounts once captured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revenue_split_info: Option<Value>,
    /// A subscription's first payment or one of its charges (the SDK's `Subscription`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
}

/// A recurrent token (the SDK's `RecurrentDetails`: all four always sent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecurrentWire {
    pub token: String,
    pub created_at: String,
    pub finished_at: String,
    pub is_active: bool,
}

/// Answer of `recurrent/status` and `recurrent/disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RecurrentResponse {
    pub status: String,
    pub recurrent: RecurrentWire,
}

/// What the customer must do (`customer_interaction`): a redirect to 3-D
/// Secure (`type: redirect`), or an FPS QR code to pay (`type: inform`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CustomerInteraction {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inform: Option<Inform>,
}

/// `customer_interaction.inform`: `type: qr` and the code (the SDK's newer
/// `Inform` reads `type`; older ones read `qr` with both fields required).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Inform {
    #[serde(rename = "type")]
    pub kind: String,
    pub qr: Qr,
}

/// An FPS QR code: the payment link and its image (a PNG, base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Qr {
    pub content: String,
    pub img: String,
}

/// `customer_interaction.redirect`: the SDK needs url, base_url and method.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Redirect {
    pub url: String,
    pub base_url: String,
    pub method: String,
    #[serde(default)]
    pub qs: serde_json::Map<String, Value>,
    #[serde(default)]
    pub params: serde_json::Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PayoutWire {
    pub id: String,
    pub status: String,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Value>,
    /// v1 name of the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<Value>,
    /// v2 name of the method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_details: Option<Value>,
    /// Absent on an FPS recipient verification, which moves no money.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_details: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// A payout to a self-employed person: the details sent, and the receipt once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fiscalization_details: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// Always sent, empty or not: the SDK's `Payout::getRefunds()` is not nullable.
    #[serde(default)]
    pub refunds: Vec<RefundWire>,
}

impl PayoutWire {
    /// The method under whichever name it came.
    pub fn method(&self) -> Option<&Value> {
        self.payout_details.as_ref().or(self.payment_method.as_ref())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionWire {
    pub id: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_action: Option<String>,
    /// v1 name of the payout list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments: Option<Vec<PayoutWire>>,
    /// v2 name of the payout list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout_list: Option<Vec<PayoutWire>>,
    /// v1 name of the acquiring payment list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquiring_payments: Option<Vec<AcquiringPaymentWire>>,
    /// v2 name of the acquiring payment list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_list: Option<Vec<AcquiringPaymentWire>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    /// The `X-PARTNER-SUBMERCHANT` the session was made for (open131's name: the docs publish none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submerchant: Option<String>,
}

impl SessionWire {
    /// The payouts under whichever name they came.
    pub fn payouts(&self) -> &[PayoutWire] {
        self.payout_list.as_deref().or(self.payments.as_deref()).unwrap_or(&[])
    }

    /// The acquiring payments under whichever name they came (the SDK's order).
    pub fn acquiring(&self) -> &[AcquiringPaymentWire] {
        self.payment_list.as_deref().or(self.acquiring_payments.as_deref()).unwrap_or(&[])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionResponse {
    pub status: String,
    pub session: SessionWire,
}

/// Body of a webhook: `{"type": …, "session": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WebhookBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub session: SessionWire,
    /// `ready_to_confirm` of a nominal, settlement or converted payout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirm_information: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WalletWire {
    pub id: String,
    pub amount_details: Amount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct WalletBalanceResponse {
    pub status: String,
    pub wallets: Vec<WalletWire>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BankWire {
    pub id: String,
    pub eng_name: String,
    pub ru_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BanksResponse {
    pub status: String,
    pub banks: Vec<BankWire>,
}

/// RFC 3339, UTC, microseconds: `2020-05-29T07:01:37.499907Z`.
///
/// Written digit by digit (a year outside 0..=9999 through `format!`):
/// every answer carries several, and `format!` showed in the profile of
/// `session/create` (issue 12).
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let Some(year) = u32::try_from(t.year()).ok().filter(|y| *y <= 9999) else {
        return format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.microsecond()
        );
    };
    let mut out = String::with_capacity(TIMESTAMP_BYTES);
    let parts: [(u32, u32, char); 7] = [
        (year, 4, '-'),
        (u32::from(u8::from(t.month())), 2, '-'),
        (u32::from(t.day()), 2, 'T'),
        (u32::from(t.hour()), 2, ':'),
        (u32::from(t.minute()), 2, ':'),
        (u32::from(t.second()), 2, '.'),
        (t.microsecond(), 6, 'Z'),
    ];
    for (value, width, then) in parts {
        push_digits(&mut out, value, width);
        out.push(then);
    }
    out
}

/// Length of a [`timestamp`] of a year within 0..=9999.
const TIMESTAMP_BYTES: usize = "2020-05-29T07:01:37.499907Z".len();

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        let digit = value / 10_u32.pow(place) % 10;
        out.push(char::from_digit(digit, 10).unwrap_or('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_microseconds_and_z() {
        let t = time::macros::datetime!(2020-05-29 07:01:37.499907 UTC);
        assert_eq!(timestamp(t), "2020-05-29T07:01:37.499907Z");
        let t = time::macros::datetime!(2020-05-29 10:01:37 +03:00);
        assert_eq!(timestamp(t), "2020-05-29T07:01:37.000000Z");
        let t = time::macros::datetime!(0001-01-01 00:00:00.000001 UTC);
        assert_eq!(timestamp(t), "0001-01-01T00:00:00.000001Z");
        let t = time::macros::datetime!(9999-12-31 23:59:59.999999 UTC);
        assert_eq!(timestamp(t), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn error_table() {
        for code in ApiErrorCode::ALL {
            assert!([400, 401, 403, 404, 405, 413, 414, 431, 500, 503].contains(&code.http_status()), "{code:?}");
        }
        let e = serde_json::to_string(&ErrorEnvelope::new(ApiErrorCode::SessionWrongState, None, vec![])).unwrap();
        assert_eq!(
            e,
            r#"{"status":"error","error":{"code":"session_wrong_state","description":"Operation is not allowed in the current session status"}}"#
        );
    }
}
