//! Test harness: the real server on 127.0.0.1:0 over a fresh store (SQLite in
//! a temporary data directory, or a fresh PostgreSQL database when
//! `OPEN131_TEST_BACKEND=postgres`), a manual clock, and partners with their
//! own RSA keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod faulty;

use std::sync::{Arc, OnceLock};

use open131_server::{App, Config, ManualClock};
use open131_store::Store;
use open131_wire::sign::SigningKey;
use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

pub const START: OffsetDateTime = datetime!(2026-11-30 12:00 UTC);

/// Keys are slow to generate; each test binary makes its few once.
pub fn key(n: usize) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &KEYS.get_or_init(|| (0..5).map(|_| SigningKey::generate().unwrap()).collect())[n]
}

/// The bank key of every test server in this binary.
pub fn bank_key() -> &'static SigningKey {
    key(4)
}

pub trait CloneKey {
    fn clone_key(&self) -> SigningKey;
}

impl CloneKey for SigningKey {
    fn clone_key(&self) -> SigningKey {
        SigningKey::from_pem(&self.to_pkcs8_pem().unwrap()).unwrap()
    }
}

pub struct TestServer {
    pub url: String,
    pub app: App,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

/// Every log line of this test binary's servers, at debug level: the
/// personal-data invariant is checked over the logs of the whole suite.
struct Logs {
    bytes: std::sync::Mutex<Vec<u8>>,
    /// How far [`assert_no_personal_data_logged`] has read.
    checked: std::sync::Mutex<usize>,
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| Logs { bytes: Default::default(), checked: Default::default() })
}

struct LogSink;

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        logs().bytes.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes this binary's logs into memory (once; JSON lines, as
/// `--log-format json` writes them).
fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new("info,open131_server=debug,open131_store=debug");
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LogSink).json().try_init();
    });
}

/// What the fixtures send that no log line may carry: card numbers, the
/// person's passport, INN and names, a CVC-bearing field.
pub const PERSONAL_DATA: &[&str] = &[
    "4242424242424242",
    "2200000000000004",
    "4000000000003220",
    "5555555555554444",
    "2200000000004940",
    "4510123456",
    "500100732259",
    "Петров",
    "Сергеевич",
    "ivan@example.ru",
    "+79001234567",
];

/// Fails when a log line written since the last look carries personal data.
pub fn assert_no_personal_data_logged() {
    let bytes = logs().bytes.lock().unwrap_or_else(|p| p.into_inner());
    let mut checked = logs().checked.lock().unwrap_or_else(|p| p.into_inner());
    // Back up by the longest marker: one may straddle the last look's end.
    let from = checked.saturating_sub(64).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[from..]);
    for line in text.lines() {
        // Numbers count as whole runs of digits (a random id may hold the same digits inside).
        let number = line.split(|c: char| !c.is_ascii_digit()).find(|run| PERSONAL_DATA.contains(run));
        let word = PERSONAL_DATA
            .iter()
            .find(|m| !m.starts_with(|c: char| c.is_ascii_digit() || c == '+') && line.contains(**m));
        let phone = PERSONAL_DATA.iter().find(|m| m.starts_with('+') && line.contains(**m));
        if let Some(found) = number.or(word.copied()).or(phone.copied()) {
            panic!("personal data {found:?} in a log line: {line}");
        }
    }
    *checked = bytes.len();
}

pub async fn start() -> TestServer {
    start_with(|_| {}, |store| store).await
}

