//! The bank's side of a payout: timers that prepare payouts, time out
//! confirmations, deliver the provider's verdict and return payouts. Timers are
//! rows in the database, so a restart resumes them.

use std::time::Duration;

use open131_domain::session::{Event, Timer};
use tokio::sync::watch;

use super::engine::{self, Apply, EngineError};
use crate::app::App;

/// Most timers fired in one round (they are applied concurrently, sharing commits).
pub const TIMER_BATCH_MAX: usize = 512;
/// Longest sleep of an idle processor, in ms: timers are due at most this late.
pub const PROCESSOR_IDLE_MAX_MS: u64 = 100;

pub async fn process_due(app: &App) -> anyhow::Result<usize> {
    let now = app.clock.now();
    let due = app.store.due_timers(now, TIMER_BATCH_MAX).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for t in due {
        let app = app.clone();
        tasks.spawn(async move {
            let Some(session) = app.store.session(&t.project_id, &t.session_id).await? else {
                app.store.drop_timer(&t.project_id, &t.session_id, t.timer).await?;
                return anyhow::Ok(false);
            };
            let event = match t.timer {
                Timer::Prepare => {
                    let settings = app.store.project(&t.project_id).await?.map(|p| p.settings);
                    Event::Prepared { auto_confirm: settings.is_some_and(|s| s.auto_confirm) }
                }
                Timer::ConfirmTimeout => Event::ConfirmTimedOut,
                Timer::ProviderResult => {
                    engine::provider_event(session.payout.as_ref().map_or("ok", |p| p.plan.as_str()))
                }
                Timer::BankReturn => Event::Returned,
            };
            match engine::apply(&app, session, event, Apply { consumed_timer: Some(t.timer), ..Apply::default() }).await
            {
                Ok(_) => Ok(true),
                // The session moved on (confirmed before its timeout, cancelled...): the timer is moot.
                Err(EngineError::WrongState(_)) => {
                    app.store.drop_timer(&t.project_id, &t.session_id, t.timer).await?;
                    Ok(false)
                }
                Err(e) => Err(e.into()),
            }
        });
    }
    let mut applied = 0;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(true)) => applied += 1,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "a payout timer failed; it stays due"),
            Err(e) => tracing::error!(error = %e, "a payout timer task panicked"),
        }
    }
    Ok(applied)
}

pub async fn run_worker(app: App, mut stop: watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        let busy = match process_due(&app).await {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::error!(error = %e, "payout timer round failed");
                false
            }
        };
        if busy {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(PROCESSOR_IDLE_MAX_MS)) => {}
            _ = app.processor_wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}
