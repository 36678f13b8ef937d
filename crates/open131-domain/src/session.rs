//! The session's own lifecycle and how it drives its operation's.
//!
//! A session is one machine ([`SessionState`], [`transition`]): created,
//! in progress while an operation runs, then accepted or cancelled. Each
//! operation in it has its own machine ([`Operation`]: the payout's is
//! [`crate::payout_flow`], the acquiring payment's [`crate::payment_flow`]);
//! [`apply`] routes an event to the machine it is for and tells the session
//! when its operation settles. Both machines speak
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
//! A session runs one operation at a time. Most hold one; a multi-session
//! (`session/multi/init`) holds a payment and then payouts that wait their turn
//! ([`PayoutState::Waiting`]): when an operation succeeds and another waits
//! ([`Snapshot::waiting`]), the session stays in progress
//! ([`SessionEvent::Next`]) and the engine begins the next one
//! ([`Event::BeginWaiting`]) in the same write. Any other end of an operation
//! ends the session, and what still waits never begins.

use crate::lifecycle::{Effect, Settled};
use crate::payment_flow::{self, PaymentEvent, PaymentState};
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
    /// Its operation succeeded and another waits its turn: the session goes on.
    Next,
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
        (InProgress, SessionEvent::Next) => InProgress,
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

/// A session's operation, each in the state of its own machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Payout(PayoutState),
    /// An acquiring payment (issue 9; not served by the API yet).
    Payment(PaymentState),
}

impl Operation {
    /// How it settled, once it has.
    pub fn settled(self) -> Option<Settled> {
        match self {
            Self::Payout(p) => payout_flow::settled(p),
            Self::Payment(p) => payment_flow::settled(p),
        }
    }
}

/// A session and its operation, as events find them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub session: SessionState,
    /// The operation that runs (or ran last).
    pub operation: Option<Operation>,
    /// Another operation waits for this one to succeed (a multi-session).
    pub waiting: bool,
}

impl Snapshot {
    /// The payout's state, when the operation is a payout.
    pub fn payout(&self) -> Option<PayoutState> {
        match self.operation {
            Some(Operation::Payout(p)) => Some(p),
            _ => None,
        }
    }
}

/// What reaches a session: the partner's calls and the bank's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// `session/init/payout` or `session/start/payout`: a payout starts.
    StartPayout,
    /// `fps/customer_verification`: an FPS recipient verification starts.
    StartVerification,
    /// `session/init/payment` or `session/start/payment`: a payment starts.
    StartPayment,
    /// `session/cancel`: cancels a session without an operation, else its
    /// operation (whose machine says when it may be cancelled).
    Cancel,
    /// An event of the payout's own machine (confirm, timers, the provider).
    Payout(PayoutEvent),
    /// An event of the payment's own machine.
    Payment(PaymentEvent),
    /// A multi-session's waiting payout begins, its turn come (the engine
    /// sends it with the waiting payout as the snapshot's operation).
    BeginWaiting,
}

/// An event not allowed in the current state; the API answers `session_wrong_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed in {snapshot:?}")]
pub struct WrongState {
    pub snapshot: Snapshot,
    pub event: Event,
}

