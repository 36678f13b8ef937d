//! The acquiring payment's own lifecycle (issue 9, spec §4.4), one operation
//! inside a session beside the payout's ([`crate::payout_flow`]): one state
//! enum ([`PaymentState`]), one pure [`transition`] returning the new state
//! and the effects (from the shared [`crate::lifecycle`] vocabulary).
//!
//! ```text
//! start ─► Preparing ─Prepared(manual)─► AwaitingConfirm ─Confirm─┐
//!             │                              ├─Cancel──► Failed(session_cancelled_by_partner)
//!             │                              └─TimedOut─► Failed(confirm_timeout)
//!             └─Prepared(auto)──────────────────────────────────┤
//!                                  ┌─────────── 3-D Secure ─────┴──── none ────┐
//!                                  ▼                                           ▼
//!                           AwaitingAction ─ThreeDsPassed────────────────► Authorizing
//!                             ├─ThreeDsFailed / TimedOut─► Failed(3DS_error)   ├─Declined(code)─► Failed(code)
//!                             ├─WrongCode(not last)─► AwaitingAction
//!                             ├─WrongCode(last)─► Failed(3DS_error)
//!                             ├─QrPaid (FPS, SberPay: final, no hold)─► Succeeded
//!                             ├─QrExpired─► Failed(qr_expired)
//!                             └─SberPayExpired─► Failed(sberpay_expired)
//!                                                                              ├─Authorized(auto capture)─► Succeeded
//!                                                                              └─Authorized(hold)─► AwaitingCapture
//! AwaitingCapture ─Capture─► Succeeded   ─Cancel─► Failed(session_cancelled_by_partner)   ─TimedOut─► Failed(capture_timeout)
//! ```
//!
//! Money: the customer's money is held when the issuer authorizes it
//! (`Hold`: acquiring → held), captured into the project's available balance
//! (`Capture`: held → available, the part captured) and the rest released
//! (`ReleaseHold`: held → acquiring). Every hold ends in exactly one capture
//! or release (`every_hold_is_settled_exactly_once_on_every_path`); a partial
//! capture is one capture and one release of the rest, which the engine sizes.

use crate::ledger::Movement;
use crate::lifecycle::{Effect, Settled, Timer, WebhookKind};

/// Wrong one-time codes a customer may enter on the 3-D Secure page: the
/// last of them fails the payment with `3DS_error`.
pub const THREE_DS_CODE_ATTEMPTS_MAX: u8 = 3;

/// How long a hold waits for `session/capture` before it fails with
/// `capture_timeout` and the money goes back, unless the project sets its own
/// (`capture_timeout_s`, whose stored default is this): five days `[INF]`.
pub const CAPTURE_TIMEOUT_DEFAULT_S: u64 = 5 * 24 * 3600;

/// Why a payment failed; `as_str` is the API error code (the docs' names,
/// `3DS_error` with its capitals included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentFailure {
    DeclinedByIssuerBank,
    InsufficientFunds,
    BankCardExpired,
    ThreeDsError,
    ActivityCountExceeded,
    NotPermittedByIssuerBank,
    CardNumberDoesNotExist,
    AmountLessAllowedProvider,
    SessionCancelledByPartner,
    ConfirmTimeout,
    CaptureTimeout,
    /// Paid by a recurrent token that was disabled.
    BindingIsDeactivated,
    /// An FPS QR code nobody paid within the wait (open131's code `[INF]`:
    /// the bank publishes none).
    QrExpired,
    /// A SberPay payment the customer did not pay in Sber's app within the
    /// wait (open131's code `[INF]`).
    SberPayExpired,
}

impl PaymentFailure {
    pub const ALL: [PaymentFailure; 14] = [
        Self::DeclinedByIssuerBank,
        Self::InsufficientFunds,
        Self::BankCardExpired,
        Self::ThreeDsError,
        Self::ActivityCountExceeded,
        Self::NotPermittedByIssuerBank,
        Self::CardNumberDoesNotExist,
        Self::AmountLessAllowedProvider,
        Self::SessionCancelledByPartner,
        Self::ConfirmTimeout,
        Self::CaptureTimeout,
        Self::BindingIsDeactivated,
        Self::QrExpired,
        Self::SberPayExpired,
    ];

