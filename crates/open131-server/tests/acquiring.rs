//! Acquiring card payments (issue 9) over real HTTP with a manual clock, on
//! the backend the environment selects: init and start, the partner's
//! confirmation, 3-D Secure's redirect, the issuer's verdicts from the sandbox
//! table, holds captured in whole or in part or cancelled or timed out, the
//! fee, the webhooks, and the ledger after each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fields, id_of, server, status, TestServer};
use open131_domain::ledger::Book;
use open131_domain::settings::{CaptureMode, FeeRate};
use open131_store::SettingsChange;
use serde_json::{json, Value};

const PLAIN_CARD: &str = "4242424242424242";
const THREE_DS_CARD: &str = "4000000000003220";

fn payment(card: &str, amount: i64) -> Value {
    json!({
        "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": card,
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": amount, "currency": "rub"},
        "customer": {"reference": "lucky", "contacts": [{"email": "lucky@example.com"}]},
        "payment_options": {"return_url": "https://shop.example/back"},
        "metadata": "{\"order\":\"A-1\"}"
    })
}

/// The session's one payment, under the version's name.
fn the_payment(session: &Value, version: &str) -> Value {
    let key = if version == "v1" { "acquiring_payments" } else { "payment_list" };
    let other = if version == "v1" { "payment_list" } else { "acquiring_payments" };
    assert!(session.get(other).is_none(), "{version} names the list {key} only: {session}");
    assert_eq!(session[key].as_array().map(Vec::len), Some(1), "{session}");
    session[key][0].clone()
}

/// (available, held, acquiring, fees) of the main rouble wallet.
async fn wallet(s: &TestServer) -> (i64, i64, i64, i64) {
    let w = s.app.store.wallets("alpha").await.unwrap();
    let w = w.iter().find(|w| w.book == Book::Main && w.currency == "rub").cloned();
    w.map_or((0, 0, 0, 0), |w| (w.available, w.held, w.acquiring, w.fees))
}

fn hold_with_fee() -> SettingsChange {
    SettingsChange {
        auto_confirm: Some(true),
        capture: Some(CaptureMode::Hold),
        capture_timeout_s: Some(3_600),
        payment_fee: FeeRate::parse("2.5%"),
        ..SettingsChange::default()
    }
}

#[tokio::test]
async fn a_card_payment_is_confirmed_authorized_and_captured_at_once() {
    let (s, r) = server(SettingsChange::default()).await;
    let a = s.call("v1", "session/init/payment", &payment(PLAIN_CARD, 10_000)).await;
    let id = id_of(&a);
    let p = the_payment(&a.body["session"], "v1");
    assert_eq!(
        (p["status"].as_str(), a.body["session"]["status"].as_str()),
        (Some("in_progress"), Some("in_progress"))
    );
    assert!(p["id"].as_str().unwrap().starts_with("pm_"), "{p}");
    assert_eq!(
        p["payment_details"],
        json!({"type": "card", "card": {"brand": "visa", "last4": "4242", "bin": "424242"}})
    );
    assert!(!a.text.contains(PLAIN_CARD) && !a.text.contains("\"123\""), "the card is masked: {}", a.text);
    assert_eq!(p["refunds"], json!([]), "always sent: the SDK's getRefunds() is not nullable");
    assert_eq!(p["amounts"]["gross"], json!({"amount": 0, "currency": "rub"}), "nothing captured yet");
    assert_eq!(p["customer"]["reference"], "lucky");
    assert_eq!(p["metadata"], "{\"order\":\"A-1\"}");
    assert_eq!(p["payment_options"]["return_url"], "https://shop.example/back");

    // The bank prepares it: the partner is asked to confirm (projects confirm by default).
    s.settle().await;
    let session = status(&s, "v2", &id).await;
    assert_eq!((session["status"].as_str(), session["next_action"].as_str()), (Some("in_progress"), Some("confirm")));
    assert_eq!(the_payment(&session, "v2")["status"], "pending");
    assert_eq!(r.types_for(&id), ["ready_to_confirm"]);

    let a = s.call("v2", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(a.body["session"].get("next_action").is_none(), "{}", a.text);
    assert_eq!(wallet(&s).await, (0, 0, 0, 0), "nothing moves before the issuer answers");
    s.advance(1).await;
    let session = status(&s, "v1", &id).await;
    assert_eq!(session["status"], "accepted");
    let p = the_payment(&session, "v1");
    assert_eq!((p["status"].as_str(), p.get("error")), (Some("succeeded"), None));
    assert!(p["finished_at"].is_string(), "{p}");
    assert_eq!(
        (p["amounts"]["gross"]["amount"].as_i64(), p["amounts"]["net"]["amount"].as_i64()),
        (Some(10_000), Some(10_000))
    );
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "payment_finished"]);
    // Captured at once: available, the card networks' side owes it.
    assert_eq!(wallet(&s).await, (10_000, 0, -10_000, 0));
    let finished = r.received().into_iter().find(|h| h.body["type"] == "payment_finished").unwrap();
    assert!(finished.signature_ok);
    assert_eq!(finished.body["session"]["acquiring_payments"][0]["status"], "succeeded", "the session's naming (v1)");
    s.stop().await;
}

#[tokio::test]
async fn a_hold_is_captured_in_part_the_rest_released_and_the_fee_charged() {
    let (s, r) = server(hold_with_fee()).await;
    let id = id_of(&s.call("v2", "session/init/payment", &payment(PLAIN_CARD, 10_000)).await);
    s.settle().await;
    s.advance(1).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!(session["next_action"], "capture", "{session}");
    assert_eq!(the_payment(&session, "v2")["status"], "pending");
    assert_eq!(r.types_for(&id), ["ready_to_capture"], "auto-confirmed: no ready_to_confirm");
    assert_eq!(wallet(&s).await, (0, 10_000, -10_000, 0), "held, not available");

    // More than held, another currency, an unknown field: refused by name, nothing changes.
    let too_much = json!({"session_id": id, "amount_details": {"amount": 10_001, "currency": "rub"}});
    let a = s.call("v2", "session/capture", &too_much).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["amount_details.amount".to_string()]), "{}", a.text);
    let a = s.call("v2", "session/capture", &json!({"session_id": id, "amount": 1})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["amount".to_string()]), "{}", a.text);

    let part = json!({"session_id": id, "amount_details": {"amount": 6_000, "currency": "rub"}});
    let a = s.call("v2", "session/capture", &part).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!((a.body["session"]["status"].as_str(), p["status"].as_str()), (Some("accepted"), Some("succeeded")));
    assert_eq!(p["amount_details"]["amount"], 10_000, "what was asked");
    assert_eq!(p["amounts"]["gross"]["amount"], 6_000, "what was captured");
    assert_eq!(p["amounts"]["fee"]["merchant_fee"], json!({"amount": 150, "currency": "rub"}), "2.5% of 60.00");
    assert_eq!(p["amounts"]["net"]["amount"], 5_850);
    // 60.00 captured less 1.50 fee available; 40.00 back to the customer.
    assert_eq!(wallet(&s).await, (5_850, 0, -6_000, 150));
    s.settle().await;
    assert_eq!(r.types_for(&id), ["ready_to_capture", "payment_finished"]);
    // Captured once only.
    let a = s.call("v2", "session/capture", &json!({"session_id": id})).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("session_wrong_state")));
    s.stop().await;
}