/// Starts a server; `configure` adjusts the config, `wrap` may wrap the store.
pub async fn start_with(
    configure: impl FnOnce(&mut Config),
    wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
) -> TestServer {
    capture_logs();
    let dir = tempfile::tempdir().unwrap();
    // The operator's `open131 keys vault-init` (nodes on PostgreSQL are given the file).
    open131_server::vault::Vault::open_or_create(&open131_store::layout::DataDir::new(dir.path()), true).unwrap();
    let mut config = Config::new(dir.path().to_path_buf());
    config.background_workers = false;
    configure(&mut config);
    let store = wrap(test_store(dir.path()).await);
    let clock = Arc::new(ManualClock::new(START));
    let app = App::new(config, store, clock.clone(), bank_key().clone_key());
    add_project(&app, "alpha", &[key(0)]).await;
    add_project(&app, "beta", &[key(1)]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(open131_server::run(listener, app.clone(), async {
        let _ = stopped.await;
    }));
    TestServer { url, app, clock, dir, http: reqwest::Client::new(), stop: Some(stop), task: Some(task) }
}

/// A fresh store on the backend `OPEN131_TEST_BACKEND` selects (SQLite by default).
pub async fn test_store(dir: &std::path::Path) -> Arc<dyn Store> {
    let location = match std::env::var("OPEN131_TEST_BACKEND").as_deref() {
        Ok("postgres") => {
            let admin = open131_store::testing::postgres_admin_url()
                .expect("OPEN131_TEST_BACKEND=postgres needs OPEN131_TEST_POSTGRES (scripts/test sets it)");
            let url = open131_store::testing::fresh_database(&admin).await.unwrap();
            open131_store::Location::choose(Some(&url), dir).unwrap()
        }
        _ => open131_store::Location::choose(None, dir).unwrap(),
    };
    open131_store::open(&location).await.unwrap()
}

/// Registers a project the way `open131 project add` does: straight into the store.
pub async fn add_project(app: &App, id: &str, keys: &[&SigningKey]) {
    app.store.create_project(id, START).await.unwrap();
    for k in keys {
        let public = k.verifying_key().unwrap();
        app.store.add_project_key(id, &public.fingerprint(), public.spki_der(), START).await.unwrap();
    }
}

/// Each server's end (and each test's) looks through the logs written since.
impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_no_personal_data_logged();
        }
    }
}

impl TestServer {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Sends raw bytes as the body of `POST /api/v1.1/check`.
    pub async fn post_raw(&self, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> (u16, String) {
        let mut request = self.http.post(format!("{}/api/v1.1/check", self.url)).body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// A correctly signed check of `payload` by `project` with `key`.
    pub async fn post_check(&self, project: &str, key: &SigningKey, payload: &Value) -> (u16, String) {
        let body = open131_client::signed_check_body(payload, key).unwrap();
        self.post_raw(&[("X-PARTNER-PROJECT", project), ("Content-Type", "application/json")], body).await
    }

    pub async fn get_check(&self, project: &str, id: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}/api/v1.1/check/{id}", self.url))
            .header("X-PARTNER-PROJECT", project)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Moves time past the KYC delay and runs the verifier once.
    pub async fn verify_all(&self) -> usize {
        self.clock.advance(time::Duration::seconds(3));
        self.app.verify_due().await.unwrap()
    }
}

/// A person who passes verification. Tests change one field at a time.
pub fn person() -> Value {
    json!({
        "first_name": "Петров", "last_name": "Иван", "patronymic": "Сергеевич",
        "birthday": "15.06.1990", "birthplace": "г. Москва", "inn": "500100732259",
        "identity_document": "Паспорт гражданина РФ", "passport_number": "4510123456",
        "issuer": "ОВД Хамовники", "issuer_code": "770-001", "issuer_date": "20.06.2010",
        "citizenship": "РФ", "postcode": "119021", "address": "г. Москва, ул. Льва Толстого, 16",
        "email": "ivan@example.ru", "phone_number": "+79001234567",
        "agent_contract_number": "A-17", "agent_contract_date": "10.01.2024",
        "beneficial_owners": "ВБ отсутствует", "public_officials": "Нет",
        "migration_card": "-", "right_to_stay_in_rf": "-"
    })
}

pub fn with(field: &str, value: Value) -> Value {
    let mut p = person();
    p[field] = value;
    p
}

pub fn without(field: &str) -> Value {
    let mut p = person();
    p.as_object_mut().unwrap().remove(field);
    p
}

/// A main-API answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl TestServer {
    /// POSTs exactly `bytes` to `/api/{version}/{method}`, signed by `key` for `project`.
    pub async fn call_bytes(
        &self,
        version: &str,
        method: &str,
        project: &str,
        key: &SigningKey,
        bytes: Vec<u8>,
        idempotency: Option<&str>,
    ) -> Answer {
        let headers: Vec<(&str, &str)> = idempotency.map(|k| ("x-partner-idempotency-key", k)).into_iter().collect();
        self.call_signed(version, method, project, key, bytes, &headers).await
    }

    /// Signed call of `alpha` with extra headers.
    pub async fn call_with(&self, version: &str, method: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        self.call_signed(version, method, "alpha", key(0), serde_json::to_vec(body).unwrap(), headers).await
    }

    async fn call_signed(
        &self,
        version: &str,
        method: &str,
        project: &str,
        key: &SigningKey,
        bytes: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let sign = key.sign_base64(&bytes).unwrap();
        let mut request = self
            .http
            .post(format!("{}/api/{version}/{method}", self.url))
            .header("x-partner-project", project)
            .header("x-partner-sign", sign)
            .header("content-type", "application/json")
            .body(bytes);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, text }
    }

