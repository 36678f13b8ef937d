//! Webhook delivery from the durable outbox.
//!
//! A webhook row is written in the same transaction as the state change that
//! causes it, so none is lost or sent for a change that rolled back. The
//! dispatcher claims due rows with a lease (a crash mid-delivery only delays a
//! row until the lease ends: delivery is at least once), signs the exact bytes
//! with the bank key (`X-PARTNER-SIGN`), and POSTs them. Only HTTP 200 counts
//! as delivered; anything else, a timeout or a refused connection is retried.
//!
//! A project without a webhook URL has its webhooks parked (re-checked hourly,
//! no attempt counted): written parked when the project has no URL then (no
//! claim and re-write per webhook), or parked by the deliverer that finds the
//! URL gone. Setting a URL releases them at once, so the partner gets the backlog.
//!
//! Retry schedule: after the n-th failed attempt wait
//! `min(5 s × 2^(n−1), 1 h)`, times a random factor in [0.8, 1.2); give up
//! after 30 attempts (about 21 hours after the first). `open131 webhooks resend`
//! makes any webhook pending again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use open131_domain::settings::ClockOffset;
use open131_domain::webhook_faults::{self, Claimed, Plan, Sender, WebhookFaults};
use open131_store::{AttemptResult, OwnClaim, WebhookRecord};
use tokio::sync::{watch, Semaphore};

use crate::app::App;
use crate::worker::Pace;

/// Per-attempt timeout, in seconds.
pub const WEBHOOK_TIMEOUT_S: u64 = 10;
/// Deliveries in flight to one partner project at once.
pub const WEBHOOK_CONCURRENCY_PER_PROJECT: usize = 16;
/// Deliveries in flight in total.
pub const WEBHOOK_IN_FLIGHT_MAX: usize = 256;
/// Attempts before a webhook is given up (state `failed`).
pub const WEBHOOK_ATTEMPTS_MAX: i64 = 30;
/// First retry delay, in seconds; doubles per attempt.
pub const WEBHOOK_RETRY_BASE_S: u64 = 5;
/// Longest retry delay, in seconds.
pub const WEBHOOK_RETRY_CAP_S: u64 = 3_600;
/// How long a claimed webhook is reserved for its delivery by default, in
/// seconds (`Config::webhook_lease`): after it, a webhook whose node died
/// mid-delivery is delivered again by any node.
pub const WEBHOOK_LEASE_S: u64 = 120;
/// The shortest lease accepted: a claimed webhook may wait for its project's
/// permit behind a full queue (queue / concurrency × timeout = 40 s), then take
/// its own timeout; a shorter lease would let another node deliver it meanwhile.
pub const WEBHOOK_LEASE_MIN_S: u64 =
    (WEBHOOK_QUEUED_PER_PROJECT_MAX / WEBHOOK_CONCURRENCY_PER_PROJECT + 2) as u64 * WEBHOOK_TIMEOUT_S;
pub use open131_store::{WEBHOOK_PARKED_ERROR, WEBHOOK_PARK_S};
/// Claimed webhooks (in flight plus waiting) per project. Four times the
/// concurrency: a waiting webhook starts within about four timeouts (40 s), well
/// inside its lease, and claims come in batches rather than one per delivery.
pub const WEBHOOK_QUEUED_PER_PROJECT_MAX: usize = 4 * WEBHOOK_CONCURRENCY_PER_PROJECT;
/// Rows a claim may take when the known projects' queues are full (for projects not seen yet).
pub const WEBHOOK_CLAIM_SLACK: usize = 8;
/// A finished delivery wakes the dispatcher to claim more only once its
/// project's queue is down to this: claims come in batches of at least one
/// concurrency's worth (a claim per delivery cost three writes: the claim, the
/// give-back of its slack, an empty claim), and the partner still has a
/// queue's worth of work meanwhile.
pub const WEBHOOK_REFILL_AT: usize = WEBHOOK_QUEUED_PER_PROJECT_MAX - WEBHOOK_CONCURRENCY_PER_PROJECT;
/// A webhook whose project's queue is full is looked at again after this, in ms.
pub const WEBHOOK_BUSY_RETRY_MS: i64 = 1_000;
/// Longest sleep of an idle dispatcher, in ms.
pub const DISPATCHER_IDLE_MAX_MS: u64 = 500;
/// Webhooks signed at once, per core. Two, not one: with one, a core stood
/// idle whenever its signing thread waited to be scheduled (behind the
/// SQLite writer or the async workers), and `open131 bench payouts` delivered
/// 0.42–0.45 of the two-core signing rate; with two, 0.50–0.55.
pub const SIGNERS_PER_CORE: usize = 2;

