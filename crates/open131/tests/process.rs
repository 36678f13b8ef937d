//! The `open131` binary as a user runs it: first start, admin commands against
//! a running server, `kill -9` durability, restart, SIGTERM, and logs free of
//! personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{card_payout, cli, person, serve, serve_with, signed, wait_until, webhook_receiver, Site};

use open131_wire::sign::SigningKey;
use serde_json::{json, Value};

async fn post(http: &reqwest::Client, url: &str, project: &str, key: &SigningKey, payload: &Value) -> (u16, Value) {
    let body = open131_client::signed_check_body(payload, key).unwrap();
    let r = http
        .post(format!("{url}/api/v1.1/check"))
        .header("X-PARTNER-PROJECT", project)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get(http: &reqwest::Client, url: &str, project: &str, id: &str) -> Value {
    let r = http.get(format!("{url}/api/v1.1/check/{id}")).header("X-PARTNER-PROJECT", project).send().await.unwrap();
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_check_and_restart_finishes_them() {
    let site = Site::new().await;
    // Checks stay pending for an hour: the crash happens while they are unfinished.
    let mut server = serve(&site, "1h");
    let key = SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();

    // Fire requests concurrently; kill the server once 100 are acknowledged,
    // with the rest still in flight.
    let bodies: Vec<_> = (0..400).map(|i| open131_client::signed_check_body(&person(i), &key).unwrap()).collect();
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel::<String>();
    let url = server.url.clone();
    let mut tasks = Vec::new();
    for body in bodies {
        let (http, url, acks_tx) = (http.clone(), url.clone(), acks_tx.clone());
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(format!("{url}/api/v1.1/check"))
                .header("X-PARTNER-PROJECT", "demo")
                .body(body)
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            let id = v["data"]["id"].as_str()?.to_string();
            (v["status"] == "pending").then(|| acks_tx.send(id)).map(|_| ())
        }));
    }
    drop(acks_tx);
    let mut acked = Vec::new();
    while let Some(id) = acks.recv().await {
        acked.push(id);
        if acked.len() == 100 {
            server.child.kill().unwrap(); // SIGKILL on Unix
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    server.child.wait().unwrap();
    assert!(acked.len() >= 100, "too few checks acknowledged before the kill: {}", acked.len());

    // Restart with no delay: every acknowledged check is there and gets finished.
    let mut server = serve(&site, "0");
    for id in &acked {
        let mut v = get(&http, &server.url, "demo", id).await;
        for _ in 0..500 {
            if v["status"] != "pending" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            v = get(&http, &server.url, "demo", id).await;
        }
        assert_eq!(v, json!({"status": "ok", "data": {"id": id, "description": "valid"}}), "check {id}");
    }

    // SIGTERM stops the server cleanly.
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    let logs = server.stderr();
    assert!(logs.contains("shutdown requested"), "{logs}");
    for secret in ["2805200000", "500100732259", "Кузнецова", "Мария"] {
        assert!(!logs.contains(secret), "personal data {secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_client_commands_work_against_a_running_server() {
    let site = Site::new().await;
    let mut server = serve(&site, "0");
    let d = site.path();

    // A second server on the same SQLite data directory is refused (PostgreSQL
    // nodes share their database and take no lock).
    if !site.is_postgres() {
        let (ok, _, err) = cli(&site, &["serve", "--listen", "127.0.0.1:0"]);
        assert!(!ok && err.contains("already serving"), "{err}");
    }

    let private = d.join("partner.pem");
    let (ok, _, _) = cli(&site, &["keys", "generate", private.to_str().unwrap()]);
    assert!(ok);
    let public = format!("{}.pub", private.display());
    let (ok, out, err) = cli(&site, &["project", "add", "shop", "--public-key", &public]);
    assert!(ok, "{err}");
    assert!(out.contains("project shop added"));
    let (ok, _, err) = cli(&site, &["project", "add", "shop", "--public-key", &public]);
    assert!(!ok && err.contains("already exists"));
    let (ok, _, err) = cli(&site, &["project", "add", "bad id", "--public-key", &public]);
    assert!(!ok && err.contains("printable"));
    let (ok, _, err) = cli(&site, &["project", "add", "x", "--public-key", "/nonexistent.pem"]);
    assert!(!ok && err.contains("reading"));

    // Rotation: a second key, both verify.
    let second = d.join("second.pem");
    assert!(cli(&site, &["keys", "generate", second.to_str().unwrap()]).0);
    let (ok, out, _) =
        cli(&site, &["project", "add-key", "shop", "--public-key", &format!("{}.pub", second.display())]);
    assert!(ok && out.contains("added"));
    let (_, list, _) = cli(&site, &["project", "list"]);
    assert!(list.contains("demo\tkyc_mode=sandbox\tkeys=1"), "{list}");
    assert!(list.contains("shop\tkyc_mode=sandbox\tkeys=2"), "{list}");

    // `kyc check` / `kyc status` as a partner, against the running server (no restart).
    let person_file = d.join("person.json");
    std::fs::write(&person_file, person(1).to_string()).unwrap();
    let (ok, out, err) = cli(
        &site,
        &[
            "kyc",
            "check",
            "--project",
            "shop",
            "--key",
            private.to_str().unwrap(),
            "--url",
            &server.url,
            person_file.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "1");
    let http = reqwest::Client::new();
    let second_key = SigningKey::from_pem(&std::fs::read_to_string(&second).unwrap()).unwrap();
    let (status, v) = post(&http, &server.url, "shop", &second_key, &person(2)).await;
    assert_eq!((status, v["data"]["id"].as_str()), (200, Some("2")));

    let mut out = String::new();
    for _ in 0..500 {
        out = cli(&site, &["kyc", "status", "1", "--project", "shop", "--url", &server.url]).1;
        if !out.contains("pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(out.trim(), r#"HTTP 200 {"status":"ok","data":{"id":"1","description":"valid"}}"#);

    // `call`: the main API through the SDK, as the demo project with its key from the data directory.
    let body_file = d.join("payout.json");
    std::fs::write(&body_file, card_payout().to_string()).unwrap();
    let at = format!("@{}", body_file.display());
    let (ok, out, err) = cli(&site, &["call", "session/init/payout", &at, "--url", &server.url]);
    assert!(ok && out.starts_with("HTTP 200 "), "{out} {err}");
    let created: Value = serde_json::from_str(out.trim().trim_start_matches("HTTP 200 ")).unwrap();
    let id = created["session"]["id"].as_str().unwrap();
    let status = json!({"session_id": id}).to_string();
    let (ok, out, _) = cli(&site, &["call", "session/status", &status, "--url", &server.url, "--api", "v2"]);
    assert!(ok && out.contains(id) && out.contains("payout_list"), "v2 names: {out}");
    let (ok, out, err) = cli(&site, &["call", "session/status", "{}", "--url", &server.url]);
    assert!(!ok && out.starts_with("HTTP 400 ") && out.contains("session_id") && err.contains("refused"), "{out}");
    let (ok, _, err) = cli(&site, &["call", "session/status", "not json", "--url", &server.url]);
    assert!(!ok && err.contains("not JSON"), "{err}");

    // `reports`: a register and an act written from the data directory's ledger.
    let out = d.join("reports");
    let out_arg = out.to_str().unwrap();
    let (ok, printed, err) = cli(&site, &["reports", "payouts", "demo", "--date", "2026-01-01", "--out", out_arg]);
    assert!(ok, "{err}");
    assert_eq!(printed.trim(), format!("{}\t0 rows", out.join("demo_2026-01-01_2026-01-01.csv").display()));
    let header = std::fs::read_to_string(out.join("demo_2026-01-01_2026-01-01.csv")).unwrap();
    assert!(header.starts_with("operationId,transactionDate,") && header.lines().count() == 1, "{header}");
    let args = ["reports", "act", "demo", "--month", "2026-01", "--register", "payments", "--out", out_arg];
    let (ok, printed, err) = cli(&site, &args);
    assert!(ok && printed.trim().ends_with("demo_2026-01-01_2026-01-31_payments.pdf"), "{printed} {err}");
    assert!(std::fs::read(printed.trim()).unwrap().starts_with(b"%PDF-"));
    let (ok, _, err) = cli(&site, &["reports", "payments", "demo", "--date", "2026-1-1"]);
    assert!(!ok && err.contains("YYYY-MM-DD"), "{err}");
    let (ok, _, err) = cli(&site, &["reports", "payments", "nobody", "--date", "2026-01-01"]);
    assert!(!ok && err.contains("no project"), "{err}");
    let bad_mail =
        ["--reports-dir", out_arg, "--reports-smtp", "127.0.0.1:25", "--reports-mail", "demo=not an address"];
    let (ok, _, err) = cli(&site, &[&["serve", "--listen", "127.0.0.1:0"][..], &bad_mail[..]].concat());
    assert!(!ok && err.contains("demo's address"), "refused at start: {err}");

    // A second start reuses the demo project and key.
    let key_before = std::fs::read(d.join("demo.key.pem")).unwrap();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut again = serve(&site, "0");
    assert_eq!(std::fs::read(d.join("demo.key.pem")).unwrap(), key_before);
    let (_, list, _) = cli(&site, &["project", "list"]);
    assert_eq!(list.matches("demo\t").count(), 1);
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_webhook_and_retries_continue_after_restart() {
    let site = Site::new().await;
    let d = site.path();
    // The partner's endpoint is failing when the state changes.
    let (failing_url, failing_seen) = webhook_receiver(503);
    let mut server = serve(&site, "0");
    assert!(cli(&site, &["project", "set", "demo", "--webhook-url", &failing_url]).0);
    let key = SigningKey::from_pem(&std::fs::read_to_string(d.join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let body = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
        "amount_details": {"amount": 1000, "currency": "rub"}
    });
    let created = signed(&http, &server.url, "session/init/payout", &key, &body).await;
    let session = created["session"]["id"].as_str().unwrap().to_string();
    // Wait until the bank is ready (ready_to_confirm committed and attempted once).
    wait_until(|| !failing_seen.lock().unwrap().is_empty(), 500).await;
    assert_eq!(failing_seen.lock().unwrap().len(), 1, "one failed attempt before the crash");
    // Kill only once that failure is on record, so the retry after the restart is a second attempt.
    for _ in 0..500 {
        if cli(&site, &["webhooks", "list"]).1.contains("ready_to_confirm\tpending\t1\t503") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The endpoint recovers; the restarted server retries on its schedule (first retry ~5 s).
    let (url, seen) = webhook_receiver(200);
    assert!(cli(&site, &["project", "set", "demo", "--webhook-url", &url]).0);
    let mut server = serve(&site, "0");
    wait_until(|| !seen.lock().unwrap().is_empty(), 1500).await;
    let delivered = seen.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1, "the webhook committed before the crash is delivered after it");
    let (text, sign) = &delivered[0];
    let bank_public = cli(&site, &["keys", "bank-public"]).1;
    let bank = open131_wire::sign::VerifyingKey::from_pem(&bank_public).unwrap();
    assert!(bank.verify_base64(text.as_bytes(), sign), "signed with the bank key over the exact bytes");
    let webhook: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        (webhook["type"].as_str(), webhook["session"]["id"].as_str()),
        (Some("ready_to_confirm"), Some(session.as_str()))
    );

    let (ok, list, _) = cli(&site, &["webhooks", "list", "--attempts"]);
    assert!(ok);
    assert!(list.contains("ready_to_confirm\tdelivered\t2\t200"), "{list}");
    assert!(list.contains("HTTP 503") && list.contains("HTTP 200"), "{list}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_commands_feed_a_running_server_and_a_corrupt_index_stops_a_start() {
    let site = Site::new().await;
    let d = site.path();
    let csv = d.join("list.csv");
    let (ok, out, err) = cli(&site, &["registry", "synth", "--rows", "20000", "--seed", "7", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("malformed_rows"), "{out}");
    // A passport from the synthetic list, to check against.
    let listed = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .find_map(|l| {
            let (s, n) = l.split_once(',')?;
            (s.len() == 4 && n.len() == 6 && l.bytes().all(|b| b.is_ascii_digit() || b == b','))
                .then(|| format!("{s}{n}"))
        })
        .unwrap();
    let mut server = serve(&site, "0");
    let (ok, out, err) = cli(&site, &["registry", "import", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("20000 rows read"), "{out}");
    let tax = d.join("tax.csv");
    std::fs::write(&tax, format!("inn,passport_number\n500100732259,{listed}\n500100732259,2805200001\n")).unwrap();
    assert!(cli(&site, &["taxpayers", "import", tax.to_str().unwrap()]).0);
    assert!(cli(&site, &["project", "set", "demo", "--kyc-mode", "registry"]).0);
    let (_, info, _) = cli(&site, &["registry", "info"]);
    assert!(info.contains("passports:") && info.contains("taxpayers: 2 pairs"), "{info}");

    // The running server swaps the new indexes in by itself (it checks every second).
    let key = SigningKey::from_pem(&std::fs::read_to_string(d.join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let mut listed_person = person(1);
    listed_person["passport_number"] = json!(listed);
    listed_person["issuer_date"] = json!("10.03.2025");
    let (status, v) = post(&http, &server.url, "demo", &key, &listed_person).await;
    assert_eq!(status, 200, "{v}");
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let mut answer = Value::Null;
    for _ in 0..1000 {
        answer = get(&http, &server.url, "demo", &id).await;
        if answer["status"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(answer["error"]["code"], "passport_validation_failure", "{answer}");

    // An operator forces a pending check's outcome from the command line.
    let mut other = person(2);
    other["passport_number"] = json!("2805200001");
    std::fs::write(d.join("unused"), "").unwrap();
    assert!(cli(&site, &["project", "set", "demo", "--kyc-mode", "sandbox"]).0);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut server = serve(&site, "1h");
    let (_, v) = post(&http, &server.url, "demo", &key, &other).await;
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (ok, out, err) = cli(&site, &["kyc", "resolve", &id, "--project", "demo", "--as", "inn_mismatch"]);
    assert!(ok, "{err}");
    assert!(out.contains("inn_validation_failure"), "{out}");
    assert_eq!(get(&http, &server.url, "demo", &id).await["error"]["code"], "inn_validation_failure");
    let (ok, _, err) = cli(&site, &["kyc", "resolve", &id, "--project", "demo", "--as", "ok"]);
    assert!(!ok && err.contains("already final"), "{err}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // A corrupt index stops the next start with a clear message.
    let idx = d.join("registry").join("passports.idx");
    let mut bytes = std::fs::read(&idx).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&idx, bytes).unwrap();
    let out = site.command().args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start") && err.contains("passports index"), "{err}");
}

/// The session as `session/status` answers it, once `done` says it is there.
async fn status_until(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let body = json!({"session_id": id});
    ask_until(http, url, key, ("session/status", &body), |a| done(&a["session"])).await["session"].clone()
}

/// Asks `method` with `body` until `done` holds of the answer (the server's
/// timers run on real time); the answer.
async fn ask_until(
    http: &reqwest::Client,
    url: &str,
    key: &SigningKey,
    (method, body): (&str, &Value),
    done: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    for _ in 0..500 {
        last = signed(http, url, method, key, body).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{method} {body} never got there: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_chargeback_opens_the_banks_chargeback_against_a_running_server() {
    let site = Site::new().await;
    let server = serve_with(&site, &["--payout-delay", "0"]);
    let key = SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let card = json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242",
        "expiration_month": "12", "expiration_year": "30", "security_code": "123"}}});
    let body = json!({"payment_details": card, "amount_details": {"amount": 10_000, "currency": "rub"},
        "customer": {"reference": "lucky"}});
    let a = signed(&http, &server.url, "session/init/payment", &key, &body).await;
    let id = a["session"]["id"].as_str().unwrap_or_else(|| panic!("{a}")).to_string();
    // The demo project confirms its payments.
    status_until(&http, &server.url, &key, &id, |s| s["next_action"] == "confirm").await;
    let a = signed(&http, &server.url, "session/confirm", &key, &json!({"session_id": id})).await;
    assert_eq!(a["status"], "ok", "{a}");
    status_until(&http, &server.url, &key, &id, |s| s["status"] == "accepted").await;

    // The operator's command, beside the running server: the server settles it.
    let (ok, out, err) = cli(&site, &["payments", "chargeback", "demo", &id, "--amount", "4000"]);
    assert!(ok, "{err}");
    assert!(out.contains(" of 4000 opened on session ") && out.contains("rf_"), "{out}");
    let refunded = |s: &Value| s["acquiring_payments"][0]["refunds"][0]["status"] == "accepted";
    let session = status_until(&http, &server.url, &key, &id, refunded).await;
    let refund = &session["acquiring_payments"][0]["refunds"][0];
    assert_eq!(
        (refund["is_chargeback"].as_bool(), refund["amount_details"]["amount"].as_i64()),
        (Some(true), Some(4_000))
    );

    // More than is left, an unknown session: refused, nothing opened.
    let (ok, _, err) = cli(&site, &["payments", "chargeback", "demo", &id, "--amount", "6001"]);
    assert!(!ok && !err.is_empty(), "{err}");
    let (ok, _, err) = cli(&site, &["payments", "chargeback", "demo", "ps_nope"]);
    assert!(!ok && !err.is_empty(), "{err}");
    let session = status_until(&http, &server.url, &key, &id, |_| true).await;
    assert_eq!(session["acquiring_payments"][0]["refunds"].as_array().map(Vec::len), Some(1));
}

/// The card vault in a real server process: a card tokenized, paid out to
/// by its number_hash, the keys rotated by the CLI beside the running
/// server; the card number is in no file of the data directory and not in
/// the server's log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_keeps_card_numbers_out_of_files_and_logs() {
    let site = Site::new().await;
    // The operator's first step (on PostgreSQL a node is given its key file; SQLite would make one).
    let (ok, out, err) = cli(&site, &["keys", "vault-init"]);
    assert!(ok && out.contains("vault.key"), "{out}{err}");
    let mut server = serve_with(&site, &["--payout-delay", "0"]);
    let key = SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let number = "2200000000000004";
    let card = json!({"type": "card", "card": {"type": "bank_card", "bank_card": {"number": number,
        "expiration_month": "12", "expiration_year": "30"}}});
    let a = signed(&http, &server.url, "tokenize/elements", &key, &card).await;
    let hash = a["info"]["number_hash"].as_str().unwrap_or_else(|| panic!("{a}")).to_string();
    // Rotation as nodes sharing a database do it: a key staged, then promoted.
    let (ok, out, err) = cli(&site, &["keys", "vault-stage"]);
    assert!(ok && out.contains("staged"), "{out}{err}");
    let (ok, out, err) = cli(&site, &["keys", "vault-rotate"]);
    assert!(ok && out.contains("1 items sealed again"), "{out}{err}");
    let (ok, _, err) = cli(&site, &["wallet", "topup", "demo", "100000"]);
    assert!(ok, "{err}");
    let payout = json!({"payment_method": {"type": "card", "card": {"type": "encrypted_card",
            "encrypted_card": {"number_hash": hash}}},
        "amount_details": {"amount": 1_000, "currency": "rub"}, "participant_details": {"recipient": {"full_name": "Ivan Ivanov"}}});
    let a = signed(&http, &server.url, "session/init/payout", &key, &payout).await;
    assert_eq!(a["status"], "ok", "{a}");
    assert!(!a.to_string().contains(number));

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    server.child.wait().unwrap();
    assert!(!server.stderr().contains(number), "the card number in the log");
    for entry in std::fs::read_dir(site.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(number.len()).any(|w| w == number.as_bytes()), "the number in {}", path.display());
        }
    }
}

/// `open131 npd …` beside a running server: the operator's word on a person
/// shows in the next `npd/check`, and the tax service's app is acted for
/// (a confirm with no waiting request refused, a decline of a waiting one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn npd_commands_drive_the_tax_service_beside_a_running_server() {
    let site = Site::new().await;
    let server = serve_with(&site, &[]);
    let key = SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let inn = "500100732259";
    let (ok, out, err) = cli(&site, &["npd", "set", inn, "--status", "not_self_employed"]);
    assert!(ok && out.contains("********2259: not_self_employed"), "{out} {err}");
    let id = signed(&http, &server.url, "npd/check", &key, &json!({"tax_reference": inn})).await["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let asked = json!({"request_id": id});
    let answer =
        ask_until(&http, &server.url, &key, ("npd/request/status", &asked), |a| a["status"] != "pending").await;
    assert_eq!(answer["is_professional_income_taxpayer"], false, "{answer}");

    let (ok, _, err) = cli(&site, &["npd", "confirm-link", "demo", inn]);
    assert!(!ok && err.contains("does not take"), "nothing waits to be confirmed: {err}");
    let (ok, _, err) = cli(&site, &["npd", "set", "500100732258", "--status", "self_employed"]);
    assert!(!ok && err.contains("check digits"), "{err}");
    let (ok, _, err) = cli(&site, &["npd", "unlink", "nobody", inn]);
    assert!(!ok && !err.is_empty(), "{err}");
}

/// A server killed (SIGKILL) while a webhook's delivery is in flight, and
/// restarted at once: the webhook it had claimed is delivered in seconds,
/// not after its lease (600 s here), because the new process takes over
/// the dead one's leases (on SQLite at start; on PostgreSQL once the dead
/// instance's heartbeat is older than the bound).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_claimed_webhooks_are_delivered_soon_after_restart() {
    let site = Site::new().await;
    let (hanging_url, hanging_seen) = webhook_receiver(0);
    let mut server = serve_with(&site, &["--webhook-lease", "600s"]);
    assert!(cli(&site, &["project", "set", "demo", "--webhook-url", &hanging_url]).0);
    let key = SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let body = json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
        "amount_details": {"amount": 1000, "currency": "rub"}
    });
    let created = signed(&http, &server.url, "session/init/payout", &key, &body).await;
    assert_eq!(created["status"], "ok", "{created}");
    // The delivery of ready_to_confirm is in flight (the endpoint holds it): kill now.
    wait_until(|| !hanging_seen.lock().unwrap().is_empty(), 1000).await;
    assert_eq!(hanging_seen.lock().unwrap().len(), 1, "a delivery in flight before the crash");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let (url, seen) = webhook_receiver(200);
    assert!(cli(&site, &["project", "set", "demo", "--webhook-url", &url]).0);
    let mut server = serve_with(&site, &["--webhook-lease", "600s"]);
    // Far inside the 600 s lease: 60 s covers PostgreSQL's 10 s bound and a slow machine.
    wait_until(|| !seen.lock().unwrap().is_empty(), 6000).await;
    let delivered = seen.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1, "the claimed webhook is delivered after the restart, long before its lease ends");
    let webhook: Value = serde_json::from_str(&delivered[0].0).unwrap();
    assert_eq!(webhook["type"], "ready_to_confirm");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// The tax service's answer to `npd/check` of `inn` from a running server
/// (waiting out the request's pending while).
async fn npd_checked(http: &reqwest::Client, url: &str, key: &SigningKey, inn: &str) -> Value {
    let asked = signed(http, url, "npd/check", key, &json!({"tax_reference": inn})).await;
    let id = asked["request_id"].as_str().unwrap_or_else(|| panic!("{asked}")).to_string();
    ask_until(http, url, key, ("npd/request/status", &json!({"request_id": id})), |a| a["status"] != "pending").await
}

/// `open131 npd import` checks every row (a bad one fails the import, named
/// by its line, and changes nothing) and a running server answers from the
/// new register within a second or two, over the sandbox's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_npd_register_reaches_a_running_server() {
    let site = Site::new().await;
    let d = site.path();
    let server = serve(&site, "0");
    let key = SigningKey::from_pem(&std::fs::read_to_string(d.join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let before = npd_checked(&http, &server.url, &key, "500100732259").await;
    assert_eq!(
        (before["is_professional_income_taxpayer"].as_bool(), before["is_linked"].as_bool()),
        (Some(true), Some(false))
    );

    let bad = d.join("bad.csv");
    std::fs::write(
        &bad,
        "inn,status,linked,full_name,phone\n500100732259,self_employed,true,,\n500100732250,unknown,,,\n",
    )
    .unwrap();
    let (ok, _, err) = cli(&site, &["npd", "import", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("line 3") && err.contains("check digits"), "{err}");
    assert!(!d.join("registry").join("npd.idx").exists(), "nothing imported");

    let good = d.join("npd.csv");
    std::fs::write(
        &good,
        "inn,status,linked,full_name,phone\n500100732259,self_employed,true,Иванов Иван,\n770000000477,unknown,false,,\n",
    )
    .unwrap();
    let (ok, out, err) = cli(&site, &["npd", "import", good.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("npd: 2 people"), "{out}");
    let mut after = Value::Null;
    for _ in 0..5 {
        after = npd_checked(&http, &server.url, &key, "500100732259").await;
        if after["is_linked"] == true {
            break;
        }
    }
    assert_eq!(after["is_linked"], true, "the register's link: {after}");
    let unknown = npd_checked(&http, &server.url, &key, "770000000477").await;
    assert_eq!(unknown["error"]["code"], "taxpayer_unknown", "the register over the sandbox's rules: {unknown}");
    // The CLI acts on the register's link as the server does.
    let (ok, out, err) = cli(&site, &["npd", "unlink", "demo", "500100732259"]);
    assert!(ok && out.contains("not_requested"), "{out}{err}");
    let unlinked = npd_checked(&http, &server.url, &key, "500100732259").await;
    assert_eq!(unlinked["is_linked"], false, "{unlinked}");
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// `--log-format json`: every line of the log is one JSON object; a
/// request's lines carry its id, which its response also names; the
/// metrics listener answers without a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_the_response_names() {
    let site = Site::new().await;
    let mut server =
        serve_with(&site, &["--kyc-delay", "0", "--metrics-listen", "127.0.0.1:0", "--log-format", "json"]);
    let key = SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let body = open131_client::signed_check_body(&person(7), &key).unwrap();
    let r = http
        .post(format!("{}/api/v1.1/check", server.url))
        .header("X-PARTNER-PROJECT", "demo")
        .header("x-request-id", "chk-7")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "chk-7");
    assert_eq!(r.status().as_u16(), 200);
    let unsigned = http.post(format!("{}/api/v1/session/status", server.url)).body("{}").send().await.unwrap();
    let made = unsigned.headers()["x-request-id"].to_str().unwrap().to_string();

    let metrics = server.metrics_url.clone().expect("the server names its metrics address");
    let text = http.get(&metrics).send().await.unwrap().text().await.unwrap();
    assert!(
        text.contains(r#"open131_http_requests_total{surface="kyc",method="/api/v1.1/check",status="200"} 1"#),
        "{text}"
    );

    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let log = server.stderr();
    let lines: Vec<Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let of = |id: &str| lines.iter().filter(|l| l["span"]["request_id"] == id).count();
    assert!(of("chk-7") >= 1, "the check's lines carry its id: {log}");
    assert!(of(&made) >= 1, "a refused request's lines carry the id it was given: {log}");
    assert!(lines.iter().any(|l| l["fields"]["message"] == "serving"), "{log}");
}

/// `open131 webhooks faults` beside a running server: the server applies the
/// project's faults (here a duplicate of each delivery) and the delivery log
/// (`webhooks list --attempts`) says what was injected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_faults_set_from_the_cli_reach_a_running_server() {
    let site = Site::new().await;
    let (url, seen) = webhook_receiver(200);
    let server = serve(&site, "0");
    assert!(cli(&site, &["project", "set", "demo", "--webhook-url", &url]).0);
    let (ok, _, err) = cli(&site, &["webhooks", "faults", "demo", "--duplicate", "2"]);
    assert!(!ok && err.contains("duplicate must be a share from 0 to 1"), "{err}");
    let (ok, out, err) = cli(&site, &["webhooks", "faults", "demo", "--duplicate", "1", "--delay", "300ms"]);
    assert!(ok, "{err}");
    assert!(out.contains("webhook faults of demo: delay=300ms,duplicate=1"), "{out}");
    // The running server reads changed settings within a second.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let key = common::demo_key(&site);
    let created =
        signed(&reqwest::Client::new(), &server.url, "session/init/payout", &key, &common::card_payout()).await;
    assert_eq!(created["status"], "ok", "{created}");
    wait_until(|| seen.lock().unwrap().len() >= 2, 1_000).await;
    let bodies = seen.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2, "one webhook, sent twice");
    assert_eq!(bodies[0], bodies[1]);
    let mut list = String::new();
    for _ in 0..200 {
        list = cli(&site, &["webhooks", "list", "--attempts"]).1;
        if list.contains("[injected:") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(list.contains("[injected: delayed 300 ms; sent twice (the duplicate answered 200)]"), "{list}");
    assert!(cli(&site, &["webhooks", "faults", "demo"]).1.contains("webhook faults of demo: none"));
}

/// `open131 clock` beside a running server: a day on the project's clock
/// and its payout waiting for confirmation is cancelled by its timeout
/// within a second (the server reads the clock on its workers' next round).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_command_makes_a_running_servers_timeouts_fire() {
    let site = Site::new().await;
    let server = serve(&site, "0");
    let (key, http) = (common::demo_key(&site), reqwest::Client::new());
    let created = signed(&http, &server.url, "session/init/payout", &key, &common::card_payout()).await;
    let session = created["session"]["id"].as_str().unwrap().to_string();
    let status = || {
        let (http, url, key, session) = (http.clone(), server.url.clone(), &key, session.clone());
        async move {
            let v = signed(&http, &url, "session/status", key, &json!({"session_id": session})).await;
            v["session"]["status"].as_str().unwrap_or_default().to_string()
        }
    };
    assert_eq!(status().await, "in_progress");
    let (ok, out, err) = cli(&site, &["clock", "advance", "demo", "25h"]);
    assert!(ok, "{err}");
    assert!(out.contains("90000 s ahead of real time"), "{out}");
    let mut now = String::new();
    for _ in 0..300 {
        now = status().await;
        if now == "cancelled" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(now, "cancelled", "the confirmation timeout fired on the project's clock");
    let (ok, _, err) = cli(&site, &["clock", "set", "demo", "2020-01-01T00:00:00Z"]);
    assert!(!ok && err.contains("only moves forward"), "{err}");
    let (ok, out, _) = cli(&site, &["clock", "reset", "demo"]);
    assert!(ok && out.contains("(0 s ahead"), "{out}");
}
