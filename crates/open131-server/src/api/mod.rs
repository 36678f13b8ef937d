//! The main API: `POST /api/v1/<method>` and `/api/v2/<method>`, signed over
//! the raw body bytes (`X-PARTNER-SIGN`).
//!
//! Order: known method (404) → `X-PARTNER-PROJECT` (401 identification_error)
//! → body size (413) → project (401) → signature over the bytes as received
//! (401 authentication_error) → method allowed for the project (403) → body
//! (400 invalid_request naming each field) → the method, whose state errors are
//! 400 session_wrong_state. Idempotency keys are recorded in the same
//! transaction as the change they guard.

pub mod engine;
pub mod processor;
pub mod render;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use open131_domain::dates::moscow_today;
use open131_domain::payout::{self, FPS_BANKS};
use open131_domain::session::{Event, Phase};
use open131_domain::FieldError;
use open131_store::PayoutRecord;
use open131_wire::api::{
    Amount, ApiErrorCode, ApiVersion, BankWire, BanksResponse, ErrorEnvelope, SessionResponse, WalletBalanceResponse,
    WalletWire,
};
use open131_wire::kyc::{FieldDetail, KycErrorCode};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::App;
use crate::reply::KycReply;
use engine::{Apply, EngineError};

/// Header carrying the body's signature.
pub const SIGN_HEADER: &str = "x-partner-sign";
/// Header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "x-partner-idempotency-key";
/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_MAX_BYTES: usize = 128;

/// Methods served, with whether they change state (only those record idempotency keys).
const METHODS: &[(&str, bool)] = &[
    ("session/create", true),
    ("session/init/payout", true),
    ("session/start/payout", true),
    ("session/confirm", true),
    ("session/cancel", true),
    ("session/status", false),
    ("wallet/balance", false),
    ("fps/banks", false),
];

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

    fn invalid(details: Vec<FieldDetail>) -> Self {
        Self::error(ApiErrorCode::InvalidRequest, None, details)
    }

    fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::error(ApiErrorCode::InternalError, None, Vec::new())
    }
}

impl IntoResponse for ApiReply {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, [(header::CONTENT_TYPE, "application/json")], self.body).into_response()
    }
}

fn detail(field: &str, message: impl Into<String>) -> FieldDetail {
    FieldDetail { field: field.to_string(), message: message.into() }
}

fn from_domain(errors: Vec<FieldError>) -> Vec<FieldDetail> {
    errors.into_iter().map(|e| FieldDetail { field: e.field, message: e.message }).collect()
}

/// Entry point of `/api/{version}/{*method}`.
pub async fn handle(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    method: Method,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Ok(Path((version, path))) = path else {
        return KycReply::error(KycErrorCode::NotFound).into_response();
    };
    let Some(version) = ApiVersion::parse(&version) else {
        return KycReply::error(KycErrorCode::NotFound).into_response();
    };
    let Some(&(name, mutating)) = METHODS.iter().find(|(m, _)| *m == path) else {
        return ApiReply::error(ApiErrorCode::NotFound, None, Vec::new()).into_response();
    };
    let http_ok = method == Method::POST || (name == "fps/banks" && method == Method::GET);
    if !http_ok {
        return ApiReply::error(ApiErrorCode::MethodNotAllowed, None, Vec::new()).into_response();
    }
    match handle_inner(&app, peer.ip(), version, name, mutating, &headers, body).await {
        Ok(reply) | Err(reply) => reply.into_response(),
    }
}

