//! Pure rules of open131: identifiers parsed once at the edge, lifecycles as
//! transition functions, and the KYC decisions. Nothing here does IO or reads
//! the clock: `now`/`today` is always a parameter.
#![forbid(unsafe_code)]

pub mod allowlist;
pub mod books;
pub mod dates;
pub mod fields;
pub mod fiscal;
pub mod fps;
pub mod fps_verification;
pub mod fx;
pub mod ident;
pub mod kyc;
pub mod kyc_v2;
pub mod ledger;
pub mod lifecycle;
pub mod multi;
pub mod npd;
pub mod npd_link;
pub mod payment;
pub mod payment_flow;
pub mod payout;
pub mod payout_flow;
pub mod payout_method;
pub mod personal;
pub mod receipt;
pub mod refund_flow;
pub mod reports;
pub mod session;
pub mod settings;
pub mod split;
pub mod subscription;
pub mod webhook_faults;
pub mod widget;

/// One offending field of a request, named by its JSON path (`payload.inn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
