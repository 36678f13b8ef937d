//! Russian identifiers, parsed once at the edge (`TryFrom<&str>`) so inner code
//! never re-checks their shape. Check-digit rules: `shared/spec/identifiers.md`.
//!
//! Parsing checks the *shape* only; check digits are a separate question
//! ([`Inn::check_digits_ok`]) because the bank answers a bad INN check digit with
//! a verification result (`inn_validation_failure`), not with a malformed-request 422.

use crate::personal::Personal;

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn digits(s: &str) -> Vec<u32> {
    s.bytes().map(|b| u32::from(b - b'0')).collect()
}

/// `(Σ wᵢ·dᵢ mod 11) mod 10`.
fn inn_control(d: &[u32], weights: &[u32]) -> u32 {
    let sum: u32 = d.iter().zip(weights).map(|(a, b)| a * b).sum();
    (sum % 11) % 10
}

/// Taxpayer number: 12 digits for a person, 10 for an organisation. Personal data.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Inn(Personal<String>);

impl Inn {
    /// A person's INN (12 digits), shape only.
    pub fn parse_individual(s: &str) -> Result<Self, &'static str> {
        if s.len() == 12 && all_digits(s) {
            Ok(Self(Personal::new(s.to_string())))
        } else {
            Err("must be 12 digits")
        }
    }

    /// An organisation's INN (10 digits), shape only.
    pub fn parse_legal(s: &str) -> Result<Self, &'static str> {
        if s.len() == 10 && all_digits(s) {
            Ok(Self(Personal::new(s.to_string())))
        } else {
            Err("must be 10 digits")
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// True when the control digit(s) match (one for 10 digits, two for 12).
    pub fn check_digits_ok(&self) -> bool {
        const W10: [u32; 9] = [2, 4, 10, 3, 5, 9, 4, 6, 8];
        const W11: [u32; 10] = [7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
        const W12: [u32; 11] = [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8];
        let d = digits(self.expose());
        match d.len() {
            10 => inn_control(&d[..9], &W10) == d[9],
            12 => inn_control(&d[..10], &W11) == d[10] && inn_control(&d[..11], &W12) == d[11],
            _ => false,
        }
    }

    /// Completes 10 (or 11) leading digits into a valid 12-digit INN: used by the
    /// benchmark and tests to make people who pass the check.
    pub fn complete_individual(first_ten: &str) -> Option<String> {
        if first_ten.len() != 10 || !all_digits(first_ten) {
            return None;
        }
        let mut d = digits(first_ten);
        d.push(inn_control(&d, &[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
        d.push(inn_control(&d, &[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]));
        Some(d.iter().map(|x| char::from(b'0' + *x as u8)).collect())
    }
}

/// Internal passport series and number, `SSYYNNNNNN`: region (2), blank year (2),
/// number (6). No check digit exists. Personal data.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PassportNumber(Personal<String>);

impl PassportNumber {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        if s.len() == 10 && all_digits(s) {
            Ok(Self(Personal::new(s.to_string())))
        } else {
            Err("must be 10 digits (series and number without spaces)")
        }
    }

    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The year the blank was printed, from digits 3–4 of the series. Blanks exist
    /// from 1997, so `97..=99` are the 1990s and everything else is 20YY.
    pub fn blank_year(&self) -> i32 {
        let yy: i32 = self.expose()[2..4].parse().unwrap_or(0);
        if yy >= 97 {
            1900 + yy
        } else {
            2000 + yy
        }
    }

    /// The last six digits (the number within the series).
    pub fn number(&self) -> &str {
        &self.expose()[4..]
    }

    /// The 10 digits as an integer key (`series * 10^6 + number`).
    pub fn key(&self) -> u64 {
        self.expose().parse().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inn_check_digits() {
        // Known-valid INNs (published examples and ones built by hand from the weights).
        assert!(Inn::parse_individual("500100732259").unwrap().check_digits_ok());
        assert!(Inn::parse_legal("7707083893").unwrap().check_digits_ok());
        assert!(!Inn::parse_individual("500100732258").unwrap().check_digits_ok());
        assert!(!Inn::parse_individual("123456789012").unwrap().check_digits_ok());
        assert!(Inn::parse_individual("12345678901").is_err());
        assert!(Inn::parse_individual("12345678901a").is_err());
        let made = Inn::complete_individual("7712345678").unwrap();
        assert!(Inn::parse_individual(&made).unwrap().check_digits_ok());
    }

    #[test]
    fn passport_parts() {
        let p = PassportNumber::parse("4510123456").unwrap();
        assert_eq!(p.blank_year(), 2010);
        assert_eq!(p.number(), "123456");
        assert_eq!(PassportNumber::parse("4598000001").unwrap().blank_year(), 1998);
        assert!(PassportNumber::parse("45 10 123456").is_err());
        assert_eq!(format!("{p:?}"), "PassportNumber(***)");
    }

    proptest::proptest! {
        #[test]
        fn every_completed_inn_is_valid_and_one_digit_change_is_not(n in 0u64..10_000_000_000) {
            let ten = format!("{n:010}");
            let inn = Inn::complete_individual(&ten).unwrap();
            proptest::prop_assert!(Inn::parse_individual(&inn).unwrap().check_digits_ok());
            let mut bad = inn.into_bytes();
            bad[11] = b'0' + ((bad[11] - b'0' + 1) % 10);
            let bad = String::from_utf8(bad).unwrap();
            proptest::prop_assert!(!Inn::parse_individual(&bad).unwrap().check_digits_ok());
        }
    }
}
