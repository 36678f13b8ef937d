//! The session's own lifecycle and how it drives its operation's.
//!
//! A session is one machine ([`SessionState`], [`transition`]): created,
//! in progress while an operation runs, then accepted or cancelled. Each
//! operation in it has its own machine (the payout's is
//! [`crate::payout_flow`]); [`apply`] routes an event to the machine it is
//! for and tells the session when its operation settles. Both machines speak
//! the shared effect vocabulary of [`crate::lifecycle`].
//!
//! ```text
//! Created ──Start──► InProgress ──Settled(Succeeded)──► Accepted
//!    │                   ├────────Settled(Cancelled)──► Cancelled
//!    │                   └────────Settled(Failed)─────► Error
//!    └─Cancel──► Cancelled
//! ```
//!
//! Decision (the docs name `error` for "an unexpected error" and the official
//! SDK's `isFailed()` tests `status == "error"`): a session ends `cancelled`
//! when the partner ended its operation (cancel, or no confirmation in time)
//! and `error` when the operation failed (declined, provider timeout, no
//! funds), so partner code that asks `isFailed()` sees every failed payout.
//!
//! A session holds at most one payout today (the shape every official client
//! uses); the store keeps payouts in a child table, so a list can follow.

use crate::lifecycle::{Effect, Settled};
use crate::payout_flow::{self, PayoutEvent, PayoutState};

/// API version of a main-API path, which decides the names used in answers
/// and webhooks (`payout_details` or `payment_method`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
}

impl ApiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            _ => None,
        }
    }

    /// The version's name of a payout's method: `payment_method` (v1) or `payout_details` (v2).
    pub fn method_key(self) -> &'static str {
        match self {
            Self::V1 => "payment_method",
            Self::V2 => "payout_details",
        }
    }
}

/// The state of a session itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Exists, no operation yet.
    Created,
    /// Its operation runs.
    InProgress,
    /// Its operation succeeded.
    Accepted,
    /// Cancelled before any operation, or its operation was cancelled.
    Cancelled,
    /// Its operation failed.
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    /// An operation starts.
    Start,
    Cancel,
    /// Its operation settled.
    Settled(Settled),
}

/// An event the session's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed when the session is {state:?}")]
pub struct SessionWrongState {
    pub state: SessionState,
    pub event: SessionEvent,
}

/// The session machine. It asks for no effects today (its operation's machine
/// moves the money and sends the webhooks); it returns them so that a later
/// session-level effect needs no new plumbing.
pub fn transition(state: SessionState, event: SessionEvent) -> Result<(SessionState, Vec<Effect>), SessionWrongState> {
    use SessionState::*;
    let next = match (state, event) {
        (Created, SessionEvent::Start) => InProgress,
        (Created, SessionEvent::Cancel) => Cancelled,
        (InProgress, SessionEvent::Settled(Settled::Succeeded)) => Accepted,
        (InProgress, SessionEvent::Settled(Settled::Cancelled)) => Cancelled,
        (InProgress, SessionEvent::Settled(Settled::Failed)) => Error,
        _ => return Err(SessionWrongState { state, event }),
    };
    Ok((next, Vec::new()))
}

/// `session.status` on the wire.
pub fn wire_status(state: SessionState) -> &'static str {
    match state {
        SessionState::Created => "created",
        SessionState::InProgress => "in_progress",
        SessionState::Accepted => "accepted",
        SessionState::Cancelled => "cancelled",
        SessionState::Error => "error",
    }
}

pub fn is_final(state: SessionState) -> bool {
    matches!(state, SessionState::Accepted | SessionState::Cancelled | SessionState::Error)
}

/// Stable storage name of a state (the wire's).
pub fn state_name(state: SessionState) -> &'static str {
    wire_status(state)
}

pub fn parse_state(s: &str) -> Option<SessionState> {
    use SessionState::*;
    [Created, InProgress, Accepted, Cancelled, Error].into_iter().find(|st| state_name(*st) == s)
}

/// A session and its payout, as events find them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub session: SessionState,
    pub payout: Option<PayoutState>,
}

