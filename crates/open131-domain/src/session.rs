//! The payout session lifecycle: one state enum ([`Phase`]), one pure
//! [`transition`] returning the new phase and the effects the caller must carry
//! out in the same transaction (ledger movements, webhooks, timers).
//!
//! A session holds at most one payout here (the shape every official client
//! uses); `Phase` is the combined state of the session and its payout.
//!
//! ```text
//! Created ──Start──► Preparing ──Prepared(manual)──► AwaitingConfirm ──Confirm──► Processing ──► Succeeded ──Returned──► Succeeded(+refund)
//!    │                   │                              │   │                        └────────► Failed(code)
//!    │                   └──Prepared(auto)──► Processing │   ├─Cancel──► Failed(session_cancelled_by_partner)
//!    └─Cancel──► Cancelled                               │   └─ConfirmTimedOut──► Failed(confirm_timeout)
//!                              (ReserveRefused from Preparing/AwaitingConfirm ──► Failed(insufficient_wallet_balance))
//! ```

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
}

impl FailureCode {
    pub const ALL: [FailureCode; 10] = [
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
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
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
        }
    }
}

/// Combined state of a session and its payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Session exists, no payout yet.
    Created,
    /// Payout accepted; the bank prepares it (payout `in_progress`).
    Preparing,
    /// Waiting for `session/confirm` (payout `pending`, `next_action: confirm`).
    AwaitingConfirm,
    /// Funds reserved; the provider works (payout `in_progress`).
    Processing,
    Succeeded,
    Failed(FailureCode),
    /// Cancelled before any payout.
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Start,
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

/// What the caller must do, in the same transaction as the state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Move the payout amount from available to reserved.
    Reserve,
    /// Reserved amount leaves the wallet (paid out).
    Debit,
    /// Reserved amount goes back to available.
    Release,
    /// A returned payout comes back to available.
    Return,
    Webhook(WebhookKind),
    Schedule(Timer),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    ReadyToConfirm,
    PaymentFinished,
    PaymentRefunded,
}

impl WebhookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadyToConfirm => "ready_to_confirm",
            Self::PaymentFinished => "payment_finished",
            Self::PaymentRefunded => "payment_refunded",
        }
    }
}

/// Timers the bank sets for itself; each fires an [`Event`] later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Fires `Prepared`.
    Prepare,
    /// Fires `ConfirmTimedOut` (ignored if the session moved on).
    ConfirmTimeout,
    /// Fires the provider's verdict.
    ProviderResult,
    /// Fires `Returned`.
    BankReturn,
}

impl Timer {
    pub const ALL: [Timer; 4] = [Self::Prepare, Self::ConfirmTimeout, Self::ProviderResult, Self::BankReturn];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::ConfirmTimeout => "confirm_timeout",
            Self::ProviderResult => "provider_result",
            Self::BankReturn => "bank_return",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// An event not allowed in the current phase; the API answers `session_wrong_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{event:?} is not allowed when the session is {phase:?}")]
pub struct WrongState {
    pub phase: Phase,
    pub event: Event,
}

pub fn transition(phase: Phase, event: Event) -> Result<(Phase, Vec<Effect>), WrongState> {
    use Effect::*;
    use Phase::*;
    let finished = Webhook(WebhookKind::PaymentFinished);
    let next = match (phase, event) {
        (Created, Event::Start) => (Preparing, vec![Schedule(Timer::Prepare)]),
        (Created, Event::Cancel) => (Cancelled, vec![]),
        (Preparing, Event::Prepared { auto_confirm: false }) => {
            (AwaitingConfirm, vec![Webhook(WebhookKind::ReadyToConfirm), Schedule(Timer::ConfirmTimeout)])
        }
        (Preparing, Event::Prepared { auto_confirm: true }) | (AwaitingConfirm, Event::Confirm) => {
            (Processing, vec![Reserve, Schedule(Timer::ProviderResult)])
        }
        (Preparing | AwaitingConfirm, Event::ReserveRefused) => {
            (Failed(FailureCode::InsufficientWalletBalance), vec![finished])
        }
        (AwaitingConfirm, Event::Cancel) => (Failed(FailureCode::SessionCancelledByPartner), vec![finished]),
        (AwaitingConfirm, Event::ConfirmTimedOut) => (Failed(FailureCode::ConfirmTimeout), vec![finished]),
        (Processing, Event::ProviderSucceeded { returned: false }) => (Succeeded, vec![Debit, finished]),
        (Processing, Event::ProviderSucceeded { returned: true }) => {
            (Succeeded, vec![Debit, finished, Schedule(Timer::BankReturn)])
        }
        (Processing, Event::ProviderFailed(code)) => (Failed(code), vec![Release, finished]),
        (Succeeded, Event::Returned) => (Succeeded, vec![Return, Webhook(WebhookKind::PaymentRefunded)]),
        _ => return Err(WrongState { phase, event }),
    };
    Ok(next)
}

/// `session.status` on the wire.
pub fn session_status(phase: Phase) -> &'static str {
    match phase {
        Phase::Created => "created",
        Phase::Preparing | Phase::AwaitingConfirm | Phase::Processing => "in_progress",
        Phase::Succeeded => "accepted",
        // Decision (the docs are silent): a failed payout cancels its session.
        Phase::Failed(_) | Phase::Cancelled => "cancelled",
    }
}

