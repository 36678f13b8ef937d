//! The inspector (issue 13 §3): a page for the people testing an
//! integration, served by open131 itself at `/admin/inspector` with no
//! external asset. The page holds no data: its script asks for the admin
//! token (kept in the tab's session storage) and reads the JSON endpoints
//! below every two seconds, so what it shows follows the server live.
//!
//! - `GET /admin/v1/inspect`: every project (settings, clock, wallets) and
//!   the registries' state.
//! - `GET /admin/v1/inspect/{project}`: its latest checks, sessions (with
//!   their operations and the webhooks they caused, a timeline), webhook
//!   deliveries with their attempts, and the requests it made
//!   ([`crate::request_log`], bodies masked).
//! - `GET /admin/v1/inspect/{project}/sessions/{id}`: one session with its
//!   ledger postings and the requests that named it.
//! - `POST /admin/v1/inspect/{project}/webhooks/{id}/resend`: sends one again.
//!
//! Invariant: no personal data leaves these endpoints: checks are shown by
//! id, state and times (never the applicant's data), sessions by their
//! operations' kinds, states, amounts and masked methods (never the
//! recipient or the customer), webhooks by type and delivery (never the
//! body), requests and answers only through `masked_json`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use open131_domain::kyc::CheckState;
use open131_domain::{payment_flow, payout_flow, session};
use open131_store::{SessionRecord, WebhookFilter};
use serde_json::{json, Value};

use crate::app::App;

/// Most checks, sessions, webhooks and requests one project's view lists (newest first).
pub const INSPECT_ROWS_MAX: usize = 50;
/// Most postings one session's view lists (oldest first).
pub const SESSION_POSTINGS_MAX: usize = 500;

const PAGE: &str = include_str!("inspector/inspector.html");
const SCRIPT: &str = include_str!("inspector/inspector.js");

/// The inspector's routes (under `/admin/`, so the admin surface renders their errors).
pub fn router() -> Router<App> {
    Router::new()
        .route("/admin/inspector", get(page))
        .route("/admin/inspector.js", get(script))
        .route("/admin/v1/inspect", get(overview))
        .route("/admin/v1/inspect/{project}", get(project))
        .route("/admin/v1/inspect/{project}/sessions/{id}", get(session_detail))
        .route("/admin/v1/inspect/{project}/webhooks/{id}/resend", post(resend))
}

async fn page() -> Response {
    let policy = HeaderValue::from_static(crate::pages::SCRIPTED_PAGE_POLICY);
    crate::pages::html_response(StatusCode::OK, PAGE.to_string(), policy)
}

async fn script() -> Response {
    crate::pages::script_response(SCRIPT)
}

fn time_text(t: time::OffsetDateTime) -> String {
    open131_wire::api::timestamp(t)
}

/// Every project with its settings, clock and wallets; the registries.
async fn overview(State(app): State<App>, headers: HeaderMap) -> Response {
    if let Some(r) = crate::admin::refusal(&app, &headers) {
        return r;
    }
    let projects = match app.store.projects().await {
        Ok(projects) => projects,
        Err(e) => return internal(&e),
    };
    let real = app.clock.now();
    let mut listed = Vec::with_capacity(projects.len());
    for p in projects {
        let wallets = match app.store.wallets(&p.id).await {
            Ok(w) => w,
            Err(e) => return internal(&e),
        };
        let s = &p.settings;
        listed.push(json!({
            "id": p.id,
            "created_at": time_text(p.created_at),
            "keys": p.keys.len(),
            "settings": {
                "webhook_url": s.webhook_url,
                "kyc_mode": s.kyc_mode.as_str(),
                "auto_confirm": s.auto_confirm,
                "confirm_timeout_s": s.confirm_timeout_s,
                "capture": s.capture.as_str(),
                "webhook_faults": s.webhook_faults.to_string(),
            },
            "clock": {"now": time_text(s.clock_offset.apply(real)), "offset_s": s.clock_offset.us() / 1_000_000},
            "wallets": wallets.iter().map(|w| json!({
                "book": w.book.as_str(), "currency": w.currency, "available": w.available,
                "reserved": w.reserved, "held": w.held,
            })).collect::<Vec<_>>(),
        }));
    }
    let registries: Vec<Value> = app
        .registries
        .figures()
        .into_iter()
        .map(|(name, entries, loaded)| json!({"name": name, "entries": entries, "loaded_unix_s": loaded}))
        .collect();
    let backend = app.store.backend().as_str();
    Json(json!({"status": "ok", "backend": backend, "projects": listed, "registries": registries})).into_response()
}