/// Applies `event` to the machine it is for; when the operation settles the
/// session hears of it in the same step. Effects come in the order the
/// machines asked for them (session first).
pub fn apply(snapshot: Snapshot, event: Event) -> Result<(Snapshot, Vec<Effect>), WrongState> {
    let wrong = WrongState { snapshot, event };
    let session = snapshot.session;
    match (event, snapshot.operation) {
        (Event::StartPayout | Event::StartVerification | Event::StartPayment, None) => {
            let (session, mut effects) = transition(session, SessionEvent::Start).map_err(|_| wrong)?;
            let (operation, started) = match event {
                Event::StartVerification => started(Operation::Payout, payout_flow::start_verification()),
                Event::StartPayment => started(Operation::Payment, payment_flow::start()),
                _ => started(Operation::Payout, payout_flow::start()),
            };
            effects.extend(started);
            Ok((Snapshot { operation: Some(operation), session, ..snapshot }, effects))
        }
        (Event::Cancel, None) => {
            let (session, effects) = transition(session, SessionEvent::Cancel).map_err(|_| wrong)?;
            Ok((Snapshot { session, ..snapshot }, effects))
        }
        (Event::BeginWaiting, Some(Operation::Payout(PayoutState::Waiting))) if session == SessionState::InProgress => {
            let (operation, effects) = started(Operation::Payout, payout_flow::start());
            Ok((Snapshot { operation: Some(operation), ..snapshot }, effects))
        }
        (Event::Cancel, Some(Operation::Payout(p))) => {
            step(snapshot, p, PayoutEvent::Cancel, PAYOUT).map_err(|_| wrong)
        }
        (Event::Cancel, Some(Operation::Payment(p))) => {
            step(snapshot, p, PaymentEvent::Cancel, PAYMENT).map_err(|_| wrong)
        }
        (Event::Payout(e), Some(Operation::Payout(p))) => step(snapshot, p, e, PAYOUT).map_err(|_| wrong),
        (Event::Payment(e), Some(Operation::Payment(p))) => step(snapshot, p, e, PAYMENT).map_err(|_| wrong),
        _ => Err(wrong),
    }
}

/// What the session hears when its operation settles `how`: a success with
/// another operation waiting lets the session go on.
fn settled_event(how: Settled, waiting: bool) -> SessionEvent {
    match how {
        Settled::Succeeded if waiting => SessionEvent::Next,
        _ => SessionEvent::Settled(how),
    }
}

fn started<S>(wrap: fn(S) -> Operation, (state, effects): (S, Vec<Effect>)) -> (Operation, Vec<Effect>) {
    (wrap(state), effects)
}

/// A machine's answer: its next state and effects, or `None` when refused.
type Step<S> = Option<(S, Vec<Effect>)>;

/// One operation machine as [`step`] drives it.
struct Machine<S, E> {
    transition: fn(S, E) -> Step<S>,
    settled: fn(S) -> Option<Settled>,
    wrap: fn(S) -> Operation,
}

const PAYOUT: Machine<PayoutState, PayoutEvent> = Machine {
    transition: |s, e| payout_flow::transition(s, e).ok(),
    settled: payout_flow::settled,
    wrap: Operation::Payout,
};

const PAYMENT: Machine<PaymentState, PaymentEvent> = Machine {
    transition: |s, e| payment_flow::transition(s, e).ok(),
    settled: payment_flow::settled,
    wrap: Operation::Payment,
};

