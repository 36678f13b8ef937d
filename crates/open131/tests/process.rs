//! The `open131` binary as a user runs it: first start, admin commands against
//! a running server, `kill -9` durability, restart, SIGTERM, and logs free of
//! personal data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use open131_wire::sign::SigningKey;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_open131");

struct Server {
    child: Child,
    url: String,
}

/// Starts `open131 serve` on port 0 and reads the address it prints.
fn serve(dir: &Path, kyc_delay: &str) -> Server {
    let mut child = Command::new(BIN)
        .args(["--data-dir", dir.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0", "--kyc-delay", kyc_delay])
        .env("OPEN131_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

/// A failing assertion must not leave a server running.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn stderr(&mut self) -> String {
        let mut text = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut text).unwrap();
        text
    }
}

fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).arg("--data-dir").arg(dir).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn person(i: usize) -> Value {
    json!({
        "first_name": "Кузнецова", "last_name": "Мария", "birthday": "02.03.1985", "birthplace": "Тверь",
        "inn": "500100732259", "identity_document": "Паспорт гражданина РФ",
        "passport_number": format!("2805{:06}", 200_000 + i), "issuer": "УФМС", "issuer_code": "690-001",
        "issuer_date": "10.03.2005", "citizenship": "РФ", "postcode": "170000", "address": "Тверь",
        "email": "m@example.ru", "phone_number": "+79000000000", "agent_contract_number": format!("K-{i}"),
        "agent_contract_date": "01.02.2024", "beneficial_owners": "ВБ отсутствует", "public_officials": "Нет",
        "migration_card": "-", "right_to_stay_in_rf": "-"
    })
}

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
    let dir = tempfile::tempdir().unwrap();
    // Checks stay pending for an hour: the crash happens while they are unfinished.
    let mut server = serve(dir.path(), "1h");
    let key = SigningKey::from_pem(&std::fs::read_to_string(dir.path().join("demo.key.pem")).unwrap()).unwrap();
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
    let mut server = serve(dir.path(), "0");
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
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), "0");
    let d = dir.path();

    // A second server on the same data directory is refused.
    let (ok, _, err) = cli(d, &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!ok && err.contains("already serving"), "{err}");

    let private = d.join("partner.pem");
    let (ok, _, _) = cli(d, &["keys", "generate", private.to_str().unwrap()]);
    assert!(ok);
    let public = format!("{}.pub", private.display());
    let (ok, out, err) = cli(d, &["project", "add", "shop", "--public-key", &public]);
    assert!(ok, "{err}");
    assert!(out.contains("project shop added"));
    let (ok, _, err) = cli(d, &["project", "add", "shop", "--public-key", &public]);
    assert!(!ok && err.contains("already exists"));
    let (ok, _, err) = cli(d, &["project", "add", "bad id", "--public-key", &public]);
    assert!(!ok && err.contains("printable"));
    let (ok, _, err) = cli(d, &["project", "add", "x", "--public-key", "/nonexistent.pem"]);
    assert!(!ok && err.contains("reading"));

    // Rotation: a second key, both verify.
    let second = d.join("second.pem");
    assert!(cli(d, &["keys", "generate", second.to_str().unwrap()]).0);
    let (ok, out, _) = cli(d, &["project", "add-key", "shop", "--public-key", &format!("{}.pub", second.display())]);
    assert!(ok && out.contains("added"));
    let (_, list, _) = cli(d, &["project", "list"]);
    assert!(list.contains("demo\tkyc_mode=sandbox\tkeys=1"), "{list}");
    assert!(list.contains("shop\tkyc_mode=sandbox\tkeys=2"), "{list}");

    // `kyc check` / `kyc status` as a partner, against the running server (no restart).
    let person_file = d.join("person.json");
    std::fs::write(&person_file, person(1).to_string()).unwrap();
    let (ok, out, err) = cli(
        d,
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
        out = cli(d, &["kyc", "status", "1", "--project", "shop", "--url", &server.url]).1;
        if !out.contains("pending") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(out.trim(), r#"HTTP 200 {"status":"ok","data":{"id":"1","description":"valid"}}"#);

    // A second start reuses the demo project and key.
    let key_before = std::fs::read(d.join("demo.key.pem")).unwrap();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut again = serve(d, "0");
    assert_eq!(std::fs::read(d.join("demo.key.pem")).unwrap(), key_before);
    let (_, list, _) = cli(d, &["project", "list"]);
    assert_eq!(list.matches("demo\t").count(), 1);
    again.child.kill().unwrap();
    again.child.wait().unwrap();
}

/// Bodies and signatures a receiver got.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A partner endpoint in a thread: answers `status` to every POST and records the bodies.
fn webhook_receiver(status: u16) -> (String, Seen) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut sign) = (0usize, String::new());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok() && line != "\r\n" && !line.is_empty() {
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-partner-sign:") {
                    sign = line["x-partner-sign:".len()..].trim().to_string();
                }
                line.clear();
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push((String::from_utf8(body).unwrap(), sign));
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

