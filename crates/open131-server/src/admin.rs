//! Operator endpoints, for a partner's test suite to drive outcomes on demand.
//!
//! They are authenticated by a bearer token kept in the database (created by
//! the first node to start; on SQLite a copy is in the data directory's
//! `admin.token`), never by a project key, so a partner's production
//! credentials cannot reach them.
//!
//! - `POST /admin/v1/kyc/resolve` `{"project", "id", "as"}` forces a pending
//!   check's outcome (`ok`, `passport_invalid`, `passport_not_found`,
//!   `inn_mismatch`, `invalid_sign`).
//! - `POST /admin/v1/registry/reload` loads changed registry files now.
//! - `POST /admin/v1/payments/fps_pay` and `/sberpay_pay` `{"project",
//!   "session_id"}` pay a session's FPS QR code or SberPay payment as the
//!   customer's bank would (either route pays either).
//! - `POST /admin/v1/payments/chargeback` `{"project", "session_id",
//!   "amount"?}` opens a bank-initiated chargeback of a captured payment (all
//!   that is left, or `amount` minor units), as a card network would.
//! - `POST /admin/v1/npd/taxpayer` `{"tax_reference", "status",
//!   "full_name"?, "phone"?, "service_error"?}` says what the tax service
//!   knows of a person (over the sandbox's rules).
//! - `GET /metrics`: the Prometheus figures ([`crate::metrics`]).
//! - `/admin/inspector` and `/admin/v1/inspect…`: the inspector ([`crate::inspector`]).
//! - `POST /admin/v1/clock` `{"project", "advance_s"? | "set"? | "reset"?}`
//!   shows or moves a project's clock (virtual time).
//! - `POST /admin/v1/webhooks/faults` `{"project", "delay_ms"?, "duplicate"?,
//!   "reorder"?, "drop_first"?, "before_response"?}` sets the project's
//!   webhook faults (the whole set; what is left out is off).
//! - `POST /admin/v1/npd/link` `{"project", "tax_reference", "action"}`
//!   acts for the person in the tax service's app: `confirm` or `decline` a
//!   waiting linking request, or `unlink`.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use open131_domain::kyc::{CheckState, Outcome};
use open131_store::Decision;
use serde_json::{json, Value};

use crate::api::npd::{change_link, LinkChange};
use crate::api::payment::{start_refund, RefundRefusal};
use crate::app::{App, Surface};
use crate::pages::bank_app::AppPayError;
use crate::registries::ReloadEvent;
use open131_domain::ident::Inn;
use open131_domain::npd::{operator_taxpayer, TaxStatus};
use open131_domain::npd_link::{LinkEvent, LinkState, WrongLinkState};
use open131_domain::webhook_faults::WebhookFaults;

pub(crate) fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (status, Json(json!({"status": "error", "error": {"code": code, "description": description}}))).into_response()
}

/// A 404 in the admin envelope, saying what was not found.
pub(crate) fn not_found(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, "not_found", what)
}

/// A 500 in the admin envelope that says nothing of internals.
pub(crate) fn internal() -> Response {
    Admin::internal()
}

/// The admin endpoints' own rendering of the errors no handler produced.
pub struct Admin;

impl Surface for Admin {
    fn not_found() -> Response {
        error(StatusCode::NOT_FOUND, "not_found", "Unknown path")
    }
    fn method_not_allowed() -> Response {
        error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed")
    }
    fn internal() -> Response {
        error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }
    fn too_large(part: crate::edge::TooLarge) -> Response {
        match part {
            crate::edge::TooLarge::Uri => error(StatusCode::URI_TOO_LONG, "invalid_request", "the path is too long"),
            crate::edge::TooLarge::Headers => {
                error(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "invalid_request", "too many or too long headers")
            }
        }
    }
}