#[tokio::test]
async fn a_confirmation_timer_left_from_before_the_confirm_does_not_end_a_later_hold() {
    let hold = SettingsChange {
        capture: Some(CaptureMode::Hold),
        capture_timeout_s: Some(3 * 24 * 3_600),
        ..SettingsChange::default()
    };
    let (s, _r) = server(hold).await;
    let id = id_of(&s.call("v2", "session/init/payment", &payment(PLAIN_CARD, 10_000)).await);
    s.settle().await;
    assert_eq!(s.call("v2", "session/confirm", &json!({"session_id": id})).await.status, 200);
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &id).await["next_action"], "capture");
    // Past the confirmation timeout (24 h): still held.
    s.advance(25 * 3_600).await;
    assert_eq!(status(&s, "v2", &id).await["next_action"], "capture");
    assert_eq!(wallet(&s).await, (0, 10_000, -10_000, 0));
    // Past the capture timeout: released.
    s.advance(2 * 24 * 3_600).await;
    assert_eq!(status(&s, "v2", &id).await["error"]["code"], "capture_timeout");
    assert_eq!(wallet(&s).await, (0, 0, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn a_hold_cancelled_or_not_captured_in_time_goes_back_to_the_customer() {
    let (s, r) = server(hold_with_fee()).await;
    let cancelled = id_of(&s.call("v1", "session/init/payment", &payment(PLAIN_CARD, 5_000)).await);
    let timed_out = id_of(&s.call("v1", "session/init/payment", &payment(PLAIN_CARD, 7_000)).await);
    s.settle().await;
    s.advance(1).await;
    assert_eq!(wallet(&s).await, (0, 12_000, -12_000, 0));
    let a = s.call("v1", "session/cancel", &json!({"session_id": cancelled})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["session"]["status"], "cancelled");
    assert_eq!(a.body["session"]["error"]["code"], "session_cancelled_by_partner");
    assert_eq!(wallet(&s).await, (0, 7_000, -7_000, 0));

    s.advance(3_600).await;
    let session = status(&s, "v1", &timed_out).await;
    assert_eq!(
        (session["status"].as_str(), session["error"]["code"].as_str()),
        (Some("cancelled"), Some("capture_timeout"))
    );
    assert_eq!(the_payment(&session, "v1")["status"], "failed");
    assert_eq!(wallet(&s).await, (0, 0, 0, 0), "every hold released, no fee on a payment not captured");
    assert_eq!(r.types_for(&timed_out), ["ready_to_capture", "payment_finished"]);
    s.stop().await;
}

#[tokio::test]
async fn every_issuer_decline_of_the_sandbox_table_fails_the_payment_with_its_code() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let table = [
        (13_202, "declined_by_issuer_bank"),
        (13_203, "insufficient_funds"),
        (13_204, "bank_card_expired"),
        (13_205, "activity_count_exceeded"),
        (13_206, "not_permitted_by_issuer_bank"),
        (13_207, "card_number_does_not_exist"),
        (13_208, "amount_less_allowed_provider"),
    ];
    let mut ids = Vec::new();
    for (amount, _) in table {
        ids.push(id_of(&s.call("v2", "session/init/payment", &payment(PLAIN_CARD, amount)).await));
    }
    s.settle().await;
    s.advance(1).await;
    for (id, (_, code)) in ids.iter().zip(table) {
        let session = status(&s, "v2", id).await;
        assert_eq!((session["status"].as_str(), session["error"]["code"].as_str()), (Some("error"), Some(code)));
        let p = the_payment(&session, "v2");
        assert_eq!((p["status"].as_str(), p["error"]["code"].as_str()), (Some("failed"), Some(code)));
        assert!(p["error"]["description"].is_string());
        assert_eq!(r.types_for(id), ["payment_finished"]);
    }
    assert_eq!(wallet(&s).await, (0, 0, 0, 0), "a declined payment moves no money");

    // The slow success: still with the issuer after the usual delay, captured after the long one.
    let slow = id_of(&s.call("v2", "session/init/payment", &payment(PLAIN_CARD, 13_209)).await);
    s.settle().await;
    s.advance(1).await;
    assert_eq!(the_payment(&status(&s, "v2", &slow).await, "v2")["status"], "in_progress");
    s.advance(60).await;
    assert_eq!(status(&s, "v2", &slow).await["status"], "accepted");
    assert_eq!(wallet(&s).await, (13_209, 0, -13_209, 0));
    s.stop().await;
}

#[tokio::test]
async fn a_three_ds_card_sends_the_customer_to_the_servers_own_page() {
    let (s, r) = server(SettingsChange::default()).await;
    let id = id_of(&s.call("v2", "session/init/payment", &payment(THREE_DS_CARD, 10_000)).await);
    s.settle().await;
    let a = s.call("v2", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!(p["status"], "pending");
    let redirect = &p["customer_interaction"]["redirect"];
    assert_eq!(p["customer_interaction"]["type"], "redirect");
    assert_eq!(redirect["url"].as_str(), Some(format!("{}/3ds/alpha/{id}", s.url).as_str()), "{p}");
    assert_eq!((redirect["base_url"].as_str(), redirect["method"].as_str()), (redirect["url"].as_str(), Some("GET")));
    s.settle().await;
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "action_required"]);
    let hook = r.received().into_iter().find(|h| h.body["type"] == "action_required").unwrap();
    assert_eq!(hook.body["session"]["payment_list"][0]["customer_interaction"]["redirect"]["url"], redirect["url"]);

    // The customer never comes back: 3-D Secure fails when the wait runs out.
    s.advance(24 * 3_600).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!((session["status"].as_str(), session["error"]["code"].as_str()), (Some("error"), Some("3DS_error")));
    assert!(the_payment(&session, "v2").get("customer_interaction").is_none());
    s.stop().await;
}

#[tokio::test]
async fn the_sync_form_answers_with_what_comes_next() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, _r) = server(auto).await;
    let a = s.call("v2", "session/init/payment/sync", &payment(THREE_DS_CARD, 10_000)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!(p["status"], "pending");
    assert_eq!(p["customer_interaction"]["type"], "redirect", "{p}");
    // Without 3-D Secure it is already with the issuer.
    let a = s.call("v2", "session/init/payment/sync", &payment(PLAIN_CARD, 10_000)).await;
    assert_eq!(the_payment(&a.body["session"], "v2")["status"], "in_progress");
    s.settle().await;
    s.stop().await;
}

#[tokio::test]
async fn a_created_session_is_started_as_a_payment_and_bad_requests_name_their_fields() {
    let (s, _r) = server(SettingsChange::default()).await;
    let id = id_of(&s.call("v2", "session/create", &json!({})).await);
    let mut body = payment(PLAIN_CARD, 10_000);
    body["session_id"] = json!(id);
    let a = s.call("v2", "session/start/payment", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(the_payment(&a.body["session"], "v2")["status"], "in_progress");
    // Started once.
    let a = s.call("v2", "session/start/payment", &body).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("session_wrong_state")));

    // A session created with a payout's method is a payout's.
    let payout = json!({"metadata": "x", "amount_details": {"amount": 100, "currency": "rub"},
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": PLAIN_CARD}}}});
    let id = id_of(&s.call("v1", "session/create", &payout).await);
    body["session_id"] = json!(id);
    let a = s.call("v1", "session/start/payment", &body).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);

    // What session/create kept (shared fields, or a payment's as the SDK's
    // createPaymentSession sends them) completes the start; the start's own fields win.
    let kept = json!({"amount_details": {"amount": 7_000, "currency": "rub"}, "customer": {"reference": "kept"},
        "payment_options": {"return_url": "https://shop.example/kept"}, "metadata": {"order": "K-1"}});
    let id = id_of(&s.call("v2", "session/create", &kept).await);
    let start = json!({"session_id": id, "payment_details": payment(PLAIN_CARD, 1)["payment_details"],
        "metadata": {"order": "K-2"}});
    let a = s.call("v2", "session/start/payment", &start).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!(
        (p["amount_details"]["amount"].as_i64(), p["customer"]["reference"].as_str()),
        (Some(7_000), Some("kept"))
    );
    assert_eq!(p["payment_options"]["return_url"], "https://shop.example/kept");
    assert!(p["metadata"].to_string().contains("K-2"), "{p}");
    // A payment's session is not a payout's; a card's details are not kept by session/create.
    let id = id_of(&s.call("v1", "session/create", &kept).await);
    let payout_start = json!({"session_id": id, "payment_method": payout["payment_method"],
        "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    let a = s.call("v1", "session/start/payout", &payout_start).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);
    let a = s.call("v2", "session/create", &payment(PLAIN_CARD, 10_000)).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["payment_details.card.type".to_string()]), "{}", a.text);

    let mut bad = payment("4242424242424241", 0);
    bad["payment_options"]["recurrent"] = json!("yes");
    bad["colour"] = json!("red");
    let a = s.call("v1", "session/init/payment", &bad).await;
    assert_eq!(
        (a.status, fields(&a)),
        (
            400,
            vec![
                "amount_details.amount".to_string(),
                "colour".into(),
                "payment_details.card.bank_card.number".into(),
                "payment_options.recurrent".into()
            ]
        ),
        "{}",
        a.text
    );
    // A payout's confirmation fields mean nothing to a payment.
    let id = id_of(&s.call("v1", "session/init/payment", &payment(PLAIN_CARD, 100)).await);
    s.settle().await;
    let a = s.call("v1", "session/confirm", &json!({"session_id": id, "confirm_information": {}})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["confirm_information".to_string()]), "{}", a.text);
    s.stop().await;
}

#[tokio::test]
async fn another_project_can_neither_see_nor_capture_a_payment() {
    let (s, _r) = server(hold_with_fee()).await;
    let id = id_of(&s.call("v1", "session/init/payment", &payment(PLAIN_CARD, 1_000)).await);
    s.settle().await;
    s.advance(1).await;
    for method in ["session/status", "session/capture", "session/cancel", "session/confirm"] {
        let body = serde_json::to_vec(&json!({"session_id": id})).unwrap();
        let a = s.call_bytes("v1", method, "beta", common::key(1), body, None).await;
        assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{method}: {}", a.text);
        assert!(!a.text.contains("pm_"), "{}", a.text);
    }
    assert_eq!(status(&s, "v1", &id).await["next_action"], "capture");
    s.stop().await;
}

