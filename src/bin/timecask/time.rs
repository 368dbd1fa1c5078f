//! RFC 3339 times in UTC, to and from timecask's microsecond timestamps.
//!
//! Small on purpose: civil-from-days and days-from-civil (Howard Hinnant's
//! algorithms) instead of a calendar crate.

use timecask::Timestamp;

const MICROS_PER_SECOND: u64 = 1_000_000;
const SECONDS_PER_DAY: u64 = 86_400;

/// `2025-01-31T12:00:00.123456Z`: always UTC, always six fraction digits,
/// so the text sorts like the time and parses back to the same timestamp.
pub fn format_rfc3339(time: Timestamp) -> String {
    let micros = time.as_micros();
    let seconds = micros / MICROS_PER_SECOND;
    let fraction = micros % MICROS_PER_SECOND;
    let days = seconds / SECONDS_PER_DAY;
    let second_of_day = seconds % SECONDS_PER_DAY;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{fraction:06}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

/// Parses an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.fraction]` then `Z`
/// or a `+HH:MM` / `-HH:MM` offset. Digits past microseconds are dropped.
pub fn parse_rfc3339(text: &str) -> Result<Timestamp, String> {
    let bad = |what: &str| {
        format!("{text:?} is not an RFC 3339 time ({what}); expected e.g. 2025-01-31T12:00:00Z")
    };
    let bytes = text.as_bytes();
    if bytes.len() < 19 {
        return Err(bad("too short"));
    }
    let number = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        let part = &text[range];
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().map_err(|_| bad(what))
        } else {
            Err(bad(what))
        }
    };
    let separators_ok = bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't' | b' ')
        && bytes[13] == b':'
        && bytes[16] == b':';
    if !separators_ok || !text.is_char_boundary(19) {
        return Err(bad("bad layout"));
    }
    let year = number(0..4, "bad year")?;
    let month = number(5..7, "bad month")?;
    let day = number(8..10, "bad day")?;
    let hour = number(11..13, "bad hour")?;
    let minute = number(14..16, "bad minute")?;
    let second = number(17..19, "bad second")?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // A leap second (:60) is read as the last microsecond of its minute's end.
    if hour > 23 || minute > 59 || second > 60 {
        return Err(bad("no such time of day"));
    }
    let mut rest = &text[19..];
    let mut micros = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("empty fraction"));
        }
        for (i, b) in fraction.bytes().take(digits).enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(b - b'0');
            }
        }
        for _ in digits..6 {
            micros *= 10;
        }
        rest = &fraction[digits..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':' =>
        {
            let hours = number(text.len() - 5..text.len() - 3, "bad offset")?;
            let minutes = number(text.len() - 2..text.len(), "bad offset")?;
            if hours > 23 || minutes > 59 {
                return Err(bad("bad offset"));
            }
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        "" => return Err(bad("missing time zone (add Z for UTC)")),
        _ => return Err(bad("bad time zone")),
    };
    let seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY as i64
        + hour * 3600
        + minute * 60
        + second.min(59)
        - offset_seconds;
    let micros = if second == 60 { 999_999 } else { micros };
    if seconds < 0 {
        return Err(format!("{text:?} is before 1970-01-01T00:00:00Z"));
    }
    Ok(Timestamp::from_micros(
        seconds as u64 * MICROS_PER_SECOND + micros as u64,
    ))
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// (year, month, day) of the day `days` after 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days from 1970-01-01 to (year, month, day).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_format(micros: u64, want: &str) {
        let time = Timestamp::from_micros(micros);
        assert_eq!(format_rfc3339(time), want);
        assert_eq!(parse_rfc3339(want), Ok(time), "round trip of {want}");
    }

    #[test]
    fn formats_and_parses_back() {
        check_format(0, "1970-01-01T00:00:00.000000Z");
        check_format(951_782_400_000_000, "2000-02-29T00:00:00.000000Z");
        check_format(1_738_324_800_123_456, "2025-01-31T12:00:00.123456Z");
        check_format(4_107_542_399_999_999, "2100-02-28T23:59:59.999999Z");
        check_format(253_402_300_799_000_000, "9999-12-31T23:59:59.000000Z");
    }

    #[test]
    fn civil_days_agree_for_every_day_of_four_centuries() {
        for days in -1_000..146_097 * 4 {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_offsets_and_short_fractions() {
        let noon = 1_738_324_800_000_000;
        let cases = [
            ("2025-01-31T12:00:00Z", noon),
            ("2025-01-31T12:00:00+00:00", noon),
            ("2025-01-31t12:00:00z", noon),
            ("2025-01-31 12:00:00Z", noon),
            ("2025-01-31T14:30:00+02:30", noon),
            ("2025-01-31T07:00:00-05:00", noon),
            ("2025-01-31T12:00:00.5Z", noon + 500_000),
            ("2025-01-31T12:00:00.1234567Z", noon + 123_456),
        ];
        for (text, micros) in cases {
            assert_eq!(
                parse_rfc3339(text),
                Ok(Timestamp::from_micros(micros)),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        let cases = [
            "",
            "yesterday",
            "2025-01-31",
            "2025-01-31T12:00:00",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-01-31T24:00:00Z",
            "2025-01-31T12:00:00.Z",
            "2025-01-31T12:00:00+2:00",
            "2025-01-31T12:00:00+02:00x",
            "1969-12-31T23:59:59Z",
            "2025-01-31T12:00:00é",
            "+025-01-31T12:00:00Z",
        ];
        for text in cases {
            assert!(parse_rfc3339(text).is_err(), "{text:?} was accepted");
        }
    }
}
