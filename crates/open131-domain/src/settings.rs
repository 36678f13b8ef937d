//! A project's settings as types: parsed once when the project is loaded (or
//! when an operator changes them), never compared as strings in handlers.

use std::collections::BTreeSet;
use std::fmt;

/// How a project's passport checks are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KycMode {
    /// The documented sandbox triggers decide.
    #[default]
    Sandbox,
    /// The MVD list and the taxpayer registry decide.
    Registry,
}

impl KycMode {
    /// Every mode, in the order the CLI lists them.
    pub const ALL: [KycMode; 2] = [KycMode::Sandbox, KycMode::Registry];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::Registry => "registry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for KycMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which API version names the sessions in a project's webhooks
/// (`payments`/`payout_list`, `payment_method`/`payout_details`): the
/// version the partner's webhook handler was written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookNaming {
    /// The version of the path that created the session.
    #[default]
    Session,
    V1,
    V2,
}

impl WebhookNaming {
    pub const ALL: [WebhookNaming; 3] = [Self::Session, Self::V1, Self::V2];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The naming of a webhook about a session created on `session_version`.
    pub fn for_session(self, session_version: crate::session::ApiVersion) -> crate::session::ApiVersion {
        use crate::session::ApiVersion;
        match self {
            Self::Session => session_version,
            Self::V1 => ApiVersion::V1,
            Self::V2 => ApiVersion::V2,
        }
    }
}

impl fmt::Display for WebhookNaming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happens to a card payment the issuer authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// Captured at once (the bank's default): the session ends with the authorization.
    #[default]
    Auto,
    /// Held until `session/capture` (or `session/cancel`, or the capture timeout).
    Hold,
}

impl CaptureMode {
    pub const ALL: [CaptureMode; 2] = [Self::Auto, Self::Hold];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Hold => "hold",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

impl fmt::Display for CaptureMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The bank's fee on captured card payments, in basis points (1/100 of a percent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeeRate(u16);

/// Highest fee rate: the whole payment.
pub const FEE_RATE_MAX_BP: u16 = 10_000;

impl FeeRate {
    pub fn from_bp(bp: i64) -> Option<Self> {
        u16::try_from(bp).ok().filter(|bp| *bp <= FEE_RATE_MAX_BP).map(Self)
    }

    /// Parses `2.5%` or `250bp`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(bp) = s.strip_suffix("bp") {
            return Self::from_bp(bp.trim().parse().ok()?);
        }
        let percent = s.strip_suffix('%')?.trim();
        let (whole, frac) = percent.split_once('.').unwrap_or((percent, ""));
        if frac.len() > 2 || whole.is_empty() || !(whole.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())) {
            return None;
        }
        let frac = format!("{frac:0<2}");
        Self::from_bp(whole.parse::<i64>().ok()?.checked_mul(100)?.checked_add(frac.parse().ok()?)?)
    }

    pub fn bp(self) -> u16 {
        self.0
    }

    /// The fee on `amount` minor units, rounded half up to a minor unit `[INF]`.
    pub fn fee_minor(self, amount: i64) -> i64 {
        let fee = (i128::from(amount) * i128::from(self.0) + 5_000) / 10_000;
        i64::try_from(fee).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for FeeRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}%", self.0 / 100, self.0 % 100)
    }
}

/// Longest name in a [`NameSet`] (a sub-merchant, a contractor), in bytes.
pub const NAME_MAX_BYTES: usize = 64;
/// Most names one set may list.
pub const NAME_SET_MAX_ENTRIES: usize = 1024;

/// Why a list of names was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameSetError {
    #[error("{0:?} is not a name (1 to {NAME_MAX_BYTES} visible ASCII characters, no comma)")]
    BadName(String),
    #[error("at most {NAME_SET_MAX_ENTRIES} names")]
    TooMany,
}

/// Names a project registered with the bank before using them: any (`*`),
/// the ones listed, or none (an empty list, the default). Its sub-merchants
/// (the `X-PARTNER-SUBMERCHANT` values it may send) and its contractors (the
/// `contractor_alias`es its split payments may pay) are such sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NameSet {
    Any,
    #[default]
    None,
    Only(BTreeSet<String>),
}

impl NameSet {
    /// Parses `*`, `-` (none) or a comma-separated list.
    pub fn parse(text: &str) -> Result<Self, NameSetError> {
        if text.trim() == "-" {
            return Ok(Self::None);
        }
        let Some(items) = list_items(text) else { return Ok(Self::Any) };
        let mut names = BTreeSet::new();
        for name in items {
            if !is_set_name(name) {
                return Err(NameSetError::BadName(name.to_string()));
            }
            names.insert(name.to_string());
        }
        if names.len() > NAME_SET_MAX_ENTRIES {
            return Err(NameSetError::TooMany);
        }
        Ok(if names.is_empty() { Self::None } else { Self::Only(names) })
    }