async fn signed(http: &reqwest::Client, url: &str, method: &str, key: &SigningKey, body: &Value) -> Value {
    let bytes = serde_json::to_vec(body).unwrap();
    let r = http
        .post(format!("{url}/api/v1/{method}"))
        .header("x-partner-project", "demo")
        .header("x-partner-sign", key.sign_base64(&bytes).unwrap())
        .body(bytes)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_webhook_and_retries_continue_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The partner's endpoint is failing when the state changes.
    let (failing_url, failing_seen) = webhook_receiver(503);
    let mut server = serve(d, "0");
    assert!(cli(d, &["project", "set", "demo", "--webhook-url", &failing_url]).0);
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
    for _ in 0..500 {
        if !failing_seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(failing_seen.lock().unwrap().len(), 1, "one failed attempt before the crash");
    // Kill only once that failure is on record, so the retry after the restart is a second attempt.
    for _ in 0..500 {
        if cli(d, &["webhooks", "list"]).1.contains("ready_to_confirm\tpending\t1\t503") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // The endpoint recovers; the restarted server retries on its schedule (first retry ~5 s).
    let (url, seen) = webhook_receiver(200);
    assert!(cli(d, &["project", "set", "demo", "--webhook-url", &url]).0);
    let mut server = serve(d, "0");
    for _ in 0..1500 {
        if !seen.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let delivered = seen.lock().unwrap().clone();
    assert_eq!(delivered.len(), 1, "the webhook committed before the crash is delivered after it");
    let (text, sign) = &delivered[0];
    let bank_public = cli(d, &["keys", "bank-public"]).1;
    let bank = open131_wire::sign::VerifyingKey::from_pem(&bank_public).unwrap();
    assert!(bank.verify_base64(text.as_bytes(), sign), "signed with the bank key over the exact bytes");
    let webhook: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        (webhook["type"].as_str(), webhook["session"]["id"].as_str()),
        (Some("ready_to_confirm"), Some(session.as_str()))
    );

    let (ok, list, _) = cli(d, &["webhooks", "list", "--attempts"]);
    assert!(ok);
    assert!(list.contains("ready_to_confirm\tdelivered\t2\t200"), "{list}");
    assert!(list.contains("HTTP 503") && list.contains("HTTP 200"), "{list}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_commands_feed_a_running_server_and_a_corrupt_index_stops_a_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("list.csv");
    let (ok, out, err) = cli(d, &["registry", "synth", "--rows", "20000", "--seed", "7", csv.to_str().unwrap()]);
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
    let mut server = serve(d, "0");
    let (ok, out, err) = cli(d, &["registry", "import", csv.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.contains("20000 rows read"), "{out}");
    let tax = d.join("tax.csv");
    std::fs::write(&tax, format!("inn,passport_number\n500100732259,{listed}\n500100732259,2805200001\n")).unwrap();
    assert!(cli(d, &["taxpayers", "import", tax.to_str().unwrap()]).0);
    assert!(cli(d, &["project", "set", "demo", "--kyc-mode", "registry"]).0);
    let (_, info, _) = cli(d, &["registry", "info"]);
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
    assert!(cli(d, &["project", "set", "demo", "--kyc-mode", "sandbox"]).0);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let mut server = serve(d, "1h");
    let (_, v) = post(&http, &server.url, "demo", &key, &other).await;
    let id = v["data"]["id"].as_str().unwrap().to_string();
    let (ok, out, err) = cli(d, &["kyc", "resolve", &id, "--project", "demo", "--as", "inn_mismatch"]);
    assert!(ok, "{err}");
    assert!(out.contains("inn_validation_failure"), "{out}");
    assert_eq!(get(&http, &server.url, "demo", &id).await["error"]["code"], "inn_validation_failure");
    let (ok, _, err) = cli(d, &["kyc", "resolve", &id, "--project", "demo", "--as", "ok"]);
    assert!(!ok && err.contains("already final"), "{err}");
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    // A corrupt index stops the next start with a clear message.
    let idx = d.join("registry").join("passports.idx");
    let mut bytes = std::fs::read(&idx).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&idx, bytes).unwrap();
    let out = Command::new(BIN).arg("--data-dir").arg(d).args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to start") && err.contains("passports index"), "{err}");
}
