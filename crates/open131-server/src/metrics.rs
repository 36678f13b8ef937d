//! The server's figures in the Prometheus text format (`/metrics`): requests
//! by surface, method and status with their latency; group commits (jobs per
//! commit, commit latency, failures); webhook delivery attempts by project
//! and result; card-vault operations; and, read from the store and the
//! registries when scraped, the verifier's queue, the timers due, the
//! webhooks waiting per project and each registry's size and last load.
//!
//! Why `prometheus-client` with a registry per [`App`] and no global
//! recorder: tests run several servers in one process, each with its own figures.
//!
//! Invariant: no label carries personal data or an unbounded value: methods
//! are the served methods' names or route templates, projects are project ids.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::app::App;

/// Where the figures are served (behind the admin token on the main
/// listener; without one on `--metrics-listen`).
pub const PATH: &str = "/metrics";
/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    surface: &'static str,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SurfaceLabel {
    surface: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    project: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectLabel {
    project: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabel {
    registry: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabel {
    operation: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms … about 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// What a delivery attempt came to, as the metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Delivered,
    /// Failed; it will be tried again.
    Failed,
    /// Failed for the last time.
    GaveUp,
    /// The project has no webhook URL: set aside until it has one.
    Parked,
}

impl Delivery {
    pub fn of(result: &open131_store::AttemptResult) -> Self {
        match (result.error.is_none(), result.parked, result.gave_up) {
            (true, _, _) => Self::Delivered,
            (false, true, _) => Self::Parked,
            (false, false, true) => Self::GaveUp,
            (false, false, false) => Self::Failed,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::GaveUp => "gave_up",
            Self::Parked => "parked",
        }
    }
}

/// Every figure of one server.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: HistogramFamily<SurfaceLabel>,
    commit_jobs: Histogram,
    commit_seconds: Histogram,
    commit_failures: Counter,
    deliveries: Family<DeliveryLabels, Counter>,
    vault: Family<OperationLabel, Counter>,
    checks_pending: Gauge,
    timers_due: Gauge,
    webhooks_pending: Family<ProjectLabel, Gauge>,
    registry_entries: Family<RegistryLabel, Gauge>,
    registry_loaded: Family<RegistryLabel, Gauge>,
    /// A scrape at a time: the gauges it sets are the ones it encodes.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("open131");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "Requests answered, by surface, method and status", requests.clone());
        let request_seconds = HistogramFamily::<SurfaceLabel>::new_with_constructor(latency_histogram);
        registry.register("http_request_duration_seconds", "Time to answer a request", request_seconds.clone());
        let commit_jobs = Histogram::new(exponential_buckets(1.0, 2.0, 11));
        registry.register("store_commit_jobs", "Writes carried by one group commit", commit_jobs.clone());
        let commit_seconds = latency_histogram();
        registry.register("store_commit_duration_seconds", "Time of a group commit's COMMIT", commit_seconds.clone());
        let commit_failures = Counter::default();
        registry.register("store_commit_failures", "Group commits that did not hold", commit_failures.clone());
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        registry.register("webhook_attempts", "Webhook delivery attempts, by project and result", deliveries.clone());
        let vault = Family::<OperationLabel, Counter>::default();
        registry.register("vault_operations", "Card-vault seals and opens", vault.clone());
        let checks_pending = Gauge::default();
        registry.register(
            "kyc_checks_pending",
            "Checks waiting for a verdict (the verifier's queue)",
            checks_pending.clone(),
        );
        let timers_due = Gauge::default();
        registry.register("session_timers_due", "Session timers due and not yet fired", timers_due.clone());
        let webhooks_pending = Family::<ProjectLabel, Gauge>::default();
        registry.register("webhooks_pending", "Webhooks not yet delivered, by project", webhooks_pending.clone());
        let registry_entries = Family::<RegistryLabel, Gauge>::default();
        registry.register("registry_entries", "Entries of each loaded registry", registry_entries.clone());
        let registry_loaded = Family::<RegistryLabel, Gauge>::default();
        registry.register(
            "registry_loaded_timestamp_seconds",
            "When each registry was last loaded (Unix time)",
            registry_loaded.clone(),
        );
        Self {
            registry,
            requests,
            request_seconds,
            commit_jobs,
            commit_seconds,
            commit_failures,
            deliveries,
            vault,
            checks_pending,
            timers_due,
            webhooks_pending,
            registry_entries,
            registry_loaded,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// One answered request. `method` is a served method's name or a route template.
    pub fn request(&self, surface: &'static str, method: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { surface, method: method.to_string(), status };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&SurfaceLabel { surface }).observe(elapsed.as_secs_f64());
    }

    pub fn delivery(&self, project: &str, result: Delivery) {
        self.deliveries.get_or_create(&DeliveryLabels { project: project.to_string(), result: result.as_str() }).inc();
    }

    /// A card or an account sealed (`seal`) or read back (`open`).
    pub fn vault(&self, operation: &'static str) {
        self.vault.get_or_create(&OperationLabel { operation }).inc();
    }

    /// The exposition: the gauges read now from the store and the registries,
    /// then every figure. A store that cannot be read leaves its gauges as
    /// they were (and logs why); the rest is still served.
    pub async fn render(&self, app: &App) -> Result<String, std::fmt::Error> {
        let _one = self.scrape.lock().await;
        match app.store.backlog(app.clock.now()).await {
            Ok(backlog) => {
                self.checks_pending.set(backlog.checks_pending);
                self.timers_due.set(backlog.timers_due);
                self.webhooks_pending.clear();
                for (project, pending) in backlog.webhooks_pending {
                    self.webhooks_pending.get_or_create(&ProjectLabel { project }).set(pending);
                }
            }
            Err(e) => tracing::warn!(error = %e, "metrics: could not read the backlog"),
        }
        for (registry, entries, loaded_at) in app.registries.figures() {
            let label = RegistryLabel { registry };
            match entries {
                Some(n) => {
                    self.registry_entries.get_or_create(&label).set(i64::try_from(n).unwrap_or(i64::MAX));
                }
                None => {
                    self.registry_entries.remove(&label);
                }
            }
            if let Some(at) = loaded_at {
                self.registry_loaded.get_or_create(&label).set(at);
            }
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// The store's group commits, counted.
impl open131_store::CommitObserver for Metrics {
    fn committed(&self, jobs: usize, elapsed: Duration, ok: bool) {
        self.commit_jobs.observe(jobs as f64);
        self.commit_seconds.observe(elapsed.as_secs_f64());
        if !ok {
            self.commit_failures.inc();
        }
    }
}

/// `GET /metrics` on a listener of its own (`serve --metrics-listen`): no
/// token, so bind it where only the scraper reaches it.
pub fn router(app: App) -> axum::Router {
    crate::app::observed(axum::Router::new().route(PATH, axum::routing::get(scrape)), app)
}

/// The exposition, or a bare 500 when it cannot be encoded.
pub async fn scrape(axum::extract::State(app): axum::extract::State<App>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match app.metrics.render(&app).await {
        Ok(text) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
