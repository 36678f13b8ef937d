//! Load generator: `open131 bench payments`, complete card payment flows.
//!
//! A flow is `session/init/payment` → the bank's checks (auto-confirmed, no
//! 3-D Secure) → the issuer's authorization (a hold) → `session/capture` →
//! `payment_finished`. Phases:
//!
//! 1. `session/init/payment`, every request signed before the timed window;
//! 2. the bank's side: the server's timers prepare and authorize every
//!    payment (timed until each has its `ready_to_capture` in the outbox);
//! 3. `session/capture` of each, signed before its window (the session ids
//!    come from phase 1);
//! 4. until each has its `payment_finished` in the outbox.
//!
//! Complete flows/s = flows ÷ the four phases' summed time. The project is
//! set to auto-confirm and hold for the run, without a webhook URL (webhooks
//! wait in the outbox instead of competing), and restored afterwards. Run the
//! server with `--payout-delay 0` so the issuer answers at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use open131_domain::settings::CaptureMode;
use open131_store::{Location, SettingsChange, Store};
use serde_json::json;
use time::OffsetDateTime;

use crate::bench::{parallel, session_id, signed_posts, Loaded};

/// Longest wait for the bank's side of one phase, in seconds.
const BANK_WAIT_MAX_S: u64 = 300;

pub async fn run(location: &Location, target: Loaded, payments: usize) -> anyhow::Result<()> {
    let store = crate::cli::open_store(location).await?;
    let project = target.project.clone();
    let saved = store.project(&project).await?.context("no such project in this database")?.settings;
    let now = OffsetDateTime::now_utc;
    let for_run = SettingsChange {
        webhook_url: Some(None),
        auto_confirm: Some(true),
        capture: Some(CaptureMode::Hold),
        ..SettingsChange::default()
    };
    store.set_project_settings(&project, for_run, now()).await?;
    let result = flows(store.as_ref(), &target, payments).await;
    let restore = SettingsChange {
        webhook_url: Some(saved.webhook_url),
        auto_confirm: Some(saved.auto_confirm),
        capture: Some(saved.capture),
        ..SettingsChange::default()
    };
    store.set_project_settings(&project, restore, now()).await?;
    result
}

async fn flows(store: &dyn Store, target: &Loaded, payments: usize) -> anyhow::Result<()> {
    let t = Instant::now();
    let run = OffsetDateTime::now_utc().unix_timestamp();
    let signed = parallel(payments, |i| {
        let body = serde_json::to_vec(&json!({
            "payment_details": {"type": "card", "card": {"type": "bank_card", "bank_card": {
                "number": "4242424242424242", "expiration_month": "12", "expiration_year": "35", "security_code": "123"}}},
            "amount_details": {"amount": 10_000, "currency": "rub"},
            "customer": {"reference": format!("bench-{run}-{i}")}
        }))?;
        let sign = target.key.sign_base64(&body)?;
        Ok((body, sign))
    })?;
    println!("pre-signed {payments} payments in {:.1}s (outside the timed window)", t.elapsed().as_secs_f64());
    let (report, ids) =
        signed_posts(target, "/api/v2/session/init/payment", Arc::new(signed), payments, session_id).await?;
    report.print("POST /api/v2/session/init/payment (payments started)");
    if ids.is_empty() {
        bail!("no payment was started; are the servers at {:?} serving this database?", target.bases);
    }
    // Only this run's sessions count (the database may hold earlier runs').
    let run_ids: std::collections::HashSet<String> = ids.iter().cloned().collect();
    let authorized = wait_for(store, &target.project, "ready_to_capture", &run_ids).await?;
    println!("bank: {} of {} payments authorized and held in {:.2}s", authorized.0, ids.len(), authorized.1);

    let t = Instant::now();
    let captures = parallel(ids.len(), |i| {
        let body = serde_json::to_vec(&json!({"session_id": ids[i]}))?;
        let sign = target.key.sign_base64(&body)?;
        Ok((body, sign))
    })?;
    println!("pre-signed {} captures in {:.1}s (outside the timed window)", ids.len(), t.elapsed().as_secs_f64());
    let (capture_report, _) =
        signed_posts(target, "/api/v2/session/capture", Arc::new(captures), ids.len(), crate::bench::read_ok).await?;
    capture_report.print("POST /api/v2/session/capture (held payments captured)");
    let finished = wait_for(store, &target.project, "payment_finished", &run_ids).await?;
    println!("bank: {} of {} payments finished in {:.2}s", finished.0, ids.len(), finished.1);
    let total = report.elapsed_s() + authorized.1 + capture_report.elapsed_s() + finished.1;
    println!(
        "complete card payment flows: {} in {total:.2}s = {:.0} flows/s (init p50 {:.2} ms p99 {:.2} ms; capture p50 {:.2} ms p99 {:.2} ms)",
        finished.0,
        finished.0 as f64 / total.max(1e-9),
        report.p50_ms(),
        report.p99_ms(),
        capture_report.p50_ms(),
        capture_report.p99_ms(),
    );
    Ok(())
}

/// Waits until the project's outbox holds a webhook of `kind` for each of
/// `sessions` (or their count stops growing); returns the count and the
/// seconds waited.
async fn wait_for(
    store: &dyn Store,
    project: &str,
    kind: &str,
    sessions: &std::collections::HashSet<String>,
) -> anyhow::Result<(usize, f64)> {
    let expected = sessions.len();
    let t = Instant::now();
    let deadline = t + Duration::from_secs(BANK_WAIT_MAX_S);
    let filter = open131_store::WebhookFilter { project_id: Some(project.to_string()), ..Default::default() };
    let (mut last, mut still) = (0, 0);
    while Instant::now() < deadline {
        let hooks = store.webhooks(filter.clone()).await?;
        let n = hooks.iter().filter(|w| w.kind == kind && sessions.contains(&w.subject_id)).count();
        if n >= expected {
            return Ok((n, t.elapsed().as_secs_f64()));
        }
        still = if n == last { still + 1 } else { 0 };
        if still > 40 {
            break;
        }
        last = n;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((last, t.elapsed().as_secs_f64()))
}
