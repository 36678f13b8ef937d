//! Time as a dependency: the server asks a [`Clock`], tests hold a [`ManualClock`].

use std::sync::Mutex;
use time::{Duration, OffsetDateTime};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    pub fn new(start: OffsetDateTime) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance(&self, by: Duration) {
        if let Ok(mut t) = self.0.lock() {
            *t += by;
        }
    }

    pub fn set(&self, to: OffsetDateTime) {
        if let Ok(mut t) = self.0.lock() {
            *t = to;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.0.lock().map(|t| *t).unwrap_or_else(|p| *p.into_inner())
    }
}

/// What an operator does to a project's clock (virtual time, issue 13 §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockChange {
    /// Only read it.
    Show,
    /// Move it forward by this much.
    Advance(Duration),
    /// Move it forward to this time.
    Set(OffsetDateTime),
    /// Back to real time.
    Reset,
}

/// Why a clock change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClockError {
    #[error("no such project")]
    NoSuchProject,
    #[error("a project's clock only moves forward, at most {max} days ahead of real time", max = open131_domain::settings::CLOCK_OFFSET_MAX_DAYS)]
    Backwards,
    #[error("the clock kept changing under this change; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] open131_store::StoreError),
}

/// A project's clock as it stands after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectClock {
    pub now: OffsetDateTime,
    pub offset: open131_domain::settings::ClockOffset,
}

/// Applies `change` to `project`'s clock when the real time is `real`.
/// Shared by the admin endpoint and `open131 clock`. Everything of the
/// project due by its new time is then due: the workers claim it on their
/// next round (a server wakes them after its own admin call).
pub async fn change_project_clock(
    store: &dyn open131_store::Store,
    project: &str,
    change: ClockChange,
    real: OffsetDateTime,
) -> Result<ProjectClock, ClockError> {
    use open131_domain::settings::ClockOffset;
    // Read, compute, write only if unchanged: two advances at once make two
    // steps, and a `set` computed from a stale offset never turns it back.
    for _ in 0..CLOCK_CHANGE_TRIES_MAX {
        let current = store.project(project).await?.ok_or(ClockError::NoSuchProject)?.settings.clock_offset;
        let offset = match change {
            ClockChange::Show => return Ok(ProjectClock { now: current.apply(real), offset: current }),
            ClockChange::Advance(by) => current.advanced(by).ok_or(ClockError::Backwards)?,
            ClockChange::Set(at) => ClockOffset::to_reach(current, at, real).ok_or(ClockError::Backwards)?,
            ClockChange::Reset => ClockOffset::NONE,
        };
        if store.move_clock(project, current, offset).await? {
            return Ok(ProjectClock { now: offset.apply(real), offset });
        }
    }
    Err(ClockError::Busy)
}

/// Most tries of a clock change that keeps losing to other changes.
pub const CLOCK_CHANGE_TRIES_MAX: usize = 8;
