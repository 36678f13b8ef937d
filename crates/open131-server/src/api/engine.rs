//! Applying an event to a session: the pure machines decide
//! ([`session::apply`] routes it to the session's or its operation's: a payout
//! or an acquiring payment), this
//! module turns their effects, in the shared vocabulary of
//! [`open131_domain::lifecycle`], into one atomic store write (new states,
//! ledger movements, webhook rows, timers) and handles the two races the
//! database reports:
//! a concurrent change (re-read, recompute) and an empty wallet (the
//! `ReserveRefused` event from the same starting phase).
//! A change fired by one of the bank's timers (or a payout's start) runs on
//! through the next timer its machine asks for when that one is already due
//! ([`chain_due`]), in the same write.

use open131_domain::books;
use open131_domain::ledger::{self, Book, Leg, Movement};
use open131_domain::lifecycle::{Effect, Settled, Timer, WebhookKind};
use open131_domain::payment::{self, Verdict};
use open131_domain::payment_flow::{self, PaymentEvent, PaymentState, THREE_DS_CODE_ATTEMPTS_MAX};
use open131_domain::payout::SandboxPlan;
use open131_domain::payout_flow::{self, PayoutEvent, PayoutState};
use open131_domain::personal::Personal;
use open131_domain::receipt::{CancelReason, Receipt, ReceiptEvent, WrongReceiptState};
use open131_domain::refund_flow::{self, RefundEvent, RefundState, RefundWrongState};
use open131_domain::session::{self, ApiVersion, Event, Operation, SessionState, Snapshot, WrongState};
use open131_domain::split::Taken;
use open131_domain::subscription::{self, Schedule, SubscriptionEvent, SubscriptionState};
use open131_store::{
    NewWebhook, PaymentRecord, PaymentRefundRecord, PayoutRecord, ProjectSettings, RecurrentToken, SessionRecord,
    SessionWrite, StoreError, SubscriptionRecord, SubscriptionWrite, WriteOutcome,
};
use open131_wire::api::WebhookBody;
use time::OffsetDateTime;

use super::render;
use crate::app::App;

/// Times a change is recomputed after losing a race before giving up.
pub const VERSION_CONFLICT_RETRIES_MAX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    WrongState(#[from] WrongState),
    #[error(transparent)]
    RefundWrongState(#[from] RefundWrongState),
    #[error("idempotency key already used")]
    Idempotency,
    #[error("the refund is larger than what is left to refund")]
    RefundTooLarge,
    /// A timer's event lost a race with another change of its session: the
    /// event was worked out from a state that is gone, so it is not applied;
    /// the timer stays claimed and fires again, its event worked out afresh.
    #[error("a timer's session changed meanwhile")]
    TimerRaced,
    #[error(transparent)]
    ReceiptWrongState(#[from] WrongReceiptState),
    /// The session has no succeeded payout with a receipt to change.
    #[error("the session has no receipt")]
    NoReceipt,
    /// `fiscalization` for a payout that has its receipt's details already.
    #[error("the payout has a receipt already")]
    ReceiptExists,
    #[error("no such session")]
    NoSuchSession,
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("could not apply the change: {0}")]
    Internal(String),
}

/// How to apply an event.
#[derive(Debug, Clone, Default)]
pub struct Apply {
    pub idempotency: Option<(String, String)>,
    pub consumed_timer: Option<Timer>,
    /// The payout that [`Event::StartPayout`] starts; the payout machine sets its state.
    pub new_payout: Option<PayoutRecord>,
    /// The payment that [`Event::StartPayment`] starts.
    pub new_payment: Option<PaymentRecord>,
    /// A multi-session's payouts, in [`PayoutState::Waiting`], joining with
    /// [`Apply::new_payment`] to begin in turn after it.
    pub waiting_payouts: Vec<PayoutRecord>,
    /// What a partial `session/capture` takes (minor units; the rest is released).
    pub capture_amount: Option<i64>,
    /// The refund that [`RefundEvent::Start`] starts (in `Requested`).
    pub new_refund: Option<PaymentRefundRecord>,
    /// The new refund takes all that is left to refund, sized on the record
    /// being written (so a concurrent refund leaves it the true rest).
    pub refund_rest: bool,
    /// A subscription's charge begins: the subscription moved to its next
    /// point, written with the charge's session (a stale version writes neither).
    pub subscription: Option<SubscriptionWrite>,
    /// The receipt's details `fiscalization` gives a succeeded payout that
    /// went without (JSON, `fiscal::Fiscalization::wire`): its first try follows.
    pub new_fiscalization: Option<Personal<String>>,
}

/// What reaches a session: an event of the session or its operation, or of
/// one refund of its payment (refunds have their own machine,
/// [`refund_flow`], one per refund).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Session(Event),
    Refund {
        id: String,
        event: RefundEvent,
    },
    /// The receipt of the session's payout (its own machine, [`open131_domain::receipt`]).
    Receipt(ReceiptChange),
}

/// What reaches a payout's receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptChange {
    /// A registration try: the tax service's answer is worked out from the
    /// receipt as it is when written (`Receipt::next_try`).
    Try,
    Cancel(CancelReason),
}

