//! Virtual time per project (issue 13 §1), driven through the admin clock
//! the way `open131 clock` drives it: the test's own clock never moves, so
//! everything that fires here fires because the project's clock moved:
//! confirm and capture timeouts, payout results, bank returns, KYC
//! verdicts, webhook retries, public tokens' expiry (receipt retries and the
//! yearly income sums: tests/npd.rs). Another project stays on real time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{id_of, server, status, Receiver, TestServer};
use open131_domain::settings::CaptureMode;
use open131_store::SettingsChange;
use serde_json::{json, Value};

const TOKEN: &str = "clock-token";

/// `POST /admin/v1/clock` on a second listener of the test server's app.
async fn clock_api(
    s: &TestServer,
) -> impl Fn(Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Value)>>> {
    let mut app = s.app.clone();
    app.admin_token = Some(TOKEN.into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/admin/v1/clock", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let http = s.http.clone();
    move |body: Value| {
        let request = http.post(&url).bearer_auth(TOKEN).json(&body);
        Box::pin(async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    }
}

/// Moves alpha's clock `seconds` forward and runs what is due.
async fn advance(
    s: &TestServer,
    clock: &impl Fn(Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Value)>>>,
    seconds: i64,
) {
    let (code, answer) = clock(json!({"project": "alpha", "advance_s": seconds})).await;
    assert_eq!(code, 200, "{answer}");
    s.settle().await;
}

fn at(seconds: i64) -> String {
    open131_wire::api::timestamp(common::START + time::Duration::seconds(seconds))
}

fn payout(amount: i64) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000004940"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": amount, "currency": "rub"}
    })
}

#[tokio::test]
async fn the_admin_clock_shows_moves_forward_and_resets() {
    let (s, _r) = server(SettingsChange::default()).await;
    let clock = clock_api(&s).await;
    assert_eq!(
        clock(json!({"project": "alpha"})).await,
        (200, json!({"status": "ok", "project": "alpha", "now": at(0), "offset_s": 0}))
    );
    let (_, moved) = clock(json!({"project": "alpha", "advance_s": 3_600})).await;
    assert_eq!((moved["now"].as_str(), moved["offset_s"].as_i64()), (Some(at(3_600).as_str()), Some(3_600)));
    let (code, back) = clock(json!({"project": "alpha", "set": at(60)})).await;
    assert_eq!(code, 400, "never back: {back}");
    let (code, set) = clock(json!({"project": "alpha", "set": "2027-01-01T00:00:00Z"})).await;
    assert_eq!((code, set["now"].as_str()), (200, Some("2027-01-01T00:00:00.000000Z")));
    for bad in [
        json!({"project": "alpha", "advance_s": -1}),
        json!({"project": "alpha", "set": "tomorrow"}),
        json!({"project": "alpha", "advance_s": 1, "reset": true}),
        json!({"project": "alpha", "tick": 1}),
    ] {
        assert_eq!(clock(bad.clone()).await.0, 400, "{bad}");
    }
    assert_eq!(clock(json!({"project": "nobody"})).await.0, 404);
    let (_, reset) = clock(json!({"project": "alpha", "reset": true})).await;
    assert_eq!((reset["now"].as_str(), reset["offset_s"].as_i64()), (Some(at(0).as_str()), Some(0)));
    assert_eq!(clock(json!({"project": "beta"})).await.1["offset_s"], 0, "beta never moved");
}

#[tokio::test]
async fn a_payouts_timers_fire_on_its_projects_clock_and_not_on_anothers() {
    let (s, r) = server(SettingsChange::default()).await;
    for p in ["alpha", "beta"] {
        s.app.store.topup(p, "rub", 1_000_000, common::START).await.unwrap();
    }
    let clock = clock_api(&s).await;
    // The confirmation timeout (24 h): alpha's session is cancelled, beta's waits on real time.
    let id = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    let beta_body = serde_json::to_vec(&payout(1_000)).unwrap();
    let beta = s.call_bytes("v1", "session/init/payout", "beta", common::key(1), beta_body, None).await;
    let beta_id = id_of(&beta);
    s.settle().await;
    advance(&s, &clock, 24 * 3_600 + 1).await;
    let st = status(&s, "v1", &id).await;
    assert_eq!(st["status"], "cancelled", "{st}");
    let beta_status = s
        .call_bytes(
            "v1",
            "session/status",
            "beta",
            common::key(1),
            serde_json::to_vec(&json!({"session_id": beta_id})).unwrap(),
            None,
        )
        .await;
    assert_eq!(beta_status.body["session"]["status"], "in_progress", "beta is on real time");

    // A payout's result comes a second after its confirmation, by alpha's clock.
    let id = id_of(&s.call("v1", "session/init/payout", &payout(2_000)).await);
    s.settle().await;
    assert_eq!(s.call("v1", "session/confirm", &json!({"session_id": id})).await.status, 200);
    s.settle().await;
    assert_eq!(status(&s, "v1", &id).await["payments"][0]["status"], "in_progress");
    advance(&s, &clock, 1).await;
    let st = status(&s, "v1", &id).await;
    assert_eq!(st["payments"][0]["status"], "succeeded", "{st}");
    // Its times are alpha's: a day and a second ahead of the real clock, which never moved.
    let finished = st["payments"][0]["finished_at"].as_str().unwrap();
    assert_eq!(finished, at(24 * 3_600 + 2), "{st}");
    let hook = r
        .received()
        .into_iter()
        .find(|w| w.body["session"]["id"] == id.as_str() && w.body["type"] == "payment_finished");
    assert_eq!(hook.unwrap().body["session"]["payments"][0]["finished_at"], finished, "the webhook tells alpha's time");
}

