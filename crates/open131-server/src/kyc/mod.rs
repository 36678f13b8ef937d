//! The passport verification API: `POST /api/v1.1/check` and `GET /api/v1.1/check/{id}`.
//!
//! Order of the checks on `POST`, each answering as the bank's page says:
//! header (422) → body shape and every field (422, all fields named at once) →
//! project (200 `partner_project_not_found`) → signature (200 `invalid_sign`,
//! nothing stored) → duplicate (200 `already_exists` with the first id) → stored
//! and acknowledged as `pending` only after its commit.

use axum::body::Body;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use open131_domain::kyc::{self, CheckState, KycVersion, Outcome};
use open131_domain::personal::Personal;
use open131_domain::FieldError;
use open131_store::{InsertCheck, NewCheck};
use open131_wire::canonical;
use open131_wire::kyc::{
    FieldDetail, KycErrorCode, KycResponse, DESCRIPTION_PASSPORT_INVALID, DESCRIPTION_PASSPORT_NOT_FOUND,
};
use serde_json::Value;

use crate::app::{App, Surface};
use crate::edge::{self, BodyError};
use crate::projects::Project;
use crate::reply::KycReply;

/// The KYC API's own rendering of the errors no handler produced.
pub struct KycApi;

impl Surface for KycApi {
    fn not_found() -> Response {
        KycReply::error(KycErrorCode::NotFound).into_response()
    }
    fn method_not_allowed() -> Response {
        KycReply::error(KycErrorCode::MethodNotAllowed).into_response()
    }
    fn internal() -> Response {
        KycReply::error(KycErrorCode::InternalError).into_response()
    }
    fn too_large(part: crate::edge::TooLarge) -> Response {
        match part {
            crate::edge::TooLarge::Uri => KycReply::error(KycErrorCode::UriTooLong).into_response(),
            crate::edge::TooLarge::Headers => KycReply::error(KycErrorCode::RequestHeadersTooLarge).into_response(),
        }
    }
}

/// The KYC routes: v1.1, v2.0 (also spelled v2).
pub fn router() -> Router<App> {
    Router::new()
        .route("/api/v1.1/check", post(post_check))
        .route("/api/v1.1/check/{id}", get(get_check))
        .route("/api/v2.0/check", post(post_check_v2))
        .route("/api/v2.0/check/{id}", get(get_check))
        .route("/api/v2/check", post(post_check_v2))
        .route("/api/v2/check/{id}", get(get_check))
}

fn detail(field: &str, message: impl Into<String>) -> FieldDetail {
    FieldDetail { field: field.to_string(), message: message.into() }
}

fn from_domain(errors: Vec<FieldError>) -> Vec<FieldDetail> {
    errors.into_iter().map(|e| FieldDetail { field: e.field, message: e.message }).collect()
}

/// The project id from the header, or the 422 the page prescribes.
fn project_header(headers: &HeaderMap) -> Result<&str, KycReply> {
    edge::project_id(headers).ok_or_else(|| KycReply::error(KycErrorCode::RequestHeaderValidationError))
}

/// The project, if it exists and `peer` is on its allowlist (else, as for an
/// unknown project, `partner_project_not_found`).
async fn project(app: &App, id: &str, peer: IpAddr) -> Result<std::sync::Arc<Project>, KycReply> {
    match edge::admitted_project(app, id, peer).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(KycReply::error(KycErrorCode::PartnerProjectNotFound)),
        Err(e) => Err(KycReply::internal(&e)),
    }
}

async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, KycReply> {
    edge::read_body(body, limit).await.map_err(|e| match e {
        BodyError::TooLarge { limit_bytes } => KycReply::invalid(
            KycErrorCode::RequestBodyTooLarge,
            vec![detail("body", format!("must be at most {limit_bytes} bytes"))],
        ),
        BodyError::Unreadable => KycReply::invalid(
            KycErrorCode::RequestBodyValidationError,
            vec![detail("body", "could not be read completely")],
        ),
    })
}

