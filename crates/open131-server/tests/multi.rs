//! Multi-sessions (`session/multi/init`, issue 8) over real HTTP with a manual
//! clock, on the backend the environment selects: a customer's payment and
//! then payouts in one session, in turn; the money comes in before it goes
//! out; the session's status follows every operation; both request forms
//! (the official SDK's and the spec's lists), and fields refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fields, id_of, server, status, TestServer};
use open131_domain::ledger::Book;
use open131_domain::settings::{CaptureMode, FeeRate};
use open131_store::SettingsChange;
use serde_json::{json, Value};

fn auto() -> SettingsChange {
    SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }
}

fn paying_card() -> Value {
    json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
        "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}})
}

fn payout_card() -> Value {
    json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}})
}

fn bank_account() -> Value {
    json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"bik": "044525974",
        "account": "40817810400003869535", "full_name": "Иванов Иван Иванович", "description": "Перевод"}}})
}

fn amount(a: i64) -> Value {
    json!({"amount": a, "currency": "rub"})
}

/// The official SDK's form: one amount, one payment and one payout of it.
fn sdk_form(sum: i64) -> Value {
    json!({
        "payment_details_multi": [paying_card()],
        "payout_details_multi": [payout_card()],
        "amount_details": amount(sum),
        "customer": {"reference": "lucky"},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "metadata": "order-7",
    })
}

