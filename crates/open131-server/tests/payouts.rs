//! Payouts end to end over real HTTP with a manual clock: the flows of v1 and
//! v2, confirm / cancel / timeout / auto-confirm, every sandbox outcome, the
//! ledger, idempotency, isolation, and webhooks checked by a receiver that
//! verifies each signature with the bank key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{key, start, Receiver, TestServer};
use open131_domain::fx::FxRate;
use open131_domain::ident::{complete_account, luhn_ok, Bik};
use open131_domain::ledger::Book;
use open131_domain::settings::{CaptureMode, FeeRate};
use open131_store::SettingsChange;
use serde_json::{json, Value};

const START_BALANCE: i64 = 10_000_000;

fn mir_card() -> String {
    let card = "2200000000094940".to_string();
    assert!(luhn_ok(&card));
    card
}

fn card_payout(version: &str, number: &str, amount: i64) -> Value {
    let method = json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": number}}});
    let key = if version == "v2" { "payout_details" } else { "payment_method" };
    json!({
        key: method,
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"},
        "customer": {"reference": "user-17"},
        "metadata": {"order": "A-1", "note": null}
    })
}

fn account_payout(amount: i64) -> Value {
    let bik = Bik::parse("049205131").unwrap();
    let account = complete_account(&bik, "4070281020000000002").unwrap();
    json!({
        "payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {
            "bik": "049205131", "account": account, "full_name": "Иванов Иван Иванович",
            "description": "Оплата по договору 17", "is_fast": false}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"}
    })
}

async fn server() -> (TestServer, Receiver) {
    server_with(|_| {}).await
}

async fn server_with(configure: impl FnOnce(&mut open131_server::Config)) -> (TestServer, Receiver) {
    let s = common::start_with(configure, |store| store).await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.app.store.topup("alpha", "rub", START_BALANCE, common::START).await.unwrap();
    (s, r)
}

fn session_id(a: &common::Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["session"]["id"].as_str().unwrap().to_string()
}

async fn status(s: &TestServer, version: &str, id: &str) -> Value {
    let a = s.call(version, "session/status", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["session"].clone()
}

/// `prefix` + the millisecond of its making + 16 random digits (README):
/// new rows sit at the end of their indexes, and the id is as hard to guess
/// as one of 16 random digits.
fn assert_id_shape(id: &str, prefix: &str) {
    let digits = id.strip_prefix(prefix).unwrap_or_else(|| panic!("{id} starts with {prefix}"));
    assert!(digits.len() > 16 && digits.bytes().all(|b| b.is_ascii_digit()), "{id}");
    let ms: i128 = digits[..digits.len() - 16].parse().unwrap();
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    assert!((now_ms - 60_000..=now_ms).contains(&ms), "{id} begins with the millisecond of its making");
}

#[tokio::test]
async fn ids_begin_with_their_millisecond_and_sort_by_it() {
    let (s, _r) = server().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(session_id(&s.call("v1", "session/create", &json!({})).await));
        // Ids of different milliseconds sort by their making.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    for id in &ids {
        assert_id_shape(id, "ps_");
    }
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids);
    assert_ne!(ids[0][3..ids[0].len() - 16], ids[2][3..ids[2].len() - 16]);
}

#[tokio::test]
async fn v1_card_payout_confirm_and_finish() {
    let (s, r) = server().await;
    let a = s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 10_000)).await;
    let id = session_id(&a);
    let session = &a.body["session"];
    assert_id_shape(&id, "ps_");
    assert_eq!(session["status"], "in_progress");
    let payout = &session["payments"][0];
    assert_id_shape(payout["id"].as_str().unwrap(), "po_");
    assert_eq!(payout["status"], "in_progress");
    assert_eq!(
        payout["payment_method"],
        json!({"type": "card", "card": {"brand": "mir", "last4": "4940", "bin": "220000"}})
    );
    assert_eq!(payout["amount_details"], json!({"amount": 10_000, "currency": "rub"}));
    assert_eq!(payout["metadata"], json!({"order": "A-1"}), "nulls are dropped, never echoed");
    assert!(session.get("payout_list").is_none() && !a.text.contains("null"), "{}", a.text);
    assert!(!a.text.contains(&mir_card()), "the card number never comes back");
    // RFC 3339 UTC with microseconds.
    let created = session["created_at"].as_str().unwrap();
    assert_eq!(created.len(), 27, "{created}");
    assert!(created.ends_with('Z'));

    s.settle().await;
    let st = status(&s, "v1", &id).await;
    assert_eq!((st["status"].as_str(), st["next_action"].as_str()), (Some("in_progress"), Some("confirm")));
    assert_eq!(st["payments"][0]["status"], "pending");
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm"]);
    assert_eq!(s.balance("alpha").await, (START_BALANCE, 0), "nothing reserved before confirm");

    let a = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["session"]["payments"][0]["status"], "in_progress");
    assert!(a.body["session"].get("next_action").is_none());
    assert_eq!(s.balance("alpha").await, (START_BALANCE - 10_000, 10_000), "confirm reserves");

    s.advance(1).await;
    let st = status(&s, "v1", &id).await;
    assert_eq!(st["status"], "accepted");
    assert_eq!(st["payments"][0]["status"], "succeeded");
    assert!(st["finished_at"].is_string());
    assert_eq!(s.balance("alpha").await, (START_BALANCE - 10_000, 0), "success debits the reservation");
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished"]);
    let received = r.received();
    assert!(received.iter().all(|w| w.signature_ok), "every webhook verifies with the bank key");
    let finished = &received[1].body["session"];
    assert_eq!(finished["payments"][0]["status"], "succeeded");
    assert!(finished.get("payout_list").is_none(), "v1 sessions send v1 names");
    s.stop().await;
}