    pub fn allows(&self, name: &str) -> bool {
        match self {
            Self::Any => true,
            Self::None => false,
            Self::Only(names) => names.contains(name),
        }
    }

    /// The names listed (none for `*` or `-`).
    pub fn listed(&self) -> impl Iterator<Item = &str> {
        let names = match self {
            Self::Only(names) => Some(names),
            Self::Any | Self::None => None,
        };
        names.into_iter().flatten().map(String::as_str)
    }
}

/// What a listed name may hold: visible ASCII without commas (the list separator).
pub fn is_set_name(name: &str) -> bool {
    (1..=NAME_MAX_BYTES).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

impl fmt::Display for NameSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::None => f.write_str("-"),
            Self::Only(names) => write_list(f, names),
        }
    }
}

/// Most methods one list may name.
pub const METHOD_SET_MAX_ENTRIES: usize = 128;
/// Longest method name in a list, in bytes.
pub const METHOD_NAME_MAX_BYTES: usize = 128;

/// The items of a setting written as `*` or a comma-separated list: `None` for
/// `*`, else the trimmed, non-empty items. The one place for that syntax.
pub(crate) fn list_items(text: &str) -> Option<impl Iterator<Item = &str>> {
    let text = text.trim();
    (text != "*").then(|| text.split(',').map(str::trim).filter(|item| !item.is_empty()))
}

/// Lower-case words (letters, digits, `_`) joined by `/`, at most [`METHOD_NAME_MAX_BYTES`].
fn is_method_name(m: &str) -> bool {
    let word = |part: &str| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    m.len() <= METHOD_NAME_MAX_BYTES && m.split('/').all(word)
}

/// Why a method list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MethodSetError {
    #[error("{0:?} is not a method name (lower-case words joined by '/')")]
    BadName(String),
    #[error("a method list is `*` or at least one method")]
    Empty,
    #[error("at most {METHOD_SET_MAX_ENTRIES} methods")]
    TooMany,
}

/// The main-API methods a project may call: every method, or the ones listed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MethodSet {
    #[default]
    All,
    Only(BTreeSet<String>),
}

impl MethodSet {
    /// Parses `*` or a comma-separated list of method paths (`session/init/payout`).
    pub fn parse(text: &str) -> Result<Self, MethodSetError> {
        let Some(items) = list_items(text) else { return Ok(Self::All) };
        let mut methods = BTreeSet::new();
        for m in items {
            if !is_method_name(m) {
                return Err(MethodSetError::BadName(m.to_string()));
            }
            methods.insert(m.to_string());
        }
        if methods.is_empty() {
            return Err(MethodSetError::Empty);
        }
        if methods.len() > METHOD_SET_MAX_ENTRIES {
            return Err(MethodSetError::TooMany);
        }
        Ok(Self::Only(methods))
    }

    pub fn allows(&self, method: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(methods) => methods.contains(method),
        }
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Only(methods) => write_list(f, methods),
        }
    }
}

