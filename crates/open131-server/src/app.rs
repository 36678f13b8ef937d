//! The application value shared by handlers and workers, and the router.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use open131_store::Store;
use open131_wire::sign::SigningKey;
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::config::Config;
use crate::projects::Projects;
use crate::registries::Registries;
use crate::verifier::{KycVerifier, Verifier};

/// Everything a request or a worker needs: one `Arc`, so a clone is one
/// reference count. Why: axum clones its state for every layer and handler
/// a request passes, and a struct of sixteen `Arc`s cost sixteen atomic
/// increments and decrements each time (about 3 % of `session/create`'s
/// CPU, `perf`). Fields read through `Deref`; a test that changes one
/// before serving (`app.admin_token = …`) goes through `DerefMut`, which
/// copies the parts only if they are already shared.
#[derive(Clone)]
pub struct App(Arc<AppParts>);

impl std::ops::Deref for App {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

impl std::ops::DerefMut for App {
    fn deref_mut(&mut self) -> &mut AppParts {
        Arc::make_mut(&mut self.0)
    }
}

/// What an [`App`] holds.
#[derive(Clone)]
pub struct AppParts {
    pub config: Arc<Config>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub projects: Arc<Projects>,
    pub verifier: Arc<dyn Verifier>,
    /// Woken when a check is accepted, so the verifier need not poll.
    pub verifier_wake: Arc<Notify>,
    /// Woken when a payout timer is set.
    pub processor_wake: Arc<Notify>,
    /// Woken when a webhook is enqueued.
    pub webhook_wake: Arc<Notify>,
    /// The bank's own key: signs webhooks.
    pub bank_key: Arc<SigningKey>,
    /// The MVD and taxpayer registries (hot-swapped).
    pub registries: Arc<Registries>,
    /// Bearer token of the admin endpoints (`None` disables them).
    pub admin_token: Option<Arc<str>>,
    pub http: reqwest::Client,
    /// `http://<address it listens on>`, set when it starts serving.
    pub local_url: Arc<std::sync::OnceLock<String>>,
    /// The card vault's keys, read (or, on SQLite, made) on first use.
    pub vault: Arc<crate::vault::VaultCell>,
    /// The figures `/metrics` serves.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The latest requests per project, for the inspector.
    pub request_log: Arc<crate::request_log::RequestLog>,
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>, bank_key: SigningKey) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(crate::webhooks::WEBHOOK_TIMEOUT_S))
            .pool_max_idle_per_host(crate::webhooks::WEBHOOK_CONCURRENCY_PER_PROJECT)
            .build()
            .unwrap_or_default();
        let registries = Arc::new(Registries::default());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let observer: Arc<dyn open131_store::CommitObserver> = metrics.clone();
        if !store.commits().set(observer) {
            tracing::debug!("the store's commits are already watched (a second App on one store)");
        }
        Self(Arc::new(AppParts {
            metrics,
            request_log: Arc::new(crate::request_log::RequestLog::new(config.request_log_entries_max)),
            processor_wake: Arc::new(Notify::new()),
            webhook_wake: Arc::new(Notify::new()),
            bank_key: Arc::new(bank_key),
            http,
            config: Arc::new(config),
            projects: Arc::new(Projects::new(store.clone())),
            store,
            clock,
            verifier: Arc::new(KycVerifier { registries: registries.clone() }),
            registries,
            admin_token: None,
            verifier_wake: Arc::new(Notify::new()),
            local_url: Arc::new(std::sync::OnceLock::new()),
            vault: Arc::new(crate::vault::VaultCell::default()),
        }))
    }

    /// `project`'s now: the real clock plus the project's offset (virtual
    /// time); the real now for a project that cannot be read.
    pub async fn now_for(&self, project: &str) -> time::OffsetDateTime {
        let real = self.clock.now();
        match self.projects.get(project).await {
            Ok(Some(p)) => p.settings.clock_offset.apply(real),
            _ => real,
        }
    }

    /// The projects on virtual time, for the workers' claims on their own
    /// clocks; none (logged) when they cannot be read, so a worker still
    /// serves every other project and never drops what it claimed.
    pub async fn clocked_projects(&self) -> Vec<(String, open131_domain::settings::ClockOffset)> {
        self.store.clocked_projects().await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not list the projects on virtual time; their work waits");
            Vec::new()
        })
    }

    /// The card vault. A data directory of its own (SQLite) makes its key
    /// file on first use; nodes sharing PostgreSQL must be given one.
    pub fn vault(&self) -> Result<Arc<crate::vault::Vault>, String> {
        let dir = open131_store::layout::DataDir::new(self.config.data_dir.clone());
        self.vault.get(&dir, self.store.backend() == open131_store::Backend::Sqlite)
    }

    /// Puts a card in `project`'s vault (sealed) and returns it as stored.
    pub async fn put_card(
        &self,
        project: &str,
        number: &open131_domain::ident::CardNumber,
        expiry: Option<open131_domain::ident::CardExpiry>,
    ) -> Result<open131_store::VaultCardRecord, String> {
        let vault = self.vault()?;
        let number_hash = vault.number_hash(project, number.expose());
        let sealed = vault.seal(project, &number_hash, number.expose()).map_err(|e| e.to_string())?;
        self.metrics.vault("seal");
        let card = open131_store::VaultCardRecord {
            project_id: project.to_string(),
            number_hash,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            brand: number.brand().as_str().to_string(),
            bin: number.bin().to_string(),
            last4: number.last4().to_string(),
            card_expiry: expiry,
            created_at: self.now_for(project).await,
        };
        self.store.put_card(card.clone()).await.map_err(|e| e.to_string())?;
        Ok(card)
    }

    /// Puts a Russian bank account in `project`'s vault (sealed) and returns it as stored.
    pub async fn put_account(
        &self,
        project: &str,
        bik: &open131_domain::ident::Bik,
        account: &open131_domain::ident::AccountNumber,
    ) -> Result<open131_store::VaultAccountRecord, String> {
        let vault = self.vault()?;
        // The BIK and account both name it (a prefix no card number has).
        let token = vault.number_hash(project, &format!("ru:{}:{}", bik.as_str(), account.expose()));
        let sealed = vault.seal(project, &token, account.expose()).map_err(|e| e.to_string())?;
        self.metrics.vault("seal");
        let record = open131_store::VaultAccountRecord {
            project_id: project.to_string(),
            token,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            bik: bik.as_str().to_string(),
            masked_account: account.masked(),
            created_at: self.now_for(project).await,
        };
        self.store.put_account(record.clone()).await.map_err(|e| e.to_string())?;
        Ok(record)
    }

    /// Opens an item the vault sealed for `project`'s `name`, reading the key
    /// file again once if it was sealed under a key this node has not read
    /// (the operator rotated the keys since).
    pub fn open_sealed(&self, project: &str, name: &str, sealed: &crate::vault::Sealed) -> Result<String, String> {
        self.metrics.vault("open");
        match self.vault()?.open(project, name, sealed) {
            Err(crate::vault::VaultError::UnknownKey(_)) => {
                let dir = open131_store::layout::DataDir::new(self.config.data_dir.clone());
                self.vault.reload(&dir)?.open(project, name, sealed).map_err(|e| e.to_string())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }

    /// Where customers' browsers reach this server (pages it links to):
    /// `public_url` when configured, else the address it listens on.
    pub fn public_url(&self) -> &str {
        let configured = self.config.public_url.as_deref().map(|u| u.trim_end_matches('/'));
        configured.or(self.local_url.get().map(String::as_str)).unwrap_or("http://127.0.0.1:8131")
    }

    /// Uses `registries` (and a verifier that reads them).
    pub fn set_registries(&mut self, registries: Arc<Registries>) {
        self.verifier = Arc::new(KycVerifier { registries: registries.clone() });
        self.registries = registries;
    }

    /// Decides every check that is due now; returns how many were finished.
    pub async fn verify_due(&self) -> anyhow::Result<usize> {
        crate::verifier::verify_due(self).await
    }

    /// Fires every payout timer due now; returns how many changed a session.
    pub async fn process_due(&self) -> anyhow::Result<usize> {
        crate::api::processor::process_due(self).await
    }

    /// Writes (and sends) every scheduled report due now; how many.
    /// (Each call asks the store afresh, as a new node would.)
    pub async fn write_due_reports(&self) -> anyhow::Result<usize> {
        crate::report_schedule::write_due(self, &mut crate::report_schedule::Finished::new()).await
    }

    /// Attempts every webhook due now; returns how many were attempted.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        crate::webhooks::deliver_due(self).await
    }
}