#[tokio::test]
async fn v2_create_then_start_uses_v2_names_everywhere() {
    let (s, r) = server().await;
    // SDKs send `[]` for an empty request.
    let a = s.call_bytes("v2", "session/create", "alpha", key(0), b"[]".to_vec(), None).await;
    let id = session_id(&a);
    assert_eq!(a.body["session"]["status"], "created");
    assert!(a.body["session"].get("payout_list").is_none());

    let mut body = card_payout("v2", "4242424242424242", 5_000);
    body["session_id"] = json!(id);
    let a = s.call("v2", "session/start/payout", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let payout = &a.body["session"]["payout_list"][0];
    assert_eq!(payout["payout_details"]["card"]["brand"], "visa");
    assert!(a.body["session"].get("payments").is_none() && payout.get("payment_method").is_none());
    // Starting twice is a state error.
    let again = s.call("v2", "session/start/payout", &body).await;
    assert_eq!((again.status, again.body["error"]["code"].as_str()), (400, Some("session_wrong_state")));

    s.settle().await;
    s.call("v2", "session/confirm", &json!({"session_id": id})).await;
    s.advance(1).await;
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished"]);
    for w in r.received() {
        assert!(w.body["session"]["payout_list"].is_array() && w.body["session"].get("payments").is_none());
    }
    // Answers use the names of the path that asks (spec §1.1): a v1 client
    // reading a v2-created session sees v1 names.
    let v1_view = status(&s, "v1", &id).await;
    assert!(v1_view["payments"].is_array() && v1_view.get("payout_list").is_none());
    assert!(v1_view["payments"][0]["payment_method"].is_object());
    assert!(v1_view["payments"][0].get("payout_details").is_none());

    // Webhooks follow the project's setting: here v1 names for a v2 session.
    let change = open131_store::SettingsChange {
        webhook_naming: Some(open131_domain::settings::WebhookNaming::V1),
        ..Default::default()
    };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let id = session_id(&s.call("v2", "session/init/payout", &card_payout("v2", &mir_card(), 5_100)).await);
    s.settle().await;
    let ready = r.received().into_iter().find(|w| w.body["session"]["id"] == id.as_str()).unwrap();
    assert!(ready.body["session"]["payments"][0]["payment_method"].is_object(), "{}", ready.body);
    assert!(ready.body["session"].get("payout_list").is_none());
    s.stop().await;
}

#[tokio::test]
async fn cancel_before_confirm_and_wrong_states() {
    // The bank takes a while to prepare here (without a delay its preparation
    // is written with the payout, and the payout is ready at once).
    let (s, r) = server_with(|c| c.payout_prepare_delay = std::time::Duration::from_secs(5)).await;
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 7_000)).await);
    // Confirming before the bank is ready is a state error.
    let early = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!((early.status, early.body["error"]["code"].as_str()), (400, Some("session_wrong_state")));
    s.advance(5).await;
    let a = s.call("v1", "session/cancel", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["session"]["status"], "cancelled");
    assert_eq!(a.body["session"]["payments"][0]["status"], "failed");
    assert_eq!(a.body["session"]["payments"][0]["error"]["code"], "session_cancelled_by_partner");
    for method in ["session/cancel", "session/confirm"] {
        let again = s.call("v1", method, &json!({"session_id": id})).await;
        assert_eq!(
            (again.status, again.body["error"]["code"].as_str()),
            (400, Some("session_wrong_state")),
            "{method}"
        );
    }
    s.settle().await;
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished"]);
    assert_eq!(s.balance("alpha").await, (START_BALANCE, 0));
    // A created session can be cancelled too.
    let created = session_id(&s.call_bytes("v1", "session/create", "alpha", key(0), Vec::new(), None).await);
    let a = s.call("v1", "session/cancel", &json!({"session_id": created})).await;
    assert_eq!(a.body["session"]["status"], "cancelled");
    s.stop().await;
}

#[tokio::test]
async fn confirm_timeout_and_auto_confirm() {
    let (s, r) = server().await;
    let change = open131_store::SettingsChange { confirm_timeout_s: Some(600), ..Default::default() };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 1_000)).await);
    s.settle().await;
    s.advance(599).await;
    assert_eq!(status(&s, "v1", &id).await["payments"][0]["status"], "pending");
    s.advance(1).await;
    let st = status(&s, "v1", &id).await;
    assert_eq!(st["payments"][0]["error"]["code"], "confirm_timeout");
    assert_eq!(st["status"], "cancelled");
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished"]);

    // Single-request payouts: no ready_to_confirm, no confirm call.
    let change = open131_store::SettingsChange { auto_confirm: Some(true), ..Default::default() };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 2_000)).await);
    s.settle().await;
    assert_eq!(s.balance("alpha").await, (START_BALANCE - 2_000, 2_000));
    s.advance(1).await;
    assert_eq!(status(&s, "v1", &id).await["payments"][0]["status"], "succeeded");
    assert_eq!(r.types_for(&id), vec!["payment_finished"]);
    s.stop().await;
}

async fn run_to_end(s: &TestServer, body: &Value) -> (String, Value) {
    let id = session_id(&s.call("v1", "session/init/payout", body).await);
    s.settle().await;
    let a = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.advance(1).await;
    let st = status(s, "v1", &id).await;
    (id, st)
}

