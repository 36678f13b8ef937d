//! The one loop every background worker runs (the verifier, the payout timer
//! processor, the webhook dispatcher, the registry watcher): a round of work,
//! then either another round at once or a sleep that ends early on a wake-up
//! notification or on shutdown.
//!
//! Invariant: a worker stops at a round boundary once shutdown is signalled; a
//! round is never cut off in the middle (its store writes commit or not as a whole).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

/// What a round asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// More work is waiting: run the next round now (after yielding the thread).
    Again,
    /// Sleep this long, or until woken.
    Idle(Duration),
}

/// Runs `round` until `stop` turns true. `wake` (when given) ends a sleep early:
/// the code that creates work for this worker notifies it.
pub async fn run_loop<F, Fut>(
    name: &'static str,
    mut stop: watch::Receiver<bool>,
    wake: Option<Arc<Notify>>,
    mut round: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Pace>,
{
    tracing::debug!(worker = name, "started");
    loop {
        if *stop.borrow() {
            break;
        }
        match round().await {
            // Store calls can complete without ever suspending: give the thread back.
            Pace::Again => tokio::task::yield_now().await,
            Pace::Idle(wait) => {
                let woken = async {
                    match &wake {
                        Some(n) => n.notified().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = woken => {}
                    _ = stop.changed() => break,
                }
            }
        }
    }
    tracing::debug!(worker = name, "stopped");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn rounds_run_again_when_busy_sleep_when_idle_and_wake_on_notify() {
        let (stop_tx, stop) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let rounds = Arc::new(AtomicUsize::new(0));
        let r = rounds.clone();
        let task = tokio::spawn(run_loop("test", stop, Some(wake.clone()), move || {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    Pace::Again
                } else {
                    Pace::Idle(Duration::from_secs(3600))
                }
            }
        }));
        // Three busy rounds and the first idle one happen at once.
        while rounds.load(Ordering::SeqCst) < 4 {
            tokio::task::yield_now().await;
        }
        assert_eq!(rounds.load(Ordering::SeqCst), 4);
        wake.notify_one();
        while rounds.load(Ordering::SeqCst) < 5 {
            tokio::task::yield_now().await;
        }
        stop_tx.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(rounds.load(Ordering::SeqCst), 5, "a stop ends the sleep without another round");
    }
}
