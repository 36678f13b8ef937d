//! The edge every partner surface shares, before its own rules: the project
//! header, the body read under its size limit, and the project with its
//! source-IP allowlist. Each surface maps these outcomes to its own envelope
//! (the KYC API answers 422/200, the main API 401/413).

use std::net::IpAddr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use open131_store::StoreError;
use open131_wire::headers;

use crate::app::App;
use crate::projects::Project;

/// Largest accepted `X-PARTNER-PROJECT` value, in bytes.
pub const PROJECT_ID_MAX_BYTES: usize = 128;

/// The project id sent in `X-PARTNER-PROJECT`, trimmed; `None` if missing,
/// empty, not visible ASCII or longer than [`PROJECT_ID_MAX_BYTES`].
pub fn project_id(request_headers: &HeaderMap) -> Option<&str> {
    let id = request_headers.get(headers::PROJECT)?.to_str().ok()?.trim();
    (!id.is_empty() && id.len() <= PROJECT_ID_MAX_BYTES).then_some(id)
}

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit (also for a chunked body without a length).
    TooLarge { limit_bytes: usize },
    /// The client went away or sent a broken body.
    Unreadable,
}

/// Reads the whole body, refusing more than `limit_bytes`.
pub async fn read_body(body: Body, limit_bytes: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit_bytes).await.map_err(|e| {
        if is_length_limit(e) {
            BodyError::TooLarge { limit_bytes }
        } else {
            BodyError::Unreadable
        }
    })
}

/// True when reading a body failed because it exceeded the size limit.
fn is_length_limit(e: axum::Error) -> bool {
    let inner = e.into_inner();
    inner.is::<http_body_util::LengthLimitError>()
        || std::error::Error::source(&*inner).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
}

/// The project `id`, if it exists and `peer` is on its allowlist. A request
/// from an address the project did not register is answered as for an
/// unknown project, so it learns nothing.
pub async fn admitted_project(app: &App, id: &str, peer: IpAddr) -> Result<Option<Arc<Project>>, StoreError> {
    match app.projects.get(id).await? {
        Some(p) if p.admits(peer) => Ok(Some(p)),
        Some(p) => {
            tracing::info!(project = %p.id, %peer, "request from an address outside the project's allowlist");
            Ok(None)
        }
        None => Ok(None),
    }
}
