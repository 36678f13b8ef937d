//! Subscriptions (`payment_options.subscription`): a card payment that asks
//! for one, once it succeeds, makes the bank charge the same card for the
//! same amount every period, without the customer, until the partner cancels
//! (`subscription/cancel`; `subscription/restore` resumes). Each charge is a
//! payment of its own session, by the ordinary payment machine (no 3-D
//! Secure: the customer is not there), showing `subscription.initial: false`.
//!
//! Decisions `[INF]` (the bank publishes no rules): `period` is `day`,
//! `week`, `month` or `year`; charges keep to the schedule of the first
//! payment, its points counted from it (monthly from 31 January: 28
//! February, 31 March, 30 April); a charge
//! the issuer declines is tried again a day later, and the third decline in
//! a row stops the subscription (`retries_exceeded`) until it is restored; a
//! charge on a card past its expiry date is declined `bank_card_expired` (the
//! sandbox's way to make charges fail).
//!
//! ```text
//! Active ─Charge─► Active (next point one period on)
//!   │  ─ChargeFailed (3rd in a row)─► RetriesExceeded ─Restore─► Active
//!   └─Cancel─► Cancelled ─Restore─► Active (next point the first one still ahead)
//! ```
//!
//! Invariant: only an active subscription is charged, at most once per
//! point of its schedule (the charge and the move to the next point are one
//! write).

use time::{Date, Duration, Month, OffsetDateTime, UtcOffset};

