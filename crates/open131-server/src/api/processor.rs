//! The bank's side of a session's operation: timers that prepare payouts and
//! payments, time out confirmations, 3-D Secure and holds, deliver the
//! provider's or the issuer's verdict and return payouts. Timers are rows in
//! the database, so a restart resumes them.

use std::time::Duration;

use open131_domain::lifecycle::Timer;
use open131_domain::payment::{Verdict, REFUND_DECLINED_AMOUNT};
use open131_domain::payment_flow::{PaymentEvent, PaymentFailure};
use open131_domain::payout::SandboxPlan;
use open131_domain::payout_flow::PayoutEvent;
use open131_domain::refund_flow::{RefundEvent, RefundState};
use open131_domain::session::Event;
use open131_domain::settings::CaptureMode;
use open131_store::{DueTimer, ProjectSettings, SessionRecord};
use tokio::sync::watch;

use super::engine::{self, Apply, EngineError};
use crate::app::App;
use crate::worker::Pace;

/// Most timers fired in one round (they are applied concurrently, sharing commits).
pub const TIMER_BATCH_MAX: usize = 512;
/// Longest sleep of an idle processor, in ms: timers are due at most this late.
pub const PROCESSOR_IDLE_MAX_MS: u64 = 100;
/// A claimed timer is left to the node that claimed it this long, in seconds;
/// one whose firing never committed (a dead node, a failed write) fires again then.
pub const TIMER_LEASE_S: i64 = 30;

pub async fn process_due(app: &App) -> anyhow::Result<usize> {
    let lease = time::Duration::seconds(TIMER_LEASE_S);
    let real = app.clock.now();
    // Listed before claiming: nothing claimed is dropped for a failure after.
    let clocked = app.clocked_projects().await;
    let mut due: Vec<(DueTimer, time::OffsetDateTime)> = Vec::new();
    for t in app.store.claim_due_timers(real, real + lease, TIMER_BATCH_MAX).await? {
        due.push((t, real + lease));
    }
    // A project on virtual time: its timers are due by its own clock.
    for (project, offset) in clocked {
        let now = offset.apply(real);
        match app.store.claim_project_due_timers(&project, now, now + lease, TIMER_BATCH_MAX).await {
            Ok(timers) => due.extend(timers.into_iter().map(|t| (t, now + lease))),
            Err(e) => tracing::error!(error = %e, %project, "could not claim a clocked project's timers"),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (t, lease_until) in due {
        let app = app.clone();
        tasks.spawn(async move {
            let Some(session) = app.store.session(&t.project_id, &t.session_id).await? else {
                app.store.drop_timer(&t.project_id, &t.session_id, t.timer, lease_until).await?;
                return anyhow::Ok(false);
            };
            let Some(project) = app.projects.get(&t.project_id).await? else {
                app.store.drop_timer(&t.project_id, &t.session_id, t.timer, lease_until).await?;
                return Ok(false);
            };
            if t.timer == Timer::RefundResult {
                return settle_refunds(&app, session, lease_until).await.map(|n| n > 0);
            }
            if t.timer == Timer::ReceiptRetry {
                return retry_receipt(&app, session, lease_until).await;
            }
            let event = match timer_event(&session, t.timer, &project.settings) {
                // A token disabled after the payment began declines it at the issuer.
                Some(Event::Payment(PaymentEvent::Authorized { .. })) if !token_active(&app, &session).await? => {
                    Some(Event::Payment(PaymentEvent::Declined(PaymentFailure::BindingIsDeactivated)))
                }
                other => other,
            };
            let Some(event) = event else {
                // A timer its operation never schedules (left by a bug or an old version): moot.
                app.store.drop_timer(&t.project_id, &t.session_id, t.timer, lease_until).await?;
                return Ok(false);
            };
            match engine::apply(&app, session, event, Apply { consumed_timer: Some(t.timer), ..Apply::default() }).await
            {
                Ok(_) => Ok(true),
                // The session moved on (confirmed before its timeout, cancelled...): the timer is moot.
                Err(EngineError::WrongState(_)) => {
                    app.store.drop_timer(&t.project_id, &t.session_id, t.timer, lease_until).await?;
                    Ok(false)
                }
                // Fires again when its lease ends, with an event for the session as it is then.
                Err(EngineError::TimerRaced) => Ok(false),
                Err(e) => Err(e.into()),
            }
        });
    }
    let mut applied = 0;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(true)) => applied += 1,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, lease_s = TIMER_LEASE_S, "a payout timer failed; it fires again when its lease ends")
            }
            Err(e) => tracing::error!(error = %e, "a payout timer task panicked"),
        }
    }
    // The bank's charges of subscriptions are due on a schedule too.
    Ok(applied + super::subscription::charge_due(app).await?)
}

