//! Webhook fault injection per project (a test stand's network misbehaving
//! as the bank's does): deliveries delayed, duplicated, reordered, lost
//! before the receiver sees them, or sent before the API response that
//! caused them. Pure: the dispatcher asks [`plan`] what to do with each
//! webhook it claimed and does it.
//!
//! Invariant: every fault keeps delivery at least once: a lost attempt is a
//! failed attempt retried on the usual schedule, and at most
//! [`FAULT_DROP_FIRST_MAX`] attempts are lost, far below the attempts a
//! webhook is given.
//!
//! Invariant: the choices are deterministic per webhook id (which one is
//! duplicated, how long one is held to reorder it): a run can be repeated.

use std::fmt;

use time::{Duration, OffsetDateTime};

/// Longest injected delay, in ms.
pub const FAULT_DELAY_MAX_MS: u64 = 3_600_000;
/// Most first attempts lost per webhook.
pub const FAULT_DROP_FIRST_MAX: u32 = 10;
/// A reordered webhook is held up to this long beyond its delay, in ms, so
/// webhooks made within this window reach the receiver in a shuffled order.
pub const FAULT_REORDER_WINDOW_MS: u64 = 2_000;
/// With `before_response`, how long the background dispatcher leaves a new
/// webhook to the request that made it, in ms (it sends it itself after
/// that, should the request not have).
pub const FAULT_BEFORE_RESPONSE_GRACE_MS: u64 = 5_000;

/// One project's faults; the default is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebhookFaults {
    delay_ms: u64,
    /// Share of deliveries sent twice, in thousandths.
    duplicate_per_mille: u16,
    reorder: bool,
    drop_first: u32,
    before_response: bool,
}

/// Why a fault set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("unknown fault {0:?} (delay, duplicate, reorder, drop_first, before_response)")]
    Unknown(String),
    #[error("delay must be 0 to {FAULT_DELAY_MAX_MS} ms")]
    Delay,
    #[error("duplicate must be a share from 0 to 1 with at most three decimals")]
    Duplicate,
    #[error("drop_first must be 0 to {FAULT_DROP_FIRST_MAX}")]
    DropFirst,
}

impl WebhookFaults {
    pub const NONE: Self =
        Self { delay_ms: 0, duplicate_per_mille: 0, reorder: false, drop_first: 0, before_response: false };

    /// Builds a set from its parts, each checked against its limit.
    pub fn new(
        delay_ms: u64,
        duplicate: f64,
        reorder: bool,
        drop_first: u32,
        before_response: bool,
    ) -> Result<Self, FaultError> {
        if delay_ms > FAULT_DELAY_MAX_MS {
            return Err(FaultError::Delay);
        }
        let per_mille = duplicate * 1000.0;
        if !(0.0..=1000.0).contains(&per_mille) || (per_mille - per_mille.round()).abs() > 1e-6 {
            return Err(FaultError::Duplicate);
        }
        if drop_first > FAULT_DROP_FIRST_MAX {
            return Err(FaultError::DropFirst);
        }
        // In range and whole: the cast is exact.
        let duplicate_per_mille = per_mille.round() as u16;
        Ok(Self { delay_ms, duplicate_per_mille, reorder, drop_first, before_response })
    }

    /// Reads the stored form (`Display`): `none`, or faults joined by commas:
    /// `delay=2000ms`, `duplicate=0.2`, `reorder`, `drop_first=3`, `before_response`.
    pub fn parse(s: &str) -> Result<Self, FaultError> {
        let s = s.trim();
        let (mut delay, mut duplicate, mut reorder, mut drop, mut before) = (0, 0.0, false, 0, false);
        if s.is_empty() || s == "none" {
            return Ok(Self::NONE);
        }
        for part in s.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("delay", v)) => {
                    delay = v.strip_suffix("ms").and_then(|n| n.parse().ok()).ok_or(FaultError::Delay)?;
                }
                Some(("duplicate", v)) => duplicate = v.parse().map_err(|_| FaultError::Duplicate)?,
                Some(("drop_first", v)) => drop = v.parse().map_err(|_| FaultError::DropFirst)?,
                None if part == "reorder" => reorder = true,
                None if part == "before_response" => before = true,
                _ => return Err(FaultError::Unknown(part.to_string())),
            }
        }
        Self::new(delay, duplicate, reorder, drop, before)
    }

    pub fn is_none(&self) -> bool {
        *self == Self::NONE
    }
    pub fn delay_ms(&self) -> u64 {
        self.delay_ms
    }
    /// The share of deliveries sent twice (0 to 1).
    pub fn duplicate(&self) -> f64 {
        f64::from(self.duplicate_per_mille) / 1000.0
    }
    pub fn reorder(&self) -> bool {
        self.reorder
    }
    pub fn drop_first(&self) -> u32 {
        self.drop_first
    }
    pub fn before_response(&self) -> bool {
        self.before_response
    }
}

