//! The main API: `POST /api/v1/<method>` and `/api/v2/<method>`, signed over
//! the raw body bytes (`X-PARTNER-SIGN`).
//!
//! Order: known method (404, [`ApiCall`]) → HTTP method (405) →
//! `X-PARTNER-PROJECT` (401 identification_error, [`SignedRequest`]) → body
//! size (413) → project and its allowlist (401) → signature over the bytes as
//! received (401 authentication_error) → method allowed for the project (403)
//! → idempotency key → body (400 invalid_request naming each field) → the
//! method ([`session`], [`wallet`]), whose state errors are 400
//! session_wrong_state. Idempotency keys are recorded in the same transaction
//! as the change they guard.
//!
//! Invariant: no method handler runs before the signature over the exact bytes
//! received has verified against one of the project's keys.

mod account;
pub mod engine;
mod multi;
pub mod npd;
pub mod payment;
pub mod processor;
pub mod render;
mod session;
pub mod subscription;
mod wallet;
mod widget;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use open131_domain::books::Shape;
use open131_domain::fields::{refuse_unknown, Refused};
use open131_domain::ledger::Book;
use open131_domain::session::ApiVersion;
use open131_domain::settings::{is_set_name, NAME_MAX_BYTES};
use open131_domain::subscription::SubscriptionEvent;
use open131_domain::FieldError;
use open131_wire::api::{ApiErrorCode, ErrorEnvelope};
use open131_wire::headers;
use open131_wire::kyc::{FieldDetail, KycErrorCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::{App, Surface};
use crate::edge::{self, BodyError};
use crate::projects::Project;
use crate::reply::KycReply;
use session::Change;

/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_MAX_BYTES: usize = 128;
/// Idempotency keys the bank's own writes use (a subscription's charges):
/// a partner's key may not begin with it.
pub const BANK_KEY_PREFIX: &str = "open131:";

/// The methods served. The payout methods come per book (the account paid
/// from) and shape (payout methods, or the card methods of `session/multi/…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMethod {
    /// `session/create`, `session/create/nominal`, `session/multi/create/rko`, …
    Create(Book, Shape),
    /// `session/init/payout`, `session/init/payout/nominal`, `session/multi/init/payment/rko`, …
    Init(Book, Shape),
    /// `session/start/payout`, `session/start/payout/rko`, `session/multi/start/payment/nominal`, …
    Start(Book, Shape),
    SessionConfirm,
    SessionCancel,
    SessionStatus,
    /// `session/init/payment`: a card payment.
    PaymentInit,
    /// `session/init/payment/sync`: a card payment, prepared before the answer.
    PaymentInitSync,
    /// `session/start/payment`: a card payment for a created session.
    PaymentStart,
    /// `session/multi/init`: a payment, then payouts, in one session.
    MultiInit,
    SessionCapture,
    SessionRefund,
    SessionChargeback,
    RecurrentStatus,
    RecurrentDisable,
    /// `sberpay/push`: a push or SMS to a SberPay payment's customer.
    SberPayPush,
    SubscriptionCancel,
    SubscriptionRestore,
    /// `token`: a public token for the widgets.
    Token,
    TokenInfo,
    /// `tokenize/elements`: a card into the project's vault.
    TokenizeElements,
    /// `tokenize`: a bank account into the project's vault.
    Tokenize,
    WalletBalance,
    FpsBanks,
    FpsCustomerVerification,
    AccountBalance,
    AccountStatement,
    NpdCheck,
    NpdPersonalInfo,
    NpdRequestStatus,
    /// `session/init/payout/fiscalization`: a payout with its receipt's details required.
    FiscalInit,
    /// `session/start/payout/fiscalization`.
    FiscalStart,
    /// `fiscalization`: the receipt of an earlier payout.
    Fiscalize,
    /// `fiscalization/cancel` `[INF]`: a registered receipt cancelled.
    FiscalCancel,
}

/// The spec's name of `report/account_balance`.
const ACCOUNT_BALANCE_ALIAS: &str = "account_balance";

/// The official SDK's path of `session/multi/init` (its `MultiSessionApi`).
const MULTI_INIT_ALIAS: &str = "session/init/session";

/// The payout methods' (book, shape) pairs.
const PAYOUT_KINDS: [(Book, Shape); 5] = [
    (Book::Main, Shape::Payout),
    (Book::Nominal, Shape::Payout),
    (Book::Nominal, Shape::MultiCard),
    (Book::Settlement, Shape::Payout),
    (Book::Settlement, Shape::MultiCard),
];

