//! Payouts from the nominal (escrow) and settlement accounts and in foreign
//! currencies (issue 8), over real HTTP with a manual clock, on the backend
//! the environment selects: the book methods in v1 and v2, their card forms,
//! `confirm_information` out in `ready_to_confirm` and back at `session/confirm`,
//! the accounts' balance and statement, and the ledger in both currencies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{start, Receiver, TestServer};
use open131_domain::books::account_number;
use open131_domain::fx::FxRate;
use open131_domain::ledger::Book;
use serde_json::{json, Value};

const START_BALANCE: i64 = 10_000_000;

async fn server() -> (TestServer, Receiver) {
    let s = start().await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    for book in [Book::Main, Book::Nominal, Book::Settlement] {
        s.app.store.topup_book("alpha", book, "rub", START_BALANCE, common::START).await.unwrap();
    }
    (s, r)
}

fn fields(a: &common::Answer) -> Vec<String> {
    let details = a.body["error"]["details"].as_array().cloned().unwrap_or_default();
    details.iter().map(|d| d["field"].as_str().unwrap().to_string()).collect()
}

fn id_of(a: &common::Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["session"]["id"].as_str().unwrap().to_string()
}

/// A rouble account payout the docs' settlement page sends (no recipient: the account names its holder).
fn account_payout(amount: i64) -> Value {
    json!({
        "payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {
            "bik": "044525974", "account": "40817810400003869535", "full_name": "Ivanov Ivan Ivanovich",
            "description": "Transfer of funds under the agreement for December 2025. VAT exempt."}}},
        "amount_details": {"amount": amount, "currency": "rub"}
    })
}

fn card_transfer(kind: &str, amount: i64) -> Value {
    json!({
        "payment_details": {"type": "internal_transfer", "internal_transfer": {"type": kind,
            kind: {"description": "Transfer under the offer agreement"}}},
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"sender": {"full_name": "Company name", "beneficiary_id": "1234567890"},
            "recipient": {"full_name": "Ivanov Ivan Ivanovich"}},
        "amount_details": {"amount": amount, "currency": "RUB"},
        "customer": {"reference": "123456789012"}
    })
}

/// The wallet of `book` in `currency`: (available, reserved, paid out, exchange).
async fn wallet(s: &TestServer, book: Book, currency: &str) -> (i64, i64, i64, i64) {
    let w = s.app.store.wallets("alpha").await.unwrap();
    let w = w.iter().find(|w| w.book == book && w.currency == currency).cloned();
    w.map_or((0, 0, 0, 0), |w| (w.available, w.reserved, w.payouts, w.exchange))
}

/// The `ready_to_confirm` webhook of `session`.
fn ready_to_confirm(r: &Receiver, session: &str) -> Value {
    let hooks = r.received();
    let hook = hooks.iter().find(|h| h.body["session"]["id"] == session && h.body["type"] == "ready_to_confirm");
    hook.expect("a ready_to_confirm webhook").body.clone()
}

