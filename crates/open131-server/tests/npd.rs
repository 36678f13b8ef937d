//! The self-employed (NPD) methods over HTTP, on the backend the suite runs
//! on: `npd/check` and `npd/taxpayer/check_personal_info` pending for their
//! documented while, then the tax service's answer; every sandbox INN; the
//! link made through the widget and the operator's acts for the tax
//! service's app; the operator's word on a person; another project's
//! requests and links unseen.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fields, server, TestServer};
use open131_domain::ident::Inn;
use open131_domain::npd::{SANDBOX_FULL_NAME, SANDBOX_PHONE};
use open131_store::SettingsChange;
use serde_json::{json, Value};

/// The INN whose first ten digits are `stem` (the sandbox's table).
fn inn(stem: &str) -> String {
    Inn::complete_individual(stem).unwrap()
}

const PLAIN: &str = "500100732259";

/// Asks, waits out the pending while, and returns the answer.
async fn answered(s: &TestServer, method: &str, body: Value) -> Value {
    let a = s.call("v1", method, &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["request_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("npd_"), "{id}");
    let pending = s.call("v1", "npd/request/status", &json!({"request_id": id})).await;
    assert_eq!(pending.body, json!({"status": "pending", "request_id": id}));
    s.advance(2).await;
    let done = s.call("v1", "npd/request/status", &json!({"request_id": id})).await;
    assert_eq!((done.status, done.body["request_id"].as_str()), (200, Some(id.as_str())), "{}", done.text);
    done.body
}

async fn check(s: &TestServer, inn: &str) -> Value {
    answered(s, "npd/check", json!({"tax_reference": inn})).await
}

/// The admin API on its own port: (status, body) of a POST with the token.
async fn admin(
    s: &TestServer,
) -> impl Fn(&'static str, Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Value)> + Send>> {
    let mut app = s.app.clone();
    app.admin_token = Some("secret-token".into());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(open131_server::run(listener, app, std::future::pending()));
    let http = s.http.clone();
    move |path: &'static str, body: Value| {
        let request = http.post(format!("{base}{path}")).bearer_auth("secret-token").json(&body);
        Box::pin(async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    }
}

#[tokio::test]
async fn every_sandbox_taxpayer_is_answered_as_documented() {
    let (s, _r) = server(SettingsChange::default()).await;
    let plain = check(&s, PLAIN).await;
    assert_eq!(
        plain,
        json!({"status": "ok", "request_id": plain["request_id"],
        "is_professional_income_taxpayer": true, "is_linked": false})
    );
    let unknown = check(&s, &inn("7700000001")).await;
    assert_eq!(
        (unknown["status"].as_str(), unknown["error"]["code"].as_str()),
        (Some("error"), Some("taxpayer_unknown"))
    );
    let not = check(&s, &inn("7700000002")).await;
    assert_eq!(not["is_professional_income_taxpayer"], false);
    let failing = check(&s, &inn("7700000003")).await;
    assert_eq!(failing["error"]["code"], "npd_service_internal_error");

    // Personal data: the sandbox's person on file, compared without case or ё.
    let named = inn("7700000004");
    let info = |name: &str, phone: &str| json!({"tax_reference": named, "full_name": name, "phone": phone});
    let same = answered(&s, "npd/taxpayer/check_personal_info", info("ПЕТРОВ Петр Петрович", SANDBOX_PHONE)).await;
    assert_eq!(same["mismatches"], json!([]), "{same}");
    let wrong = answered(&s, "npd/taxpayer/check_personal_info", info("Иванов Иван", "+79990000000")).await;
    assert_eq!(wrong["mismatches"], json!(["full_name", "phone"]), "{wrong}");
    let exact = answered(&s, "npd/taxpayer/check_personal_info", info(SANDBOX_FULL_NAME, SANDBOX_PHONE)).await;
    assert_eq!(exact["mismatches"], json!([]), "{exact}");
    s.stop().await;
}

#[tokio::test]
async fn a_link_made_in_the_widget_and_confirmed_by_the_operator_shows_in_the_next_check() {
    let (s, _r) = server(SettingsChange::default()).await;
    let admin = admin(&s).await;
    // Nothing waits: the tax service's app has nothing to confirm.
    let (code, body) =
        admin("/admin/v1/npd/link", json!({"project": "alpha", "tax_reference": PLAIN, "action": "confirm"})).await;
    assert_eq!((code, body["error"]["code"].as_str()), (409, Some("link_wrong_state")), "{body}");

    // The person sends the request through the widget.
    let token = s.call("v1", "token", &json!({"self_employed_widget": {"tax_reference": PLAIN}})).await;
    let token = token.body["public_token"].as_str().unwrap().to_string();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let sent = http.post(format!("{}/widget/self-employed/{token}", s.url)).form(&[("action", "request")]).send().await;
    assert_eq!(sent.unwrap().status(), 303);
    assert_eq!(check(&s, PLAIN).await["is_linked"], false, "not before the person confirms");

    let (code, body) =
        admin("/admin/v1/npd/link", json!({"project": "alpha", "tax_reference": PLAIN, "action": "confirm"})).await;
    assert_eq!((code, body["link"].as_str()), (200, Some("linked")), "{body}");
    assert_eq!(check(&s, PLAIN).await["is_linked"], true);
    // Linked: a new linking widget has nothing to ask for; another project's may.
    let again = s.call("v1", "token", &json!({"self_employed_widget": {"tax_reference": PLAIN}})).await;
    assert_eq!(
        (again.status, again.body["error"]["code"].as_str()),
        (400, Some("taxpayer_already_bound")),
        "{}",
        again.text
    );
    let body = json!({"self_employed_widget": {"tax_reference": PLAIN}}).to_string().into_bytes();
    let theirs = s.call_bytes("v1", "token", "beta", common::key(1), body, None).await;
    assert_eq!(theirs.status, 200, "{}", theirs.text);
    // Another project's check of the same person: not linked to it.
    let other = s
        .call_bytes(
            "v1",
            "npd/check",
            "beta",
            common::key(1),
            json!({"tax_reference": PLAIN}).to_string().into_bytes(),
            None,
        )
        .await;
    let other_id = other.body["request_id"].as_str().unwrap().to_string();
    s.advance(2).await;
    let theirs = s
        .call_bytes(
            "v1",
            "npd/request/status",
            "beta",
            common::key(1),
            json!({"request_id": other_id}).to_string().into_bytes(),
            None,
        )
        .await;
    assert_eq!(theirs.body["is_linked"], false, "{}", theirs.text);
    // And one project's request is none of another's.
    let mine = s.call("v1", "npd/request/status", &json!({"request_id": other_id})).await;
    assert_eq!((mine.status, fields(&mine)), (400, vec!["request_id".to_string()]));

    // Unlinked: the next check says so.
    let (code, body) =
        admin("/admin/v1/npd/link", json!({"project": "alpha", "tax_reference": PLAIN, "action": "unlink"})).await;
    assert_eq!((code, body["link"].as_str()), (200, Some("not_requested")));
    assert_eq!(check(&s, PLAIN).await["is_linked"], false);
    let token = s.call("v1", "token", &json!({"self_employed_widget": {"tax_reference": PLAIN}})).await;
    assert_eq!(token.status, 200, "unlinked, the widget may ask again: {}", token.text);
    s.stop().await;
}

#[tokio::test]
async fn the_operators_word_on_a_person_overrides_the_sandbox() {
    let (s, _r) = server(SettingsChange::default()).await;
    let admin = admin(&s).await;
    let word = json!({"tax_reference": PLAIN, "status": "not_self_employed", "full_name": "Сидоров Сидор", "phone": "79001112233"});
    assert_eq!(admin("/admin/v1/npd/taxpayer", word).await.0, 200);
    assert_eq!(check(&s, PLAIN).await["is_professional_income_taxpayer"], false);
    let info = json!({"tax_reference": PLAIN, "full_name": "Сидоров Сидор", "phone": "79001112234"});
    assert_eq!(answered(&s, "npd/taxpayer/check_personal_info", info).await["mismatches"], json!(["phone"]));
    let failing = json!({"tax_reference": PLAIN, "status": "self_employed", "service_error": true});
    assert_eq!(admin("/admin/v1/npd/taxpayer", failing).await.0, 200);
    assert_eq!(check(&s, PLAIN).await["error"]["code"], "npd_service_internal_error");
    // Bad words are refused, naming what is wrong.
    let (code, body) =
        admin("/admin/v1/npd/taxpayer", json!({"tax_reference": "500100732258", "status": "self_employed"})).await;
    assert_eq!(code, 400, "{body}");
    let (code, _) = admin("/admin/v1/npd/taxpayer", json!({"tax_reference": PLAIN, "status": "retired"})).await;
    assert_eq!(code, 400);
    s.stop().await;
}

#[tokio::test]
async fn bad_npd_requests_name_their_fields() {
    let (s, _r) = server(SettingsChange::default()).await;
    let named = |a: &common::Answer| (a.status, fields(a));
    let a = s.call("v1", "npd/check", &json!({"tax_reference": "500100732258"})).await;
    assert_eq!(named(&a), (400, vec!["tax_reference".to_string()]), "{}", a.text);
    assert!(!a.text.contains("500100732258"), "the INN is not echoed: {}", a.text);
    let a = s.call("v1", "npd/check", &json!({"tax_reference": PLAIN, "inn": PLAIN})).await;
    assert_eq!(named(&a), (400, vec!["inn".to_string()]), "a field it does not act on: {}", a.text);
    let a = s.call("v1", "npd/taxpayer/check_personal_info", &json!({"tax_reference": PLAIN})).await;
    assert_eq!(named(&a), (400, vec!["full_name".to_string(), "phone".to_string()]), "{}", a.text);
    let a = s.call("v1", "npd/request/status", &json!({"request_id": "npd_0"})).await;
    assert_eq!(named(&a), (400, vec!["request_id".to_string()]), "{}", a.text);
    s.stop().await;
}

fn fiscal_payout(inn: &str, services: Value) -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
        "amount_details": {"amount": 10_000, "currency": "rub"},
        "fiscalization_details": {"professional_income_taxpayer": {"tax_reference": inn, "payer_type": "legal",
            "payer_tax_number": "7707083893", "payer_name": "OOO Vector", "services": services}}
    })
}

