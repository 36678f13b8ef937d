//! The application value shared by handlers and workers, and the router.

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use open131_store::Store;
use open131_wire::kyc::KycErrorCode;
use open131_wire::sign::SigningKey;
use tokio::sync::Notify;
use tower_http::catch_panic::CatchPanicLayer;

use crate::clock::Clock;
use crate::config::Config;
use crate::projects::Projects;
use crate::registries::Registries;
use crate::reply::KycReply;
use crate::verifier::{KycVerifier, Verifier};

/// Everything a request or a worker needs. Cheap to clone.
#[derive(Clone)]
pub struct App {
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
}

impl App {
    pub fn new(config: Config, store: Arc<dyn Store>, clock: Arc<dyn Clock>, bank_key: SigningKey) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(crate::webhooks::WEBHOOK_TIMEOUT_S))
            .pool_max_idle_per_host(crate::webhooks::WEBHOOK_CONCURRENCY_PER_PROJECT)
            .build()
            .unwrap_or_default();
        let registries = Arc::new(Registries::default());
        Self {
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
        }
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

    /// Attempts every webhook due now; returns how many were attempted.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        crate::webhooks::deliver_due(self).await
    }
}

pub fn router(app: App) -> Router {
    let timeout = app.config.request_timeout;
    Router::new()
        .route("/api/v1.1/check", post(crate::kyc::post_check))
        .route("/api/v1.1/check/{id}", get(crate::kyc::get_check))
        .route("/api/v2.0/check", post(crate::kyc::post_check_v2))
        .route("/api/v2.0/check/{id}", get(crate::kyc::get_check))
        .route("/api/v2/check", post(crate::kyc::post_check_v2))
        .route("/api/v2/check/{id}", get(crate::kyc::get_check))
        .route("/admin/v1/kyc/resolve", post(crate::admin::resolve))
        .route("/admin/v1/registry/reload", post(crate::admin::reload_registries))
        .route("/api/{version}/{*method}", axum::routing::any(crate::api::handle))
        .fallback(|| async { KycReply::error(KycErrorCode::NotFound) })
        .method_not_allowed_fallback(|| async { KycReply::error(KycErrorCode::MethodNotAllowed) })
        .layer(middleware::from_fn(move |req: Request, next: Next| limit_time(req, next, timeout)))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("a request handler panicked");
            KycReply::error(KycErrorCode::InternalError).into_response()
        }))
        .with_state(app)
}

/// A request that outlives the limit is answered with a generic 500. Its write,
/// if already queued, may still commit: a 200 always means committed, the
/// converse is not promised (the client retries and meets `already_exists`).
async fn limit_time(req: Request, next: Next, limit: std::time::Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => KycReply::internal(&"request timed out").into_response(),
    }
}
