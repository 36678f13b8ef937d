//! The tax service's receipt of a payout to a self-employed person: its own
//! lifecycle beside the payout's. The first registration is tried when the
//! payout succeeds (or when `fiscalization` asks, for an earlier payout);
//! a refused one leaves the payout succeeded and the receipt `pending`,
//! tried again after each of [`RETRY_DELAYS_S`], and `failed` when the last
//! try is refused too. A registered receipt may be cancelled `[INF]`
//! (`fiscalization/cancel`), which frees its income in the person's yearly
//! sum. One pure transition, tested as the whole state × event table.
//!
//! Where the docs are silent `[INF]`: the schedule, the `failed` end, the
//! cancel method and its reasons, and that a receipt is only ever cancelled
//! once registered (a pending one has nothing at the tax service to cancel).

use time::OffsetDateTime;

/// Waits before each retry of a refused registration, in seconds: the n-th
/// retry waits the n-th (1 min, 5 min, 15 min, 1 h, 3 h, 6 h, 12 h, 24 h;
/// about two days in all, well within the 9 days a receipt may be late).
pub const RETRY_DELAYS_S: [i64; 8] = [60, 300, 900, 3_600, 10_800, 21_600, 43_200, 86_400];
/// Tries in all: the first and every retry.
pub const ATTEMPTS_MAX: u32 = RETRY_DELAYS_S.len() as u32 + 1;

/// Where a receipt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptState {
    /// Not registered yet: the last try was refused (or none was made).
    Pending,
    Registered,
    /// Registered, then cancelled: its income no longer counts.
    Cancelled,
    /// Every try was refused; no more are made.
    Failed,
}

/// What happens to a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptEvent {
    /// The tax service registered it.
    Accepted,
    /// The tax service refused it; `last`: no tries are left.
    Refused { last: bool },
    /// The partner cancels it.
    Cancel(CancelReason),
}

/// Why a receipt is cancelled, as the tax service asks `[INF]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// Registered by mistake.
    Mistake,
    /// The money went back to the payer.
    Refund,
}

impl CancelReason {
    pub const ALL: [CancelReason; 2] = [Self::Mistake, Self::Refund];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mistake => "mistake",
            Self::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl ReceiptState {
    pub const ALL: [ReceiptState; 4] = [Self::Pending, Self::Registered, Self::Cancelled, Self::Failed];

    /// The stored (and the wire's `status`) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Registered => "registered",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// An event the receipt's state does not take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a receipt that is {} does not take {event:?}", state.as_str())]
pub struct WrongReceiptState {
    pub state: ReceiptState,
    pub event: ReceiptEvent,
}

/// The receipt after `event`, and whether a retry must be scheduled.
pub fn transition(state: ReceiptState, event: ReceiptEvent) -> Result<(ReceiptState, bool), WrongReceiptState> {
    use ReceiptEvent as E;
    use ReceiptState as S;
    match (state, event) {
        (S::Pending, E::Accepted) => Ok((S::Registered, false)),
        (S::Pending, E::Refused { last: false }) => Ok((S::Pending, true)),
        (S::Pending, E::Refused { last: true }) => Ok((S::Failed, false)),
        (S::Registered, E::Cancel(_)) => Ok((S::Cancelled, false)),
        (S::Pending, E::Cancel(_))
        | (S::Registered, E::Accepted | E::Refused { .. })
        | (S::Cancelled | S::Failed, _) => Err(WrongReceiptState { state, event }),
    }
}

/// A payout's receipt as kept with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub state: ReceiptState,
    /// Registration tries made so far.
    pub attempts: u32,
    /// When it last changed: the last try, or its cancellation.
    pub changed_at: OffsetDateTime,
    pub cancel_reason: Option<CancelReason>,
}

impl Receipt {
    /// A receipt no try has been made for.
    pub fn new(now: OffsetDateTime) -> Self {
        Self { state: ReceiptState::Pending, attempts: 0, changed_at: now, cancel_reason: None }
    }

    /// The tax service's answer to the next try, `refusals` being how many
    /// tries it refuses before it accepts one (the sandbox's, the operator's).
    pub fn next_try(&self, refusals: u32) -> ReceiptEvent {
        let this = self.attempts.saturating_add(1);
        if this > refusals {
            ReceiptEvent::Accepted
        } else {
            ReceiptEvent::Refused { last: this >= ATTEMPTS_MAX }
        }
    }

