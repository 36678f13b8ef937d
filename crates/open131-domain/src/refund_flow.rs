//! A refund of a captured card payment (`session/refund`; a chargeback is a
//! refund with `is_chargeback`, the same machine), its own small machine
//! beside the payment's: the partner's money is reserved when the
//! refund is asked for, paid back to the card network when the bank accepts
//! it, released when it is declined. A refund the wallet cannot cover fails
//! at once with `insufficient_wallet_balance` (the docs' rule for refunds:
//! the partner's balance pays them). Every end sends `payment_refunded`.
//!
//! ```text
//! Requested ─Start─► InProgress ─Accepted─► Accepted      (reserved → acquiring)
//!     │                   └──────Declined─► Declined      (reserved → available)
//!     └─ReserveRefused─► Failed(insufficient_wallet_balance)
//! ```
//!
//! `Requested` is the refund as the partner asked for it, before the ledger
//! answered: it is never stored.

use crate::ledger::Movement;
use crate::lifecycle::{Effect, Timer, WebhookKind};

/// Why a refund failed; `as_str` is the API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundFailure {
    InsufficientWalletBalance,
}

impl RefundFailure {
    pub const ALL: [RefundFailure; 1] = [Self::InsufficientWalletBalance];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InsufficientWalletBalance => "insufficient_wallet_balance",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::InsufficientWalletBalance => "Insufficient wallet balance to refund the payment",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundState {
    Requested,
    InProgress,
    Accepted,
    Declined,
    Failed(RefundFailure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefundEvent {
    /// The partner asked for it; its amount is reserved.
    Start,
    /// The wallet could not cover it.
    ReserveRefused,
    /// The bank paid it back to the card.
    Accepted,
    /// The bank declined it.
    Declined,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed when the refund is {state:?}")]
pub struct RefundWrongState {
    pub state: RefundState,
    pub event: RefundEvent,
}

pub fn transition(state: RefundState, event: RefundEvent) -> Result<(RefundState, Vec<Effect>), RefundWrongState> {
    use Effect::{Ledger, Schedule, Webhook};
    use RefundEvent as E;
    use RefundState::*;
    let refunded = Webhook(WebhookKind::PaymentRefunded);
    let next = match (state, event) {
        (Requested, E::Start) => (InProgress, vec![Ledger(Movement::Reserve), Schedule(Timer::RefundResult)]),
        (Requested, E::ReserveRefused) => (Failed(RefundFailure::InsufficientWalletBalance), vec![refunded]),
        (InProgress, E::Accepted) => (Accepted, vec![Ledger(Movement::Refund), refunded]),
        (InProgress, E::Declined) => (Declined, vec![Ledger(Movement::Release), refunded]),
        _ => return Err(RefundWrongState { state, event }),
    };
    Ok(next)
}

/// Whether it counts against what is left to refund (asked for and not refused).
pub fn counts(state: RefundState) -> bool {
    matches!(state, RefundState::Requested | RefundState::InProgress | RefundState::Accepted)
}

pub fn wire_status(state: RefundState) -> &'static str {
    match state {
        RefundState::Requested | RefundState::InProgress => "in_progress",
        RefundState::Accepted => "accepted",
        RefundState::Declined => "declined",
        RefundState::Failed(_) => "error",
    }
}

pub fn is_final(state: RefundState) -> bool {
    matches!(state, RefundState::Accepted | RefundState::Declined | RefundState::Failed(_))
}

/// Stable storage name of a state (`Requested` is never stored).
pub fn state_name(state: RefundState) -> String {
    match state {
        RefundState::Requested => "requested".into(),
        RefundState::InProgress => "in_progress".into(),
        RefundState::Accepted => "accepted".into(),
        RefundState::Declined => "declined".into(),
        RefundState::Failed(code) => format!("failed:{}", code.as_str()),
    }
}

pub fn parse_state(s: &str) -> Option<RefundState> {
    Some(match s {
        "in_progress" => RefundState::InProgress,
        "accepted" => RefundState::Accepted,
        "declined" => RefundState::Declined,
        other => {
            let code = other.strip_prefix("failed:")?;
            RefundState::Failed(RefundFailure::ALL.into_iter().find(|c| c.as_str() == code)?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::reserved_change;

    const STATES: [RefundState; 5] = [
        RefundState::Requested,
        RefundState::InProgress,
        RefundState::Accepted,
        RefundState::Declined,
        RefundState::Failed(RefundFailure::InsufficientWalletBalance),
    ];
    const EVENTS: [RefundEvent; 4] =
        [RefundEvent::Start, RefundEvent::ReserveRefused, RefundEvent::Accepted, RefundEvent::Declined];

    /// The whole table against an independent listing of the legal moves.
    #[test]
    fn full_state_event_table() {
        use Effect::{Ledger, Schedule, Webhook};
        use RefundState::*;
        let refunded = Webhook(WebhookKind::PaymentRefunded);
        let mut legal = 0;
        for state in STATES {
            for event in EVENTS {
                let expected = match (state, event) {
                    (Requested, RefundEvent::Start) => {
                        Some((InProgress, vec![Ledger(Movement::Reserve), Schedule(Timer::RefundResult)]))
                    }
                    (Requested, RefundEvent::ReserveRefused) => {
                        Some((Failed(RefundFailure::InsufficientWalletBalance), vec![refunded]))
                    }
                    (InProgress, RefundEvent::Accepted) => Some((Accepted, vec![Ledger(Movement::Refund), refunded])),
                    (InProgress, RefundEvent::Declined) => Some((Declined, vec![Ledger(Movement::Release), refunded])),
                    _ => None,
                };
                match expected {
                    Some(ok) => {
                        legal += 1;
                        assert_eq!(transition(state, event), Ok(ok), "{state:?} × {event:?}");
                    }
                    None => assert_eq!(transition(state, event), Err(RefundWrongState { state, event })),
                }
            }
        }
        assert_eq!(legal, 4);
    }

    #[test]
    fn every_path_settles_its_reservation_once_and_says_so() {
        fn walk(state: RefundState, reserved: i32, webhooks: usize) {
            assert!((0..=1).contains(&reserved));
            if is_final(state) {
                assert_eq!((reserved, webhooks), (0, 1), "{state:?}");
            }
            for event in EVENTS {
                if let Ok((next, effects)) = transition(state, event) {
                    let hooks = effects.iter().filter(|e| matches!(e, Effect::Webhook(_))).count();
                    walk(next, reserved + reserved_change(&effects), webhooks + hooks);
                }
            }
        }
        walk(RefundState::Requested, 0, 0);
        for state in STATES.into_iter().filter(|s| *s != RefundState::Requested) {
            assert_eq!(parse_state(&state_name(state)), Some(state));
        }
        assert_eq!(parse_state("requested"), None, "never stored");
    }
}