/// How a surface (the KYC API, the main API, the admin endpoints, the
/// pages) renders the errors that no handler of its own produced: unknown
/// paths, wrong methods, panics, requests past the time limit and request
/// heads past the edge's limits. Each surface answers in its own
/// envelope, never another's.
pub trait Surface {
    fn not_found() -> Response;
    fn method_not_allowed() -> Response;
    /// A panic or a timeout: a generic 500 that says nothing of internals.
    fn internal() -> Response;
    /// A request head past the edge's limits: 414 or 431.
    fn too_large(part: crate::edge::TooLarge) -> Response;
}

/// The surface a path belongs to, for the answers no route gives: an
/// unknown path, a request head past its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SurfaceOf {
    Kyc,
    Main,
    Admin,
    Pages,
}

impl SurfaceOf {
    /// The surface's generic 500 (a panic or a timeout).
    fn internal(self) -> Response {
        match self {
            Self::Kyc => crate::kyc::KycApi::internal(),
            Self::Main => crate::api::MainApi::internal(),
            Self::Admin => crate::admin::Admin::internal(),
            Self::Pages => crate::pages::Pages::internal(),
        }
    }

    /// The surface's 414 or 431.
    fn too_large(self, part: crate::edge::TooLarge) -> Response {
        match self {
            Self::Kyc => crate::kyc::KycApi::too_large(part),
            Self::Main => crate::api::MainApi::too_large(part),
            Self::Admin => crate::admin::Admin::too_large(part),
            Self::Pages => crate::pages::Pages::too_large(part),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Kyc => "kyc",
            Self::Main => "main",
            Self::Admin => "admin",
            Self::Pages => "pages",
        }
    }
}