/// Delay before the next attempt after `failed_attempts` failures; `jitter` in [0, 1).
pub fn retry_delay(failed_attempts: i64, jitter: f64) -> Duration {
    let exp = u32::try_from(failed_attempts.clamp(1, 32) - 1).unwrap_or(31);
    let base = WEBHOOK_RETRY_BASE_S.saturating_mul(1u64 << exp.min(30)).min(WEBHOOK_RETRY_CAP_S);
    Duration::from_secs_f64(base as f64 * (0.8 + 0.4 * jitter.clamp(0.0, 0.999_999)))
}

fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// One place in a project's queue of claimed webhooks, given back on drop.
struct QueueSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Per-project limits, shared by every delivery of one dispatcher: the
/// concurrency semaphore, and a count of the project's claimed webhooks (in
/// flight or waiting for a slot), bounded by [`WEBHOOK_QUEUED_PER_PROJECT_MAX`].
#[derive(Default)]
struct Limits {
    per_project: Mutex<HashMap<String, ProjectLimit>>,
}

/// A project's concurrency semaphore and its count of claimed webhooks.
type ProjectLimit = (Arc<Semaphore>, Arc<std::sync::atomic::AtomicUsize>);

impl Limits {
    fn entry(&self, project: &str) -> ProjectLimit {
        let mut map = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(project.to_string())
            .or_insert_with(|| (Arc::new(Semaphore::new(WEBHOOK_CONCURRENCY_PER_PROJECT)), Arc::default()))
            .clone()
    }

    /// Projects whose queue of claimed webhooks is full: claims leave them out,
    /// so their backlog is not fetched only to be given back.
    fn full_projects(&self) -> Vec<String> {
        let map = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, (_, q))| q.load(std::sync::atomic::Ordering::SeqCst) >= WEBHOOK_QUEUED_PER_PROJECT_MAX)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// How many more webhooks the known projects' queues can take (rows of
    /// projects not seen yet fit in it too), or, when they are all full, a
    /// little room for projects not seen yet: the size of the next claim, so a
    /// claim does not fetch rows only to give them back.
    fn room(&self) -> usize {
        let map = self.per_project.lock().unwrap_or_else(|p| p.into_inner());
        let known: usize = map
            .values()
            .map(|(_, q)| WEBHOOK_QUEUED_PER_PROJECT_MAX.saturating_sub(q.load(std::sync::atomic::Ordering::SeqCst)))
            .sum();
        // Claimed rows beyond the real room are given back, so the allowance
        // for projects not seen yet is small and only when nothing else fits.
        if known > 0 {
            known
        } else {
            WEBHOOK_CLAIM_SLACK
        }
    }
}

/// The project's webhook URL: the cached one, re-read from the store before a
/// webhook is parked for lack of one (a URL set a moment ago by an operator
/// releases the backlog, which must not be parked again by a stale cache).
async fn webhook_url(app: &App, project: &str) -> Result<Option<String>, open131_store::StoreError> {
    let cached = app.projects.get(project).await?.and_then(|p| p.settings.webhook_url.clone());
    if cached.is_some() {
        return Ok(cached);
    }
    Ok(app.projects.reload(project).await?.and_then(|p| p.settings.webhook_url.clone()))
}

/// What a delivery does, after the project's faults were applied.
#[derive(Debug, Clone, Default)]
struct Delivery {
    /// Lose the attempt before the receiver sees it.
    lose: bool,
    /// Send it a second time after the first.
    twice: bool,
    /// The faults injected, for the delivery log.
    notes: Vec<String>,
}