/// The admin routes.
pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/v1/kyc/resolve", post(resolve))
        .route("/admin/v1/registry/reload", post(reload_registries))
        .route("/admin/v1/payments/chargeback", post(chargeback))
        .route("/admin/v1/payments/fps_pay", post(fps_pay))
        .route("/admin/v1/payments/sberpay_pay", post(fps_pay))
        .route("/admin/v1/npd/taxpayer", post(npd_taxpayer))
        .route("/admin/v1/npd/link", post(npd_link))
        .route("/admin/v1/webhooks/faults", post(webhook_faults))
        .route("/admin/v1/clock", post(clock))
        .route(crate::metrics::PATH, axum::routing::get(metrics))
        .merge(crate::inspector::router())
        .merge(crate::reports::router())
}

/// A project's clock (`POST /admin/v1/clock`): `{"project"}` shows it;
/// with one of `"advance_s"` (seconds forward), `"set"` (an RFC 3339 time
/// ahead) or `"reset": true` changes it, and the workers are woken so that
/// everything now due fires at once.
pub async fn clock(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    use crate::clock::{ClockChange, ClockError};
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let body = match object_of(&body, &["project", "advance_s", "set", "reset"]) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let Some(project) = body.get("project").and_then(Value::as_str).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "project must be a project id");
    };
    let change = match (body.get("advance_s"), body.get("set"), body.get("reset")) {
        (None, None, None) => ClockChange::Show,
        (Some(s), None, None) => match s.as_i64().filter(|s| *s >= 0) {
            Some(s) => ClockChange::Advance(time::Duration::seconds(s)),
            None => return error(StatusCode::BAD_REQUEST, "invalid_request", "advance_s must be whole seconds from 0"),
        },
        (None, Some(at), None) => {
            let parsed = at
                .as_str()
                .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            match parsed {
                Some(at) => ClockChange::Set(at),
                None => return error(StatusCode::BAD_REQUEST, "invalid_request", "set must be an RFC 3339 time"),
            }
        }
        (None, None, Some(Value::Bool(true))) => ClockChange::Reset,
        _ => {
            let why = "give at most one of advance_s, set and reset (true)";
            return error(StatusCode::BAD_REQUEST, "invalid_request", why);
        }
    };
    match crate::clock::change_project_clock(app.store.as_ref(), &project, change, app.clock.now()).await {
        Ok(clock) => {
            app.projects.forget(&project);
            for wake in [&app.processor_wake, &app.verifier_wake, &app.webhook_wake] {
                wake.notify_one();
            }
            let answer = json!({
                "status": "ok",
                "project": project,
                "now": open131_wire::api::timestamp(clock.now),
                "offset_s": clock.offset.us() / 1_000_000,
            });
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(ClockError::NoSuchProject) => error(StatusCode::NOT_FOUND, "not_found", "no such project"),
        Err(e @ ClockError::Backwards) => error(StatusCode::BAD_REQUEST, "invalid_request", &e.to_string()),
        Err(e @ ClockError::Busy) => error(StatusCode::CONFLICT, "busy", &e.to_string()),
        Err(ClockError::Store(e)) => {
            tracing::error!(error = %e, "changing a project's clock failed");
            Admin::internal()
        }
    }
}

/// Sets a project's webhook faults (`POST /admin/v1/webhooks/faults`): the
/// whole set at once; a fault left out is off, so `{"project": …}` alone
/// removes them.
pub async fn webhook_faults(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let keys = ["project", "delay_ms", "duplicate", "reorder", "drop_first", "before_response"];
    let body = match object_of(&body, &keys) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let Some(project) = body.get("project").and_then(Value::as_str).map(str::to_string) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "project must be a project id");
    };
    let faults = match faults_of(&body) {
        Ok(faults) => faults,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let change = open131_store::SettingsChange { webhook_faults: Some(faults), ..Default::default() };
    match app.store.set_project_settings(&project, change, app.clock.now()).await {
        Ok(()) => {
            app.projects.forget(&project);
            (StatusCode::OK, Json(json!({"status": "ok", "project": project, "webhook_faults": faults.to_string()})))
                .into_response()
        }
        Err(open131_store::StoreError::NoSuchProject(_)) => {
            error(StatusCode::NOT_FOUND, "not_found", "no such project")
        }
        Err(e) => {
            tracing::error!(error = %e, "setting webhook faults failed");
            Admin::internal()
        }
    }
}

