//! Server-side faults: a failing store and a panicking handler both answer a
//! generic 500 in the envelope (never a dropped connection, never internals);
//! and the real background verifier finishes checks on its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use common::faulty::{Faulty, FAIL, HANG, PANIC, PASS};
use common::{key, person, start_with};
use open131_store::Store;

const INTERNAL: &str = r#"{"status":"error","error":{"code":"internal_error","description":"Internal error. Please send the request again later."}}"#;

#[tokio::test]
async fn store_failures_and_panics_are_a_generic_500() {
    let mode = Arc::new(AtomicU8::new(PASS));
    let m = mode.clone();
    let s = start_with(|_| {}, move |inner| Arc::new(Faulty { inner, mode: m }) as Arc<dyn Store>).await;

    mode.store(FAIL, Ordering::SeqCst);
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (500, INTERNAL.to_string()));
    assert_eq!(s.get_check("alpha", "1").await, (500, INTERNAL.to_string()));

    mode.store(PANIC, Ordering::SeqCst);
    assert_eq!(s.post_check("alpha", key(0), &person()).await, (500, INTERNAL.to_string()));
    assert_eq!(s.get_check("alpha", "1").await, (500, INTERNAL.to_string()));

    // The server is still healthy afterwards.
    mode.store(PASS, Ordering::SeqCst);
    let (status, body) = s.post_check("alpha", key(0), &person()).await;
    assert_eq!((status, body.contains("\"pending\"")), (200, true), "{body}");
    s.stop().await;
}

#[tokio::test]
async fn a_request_past_the_time_limit_is_a_generic_500() {
    let mode = Arc::new(AtomicU8::new(HANG));
    let m = mode.clone();
    let s = start_with(
        |c| c.request_timeout = std::time::Duration::from_millis(200),
        move |inner| Arc::new(Faulty { inner, mode: m }) as Arc<dyn Store>,
    )
    .await;
    assert_eq!(s.get_check("alpha", "1").await, (500, INTERNAL.to_string()));
    mode.store(PASS, Ordering::SeqCst);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_verifier_finishes_checks_by_itself() {
    let s = start_with(
        |c| {
            c.background_workers = true;
            c.kyc_delay = std::time::Duration::ZERO;
        },
        |store| store,
    )
    .await;
    assert_eq!(s.post_check("alpha", key(0), &person()).await.0, 200);
    // The worker is woken by the insert; wait for its verdict (bounded, no timing assertion).
    let mut body = String::new();
    for _ in 0..500 {
        body = s.get_check("alpha", "1").await.1;
        if !body.contains("pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(body, r#"{"status":"ok","data":{"id":"1","description":"valid"}}"#);
    s.stop().await;
}

/// Each surface renders its own failures: the main API's panics and timeouts
/// come in the main API's envelope, the admin endpoints' unknown paths and
/// wrong methods in theirs.
#[tokio::test]
async fn every_surface_renders_its_own_failures() {
    let main_internal = serde_json::to_string(&open131_wire::api::ErrorEnvelope::new(
        open131_wire::api::ApiErrorCode::InternalError,
        None,
        Vec::new(),
    ))
    .unwrap();
    let mode = Arc::new(AtomicU8::new(PASS));
    let m = mode.clone();
    let s = start_with(
        |c| c.request_timeout = std::time::Duration::from_millis(300),
        move |inner| Arc::new(Faulty { inner, mode: m }) as Arc<dyn Store>,
    )
    .await;
    let status = serde_json::json!({"session_id": "ps_1"});
    for trip in [PANIC, HANG] {
        mode.store(trip, Ordering::SeqCst);
        let a = s.call("v1", "session/status", &status).await;
        assert_eq!((a.status, a.text.as_str()), (500, main_internal.as_str()), "mode {trip}");
    }
    mode.store(PASS, Ordering::SeqCst);
    let a = s.call("v1", "session/status", &status).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{}", a.text);

    let unknown = s.http.post(format!("{}/admin/v1/nothing", s.url)).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let body: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert_eq!(body["error"]["description"], "Unknown path", "the admin envelope, not the KYC one: {body}");
    let wrong = s.http.get(format!("{}/admin/v1/kyc/resolve", s.url)).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 405);
    let body: serde_json::Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    s.stop().await;
}