/// One attempt: returns its result (never fails; failures are results). The
/// caller holds the project's concurrency permit.
async fn attempt(app: &App, hook: &WebhookRecord, delivery: Delivery, signature: Signature) -> AttemptResult {
    let url = match webhook_url(app, &hook.project_id).await {
        Ok(url) => url,
        Err(e) => {
            tracing::error!(error = %e, "could not read a project's webhook URL");
            None
        }
    };
    let Some(url) = url else {
        let at = app.now_for(&hook.project_id).await;
        return AttemptResult {
            webhook_id: hook.id,
            claimed_attempts: hook.attempts,
            at,
            status: None,
            error: Some(WEBHOOK_PARKED_ERROR.into()),
            duration_ms: 0,
            injected: None,
            next_attempt_at: Some(at + time::Duration::seconds(WEBHOOK_PARK_S)),
            gave_up: false,
            parked: true,
        };
    };
    let started = Instant::now();
    let Delivery { lose, twice, mut notes } = delivery;
    let outcome = if lose {
        notes.push("lost before sending".into());
        Err("injected: lost before the receiver saw it".to_string())
    } else {
        let first = send(app, hook, &url, &signature).await;
        if twice {
            let second = send(app, hook, &url, &signature).await;
            notes.push(match second {
                Ok(status) => format!("sent twice (the duplicate answered {status})"),
                Err(e) => format!("sent twice (the duplicate: {e})"),
            });
        }
        first
    };
    let now = app.now_for(&hook.project_id).await;
    let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let injected = (!notes.is_empty()).then(|| notes.join("; "));
    let mut result = AttemptResult {
        webhook_id: hook.id,
        claimed_attempts: hook.attempts,
        at: now,
        status: Some(200),
        error: None,
        duration_ms,
        injected,
        next_attempt_at: None,
        gave_up: false,
        parked: false,
    };
    let (status, error) = match outcome {
        Ok(200) => return result,
        Ok(status) => (Some(i64::from(status)), format!("HTTP {status}")),
        Err(e) => (None, e),
    };
    // Counted since the last revival (`webhooks resend`), so a revived webhook
    // gets a whole new schedule.
    let failures = hook.attempts + 1 - hook.attempts_base;
    let gave_up = failures >= WEBHOOK_ATTEMPTS_MAX;
    tracing::info!(webhook = hook.id, project = %hook.project_id, attempt = failures, error = %error, gave_up, "webhook not delivered");
    result.status = status;
    result.error = Some(error);
    result.gave_up = gave_up;
    result.next_attempt_at =
        (!gave_up).then(|| now + time::Duration::try_from(retry_delay(failures, jitter())).unwrap_or_default());
    result
}

/// The bank's signature over a webhook's exact bytes (`X-PARTNER-SIGN`), or why there is none.
type Signature = Result<String, String>;

/// Signs the webhook's bytes with the bank key on a blocking thread (RSA
/// takes ~0.1–0.4 ms: never on the async workers), [`SIGNERS_PER_CORE`]
/// signatures per core at a time (`signers`), so a long queue keeps every
/// core signing without crowding them with threads.
async fn sign(app: &App, signers: &Semaphore, hook: &WebhookRecord) -> Signature {
    let _core = signers.acquire().await.map_err(|e| e.to_string())?;
    let (key, body) = (app.bank_key.clone(), hook.body.clone());
    tokio::task::spawn_blocking(move || key.sign_base64(&body))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// POSTs the webhook's exact bytes once with their signature: the HTTP status, or why none came.
async fn send(app: &App, hook: &WebhookRecord, url: &str, signature: &Signature) -> Result<u16, String> {
    let signature = signature.clone()?;
    let response = app
        .http
        .post(url)
        .header("Content-Type", "application/json")
        .header(open131_wire::headers::SIGN, signature)
        .body(hook.body.clone())
        .timeout(app.config.webhook_timeout)
        .send()
        .await
        .map_err(|e| if e.is_timeout() { "timed out".to_string() } else { format!("connection: {e}") })?;
    Ok(response.status().as_u16())
}

/// What the project's faults make of one claimed webhook: held back until a
/// time, or delivered as [`Delivery`] says.
async fn apply_faults(app: &App, hook: &WebhookRecord, sender: Sender) -> Result<Delivery, time::OffsetDateTime> {
    let (faults, offset) = match app.projects.get(&hook.project_id).await {
        Ok(Some(p)) => (p.settings.webhook_faults, p.settings.clock_offset),
        // A project that cannot be read now is delivered as without faults.
        _ => (WebhookFaults::NONE, ClockOffset::NONE),
    };
    if faults.is_none() {
        return Ok(Delivery::default());
    }
    let claimed = Claimed {
        id: hook.id,
        created_at: hook.created_at,
        attempts: hook.attempts,
        attempts_since_revival: hook.attempts - hook.attempts_base,
    };
    let mut notes = Vec::new();
    if hook.attempts == 0 {
        if faults.delay_ms() > 0 {
            notes.push(format!("delayed {} ms", faults.delay_ms()));
        }
        if faults.reorder() {
            notes.push(format!("held {} ms to reorder", webhook_faults::reorder_hold_ms(hook.id)));
        }
        if faults.before_response() {
            notes.push(match sender {
                Sender::Request => "sent before the API response".to_string(),
                Sender::Background => "sent after the request's grace".to_string(),
            });
        }
    }
    match webhook_faults::plan(&faults, &claimed, offset.apply(app.clock.now()), sender) {
        Plan::Hold(at) => Err(at),
        Plan::Drop => Ok(Delivery { lose: true, twice: false, notes }),
        Plan::Send { twice } => Ok(Delivery { lose: false, twice, notes }),
    }
}

/// Delivery results waiting to be recorded, and the one recording under way:
/// results that finish while a recording commits go together in the next
/// (one writer job for many deliveries, instead of one each).
#[derive(Default)]
struct Recorder {
    waiting: Mutex<Vec<(AttemptResult, tokio::sync::oneshot::Sender<()>)>>,
    recording: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// Records `result` with whatever else is waiting; returns once it is
    /// committed (or could not be: its lease then retries it).
    async fn record(&self, app: &App, result: AttemptResult) {
        let (done, committed) = tokio::sync::oneshot::channel();
        let leads = {
            let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            waiting.push((result, done));
            waiting.len() == 1
        };
        if leads {
            // The first to wait records for all, once the recording before is done.
            let _one_at_a_time = self.recording.lock().await;
            let batch = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|p| p.into_inner()));
            let (results, done): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            if let Err(e) = app.store.record_attempts(results).await {
                tracing::error!(error = %e, "could not record delivery attempts; their leases will retry them");
            }
            for d in done {
                let _ = d.send(());
            }
        }
        let _ = committed.await;
    }
}

