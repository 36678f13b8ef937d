//! The payout's own lifecycle, one operation inside a session: one state
//! enum ([`PayoutState`]), one pure [`transition`] returning the new state and
//! the effects (from the shared [`crate::lifecycle`] vocabulary) the engine
//! carries out in the same transaction. The session machine
//! ([`crate::session`]) starts a payout and hears when it settles.
//!
//! ```text
//! start ─► Preparing ──Prepared(manual)──► AwaitingConfirm ──Confirm──► Processing ──► Succeeded ──Returned──► Succeeded(+refund)
//!              │                              │   │                        └────────► Failed(code)
//!              └──Prepared(auto)──► Processing │   ├─Cancel──► Failed(session_cancelled_by_partner)
//!                                             │   └─ConfirmTimedOut──► Failed(confirm_timeout)
//!          (ReserveRefused from Preparing/AwaitingConfirm ──► Failed(insufficient_wallet_balance))
//! ```
//!
//! Money: the amount is reserved when the payout is confirmed (or prepared
//! with auto-confirm), and every reservation ends in exactly one debit or
//! release (`every_reserve_is_settled_exactly_once_on_every_path`).

use crate::ledger::Movement;
use crate::lifecycle::{Effect, Settled, Timer, WebhookKind};

/// Why a payout failed; `as_str` is the API error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCode {
    DeclinedByIssuerBank,
    NotPermittedByIssuerBank,
    BankCardExpired,
    CardNumberDoesNotExist,
    AccountNotFound,
    ProviderTimeout,
    ProviderExceedsAmountLimit,
    InsufficientWalletBalance,
    SessionCancelledByPartner,
    ConfirmTimeout,
    /// FPS verification: the phone's bank has no client with that phone.
    RecipientNotFound,
    /// FPS verification: the bank's client has another name.
    RecipientNameMismatch,
    /// A payout with fiscalization to a person who is not self-employed (or unknown).
    TaxpayerUnknown,
    /// A payout with fiscalization to a self-employed person not linked to the bank.
    TaxpayerNotBound,
    /// The self-employed service failed for the person.
    NpdServiceInternalError,
    /// The person's income in the year would pass the self-employed limit.
    TaxpayerIncomeExceedsAmountLimit,
}

impl FailureCode {
    pub const ALL: [FailureCode; 16] = [
        Self::DeclinedByIssuerBank,
        Self::NotPermittedByIssuerBank,
        Self::BankCardExpired,
        Self::CardNumberDoesNotExist,
        Self::AccountNotFound,
        Self::ProviderTimeout,
        Self::ProviderExceedsAmountLimit,
        Self::InsufficientWalletBalance,
        Self::SessionCancelledByPartner,
        Self::ConfirmTimeout,
        Self::RecipientNotFound,
        Self::RecipientNameMismatch,
        Self::TaxpayerUnknown,
        Self::TaxpayerNotBound,
        Self::NpdServiceInternalError,
        Self::TaxpayerIncomeExceedsAmountLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeclinedByIssuerBank => "declined_by_issuer_bank",
            Self::NotPermittedByIssuerBank => "not_permitted_by_issuer_bank",
            Self::BankCardExpired => "bank_card_expired",
            Self::CardNumberDoesNotExist => "card_number_does_not_exist",
            Self::AccountNotFound => "account_not_found",
            Self::ProviderTimeout => "provider_timeout",
            Self::ProviderExceedsAmountLimit => "provider_exceeds_amount_limit",
            Self::InsufficientWalletBalance => "insufficient_wallet_balance",
            Self::SessionCancelledByPartner => "session_cancelled_by_partner",
            Self::ConfirmTimeout => "confirm_timeout",
            Self::RecipientNotFound => "recipient_not_found",
            Self::RecipientNameMismatch => "recipient_name_mismatch",
            Self::TaxpayerUnknown => "taxpayer_unknown",
            Self::TaxpayerNotBound => "taxpayer_not_bound",
            Self::NpdServiceInternalError => "npd_service_internal_error",
            Self::TaxpayerIncomeExceedsAmountLimit => "taxpayer_income_exceeds_amount_limit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the partner ended the payout (cancelled it, or never confirmed
    /// it) rather than the payout failing by itself: the session table
    /// (README) makes a cancellation `cancelled` and a failure `error`.
    pub fn is_cancellation(self) -> bool {
        matches!(self, Self::SessionCancelledByPartner | Self::ConfirmTimeout)
    }

    /// The human description sent with the code.
    pub fn description(self) -> &'static str {
        match self {
            Self::DeclinedByIssuerBank => "Declined by issuer bank",
            Self::NotPermittedByIssuerBank => "Not permitted by issuer bank",
            Self::BankCardExpired => "Bank card expired",
            Self::CardNumberDoesNotExist => "Card number does not exist",
            Self::AccountNotFound => "Account not found",
            Self::ProviderTimeout => "Provider response timeout, transaction cancelled",
            Self::ProviderExceedsAmountLimit => "Provider amount limit exceeded",
            Self::InsufficientWalletBalance => "Insufficient wallet balance",
            Self::SessionCancelledByPartner => "Session cancelled by partner",
            Self::ConfirmTimeout => "Cancelled: confirmation did not arrive in time",
            Self::RecipientNotFound => "The recipient's bank has no client with this phone number",
            Self::RecipientNameMismatch => "The recipient's name does not match the one at the recipient's bank",
            Self::TaxpayerUnknown => "The person with this INN is not self-employed",
            Self::TaxpayerNotBound => "The self-employed person is not linked to Bank 131",
            Self::NpdServiceInternalError => "The self-employed (NPD) service failed",
            Self::TaxpayerIncomeExceedsAmountLimit => {
                "The receipt would take the person's income this year past the self-employed limit"
            }
        }
    }
}

