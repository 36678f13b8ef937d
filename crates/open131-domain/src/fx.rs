//! Exchange rates for foreign-currency payouts: roubles per unit of a foreign
//! currency, set by the operator (`open131 rates set usd 92.50`), and the
//! conversion of a payout's amount into what it costs in roubles.
//!
//! Invariant: a conversion never favours the partner by rounding: the rouble
//! cost is rounded up to the kopeck.

use std::fmt;

/// The currency foreign payouts are funded in.
pub const FUNDING_CURRENCY: &str = "rub";
/// The currencies the bank converts payouts from (the docs: USD and EUR).
pub const CONVERTIBLE: [&str; 2] = ["usd", "eur"];
/// Decimal places a rate may have.
pub const RATE_DECIMALS_MAX: u32 = 6;
/// Largest rate, in roubles per unit: a sanity bound.
pub const RATE_MAX_RUB: i64 = 1_000_000;

const SCALE: i64 = 10i64.pow(RATE_DECIMALS_MAX);

/// Roubles per unit of a foreign currency, exactly (millionths of a rouble).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FxRate {
    millionths: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FxRateError {
    #[error("a rate is a positive decimal number of roubles per unit, e.g. 92.50")]
    NotANumber,
    #[error("a rate has at most {RATE_DECIMALS_MAX} decimal places")]
    TooPrecise,
    #[error("a rate is more than 0 and at most {RATE_MAX_RUB}")]
    OutOfRange,
}

impl FxRate {
    /// Parses `92.50` (a dot, no sign, no exponent).
    pub fn parse(text: &str) -> Result<Self, FxRateError> {
        let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) {
            return Err(FxRateError::NotANumber);
        }
        if frac.len() > RATE_DECIMALS_MAX as usize {
            return Err(FxRateError::TooPrecise);
        }
        let whole: i64 = whole.parse().map_err(|_| FxRateError::OutOfRange)?;
        if whole > RATE_MAX_RUB {
            return Err(FxRateError::OutOfRange);
        }
        let frac_value: i64 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| FxRateError::NotANumber)? };
        let millionths = whole * SCALE + frac_value * 10i64.pow(RATE_DECIMALS_MAX - frac.len() as u32);
        if millionths == 0 || millionths > RATE_MAX_RUB * SCALE {
            return Err(FxRateError::OutOfRange);
        }
        Ok(Self { millionths })
    }

    /// Reads the stored form ([`FxRate::millionths`]).
    pub fn from_millionths(millionths: i64) -> Option<Self> {
        (millionths > 0 && millionths <= RATE_MAX_RUB * SCALE).then_some(Self { millionths })
    }

    pub fn millionths(self) -> i64 {
        self.millionths
    }

    /// What `amount_minor` of the foreign currency costs in kopecks, rounded up
    /// (both have two decimals, so minor units convert at the rate itself).
    pub fn cost_minor(self, amount_minor: i64) -> i64 {
        let exact = i128::from(amount_minor) * i128::from(self.millionths);
        let scale = i128::from(SCALE);
        let cost = (exact + scale - 1) / scale;
        i64::try_from(cost).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for FxRate {
    /// `92.5`: the shortest exact decimal, never an exponent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.millionths / SCALE, self.millionths % SCALE);
        if frac == 0 {
            return write!(f, "{whole}");
        }
        let frac = format!("{frac:06}");
        write!(f, "{whole}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_print_and_convert_rounding_up() {
        let r = FxRate::parse("92.50").unwrap();
        assert_eq!(r.to_string(), "92.5");
        assert_eq!(r.cost_minor(100), 9_250);
        assert_eq!(FxRate::parse("0.000001").unwrap().cost_minor(1), 1);
        assert_eq!(FxRate::parse("91.333333").unwrap().cost_minor(3), 274);
        assert_eq!(FxRate::parse("7").unwrap().to_string(), "7");
        assert_eq!(FxRate::from_millionths(r.millionths()), Some(r));
        for bad in ["", "-1", "1e3", "0", "0.0", "1.1234567", "abc", "1,5", "1000001", ".5"] {
            assert!(FxRate::parse(bad).is_err(), "{bad}");
        }
    }
}