#[tokio::test]
async fn a_nominal_account_payout_is_confirmed_with_its_confirm_information() {
    let (s, r) = server().await;
    let own = account_number("alpha", Book::Nominal).unwrap();
    let created = s.call("v1", "session/create/nominal", &json!({"metadata": "good"})).await;
    let id = id_of(&created);
    // A session of the nominal account is started by its own method.
    let mut body = account_payout(350_000);
    body["session_id"] = json!(id);
    let a = s.call("v1", "session/start/payout", &body).await;
    assert_eq!(fields(&a), ["session_id"], "{}", a.text);
    // The beneficiary is required; the sender account, when sent, is the project's.
    let a = s.call("v1", "session/start/payout/nominal", &body).await;
    assert_eq!(fields(&a), ["participant_details"], "{}", a.text);
    body["participant_details"] = json!({"sender": {"full_name": "Company name"}});
    let a = s.call("v1", "session/start/payout/nominal", &body).await;
    assert_eq!(fields(&a), ["participant_details.sender.beneficiary_id"], "{}", a.text);
    body["participant_details"] =
        json!({"sender": {"account": "40702810300200000013"}, "recipient": {"beneficiary_id": "500100732259"}});
    let a = s.call("v1", "session/start/payout/nominal", &body).await;
    assert_eq!(fields(&a), ["participant_details.sender.account"], "{}", a.text);
    body["participant_details"]["sender"]["account"] = json!(own);
    let a = s.call("v1", "session/start/payout/nominal", &body).await;
    assert_eq!((a.status, a.body["session"]["status"].as_str()), (200, Some("in_progress")), "{}", a.text);
    s.settle().await;
    let hook = ready_to_confirm(&r, &id);
    let info = hook["confirm_information"].clone();
    assert_eq!(info["transfer_details"]["customer"]["account_number"], own.as_str());
    assert_eq!(info["transfer_details"]["amount"], json!({"amount": 350_000, "currency": "rub"}));
    assert_eq!(info["transfer_details"]["payment_method"]["bank_account"]["ru"]["account"], "40817***********9535");
    assert_eq!(info["account_details"]["sender"]["bik"], "049205131");
    assert!(info["transfer_details"]["purpose"].as_str().unwrap().starts_with("Transfer of funds"));
    // Confirming from the nominal account takes the object back, unchanged.
    let a = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(fields(&a), ["confirm_information"], "{}", a.text);
    let mut forged = info.clone();
    forged["transfer_details"]["amount"]["amount"] = json!(1);
    let a = s.call("v1", "session/confirm", &json!({"session_id": id, "confirm_information": forged})).await;
    assert_eq!(fields(&a), ["confirm_information"], "{}", a.text);
    // A client that drops what it does not model (the PHP SDK keeps only
    // `payout_details`) and re-serialises numbers its way sends the same object.
    let mut round_trip = info.clone();
    round_trip["transfer_details"].as_object_mut().unwrap().remove("payment_method");
    round_trip["transfer_details"]["amount"]["amount"] = json!(350_000.0);
    let a = s.call("v2", "session/confirm", &json!({"session_id": id, "confirm_information": round_trip})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.advance(1).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    assert_eq!(a.body["session"]["status"], "accepted", "{}", a.text);
    assert_eq!(info["transfer_details"]["recipient"]["name"], "Ivanov Ivan Ivanovich", "the account's holder");
    // The nominal account paid; the payout balance did not move.
    assert_eq!(wallet(&s, Book::Nominal, "rub").await, (START_BALANCE - 350_000, 0, 350_000, 0));
    assert_eq!(wallet(&s, Book::Main, "rub").await, (START_BALANCE, 0, 0, 0));
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "payment_finished"]);
    // wallet/balance shows the payout balance only, one wallet per currency.
    let a = s.call("v1", "wallet/balance", &json!({})).await;
    assert_eq!(
        a.body["wallets"],
        json!([{"id": "w_rub", "amount_details": {"amount": START_BALANCE, "currency": "rub"}}])
    );
    s.stop().await;
}

#[tokio::test]
async fn book_sessions_are_started_by_their_own_kind_and_always_confirmed() {
    let (s, r) = server().await;
    let change = open131_store::SettingsChange { auto_confirm: Some(true), ..Default::default() };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    // A card session of session/multi/ is not started as a payout session, nor the reverse.
    let id = id_of(&s.call("v1", "session/multi/create/nominal", &json!({})).await);
    let mut body = account_payout(100);
    body["session_id"] = json!(id);
    body["participant_details"] = json!({"sender": {"beneficiary_id": "1"}});
    let a = s.call("v1", "session/start/payout/nominal", &body).await;
    assert_eq!(fields(&a), ["session_id"], "{}", a.text);
    let id = id_of(&s.call("v1", "session/create/nominal", &json!({})).await);
    let mut card = card_transfer("transfer_from_nominal_account", 100);
    card["session_id"] = json!(id);
    let a = s.call("v1", "session/multi/start/payment/nominal", &card).await;
    assert_eq!(fields(&a), ["session_id"], "{}", a.text);
    // Auto-confirm does not apply: a payout from the account waits for its confirmation.
    let id = id_of(
        &s.call("v1", "session/multi/init/payment/nominal", &card_transfer("transfer_from_nominal_account", 100)).await,
    );
    s.advance(1).await;
    assert_eq!(r.types_for(&id), ["ready_to_confirm"]);
    s.stop().await;
}

