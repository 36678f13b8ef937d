//! Calendar rules: `DD.MM.YYYY` dates, the bank's day (Moscow), anniversaries.

use time::{Date, Month, OffsetDateTime, UtcOffset};

/// Moscow has kept UTC+3 all year since 2014: the bank's "today".
const MOSCOW_OFFSET_H: i8 = 3;

/// The calendar day in Moscow at `now`.
pub fn moscow_today(now: OffsetDateTime) -> Date {
    moscow_time(now).date()
}

/// `now` on Moscow's clock (receipts and registers show it).
pub fn moscow_time(now: OffsetDateTime) -> OffsetDateTime {
    let offset = UtcOffset::from_hms(MOSCOW_OFFSET_H, 0, 0).unwrap_or(UtcOffset::UTC);
    now.to_offset(offset)
}

/// The instant a Moscow calendar day starts.
pub fn moscow_day_start(day: Date) -> OffsetDateTime {
    let offset = UtcOffset::from_hms(MOSCOW_OFFSET_H, 0, 0).unwrap_or(UtcOffset::UTC);
    day.midnight().assume_offset(offset)
}

/// ISO 8601's calendar date, `YYYY-MM-DD`: requests and the store's columns.
pub const ISO_DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Parses `YYYY-MM-DD` into a real date.
pub fn parse_iso_date(text: &str) -> Result<Date, &'static str> {
    Date::parse(text.trim(), ISO_DATE_FORMAT).map_err(|_| "must be a date, YYYY-MM-DD")
}

/// Parses `DD.MM.YYYY` (two-digit day and month, four-digit year) into a real date.
pub fn parse_ddmmyyyy(text: &str) -> Result<Date, &'static str> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 10
        && b[2] == b'.'
        && b[5] == b'.'
        && b.iter().enumerate().all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit());
    if !shape_ok {
        return Err("must be a date in the form DD.MM.YYYY");
    }
    let num = |r: std::ops::Range<usize>| -> u32 { b[r].iter().fold(0, |acc, c| acc * 10 + u32::from(c - b'0')) };
    let (day, month, year) = (num(0..2), num(3..5), num(6..10));
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or("is not a real date (month out of range)")?;
    let year = i32::try_from(year).map_err(|_| "is not a real date")?;
    if year < 1900 {
        return Err("is not a real date (year before 1900)");
    }
    let day = u8::try_from(day).map_err(|_| "is not a real date")?;
    Date::from_calendar_date(year, month, day).map_err(|_| "is not a real date")
}

/// The day someone born on `birthday` turns `years` old. A 29 February birthday
/// falls on 1 March in common years.
pub fn anniversary(birthday: Date, years: i32) -> Date {
    let year = birthday.year() + years;
    Date::from_calendar_date(year, birthday.month(), birthday.day())
        .unwrap_or_else(|_| Date::from_calendar_date(year, Month::March, 1).unwrap_or(birthday))
}

/// Full years of age on `today`.
pub fn age_on(birthday: Date, today: Date) -> i32 {
    let mut age = today.year() - birthday.year();
    if today < anniversary(birthday, age) {
        age -= 1;
    }
    age
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn parses_only_real_dates() {
        assert_eq!(parse_ddmmyyyy("29.02.2000"), Ok(date!(2000 - 02 - 29)));
        assert!(parse_ddmmyyyy("29.02.2001").is_err());
        assert!(parse_ddmmyyyy("31.04.2001").is_err());
        assert!(parse_ddmmyyyy("1.02.2001").is_err());
        assert!(parse_ddmmyyyy("2001-02-01").is_err());
        assert!(parse_ddmmyyyy("01.13.2001").is_err());
        assert!(parse_ddmmyyyy("00.01.2001").is_err());
        assert!(parse_ddmmyyyy("01.01.1899").is_err());
        assert!(parse_ddmmyyyy("０1.01.2001").is_err());
    }

    #[test]
    fn ages_and_leap_birthdays() {
        assert_eq!(age_on(date!(2000 - 02 - 29), date!(2018 - 02 - 28)), 17);
        assert_eq!(age_on(date!(2000 - 02 - 29), date!(2018 - 03 - 01)), 18);
        assert_eq!(age_on(date!(2000 - 05 - 10), date!(2018 - 05 - 10)), 18);
        assert_eq!(age_on(date!(2000 - 05 - 10), date!(2018 - 05 - 09)), 17);
    }

    #[test]
    fn moscow_day_turns_at_21_utc() {
        assert_eq!(moscow_today(datetime!(2024-01-01 20:59 UTC)), date!(2024 - 01 - 01));
        assert_eq!(moscow_today(datetime!(2024-01-01 21:00 UTC)), date!(2024 - 01 - 02));
    }
}