impl ApiMethod {
    pub const OTHERS: [ApiMethod; 31] = [
        Self::SessionConfirm,
        Self::SessionCancel,
        Self::SessionStatus,
        Self::PaymentInit,
        Self::PaymentInitSync,
        Self::PaymentStart,
        Self::MultiInit,
        Self::SessionCapture,
        Self::SessionRefund,
        Self::SessionChargeback,
        Self::RecurrentStatus,
        Self::RecurrentDisable,
        Self::SberPayPush,
        Self::SubscriptionCancel,
        Self::SubscriptionRestore,
        Self::Token,
        Self::TokenInfo,
        Self::TokenizeElements,
        Self::Tokenize,
        Self::WalletBalance,
        Self::FpsBanks,
        Self::FpsCustomerVerification,
        Self::AccountBalance,
        Self::AccountStatement,
        Self::NpdCheck,
        Self::NpdPersonalInfo,
        Self::NpdRequestStatus,
        Self::FiscalInit,
        Self::FiscalStart,
        Self::Fiscalize,
        Self::FiscalCancel,
    ];

    /// Every method served.
    pub fn all() -> impl Iterator<Item = ApiMethod> {
        PAYOUT_KINDS
            .into_iter()
            .flat_map(|(b, s)| [Self::Create(b, s), Self::Init(b, s), Self::Start(b, s)])
            .chain(Self::OTHERS)
    }

    /// The path after `/api/v1/`, which is also the name in a project's method list.
    pub fn path(self) -> &'static str {
        use {Book::*, Shape::*};
        match self {
            Self::Create(Main, _) => "session/create",
            Self::Init(Main, _) => "session/init/payout",
            Self::Start(Main, _) => "session/start/payout",
            Self::Create(Nominal, Payout) => "session/create/nominal",
            Self::Init(Nominal, Payout) => "session/init/payout/nominal",
            Self::Start(Nominal, Payout) => "session/start/payout/nominal",
            Self::Create(Nominal, MultiCard) => "session/multi/create/nominal",
            Self::Init(Nominal, MultiCard) => "session/multi/init/payment/nominal",
            Self::Start(Nominal, MultiCard) => "session/multi/start/payment/nominal",
            Self::Create(Settlement, Payout) => "session/create/rko",
            Self::Init(Settlement, Payout) => "session/init/payout/rko",
            Self::Start(Settlement, Payout) => "session/start/payout/rko",
            Self::Create(Settlement, MultiCard) => "session/multi/create/rko",
            Self::Init(Settlement, MultiCard) => "session/multi/init/payment/rko",
            Self::Start(Settlement, MultiCard) => "session/multi/start/payment/rko",
            Self::SessionConfirm => "session/confirm",
            Self::SessionCancel => "session/cancel",
            Self::SessionStatus => "session/status",
            Self::PaymentInit => "session/init/payment",
            Self::PaymentInitSync => "session/init/payment/sync",
            Self::PaymentStart => "session/start/payment",
            Self::MultiInit => "session/multi/init",
            Self::SessionCapture => "session/capture",
            Self::SessionRefund => "session/refund",
            Self::SessionChargeback => "session/chargeback",
            Self::RecurrentStatus => "recurrent/status",
            Self::RecurrentDisable => "recurrent/disable",
            Self::SberPayPush => "sberpay/push",
            Self::SubscriptionCancel => "subscription/cancel",
            Self::SubscriptionRestore => "subscription/restore",
            Self::Token => "token",
            Self::TokenInfo => "token/info",
            Self::TokenizeElements => "tokenize/elements",
            Self::Tokenize => "tokenize",
            Self::WalletBalance => "wallet/balance",
            Self::FpsBanks => "fps/banks",
            Self::FpsCustomerVerification => "fps/customer_verification",
            Self::AccountBalance => "report/account_balance",
            Self::AccountStatement => "report/account_statement",
            Self::NpdCheck => "npd/check",
            Self::NpdPersonalInfo => "npd/taxpayer/check_personal_info",
            Self::NpdRequestStatus => "npd/request/status",
            Self::FiscalInit => "session/init/payout/fiscalization",
            Self::FiscalStart => "session/start/payout/fiscalization",
            Self::Fiscalize => "fiscalization",
            Self::FiscalCancel => "fiscalization/cancel",
        }
    }

    pub fn parse(path: &str) -> Option<Self> {
        // The spec's method list names the balance without `report/`; the docs' URL has it.
        if path == ACCOUNT_BALANCE_ALIAS {
            return Some(Self::AccountBalance);
        }
        if path == MULTI_INIT_ALIAS {
            return Some(Self::MultiInit);
        }
        Self::all().find(|m| m.path() == path)
    }

    /// Whether it records idempotency keys: the methods that change a session
    /// (the key is written in the change's transaction). Disabling a recurrent
    /// token, cancelling or restoring a subscription change no session and are
    /// idempotent by nature; a push changes nothing; issuing a public token
    /// (or asking the tax service) twice gives two tokens (two requests),
    /// harmlessly; a receipt registered (or cancelled) twice is refused the second time.
    pub fn mutating(self) -> bool {
        !matches!(
            self,
            Self::SessionStatus
                | Self::WalletBalance
                | Self::FpsBanks
                | Self::AccountBalance
                | Self::AccountStatement
                | Self::RecurrentStatus
                | Self::RecurrentDisable
                | Self::SberPayPush
                | Self::SubscriptionCancel
                | Self::SubscriptionRestore
                | Self::Token
                | Self::TokenInfo
                | Self::TokenizeElements
                | Self::Tokenize
                | Self::NpdCheck
                | Self::NpdPersonalInfo
                | Self::NpdRequestStatus
                | Self::Fiscalize
                | Self::FiscalCancel
        )
    }

    /// Every method is a POST; the bank list may also be fetched with GET,
    /// and some pages of the docs show the statement with GET and a body.
    fn allows(self, method: &Method) -> bool {
        method == Method::POST || (matches!(self, Self::FpsBanks | Self::AccountStatement) && method == Method::GET)
    }
}