    /// The issuer's declines: what the provider may answer to an authorization.
    pub const DECLINES: [PaymentFailure; 8] = [
        Self::DeclinedByIssuerBank,
        Self::InsufficientFunds,
        Self::BankCardExpired,
        Self::ActivityCountExceeded,
        Self::NotPermittedByIssuerBank,
        Self::CardNumberDoesNotExist,
        Self::AmountLessAllowedProvider,
        Self::BindingIsDeactivated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeclinedByIssuerBank => "declined_by_issuer_bank",
            Self::InsufficientFunds => "insufficient_funds",
            Self::BankCardExpired => "bank_card_expired",
            Self::ThreeDsError => "3DS_error",
            Self::ActivityCountExceeded => "activity_count_exceeded",
            Self::NotPermittedByIssuerBank => "not_permitted_by_issuer_bank",
            Self::CardNumberDoesNotExist => "card_number_does_not_exist",
            Self::AmountLessAllowedProvider => "amount_less_allowed_provider",
            Self::SessionCancelledByPartner => "session_cancelled_by_partner",
            Self::ConfirmTimeout => "confirm_timeout",
            Self::CaptureTimeout => "capture_timeout",
            Self::BindingIsDeactivated => "binding_is_deactivated",
            Self::QrExpired => "qr_expired",
            Self::SberPayExpired => "sberpay_expired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::DeclinedByIssuerBank => "Declined by issuer bank",
            Self::InsufficientFunds => "Insufficient funds on the card",
            Self::BankCardExpired => "Bank card expired",
            Self::ThreeDsError => "3-D Secure authentication failed",
            Self::ActivityCountExceeded => "Card activity count exceeded",
            Self::NotPermittedByIssuerBank => "Not permitted by issuer bank",
            Self::CardNumberDoesNotExist => "Card number does not exist",
            Self::AmountLessAllowedProvider => "Amount is less than the provider allows",
            Self::SessionCancelledByPartner => "Session cancelled by partner",
            Self::ConfirmTimeout => "Cancelled: confirmation did not arrive in time",
            Self::CaptureTimeout => "Cancelled: capture did not arrive in time, the hold was released",
            Self::BindingIsDeactivated => "The recurrent token was disabled",
            Self::QrExpired => "Nobody paid the FPS QR code in time",
            Self::SberPayExpired => "The customer did not pay in SberPay in time",
        }
    }

    /// Whether the payment was ended rather than failed (the partner
    /// cancelled it, did not confirm or capture it in time, or nobody paid
    /// its QR code): the session is then `cancelled`, as for payouts (README,
    /// the session table).
    pub fn is_cancellation(self) -> bool {
        matches!(
            self,
            Self::SessionCancelledByPartner
                | Self::ConfirmTimeout
                | Self::CaptureTimeout
                | Self::QrExpired
                | Self::SberPayExpired
        )
    }
}

/// The state of one acquiring payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentState {
    /// Accepted; the bank checks it (wire `in_progress`).
    Preparing,
    /// Waiting for `session/confirm` (wire `pending`, `next_action: confirm`).
    AwaitingConfirm,
    /// Waiting for the customer: 3-D Secure (wire `pending` with `customer_interaction`).
    AwaitingAction,
    /// The issuer authorizes it (wire `in_progress`).
    Authorizing,
    /// Authorized and held; waiting for `session/capture` (wire `pending`, `next_action: capture`).
    AwaitingCapture,
    Succeeded,
    Failed(PaymentFailure),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentEvent {
    /// The bank finished its checks; `auto_confirm` skips the partner's
    /// confirmation, `three_ds` sends the customer to 3-D Secure next.
    Prepared { auto_confirm: bool, three_ds: bool },
    /// `session/confirm`; `three_ds` as for `Prepared`.
    Confirm { three_ds: bool },
    /// The customer passed 3-D Secure.
    ThreeDsPassed,
    /// The customer failed or declined 3-D Secure.
    ThreeDsFailed,
    /// The customer paid in their bank's app (an FPS QR code, or SberPay in
    /// Sber's app): the money is in (such a transfer is final: no hold, no capture).
    QrPaid,
    /// Nobody paid the FPS QR code within the wait.
    QrExpired,
    /// The customer did not pay in SberPay within the wait.
    SberPayExpired,
    /// The customer entered a wrong one-time code; `last` when no attempt is
    /// left (the caller counts them against [`THREE_DS_CODE_ATTEMPTS_MAX`]).
    ThreeDsWrongCode { last: bool },
    /// The issuer authorized; `auto_capture` captures at once, else the money is held.
    Authorized { auto_capture: bool },
    /// The issuer declined.
    Declined(PaymentFailure),
    /// `session/capture` (full, or partial: the engine sizes the capture and the release).
    Capture,
    /// `session/cancel`.
    Cancel,
    /// What the payment waits for (confirmation, the customer, capture) did not come in time.
    TimedOut,
}