#[tokio::test]
async fn every_sandbox_outcome() {
    let (s, r) = server().await;
    let failures = [
        (13_102, "declined_by_issuer_bank"),
        (13_103, "not_permitted_by_issuer_bank"),
        (13_104, "bank_card_expired"),
        (13_105, "card_number_does_not_exist"),
        (13_106, "account_not_found"),
        (13_107, "provider_timeout"),
        (13_108, "provider_exceeds_amount_limit"),
    ];
    for (amount, code) in failures {
        let (id, st) = run_to_end(&s, &card_payout("v1", &mir_card(), amount)).await;
        assert_eq!(st["payments"][0]["status"], "failed", "{code}");
        assert_eq!(st["payments"][0]["error"]["code"], code);
        // The payout failed (the partner did not end it): the session is `error`.
        assert_eq!(st["status"], "error", "{code}");
        let finished = r
            .received()
            .into_iter()
            .find(|w| w.body["session"]["id"] == id.as_str() && w.body["type"] == "payment_finished")
            .unwrap();
        assert_eq!(finished.body["session"]["payments"][0]["error"]["code"], code);
    }
    assert_eq!(s.balance("alpha").await, (START_BALANCE, 0), "failures release every reservation");

    // Slow success: still in progress after the normal delay, done after the slow one.
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 13_109)).await);
    s.settle().await;
    s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    s.advance(1).await;
    assert_eq!(status(&s, "v1", &id).await["payments"][0]["status"], "in_progress");
    s.advance(60).await;
    assert_eq!(status(&s, "v1", &id).await["payments"][0]["status"], "succeeded");

    // A bank-account payout that succeeds, then is returned by the recipient's bank.
    let (id, st) = run_to_end(&s, &account_payout(13_110)).await;
    assert_eq!(st["payments"][0]["status"], "succeeded");
    let masked = st["payments"][0]["payment_method"]["bank_account"]["ru"]["account"].as_str().unwrap();
    assert!(masked.contains('*'), "{masked}");
    let before = s.balance("alpha").await.0;
    s.advance(30).await;
    let st = status(&s, "v1", &id).await;
    let refund = &st["payments"][0]["refunds"][0];
    assert!(refund["id"].as_str().unwrap().starts_with("rf_"));
    assert_eq!(refund["amount_details"], json!({"amount": 13_110, "currency": "rub"}));
    assert_eq!(st["payments"][0]["status"], "succeeded");
    assert_eq!(s.balance("alpha").await.0, before + 13_110, "the returned money is available again");
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished", "payment_refunded"]);

    // Any other valid data succeeds, for every method.
    let fps = json!({
        "payment_method": {"type": "bank_account", "bank_account": {"system_type": "faster_payment_system",
            "faster_payment_system": {"phone": "+79001234567", "bank_id": "100000000111", "description": "x"}}},
        "participant_details": {"recipient": {"first_name": "Иван", "last_name": "Иванов"}},
        "amount_details": {"amount": 500, "currency": "RUB"}
    });
    let wallet = json!({
        "payment_method": {"type": "wallet", "wallet": {"type": "yoomoney", "yoomoney": {"account": "410011234567890"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван"}},
        "amount_details": {"amount": 500, "currency": "rub"}
    });
    let tax = json!({
        "payment_method": {"type": "tax", "tax": {"type": "tax_short", "tax_details": {"period": {"type": "quarter", "number": 2, "year": 2026}}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван"}},
        "amount_details": {"amount": 500, "currency": "rub"}
    });
    for body in [fps, wallet, tax, account_payout(2_500)] {
        let (_, st) = run_to_end(&s, &body).await;
        assert_eq!(st["payments"][0]["status"], "succeeded", "{body}");
    }
    assert!(r.received().iter().all(|w| w.signature_ok));
    s.stop().await;
}

#[tokio::test]
async fn insufficient_balance_fails_the_payout() {
    let (s, r) = server().await;
    let (id, st) = run_to_end(&s, &card_payout("v1", &mir_card(), START_BALANCE + 1)).await;
    assert_eq!(st["payments"][0]["error"]["code"], "insufficient_wallet_balance");
    assert_eq!(s.balance("alpha").await, (START_BALANCE, 0));
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished"]);
    s.stop().await;
}

#[tokio::test]
async fn ledger_postings_always_equal_the_wallet() {
    let (s, _r) = server().await;
    for amount in [1_000, 13_102, 13_110, 2_000] {
        run_to_end(&s, &account_payout(amount)).await;
    }
    s.advance(30).await;
    let sums: std::collections::HashMap<String, i64> =
        s.app.store.posting_sums("alpha", "rub").await.unwrap().into_iter().collect();
    let wallet = s.app.store.wallets("alpha").await.unwrap().remove(0);
    assert_eq!(sums.values().sum::<i64>(), 0, "double entry: every movement balances");
    assert_eq!(sums["available"], wallet.available);
    assert_eq!(sums.get("reserved").copied().unwrap_or(0), wallet.reserved);
    assert_eq!(sums["payouts"], wallet.payouts);
    assert_eq!(wallet.available, START_BALANCE - 3_000);
    let a = s.call_bytes("v1", "wallet/balance", "alpha", key(0), b"{}".to_vec(), None).await;
    assert_eq!(
        a.body,
        json!({"status": "ok", "wallets": [{"id": "w_rub", "amount_details": {"amount": START_BALANCE - 3_000, "currency": "rub"}}]})
    );
    s.stop().await;
}

#[tokio::test]
async fn idempotency_keys_are_enforced_by_the_database() {
    let (s, _r) = server().await;
    let body = serde_json::to_vec(&card_payout("v1", &mir_card(), 1_000)).unwrap();
    let first = s.call_bytes("v1", "session/init/payout", "alpha", key(0), body.clone(), Some("key-1")).await;
    assert_eq!(first.status, 200);
    let again = s.call_bytes("v1", "session/init/payout", "alpha", key(0), body.clone(), Some("key-1")).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.body["error"]["code"], "idempotency_key_already_exists");
    // Repeating a confirm or a cancel with its key is an idempotency error, not a state error.
    let id = session_id(&first);
    s.settle().await;
    let confirm = serde_json::to_vec(&json!({"session_id": id})).unwrap();
    let a = s.call_bytes("v1", "session/confirm", "alpha", key(0), confirm.clone(), Some("confirm-1")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s.call_bytes("v1", "session/confirm", "alpha", key(0), confirm.clone(), Some("confirm-1")).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("idempotency_key_already_exists")));
    let a = s.call_bytes("v1", "session/cancel", "alpha", key(0), confirm, Some("confirm-1")).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("idempotency_key_already_exists")));
    // Another project may use the same key.
    let beta = s.call_bytes("v1", "session/init/payout", "beta", key(1), body.clone(), Some("key-1")).await;
    assert_eq!(beta.status, 200, "{}", beta.text);

    // Concurrent duplicates: exactly one wins.
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (url, body) = (s.url.clone(), body.clone());
            tokio::spawn(async move {
                let sign = key(0).sign_base64(&body).unwrap();
                reqwest::Client::new()
                    .post(format!("{url}/api/v1/session/init/payout"))
                    .header("x-partner-project", "alpha")
                    .header("x-partner-sign", sign)
                    .header("x-partner-idempotency-key", "race")
                    .body(body)
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 400).count(), 15);
    s.stop().await;
}

