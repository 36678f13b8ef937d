//! Widgets (issue 10), over real HTTP on the backend the environment
//! selects: public tokens (`token`) for each widget and `token/info` of
//! public and recurrent tokens. The pages and the card vault come later.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{fields, id_of, server, TestServer};
use open131_store::SettingsChange;
use serde_json::{json, Value};

async fn info(s: &TestServer, body: &Value) -> common::Answer {
    s.call("v1", "token/info", body).await
}

#[tokio::test]
async fn a_public_token_opens_the_widgets_it_was_issued_for_for_a_day() {
    let (s, _r) = server(SettingsChange::default()).await;
    // The payment form needs a session waiting for its payment, with its amount and customer.
    let created = s.call("v1", "session/create", &for_form(10_000)).await;
    let session = id_of(&created);
    let body = json!({
        "tokenize_widget": {"access": true, "locale": "en"},
        "acquiring_widget": {"session_id": session, "success_return_url": "https://shop.example/ok",
            "failure_return_url": "https://shop.example/fail", "show_recurrent_checkbox": true},
        "self_employed_widget": {"tax_reference": "500100732259"}
    });
    let a = s.call("v1", "token", &body).await;
    assert_eq!((a.status, a.body["status"].as_str()), (200, Some("ok")), "{}", a.text);
    let token = a.body["public_token"].as_str().unwrap().to_string();
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let again = s.call("v1", "token", &body).await;
    assert_ne!(again.body["public_token"], token.as_str(), "each issue is a new token");

    let a = info(&s, &json!({"type": "public_token", "public_token": {"token": token}})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let i = &a.body["info"];
    assert_eq!(
        (i["type"].as_str(), i["token"].as_str(), i["is_active"].as_bool()),
        (Some("public_token"), Some(token.as_str()), Some(true))
    );
    assert_eq!(
        (i["created_at"].as_str(), i["expires_at"].as_str()),
        (Some("2026-11-30T12:00:00.000000Z"), Some("2026-12-01T12:00:00.000000Z"))
    );
    assert_eq!(i["widgets"]["acquiring_widget"]["session_id"], session.as_str());
    assert_eq!(i["widgets"]["tokenize_widget"], json!({"access": true, "locale": "en"}));
    assert_eq!(i["widgets"]["self_employed_widget"]["tax_reference"], "********2259", "the INN masked");
    assert!(!a.text.contains("500100732259"));
    // A day later it is no longer active.
    s.advance(86_400).await;
    let a = info(&s, &json!({"type": "public_token", "public_token": {"token": token}})).await;
    assert_eq!(a.body["info"]["is_active"], false);

    // Another project cannot see it.
    let other = json!({"type": "public_token", "public_token": {"token": token}}).to_string().into_bytes();
    let a = s.call_bytes("v1", "token/info", "beta", common::key(1), other, None).await;
    assert_eq!((a.status, fields(&a)), (400, vec!["public_token.token".to_string()]), "{}", a.text);
    s.stop().await;
}

#[tokio::test]
async fn bad_token_requests_are_named() {
    let (s, _r) = server(SettingsChange::default()).await;
    let refused = |a: &common::Answer| (a.status, fields(a));
    assert_eq!(refused(&s.call("v1", "token", &json!({})).await), (400, vec!["tokenize_widget".into()]));
    let a = s.call("v1", "token", &json!({"acquiring_widget": {"session_id": "ps_0"}})).await;
    assert_eq!(refused(&a), (400, vec!["acquiring_widget.session_id".into()]), "{}", a.text);
    // A session made for a payout, or without what the form does not ask (the
    // amount, the customer), waits for no payment form.
    let payout = json!({"amount_details": {"amount": 100, "currency": "rub"}, "customer": {"reference": "u1"},
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}}});
    for create in [payout, json!({"amount_details": {"amount": 100, "currency": "rub"}})] {
        let session = s.call("v1", "session/create", &create).await;
        let a = s.call("v1", "token", &json!({"acquiring_widget": {"session_id": id_of(&session)}})).await;
        assert_eq!(refused(&a), (400, vec!["acquiring_widget.session_id".into()]), "{}", a.text);
    }
    let a = s.call("v1", "token", &json!({"self_employed_widget": {"tax_reference": "500100732250"}})).await;
    assert_eq!(refused(&a), (400, vec!["self_employed_widget.tax_reference".into()]), "{}", a.text);
    let a = s.call("v1", "token", &json!({"tokenize_widget": {"access": true, "colour": "red"}})).await;
    assert_eq!(refused(&a), (400, vec!["tokenize_widget.colour".into()]), "{}", a.text);

    // token/info: the type, the token and an unknown card named.
    let a =
        info(&s, &json!({"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": "x"}}}))
            .await;
    assert_eq!(refused(&a), (400, vec!["card.encrypted_card.number_hash".into()]), "{}", a.text);
    assert_eq!(refused(&info(&s, &json!({"type": "wallet"})).await), (400, vec!["type".into()]));
    let a = info(&s, &json!({"type": "public_token", "public_token": {"token": "", "x": 1}})).await;
    assert_eq!(refused(&a), (400, vec!["public_token.x".into()]), "{}", a.text);
    let a = info(&s, &json!({"type": "recurrent_token", "recurrent_token": {"token": "rt_0"}})).await;
    assert_eq!(refused(&a), (400, vec!["recurrent_token.token".into()]), "{}", a.text);
    s.stop().await;
}