/// The state of one payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayoutState {
    /// Accepted; the bank prepares it (wire `in_progress`).
    Preparing,
    /// Waiting for `session/confirm` (wire `pending`, `next_action: confirm`).
    AwaitingConfirm,
    /// Funds reserved; the provider works (wire `in_progress`).
    Processing,
    Succeeded,
    Failed(FailureCode),
    /// An FPS recipient verification: the phone's bank checks the name. It
    /// pays nothing, so no money moves and nothing is confirmed.
    Verifying,
    /// The verification found the name (wire `succeeded`). Its own state, not
    /// `Succeeded`: nothing was paid, so nothing can be returned.
    Verified,
    /// A payout of a multi-session waiting for the session's earlier
    /// operations: it has not begun (no event of this machine reaches it; the
    /// session begins it, [`crate::session::Event::BeginWaiting`]) and is not
    /// shown on the wire.
    Waiting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayoutEvent {
    /// The bank finished preparing; `auto_confirm` skips the confirmation step.
    Prepared {
        auto_confirm: bool,
    },
    Confirm,
    Cancel,
    ConfirmTimedOut,
    /// The ledger refused the reservation the previous transition asked for.
    ReserveRefused,
    /// The provider paid; `returned` when the recipient's bank will send it back later.
    ProviderSucceeded {
        returned: bool,
    },
    ProviderFailed(FailureCode),
    /// The recipient's bank returned a successful payout.
    Returned,
}

/// An event the payout's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed when the payout is {state:?}")]
pub struct PayoutWrongState {
    pub state: PayoutState,
    pub event: PayoutEvent,
}

/// A new payout: it starts preparing.
pub fn start() -> (PayoutState, Vec<Effect>) {
    (PayoutState::Preparing, vec![Effect::Schedule(Timer::Prepare)])
}

/// A new FPS recipient verification: the bank asks the phone's bank.
pub fn start_verification() -> (PayoutState, Vec<Effect>) {
    (PayoutState::Verifying, vec![Effect::Schedule(Timer::ProviderResult)])
}

pub fn transition(state: PayoutState, event: PayoutEvent) -> Result<(PayoutState, Vec<Effect>), PayoutWrongState> {
    use Effect::{Ledger, Schedule, Webhook};
    use PayoutEvent as E;
    use PayoutState::*;
    let finished = Webhook(WebhookKind::PaymentFinished);
    let next = match (state, event) {
        (Preparing, E::Prepared { auto_confirm: false }) => {
            (AwaitingConfirm, vec![Webhook(WebhookKind::ReadyToConfirm), Schedule(Timer::ConfirmTimeout)])
        }
        (Preparing, E::Prepared { auto_confirm: true }) | (AwaitingConfirm, E::Confirm) => {
            (Processing, vec![Ledger(Movement::Reserve), Schedule(Timer::ProviderResult)])
        }
        (Preparing | AwaitingConfirm, E::ReserveRefused) => {
            (Failed(FailureCode::InsufficientWalletBalance), vec![finished])
        }
        (AwaitingConfirm, E::Cancel) => (Failed(FailureCode::SessionCancelledByPartner), vec![finished]),
        (AwaitingConfirm, E::ConfirmTimedOut) => (Failed(FailureCode::ConfirmTimeout), vec![finished]),
        (Processing, E::ProviderSucceeded { returned: false }) => (Succeeded, vec![Ledger(Movement::Debit), finished]),
        (Processing, E::ProviderSucceeded { returned: true }) => {
            (Succeeded, vec![Ledger(Movement::Debit), finished, Schedule(Timer::BankReturn)])
        }
        (Processing, E::ProviderFailed(code)) => (Failed(code), vec![Ledger(Movement::Release), finished]),
        (Verifying, E::ProviderSucceeded { returned: false }) => (Verified, vec![finished]),
        (Verifying, E::ProviderFailed(code)) => (Failed(code), vec![finished]),
        (Succeeded, E::Returned) => (Succeeded, vec![Ledger(Movement::Return), Webhook(WebhookKind::PaymentRefunded)]),
        _ => return Err(PayoutWrongState { state, event }),
    };
    Ok(next)
}