/// `POST /api/v1.1/check`.
pub async fn post_check(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> KycReply {
    match post_check_inner(&app, peer.ip(), &headers, body, KycVersion::V11).await {
        Ok(reply) | Err(reply) => reply,
    }
}

/// `POST /api/v2.0/check` (also `/api/v2/check`).
pub async fn post_check_v2(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> KycReply {
    match post_check_inner(&app, peer.ip(), &headers, body, KycVersion::V20).await {
        Ok(reply) | Err(reply) => reply,
    }
}

async fn post_check_inner(
    app: &App,
    peer: IpAddr,
    headers: &HeaderMap,
    body: Body,
    version: KycVersion,
) -> Result<KycReply, KycReply> {
    let project_id = project_header(headers)?;
    let bytes = read_body(body, app.config.body_size_max_bytes).await?;
    let now = app.now_for(project_id.as_ref()).await;

    // Shape of the envelope: {"payload": {...}, "signature": "..."}.
    let invalid = |details| KycReply::invalid(KycErrorCode::RequestBodyValidationError, details);
    let root: Value =
        serde_json::from_slice(&bytes).map_err(|e| invalid(vec![detail("body", format!("is not valid JSON: {e}"))]))?;
    let Value::Object(mut root) = root else {
        return Err(invalid(vec![detail("body", "must be a JSON object")]));
    };
    let mut details = Vec::new();
    let signature = match root.remove("signature") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(Value::String(_)) => {
            details.push(detail("signature", "must not be empty"));
            None
        }
        None | Some(Value::Null) => {
            details.push(detail("signature", "is required"));
            None
        }
        Some(_) => {
            details.push(detail("signature", "must be a string"));
            None
        }
    };
    // The canonical bytes, made once: they are what the signature covers, and
    // making them is also what finds a float (over which no signature could
    // be checked).
    let (payload, message) = match root.remove("payload") {
        Some(Value::Object(map)) => {
            let payload = Value::Object(map);
            match canonical::canonical_bytes(&payload) {
                Ok(message) => (Some(payload), Some(message)),
                Err(canonical::CanonicalError::Float { path }) => {
                    details.push(detail(&path, "floating-point numbers are not allowed"));
                    (Some(payload), None)
                }
            }
        }
        None | Some(Value::Null) => {
            details.push(detail("payload", "is required"));
            (None, None)
        }
        Some(_) => {
            details.push(detail("payload", "must be a JSON object"));
            (None, None)
        }
    };
    let application = match payload.as_ref().and_then(Value::as_object) {
        Some(map) => {
            let parsed = match version {
                KycVersion::V11 => kyc::parse_v11(map, now),
                KycVersion::V20 => open131_domain::kyc_v2::parse_v20(map, now),
            };
            match parsed {
                Ok(app) => Some(app),
                Err(errors) => {
                    details.extend(from_domain(errors));
                    None
                }
            }
        }
        None => None,
    };
    let (Some(signature), Some(payload), Some(message), Some(application), true) =
        (signature, payload, message, application, details.is_empty())
    else {
        details.sort_by(|a, b| a.field.cmp(&b.field));
        return Err(invalid(details));
    };

    let project = project(app, project_id, peer).await?;
    let verified = app.projects.verify(&project, &message, &signature).await.map_err(|e| KycReply::internal(&e))?;
    if !verified {
        tracing::info!(project = %project.id, "check refused: no registered key verifies the signature");
        return Err(KycReply::error(KycErrorCode::InvalidSign));
    }

    let new = NewCheck {
        project_id: project.id.clone(),
        application,
        payload_json: Personal::new(serde_json::to_string(&payload).map_err(|e| KycReply::internal(&e))?),
        created_at: now,
    };
    match app.store.insert_check(new).await {
        Ok(InsertCheck::Created(id)) => {
            tracing::debug!(project = %project.id, id, "check accepted");
            crate::verifier::new_check(app);
            Ok(KycReply::ok(KycResponse::pending(id.to_string())))
        }
        Ok(InsertCheck::Duplicate(id)) => Ok(KycReply::error_with(
            KycErrorCode::AlreadyExists,
            KycResponse::error(KycErrorCode::AlreadyExists).with_id(id.to_string()),
        )),
        Err(e) => Err(KycReply::internal(&e)),
    }
}

/// `GET /api/v1.1/check/{id}`.
pub async fn get_check(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    id: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> KycReply {
    // An id that is not even valid UTF-8 is simply an unknown id.
    let id = id.map(|Path(id)| id).unwrap_or_default();
    match get_check_inner(&app, peer.ip(), &headers, &id).await {
        Ok(reply) | Err(reply) => reply,
    }
}

/// Parses a check id: a positive decimal integer, nothing else.
fn parse_id(id: &str) -> Option<i64> {
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    id.parse().ok().filter(|n| *n > 0)
}

async fn get_check_inner(app: &App, peer: IpAddr, headers: &HeaderMap, id: &str) -> Result<KycReply, KycReply> {
    let project_id = project_header(headers)?;
    let project = project(app, project_id, peer).await?;
    let not_found = || KycReply::error(KycErrorCode::RequestNotFound);
    let id = parse_id(id).ok_or_else(not_found)?;
    let check = app.store.check(&project.id, id).await.map_err(|e| KycReply::internal(&e))?.ok_or_else(not_found)?;
    Ok(status_reply(check.id, check.state))
}

/// The answer for a check in `state`.
pub fn status_reply(id: i64, state: CheckState) -> KycReply {
    let id = id.to_string();
    let failed = |code: KycErrorCode, description: &str| {
        KycReply::error_with(code, KycResponse::error_described(code, description).with_id(id.clone()))
    };
    match state {
        CheckState::Pending => KycReply::ok(KycResponse::pending(id)),
        CheckState::Finished(Outcome::Valid) => KycReply::ok(KycResponse::valid(id)),
        CheckState::Finished(Outcome::PassportInvalid) => {
            failed(KycErrorCode::PassportValidationFailure, DESCRIPTION_PASSPORT_INVALID)
        }
        CheckState::Finished(Outcome::PassportNotFound) => {
            failed(KycErrorCode::PassportValidationFailure, DESCRIPTION_PASSPORT_NOT_FOUND)
        }
        CheckState::Finished(Outcome::InnMismatch) => {
            failed(KycErrorCode::InnValidationFailure, KycErrorCode::InnValidationFailure.default_description())
        }
        CheckState::Finished(Outcome::InvalidSign) => {
            failed(KycErrorCode::InvalidSign, KycErrorCode::InvalidSign.default_description())
        }
    }
}