/// The faults an admin body names, each checked against its limit.
fn faults_of(body: &serde_json::Map<String, Value>) -> Result<WebhookFaults, String> {
    let whole = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_u64().ok_or_else(|| format!("{key} must be a whole number from 0")),
    };
    let flag = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{key} must be true or false")),
    };
    let duplicate = match body.get("duplicate") {
        None | Some(Value::Null) => 0.0,
        Some(v) => v.as_f64().ok_or("duplicate must be a number from 0 to 1")?,
    };
    let drop_first = u32::try_from(whole("drop_first")?).map_err(|_| "drop_first is too large".to_string())?;
    WebhookFaults::new(whole("delay_ms")?, duplicate, flag("reorder")?, drop_first, flag("before_response")?)
        .map_err(|e| e.to_string())
}

/// The metrics (`GET /metrics`), behind the admin token on this listener.
pub async fn metrics(state: State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&state.0, &headers) {
        return r;
    }
    crate::metrics::scrape(state).await
}

/// The operator's word on a person (`POST /admin/v1/npd/taxpayer`).
pub async fn npd_taxpayer(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let keys = ["tax_reference", "status", "full_name", "phone", "service_error", "receipt_refusals"];
    let body = match object_of(&body, &keys) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_string);
    let strings =
        ["full_name", "phone"].iter().all(|k| matches!(body.get(*k), None | Some(Value::Null | Value::String(_))));
    if !strings {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "full_name and phone must be strings");
    }
    let Some(inn) = text("tax_reference").and_then(|t| npd_inn(&t)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tax_reference must be a 12-digit INN whose check digits match",
        );
    };
    let Some(status) = text("status").and_then(|s| TaxStatus::parse(&s)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "status must be self_employed, not_self_employed or unknown",
        );
    };
    let service_error = match body.get("service_error") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return error(StatusCode::BAD_REQUEST, "invalid_request", "service_error must be true or false"),
    };
    let refusals = match body.get("receipt_refusals") {
        None | Some(Value::Null) => Some(0),
        Some(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
    };
    let Some(refusals) = refusals else {
        let why = "receipt_refusals must be a whole number from 0 (how many registrations of a receipt are refused)";
        return error(StatusCode::BAD_REQUEST, "invalid_request", why);
    };
    let (name, phone) = (text("full_name"), text("phone"));
    let taxpayer = match operator_taxpayer(status, name.as_deref(), phone.as_deref(), service_error, refusals) {
        Ok(taxpayer) => taxpayer,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", why),
    };
    match app.store.set_npd_taxpayer(inn.expose(), &taxpayer, app.clock.now()).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "setting a taxpayer failed");
            Admin::internal()
        }
    }
}

/// A person's INN as the operator gives it: 12 digits whose check digits match.
pub fn npd_inn(text: &str) -> Option<Inn> {
    Inn::parse_individual(text.trim()).ok().filter(Inn::check_digits_ok)
}