fn timer_due(
    app: &App,
    record: &SessionRecord,
    timer: Timer,
    settings: &ProjectSettings,
    now: OffsetDateTime,
) -> OffsetDateTime {
    let c = &app.config;
    let seconds = |s: i64| std::time::Duration::from_secs(s.max(0).unsigned_abs());
    let std = match timer {
        Timer::Prepare => c.payout_prepare_delay,
        // Also how long a customer has for 3-D Secure.
        Timer::ConfirmTimeout => seconds(settings.confirm_timeout_s),
        Timer::ProviderResult => {
            let slow = match record.payout() {
                Some(p) => p.plan == SandboxPlan::SucceedSlowly,
                None => record.payment().is_some_and(|p| p.plan.verdict == Verdict::AuthorizeSlowly),
            };
            if slow {
                c.payout_slow_delay
            } else {
                c.payout_processing_delay
            }
        }
        Timer::BankReturn => c.bank_return_delay,
        Timer::CaptureTimeout => seconds(settings.capture_timeout_s),
        Timer::RefundResult => c.payout_processing_delay,
        // The schedule is the receipt's own: its due time is the moment itself.
        Timer::ReceiptRetry => {
            let at = record.payout().and_then(|p| p.receipt).and_then(|r| r.retry_at());
            return at.unwrap_or(now);
        }
    };
    now + time::Duration::try_from(std).unwrap_or(time::Duration::ZERO)
}

/// `N` random bytes (the clock's nanoseconds, should the system's generator fail).
pub(super) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if N > RANDOM_POOL_BYTES {
        fill_random(&mut bytes);
    } else {
        RANDOM_POOL.with_borrow_mut(|pool| pool.take(&mut bytes));
    }
    bytes
}

/// Bytes drawn from the system's generator at a time, per thread. Why a
/// pool: each id took one call of the generator, and `perf` put those
/// calls at about 1 % of `session/init/payout`, nearly all of it the call's
/// own cost (its locking and reseeding checks), not the bytes.
const RANDOM_POOL_BYTES: usize = 256;

thread_local! {
    static RANDOM_POOL: std::cell::RefCell<RandomPool> =
        const { std::cell::RefCell::new(RandomPool { bytes: [0; RANDOM_POOL_BYTES], used: RANDOM_POOL_BYTES }) };
}

/// Random bytes not yet handed out (`bytes[used..]`); a byte handed out is
/// zeroed, so no two callers ever get the same one.
struct RandomPool {
    bytes: [u8; RANDOM_POOL_BYTES],
    used: usize,
}

impl RandomPool {
    fn take(&mut self, out: &mut [u8]) {
        if RANDOM_POOL_BYTES - self.used < out.len() {
            if aws_lc_rs::rand::fill(&mut self.bytes).is_err() {
                // Nothing is kept from a failed refill: this call alone gets
                // the clock, and the next one asks the generator again.
                self.bytes.fill(0);
                self.used = RANDOM_POOL_BYTES;
                clock_bytes(out);
                return;
            }
            self.used = 0;
        }
        let taken = &mut self.bytes[self.used..self.used + out.len()];
        out.copy_from_slice(taken);
        taken.fill(0);
        self.used += out.len();
    }
}

fn fill_random(out: &mut [u8]) {
    if aws_lc_rs::rand::fill(out).is_err() {
        clock_bytes(out);
    }
}

/// The clock's nanoseconds, repeated: what a failing generator leaves.
fn clock_bytes(out: &mut [u8]) {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos().to_le_bytes();
    for (b, n) in out.iter_mut().zip(nanos.iter().cycle()) {
        *b = *n;
    }
}

/// Random digits after an id's millisecond: as many as the whole id had
/// before it began with the time (the 3-D Secure and receipt pages take a
/// session's id as their capability, so it must stay as hard to guess).
const ID_RANDOM_SPACE: u64 = 10_000_000_000_000_000;

/// A new id: `prefix`, the millisecond of its making, then sixteen random digits.
///
/// Why the time first: ids are the keys of their tables' indexes, and an id
/// made of random digits alone lands on a random page of each index, so a
/// group commit of N new rows wrote about N pages per index (measured: 2.5×
/// the writer's time per row of ids that grow with time). Ids of one
/// millisecond sit together at the end of the index. The random digits keep
/// ids unguessable, and nothing in them counts operations: sequential ids
/// would tell a partner how busy other partners are.
pub(crate) fn new_id(prefix: &str) -> String {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let random = u64::from_le_bytes(random_bytes()) % ID_RANDOM_SPACE;
    format!("{prefix}{ms}{random:016}")
}

pub fn new_session_id() -> String {
    new_id("ps_")
}

pub fn new_payout_id() -> String {
    new_id("po_")
}

pub fn new_payment_id() -> String {
    new_id("pm_")
}

pub fn new_refund_id() -> String {
    new_id("rf_")
}

/// Applies `event` to `record` (re-reading it after a lost race) and returns the committed state,
/// except after a payout's start that ran on through the bank's steps ([`runs_on`]): then the
/// session as the start left it (what the partner is answered), with the version written. Render
/// it; read the session again before another change.
/// `record.version == 0` in `Created` means "a session not yet stored": it is created.
pub async fn apply(app: &App, record: SessionRecord, event: Event, how: Apply) -> Result<SessionRecord, EngineError> {
    apply_change(app, record, Change::Session(event), how).await
}

