//! Load generator: `open131 bench payouts`.
//!
//! 1. `session/init/payout` — every request signed before the timed window;
//! 2. `session/status` on the created sessions — signed before the window;
//! 3. webhook deliveries: the project's webhook URL is pointed at a receiver
//!    inside this process (it verifies every signature with the bank key, as a
//!    partner must), every pending webhook is made due at once, and the rate is
//!    taken from the first to the last arrival.
//!
//! During 1 and 2 the project has no webhook URL, so the webhooks those phases
//! cause wait in the outbox instead of competing with the measured requests.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use open131_store::layout::DataDir;
use open131_store::{Location, Store};
use open131_wire::sign::VerifyingKey;
use serde_json::json;
use time::OffsetDateTime;

use crate::bench::{ceiling_phase, parallel, session_id, signed_posts, Loaded};

/// How long phase 3 waits for the outbox to drain before reporting what arrived, in seconds.
const DRAIN_WAIT_MAX_S: u64 = 120;

#[derive(Default)]
struct Arrivals {
    verified: AtomicU64,
    bad_signature: AtomicU64,
    first_last: Mutex<Option<(Instant, Instant)>>,
}

pub async fn run(
    location: &Location,
    data_dir: &Path,
    target: Loaded,
    payouts: usize,
    reads: usize,
) -> anyhow::Result<()> {
    let Loaded { key, bases, project, .. } = &target;
    let project = project.clone();
    let store = crate::cli::open_store(location).await?;
    let bank =
        open131_server::demo::ensure_bank_key(store.as_ref(), &DataDir::new(data_dir), None).await?.verifying_key()?;
    let saved = store.project(&project).await?.context("no such project in this database")?.settings;
    let set_url = |u: Option<String>| open131_store::SettingsChange { webhook_url: Some(u), ..Default::default() };
    store.set_project_settings(&project, set_url(None), OffsetDateTime::now_utc()).await?;

    let result = async {
        // 1. Creations.
        let t = Instant::now();
        let signed = parallel(payouts, |i| {
            let body = serde_json::to_vec(&json!({
                "payment_method": {"type": "card", "card": {"type": "bank_card", "bank_card": {"number": "2200000000094940"}}},
                "participant_details": {"recipient": {"full_name": "Иванов Иван Иванович"}},
                "amount_details": {"amount": 10_000, "currency": "rub"},
                "metadata": {"bench": i}
            }))?;
            let sign = key.sign_base64(&body)?;
            Ok((body, sign))
        })?;
        println!("pre-signed {payouts} payouts in {:.1}s (outside the timed window)", t.elapsed().as_secs_f64());
        let path = "/api/v1/session/init/payout";
        let signed = Arc::new(signed);
        let ceiling = ceiling_phase(&target, path, &signed, payouts).await?;
        let (report, ids) = signed_posts(&target, path, signed, payouts, session_id).await?;
        report.print("POST /api/v1/session/init/payout (payouts created)");
        report.print_ratio(ceiling.as_ref());
        if ids.is_empty() {
            bail!("no payout was created; are the servers at {bases:?} serving this database?");
        }

        // 2. Status reads.
        let t = Instant::now();
        let distinct = reads.min(ids.len());
        let status_signed = parallel(distinct, |i| {
            let body = serde_json::to_vec(&json!({"session_id": ids[i]}))?;
            let sign = key.sign_base64(&body)?;
            Ok((body, sign))
        })?;
        println!("pre-signed {distinct} status requests in {:.1}s", t.elapsed().as_secs_f64());
        let path = "/api/v1/session/status";
        let (report, _) = signed_posts(&target, path, Arc::new(status_signed), reads, crate::bench::read_ok).await?;
        report.print("POST /api/v1/session/status (status reads)");

        // 3. Webhook deliveries.
        let expected = wait_for_outbox(store.as_ref(), &project, ids.len()).await?;
        let arrivals = Arc::new(Arrivals::default());
        let receiver = receiver(bank, arrivals.clone()).await?;
        // Setting the URL makes the parked backlog due at once.
        store.set_project_settings(&project, set_url(Some(receiver)), OffsetDateTime::now_utc()).await?;
        let deadline = Instant::now() + Duration::from_secs(DRAIN_WAIT_MAX_S);
        while (arrivals.verified.load(Ordering::Relaxed) as usize) < expected && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let verified = arrivals.verified.load(Ordering::Relaxed);
        let bad = arrivals.bad_signature.load(Ordering::Relaxed);
        let span = arrivals.first_last.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.map(|(a, b)| b - a);
        let secs = span.map_or(0.0, |d| d.as_secs_f64()).max(1e-9);
        let rate = verified as f64 / secs;
        println!(
            "webhook deliveries: {verified} of {expected} verified in {secs:.2}s = {rate:.0} deliveries/s; {bad} with a bad signature"
        );
        print_signing_ratio(rate);
        anyhow::Ok(())
    }
    .await;
    store.set_project_settings(&project, set_url(saved.webhook_url), OffsetDateTime::now_utc()).await?;
    result
}

