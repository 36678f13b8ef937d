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
/// Longest request target (path and query), in bytes. Below hyper's own
/// limit (65,534), so a longer one is answered in the surface's envelope.
pub const URI_MAX_BYTES: usize = 8 * 1024;
/// Most request headers. Below hyper's own limit (100 headers), for the same reason.
pub const HEADER_COUNT_MAX: usize = 64;
/// Most bytes of request headers (names and values). Below hyper's own
/// limit (about 400 KiB for the whole head).
pub const HEADERS_MAX_BYTES: usize = 32 * 1024;

/// What part of a request is past its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    /// The path and query ([`URI_MAX_BYTES`]): 414.
    Uri,
    /// The headers ([`HEADER_COUNT_MAX`], [`HEADERS_MAX_BYTES`]): 431.
    Headers,
}

/// Whether a request's head is past the edge's limits.
pub fn too_large(uri: &axum::http::Uri, request_headers: &HeaderMap) -> Option<TooLarge> {
    let target = uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target > URI_MAX_BYTES {
        return Some(TooLarge::Uri);
    }
    let bytes: usize = request_headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    (request_headers.len() > HEADER_COUNT_MAX || bytes > HEADERS_MAX_BYTES).then_some(TooLarge::Headers)
}

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