/// Applies `change` to the receipt of the session's succeeded payout (its
/// details come in [`Apply::new_fiscalization`] when they come late).
pub async fn apply_receipt(
    app: &App,
    record: SessionRecord,
    change: ReceiptChange,
    how: Apply,
) -> Result<SessionRecord, EngineError> {
    apply_change(app, record, Change::Receipt(change), how).await
}

/// Applies `event` to the refund `id` of the session's payment (a new one
/// comes in [`Apply::new_refund`]).
pub async fn apply_refund(
    app: &App,
    record: SessionRecord,
    id: &str,
    event: RefundEvent,
    how: Apply,
) -> Result<SessionRecord, EngineError> {
    apply_change(app, record, Change::Refund { id: id.to_string(), event }, how).await
}

/// The record after a change, the effects its machine asked for, and whether
/// a multi-session's waiting payout begins now (its money is told apart from
/// the change's own, so it begins after their legs are worked out).
type StepResult = Result<(SessionRecord, Vec<Effect>, bool), EngineError>;

/// The record after `change` and the effects its machine asked for.
fn step(record: &SessionRecord, change: &Change, how: &Apply, now: OffsetDateTime, refusals: u32) -> StepResult {
    match change {
        Change::Receipt(change) => {
            let mut next = record.clone();
            let effects = receipt_step(&mut next, *change, how, now, refusals)?;
            Ok((next, effects, false))
        }
        Change::Session(event) => {
            // A wrong code's `last` is judged on the record as it is now (two
            // codes typed at once must not both count as not the last).
            let event = match (event, record.running_payment()) {
                (Event::Payment(PaymentEvent::ThreeDsWrongCode { .. }), Some(p)) => {
                    let last = p.three_ds_attempts.saturating_add(1) >= THREE_DS_CODE_ATTEMPTS_MAX;
                    &Event::Payment(PaymentEvent::ThreeDsWrongCode { last })
                }
                _ => event,
            };
            let before = snapshot_of(record);
            let (snapshot, effects) = session::apply(before, *event)?;
            let mut next = with_states(record, snapshot, how);
            if let (Event::Payment(PaymentEvent::ThreeDsWrongCode { .. }), Some(p)) = (event, next.payments.first_mut())
            {
                p.three_ds_attempts = p.three_ds_attempts.saturating_add(1);
            }
            match snapshot.operation {
                Some(Operation::Payout(_)) if next.payouts.is_empty() => {
                    return Err(EngineError::Internal("a payout started without its record".into()))
                }
                Some(Operation::Payment(_)) if next.payments.is_empty() => {
                    return Err(EngineError::Internal("a payment started without its record".into()))
                }
                _ => {}
            }
            if session::is_final(snapshot.session) && record.finished_at.is_none() {
                next.finished_at = Some(now);
            }
            issue_recurrent_token(&mut next, now);
            let mut effects = effects;
            // A payout to the self-employed that has just succeeded: its receipt's first try.
            let receipt_due = next
                .payout()
                .is_some_and(|p| p.state == PayoutState::Succeeded && p.fiscalization.is_some() && p.receipt.is_none());
            if receipt_due {
                effects.extend(receipt_step(&mut next, ReceiptChange::Try, how, now, refusals)?);
            }
            // The operation succeeded with another waiting: its turn has come.
            let succeeded_now = before.operation.and_then(Operation::settled).is_none()
                && snapshot.operation.and_then(Operation::settled) == Some(Settled::Succeeded);
            let begin = succeeded_now && snapshot.waiting && next.state == SessionState::InProgress;
            Ok((next, effects, begin))
        }
        Change::Refund { id, event } => {
            let mut next = record.clone();
            let payment =
                next.payments.first_mut().ok_or_else(|| EngineError::Internal("a refund without a payment".into()))?;
            if !payment.refunds.iter().any(|r| &r.id == id) {
                let rest = payment.refundable();
                let new = how.new_refund.clone().filter(|r| &r.id == id);
                let new = new.map(|r| if how.refund_rest { PaymentRefundRecord { amount: rest, ..r } } else { r });
                if new.as_ref().is_some_and(|r| r.amount <= 0) {
                    return Err(EngineError::RefundTooLarge);
                }
                payment.refunds.extend(new);
            }
            let refund = payment.refunds.iter_mut().find(|r| &r.id == id).ok_or(EngineError::NoSuchSession)?;
            let (state, effects) = refund_flow::transition(refund.state, *event)?;
            refund.state = state;
            if refund_flow::is_final(state) {
                refund.finished_at = Some(now);
            }
            // Checked on the record as it is now, so concurrent refunds never exceed the capture.
            if *event == RefundEvent::Start && payment.refundable() < 0 {
                return Err(EngineError::RefundTooLarge);
            }
            let mut effects = effects;
            // One timer serves all the payment's refunds: while another still
            // waits for the bank, the one this change consumes is set again.
            let others_wait = payment.refunds.iter().any(|r| &r.id != id && r.state == RefundState::InProgress);
            if refund_flow::is_final(state) && others_wait {
                effects.push(Effect::Schedule(Timer::RefundResult));
            }
            Ok((next, effects, false))
        }
    }
}

