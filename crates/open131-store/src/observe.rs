//! Group commits as a watcher sees them (the server's metrics): how many
//! jobs each commit carried, how long it took, whether it held. The store
//! reports and keeps no figures itself: what to count is the watcher's.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Told of every commit of a write batch (one job or many).
pub trait CommitObserver: Send + Sync + 'static {
    fn committed(&self, jobs: usize, elapsed: Duration, ok: bool);
}

/// Where a store's writers report; set once, by whoever serves the store.
#[derive(Clone, Default)]
pub struct CommitWatch(Arc<OnceLock<Arc<dyn CommitObserver>>>);

impl CommitWatch {
    /// Sets the observer; `false` when one was set already (it stays).
    pub fn set(&self, observer: Arc<dyn CommitObserver>) -> bool {
        self.0.set(observer).is_ok()
    }

    pub(crate) fn report(&self, jobs: usize, elapsed: Duration, ok: bool) {
        if let Some(observer) = self.0.get() {
            observer.committed(jobs, elapsed, ok);
        }
    }
}
