//! The web pages in headless Chromium (Debian's, driven by playwright-core
//! through `browser-tests/drive.mjs`), as customers meet them: the 3-D
//! Secure page with JavaScript off and on, a wrong code, the right one,
//! Decline, and three wrong codes; each ends back at the shop's return URL.
//! Screenshots of every step land in `target/screenshots/`.
//!
//! `scripts/test` installs Chromium and playwright-core and sets
//! `OPEN131_TEST_CHROMIUM`; without it (a plain `cargo test`) this test says
//! it is skipped and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::TestServer;
use open131_store::SettingsChange;
use serde_json::{json, Value};

const THREE_DS_CARD: &str = "4000000000003220";

/// A shop's return page on port 0; counts the customers who came back.
async fn shop() -> (String, Arc<Mutex<usize>>) {
    let returns = Arc::new(Mutex::new(0));
    let seen = returns.clone();
    let app = axum::Router::new().route(
        "/back",
        axum::routing::get(move || {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap() += 1;
                axum::response::Html("<!doctype html><title>Shop</title><h1>Back at the shop</h1>")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/back", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, returns)
}

/// A 3-D Secure payment of `amount` waiting for the customer: its session and page.
async fn waiting(s: &TestServer, amount: i64, return_url: &str) -> (String, String) {
    let body = json!({
        "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": THREE_DS_CARD,
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": amount, "currency": "rub"},
        "customer": {"reference": "lucky"},
        "payment_options": {"return_url": return_url}
    });
    let a = s.call("v2", "session/init/payment/sync", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let url = &a.body["session"]["payment_list"][0]["customer_interaction"]["redirect"]["url"];
    (a.body["session"]["id"].as_str().unwrap().to_string(), url.as_str().unwrap().to_string())
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the driver over `visits`; what it saw, per visit.
fn drive(chromium: &str, visits: Value) -> Vec<Value> {
    use std::io::Write;
    let root = workspace();
    let plan = json!({"executable": chromium, "screenshots": root.join("target/screenshots"), "visits": visits});
    let mut child = std::process::Command::new("node")
        .arg(root.join("browser-tests/drive.mjs"))
        .current_dir(&root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs (scripts/browser.sh installs what it needs)");
    child.stdin.take().unwrap().write_all(plan.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the browser driver failed: {}", String::from_utf8_lossy(&out.stdout));
    serde_json::from_slice(&out.stdout).expect("the driver prints its results as JSON")
}

/// The Chromium to drive and a server whose project auto-confirms; `None`
/// (the test skipped) when no Chromium was set up.
async fn chromium_and_server() -> Option<(String, TestServer)> {
    let Ok(chromium) = std::env::var("OPEN131_TEST_CHROMIUM") else {
        eprintln!("skipped: OPEN131_TEST_CHROMIUM is not set (scripts/test sets it after scripts/browser.sh)");
        return None;
    };
    let s = common::start().await;
    s.set_settings("alpha", SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    Some((chromium, s))
}

async fn error_code(s: &TestServer, id: &str) -> Option<String> {
    let a = s.call("v2", "session/status", &json!({"session_id": id})).await;
    a.body["session"]["error"]["code"].as_str().map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_ds_page_works_in_chromium_with_and_without_javascript() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let (back, returns) = shop().await;
    let (passed, pass_url) = waiting(&s, 12_345, &back).await;
    let (declined, decline_url) = waiting(&s, 2_000, &back).await;
    let (guessed, guess_url) = waiting(&s, 3_000, &back).await;
    let code = |text: &str| json!({"fill": "#code", "text": text});
    let confirm = json!({"click": "button[value=confirm]"});
    let decline = json!({"click": "button[value=decline]"});
    let visits = json!([
        {"name": "3ds-pass-nojs", "url": pass_url, "javascript": false,
         "steps": [code("000000"), confirm, code("131131"), confirm]},
        {"name": "3ds-decline-js", "url": decline_url, "javascript": true, "steps": [decline]},
        {"name": "3ds-three-wrong-codes-nojs", "url": guess_url, "javascript": false,
         "steps": [code("1"), confirm, code("2"), confirm, code("3"), confirm]},
    ]);
    let seen = drive(&chromium, visits);
    assert_eq!(seen.len(), 3);
    for visit in &seen {
        assert_eq!(visit["url"].as_str(), Some(back.as_str()), "every customer ends at the shop: {visit}");
        assert!(visit["text"].as_str().unwrap().contains("Back at the shop"), "{visit}");
        for shot in visit["screenshots"].as_array().unwrap() {
            let size = std::fs::metadata(shot.as_str().unwrap()).unwrap().len();
            assert!(size > 1_000, "a real screenshot: {shot} has {size} bytes");
        }
    }
    assert_eq!(*returns.lock().unwrap(), 3);
    // The page as loaded, then one per step.
    assert_eq!(seen[0]["screenshots"].as_array().unwrap().len(), 5);

    s.settle().await;
    s.advance(1).await;
    let a = s.call("v2", "session/status", &json!({"session_id": passed})).await;
    assert_eq!(a.body["session"]["status"], "accepted", "{}", a.text);
    assert_eq!(error_code(&s, &declined).await.as_deref(), Some("3DS_error"));
    assert_eq!(error_code(&s, &guessed).await.as_deref(), Some("3DS_error"));
    s.stop().await;
}

/// The sandbox's bank-app pages, where an FPS QR code and a SberPay payment
/// are paid: each pays and sends the customer back to the shop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_app_pages_pay_in_chromium() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let (back, returns) = shop().await;
    let start = |details: Value| {
        json!({"payment_details": details, "amount_details": {"amount": 4_200, "currency": "rub"},
            "customer": {"reference": "lucky"}, "payment_options": {"return_url": back}})
    };
    let fps = s.call("v2", "session/init/payment/sync", &start(json!({"type": "faster_payment_system"}))).await;
    let fps_id = fps.body["session"]["id"].as_str().unwrap().to_string();
    let sber = json!({"type": "internet_banking", "internet_banking": {"type": "sber_pay", "sber_pay": {"channel": "mobile_web"}}});
    let sber = s.call("v2", "session/init/payment/sync", &start(sber)).await;
    let sber_id = sber.body["session"]["id"].as_str().unwrap().to_string();
    let sber_url = &sber.body["session"]["payment_list"][0]["customer_interaction"]["redirect"]["url"];
    let pay = json!({"click": "button[value=pay]"});
    let visits = json!([
        {"name": "fps-pay-nojs", "url": format!("{}/fps/pay/alpha/{fps_id}", s.url), "javascript": false, "steps": [pay]},
        {"name": "sberpay-pay-js", "url": sber_url, "javascript": true, "steps": [pay]},
    ]);
    let seen = drive(&chromium, visits);
    assert_eq!(seen.len(), 2);
    for visit in &seen {
        assert_eq!(visit["url"].as_str(), Some(back.as_str()), "paid, the customer is back at the shop: {visit}");
        assert_eq!(visit["screenshots"].as_array().unwrap().len(), 2);
    }
    assert_eq!(*returns.lock().unwrap(), 2);
    for id in [fps_id, sber_id] {
        let a = s.call("v2", "session/status", &json!({"session_id": id})).await;
        assert_eq!(a.body["session"]["status"], "accepted", "{}", a.text);
    }
    s.stop().await;
}

/// A partner's page on port 0 that shows the tokenization widget with
/// `token` through the library, and writes what `onSuccess` gets into `#result`.
async fn partner_page(open131: &str, token: &str) -> String {
    partner_page_with(open131, token, "tokenizeWidget", "Add your card").await
}

/// [`partner_page`] for the library's `widget` (`tokenizeWidget`, `paymentForm`).
async fn partner_page_with(open131: &str, token: &str, widget: &str, heading: &str) -> String {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Shop checkout</title></head><body>\
         <h1>{heading}</h1><div id=\"card\"></div><pre id=\"result\"></pre>\
         <script src=\"{open131}/widget/open131.js\"></script>\
         <script>Open131.{widget}({{publicToken: '{token}', container: document.getElementById('card'), locale: 'en', \
         onSuccess: function (card) {{ var r = document.getElementById('result'); \
         r.textContent = JSON.stringify(card); r.className = 'done'; }} }});</script></body></html>"
    );
    let app =
        axum::Router::new().route("/checkout", axum::routing::get(move || async move { axum::response::Html(html) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/checkout", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// The tokenization widget on a partner's page, through the library: a
/// number with a typo, marked as typed; the right one saved; the partner's
/// callback gets the number_hash, which a payout then uses over the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tokenization_widget_works_in_chromium_on_a_partners_page() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let token = s.call("v1", "token", &json!({"tokenize_widget": {"access": true}})).await.body["public_token"]
        .as_str()
        .unwrap()
        .to_string();
    let checkout = partner_page(&s.url, &token).await;
    let visits = json!([{"name": "widget-tokenize-js", "url": checkout, "javascript": true, "steps": [
        {"frame": "iframe", "type": "#number", "text": "2200000000000005"},
        {"frame": "iframe", "visible": "#number-live"},
        {"frame": "iframe", "fill": "#number", "text": ""},
        {"frame": "iframe", "type": "#number", "text": "2200000000000004"},
        {"frame": "iframe", "type": "#expiry", "text": "1230"},
        {"frame": "iframe", "click": "button[type=submit]"},
        {"wait": "#result.done"}
    ]}]);
    // The same token once more, on a desktop-sized screen: used up, the page says so.
    let used = json!({"name": "widget-tokenize-used-desktop", "url": format!("{}/widget/tokenize/{token}?locale=en", s.url),
        "javascript": true, "viewport": {"width": 1280, "height": 800}, "steps": []});
    let visits = json!([visits[0], used]);
    let seen = drive(&chromium, visits);
    assert!(seen[1]["text"].as_str().unwrap().contains("used or has expired"), "{}", seen[1]);
    let text = seen[0]["text"].as_str().unwrap();
    let card: Value = serde_json::from_str(text.lines().find(|l| l.contains("number_hash")).unwrap()).unwrap();
    assert_eq!((card["brand"].as_str(), card["last4"].as_str()), (Some("mir"), Some("0004")), "{text}");
    assert!(!text.contains("2200000000000004"), "the partner's page never sees the number");
    for shot in seen[0]["screenshots"].as_array().unwrap() {
        assert!(std::fs::metadata(shot.as_str().unwrap()).unwrap().len() > 1_000, "a real screenshot: {shot}");
    }
    // The partner's server pays out to it.
    s.app.store.topup("alpha", "rub", 10_000, common::START).await.unwrap();
    let payout = json!({"payment_method": {"type": "card", "card": {"type": "encrypted_card",
            "encrypted_card": {"number_hash": card["number_hash"]}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    assert_eq!(s.call("v1", "session/init/payout", &payout).await.status, 200);
    s.stop().await;
}

/// The payment form on a partner's page, through the library: a typo in the
/// number marked as typed, the card's 3-D Secure page in the frame, the bank
/// working; once it has, the frame shown again tells the partner's
/// `onSuccess`. Then the same form without JavaScript as a whole page, which
/// ends at the shop's success URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payment_form_pays_in_chromium_with_three_ds() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let (back, returns) = shop().await;
    let form = |amount: i64| {
        let s = &s;
        let back = back.clone();
        async move {
            let create =
                json!({"amount_details": {"amount": amount, "currency": "rub"}, "customer": {"reference": "lucky"}});
            let session =
                s.call("v2", "session/create", &create).await.body["session"]["id"].as_str().unwrap().to_string();
            let token = json!({"acquiring_widget": {"session_id": session, "success_return_url": back,
                "failure_return_url": format!("{back}?failed"), "show_recurrent_checkbox": true}});
            let token = s.call("v1", "token", &token).await.body["public_token"].as_str().unwrap().to_string();
            (session, token)
        }
    };
    let (framed, framed_token) = form(4_500).await;
    let checkout = partner_page_with(&s.url, &framed_token, "paymentForm", "Pay for your order").await;
    let in_frame = |step: &str, selector: &str, text: &str| json!({"frame": "iframe", step: selector, "text": text});
    let first = json!([{"name": "widget-pay-js", "url": checkout, "javascript": true, "steps": [
        in_frame("type", "#number", "4000000000003221"),
        {"frame": "iframe", "visible": "#number-live"},
        in_frame("fill", "#number", ""),
        in_frame("type", "#number", THREE_DS_CARD),
        in_frame("type", "#expiry", "1230"),
        in_frame("fill", "#cvc", "123"),
        in_frame("fill", "#holder", "IVAN IVANOV"),
        {"frame": "iframe", "click": "button[type=submit]"},
        {"frame": "iframe", "visible": "#code"},
        in_frame("fill", "#code", "131131"),
        {"frame": "iframe", "click": "button[value=confirm]"},
        {"frame": "iframe", "visible": "#working"}
    ]}]);
    let seen = drive(&chromium, first);
    assert!(!seen[0]["text"].as_str().unwrap().contains(THREE_DS_CARD), "the partner's page never sees the number");
    s.settle().await;
    s.advance(1).await;
    let again = json!([{"name": "widget-pay-js-done", "url": checkout, "javascript": true, "steps": [{"wait": "#result.done"}]}]);
    let seen = drive(&chromium, again);
    let text = seen[0]["text"].as_str().unwrap();
    let paid: Value = serde_json::from_str(text.lines().find(|l| l.contains("session_id")).unwrap()).unwrap();
    assert_eq!((paid["status"].as_str(), paid["session_id"].as_str()), (Some("succeeded"), Some(framed.as_str())));
    let a = s.call("v2", "session/status", &json!({"session_id": framed})).await;
    assert_eq!(a.body["session"]["status"], "accepted", "{}", a.text);

    // Without JavaScript, as a whole page on a desktop-sized screen.
    let (whole, whole_token) = form(6_100).await;
    let pay_url = format!("{}/widget/pay/{whole_token}?locale=en", s.url);
    let fill = |selector: &str, text: &str| json!({"fill": selector, "text": text});
    let plain = json!([{"name": "widget-pay-nojs-desktop", "url": pay_url, "javascript": false,
        "viewport": {"width": 1280, "height": 800}, "steps": [
        fill("#number", "4242 4242 4242 4242"), fill("#expiry", "12/30"), fill("#cvc", "123"),
        {"click": "button[type=submit]"}
    ]}]);
    let seen = drive(&chromium, plain);
    assert!(seen[0]["text"].as_str().unwrap().contains("processing"), "{}", seen[0]);
    s.settle().await;
    s.advance(1).await;
    let done = json!([{"name": "widget-pay-nojs-done", "url": seen[0]["url"], "javascript": false, "steps": []}]);
    let seen = drive(&chromium, done);
    assert_eq!(seen[0]["url"].as_str(), Some(back.as_str()), "{}", seen[0]);
    assert_eq!(*returns.lock().unwrap(), 1);
    let a = s.call("v2", "session/status", &json!({"session_id": whole})).await;
    assert_eq!(a.body["session"]["status"], "accepted", "{}", a.text);
    s.stop().await;
}

/// The linking widget on a partner's page, through the library: the person
/// sends the request, the sandbox's stand-in for the tax service's app
/// confirms it, and the partner's `onSuccess` hears that the link is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_linking_widget_links_in_chromium_on_a_partners_page() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let body = json!({"self_employed_widget": {"tax_reference": "500100732259"}});
    let token = s.call("v1", "token", &body).await.body["public_token"].as_str().unwrap().to_string();
    let page = partner_page_with(&s.url, &token, "selfEmployedWidget", "Get paid as self-employed").await;
    let visits = json!([{"name": "widget-link-js", "url": page, "javascript": true, "steps": [
        {"frame": "iframe", "click": "button[value=request]"},
        {"frame": "iframe", "visible": "button[value=confirm]"},
        {"frame": "iframe", "click": "button[value=confirm]"},
        {"wait": "#result.done"}
    ]}]);
    let seen = drive(&chromium, visits);
    let text = seen[0]["text"].as_str().unwrap();
    assert!(text.contains(r#"{"type":"self_employed","status":"linked"}"#), "{text}");
    assert!(!text.contains("500100732259"), "the partner's page never sees the INN from the widget");
    let link = s.app.store.npd_link("alpha", "500100732259").await.unwrap().unwrap();
    assert_eq!(link.state, open131_domain::npd_link::LinkState::Linked);
    s.stop().await;
}

/// The tax service's receipt of a self-employed payout, as its link opens
/// in a browser: a printable page with the services and the total; once
/// cancelled, marked so with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fiscal_payouts_receipt_opens_in_chromium() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let inn = "500100732259";
    for event in [open131_domain::npd_link::LinkEvent::Request, open131_domain::npd_link::LinkEvent::Confirm] {
        let now = open131_server::Clock::now(&*s.clock);
        let person = open131_domain::ident::Inn::parse_individual(inn).unwrap();
        open131_server::api::npd::change_link(&s.app, ("alpha", &person), event, now).await.unwrap();
    }
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let payout = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": 12_500, "currency": "rub"},
        "fiscalization_details": {"professional_income_taxpayer": {"tax_reference": inn, "payer_type": "legal",
            "payer_tax_number": "7707083893", "payer_name": "ООО Вектор",
            "services": [{"name": "Доставка заказа", "amount_details": {"amount": 12_500, "currency": "rub"}}]}}
    });
    let a = s.call("v1", "session/init/payout/fiscalization", &payout).await;
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    let link = a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"]
        ["link"]
        .as_str()
        .unwrap_or_else(|| panic!("{}", a.text))
        .to_string();
    let seen = drive(&chromium, json!([{"name": "npd-receipt", "url": link, "javascript": false, "steps": []}]));
    let text = seen[0]["text"].as_str().unwrap();
    for shown in ["Доставка заказа", "125.00 RUB", inn, "ООО Вектор", "Иванов Иван Иванович"]
    {
        assert!(text.contains(shown), "{shown} in {text}");
    }
    assert!(!text.contains("аннулирован"), "{text}");
    // Cancelled, the same page says so, with the reason.
    let a = s.call("v1", "fiscalization/cancel", &json!({"session_id": id, "reason": "mistake"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let seen =
        drive(&chromium, json!([{"name": "npd-receipt-cancelled", "url": link, "javascript": false, "steps": []}]));
    let text = seen[0]["text"].as_str().unwrap();
    assert!(text.contains("Чек аннулирован") && text.contains("чек сформирован ошибочно"), "{text}");
    assert!(text.contains("Доставка заказа"), "{text}");
    s.stop().await;
}

/// The self-employed path end to end, as a partner runs it: `npd/check`
/// says not linked; the person links in the widget on the partner's page
/// (Chromium) and confirms in the tax service's app; `npd/check` says
/// linked; a payout with fiscalization succeeds with its receipt in the
/// status and the webhook; the receipt's page opens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_employed_path_from_check_to_receipt() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let inn = "500100732259";
    let before = npd_check(&s, inn).await;
    assert_eq!(
        (before["is_professional_income_taxpayer"].as_bool(), before["is_linked"].as_bool()),
        (Some(true), Some(false))
    );

    let token = s.call("v1", "token", &json!({"self_employed_widget": {"tax_reference": inn}})).await;
    let token = token.body["public_token"].as_str().unwrap().to_string();
    let page = partner_page_with(&s.url, &token, "selfEmployedWidget", "Get paid as self-employed").await;
    let visits = json!([{"name": "npd-path-link", "url": page, "javascript": true, "steps": [
        {"frame": "iframe", "click": "button[value=request]"},
        {"frame": "iframe", "visible": "button[value=confirm]"},
        {"frame": "iframe", "click": "button[value=confirm]"},
        {"wait": "#result.done"}
    ]}]);
    drive(&chromium, visits);
    assert_eq!(npd_check(&s, inn).await["is_linked"], true, "linked once the person confirmed");

    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let payout = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": 3_000, "currency": "rub"},
        "fiscalization_details": {"professional_income_taxpayer": {"tax_reference": inn,
            "services": [{"name": "Курьерская доставка", "amount_details": {"amount": 3_000, "currency": "rub"}}]}}
    });
    let a = s.call("v1", "session/init/payout/fiscalization", &payout).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    let receipt = &a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"];
    let link = receipt["link"].as_str().unwrap_or_else(|| panic!("{}", a.text)).to_string();
    let hooks =
        s.app.store.webhooks(open131_store::WebhookFilter { subject_id: Some(id.clone()), ..Default::default() });
    let finished = hooks.await.unwrap().into_iter().find(|w| w.kind == "payment_finished").unwrap();
    let body = String::from_utf8(finished.body).unwrap();
    assert!(body.contains(receipt["id"].as_str().unwrap()), "the webhook carries the receipt: {body}");
    let seen = drive(&chromium, json!([{"name": "npd-path-receipt", "url": link, "javascript": false, "steps": []}]));
    assert!(seen[0]["text"].as_str().unwrap().contains("Курьерская доставка"), "{}", seen[0]);
    s.stop().await;
}

/// `npd/check` of `inn`, asked and answered after its pending while.
async fn npd_check(s: &TestServer, inn: &str) -> Value {
    let a = s.call("v1", "npd/check", &json!({"tax_reference": inn})).await;
    let id = a.body["request_id"].as_str().unwrap().to_string();
    s.advance(2).await;
    s.call("v1", "npd/request/status", &json!({"request_id": id})).await.body
}

/// The inspector (issue 13 §3) in Chromium on a phone-sized screen: the
/// token asked once, projects, a session with its timeline, a check, the
/// webhook deliveries with their attempts; the clock advanced from the page
/// and a webhook resent from it, both seen without a reload; no personal data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_a_project_live_in_chromium() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let r = common::Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let payout = json!({"payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Петров Иван"}}});
    let session = common::id_of(&s.call("v1", "session/init/payout", &payout).await);
    s.settle().await;
    s.advance(2).await;
    let (code, check) = s.post_check("alpha", common::key(0), &common::person()).await;
    assert_eq!(code, 200, "{check}");
    let mut app = s.app.clone();
    app.admin_token = Some("inspector-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));

    let visits = json!([{"name": "inspector-js", "url": format!("{admin}/admin/inspector"), "javascript": true, "steps": [
        {"fill": "#token", "text": "inspector-token"},
        {"press": "#connect"},
        {"wait": "button.project.on"},
        {"wait": "#sessions li:has-text(\"succeeded\")"},
        {"fill": "#clock-step", "text": "1d"},
        {"press": "#advance"},
        {"wait": "#clock-offset:has-text(\"86400 s ahead\")"},
        {"press": "button.resend"},
        {"wait": "#webhooks li:has-text(\"#2\")"},
        {"press": "button.session-open"},
        {"wait": "#postings td:has-text(\"10.00 RUB\")"},
        {"press": "#session-requests summary"},
        {"wait": "#session-requests pre:has-text(\"***4242\")"},
        {"press": "button.report[data-kind=payouts][data-format=csv]"},
        {"wait": "#report-status:has-text(\"downloaded alpha_\")"},
        {"press": "button.report[data-kind=act][data-register=payments]"},
        {"wait": "#report-status:has-text(\"payments.pdf\")"}
    ]}, {"name": "inspector-desktop", "url": format!("{admin}/admin/inspector"), "javascript": true,
        "viewport": {"width": 1280, "height": 800}, "steps": [
        {"fill": "#token", "text": "inspector-token"},
        {"press": "#connect"},
        {"wait": "#webhooks li:has-text(\"#2\")"},
        {"press": "#requests summary"},
        {"wait": "#requests pre:has-text(\"status\")"},
        {"press": "button.session-open"},
        {"wait": "#postings td:has-text(\"10.00 RUB\")"}
    ]}, {"name": "inspector-refused", "url": format!("{admin}/admin/inspector"), "javascript": true, "steps": [
        {"fill": "#token", "text": "wrong"},
        {"press": "#connect"},
        {"wait": "#login-error:has-text(\"refused\")"}
    ]}]);
    // The resend is delivered by the dispatcher: run it while the browser waits.
    let deliverer = {
        let app = s.app.clone();
        tokio::spawn(async move {
            for _ in 0..400 {
                let _ = app.deliver_due().await;
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        })
    };
    let seen = tokio::task::spawn_blocking(move || drive(&chromium, visits)).await.unwrap();
    deliverer.abort();
    let text = seen[0]["text"].as_str().unwrap();
    for shown in [
        session.as_str(),
        "alpha",
        "beta",
        "payment_finished",
        "pending",
        "HTTP 200",
        "86400 s ahead",
        "2026-12-01T12:00:02",
    ] {
        assert!(text.contains(shown), "{shown:?} not on the page:\n{text}");
    }
    for secret in ["4242424242424242", "Петров", "4510123456", "500100732259"] {
        for visit in &seen[..2] {
            assert!(!visit["text"].as_str().unwrap().contains(secret), "personal data {secret:?} on the page");
        }
    }
    for shown in ["Ledger postings", "Requests naming it", "/api/v1/session/init/payout", "***4242"] {
        assert!(text.contains(shown), "{shown:?} not on the page:\n{text}");
    }
    assert!(seen[2]["text"].as_str().unwrap().contains("That token was refused."), "{}", seen[2]);
    for shot in seen[0]["screenshots"].as_array().unwrap() {
        assert!(std::fs::metadata(shot.as_str().unwrap()).unwrap().len() > 1_000, "a real screenshot: {shot}");
    }
    s.stop().await;
}

/// The API reference (`/docs`) renders the generated document offline, on a phone-sized screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_renders_the_document_in_chromium() {
    let Some((chromium, s)) = chromium_and_server().await else { return };
    let visits = json!([{"name": "api-docs", "url": format!("{}/docs", s.url), "javascript": true, "steps": [
        {"wait": "body[data-ready=yes]"},
        {"fill": "#filter", "text": "session/refund"},
        {"wait": "summary:has-text(\"/api/v2/session/refund\")"}
    ]}]);
    let seen = tokio::task::spawn_blocking(move || drive(&chromium, visits)).await.unwrap();
    let text = seen[0]["text"].as_str().unwrap();
    assert!(text.contains("OpenAPI 3.1.0"), "{text}");
    assert!(text.contains("/api/v1/session/refund") && !text.contains("/api/v1/session/init/payout"), "{text}");
    assert!(text.contains("SessionResponse") && text.contains("ErrorEnvelope"), "{text}");
    s.stop().await;
}