async fn apply_change(
    app: &App,
    mut record: SessionRecord,
    mut change: Change,
    how: Apply,
) -> Result<SessionRecord, EngineError> {
    // The settings as cached (re-read within `PROJECT_CACHE_TTL_MS`).
    let settings = match app.projects.get(&record.project_id).await? {
        Some(p) => p.settings.clone(),
        None => return Err(EngineError::Internal("session of an unknown project".into())),
    };
    // Read from the tax service only when a change tries a receipt.
    let mut refusals = None;
    for _ in 0..VERSION_CONFLICT_RETRIES_MAX {
        let now = settings.clock_offset.apply(app.clock.now());
        let mut stepped = step(&record, &change, &how, now, refusals.unwrap_or(0))?;
        if refusals.is_none() && tried_receipt(&record, &stepped.0) {
            refusals = Some(receipt_refusals(app, &stepped.0).await?);
            stepped = step(&record, &change, &how, now, refusals.unwrap_or(0))?;
        }
        let (mut next, effects, begin) = stepped;
        next.updated_at = now;
        let mut out = Carried::default();
        let at = At { app, settings: &settings, now };
        out.carry(&at, &change, &how, &mut next, &effects)?;
        if begin {
            let begun = begin_waiting(&mut next)?;
            out.carry(&at, &change, &how, &mut next, &begun)?;
        }
        let mut webhooks = Vec::new();
        // What the partner is answered: the session as its own step left it.
        let mut answered = None;
        if !begin && runs_on(&change, &how) {
            if how.consumed_timer.is_none() {
                answered = Some(next.clone());
            }
            next = chain_due(&at, &how, next, &mut out, &mut webhooks)?;
        }
        stamp_finished(&mut next, now);
        let subscription = match &how.subscription {
            Some(charge) => Some(charge.clone()),
            None => subscription_change(app, &record, &mut next, now).await?,
        };
        let Carried { movements, timers, kinds } = out;
        webhooks.extend(render_webhooks(&at, &next, &kinds)?);
        let creating = record.version == 0;
        let write = SessionWrite {
            expected_version: (!creating).then_some(record.version),
            record: next.clone(),
            idempotency: how.idempotency.clone(),
            movements,
            webhooks,
            timers,
            consumed_timer: how.consumed_timer,
            subscription,
        };
        // A webhook of a project without a URL is parked by its own insert: no
        // delivery to wake the dispatcher for. Under load a wake per write kept
        // it in back-to-back rounds that found nothing. If the cached settings
        // are stale, the dispatcher's idle limit bounds the wait.
        let has_webhooks = !write.webhooks.is_empty() && settings.webhook_url.is_some();
        // Only a timer due already needs the processor now: an idle one looks
        // again within `PROCESSOR_IDLE_MAX_MS` and fires only what is due, so a
        // wake for a later timer (a confirmation's timeout) makes an empty round.
        let has_timers = write.timers.iter().any(|(_, due)| *due <= now);
        match app.store.write_session(write, now).await? {
            WriteOutcome::Applied(version) => {
                let mut next = answered.unwrap_or(next);
                next.version = version;
                if has_webhooks {
                    app.webhook_wake.notify_one();
                }
                if has_timers {
                    app.processor_wake.notify_one();
                }
                return Ok(next);
            }
            WriteOutcome::IdempotencyConflict => return Err(EngineError::Idempotency),
            WriteOutcome::Insufficient => {
                // Same starting state, the ledger's answer as the event.
                change = match change {
                    Change::Session(_) if record.runs_payout() => {
                        Change::Session(Event::Payout(PayoutEvent::ReserveRefused))
                    }
                    Change::Refund { id, event: RefundEvent::Start } => {
                        Change::Refund { id, event: RefundEvent::ReserveRefused }
                    }
                    _ => return Err(EngineError::Internal("the ledger refused a card payment's movement".into())),
                }
            }
            WriteOutcome::VersionConflict if how.consumed_timer.is_some() => return Err(EngineError::TimerRaced),
            WriteOutcome::VersionConflict => {
                record = app.store.session(&record.project_id, &record.id).await?.ok_or(EngineError::NoSuchSession)?;
            }
        }
    }
    Err(EngineError::Internal("too many concurrent changes to one session".into()))
}

/// Most timers a timer-fired change (or a payout's start) runs on in the same write ([`chain_due`]).
pub const CHAINED_STEPS_MAX: usize = 4;

/// The webhooks of `kinds`, each showing the session as `next` stands.
fn render_webhooks(at: &At<'_>, next: &SessionRecord, kinds: &[WebhookKind]) -> Result<Vec<NewWebhook>, EngineError> {
    let naming = at.settings.webhook_naming.for_session(next.api_version);
    kinds
        .iter()
        .map(|kind| {
            let body = WebhookBody {
                kind: kind.as_str().to_string(),
                session: super::render::session(next, naming, at.app.public_url()),
                confirm_information: (*kind == WebhookKind::ReadyToConfirm)
                    .then(|| confirm_information(next, naming))
                    .flatten(),
            };
            serde_json::to_vec(&body)
                .map(|body| NewWebhook { kind: kind.as_str().to_string(), body })
                .map_err(|e| EngineError::Internal(e.to_string()))
        })
        .collect()
}