    /// The receipt after `event` at `now`, and when to try again (a pending one).
    pub fn apply(
        &self,
        event: ReceiptEvent,
        now: OffsetDateTime,
    ) -> Result<(Receipt, Option<OffsetDateTime>), WrongReceiptState> {
        let (state, retry) = transition(self.state, event)?;
        let tried = matches!(event, ReceiptEvent::Accepted | ReceiptEvent::Refused { .. });
        let next = Receipt {
            state,
            attempts: self.attempts.saturating_add(u32::from(tried)),
            changed_at: now,
            cancel_reason: match event {
                ReceiptEvent::Cancel(reason) => Some(reason),
                _ => self.cancel_reason,
            },
        };
        Ok((next, retry.then(|| next.retry_at()).flatten()))
    }

    /// When a pending receipt is tried again.
    pub fn retry_at(&self) -> Option<OffsetDateTime> {
        if self.state != ReceiptState::Pending || self.attempts == 0 {
            return None;
        }
        let delay = RETRY_DELAYS_S.get(self.attempts as usize - 1)?;
        Some(self.changed_at + time::Duration::seconds(*delay))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ReceiptEvent as E;
    use ReceiptState as S;

    const EVENTS: [ReceiptEvent; 4] =
        [E::Accepted, E::Refused { last: false }, E::Refused { last: true }, E::Cancel(CancelReason::Mistake)];

    /// The whole table: every state × event, written out.
    #[test]
    fn every_state_takes_exactly_its_events() {
        let table = [
            (S::Pending, EVENTS[0], Some((S::Registered, false))),
            (S::Pending, EVENTS[1], Some((S::Pending, true))),
            (S::Pending, EVENTS[2], Some((S::Failed, false))),
            (S::Pending, EVENTS[3], None),
            (S::Registered, EVENTS[0], None),
            (S::Registered, EVENTS[1], None),
            (S::Registered, EVENTS[2], None),
            (S::Registered, EVENTS[3], Some((S::Cancelled, false))),
            (S::Cancelled, EVENTS[0], None),
            (S::Cancelled, EVENTS[1], None),
            (S::Cancelled, EVENTS[2], None),
            (S::Cancelled, EVENTS[3], None),
            (S::Failed, EVENTS[0], None),
            (S::Failed, EVENTS[1], None),
            (S::Failed, EVENTS[2], None),
            (S::Failed, EVENTS[3], None),
        ];
        assert_eq!(table.len(), S::ALL.len() * EVENTS.len());
        for (state, event, next) in table {
            assert_eq!(transition(state, event).ok(), next, "{state:?} × {event:?}");
        }
    }

    /// Two refusals: tried at once, after 1 min, registered after 5 more.
    #[test]
    fn refused_tries_follow_the_schedule_until_one_is_accepted() {
        let t0 = time::macros::datetime!(2026-03-01 10:00 UTC);
        let mut r = Receipt::new(t0);
        let mut now = t0;
        let mut retries = Vec::new();
        while r.state == S::Pending {
            let (next, retry) = r.apply(r.next_try(2), now).unwrap();
            r = next;
            if let Some(at) = retry {
                retries.push((at - t0).whole_seconds());
                now = at;
            }
        }
        assert_eq!((r.state, r.attempts), (S::Registered, 3));
        assert_eq!(retries, [60, 360]);
        let (cancelled, retry) = r.apply(E::Cancel(CancelReason::Refund), now).unwrap();
        assert_eq!(
            (cancelled.state, cancelled.attempts, cancelled.cancel_reason),
            (S::Cancelled, 3, Some(CancelReason::Refund))
        );
        assert_eq!(retry, None);
    }

    /// A service that refuses every try: the last one ends the receipt failed.
    #[test]
    fn every_try_refused_ends_failed_after_the_last_retry() {
        let t0 = time::macros::datetime!(2026-03-01 10:00 UTC);
        let mut r = Receipt::new(t0);
        let mut retries = 0;
        while r.state == S::Pending {
            let (next, retry) = r.apply(r.next_try(u32::MAX), r.retry_at().unwrap_or(t0)).unwrap();
            retries += usize::from(retry.is_some());
            r = next;
        }
        assert_eq!((r.state, r.attempts, retries), (S::Failed, ATTEMPTS_MAX, RETRY_DELAYS_S.len()));
        assert_eq!(r.retry_at(), None);
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(ReceiptState::parse(s.as_str()), Some(s));
        }
        for c in CancelReason::ALL {
            assert_eq!(CancelReason::parse(c.as_str()), Some(c));
        }
    }
}