#[tokio::test]
async fn signatures_cover_the_raw_bytes_in_every_style() {
    let (s, _r) = server().await;
    let number = mir_card();
    // The same request written as different clients write it.
    let styles = [
        // PHP json_encode(JSON_UNESCAPED_UNICODE): raw UTF-8, escaped slashes.
        format!(r#"{{"payment_method":{{"type":"card","card":{{"type":"bank_card","bank_card":{{"number":"{number}"}}}}}},"participant_details":{{"recipient":{{"full_name":"Иванов Иван"}}}},"amount_details":{{"amount":100,"currency":"rub"}},"metadata":"a\/b"}}"#),
        // ASCII-only with \u escapes.
        format!(r#"{{"payment_method":{{"type":"card","card":{{"type":"bank_card","bank_card":{{"number":"{number}"}}}}}},"participant_details":{{"recipient":{{"full_name":"\u0418\u0432\u0430\u043d\u043e\u0432 \u0418\u0432\u0430\u043d"}}}},"amount_details":{{"amount":100,"currency":"rub"}}}}"#),
        // Pretty-printed with spaces and newlines, keys in another order.
        format!("{{\n  \"amount_details\": {{ \"currency\": \"rub\", \"amount\": 100 }},\n  \"participant_details\": {{ \"recipient\": {{ \"full_name\": \"Иванов Иван\" }} }},\n  \"payment_method\": {{ \"type\": \"card\", \"card\": {{ \"type\": \"bank_card\", \"bank_card\": {{ \"number\": \"{number}\" }} }} }}\n}}\n"),
    ];
    for bytes in styles {
        let a = s.call_bytes("v1", "session/init/payout", "alpha", key(0), bytes.clone().into_bytes(), None).await;
        assert_eq!(a.status, 200, "{bytes}: {}", a.text);
        assert_eq!(a.body["session"]["payments"][0]["participant_details"]["recipient"]["full_name"], "Иванов Иван");
    }
    // `[]` and an empty body are empty objects; fps/banks is signed over `[]`.
    for (method, bytes) in [("fps/banks", b"[]".to_vec()), ("wallet/balance", Vec::new())] {
        let a = s.call_bytes("v1", method, "alpha", key(0), bytes, None).await;
        assert_eq!(a.status, 200, "{method}: {}", a.text);
    }
    let sign = key(0).sign_base64(b"[]").unwrap();
    let r = s
        .http
        .get(format!("{}/api/v1/fps/banks", s.url))
        .header("X-PARTNER-PROJECT", "alpha")
        .header("X-PARTNER-SIGN", sign)
        .body("[]")
        .send()
        .await
        .unwrap();
    let banks: Value = r.json().await.unwrap();
    assert!(banks["banks"].as_array().unwrap().iter().any(|b| b["id"] == "100000000111"));

    // A signature over other bytes, a missing one, an unknown project.
    let body = serde_json::to_vec(&card_payout("v1", &number, 100)).unwrap();
    let sign = key(0).sign_base64(&body).unwrap();
    let mut tampered = body.clone();
    tampered.push(b' ');
    let send = |project: &'static str, sign: Option<String>, bytes: Vec<u8>| {
        let mut req = s.http.post(format!("{}/api/v1/session/init/payout", s.url)).body(bytes);
        if !project.is_empty() {
            req = req.header("X-Partner-Project", project);
        }
        if let Some(sign) = sign {
            req = req.header("X-Partner-Sign", sign);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap()["error"]["code"].as_str().unwrap().to_string())
        }
    };
    assert_eq!(send("alpha", Some(sign.clone()), tampered).await, (401, "authentication_error".into()));
    assert_eq!(send("alpha", None, body.clone()).await, (401, "authentication_error".into()));
    assert_eq!(send("beta", Some(sign.clone()), body.clone()).await, (401, "authentication_error".into()));
    assert_eq!(send("gamma", Some(sign.clone()), body.clone()).await, (401, "identification_error".into()));
    assert_eq!(send("", Some(sign.clone()), body.clone()).await, (401, "identification_error".into()));

    // A project limited to some methods.
    let change = open131_store::SettingsChange {
        methods: Some(open131_domain::settings::MethodSet::parse("session/status,wallet/balance").unwrap()),
        ..Default::default()
    };
    s.app.store.set_project_settings("beta", change, common::START).await.unwrap();
    s.app.projects.forget("beta"); // instead of waiting out the 1 s settings cache
    let a = s.call_bytes("v1", "session/init/payout", "beta", key(1), body.clone(), None).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("authorization_error")));
    s.stop().await;
}