fn two_services() -> Value {
    json!([{"name": "Доставка", "amount_details": {"amount": 6_000, "currency": "rub"}},
        {"name": "Упаковка", "amount_details": {"amount": 4_000, "currency": "rub"}, "quantity": 2}])
}

/// Links `inn` to the bank for alpha, as the widget and the tax service's app would.
async fn linked(s: &TestServer, inn: &str) {
    use open131_domain::npd_link::LinkEvent;
    for event in [LinkEvent::Request, LinkEvent::Confirm] {
        let now = open131_server::Clock::now(&*s.clock);
        let person = open131_domain::ident::Inn::parse_individual(inn).unwrap();
        open131_server::api::npd::change_link(&s.app, ("alpha", &person), event, now).await.unwrap();
    }
}

/// A payout to a linked self-employed person with fiscalization: echoed with
/// each service's quantity, and once it succeeds the receipt's id and link
/// (in the payout and its webhook), the link opening the receipt's page.
#[tokio::test]
async fn a_fiscal_payout_registers_a_receipt_once_it_succeeds() {
    let (s, r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    linked(&s, PLAIN).await;
    let a = s.call("v1", "session/init/payout/fiscalization", &fiscal_payout(PLAIN, two_services())).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    let echo = &a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"];
    assert_eq!(
        (echo["services"][0]["quantity"].as_i64(), echo["services"][1]["quantity"].as_i64()),
        (Some(1), Some(2))
    );
    assert!(echo.get("receipt").is_none(), "no receipt before the payout succeeds: {echo}");
    s.settle().await;
    s.advance(5).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    let payout = &a.body["session"]["payments"][0];
    assert_eq!(payout["status"], "succeeded", "{payout}");
    let receipt = &payout["fiscalization_details"]["professional_income_taxpayer"]["receipt"];
    let link = receipt["link"].as_str().unwrap().to_string();
    assert!(receipt["id"].as_str().unwrap().starts_with("rcpt_"), "{receipt}");
    assert!(link.starts_with(&s.url) && link.contains("/npd/receipt/alpha/"), "{link}");
    let received = r.received();
    let finished = &received
        .iter()
        .find(|w| w.body["session"]["id"] == id.as_str() && w.body["type"] == "payment_finished")
        .unwrap()
        .body;
    assert_eq!(
        finished["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"],
        *receipt
    );
    let page = s.http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for shown in ["Доставка", "Упаковка", "Итого: 100.00 RUB", PLAIN, "OOO Vector", "Иванов Иван Иванович"]
    {
        assert!(html.contains(shown), "{shown} in {html}");
    }
    // Another project's session, or a payout that did not succeed, has no receipt page.
    assert_eq!(s.http.get(link.replace("/alpha/", "/beta/")).send().await.unwrap().status(), 404);
    let unlinked =
        s.call("v1", "session/init/payout/fiscalization", &fiscal_payout(&inn("7700000002"), two_services())).await;
    let (failed_session, failed_payout) = (
        unlinked.body["session"]["id"].as_str().unwrap().to_string(),
        unlinked.body["session"]["payments"][0]["id"].as_str().unwrap().to_string(),
    );
    s.settle().await;
    s.advance(5).await;
    let failed_link = format!("{}/npd/receipt/alpha/{failed_session}/{failed_payout}", s.url);
    assert_eq!(s.http.get(&failed_link).send().await.unwrap().status(), 404, "a failed payout has no receipt");
    s.stop().await;
}

/// The person must be self-employed and linked, else the payout fails with
/// the bank's code; the services must add up to the payout; the
/// …/fiscalization methods require the details; only the main wallet's
/// payouts carry them.
#[tokio::test]
async fn fiscal_payouts_fail_or_are_refused_as_the_bank_says() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let mut ids = Vec::new();
    for inn in [PLAIN.to_string(), inn("7700000001"), inn("7700000003")] {
        // Plain session/init/payout carries the details too.
        let a = s.call("v1", "session/init/payout", &fiscal_payout(&inn, two_services())).await;
        assert_eq!(a.status, 200, "{}", a.text);
        ids.push(a.body["session"]["id"].as_str().unwrap().to_string());
    }
    s.settle().await;
    s.advance(5).await;
    for (id, expected) in ids.iter().zip(["taxpayer_not_bound", "taxpayer_unknown", "npd_service_internal_error"]) {
        let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
        assert_eq!(a.body["session"]["payments"][0]["error"]["code"], expected, "{}", a.text);
    }

    let short = json!([{"name": "Доставка", "amount_details": {"amount": 6_000, "currency": "rub"}}]);
    let a = s.call("v1", "session/init/payout/fiscalization", &fiscal_payout(PLAIN, short)).await;
    assert_eq!(
        (a.status, fields(&a)),
        (400, vec!["fiscalization_details.professional_income_taxpayer.services".to_string()]),
        "{}",
        a.text
    );
    let mut without = fiscal_payout(PLAIN, two_services());
    without.as_object_mut().unwrap().remove("fiscalization_details");
    let a = s.call("v1", "session/init/payout/fiscalization", &without).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["fiscalization_details".to_string()]), "{}", a.text);
    let mut nominal = fiscal_payout(PLAIN, two_services());
    nominal["participant_details"]["sender"] = json!({"beneficiary_id": "b-1"});
    let a = s.call("v1", "session/init/payout/nominal", &nominal).await;
    assert!(a.status == 400 && fields(&a).contains(&"fiscalization_details".to_string()), "{}", a.text);
    s.stop().await;
}