impl fmt::Display for WebhookFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.delay_ms > 0 {
            parts.push(format!("delay={}ms", self.delay_ms));
        }
        if self.duplicate_per_mille > 0 {
            parts.push(format!("duplicate={}", self.duplicate()));
        }
        if self.reorder {
            parts.push("reorder".into());
        }
        if self.drop_first > 0 {
            parts.push(format!("drop_first={}", self.drop_first));
        }
        if self.before_response {
            parts.push("before_response".into());
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join(","))
    }
}

/// What the dispatcher knows of a webhook it claimed.
#[derive(Debug, Clone, Copy)]
pub struct Claimed {
    pub id: i64,
    pub created_at: OffsetDateTime,
    /// Attempts made so far (none: its first delivery).
    pub attempts: i64,
    /// Attempts since it was last revived by a resend.
    pub attempts_since_revival: i64,
}

/// Who is delivering: the background dispatcher, or the request that made
/// the webhook (`before_response`), which does not wait for its own grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    Background,
    Request,
}

/// What to do with one claimed webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Not yet: give it back until then (a delay, a reorder hold, or the grace
    /// a request has to send it first).
    Hold(OffsetDateTime),
    /// Lose this attempt before the receiver sees it: a failed attempt.
    Drop,
    /// Send it; twice when `twice`.
    Send { twice: bool },
}