/// One step of an operation's machine, and of the session's when it settles.
fn step<S: Copy, E>(snapshot: Snapshot, state: S, event: E, m: Machine<S, E>) -> Result<(Snapshot, Vec<Effect>), ()> {
    let (next, operation_effects) = (m.transition)(state, event).ok_or(())?;
    let (session, mut effects) = match ((m.settled)(state), (m.settled)(next)) {
        (None, Some(how)) => transition(snapshot.session, settled_event(how, snapshot.waiting)).map_err(|_| ())?,
        _ => (snapshot.session, Vec::new()),
    };
    effects.extend(operation_effects);
    Ok((Snapshot { session, operation: Some((m.wrap)(next)), ..snapshot }, effects))
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

    fn session_events() -> [SessionEvent; 6] {
        [
            SessionEvent::Next,
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
                    (InProgress, SessionEvent::Next) => Some(InProgress),
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
        assert_eq!(legal, 6);
    }

    fn all_events() -> Vec<Event> {
        let mut v =
            vec![Event::StartPayout, Event::StartVerification, Event::StartPayment, Event::Cancel, Event::BeginWaiting];
        v.extend(payout_events().into_iter().map(Event::Payout));
        v.extend(payment_flow::tests::all_events().into_iter().map(Event::Payment));
        v
    }

    fn all_snapshots() -> Vec<Snapshot> {
        let mut v = Vec::new();
        for waiting in [false, true] {
            for session in STATES {
                let mut operations = vec![None];
                operations.extend(payout_states().into_iter().map(|p| Some(Operation::Payout(p))));
                operations.extend(payment_flow::tests::all_states().into_iter().map(|p| Some(Operation::Payment(p))));
                v.extend(operations.into_iter().map(|operation| Snapshot { session, operation, waiting }));
            }
        }
        v
    }

    /// What the operation's machine alone says of `event` (the session aside).
    fn operation_step(operation: Operation, event: Event) -> Option<(Operation, Vec<Effect>)> {
        match (operation, event) {
            (Operation::Payout(p), Event::Payout(e)) => {
                payout_flow::transition(p, e).ok().map(|(n, fx)| (Operation::Payout(n), fx))
            }
            (Operation::Payout(p), Event::Cancel) => {
                payout_flow::transition(p, PayoutEvent::Cancel).ok().map(|(n, fx)| (Operation::Payout(n), fx))
            }
            (Operation::Payment(p), Event::Payment(e)) => {
                payment_flow::transition(p, e).ok().map(|(n, fx)| (Operation::Payment(n), fx))
            }
            (Operation::Payment(p), Event::Cancel) => {
                payment_flow::transition(p, PaymentEvent::Cancel).ok().map(|(n, fx)| (Operation::Payment(n), fx))
            }
            _ => None,
        }
    }

    /// The composed table: every snapshot × every event is either refused or
    /// exactly what the two machines say.
    #[test]
    fn composed_table_follows_the_two_machines() {
        for snapshot in all_snapshots() {
            for event in all_events() {
                let got = apply(snapshot, event);
                let expected = match (event, snapshot.operation) {
                    (Event::StartPayout | Event::StartVerification | Event::StartPayment, None) => {
                        transition(snapshot.session, SessionEvent::Start).ok().map(|(s, _)| {
                            let (op, fx) = match event {
                                Event::StartVerification => {
                                    let (p, fx) = payout_flow::start_verification();
                                    (Operation::Payout(p), fx)
                                }
                                Event::StartPayment => {
                                    let (p, fx) = payment_flow::start();
                                    (Operation::Payment(p), fx)
                                }
                                _ => {
                                    let (p, fx) = payout_flow::start();
                                    (Operation::Payout(p), fx)
                                }
                            };
                            (Snapshot { session: s, operation: Some(op), ..snapshot }, fx)
                        })
                    }
                    (Event::Cancel, None) => transition(snapshot.session, SessionEvent::Cancel)
                        .ok()
                        .map(|(s, fx)| (Snapshot { session: s, ..snapshot }, fx)),
                    (Event::BeginWaiting, Some(Operation::Payout(PayoutState::Waiting)))
                        if snapshot.session == SessionState::InProgress =>
                    {
                        let (p, fx) = payout_flow::start();
                        Some((Snapshot { operation: Some(Operation::Payout(p)), ..snapshot }, fx))
                    }
                    (_, Some(op)) => operation_step(op, event).and_then(|(next, fx)| {
                        let session = match (op.settled(), next.settled()) {
                            (None, Some(Settled::Succeeded)) if snapshot.waiting => snapshot.session,
                            (None, Some(how)) => transition(snapshot.session, SessionEvent::Settled(how)).ok()?.0,
                            _ => snapshot.session,
                        };
                        // A waiting success needs a session in progress, as any settling does.
                        if next.settled() != op.settled() && snapshot.session != SessionState::InProgress {
                            return None;
                        }
                        Some((Snapshot { session, operation: Some(next), ..snapshot }, fx))
                    }),
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
    /// operation has settled (or it was cancelled before one), accepted
    /// exactly when the operation succeeded, and no money stays reserved or
    /// held at the end.
    #[test]
    fn every_path_keeps_session_and_operation_in_step() {
        fn walk(s: Snapshot, (reserved, held): (i32, i32), depth: usize) {
            let settled = s.operation.and_then(Operation::settled);
            match (s.session, s.operation, settled) {
                (SessionState::Created, None, _) | (SessionState::Cancelled, None, _) => {}
                (SessionState::InProgress, Some(_), None) => {}
                (SessionState::Accepted, Some(_), Some(Settled::Succeeded)) => {}
                (SessionState::Cancelled, Some(_), Some(Settled::Cancelled)) => {}
                (SessionState::Error, Some(_), Some(Settled::Failed)) => {}
                other => panic!("session and operation out of step: {other:?}"),
            }
            if is_final(s.session) {
                assert_eq!((reserved, held), (0, 0), "{s:?} ended with money reserved or held");
            }
            if depth == 0 {
                return;
            }
            for event in all_events() {
                if let Ok((next, effects)) = apply(s, event) {
                    let money = (
                        reserved + crate::lifecycle::reserved_change(&effects),
                        held + payment_flow::tests::held_change(&effects),
                    );
                    walk(next, money, depth - 1);
                }
            }
        }
        walk(Snapshot { session: SessionState::Created, operation: None, waiting: false }, (0, 0), 7);
    }

    /// A multi-session's paths (a payment, then two payouts), the engine's
    /// part played as it plays it: when an operation succeeds with a payout
    /// waiting, that payout begins, told whether another waits after it. The
    /// session stays in progress exactly until the last operation settles, is
    /// accepted only when every one succeeded, and ends with nothing reserved
    /// or held.
    #[test]
    fn a_multi_session_runs_its_operations_in_turn() {
        /// `left`: payouts not begun yet; the count of accepted paths.
        fn walk(s: Snapshot, money: (i32, i32), left: u8, depth: usize) -> usize {
            assert_eq!(s.waiting, left > 0, "{s:?} with {left} waiting");
            let settled = s.operation.and_then(Operation::settled);
            match (s.session, settled) {
                (SessionState::InProgress, None) => {}
                (SessionState::InProgress, Some(Settled::Succeeded)) => assert!(left > 0, "{s:?}"),
                (SessionState::Accepted, Some(Settled::Succeeded)) => assert_eq!(left, 0, "{s:?}"),
                (SessionState::Cancelled, Some(Settled::Cancelled)) | (SessionState::Error, Some(Settled::Failed)) => {}
                other => panic!("session and operations out of step: {other:?} in {s:?}"),
            }
            if is_final(s.session) {
                assert_eq!(money, (0, 0), "{s:?} ended with money reserved or held");
            }
            if s.session == SessionState::InProgress && settled == Some(Settled::Succeeded) {
                // The engine's turn: the next waiting payout begins.
                let payout = Some(Operation::Payout(PayoutState::Waiting));
                let waiting = Snapshot { operation: payout, waiting: left > 1, ..s };
                let (next, effects) = apply(waiting, Event::BeginWaiting).expect("a waiting payout begins");
                assert!(!effects.iter().any(|e| matches!(e, Effect::Ledger(_))), "beginning moves no money");
                assert_eq!(next.session, SessionState::InProgress);
                return walk(next, money, left - 1, depth);
            }
            let mut accepted = usize::from(s.session == SessionState::Accepted);
            if depth == 0 {
                return accepted;
            }
            for event in all_events() {
                if let Ok((next, effects)) = apply(s, event) {
                    let money = (
                        money.0 + crate::lifecycle::reserved_change(&effects),
                        money.1 + payment_flow::tests::held_change(&effects),
                    );
                    accepted += walk(next, money, left, depth - 1);
                }
            }
            accepted
        }
        let created = Snapshot { session: SessionState::Created, operation: None, waiting: true };
        let (started, effects) = apply(created, Event::StartPayment).expect("a multi-session starts with its payment");
        let accepted = walk(started, (0, payment_flow::tests::held_change(&effects)), 2, 10);
        assert!(accepted > 0, "no path reached an accepted multi-session");
    }

    #[test]
    fn cancel_reaches_the_payout_only_while_it_awaits_confirmation() {
        let at =
            |p| Snapshot { session: SessionState::InProgress, operation: Some(Operation::Payout(p)), waiting: false };
        let (next, _) = apply(at(PayoutState::AwaitingConfirm), Event::Cancel).unwrap();
        assert_eq!(next.session, SessionState::Cancelled);
        assert_eq!(next.payout(), Some(PayoutState::Failed(FailureCode::SessionCancelledByPartner)));
        assert!(apply(at(PayoutState::Processing), Event::Cancel).is_err());
        // A payment's event never reaches a payout, nor the reverse.
        assert!(apply(at(PayoutState::AwaitingConfirm), Event::Payment(PaymentEvent::Capture)).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in STATES {
            assert_eq!(parse_state(state_name(s)), Some(s));
        }
        assert_eq!(parse_state("succeeded"), None);
    }
}
