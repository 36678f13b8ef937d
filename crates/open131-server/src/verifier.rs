//! The background verifier: decides pending checks once they are due.
//!
//! Work is claimed in the store (`claim_due_checks`, with a lease), never kept
//! only in memory, so a check accepted before a crash is decided after the next
//! start, and of several nodes on one database only one decides a check at a
//! time. Verdicts of one round are written in one commit.

use std::time::Duration;

use std::collections::HashMap;
use std::sync::Arc;

use open131_domain::kyc::{self, InnLink, Outcome, RegistryAnswers};
use open131_domain::settings::KycMode;
use open131_store::{CheckRecord, Decision};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::app::App;
use crate::worker::Pace;

/// Most checks decided in one round (and one commit).
pub const VERIFY_BATCH_MAX_CHECKS: usize = 1024;
/// Longest sleep of an idle verifier, in ms; a new check due sooner wakes it at once ([`new_check`]).
pub const VERIFY_IDLE_MAX_MS: u64 = 1_000;
/// Shortest sleep after a round that decided nothing, in ms.
pub const VERIFY_IDLE_MIN_MS: u64 = 10;
/// Pause after a store error before trying again, in ms.
pub const VERIFY_ERROR_BACKOFF_MS: u64 = 1_000;
/// A check that cannot be decided yet (registry mode without a loaded registry)
/// is looked at again after this, in seconds.
pub const VERIFY_WAIT_RETRY_S: i64 = 30;
/// A claimed check is left to the node that claimed it this long, in seconds;
/// if that node dies before its verdict commits, another node takes it after.
pub const VERIFY_LEASE_S: i64 = 30;

/// Decides one check for a project in `mode` (`sandbox` or `registry`);
/// `None` when it cannot be decided yet.
pub trait Verifier: Send + Sync + 'static {
    fn decide(&self, check: &CheckRecord, mode: KycMode, now: OffsetDateTime) -> Option<Outcome>;
}

/// The verifier of both modes: structural rules everywhere; then sandbox
/// triggers, or the MVD and taxpayer registries.
pub struct KycVerifier {
    pub registries: Arc<crate::registries::Registries>,
}

impl Verifier for KycVerifier {
    fn decide(&self, check: &CheckRecord, mode: KycMode, now: OffsetDateTime) -> Option<Outcome> {
        let app = &check.application;
        if mode == KycMode::Sandbox {
            return Some(kyc::decide_sandbox(app, now));
        }
        if app.rf_passport.is_none() {
            // A non-resident has no Russian passport: neither registry applies.
            let answers = RegistryAnswers { passport_listed_invalid: false, inn: InnLink::NotChecked };
            return Some(kyc::decide_registry(app, now, answers));
        }
        // Never pass people unchecked: no registry, no verdict.
        let (passports, taxpayers) = (self.registries.passports()?, self.registries.taxpayers()?);
        let passport_listed_invalid = passports.contains_raw(app.document_key.expose());
        let inn = match (&app.rf_passport, app.ru_inn().and_then(|i| i.expose().parse::<u64>().ok())) {
            (Some(rf), Some(inn)) if taxpayers.contains_pair(inn, rf.number.key()) => InnLink::Linked,
            (Some(_), Some(inn)) if taxpayers.contains_inn(inn) => InnLink::OtherPassport,
            (Some(_), _) => InnLink::Unknown,
            (None, _) => InnLink::NotChecked,
        };
        Some(kyc::decide_registry(app, now, RegistryAnswers { passport_listed_invalid, inn }))
    }
}

/// One round: decides every check due now (up to the batch limit).
pub async fn verify_due(app: &App) -> anyhow::Result<usize> {
    let lease = time::Duration::seconds(VERIFY_LEASE_S);
    let real = app.clock.now();
    let clocked = app.clocked_projects().await;
    let due = app.store.claim_due_checks(real - delay(app), real, real + lease, VERIFY_BATCH_MAX_CHECKS).await?;
    let mut finished = decide(app, due, real).await?;
    // A project on virtual time: its checks are due by its own clock.
    for (project, offset) in clocked {
        let now = offset.apply(real);
        let due = app
            .store
            .claim_project_due_checks(&project, now - delay(app), now, now + lease, VERIFY_BATCH_MAX_CHECKS)
            .await?;
        finished += decide(app, due, now).await?;
    }
    Ok(finished)
}

