//! The request log the inspector shows (issue 13 §3): the latest requests
//! each project made to the KYC and main APIs and what they were answered,
//! kept in this node's memory, a bounded ring per project.
//!
//! Recording is cheap on purpose: the middleware keeps the bytes as they
//! went by (the request body copied while the handler reads it, the
//! response buffered), wrapped in [`Personal`]; parsing and masking happen
//! only when the inspector reads them ([`LoggedRequest::view`]).
//!
//! Decided where the issue is silent [INF]: the log is per node and lost on
//! restart (it is a tool for looking, not a record: the ledger, the
//! sessions and the webhook log are the records); only requests naming an
//! existing project are kept, and not those refused for a wrong signature
//! (nobody may write into a project's log without its key; the KYC API's
//! unsigned status reads are kept); `serve --request-log 0` turns it off.
//!
//! Invariant: a body leaves this module only through [`masked_json`], so no
//! personal data reaches the inspector.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::Response;
use http_body::Frame;
use open131_domain::personal::{masked_json, Personal};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::app::App;

/// Requests kept per project by default (the oldest go first).
pub const REQUEST_LOG_ENTRIES_DEFAULT: usize = 200;
/// Most bytes of one body kept; a longer body is shown as its length.
pub const REQUEST_LOG_BODY_MAX_BYTES: usize = 16 * 1024;

/// One request and its answer, as they went by.
pub struct LoggedRequest {
    pub seq: u64,
    /// When it was answered, on the project's clock.
    pub at: OffsetDateTime,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub duration_us: u64,
    pub request_id: String,
    request: Personal<Bytes>,
    response: Personal<Bytes>,
}

impl LoggedRequest {
    /// Whether either body holds `text` at all: a cheap test before [`Self::view`] parses them.
    pub fn mentions(&self, text: &str) -> bool {
        let needle = text.as_bytes();
        !needle.is_empty()
            && [self.request.expose(), self.response.expose()]
                .iter()
                .any(|body| memchr::memmem::find(body, needle).is_some())
    }

    /// The inspector's form: both bodies parsed and masked, and the sessions they name.
    pub fn view(&self) -> Value {
        let (request, response) = (body_view(self.request.expose()), body_view(self.response.expose()));
        let mut sessions = Vec::new();
        for body in [&request, &response] {
            sessions_named(body, None, &mut sessions);
        }
        sessions.dedup();
        json!({"seq": self.seq, "at": open131_wire::api::timestamp(self.at), "method": self.method,
            "path": self.path, "status": self.status, "duration_us": self.duration_us,
            "request_id": self.request_id, "request": request, "response": response, "sessions": sessions})
    }
}

fn body_view(bytes: &Bytes) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    if bytes.len() > REQUEST_LOG_BODY_MAX_BYTES {
        return json!({"unshown": format!("longer than {REQUEST_LOG_BODY_MAX_BYTES} bytes")});
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => masked_json(&v),
        Err(_) => json!({"unshown": format!("{} bytes, not JSON", bytes.len())}),
    }
}

/// Session ids a (masked) body names: `session_id` anywhere, and the `id`
/// of a `session` object (the main API's answers).
fn sessions_named(value: &Value, key: Option<&str>, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("session_id", Value::String(id)) => push_new(out, id),
                    ("id", Value::String(id)) if key == Some("session") => push_new(out, id),
                    _ => sessions_named(v, Some(k), out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| sessions_named(v, key, out)),
        _ => {}
    }
}

fn push_new(out: &mut Vec<String>, id: &str) {
    if !out.iter().any(|s| s == id) {
        out.push(id.to_string());
    }
}

/// The rings, one per project.
pub struct RequestLog {
    entries_max: usize,
    rings: Mutex<Rings>,
}

#[derive(Default)]
struct Rings {
    next_seq: u64,
    by_project: HashMap<String, VecDeque<Arc<LoggedRequest>>>,
}

impl RequestLog {
    /// A log keeping `entries_max` requests per project (0: none).
    pub fn new(entries_max: usize) -> Self {
        Self { entries_max, rings: Mutex::new(Rings::default()) }
    }

    fn enabled(&self) -> bool {
        self.entries_max > 0
    }

    fn push(&self, project: &str, mut logged: LoggedRequest) {
        let evicted = {
            let Ok(mut rings) = self.rings.lock() else { return };
            rings.next_seq += 1;
            logged.seq = rings.next_seq;
            // `get_mut` first: the project's name is copied only for its first entry.
            let ring = match rings.by_project.get_mut(project) {
                Some(ring) => ring,
                None => rings.by_project.entry(project.to_string()).or_default(),
            };
            let evicted = if ring.len() >= self.entries_max { ring.pop_front() } else { None };
            ring.push_back(Arc::new(logged));
            evicted
        };
        // Freed after the lock: the other requests' pushes do not wait on it.
        drop(evicted);
    }

    /// A project's requests, newest first.
    pub fn of(&self, project: &str) -> Vec<Arc<LoggedRequest>> {
        let Ok(rings) = self.rings.lock() else { return Vec::new() };
        rings.by_project.get(project).map(|r| r.iter().rev().cloned().collect()).unwrap_or_default()
    }
}