/// Whether a change runs on through the bank's timers that are due at once
/// ([`chain_due`]): every change a timer fires, and a payout's start (the
/// bank's preparation with no delay configured is then written with the
/// session: one write per new payout instead of a write, a claim, a read and a
/// second write). Other changes of the partner are left to their timers, so
/// that what answers them (a confirmation, a card payment) is not the
/// provider's verdict.
fn runs_on(change: &Change, how: &Apply) -> bool {
    how.consumed_timer.is_some() || matches!(change, Change::Session(Event::StartPayout))
}

/// A change whose machine asks for another of the bank's timers that is due
/// already (no delay configured) goes on at once, in the same write: the
/// bank's side of a flow commits once instead of once per timer, and nothing
/// is claimed, read and written again. Each step's webhooks show the session
/// as that step left it; a partner's request is answered with the session as
/// its own step left it (the record returned then is that one, with the
/// version written).
fn chain_due(
    at: &At<'_>,
    how: &Apply,
    mut next: SessionRecord,
    out: &mut Carried,
    webhooks: &mut Vec<NewWebhook>,
) -> Result<SessionRecord, EngineError> {
    for _ in 0..CHAINED_STEPS_MAX {
        let due = out.timers.iter().position(|(t, due)| *due <= at.now && chainable(&next, *t));
        let Some(i) = due else { break };
        let Some(event) = super::processor::timer_event(&next, out.timers[i].0, at.settings) else { break };
        let change = Change::Session(event);
        // A step that begins a waiting payout or reserves money (the ledger may
        // refuse it, and the refusal is an event of its own), or one the state
        // refuses, is left to the timer.
        let reserves = |effects: &[Effect]| effects.contains(&Effect::Ledger(Movement::Reserve));
        let (mut after, effects, _) = match step(&next, &change, how, at.now, 0) {
            Ok(stepped) if !stepped.2 && !reserves(&stepped.1) => stepped,
            Ok(_) | Err(EngineError::WrongState(_)) => break,
            Err(e) => return Err(e),
        };
        out.timers.remove(i);
        webhooks.extend(render_webhooks(at, &next, &std::mem::take(&mut out.kinds))?);
        after.updated_at = at.now;
        out.carry(at, &change, how, &mut after, &effects)?;
        next = after;
    }
    Ok(next)
}

/// Timers run on at once: the bank's preparation and the provider's or the
/// issuer's verdict, except where the verdict asks for more than the
/// session (a self-employed payout's receipt asks the tax service; a
/// recurrent payment's token is checked at the issuer) or a multi-session
/// has payouts waiting their turn.
fn chainable(next: &SessionRecord, timer: Timer) -> bool {
    matches!(timer, Timer::Prepare | Timer::ProviderResult)
        && next.payout().is_none_or(|p| p.fiscalization.is_none())
        && next.payment().is_none_or(|p| !p.method_masked.contains("\"recurrent\""))
        && !next.has_waiting()
}

/// What a change's effects become in its write: ledger legs, timers with
/// their due times, and the kinds of webhooks to send.
#[derive(Default)]
struct Carried {
    movements: Vec<Leg>,
    timers: Vec<(Timer, OffsetDateTime)>,
    kinds: Vec<WebhookKind>,
}

/// Where and when a change's effects are carried out.
struct At<'a> {
    app: &'a App,
    settings: &'a ProjectSettings,
    now: OffsetDateTime,
}

impl Carried {
    /// Adds `effects`, asked for by the operation that runs in `next`.
    fn carry(
        &mut self,
        at: &At<'_>,
        change: &Change,
        how: &Apply,
        next: &mut SessionRecord,
        effects: &[Effect],
    ) -> Result<(), EngineError> {
        for effect in effects {
            match effect {
                Effect::Ledger(movement) if matches!(change, Change::Refund { .. }) => {
                    let Change::Refund { id, .. } = change else { continue };
                    self.movements.extend(refund_legs(next, id, *movement)?.into_iter().map(|l| l.of(id)));
                }
                // A multi-session holds a payment and payouts: the kind of
                // movement tells whose money it is.
                Effect::Ledger(movement) if !movement.is_acquiring() => {
                    let payout =
                        next.payout().ok_or_else(|| EngineError::Internal("money moved without a payout".into()))?;
                    let legs = ledger::legs(*movement, &payout.funding(next.book));
                    self.movements.extend(legs.into_iter().map(|l| l.of(&payout.id)));
                    if *movement == Movement::Return {
                        next.refund = Some(open131_store::RefundRecord { id: new_id("rf_"), created_at: at.now });
                    }
                }
                Effect::Ledger(movement) => {
                    let legs = payment_legs(next, *movement, how, at.settings)?;
                    let id = next.payment().map(|p| p.id.clone()).unwrap_or_default();
                    self.movements.extend(legs.into_iter().map(|l| l.of(&id)));
                }
                // SberPay from a desktop browser has no redirect to announce.
                Effect::Webhook(WebhookKind::ActionRequired)
                    if next.payment().is_some_and(|p| !payment::sends_action_required(&render::method(p))) => {}
                Effect::Webhook(kind) => self.kinds.push(*kind),
                Effect::Schedule(t) => self.timers.push((*t, timer_due(at.app, next, *t, at.settings, at.now))),
            }
        }
        Ok(())
    }
}