/// The spec's form: whole bodies, each with its own amount.
fn list_form(pay: i64, payouts: &[(Value, i64)]) -> Value {
    json!({
        "payment_list": [{"payment_details": paying_card(), "amount_details": amount(pay),
            "customer": {"reference": "lucky"}}],
        "payout_list": payouts.iter().map(|(method, a)| json!({"payment_method": method, "amount_details": amount(*a),
            "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}}})).collect::<Vec<_>>(),
    })
}

/// The statuses of the session's payouts shown (v2 naming).
fn payouts(session: &Value) -> Vec<String> {
    let list = session["payout_list"].as_array().cloned().unwrap_or_default();
    list.iter().map(|p| p["status"].as_str().unwrap().to_string()).collect()
}

/// (available, reserved, held) of the main rouble wallet.
async fn wallet(s: &TestServer) -> (i64, i64, i64) {
    let w = s.app.store.wallets("alpha").await.unwrap();
    let w = w.iter().find(|w| w.book == Book::Main && w.currency == "rub").cloned();
    w.map_or((0, 0, 0), |w| (w.available, w.reserved, w.held))
}

#[tokio::test]
async fn the_payment_comes_in_then_the_payout_goes_out() {
    let (s, r) = server(auto()).await;
    let a = s.call("v2", "session/multi/init", &sdk_form(10_000)).await;
    let id = id_of(&a);
    let session = &a.body["session"];
    assert_eq!(session["status"], "in_progress");
    assert_eq!(session["payment_list"][0]["status"], "in_progress");
    assert!(session.get("payout_list").is_none(), "a payout is shown once it begins: {session}");

    // Prepared and authorized: captured at once, and the payout begins in the same write.
    s.settle().await;
    s.advance(1).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!(session["payment_list"][0]["status"], "succeeded", "{session}");
    assert_eq!(session["status"], "in_progress", "a payout is still to run");
    assert_eq!(payouts(&session), ["in_progress"]);
    assert_eq!(session["payout_list"][0]["amount_details"], amount(10_000));
    assert_eq!(session["payout_list"][0]["metadata"], "order-7");
    assert_eq!(session["payout_list"][0]["payout_details"]["card"]["last4"], "4940");
    assert!(!session.to_string().contains("2200000000004940"), "the payout card is masked: {session}");
    let paid_at = session["payment_list"][0]["finished_at"].clone();
    assert!(paid_at.is_string(), "the payment finished, though the session goes on: {session}");
    assert!(session["payout_list"][0].get("finished_at").is_none());
    assert_eq!(wallet(&s).await, (0, 10_000, 0), "the payment's money is reserved for the payout");

    s.advance(1).await;
    let session = status(&s, "v1", &id).await;
    assert_eq!(session["status"], "accepted", "{session}");
    assert_eq!(session["payments"][0]["status"], "succeeded", "v1 names the payouts `payments`");
    assert_eq!(session["acquiring_payments"][0]["status"], "succeeded");
    assert!(session["finished_at"].is_string());
    assert_eq!(session["acquiring_payments"][0]["finished_at"], paid_at, "each operation keeps its own finish time");
    assert_eq!(session["payments"][0]["finished_at"], session["finished_at"], "the payout ended the session");
    assert_ne!(paid_at, session["finished_at"]);
    assert_eq!(wallet(&s).await, (0, 0, 0), "in and out again");
    assert_eq!(r.types_for(&id), ["payment_finished", "payment_finished"], "one for each operation");
    s.stop().await;
}

#[tokio::test]
async fn payouts_wait_for_the_capture_and_run_in_list_order() {
    let hold = SettingsChange {
        auto_confirm: Some(true),
        capture: Some(CaptureMode::Hold),
        payment_fee: FeeRate::parse("2.5%"),
        ..SettingsChange::default()
    };
    let (s, _r) = server(hold).await;
    let body = list_form(10_000, &[(payout_card(), 3_000), (bank_account(), 5_000)]);
    let id = id_of(&s.call("v1", "session/multi/init", &body).await);
    s.settle().await;
    s.advance(1).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!(session["next_action"], "capture", "{session}");
    assert!(payouts(&session).is_empty(), "held money is not paid out");
    s.advance(3_600).await;
    assert!(payouts(&status(&s, "v2", &id).await).is_empty(), "still waiting for the capture");

    let a = s.call("v2", "session/capture", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(payouts(&a.body["session"]), ["in_progress"], "the first payout begins at the capture");
    assert_eq!(a.body["session"]["payout_list"][0]["amount_details"], amount(3_000));
    s.settle().await;
    s.advance(1).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!(payouts(&session), ["succeeded", "in_progress"], "then the second: {session}");
    assert_eq!(session["payout_list"][1]["payout_details"]["type"], "bank_account");
    s.advance(1).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!((session["status"].as_str(), payouts(&session)), (Some("accepted"), vec!["succeeded".into(); 2]));
    // 100.00 captured, 2.50 fee, 80.00 paid out.
    assert_eq!(wallet(&s).await, (1_750, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn a_declined_payment_ends_the_session_and_no_payout_begins() {
    let (s, r) = server(auto()).await;
    s.app.store.topup("alpha", "rub", 50_000, common::START).await.unwrap();
    let two = list_form(13_203, &[(payout_card(), 5_000), (payout_card(), 5_000)]);
    let id = id_of(&s.call("v2", "session/multi/init", &two).await);
    s.settle().await;
    s.advance(1).await;
    s.advance(24 * 3_600).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!(session["status"], "error", "{session}");
    assert_eq!(session["payment_list"][0]["status"], "failed");
    assert!(payouts(&session).is_empty(), "{session}");
    assert_eq!(wallet(&s).await, (50_000, 0, 0), "the balance already there is not paid out");
    assert_eq!(r.types_for(&id), ["payment_finished"]);
    s.stop().await;
}

#[tokio::test]
async fn a_payout_the_balance_cannot_cover_fails_the_session_after_the_payment() {
    let (s, _r) = server(auto()).await;
    // Two payouts of the whole amount: the payment covers the first only.
    let two = list_form(10_000, &[(payout_card(), 10_000), (payout_card(), 10_000)]);
    let id = id_of(&s.call("v2", "session/multi/init", &two).await);
    s.settle().await;
    for _ in 0..3 {
        s.advance(1).await;
    }
    let session = status(&s, "v2", &id).await;
    assert_eq!(session["status"], "error", "{session}");
    assert_eq!(session["payment_list"][0]["status"], "succeeded", "the payment stands: the partner may refund it");
    assert_eq!(payouts(&session), ["succeeded", "failed"]);
    assert_eq!(session["payout_list"][1]["error"]["code"], "insufficient_wallet_balance");
    assert_eq!(session["error"]["code"], "insufficient_wallet_balance");
    assert_eq!(wallet(&s).await, (0, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn confirm_and_cancel_reach_the_operation_that_runs() {
    // Projects confirm by default: the payment, then the payout, each wait for it.
    let (s, r) = server(SettingsChange::default()).await;
    let id = id_of(&s.call("v2", "session/multi/init", &sdk_form(10_000)).await);
    s.settle().await;
    assert_eq!(status(&s, "v2", &id).await["next_action"], "confirm");
    assert_eq!(s.call("v2", "session/confirm", &json!({"session_id": id})).await.status, 200);
    s.advance(1).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!((session["next_action"].as_str(), payouts(&session)), (Some("confirm"), vec!["pending".to_string()]));
    let a = s.call("v2", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(payouts(&a.body["session"]), ["in_progress"], "the payout's confirmation, not the payment's");
    s.advance(1).await;
    assert_eq!(status(&s, "v2", &id).await["status"], "accepted");
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "payment_finished", "ready_to_confirm", "payment_finished"]);

    // Cancelled while the payment waits: nothing is paid out, ever.
    let id = id_of(&s.call("v2", "session/multi/init", &sdk_form(10_000)).await);
    s.settle().await;
    let a = s.call("v2", "session/cancel", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.advance(2 * 24 * 3_600).await;
    let session = status(&s, "v2", &id).await;
    assert_eq!((session["status"].as_str(), payouts(&session)), (Some("cancelled"), Vec::<String>::new()));
    s.stop().await;
}

#[tokio::test]
async fn bad_multi_sessions_are_refused_by_name() {
    let (s, _r) = server(auto()).await;
    let refused = |a: &common::Answer| (a.status, fields(a));
    let mut bad = sdk_form(10_000);
    bad["payout_details_multi"][0]["card"]["bank_card"]["number"] = json!("4242424242424241");
    let a = s.call("v2", "session/multi/init", &bad).await;
    assert_eq!(refused(&a), (400, vec!["payout_details_multi[0].card.bank_card.number".to_string()]), "{}", a.text);
    let mut twice = sdk_form(10_000);
    twice["payout_details_multi"] = json!([payout_card(), payout_card()]);
    let a = s.call("v2", "session/multi/init", &twice).await;
    assert_eq!(refused(&a), (400, vec!["payout_details_multi".to_string()]), "one amount, one payout: {}", a.text);
    let mut routed = sdk_form(10_000);
    routed["custom_routing"] = json!({"tags": []});
    let a = s.call("v2", "session/multi/init", &routed).await;
    assert_eq!(refused(&a), (400, vec!["custom_routing".to_string()]), "named once: {}", a.text);

    // Its payouts pay the payment's money on: a split of it too would pay out more than came in.
    let split = json!([{"contractor_alias": "c1", "percent": "10"}]);
    let mut parted = sdk_form(10_000);
    parted["revenue_split_info"] = split.clone();
    assert_eq!(refused(&s.call("v2", "session/multi/init", &parted).await), (400, vec!["revenue_split_info".into()]));
    let mut parted = list_form(10_000, &[(payout_card(), 1_000)]);
    parted["payment_list"][0]["revenue_split_info"] = split;
    let a = s.call("v1", "session/multi/init", &parted).await;
    assert_eq!(refused(&a), (400, vec!["payment_list[0].revenue_split_info".to_string()]), "{}", a.text);
    let mut subscribing = sdk_form(10_000);
    subscribing["payment_options"] = json!({"subscription": {"period": "month"}});
    let a = s.call("v2", "session/multi/init", &subscribing).await;
    assert_eq!(refused(&a), (400, vec!["payment_options.subscription".to_string()]), "{}", a.text);

    let mut two = sdk_form(10_000);
    two["payment_details_multi"] = json!([paying_card(), paying_card()]);
    assert_eq!(refused(&s.call("v2", "session/multi/init", &two).await), (400, vec!["payment_details_multi".into()]));

    let mut no_amount = sdk_form(10_000);
    no_amount.as_object_mut().unwrap().remove("amount_details");
    let a = s.call("v2", "session/multi/init", &no_amount).await;
    assert_eq!(refused(&a), (400, vec!["amount_details".to_string()]), "reported once: {}", a.text);

    let empty = json!({"payment_list": [], "payout_list": [{}]});
    assert_eq!(refused(&s.call("v2", "session/multi/init", &empty).await), (400, vec!["payment_list".into()]));

    let mut no_customer = list_form(10_000, &[(payout_card(), 1_000)]);
    no_customer["payment_list"][0].as_object_mut().unwrap().remove("customer");
    no_customer["payout_list"][0]["amount_details"]["amount"] = json!(-1);
    let a = s.call("v1", "session/multi/init", &no_customer).await;
    let expected = vec!["payment_list[0].customer".to_string(), "payout_list[0].amount_details.amount".to_string()];
    assert_eq!(refused(&a), (400, expected), "{}", a.text);

    // Only the last payout may be one its bank returns (a session keeps one return).
    let returned_first = list_form(30_000, &[(bank_account(), 13_110), (payout_card(), 1_000)]);
    let a = s.call("v1", "session/multi/init", &returned_first).await;
    assert_eq!(refused(&a), (400, vec!["payout_list[0].payment_method".to_string()]), "{}", a.text);

    // A converted payout too costly is named where it was sent.
    s.app.store.set_rate("usd", Some(open131_domain::fx::FxRate::parse("92.5").unwrap()), common::START).await.unwrap();
    let mut costly = list_form(10_000, &[(payout_card(), 1_000), (payout_card(), 100_000_000)]);
    costly["payout_list"][1]["amount_details"]["currency"] = json!("usd");
    let a = s.call("v1", "session/multi/init", &costly).await;
    assert_eq!(refused(&a), (400, vec!["payout_list[1].amount_details.amount".to_string()]), "{}", a.text);
    assert_eq!(wallet(&s).await, (0, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn the_last_payout_returned_by_its_bank_shows_the_return_alone() {
    let (s, r) = server(auto()).await;
    let body = list_form(30_000, &[(payout_card(), 1_000), (bank_account(), 13_110)]);
    let id = id_of(&s.call("v1", "session/multi/init", &body).await);
    s.settle().await;
    for _ in 0..3 {
        s.advance(1).await;
    }
    assert_eq!(status(&s, "v2", &id).await["status"], "accepted");
    s.advance(60).await;
    let session = status(&s, "v2", &id).await;
    let refunds = |i: usize| session["payout_list"][i]["refunds"].as_array().unwrap().len();
    assert_eq!((refunds(0), refunds(1)), (0, 1), "only the returned payout shows its return: {session}");
    assert_eq!(session["payout_list"][1]["refunds"][0]["amount_details"], amount(13_110));
    // 300.00 in, 10.00 paid out, 131.10 paid and returned.
    assert_eq!(wallet(&s).await, (29_000, 0, 0));
    s.settle().await;
    assert_eq!(r.types_for(&id).iter().filter(|t| *t == "payment_refunded").count(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_payout_cancelled_or_a_payment_refunded_while_the_payouts_run() {
    let (s, _r) = server(SettingsChange::default()).await;
    let body = list_form(10_000, &[(payout_card(), 4_000), (payout_card(), 4_000)]);
    let id = id_of(&s.call("v2", "session/multi/init", &body).await);
    s.settle().await;
    assert_eq!(s.call("v2", "session/confirm", &json!({"session_id": id})).await.status, 200);
    s.advance(1).await;
    assert_eq!(payouts(&status(&s, "v2", &id).await), ["pending"]);
    // The payment may be refunded in part while its payouts wait.
    let part = json!({"session_id": id, "amount_details": amount(1_000)});
    let a = s.call("v2", "session/refund", &part).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.advance(1).await;
    let a = s.call("v2", "session/cancel", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let session = &a.body["session"];
    assert_eq!(session["status"], "cancelled", "the payout was cancelled, so is the session: {session}");
    assert_eq!(payouts(session), ["failed"], "the second never begins");
    assert_eq!(session["payment_list"][0]["status"], "succeeded", "the payment stands");
    assert_eq!(session["payment_list"][0]["refunds"][0]["status"], "accepted");
    s.advance(24 * 3_600).await;
    assert_eq!(payouts(&status(&s, "v2", &id).await), ["failed"]);
    assert_eq!(wallet(&s).await, (9_000, 0, 0), "the payment less its refund");
    s.stop().await;
}