/// A fiscal payout of `amount` to `inn`, one service of the same amount.
fn fiscal_of(inn: &str, amount: i64) -> Value {
    let mut body =
        fiscal_payout(inn, json!([{"name": "Работа", "amount_details": {"amount": amount, "currency": "rub"}}]));
    body["amount_details"]["amount"] = json!(amount);
    body
}

/// The person's income in a Moscow calendar year stays within 2.4 million
/// roubles: the payout that would pass it fails with
/// `taxpayer_income_exceeds_amount_limit` (a failed payout counts for
/// nothing), and the count starts again on the 1st of January.
#[tokio::test]
async fn the_yearly_income_limit_holds_within_a_year_and_resets_with_the_next() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 500_000_000, common::START).await.unwrap();
    linked(&s, PLAIN).await;
    let pay = |amount: i64| {
        let s = &s;
        async move {
            let a = s.call("v1", "session/init/payout/fiscalization", &fiscal_of(PLAIN, amount)).await;
            assert_eq!(a.status, 200, "{}", a.text);
            let id = a.body["session"]["id"].as_str().unwrap().to_string();
            s.settle().await;
            s.advance(5).await;
            let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
            let p = &a.body["session"]["payments"][0];
            (p["status"].as_str().unwrap().to_string(), p["error"]["code"].as_str().map(str::to_string))
        }
    };
    assert_eq!(pay(230_000_000).await, ("succeeded".to_string(), None));
    assert_eq!(pay(20_000_000).await, ("failed".to_string(), Some("taxpayer_income_exceeds_amount_limit".to_string())));
    assert_eq!(pay(10_000_000).await, ("succeeded".to_string(), None), "exactly the limit, the failed one not counted");
    assert_eq!(pay(100).await.1.as_deref(), Some("taxpayer_income_exceeds_amount_limit"));
    // Moscow's new year is 21:00 UTC on 31 December: a minute before, still the old year's.
    let until = |t: time::OffsetDateTime| (t - open131_server::Clock::now(&*s.clock)).whole_seconds();
    s.advance(until(time::macros::datetime!(2026-12-31 20:58:30 UTC))).await;
    assert_eq!(pay(100).await.1.as_deref(), Some("taxpayer_income_exceeds_amount_limit"), "still 2026 in Moscow");
    s.advance(until(time::macros::datetime!(2026-12-31 21:00:00 UTC))).await;
    assert_eq!(pay(20_000_000).await, ("succeeded".to_string(), None), "1 January in Moscow: a new year's income");
    s.stop().await;
}

