//! The Rust SDK (crates/open131-client, issue 13 §6) against the server: the
//! main API typed, idempotency keys, retries safe for each method (through
//! a proxy that loses answers or fails), webhooks verified and typed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{key, CloneKey, TestServer};
use open131_client::webhooks::{self, WebhookError, WebhookKind};
use open131_client::{ClientError, MainClient};
use serde_json::{json, Value};

fn payout(amount: i64) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"}
    })
}

async fn server() -> TestServer {
    let s = common::start().await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    s
}

fn client(url: &str) -> MainClient {
    MainClient::new(url, "alpha", key(0).clone_key())
}

/// A proxy in front of the server that answers the first `failures` requests
/// to a method path with `status` (`lose`: after forwarding them, as when an
/// answer is lost on the way back); how many requests it saw.
async fn proxy(target: String, failures: usize, status: u16, lose: bool) -> (String, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    let http = reqwest::Client::new();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (http, target, count) = (http.clone(), target.clone(), count.clone());
            async move {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let failing = n < failures;
                if failing && !lose {
                    return (axum::http::StatusCode::from_u16(status).unwrap(), String::new());
                }
                let mut request = http.post(format!("{target}{uri}")).body(body);
                for (name, value) in &headers {
                    if name.as_str().starts_with("x-") || name == "content-type" {
                        request = request.header(name, value);
                    }
                }
                let answer = request.send().await.unwrap();
                let (code, text) = (answer.status().as_u16(), answer.text().await.unwrap());
                if failing {
                    return (axum::http::StatusCode::from_u16(status).unwrap(), String::new());
                }
                (axum::http::StatusCode::from_u16(code).unwrap(), text)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

#[tokio::test]
async fn a_payout_runs_through_the_sdk_typed_from_init_to_its_end() {
    let s = server().await;
    let c = client(&s.url);
    let created = c.session("session/init/payout", &payout(1_000)).await.unwrap();
    assert_eq!(created.status, "ok");
    let id = created.session.id.clone();
    s.settle().await;
    let waiting = c.status(&id).await.unwrap();
    assert_eq!(
        (waiting.session.status.as_str(), waiting.session.next_action.as_deref()),
        ("in_progress", Some("confirm"))
    );
    c.confirm(&id).await.unwrap();
    s.advance(2).await;
    let done = c.status(&id).await.unwrap();
    assert_eq!(done.session.status, "accepted");
    assert_eq!(done.session.payouts()[0].status, "succeeded");
    let balance = c.wallet_balance().await.unwrap();
    assert_eq!(balance.wallets[0].amount_details.amount, 1_000_000 - 1_000);
    // v2 names come typed under the same accessors.
    let v2 = MainClient::new(&s.url, "alpha", key(0).clone_key()).with_version("v2");
    assert_eq!(v2.status(&id).await.unwrap().session.payouts().len(), 1);
    // The API's errors come typed.
    match c.confirm(&id).await {
        Err(ClientError::Api { http_status, error }) => {
            assert_eq!((http_status, error.code.as_str()), (400, "session_wrong_state"));
        }
        other => panic!("{other:?}"),
    }
    s.stop().await;
}

#[tokio::test]
async fn a_change_whose_answer_was_lost_is_repeated_under_its_key_and_never_applied_twice() {
    let s = server().await;
    // The first answer is lost after the server committed the payout.
    let (url, seen) = proxy(s.url.clone(), 1, 502, true).await;
    match client(&url).call("session/init/payout", &payout(1_000)).await {
        Err(ClientError::AlreadyApplied { idempotency_key }) => assert_eq!(idempotency_key.len(), 32),
        other => panic!("{other:?}"),
    }
    assert_eq!(seen.load(Ordering::SeqCst), 2, "asked once more, under the same key");
    let sessions = s.app.store.recent_sessions("alpha", 10).await.unwrap();
    assert_eq!(sessions.len(), 1, "applied once");
    // A change refused on its way in (never applied) goes through on its repeat.
    let (url, seen) = proxy(s.url.clone(), 1, 503, false).await;
    let created = client(&url).session("session/init/payout", &payout(2_000)).await.unwrap();
    assert_eq!((created.status.as_str(), seen.load(Ordering::SeqCst)), ("ok", 2));
    assert_eq!(s.app.store.recent_sessions("alpha", 10).await.unwrap().len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn reads_are_asked_again_and_a_keyless_change_is_not() {
    let s = server().await;
    let id = client(&s.url).session("session/init/payout", &payout(1_000)).await.unwrap().session.id;
    let (url, seen) = proxy(s.url.clone(), 2, 503, false).await;
    assert_eq!(client(&url).status(&id).await.unwrap().session.id, id);
    assert_eq!(seen.load(Ordering::SeqCst), 3, "two failures, then the answer");
    // A change without a key is never repeated: the caller decides.
    let (url, seen) = proxy(s.url.clone(), 1, 503, false).await;
    let answer = client(&url).call_with_key("session/init/payout", &payout(1_000), None).await;
    assert!(matches!(answer, Err(ClientError::Unexpected { status: 503, .. })), "{answer:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    s.stop().await;
}

/// Raw bytes and signatures, as a partner's endpoint gets them.
type Raw = Arc<Mutex<Vec<(Vec<u8>, String)>>>;

async fn raw_receiver() -> (String, Raw) {
    let got: Raw = Arc::default();
    let keep = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let sign = headers.get("x-partner-sign").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                keep.lock().unwrap().push((body.to_vec(), sign));
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got)
}

#[tokio::test]
async fn webhooks_are_verified_over_their_bytes_and_parsed_into_typed_events() {
    let s = server().await;
    let (url, got) = raw_receiver().await;
    s.set_webhook("alpha", &url).await;
    let id = client(&s.url).session("session/init/payout", &payout(1_000)).await.unwrap().session.id;
    s.settle().await;
    let (body, sign) = got.lock().unwrap()[0].clone();
    let bank = common::bank_key().verifying_key().unwrap();
    let event = webhooks::verify(&body, &sign, &bank).unwrap();
    assert_eq!(event.kind, Some(WebhookKind::ReadyToConfirm));
    assert_eq!(event.body.session.id, id);
    // One byte changed, or another key: refused.
    let mut changed = body.clone();
    changed[10] ^= 1;
    assert!(matches!(webhooks::verify(&changed, &sign, &bank), Err(WebhookError::BadSignature)));
    let stranger = key(2).verifying_key().unwrap();
    assert!(matches!(webhooks::verify(&body, &sign, &stranger), Err(WebhookError::BadSignature)));
    // A type this SDK does not know is passed on, not refused.
    let mut future: Value = serde_json::from_slice(&body).unwrap();
    future["type"] = json!("payment_disputed");
    let bytes = serde_json::to_vec(&future).unwrap();
    let signed = common::bank_key().sign_base64(&bytes).unwrap();
    let event = webhooks::verify(&bytes, &signed, &bank).unwrap();
    assert_eq!((event.kind, event.body.kind.as_str()), (None, "payment_disputed"));
    let not_json = b"not a webhook";
    let signed = common::bank_key().sign_base64(not_json).unwrap();
    assert!(matches!(webhooks::verify(not_json, &signed, &bank), Err(WebhookError::Malformed(_))));
    s.stop().await;
}

/// The SDK's list of reads (retried freely) names served methods that change nothing.
#[test]
fn the_sdks_reads_are_the_servers_non_mutating_methods() {
    use open131_server::api::ApiMethod;
    for path in open131_client::main_api::READ_METHODS {
        let method = ApiMethod::parse(path).unwrap_or_else(|| panic!("{path} is not served"));
        assert!(!method.mutating(), "{path} changes a session: never retried without its key");
    }
    assert!(ApiMethod::all().filter(|m| m.mutating()).all(|m| !open131_client::main_api::is_read(m.path())));
}

/// Every method that answers no session, through its typed call (issue 13
/// §6): a card payment built with `requests::Payment` that saves the card,
/// its recurrent token's status, info and disabling; the vault (a card and
/// an account); a public token and its info; the FPS banks; an account's
/// balance and statement; the self-employed register's requests; and the
/// API's refusals as typed errors.
#[tokio::test]
async fn every_other_method_answers_typed() {
    use open131_client::requests::{Fiscalization, Payment, Payout, PublicToken};
    use open131_wire::answers::TokenInfo;
    let s = server().await;
    let c = client(&s.url);

    // A payout built with the typed request, to its end.
    let payout = Payout::card("2200000000004940", 1_500, "rub").recipient("Иванов Иван").metadata("order-7");
    let id = c.payout(&payout).await.unwrap().session.id;
    s.settle().await;
    c.confirm(&id).await.unwrap();
    s.advance(2).await;
    let done = c.status(&id).await.unwrap().session;
    assert_eq!(
        (done.status.as_str(), done.payouts()[0].amount_details.as_ref().map(|a| a.amount)),
        ("accepted", Some(1_500))
    );

    // A self-employed person's payout with the receipt's details: the
    // typed body reaches the fiscal method, which echoes the details.
    let receipt = Fiscalization::new("500100732259").service("Доставка", 1_500, 1);
    let fiscal = Payout::card("2200000000004940", 1_500, "rub").recipient("Иванов Иван").fiscalization(receipt);
    let fiscal = c.payout(&fiscal).await.unwrap();
    let echoed = fiscal.session.payouts()[0].fiscalization_details.clone().unwrap();
    assert_eq!(echoed["professional_income_taxpayer"]["services"][0]["name"], "Доставка");

    // A card payment that saves the card, confirmed when the project asks it.
    let payment = Payment::card("4242424242424242", (12, 2030), "123", 5_000, "rub", "customer-17")
        .return_url("https://shop.example/back")
        .save_card();
    let id = c.payment(&payment).await.unwrap().session.id;
    s.settle().await;
    if c.status(&id).await.unwrap().session.next_action.as_deref() == Some("confirm") {
        c.confirm(&id).await.unwrap();
    }
    s.advance(2).await;
    let paid = c.status(&id).await.unwrap().session;
    assert_eq!(paid.acquiring()[0].status, "succeeded", "{paid:?}");
    let token = paid.acquiring()[0].recurrent.clone().expect("a recurrent token").token;
    assert!(c.recurrent_status(&token).await.unwrap().recurrent.is_active);
    assert!(matches!(c.recurrent_token_info(&token).await.unwrap().info, TokenInfo::RecurrentToken(r) if r.is_active));
    assert!(!c.recurrent_disable(&token).await.unwrap().recurrent.is_active);

    // The vault.
    let TokenInfo::Card(card) = c.tokenize_card("4242424242424242", Some((12, 2030))).await.unwrap().info else {
        panic!("a card")
    };
    assert_eq!((card.last4.as_str(), card.bin.as_str()), ("4242", "424242"));
    assert!(matches!(c.card_info(&card.number_hash).await.unwrap().info, TokenInfo::Card(again) if again == card));
    let account = c.tokenize_account("044525974", "40817810400003869535").await.unwrap();
    assert_eq!(account.data.masked_account, "40817***********9535");

    // A public token and what token/info says of it.
    let public = c.widget_token(&PublicToken::tokenize()).await.unwrap().public_token;
    let TokenInfo::PublicToken(info) = c.public_token_info(&public).await.unwrap().info else { panic!("public") };
    assert!(info.is_active && info.used_at.is_none() && info.token == public, "{info:?}");

    // FPS banks, an account's balance and statement.
    assert!(!c.fps_banks().await.unwrap().banks.is_empty());
    let own = open131_domain::books::account_number("alpha", open131_domain::ledger::Book::Nominal).unwrap();
    let balance = c.account_balance(&own).await.unwrap();
    assert_eq!((balance.account_number.as_str(), balance.balance.current_balance), (own.as_str(), 0));
    let statement = c.account_statement(&own, "2026-11-30").await.unwrap().method.account_statement;
    assert_eq!((statement.date_from.as_str(), statement.total_balance.closing), ("2026-11-30", 0));

    // The self-employed register: asked, pending, then answered.
    let asked = c.npd_check("500100732259").await.unwrap().request_id;
    assert_eq!(c.npd_request_status(&asked).await.unwrap().status, "pending");
    let info = c.npd_check_personal_info("500100732259", "Иванов Иван", "+79001234567").await.unwrap().request_id;
    s.advance(5).await;
    let answer = c.npd_request_status(&asked).await.unwrap();
    assert_eq!((answer.is_professional_income_taxpayer, answer.is_linked), (Some(true), Some(false)));
    assert_eq!(c.npd_request_status(&info).await.unwrap().mismatches, Some(vec![]));

    // Refusals come typed.
    for refused in
        [c.subscription_cancel("sub_none").await.map(|_| ()), c.sberpay_push(&id, "+79001234567").await.map(|_| ())]
    {
        match refused {
            Err(ClientError::Api { http_status, error }) => {
                assert_eq!((http_status, error.code.as_str()), (400, "invalid_request"), "{error:?}")
            }
            other => panic!("a typed refusal, not {other:?}"),
        }
    }
}
