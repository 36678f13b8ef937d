//! Turning KYC answers into HTTP responses. The HTTP status always comes from
//! the one table in [`open131_wire::kyc::KycErrorCode::http_status`].

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use open131_wire::kyc::{FieldDetail, KycErrorCode, KycResponse};

/// A KYC answer and the error code (if any) that decides its HTTP status.
#[derive(Debug)]
pub struct KycReply {
    pub code: Option<KycErrorCode>,
    /// Boxed: replies travel in `Err` variants, which should stay small.
    pub body: Box<KycResponse>,
}

impl KycReply {
    pub fn ok(body: KycResponse) -> Self {
        Self { code: None, body: Box::new(body) }
    }

    pub fn error(code: KycErrorCode) -> Self {
        Self { code: Some(code), body: Box::new(KycResponse::error(code)) }
    }

    pub fn error_with(code: KycErrorCode, body: KycResponse) -> Self {
        Self { code: Some(code), body: Box::new(body) }
    }

    pub fn invalid(code: KycErrorCode, details: Vec<FieldDetail>) -> Self {
        Self { code: Some(code), body: Box::new(KycResponse::invalid(code, details)) }
    }

    /// A server-side failure: the cause goes to the log, the client learns nothing of it.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::error(KycErrorCode::InternalError)
    }
}

impl IntoResponse for KycReply {
    fn into_response(self) -> Response {
        let status = self.code.map_or(200, KycErrorCode::http_status);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match serde_json::to_vec(&self.body) {
            Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"status":"error","error":{"code":"internal_error","description":"internal error"}}"#,
            )
                .into_response(),
        }
    }
}