/// A multi-session's payout refuses fiscalization (its payouts would each be
/// checked alone against the yearly limit), named where it was sent; a
/// receipt page escapes what the partner sent.
#[tokio::test]
async fn a_multi_sessions_payout_refuses_fiscalization_and_receipts_escape_their_text() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let card = json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
        "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}});
    let mut payout = fiscal_payout(PLAIN, two_services());
    payout.as_object_mut().unwrap().remove("customer");
    let multi = json!({
        "payment_list": [{"payment_details": card, "amount_details": {"amount": 20_000, "currency": "rub"},
            "customer": {"reference": "lucky"}}],
        "payout_list": [payout],
    });
    let a = s.call("v2", "session/multi/init", &multi).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["payout_list[0].fiscalization_details".to_string()]), "{}", a.text);

    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    linked(&s, PLAIN).await;
    let tricky =
        json!([{"name": "<b>Доставка</b> & \"упаковка\"", "amount_details": {"amount": 10_000, "currency": "rub"}}]);
    let a = s.call("v1", "session/init/payout/fiscalization", &fiscal_payout(PLAIN, tricky)).await;
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    let link = a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"]
        ["link"]
        .as_str()
        .unwrap()
        .to_string();
    let html = s.http.get(&link).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("&lt;b&gt;Доставка&lt;/b&gt; &amp; &quot;упаковка&quot;") && !html.contains("<b>Доставка"),
        "{html}"
    );
    s.stop().await;
}

