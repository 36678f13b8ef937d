//! The bank's HTTP header names, defined once for the server, the SDK and the
//! load generators. HTTP header names are case-insensitive; these are the
//! lower-case forms `http::HeaderName` uses.

/// The partner project a request is made for (every surface).
pub const PROJECT: &str = "x-partner-project";
/// RSA signature (base64) over a main-API body or a webhook body, byte for byte.
pub const SIGN: &str = "x-partner-sign";
/// A main-API request's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "x-partner-idempotency-key";
/// The partner's sub-merchant a request is made for (optional; the project lists the allowed ones).
pub const SUBMERCHANT: &str = "x-partner-submerchant";
/// The id of one request, given by the caller or made by the server, returned
/// in every response and carried by every log line of the request [INF].
pub const REQUEST_ID: &str = "x-request-id";
