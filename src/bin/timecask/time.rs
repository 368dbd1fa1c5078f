//! Times on the command line and in output, through `jiff`.
//!
//! Accepted (`--at`, `--since`, `--until`, `purge --before`):
//! - RFC 3339 with an offset: `2026-11-30T12:00:00Z`, `...+01:00`;
//! - a civil date-time or date, in the local time zone (UTC with `--utc`):
//!   `2026-11-30T12:00`, `2026-11-30 12:00:00`, `2026-11-30` (its midnight);
//! - `now`, `today` and `yesterday` (the start of the day);
//! - a relative time in the past: `2 days ago`, `3h ago`, `1 week 2 days ago`.
//!
//! Shown as RFC 3339 with six fraction digits, so a time copied from the
//! output reads back as the same microsecond: with the local offset, or
//! `Z` with `--utc` (JSON always uses UTC).

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Span, ZonedDateTime};
use timecask::Timestamp;

/// The examples named in every parse error.
const EXAMPLES: &str = "e.g. 2026-11-30T12:00:00Z, 2026-11-30, yesterday or \"2 days ago\"";

/// The time zone times are read and shown in: the system's (`TZ`, then
/// `/etc/localtime`), or UTC.
pub fn zone(utc: bool) -> TimeZone {
    if utc {
        TimeZone::UTC
    } else {
        TimeZone::system()
    }
}

/// Parses a time as described in the module docs; `now` anchors `today`,
/// `yesterday` and relative times.
pub fn parse_time(text: &str, tz: &TimeZone, now: jiff::Timestamp) -> Result<Timestamp, String> {
    let trimmed = text.trim();
    let bad = |why: String| format!("{text:?} is not a time ({why}); {EXAMPLES}");
    let now_zoned = now.to_zoned_datetime(tz.clone());
    let start_of_day = |day: &ZonedDateTime| day.start_of_day().map_err(|e| bad(e.to_string()));
    let instant = match trimmed.to_ascii_lowercase().as_str() {
        "now" => now,
        "today" => start_of_day(&now_zoned)?.timestamp(),
        "yesterday" => {
            let day = now_zoned
                .checked_add(Span::new().days(-1))
                .map_err(|e| bad(e.to_string()))?;
            start_of_day(&day)?.timestamp()
        }
        lower if lower.ends_with("ago") => {
            let span: Span = trimmed
                .parse()
                .map_err(|e: jiff::Error| bad(e.to_string()))?;
            now_zoned
                .checked_add(span)
                .map_err(|e| bad(e.to_string()))?
                .timestamp()
        }
        _ => match absolute(trimmed, tz) {
            Ok(instant) => instant,
            Err(_) if trimmed.parse::<Span>().is_ok() => {
                return Err(bad("a relative time needs \"ago\"".to_string()));
            }
            Err(e) => return Err(bad(e)),
        },
    };
    to_timestamp(instant).map_err(bad)
}

/// An RFC 3339 instant, or a civil date-time or date in `tz`.
fn absolute(text: &str, tz: &TimeZone) -> Result<jiff::Timestamp, String> {
    if let Ok(instant) = text.parse::<jiff::Timestamp>() {
        return Ok(instant);
    }
    let civil = match text.parse::<DateTime>() {
        Ok(civil) => civil,
        Err(e) => match text.parse::<Date>() {
            Ok(date) => date.to_datetime(jiff::civil::Time::midnight()),
            Err(_) => return Err(e.to_string()),
        },
    };
    tz.to_zoned_datetime(civil)
        .map(|zoned| zoned.timestamp())
        .map_err(|e| e.to_string())
}

fn to_timestamp(instant: jiff::Timestamp) -> Result<Timestamp, String> {
    u64::try_from(instant.as_microsecond())
        .map(Timestamp::from_micros)
        .map_err(|_| "before 1970-01-01T00:00:00Z".to_string())
}

/// `2026-11-30T12:00:00.123456+01:00` in `tz` (`...Z` in UTC).
pub fn format_time(time: Timestamp, tz: &TimeZone) -> String {
    let Some(instant) = i64::try_from(time.as_micros())
        .ok()
        .and_then(|micros| jiff::Timestamp::from_microsecond(micros).ok())
    else {
        // Past jiff's range (year 9999): only a corrupt clock gets here.
        return format!("{}µs after the Unix epoch", time.as_micros());
    };
    let offset = tz.to_offset(instant);
    if offset == jiff::tz::Offset::UTC {
        format!("{instant:.6}")
    } else {
        format!("{:.6}", instant.display_with_offset(offset))
    }
}

/// RFC 3339 in UTC, for JSON.
pub fn format_utc(time: Timestamp) -> String {
    format_time(time, &TimeZone::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02T18:30:00Z, a Wednesday.
    fn now() -> jiff::Timestamp {
        "2026-12-02T18:30:00Z".parse().expect("now")
    }

    #[track_caller]
    fn check(text: &str, tz: &TimeZone, want: &str) {
        let got = parse_time(text, tz, now()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(format_time(got, &TimeZone::UTC), want, "{text}");
    }

    #[test]
    fn parses_rfc3339_dates_and_relative_times() {
        let utc = TimeZone::UTC;
        let paris = TimeZone::fixed(jiff::tz::offset(1));
        let cases = [
            ("2025-01-31T12:00:00Z", &utc, "2025-01-31T12:00:00.000000Z"),
            (
                "2025-01-31T14:30:00+02:30",
                &utc,
                "2025-01-31T12:00:00.000000Z",
            ),
            (
                "2025-01-31T12:00:00.1234567Z",
                &utc,
                "2025-01-31T12:00:00.123456Z",
            ),
            ("2026-11-30", &utc, "2026-11-30T00:00:00.000000Z"),
            ("2026-11-30", &paris, "2026-11-29T23:00:00.000000Z"),
            ("2026-11-30T08:15", &paris, "2026-11-30T07:15:00.000000Z"),
            ("2026-11-30 08:15:00", &utc, "2026-11-30T08:15:00.000000Z"),
            ("now", &utc, "2026-12-02T18:30:00.000000Z"),
            ("today", &utc, "2026-12-02T00:00:00.000000Z"),
            ("Yesterday", &utc, "2026-12-01T00:00:00.000000Z"),
            ("yesterday", &paris, "2026-11-30T23:00:00.000000Z"),
            ("2 days ago", &utc, "2026-11-30T18:30:00.000000Z"),
            ("3h ago", &utc, "2026-12-02T15:30:00.000000Z"),
            ("1 week 2 days ago", &utc, "2026-11-23T18:30:00.000000Z"),
        ];
        for (text, tz, want) in cases {
            check(text, tz, want);
        }
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for text in [
            "",
            "tomorrowish",
            "2025-13-01",
            "2025-02-29",
            "2025-01-31T24:00:00Z",
            "1969-12-31T23:59:59Z",
            "ago",
            "2 parsecs ago",
            "2 days",
        ] {
            let got = parse_time(text, &TimeZone::UTC, now());
            assert!(got.is_err(), "{text:?} was accepted: {got:?}");
        }
    }

    #[test]
    fn formats_in_the_zone_asked_for_and_parses_back() {
        let time = Timestamp::from_micros(1_738_324_800_123_456);
        let paris = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(format_utc(time), "2025-01-31T12:00:00.123456Z");
        let local = format_time(time, &paris);
        assert_eq!(local, "2025-01-31T13:00:00.123456+01:00");
        assert_eq!(parse_time(&local, &TimeZone::UTC, now()), Ok(time));
    }
}