/// `token/info` of a recurrent token answers what `recurrent/status` does.
#[tokio::test]
async fn token_info_of_a_recurrent_token() {
    let auto = SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() };
    let (s, _r) = server(auto).await;
    let pay = json!({"payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
            "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "customer": {"reference": "r"},
        "payment_options": {"recurrent": true}});
    let id = id_of(&s.call("v1", "session/init/payment", &pay).await);
    s.settle().await;
    s.advance(1).await;
    let session = common::status(&s, "v1", &id).await;
    let token = session["acquiring_payments"][0]["recurrent"]["token"].as_str().unwrap().to_string();
    let a = info(&s, &json!({"type": "recurrent_token", "recurrent_token": {"token": token}})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        (a.body["info"]["type"].as_str(), a.body["info"]["is_active"].as_bool()),
        (Some("recurrent_token"), Some(true))
    );
    assert_eq!(a.body["info"]["token"], token.as_str());
    s.stop().await;
}

fn vault_card(number: &str) -> Value {
    json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": number,
        "expiration_month": "12", "expiration_year": "30"}}})
}

/// A card put in the vault is named by a stable `number_hash` that means
/// nothing to another project; a payout to it runs as to the card itself;
/// the database keeps no card number in clear.
#[tokio::test]
async fn the_vault_keeps_cards_sealed_and_payouts_reach_them_by_number_hash() {
    let (s, r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let number = "2200000000000004";
    let a = s.call("v1", "tokenize/elements", &vault_card(number)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let i = &a.body["info"];
    assert_eq!(
        (i["type"].as_str(), i["brand"].as_str(), i["last4"].as_str(), i["bin"].as_str()),
        (Some("card"), Some("mir"), Some("0004"), Some("220000"))
    );
    let hash = i["number_hash"].as_str().unwrap().to_string();
    assert_eq!(
        s.call("v1", "tokenize/elements", &vault_card(number)).await.body["info"]["number_hash"],
        hash.as_str(),
        "stable"
    );
    let beta = s
        .call_bytes(
            "v1",
            "tokenize/elements",
            "beta",
            common::key(1),
            vault_card(number).to_string().into_bytes(),
            None,
        )
        .await;
    assert_ne!(beta.body["info"]["number_hash"], hash.as_str(), "another project's name for the same card");
    assert!(!a.text.contains(number));

    let a = s
        .call(
            "v1",
            "token/info",
            &json!({"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": hash}}}),
        )
        .await;
    assert_eq!((a.status, a.body["info"]["last4"].as_str()), (200, Some("0004")), "{}", a.text);

    // A payout to the vault's card (v2 names the method payout_details).
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let payout = json!({"payout_details": {"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": hash}}},
        "amount_details": {"amount": 10_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    let a = s.call("v2", "session/init/payout", &payout).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id = id_of(&a);
    assert_eq!(
        a.body["session"]["payout_list"][0]["payout_details"]["card"],
        json!({"brand": "mir", "last4": "0004", "bin": "220000"})
    );
    s.settle().await;
    s.advance(2).await;
    assert_eq!(common::status(&s, "v2", &id).await["status"], "accepted");
    assert!(r.types_for(&id).contains(&"payment_finished".to_string()));
    // Another project's hash (or none) is named where it was sent; so are the fields the vault does not serve.
    let mut theirs = payout.clone();
    theirs["payout_details"]["card"]["encrypted_card"]["number_hash"] = beta.body["info"]["number_hash"].clone();
    let a = s.call("v2", "session/init/payout", &theirs).await;
    assert_eq!(
        (a.status, fields(&a)),
        (400, vec!["payout_details.card.encrypted_card.number_hash".to_string()]),
        "{}",
        a.text
    );
    theirs["payout_details"]["card"]["encrypted_card"]["security_code_hash"] = json!("x");
    let a = s.call("v2", "session/init/payout", &theirs).await;
    assert_eq!(fields(&a), ["payout_details.card.encrypted_card.security_code_hash"], "{}", a.text);
    // A reference outside the method's own place (metadata) is left as sent: never opened.
    let mut smuggled = payout.clone();
    smuggled["metadata"] = json!({"x": {"type": "encrypted_card", "encrypted_card": {"number_hash": hash}}});
    let a = s.call("v2", "session/init/payout", &smuggled).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains(number), "metadata is not opened: {}", a.text);
    assert_eq!(a.body["session"]["payout_list"][0]["metadata"]["x"]["encrypted_card"]["number_hash"], hash.as_str());
    // Fields beside encrypted_card are refused, not dropped.
    let mut beside = payout.clone();
    beside["payout_details"]["card"]["bank_card"] = json!({"number": "4242424242424242"});
    let a = s.call("v2", "session/init/payout", &beside).await;
    assert_eq!(fields(&a), ["payout_details.card.bank_card"], "{}", a.text);
    // A multi-session's payout reaches the vault's card too.
    let multi = json!({"payment_details_multi": [{"type": "card", "card": {"type": "bank_card", "bank_card": {
            "number": "4242424242424242", "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}}],
        "payout_details_multi": [payout["payout_details"].clone()],
        "amount_details": {"amount": 5_000, "currency": "rub"}, "customer": {"reference": "c"},
        "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    let a = s.call("v2", "session/multi/init", &multi).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains(number));

    // The security code and the holder's name are never kept; a bad number is named.
    let mut with_code = vault_card(number);
    with_code["card"]["bank_card"]["security_code"] = json!("123");
    assert_eq!(fields(&s.call("v1", "tokenize/elements", &with_code).await), ["card.bank_card.security_code"]);
    let mut with_name = vault_card(number);
    with_name["card"]["bank_card"]["cardholder_name"] = json!("IVAN IVANOV");
    assert_eq!(fields(&s.call("v1", "tokenize/elements", &with_name).await), ["card.bank_card.cardholder_name"]);
    assert_eq!(
        fields(&s.call("v1", "tokenize/elements", &vault_card("4242424242424241")).await),
        ["card.bank_card.number"]
    );

    // Nothing on disk holds the number in clear (SQLite's files; PostgreSQL keeps its own).
    let mut seen = 0;
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        seen += bytes.len();
        assert!(!bytes.windows(number.len()).any(|w| w == number.as_bytes()), "a clear card number on disk");
    }
    assert!(seen > 0);
    s.stop().await;
}

/// A bank account put in the vault (`tokenize`) is named by a token a
/// payout's `bank_account.ru.token` uses instead of `bik` and `account`.
#[tokio::test]
async fn payouts_reach_a_vault_account_by_its_token() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let account = "40817810400003869535";
    let body = json!({"type": "bank_account_ru", "bank_account_ru": {"bik": "044525974", "account": account}});
    let a = s.call("v1", "tokenize", &body).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let token = a.body["token"].as_str().unwrap().to_string();
    assert_eq!(a.body["data"]["masked_account"], "40817***********9535", "{}", a.text);
    assert!(!a.text.contains(account));
    assert_eq!(s.call("v1", "tokenize", &body).await.body["token"], token.as_str(), "stable");
    let mut bad = body.clone();
    bad["bank_account_ru"]["account"] = json!("40817810400003869536");
    assert_eq!(fields(&s.call("v1", "tokenize", &bad).await), ["bank_account_ru.account"]);

    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let payout = |ru: Value| {
        json!({"payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": ru}},
            "amount_details": {"amount": 10_000, "currency": "rub"},
            "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}}})
    };
    let ru = json!({"token": token, "full_name": "Ivanov Ivan Ivanovich", "description": "Payout under contract 1"});
    let a = s.call("v1", "session/init/payout", &payout(ru.clone())).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let shown = &a.body["session"]["payments"][0]["payment_method"]["bank_account"]["ru"];
    assert_eq!(
        (shown["bik"].as_str(), shown["account"].as_str()),
        (Some("044525974"), Some("40817***********9535")),
        "{shown}"
    );
    let id = id_of(&a);
    s.settle().await;
    s.advance(2).await;
    assert_eq!(common::status(&s, "v1", &id).await["status"], "accepted");
    // Both the token and the account, or an unknown token, are named.
    let mut both = ru.clone();
    both["bik"] = json!("044525974");
    let a = s.call("v1", "session/init/payout", &payout(both)).await;
    assert_eq!(fields(&a), ["payment_method.bank_account.ru.token"], "{}", a.text);
    let mut unknown = ru;
    unknown["token"] = json!("0".repeat(64));
    let a = s.call("v1", "session/init/payout", &payout(unknown)).await;
    assert_eq!(fields(&a), ["payment_method.bank_account.ru.token"], "{}", a.text);
    for entry in std::fs::read_dir(s.dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
        assert!(!bytes.windows(account.len()).any(|w| w == account.as_bytes()), "a clear account number on disk");
    }
    s.stop().await;
}

/// A vault card past its expiry is named at its hash; tokenized again with
/// its new expiry (a reissued card keeps its number), it pays out again.
#[tokio::test]
async fn an_expired_vault_card_is_named_and_a_reissue_renews_it() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let mut card = vault_card("2200000000000004");
    card["card"]["bank_card"]["expiration_month"] = json!("11");
    card["card"]["bank_card"]["expiration_year"] = json!("26");
    let hash = s.call("v1", "tokenize/elements", &card).await.body["info"]["number_hash"].as_str().unwrap().to_string();
    let payout = json!({"payment_method": {"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": hash}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    s.advance(2 * 86_400).await;
    let a = s.call("v1", "session/init/payout", &payout).await;
    assert_eq!(fields(&a), ["payment_method.card.encrypted_card.number_hash"], "{}", a.text);
    card["card"]["bank_card"]["expiration_year"] = json!("29");
    assert_eq!(s.call("v1", "tokenize/elements", &card).await.body["info"]["number_hash"], hash.as_str());
    assert_eq!(s.call("v1", "session/init/payout", &payout).await.status, 200);
    s.stop().await;
}

/// A payment by a vault card (`tokenized_card.token`, its number_hash) runs
/// as a card payment without the security code (the widget took it).
#[tokio::test]
async fn a_payment_by_a_tokenized_card_pays_with_the_vaults_card() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let number = "4242424242424242";
    let hash = s.call("v1", "tokenize/elements", &vault_card(number)).await.body["info"]["number_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let pay = |token: &str| {
        json!({"payment_details": {"type": "card", "card": {"type": "tokenized_card", "tokenized_card": {"token": token}}},
            "amount_details": {"amount": 3_000, "currency": "rub"}, "customer": {"reference": "r"}})
    };
    let a = s.call("v2", "session/init/payment", &pay(&hash)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.text.contains(number));
    let id = id_of(&a);
    s.settle().await;
    s.advance(1).await;
    let p = &common::status(&s, "v2", &id).await["payment_list"][0];
    assert_eq!(
        (p["status"].as_str(), p["payment_details"]["card"]["last4"].as_str()),
        (Some("succeeded"), Some("4242")),
        "{p}"
    );
    let a = s.call("v2", "session/init/payment", &pay(&"0".repeat(64))).await;
    assert_eq!(fields(&a), ["payment_details.card.tokenized_card.token"], "{}", a.text);
    // A vault card without its expiry cannot pay.
    let no_expiry = json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "5555555555554444"}}});
    let bare =
        s.call("v1", "tokenize/elements", &no_expiry).await.body["info"]["number_hash"].as_str().unwrap().to_string();
    let a = s.call("v2", "session/init/payment", &pay(&bare)).await;
    assert_eq!(fields(&a), ["payment_details.card.tokenized_card.token"], "{}", a.text);
    let mut with_code = pay(&hash);
    with_code["payment_details"]["card"]["tokenized_card"]["security_code"] = json!("123");
    let a = s.call("v2", "session/init/payment", &with_code).await;
    assert_eq!(fields(&a), ["payment_details.card.tokenized_card.security_code"], "{}", a.text);
    s.stop().await;
}

