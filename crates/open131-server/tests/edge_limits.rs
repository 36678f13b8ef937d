//! Request heads past the edge's limits (`edge::URI_MAX_BYTES`,
//! `HEADER_COUNT_MAX`, `HEADERS_MAX_BYTES`) are answered in the envelope of
//! the surface their path belongs to: the main API's and the admin's JSON,
//! the KYC API's, the pages' HTML. Past hyper's own limits hyper answers
//! itself, with an empty body (README, "Limits").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use open131_server::edge::{HEADERS_MAX_BYTES, HEADER_COUNT_MAX, URI_MAX_BYTES};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

/// `n` extra headers `x-extra-<i>: v`.
fn extra_headers(n: usize) -> HeaderMap {
    let mut h = HeaderMap::new();
    for i in 0..n {
        h.insert(HeaderName::from_bytes(format!("x-extra-{i}").as_bytes()).unwrap(), HeaderValue::from_static("v"));
    }
    h
}

/// Status, content type and body of a POST to `path` with `headers`.
async fn post(url: &str, path: &str, headers: HeaderMap) -> (u16, String, String) {
    let r = reqwest::Client::new().post(format!("{url}{path}")).headers(headers).body("{}").send().await.unwrap();
    let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), kind, r.text().await.unwrap())
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["status"], "error", "{body}");
    v["error"]["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn heads_past_the_limits_are_answered_in_each_surfaces_envelope() {
    let s = common::start().await;
    let long = "7".repeat(URI_MAX_BYTES + 1);
    let many = || extra_headers(HEADER_COUNT_MAX + 1);

    // The main API.
    let (status, _, body) = post(&s.url, &format!("/api/v1/session/status?id={long}"), HeaderMap::new()).await;
    assert_eq!((status, error_code(&body)), (414, "invalid_request".to_string()), "{body}");
    let (status, _, body) = post(&s.url, "/api/v1/session/status", many()).await;
    assert_eq!((status, error_code(&body)), (431, "invalid_request".to_string()), "{body}");
    let mut big = HeaderMap::new();
    big.insert("x-big", HeaderValue::from_str(&"b".repeat(HEADERS_MAX_BYTES)).unwrap());
    let (status, _, body) = post(&s.url, "/api/v1/session/status", big).await;
    assert_eq!((status, error_code(&body)), (431, "invalid_request".to_string()), "{body}");

    // The KYC API: its own envelope (a header error).
    let (status, _, body) = post(&s.url, &format!("/api/v1.1/check/{long}"), HeaderMap::new()).await;
    assert_eq!((status, error_code(&body)), (414, "request_header_validation_error".to_string()), "{body}");
    let (status, _, body) = post(&s.url, "/api/v2.0/check", many()).await;
    assert_eq!((status, error_code(&body)), (431, "request_header_validation_error".to_string()), "{body}");

    // The admin endpoints and the pages.
    let (status, _, body) = post(&s.url, "/admin/v1/kyc/resolve", many()).await;
    assert_eq!((status, error_code(&body)), (431, "invalid_request".to_string()), "{body}");
    let (status, kind, body) = post(&s.url, &format!("/widget/pay/{long}"), HeaderMap::new()).await;
    assert_eq!(status, 414);
    assert!(kind.starts_with("text/html") && body.contains("Address too long"), "{kind}: {body}");

    // Within the limits, the surface answers as usual (here: no signature).
    let (status, _, body) = post(&s.url, "/api/v1/session/status", extra_headers(HEADER_COUNT_MAX - 8)).await;
    assert_eq!(status, 401, "{body}");

    // Past hyper's own limit (100 headers) hyper answers itself: no body to write.
    let (status, _, body) = post(&s.url, "/api/v1/session/status", extra_headers(120)).await;
    assert_eq!((status, body.as_str()), (431, ""));
    s.stop().await;
}