/// A browser that does not follow redirects (the tests read the 303).
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A payment of the 3-D Secure card waiting for the customer; its page's URL.
async fn at_three_ds(s: &TestServer, amount: i64) -> (String, String) {
    let a = s.call("v2", "session/init/payment/sync", &payment(THREE_DS_CARD, amount)).await;
    let id = id_of(&a);
    let url =
        the_payment(&a.body["session"], "v2")["customer_interaction"]["redirect"]["url"].as_str().unwrap().to_string();
    (id, url)
}

async fn answer(url: &str, form: &[(&str, &str)]) -> (u16, Option<String>, String) {
    let r = browser().post(url).form(form).send().await.unwrap();
    let location = r.headers().get("location").map(|l| l.to_str().unwrap().to_string());
    (r.status().as_u16(), location, r.text().await.unwrap())
}

#[tokio::test]
async fn the_three_ds_page_shows_the_payment_and_its_code_passes_it() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let (id, url) = at_three_ds(&s, 12_345).await;
    let page = browser().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    for shown in ["123.45 RUB", "VISA •••• 3220", "name=\"code\"", "value=\"confirm\"", "value=\"decline\"", "alpha"]
    {
        assert!(html.contains(shown), "{shown} in {html}");
    }
    assert!(!html.contains("<script") && !html.contains("http"), "no script, no external asset: {html}");

    // A wrong code: the form again, saying how many attempts are left; nothing else changes.
    let (code, location, html) = answer(&url, &[("action", "confirm"), ("code", "000000")]).await;
    assert_eq!((code, location), (200, None));
    assert!(html.contains("2 attempts left"), "{html}");
    assert_eq!(the_payment(&status(&s, "v2", &id).await, "v2")["status"], "pending");

    // The right code: back to the shop, and the issuer takes it from there.
    let (code, location, _) = answer(&url, &[("action", "confirm"), ("code", "131131")]).await;
    assert_eq!((code, location.as_deref()), (303, Some("https://shop.example/back")));
    s.settle().await;
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &id).await["status"], "accepted");
    assert_eq!(r.types_for(&id), ["action_required", "payment_finished"]);
    // The page now shows the outcome, and answers no more.
    let html = browser().get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Payment complete") && !html.contains("<form"), "{html}");
    let (code, location, _) = answer(&url, &[("action", "decline")]).await;
    assert_eq!((code, location), (200, None));
    assert_eq!(status(&s, "v2", &id).await["status"], "accepted");
    s.stop().await;
}

#[tokio::test]
async fn declining_or_three_wrong_codes_fail_the_payment_with_3ds_error() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, _r) = server(auto).await;
    let (declined, url) = at_three_ds(&s, 1_000).await;
    let (code, location, _) = answer(&url, &[("action", "decline")]).await;
    assert_eq!((code, location.as_deref()), (303, Some("https://shop.example/back")));
    let session = status(&s, "v2", &declined).await;
    assert_eq!((session["status"].as_str(), session["error"]["code"].as_str()), (Some("error"), Some("3DS_error")));

    let (guessed, url) = at_three_ds(&s, 2_000).await;
    for left in ["2 attempts left", "1 attempt left"] {
        let (_, _, html) = answer(&url, &[("action", "confirm"), ("code", "999999")]).await;
        assert!(html.contains(left), "{html}");
    }
    let (code, location, _) = answer(&url, &[("action", "confirm"), ("code", "999999")]).await;
    assert_eq!((code, location.as_deref()), (303, Some("https://shop.example/back")));
    let session = status(&s, "v2", &guessed).await;
    assert_eq!(session["error"]["code"], "3DS_error");
    assert_eq!(wallet(&s).await, (0, 0, 0, 0));

    // Without a return URL the page itself shows the outcome.
    let mut body = payment(THREE_DS_CARD, 3_000);
    body.as_object_mut().unwrap().remove("payment_options");
    let a = s.call("v2", "session/init/payment/sync", &body).await;
    let url =
        the_payment(&a.body["session"], "v2")["customer_interaction"]["redirect"]["url"].as_str().unwrap().to_string();
    let (code, location, html) = answer(&url, &[("action", "decline")]).await;
    assert_eq!((code, location), (200, None));
    assert!(html.contains("3-D Secure authentication failed"), "{html}");

    // Unknown sessions and unreadable answers get pages, not a JSON envelope.
    let missing = browser().get(format!("{}/3ds/alpha/ps_1", s.url)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("<html"));
    let other_project = browser().get(url.replace("/alpha/", "/beta/")).send().await.unwrap();
    assert_eq!(other_project.status(), 404);
    let (code, _, html) = answer(&url, &[("action", "steal")]).await;
    assert_eq!(code, 400);
    assert!(html.contains("<html"), "{html}");
    let (code, _, _) = answer(&url, &[("action", "confirm"), ("code", "1"), ("extra", "x")]).await;
    assert_eq!(code, 400);
    s.stop().await;
}

/// A captured payment of `amount` (auto-confirmed, captured at once).
async fn captured(s: &TestServer, amount: i64) -> String {
    let id = id_of(&s.call("v2", "session/init/payment", &payment(PLAIN_CARD, amount)).await);
    s.settle().await;
    s.advance(1).await;
    assert_eq!(status(s, "v2", &id).await["status"], "accepted");
    id
}

fn refunds(session: &Value) -> Vec<Value> {
    the_payment(session, "v2")["refunds"].as_array().unwrap().clone()
}

#[tokio::test]
async fn refunds_reserve_then_pay_back_several_per_payment_never_more_than_captured() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let id = captured(&s, 20_000).await;
    let refund = |body: Value| {
        let mut body = body;
        body["session_id"] = json!(id);
        body
    };
    let part = |amount: i64| refund(json!({"amount_details": {"amount": amount, "currency": "rub"}, "metadata": "r"}));
    let a = s.call("v2", "session/refund", &part(3_000)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let list = refunds(&a.body["session"]);
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0]["status"].as_str(), list[0]["amount_details"]["amount"].as_i64()),
        (Some("in_progress"), Some(3_000))
    );
    assert!(list[0]["id"].as_str().unwrap().starts_with("rf_"));
    assert_eq!((list[0]["is_chargeback"].as_bool(), list[0]["metadata"].as_str()), (Some(false), Some("r")));
    assert_eq!(a.body["session"]["status"], "accepted", "a refund does not reopen the session");
    // Reserved at once, out of the available balance.
    assert_eq!(s.balance("alpha").await, (17_000, 3_000));
    assert_eq!(s.call("v2", "session/refund", &part(2_000)).await.status, 200);
    // 15000 left: more is refused, nothing changes.
    let a = s.call("v2", "session/refund", &part(15_001)).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("refund_amount_too_large")), "{}", a.text);
    let a = s.call("v2", "session/refund", &refund(json!({"amount_details": {"amount": 1, "currency": "usd"}}))).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["amount_details.currency".to_string()]));
    // The sandbox bank declines a refund of 132.10.
    assert_eq!(s.call("v2", "session/refund", &part(13_210)).await.status, 200);
    s.settle().await;
    s.advance(1).await;
    let list = refunds(&status(&s, "v2", &id).await);
    let states: Vec<&str> = list.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(states, ["accepted", "accepted", "declined"]);
    assert!(list.iter().all(|r| r["finished_at"].is_string()));
    // 30.00 + 20.00 paid back to the card; the declined 132.10 is available again.
    assert_eq!(s.balance("alpha").await, (15_000, 0));
    assert_eq!(wallet(&s).await, (15_000, 0, -15_000, 0));
    assert_eq!(r.types_for(&id), ["payment_finished", "payment_refunded", "payment_refunded", "payment_refunded"]);
    // What is left (150.00) is refunded whole without an amount; then nothing is left.
    let a = s.call("v2", "session/refund", &refund(json!({}))).await;
    assert_eq!(refunds(&a.body["session"]).last().unwrap()["amount_details"]["amount"], 15_000);
    let a = s.call("v2", "session/refund", &refund(json!({}))).await;
    assert_eq!(a.body["error"]["code"], "refund_amount_too_large", "{}", a.text);
    s.stop().await;
}