/// Tries again to register the receipt of the session's payout; a receipt
/// that no longer waits (registered meanwhile, cancelled) drops the timer.
async fn retry_receipt(app: &App, session: SessionRecord, lease_until: time::OffsetDateTime) -> anyhow::Result<bool> {
    let (project, id) = (session.project_id.clone(), session.id.clone());
    let how = Apply { consumed_timer: Some(Timer::ReceiptRetry), ..Apply::default() };
    match engine::apply_receipt(app, session, engine::ReceiptChange::Try, how).await {
        Ok(_) => Ok(true),
        Err(EngineError::ReceiptWrongState(_) | EngineError::NoReceipt) => {
            app.store.drop_timer(&project, &id, Timer::ReceiptRetry, lease_until).await?;
            Ok(false)
        }
        Err(EngineError::TimerRaced) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the recurrent token a payment pays with (if any) is still active.
async fn token_active(app: &App, session: &SessionRecord) -> anyhow::Result<bool> {
    let Some(p) = session.payment() else { return Ok(true) };
    let masked: serde_json::Value = serde_json::from_str(&p.method_masked)?;
    let Some(token) = masked["recurrent"]["token"].as_str() else { return Ok(true) };
    let saved = app.store.recurrent_token(&session.project_id, token).await?;
    Ok(saved.is_some_and(|t| t.is_active))
}

/// The bank's verdict on every refund of the session in progress (the
/// sandbox declines a refund of [`REFUND_DECLINED_AMOUNT`]); how many moved.
async fn settle_refunds(
    app: &App,
    mut session: SessionRecord,
    lease_until: time::OffsetDateTime,
) -> anyhow::Result<usize> {
    // A chargeback is the card network's decision: the sandbox never declines one.
    let waiting: Vec<(String, bool)> = session
        .payment()
        .map(|p| {
            let in_progress = p.refunds.iter().filter(|r| r.state == RefundState::InProgress);
            in_progress.map(|r| (r.id.clone(), !r.is_chargeback && r.amount == REFUND_DECLINED_AMOUNT))
        })
        .into_iter()
        .flatten()
        .collect();
    if waiting.is_empty() {
        // Nothing waits (a refund asked for since would have set the timer
        // again after this read: look once more before dropping it).
        let now = app.store.session(&session.project_id, &session.id).await?;
        let any = now
            .as_ref()
            .and_then(|s| s.payment())
            .is_some_and(|p| p.refunds.iter().any(|r| r.state == RefundState::InProgress));
        if !any {
            app.store.drop_timer(&session.project_id, &session.id, Timer::RefundResult, lease_until).await?;
        }
        return Ok(0);
    }
    let mut settled = 0;
    for (id, declined) in waiting {
        let event = if declined { RefundEvent::Declined } else { RefundEvent::Accepted };
        let how = Apply { consumed_timer: Some(Timer::RefundResult), ..Apply::default() };
        match engine::apply_refund(app, session.clone(), &id, event, how).await {
            Ok(next) => {
                session = next;
                settled += 1;
            }
            Err(EngineError::RefundWrongState(_)) => {}
            // The timer fires again when its lease ends and settles what is left then.
            Err(EngineError::TimerRaced) => break,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(settled)
}

/// The event a due timer fires at the session's operation.
pub(super) fn timer_event(session: &SessionRecord, timer: Timer, settings: &ProjectSettings) -> Option<Event> {
    if let Some(payment) = session.running_payment() {
        use open131_domain::payment_flow::PaymentState as S;
        // A timeout speaks only to the wait it was set for: a confirmation
        // timer left from before a confirm must not end a later hold.
        let waits = |states: &[S]| states.contains(&payment.state);
        return Some(Event::Payment(match timer {
            Timer::Prepare => {
                PaymentEvent::Prepared { auto_confirm: settings.auto_confirm, three_ds: payment.plan.three_ds }
            }
            // The customer's step not taken in time ends as its method says.
            Timer::ConfirmTimeout if waits(&[S::AwaitingAction]) => {
                open131_domain::payment::wait_expiry(&super::render::method(payment))
            }
            Timer::ConfirmTimeout if waits(&[S::AwaitingConfirm]) => PaymentEvent::TimedOut,
            Timer::CaptureTimeout if waits(&[S::AwaitingCapture]) => PaymentEvent::TimedOut,
            Timer::ConfirmTimeout | Timer::CaptureTimeout => return None,
            Timer::ProviderResult => match payment.plan.verdict {
                Verdict::Authorize | Verdict::AuthorizeSlowly => {
                    PaymentEvent::Authorized { auto_capture: settings.capture == CaptureMode::Auto }
                }
                Verdict::Decline(code) => PaymentEvent::Declined(code),
            },
            Timer::BankReturn | Timer::RefundResult | Timer::ReceiptRetry => return None,
        }));
    }
    Some(Event::Payout(match timer {
        Timer::Prepare => {
            // A payout with confirm_information always waits for it: a converted
            // one (the docs: the partner confirms the rouble cost) and one from
            // a nominal or settlement account (confirmed with the object).
            let to_confirm = session.payout().is_some_and(|p| p.confirm_information.is_some());
            PayoutEvent::Prepared { auto_confirm: settings.auto_confirm && !to_confirm }
        }
        Timer::ConfirmTimeout => PayoutEvent::ConfirmTimedOut,
        Timer::ProviderResult => session.payout().map_or(SandboxPlan::Succeed, |p| p.plan).provider_event(),
        Timer::BankReturn => PayoutEvent::Returned,
        Timer::CaptureTimeout | Timer::RefundResult | Timer::ReceiptRetry => return None,
    }))
}

/// The worker: fires timers while any are due, else sleeps until woken (a new
/// timer) or for [`PROCESSOR_IDLE_MAX_MS`].
pub async fn run_worker(app: App, stop: watch::Receiver<bool>) {
    let wake = app.processor_wake.clone();
    crate::worker::run_loop("payout timers", stop, Some(wake), || async {
        match process_due(&app).await {
            Ok(n) if n > 0 => Pace::Again,
            Ok(_) => Pace::Idle(Duration::from_millis(PROCESSOR_IDLE_MAX_MS)),
            Err(e) => {
                tracing::error!(error = %e, "payout timer round failed");
                Pace::Idle(Duration::from_millis(PROCESSOR_IDLE_MAX_MS))
            }
        }
    })
    .await;
}
