//! Payouts, complete (issue 8) over real HTTP with a manual clock: the
//! docs-and-SDK example corpus (`tests/corpus/payouts/*.json`), the SDK's
//! create-then-start flow, fields refused by name, sub-merchants, and the
//! session status a payout's end leaves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{start, Receiver, TestServer};
use open131_domain::settings::NameSet;
use serde_json::{json, Value};

const START_BALANCE: i64 = 10_000_000;

async fn server() -> (TestServer, Receiver) {
    let s = start().await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    for currency in ["rub", "usd", "eur", "tonc"] {
        s.app.store.topup("alpha", currency, START_BALANCE, common::START).await.unwrap();
    }
    (s, r)
}

fn card(number: &str) -> Value {
    json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": number}}})
}

fn recipient() -> Value {
    json!({"recipient": {"full_name": "Иванов Иван Иванович"}})
}

fn fields(a: &common::Answer) -> Vec<String> {
    let details = a.body["error"]["details"].as_array().cloned().unwrap_or_default();
    details.iter().map(|d| d["field"].as_str().unwrap().to_string()).collect()
}

/// `body` with every `"$session"` string replaced by the last session's id,
/// and `"$settlement_account"` / `"$nominal_account"` by the project's.
fn substitute(body: &Value, session: &str) -> Value {
    let account = |book| json!(open131_domain::books::account_number("alpha", book));
    match body {
        Value::String(s) if s == "$session" => json!(session),
        Value::String(s) if s == "$settlement_account" => account(open131_domain::ledger::Book::Settlement),
        Value::String(s) if s == "$nominal_account" => account(open131_domain::ledger::Book::Nominal),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), substitute(v, session))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| substitute(v, session)).collect()),
        other => other.clone(),
    }
}

/// Every request of the example corpus gets the answer the corpus says.
#[tokio::test]
async fn the_docs_and_sdk_example_corpus() {
    let (s, _r) = server().await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/payouts");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 9, "the corpus is there: {files:?}");
    let mut steps_run = 0;
    for file in files {
        let case: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let mut session = String::new();
        for (i, step) in case["steps"].as_array().unwrap().iter().enumerate() {
            let (version, method) = (step["version"].as_str().unwrap(), step["method"].as_str().unwrap());
            let body = substitute(&step["body"], &session);
            let a = s.call(version, method, &body).await;
            let expect = &step["expect"];
            let at = format!("{name} step {i} ({method}): {}", a.text);
            assert_eq!(a.status, expect["status"].as_u64().unwrap() as u16, "{at}");
            if let Some(status) = expect.get("session_status") {
                assert_eq!(&a.body["session"]["status"], status, "{at}");
                session = a.body["session"]["id"].as_str().unwrap().to_string();
            }
            if let Some(code) = expect.get("code") {
                assert_eq!(&a.body["error"]["code"], code, "{at}");
            }
            if let Some(want) = expect.get("fields") {
                let mut want: Vec<String> =
                    want.as_array().unwrap().iter().map(|f| f.as_str().unwrap().into()).collect();
                want.sort();
                assert_eq!(fields(&a), want, "{at}");
            }
            for (pointer, value) in expect.get("pointers").and_then(Value::as_object).into_iter().flatten() {
                assert_eq!(a.body.pointer(pointer), Some(value), "{at}: {pointer}");
            }
            steps_run += 1;
        }
    }
    assert!(steps_run >= 15, "{steps_run}");
    s.stop().await;
}