#[tokio::test]
async fn a_refund_the_wallet_cannot_cover_fails_and_only_captured_payments_are_refunded() {
    let (s, r) = server(hold_with_fee()).await;
    let held = id_of(&s.call("v2", "session/init/payment", &payment(PLAIN_CARD, 10_000)).await);
    s.settle().await;
    s.advance(1).await;
    let a = s.call("v2", "session/refund", &json!({"session_id": held})).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("session_wrong_state")), "held, not captured");
    assert_eq!(s.call("v2", "session/capture", &json!({"session_id": held})).await.status, 200);
    // Captured 100.00 less a 2.50 fee: 97.50 available cannot pay back 100.00.
    assert_eq!(s.balance("alpha").await, (9_750, 0));
    let a = s.call("v2", "session/refund", &json!({"session_id": held})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let list = refunds(&a.body["session"]);
    assert_eq!(list[0]["status"], "error", "{}", a.text);
    assert_eq!(s.balance("alpha").await, (9_750, 0));
    s.settle().await;
    // Webhooks of one session may arrive in any order: count them.
    let refunded = r.types_for(&held).iter().filter(|t| *t == "payment_refunded").count();
    assert_eq!(refunded, 1);
    // A refused refund does not count: a smaller one goes through.
    let part = json!({"session_id": held, "amount_details": {"amount": 9_750, "currency": "rub"}});
    let a = s.call("v2", "session/refund", &part).await;
    assert_eq!(refunds(&a.body["session"])[1]["status"], "in_progress", "{}", a.text);

    // A payout session has nothing to refund.
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let payout = json!({"payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": PLAIN_CARD}}},
        "amount_details": {"amount": 100, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    let payout_id = id_of(&s.call("v1", "session/init/payout", &payout).await);
    let a = s.call("v1", "session/refund", &json!({"session_id": payout_id})).await;
    assert_eq!(a.body["error"]["code"], "session_wrong_state", "{}", a.text);
    s.stop().await;
}

#[tokio::test]
async fn chargebacks_come_from_the_partner_or_the_bank_and_are_never_declined() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let id = captured(&s, 30_000).await;
    // A chargeback of the sandbox's "declined" amount still goes through: the network decides.
    let body = json!({"session_id": id, "amount_details": {"amount": 13_210, "currency": "rub"}});
    let a = s.call("v2", "session/chargeback", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(refunds(&a.body["session"])[0]["is_chargeback"], true);

    // The operator forces the bank's own chargeback of the rest, over the admin API.
    let mut app = s.app.clone();
    app.admin_token = Some("secret-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}/admin/v1/payments/chargeback", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let force = |token: &'static str, body: Value| {
        let request = s.http.post(&admin).bearer_auth(token).json(&body);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(force("wrong", json!({"project": "alpha", "session_id": id})).await.0, 401);
    let (code, answer) =
        force("secret-token", json!({"project": "alpha", "session_id": id, "amount_details": {}})).await;
    assert_eq!(
        (code, answer["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "a field it does not act on: {answer}"
    );
    assert_eq!(force("secret-token", json!({"project": "beta", "session_id": id})).await.0, 404);
    let (code, answer) = force("secret-token", json!({"project": "alpha", "session_id": id, "amount": 99_999})).await;
    assert_eq!((code, answer["error"]["code"].as_str()), (409, Some("refund_amount_too_large")), "{answer}");
    let (code, answer) = force("secret-token", json!({"project": "alpha", "session_id": id})).await;
    assert_eq!(code, 200, "{answer}");
    let list = answer["session"]["payment_list"][0]["refunds"].as_array().unwrap().clone();
    assert_eq!(list[1]["amount_details"]["amount"], 30_000 - 13_210);
    s.settle().await;
    s.advance(1).await;
    let list = refunds(&status(&s, "v2", &id).await);
    assert!(list.iter().all(|c| c["status"] == "accepted" && c["is_chargeback"] == true), "{list:?}");
    assert_eq!(wallet(&s).await, (0, 0, 0, 0), "both chargebacks paid back to the card network");
    let hooks = r.received();
    let refunded: Vec<&Value> =
        hooks.iter().filter(|h| h.body["type"] == "payment_refunded").map(|h| &h.body).collect();
    assert_eq!(refunded.len(), 2);
    assert_eq!(refunded[0]["session"]["payment_list"][0]["refunds"][0]["is_chargeback"], true);
    // Nothing is left to take back.
    let (code, _) = force("secret-token", json!({"project": "alpha", "session_id": id})).await;
    assert_eq!(code, 409);
    s.stop().await;
}

fn by_token(token: &str, amount: i64) -> Value {
    json!({"payment_details": {"type": "recurrent", "recurrent": {"token": token, "initiator": "merchant"}},
        "amount_details": {"amount": amount, "currency": "rub"}, "customer": {"reference": "lucky"}})
}

#[tokio::test]
async fn a_saved_card_pays_again_by_its_token_until_the_token_is_disabled() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, _r) = server(auto).await;
    // The first payment asks to save the card (3-D Secure card: the customer passes it once).
    let mut first = payment(THREE_DS_CARD, 10_000);
    first["payment_options"]["recurrent"] = json!(true);
    let a = s.call("v2", "session/init/payment/sync", &first).await;
    let id = id_of(&a);
    assert!(the_payment(&a.body["session"], "v2").get("recurrent").is_none(), "no token before success");
    let url = format!("{}/3ds/alpha/{id}", s.url);
    let r = browser().post(&url).form(&[("action", "confirm"), ("code", "131131")]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    s.settle().await;
    s.advance(1).await;
    let p = the_payment(&status(&s, "v2", &id).await, "v2");
    assert_eq!(p["payment_options"]["recurrent"], true);
    let token = p["recurrent"]["token"].as_str().expect("a token once it succeeded").to_string();
    assert_eq!(p["recurrent"]["is_active"], true);
    assert!(p["recurrent"]["created_at"].is_string() && p["recurrent"]["finished_at"].is_string(), "{p}");

    // A later payment by the token: no cardholder, no 3-D Secure, the project's usual flow.
    let a = s.call("v2", "session/init/payment", &by_token(&token, 5_000)).await;
    let second = id_of(&a);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!(
        p["payment_details"],
        json!({"type": "recurrent", "recurrent": {"token": token, "initiator": "merchant"}})
    );
    s.settle().await;
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &second).await["status"], "accepted");
    assert_eq!(wallet(&s).await.0, 15_000);

    // Status and disable, as the SDK calls them (v1), with the SDK's body.
    let ask = json!({"recurrent": {"token": token}});
    let a = s.call("v1", "recurrent/status", &ask).await;
    assert_eq!((a.status, a.body["recurrent"]["is_active"].as_bool()), (200, Some(true)), "{}", a.text);
    assert!(a.body["recurrent"]["created_at"].is_string() && a.body["recurrent"]["finished_at"].is_string());
    let a = s.call("v1", "recurrent/disable", &ask).await;
    assert_eq!((a.status, a.body["recurrent"]["is_active"].as_bool()), (200, Some(false)), "{}", a.text);
    assert_eq!(s.call("v1", "recurrent/disable", &ask).await.status, 200, "disabling twice is harmless");
    assert_eq!(s.call("v1", "recurrent/status", &ask).await.body["recurrent"]["is_active"], false);

    // A payment by the disabled token fails with binding_is_deactivated; no money moves.
    let third = id_of(&s.call("v2", "session/init/payment", &by_token(&token, 5_000)).await);
    s.settle().await;
    s.advance(1).await;
    let session = status(&s, "v2", &third).await;
    assert_eq!(
        (session["status"].as_str(), session["error"]["code"].as_str()),
        (Some("error"), Some("binding_is_deactivated"))
    );
    assert_eq!(wallet(&s).await.0, 15_000);
    // The payment that issued it shows it inactive too.
    assert_eq!(the_payment(&status(&s, "v2", &id).await, "v2")["recurrent"]["is_active"], false);

    // A token disabled between a payment's start and its authorization declines it too.
    let mut fresh = payment(PLAIN_CARD, 1_000);
    fresh["payment_options"]["recurrent"] = json!(true);
    let saver = id_of(&s.call("v2", "session/init/payment", &fresh).await);
    s.settle().await;
    s.advance(1).await;
    let fresh_token =
        the_payment(&status(&s, "v2", &saver).await, "v2")["recurrent"]["token"].as_str().unwrap().to_string();
    let manual = SettingsChange { auto_confirm: Some(false), ..SettingsChange::default() };
    s.app.store.set_project_settings("alpha", manual, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let late = id_of(&s.call("v2", "session/init/payment", &by_token(&fresh_token, 2_000)).await);
    s.settle().await;
    assert_eq!(s.call("v1", "recurrent/disable", &json!({"recurrent": {"token": fresh_token}})).await.status, 200);
    assert_eq!(s.call("v2", "session/confirm", &json!({"session_id": late})).await.status, 200);
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &late).await["error"]["code"], "binding_is_deactivated");
    let with_code = json!({"payment_details": {"type": "recurrent", "recurrent": {"token": fresh_token, "security_code": "123"}},
        "amount_details": {"amount": 100, "currency": "rub"}, "customer": {"reference": "lucky"}});
    let a = s.call("v2", "session/init/payment", &with_code).await;
    assert_eq!(
        (a.status, fields(&a)),
        (400, vec!["payment_details.recurrent.security_code".to_string()]),
        "{}",
        a.text
    );

    // Unknown tokens, another project's token and bad bodies are refused by name.
    let a = s.call("v2", "session/init/payment", &by_token("rt_nope", 100)).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["payment_details.recurrent.token".to_string()]), "{}", a.text);
    let body = serde_json::to_vec(&ask).unwrap();
    let a = s.call_bytes("v1", "recurrent/status", "beta", common::key(1), body, None).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["recurrent.token".to_string()]), "{}", a.text);
    let a = s.call("v1", "recurrent/status", &json!({"token": token})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["recurrent.token".to_string(), "token".into()]), "{}", a.text);
    s.stop().await;
}