/// How the payout settled, once it has.
pub fn settled(state: PayoutState) -> Option<Settled> {
    match state {
        PayoutState::Succeeded | PayoutState::Verified => Some(Settled::Succeeded),
        PayoutState::Failed(code) if code.is_cancellation() => Some(Settled::Cancelled),
        PayoutState::Failed(_) => Some(Settled::Failed),
        PayoutState::Preparing
        | PayoutState::AwaitingConfirm
        | PayoutState::Processing
        | PayoutState::Verifying
        | PayoutState::Waiting => None,
    }
}

/// The payout's `status` on the wire.
pub fn wire_status(state: PayoutState) -> &'static str {
    match state {
        // A waiting payout is never rendered; were it, it is in progress with its session.
        PayoutState::Preparing | PayoutState::Processing | PayoutState::Verifying | PayoutState::Waiting => {
            "in_progress"
        }
        PayoutState::AwaitingConfirm => "pending",
        PayoutState::Succeeded | PayoutState::Verified => "succeeded",
        PayoutState::Failed(_) => "failed",
    }
}

/// Stable storage name of a state.
pub fn state_name(state: PayoutState) -> String {
    match state {
        PayoutState::Preparing => "preparing".into(),
        PayoutState::AwaitingConfirm => "awaiting_confirm".into(),
        PayoutState::Processing => "processing".into(),
        PayoutState::Succeeded => "succeeded".into(),
        PayoutState::Failed(code) => format!("failed:{}", code.as_str()),
        PayoutState::Verifying => "verifying".into(),
        PayoutState::Verified => "verified".into(),
        PayoutState::Waiting => "waiting".into(),
    }
}

