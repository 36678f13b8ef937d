//! The KYC (passport verification) API envelope, exactly as the bank's
//! "Response and errors" page describes it.
//!
//! Read the HTTP code first: 200 means look at `status` (`ok`, `pending`,
//! `error`); 422 is a malformed request; 500 is the server's fault. Absent fields
//! are omitted, never `null`.

use serde::{Deserialize, Serialize};

/// `data.description` of a check that is still being verified.
pub const DESCRIPTION_PENDING: &str = "Check in progress";
/// `data.description` of a check that passed.
pub const DESCRIPTION_VALID: &str = "valid";
/// Descriptions of `passport_validation_failure` (same code, two causes).
pub const DESCRIPTION_PASSPORT_INVALID: &str = "passport is invalid";
pub const DESCRIPTION_PASSPORT_NOT_FOUND: &str = "no information about the passport";

/// `status` of a KYC answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KycStatus {
    Ok,
    Pending,
    Error,
}

/// Every error a KYC endpoint answers with. One table ([`KycErrorCode::http_status`])
/// maps each to its HTTP status, so no handler picks a status by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KycErrorCode {
    RequestHeaderValidationError,
    RequestBodyValidationError,
    /// Body over the size limit: same wire code as a bad body, but HTTP 413.
    RequestBodyTooLarge,
    /// Too many or too long headers (ours): a header error, HTTP 431.
    RequestHeadersTooLarge,
    /// A request target past the limit (ours): a header error, HTTP 414.
    UriTooLong,
    InvalidSign,
    PassportValidationFailure,
    InnValidationFailure,
    AlreadyExists,
    RequestNotFound,
    PartnerProjectNotFound,
    /// Unknown path (ours: the bank documents none).
    NotFound,
    /// Known path, wrong HTTP method (ours).
    MethodNotAllowed,
    InternalError,
}

impl KycErrorCode {
    pub const ALL: [KycErrorCode; 14] = [
        Self::RequestHeaderValidationError,
        Self::RequestBodyValidationError,
        Self::RequestBodyTooLarge,
        Self::RequestHeadersTooLarge,
        Self::UriTooLong,
        Self::InvalidSign,
        Self::PassportValidationFailure,
        Self::InnValidationFailure,
        Self::AlreadyExists,
        Self::RequestNotFound,
        Self::PartnerProjectNotFound,
        Self::NotFound,
        Self::MethodNotAllowed,
        Self::InternalError,
    ];

    /// The `error.code` string on the wire.
    pub fn code(self) -> &'static str {
        match self {
            Self::RequestHeaderValidationError | Self::RequestHeadersTooLarge | Self::UriTooLong => {
                "request_header_validation_error"
            }
            Self::RequestBodyValidationError | Self::RequestBodyTooLarge => "request_body_validation_error",
            Self::InvalidSign => "invalid_sign",
            Self::PassportValidationFailure => "passport_validation_failure",
            Self::InnValidationFailure => "inn_validation_failure",
            Self::AlreadyExists => "already_exists",
            Self::RequestNotFound => "request_not_found",
            Self::PartnerProjectNotFound => "partner_project_not_found",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InternalError => "internal_error",
        }
    }

    /// The default `error.description`. The 422 codes repeat the code, as the
    /// seed page says the code string is found in `error.description`.
    pub fn default_description(self) -> &'static str {
        match self {
            Self::RequestHeaderValidationError => "request_header_validation_error",
            Self::RequestBodyValidationError | Self::RequestBodyTooLarge => "request_body_validation_error",
            Self::RequestHeadersTooLarge => "Too many or too long request headers",
            Self::UriTooLong => "The request's path and query are too long",
            Self::InvalidSign => "Signature verification failure",
            Self::PassportValidationFailure | Self::InnValidationFailure => "Passport, inn validation failure",
            Self::AlreadyExists => "Request with the same data already exists",
            Self::RequestNotFound => "Request with given id not found",
            Self::PartnerProjectNotFound => "partner project not found",
            Self::NotFound => "Unknown path",
            Self::MethodNotAllowed => "Method not allowed for this path",
            Self::InternalError => "Internal error. Please send the request again later.",
        }
    }

    /// HTTP status for the code: the single table every KYC answer goes through.
    pub fn http_status(self) -> u16 {
        match self {
            Self::RequestHeaderValidationError | Self::RequestBodyValidationError => 422,
            Self::RequestBodyTooLarge => 413,
            Self::RequestHeadersTooLarge => 431,
            Self::UriTooLong => 414,
            Self::InvalidSign
            | Self::PassportValidationFailure
            | Self::InnValidationFailure
            | Self::AlreadyExists
            | Self::RequestNotFound
            | Self::PartnerProjectNotFound => 200,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::InternalError => 500,
        }
    }
}