/// Longest request id taken from a caller; a longer or odd one is replaced.
pub const REQUEST_ID_MAX_BYTES: usize = 64;

/// The caller's request id when it is short and plain, else a new one.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    let given = headers.get(open131_wire::headers::REQUEST_ID).and_then(|v| v.to_str().ok());
    let plain = |id: &&str| {
        !id.is_empty()
            && id.len() <= REQUEST_ID_MAX_BYTES
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    match given.filter(plain) {
        Some(id) => id.to_string(),
        None => new_request_id(),
    }
}

/// `req_` + this process's random 8-byte prefix + a counter (24 hex digits):
/// unique across nodes and restarts, and no system call per request.
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // A failing system RNG leaves the clock: the id is for reading logs, not a secret.
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            bytes = (nanos as u64).to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed) as u32;
    let mut id = String::with_capacity(REQUEST_ID_PREFIX.len() + 24);
    id.push_str(REQUEST_ID_PREFIX);
    // Big-endian: the digits read as the numbers' own hex.
    open131_wire::sign::push_hex(&mut id, &prefix.to_be_bytes());
    open131_wire::sign::push_hex(&mut id, &counter.to_be_bytes());
    id
}

/// What every request id the server makes begins with.
const REQUEST_ID_PREFIX: &str = "req_";

/// The metrics' name of what a request asked for: a served main-API
/// method, or the route template it matched (never the raw path: a label
/// must not grow with what callers send).
fn method_label(surface: SurfaceOf, req: &Request) -> std::borrow::Cow<'static, str> {
    if let SurfaceOf::Main = surface {
        let rest = req.uri().path().trim_start_matches("/api/").split_once('/').map_or("", |(_, rest)| rest);
        return crate::api::ApiMethod::parse(rest).map_or("unknown", |m| m.path()).into();
    }
    req.extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".into(), |p| p.as_str().to_string().into())
}

/// `router` with the front layer every listener's routes have.
pub fn observed(router: Router<App>, app: App) -> Router {
    router.layer(middleware::from_fn_with_state(app.clone(), front)).with_state(app)
}