/// The dispatcher: per-project limits and the global in-flight bound, shared
/// by all its rounds. The worker runs rounds in a loop; tests and admin calls
/// run the same rounds through [`deliver_due`].
pub struct Dispatcher {
    limits: Arc<Limits>,
    in_flight: Arc<Semaphore>,
    /// Signatures made at once: [`SIGNERS_PER_CORE`] per core.
    signers: Arc<Semaphore>,
    recorder: Arc<Recorder>,
}

impl Default for Dispatcher {
    fn default() -> Self {
        // A dispatcher is made per request with the `before_response` fault;
        // the core count (cgroup files on Linux) is read once per process.
        static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get));
        Self {
            limits: Arc::default(),
            in_flight: Arc::new(Semaphore::new(WEBHOOK_IN_FLIGHT_MAX)),
            signers: Arc::new(Semaphore::new(cores * SIGNERS_PER_CORE)),
            recorder: Arc::default(),
        }
    }
}

impl Dispatcher {
    /// One round: claims as many due webhooks as there is room for (leaving out
    /// projects whose queue is full), starts their deliveries, each of which
    /// records its own result, and gives back those it has no room for.
    /// Returns how many deliveries it started.
    pub async fn round(&self, app: &App) -> usize {
        let free = self.in_flight.available_permits().min(self.limits.room());
        if free == 0 {
            return 0;
        }
        let now = app.clock.now();
        let lease = app.config.webhook_lease.max(std::time::Duration::from_secs(WEBHOOK_LEASE_MIN_S));
        let lease_until = now + time::Duration::try_from(lease).unwrap_or(time::Duration::MAX);
        let full = self.limits.full_projects();
        let mut claimed = match app.store.claim_webhooks(now, lease_until, free, full.clone()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "could not claim webhooks");
                return 0;
            }
        };
        // A project on virtual time: its webhooks are due by its own clock.
        for (project, offset) in app.clocked_projects().await.into_iter().filter(|(p, _)| !full.contains(p)) {
            let own = OwnClaim::ahead(offset, now, lease_until);
            let room = free.saturating_sub(claimed.len());
            match app.store.claim_project_webhooks(&project, own, room).await {
                Ok(more) => claimed.extend(more),
                Err(e) => tracing::error!(error = %e, %project, "could not claim a clocked project's webhooks"),
            }
        }
        self.dispatch(app, claimed, Sender::Background).await
    }

    /// Starts the deliveries of `claimed` as their projects' faults say, gives
    /// back those held by a fault until their time and those it has no room
    /// for; how many it started.
    async fn dispatch(&self, app: &App, claimed: Vec<WebhookRecord>, sender: Sender) -> usize {
        let mut started = 0usize;
        let mut later: HashMap<time::OffsetDateTime, Vec<i64>> = HashMap::new();
        let busy_until = app.clock.now() + time::Duration::milliseconds(WEBHOOK_BUSY_RETRY_MS);
        for hook in claimed {
            let delivery = match apply_faults(app, &hook, sender).await {
                Ok(delivery) => delivery,
                Err(held_until) => {
                    later.entry(held_until).or_default().push(hook.id);
                    continue;
                }
            };
            match self.start(app, hook, delivery) {
                Ok(()) => started += 1,
                Err(id) => later.entry(busy_until).or_default().push(id),
            }
        }
        for (at, ids) in later {
            if let Err(e) = app.store.release_webhooks(ids, at).await {
                tracing::error!(error = %e, "could not give back held or busy webhooks; their lease will");
            }
        }
        started
    }

    /// Starts one delivery, or gives its id back when its project's queue or
    /// the global bound is full.
    fn start(&self, app: &App, hook: WebhookRecord, delivery: Delivery) -> Result<(), i64> {
        use std::sync::atomic::Ordering::SeqCst;
        let (semaphore, queued) = self.limits.entry(&hook.project_id);
        // A project may have only a short queue of claimed webhooks: deeper, and
        // the lease of the last would tick away while it waits.
        if queued.fetch_add(1, SeqCst) >= WEBHOOK_QUEUED_PER_PROJECT_MAX {
            queued.fetch_sub(1, SeqCst);
            return Err(hook.id);
        }
        // Gives the queue slot back however the delivery ends (a panic included).
        let slot = QueueSlot(queued.clone());
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else { return Err(hook.id) };
        let (app, signers, recorder) = (app.clone(), self.signers.clone(), self.recorder.clone());
        tokio::spawn(async move {
            // Signed before the project's permit: the permit bounds requests
            // to the partner, not the bank's CPU work, so the queue is signed
            // ahead on every core while the partner answers.
            let signature = sign(&app, &signers, &hook).await;
            let project_permit = semaphore.acquire_owned().await;
            let result = attempt(&app, &hook, delivery, signature).await;
            // The partner's endpoint is free: the project's next delivery may
            // start while this one's result is committed (the queue slot and
            // the global permit stay held until it is).
            drop(project_permit);
            app.metrics.delivery(&hook.project_id, crate::metrics::Delivery::of(&result));
            recorder.record(&app, result).await;
            drop((permit, slot));
            // Room for a batch: let the dispatcher claim again without waiting for its timer.
            if queued.load(std::sync::atomic::Ordering::SeqCst) <= WEBHOOK_REFILL_AT {
                app.webhook_wake.notify_one();
            }
        });
        Ok(())
    }

    /// Waits until every delivery started has recorded its result, at most `limit`.
    pub async fn drained(&self, limit: Duration) {
        let all = u32::try_from(WEBHOOK_IN_FLIGHT_MAX).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(limit, self.in_flight.acquire_many(all)).await;
    }
}