/// Families of bank methods not served yet (README, method table), by
/// prefix and by suffix: answered 404 like an unknown path, but saying so.
const NOT_SERVED_PREFIXES: [&str; 5] = ["npd/", "session/multi/", "recurrent/", "subscription/", "token"];
const NOT_SERVED_SUFFIXES: [&str; 4] = ["/nominal", "/rko", "/payment", "/fiscalization"];

/// 404 for a path the server does not serve, naming a bank method it will.
fn not_served(path: &str) -> Response {
    let known = NOT_SERVED_PREFIXES.iter().any(|p| path.starts_with(p))
        || NOT_SERVED_SUFFIXES.iter().any(|s| path.ends_with(s));
    if !known {
        return MainApi::not_found();
    }
    let why = format!("{path} is a Bank 131 method that open131 does not serve yet (see the README's method table)");
    ApiReply::error(ApiErrorCode::NotFound, Some(&why), Vec::new()).into_response()
}

/// A main-API answer: a JSON body with its HTTP status.
pub struct ApiReply {
    status: u16,
    body: Vec<u8>,
}

impl ApiReply {
    fn ok(body: &impl Serialize) -> Self {
        match serde_json::to_vec(body) {
            Ok(body) => Self { status: 200, body },
            Err(e) => Self::internal(&e),
        }
    }

    pub fn error(code: ApiErrorCode, description: Option<&str>, details: Vec<FieldDetail>) -> Self {
        let envelope = ErrorEnvelope::new(code, description, details);
        Self { status: code.http_status(), body: serde_json::to_vec(&envelope).unwrap_or_default() }
    }

    fn code(code: ApiErrorCode) -> Self {
        Self::error(code, None, Vec::new())
    }

    fn invalid(details: Vec<FieldDetail>) -> Self {
        Self::error(ApiErrorCode::InvalidRequest, None, details)
    }

    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::code(ApiErrorCode::InternalError)
    }

    fn with_log(self, cause: &dyn std::fmt::Display) -> Self {
        tracing::debug!(cause = %cause, "request refused");
        self
    }
}

impl IntoResponse for ApiReply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, "application/json")], self.body).into_response()
    }
}

/// The main API's own rendering of the errors no handler produced.
pub struct MainApi;

impl Surface for MainApi {
    fn not_found() -> Response {
        ApiReply::code(ApiErrorCode::NotFound).into_response()
    }
    fn method_not_allowed() -> Response {
        ApiReply::code(ApiErrorCode::MethodNotAllowed).into_response()
    }
    fn internal() -> Response {
        ApiReply::code(ApiErrorCode::InternalError).into_response()
    }
    fn too_large(part: crate::edge::TooLarge) -> Response {
        match part {
            crate::edge::TooLarge::Uri => ApiReply::code(ApiErrorCode::UriTooLong).into_response(),
            crate::edge::TooLarge::Headers => ApiReply::code(ApiErrorCode::HeadersTooLarge).into_response(),
        }
    }
}

