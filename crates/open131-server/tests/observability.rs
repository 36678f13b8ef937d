//! What operators watch (issue 13 §5): `/metrics` behind the admin token
//! (and alone on a listener of its own), request ids, and the check that
//! no log line carries personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{start, Receiver, TestServer};
use serde_json::{json, Value};

const TOKEN: &str = "metrics-token";

fn payout(amount: i64) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"}
    })
}

/// The test server's app behind the admin token, on a second listener.
async fn admin_url(s: &TestServer) -> String {
    let mut app = s.app.clone();
    app.admin_token = Some(TOKEN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    url
}

async fn scrape(s: &TestServer, url: &str, token: Option<&str>) -> (u16, String, String) {
    let mut request = s.http.get(format!("{url}/metrics"));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let r = request.send().await.unwrap();
    let kind = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), kind, r.text().await.unwrap())
}

/// The value of the sample `name{labels}` (labels exactly as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_commits_deliveries_and_the_backlog() {
    let s = start().await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let admin = admin_url(&s).await;

    // Without the token: the admin envelope's 401, and not a figure.
    let (code, _, text) = scrape(&s, &admin, None).await;
    assert_eq!(code, 401);
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"]["code"], "unauthorized");

    // Two payouts: the first one's webhook fails (and waits for its retry), the second's is delivered.
    r.fail_with(&[500]);
    let first = s.call("v1", "session/init/payout", &payout(1_000)).await;
    assert_eq!(first.status, 200, "{}", first.text);
    s.settle().await;
    let (code, kind, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(code, 200);
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    assert_eq!(sample(&text, r#"open131_webhooks_pending{project="alpha"}"#), Some(1.0), "{text}");
    let second = s.call("v1", "session/init/payout", &payout(2_000)).await;
    assert_eq!(second.status, 200);
    s.settle().await;
    let unknown = s.call("v1", "session/no/such/method", &json!({})).await;
    assert_eq!(unknown.status, 404);

    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    let count = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
    assert_eq!(count(r#"open131_http_requests_total{surface="main",method="session/init/payout",status="200"}"#), 2.0);
    assert_eq!(count(r#"open131_http_requests_total{surface="main",method="unknown",status="404"}"#), 1.0);
    assert_eq!(count(r#"open131_http_requests_total{surface="admin",method="/metrics",status="401"}"#), 1.0);
    assert!(count(r#"open131_http_request_duration_seconds_count{surface="main"}"#) >= 3.0);
    assert_eq!(count(r#"open131_webhook_attempts_total{project="alpha",result="failed"}"#), 1.0);
    assert_eq!(count(r#"open131_webhook_attempts_total{project="alpha",result="delivered"}"#), 1.0);
    // The first webhook waits for its retry: still pending, not yet due again.
    assert_eq!(count(r#"open131_webhooks_pending{project="alpha"}"#), 1.0);
    assert!(count("open131_store_commit_jobs_count") >= 2.0, "each payout committed");
    assert!(count("open131_store_commit_jobs_sum") >= count("open131_store_commit_jobs_count"));
    assert_eq!(count("open131_kyc_checks_pending"), 0.0);
    assert!(!text.contains("beta"), "a project with nothing to show has no series");
    assert!(!text.contains("2200000000004940") && !text.contains("Иванов"));
    s.stop().await;
}

#[tokio::test]
async fn the_verifiers_queue_and_due_timers_are_read_when_scraped() {
    let s = start().await;
    let admin = admin_url(&s).await;
    for n in 0..3 {
        let person = common::with("agent_contract_number", json!(format!("M-{n}")));
        let (code, text) = s.post_check("alpha", common::key(0), &person).await;
        assert_eq!(code, 200, "{text}");
    }
    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(sample(&text, "open131_kyc_checks_pending"), Some(3.0), "{text}");
    s.verify_all().await;
    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(sample(&text, "open131_kyc_checks_pending"), Some(0.0));
    // A payout waiting for its confirmation has a timer (its timeout) not yet due.
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    assert_eq!(s.call("v1", "session/init/payout", &payout(1_000)).await.status, 200);
    // The bank's preparation (no delay configured) was written with the
    // payout: what is left is the confirmation's timeout, not due yet.
    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(sample(&text, "open131_session_timers_due"), Some(0.0), "{text}");
    // Due on the project's own clock once it is moved past the timeout.
    let (store, now) = (s.app.store.as_ref(), open131_server::Clock::now(s.clock.as_ref()));
    let advance = open131_server::clock::ClockChange::Advance(time::Duration::days(30));
    open131_server::clock::change_project_clock(store, "alpha", advance, now).await.unwrap();
    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(sample(&text, "open131_session_timers_due"), Some(1.0), "{text}");
    open131_server::clock::change_project_clock(store, "alpha", open131_server::clock::ClockChange::Reset, now)
        .await
        .unwrap();
    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(sample(&text, "open131_session_timers_due"), Some(0.0), "back on real time");
    s.clock.advance(time::Duration::days(30));
    let (_, _, text) = scrape(&s, &admin, Some(TOKEN)).await;
    assert_eq!(sample(&text, "open131_session_timers_due"), Some(1.0), "{text}");
    s.stop().await;
}

#[tokio::test]
async fn the_metrics_listener_serves_the_figures_without_a_token_and_nothing_else() {
    let s = start().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = s.app.clone();
    tokio::spawn(async move { axum::serve(listener, open131_server::metrics::router(app)).await });
    let (code, _, text) = scrape(&s, &url, None).await;
    assert_eq!(code, 200);
    assert!(text.contains("# TYPE open131_store_commit_jobs histogram"), "{text}");
    let api = s.http.post(format!("{url}/api/v1/session/status")).body("{}").send().await.unwrap();
    assert_eq!(api.status().as_u16(), 404, "the metrics listener serves no API");
    // Without a token on the main listener, the admin surface is off: the figures are not served.
    let (code, _, _) = scrape(&s, &s.url, None).await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn every_response_carries_a_request_id_the_callers_when_it_is_plain() {
    let s = start().await;
    let response = s.http.post(format!("{}/api/v1/session/status", s.url)).body("{}").send().await.unwrap();
    let made = response.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(made.starts_with("req_") && made.len() == 28, "{made}");
    let again = s.http.post(format!("{}/api/v1/session/status", s.url)).body("{}").send().await.unwrap();
    assert_ne!(again.headers()["x-request-id"].to_str().unwrap(), made, "each request its own");
    let odd = s
        .http
        .post(format!("{}/api/v1.1/check", s.url))
        .header("x-request-id", "a b\"c")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(odd.headers()["x-request-id"].to_str().unwrap().starts_with("req_"), "an odd id is replaced");
    let long = "x".repeat(open131_server::app::REQUEST_ID_MAX_BYTES + 1);
    let page = s.http.get(format!("{}/no/such/page", s.url)).header("x-request-id", &long).send().await.unwrap();
    assert_ne!(page.headers()["x-request-id"].to_str().unwrap(), long);
    // The caller's plain id is kept.
    let kept = s
        .http
        .post(format!("{}/api/v1/session/status", s.url))
        .header("x-request-id", "abc-17.x_y")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "abc-17.x_y");
}

/// The inspector's request log and a session's postings (issue 13 §3):
/// each project sees its own requests with their answers, masked; a
/// session lists the postings its payout made (summing to zero) and the
/// requests that named it; another project learns nothing of it.
#[tokio::test]
async fn the_inspector_shows_requests_masked_and_a_sessions_postings() {
    let s = start().await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let admin = admin_url(&s).await;
    let session = common::id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    s.settle().await;
    let confirm = s.call("v1", "session/confirm", &json!({"session_id": session})).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    s.advance(2).await;
    let status = s.call("v1", "session/status", &json!({"session_id": session})).await;
    assert_eq!(status.status, 200, "{}", status.text);
    let (code, check) = s.post_check("alpha", common::key(0), &common::person()).await;
    assert_eq!(code, 200, "{check}");
    let body = serde_json::to_vec(&json!({"session_id": session})).unwrap();
    let unknown = s.call_bytes("v1", "session/status", "nope", common::key(0), body.clone(), None).await;
    assert_eq!(unknown.status, 401);
    // Signed with another project's key: refused, and kept out of alpha's log.
    let forged = s.call_bytes("v1", "session/status", "alpha", common::key(1), body, None).await;
    assert_eq!(forged.status, 401);
    // Refused before any signature is read (an unknown path, a method not
    // allowed): naming alpha does not put them in alpha's log either.
    for (method, path, status) in [
        (reqwest::Method::POST, "/api/v1.1/nothing", 404),
        (reqwest::Method::POST, "/api/v1/session/no/such/method", 404),
        (reqwest::Method::GET, "/api/v1.1/check", 405),
    ] {
        let r = s.http.request(method, format!("{}{path}", s.url)).header("X-PARTNER-PROJECT", "alpha").send().await;
        assert_eq!(r.unwrap().status().as_u16(), status, "{path}");
    }

    let get = |path: String| {
        let request = s.http.get(format!("{admin}{path}")).bearer_auth(TOKEN);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (code, text) = get("/admin/v1/inspect/alpha".into()).await;
    assert_eq!(code, 200, "{text}");
    let view: Value = serde_json::from_str(&text).unwrap();
    let requests = view["requests"].as_array().unwrap();
    let paths: Vec<&str> = requests.iter().map(|r| r["path"].as_str().unwrap()).collect();
    let expected =
        ["/api/v1.1/check", "/api/v1/session/status", "/api/v1/session/confirm", "/api/v1/session/init/payout"];
    assert_eq!(paths, expected, "newest first");
    let init = &requests[3];
    assert_eq!((init["method"].as_str(), init["status"].as_u64()), (Some("POST"), Some(200)));
    assert_eq!(init["request"]["amount_details"], json!({"amount": 1_000, "currency": "rub"}));
    assert_eq!(init["request"]["payment_method"]["card"]["bank_card"]["number"], "***4940");
    assert_eq!(init["response"]["session"]["id"], session.as_str());
    assert!(init["request_id"].as_str().unwrap().starts_with("req_"), "{init}");
    for secret in ["2200000000004940", "Иванов", "Петров", "4510123456", "500100732259", "ivan@example.ru"]
    {
        assert!(!text.contains(secret), "personal data {secret:?} in the inspector's view");
    }
    let (_, beta) = get("/admin/v1/inspect/beta".into()).await;
    let beta: Value = serde_json::from_str(&beta).unwrap();
    assert_eq!(beta["requests"], json!([]), "beta made no request");

    let (code, text) = get(format!("/admin/v1/inspect/alpha/sessions/{session}")).await;
    assert_eq!(code, 200, "{text}");
    let detail: Value = serde_json::from_str(&text).unwrap();
    let postings = detail["postings"].as_array().unwrap();
    assert!(!postings.is_empty(), "{detail}");
    assert_eq!(postings.iter().map(|p| p["amount"].as_i64().unwrap()).sum::<i64>(), 0, "double entry: {detail}");
    assert!(postings.iter().any(|p| p["amount"] == 1_000), "{detail}");
    let named: Vec<&str> = detail["requests"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(named, expected[1..]);
    assert_eq!(detail["session"]["state"], "accepted");
    let (code, _) = get(format!("/admin/v1/inspect/beta/sessions/{session}")).await;
    assert_eq!(code, 404, "another project's session");
}