    /// Signed call with a JSON body (compact serde_json bytes).
    pub async fn call(&self, version: &str, method: &str, body: &Value) -> Answer {
        self.call_bytes(version, method, "alpha", key(0), serde_json::to_vec(body).unwrap(), None).await
    }

    /// Runs timers and webhook deliveries until nothing is due (the clock stands still).
    pub async fn settle(&self) {
        for _ in 0..20 {
            let a = self.app.process_due().await.unwrap();
            let b = self.app.deliver_due().await.unwrap();
            if a == 0 && b == 0 {
                return;
            }
        }
        panic!("the server did not settle");
    }

    pub async fn advance(&self, seconds: i64) {
        self.clock.advance(time::Duration::seconds(seconds));
        self.settle().await;
    }

    pub async fn advance_ms(&self, ms: i64) {
        self.clock.advance(time::Duration::milliseconds(ms));
        self.settle().await;
    }

    /// Applies `change` to `project`'s settings, seen at once.
    pub async fn set_settings(&self, project: &str, change: open131_store::SettingsChange) {
        self.app.store.set_project_settings(project, change, START).await.unwrap();
        self.app.projects.forget(project);
    }

    pub async fn set_webhook(&self, project: &str, url: &str) {
        let change = open131_store::SettingsChange { webhook_url: Some(Some(url.to_string())), ..Default::default() };
        let now = open131_server::Clock::now(&*self.clock);
        self.app.store.set_project_settings(project, change, now).await.unwrap();
        self.app.projects.forget(project);
    }

    pub async fn balance(&self, project: &str) -> (i64, i64) {
        let w = self.app.store.wallets(project).await.unwrap();
        let rub = w.iter().find(|w| w.currency == "rub").unwrap();
        (rub.available, rub.reserved)
    }
}

/// One webhook as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    pub signature_ok: bool,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<Received>,
    /// Statuses to answer with before answering 200.
    script: std::collections::VecDeque<u16>,
}

/// A partner's webhook endpoint on 127.0.0.1:0. It verifies every signature
/// with the bank's public key over the raw bytes, as a partner must.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    state: Arc<std::sync::Mutex<ReceiverState>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(std::sync::Mutex::new(ReceiverState::default()));
        let public = bank_key().verifying_key().unwrap();
        let s = state.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (s, public) = (s.clone(), public.clone());
                async move {
                    let sign = headers.get("x-partner-sign").and_then(|v| v.to_str().ok()).unwrap_or("");
                    let signature_ok = public.verify_base64(&body, sign);
                    let mut st = s.lock().unwrap();
                    let status = st.script.pop_front().unwrap_or(200);
                    st.received
                        .push(Received { body: serde_json::from_slice(&body).unwrap_or(Value::Null), signature_ok });
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, state }
    }

    /// Answer these statuses to the next deliveries, then 200.
    pub fn fail_with(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses.iter().copied());
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Types of the webhooks received for `session`, in order.
    pub fn types_for(&self, session: &str) -> Vec<String> {
        self.received()
            .iter()
            .filter(|r| r.body["session"]["id"] == session)
            .map(|r| r.body["type"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The id of the session a 200 answer carries.
pub fn id_of(a: &Answer) -> String {
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["session"]["id"].as_str().unwrap().to_string()
}

/// The fields a 400 answer names, in its order.
pub fn fields(a: &Answer) -> Vec<String> {
    let details = a.body["error"]["details"].as_array().cloned().unwrap_or_default();
    details.iter().map(|d| d["field"].as_str().unwrap().to_string()).collect()
}

/// The session as `session/status` under `version` shows it.
pub async fn status(s: &TestServer, version: &str, id: &str) -> Value {
    let a = s.call(version, "session/status", &json!({"session_id": id})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["session"].clone()
}

/// A server whose project `alpha` has `change` applied and delivers its
/// webhooks to a fresh receiver.
pub async fn server(change: open131_store::SettingsChange) -> (TestServer, Receiver) {
    let s = start().await;
    let r = Receiver::start().await;
    s.set_webhook("alpha", &r.url).await;
    s.set_settings("alpha", change).await;
    (s, r)
}