/// Writes `items` comma-separated: the list form [`list_items`] reads.
pub(crate) fn write_list<T: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    items: impl IntoIterator<Item = T>,
) -> fmt::Result {
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kyc_modes_round_trip_and_unknown_names_are_refused() {
        for m in KycMode::ALL {
            assert_eq!(KycMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(KycMode::parse("Registry"), None);
        assert_eq!(KycMode::default(), KycMode::Sandbox);
    }

    #[test]
    fn webhook_namings_round_trip() {
        use crate::session::ApiVersion;
        for n in WebhookNaming::ALL {
            assert_eq!(WebhookNaming::parse(n.as_str()), Some(n));
        }
        assert_eq!(WebhookNaming::Session.for_session(ApiVersion::V2), ApiVersion::V2);
        assert_eq!(WebhookNaming::V1.for_session(ApiVersion::V2), ApiVersion::V1);
        assert_eq!(WebhookNaming::parse("V1"), None);
    }

    #[test]
    fn submerchant_sets_parse_and_print_back() {
        assert!(NameSet::parse("*").unwrap().allows("shop-1"));
        assert!(!NameSet::default().allows("shop-1"));
        assert_eq!(NameSet::parse("-").unwrap(), NameSet::None);
        let only = NameSet::parse("shop-1, shop-2").unwrap();
        assert!(only.allows("shop-2") && !only.allows("shop-3"));
        for set in [NameSet::Any, NameSet::None, only] {
            assert_eq!(NameSet::parse(&set.to_string()).unwrap(), set);
        }
        assert!(NameSet::parse("a b").is_err());
        assert!(NameSet::parse(&"x".repeat(65)).is_err());
    }

    #[test]
    fn method_sets_parse_once_and_print_back() {
        assert!(MethodSet::parse("*").unwrap().allows("session/init/payout"));
        let only = MethodSet::parse(" session/init/payout , wallet/balance").unwrap();
        assert!(only.allows("wallet/balance"));
        assert!(!only.allows("session/confirm"));
        assert_eq!(MethodSet::parse(&only.to_string()).unwrap(), only);
        for bad in ["", ",", "Session/init", "session//init", "a b"] {
            assert!(MethodSet::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn capture_modes_and_fee_rates_parse() {
        for m in CaptureMode::ALL {
            assert_eq!(CaptureMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(FeeRate::parse("2.5%").map(FeeRate::bp), Some(250));
        assert_eq!(FeeRate::parse("250bp").map(FeeRate::bp), Some(250));
        assert_eq!(FeeRate::parse("0%").map(FeeRate::bp), Some(0));
        assert_eq!(FeeRate::parse("100%").map(FeeRate::bp), Some(10_000));
        for bad in ["100.01%", "2.555%", "-1%", "2,5%", "%", "x bp", "10001bp"] {
            assert_eq!(FeeRate::parse(bad), None, "{bad}");
        }
        let rate = FeeRate::parse("2.5%").unwrap();
        assert_eq!(rate.to_string(), "2.50%");
        assert_eq!(FeeRate::parse(&rate.to_string()), Some(rate));
        // 2.5% of 1.01 rub is 2.525 kopecks: rounded half up to 3.
        assert_eq!((rate.fee_minor(101), rate.fee_minor(100), rate.fee_minor(10_000)), (3, 3, 250));
        assert_eq!(FeeRate::default().fee_minor(i64::MAX), 0);
    }
}

/// How far a project's clock runs ahead of the real one (virtual time,
/// issue 13 §1): never behind, at most [`CLOCK_OFFSET_MAX_DAYS`]. Its now is
/// the real now plus the offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ClockOffset(i64);

/// Farthest a project's clock may run ahead, in days (ten years).
pub const CLOCK_OFFSET_MAX_DAYS: i64 = 3_660;

impl ClockOffset {
    /// Real time.
    pub const NONE: Self = Self(0);

    /// From microseconds; `None` when negative or past the limit.
    pub fn from_us(us: i64) -> Option<Self> {
        (0..=CLOCK_OFFSET_MAX_DAYS * 86_400 * 1_000_000).contains(&us).then_some(Self(us))
    }

    pub fn us(self) -> i64 {
        self.0
    }

    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The project's now when the real one is `real`.
    pub fn apply(self, real: time::OffsetDateTime) -> time::OffsetDateTime {
        real + time::Duration::microseconds(self.0)
    }

    /// This offset moved on by `by` (a clock only goes forward); `None` past the limit.
    pub fn advanced(self, by: time::Duration) -> Option<Self> {
        let by_us = i64::try_from(by.whole_microseconds()).ok().filter(|us| *us >= 0)?;
        Self::from_us(self.0.checked_add(by_us)?)
    }

    /// The offset that makes the project's now `at` when the real one is
    /// `real`; `None` when that would turn the project's clock back (below
    /// `current`) or pass the limit.
    pub fn to_reach(current: Self, at: time::OffsetDateTime, real: time::OffsetDateTime) -> Option<Self> {
        let us = i64::try_from((at - real).whole_microseconds()).ok()?;
        Self::from_us(us).filter(|o| *o >= current)
    }
}

#[cfg(test)]
mod clock_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_clock_only_goes_forward_within_its_limit() {
        let real = datetime!(2026-12-01 10:00 UTC);
        let two_days = ClockOffset::NONE.advanced(time::Duration::days(2)).unwrap();
        assert_eq!(two_days.apply(real), datetime!(2026-12-03 10:00 UTC));
        assert_eq!(ClockOffset::NONE.advanced(time::Duration::seconds(-1)), None);
        assert_eq!(ClockOffset::NONE.advanced(time::Duration::days(CLOCK_OFFSET_MAX_DAYS + 1)), None);
        assert_eq!(ClockOffset::to_reach(two_days, datetime!(2026-12-02 10:00 UTC), real), None, "back");
        let later = ClockOffset::to_reach(two_days, datetime!(2027-01-01 00:00 UTC), real).unwrap();
        assert_eq!(later.apply(real), datetime!(2027-01-01 00:00 UTC));
        assert_eq!(ClockOffset::from_us(-1), None);
    }
}