async fn handle_inner(
    app: &App,
    peer: std::net::IpAddr,
    version: ApiVersion,
    name: &str,
    mutating: bool,
    headers: &HeaderMap,
    body: Body,
) -> Result<ApiReply, ApiReply> {
    let identification = || ApiReply::error(ApiErrorCode::IdentificationError, None, Vec::new());
    let project_id = match headers.get(crate::kyc::PROJECT_HEADER).map(|v| v.to_str().map(str::trim)) {
        Some(Ok(id)) if !id.is_empty() && id.len() <= crate::kyc::PROJECT_ID_MAX_BYTES => id.to_string(),
        _ => return Err(identification()),
    };
    let limit = app.config.body_size_max_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if crate::reply::is_length_limit(e) {
            ApiReply::error(
                ApiErrorCode::RequestTooLarge,
                None,
                vec![detail("body", format!("must be at most {limit} bytes"))],
            )
        } else {
            ApiReply::invalid(vec![detail("body", "could not be read completely")])
        }
    })?;
    let project = match app.projects.get(&project_id).await {
        // An address outside the project's allowlist is not told the project exists.
        Ok(Some(p)) if p.allowlist.allows(peer) => p,
        Ok(Some(_)) => return Err(identification()),
        Ok(None) => return Err(identification()),
        Err(e) => return Err(ApiReply::internal(&e)),
    };
    let authentication = || ApiReply::error(ApiErrorCode::AuthenticationError, None, Vec::new());
    let signature = match headers.get(SIGN_HEADER).map(|v| v.to_str()) {
        Some(Ok(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Err(authentication()),
    };
    // The signature covers the bytes exactly as received: never re-serialised JSON.
    if !app.projects.verify(&project, &bytes, &signature).await.map_err(|e| ApiReply::internal(&e))? {
        tracing::info!(project = %project.id, method = name, "request refused: signature does not verify");
        return Err(authentication());
    }
    if !project.may_call(name) {
        return Err(ApiReply::error(ApiErrorCode::AuthorizationError, None, Vec::new()));
    }
    let idempotency = match headers.get(IDEMPOTENCY_HEADER).map(|v| v.to_str().map(str::trim)) {
        None => None,
        Some(Ok(key)) if !key.is_empty() && key.len() <= IDEMPOTENCY_KEY_MAX_BYTES => {
            mutating.then(|| (key.to_string(), name.to_string()))
        }
        Some(_) => {
            return Err(ApiReply::invalid(vec![detail(
                IDEMPOTENCY_HEADER,
                format!("must be 1 to {IDEMPOTENCY_KEY_MAX_BYTES} visible ASCII characters"),
            )]))
        }
    };
    if let Some((key, _)) = &idempotency {
        // A repeat answers the idempotency error even when it would also be in the
        // wrong state by now (a confirm repeated after it went through).
        if app.store.idempotency_key_used(&project.id, key).await.map_err(|e| ApiReply::internal(&e))? {
            return Err(ApiReply::error(ApiErrorCode::IdempotencyKeyAlreadyExists, None, Vec::new()));
        }
    }
    let body = parse_body(&bytes)?;
    let ctx = Ctx { app, project_id: &project.id, version, idempotency };
    match name {
        "session/create" => ctx.create().await,
        "session/init/payout" => ctx.init_payout(&body).await,
        "session/start/payout" => ctx.start_payout(&body).await,
        "session/confirm" => ctx.event(&body, Event::Confirm).await,
        "session/cancel" => ctx.event(&body, Event::Cancel).await,
        "session/status" => ctx.status(&body).await,
        "wallet/balance" => ctx.balance().await,
        _ => Ok(banks()),
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

fn banks() -> ApiReply {
    ApiReply::ok(&BanksResponse {
        status: "ok".into(),
        banks: FPS_BANKS
            .iter()
            .map(|(id, en, ru)| BankWire { id: id.to_string(), eng_name: en.to_string(), ru_name: ru.to_string() })
            .collect(),
    })
}

struct Ctx<'a> {
    app: &'a App,
    project_id: &'a str,
    version: ApiVersion,
    idempotency: Option<(String, String)>,
}

impl Ctx<'_> {
    fn reply(&self, record: &open131_store::SessionRecord) -> ApiReply {
        ApiReply::ok(&SessionResponse { status: "ok".into(), session: render::session(record) })
    }

    fn engine_error(e: EngineError) -> ApiReply {
        match e {
            EngineError::WrongState(w) => {
                ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()).with_log(&w)
            }
            EngineError::Idempotency => ApiReply::error(ApiErrorCode::IdempotencyKeyAlreadyExists, None, Vec::new()),
            EngineError::NoSuchSession => ApiReply::invalid(vec![detail("session_id", "no such session")]),
            other => ApiReply::internal(&other),
        }
    }

    async fn load(&self, body: &Map<String, Value>) -> Result<open131_store::SessionRecord, ApiReply> {
        let id = match body.get("session_id") {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            None | Some(Value::Null) => return Err(ApiReply::invalid(vec![detail("session_id", "is required")])),
            Some(_) => return Err(ApiReply::invalid(vec![detail("session_id", "must be a string")])),
        };
        match self.app.store.session(self.project_id, &id).await {
            Ok(Some(s)) => Ok(s),
            // Another project's session is indistinguishable from none.
            Ok(None) => Err(ApiReply::invalid(vec![detail("session_id", "no such session")])),
            Err(e) => Err(ApiReply::internal(&e)),
        }
    }

    async fn create(&self) -> Result<ApiReply, ApiReply> {
        let record = engine::unsaved(self.project_id, self.version.as_str(), self.app.clock.now());
        // Creating is storing the `Created` phase as is: no transition, no effects.
        let write = open131_store::SessionWrite {
            expected_version: None,
            record: record.clone(),
            idempotency: self.idempotency.clone(),
            movements: Vec::new(),
            webhooks: Vec::new(),
            timers: Vec::new(),
            consumed_timer: None,
        };
        match self.app.store.write_session(write, record.created_at).await {
            Ok(open131_store::WriteOutcome::Applied(version)) => {
                Ok(self.reply(&open131_store::SessionRecord { version, ..record }))
            }
            Ok(open131_store::WriteOutcome::IdempotencyConflict) => Err(Self::engine_error(EngineError::Idempotency)),
            Ok(other) => Err(ApiReply::internal(&format!("unexpected outcome {other:?} creating a session"))),
            Err(e) => Err(ApiReply::internal(&e)),
        }
    }

    fn payout(&self, body: &Map<String, Value>) -> Result<PayoutRecord, ApiReply> {
        let now = self.app.clock.now();
        let request = payout::parse_payout(body, moscow_today(now)).map_err(|e| ApiReply::invalid(from_domain(e)))?;
        let plan = payout::sandbox_plan(&request.method, &request.amount);
        let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        Ok(PayoutRecord {
            id: engine::new_payout_id(),
            amount: request.amount.amount(),
            currency: request.amount.currency().to_string(),
            method_masked: request.method.masked().to_string(),
            participant_details: request.participant_details.to_string(),
            customer: text(&request.customer),
            metadata: text(&request.metadata),
            plan: engine::plan_text(&plan),
            created_at: now,
        })
    }

    async fn init_payout(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let payout = self.payout(body)?;
        let mut record = engine::unsaved(self.project_id, self.version.as_str(), self.app.clock.now());
        record.payout = Some(payout);
        let how = Apply { idempotency: self.idempotency.clone(), ..Apply::default() };
        let done = engine::apply(self.app, record, Event::Start, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    async fn start_payout(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let mut record = self.load(body).await?;
        if record.phase != Phase::Created {
            return Err(ApiReply::error(ApiErrorCode::SessionWrongState, None, Vec::new()));
        }
        record.payout = Some(self.payout(body)?);
        let how = Apply { idempotency: self.idempotency.clone(), ..Apply::default() };
        let done = engine::apply(self.app, record, Event::Start, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    async fn event(&self, body: &Map<String, Value>, event: Event) -> Result<ApiReply, ApiReply> {
        let record = self.load(body).await?;
        let how = Apply { idempotency: self.idempotency.clone(), ..Apply::default() };
        let done = engine::apply(self.app, record, event, how).await.map_err(Self::engine_error)?;
        Ok(self.reply(&done))
    }

    async fn status(&self, body: &Map<String, Value>) -> Result<ApiReply, ApiReply> {
        let record = self.load(body).await?;
        Ok(self.reply(&record))
    }

    async fn balance(&self) -> Result<ApiReply, ApiReply> {
        let wallets = self.app.store.wallets(self.project_id).await.map_err(|e| ApiReply::internal(&e))?;
        let mut out: Vec<WalletWire> = wallets
            .into_iter()
            .map(|w| WalletWire {
                id: format!("w_{}", w.currency),
                amount_details: Amount { amount: w.available, currency: w.currency },
            })
            .collect();
        if out.is_empty() {
            out.push(WalletWire { id: "w_rub".into(), amount_details: Amount { amount: 0, currency: "rub".into() } });
        }
        Ok(ApiReply::ok(&WalletBalanceResponse { status: "ok".into(), wallets: out }))
    }
}

impl ApiReply {
    fn with_log(self, cause: &dyn std::fmt::Display) -> Self {
        tracing::debug!(cause = %cause, "request refused");
        self
    }
}