/// The tax service's app, acted for by the operator (`POST /admin/v1/npd/link`).
pub async fn npd_link(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let body = match object_of(&body, &["project", "tax_reference", "action"]) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    let event = match text("action") {
        "confirm" => LinkEvent::Confirm,
        "decline" => LinkEvent::Decline,
        "unlink" => LinkEvent::Unlink,
        _ => return error(StatusCode::BAD_REQUEST, "invalid_request", "action must be confirm, decline or unlink"),
    };
    let Some(inn) = npd_inn(text("tax_reference")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tax_reference must be a 12-digit INN whose check digits match",
        );
    };
    match act_on_link(&app, text("project"), &inn, event).await {
        Ok(state) => (StatusCode::OK, Json(json!({"status": "ok", "link": state.as_str()}))).into_response(),
        Err(LinkActError::NoProject) => error(StatusCode::NOT_FOUND, "project_not_found", "no such project"),
        Err(LinkActError::Refused(wrong)) => error(StatusCode::CONFLICT, "link_wrong_state", &wrong.to_string()),
        Err(e @ LinkActError::Busy) => error(StatusCode::CONFLICT, "link_busy", &e.to_string()),
        Err(LinkActError::Store(e)) => {
            tracing::error!(error = %e, "acting on a link failed");
            Admin::internal()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LinkActError {
    #[error("no such project")]
    NoProject,
    #[error(transparent)]
    Refused(#[from] WrongLinkState),
    #[error("the link kept changing meanwhile: ask again")]
    Busy,
    #[error("store: {0}")]
    Store(#[from] open131_store::StoreError),
}

/// Applies the tax service's `event` to `project`'s link of `inn` (the admin
/// endpoint and the CLI); the link's state afterwards. A change lost to
/// another is tried once more on what that one left.
pub async fn act_on_link(app: &App, project: &str, inn: &Inn, event: LinkEvent) -> Result<LinkState, LinkActError> {
    if app.store.project(project).await?.is_none() {
        return Err(LinkActError::NoProject);
    }
    // A change lost to another is tried again on what that one left.
    for _ in 0..LINK_CHANGE_TRIES_MAX {
        match change_link(app, (project, inn), event, app.now_for(project).await).await? {
            LinkChange::Changed(state) | LinkChange::Unchanged(state) => return Ok(state),
            LinkChange::Refused(wrong) => return Err(wrong.into()),
            LinkChange::Lost => continue,
        }
    }
    Err(LinkActError::Busy)
}

/// Most tries of a link change that keeps losing to others.
pub const LINK_CHANGE_TRIES_MAX: usize = 8;

/// The refusal to send, if the request does not carry the admin token.
pub(crate) fn refusal(app: &App, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = app.admin_token.as_deref() else {
        return Some(Admin::not_found());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if aws_lc_rs::constant_time::verify_slices_are_equal(given.trim().as_bytes(), token.as_bytes()).is_err() {
        return Some(error(StatusCode::UNAUTHORIZED, "unauthorized", "A valid admin bearer token is required"));
    }
    None
}

/// Forces a pending check's final outcome.
pub async fn resolve(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "body must be a JSON object");
    };
    let project = body.get("project").and_then(Value::as_str).unwrap_or("");
    let id = match body.get("id") {
        Some(Value::String(s)) => s.parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let outcome = body.get("as").and_then(Value::as_str).and_then(Outcome::parse);
    let (Some(id), Some(outcome)) = (id, outcome) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "need project, id and as (ok, passport_invalid, passport_not_found, inn_mismatch, invalid_sign)",
        );
    };
    match resolve_check(&app, project, id, outcome).await {
        Ok(reply) => (StatusCode::OK, Json(json!({"status": "ok", "check": reply}))).into_response(),
        Err(ResolveError::NotFound) => {
            error(StatusCode::NOT_FOUND, "request_not_found", "no such check in this project")
        }
        Err(ResolveError::NotPending) => error(StatusCode::CONFLICT, "check_not_pending", "the check is already final"),
        Err(e @ (ResolveError::Store(_) | ResolveError::Reply(_))) => {
            tracing::error!(error = %e, "resolve failed");
            Admin::internal()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no such check")]
    NotFound,
    #[error("the check is already final")]
    NotPending,
    #[error("store: {0}")]
    Store(#[from] open131_store::StoreError),
    #[error("reply: {0}")]
    Reply(#[from] serde_json::Error),
}

/// Forces `outcome` on a pending check; returns the check's KYC answer afterwards.
/// Shared by the admin endpoint and `open131 kyc resolve`.
pub async fn resolve_check(app: &App, project: &str, id: i64, outcome: Outcome) -> Result<Value, ResolveError> {
    resolve_in_store(app.store.as_ref(), project, id, outcome, app.now_for(project).await).await
}

pub async fn resolve_in_store(
    store: &dyn open131_store::Store,
    project: &str,
    id: i64,
    outcome: Outcome,
    now: time::OffsetDateTime,
) -> Result<Value, ResolveError> {
    let check = store.check(project, id).await?.ok_or(ResolveError::NotFound)?;
    if check.state != CheckState::Pending {
        return Err(ResolveError::NotPending);
    }
    let decision = Decision { project_id: project.to_string(), id, outcome };
    // `finish_checks` only finishes pending checks: a race with the verifier loses cleanly.
    if store.finish_checks(vec![decision], now).await? != vec![true] {
        return Err(ResolveError::NotPending);
    }
    let reply = crate::kyc::status_reply(id, CheckState::Finished(outcome));
    Ok(serde_json::to_value(&*reply.body)?)
}

/// A request body that is a JSON object of `allowed` fields only, else why
/// not (the caller answers 400 `invalid_request` with it).
fn object_of(body: &[u8], allowed: &[&str]) -> Result<serde_json::Map<String, Value>, String> {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(body) else {
        return Err("body must be a JSON object".into());
    };
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(format!("{unknown} is not a field here ({})", allowed.join(", "))),
        None => Ok(body),
    }
}

/// `{"status": "ok", "session": …}` for a session an operator changed, named as its API version names it.
fn session_answer(app: &App, record: &open131_store::SessionRecord) -> Response {
    let session = crate::api::render::session(record, record.api_version, app.public_url());
    (StatusCode::OK, Json(json!({"status": "ok", "session": session}))).into_response()
}

/// Pays a session's FPS QR code or SberPay payment, as the customer's bank would.
pub async fn fps_pay(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let body = match object_of(&body, &["project", "session_id"]) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    match crate::pages::bank_app::pay_in_app(&app, text("project"), text("session_id")).await {
        Ok(session) => session_answer(&app, &session),
        Err(AppPayError::NotFound) => {
            error(StatusCode::NOT_FOUND, "session_not_found", "no FPS or SberPay payment there")
        }
        Err(e @ AppPayError::NotWaiting) => error(StatusCode::CONFLICT, "session_wrong_state", &e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "fps_pay failed");
            Admin::internal()
        }
    }
}

/// Opens a bank-initiated chargeback (the card network's: the partner does not ask for it).
pub async fn chargeback(State(app): State<App>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let body = match object_of(&body, &["project", "session_id", "amount"]) {
        Ok(body) => body,
        Err(why) => return error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    let text = |key: &str| body.get(key).and_then(Value::as_str).unwrap_or("");
    if text("project").is_empty() || text("session_id").is_empty() {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "project and session_id are required strings");
    }
    let amount = match body.get("amount") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|a| *a > 0) {
            Some(a) => Some(a),
            None => return error(StatusCode::BAD_REQUEST, "invalid_request", "amount must be a positive integer"),
        },
    };
    match force_chargeback(&app, text("project"), text("session_id"), amount).await {
        Ok(session) => session_answer(&app, &session),
        Err(ChargebackError::NotFound) => error(StatusCode::NOT_FOUND, "session_not_found", "no such session"),
        Err(ChargebackError::Refused(e @ RefundRefusal::WrongState)) => {
            error(StatusCode::CONFLICT, "session_wrong_state", &e.to_string())
        }
        Err(ChargebackError::Refused(e @ RefundRefusal::TooLarge { .. })) => {
            error(StatusCode::CONFLICT, "refund_amount_too_large", &e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, "chargeback failed");
            Admin::internal()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChargebackError {
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Refused(#[from] RefundRefusal),
    #[error("store: {0}")]
    Store(#[from] open131_store::StoreError),
}

/// A bank-initiated chargeback of the session's captured payment; shared by
/// the admin endpoint and `open131 payments chargeback`.
pub async fn force_chargeback(
    app: &App,
    project: &str,
    session_id: &str,
    amount: Option<i64>,
) -> Result<open131_store::SessionRecord, ChargebackError> {
    let record = app.store.session(project, session_id).await?.ok_or(ChargebackError::NotFound)?;
    let ask = open131_domain::payment::RefundAsk { amount, metadata: None };
    Ok(start_refund(app, record, ask, true, None).await?)
}

/// Loads changed registry files now.
pub async fn reload_registries(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&app, &headers) {
        return r;
    }
    let events: Vec<Value> = crate::registries::reload(&app)
        .await
        .into_iter()
        .map(|e| match e {
            ReloadEvent::Loaded { registry, entries, malformed } => {
                json!({"registry": registry, "loaded": true, "entries": entries, "malformed": malformed})
            }
            ReloadEvent::Refused { registry, error } => json!({"registry": registry, "loaded": false, "error": error}),
        })
        .collect();
    (StatusCode::OK, Json(json!({"status": "ok", "events": events}))).into_response()
}