/// One project: its latest checks, sessions (each with its timeline) and webhooks.
async fn project(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Some(r) = crate::admin::refusal(&app, &headers) {
        return r;
    }
    match app.store.project(&id).await {
        Ok(Some(_)) => {}
        Ok(None) => return crate::admin::not_found("no such project"),
        Err(e) => return internal(&e),
    }
    let filter = WebhookFilter { project_id: Some(id.clone()), ..Default::default() };
    let (checks, sessions, hooks) = match tokio::try_join!(
        app.store.recent_checks(&id, INSPECT_ROWS_MAX),
        app.store.recent_sessions(&id, INSPECT_ROWS_MAX),
        app.store.webhooks(filter),
    ) {
        Ok(found) => found,
        Err(e) => return internal(&e),
    };
    // The newest webhooks; the store lists them oldest first.
    let hooks: Vec<_> = hooks.into_iter().rev().take(INSPECT_ROWS_MAX).collect();
    let mut webhooks = Vec::with_capacity(hooks.len());
    for w in &hooks {
        let attempts = match app.store.webhook_attempts(w.id).await {
            Ok(a) => a,
            Err(e) => return internal(&e),
        };
        webhooks.push(json!({
            "id": w.id, "subject": w.subject_id, "type": w.kind, "state": w.state.as_str(),
            "created_at": time_text(w.created_at), "attempts": attempts.iter().map(|a| json!({
                "attempt": a.attempt, "at": time_text(a.at), "status": a.status, "error": a.error,
                "duration_ms": a.duration_ms, "injected": a.injected,
            })).collect::<Vec<_>>(),
        }));
    }
    let checks: Vec<Value> = checks
        .iter()
        .map(|c| {
            let state = match c.state {
                CheckState::Pending => "pending",
                CheckState::Finished(outcome) => outcome.as_str(),
            };
            json!({"id": c.id, "state": state, "created_at": time_text(c.created_at),
                "finished_at": c.finished_at.map(time_text)})
        })
        .collect();
    let sessions: Vec<Value> = sessions.iter().map(|s| session_view(s, &hooks)).collect();
    let now = app.now_for(&id).await;
    let requests: Vec<Value> = app.request_log.of(&id).iter().take(INSPECT_ROWS_MAX).map(|r| r.view()).collect();
    Json(json!({"status": "ok", "project": id, "now": time_text(now), "checks": checks, "sessions": sessions,
        "webhooks": webhooks, "requests": requests}))
    .into_response()
}

/// One session: its view, its ledger postings and the requests that named it.
async fn session_detail(
    State(app): State<App>,
    headers: HeaderMap,
    Path((project, id)): Path<(String, String)>,
) -> Response {
    if let Some(r) = crate::admin::refusal(&app, &headers) {
        return r;
    }
    let found = tokio::try_join!(
        app.store.session(&project, &id),
        app.store.session_postings(&project, &id, SESSION_POSTINGS_MAX),
        app.store.webhooks(WebhookFilter {
            project_id: Some(project.clone()),
            subject_id: Some(id.clone()),
            limit: None
        }),
    );
    let (session, postings, hooks) = match found {
        Ok((Some(session), postings, hooks)) => (session, postings, hooks),
        Ok((None, ..)) => return crate::admin::not_found("no such session of this project"),
        Err(e) => return internal(&e),
    };
    let postings: Vec<Value> = postings
        .iter()
        .map(|p| {
            json!({"id": p.posting.id, "at": time_text(p.posting.created_at), "book": p.book.as_str(),
                "currency": p.currency, "movement": p.posting.movement, "account": p.posting.account,
                "amount": p.posting.amount})
        })
        .collect();
    let requests: Vec<Value> = app
        .request_log
        .of(&project)
        .iter()
        .filter(|r| r.mentions(&id))
        .map(|r| r.view())
        .filter(|v| v["sessions"].as_array().is_some_and(|s| s.iter().any(|x| x.as_str() == Some(id.as_str()))))
        .collect();
    Json(json!({"status": "ok", "project": project, "session": session_view(&session, &hooks),
        "postings": postings, "requests": requests}))
    .into_response()
}

/// A session as the inspector shows it: its operations (no person named)
/// and its timeline, from its creation through the webhooks it caused.
fn session_view(s: &SessionRecord, hooks: &[open131_store::WebhookRecord]) -> Value {
    let masked = |m: &str| serde_json::from_str::<Value>(m).unwrap_or(Value::Null);
    let mut operations: Vec<Value> = s
        .payouts
        .iter()
        .map(|p| {
            json!({"kind": "payout", "id": p.id, "state": payout_flow::wire_status(p.state), "amount": p.amount,
            "currency": p.currency, "method": masked(&p.method_masked)})
        })
        .collect();
    operations.extend(s.payments.iter().map(|p| {
        json!({"kind": "payment", "id": p.id, "state": payment_flow::wire_status(p.state), "amount": p.amount,
            "currency": p.currency, "method": masked(&p.method_masked)})
    }));
    let mut timeline = vec![json!({"at": time_text(s.created_at), "what": "created"})];
    timeline.extend(
        hooks
            .iter()
            .rev()
            .filter(|w| w.subject_id == s.id)
            .map(|w| json!({"at": time_text(w.created_at), "what": w.kind})),
    );
    if let Some(done) = s.finished_at {
        timeline.push(json!({"at": time_text(done), "what": "finished"}));
    }
    json!({"id": s.id, "state": session::wire_status(s.state), "created_at": time_text(s.created_at),
        "updated_at": time_text(s.updated_at), "operations": operations, "timeline": timeline})
}

/// Sends one of the project's webhooks again.
async fn resend(State(app): State<App>, headers: HeaderMap, Path((project, id)): Path<(String, i64)>) -> Response {
    if let Some(r) = crate::admin::refusal(&app, &headers) {
        return r;
    }
    let filter = WebhookFilter { project_id: Some(project.clone()), ..Default::default() };
    let owned = match app.store.webhooks(filter).await {
        Ok(hooks) => hooks.iter().any(|w| w.id == id),
        Err(e) => return internal(&e),
    };
    if !owned {
        return crate::admin::not_found("no such webhook of this project");
    }
    // Leases are on the real clock; due on it is due on any project's.
    match app.store.resend_webhook(id, app.clock.now()).await {
        Ok(true) => {
            app.webhook_wake.notify_one();
            Json(json!({"status": "ok", "id": id})).into_response()
        }
        Ok(false) => (
            StatusCode::CONFLICT,
            Json(json!({"status": "error", "error": {"code": "busy", "description": "being delivered right now"}})),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

fn internal(e: &open131_store::StoreError) -> Response {
    tracing::error!(error = %e, "the inspector could not read the store");
    crate::admin::internal()
}