fn fps_payment(amount: i64) -> Value {
    json!({"payment_details": {"type": "faster_payment_system"},
        "amount_details": {"amount": amount, "currency": "rub"}, "customer": {"reference": "lucky"}})
}

/// The text a base64 PNG's QR code carries, decoded as a phone would.
fn scan(img_base64: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(img_base64).unwrap();
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

#[tokio::test]
async fn an_fps_payment_shows_a_real_qr_code_and_is_paid_in_the_bank_app() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let a = s.call("v2", "session/init/payment/sync", &fps_payment(12_345)).await;
    let id = id_of(&a);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!(
        (p["status"].as_str(), p["payment_details"]["type"].as_str()),
        (Some("pending"), Some("faster_payment_system"))
    );
    let inform = &p["customer_interaction"];
    assert_eq!((inform["type"].as_str(), inform["inform"]["type"].as_str()), (Some("inform"), Some("qr")), "{p}");
    let content = inform["inform"]["qr"]["content"].as_str().unwrap();
    assert!(
        content.starts_with("https://qr.nspk.ru/AD131") && content.contains("&sum=12345&cur=RUB&crc="),
        "{content}"
    );
    assert_eq!(scan(inform["inform"]["qr"]["img"].as_str().unwrap()), content, "the image decodes to the link");
    s.settle().await;
    assert_eq!(r.types_for(&id), ["action_required"]);

    // The customer's bank app: the page shows the payment and pays it.
    let url = format!("{}/fps/pay/alpha/{id}", s.url);
    let html = browser().get(&url).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("123.45 RUB") && html.contains("<form"), "{html}");
    let paid = browser().post(&url).form(&[("action", "pay")]).send().await.unwrap();
    assert_eq!(paid.status(), 200);
    assert!(paid.text().await.unwrap().contains("Paid"));
    let session = status(&s, "v2", &id).await;
    assert_eq!(session["status"], "accepted", "an FPS transfer is final: no hold, no capture");
    assert_eq!(wallet(&s).await, (12_345, 0, -12_345, 0));
    s.settle().await;
    assert_eq!(r.types_for(&id), ["action_required", "payment_finished"]);
    // Not a 3-D Secure payment; paying twice changes nothing.
    assert_eq!(browser().get(format!("{}/3ds/alpha/{id}", s.url)).send().await.unwrap().status(), 404);
    browser().post(&url).form(&[("action", "pay")]).send().await.unwrap();
    assert_eq!(wallet(&s).await.0, 12_345);

    // The operator pays one through the admin API; nobody pays the third.
    let by_operator = id_of(&s.call("v2", "session/init/payment/sync", &fps_payment(1_000)).await);
    let unpaid = id_of(&s.call("v1", "session/init/payment/sync", &fps_payment(2_000)).await);
    let mut app = s.app.clone();
    app.admin_token = Some("secret-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}/admin/v1/payments/fps_pay", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let pay = |body: Value| s.http.post(&admin).bearer_auth("secret-token").json(&body).send();
    assert_eq!(pay(json!({"project": "alpha", "session_id": by_operator, "x": 1})).await.unwrap().status(), 400);
    assert_eq!(pay(json!({"project": "beta", "session_id": by_operator})).await.unwrap().status(), 404);
    assert_eq!(pay(json!({"project": "alpha", "session_id": by_operator})).await.unwrap().status(), 200);
    assert_eq!(pay(json!({"project": "alpha", "session_id": by_operator})).await.unwrap().status(), 409);
    assert_eq!(status(&s, "v2", &by_operator).await["status"], "accepted");
    s.advance(24 * 3_600).await;
    let session = status(&s, "v1", &unpaid).await;
    assert_eq!(
        (session["status"].as_str(), session["error"]["code"].as_str()),
        (Some("cancelled"), Some("qr_expired"))
    );
    assert_eq!(wallet(&s).await.0, 13_345);

    // A shop's return URL: paying sends the customer back there; an FPS transfer has no chargeback.
    let mut with_return = fps_payment(500);
    with_return["payment_options"] = json!({"return_url": "https://shop.example/back"});
    let back = id_of(&s.call("v2", "session/init/payment/sync", &with_return).await);
    let r = browser().post(format!("{}/fps/pay/alpha/{back}", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "https://shop.example/back"));
    let a = s.call("v2", "session/chargeback", &json!({"session_id": back})).await;
    assert_eq!(a.body["error"]["code"], "session_wrong_state", "{}", a.text);

    // Roubles only; a QR payment saves no card.
    let mut dollars = fps_payment(100);
    dollars["amount_details"]["currency"] = json!("usd");
    let a = s.call("v2", "session/init/payment", &dollars).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["amount_details.currency".to_string()]), "{}", a.text);
    let mut save = fps_payment(100);
    save["payment_options"] = json!({"recurrent": true});
    let a = s.call("v2", "session/init/payment", &save).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["payment_options.recurrent".to_string()]), "{}", a.text);
    s.stop().await;
}

fn sberpay(channel: &str, amount: i64) -> Value {
    json!({"payment_details": {"type": "internet_banking", "internet_banking": {"type": "sber_pay",
            "sber_pay": {"channel": channel, "phone": "79261234567"}}},
        "amount_details": {"amount": amount, "currency": "rub"}, "customer": {"reference": "lucky"},
        "payment_options": {"return_url": "https://shop.example/back"}})
}

#[tokio::test]
async fn a_sberpay_payment_is_confirmed_then_paid_in_sbers_app() {
    // Projects confirm by default: ready_to_confirm, then the customer goes to Sber's app.
    let (s, r) = server(SettingsChange::default()).await;
    let a = s.call("v2", "session/init/payment", &sberpay("app", 20_000)).await;
    let id = id_of(&a);
    let method = &the_payment(&a.body["session"], "v2")["payment_details"];
    assert_eq!(method["internet_banking"]["sber_pay"], json!({"channel": "app", "phone": "*******4567"}));
    assert!(!a.text.contains("79261234567"), "the phone is masked: {}", a.text);
    s.settle().await;
    let a = s.call("v2", "session/confirm", &json!({"session_id": id})).await;
    let p = the_payment(&a.body["session"], "v2");
    let redirect = &p["customer_interaction"]["redirect"];
    let url = format!("{}/sberpay/pay/alpha/{id}", s.app.public_url());
    assert_eq!((p["status"].as_str(), redirect["url"].as_str()), (Some("pending"), Some(url.as_str())), "{p}");
    // The partner hears of the customer's step before the customer takes it
    // (webhooks pending together may arrive in any order).
    s.settle().await;
    // Sber's app (the sandbox's stand-in): the payment, and a Pay button; paying returns to the shop.
    let page = format!("{}/sberpay/pay/alpha/{id}", s.url);
    let html = browser().get(&page).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("Pay with SberPay") && html.contains("200.00 RUB") && html.contains("<form"), "{html}");
    let paid = browser().post(&page).form(&[("action", "pay")]).send().await.unwrap();
    assert_eq!(
        (paid.status().as_u16(), paid.headers()["location"].to_str().unwrap()),
        (303, "https://shop.example/back")
    );
    let session = status(&s, "v1", &id).await;
    assert_eq!(
        (session["status"].as_str(), the_payment(&session, "v1")["status"].as_str()),
        (Some("accepted"), Some("succeeded"))
    );
    assert_eq!(wallet(&s).await, (20_000, 0, -20_000, 0), "paid in the app: final, no hold");
    s.settle().await;
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "action_required", "payment_finished"]);
    s.stop().await;
}