/// `fiscalization` registers the receipt of an earlier payout that went
/// without one, within 9 calendar days of it: the receipt then shows in the
/// payout; a second registration, a late one, a wrong amount, or a person
/// not linked is refused as the bank says.
#[tokio::test]
async fn a_receipt_is_registered_later_within_nine_days() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let plain_payout = |amount: i64| {
        let mut body = fiscal_of(PLAIN, amount);
        body.as_object_mut().unwrap().remove("fiscalization_details");
        body
    };
    let paid = |amount: i64| {
        let s = &s;
        let body = plain_payout(amount);
        async move {
            let id =
                s.call("v1", "session/init/payout", &body).await.body["session"]["id"].as_str().unwrap().to_string();
            s.settle().await;
            s.advance(5).await;
            id
        }
    };
    let details = |amount: i64| {
        json!({"professional_income_taxpayer": {"tax_reference": PLAIN,
            "services": [{"name": "Работа", "amount_details": {"amount": amount, "currency": "rub"}}]}})
    };
    let first = paid(10_000).await;
    // Not linked yet: the tax service refuses it with the bank's code.
    let a =
        s.call("v1", "fiscalization", &json!({"session_id": first, "fiscalization_details": details(10_000)})).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("taxpayer_not_bound")), "{}", a.text);
    linked(&s, PLAIN).await;
    let a = s.call("v1", "fiscalization", &json!({"session_id": first, "fiscalization_details": details(9_000)})).await;
    assert_eq!(
        (a.status, fields(&a)),
        (400, vec!["fiscalization_details.professional_income_taxpayer.services".to_string()]),
        "{}",
        a.text
    );
    let a = s
        .call(
            "v1",
            "fiscalization",
            &json!({"session_id": first, "fiscalization_details": details(10_000),
        "participant_details": {}}),
        )
        .await;
    assert_eq!((a.status, fields(&a)), (400, vec!["participant_details".to_string()]), "{}", a.text);
    let a = s
        .call(
            "v1",
            "fiscalization",
            &json!({"session_id": first, "fiscalization_details": details(10_000),
        "amount_details": {"amount": 10_000, "currency": "rub"}}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let receipt = &a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"];
    assert!(receipt["id"].as_str().is_some_and(|id| id.starts_with("rcpt_")), "{}", a.text);
    let a =
        s.call("v1", "fiscalization", &json!({"session_id": first, "fiscalization_details": details(10_000)})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "once: {}", a.text);

    // Ten calendar days on, too late.
    let late = paid(5_000).await;
    s.advance(10 * 86_400).await;
    let a = s.call("v1", "fiscalization", &json!({"session_id": late, "fiscalization_details": details(5_000)})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);
    assert!(a.text.contains("within 9 days"), "{}", a.text);
    s.stop().await;
}

/// The receipt object of a session's (first) payout, as `session/status` shows it.
async fn receipt_of(s: &TestServer, id: &str) -> Value {
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"].clone()
}

/// A fiscal payout to `inn` that has succeeded: its session id.
async fn paid_with_receipt(s: &TestServer, inn: &str, amount: i64) -> String {
    let a = s.call("v1", "session/init/payout/fiscalization", &fiscal_of(inn, amount)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
    assert_eq!(a.body["session"]["payments"][0]["status"], "succeeded", "{}", a.text);
    id
}

/// The sandbox's 7700000005… person: the tax service refuses the first two
/// registrations, so the payout succeeds with its receipt pending (in status
/// and in the webhook, with the next try's time and no page), tried again
/// after 1 minute, then 5 more, when it registers.
#[tokio::test]
async fn a_refused_receipt_waits_pending_and_registers_on_a_later_try() {
    let (s, r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let person = inn("7700000005");
    linked(&s, &person).await;
    let id = paid_with_receipt(&s, &person, 10_000).await;
    let pending = receipt_of(&s, &id).await;
    let finished_at = s.call("v1", "session/status", &json!({"session_id": id})).await.body["session"]["payments"][0]
        ["finished_at"]
        .clone();
    let succeeded =
        time::OffsetDateTime::parse(finished_at.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let at = |seconds: i64| open131_wire::api::timestamp(succeeded + time::Duration::seconds(seconds));
    assert_eq!(pending, json!({"status": "pending", "attempts": 1, "next_attempt_at": at(60)}));
    let received = r.received();
    let hook = received.iter().find(|w| w.body["session"]["id"] == id.as_str() && w.body["type"] == "payment_finished");
    let hooked = &hook.unwrap().body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"];
    assert_eq!(hooked["receipt"], pending, "the webhook tells of the pending receipt");
    let payout = s.call("v1", "session/status", &json!({"session_id": id})).await.body["session"]["payments"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let page = format!("{}/npd/receipt/alpha/{id}/{payout}", s.url);
    assert_eq!(s.http.get(&page).send().await.unwrap().status(), 404, "no page before it registers");

    s.advance(59).await;
    assert_eq!(receipt_of(&s, &id).await["attempts"], 1, "not tried before its time");
    s.advance(1).await;
    assert_eq!(receipt_of(&s, &id).await, json!({"status": "pending", "attempts": 2, "next_attempt_at": at(360)}));
    s.advance(300).await;
    let registered = receipt_of(&s, &id).await;
    assert_eq!(registered.as_object().unwrap().len(), 2, "{registered}");
    assert!(registered["id"].as_str().unwrap().starts_with("rcpt_"), "{registered}");
    assert_eq!(s.http.get(&page).send().await.unwrap().status(), 200, "the same page, registered now");
    assert_eq!(s.http.get(registered["link"].as_str().unwrap()).send().await.unwrap().status(), 200);
    s.stop().await;
}

/// A tax service that refuses every try: after the last retry (about two
/// days on) the receipt is `failed` and no more tries are made.
#[tokio::test]
async fn a_receipt_refused_at_every_try_ends_failed() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let admin = admin(&s).await;
    let said = json!({"tax_reference": PLAIN, "status": "self_employed", "receipt_refusals": 1000});
    assert_eq!(admin("/admin/v1/npd/taxpayer", said).await.0, 200);
    let refused = json!({"tax_reference": PLAIN, "status": "self_employed", "receipt_refusals": -1});
    assert_eq!(admin("/admin/v1/npd/taxpayer", refused).await.0, 400);
    linked(&s, PLAIN).await;
    let id = paid_with_receipt(&s, PLAIN, 10_000).await;
    for (attempts, wait) in open131_domain::receipt::RETRY_DELAYS_S.iter().enumerate() {
        assert_eq!(receipt_of(&s, &id).await["attempts"], attempts + 1);
        s.advance(*wait).await;
    }
    let attempts = open131_domain::receipt::ATTEMPTS_MAX;
    assert_eq!(receipt_of(&s, &id).await, json!({"status": "failed", "attempts": attempts}));
    s.advance(30 * 86_400).await;
    assert_eq!(receipt_of(&s, &id).await["attempts"], attempts, "no try after the last");
    // A failed receipt was never registered: there is nothing to cancel.
    let a = s.call("v1", "fiscalization/cancel", &json!({"session_id": id, "reason": "mistake"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);
    s.stop().await;
}

/// `fiscalization/cancel` `[INF]`: a registered receipt is cancelled with a
/// reason, its page marked so, and its income freed in the person's yearly
/// sum; a pending receipt, a second cancel, a missing or unknown reason,
/// another project's session and a payout without a receipt are refused.
#[tokio::test]
async fn a_cancelled_receipt_frees_its_income() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 500_000_000, common::START).await.unwrap();
    linked(&s, PLAIN).await;
    let big = paid_with_receipt(&s, PLAIN, 240_000_000).await;
    let over = s.call("v1", "session/init/payout/fiscalization", &fiscal_of(PLAIN, 100)).await;
    let over_id = over.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    let a = s.call("v1", "session/status", &json!({"session_id": over_id})).await;
    assert_eq!(a.body["session"]["payments"][0]["error"]["code"], "taxpayer_income_exceeds_amount_limit");

    for (body, field) in [
        (json!({"session_id": big}), "reason"),
        (json!({"session_id": big, "reason": "boredom"}), "reason"),
        (json!({"session_id": big, "reason": "mistake", "extra": 1}), "extra"),
        (json!({"session_id": over_id, "reason": "mistake"}), "session_id"),
    ] {
        let a = s.call("v1", "fiscalization/cancel", &body).await;
        assert_eq!((a.status, fields(&a)), (400, vec![field.to_string()]), "{body}: {}", a.text);
    }
    let body = json!({"session_id": big, "reason": "mistake"}).to_string().into_bytes();
    let theirs = s.call_bytes("v1", "fiscalization/cancel", "beta", common::key(1), body, None).await;
    assert_eq!((theirs.status, fields(&theirs)), (400, vec!["session_id".to_string()]), "{}", theirs.text);
    assert!(theirs.text.contains("no such session"), "{}", theirs.text);

    let a = s.call("v1", "fiscalization/cancel", &json!({"session_id": big, "reason": "refund"})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let receipt = &a.body["session"]["payments"][0]["fiscalization_details"]["professional_income_taxpayer"]["receipt"];
    assert_eq!((receipt["status"].as_str(), receipt["cancel_reason"].as_str()), (Some("cancelled"), Some("refund")));
    let again = s.call("v1", "fiscalization/cancel", &json!({"session_id": big, "reason": "refund"})).await;
    assert_eq!((again.status, fields(&again)), (400, vec!["session_id".to_string()]), "{}", again.text);
    let html = s.http.get(receipt["link"].as_str().unwrap()).send().await.unwrap().text().await.unwrap();
    assert!(html.contains("id=\"cancelled\"") && html.contains("возврат средств"), "{html}");

    // Its income is freed: the whole limit is open again.
    paid_with_receipt(&s, PLAIN, 240_000_000).await;

    // A pending receipt has nothing at the tax service to cancel.
    let person = inn("7700000005");
    linked(&s, &person).await;
    let waiting = paid_with_receipt(&s, &person, 10_000).await;
    let a = s.call("v1", "fiscalization/cancel", &json!({"session_id": waiting, "reason": "mistake"})).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["session_id".to_string()]), "{}", a.text);
    assert!(a.text.contains("pending"), "{}", a.text);
    s.stop().await;
}

/// A receipt registered later by `fiscalization` that the tax service
/// refuses at first waits and is retried like a payout's own.
#[tokio::test]
async fn a_late_receipt_refused_at_first_is_retried() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let person = inn("7700000005");
    linked(&s, &person).await;
    let mut body = fiscal_of(&person, 10_000);
    let details = body.as_object_mut().unwrap().remove("fiscalization_details").unwrap();
    let id = s.call("v1", "session/init/payout", &body).await.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    assert_eq!(receipt_of(&s, &id).await, Value::Null, "no fiscalization, no receipt");
    let a = s.call("v1", "fiscalization", &json!({"session_id": id, "fiscalization_details": details})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(receipt_of(&s, &id).await["status"], "pending");
    s.advance(60).await;
    s.advance(300).await;
    assert!(receipt_of(&s, &id).await["id"].as_str().is_some_and(|r| r.starts_with("rcpt_")));
    s.stop().await;
}

/// An imported register speaks for a person over the sandbox's rules, and
/// for the link until the project's own link changes: linked by the
/// register, a token is refused as `taxpayer_already_bound` and a fiscal
/// payout passes; unlinked by the operator, the next check says so.
#[tokio::test]
async fn an_imported_register_speaks_until_the_projects_own_link_changes() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let named = inn("7700000004");
    let csv = format!("inn,status,linked,full_name,phone\n{PLAIN},self_employed,true,Иванов Иван,\n{named},not_self_employed,false,,\n");
    let register = open131_registry::import_npd_csv(csv.as_bytes(), None, &mut |_| {}).unwrap();
    s.app.registries.install_npd(register);
    assert_eq!(check(&s, PLAIN).await["is_linked"], true);
    assert_eq!(check(&s, &named).await["is_professional_income_taxpayer"], false, "the register over the sandbox");
    let personal = json!({"tax_reference": PLAIN, "full_name": "Петров Пётр", "phone": "79990000000"});
    assert_eq!(answered(&s, "npd/taxpayer/check_personal_info", personal).await["mismatches"], json!(["full_name"]));
    let token = s.call("v1", "token", &json!({"self_employed_widget": {"tax_reference": PLAIN}})).await;
    assert_eq!(token.body["error"]["code"], "taxpayer_already_bound", "{}", token.text);
    paid_with_receipt(&s, PLAIN, 10_000).await;

    let admin = admin(&s).await;
    let (code, body) =
        admin("/admin/v1/npd/link", json!({"project": "alpha", "tax_reference": PLAIN, "action": "unlink"})).await;
    assert_eq!((code, body["link"].as_str()), (200, Some("not_requested")), "{body}");
    assert_eq!(check(&s, PLAIN).await["is_linked"], false, "the project's own link now");
    s.stop().await;
}

/// A retry asks the tax service as it is then: while its service fails, the
/// try is refused; once it answers again, the next try registers.
#[tokio::test]
async fn a_retry_meets_the_tax_service_as_it_is_then() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let admin = admin(&s).await;
    let said = |service_error: bool| json!({"tax_reference": PLAIN, "status": "self_employed", "receipt_refusals": 1, "service_error": service_error});
    assert_eq!(admin("/admin/v1/npd/taxpayer", said(false)).await.0, 200);
    linked(&s, PLAIN).await;
    let id = paid_with_receipt(&s, PLAIN, 10_000).await;
    assert_eq!(receipt_of(&s, &id).await["attempts"], 1);
    assert_eq!(admin("/admin/v1/npd/taxpayer", said(true)).await.0, 200);
    s.advance(60).await;
    assert_eq!(
        (receipt_of(&s, &id).await["status"].as_str(), receipt_of(&s, &id).await["attempts"].as_u64()),
        (Some("pending"), Some(2))
    );
    assert_eq!(admin("/admin/v1/npd/taxpayer", said(false)).await.0, 200);
    s.advance(300).await;
    assert!(receipt_of(&s, &id).await["id"].as_str().is_some_and(|r| r.starts_with("rcpt_")));
    s.stop().await;
}

/// Virtual time (issue 13 §1): a refused receipt's retries and the yearly
/// income sums follow the project's clock, moved over the admin API while
/// the real clock stands still.
#[tokio::test]
async fn receipt_retries_and_the_income_year_follow_the_projects_clock() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 500_000_000, common::START).await.unwrap();
    let admin = admin(&s).await;
    let person = inn("7700000005");
    linked(&s, &person).await;
    let id = paid_with_receipt(&s, &person, 10_000).await;
    assert_eq!(receipt_of(&s, &id).await["attempts"], 1);
    let (code, answer) = admin("/admin/v1/clock", json!({"project": "alpha", "advance_s": 60})).await;
    assert_eq!(code, 200, "{answer}");
    s.settle().await;
    assert_eq!(receipt_of(&s, &id).await["attempts"], 2, "retried a minute later by alpha's clock");
    admin("/admin/v1/clock", json!({"project": "alpha", "advance_s": 300})).await;
    s.settle().await;
    assert!(receipt_of(&s, &id).await["id"].as_str().unwrap().starts_with("rcpt_"), "registered on the third try");

    linked(&s, PLAIN).await;
    let pay = |amount: i64| {
        let s = &s;
        async move {
            let id = paid_or_failed(s, PLAIN, amount).await;
            let a = s.call("v1", "session/status", &json!({"session_id": id})).await;
            a.body["session"]["payments"][0]["error"]["code"].as_str().map(str::to_string)
        }
    };
    assert_eq!(pay(240_000_000).await, None, "the year's limit, reached");
    assert_eq!(pay(100).await.as_deref(), Some("taxpayer_income_exceeds_amount_limit"));
    // 1 January in Moscow by alpha's clock (the real one is still in November).
    let (code, _) = admin("/admin/v1/clock", json!({"project": "alpha", "set": "2026-12-31T21:00:00Z"})).await;
    assert_eq!(code, 200);
    assert_eq!(pay(100).await, None, "a new year's income");
    s.stop().await;
}

/// A fiscal payout to `inn` run to its end, succeeded or failed: its session id.
async fn paid_or_failed(s: &TestServer, inn: &str, amount: i64) -> String {
    let a = s.call("v1", "session/init/payout/fiscalization", &fiscal_of(inn, amount)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = a.body["session"]["id"].as_str().unwrap().to_string();
    s.settle().await;
    s.advance(5).await;
    id
}