/// Rotating the vault's keys seals every item again under a new key; the
/// names (hashes, tokens) do not change, and a running server opens the
/// items sealed under the key it had not read yet.
#[tokio::test]
async fn rotating_the_keys_keeps_every_card_and_account_usable() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    s.app.store.topup("alpha", "rub", 100_000, common::START).await.unwrap();
    let hash = s.call("v1", "tokenize/elements", &vault_card("2200000000000004")).await.body["info"]["number_hash"]
        .as_str()
        .unwrap()
        .to_string();
    let account =
        json!({"type": "bank_account_ru", "bank_account_ru": {"bik": "044525974", "account": "40817810400003869535"}});
    let token = s.call("v1", "tokenize", &account).await.body["token"].as_str().unwrap().to_string();
    let before = s.app.store.vault_card("alpha", &hash).await.unwrap().unwrap().key_id;

    let dir = open131_store::layout::DataDir::new(s.dir.path());
    // Nodes sharing a database: the key staged first (it opens, seals nothing), then promoted.
    let staged = open131_server::vault::Vault::stage_key(&dir).unwrap();
    assert_eq!(staged.current_key_id(), before, "a staged key seals nothing yet");
    let vault = open131_server::vault::Vault::rotate(&dir, false).unwrap();
    assert_ne!(vault.current_key_id(), before);
    assert_eq!(open131_server::vault::reseal_all(s.app.store.as_ref(), &vault).await.unwrap(), 2);
    assert!(s.app.store.sealed_items(vault.current_key_id(), 10).await.unwrap().is_empty(), "all moved");
    assert_eq!(s.app.store.vault_card("alpha", &hash).await.unwrap().unwrap().key_id, vault.current_key_id());

    // The same names; the running server reads the new file: new seals use the new key.
    assert_eq!(
        s.call("v1", "tokenize/elements", &vault_card("2200000000000004")).await.body["info"]["number_hash"],
        hash.as_str()
    );
    assert_eq!(s.app.store.vault_card("alpha", &hash).await.unwrap().unwrap().key_id, vault.current_key_id());
    let card = json!({"payment_method": {"type": "card", "card": {"type": "encrypted_card", "encrypted_card": {"number_hash": hash}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    assert_eq!(s.call("v1", "session/init/payout", &card).await.status, 200);
    let ru = json!({"payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"token": token,
            "full_name": "Ivanov Ivan Ivanovich", "description": "Payout under contract 1"}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}}});
    assert_eq!(s.call("v1", "session/init/payout", &ru).await.status, 200);
    s.stop().await;
}