/// With the project's `before_response` fault: runs the bank's steps that
/// are already due (as a bank faster than its own API would; a payout's
/// `ready_to_confirm` is mostly written by the request itself now), then delivers the project's
/// due webhooks (the ones this request made among them) and waits for them,
/// all before the request answers. The race a partner must survive: a
/// webhook about a session whose id its own request has not returned yet.
/// Without the fault, does nothing.
pub async fn before_response(app: &App, project: &crate::projects::Project) {
    if project.settings.webhook_faults.before_response() {
        // Boxed: the work's future is about 8 KiB, and unboxed it would be
        // part of every mutating request's future, fault or not.
        Box::pin(run_before_response(app, project)).await;
    }
}

/// [`before_response`]'s work, for a project with the fault.
async fn run_before_response(app: &App, project: &crate::projects::Project) {
    if let Err(e) = crate::api::processor::process_due(app).await {
        tracing::warn!(error = %e, "could not run the due steps before the response; they run after it");
    }
    let real = app.clock.now();
    let lease = app.config.webhook_lease.max(std::time::Duration::from_secs(WEBHOOK_LEASE_MIN_S));
    let lease_until = real + time::Duration::try_from(lease).unwrap_or(time::Duration::MAX);
    let own = OwnClaim::ahead(project.settings.clock_offset, real, lease_until);
    let claimed = match app.store.claim_project_webhooks(&project.id, own, WEBHOOK_CONCURRENCY_PER_PROJECT).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::error!(error = %e, "could not claim webhooks to send before the response; they go after it");
            return;
        }
    };
    let dispatcher = Dispatcher::default();
    dispatcher.dispatch(app, claimed, Sender::Request).await;
    dispatcher.drained(app.config.webhook_timeout * 2 + Duration::from_secs(1)).await;
}