/// The receipt of `next`'s payout after `change`; a retry to schedule, if any.
fn receipt_step(
    next: &mut SessionRecord,
    change: ReceiptChange,
    how: &Apply,
    now: OffsetDateTime,
    refusals: u32,
) -> Result<Vec<Effect>, EngineError> {
    let payout = next.payouts.iter_mut().rev().find(|p| p.state != PayoutState::Waiting);
    let payout = payout.filter(|p| p.state == PayoutState::Succeeded).ok_or(EngineError::NoReceipt)?;
    if let Some(details) = &how.new_fiscalization {
        if payout.fiscalization.is_some() {
            return Err(EngineError::ReceiptExists);
        }
        payout.fiscalization = Some(details.clone());
    }
    if payout.fiscalization.is_none() {
        return Err(EngineError::NoReceipt);
    }
    let receipt = payout.receipt.unwrap_or_else(|| Receipt::new(now));
    let event = match change {
        ReceiptChange::Try => receipt.next_try(refusals),
        ReceiptChange::Cancel(reason) => ReceiptEvent::Cancel(reason),
    };
    let (after, retry) = receipt.apply(event, now)?;
    payout.receipt = Some(after);
    Ok(retry.map(|_| Effect::Schedule(Timer::ReceiptRetry)).into_iter().collect())
}

/// Whether the change from `before` to `next` made a registration try of
/// the payout's receipt (its answer depends on the tax service).
fn tried_receipt(before: &SessionRecord, next: &SessionRecord) -> bool {
    let attempts = |r: &SessionRecord| r.payout().and_then(|p| p.receipt).map_or(0, |r| r.attempts);
    attempts(next) > attempts(before)
}

/// How many registrations of each receipt the tax service refuses for the
/// person `next`'s payout pays: the sandbox's or the operator's count, and
/// every one while the service fails or the person is not self-employed.
async fn receipt_refusals(app: &App, next: &SessionRecord) -> Result<u32, EngineError> {
    let Some(stored) = next.payout().and_then(|p| p.fiscalization.as_ref()) else { return Ok(0) };
    let fiscal = open131_domain::fiscal::Fiscalization::parse_stored(stored.expose())
        .ok_or_else(|| EngineError::Internal("a payout's stored fiscalization does not parse".into()))?;
    let taxpayer = super::npd::taxpayer(app, &fiscal.tax_reference).await?;
    let refuses_all = taxpayer.service_error || taxpayer.status != open131_domain::npd::TaxStatus::SelfEmployed;
    Ok(if refuses_all { u32::MAX } else { taxpayer.receipt_refusals })
}

/// How long a recurrent token is said to last (`finished_at`, informative:
/// the bank does not expire tokens by it) `[INF]`.
pub const RECURRENT_TOKEN_VALIDITY_DAYS: i64 = 3 * 365;

/// A payment that asked to save the card gets its token when it succeeds.
fn issue_recurrent_token(next: &mut SessionRecord, now: OffsetDateTime) {
    let Some(p) = next.payments.first_mut() else { return };
    if p.state == PaymentState::Succeeded && p.recurrent && p.recurrent_token.is_none() {
        p.recurrent_token = Some(RecurrentToken {
            token: new_token(),
            created_at: now,
            finished_at: now + time::Duration::days(RECURRENT_TOKEN_VALIDITY_DAYS),
            is_active: true,
        });
    }
}

/// The subscription a change makes or moves: a first payment that succeeds
/// makes it (its first charge a period on); a charge that ends counts for it
/// (a decline towards `retries_exceeded`, a success clears the count; a
/// cancelled charge counts for nothing).
async fn subscription_change(
    app: &App,
    before: &SessionRecord,
    next: &mut SessionRecord,
    now: OffsetDateTime,
) -> Result<Option<SubscriptionWrite>, EngineError> {
    let (project_id, session_id, api_version) = (next.project_id.clone(), next.id.clone(), next.api_version);
    let submerchant = next.submerchant.clone();
    let was_settled = before.payment().is_some_and(|p| payment_flow::settled(p.state).is_some());
    let Some(p) = next.payments.first_mut() else { return Ok(None) };
    let settled = payment_flow::settled(p.state);
    let Some(sub) = p.subscription.as_mut() else { return Ok(None) };
    if was_settled || settled.is_none() {
        return Ok(None);
    }
    if sub.initial {
        if settled != Some(Settled::Succeeded) || sub.id.is_some() {
            return Ok(None);
        }
        let schedule = Schedule {
            state: SubscriptionState::Active,
            period: sub.period,
            anchor: now,
            next_point: sub.period.after(now),
            failures: 0,
            charges: 0,
        };
        let id = new_id("sub_");
        (sub.id, sub.schedule) = (Some(id.clone()), Some(schedule));
        let record = SubscriptionRecord {
            project_id,
            id,
            version: 1,
            schedule,
            // What the first payment took (a hold may be captured in part).
            amount: p.captured(),
            currency: p.currency.clone(),
            method_masked: p.method_masked.clone(),
            card_expiry: p.card_expiry,
            customer: p.customer.clone(),
            metadata: p.metadata.clone(),
            api_version,
            first_session_id: session_id,
            submerchant,
            created_at: now,
            updated_at: now,
        };
        return Ok(Some(SubscriptionWrite { expected_version: None, record }));
    }
    let event = match settled {
        Some(Settled::Succeeded) => SubscriptionEvent::ChargeSucceeded,
        Some(Settled::Failed) => SubscriptionEvent::ChargeFailed,
        _ => return Ok(None),
    };
    let Some(id) = sub.id.as_deref() else { return Ok(None) };
    let Some(current) = app.store.subscription(&project_id, id).await? else { return Ok(None) };
    let schedule =
        subscription::transition(current.schedule, event, now).map_err(|e| EngineError::Internal(e.to_string()))?;
    sub.schedule = Some(schedule);
    let expected_version = Some(current.version);
    Ok(Some(SubscriptionWrite {
        expected_version,
        record: SubscriptionRecord { schedule, updated_at: now, ..current },
    }))
}