/// The tokenization widget's page, as a browser without JavaScript uses it:
/// a labelled form, an inline message beside a wrong field, the card saved
/// in the project's vault once, the token used up.
#[tokio::test]
async fn the_tokenization_page_saves_a_card_once() {
    let (s, _r) = server(SettingsChange::default()).await;
    let token = s.call("v1", "token", &json!({"tokenize_widget": {"access": true}})).await.body["public_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/widget/tokenize/{token}", s.url);
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{url}?locale=en&origin=http://shop.example:8080")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    for shown in [
        "autocomplete=\"cc-number\"",
        "autocomplete=\"cc-exp\"",
        "<label for=\"number\">Card number",
        "value=\"http://shop.example:8080\"",
    ] {
        assert!(html.contains(shown), "{shown} in {html}");
    }
    assert!(!html.contains("https://") && !html.contains("src=\"http"), "no external asset: {html}");

    let form = |number: &str, expiry: &str| {
        [
            ("number", number.to_string()),
            ("expiry", expiry.to_string()),
            ("origin", "http://shop.example:8080".into()),
            ("locale", "en".into()),
        ]
    };
    let bad = http.post(&url).form(&form("4242 4242 4242 4241", "13/30")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.unwrap();
    assert!(html.contains("id=\"number-error\"") && html.contains("id=\"expiry-error\""), "{html}");
    assert!(!html.contains("4242 4242 4242 4241") && !html.contains("4242424242424241"), "the number is not echoed");

    let good = http.post(&url).form(&form("2200 0000 0000 0004", "12/30")).send().await.unwrap();
    assert_eq!(good.status(), 200);
    let html = good.text().await.unwrap();
    assert!(html.contains("Card saved") && html.contains("•••• 0004"), "{html}");
    assert!(!html.contains("2200000000000004"));
    let hash = html.split("data-number-hash=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let card = s.app.store.vault_card("alpha", &hash).await.unwrap().unwrap();
    assert_eq!((card.last4.as_str(), card.brand.as_str()), ("0004", "mir"));

    // Used up: the page says so, and token/info shows it used.
    let again = http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 410);
    assert!(again.text().await.unwrap().contains("использована"), "Russian by default");
    let twice = http.post(&url).form(&form("2200 0000 0000 0004", "12/30")).send().await.unwrap();
    assert_eq!(twice.status(), 410);
    let i = info(&s, &json!({"type": "public_token", "public_token": {"token": token}})).await;
    assert_eq!((i.body["info"]["is_active"].as_bool(), i.body["info"]["used_at"].is_string()), (Some(false), true));

    // The language the token was issued with, unless the page is asked for another.
    let english = s.call("v1", "token", &json!({"tokenize_widget": {"access": true, "locale": "en"}})).await;
    let english = english.body["public_token"].as_str().unwrap().to_string();
    let page = http.get(format!("{}/widget/tokenize/{english}", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Your card") && page.contains("lang=\"en\""), "{page}");
    let page =
        http.get(format!("{}/widget/tokenize/{english}?locale=ru", s.url)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Ваша карта"), "{page}");

    // A token for another widget, or none, opens no tokenization page.
    let created = s.call("v1", "session/create", &for_form(100)).await;
    let other = s.call("v1", "token", &json!({"acquiring_widget": {"session_id": id_of(&created)}})).await;
    let other = other.body["public_token"].as_str().unwrap().to_string();
    assert_eq!(http.get(format!("{}/widget/tokenize/{other}", s.url)).send().await.unwrap().status(), 410);
    assert_eq!(http.get(format!("{}/widget/tokenize/nothing", s.url)).send().await.unwrap().status(), 410);
    let lib = http.get(format!("{}/widget/open131.js", s.url)).send().await.unwrap();
    assert_eq!(lib.headers()["content-type"], "text/javascript; charset=utf-8");
    assert!(lib.text().await.unwrap().contains("tokenizeWidget"));
    s.stop().await;
}

/// The tokenization widget's bank-account variant: the BIK and the account,
/// checked together; saved in the vault under a token a payout uses.
#[tokio::test]
async fn the_tokenization_page_saves_a_bank_account() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let token = s.call("v1", "token", &json!({"tokenize_widget": {"access": true, "locale": "en"}})).await.body
        ["public_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/widget/tokenize/{token}", s.url);
    let http = reqwest::Client::new();
    let html = http.get(format!("{url}?method=bank_account")).send().await.unwrap().text().await.unwrap();
    assert!(
        html.contains("<label for=\"bik\"")
            && html.contains("<label for=\"account\"")
            && html.contains("Your bank account"),
        "{html}"
    );
    let form = |bik: &'static str, account: &'static str| {
        [("bik", bik), ("account", account), ("method", "bank_account"), ("origin", ""), ("locale", "en")]
    };
    let bad = http.post(&url).form(&form("044525974", "40817810400003869536")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.unwrap();
    assert!(html.contains("id=\"account-error\"") && !html.contains("id=\"bik-error\""), "{html}");
    let good = http.post(&url).form(&form("044525974", "40817810400003869535")).send().await.unwrap();
    assert_eq!(good.status(), 200);
    let html = good.text().await.unwrap();
    assert!(html.contains("Account saved") && html.contains("40817***********9535"), "{html}");
    assert!(!html.contains("40817810400003869535"), "the account is not shown whole");
    let saved = html.split("data-token=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(s.app.store.vault_account("alpha", &saved).await.unwrap().is_some());
    assert_eq!(http.get(&url).send().await.unwrap().status(), 410, "used");

    s.app.store.topup("alpha", "rub", 10_000, common::START).await.unwrap();
    let payout = json!({"payment_method": {"type": "bank_account", "bank_account": {"system_type": "ru", "ru": {"token": saved,
            "full_name": "Ivanov Ivan Ivanovich", "description": "Payout under contract 1"}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}}});
    assert_eq!(s.call("v1", "session/init/payout", &payout).await.status, 200);
    s.stop().await;
}

/// Two customers' browsers submitting one widget at once: the token serves
/// once, so one card is saved through it and the other gets the used page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_token_serves_once_under_concurrent_submissions() {
    let (s, _r) = server(SettingsChange::default()).await;
    let token = s.call("v1", "token", &json!({"tokenize_widget": {"access": true}})).await.body["public_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/widget/tokenize/{token}", s.url);
    let numbers = ["4242424242424242", "5555555555554444", "2200000000000004", "4000000000003220"];
    let mut tries = tokio::task::JoinSet::new();
    for number in numbers {
        let (http, url) = (reqwest::Client::new(), url.clone());
        tries.spawn(async move {
            let form = [("number", number), ("expiry", "12/30"), ("origin", ""), ("locale", "en")];
            http.post(url).form(&form).send().await.unwrap().status().as_u16()
        });
    }
    let mut statuses = tries.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 410, 410, 410], "one wins");
    s.stop().await;
}