/// One offending field of a 422, so a developer sees every mistake at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldDetail {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KycError {
    pub code: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldDetail>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KycData {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The whole KYC response body. Field order matches the bank's examples:
/// `status`, `error`, `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KycResponse {
    pub status: KycStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<KycError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<KycData>,
}

impl KycResponse {
    pub fn pending(id: impl Into<String>) -> Self {
        Self::with_data(KycStatus::Pending, id, DESCRIPTION_PENDING)
    }

    pub fn valid(id: impl Into<String>) -> Self {
        Self::with_data(KycStatus::Ok, id, DESCRIPTION_VALID)
    }

    fn with_data(status: KycStatus, id: impl Into<String>, description: &str) -> Self {
        Self { status, error: None, data: Some(KycData { id: id.into(), description: Some(description.to_string()) }) }
    }

    /// An error answer with the code's default description.
    pub fn error(code: KycErrorCode) -> Self {
        Self::error_described(code, code.default_description())
    }

    pub fn error_described(code: KycErrorCode, description: &str) -> Self {
        Self {
            status: KycStatus::Error,
            error: Some(KycError {
                code: code.code().to_string(),
                description: description.to_string(),
                details: Vec::new(),
            }),
            data: None,
        }
    }

    /// A 422/413 answer naming every offending field.
    pub fn invalid(code: KycErrorCode, details: Vec<FieldDetail>) -> Self {
        let mut response = Self::error(code);
        if let Some(error) = response.error.as_mut() {
            error.details = details;
        }
        response
    }

    /// Adds `data.id` (an error about a known check: `already_exists`, a failed verification).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.data = Some(KycData { id: id.into(), description: None });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_the_bank_examples() {
        let ok = serde_json::to_string(&KycResponse::valid("7")).unwrap();
        assert_eq!(ok, r#"{"status":"ok","data":{"id":"7","description":"valid"}}"#);
        let dup = KycResponse::error(KycErrorCode::AlreadyExists).with_id("7");
        assert_eq!(
            serde_json::to_string(&dup).unwrap(),
            r#"{"status":"error","error":{"code":"already_exists","description":"Request with the same data already exists"},"data":{"id":"7"}}"#
        );
        let header = KycResponse::error(KycErrorCode::RequestHeaderValidationError);
        assert_eq!(
            serde_json::to_string(&header).unwrap(),
            r#"{"status":"error","error":{"code":"request_header_validation_error","description":"request_header_validation_error"}}"#
        );
    }

    #[test]
    fn status_table_is_total_and_as_documented() {
        for code in KycErrorCode::ALL {
            let status = code.http_status();
            assert!([200, 404, 405, 413, 414, 422, 431, 500].contains(&status), "{code:?}");
        }
        assert_eq!(KycErrorCode::RequestHeaderValidationError.http_status(), 422);
        assert_eq!(KycErrorCode::PartnerProjectNotFound.http_status(), 200);
        assert_eq!(KycErrorCode::InternalError.http_status(), 500);
        // The edge's head limits: a header error, with HTTP's own statuses.
        assert_eq!(KycErrorCode::UriTooLong.http_status(), 414);
        assert_eq!(KycErrorCode::RequestHeadersTooLarge.code(), "request_header_validation_error");
    }
}