#[tokio::test]
async fn a_sberpay_payment_from_a_desktop_browser_is_paid_after_a_push() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let a = s.call("v1", "session/init/payment/sync", &sberpay("web", 30_000)).await;
    let id = id_of(&a);
    let p = the_payment(&a.body["session"], "v1");
    assert_eq!(p["status"], "pending", "waits for the customer: {p}");
    assert!(p.get("customer_interaction").is_none(), "no redirect from a desktop browser: {p}");

    // The push: the phone is checked, the session must hold a waiting SberPay payment.
    let push = |phone: Value| json!({"session_id": id, "phone": phone});
    let a = s.call("v1", "sberpay/push", &push(json!("12-34"))).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["phone".to_string()]), "{}", a.text);
    let a = s.call("v1", "sberpay/push", &json!({"session_id": id, "phone": "89876543210", "channel": "sms"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["channel".to_string()]), "{}", a.text);
    let a = s.call("v1", "sberpay/push", &push(json!("89876543210"))).await;
    assert_eq!((a.status, a.body.clone()), (200, json!({"status": "ok"})), "{}", a.text);
    let body = serde_json::to_vec(&push(json!("89876543210"))).unwrap();
    let a = s.call_bytes("v1", "sberpay/push", "beta", common::key(1), body, None).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "another project's session: {}", a.text);
    let card = id_of(&s.call("v1", "session/init/payment", &payment(PLAIN_CARD, 100)).await);
    let a = s.call("v1", "sberpay/push", &json!({"session_id": card, "phone": "79261234567"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);

    // The customer pays in Sber's app (here the operator plays it).
    let mut app = s.app.clone();
    app.admin_token = Some("secret-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}/admin/v1/payments/sberpay_pay", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let pay = |id: &str| {
        s.http.post(&admin).bearer_auth("secret-token").json(&json!({"project": "alpha", "session_id": id})).send()
    };
    assert_eq!(pay(&id).await.unwrap().status(), 200);
    assert_eq!(status(&s, "v2", &id).await["status"], "accepted");
    let a = s.call("v1", "sberpay/push", &push(json!("89876543210"))).await;
    assert_eq!(a.body["error"]["code"], "session_wrong_state", "paid: nothing to push for: {}", a.text);
    s.settle().await;
    assert_eq!(r.types_for(&id), ["payment_finished"], "no action_required from a desktop browser");

    // Nobody pays: cancelled with sberpay_expired when the customer's wait ends.
    let unpaid = id_of(&s.call("v2", "session/init/payment/sync", &sberpay("mobile_web", 1_000)).await);
    s.advance(24 * 3_600).await;
    let session = status(&s, "v2", &unpaid).await;
    assert_eq!(
        (session["status"].as_str(), session["error"]["code"].as_str()),
        (Some("cancelled"), Some("sberpay_expired"))
    );
    assert_eq!(pay(&unpaid).await.unwrap().status(), 409);
    assert_eq!(wallet(&s).await.0, 30_000 + 100, "the SberPay payment and the card payment of 1.00");
    s.stop().await;
}

#[tokio::test]
async fn bad_sberpay_payments_are_refused_by_name() {
    let (s, _r) = server(SettingsChange::default()).await;
    let refused = |a: &common::Answer| (a.status, fields(a));
    let mut no_channel = sberpay("app", 100);
    no_channel["payment_details"]["internet_banking"]["sber_pay"].as_object_mut().unwrap().remove("channel");
    let want = |f: &str| (400, vec![f.to_string()]);
    let a = s.call("v2", "session/init/payment", &no_channel).await;
    assert_eq!(refused(&a), want("payment_details.internet_banking.sber_pay.channel"), "{}", a.text);
    let a = s.call("v2", "session/init/payment", &sberpay("tv", 100)).await;
    assert_eq!(refused(&a), want("payment_details.internet_banking.sber_pay.channel"), "{}", a.text);
    let mut alipay = sberpay("app", 100);
    alipay["payment_details"]["internet_banking"] = json!({"type": "alipay", "alipay": {}});
    let a = s.call("v2", "session/init/payment", &alipay).await;
    assert_eq!(refused(&a), want("payment_details.internet_banking.type"), "{}", a.text);
    let mut bad_phone = sberpay("app", 100);
    bad_phone["payment_details"]["internet_banking"]["sber_pay"]["phone"] = json!("+7 926");
    let a = s.call("v2", "session/init/payment", &bad_phone).await;
    assert_eq!(refused(&a), want("payment_details.internet_banking.sber_pay.phone"), "{}", a.text);
    let mut dollars = sberpay("app", 100);
    dollars["amount_details"]["currency"] = json!("usd");
    assert_eq!(refused(&s.call("v2", "session/init/payment", &dollars).await), want("amount_details.currency"));
    let mut save = sberpay("app", 100);
    save["payment_options"]["recurrent"] = json!(true);
    assert_eq!(refused(&s.call("v2", "session/init/payment", &save).await), want("payment_options.recurrent"));
    s.stop().await;
}

/// Wrong one-time codes typed at once are each counted once: two leave the
/// customer a last try, five end the payment in `3DS_error`, never more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_codes_typed_at_once_are_counted_on_the_record_written() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, _r) = server(auto).await;
    let wrong = |url: String| async move {
        let r = browser().post(&url).form(&[("action", "confirm"), ("code", "000000")]).send().await.unwrap();
        assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
    };
    let (two, two_url) = at_three_ds(&s, 1_000).await;
    tokio::join!(wrong(two_url.clone()), wrong(two_url.clone()));
    assert_eq!(the_payment(&status(&s, "v2", &two).await, "v2")["status"], "pending", "one try is left");
    let right = browser().post(&two_url).form(&[("action", "confirm"), ("code", "131131")]).send().await.unwrap();
    assert!(right.status().is_redirection());
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &two).await["status"], "accepted");

    let (five, five_url) = at_three_ds(&s, 2_000).await;
    let u = || five_url.clone();
    tokio::join!(wrong(u()), wrong(u()), wrong(u()), wrong(u()), wrong(u()));
    let session = status(&s, "v2", &five).await;
    assert_eq!(session["error"]["code"], "3DS_error", "{session}");
    let record = s.app.store.session("alpha", &five).await.unwrap().unwrap();
    assert_eq!(record.payment().unwrap().three_ds_attempts, 3, "counted up to the last, no further");
    s.stop().await;
}

/// Refunds asked for at once never take back more than was captured: of ten
/// of 20.00 against 100.00, five are accepted and the rest refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refunds_asked_for_at_once_never_exceed_the_capture() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, _r) = server(auto).await;
    let id = id_of(&s.call("v2", "session/init/payment/sync", &payment(PLAIN_CARD, 10_000)).await);
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &id).await["status"], "accepted");
    let part = json!({"session_id": id, "amount_details": {"amount": 2_000, "currency": "rub"}});
    let ask = || s.call("v2", "session/refund", &part);
    let answers = futures_join10(ask).await;
    let accepted = answers.iter().filter(|a| a.status == 200).count();
    for a in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(a.body["error"]["code"], "refund_amount_too_large", "{}", a.text);
    }
    assert_eq!(accepted, 5);
    s.advance(1).await;
    let p = the_payment(&status(&s, "v2", &id).await, "v2");
    let refunds = p["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 5);
    assert!(refunds.iter().all(|r| r["status"] == "accepted"), "{p}");
    assert_eq!(wallet(&s).await, (0, 0, 0, 0), "all of it went back to the card");
    s.stop().await;
}

/// Ten calls of `ask`, all in flight at once; their answers.
async fn futures_join10<F, Fut>(ask: F) -> Vec<common::Answer>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = common::Answer>,
{
    let (a, b, c, d, e, f, g, h, i, j) =
        tokio::join!(ask(), ask(), ask(), ask(), ask(), ask(), ask(), ask(), ask(), ask());
    vec![a, b, c, d, e, f, g, h, i, j]
}

/// (alias, balance) of the project's contractors' wallets, and the project's
/// `contractors` account (their sum, always).
async fn contractors(s: &TestServer) -> Vec<(String, i64)> {
    let wallets = s.app.store.contractor_wallets("alpha").await.unwrap();
    let account = s.app.store.wallets("alpha").await.unwrap().iter().map(|w| w.contractors).sum::<i64>();
    assert_eq!(wallets.iter().map(|w| w.balance).sum::<i64>(), account, "the account is the wallets' sum");
    wallets.into_iter().map(|w| (w.alias, w.balance)).collect()
}

fn split_payment(amount: i64, split: Value) -> Value {
    let mut body = payment(PLAIN_CARD, amount);
    body["revenue_split_info"] = split;
    body
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(a, n)| (a.to_string(), *n)).collect()
}