#[tokio::test]
async fn invalid_requests_name_every_field() {
    let (s, _r) = server().await;
    let bad = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {
            "number": "4242424242424241", "expiration_month": "01", "expiration_year": "20", "security_code": "12"}}},
        "participant_details": {"recipient": {"first_name": "Иван"}},
        "amount_details": {"amount": 0, "currency": "xyz"}
    });
    let a = s.call("v1", "session/init/payout", &bad).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")));
    let fields: Vec<&str> =
        a.body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(
        fields,
        vec![
            "amount_details.amount",
            "participant_details.recipient",
            "payment_method.card.bank_card.expiration_year",
            "payment_method.card.bank_card.number",
            "payment_method.card.bank_card.security_code",
        ]
    );
    let cases = [
        (
            json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"bik": "049205131", "account": "40702810200000000026", "full_name": "И", "description": "x"}}}),
            "payment_method.bank_account.ru.account",
        ),
        (
            json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"bik": "04920513", "account": "40702810200000000025", "full_name": "И", "description": "x"}}}),
            "payment_method.bank_account.ru.bik",
        ),
        (
            json!({"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"bik": "049205131", "account": "40702810200000000025", "full_name": "И", "description": "д".repeat(211)}}}),
            "payment_method.bank_account.ru.description",
        ),
        (
            json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system", "faster_payment_system": {"phone": "89001234567", "bank_id": "100000000111"}}}),
            "payment_method.bank_account.faster_payment_system.phone",
        ),
        (
            json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system", "faster_payment_system": {"phone": "+79001234567", "bank_id": "1"}}}),
            "payment_method.bank_account.faster_payment_system.bank_id",
        ),
        (
            json!({"type": "wallet", "wallet": {"type": "qiwi", "qiwi": {"account": "123"}}}),
            "payment_method.wallet.qiwi.account",
        ),
        (
            json!({"type": "tax", "tax": {"type": "tax_full", "tax_details": {"kbk": "123", "oktmo": "45000000"}, "payer": {"inn": "7707083893"}, "payee": {"bik": "049205131", "account": "40702810200000000025", "name": "УФК", "inn": "7707083893", "kpp": "770701001"}}}),
            "payment_method.tax.tax_details.kbk",
        ),
        (
            json!({"type": "tax", "tax": {"type": "tax_short", "tax_details": {"period": {"type": "month", "number": 13, "year": 2026}}}}),
            "payment_method.tax.tax_details.period.number",
        ),
        (json!({"type": "crypto"}), "payment_method.type"),
    ];
    for (method, field) in cases {
        let body = json!({"payment_method": method, "participant_details": {"recipient": {"full_name": "И"}}, "amount_details": {"amount": 100, "currency": "rub"}});
        let a = s.call("v1", "session/init/payout", &body).await;
        assert_eq!(a.status, 400, "{field}: {}", a.text);
        let got: Vec<&str> =
            a.body["error"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert_eq!(got, vec![field], "{}", a.text);
    }
    for (bytes, field) in [(&b"{"[..], "body"), (b"[1]", "body"), (b"{}", "session_id")] {
        let a = s.call_bytes("v1", "session/status", "alpha", key(0), bytes.to_vec(), None).await;
        assert_eq!((a.status, a.body["error"]["details"][0]["field"].as_str()), (400, Some(field)), "{}", a.text);
    }
    let a = s.call("v1", "session/nope", &json!({})).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("not_found")));
    // An oversized body is a 413 in the envelope, before any authentication work.
    let big = vec![b' '; 70 * 1024];
    let a = s.call_bytes("v1", "session/status", "alpha", key(0), big, None).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (413, Some("invalid_request")));
    // Bytes that are not UTF-8 in the path still get the envelope.
    let r = s.http.post(format!("{}/api/v1/%FF", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    s.stop().await;
}

#[tokio::test]
async fn projects_cannot_see_each_others_sessions() {
    let (s, _r) = server().await;
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 1_000)).await);
    for method in ["session/status", "session/confirm", "session/cancel"] {
        let body = serde_json::to_vec(&json!({"session_id": id})).unwrap();
        let a = s.call_bytes("v1", method, "beta", key(1), body, None).await;
        assert_eq!(a.status, 400, "{method}");
        assert_eq!(a.body["error"]["details"][0], json!({"field": "session_id", "message": "no such session"}));
    }
    s.stop().await;
}

#[tokio::test]
async fn failed_deliveries_are_retried_on_schedule() {
    let (s, r) = server().await;
    r.fail_with(&[500, 404]);
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 1_000)).await);
    s.settle().await;
    let hooks = s.app.store.webhooks(open131_store::WebhookFilter::default()).await.unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!((hooks[0].attempts, hooks[0].last_status), (1, Some(500)));
    assert_eq!(hooks[0].state, open131_store::WebhookState::Pending);
    // The first retry is 5 s ± 20% later.
    s.advance(3).await;
    assert_eq!(s.app.store.webhooks(Default::default()).await.unwrap()[0].attempts, 1);
    s.advance(3).await;
    let h = &s.app.store.webhooks(Default::default()).await.unwrap()[0];
    assert_eq!((h.attempts, h.last_status), (2, Some(404)));
    s.advance(13).await;
    let h = &s.app.store.webhooks(Default::default()).await.unwrap()[0];
    assert_eq!((h.attempts, h.last_status, h.state), (3, Some(200), open131_store::WebhookState::Delivered));
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm"; 3], "at least once: the same webhook three times");
    let attempts = s.app.store.webhook_attempts(h.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.status).collect::<Vec<_>>(), vec![Some(500), Some(404), Some(200)]);
    // Resend makes it pending again.
    assert!(s.app.store.resend_webhook(h.id, open131_server::Clock::now(&*s.clock)).await.unwrap());
    s.settle().await;
    assert_eq!(r.types_for(&id).len(), 4);
    s.stop().await;
}

#[tokio::test]
async fn webhooks_wait_for_a_url_without_burning_attempts() {
    let s = start().await;
    s.app.store.topup("alpha", "rub", START_BALANCE, common::START).await.unwrap();
    let id = session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 1_000)).await);
    s.advance(3600).await;
    let hooks = s.app.store.webhooks(Default::default()).await.unwrap();
    assert_eq!((hooks.len(), hooks[0].attempts), (1, 0), "no URL: kept, not attempted");
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.settle().await;
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm"]);
    s.stop().await;
}