/// What reaches a session: the partner's calls and the bank's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `session/init/payout` or `session/start/payout`: a payout starts.
    StartPayout,
    /// `fps/customer_verification`: an FPS recipient verification starts.
    StartVerification,
    /// `session/cancel`: cancels a session without an operation, else its
    /// payout (which allows it only while awaiting confirmation).
    Cancel,
    /// An event of the payout's own machine (confirm, timers, the provider).
    Payout(PayoutEvent),
}

/// An event not allowed in the current state; the API answers `session_wrong_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed in {snapshot:?}")]
pub struct WrongState {
    pub snapshot: Snapshot,
    pub event: Event,
}

/// Applies `event` to the machine it is for; when the payout settles the
/// session hears of it in the same step. Effects come in the order the
/// machines asked for them (session first).
pub fn apply(snapshot: Snapshot, event: Event) -> Result<(Snapshot, Vec<Effect>), WrongState> {
    let wrong = WrongState { snapshot, event };
    match (event, snapshot.payout) {
        (Event::StartPayout | Event::StartVerification, None) => {
            let (session, mut effects) = transition(snapshot.session, SessionEvent::Start).map_err(|_| wrong)?;
            let (payout, started) = match event {
                Event::StartVerification => payout_flow::start_verification(),
                _ => payout_flow::start(),
            };
            effects.extend(started);
            Ok((Snapshot { session, payout: Some(payout) }, effects))
        }
        (Event::Cancel, None) => {
            let (session, effects) = transition(snapshot.session, SessionEvent::Cancel).map_err(|_| wrong)?;
            Ok((Snapshot { session, payout: None }, effects))
        }
        (Event::Cancel, Some(payout)) => step_payout(snapshot.session, payout, PayoutEvent::Cancel).map_err(|_| wrong),
        (Event::Payout(e), Some(payout)) => step_payout(snapshot.session, payout, e).map_err(|_| wrong),
        (Event::StartPayout | Event::StartVerification, Some(_)) | (Event::Payout(_), None) => Err(wrong),
    }
}