/// Every request passes this one layer: a request id (the caller's, or a
/// new one) on its log lines and in its response, its figures in the
/// metrics, and [`guarded`]'s limits. One layer rather than five: each axum
/// layer clones and boxes its inner service and its future for every
/// request, and the five cost about a sixth of `session/create`'s CPU
/// (`perf`, issue 12).
async fn front(axum::extract::State(app): axum::extract::State<App>, req: Request, next: Next) -> Response {
    use tracing::Instrument;
    let started = std::time::Instant::now();
    let surface = surface_of(req.uri().path());
    let method = method_label(surface, &req);
    let id = request_id(req.headers());
    let span = tracing::info_span!("request", request_id = %id, surface = surface.as_str(), method = %method);
    let mut response = guarded(&app, surface, &id, req, next).instrument(span.clone()).await;
    let (status, elapsed) = (response.status().as_u16(), started.elapsed());
    app.metrics.request(surface.as_str(), &method, status, elapsed);
    span.in_scope(|| tracing::debug!(status, elapsed_us = elapsed.as_micros() as u64, "answered"));
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(open131_wire::headers::REQUEST_ID, value);
    }
    response
}

/// A request head past the edge's limits is answered in the envelope of
/// the surface its path belongs to, before any route reads it (past hyper's
/// own, larger limits, hyper answers with an empty body: README). The KYC
/// and main APIs' requests are kept for the inspector. A handler that
/// outlives the time limit or panics is answered with its surface's generic
/// 500. Its write, if already queued, may still commit: a 200 always means
/// committed, the converse is not promised (the client retries and meets
/// `already_exists` or the idempotency error).
async fn guarded(app: &App, surface: SurfaceOf, id: &str, req: Request, next: Next) -> Response {
    use futures_util::FutureExt as _;
    if let Some(part) = crate::edge::too_large(req.uri(), req.headers()) {
        tracing::info!(?part, "request head past the edge's limits");
        return surface.too_large(part);
    }
    let limit = app.config.request_timeout;
    let run = |req: Request| async move {
        match std::panic::AssertUnwindSafe(tokio::time::timeout(limit, next.run(req))).catch_unwind().await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => {
                tracing::error!("a request timed out");
                surface.internal()
            }
            Err(_) => {
                tracing::error!("a request handler panicked");
                surface.internal()
            }
        }
    };
    match surface {
        SurfaceOf::Kyc | SurfaceOf::Main => crate::request_log::record(app, id, req, run).await,
        SurfaceOf::Admin | SurfaceOf::Pages => run(req).await,
    }
}

fn surface_of(path: &str) -> SurfaceOf {
    const KYC_PREFIXES: [&str; 3] = ["/api/v1.1/", "/api/v2.0/", "/api/v2/check"];
    if path.starts_with("/admin/") || path == crate::metrics::PATH {
        SurfaceOf::Admin
    } else if crate::pages::PAGE_PREFIXES.iter().any(|p| path.starts_with(p)) {
        SurfaceOf::Pages
    } else if path.starts_with("/api/") && !KYC_PREFIXES.iter().any(|p| path.starts_with(p)) {
        SurfaceOf::Main
    } else {
        // The KYC API is what this server first served: its envelope answers the rest.
        SurfaceOf::Kyc
    }
}

/// Adds a surface's own 405 to its routes (the front layer gives the rest
/// of its answers no handler gives).
fn answering_405<S: Surface + 'static>(routes: Router<App>) -> Router<App> {
    routes.method_not_allowed_fallback(|| async { crate::request_log::not_kept(S::method_not_allowed()) })
}

/// Every surface with its own 405; a path that none of them serves gets
/// the 404 of the surface its prefix belongs to.
pub fn router(app: App) -> Router {
    let routes = Router::new()
        .merge(answering_405::<crate::kyc::KycApi>(crate::kyc::router()))
        .merge(answering_405::<crate::api::MainApi>(crate::api::router()))
        .merge(answering_405::<crate::admin::Admin>(crate::admin::router()))
        .merge(answering_405::<crate::pages::Pages>(crate::pages::router()))
        .fallback(|uri: axum::http::Uri| async move {
            crate::request_log::not_kept(match surface_of(uri.path()) {
                SurfaceOf::Admin => crate::admin::Admin::not_found(),
                SurfaceOf::Pages => crate::pages::Pages::not_found(),
                // An unknown main-API path is the main API's own (its one route
                // takes every /api/{version}/…); what reaches here is the KYC API's.
                SurfaceOf::Kyc | SurfaceOf::Main => crate::kyc::KycApi::not_found(),
            })
        });
    observed(routes, app)
}
