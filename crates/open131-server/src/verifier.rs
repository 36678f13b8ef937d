//! The background verifier: decides pending checks once they are due.
//!
//! Work is found in the store (`due_checks`), never only in memory, so a check
//! accepted before a crash is decided after the next start. Verdicts of one
//! round are written in one commit.

use std::time::Duration;

use open131_domain::kyc::{self, Outcome};
use open131_store::{CheckRecord, Decision};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::app::App;

/// Most checks decided in one round (and one commit).
pub const VERIFY_BATCH_MAX_CHECKS: usize = 1024;
/// Longest sleep of an idle verifier, in ms: a safety net; new checks wake it at once.
pub const VERIFY_IDLE_MAX_MS: u64 = 1_000;
/// Pause after a store error before trying again, in ms.
pub const VERIFY_ERROR_BACKOFF_MS: u64 = 1_000;

/// Decides one check. Behind a trait so registries of real data can replace the sandbox.
pub trait Verifier: Send + Sync + 'static {
    fn decide(&self, check: &CheckRecord, now: OffsetDateTime) -> Outcome;
}

/// Structural rules, then the sandbox triggers on the passport number.
#[derive(Debug, Default, Clone, Copy)]
pub struct SandboxVerifier;

impl Verifier for SandboxVerifier {
    fn decide(&self, check: &CheckRecord, now: OffsetDateTime) -> Outcome {
        kyc::decide_sandbox(&check.application, now)
    }
}

/// One round: decides every check due now (up to the batch limit).
pub async fn verify_due(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let due = app.store.due_checks(now - delay(app), VERIFY_BATCH_MAX_CHECKS).await?;
    if due.is_empty() {
        return Ok(0);
    }
    let decisions: Vec<Decision> = due
        .iter()
        .map(|c| Decision { project_id: c.project_id.clone(), id: c.id, outcome: app.verifier.decide(c, now) })
        .collect();
    let finished = app.store.finish_checks(decisions, now).await?;
    Ok(finished.into_iter().filter(|f| *f).count())
}

fn delay(app: &App) -> time::Duration {
    time::Duration::try_from(app.config.kyc_delay).unwrap_or(time::Duration::ZERO)
}

/// The worker loop: rounds while there is work, then sleeps until the next due
/// check, a new check, or the idle limit.
pub async fn run_worker(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match verify_due(&app).await {
            Ok(n) if n >= VERIFY_BATCH_MAX_CHECKS => Duration::ZERO,
            Ok(_) => match app.store.oldest_pending().await {
                Ok(Some(created)) => {
                    let until = kyc::due_at(created, delay(&app)) - app.clock.now();
                    Duration::try_from(until).unwrap_or(Duration::ZERO).min(Duration::from_millis(VERIFY_IDLE_MAX_MS))
                }
                Ok(None) => Duration::from_millis(VERIFY_IDLE_MAX_MS),
                Err(e) => {
                    tracing::error!(error = %e, "verifier could not read the next due time");
                    Duration::from_millis(VERIFY_ERROR_BACKOFF_MS)
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "verifier round failed");
                Duration::from_millis(VERIFY_ERROR_BACKOFF_MS)
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = app.verifier_wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