/// A recurrent token: 128 random bits, hex.
fn new_token() -> String {
    let bytes: [u8; 16] = random_bytes();
    format!("rt_{}", open131_wire::sign::hex(&bytes))
}

/// The legs of a refund's movement: its amount, on the payment's book and
/// currency. A split payment's refund first takes back each contractor's
/// share of it (recorded on the refund) and, declined, gives it back.
fn refund_legs(next: &mut SessionRecord, id: &str, movement: Movement) -> Result<Vec<Leg>, EngineError> {
    let book = next.book;
    let payment =
        next.payments.first_mut().ok_or_else(|| EngineError::Internal("a refund without a payment".into()))?;
    let index = payment.refunds.iter().position(|r| r.id == id).ok_or(EngineError::NoSuchSession)?;
    if let (Movement::Reserve, Some(split)) = (movement, &payment.split) {
        let counted = || payment.refunds.iter().filter(|r| refund_flow::counts(r.state));
        let refunded_after: i64 = counted().map(|r| r.amount).sum();
        let before: Vec<&Taken> = counted().filter(|r| r.id != id).map(|r| &r.split).collect();
        let taken = split.take_back(payment.captured(), refunded_after, payment.refunds[index].amount, &before);
        payment.refunds[index].split = taken;
    }
    let (currency, refund) = (&payment.currency, &payment.refunds[index]);
    let split = |movement| split_legs(book, currency, movement, refund.split.0.iter().map(|(a, n)| (a.as_str(), *n)));
    let mut legs = Vec::new();
    if movement == Movement::Reserve {
        legs.extend(split(Movement::SplitBack));
    }
    legs.push(Leg::own(book, currency, movement, refund.amount));
    if movement == Movement::Release {
        legs.extend(split(Movement::SplitOut));
    }
    Ok(legs)
}

/// A split movement per contractor's amount (none for a zero amount).
fn split_legs<'a>(
    book: Book,
    currency: &str,
    movement: Movement,
    amounts: impl Iterator<Item = (&'a str, i64)>,
) -> Vec<Leg> {
    amounts
        .filter(|(_, amount)| *amount > 0)
        .map(|(alias, amount)| Leg {
            contractor: Some(alias.to_string()),
            ..Leg::own(book, currency, movement, amount)
        })
        .collect()
}

/// The legs of a card payment's movement, on its project's main book: a hold
/// of the whole amount; a capture of what `session/capture` took (the whole
/// unless partial), the rest released and the fee charged in the same step; a
/// release of the whole hold.
fn payment_legs(
    next: &mut SessionRecord,
    movement: Movement,
    how: &Apply,
    settings: &ProjectSettings,
) -> Result<Vec<Leg>, EngineError> {
    let book = next.book;
    let payment =
        next.payments.first_mut().ok_or_else(|| EngineError::Internal("money moved without a payment".into()))?;
    let leg = |movement, amount| Leg::own(book, &payment.currency, movement, amount);
    let legs = match movement {
        Movement::Hold | Movement::ReleaseHold => vec![leg(movement, payment.amount)],
        Movement::Capture => {
            let captured = how.capture_amount.unwrap_or(payment.amount);
            if !(1..=payment.amount).contains(&captured) {
                return Err(EngineError::Internal(format!("a capture of {captured} of {}", payment.amount)));
            }
            payment.captured_amount = (captured < payment.amount).then_some(captured);
            payment.fee_amount = settings.payment_fee.fee_minor(captured);
            let mut legs = vec![leg(Movement::Capture, captured)];
            if captured < payment.amount {
                legs.push(leg(Movement::ReleaseHold, payment.amount - captured));
            }
            if payment.fee_amount > 0 {
                legs.push(leg(Movement::Fee, payment.fee_amount));
            }
            // A split payment passes its parts of what came in on to its contractors.
            if let Some(split) = payment.split.as_mut() {
                split.settle(captured - payment.fee_amount);
                let parts = split.parts().iter().filter_map(|p| Some((p.contractor.as_str(), p.amount?)));
                legs.extend(split_legs(book, &payment.currency, Movement::SplitOut, parts));
            }
            legs
        }
        other => return Err(EngineError::Internal(format!("a card payment cannot move {}", other.as_str()))),
    };
    Ok(legs)
}