/// Attempts every webhook due now with the production dispatcher, round after
/// round until a round starts nothing, waiting for each round's deliveries
/// (tests drive time by hand and call this). Returns how many were attempted.
pub async fn deliver_due(app: &App) -> anyhow::Result<usize> {
    let dispatcher = Dispatcher::default();
    let mut attempted = 0;
    loop {
        let started = dispatcher.round(app).await;
        dispatcher.drained(app.config.webhook_timeout + Duration::from_secs(1)).await;
        if started == 0 {
            return Ok(attempted);
        }
        attempted += started;
    }
}

/// The worker: keeps up to [`WEBHOOK_IN_FLIGHT_MAX`] deliveries going. A
/// project may hold at most [`WEBHOOK_QUEUED_PER_PROJECT_MAX`] claimed webhooks,
/// and claims leave out the projects whose queue is full, so a slow partner
/// holds at most that many of the global slots and its backlog is not claimed
/// again and again. On shutdown, deliveries in flight finish (bounded by their
/// timeout) before it returns.
pub async fn run_worker(app: App, stop: watch::Receiver<bool>) {
    let dispatcher = Dispatcher::default();
    let wake = app.webhook_wake.clone();
    crate::worker::run_loop("webhook dispatcher", stop, Some(wake), || async {
        if dispatcher.round(&app).await > 0 {
            return Pace::Again;
        }
        let wait = match app.store.next_webhook_at().await {
            Ok(Some(at)) => Duration::try_from(at - app.clock.now()).unwrap_or(Duration::ZERO),
            _ => Duration::from_millis(DISPATCHER_IDLE_MAX_MS),
        };
        Pace::Idle(wait.clamp(Duration::from_millis(5), Duration::from_millis(DISPATCHER_IDLE_MAX_MS)))
    })
    .await;
    dispatcher.drained(app.config.webhook_timeout + Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A claim takes what the known queues can hold, so nothing is fetched
    /// only to be given back; when every known queue is full, a little for
    /// projects not seen yet.
    #[test]
    fn a_claim_is_sized_to_the_room_left() {
        use std::sync::atomic::Ordering::SeqCst;
        let limits = Limits::default();
        assert_eq!(limits.room(), WEBHOOK_CLAIM_SLACK, "no project seen yet");
        let (_, a) = limits.entry("a");
        a.store(10, SeqCst);
        assert_eq!(limits.room(), WEBHOOK_QUEUED_PER_PROJECT_MAX - 10);
        let (_, b) = limits.entry("b");
        b.store(WEBHOOK_QUEUED_PER_PROJECT_MAX, SeqCst);
        assert_eq!(limits.room(), WEBHOOK_QUEUED_PER_PROJECT_MAX - 10, "a full queue adds nothing");
        assert_eq!(limits.full_projects(), ["b"]);
        a.store(WEBHOOK_QUEUED_PER_PROJECT_MAX, SeqCst);
        assert_eq!(limits.room(), WEBHOOK_CLAIM_SLACK, "all full: room for projects not seen yet");
    }

    #[test]
    fn schedule_doubles_with_jitter_and_caps() {
        assert_eq!(retry_delay(1, 0.5), Duration::from_secs(5));
        assert_eq!(retry_delay(2, 0.5), Duration::from_secs(10));
        assert_eq!(retry_delay(3, 0.0), Duration::from_secs(16));
        assert_eq!(retry_delay(20, 0.5), Duration::from_secs(3600));
        assert!(retry_delay(1, 0.999) < Duration::from_secs(6));
        let total: f64 = (1..WEBHOOK_ATTEMPTS_MAX).map(|n| retry_delay(n, 0.5).as_secs_f64()).sum();
        assert!((20.0 * 3600.0..24.0 * 3600.0).contains(&total), "{total}");
    }
}