/// The main API's routes (panic and timeout layers are added by the caller).
pub fn router() -> Router<App> {
    Router::new().route("/api/{version}/{*method}", axum::routing::any(handle))
}

fn detail(field: &str, message: impl Into<String>) -> FieldDetail {
    FieldDetail { field: field.to_string(), message: message.into() }
}

fn from_domain(errors: Vec<FieldError>) -> Vec<FieldDetail> {
    errors.into_iter().map(|e| FieldDetail { field: e.field, message: e.message }).collect()
}

/// A body whose every field is in `allowed`, else 400 naming the others
/// (`refused` gives the reason for known ones).
fn only_fields(body: &Map<String, Value>, allowed: &[&str], refused: &[Refused]) -> Result<(), ApiReply> {
    let errors = refuse_unknown(body, allowed, refused);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiReply::invalid(from_domain(errors)))
    }
}

/// Which method of which version a request calls: refused with 404 or 405
/// before anything about the caller is looked at.
pub struct ApiCall {
    pub version: ApiVersion,
    pub method: ApiMethod,
}

impl FromRequestParts<App> for ApiCall {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &App) -> Result<Self, Response> {
        // Refused before the caller proved to be the project: not kept in its request log.
        Self::parse(parts, state).await.map_err(crate::request_log::not_kept)
    }
}

impl ApiCall {
    async fn parse(parts: &mut Parts, state: &App) -> Result<Self, Response> {
        let path = Path::<(String, String)>::from_request_parts(parts, state).await;
        // An unknown version is not a main-API path at all: the KYC surface's 404.
        let Some((version, path)) = path.ok().and_then(|Path((v, p))| Some((ApiVersion::parse(&v)?, p))) else {
            return Err(KycReply::error(KycErrorCode::NotFound).into_response());
        };
        let method = ApiMethod::parse(&path).ok_or_else(|| not_served(&path))?;
        if !method.allows(&parts.method) {
            return Err(MainApi::method_not_allowed());
        }
        Ok(Self { version, method })
    }
}

/// A request whose signature verified: its project, its exact bytes, and its
/// idempotency key header (still to be checked by the method).
pub struct SignedRequest {
    pub project: Arc<Project>,
    pub bytes: Bytes,
    idempotency_key: Option<Result<String, ()>>,
    /// `X-PARTNER-SUBMERCHANT`: absent, a well-formed name (checked against
    /// the project by the method), or present but not a name (`Err`).
    submerchant: Option<Result<String, ()>>,
}

impl FromRequest<App> for SignedRequest {
    type Rejection = ApiReply;

    async fn from_request(request: Request, app: &App) -> Result<Self, ApiReply> {
        let (parts, body) = request.into_parts();
        let identification = || ApiReply::code(ApiErrorCode::IdentificationError);
        let project_id = edge::project_id(&parts.headers).ok_or_else(identification)?.to_string();
        let bytes = edge::read_body(body, app.config.body_size_max_bytes).await.map_err(|e| match e {
            BodyError::TooLarge { limit_bytes } => ApiReply::error(
                ApiErrorCode::RequestTooLarge,
                None,
                vec![detail("body", format!("must be at most {limit_bytes} bytes"))],
            ),
            BodyError::Unreadable => ApiReply::invalid(vec![detail("body", "could not be read completely")]),
        })?;
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let peer = peer.ok_or_else(|| ApiReply::internal(&"no peer address on the connection"))?;
        let project = edge::admitted_project(app, &project_id, peer)
            .await
            .map_err(|e| ApiReply::internal(&e))?
            .ok_or_else(identification)?;
        let authentication = || ApiReply::code(ApiErrorCode::AuthenticationError);
        let signature = header_text(&parts.headers, headers::SIGN).filter(|s| !s.is_empty());
        let signature = signature.ok_or_else(authentication)?;
        // The signature covers the bytes exactly as received: never re-serialised JSON.
        if !app.projects.verify(&project, &bytes, &signature).await.map_err(|e| ApiReply::internal(&e))? {
            tracing::info!(project = %project.id, "request refused: signature does not verify");
            return Err(authentication());
        }
        let idempotency_key = parts.headers.get(headers::IDEMPOTENCY_KEY).map(|v| match v.to_str().map(str::trim) {
            Ok(k) if !k.is_empty() && k.len() <= IDEMPOTENCY_KEY_MAX_BYTES && !k.starts_with(BANK_KEY_PREFIX) => {
                Ok(k.to_string())
            }
            _ => Err(()),
        });
        let submerchant = parts.headers.get(headers::SUBMERCHANT).map(|v| match v.to_str().map(str::trim) {
            Ok(name) if is_set_name(name) => Ok(name.to_string()),
            _ => Err(()),
        });
        Ok(Self { project, bytes, idempotency_key, submerchant })
    }
}