/// One step of the payout's machine, and of the session's when it settles.
fn step_payout(session: SessionState, payout: PayoutState, event: PayoutEvent) -> Result<(Snapshot, Vec<Effect>), ()> {
    let (next, payout_effects) = payout_flow::transition(payout, event).map_err(|_| ())?;
    let (session, mut effects) = match (payout_flow::settled(payout), payout_flow::settled(next)) {
        (None, Some(how)) => transition(session, SessionEvent::Settled(how)).map_err(|_| ())?,
        _ => (session, Vec::new()),
    };
    effects.extend(payout_effects);
    Ok((Snapshot { session, payout: Some(next) }, effects))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payout_flow::tests::{all_events as payout_events, all_states as payout_states};
    use crate::payout_flow::FailureCode;

    const STATES: [SessionState; 5] = [
        SessionState::Created,
        SessionState::InProgress,
        SessionState::Accepted,
        SessionState::Cancelled,
        SessionState::Error,
    ];

    fn session_events() -> [SessionEvent; 5] {
        [
            SessionEvent::Start,
            SessionEvent::Cancel,
            SessionEvent::Settled(Settled::Succeeded),
            SessionEvent::Settled(Settled::Cancelled),
            SessionEvent::Settled(Settled::Failed),
        ]
    }

    /// The session machine's whole table.
    #[test]
    fn full_session_state_event_table() {
        use SessionState::*;
        let mut legal = 0;
        for state in STATES {
            for event in session_events() {
                let expected = match (state, event) {
                    (Created, SessionEvent::Start) => Some(InProgress),
                    (Created, SessionEvent::Cancel) => Some(Cancelled),
                    (InProgress, SessionEvent::Settled(Settled::Succeeded)) => Some(Accepted),
                    (InProgress, SessionEvent::Settled(Settled::Cancelled)) => Some(Cancelled),
                    (InProgress, SessionEvent::Settled(Settled::Failed)) => Some(Error),
                    _ => None,
                };
                let got = transition(state, event);
                match expected {
                    Some(next) => {
                        legal += 1;
                        assert_eq!(got, Ok((next, Vec::new())), "{state:?} × {event:?}");
                    }
                    None => assert_eq!(got, Err(SessionWrongState { state, event }), "{state:?} × {event:?}"),
                }
            }
        }
        assert_eq!(legal, 5);
    }

    fn all_events() -> Vec<Event> {
        let mut v = vec![Event::StartPayout, Event::StartVerification, Event::Cancel];
        v.extend(payout_events().into_iter().map(Event::Payout));
        v
    }

    fn all_snapshots() -> Vec<Snapshot> {
        let mut v: Vec<Snapshot> = STATES.iter().map(|s| Snapshot { session: *s, payout: None }).collect();
        for session in STATES {
            v.extend(payout_states().into_iter().map(|p| Snapshot { session, payout: Some(p) }));
        }
        v
    }

    /// The composed table: every snapshot × every event is either refused or
    /// exactly what the two machines say.
    #[test]
    fn composed_table_follows_the_two_machines() {
        for snapshot in all_snapshots() {
            for event in all_events() {
                let got = apply(snapshot, event);
                let expected = match (event, snapshot.payout) {
                    (Event::StartPayout | Event::StartVerification, None) => {
                        transition(snapshot.session, SessionEvent::Start).ok().map(|(s, _)| {
                            let (p, fx) = if event == Event::StartVerification {
                                payout_flow::start_verification()
                            } else {
                                payout_flow::start()
                            };
                            (Snapshot { session: s, payout: Some(p) }, fx)
                        })
                    }
                    (Event::Cancel, None) => transition(snapshot.session, SessionEvent::Cancel)
                        .ok()
                        .map(|(s, fx)| (Snapshot { session: s, payout: None }, fx)),
                    (Event::Cancel | Event::Payout(_), Some(p)) => {
                        let e = if let Event::Payout(e) = event { e } else { PayoutEvent::Cancel };
                        payout_flow::transition(p, e).ok().and_then(|(next, fx)| {
                            let session = match (payout_flow::settled(p), payout_flow::settled(next)) {
                                (None, Some(how)) => transition(snapshot.session, SessionEvent::Settled(how)).ok()?.0,
                                _ => snapshot.session,
                            };
                            Some((Snapshot { session, payout: Some(next) }, fx))
                        })
                    }
                    _ => None,
                };
                match expected {
                    Some(ok) => assert_eq!(got, Ok(ok), "{snapshot:?} × {event:?}"),
                    None => assert_eq!(got, Err(WrongState { snapshot, event }), "{snapshot:?} × {event:?}"),
                }
            }
        }
    }

    /// Every path from a new session: the session is final exactly when its
    /// payout has settled (or it was cancelled before one), accepted exactly
    /// when the payout succeeded, and no money stays reserved at the end.
    #[test]
    fn every_path_keeps_session_and_payout_in_step() {
        fn walk(s: Snapshot, reserved: i32, depth: usize) {
            let settled = s.payout.and_then(payout_flow::settled);
            match (s.session, s.payout, settled) {
                (SessionState::Created, None, _) | (SessionState::Cancelled, None, _) => {}
                (SessionState::InProgress, Some(_), None) => {}
                (SessionState::Accepted, Some(_), Some(Settled::Succeeded)) => {}
                (SessionState::Cancelled, Some(_), Some(Settled::Cancelled)) => {}
                (SessionState::Error, Some(_), Some(Settled::Failed)) => {}
                other => panic!("session and payout out of step: {other:?}"),
            }
            if is_final(s.session) {
                assert_eq!(reserved, 0, "{s:?} ended with money reserved");
            }
            if depth == 0 {
                return;
            }
            for event in all_events() {
                if let Ok((next, effects)) = apply(s, event) {
                    walk(next, reserved + crate::lifecycle::reserved_change(&effects), depth - 1);
                }
            }
        }
        walk(Snapshot { session: SessionState::Created, payout: None }, 0, 7);
    }

    #[test]
    fn cancel_reaches_the_payout_only_while_it_awaits_confirmation() {
        let waiting = Snapshot { session: SessionState::InProgress, payout: Some(PayoutState::AwaitingConfirm) };
        let (next, _) = apply(waiting, Event::Cancel).unwrap();
        assert_eq!(next.session, SessionState::Cancelled);
        assert_eq!(next.payout, Some(PayoutState::Failed(FailureCode::SessionCancelledByPartner)));
        let working = Snapshot { session: SessionState::InProgress, payout: Some(PayoutState::Processing) };
        assert!(apply(working, Event::Cancel).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in STATES {
            assert_eq!(parse_state(state_name(s)), Some(s));
        }
        assert_eq!(parse_state("succeeded"), None);
    }
}
