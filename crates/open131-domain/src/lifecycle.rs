//! The vocabulary every lifecycle speaks: the effects a transition asks for
//! (a ledger movement, a webhook, a timer), the webhooks and the timers. The
//! session machine ([`crate::session`]) and each operation's machine (the
//! payout's, [`crate::payout_flow`]; the acquiring payment's,
//! [`crate::payment_flow`]; the refund's next) return these, and the server's engine turns any of them into one
//! atomic store write without knowing which machine asked.

use crate::ledger::Movement;

/// What the caller must do, in the same transaction as the state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// Move the operation's amount in the wallet. `Return` also records the
    /// refund that brought the money back.
    Ledger(Movement),
    Webhook(WebhookKind),
    Schedule(Timer),
}

/// How a finished operation ends; the session machine hears of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Settled {
    Succeeded,
    /// Ended by the partner's choice: cancelled, or never confirmed.
    Cancelled,
    /// The operation itself failed (declined, timed out at the provider, no funds).
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookKind {
    ReadyToConfirm,
    /// The customer must act (3-D Secure): acquiring payments.
    ActionRequired,
    /// Money held, waiting for `session/capture`: acquiring payments.
    ReadyToCapture,
    PaymentFinished,
    PaymentRefunded,
}

impl WebhookKind {
    pub const ALL: [Self; 5] = [
        Self::ReadyToConfirm,
        Self::ActionRequired,
        Self::ReadyToCapture,
        Self::PaymentFinished,
        Self::PaymentRefunded,
    ];

    /// The kind a webhook's `type` names; `None` for one this version does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadyToConfirm => "ready_to_confirm",
            Self::ActionRequired => "action_required",
            Self::ReadyToCapture => "ready_to_capture",
            Self::PaymentFinished => "payment_finished",
            Self::PaymentRefunded => "payment_refunded",
        }
    }
}

/// Timers the bank sets for itself; each fires an event later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Fires the payout's `Prepared`.
    Prepare,
    /// Fires `ConfirmTimedOut` (moot if the operation moved on).
    ConfirmTimeout,
    /// Fires the provider's verdict.
    ProviderResult,
    /// Fires `Returned`.
    BankReturn,
    /// Fires a held payment's `TimedOut` (moot once captured or cancelled).
    CaptureTimeout,
    /// Fires the bank's verdict on the session's refunds in progress.
    RefundResult,
    /// Tries again to register a payout's receipt the tax service refused
    /// (`receipt::RETRY_DELAYS_S`).
    ReceiptRetry,
}

impl Timer {
    pub const ALL: [Timer; 7] = [
        Self::Prepare,
        Self::ConfirmTimeout,
        Self::ProviderResult,
        Self::BankReturn,
        Self::CaptureTimeout,
        Self::RefundResult,
        Self::ReceiptRetry,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prepare => "prepare",
            Self::ConfirmTimeout => "confirm_timeout",
            Self::ProviderResult => "provider_result",
            Self::BankReturn => "bank_return",
            Self::CaptureTimeout => "capture_timeout",
            Self::RefundResult => "refund_result",
            Self::ReceiptRetry => "receipt_retry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How many reservations `effects` open (+1) or settle (−1): the walks of
/// every machine's paths count with it.
#[cfg(test)]
pub(crate) fn reserved_change(effects: &[Effect]) -> i32 {
    effects
        .iter()
        .map(|e| match e {
            Effect::Ledger(Movement::Reserve) => 1,
            Effect::Ledger(Movement::Debit | Movement::Release | Movement::Refund) => -1,
            _ => 0,
        })
        .sum()
}

/// One machine as [`walk_paths`] walks it.
#[cfg(test)]
pub(crate) struct Walk<'a, S, E> {
    pub events: &'a [E],
    pub transition: &'a dyn Fn(S, E) -> Option<(S, Vec<Effect>)>,
    pub settled: &'a dyn Fn(S) -> bool,
    /// How much money `effects` set aside (+1) or settle (−1).
    pub change: &'a dyn Fn(&[Effect]) -> i32,
}

/// Walks every event sequence up to `depth` from `state`: the money set
/// aside (a reservation, a hold) is at most one and nothing once the
/// machine has settled. The walk every lifecycle's path test runs.
#[cfg(test)]
pub(crate) fn walk_paths<S: Copy + std::fmt::Debug, E: Copy>(w: &Walk<'_, S, E>, state: S, aside: i32, depth: usize) {
    assert!((0..=1).contains(&aside), "{state:?} has {aside} set aside");
    if (w.settled)(state) {
        assert_eq!(aside, 0, "{state:?} settled with money set aside");
    }
    if depth == 0 {
        return;
    }
    for &event in w.events {
        if let Some((next, effects)) = (w.transition)(state, event) {
            walk_paths(w, next, aside + (w.change)(&effects), depth - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_names_round_trip() {
        for t in Timer::ALL {
            assert_eq!(Timer::parse(t.as_str()), Some(t));
        }
        assert_eq!(Timer::parse("nap"), None);
    }
}