/// Random sequences of real operations (top-ups of every book, payouts of
/// random amounts and outcomes from every book and in a converted currency,
/// confirm, cancel, card payments with and without 3-D Secure, held or
/// captured at once, captured in part, cancelled, refunded, charged back,
/// a fee, multi-sessions paying out after their payment, time passing) keep
/// the ledger's invariants after every step, in
/// every wallet: postings sum to zero, no guarded balance is negative, and
/// the wallet equals the sum of its postings.
#[tokio::test]
async fn random_operations_keep_the_ledger_consistent() {
    let (s, _r) = server().await;
    s.app.store.set_rate("usd", Some(FxRate::parse("92.5").unwrap()), common::START).await.unwrap();
    for book in [Book::Nominal, Book::Settlement] {
        s.app.store.topup_book("alpha", book, "rub", START_BALANCE, common::START).await.unwrap();
    }
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut sessions: Vec<String> = Vec::new();
    let mut payments: Vec<String> = Vec::new();
    let mut multis: Vec<String> = Vec::new();
    let fee = SettingsChange {
        payment_fee: FeeRate::parse("1.5%"),
        capture: Some(CaptureMode::Hold),
        contractors: Some(open131_domain::settings::NameSet::parse("c1,c2").unwrap()),
        ..SettingsChange::default()
    };
    s.app.store.set_project_settings("alpha", fee, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    for step in 0..600 {
        match next(10) {
            0 => {
                let amount = 1 + next(50_000) as i64;
                let book = [Book::Main, Book::Nominal, Book::Settlement][next(3) as usize];
                s.app.store.topup_book("alpha", book, "rub", amount, common::START).await.unwrap();
            }
            1 | 2 => {
                let amount = match next(4) {
                    0 => 13_102 + next(9) as i64, // a sandbox outcome (13102..=13110)
                    1 => START_BALANCE,           // likely more than is available
                    _ => 1 + next(2_000_000) as i64,
                };
                let a = random_start(&s, next(9), amount).await;
                sessions.push(session_id(&a));
            }
            3 if !sessions.is_empty() => {
                let pool = if !multis.is_empty() && next(2) == 0 { &multis } else { &sessions };
                let id = &pool[next(pool.len() as u64) as usize];
                let method = if next(3) == 0 { "session/cancel" } else { "session/confirm" };
                // Book and converted payouts are confirmed with what ready_to_confirm carried.
                let record = s.app.store.session("alpha", id).await.unwrap().unwrap();
                let info = record.payout().and_then(|p| p.confirm_information.as_ref());
                let mut body = json!({"session_id": id});
                if let Some(info) = info {
                    let stored: Value = serde_json::from_str(info.expose()).unwrap();
                    body["confirm_information"] = open131_domain::books::named(&stored, "payment_method");
                }
                let a = s.call("v1", method, &body).await;
                assert!(a.status == 200 || a.body["error"]["code"] == "session_wrong_state", "{}", a.text);
            }
            4 => {
                let card = if next(3) == 0 { "4000000000003220" } else { "4242424242424242" };
                let amount = if next(3) == 0 { 13_202 + next(9) as i64 } else { 1 + next(300_000) as i64 };
                let version = if next(2) == 0 { "v1" } else { "v2" };
                if next(3) == 0 {
                    // A multi-session: the payment, then payouts of parts of it (or of more).
                    let payouts: Vec<Value> =
                        (0..1 + next(3)).map(|_| card_payout(version, &mir_card(), 1 + next(200_000) as i64)).collect();
                    let body = json!({"payment_list": [card_payment(card, amount)], "payout_list": payouts});
                    let a = s.call(version, "session/multi/init", &body).await;
                    multis.push(session_id(&a));
                    sessions.push(session_id(&a));
                }
                let mut body = card_payment(card, amount);
                if next(3) == 0 {
                    // A split payment: its refunds take back from the contractors too.
                    let second = match next(2) {
                        0 => json!({"contractor_alias": "c2", "remains": true}),
                        _ => json!({"contractor_alias": "c2", "percent": "5"}),
                    };
                    body["revenue_split_info"] = json!([{"contractor_alias": "c1", "percent": "33.33"}, second]);
                }
                let a = s.call(version, "session/init/payment", &body).await;
                payments.push(session_id(&a));
            }
            5 | 6 if !payments.is_empty() => {
                // Half the steps go to multi-sessions, so that some run to their end.
                let pool = if !multis.is_empty() && next(2) == 0 { &multis } else { &payments };
                let id = pool[next(pool.len() as u64) as usize].clone();
                random_payment_step(&s, &id, next(8), 1 + next(300_000) as i64).await;
            }
            7 => {
                // Holds or captures at once, from now on.
                let capture = if next(2) == 0 { CaptureMode::Hold } else { CaptureMode::Auto };
                let change = SettingsChange { capture: Some(capture), ..SettingsChange::default() };
                s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
                s.app.projects.forget("alpha");
            }
            _ => s.advance(1 + next(40) as i64).await,
        }
        s.settle().await;
        check_every_wallet(&s, step).await;
    }
    // The run moved card payments every way: held, captured, refunded, a fee charged.
    let w = s.app.store.wallets("alpha").await.unwrap();
    let main = w.iter().find(|w| w.book == Book::Main && w.currency == "rub").unwrap();
    assert!(main.fees > 0 && main.acquiring < 0, "{main:?}");
    let day_after = common::START + time::Duration::days(1);
    let statement = s.app.store.statement("alpha", Book::Main, "rub", common::START, day_after, 100_000);
    let statement = statement.await.unwrap();
    for movement in ["hold", "capture", "release_hold", "fee", "refund", "split_out", "split_back"] {
        assert!(statement.postings.iter().any(|p| p.movement == movement), "no {movement} in the run");
    }
    // The multi-sessions still running are taken to their end as the partner
    // and the customer would; some are accepted, and the ledger holds.
    let mut accepted = 0;
    for id in &multis {
        accepted += usize::from(finish(&s, id).await == open131_domain::session::SessionState::Accepted);
        check_every_wallet(&s, 600).await;
    }
    assert!(accepted > 0, "no multi-session of {} was accepted", multis.len());
    // The run paid from every book and in a converted currency (the test covers them).
    let wallets = s.app.store.wallets("alpha").await.unwrap();
    for (book, currency) in
        [(Book::Main, "rub"), (Book::Nominal, "rub"), (Book::Settlement, "rub"), (Book::Main, "usd")]
    {
        let w = wallets.iter().find(|w| w.book == book && w.currency == currency);
        assert!(w.is_some_and(|w| w.payouts > 0), "nothing paid from {book:?} {currency}: {wallets:?}");
    }
    s.stop().await;
}

/// Answers what a session waits for (confirm, 3-D Secure, capture) until it ends.
async fn finish(s: &TestServer, id: &str) -> open131_domain::session::SessionState {
    use open131_domain::payment_flow::PaymentState as P;
    use open131_domain::payout_flow::PayoutState as O;
    for _ in 0..12 {
        let record = s.app.store.session("alpha", id).await.unwrap().unwrap();
        if open131_domain::session::is_final(record.state) {
            return record.state;
        }
        let whole = json!({"session_id": id});
        match (record.payment().map(|p| p.state), record.payout().map(|p| p.state)) {
            (_, Some(O::AwaitingConfirm)) | (Some(P::AwaitingConfirm), None) => {
                assert_eq!(s.call("v2", "session/confirm", &whole).await.status, 200);
            }
            (Some(P::AwaitingCapture), None) => assert_eq!(s.call("v2", "session/capture", &whole).await.status, 200),
            (Some(P::AwaitingAction), None) => {
                let url = format!("{}/3ds/alpha/{id}", s.url);
                let form = [("action", "confirm"), ("code", "131131")];
                let status = s.http.post(url).form(&form).send().await.unwrap().status();
                assert!(status.is_success() || status.is_redirection(), "{status}");
            }
            _ => {}
        }
        s.advance(1).await;
    }
    panic!("session {id} did not end");
}

fn card_payment(card: &str, amount: i64) -> Value {
    json!({"payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": card,
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": amount, "currency": "rub"}, "customer": {"reference": "r"}})
}

/// One partner's or customer's step on a card payment: mostly what its state
/// waits for (`what` < 6, chosen among the sensible steps), else any step at
/// all, which may meet the wrong state (that is part of the test).
async fn random_payment_step(s: &TestServer, id: &str, what: u64, amount: i64) {
    use open131_domain::payment_flow::PaymentState as P;
    let record = s.app.store.session("alpha", id).await.unwrap().unwrap();
    let state = record.payment().map(|p| p.state);
    let step = match (what < 6, state) {
        (true, Some(P::AwaitingConfirm)) => ["confirm", "confirm", "cancel"][what as usize % 3],
        (true, Some(P::AwaitingAction)) => "3ds",
        (true, Some(P::AwaitingCapture)) => ["capture", "capture_part", "cancel"][what as usize % 3],
        (true, Some(P::Succeeded)) => ["refund_part", "refund_part", "chargeback"][what as usize % 3],
        _ => {
            ["confirm", "capture", "capture_part", "cancel", "refund_part", "chargeback", "3ds"][(amount % 7) as usize]
        }
    };
    let part = json!({"session_id": id, "amount_details": {"amount": amount % 20_000 + 1, "currency": "rub"}});
    let whole = json!({"session_id": id});
    let a = match step {
        "confirm" => s.call("v2", "session/confirm", &whole).await,
        "capture" => s.call("v2", "session/capture", &whole).await,
        "capture_part" => s.call("v2", "session/capture", &part).await,
        "cancel" => s.call("v2", "session/cancel", &whole).await,
        "refund_part" => s.call("v2", "session/refund", &part).await,
        "chargeback" => s.call("v2", "session/chargeback", &whole).await,
        _ => {
            // The customer on the 3-D Secure page: the right code or a wrong one.
            let code = if amount % 3 == 0 { "000000" } else { "131131" };
            let url = format!("{}/3ds/alpha/{id}", s.url);
            let r = s.http.post(url).form(&[("action", "confirm"), ("code", code)]).send().await.unwrap();
            assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
            return;
        }
    };
    let code = a.body["error"]["code"].as_str().unwrap_or("");
    let expected = ["session_wrong_state", "refund_amount_too_large", "invalid_request"];
    assert!(a.status == 200 || expected.contains(&code), "{}", a.text);
}

/// Starts a payout session one of the ways open131 serves, chosen by `way`.
async fn random_start(s: &TestServer, way: u64, amount: i64) -> common::Answer {
    let fps = json!({"type": "bank_account", "bank_account": {"system_type": "faster_payment_system",
        "faster_payment_system": {"phone": "79261234567", "bank_id": "100000000069"}}});
    let card_transfer = |kind: &str| {
        json!({"payment_details": {"type": "internal_transfer", "internal_transfer": {"type": kind,
                kind: {"description": "Offer"}}},
            "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": mir_card()}}},
            "participant_details": {"sender": {"beneficiary_id": "1234567890"}, "recipient": {"full_name": "Ivanov Ivan"}},
            "amount_details": {"amount": amount, "currency": "rub"}})
    };
    match way {
        0 => s.call("v1", "session/init/payout", &account_payout(amount)).await,
        1 => s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), amount)).await,
        2 => {
            let created = s.call("v2", "session/create", &card_payout("v2", &mir_card(), amount)).await;
            s.call("v2", "session/start/payout", &json!({"session_id": session_id(&created)})).await
        }
        3 => {
            let body = json!({"payment_method": fps, "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
                "amount_details": {"amount": amount, "currency": "rub"}});
            s.call("v1", "session/init/payout", &body).await
        }
        4 => {
            let body = json!({"payout_details": {"type": "bank_account", "bank_account": {
                "system_type": "faster_payment_system_verification",
                "faster_payment_system_verification": {"phone": "79261234567", "bank_id": "100000000069"}}},
                "participant_details": {"recipient": {"first_name": "Ivan", "last_name": "Ivanov"}}});
            s.call("v2", "fps/customer_verification", &body).await
        }
        5 => {
            let mut body = account_payout(amount);
            body["participant_details"]["sender"] = json!({"beneficiary_id": "500100732259"});
            s.call("v1", "session/init/payout/nominal", &body).await
        }
        6 => s.call("v1", "session/multi/init/payment/nominal", &card_transfer("transfer_from_nominal_account")).await,
        7 => {
            let created = s.call("v2", "session/multi/create/rko", &json!({})).await;
            let mut body = card_transfer("transfer_from_bank_account");
            body["session_id"] = json!(session_id(&created));
            s.call("v2", "session/multi/start/payment/rko", &body).await
        }
        _ => {
            // A converted payout: dollars at the operator's rate, paid in roubles.
            let cents = 1 + amount / 100;
            let mut body = card_payout("v1", &mir_card(), 1);
            body["amount_details"] = json!({"amount": cents, "currency": "usd"});
            s.call("v1", "session/init/payout", &body).await
        }
    }
}