/// An event the payment's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed when the payment is {state:?}")]
pub struct PaymentWrongState {
    pub state: PaymentState,
    pub event: PaymentEvent,
}

/// A new payment: the bank checks it.
pub fn start() -> (PaymentState, Vec<Effect>) {
    (PaymentState::Preparing, vec![Effect::Schedule(Timer::Prepare)])
}

/// Where a payment goes once nothing of the partner's stands in the way:
/// to the customer for 3-D Secure, or to the issuer.
fn onward(three_ds: bool) -> (PaymentState, Vec<Effect>) {
    use Effect::{Schedule, Webhook};
    if three_ds {
        (PaymentState::AwaitingAction, vec![Webhook(WebhookKind::ActionRequired), Schedule(Timer::ConfirmTimeout)])
    } else {
        (PaymentState::Authorizing, vec![Schedule(Timer::ProviderResult)])
    }
}

pub fn transition(state: PaymentState, event: PaymentEvent) -> Result<(PaymentState, Vec<Effect>), PaymentWrongState> {
    use Effect::{Ledger, Schedule, Webhook};
    use PaymentEvent as E;
    use PaymentFailure as F;
    use PaymentState::*;
    let finished = Webhook(WebhookKind::PaymentFinished);
    let failed = |code: PaymentFailure| (Failed(code), vec![finished]);
    let next = match (state, event) {
        (Preparing, E::Prepared { auto_confirm: false, .. }) => {
            (AwaitingConfirm, vec![Webhook(WebhookKind::ReadyToConfirm), Schedule(Timer::ConfirmTimeout)])
        }
        (Preparing, E::Prepared { auto_confirm: true, three_ds }) | (AwaitingConfirm, E::Confirm { three_ds }) => {
            onward(three_ds)
        }
        (AwaitingConfirm, E::Cancel) => failed(F::SessionCancelledByPartner),
        (AwaitingConfirm, E::TimedOut) => failed(F::ConfirmTimeout),
        (AwaitingAction, E::ThreeDsPassed) => onward(false),
        (AwaitingAction, E::ThreeDsFailed | E::TimedOut | E::ThreeDsWrongCode { last: true }) => {
            failed(F::ThreeDsError)
        }
        (AwaitingAction, E::ThreeDsWrongCode { last: false }) => (AwaitingAction, Vec::new()),
        (AwaitingAction, E::QrPaid) => (Succeeded, vec![Ledger(Movement::Hold), Ledger(Movement::Capture), finished]),
        (AwaitingAction, E::QrExpired) => failed(F::QrExpired),
        (AwaitingAction, E::SberPayExpired) => failed(F::SberPayExpired),
        (Authorizing, E::Authorized { auto_capture: true }) => {
            (Succeeded, vec![Ledger(Movement::Hold), Ledger(Movement::Capture), finished])
        }
        (Authorizing, E::Authorized { auto_capture: false }) => (
            AwaitingCapture,
            vec![Ledger(Movement::Hold), Webhook(WebhookKind::ReadyToCapture), Schedule(Timer::CaptureTimeout)],
        ),
        (Authorizing, E::Declined(code)) if F::DECLINES.contains(&code) => failed(code),
        (AwaitingCapture, E::Capture) => (Succeeded, vec![Ledger(Movement::Capture), finished]),
        (AwaitingCapture, E::Cancel) => {
            (Failed(F::SessionCancelledByPartner), vec![Ledger(Movement::ReleaseHold), finished])
        }
        (AwaitingCapture, E::TimedOut) => (Failed(F::CaptureTimeout), vec![Ledger(Movement::ReleaseHold), finished]),
        _ => return Err(PaymentWrongState { state, event }),
    };
    Ok(next)
}

/// How the payment settled, once it has.
pub fn settled(state: PaymentState) -> Option<Settled> {
    match state {
        PaymentState::Succeeded => Some(Settled::Succeeded),
        PaymentState::Failed(code) if code.is_cancellation() => Some(Settled::Cancelled),
        PaymentState::Failed(_) => Some(Settled::Failed),
        PaymentState::Preparing
        | PaymentState::AwaitingConfirm
        | PaymentState::AwaitingAction
        | PaymentState::Authorizing
        | PaymentState::AwaitingCapture => None,
    }
}

/// The payment's `status` on the wire.
pub fn wire_status(state: PaymentState) -> &'static str {
    match state {
        PaymentState::Preparing | PaymentState::Authorizing => "in_progress",
        PaymentState::AwaitingConfirm | PaymentState::AwaitingAction | PaymentState::AwaitingCapture => "pending",
        PaymentState::Succeeded => "succeeded",
        PaymentState::Failed(_) => "failed",
    }
}

