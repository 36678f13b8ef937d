//! This process's liveness and the leases of dead ones (issue 15). Every
//! claim (webhooks, timers, checks, subscriptions) records the claiming
//! process's instance id ([`open131_store::InstanceStore`]).
//!
//! - A server that holds an SQLite data directory's serve lock
//!   ([`crate::Config::sole_process`]) releases every other instance's leases
//!   at start: the lock proves no other process holds them.
//! - Otherwise (PostgreSQL, or no proof) each process heartbeats every
//!   [`HEARTBEAT_INTERVAL_S`] and watches the others' heartbeats. One whose
//!   heartbeat has not changed for [`INSTANCE_DEAD_AFTER_S`] of this
//!   process's own monotonic time is dead, and its leases are released.
//!   Why not compare times: each node writes its own clock, and a node whose
//!   clock runs behind would look dead to the others; a value that stops
//!   changing does not depend on anyone's clock.
//!
//! So a killed process's claimed work is taken again within seconds instead
//! of after its full lease. Invariant: a living instance's leases are never
//! released (it heartbeats well inside the bound), and a release only makes
//! work due again; a result recorded after its lease was released is
//! recorded once (the claims' own guards).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use open131_store::StoreError;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::app::App;
use crate::worker::Pace;

/// How often a process says it is alive, in seconds.
pub const HEARTBEAT_INTERVAL_S: u64 = 3;
/// How long an unchanged heartbeat makes an instance dead, in seconds of the
/// watcher's own monotonic time: more than three missed heartbeats.
pub const INSTANCE_DEAD_AFTER_S: u64 = 10;

/// Other instances' heartbeats as this process has seen them change.
#[derive(Debug, Default)]
pub struct Watch {
    /// Per instance: its last heartbeat value, when this process saw it
    /// change, and whether its leases were released since.
    seen: HashMap<String, (i64, Instant, bool)>,
}

impl Watch {
    /// The instances (other than `me`) to release now: heartbeat unchanged
    /// for [`INSTANCE_DEAD_AFTER_S`] and not released since it last changed.
    pub fn dead(&mut self, beats: &[(String, i64)], me: &str, now: Instant) -> Vec<String> {
        let bound = Duration::from_secs(INSTANCE_DEAD_AFTER_S);
        let mut dead = Vec::new();
        for (id, beat) in beats.iter().filter(|(id, _)| id != me) {
            let entry = self.seen.entry(id.clone()).or_insert((*beat, now, false));
            if entry.0 != *beat {
                *entry = (*beat, now, false);
            } else if !entry.2 && now.duration_since(entry.1) >= bound {
                entry.2 = true;
                dead.push(id.clone());
            }
        }
        // Rows forgotten by the store are forgotten here too.
        self.seen.retain(|id, _| beats.iter().any(|(b, _)| b == id));
        dead
    }
}

/// A heartbeat's value: the wall clock, not the injected one (a test's
/// manual clock may stand still; the value only has to change).
fn beat_time() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// At start: the sole process of an SQLite data directory releases every
/// other instance's leases; any other says it is alive. How many were released.
pub async fn at_start(app: &App) -> Result<usize, StoreError> {
    if !app.config.sole_process {
        app.store.heartbeat(beat_time()).await?;
        return Ok(0);
    }
    let released = app.store.release_leases(app.clock.now(), None).await?;
    if released > 0 {
        tracing::info!(released, "took over the leases of the process that held this data directory before");
    }
    Ok(released)
}

/// One heartbeat, then the release of instances found dead; how many leases were released.
async fn round(app: &App, watch: &Mutex<Watch>) -> Result<usize, StoreError> {
    app.store.heartbeat(beat_time()).await?;
    let beats = app.store.heartbeats().await?;
    let dead = match watch.lock() {
        Ok(mut w) => w.dead(&beats, app.store.instance_id(), Instant::now()),
        Err(poisoned) => poisoned.into_inner().dead(&beats, app.store.instance_id(), Instant::now()),
    };
    let mut released = 0;
    for owner in dead {
        let n = app.store.release_leases(app.clock.now(), Some(&owner)).await?;
        tracing::info!(released = n, "took over the leases of an instance that stopped heartbeating");
        released += n;
    }
    Ok(released)
}

/// The heartbeat worker: [`round`] every [`HEARTBEAT_INTERVAL_S`] (none for
/// the sole process of an SQLite data directory: nobody else to watch).
pub async fn run_worker(app: App, stop: watch::Receiver<bool>) {
    if app.config.sole_process {
        return;
    }
    let watch = Arc::new(Mutex::new(Watch::default()));
    crate::worker::run_loop("heartbeat", stop, None, || {
        let (app, watch) = (app.clone(), watch.clone());
        async move {
            if let Err(e) = round(&app, &watch).await {
                tracing::warn!(error = %e, "heartbeat failed; trying again");
            }
            Pace::Idle(Duration::from_secs(HEARTBEAT_INTERVAL_S))
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_dead_once_its_heartbeat_stands_still_for_the_bound() {
        let mut w = Watch::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let beats = |a: i64, b: i64| vec![("me".to_string(), 0), ("a".to_string(), a), ("b".to_string(), b)];
        assert!(w.dead(&beats(1, 1), "me", at(0)).is_empty(), "first seen: alive");
        // a keeps beating (its clock may be anything: only change counts); b stands still.
        assert!(w.dead(&beats(2, 1), "me", at(5)).is_empty());
        assert_eq!(w.dead(&beats(-7, 1), "me", at(10)), ["b"]);
        assert!(w.dead(&beats(-6, 1), "me", at(30)).is_empty(), "released once, not every round");
        // b comes back: alive again, and dead again only after the bound.
        assert!(w.dead(&beats(-5, 2), "me", at(31)).is_empty());
        assert!(w.dead(&beats(-4, 2), "me", at(40)).is_empty(), "b stood still 9 s only");
        // Both stand still past the bound; this process never counts itself.
        assert_eq!(w.dead(&beats(-4, 2), "me", at(50)), ["a", "b"]);
        assert!(w.dead(&[("me".to_string(), 0)], "me", at(100)).is_empty());
        assert!(w.seen.is_empty(), "instances the store forgot are forgotten");
    }
}
