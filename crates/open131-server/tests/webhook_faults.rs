//! Webhook fault injection per project (issue 13 §2): each fault as the
//! partner's receiver meets it, the delivery log saying what was injected,
//! and every webhook still delivered at least once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{id_of, start, Receiver, TestServer};
use open131_domain::webhook_faults::reorder_hold_ms;
use open131_store::{WebhookFilter, WebhookState};
use serde_json::{json, Value};

const TOKEN: &str = "faults-token";

fn payout(amount: i64) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"}
    })
}

/// A server whose `alpha` delivers to a fresh receiver, and its admin URL.
async fn server() -> (TestServer, Receiver, String) {
    let s = start().await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.app.store.topup("alpha", "rub", 10_000_000, common::START).await.unwrap();
    let mut app = s.app.clone();
    app.admin_token = Some(TOKEN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}/admin/v1/webhooks/faults", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    (s, r, admin)
}

/// Sets faults over the admin API: (status, answer).
async fn set_faults(s: &TestServer, admin: &str, body: Value) -> (u16, Value) {
    let r = s.http.post(admin).bearer_auth(TOKEN).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// The one webhook about `session` and its delivery log.
async fn log_of(s: &TestServer, session: &str) -> (open131_store::WebhookRecord, Vec<open131_store::AttemptRecord>) {
    let filter = WebhookFilter { subject_id: Some(session.into()), ..Default::default() };
    let hook = s.app.store.webhooks(filter).await.unwrap().remove(0);
    let attempts = s.app.store.webhook_attempts(hook.id).await.unwrap();
    (hook, attempts)
}

#[tokio::test]
async fn the_admin_api_sets_checks_and_removes_the_faults() {
    let (s, _r, admin) = server().await;
    let (code, answer) =
        set_faults(&s, &admin, json!({"project": "alpha", "delay_ms": 1500, "duplicate": 0.25, "reorder": true})).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["webhook_faults"], "delay=1500ms,duplicate=0.25,reorder");
    let stored = s.app.store.project("alpha").await.unwrap().unwrap().settings.webhook_faults;
    assert_eq!(stored.to_string(), "delay=1500ms,duplicate=0.25,reorder");
    for (body, field) in [
        (json!({"project": "alpha", "duplicate": 2}), "duplicate"),
        (json!({"project": "alpha", "drop_first": 11}), "drop_first"),
        (json!({"project": "alpha", "delay_ms": -1}), "delay_ms"),
        (json!({"project": "alpha", "reorder": "yes"}), "reorder"),
        (json!({"project": "alpha", "jitter": 1}), "jitter"),
    ] {
        let (code, answer) = set_faults(&s, &admin, body).await;
        assert_eq!(code, 400, "{answer}");
        assert!(answer["error"]["description"].as_str().unwrap().contains(field), "{field}: {answer}");
    }
    assert_eq!(set_faults(&s, &admin, json!({"project": "nobody"})).await.0, 404);
    let (code, answer) = set_faults(&s, &admin, json!({"project": "alpha"})).await;
    assert_eq!((code, answer["webhook_faults"].as_str()), (200, Some("none")));
    let wrong = s.http.post(&admin).bearer_auth("wrong").json(&json!({"project": "alpha"})).send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
}

#[tokio::test]
async fn lost_attempts_fail_before_the_receiver_sees_them_and_the_webhook_still_arrives() {
    let (s, r, admin) = server().await;
    assert_eq!(set_faults(&s, &admin, json!({"project": "alpha", "drop_first": 2})).await.0, 200);
    let id = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    s.settle().await;
    assert!(r.received().is_empty(), "the first attempt is lost");
    s.advance(7).await;
    assert!(r.received().is_empty(), "and the second");
    s.advance(13).await;
    assert_eq!(r.types_for(&id), ["ready_to_confirm"], "the third arrives, once");
    assert!(r.received().iter().all(|w| w.signature_ok));
    let (hook, log) = log_of(&s, &id).await;
    assert_eq!((hook.state, hook.attempts), (WebhookState::Delivered, 3));
    let seen: Vec<_> = log.iter().map(|a| (a.status, a.injected.as_deref())).collect();
    assert_eq!(seen, [(None, Some("lost before sending")), (None, Some("lost before sending")), (Some(200), None)]);
    assert_eq!(common::status(&s, "v1", &id).await["status"], "in_progress", "the session is untouched");
}

#[tokio::test]
async fn a_delay_holds_the_first_delivery_only() {
    let (s, r, admin) = server().await;
    assert_eq!(set_faults(&s, &admin, json!({"project": "alpha", "delay_ms": 2000})).await.0, 200);
    r.fail_with(&[500]);
    let id = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    s.settle().await;
    s.advance(1).await;
    assert!(r.received().is_empty(), "held for 2 s");
    s.advance(1).await;
    assert_eq!(r.received().len(), 1, "sent at 2 s (and refused by the receiver)");
    // Its retry keeps the usual schedule (5 s ± 20 %), no second delay.
    s.advance(7).await;
    assert_eq!(r.types_for(&id).len(), 2);
    let (hook, log) = log_of(&s, &id).await;
    assert_eq!(hook.state, WebhookState::Delivered);
    assert_eq!(log[0].injected.as_deref(), Some("delayed 2000 ms"));
    assert_eq!(log[1].injected, None);
}