#[tokio::test]
async fn a_bank_return_comes_thirty_seconds_later_by_the_projects_clock() {
    let (s, r) = server(SettingsChange::default()).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let clock = clock_api(&s).await;
    let bik = open131_domain::ident::Bik::parse("049205131").unwrap();
    let account = open131_domain::ident::complete_account(&bik, "4070281020000000002").unwrap();
    let body = json!({
        "payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {
            "bik": "049205131", "account": account, "full_name": "Иванов Иван Иванович",
            "description": "Оплата по договору 17", "is_fast": false}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": 13_110, "currency": "rub"}
    });
    let id = id_of(&s.call("v1", "session/init/payout", &body).await);
    s.settle().await;
    assert_eq!(s.call("v1", "session/confirm", &json!({"session_id": id})).await.status, 200);
    advance(&s, &clock, 1).await;
    assert!(status(&s, "v1", &id).await["payments"][0]["refunds"].as_array().is_none_or(Vec::is_empty));
    advance(&s, &clock, 30).await;
    let st = status(&s, "v1", &id).await;
    assert_eq!(st["payments"][0]["refunds"][0]["amount_details"]["amount"], 13_110, "{st}");
    assert_eq!(r.types_for(&id), ["ready_to_confirm", "payment_finished", "payment_refunded"]);
}

#[tokio::test]
async fn a_hold_is_released_at_its_capture_timeout_by_the_projects_clock() {
    let hold = SettingsChange {
        capture: Some(CaptureMode::Hold),
        capture_timeout_s: Some(3 * 24 * 3_600),
        auto_confirm: Some(true),
        ..SettingsChange::default()
    };
    let (s, _r) = server(hold).await;
    let clock = clock_api(&s).await;
    let body = json!({
        "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": 10_000, "currency": "rub"},
        "customer": {"reference": "lucky"}
    });
    let id = id_of(&s.call("v2", "session/init/payment", &body).await);
    s.settle().await;
    advance(&s, &clock, 1).await;
    assert_eq!(status(&s, "v2", &id).await["next_action"], "capture");
    advance(&s, &clock, 3 * 24 * 3_600).await;
    assert_eq!(status(&s, "v2", &id).await["error"]["code"], "capture_timeout");
}

#[tokio::test]
async fn a_check_is_decided_once_its_projects_clock_passes_the_delay() {
    let (s, _r) = server(SettingsChange::default()).await;
    let clock = clock_api(&s).await;
    let (code, text) = s.post_check("alpha", common::key(0), &common::person()).await;
    assert_eq!(code, 200, "{text}");
    let id = serde_json::from_str::<Value>(&text).unwrap()["data"]["id"].as_str().unwrap().to_string();
    let beta = s.post_check("beta", common::key(1), &common::person()).await;
    assert_eq!(beta.0, 200);
    assert_eq!(s.app.verify_due().await.unwrap(), 0, "the delay has not passed anywhere");
    assert_eq!(clock(json!({"project": "alpha", "advance_s": 3})).await.0, 200);
    assert_eq!(s.app.verify_due().await.unwrap(), 1, "alpha's, not beta's");
    let (_, got) = s.get_check("alpha", &id).await;
    assert_eq!(serde_json::from_str::<Value>(&got).unwrap()["status"], "ok", "{got}");
}

#[tokio::test]
async fn a_webhook_retry_comes_on_its_projects_clock() {
    let s = common::start().await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.app.store.topup("alpha", "rub", 1_000_000, common::START).await.unwrap();
    let clock = clock_api(&s).await;
    r.fail_with(&[500]);
    let id = id_of(&s.call("v1", "session/init/payout", &payout(1_000)).await);
    s.settle().await;
    assert_eq!(r.types_for(&id).len(), 1, "refused once");
    advance(&s, &clock, 3).await;
    assert_eq!(r.types_for(&id).len(), 1, "the first retry is 5 s ± 20 % later");
    advance(&s, &clock, 4).await;
    assert_eq!(r.types_for(&id).len(), 2);
    let hooks = s.app.store.webhooks(Default::default()).await.unwrap();
    assert_eq!(hooks[0].state, open131_store::WebhookState::Delivered);
}

#[tokio::test]
async fn a_public_token_expires_a_day_later_by_its_projects_clock() {
    let (s, _r) = server(SettingsChange::default()).await;
    let clock = clock_api(&s).await;
    let a = s.call("v1", "token", &json!({"tokenize_widget": {"access": true}})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let token = a.body["public_token"].as_str().unwrap().to_string();
    let info = json!({"type": "public_token", "public_token": {"token": token}});
    assert_eq!(s.call("v1", "token/info", &info).await.body["info"]["is_active"], true);
    let page = format!("{}/widget/tokenize/{token}", s.url);
    let before = s.http.get(&page).send().await.unwrap().status().as_u16();
    advance(&s, &clock, 86_400).await;
    assert_eq!(s.call("v1", "token/info", &info).await.body["info"]["is_active"], false);
    let after = s.http.get(&page).send().await.unwrap().status().as_u16();
    assert_ne!(before, after, "the widget's page no longer opens ({before} then {after})");
}