/// The payout's `status` on the wire (`None` when there is no payout).
pub fn payout_status(phase: Phase) -> Option<&'static str> {
    match phase {
        Phase::Created | Phase::Cancelled => None,
        Phase::Preparing | Phase::Processing => Some("in_progress"),
        Phase::AwaitingConfirm => Some("pending"),
        Phase::Succeeded => Some("succeeded"),
        Phase::Failed(_) => Some("failed"),
    }
}

pub fn is_final(phase: Phase) -> bool {
    matches!(phase, Phase::Succeeded | Phase::Failed(_) | Phase::Cancelled)
}

/// Stable storage name of a phase.
pub fn phase_name(phase: Phase) -> String {
    match phase {
        Phase::Created => "created".into(),
        Phase::Preparing => "preparing".into(),
        Phase::AwaitingConfirm => "awaiting_confirm".into(),
        Phase::Processing => "processing".into(),
        Phase::Succeeded => "succeeded".into(),
        Phase::Failed(code) => format!("failed:{}", code.as_str()),
        Phase::Cancelled => "cancelled".into(),
    }
}

pub fn parse_phase(s: &str) -> Option<Phase> {
    Some(match s {
        "created" => Phase::Created,
        "preparing" => Phase::Preparing,
        "awaiting_confirm" => Phase::AwaitingConfirm,
        "processing" => Phase::Processing,
        "succeeded" => Phase::Succeeded,
        "cancelled" => Phase::Cancelled,
        other => Phase::Failed(FailureCode::parse(other.strip_prefix("failed:")?)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_phases() -> Vec<Phase> {
        let mut v = vec![Phase::Created, Phase::Preparing, Phase::AwaitingConfirm, Phase::Processing, Phase::Succeeded];
        v.extend(FailureCode::ALL.into_iter().map(Phase::Failed));
        v.push(Phase::Cancelled);
        v
    }

    fn all_events() -> Vec<Event> {
        let mut v = vec![
            Event::Start,
            Event::Prepared { auto_confirm: false },
            Event::Prepared { auto_confirm: true },
            Event::Confirm,
            Event::Cancel,
            Event::ConfirmTimedOut,
            Event::ReserveRefused,
            Event::ProviderSucceeded { returned: false },
            Event::ProviderSucceeded { returned: true },
            Event::Returned,
        ];
        v.extend(FailureCode::ALL.into_iter().map(Event::ProviderFailed));
        v
    }

    /// The whole table: every phase × every event, against an independent listing
    /// of the legal moves.
    #[test]
    fn full_state_event_table() {
        use Effect::*;
        use Phase::*;
        let finished = Webhook(WebhookKind::PaymentFinished);
        let mut legal = 0;
        for phase in all_phases() {
            for event in all_events() {
                let expected: Option<(Phase, Vec<Effect>)> = match (phase, event) {
                    (Created, Event::Start) => Some((Preparing, vec![Schedule(Timer::Prepare)])),
                    (Created, Event::Cancel) => Some((Cancelled, vec![])),
                    (Preparing, Event::Prepared { auto_confirm: false }) => Some((
                        AwaitingConfirm,
                        vec![Webhook(WebhookKind::ReadyToConfirm), Schedule(Timer::ConfirmTimeout)],
                    )),
                    (Preparing, Event::Prepared { auto_confirm: true }) => {
                        Some((Processing, vec![Reserve, Schedule(Timer::ProviderResult)]))
                    }
                    (Preparing, Event::ReserveRefused) => {
                        Some((Failed(FailureCode::InsufficientWalletBalance), vec![finished]))
                    }
                    (AwaitingConfirm, Event::Confirm) => {
                        Some((Processing, vec![Reserve, Schedule(Timer::ProviderResult)]))
                    }
                    (AwaitingConfirm, Event::ReserveRefused) => {
                        Some((Failed(FailureCode::InsufficientWalletBalance), vec![finished]))
                    }
                    (AwaitingConfirm, Event::Cancel) => {
                        Some((Failed(FailureCode::SessionCancelledByPartner), vec![finished]))
                    }
                    (AwaitingConfirm, Event::ConfirmTimedOut) => {
                        Some((Failed(FailureCode::ConfirmTimeout), vec![finished]))
                    }
                    (Processing, Event::ProviderSucceeded { returned: false }) => {
                        Some((Succeeded, vec![Debit, finished]))
                    }
                    (Processing, Event::ProviderSucceeded { returned: true }) => {
                        Some((Succeeded, vec![Debit, finished, Schedule(Timer::BankReturn)]))
                    }
                    (Processing, Event::ProviderFailed(c)) => Some((Failed(c), vec![Release, finished])),
                    (Succeeded, Event::Returned) => {
                        Some((Succeeded, vec![Return, Webhook(WebhookKind::PaymentRefunded)]))
                    }
                    _ => None,
                };
                let got = transition(phase, event);
                match expected {
                    Some(ok) => {
                        legal += 1;
                        assert_eq!(got, Ok(ok), "{phase:?} × {event:?}");
                    }
                    None => assert_eq!(got, Err(WrongState { phase, event }), "{phase:?} × {event:?}"),
                }
            }
        }
        assert_eq!(legal, 12 + FailureCode::ALL.len());
    }

    #[test]
    fn every_reserve_is_settled_exactly_once_on_every_path() {
        // Walk all event sequences up to length 6 from Created: a Reserve is
        // always followed by exactly one Debit or Release, never both.
        fn walk(phase: Phase, reserved: i32, depth: usize) {
            assert!((0..=1).contains(&reserved), "{phase:?} reserved {reserved}");
            if is_final(phase) && phase != Phase::Succeeded {
                assert_eq!(reserved, 0, "{phase:?} ended with money reserved");
            }
            if depth == 0 {
                return;
            }
            for event in all_events() {
                if let Ok((next, effects)) = transition(phase, event) {
                    let mut r = reserved;
                    for e in effects {
                        match e {
                            Effect::Reserve => r += 1,
                            Effect::Debit | Effect::Release => r -= 1,
                            _ => {}
                        }
                    }
                    walk(next, r, depth - 1);
                }
            }
        }
        walk(Phase::Created, 0, 6);
    }

    #[test]
    fn names_round_trip() {
        for p in all_phases() {
            assert_eq!(parse_phase(&phase_name(p)), Some(p));
        }
        assert_eq!(session_status(Phase::AwaitingConfirm), "in_progress");
        assert_eq!(payout_status(Phase::AwaitingConfirm), Some("pending"));
        assert_eq!(payout_status(Phase::Created), None);
    }
}