/// A project that lists the sites allowed to show its widgets: the page says
/// so (`frame-ancestors`) and refuses any other site's origin.
#[tokio::test]
async fn a_project_may_name_the_sites_that_show_its_widgets() {
    let listed = open131_domain::settings::NameSet::parse("http://shop.example:8080").unwrap();
    let (s, _r) = server(SettingsChange { widget_origins: Some(listed), ..SettingsChange::default() }).await;
    let token = s.call("v1", "token", &json!({"tokenize_widget": {"access": true}})).await.body["public_token"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("{}/widget/tokenize/{token}", s.url);
    let http = reqwest::Client::new();
    let ours = http.get(format!("{url}?origin=http://shop.example:8080")).send().await.unwrap();
    assert_eq!(ours.status(), 200);
    let csp = ours.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("frame-ancestors http://shop.example:8080") && !csp.contains("frame-ancestors *"), "{csp}");
    let theirs = http.get(format!("{url}?origin=http://evil.example")).send().await.unwrap();
    assert_eq!(theirs.status(), 403);
    let html = theirs.text().await.unwrap();
    assert!(!html.contains("data-origin=\"http://evil.example\"") && !html.contains("<form"), "{html}");
    let none = http.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 403, "no origin named: not shown");
    let form =
        [("number", "4242424242424242"), ("expiry", "12/30"), ("origin", "http://evil.example"), ("locale", "en")];
    assert_eq!(http.post(&url).form(&form).send().await.unwrap().status(), 403, "nor saved for another site");
    s.stop().await;
}