/// Decides claimed checks at `now` (their project's); how many it finished.
async fn decide(app: &App, due: Vec<open131_store::CheckRecord>, now: time::OffsetDateTime) -> anyhow::Result<usize> {
    if due.is_empty() {
        return Ok(0);
    }
    let mut modes: HashMap<String, KycMode> = HashMap::new();
    let mut decisions = Vec::new();
    let mut waiting = Vec::new();
    for c in &due {
        if !modes.contains_key(&c.project_id) {
            let mode = app.projects.get(&c.project_id).await?.map_or(KycMode::Sandbox, |p| p.settings.kyc_mode);
            modes.insert(c.project_id.clone(), mode);
        }
        let mode = modes.get(&c.project_id).copied().unwrap_or_default();
        match app.verifier.decide(c, mode, now) {
            Some(outcome) => decisions.push(Decision { project_id: c.project_id.clone(), id: c.id, outcome }),
            None => waiting.push((c.project_id.clone(), c.id)),
        }
    }
    if !waiting.is_empty() {
        tracing::warn!(
            checks = waiting.len(),
            retry_in_s = VERIFY_WAIT_RETRY_S,
            "checks in registry mode stay pending: a registry has never been loaded (open131 registry import / taxpayers import)"
        );
        app.store.postpone_checks(waiting, now + time::Duration::seconds(VERIFY_WAIT_RETRY_S)).await?;
    }
    let finished = app.store.finish_checks(decisions, now).await?;
    Ok(finished.into_iter().filter(|f| *f).count())
}

/// Tells the verifier of a check just committed, when it needs telling.
///
/// Why not always: a wake-up makes a round (a claim and a due-time query),
/// and under load one check per request kept the verifier in rounds back to
/// back, each finding nothing due yet (on PostgreSQL its two queries took
/// about as much of the database's time as the inserts themselves). A check
/// is due `kyc_delay` after its creation, and a sleeping verifier wakes at
/// least every [`VERIFY_IDLE_MAX_MS`] and then sleeps until the oldest
/// pending check is due; so when the delay is longer than that, the verifier
/// finds the check in time by itself (at worst one round's duration late,
/// when the check committed during a round). A shorter delay still wakes it.
pub fn new_check(app: &App) {
    if app.config.kyc_delay <= Duration::from_millis(VERIFY_IDLE_MAX_MS) {
        app.verifier_wake.notify_one();
    }
}

fn delay(app: &App) -> time::Duration {
    time::Duration::try_from(app.config.kyc_delay).unwrap_or(time::Duration::ZERO)
}

/// The worker: rounds while there is work, then sleeps until the next due
/// check, a new check, or the idle limit.
pub async fn run_worker(app: App, stop: watch::Receiver<bool>) {
    let wake = app.verifier_wake.clone();
    crate::worker::run_loop("verifier", stop, Some(wake), || round(&app)).await;
}

async fn round(app: &App) -> Pace {
    match verify_due(app).await {
        Ok(n) if n >= VERIFY_BATCH_MAX_CHECKS => Pace::Again,
        // A round that decided something may have left more due right now.
        Ok(n) => match next_due_in(app).await {
            Ok(wait) if wait.is_zero() && n > 0 => Pace::Again,
            // A round that decided nothing never loops at once: that would spin.
            Ok(wait) => Pace::Idle(wait.max(Duration::from_millis(VERIFY_IDLE_MIN_MS))),
            Err(e) => {
                tracing::error!(error = %e, "verifier could not read the next due time");
                Pace::Idle(Duration::from_millis(VERIFY_ERROR_BACKOFF_MS))
            }
        },
        Err(e) => {
            tracing::error!(error = %e, "verifier round failed");
            Pace::Idle(Duration::from_millis(VERIFY_ERROR_BACKOFF_MS))
        }
    }
}

/// Time until the oldest pending check is due, at most the idle limit.
async fn next_due_in(app: &App) -> anyhow::Result<Duration> {
    let idle = Duration::from_millis(VERIFY_IDLE_MAX_MS);
    Ok(match app.store.oldest_pending(app.clock.now()).await? {
        Some(created) => {
            let until = kyc::due_at(created, delay(app)) - app.clock.now();
            Duration::try_from(until).unwrap_or(Duration::ZERO).min(idle)
        }
        None => idle,
    })
}