/// A split payment held and captured in part: the parts are shares of what
/// came in (the capture less the fee), paid into the contractors' wallets;
/// each refund takes back their shares of it, a declined one gives them back,
/// and refunding the whole takes back each part exactly.
#[tokio::test]
async fn a_split_payment_pays_its_contractors_and_refunds_take_back_their_shares() {
    let contractors_set = open131_domain::settings::NameSet::parse("courier-1,courier-2").unwrap();
    let (s, r) = server(SettingsChange { contractors: Some(contractors_set), ..hold_with_fee() }).await;
    let split = json!([{"contractor_alias": "courier-1", "percent": "30", "remains": false},
        {"contractor_alias": "courier-2", "percent": 20.5}]);
    let a = s.call("v2", "session/init/payment", &split_payment(40_000, split)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = id_of(&a);
    let parts = &the_payment(&a.body["session"], "v2")["revenue_split_info"];
    assert_eq!(parts[0], json!({"contractor_alias": "courier-1", "percent": "30", "remains": false}), "no amount yet");
    s.settle().await;
    s.advance(1).await;
    let capture = json!({"session_id": id, "amount_details": {"amount": 30_000, "currency": "rub"}});
    assert_eq!(s.call("v2", "session/capture", &capture).await.status, 200);
    // 300.00 captured less a 7.50 fee: 292.50 came in; 30% and 20.5% of it (rounded down) go on.
    let p = the_payment(&status(&s, "v2", &id).await, "v2");
    let amounts: Vec<i64> =
        p["revenue_split_info"].as_array().unwrap().iter().map(|i| i["amount"]["amount"].as_i64().unwrap()).collect();
    assert_eq!(amounts, [8_775, 5_996], "{p}");
    assert_eq!(p["revenue_split_info"][1]["amount"]["currency"], "rub");
    assert_eq!(contractors(&s).await, pairs(&[("courier-1", 8_775), ("courier-2", 5_996)]));
    assert_eq!(s.balance("alpha").await, (29_250 - 14_771, 0));
    s.settle().await;
    let finished = r.received().into_iter().find(|h| h.body["type"] == "payment_finished").unwrap();
    assert_eq!(finished.body["session"]["payment_list"][0]["revenue_split_info"][0]["amount"]["amount"], 8_775);

    // A third of the capture refunded: a third of each part (rounded down) comes back first.
    let refund = |amount: Option<i64>| match amount {
        Some(n) => json!({"session_id": id, "amount_details": {"amount": n, "currency": "rub"}}),
        None => json!({"session_id": id}),
    };
    let a = s.call("v2", "session/refund", &refund(Some(10_000))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let taken = &refunds(&a.body["session"])[0]["revenue_split_info"];
    assert_eq!(taken[1], json!({"contractor_alias": "courier-2", "amount": {"amount": 1_998, "currency": "rub"}}));
    assert_eq!(contractors(&s).await, pairs(&[("courier-1", 5_850), ("courier-2", 3_998)]));
    assert_eq!(s.balance("alpha").await, (14_479 + 4_923 - 10_000, 10_000));
    s.advance(1).await;
    // The sandbox declines a refund of 132.10: the shares it took go back to the contractors.
    assert_eq!(s.call("v2", "session/refund", &refund(Some(13_210))).await.status, 200);
    // Their shares of 23 210 of 30 000 (11 427 in all, less the 4 923 already
    // back), the kopeck of rounding from the part with more room.
    assert_eq!(contractors(&s).await, pairs(&[("courier-1", 5_850 - 3_864), ("courier-2", 3_998 - 2_640)]));
    s.advance(1).await;
    let list = refunds(&status(&s, "v2", &id).await);
    assert_eq!((list[0]["status"].as_str(), list[1]["status"].as_str()), (Some("accepted"), Some("declined")));
    assert!(list[1].get("revenue_split_info").is_none(), "a declined refund took nothing back: {list:?}");
    assert_eq!(contractors(&s).await, pairs(&[("courier-1", 5_850), ("courier-2", 3_998)]));
    assert_eq!(s.balance("alpha").await, (9_402, 0));

    // The rest: the fee is not given back, so the project tops up; each part comes back whole.
    s.app.store.topup("alpha", "rub", 1_000, common::START).await.unwrap();
    let a = s.call("v2", "session/refund", &refund(None)).await;
    assert_eq!(refunds(&a.body["session"])[2]["status"], "in_progress", "{}", a.text);
    s.advance(1).await;
    assert_eq!(contractors(&s).await, pairs(&[("courier-1", 0), ("courier-2", 0)]));
    assert_eq!(s.balance("alpha").await, (250, 0));
    assert_eq!(wallet(&s).await, (250, 0, 0, 750), "all paid back to the card but the fee");
    s.stop().await;
}

/// The split's rules, checked before anything is stored: registered
/// contractors only, percents within the whole, one remains part; a
/// remains part takes what the others leave.
#[tokio::test]
async fn split_payments_name_their_bad_parts_and_remains_takes_the_rest() {
    let auto = SettingsChange {
        auto_confirm: Some(true),
        contractors: Some(open131_domain::settings::NameSet::parse("shop-a,shop-b").unwrap()),
        ..SettingsChange::default()
    };
    let (s, _r) = server(auto).await;
    let bad = |split: Value| split_payment(10_000, split);
    let a = s
        .call(
            "v1",
            "session/init/payment",
            &bad(json!([{"contractor_alias": "shop-a", "percent": "10"},
        {"contractor_alias": "stranger", "percent": "10"}])),
        )
        .await;
    assert_eq!((a.status, fields(&a)), (400, vec!["revenue_split_info[1].contractor_alias".to_string()]), "{}", a.text);
    let a = s
        .call(
            "v1",
            "session/init/payment",
            &bad(json!([{"contractor_alias": "shop-a", "percent": "60"},
        {"contractor_alias": "shop-b", "percent": "40.5"}])),
        )
        .await;
    assert_eq!((a.status, fields(&a)), (400, vec!["revenue_split_info".to_string()]), "{}", a.text);
    let a = s
        .call(
            "v1",
            "session/init/payment",
            &bad(json!([{"contractor_alias": "shop-a", "percent": "10",
        "amount": {"amount": 1, "currency": "rub"}}])),
        )
        .await;
    assert_eq!(fields(&a), ["revenue_split_info[0].amount"], "{}", a.text);
    let create = json!({"amount_details": {"amount": 10_000, "currency": "rub"},
        "revenue_split_info": [{"contractor_alias": "shop-a", "percent": "10"}]});
    // session/create keeps a split, its contractors checked there already.
    assert_eq!(s.call("v1", "session/create", &create).await.status, 200);
    let mut stranger = create.clone();
    stranger["revenue_split_info"][0]["contractor_alias"] = json!("shop-z");
    let a = s.call("v1", "session/create", &stranger).await;
    assert_eq!(fields(&a), ["revenue_split_info[0].contractor_alias"], "{}", a.text);
    assert!(contractors(&s).await.is_empty(), "nothing moved");

    // The SDK's own example: 10% to one, the remains to another (the project keeps nothing).
    let sdk = json!([{"contractor_alias": "shop-a", "percent": "10", "remains": false},
        {"contractor_alias": "shop-b", "percent": null, "remains": true}]);
    let a = s.call("v1", "session/init/payment", &split_payment(10_000, sdk)).await;
    let id = id_of(&a);
    s.settle().await;
    s.advance(1).await;
    let p = the_payment(&status(&s, "v1", &id).await, "v1");
    assert_eq!(p["status"], "succeeded");
    assert_eq!(
        p["revenue_split_info"][1],
        json!({"contractor_alias": "shop-b", "remains": true,
        "amount": {"amount": 9_000, "currency": "rub"}})
    );
    assert_eq!(contractors(&s).await, pairs(&[("shop-a", 1_000), ("shop-b", 9_000)]));
    assert_eq!(s.balance("alpha").await, (0, 0));
    // The project kept nothing, yet the whole is refunded: each part comes back whole.
    let a = s.call("v1", "session/refund", &json!({"session_id": id})).await;
    let refund = &the_payment(&a.body["session"], "v1")["refunds"][0];
    assert_eq!(refund["status"], "in_progress", "{}", a.text);
    assert_eq!(refund["revenue_split_info"][1]["amount"]["amount"], 9_000);
    assert_eq!(contractors(&s).await, pairs(&[("shop-a", 0), ("shop-b", 0)]));
    assert_eq!(s.balance("alpha").await, (0, 10_000));
    s.stop().await;
}

fn subscribing(expiry: (&str, &str), period: &str) -> Value {
    let mut body = payment(PLAIN_CARD, 5_000);
    body["payment_details"]["card"]["bank_card"]["expiration_month"] = json!(expiry.0);
    body["payment_details"]["card"]["bank_card"]["expiration_year"] = json!(expiry.1);
    body["payment_options"]["subscription"] = json!({"period": period});
    body
}

/// `days` pass, then the seconds a charge takes to be prepared and answered.
async fn pass(s: &TestServer, days: i64) {
    s.clock.advance(time::Duration::days(days));
    s.advance(1).await;
    s.advance(1).await;
}

/// The charges the bank made (sessions whose payment is not the first), as
/// their last `payment_finished` webhooks show them, oldest first.
fn charges(r: &common::Receiver) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    for h in r.received().into_iter().filter(|h| h.body["type"] == "payment_finished") {
        let session = h.body["session"].clone();
        if session["payment_list"][0]["subscription"]["initial"] != false {
            continue;
        }
        match seen.iter_mut().find(|s| s["id"] == session["id"]) {
            Some(s) => *s = session,
            None => seen.push(session),
        }
    }
    seen
}

/// A first payment that asks for a subscription makes one when it
/// succeeds; the bank charges the card every period, each charge a session
/// of its own with `initial: false`; cancelled, it charges nothing; restored,
/// it charges again from the next point of its schedule.
#[tokio::test]
async fn a_subscription_charges_every_period_until_cancelled_and_again_once_restored() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let a = s.call("v2", "session/init/payment", &subscribing(("12", "30"), "month")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let first = id_of(&a);
    let p = the_payment(&a.body["session"], "v2");
    assert_eq!(p["subscription"], json!({"period": "month", "initial": true}), "no subscription before success");
    assert_eq!(p["payment_options"]["subscription"], json!({"period": "month"}));
    s.settle().await;
    s.advance(1).await;
    let p = the_payment(&status(&s, "v2", &first).await, "v2");
    assert_eq!(p["status"], "succeeded");
    let sub = p["subscription"]["id"].as_str().unwrap().to_string();
    assert!(sub.starts_with("sub_"), "{p}");
    assert_eq!(p["subscription"]["next_point"], "2026-12-30T12:00:01.000000Z", "{p}");
    assert_eq!(p["subscription"]["retries_exceeded"], false);
    assert!(charges(&r).is_empty());

    // A month on the bank charges the card: a session of its own.
    pass(&s, 30).await;
    let done = charges(&r);
    assert_eq!(done.len(), 1, "{done:?}");
    let charge = &done[0]["payment_list"][0];
    assert_ne!(done[0]["id"], first.as_str());
    assert_eq!((charge["status"].as_str(), done[0]["status"].as_str()), (Some("succeeded"), Some("accepted")));
    assert_eq!(charge["amount_details"], json!({"amount": 5_000, "currency": "rub"}));
    assert_eq!(charge["payment_details"]["card"]["last4"], "4242");
    assert_eq!(charge["customer"]["reference"], "lucky");
    assert_eq!(
        (charge["subscription"]["id"].as_str(), charge["subscription"]["next_point"].as_str()),
        (Some(sub.as_str()), Some("2027-01-30T12:00:01.000000Z"))
    );
    assert_eq!(s.balance("alpha").await, (10_000, 0), "two payments captured");

    // Cancelled: nothing more is charged; the first payment shows no next point.
    let cancel = json!({"subscription_id": sub});
    let a = s.call("v1", "subscription/cancel", &cancel).await;
    assert_eq!((a.status, a.body.clone()), (200, json!({"status": "ok"})), "{}", a.text);
    assert_eq!(s.call("v1", "subscription/cancel", &cancel).await.body, json!({"status": "ok"}), "twice is harmless");
    pass(&s, 70).await;
    assert_eq!(charges(&r).len(), 1);
    let p = the_payment(&status(&s, "v1", &first).await, "v1");
    assert!(p["subscription"].get("next_point").is_none(), "{p}");
    // Restored: the points it missed are not charged; the next one is.
    assert_eq!(s.call("v1", "subscription/restore", &cancel).await.body, json!({"status": "ok"}));
    s.settle().await;
    assert_eq!(charges(&r).len(), 1, "the missed points are not charged");
    let p = the_payment(&status(&s, "v1", &first).await, "v1");
    // Cancelled on 30 December, restored on 10 March: the next point of the schedule is 30 March.
    assert_eq!(p["subscription"]["next_point"], "2027-03-30T12:00:01.000000Z", "{p}");
    pass(&s, 20).await;
    assert_eq!(charges(&r).len(), 2);

    // Bad calls are named; another project's subscription is unknown.
    let a = s.call("v1", "subscription/cancel", &json!({"subscription_id": "sub_0"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["subscription_id".to_string()]), "{}", a.text);
    let a = s.call("v1", "subscription/restore", &json!({"subscription_id": sub, "reason": "x"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["reason".to_string()]), "{}", a.text);
    let beta = s.call_bytes("v1", "subscription/cancel", "beta", common::key(1), cancel.to_string().into_bytes(), None);
    let beta = beta.await;
    assert_eq!((beta.status, fields(&beta)), (400, vec!["subscription_id".to_string()]), "{}", beta.text);
    // Only a card payment starts one; the period is one of four.
    let mut fps = payment(PLAIN_CARD, 5_000);
    fps["payment_details"] = json!({"type": "faster_payment_system"});
    fps["payment_options"]["subscription"] = json!({"period": "month"});
    let a = s.call("v2", "session/init/payment", &fps).await;
    assert_eq!(fields(&a), ["payment_options.subscription"], "{}", a.text);
    let a = s.call("v2", "session/init/payment", &subscribing(("12", "30"), "fortnight")).await;
    assert_eq!(fields(&a), ["payment_options.subscription.period"], "{}", a.text);
    let mut split = subscribing(("12", "30"), "month");
    split["revenue_split_info"] = json!([{"contractor_alias": "c1", "percent": "10"}]);
    let a = s.call("v2", "session/init/payment", &split).await;
    assert_eq!(fields(&a), ["payment_options.subscription"], "charges are not split: {}", a.text);
    // The bank's own idempotency keys are its own.
    let small = payment(PLAIN_CARD, 100);
    let a = s.call_with("v2", "session/init/payment", &small, &[("X-PARTNER-IDEMPOTENCY-KEY", "open131:x")]).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["x-partner-idempotency-key".to_string()]), "{}", a.text);
    s.stop().await;
}

/// A charge on a card past its expiry is declined `bank_card_expired`,
/// tried again a day later, and the third decline in a row stops the
/// subscription (`retries_exceeded`) until it is restored.
#[tokio::test]
async fn declined_charges_are_retried_and_the_third_stops_the_subscription() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    // The card expires at the end of November 2026: today it pays.
    let first = id_of(&s.call("v2", "session/init/payment", &subscribing(("11", "26"), "day")).await);
    s.settle().await;
    s.advance(1).await;
    let sub = the_payment(&status(&s, "v2", &first).await, "v2")["subscription"]["id"].as_str().unwrap().to_string();
    for day in 1..=5 {
        pass(&s, 1).await;
        let done = charges(&r);
        assert_eq!(done.len(), day.min(3), "day {day}: {done:?}");
    }
    let done = charges(&r);
    for c in &done {
        assert_eq!(c["payment_list"][0]["error"]["code"], "bank_card_expired", "{c}");
        assert_eq!(c["status"], "error");
    }
    let last = &done[2]["payment_list"][0]["subscription"];
    assert_eq!((last["retries_exceeded"].as_bool(), last.get("next_point")), (Some(true), None), "{last}");
    assert_eq!(s.balance("alpha").await, (5_000, 0), "only the first payment was captured");
    // Restored, it is tried at once (and declined again: the card is still expired).
    assert_eq!(s.call("v2", "subscription/restore", &json!({"subscription_id": sub})).await.status, 200);
    s.advance(1).await;
    s.advance(1).await;
    assert_eq!(charges(&r).len(), 4);
    s.stop().await;
}