/// Every wallet's postings balance and equal its balances; none is negative;
/// `wallet/balance` shows exactly the payout balance's wallets.
async fn check_every_wallet(s: &TestServer, step: usize) {
    let end = common::START + time::Duration::days(3650);
    let wallets = s.app.store.wallets("alpha").await.unwrap();
    let main: Vec<Value> = wallets
        .iter()
        .filter(|w| w.book == Book::Main)
        .map(|w| json!({"id": format!("w_{}", w.currency), "amount_details": {"amount": w.available, "currency": w.currency}}))
        .collect();
    let a = s.call_bytes("v1", "wallet/balance", "alpha", key(0), b"[]".to_vec(), None).await;
    assert_eq!(a.body["wallets"], json!(main), "step {step}");
    for w in wallets {
        let st = s.app.store.statement("alpha", w.book, &w.currency, end, end, 0).await.unwrap();
        let sums: std::collections::HashMap<String, i64> = st.opening.into_iter().collect();
        let sum = |k: &str| sums.get(k).copied().unwrap_or(0);
        assert_eq!(sums.values().sum::<i64>(), 0, "step {step}: postings of {w:?} do not balance");
        assert!(w.available >= 0 && w.reserved >= 0 && w.payouts >= 0 && w.held >= 0, "step {step}: {w:?}");
        assert_eq!(
            (sum("available"), sum("reserved"), sum("payouts"), sum("funding"), sum("exchange"), sum("held")),
            (w.available, w.reserved, w.payouts, w.funding, w.exchange, w.held),
            "step {step}: {w:?}"
        );
        assert_eq!((sum("acquiring"), sum("fees")), (w.acquiring, w.fees), "step {step}: {w:?}");
        // Split payments' parts: the account is what the contractors' wallets hold.
        let held: i64 = s
            .app
            .store
            .contractor_wallets("alpha")
            .await
            .unwrap()
            .iter()
            .filter(|c| c.book == w.book && c.currency == w.currency)
            .map(|c| c.balance)
            .sum();
        assert_eq!((sum("contractors"), w.contractors), (held, held), "step {step}: {w:?}");
    }
}