#[tokio::test]
async fn created_with_details_then_started_by_id_and_finished() {
    let (s, r) = server().await;
    let create = json!({"payout_details": card("4242424242424242"), "amount_details": {"amount": 5_000, "currency": "rub"},
        "participant_details": recipient(), "customer": {"reference": "user-1"}});
    let a = s.call("v2", "session/create", &create).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    // The draft is not an operation yet, and never shown with the clear number.
    assert!(a.body["session"].get("payout_list").is_none(), "{}", a.text);
    assert!(!a.text.contains("4242424242424242"));

    // A start that overrides the amount: the start's own fields win.
    let a = s
        .call(
            "v2",
            "session/start/payout",
            &json!({"session_id": id, "amount_details": {"amount": 4_000, "currency": "rub"}}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let payout = &a.body["session"]["payout_list"][0];
    assert_eq!(payout["amount_details"]["amount"], 4_000);
    assert_eq!(payout["payout_details"]["card"]["last4"], "4242");
    assert_eq!(payout["customer"]["reference"], "user-1");
    s.settle().await;
    assert_eq!(s.call("v2", "session/confirm", &json!({"session_id": id})).await.status, 200);
    s.advance(1).await;
    let st = s.call("v1", "session/status", &json!({"session_id": id})).await;
    assert_eq!(st.body["session"]["status"], "accepted", "{}", st.text);
    assert_eq!(r.types_for(&id), vec!["ready_to_confirm", "payment_finished"]);
    assert_eq!(s.balance("alpha").await, (START_BALANCE - 4_000, 0));

    // A draft missing what a payout needs: start names each missing field.
    let id = s.call("v1", "session/create", &json!({"amount_details": {"amount": 100, "currency": "rub"}})).await;
    let id = id.body["session"]["id"].as_str().unwrap().to_string();
    let a = s.call("v1", "session/start/payout", &json!({"session_id": id})).await;
    assert_eq!(
        (a.status, fields(&a)),
        (400, vec!["payment_method".to_string(), "participant_details".into()]),
        "{}",
        a.text
    );
    // The refused start changed nothing: the session can still start.
    let body =
        json!({"session_id": id, "payment_method": card("4242424242424242"), "participant_details": recipient()});
    assert_eq!(s.call("v1", "session/start/payout", &body).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn fields_the_server_does_not_act_on_are_refused_by_name() {
    let (s, _r) = server().await;
    let init = |extra: Value| {
        let mut body = json!({"payment_method": card("4242424242424242"), "participant_details": recipient(),
            "amount_details": {"amount": 100, "currency": "rub"}});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let a = s
        .call("v1", "session/init/payout", &init(json!({"colour": "red", "payment_options": {"return_url": "x"}})))
        .await;
    assert_eq!((a.status, fields(&a)), (400, vec!["colour".to_string(), "payment_options".into()]), "{}", a.text);
    assert!(a.text.contains("session/init/payment"), "{}", a.text);

    let a =
        s.call("v1", "session/create", &json!({"payment_method": card("4242424242424242"), "session_id": "x"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);

    let id =
        s.call("v1", "session/init/payout", &init(json!({}))).await.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    let a = s.call("v1", "session/confirm", &json!({"session_id": id, "confirm_information": {}})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["confirm_information".to_string()]), "{}", a.text);
    let a = s.call("v1", "session/status", &json!({"session_id": id, "verbose": true})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["verbose".to_string()]), "{}", a.text);
    let a = s.call("v1", "wallet/balance", &json!({"request_datetime": "yesterday"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["request_datetime".to_string()]), "{}", a.text);
    let a = s.call("v1", "fps/banks", &json!({"country": "ru"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["country".to_string()]), "{}", a.text);
    // The refused confirm left the payout waiting.
    assert_eq!(s.call("v1", "session/confirm", &json!({"session_id": id})).await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn sub_merchants_are_checked_recorded_and_shown() {
    let (s, r) = server().await;
    let body = json!({"payment_method": card("4242424242424242"), "participant_details": recipient(),
        "amount_details": {"amount": 100, "currency": "rub"}});
    let header = [("X-PARTNER-SUBMERCHANT", "shop-1")];
    // None registered by default.
    let a = s.call_with("v1", "session/init/payout", &body, &header).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("authorization_error")), "{}", a.text);
    assert!(a.text.contains("shop-1"), "{}", a.text);

    let change = open131_store::SettingsChange {
        submerchants: Some(NameSet::parse("shop-1,shop-2").unwrap()),
        ..Default::default()
    };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let a = s.call_with("v1", "session/init/payout", &body, &header).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["session"]["submerchant"], "shop-1");
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    let other = s.call_with("v1", "session/init/payout", &body, &[("X-PARTNER-SUBMERCHANT", "shop-3")]).await;
    assert_eq!(other.status, 403, "{}", other.text);
    s.settle().await;
    let ready = r.received().into_iter().find(|w| w.body["session"]["id"] == id.as_str()).unwrap();
    assert_eq!(ready.body["session"]["submerchant"], "shop-1");
    // A header that is not a name is refused naming it, even where any name goes.
    let change = open131_store::SettingsChange { submerchants: Some(NameSet::Any), ..Default::default() };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let long = "x".repeat(65);
    for bad in ["a,b c", long.as_str()] {
        let a = s.call_with("v1", "session/init/payout", &body, &[("X-PARTNER-SUBMERCHANT", bad)]).await;
        assert_eq!((a.status, fields(&a)), (400, vec!["x-partner-submerchant".to_string()]), "{}", a.text);
    }
    let a = s.call_with("v1", "session/init/payout", &body, &[("X-PARTNER-SUBMERCHANT", "any-shop")]).await;
    assert_eq!(a.body["session"]["submerchant"], "any-shop", "{}", a.text);
    // A session without the header shows none.
    let plain = s.call("v1", "session/init/payout", &body).await;
    assert!(plain.body["session"].get("submerchant").is_none(), "{}", plain.text);
    s.stop().await;
}

/// The session table (README): how each end of a payout leaves its session.
#[tokio::test]
async fn each_end_of_a_payout_sets_the_session_status() {
    let (s, _r) = server().await;
    let body = |amount: i64| {
        json!({"payment_method": card("4242424242424242"), "participant_details": recipient(),
        "amount_details": {"amount": amount, "currency": "rub"}})
    };
    let run = |amount: i64, confirm: bool| {
        let s = &s;
        async move {
            let id = s.call("v1", "session/init/payout", &body(amount)).await.body["session"]["id"]
                .as_str()
                .unwrap()
                .to_string();
            s.settle().await;
            let end = if confirm { "session/confirm" } else { "session/cancel" };
            assert_eq!(s.call("v1", end, &json!({"session_id": id})).await.status, 200);
            s.advance(1).await;
            s.call("v1", "session/status", &json!({"session_id": id})).await.body["session"].clone()
        }
    };
    let table = [
        (1_000, true, "accepted", "succeeded", None),
        (1_000, false, "cancelled", "failed", Some("session_cancelled_by_partner")),
        (13_102, true, "error", "failed", Some("declined_by_issuer_bank")),
        (13_107, true, "error", "failed", Some("provider_timeout")),
    ];
    for (amount, confirm, session, payout, code) in table {
        let st = run(amount, confirm).await;
        assert_eq!(st["status"], session, "{amount} {confirm}: {st}");
        assert_eq!(st["payments"][0]["status"], payout, "{st}");
        assert_eq!(st["payments"][0]["error"]["code"].as_str(), code, "{st}");
        assert!(st["payments"][0]["refunds"].is_array(), "refunds always present: {st}");
    }
    s.stop().await;
}

fn verification(phone: &str, first: &str, last: &str) -> Value {
    json!({"payout_details": {"type": "bank_account", "bank_account": {
        "system_type": "faster_payment_system_verification",
        "faster_payment_system_verification": {"phone": phone, "bank_id": "100000000069"}}},
        "participant_details": {"recipient": {"first_name": first, "last_name": last}}})
}

/// `fps/customer_verification`: each row of the sandbox table, no money moved.
#[tokio::test]
async fn fps_recipient_verification() {
    let (s, r) = server().await;
    let table = [
        ("79261234567", "Ivan", "Ivanov", "accepted", "succeeded", None),
        ("79261234567", "Petr", "Ivanov", "error", "failed", Some("recipient_name_mismatch")),
        ("79001234500", "Anna", "Smirnova", "error", "failed", Some("recipient_not_found")),
        ("79001234599", "Anna", "Smirnova", "error", "failed", Some("recipient_name_mismatch")),
        ("79001234512", "Anna", "Smirnova", "accepted", "succeeded", None),
    ];
    for (phone, first, last, session, item, code) in table {
        let a = s.call("v2", "fps/customer_verification", &verification(phone, first, last)).await;
        assert_eq!(a.status, 200, "{}", a.text);
        let id = a.body["session"]["id"].as_str().unwrap().to_string();
        let started = &a.body["session"]["payout_list"][0];
        assert_eq!(started["status"], "in_progress", "{}", a.text);
        assert!(started.get("amount_details").is_none(), "a verification shows no amount: {}", a.text);
        assert!(a.body["session"].get("next_action").is_none(), "nothing to confirm");
        s.advance(1).await;
        let st = s.call("v2", "session/status", &json!({"session_id": id})).await.body["session"].clone();
        assert_eq!(st["status"], session, "{phone} {first}: {st}");
        assert_eq!(st["payout_list"][0]["status"], item, "{st}");
        assert_eq!(st["payout_list"][0]["error"]["code"].as_str(), code, "{st}");
        let kind = &st["payout_list"][0]["payout_details"]["bank_account"]["system_type"];
        assert_eq!(kind, "faster_payment_system_verification");
        assert_eq!(r.types_for(&id), vec!["payment_finished"]);
    }
    assert_eq!(s.balance("alpha").await, (START_BALANCE, 0), "verifications move no money");

    // In a created session (the SDK's request with session_id), and v1 names.
    let created = s.call("v1", "session/create", &json!([])).await.body["session"]["id"].as_str().unwrap().to_string();
    let mut body = verification("79261234567", "Ivan", "Ivanov");
    let method = body.as_object_mut().unwrap().remove("payout_details").unwrap();
    body["payment_method"] = method;
    body["session_id"] = json!(created);
    let a = s.call("v1", "fps/customer_verification", &body).await;
    assert_eq!((a.status, a.body["session"]["id"].as_str()), (200, Some(created.as_str())), "{}", a.text);
    assert!(a.body["session"]["payments"][0]["payment_method"].is_object(), "{}", a.text);
    let again = s.call("v1", "fps/customer_verification", &body).await;
    assert_eq!(again.body["error"]["code"], "session_wrong_state", "{}", again.text);
    // Bad requests name their fields; a payout method is not a verification.
    let mut bad = verification("7926", "", "Ivanov");
    bad["amount_details"] = json!({"amount": 1, "currency": "rub"});
    let a = s.call("v2", "fps/customer_verification", &bad).await;
    assert_eq!(
        fields(&a),
        vec![
            "amount_details",
            "participant_details.recipient.first_name",
            "payout_details.bank_account.faster_payment_system_verification.phone"
        ],
        "{}",
        a.text
    );
    s.stop().await;
}

#[tokio::test]
async fn bank_methods_not_served_yet_say_so() {
    let (s, _r) = server().await;
    for path in ["npd/notifications", "session/multi/refund"] {
        let a = s.call("v1", path, &json!({})).await;
        assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("not_found")), "{}", a.text);
        assert!(a.text.contains("does not serve yet"), "{path}: {}", a.text);
    }
    let a = s.call("v1", "no/such/method", &json!({})).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("not_found")));
    assert!(!a.text.contains("does not serve yet"), "{}", a.text);
    s.stop().await;
}
