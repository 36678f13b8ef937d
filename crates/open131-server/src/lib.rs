//! The open131 server: an axum application ([`app`]) over a [`Store`], with the
//! background verifier ([`verifier`]) and the first-start demo project ([`demo`]).
//!
//! Entry point: [`run`] serves on a bound listener until `shutdown` resolves,
//! then drains requests and stops the workers.
#![forbid(unsafe_code)]

pub mod admin;
pub mod api;
pub mod app;
pub mod clock;
pub mod config;
pub mod demo;
pub mod edge;
pub mod inspector;
pub mod kyc;
pub mod lease;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod projects;
pub mod qr;
pub mod registries;
pub mod reply;
pub mod report_schedule;
pub mod reports;
pub mod request_log;
pub mod vault;
pub mod verifier;
pub mod webhooks;
pub mod worker;

use std::future::Future;

use tokio::net::TcpListener;

pub use app::App;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::Config;

/// Serves `app` on `listener` until `shutdown` resolves. In-flight requests are
/// finished before it returns; the verifier stops at a batch boundary.
pub async fn run(
    listener: TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        // A second `run` of the same app keeps the first address.
        let _ = app.local_url.set(format!("http://{addr}"));
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = if app.config.background_workers {
        // Before any worker claims: what a dead process held is due again.
        if let Err(e) = lease::at_start(&app).await {
            tracing::warn!(error = %e, "could not release dead instances' leases at start; they expire on their own");
        }
        vec![
            tokio::spawn(lease::run_worker(app.clone(), stop_rx.clone())),
            tokio::spawn(verifier::run_worker(app.clone(), stop_rx.clone())),
            tokio::spawn(api::processor::run_worker(app.clone(), stop_rx.clone())),
            tokio::spawn(webhooks::run_worker(app.clone(), stop_rx.clone())),
            tokio::spawn(registries::run_watcher(app.clone(), stop_rx.clone())),
            tokio::spawn(report_schedule::run_worker(app.clone(), stop_rx.clone())),
        ]
    } else {
        Vec::new()
    };
    let router = app::router(app.clone());
    // The peer address feeds the per-project source-IP allowlists.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let served = axum::serve(listener, service).with_graceful_shutdown(shutdown).await;
    let _ = stop_tx.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    served
}
