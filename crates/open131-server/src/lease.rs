//! This process's liveness and the leases of dead ones (issue 15). Every
//! claim (webhooks, timers, checks, subscriptions) records the claiming
//! process's instance id ([`open131_store::InstanceStore`]); a serving
//! process heartbeats every [`HEARTBEAT_INTERVAL_S`]. At start, a process
//! on SQLite releases every other instance's leases: the data directory's
//! serve lock proves no other process holds them. Nodes on PostgreSQL
//! release, at start and with every heartbeat, the leases of instances not
//! heard from for [`INSTANCE_DEAD_AFTER_S`]. So a killed process's claimed
//! work is taken again within seconds instead of after its full lease.
//!
//! Invariant: a living instance's leases are never released (it heartbeats
//! well inside the bound), and releasing only makes work due again: a
//! result recorded after its lease was released is still recorded once (the
//! claims' own guards, unchanged).

use std::time::Duration;

use open131_store::{Backend, StoreError};
use tokio::sync::watch;

use crate::app::App;
use crate::worker::Pace;

/// How often a serving process says it is alive, in seconds.
pub const HEARTBEAT_INTERVAL_S: i64 = 3;
/// How long without a heartbeat makes an instance dead (PostgreSQL), in
/// seconds: more than three missed heartbeats.
pub const INSTANCE_DEAD_AFTER_S: i64 = 10;

/// Who else's leases this process may release now: every other instance's
/// on SQLite at start, else those of instances not heard from for the bound.
fn alive_after(app: &App, at_start: bool) -> Option<time::OffsetDateTime> {
    match (app.store.backend(), at_start) {
        (Backend::Sqlite, true) => None,
        _ => Some(app.clock.now() - time::Duration::seconds(INSTANCE_DEAD_AFTER_S)),
    }
}

/// One heartbeat, then the release of dead instances' leases (SQLite only
/// at start: no other process can be there later); how many were released.
pub async fn beat(app: &App, at_start: bool) -> Result<usize, StoreError> {
    let now = app.clock.now();
    app.store.heartbeat(now).await?;
    if !at_start && app.store.backend() == Backend::Sqlite {
        return Ok(0);
    }
    let released = app.store.release_leases(now, alive_after(app, at_start)).await?;
    if released > 0 {
        tracing::info!(released, "took over the leases of instances that are gone");
    }
    Ok(released)
}

/// The heartbeat worker: [`beat`] every [`HEARTBEAT_INTERVAL_S`].
pub async fn run_worker(app: App, stop: watch::Receiver<bool>) {
    let every = Duration::from_secs(HEARTBEAT_INTERVAL_S.unsigned_abs());
    crate::worker::run_loop("heartbeat", stop, None, || async {
        if let Err(e) = beat(&app, false).await {
            tracing::warn!(error = %e, "heartbeat failed; trying again");
        }
        Pace::Idle(every)
    })
    .await;
}