/// Virtual time (issue 13 §1): a subscription's charge and a refund's result
/// come on the project's clock, moved over the admin API while the real clock
/// stands still.
#[tokio::test]
async fn a_subscription_charge_and_a_refunds_result_follow_the_projects_clock() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, r) = server(auto).await;
    let mut app = s.app.clone();
    app.admin_token = Some("clock-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clock = format!("http://{}/admin/v1/clock", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let advance = |seconds: i64| {
        let (s, clock) = (&s, clock.clone());
        async move {
            let body = json!({"project": "alpha", "advance_s": seconds});
            let r = s.http.post(&clock).bearer_auth("clock-token").json(&body).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            s.settle().await;
        }
    };
    let first = id_of(&s.call("v2", "session/init/payment", &subscribing(("12", "30"), "month")).await);
    s.settle().await;
    advance(1).await;
    assert_eq!(the_payment(&status(&s, "v2", &first).await, "v2")["status"], "succeeded");
    assert!(charges(&r).is_empty());
    advance(30 * 86_400).await;
    advance(1).await;
    advance(1).await;
    let done = charges(&r);
    assert_eq!(done.len(), 1, "charged a month on by alpha's clock: {done:?}");
    assert_eq!(done[0]["payment_list"][0]["status"], "succeeded");

    let a = s.call("v2", "session/refund", &json!({"session_id": first})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.settle().await;
    assert_eq!(refunds(&status(&s, "v2", &first).await)[0]["status"], "in_progress");
    advance(1).await;
    let list = refunds(&status(&s, "v2", &first).await);
    assert_eq!(list[0]["status"], "accepted", "{list:?}");
    let finished = list[0]["finished_at"].as_str().unwrap();
    assert!(finished.starts_with("2026-12-3"), "stamped with alpha's time, a month on: {finished}");
    s.stop().await;
}