/// Moscow's offset (no daylight saving since 2014).
const MOSCOW: UtcOffset = match UtcOffset::from_hms(3, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// Declines in a row that stop a subscription.
pub const CHARGE_FAILURES_MAX: u8 = 3;
/// How long after a declined charge it is tried again, in seconds.
pub const CHARGE_RETRY_DELAY_S: i64 = 86_400;

/// How often a subscription charges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    pub const ALL: [Period; 4] = [Self::Day, Self::Week, Self::Month, Self::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The point one period after `t` (calendar months and years, the day
    /// clamped to the month's last).
    pub fn after(self, t: OffsetDateTime) -> OffsetDateTime {
        self.nth(t, 1)
    }

    /// The `n`-th point of a schedule that began at `anchor`: counted from
    /// the anchor, so a monthly schedule from 31 January charges on the 28th
    /// of February and on the 31st of March.
    pub fn nth(self, anchor: OffsetDateTime, n: u32) -> OffsetDateTime {
        // Calendar days are Moscow's, as the bank's: converted back to UTC after.
        let t = anchor.to_offset(MOSCOW);
        let n32 = i32::try_from(n).unwrap_or(i32::MAX / 12);
        let months = match self {
            Self::Day => return t + Duration::days(i64::from(n)),
            Self::Week => return t + Duration::weeks(i64::from(n)),
            Self::Month => n32,
            Self::Year => n32.saturating_mul(12),
        };
        let index = i32::from(u8::from(t.month())) - 1 + months;
        let (year, month) = (t.year() + index.div_euclid(12), index.rem_euclid(12) + 1);
        let month = u8::try_from(month).ok().and_then(|m| Month::try_from(m).ok()).unwrap_or(Month::January);
        let day = t.day().min(month.length(year));
        let point = Date::from_calendar_date(year, month, day).map_or(t + Duration::days(30), |d| t.replace_date(d));
        point.to_offset(time::UtcOffset::UTC)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionState {
    Active,
    Cancelled,
    /// Stopped by declined charges, until restored.
    RetriesExceeded,
}

impl SubscriptionState {
    pub const ALL: [SubscriptionState; 3] = [Self::Active, Self::Cancelled, Self::RetriesExceeded];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Cancelled => "cancelled",
            Self::RetriesExceeded => "retries_exceeded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionEvent {
    /// `subscription/cancel`.
    Cancel,
    /// `subscription/restore`.
    Restore,
    /// The bank charged it (a charge session began).
    Charge,
    /// A charge succeeded.
    ChargeSucceeded,
    /// A charge was declined.
    ChargeFailed,
}

/// Where a subscription stands: its state and schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub state: SubscriptionState,
    pub period: Period,
    /// When the first payment succeeded: the schedule's points count from it.
    pub anchor: OffsetDateTime,
    /// When it charges next (while active).
    pub next_point: OffsetDateTime,
    /// Declined charges in a row.
    pub failures: u8,
    /// Charges begun so far (the first payment not counted).
    pub charges: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {state:?} subscription cannot take {event:?}")]
pub struct SubscriptionWrongState {
    pub state: SubscriptionState,
    pub event: SubscriptionEvent,
}

/// The subscription after `event` at `now`. Cancelling or restoring twice is
/// harmless (the partner may repeat a call); only an active one is charged.
pub fn transition(
    s: Schedule,
    event: SubscriptionEvent,
    now: OffsetDateTime,
) -> Result<Schedule, SubscriptionWrongState> {
    use SubscriptionEvent as E;
    use SubscriptionState::*;
    let next = match (s.state, event) {
        (_, E::Cancel) => Schedule { state: Cancelled, ..s },
        (Active, E::Restore) => s,
        (Cancelled, E::Restore) => Schedule { state: Active, next_point: point_after(s, now, true), failures: 0, ..s },
        (RetriesExceeded, E::Restore) => Schedule { state: Active, next_point: now, failures: 0, ..s },
        (Active, E::Charge) => {
            // The schedule's next point still ahead: after a retry (off the
            // schedule) or time the bank was down, the points missed are not charged.
            let next_point = point_after(s, s.next_point.max(now), false);
            Schedule { next_point, charges: s.charges.saturating_add(1), ..s }
        }
        // A charge's outcome counts whatever the partner did meanwhile.
        (_, E::ChargeSucceeded) => Schedule { failures: 0, ..s },
        (state, E::ChargeFailed) => {
            let failures = s.failures.saturating_add(1);
            match (state, failures >= CHARGE_FAILURES_MAX) {
                (Active, true) => Schedule { state: RetriesExceeded, failures, ..s },
                (Active, false) => {
                    let retry = now + Duration::seconds(CHARGE_RETRY_DELAY_S);
                    Schedule { failures, next_point: s.next_point.min(retry), ..s }
                }
                _ => Schedule { failures, ..s },
            }
        }
        (state, E::Charge) => return Err(SubscriptionWrongState { state, event }),
    };
    Ok(next)
}

/// The first point of the schedule after `t` (or at it, `inclusive`): a
/// restored subscription does not charge for the points it missed.
fn point_after(s: Schedule, t: OffsetDateTime, inclusive: bool) -> OffsetDateTime {
    // Bounded: a century of daily points.
    (1..=36_600)
        .map(|n| s.period.nth(s.anchor, n))
        .find(|p| *p > t || (inclusive && *p == t))
        .unwrap_or_else(|| s.period.after(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-31 12:00 UTC);

    fn schedule(state: SubscriptionState) -> Schedule {
        Schedule { state, period: Period::Month, anchor: NOW, next_point: NOW, failures: 0, charges: 0 }
    }

    #[test]
    fn periods_keep_the_calendar() {
        assert_eq!(Period::Month.after(NOW), datetime!(2026-02-28 12:00 UTC));
        assert_eq!(Period::Month.after(datetime!(2026-12-15 0:00 UTC)), datetime!(2027-01-15 0:00 UTC));
        assert_eq!(Period::Year.after(datetime!(2028-02-29 0:00 UTC)), datetime!(2029-02-28 0:00 UTC));
        assert_eq!(Period::Week.after(NOW), datetime!(2026-02-07 12:00 UTC));
        assert_eq!(Period::Day.after(NOW), datetime!(2026-02-01 12:00 UTC));
        // Moscow's calendar: 22:00 UTC on 30 January is the 31st there, so the next is 28 February (MSK).
        assert_eq!(Period::Month.after(datetime!(2026-01-30 22:00 UTC)), datetime!(2026-02-27 22:00 UTC));
        assert!(Period::ALL.iter().all(|p| Period::parse(p.as_str()) == Some(*p)));
        assert!(SubscriptionState::ALL.iter().all(|s| SubscriptionState::parse(s.as_str()) == Some(*s)));
    }

    /// The whole state × event table against an independent listing.
    #[test]
    fn full_state_event_table() {
        use SubscriptionEvent as E;
        use SubscriptionState::*;
        let events = [E::Cancel, E::Restore, E::Charge, E::ChargeSucceeded, E::ChargeFailed];
        for state in SubscriptionState::ALL {
            for event in events {
                let before = Schedule { failures: 2, ..schedule(state) };
                let got = transition(before, event, NOW).map(|s| (s.state, s.failures));
                let expected = match (state, event) {
                    (_, E::Cancel) => Ok((Cancelled, 2)),
                    // Restored, it starts afresh.
                    (Active, E::Restore) => Ok((Active, 2)),
                    (_, E::Restore) => Ok((Active, 0)),
                    (Active, E::Charge) => Ok((Active, 2)),
                    (_, E::Charge) => Err(SubscriptionWrongState { state, event }),
                    (s, E::ChargeSucceeded) => Ok((s, 0)),
                    (Active, E::ChargeFailed) => Ok((RetriesExceeded, 3)),
                    (s, E::ChargeFailed) => Ok((s, 3)),
                };
                assert_eq!(got, expected, "{state:?} × {event:?}");
            }
        }
    }

    #[test]
    fn declines_retry_a_day_later_and_the_third_stops_it() {
        let mut s = transition(schedule(SubscriptionState::Active), SubscriptionEvent::Charge, NOW).unwrap();
        assert_eq!((s.next_point, s.charges), (datetime!(2026-02-28 12:00 UTC), 1));
        // The month after counts from the anchor, the 31st: not the 28th again.
        let next = transition(s, SubscriptionEvent::Charge, NOW).unwrap();
        assert_eq!(next.next_point, datetime!(2026-03-31 12:00 UTC));
        for n in 1..CHARGE_FAILURES_MAX {
            s = transition(s, SubscriptionEvent::ChargeFailed, NOW).unwrap();
            assert_eq!(
                (s.state, s.failures, s.next_point),
                (SubscriptionState::Active, n, datetime!(2026-02-01 12:00 UTC))
            );
        }
        s = transition(s, SubscriptionEvent::ChargeFailed, NOW).unwrap();
        assert_eq!((s.state, s.failures), (SubscriptionState::RetriesExceeded, 3));
        // Charged late (the bank was down ten weeks): the next point is the first still ahead.
        let late = transition(schedule(SubscriptionState::Active), SubscriptionEvent::Charge, NOW + Duration::days(70))
            .unwrap();
        assert_eq!(late.next_point, datetime!(2026-04-30 12:00 UTC));
        let later = NOW + Duration::days(40);
        let restored = transition(s, SubscriptionEvent::Restore, later).unwrap();
        assert_eq!((restored.state, restored.failures, restored.next_point), (SubscriptionState::Active, 0, later));
        // A success clears the count.
        let failed = transition(schedule(SubscriptionState::Active), SubscriptionEvent::ChargeFailed, NOW).unwrap();
        assert_eq!(transition(failed, SubscriptionEvent::ChargeSucceeded, NOW).unwrap().failures, 0);
    }

    #[test]
    fn a_restored_subscription_skips_the_points_it_missed() {
        let cancelled = transition(schedule(SubscriptionState::Active), SubscriptionEvent::Cancel, NOW).unwrap();
        let restored = transition(cancelled, SubscriptionEvent::Restore, datetime!(2026-04-02 0:00 UTC)).unwrap();
        // 31 Jan → 28 Feb → 31 Mar → 30 Apr: the first point still ahead.
        assert_eq!(restored.next_point, datetime!(2026-04-30 12:00 UTC));
        let again = transition(restored, SubscriptionEvent::Restore, NOW).unwrap();
        assert_eq!(again, restored, "restoring an active one changes nothing");
    }
}