/// The session's `next_action` while the payment waits for the partner.
pub fn next_action(state: PaymentState) -> Option<&'static str> {
    match state {
        PaymentState::AwaitingConfirm => Some("confirm"),
        PaymentState::AwaitingCapture => Some("capture"),
        _ => None,
    }
}

/// Stable storage name of a state.
pub fn state_name(state: PaymentState) -> String {
    match state {
        PaymentState::Preparing => "preparing".into(),
        PaymentState::AwaitingConfirm => "awaiting_confirm".into(),
        PaymentState::AwaitingAction => "awaiting_action".into(),
        PaymentState::Authorizing => "authorizing".into(),
        PaymentState::AwaitingCapture => "awaiting_capture".into(),
        PaymentState::Succeeded => "succeeded".into(),
        PaymentState::Failed(code) => format!("failed:{}", code.as_str()),
    }
}

pub fn parse_state(s: &str) -> Option<PaymentState> {
    Some(match s {
        "preparing" => PaymentState::Preparing,
        "awaiting_confirm" => PaymentState::AwaitingConfirm,
        "awaiting_action" => PaymentState::AwaitingAction,
        "authorizing" => PaymentState::Authorizing,
        "awaiting_capture" => PaymentState::AwaitingCapture,
        "succeeded" => PaymentState::Succeeded,
        other => PaymentState::Failed(PaymentFailure::parse(other.strip_prefix("failed:")?)?),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn all_states() -> Vec<PaymentState> {
        use PaymentState::*;
        let mut v = vec![Preparing, AwaitingConfirm, AwaitingAction, Authorizing, AwaitingCapture, Succeeded];
        v.extend(PaymentFailure::ALL.map(Failed));
        v
    }

    pub(crate) fn all_events() -> Vec<PaymentEvent> {
        use PaymentEvent as E;
        let mut v = Vec::new();
        for (a, b) in [(false, false), (false, true), (true, false), (true, true)] {
            v.push(E::Prepared { auto_confirm: a, three_ds: b });
        }
        v.extend([
            E::Confirm { three_ds: false },
            E::Confirm { three_ds: true },
            E::ThreeDsPassed,
            E::ThreeDsFailed,
            E::ThreeDsWrongCode { last: false },
            E::ThreeDsWrongCode { last: true },
            E::QrPaid,
            E::QrExpired,
            E::SberPayExpired,
            E::Authorized { auto_capture: true },
            E::Authorized { auto_capture: false },
            E::Capture,
            E::Cancel,
            E::TimedOut,
        ]);
        v.extend(PaymentFailure::ALL.map(E::Declined));
        v
    }

    /// The whole table: every state × every event, against an independent
    /// listing of the legal moves.
    #[test]
    fn full_state_event_table() {
        use Effect::{Ledger, Schedule, Webhook};
        use PaymentEvent as E;
        use PaymentFailure as F;
        use PaymentState::*;
        let finished = Webhook(WebhookKind::PaymentFinished);
        let to_issuer = (Authorizing, vec![Schedule(Timer::ProviderResult)]);
        let to_customer = (AwaitingAction, vec![Webhook(WebhookKind::ActionRequired), Schedule(Timer::ConfirmTimeout)]);
        let mut legal = 0;
        for state in all_states() {
            for event in all_events() {
                let expected: Option<(PaymentState, Vec<Effect>)> = match (state, event) {
                    (Preparing, E::Prepared { auto_confirm: false, .. }) => Some((
                        AwaitingConfirm,
                        vec![Webhook(WebhookKind::ReadyToConfirm), Schedule(Timer::ConfirmTimeout)],
                    )),
                    (Preparing, E::Prepared { auto_confirm: true, three_ds: false }) => Some(to_issuer.clone()),
                    (Preparing, E::Prepared { auto_confirm: true, three_ds: true }) => Some(to_customer.clone()),
                    (AwaitingConfirm, E::Confirm { three_ds: false }) => Some(to_issuer.clone()),
                    (AwaitingConfirm, E::Confirm { three_ds: true }) => Some(to_customer.clone()),
                    (AwaitingConfirm, E::Cancel) => Some((Failed(F::SessionCancelledByPartner), vec![finished])),
                    (AwaitingConfirm, E::TimedOut) => Some((Failed(F::ConfirmTimeout), vec![finished])),
                    (AwaitingAction, E::ThreeDsPassed) => Some(to_issuer.clone()),
                    (AwaitingAction, E::ThreeDsFailed) => Some((Failed(F::ThreeDsError), vec![finished])),
                    (AwaitingAction, E::TimedOut) => Some((Failed(F::ThreeDsError), vec![finished])),
                    (AwaitingAction, E::ThreeDsWrongCode { last: true }) => {
                        Some((Failed(F::ThreeDsError), vec![finished]))
                    }
                    (AwaitingAction, E::ThreeDsWrongCode { last: false }) => Some((AwaitingAction, Vec::new())),
                    (AwaitingAction, E::QrPaid) => {
                        Some((Succeeded, vec![Ledger(Movement::Hold), Ledger(Movement::Capture), finished]))
                    }
                    (AwaitingAction, E::QrExpired) => Some((Failed(F::QrExpired), vec![finished])),
                    (AwaitingAction, E::SberPayExpired) => Some((Failed(F::SberPayExpired), vec![finished])),
                    (Authorizing, E::Authorized { auto_capture: true }) => {
                        Some((Succeeded, vec![Ledger(Movement::Hold), Ledger(Movement::Capture), finished]))
                    }
                    (Authorizing, E::Authorized { auto_capture: false }) => Some((
                        AwaitingCapture,
                        vec![
                            Ledger(Movement::Hold),
                            Webhook(WebhookKind::ReadyToCapture),
                            Schedule(Timer::CaptureTimeout),
                        ],
                    )),
                    (Authorizing, E::Declined(code)) if F::DECLINES.contains(&code) => {
                        Some((Failed(code), vec![finished]))
                    }
                    (AwaitingCapture, E::Capture) => Some((Succeeded, vec![Ledger(Movement::Capture), finished])),
                    (AwaitingCapture, E::Cancel) => {
                        Some((Failed(F::SessionCancelledByPartner), vec![Ledger(Movement::ReleaseHold), finished]))
                    }
                    (AwaitingCapture, E::TimedOut) => {
                        Some((Failed(F::CaptureTimeout), vec![Ledger(Movement::ReleaseHold), finished]))
                    }
                    _ => None,
                };
                let got = transition(state, event);
                match expected {
                    Some(ok) => {
                        legal += 1;
                        assert_eq!(got, Ok(ok), "{state:?} × {event:?}");
                    }
                    None => assert_eq!(got, Err(PaymentWrongState { state, event }), "{state:?} × {event:?}"),
                }
            }
        }
        assert_eq!(legal, 21 + PaymentFailure::DECLINES.len());
    }

    /// How many holds `effects` open (+1) or settle (−1).
    pub(crate) fn held_change(effects: &[Effect]) -> i32 {
        effects
            .iter()
            .map(|e| match e {
                Effect::Ledger(Movement::Hold) => 1,
                Effect::Ledger(Movement::Capture | Movement::ReleaseHold) => -1,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn every_hold_is_settled_exactly_once_on_every_path() {
        // All event sequences up to length 7 from a new payment: money is
        // held at most once, and a settled payment holds nothing.
        let walk = crate::lifecycle::Walk {
            events: &all_events(),
            transition: &|s, e| transition(s, e).ok(),
            settled: &|s| settled(s).is_some(),
            change: &held_change,
        };
        let (state, effects) = start();
        assert_eq!(held_change(&effects), 0, "starting moves no money");
        crate::lifecycle::walk_paths(&walk, state, 0, 7);
    }

    #[test]
    fn a_settled_payment_never_moves_and_waiting_states_name_their_action() {
        for state in all_states().into_iter().filter(|s| settled(*s).is_some()) {
            for event in all_events() {
                assert!(transition(state, event).is_err(), "{state:?} × {event:?}");
            }
        }
        assert_eq!(next_action(PaymentState::AwaitingConfirm), Some("confirm"));
        assert_eq!(next_action(PaymentState::AwaitingCapture), Some("capture"));
        assert_eq!(next_action(PaymentState::AwaitingAction), None);
        assert_eq!(wire_status(PaymentState::AwaitingAction), "pending");
    }

    #[test]
    fn names_round_trip() {
        for s in all_states() {
            assert_eq!(parse_state(&state_name(s)), Some(s));
        }
        assert_eq!(parse_state("failed:nonsense"), None);
        assert_eq!(PaymentFailure::ThreeDsError.as_str(), "3DS_error");
        assert!(PaymentFailure::CaptureTimeout.is_cancellation());
        assert!(!PaymentFailure::InsufficientFunds.is_cancellation());
    }
}