fn header_text(map: &axum::http::HeaderMap, name: &str) -> Option<String> {
    map.get(name).and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string())
}

/// Entry point of `/api/{version}/{*method}`.
async fn handle(State(app): State<App>, call: ApiCall, signed: SignedRequest) -> Response {
    let (mutating, project) = (call.method.mutating(), signed.project.clone());
    match dispatch(&app, call, signed).await {
        Ok(reply) => {
            // A test stand's fault: the webhooks this change made reach the partner first.
            if mutating {
                crate::webhooks::before_response(&app, &project).await;
            }
            reply.into_response()
        }
        Err(reply) => reply.into_response(),
    }
}

async fn dispatch(app: &App, call: ApiCall, signed: SignedRequest) -> Result<ApiReply, ApiReply> {
    let ApiCall { version, method } = call;
    let project = &signed.project;
    // A method list may name the balance and the multi-session by either of their names.
    let listed = project.may_call(method.path())
        || (method == ApiMethod::AccountBalance && project.may_call(ACCOUNT_BALANCE_ALIAS))
        || (method == ApiMethod::MultiInit && project.may_call(MULTI_INIT_ALIAS));
    if !listed {
        return Err(ApiReply::code(ApiErrorCode::AuthorizationError));
    }
    // A sub-merchant the project has not registered is refused like a method it may not call.
    let submerchant = match signed.submerchant {
        None => None,
        Some(Err(())) => {
            let why = format!("must be 1 to {NAME_MAX_BYTES} visible ASCII characters without a comma");
            return Err(ApiReply::invalid(vec![detail(headers::SUBMERCHANT, why)]));
        }
        Some(Ok(name)) if !project.settings.submerchants.allows(&name) => {
            let why = format!("sub-merchant {name:?} is not registered for this project");
            return Err(ApiReply::error(ApiErrorCode::AuthorizationError, Some(&why), Vec::new()));
        }
        Some(Ok(name)) => Some(name),
    };
    let idempotency = match signed.idempotency_key {
        None => None,
        Some(Ok(key)) => method.mutating().then(|| (key, method.path().to_string())),
        Some(Err(())) => {
            return Err(ApiReply::invalid(vec![detail(
                headers::IDEMPOTENCY_KEY,
                format!(
                    "must be 1 to {IDEMPOTENCY_KEY_MAX_BYTES} visible ASCII characters, not beginning with \
                     {BANK_KEY_PREFIX} (the bank's own)"
                ),
            )]))
        }
    };
    if let Some((key, _)) = &idempotency {
        // A repeat answers the idempotency error even when it would also be in the
        // wrong state by now (a confirm repeated after it went through).
        if app.store.idempotency_key_used(&project.id, key).await.map_err(|e| ApiReply::internal(&e))? {
            return Err(ApiReply::code(ApiErrorCode::IdempotencyKeyAlreadyExists));
        }
    }
    let body = parse_body(&signed.bytes)?;
    let now = project.settings.clock_offset.apply(app.clock.now());
    let ctx = Ctx { app, project_id: &project.id, now, version, idempotency, submerchant };
    // A payout to a card or an account in the vault is read as the card or the account itself.
    let body = match method {
        ApiMethod::Create(..)
        | ApiMethod::Init(..)
        | ApiMethod::Start(..)
        | ApiMethod::FiscalInit
        | ApiMethod::FiscalStart => ctx.open_vault(body, false).await?,
        ApiMethod::MultiInit => ctx.open_vault(body, true).await?,
        _ => body,
    };
    if let ApiMethod::Create(book, shape) = method {
        return ctx.create(&body, book, shape).await;
    }
    // Boxed: a method through the session engine has a future of about 7 KiB,
    // and unboxed the largest would be every request's (axum moves each
    // handler's future into its own box); the creates' (`session/create` and
    // its nominal, settlement and card forms) is 0.5 KiB.
    Box::pin(handle_method(&ctx, method, &body)).await
}