#[tokio::test]
async fn a_revived_webhook_gets_a_whole_new_schedule_and_stale_results_are_ignored() {
    let (s, r) = server().await;
    r.fail_with(&[500; 400]);
    session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 1_000)).await);
    s.settle().await;
    let first = |s: &TestServer| {
        let store = s.app.store.clone();
        async move {
            store
                .webhooks(Default::default())
                .await
                .unwrap()
                .into_iter()
                .find(|w| w.kind == "ready_to_confirm")
                .unwrap()
        }
    };
    // One attempt per clock step at most, and jittered delays near an hour often
    // need two steps: step until the schedule is exhausted (bounded).
    for _ in 0..200 {
        if first(&s).await.state == open131_store::WebhookState::Failed {
            break;
        }
        s.advance(3_600).await;
    }
    let h = first(&s).await;
    assert_eq!(
        (h.state, h.attempts),
        (open131_store::WebhookState::Failed, open131_server::webhooks::WEBHOOK_ATTEMPTS_MAX)
    );
    assert!(s.app.store.resend_webhook(h.id, open131_server::Clock::now(&*s.clock)).await.unwrap());
    s.settle().await;
    let h = first(&s).await;
    assert_eq!(h.state, open131_store::WebhookState::Pending, "one more failure does not give up again");
    assert_eq!(h.attempts, open131_server::webhooks::WEBHOOK_ATTEMPTS_MAX + 1);

    // A result from a claim whose lease ran out (another claim recorded since) is ignored.
    let stale = open131_store::AttemptResult {
        webhook_id: h.id,
        claimed_attempts: h.attempts - 1,
        at: open131_server::Clock::now(&*s.clock),
        status: Some(200),
        error: None,
        duration_ms: 1,
        injected: None,
        next_attempt_at: None,
        gave_up: false,
        parked: false,
    };
    s.app.store.record_attempts(vec![stale]).await.unwrap();
    let after = first(&s).await;
    assert_eq!((after.state, after.attempts), (open131_store::WebhookState::Pending, h.attempts));
    s.stop().await;
}

#[tokio::test]
async fn a_webhook_being_delivered_is_not_rescheduled_and_full_projects_are_skipped() {
    let (s, _r) = server().await;
    session_id(&s.call("v1", "session/init/payout", &card_payout("v1", &mir_card(), 1_000)).await);
    s.app.process_due().await.unwrap(); // prepare: the ready_to_confirm row is written
    let now = open131_server::Clock::now(&*s.clock);
    let lease = now + time::Duration::seconds(120);
    // A project whose queue is full is left out of the claim.
    let skipped = s.app.store.claim_webhooks(now, lease, 10, vec!["alpha".into()]).await.unwrap();
    assert!(skipped.is_empty());
    let claimed = s.app.store.claim_webhooks(now, lease, 10, Vec::new()).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let id = claimed[0].id;
    // While it is leased, neither a resend, nor retry-pending, nor a new URL reschedules it.
    assert!(!s.app.store.resend_webhook(id, now).await.unwrap());
    assert_eq!(s.app.store.resend_pending(Some("alpha"), now).await.unwrap(), 0);
    s.set_webhook("alpha", "http://127.0.0.1:9/elsewhere").await;
    assert!(s.app.store.claim_webhooks(now, lease, 10, Vec::new()).await.unwrap().is_empty(), "not claimable twice");
    // Once its attempt is recorded, the lease is gone and a resend works.
    let result = open131_store::AttemptResult {
        webhook_id: id,
        claimed_attempts: 0,
        at: now,
        status: Some(500),
        error: Some("HTTP 500".into()),
        duration_ms: 1,
        injected: None,
        next_attempt_at: Some(now + time::Duration::seconds(5)),
        gave_up: false,
        parked: false,
    };
    s.app.store.record_attempts(vec![result]).await.unwrap();
    assert!(s.app.store.resend_webhook(id, now).await.unwrap());
    assert_eq!(s.app.store.claim_webhooks(now, lease, 10, Vec::new()).await.unwrap().len(), 1);
    s.stop().await;
}