#[tokio::test]
async fn settlement_account_card_payouts_in_v2_and_their_rules() {
    let (s, r) = server().await;
    // The wrong book's transfer type, a non-card method and a foreign currency are refused by name.
    let a = s.call("v2", "session/multi/init/payment/rko", &card_transfer("transfer_from_nominal_account", 100)).await;
    assert_eq!(fields(&a), ["payment_details.internal_transfer.type"], "{}", a.text);
    let mut not_card = card_transfer("transfer_from_bank_account", 100);
    not_card["payment_method"] =
        json!({"type": "wallet", "wallet": {"type": "qiwi", "qiwi": {"account": "79261234567"}}});
    let a = s.call("v2", "session/multi/init/payment/rko", &not_card).await;
    assert_eq!(fields(&a), ["payout_details.type"], "{}", a.text);
    let mut dollars = card_transfer("transfer_from_bank_account", 100);
    dollars["amount_details"]["currency"] = json!("usd");
    let a = s.call("v2", "session/multi/init/payment/rko", &dollars).await;
    assert_eq!(fields(&a), ["amount_details.currency"], "{}", a.text);
    let a = s
        .call("v2", "session/multi/init/payment/rko", &json!({"amount_details": {"amount": 1, "currency": "rub"}}))
        .await;
    assert!(fields(&a).contains(&"payment_details".to_string()), "{}", a.text);
    // Created then started, as the docs do it.
    let id = id_of(&s.call("v2", "session/multi/create/rko", &json!({"metadata": "good"})).await);
    let mut body = card_transfer("transfer_from_bank_account", 293_400);
    body["session_id"] = json!(id);
    let a = s.call("v2", "session/multi/start/payment/rko", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["session"]["payout_list"][0]["payout_details"]["card"]["last4"], "4242", "{}", a.text);
    s.settle().await;
    let info = ready_to_confirm(&r, &id)["confirm_information"].clone();
    assert_eq!(info["transfer_details"]["purpose"], "Transfer under the offer agreement");
    assert!(info["transfer_details"]["payout_details"].is_object(), "v2 names the method: {info}");
    assert_eq!(
        info["transfer_details"]["customer"]["account_number"],
        account_number("alpha", Book::Settlement).unwrap()
    );
    let a = s.call("v2", "session/confirm", &json!({"session_id": id, "confirm_information": info})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.advance(1).await;
    assert_eq!(wallet(&s, Book::Settlement, "rub").await, (START_BALANCE - 293_400, 0, 293_400, 0));
    // Cancelling takes the object too, or nothing.
    let id = id_of(
        &s.call("v1", "session/multi/init/payment/nominal", &card_transfer("transfer_from_nominal_account", 500)).await,
    );
    s.settle().await;
    let a = s.call("v1", "session/cancel", &json!({"session_id": id, "confirm_information": {"x": 1}})).await;
    assert_eq!(fields(&a), ["confirm_information"], "{}", a.text);
    let a = s.call("v1", "session/cancel", &json!({"session_id": id})).await;
    assert_eq!(a.body["session"]["status"], "cancelled", "{}", a.text);
    assert_eq!(wallet(&s, Book::Nominal, "rub").await, (START_BALANCE, 0, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn an_empty_nominal_account_fails_the_payout_whatever_the_payout_balance() {
    let s = start().await;
    s.app.store.topup("alpha", "rub", START_BALANCE, common::START).await.unwrap();
    let mut body = card_transfer("transfer_from_nominal_account", 10_000);
    body["payment_method"]["card"]["bank_card"]["number"] = json!("4242424242424242");
    let id = id_of(&s.call("v1", "session/multi/init/payment/nominal", &body).await);
    s.settle().await;
    let status = s.call("v1", "session/status", &json!({"session_id": id})).await;
    let info = s.app.store.session("alpha", &id).await.unwrap().unwrap();
    let stored: Value =
        serde_json::from_str(info.payout().unwrap().confirm_information.as_ref().unwrap().expose()).unwrap();
    let confirm =
        json!({"session_id": id, "confirm_information": open131_domain::books::named(&stored, "payment_method")});
    let a = s.call("v1", "session/confirm", &confirm).await;
    assert_eq!(a.status, 200, "{} / {}", a.text, status.text);
    s.advance(1).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    assert_eq!(a.body["session"]["status"], "error", "{}", a.text);
    assert_eq!(wallet(&s, Book::Main, "rub").await, (START_BALANCE, 0, 0, 0));
    s.stop().await;
}

#[tokio::test]
async fn account_balance_and_statement() {
    let (s, _r) = server().await;
    let own = account_number("alpha", Book::Nominal).unwrap();
    let id = id_of(
        &s.call("v1", "session/multi/init/payment/nominal", &card_transfer("transfer_from_nominal_account", 40_000))
            .await,
    );
    s.settle().await;
    let a = s.call("v1", "report/account_balance", &json!({"account_number": own})).await;
    assert_eq!(
        a.body,
        json!({"status": "ok", "account_number": own, "account_currency": "RUB",
        "balance": {"current_balance": START_BALANCE}}),
        "{}",
        a.text
    );
    let stored = s.app.store.session("alpha", &id).await.unwrap().unwrap();
    let stored: Value =
        serde_json::from_str(stored.payout().unwrap().confirm_information.as_ref().unwrap().expose()).unwrap();
    let info = open131_domain::books::named(&stored, "payment_method");
    assert_eq!(
        s.call("v1", "session/confirm", &json!({"session_id": id, "confirm_information": info})).await.status,
        200
    );
    s.advance(1).await;
    // The spec's name without report/ is the same method.
    let a = s.call("v1", "account_balance", &json!({"account_number": own})).await;
    assert_eq!(a.body["balance"]["current_balance"], START_BALANCE - 40_000, "{}", a.text);
    let day = "2026-11-30";
    let a = s
        .call("v1", "report/account_statement", &json!({"account_number": own, "date_from": day, "date_to": day}))
        .await;
    let st = &a.body["method"]["account_statement"];
    assert_eq!(st["total_balance"], json!({"opening": 0, "closing": START_BALANCE - 40_000}), "{}", a.text);
    assert_eq!(st["total_turnover"], json!({"debet": 40_000, "credit": START_BALANCE}), "{}", a.text);
    let kinds: Vec<(&str, i64)> = st["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["type"].as_str().unwrap(), t["amount"].as_i64().unwrap()))
        .collect();
    assert_eq!(kinds, [("credit", START_BALANCE), ("debet", 40_000)], "{}", a.text);
    assert_eq!(st["transactions"][1]["session_id"], id.as_str());
    // The next day opens at the day before's close and is empty.
    let a = s
        .call(
            "v1",
            "report/account_statement",
            &json!({"account_number": own, "date_from": "2026-12-01", "date_to": "2026-12-01"}),
        )
        .await;
    assert_eq!(a.body["method"]["account_statement"]["total_balance"]["opening"], START_BALANCE - 40_000, "{}", a.text);
    // Bad requests name their fields; another project's account is not this project's.
    let a = s
        .call(
            "v1",
            "report/account_statement",
            &json!({"account_number": own, "date_from": day, "date_to": "2026-12-01"}),
        )
        .await;
    assert_eq!(fields(&a), ["date_to"], "{}", a.text);
    let a = s
        .call(
            "v1",
            "report/account_statement",
            &json!({"account_number": own, "date_from": "30.11.2026", "date_to": day, "page": 1}),
        )
        .await;
    assert_eq!(fields(&a), ["page"], "{}", a.text);
    let a = s
        .call(
            "v1",
            "report/account_balance",
            &json!({"account_number": account_number("beta", Book::Nominal).unwrap()}),
        )
        .await;
    assert_eq!(fields(&a), ["account_number"], "{}", a.text);
    let a = s.call("v1", "report/account_balance", &json!({})).await;
    assert_eq!(fields(&a), ["account_number"], "{}", a.text);
    let last = "9999-12-31";
    let a = s
        .call("v1", "report/account_statement", &json!({"account_number": own, "date_from": last, "date_to": last}))
        .await;
    assert_eq!((a.status, fields(&a)), (400, vec!["date_from".to_string()]), "{}", a.text);
    // A method list may name the balance by the spec's name.
    let methods = open131_domain::settings::MethodSet::parse("account_balance").unwrap();
    let change = open131_store::SettingsChange { methods: Some(methods), ..Default::default() };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    let a = s.call("v1", "report/account_balance", &json!({"account_number": own})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = s
        .call("v1", "report/account_statement", &json!({"account_number": own, "date_from": day, "date_to": day}))
        .await;
    assert_eq!(a.body["error"]["code"], "authorization_error", "{}", a.text);
    s.stop().await;
}

#[tokio::test]
async fn foreign_currency_payouts_convert_at_the_operators_rate_and_post_in_both_currencies() {
    let (s, r) = server().await;
    s.app.store.topup("alpha", "eur", 50_000, common::START).await.unwrap();
    // Auto-confirm does not apply to a converted payout: the partner confirms the rouble cost.
    let change = open131_store::SettingsChange { auto_confirm: Some(true), ..Default::default() };
    s.app.store.set_project_settings("alpha", change, common::START).await.unwrap();
    s.app.projects.forget("alpha");
    s.app.store.set_rate("usd", Some(FxRate::parse("92.50").unwrap()), common::START).await.unwrap();
    let body = json!({
        "payout_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan Ivanovich"}},
        "amount_details": {"amount": 10_000, "currency": "usd"}
    });
    let a = s.call("v2", "session/init/payout", &body).await;
    let id = id_of(&a);
    assert_eq!(a.body["session"]["payout_list"][0]["amount_details"], json!({"amount": 925_000, "currency": "rub"}));
    s.settle().await;
    let info = ready_to_confirm(&r, &id)["confirm_information"].clone();
    let exchange = &info["exchanges"][0];
    assert_eq!(exchange["source"], json!({"amount": 925_000, "currency": "rub"}), "{info}");
    assert_eq!(exchange["destination"], json!({"amount": 10_000, "currency": "usd"}), "{info}");
    assert_eq!(exchange["fx_rate"], "92.5");
    assert!(info.get("account_details").is_none(), "{info}");
    assert_eq!(wallet(&s, Book::Main, "rub").await, (START_BALANCE, 0, 0, 0), "nothing reserved before confirm");
    // From the payout balance the object is optional at confirm.
    let a = s.call("v2", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.advance(1).await;
    assert_eq!(wallet(&s, Book::Main, "rub").await, (START_BALANCE - 925_000, 0, 0, 925_000));
    assert_eq!(wallet(&s, Book::Main, "usd").await, (0, 0, 10_000, -10_000));
    for currency in ["rub", "usd"] {
        let sums: i64 = s
            .app
            .store
            .statement("alpha", Book::Main, currency, common::START, common::START, 0)
            .await
            .unwrap()
            .opening
            .iter()
            .map(|(_, n)| n)
            .sum();
        assert_eq!(sums, 0, "{currency}: every wallet's postings balance");
    }
    // Without a rate a foreign payout is paid from its own wallet, as before; and no confirm_information.
    let mut euros = body.clone();
    euros["amount_details"] = json!({"amount": 20_000, "currency": "eur"});
    let id = id_of(&s.call("v2", "session/init/payout", &euros).await);
    s.advance(1).await;
    s.advance(1).await;
    assert_eq!(wallet(&s, Book::Main, "eur").await, (30_000, 0, 20_000, 0));
    assert_eq!(r.types_for(&id), ["payment_finished"], "auto-confirmed");
    s.stop().await;
}

#[tokio::test]
async fn confirm_information_on_a_session_that_has_none_is_refused() {
    let (s, _r) = server().await;
    let body = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan Ivanovich"}},
        "amount_details": {"amount": 100, "currency": "rub"}
    });
    let id = id_of(&s.call("v1", "session/init/payout", &body).await);
    s.settle().await;
    let a = s
        .call("v1", "session/confirm", &json!({"session_id": id, "confirm_information": {"transfer_details": {}}}))
        .await;
    assert_eq!(fields(&a), ["confirm_information"], "{}", a.text);
    assert!(a.text.contains("has none"), "{}", a.text);
    let a = s.call("v1", "session/confirm", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    s.stop().await;
}