#[tokio::test]
async fn a_duplicated_delivery_reaches_the_receiver_twice_signed_alike() {
    let (s, r, admin) = server().await;
    assert_eq!(set_faults(&s, &admin, json!({"project": "alpha", "duplicate": 1})).await.0, 200);
    let id = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    s.settle().await;
    let got = r.received();
    assert_eq!(got.len(), 2, "one webhook, two deliveries");
    assert_eq!(got[0].body, got[1].body);
    assert!(got.iter().all(|w| w.signature_ok));
    let (hook, log) = log_of(&s, &id).await;
    assert_eq!((hook.state, hook.attempts), (WebhookState::Delivered, 1), "one attempt in the log");
    assert_eq!(log[0].injected.as_deref(), Some("sent twice (the duplicate answered 200)"));
}

#[tokio::test]
async fn reordered_webhooks_arrive_in_the_order_of_their_holds_not_of_their_making() {
    let (s, r, admin) = server().await;
    assert_eq!(set_faults(&s, &admin, json!({"project": "alpha", "reorder": true})).await.0, 200);
    let mut sessions = Vec::new();
    for n in 0..6 {
        sessions.push(id_of(&s.call("v1", "session/init/payout", &payout(1_000 + n)).await));
    }
    s.settle().await;
    assert!(r.received().is_empty(), "every first delivery is held");
    // Each webhook's hold is fixed by its id: step the clock to each in turn.
    let hooks = s.app.store.webhooks(WebhookFilter::default()).await.unwrap();
    let mut holds: Vec<(u64, String)> = hooks.iter().map(|h| (reorder_hold_ms(h.id), h.subject_id.clone())).collect();
    holds.sort();
    assert!(holds.windows(2).all(|w| w[0].0 < w[1].0), "distinct holds: {holds:?}");
    let mut now_ms = 0;
    for (hold, _) in &holds {
        s.advance_ms(i64::try_from(hold - now_ms).unwrap()).await;
        now_ms = *hold;
    }
    let arrived: Vec<String> =
        r.received().iter().map(|w| w.body["session"]["id"].as_str().unwrap().to_string()).collect();
    let expected: Vec<String> = holds.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(arrived, expected);
    assert_ne!(arrived, sessions, "not in the order they were made");
    let (_, log) = log_of(&s, &sessions[0]).await;
    assert!(log[0].injected.as_deref().unwrap().starts_with("held "), "{:?}", log[0].injected);
}

#[tokio::test]
async fn before_response_the_webhook_arrives_before_the_answer_that_names_its_session() {
    let (s, r, admin) = server().await;
    // Without the fault, nothing has been sent when the answer comes (no background workers here).
    let plain = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    assert!(r.types_for(&plain).is_empty());
    assert_eq!(set_faults(&s, &admin, json!({"project": "alpha", "before_response": true})).await.0, 200);
    let id = id_of(&s.call("v1", "session/init/payout", &payout(2_000)).await);
    assert_eq!(r.types_for(&id), ["ready_to_confirm"], "delivered before the answer came back");
    let (hook, log) = log_of(&s, &id).await;
    assert_eq!(hook.state, WebhookState::Delivered);
    assert_eq!(log[0].injected.as_deref(), Some("sent before the API response"));
    // A read does not wait on deliveries; the earlier session's webhook went with the second request.
    let (older, _) = log_of(&s, &plain).await;
    assert_eq!(older.state, WebhookState::Delivered);
    let confirm = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
}

#[tokio::test]
async fn the_background_dispatcher_leaves_a_before_response_webhook_to_its_request_for_a_grace() {
    let (s, r, admin) = server().await;
    assert_eq!(set_faults(&s, &admin, json!({"project": "alpha", "before_response": true})).await.0, 200);
    let id = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    let confirm = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    assert_eq!(r.types_for(&id), ["ready_to_confirm"]);
    // The payout's result comes from the bank's step after the request, as the worker runs it.
    s.clock.advance(time::Duration::seconds(2));
    s.app.process_due().await.unwrap();
    s.app.deliver_due().await.unwrap();
    assert_eq!(r.types_for(&id), ["ready_to_confirm"], "left to a request for the grace");
    s.advance(5).await;
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "payment_finished"]);
    let filter = WebhookFilter { subject_id: Some(id.clone()), ..Default::default() };
    let last = s.app.store.webhooks(filter).await.unwrap().pop().unwrap();
    let log = s.app.store.webhook_attempts(last.id).await.unwrap();
    assert_eq!(log[0].injected.as_deref(), Some("sent after the request's grace"));
}