/// A `session/create` body the payment form can pay: the amount and the customer.
fn for_form(amount: i64) -> Value {
    json!({"amount_details": {"amount": amount, "currency": "rub"}, "customer": {"reference": "buyer-1"},
        "metadata": {"order": "F-1"}})
}

/// A payment form token for a new session of `amount` (the shop's return URLs
/// and the "save the card" box asked for): the session and the form's URL.
async fn payment_form(s: &common::TestServer, amount: i64) -> (String, String) {
    let session = id_of(&s.call("v2", "session/create", &for_form(amount)).await);
    let body = json!({"acquiring_widget": {"session_id": session, "success_return_url": "https://shop.example/ok",
        "failure_return_url": "https://shop.example/fail", "show_recurrent_checkbox": true}});
    let token = s.call("v1", "token", &body).await.body["public_token"].as_str().unwrap().to_string();
    (session, format!("{}/widget/pay/{token}", s.url))
}

fn card_form(number: &str, expiry: &str, cvc: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut form: Vec<(String, String)> = [("number", number), ("expiry", expiry), ("cvc", cvc), ("locale", "en")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    form.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    form
}

/// Follows the status page (303s within the server) until it leaves the
/// server or stops moving; the last location and page.
async fn follow(s: &common::TestServer, http: &reqwest::Client, mut url: String) -> (u16, String, String) {
    for _ in 0..10 {
        let answer = http.get(&url).send().await.unwrap();
        let status = answer.status().as_u16();
        match answer.headers().get("location").map(|l| l.to_str().unwrap().to_string()) {
            Some(next) if status == 303 && next.starts_with('/') => url = format!("{}{next}", s.url),
            Some(next) if status == 303 && next.starts_with(&s.url) => url = next,
            Some(next) => return (status, next, String::new()),
            None => return (status, url, answer.text().await.unwrap()),
        }
    }
    panic!("the status page kept redirecting");
}

/// The payment form over HTTP: the amount shown, bad card fields named beside
/// them (nothing started), a good card paid with what session/create kept and
/// the card saved when asked, the customer sent to the shop's success URL;
/// the token used up.
#[tokio::test]
async fn the_payment_form_pays_a_created_session() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (session, url) = payment_form(&s, 10_000).await;
    let page = http.get(format!("{url}?locale=en")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for shown in ["100.00 RUB", "cc-number", "cc-exp", "cc-csc", "cc-name", "name=\"save\"", "<label for=\"cvc\""] {
        assert!(html.contains(shown), "{shown} in {html}");
    }
    let bad = http.post(&url).form(&card_form("4242 4242 4242 4241", "12/30", "1", &[])).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.unwrap();
    assert!(html.contains("id=\"number-error\"") && html.contains("id=\"cvc-error\""), "{html}");
    assert!(!html.contains("id=\"expiry-error\""), "{html}");
    assert!(!html.contains("4242424242424241") && !html.contains("4242 4242 4242 4241"), "not echoed: {html}");
    let a = s.call("v2", "session/status", &json!({"session_id": session})).await;
    assert_eq!(a.body["session"]["status"], "created", "nothing started: {}", a.text);

    let good = card_form("4242 4242 4242 4242", "12/30", "123", &[("holder", "IVAN IVANOV"), ("save", "yes")]);
    let paid = http.post(&url).form(&good).send().await.unwrap();
    assert_eq!(paid.status(), 303);
    let status_url = paid.headers()["location"].to_str().unwrap().to_string();
    assert!(status_url.starts_with(&format!("{url}/status")), "{status_url}");
    let (code, _, html) = follow(&s, &http, status_url.clone()).await;
    assert_eq!(code, 200, "the bank is still working");
    assert!(html.contains("id=\"working\""), "{html}");
    s.settle().await;
    s.advance(1).await;
    let (code, location, _) = follow(&s, &http, status_url).await;
    assert_eq!((code, location.as_str()), (303, "https://shop.example/ok"));
    let a = s.call("v2", "session/status", &json!({"session_id": session})).await;
    let p = &a.body["session"]["payment_list"][0];
    assert_eq!(
        (p["status"].as_str(), p["amount_details"]["amount"].as_i64()),
        (Some("succeeded"), Some(10_000)),
        "{p}"
    );
    assert_eq!(p["customer"]["reference"], "buyer-1");
    assert!(p["recurrent"]["token"].is_string(), "the card was saved: {p}");
    // The token served once: the form's address, and a card sent to it again,
    // now show where the payment stands; nothing else starts.
    let again = http.post(&url).form(&good).send().await.unwrap();
    assert_eq!(again.status(), 303);
    assert!(again.headers()["location"].to_str().unwrap().contains("/status"));
    assert_eq!(follow(&s, &http, url).await.1, "https://shop.example/ok");
    let a = s.call("v2", "session/status", &json!({"session_id": session})).await;
    assert_eq!(a.body["session"]["payment_list"].as_array().unwrap().len(), 1);
    s.stop().await;
}

/// A 3-D Secure card goes through the 3-D Secure page and back; a declined
/// one ends at the failure URL; framed by a partner's page the end is told to
/// the library instead; a session started meanwhile cannot be paid here.
#[tokio::test]
async fn the_payment_form_runs_three_ds_and_ends_where_the_token_says() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (session, url) = payment_form(&s, 10_000).await;
    let paid = http.post(&url).form(&card_form("4000000000003220", "12/30", "123", &[])).send().await.unwrap();
    let status_url = paid.headers()["location"].to_str().unwrap().to_string();
    s.settle().await;
    let (code, three_ds, _) = follow(&s, &http, status_url.clone()).await;
    // The 3-D Secure page is the server's own: `follow` stops on its form.
    assert_eq!(code, 200);
    assert!(three_ds.contains(&format!("/3ds/alpha/{session}")), "{three_ds}");
    let back = http.post(&three_ds).form(&[("action", "confirm"), ("code", "131131")]).send().await.unwrap();
    assert_eq!(back.status(), 303);
    assert_eq!(back.headers()["location"].to_str().unwrap(), status_url, "3-D Secure returns to the form");
    s.settle().await;
    s.advance(1).await;
    assert_eq!(follow(&s, &http, status_url).await.1, "https://shop.example/ok");

    // Declined by the issuer: the failure URL.
    let (_, url) = payment_form(&s, 13_202).await;
    let paid = http.post(&url).form(&card_form("4242424242424242", "12/30", "123", &[])).send().await.unwrap();
    let status_url = paid.headers()["location"].to_str().unwrap().to_string();
    s.settle().await;
    s.advance(1).await;
    assert_eq!(follow(&s, &http, status_url).await.1, "https://shop.example/fail");

    // Framed: the page tells the library, and does not move the frame away.
    let (session, url) = payment_form(&s, 5_000).await;
    let framed = card_form("4242424242424242", "12/30", "123", &[("origin", "http://shop.example:8080")]);
    let paid = http.post(&url).form(&framed).send().await.unwrap();
    let status_url = paid.headers()["location"].to_str().unwrap().to_string();
    assert!(status_url.contains("origin=http%3A%2F%2Fshop.example%3A8080"), "{status_url}");
    s.settle().await;
    s.advance(1).await;
    let (code, _, html) = follow(&s, &http, status_url).await;
    assert_eq!(code, 200);
    assert!(html.contains("data-status=\"succeeded\"") && html.contains(&session), "{html}");

    // Started over the API meanwhile: the form cannot pay it.
    let (session, url) = payment_form(&s, 5_000).await;
    let start = json!({"session_id": session, "payment_details": {"type": "card", "card": {"type": "bank_card",
        "bank_card": {"number": "4242424242424242", "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}}});
    assert_eq!(s.call("v2", "session/start/payment", &start).await.status, 200);
    assert_eq!(http.get(&url).send().await.unwrap().status(), 409);
    let refused = http.post(&url).form(&card_form("4242424242424242", "12/30", "123", &[])).send().await.unwrap();
    assert_eq!(refused.status(), 409);
    s.stop().await;
}

/// The linking widget over HTTP: the request sent with the token (used up
/// once), the sandbox's stand-in for the tax service's app declining, the
/// request sent again and confirmed; the INN never shown whole; another
/// project's link to the same person is its own.
#[tokio::test]
async fn the_linking_widget_sends_the_request_and_follows_the_tax_services_answer() {
    let (s, _r) = server(SettingsChange::default()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let body = json!({"self_employed_widget": {"tax_reference": "500100732259"}});
    let token = s.call("v1", "token", &body).await.body["public_token"].as_str().unwrap().to_string();
    let url = format!("{}/widget/self-employed/{token}", s.url);
    let state = |html: &str| html.split("data-state=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let page = http.get(format!("{url}?locale=en")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert_eq!(state(&html), "not_requested");
    assert!(html.contains("********2259") && !html.contains("500100732259"), "{html}");
    assert!(html.contains("value=\"request\"") && !html.contains("value=\"confirm\""), "{html}");
    let press = |action: &str| [("action", action.to_string()), ("locale", "en".to_string())];
    // The app cannot answer a request not sent.
    let early = http.post(&url).form(&press("confirm")).send().await.unwrap();
    assert_eq!(early.status(), 303);
    assert_eq!(s.app.store.npd_link("alpha", "500100732259").await.unwrap(), None);

    let sent = http.post(&url).form(&press("request")).send().await.unwrap();
    assert_eq!(sent.status(), 303);
    let html = http.get(format!("{url}?locale=en")).send().await.unwrap();
    assert_eq!(html.headers()["refresh"], "5", "it looks again while the person answers in the app");
    let html = html.text().await.unwrap();
    assert_eq!(state(&html), "requested");
    assert!(html.contains("value=\"confirm\"") && html.contains("value=\"decline\""), "{html}");
    assert!(html.contains("id=\"refresh\"") && html.contains("Refresh the request"), "{html}");
    let i = info(&s, &json!({"type": "public_token", "public_token": {"token": token}})).await;
    assert_eq!(i.body["info"]["is_active"], false, "the request used the token");

    http.post(&url).form(&press("decline")).send().await.unwrap();
    let html = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(state(&html), "declined");
    assert!(html.contains("Отправить запрос снова"), "Russian by default: {html}");
    http.post(&url).form(&press("request")).send().await.unwrap();
    http.post(&url).form(&press("confirm")).send().await.unwrap();
    let html = http.get(&url).send().await.unwrap().text().await.unwrap();
    assert_eq!(state(&html), "linked");
    let link = s.app.store.npd_link("alpha", "500100732259").await.unwrap().unwrap();
    assert_eq!((link.state, link.version), (open131_domain::npd_link::LinkState::Linked, 4));
    // Linked: a further press changes nothing.
    http.post(&url).form(&press("decline")).send().await.unwrap();
    http.post(&url).form(&press("request")).send().await.unwrap();
    assert_eq!(s.app.store.npd_link("alpha", "500100732259").await.unwrap().unwrap().version, 4);

    // Another project's widget for the same person starts from nothing.
    let other = s.call_bytes("v1", "token", "beta", common::key(1), body.to_string().into_bytes(), None).await;
    let other = other.body["public_token"].as_str().unwrap().to_string();
    let html = http.get(format!("{}/widget/self-employed/{other}", s.url)).send().await.unwrap();
    assert_eq!(state(&html.text().await.unwrap()), "not_requested");
    // An unknown token, or one for another widget, opens nothing.
    assert_eq!(http.get(format!("{}/widget/self-employed/nothing", s.url)).send().await.unwrap().status(), 410);
    let tokenize = s.call("v1", "token", &json!({"tokenize_widget": {"access": true}})).await;
    let tokenize = tokenize.body["public_token"].as_str().unwrap().to_string();
    let wrong = http.get(format!("{}/widget/self-employed/{tokenize}", s.url)).send().await.unwrap();
    assert_eq!(wrong.status(), 410);
    s.stop().await;
}

/// A second press of Pay (the first already started the payment) lands on
/// the payment's status, not on a dead end; the box left unticked saves no
/// card even when session/create asked for it; a project that names its
/// sites keeps the status page to them too.
#[tokio::test]
async fn the_payment_form_takes_a_second_press_and_keeps_to_the_projects_sites() {
    let (s, _r) = server(SettingsChange { auto_confirm: Some(true), ..SettingsChange::default() }).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut create = for_form(8_000);
    create["payment_options"] = json!({"recurrent": true});
    let session = id_of(&s.call("v2", "session/create", &create).await);
    let body = json!({"acquiring_widget": {"session_id": session, "success_return_url": "https://shop.example/ok",
        "show_recurrent_checkbox": true}});
    let token = s.call("v1", "token", &body).await.body["public_token"].as_str().unwrap().to_string();
    let url = format!("{}/widget/pay/{token}", s.url);
    let card = card_form("4242424242424242", "12/30", "123", &[]);
    let first = http.post(&url).form(&card).send().await.unwrap();
    let second = http.post(&url).form(&card).send().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (303, 303));
    let to = second.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with(&format!("/widget/pay/{token}/status")), "{to}");
    s.settle().await;
    s.advance(1).await;
    assert_eq!(follow(&s, &http, format!("{}{to}", s.url)).await.1, "https://shop.example/ok");
    let a = s.call("v2", "session/status", &json!({"session_id": session})).await;
    let p = &a.body["session"]["payment_list"][0];
    assert_eq!(p["status"], "succeeded", "{p}");
    assert!(p.get("recurrent").is_none_or(|r| r["token"].is_null()), "the box was left unticked: {p}");

    // The project names its sites: the status page keeps to them as the form does.
    let sites = open131_domain::settings::NameSet::parse("http://shop.example:8080").unwrap();
    s.set_settings("alpha", SettingsChange { widget_origins: Some(sites), ..SettingsChange::default() }).await;
    let status = format!("{}/widget/pay/{token}/status", s.url);
    let elsewhere = http.get(format!("{status}?origin=http://evil.example")).send().await.unwrap();
    assert_eq!(elsewhere.status(), 403);
    let listed = http.get(format!("{status}?origin=http://shop.example:8080")).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    assert!(listed.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors http://shop.example:8080"));
    assert!(listed.text().await.unwrap().contains("data-status=\"succeeded\""));
    // A day on, the token is gone with its pages.
    s.advance(86_400).await;
    assert_eq!(http.get(format!("{status}?origin=http://shop.example:8080")).send().await.unwrap().status(), 410);
    s.stop().await;
}