pub fn parse_state(s: &str) -> Option<PayoutState> {
    Some(match s {
        "preparing" => PayoutState::Preparing,
        "awaiting_confirm" => PayoutState::AwaitingConfirm,
        "processing" => PayoutState::Processing,
        "succeeded" => PayoutState::Succeeded,
        "verifying" => PayoutState::Verifying,
        "verified" => PayoutState::Verified,
        "waiting" => PayoutState::Waiting,
        other => PayoutState::Failed(FailureCode::parse(other.strip_prefix("failed:")?)?),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn all_states() -> Vec<PayoutState> {
        let mut v = vec![PayoutState::Preparing, PayoutState::AwaitingConfirm, PayoutState::Processing];
        v.push(PayoutState::Succeeded);
        v.push(PayoutState::Verifying);
        v.push(PayoutState::Verified);
        v.push(PayoutState::Waiting);
        v.extend(FailureCode::ALL.into_iter().map(PayoutState::Failed));
        v
    }

    pub(crate) fn all_events() -> Vec<PayoutEvent> {
        let mut v = vec![
            PayoutEvent::Prepared { auto_confirm: false },
            PayoutEvent::Prepared { auto_confirm: true },
            PayoutEvent::Confirm,
            PayoutEvent::Cancel,
            PayoutEvent::ConfirmTimedOut,
            PayoutEvent::ReserveRefused,
            PayoutEvent::ProviderSucceeded { returned: false },
            PayoutEvent::ProviderSucceeded { returned: true },
            PayoutEvent::Returned,
        ];
        v.extend(FailureCode::ALL.into_iter().map(PayoutEvent::ProviderFailed));
        v
    }

    /// The whole table: every state × every event, against an independent
    /// listing of the legal moves.
    #[test]
    fn full_state_event_table() {
        use Effect::{Ledger, Schedule, Webhook};
        use PayoutEvent as E;
        use PayoutState::*;
        let finished = Webhook(WebhookKind::PaymentFinished);
        let reserve = vec![Ledger(Movement::Reserve), Schedule(Timer::ProviderResult)];
        let mut legal = 0;
        for state in all_states() {
            for event in all_events() {
                let expected: Option<(PayoutState, Vec<Effect>)> = match (state, event) {
                    (Preparing, E::Prepared { auto_confirm: false }) => Some((
                        AwaitingConfirm,
                        vec![Webhook(WebhookKind::ReadyToConfirm), Schedule(Timer::ConfirmTimeout)],
                    )),
                    (Preparing, E::Prepared { auto_confirm: true }) => Some((Processing, reserve.clone())),
                    (Preparing, E::ReserveRefused) => {
                        Some((Failed(FailureCode::InsufficientWalletBalance), vec![finished]))
                    }
                    (AwaitingConfirm, E::Confirm) => Some((Processing, reserve.clone())),
                    (AwaitingConfirm, E::ReserveRefused) => {
                        Some((Failed(FailureCode::InsufficientWalletBalance), vec![finished]))
                    }
                    (AwaitingConfirm, E::Cancel) => {
                        Some((Failed(FailureCode::SessionCancelledByPartner), vec![finished]))
                    }
                    (AwaitingConfirm, E::ConfirmTimedOut) => {
                        Some((Failed(FailureCode::ConfirmTimeout), vec![finished]))
                    }
                    (Processing, E::ProviderSucceeded { returned: false }) => {
                        Some((Succeeded, vec![Ledger(Movement::Debit), finished]))
                    }
                    (Processing, E::ProviderSucceeded { returned: true }) => {
                        Some((Succeeded, vec![Ledger(Movement::Debit), finished, Schedule(Timer::BankReturn)]))
                    }
                    (Processing, E::ProviderFailed(c)) => Some((Failed(c), vec![Ledger(Movement::Release), finished])),
                    (Verifying, E::ProviderSucceeded { returned: false }) => Some((Verified, vec![finished])),
                    (Verifying, E::ProviderFailed(c)) => Some((Failed(c), vec![finished])),
                    (Succeeded, E::Returned) => {
                        Some((Succeeded, vec![Ledger(Movement::Return), Webhook(WebhookKind::PaymentRefunded)]))
                    }
                    _ => None,
                };
                let got = transition(state, event);
                match expected {
                    Some(ok) => {
                        legal += 1;
                        assert_eq!(got, Ok(ok), "{state:?} × {event:?}");
                    }
                    None => assert_eq!(got, Err(PayoutWrongState { state, event }), "{state:?} × {event:?}"),
                }
            }
        }
        assert_eq!(legal, 11 + 2 * FailureCode::ALL.len());
    }

    #[test]
    fn every_reserve_is_settled_exactly_once_on_every_path() {
        // Walk all event sequences up to length 6 from a new payout: a Reserve
        // is always followed by exactly one Debit or Release, never both.
        let walk = crate::lifecycle::Walk {
            events: &all_events(),
            transition: &|s, e| transition(s, e).ok(),
            settled: &|s| settled(s).is_some(),
            change: &crate::lifecycle::reserved_change,
        };
        let (state, effects) = start();
        assert!(!effects.iter().any(|e| matches!(e, Effect::Ledger(_))), "starting moves no money");
        crate::lifecycle::walk_paths(&walk, state, 0, 6);
        // A verification never moves money on any path.
        fn walk_verification(state: PayoutState, depth: usize) {
            for event in all_events() {
                if let Ok((next, effects)) = transition(state, event) {
                    assert!(!effects.iter().any(|e| matches!(e, Effect::Ledger(_))), "{state:?} × {event:?}");
                    if depth > 0 {
                        walk_verification(next, depth - 1);
                    }
                }
            }
        }
        let (state, effects) = start_verification();
        assert!(!effects.iter().any(|e| matches!(e, Effect::Ledger(_))));
        walk_verification(state, 4);
    }

    #[test]
    fn a_settled_payout_never_unsettles() {
        for state in all_states().into_iter().filter(|s| settled(*s).is_some()) {
            for event in all_events() {
                if let Ok((next, _)) = transition(state, event) {
                    assert_eq!(settled(next), settled(state), "{state:?} × {event:?}");
                }
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in all_states() {
            assert_eq!(parse_state(&state_name(s)), Some(s));
        }
        assert_eq!(parse_state("failed:nonsense"), None);
        assert_eq!(wire_status(PayoutState::AwaitingConfirm), "pending");
    }
}