/// SplitMix64: a fixed, well-spread hash of a webhook id and a purpose.
fn mix(id: i64, salt: u64) -> u64 {
    let mut z = (id as u64).wrapping_add(salt).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// How long a reordered webhook is held beyond its delay, in ms.
pub fn reorder_hold_ms(id: i64) -> u64 {
    mix(id, 1) % FAULT_REORDER_WINDOW_MS
}

/// Whether `faults` sends this webhook twice.
pub fn sent_twice(faults: &WebhookFaults, id: i64) -> bool {
    mix(id, 2) % 1000 < u64::from(faults.duplicate_per_mille)
}

/// When a webhook's first attempt may go, under `faults`, for `sender`.
pub fn first_attempt_at(faults: &WebhookFaults, hook: &Claimed, sender: Sender) -> OffsetDateTime {
    let mut ms = faults.delay_ms;
    if faults.reorder {
        ms += reorder_hold_ms(hook.id);
    }
    if faults.before_response && sender == Sender::Background {
        ms += FAULT_BEFORE_RESPONSE_GRACE_MS;
    }
    hook.created_at + Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// What `sender` does at `now` with `hook` under `faults`.
pub fn plan(faults: &WebhookFaults, hook: &Claimed, now: OffsetDateTime, sender: Sender) -> Plan {
    if hook.attempts == 0 {
        let at = first_attempt_at(faults, hook, sender);
        if now < at {
            return Plan::Hold(at);
        }
    }
    if hook.attempts_since_revival < i64::from(faults.drop_first) {
        return Plan::Drop;
    }
    Plan::Send { twice: sent_twice(faults, hook.id) }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

    fn claimed(id: i64, attempts: i64) -> Claimed {
        Claimed { id, created_at: T0, attempts, attempts_since_revival: attempts }
    }

    #[test]
    fn the_stored_form_reads_back_and_bad_ones_are_refused() {
        for text in ["none", "delay=2000ms", "duplicate=0.2", "reorder,drop_first=3", "before_response"] {
            assert_eq!(WebhookFaults::parse(text).unwrap().to_string(), text);
        }
        let all = "delay=1500ms,duplicate=0.125,reorder,drop_first=10,before_response";
        assert_eq!(WebhookFaults::parse(all).unwrap().to_string(), all);
        assert_eq!(WebhookFaults::parse("").unwrap(), WebhookFaults::NONE);
        assert_eq!(WebhookFaults::parse("delay=2s"), Err(FaultError::Delay));
        assert_eq!(WebhookFaults::parse("delay=3600001ms"), Err(FaultError::Delay));
        assert_eq!(WebhookFaults::parse("duplicate=1.5"), Err(FaultError::Duplicate));
        assert_eq!(WebhookFaults::parse("duplicate=0.0005"), Err(FaultError::Duplicate));
        assert_eq!(WebhookFaults::parse("drop_first=11"), Err(FaultError::DropFirst));
        assert_eq!(WebhookFaults::parse("jitter"), Err(FaultError::Unknown("jitter".into())));
    }

    #[test]
    fn no_faults_send_every_webhook_at_once_and_once() {
        for attempts in 0..3 {
            assert_eq!(
                plan(&WebhookFaults::NONE, &claimed(7, attempts), T0, Sender::Background),
                Plan::Send { twice: false }
            );
        }
    }

    #[test]
    fn a_delay_holds_the_first_attempt_only() {
        let f = WebhookFaults::new(2_000, 0.0, false, 0, false).unwrap();
        let held = T0 + Duration::seconds(2);
        assert_eq!(plan(&f, &claimed(1, 0), T0, Sender::Background), Plan::Hold(held));
        assert_eq!(plan(&f, &claimed(1, 0), held, Sender::Background), Plan::Send { twice: false });
        // A retry is not delayed again: its schedule already waits.
        assert_eq!(plan(&f, &claimed(1, 1), T0, Sender::Background), Plan::Send { twice: false });
    }

    #[test]
    fn the_first_attempts_are_lost_then_it_is_sent() {
        let f = WebhookFaults::new(0, 0.0, false, 3, false).unwrap();
        let plans: Vec<Plan> = (0..5).map(|n| plan(&f, &claimed(1, n), T0, Sender::Background)).collect();
        assert_eq!(plans[..3], [Plan::Drop; 3]);
        assert_eq!(plans[3..], [Plan::Send { twice: false }; 2]);
        // A resend starts the count again.
        let revived = Claimed { attempts_since_revival: 0, ..claimed(1, 5) };
        assert_eq!(plan(&f, &revived, T0, Sender::Background), Plan::Drop);
    }

    #[test]
    fn duplicates_are_the_share_asked_for_and_the_same_each_time() {
        let f = WebhookFaults::new(0, 0.2, false, 0, false).unwrap();
        let twice = (0..10_000).filter(|id| sent_twice(&f, *id)).count();
        assert!((1_800..2_200).contains(&twice), "{twice}");
        assert!((0..100).all(|id| sent_twice(&f, id) == sent_twice(&f, id)));
        let all = WebhookFaults::new(0, 1.0, false, 0, false).unwrap();
        assert!((0..100).all(|id| sent_twice(&all, id)));
    }

    #[test]
    fn reordering_holds_webhooks_made_together_for_different_times() {
        let f = WebhookFaults::new(0, 0.0, true, 0, false).unwrap();
        let times: Vec<_> = (1..=8).map(|id| first_attempt_at(&f, &claimed(id, 0), Sender::Background)).collect();
        assert!(times.iter().all(|t| *t >= T0 && *t < T0 + Duration::milliseconds(2_000)));
        let mut sorted = times.clone();
        sorted.sort();
        assert_ne!(sorted, times, "made in id order, due in another");
    }

    #[test]
    fn before_response_leaves_the_first_attempt_to_the_request() {
        let f = WebhookFaults::new(0, 0.0, false, 0, true).unwrap();
        let grace = T0 + Duration::milliseconds(5_000);
        assert_eq!(plan(&f, &claimed(1, 0), T0, Sender::Background), Plan::Hold(grace));
        assert_eq!(plan(&f, &claimed(1, 0), T0, Sender::Request), Plan::Send { twice: false });
        assert_eq!(plan(&f, &claimed(1, 0), grace, Sender::Background), Plan::Send { twice: false });
    }
}