/// The payout's `confirm_information`, named for `naming`.
pub fn confirm_information(record: &SessionRecord, naming: ApiVersion) -> Option<serde_json::Value> {
    let value = stored_confirm_information(record).ok()??;
    Some(books::named(&value, naming.method_key()))
}

/// The payout's stored `confirm_information`; an unreadable one is an error,
/// never "none" (that would let a confirm through unchecked).
pub fn stored_confirm_information(record: &SessionRecord) -> Result<Option<serde_json::Value>, EngineError> {
    let Some(text) = record.payout().and_then(|p| p.confirm_information.as_ref()) else { return Ok(None) };
    serde_json::from_str(text.expose())
        .map(Some)
        .map_err(|e| EngineError::Internal(format!("unreadable confirm_information of {}: {e}", record.id)))
}

/// Where the session and its operation stand.
fn snapshot_of(record: &SessionRecord) -> Snapshot {
    let payout = record.payout().map(|p| Operation::Payout(p.state));
    Snapshot {
        session: record.state,
        operation: payout.or_else(|| record.payment().map(|p| Operation::Payment(p.state))),
        waiting: record.has_waiting(),
    }
}

/// Each operation that has just settled keeps the time it did.
fn stamp_finished(next: &mut SessionRecord, now: OffsetDateTime) {
    for p in next.payouts.iter_mut().filter(|p| p.finished_at.is_none()) {
        if payout_flow::settled(p.state).is_some() {
            p.finished_at = Some(now);
        }
    }
    for p in next.payments.iter_mut().filter(|p| p.finished_at.is_none()) {
        if payment_flow::settled(p.state).is_some() {
            p.finished_at = Some(now);
        }
    }
}

/// A multi-session's first waiting payout begins (its turn has come); the
/// effects its machine asks for.
fn begin_waiting(next: &mut SessionRecord) -> Result<Vec<Effect>, EngineError> {
    let Some(i) = next.payouts.iter().position(|p| p.state == PayoutState::Waiting) else { return Ok(Vec::new()) };
    let snapshot = Snapshot {
        session: next.state,
        operation: Some(Operation::Payout(PayoutState::Waiting)),
        waiting: next.payouts[i + 1..].iter().any(|p| p.state == PayoutState::Waiting),
    };
    let (begun, effects) = session::apply(snapshot, Event::BeginWaiting)?;
    if let (Some(state), Some(payout)) = (begun.payout(), next.payouts.get_mut(i)) {
        payout.state = state;
    }
    Ok(effects)
}

/// `record` moved to `snapshot`: the session's state, and its payout's (the
/// one being started, if any, joins the session here).
fn with_states(record: &SessionRecord, snapshot: Snapshot, how: &Apply) -> SessionRecord {
    let mut next = record.clone();
    next.state = snapshot.session;
    if next.payouts.is_empty() && how.new_payout.is_some() {
        next.payouts.extend(how.new_payout.clone());
        // The draft of session/create is used up by the payout it became.
        next.draft = None;
    }
    if next.payments.is_empty() && how.new_payment.is_some() {
        next.payments.extend(how.new_payment.clone());
        // A multi-session's payouts join with its payment, waiting their turn.
        next.payouts.extend(how.waiting_payouts.iter().cloned());
        next.draft = None;
    }
    // The operation that runs: the last payout that has begun, else the payment.
    let runs = next.payouts.iter_mut().rev().find(|p| p.state != PayoutState::Waiting);
    match (snapshot.operation, runs, next.payments.first_mut()) {
        (Some(Operation::Payout(state)), Some(payout), _) => payout.state = state,
        (Some(Operation::Payment(state)), _, Some(payment)) => payment.state = state,
        _ => {}
    }
    next
}

/// A session record that does not exist yet (version 0).
pub fn unsaved(project_id: &str, api_version: ApiVersion, now: OffsetDateTime) -> SessionRecord {
    SessionRecord {
        project_id: project_id.to_string(),
        id: new_session_id(),
        api_version,
        state: SessionState::Created,
        version: 0,
        payouts: Vec::new(),
        payments: Vec::new(),
        refund: None,
        created_at: now,
        updated_at: now,
        finished_at: None,
        draft: None,
        submerchant: None,
        book: ledger::Book::Main,
        shape: books::Shape::Payout,
    }
}

#[cfg(test)]
mod tests {
    use super::random_bytes;

    /// Draws across several refills of the pool, and one larger than it,
    /// are all different: no byte of the pool is handed out twice.
    #[test]
    fn random_draws_never_repeat_across_refills() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..100 {
            assert!(seen.insert(random_bytes::<16>().to_vec()), "a 16-byte draw came twice");
        }
        let big = random_bytes::<300>();
        assert!(seen.insert(big.to_vec()));
        assert!(big.iter().any(|&b| b != 0));
    }
}
