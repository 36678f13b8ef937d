//! Helpers of the binary's tests: a deployment (a data directory, and a fresh
//! PostgreSQL database when `OPEN131_TEST_BACKEND=postgres`), `open131 serve`
//! on port 0, and the CLI against the same deployment.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read};

use open131_wire::sign::SigningKey;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_open131");

/// Where one deployment keeps its data: a data directory, plus the database
/// URL of its PostgreSQL database when the tests run on PostgreSQL.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub database_url: Option<String>,
}

impl Site {
    /// A new deployment on the backend `OPEN131_TEST_BACKEND` selects.
    pub async fn new() -> Self {
        let database_url = match std::env::var("OPEN131_TEST_BACKEND").as_deref() {
            Ok("postgres") => {
                let admin = open131_store::testing::postgres_admin_url()
                    .expect("OPEN131_TEST_BACKEND=postgres needs OPEN131_TEST_POSTGRES (scripts/test sets it)");
                Some(open131_store::testing::fresh_database(&admin).await.unwrap())
            }
            _ => None,
        };
        Self { dir: tempfile::tempdir().unwrap(), database_url }
    }

    /// Another node of the same deployment: its own data directory, the same database.
    pub fn node(&self) -> Self {
        Self { dir: tempfile::tempdir().unwrap(), database_url: self.database_url.clone() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.is_some()
    }

    /// `open131` with this site's data directory and database.
    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.path()).env_remove("OPEN131_DATABASE_URL");
        if let Some(url) = &self.database_url {
            c.env("OPEN131_DATABASE_URL", url);
        }
        c
    }
}

pub struct Server {
    pub child: Child,
    pub url: String,
    /// Where `--metrics-listen` serves the figures, when asked for.
    pub metrics_url: Option<String>,
    /// Everything the server logged so far, read by a thread so that the
    /// server never blocks on a full pipe.
    log: std::sync::Arc<std::sync::Mutex<String>>,
    log_reader: Option<std::thread::JoinHandle<()>>,
}

/// Starts `open131 serve` on port 0 and reads the address it prints.
pub fn serve(site: &Site, kyc_delay: &str) -> Server {
    serve_with(site, &["--kyc-delay", kyc_delay])
}

/// Starts `open131 serve` on port 0 with more arguments.
pub fn serve_with(site: &Site, args: &[&str]) -> Server {
    let mut child = site
        .command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("OPEN131_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    let metrics_url = args.contains(&"--metrics-listen").then(|| loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(at) = line.strip_prefix("metrics (no token): ") {
            break at.to_string();
        }
    });
    // Keep draining stdout and stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let log_reader = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    Server { child, url, metrics_url, log, log_reader: Some(log_reader) }
}

/// What this suite's requests carry that no log line may: the people's
/// names, INN and card number, and (`person(i)`) passports 28052xxxxx.
pub const PERSONAL_NAMES: &[&str] = &["Кузнецова", "Мария"];
pub const PERSONAL_NUMBERS: &[&str] = &["500100732259", "4242424242424242"];

/// Fails when `log` carries personal data, naming the line. Numbers count
/// as whole runs of digits (a random id may hold the same digits inside).
pub fn assert_no_personal_data(log: &str) {
    for line in log.lines() {
        let names = PERSONAL_NAMES.iter().find(|m| line.contains(**m)).copied();
        let numbers = line
            .split(|c: char| !c.is_ascii_digit())
            .find(|run| PERSONAL_NUMBERS.contains(run) || (run.len() == 10 && run.starts_with("28052")));
        if let Some(found) = names.or(numbers) {
            panic!("personal data {found:?} in a log line: {line}");
        }
    }
}

/// A failing assertion must not leave a server running; a server's whole
/// log (debug level) is checked for personal data when it ends.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            assert_no_personal_data(&self.stderr());
        }
    }
}

impl Server {
    /// What the server logged; call after it exited to have all of it.
    pub fn stderr(&mut self) -> String {
        if let Some(reader) = self.log_reader.take() {
            reader.join().unwrap();
        }
        self.log.lock().unwrap().clone()
    }

    /// Stops it at once, as a crash would (SIGKILL).
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

/// Runs the CLI on `site`: (success, stdout, stderr).
pub fn cli(site: &Site, args: &[&str]) -> (bool, String, String) {
    let out = site.command().args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Bodies and signatures a receiver got.
pub type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A partner endpoint in a thread: answers `status` to every POST and records
/// the bodies; `0` never answers (each request is held open: a delivery in flight).
pub fn webhook_receiver(status: u16) -> (String, Seen) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut sign) = (0usize, String::new());
            let mut line = String::new();
            let mut complete = false;
            while reader.read_line(&mut line).is_ok() && !line.is_empty() {
                if line == "\r\n" {
                    complete = true;
                    break;
                }
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
            // A sender killed mid-request (the crash tests) leaves a cut-off request: not a delivery.
            if !complete || reader.read_exact(&mut body).is_err() {
                continue;
            }
            log.lock().unwrap().push((String::from_utf8(body).unwrap(), sign));
            if status == 0 {
                held.push(stream);
                continue;
            }
            let _ = write!(stream, "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, seen)
}

pub async fn signed(http: &reqwest::Client, url: &str, method: &str, key: &SigningKey, body: &Value) -> Value {
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

/// A signed main-API call as project `demo`, with an idempotency key if given;
/// `None` when no answer came (the node is down) or it was not JSON.
pub async fn signed_as(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    key: &SigningKey,
    body: &Value,
    idempotency: Option<&str>,
) -> Option<Value> {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut request = http
        .post(format!("{url}/api/v1/{method}"))
        .header("x-partner-project", "demo")
        .header("x-partner-sign", key.sign_base64(&bytes).unwrap());
    if let Some(k) = idempotency {
        request = request.header("x-partner-idempotency-key", k);
    }
    request.body(bytes).send().await.ok()?.json().await.ok()
}

/// A person who passes the sandbox check; `i` makes the passport and contract distinct.
pub fn person(i: usize) -> Value {
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

/// Waits until `done` holds (checked every 10 ms, at most `ticks` times):
/// the one wait of these tests, for what a real-time server does by itself.
pub async fn wait_until(mut done: impl FnMut() -> bool, ticks: usize) {
    for _ in 0..ticks {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The demo project's private key, as the first start wrote it.
pub fn demo_key(site: &Site) -> SigningKey {
    SigningKey::from_pem(&std::fs::read_to_string(site.path().join("demo.key.pem")).unwrap()).unwrap()
}

/// A payout of 10.00 RUB to a card, as the process tests send it.
pub fn card_payout() -> Value {
    json!({
        "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "4242424242424242"}}},
        "participant_details": {"recipient": {"full_name": "Ivanov Ivan"}},
        "amount_details": {"amount": 1000, "currency": "rub"}
    })
}