/// How long `openssl speed` signs for, in seconds.
const SIGNING_SPEED_S: u32 = 3;

/// Deliveries against this machine's RSA-2048 signing rate on every core,
/// measured now by `openssl speed -multi N rsa2048` (each delivery is one
/// signature, so signing is their ceiling).
fn print_signing_ratio(deliveries_per_s: f64) {
    let cores = crate::bench::cores();
    let out = std::process::Command::new("openssl")
        .args(["speed", "-seconds", &SIGNING_SPEED_S.to_string(), "-multi", &cores.to_string(), "rsa2048"])
        .stderr(std::process::Stdio::null())
        .output();
    match out.ok().and_then(|o| signs_per_s(&String::from_utf8_lossy(&o.stdout))) {
        Some(signs) => println!(
            "RSA-2048 signing on {cores} cores (openssl speed): {signs:.0}/s; ratio deliveries/signing = {:.2}",
            deliveries_per_s / signs.max(1e-9)
        ),
        None => println!("no signing ceiling: `openssl speed` did not run here"),
    }
}

/// `sign/s` from `openssl speed … rsa2048`'s summary line
/// (`rsa 2048 bits 0.000391s 0.000011s   2556.0  89934.0`).
fn signs_per_s(text: &str) -> Option<f64> {
    let line = text.lines().rev().find(|l| l.starts_with("rsa") && l.contains("2048 bits"))?;
    let figures: Vec<f64> = line.split("bits").nth(1)?.split_whitespace().filter_map(|t| t.parse().ok()).collect();
    figures.first().copied()
}

/// Waits until the bank has prepared every payout (one `ready_to_confirm` each
/// in the outbox) or the count stops growing; returns the pending count.
async fn wait_for_outbox(store: &dyn Store, project: &str, payouts: usize) -> anyhow::Result<usize> {
    let mut last = 0;
    for _ in 0..600 {
        let filter = open131_store::WebhookFilter { project_id: Some(project.to_string()), ..Default::default() };
        let pending =
            store.webhooks(filter).await?.iter().filter(|w| w.state == open131_store::WebhookState::Pending).count();
        if pending >= payouts || (pending == last && pending > 0) {
            return Ok(pending);
        }
        last = pending;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(last)
}

/// A partner endpoint on 127.0.0.1:0 that verifies each webhook's signature.
async fn receiver(bank: VerifyingKey, arrivals: Arc<Arrivals>) -> anyhow::Result<String> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (bank, arrivals) = (bank.clone(), arrivals.clone());
            async move {
                let sign = headers.get(open131_wire::headers::SIGN).and_then(|v| v.to_str().ok()).unwrap_or("");
                if bank.verify_base64(&body, sign) {
                    arrivals.verified.fetch_add(1, Ordering::Relaxed);
                } else {
                    arrivals.bad_signature.fetch_add(1, Ordering::Relaxed);
                }
                let now = Instant::now();
                if let Ok(mut fl) = arrivals.first_last.lock() {
                    *fl = Some(fl.map_or((now, now), |(first, _)| (first, now)));
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::signs_per_s;

    #[test]
    fn the_signing_rate_is_read_from_openssls_summary() {
        let out = "options: bn(64,64)\n                  sign    verify    sign/s verify/s\nrsa 2048 bits 0.000391s 0.000011s   2556.0  89934.0\n";
        assert_eq!(signs_per_s(out), Some(2556.0));
        assert_eq!(signs_per_s("openssl: command not found"), None);
    }
}