/// The handler of every method. `dispatch` calls it for all but the
/// creates, whose arm stays here so that the match is whole.
async fn handle_method(ctx: &Ctx<'_>, method: ApiMethod, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
    match method {
        ApiMethod::Create(book, shape) => ctx.create(body, book, shape).await,
        ApiMethod::Init(book, shape) => ctx.init_payout(body, book, shape).await,
        ApiMethod::Start(book, shape) => ctx.start_payout(body, book, shape).await,
        ApiMethod::SessionConfirm => ctx.event(body, Change::Confirm).await,
        ApiMethod::SessionCancel => ctx.event(body, Change::Cancel).await,
        ApiMethod::PaymentInit => ctx.init_payment(body, false).await,
        ApiMethod::PaymentInitSync => ctx.init_payment(body, true).await,
        ApiMethod::MultiInit => ctx.init_multi(body).await,
        ApiMethod::PaymentStart => ctx.start_payment(body).await,
        ApiMethod::SessionCapture => ctx.capture(body).await,
        ApiMethod::SessionRefund => ctx.refund(body, false).await,
        ApiMethod::SessionChargeback => ctx.refund(body, true).await,
        ApiMethod::RecurrentStatus => ctx.recurrent(body, false).await,
        ApiMethod::RecurrentDisable => ctx.recurrent(body, true).await,
        ApiMethod::SberPayPush => ctx.sberpay_push(body).await,
        ApiMethod::SubscriptionCancel => ctx.subscription(body, SubscriptionEvent::Cancel).await,
        ApiMethod::SubscriptionRestore => ctx.subscription(body, SubscriptionEvent::Restore).await,
        ApiMethod::Token => ctx.public_token(body).await,
        ApiMethod::TokenInfo => ctx.token_info(body).await,
        ApiMethod::TokenizeElements => ctx.tokenize_elements(body).await,
        ApiMethod::Tokenize => ctx.tokenize_account(body).await,
        ApiMethod::AccountBalance => ctx.account_balance(body).await,
        ApiMethod::AccountStatement => ctx.account_statement(body).await,
        ApiMethod::SessionStatus => ctx.status(body).await,
        ApiMethod::WalletBalance => ctx.balance(body).await,
        ApiMethod::FpsBanks => wallet::banks(body),
        ApiMethod::FpsCustomerVerification => ctx.verify_recipient(body).await,
        ApiMethod::NpdCheck => ctx.npd_ask(body, open131_store::NpdRequestKind::Check).await,
        ApiMethod::NpdPersonalInfo => ctx.npd_ask(body, open131_store::NpdRequestKind::PersonalInfo).await,
        ApiMethod::NpdRequestStatus => ctx.npd_status(body).await,
        ApiMethod::Fiscalize => ctx.fiscalize(body).await,
        ApiMethod::FiscalCancel => ctx.cancel_receipt(body).await,
        ApiMethod::FiscalInit | ApiMethod::FiscalStart => {
            if body.get("fiscalization_details").is_none_or(Value::is_null) {
                let why = "is required by the …/fiscalization methods (the receipt's details)";
                return Err(ApiReply::invalid(vec![detail("fiscalization_details", why)]));
            }
            match method {
                ApiMethod::FiscalInit => ctx.init_payout(body, Book::Main, Shape::Payout).await,
                _ => ctx.start_payout(body, Book::Main, Shape::Payout).await,
            }
        }
    }
}

/// An empty body and PHP's `[]` both mean an empty object.
fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiReply> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Array(items)) if items.is_empty() => Ok(Map::new()),
        Ok(_) => Err(ApiReply::invalid(vec![detail("body", "must be a JSON object")])),
        Err(e) => Err(ApiReply::invalid(vec![detail("body", format!("is not valid JSON: {e}"))])),
    }
}

/// What a method handler works with: the app, the calling project, the
/// version (the names of its answers) and the idempotency key to record.
struct Ctx<'a> {
    app: &'a App,
    project_id: &'a str,
    /// The project's now (its own clock's, when it runs on virtual time).
    now: time::OffsetDateTime,
    version: ApiVersion,
    idempotency: Option<(String, String)>,
    submerchant: Option<String>,
}
