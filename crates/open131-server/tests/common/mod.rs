//! Test harness: the real server on 127.0.0.1:0 over a fresh SQLite data
//! directory, a manual clock, and partners with their own RSA keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

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

trait CloneKey {
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

pub async fn start() -> TestServer {
    start_with(|_| {}, |store| store).await
}

/// Starts a server; `configure` adjusts the config, `wrap` may wrap the store.
pub async fn start_with(
    configure: impl FnOnce(&mut Config),
    wrap: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().to_path_buf());
    config.background_workers = false;
    configure(&mut config);
    let store = wrap(open131_server::open_sqlite(&config).unwrap());
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

/// Registers a project the way `open131 project add` does: straight into the store.
pub async fn add_project(app: &App, id: &str, keys: &[&SigningKey]) {
    app.store.create_project(id, START).await.unwrap();
    for k in keys {
        let public = k.verifying_key().unwrap();
        app.store.add_project_key(id, &public.fingerprint(), public.spki_der(), START).await.unwrap();
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