/// The KYC and main APIs' part of the front layer: runs the request with
/// `run` and keeps it, with its answer, when it names an existing project.
pub async fn record<F, Fut>(app: &App, request_id: &str, req: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some(project) = crate::edge::project_id(req.headers()).map(str::to_string) else {
        return run(req).await;
    };
    if !app.request_log.enabled() {
        return run(req).await;
    }
    let started = std::time::Instant::now();
    // `as_str`, not `to_string`: a method's `Display` goes through the formatter.
    let (method, path) = (req.method().as_str().to_string(), req.uri().path().to_string());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let req = req.map(|body| Body::new(Tee { inner: body, seen: seen.clone() }));
    let response = run(req).await;
    let (parts, body) = response.into_parts();
    // Our own answers on these surfaces are whole JSON bodies, never streams.
    let answer = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(answer) => answer,
        Err(e) => {
            tracing::error!(error = %e, "an answer could not be read for the request log");
            return Response::from_parts(parts, Body::empty());
        }
    };
    if parts.extensions.get::<NotKept>().is_some() || refused_caller(parts.status, &answer) {
        return Response::from_parts(parts, Body::from(answer));
    }
    // One read of the project: whether it exists, and its clock.
    if let Ok(Some(p)) = app.projects.get(&project).await {
        let request = seen.lock().map(|mut b| Bytes::from(std::mem::take(&mut *b))).unwrap_or_default();
        let kept = answer.slice(..answer.len().min(REQUEST_LOG_BODY_MAX_BYTES + 1));
        let logged = LoggedRequest {
            seq: 0,
            at: p.settings.clock_offset.apply(app.clock.now()),
            method,
            path,
            status: parts.status.as_u16(),
            duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            request_id: request_id.to_string(),
            request: Personal::new(request),
            response: Personal::new(kept),
        };
        app.request_log.push(&project, logged);
    }
    Response::from_parts(parts, Body::from(answer))
}

/// Marks an answer given before the caller could prove to be the project
/// (an unknown path, a method not allowed): such a request is not kept.
#[derive(Debug, Clone, Copy)]
struct NotKept;

/// `response`, marked so the request log does not keep its request.
pub fn not_kept(mut response: Response) -> Response {
    response.extensions_mut().insert(NotKept);
    response
}

/// Whether the answer refused a caller that did not prove to be the
/// project (the main API's 401, the KYC API's `invalid_sign`): such a
/// request is not kept, so nobody can write into a project's log, or push
/// its entries out, without its key.
fn refused_caller(status: axum::http::StatusCode, answer: &[u8]) -> bool {
    const INVALID_SIGN: &[u8] = b"\"invalid_sign\"";
    status == axum::http::StatusCode::UNAUTHORIZED || memchr::memmem::find(answer, INVALID_SIGN).is_some()
}

/// A request body that keeps a copy of what its reader took (up to one
/// byte past [`REQUEST_LOG_BODY_MAX_BYTES`], enough to say it was longer).
struct Tee {
    inner: Body,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Ok(mut seen)) = (frame.data_ref(), self.seen.lock()) {
                let room = (REQUEST_LOG_BODY_MAX_BYTES + 1).saturating_sub(seen.len());
                seen.extend_from_slice(&data[..data.len().min(room)]);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logged(request: &str, response: &str) -> LoggedRequest {
        LoggedRequest {
            seq: 0,
            at: time::macros::datetime!(2026-12-01 12:00 UTC),
            method: "POST".into(),
            path: "/api/v1/session/init/payout".into(),
            status: 200,
            duration_us: 10,
            request_id: "req_1".into(),
            request: Personal::new(Bytes::from(request.to_string())),
            response: Personal::new(Bytes::from(response.to_string())),
        }
    }

    #[test]
    fn each_project_keeps_its_newest_requests_only() {
        let log = RequestLog::new(2);
        for n in 0..3 {
            log.push("alpha", logged(&format!("{{\"n\": {n}}}"), "{}"));
        }
        log.push("beta", logged("{}", "{}"));
        let alpha: Vec<u64> = log.of("alpha").iter().map(|r| r.seq).collect();
        assert_eq!(alpha, [3, 2], "newest first, the oldest gone");
        assert_eq!(log.of("beta").len(), 1);
        assert!(log.of("gamma").is_empty());
        assert!(!RequestLog::new(0).enabled());
    }

    #[test]
    fn a_view_masks_both_bodies_and_names_the_sessions() {
        let request = r#"{"session_id": "ps_a", "payment_method": {"card": {"number": "4242424242424242"}}}"#;
        let response = r#"{"status": "ok", "session": {"id": "ps_b", "payouts": [{"id": "po_1"}]}}"#;
        let view = logged(request, response).view();
        assert_eq!(view["request"]["payment_method"]["card"]["number"], "***4242");
        assert_eq!(view["response"]["session"]["id"], "ps_b");
        assert_eq!(view["sessions"], json!(["ps_a", "ps_b"]));
        assert!(!view.to_string().contains("4242424242424242"));
    }

    #[test]
    fn a_refused_caller_is_not_kept() {
        use axum::http::StatusCode;
        assert!(refused_caller(StatusCode::UNAUTHORIZED, b"{}"));
        let kyc =
            br#"{"status":"error","error":{"code":"invalid_sign","description":"Signature verification failure"}}"#;
        assert!(refused_caller(StatusCode::OK, kyc));
        assert!(!refused_caller(StatusCode::BAD_REQUEST, br#"{"status":"error"}"#));
    }

    #[test]
    fn a_body_that_is_not_json_or_too_long_is_not_shown() {
        let view = logged("passport 4510123456", "").view();
        assert_eq!(view["request"], json!({"unshown": "19 bytes, not JSON"}));
        assert_eq!(view["response"], Value::Null);
        let long = format!("\"{}\"", "x".repeat(REQUEST_LOG_BODY_MAX_BYTES + 1));
        assert_eq!(logged(&long, "{}").view()["request"]["unshown"], "longer than 16384 bytes");
    }
}
