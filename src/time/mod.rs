//! Timestamps and durations.
//!
//! Times are stored as integer milliseconds since the Unix epoch (cheap to index and compare)
//! and shown as RFC 3339 UTC with milliseconds, e.g. `2025-11-10T10:30:00.123Z`. Times people
//! type on the command line (`--run-at tomorrow 9am`) are read by [`human`].

pub mod human;

pub use human::{parse_time, parse_time_at, ACCEPTED_TIME_FORMS};

use chrono::{DateTime, SecondsFormat, Utc};
use std::time::Duration;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    Utc::now().timestamp_millis()
}

/// Formats milliseconds since the epoch as RFC 3339 UTC with milliseconds.
pub fn format_ms(ms: Millis) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        None => format!("{ms}ms"),
    }
}

/// Parses an RFC 3339 timestamp (any offset) into milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Result<Millis, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("is not an RFC 3339 time like 2025-11-10T10:30:00Z ({e})"))
}

/// The longest duration [`parse_duration`] accepts: 100 years.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Parses a duration such as `30s`, `1.5s`, `500ms`, `5m`, `1h30m`, `2d`, `1w` (units may be
/// combined, with or without spaces) or a bare number of seconds, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration_unchecked(text)?;
    if duration > MAX_DURATION {
        return Err(format!("`{}` is longer than the limit of 100 years", text.trim()));
    }
    Ok(duration)
}

fn parse_duration_unchecked(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let too_long = || format!("`{text}` is longer than the limit of 100 years");
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Duration::try_from_secs_f64(seconds).map_err(|_| too_long());
        }
        return Err(format!("`{text}` is not a duration (a negative or infinite number)"));
    }
    if let Some(number) = text.strip_suffix('s').and_then(|n| n.parse::<f64>().ok()) {
        if number.is_finite() && number >= 0.0 && !text.ends_with("ms") {
            return Duration::try_from_secs_f64(number).map_err(|_| too_long());
        }
    }
    humantime::parse_duration(text).map_err(|e| {
        format!("`{text}` is not a duration ({e}); accepted: 90s, 1.5s, 500ms, 15m, 1h30m, 2d, 1w or seconds")
    })
}

/// Formats a duration for people: `0.01s`, `2s`, `1.5s`, `3m20s`.
pub fn format_duration(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 1.0 {
        let text = format!("{seconds:.3}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{}s", if text.is_empty() { "0" } else { text })
    } else if seconds < 10.0 {
        let text = format!("{seconds:.2}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        format!("{text}s")
    } else if seconds < 120.0 {
        format!("{}s", seconds.round() as u64)
    } else {
        let total = seconds.round() as u64;
        let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
        if h > 0 {
            format!("{h}h{m:02}m{s:02}s")
        } else {
            format!("{m}m{s:02}s")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_milliseconds_in_utc() {
        assert_eq!(format_ms(1_762_770_600_123), "2025-11-10T10:30:00.123Z");
        assert_eq!(format_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn parses_rfc3339_with_offsets() {
        assert_eq!(parse_rfc3339("2025-11-10T10:30:00Z").unwrap(), 1_762_770_600_000);
        assert_eq!(parse_rfc3339("2025-11-10T12:30:00.5+02:00").unwrap(), 1_762_770_600_500);
        assert!(parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(2 * 86_400));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert!(parse_duration("-1").is_err());
        let error = parse_duration("soon").unwrap_err();
        assert!(error.contains("`soon`") && error.contains("1h30m, 2d, 1w"), "{error}");
        assert!(parse_duration("1e300").unwrap_err().contains("100 years"));
        assert!(parse_duration("1e19s").is_err());
        assert!(parse_duration("99999999999h").is_err());
    }

    #[test]
    fn formats_durations_for_people() {
        assert_eq!(format_duration(Duration::from_millis(10)), "0.01s");
        assert_eq!(format_duration(Duration::from_secs(2)), "2s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(200)), "3m20s");
    }
}
