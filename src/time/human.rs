//! Times a person types (`--run-at`): RFC 3339, local dates and times, `tomorrow 9am`,
//! `mon 9am`, `in 2h`, `now`.
//!
//! Everything here is a pure function of the text, "now" and a time zone, so the rules can be
//! tested with a fixed clock in fixed zones; [`parse_time`] supplies the real clock and the
//! system zone (`TZ` honoured).
//!
//! Local wall-clock times are turned into instants with jiff's "compatible" disambiguation (the
//! rule RFC 5545 and Temporal use): a time that a clock change skips is moved forward by the
//! length of the gap (02:30 on a spring-forward night becomes 03:30), and a time that happens
//! twice is the first of the two.

use super::{parse_duration, Millis};
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// The forms [`parse_time`] accepts, for error messages (one line).
pub const ACCEPTED_TIME_FORMS: &str = "RFC 3339 (2026-12-01T14:30:00Z), a local date-time (2026-12-01 14:30), \
a date (2026-12-01, local midnight), a time of day (14:30, 9am, 9:15pm), tomorrow [TIME], \
[next] WEEKDAY [TIME] (mon 9am), in DURATION (in 2h) or now";

/// Parses a time a person typed, in the system time zone (`TZ` honoured) and against the
/// current clock. See [`parse_time_at`] for the forms.
pub fn parse_time(text: &str) -> Result<Millis, String> {
    parse_time_at(text, Timestamp::now(), &TimeZone::system())
}

/// Parses a time a person typed into milliseconds since the epoch, reading local forms in
/// `zone` and relative forms against `now`.
///
/// - `now`; `in DURATION` (`in 90s`, `in 1h30m`: any [`parse_duration`] text).
/// - RFC 3339 with an offset or `Z`: that instant, whatever the zone.
/// - A local date-time `2026-12-01 14:30`, `2026-12-01T14:30[:SS[.fff]]`, or a date followed by
///   any time of day below (`2026-12-01 9am`); a date alone is its local midnight.
/// - A time of day: `14:30`, `14:30:15`, `9am`, `9 am`, `9:15pm`, `noon`, `midnight`: the next
///   such moment, so today if it is still ahead, else tomorrow. A bare hour (`14`) is refused
///   as ambiguous.
/// - `tomorrow [TIME]`: that time tomorrow (midnight without a time).
/// - `[next] WEEKDAY [TIME]` (`monday`, `mon 9am`, `next friday 18:00`): the first such day
///   whose TIME (midnight without one) is still ahead, so today only if today is that day and
///   the time has not passed, else within the next seven days. `next` reads better and changes
///   nothing: it never skips a week.
///
/// Words are case-insensitive. Past times are accepted (the job is due at once), as RFC 3339
/// always was.
pub fn parse_time_at(text: &str, now: Timestamp, zone: &TimeZone) -> Result<Millis, String> {
    let trimmed = text.trim();
    let refuse = |detail: Option<String>| match detail {
        Some(detail) => format!("`{trimmed}` is not a valid time ({detail}); accepted: {ACCEPTED_TIME_FORMS}"),
        None => format!("`{trimmed}` is not a time; accepted: {ACCEPTED_TIME_FORMS}"),
    };
    let lower = trimmed.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    if words.is_empty() {
        return Err(format!("the time is empty; accepted: {ACCEPTED_TIME_FORMS}"));
    }
    if words == ["now"] {
        return Ok(now.as_millisecond());
    }
    if words[0] == "in" {
        let rest = words[1..].join(" ");
        if rest.is_empty() {
            return Err(refuse(Some("`in` needs a duration such as 2h".into())));
        }
        let duration = parse_duration(&rest).map_err(|e| refuse(Some(e)))?;
        let millis = i64::try_from(duration.as_millis()).map_err(|_| refuse(Some("too far ahead".into())))?;
        return now
            .as_millisecond()
            .checked_add(millis)
            .ok_or_else(|| refuse(Some("too far ahead".into())));
    }
    // An explicit offset names the instant itself; the zone plays no part.
    if let Ok(instant) = trimmed.parse::<Timestamp>() {
        return Ok(instant.as_millisecond());
    }
    let today = now.to_zoned(zone.clone());
    if looks_like_a_date(trimmed) {
        return parse_dated(trimmed, zone).map_err(|detail| refuse(Some(detail)));
    }
    let (day, time_words): (Day, &[&str]) = if words[0] == "tomorrow" {
        (Day::Tomorrow, &words[1..])
    } else {
        let rest = if words[0] == "next" { &words[1..] } else { &words[..] };
        match rest.first().and_then(|word| parse_weekday(word)) {
            Some(weekday) => (Day::Weekday(weekday), &rest[1..]),
            None => (Day::TodayOrTomorrow, &words[..]),
        }
    };
    let time = if time_words.is_empty() {
        Time::midnight()
    } else {
        parse_time_of_day(time_words).ok_or_else(|| refuse(None))?
    };
    let at = |date: Date| -> Result<Millis, String> {
        let zoned = date
            .to_datetime(time)
            .to_zoned(zone.clone())
            .map_err(|e| refuse(Some(e.to_string())))?;
        Ok(zoned.timestamp().as_millisecond())
    };
    let date_after = |date: Date, days: i64| date.checked_add(jiff::Span::new().days(days));
    let now_ms = now.as_millisecond();
    let out_of_range = || refuse(Some("out of range".into()));
    match day {
        Day::Tomorrow => at(date_after(today.date(), 1).map_err(|_| out_of_range())?),
        Day::TodayOrTomorrow => {
            let candidate = at(today.date())?;
            if candidate > now_ms {
                Ok(candidate)
            } else {
                at(date_after(today.date(), 1).map_err(|_| out_of_range())?)
            }
        }
        Day::Weekday(weekday) => {
            let ahead =
                i64::from(weekday.to_monday_zero_offset() - today.weekday().to_monday_zero_offset()).rem_euclid(7);
            let candidate = at(date_after(today.date(), ahead).map_err(|_| out_of_range())?)?;
            if candidate > now_ms {
                Ok(candidate)
            } else {
                at(date_after(today.date(), ahead + 7).map_err(|_| out_of_range())?)
            }
        }
    }
}

/// Which day a keyword form names.
enum Day {
    Tomorrow,
    /// Today if the time is still ahead, else tomorrow.
    TodayOrTomorrow,
    Weekday(Weekday),
}

/// True if the text starts like `2026-`: a calendar date, whose errors are about the date.
fn looks_like_a_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 5 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-'
}

/// A local date, date-time, or date followed by a time of day, as an instant in `zone`.
fn parse_dated(text: &str, zone: &TimeZone) -> Result<Millis, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let datetime = match text.parse::<DateTime>() {
        Ok(datetime) => datetime,
        Err(whole_error) => {
            let date = words[0].parse::<Date>().map_err(|e| e.to_string())?;
            if words.len() == 1 {
                date.to_datetime(Time::midnight())
            } else {
                let lower: Vec<String> = words[1..].iter().map(|w| w.to_lowercase()).collect();
                let lower: Vec<&str> = lower.iter().map(String::as_str).collect();
                match parse_time_of_day(&lower) {
                    Some(time) => date.to_datetime(time),
                    None => return Err(whole_error.to_string()),
                }
            }
        }
    };
    let zoned: Zoned = datetime.to_zoned(zone.clone()).map_err(|e| e.to_string())?;
    Ok(zoned.timestamp().as_millisecond())
}

/// A weekday by its English name or a common abbreviation (lowercase).
fn parse_weekday(word: &str) -> Option<Weekday> {
    Some(match word {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" | "tues" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" | "thur" | "thurs" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

/// A time of day from lowercase words: `14:30`, `14:30:15`, `9am`, `9 am`, `9:15pm`, `noon`,
/// `midnight`. `None` for anything else, including a bare hour.
fn parse_time_of_day(words: &[&str]) -> Option<Time> {
    let joined: String = match words {
        [one] => (*one).to_string(),
        // `9 am`: the suffix as its own word.
        [clock, suffix] if matches!(*suffix, "am" | "pm") => format!("{clock}{suffix}"),
        _ => return None,
    };
    match joined.as_str() {
        "noon" => return Time::new(12, 0, 0, 0).ok(),
        "midnight" => return Some(Time::midnight()),
        _ => {}
    }
    let (clock, meridiem) = if let Some(clock) = joined.strip_suffix("am") {
        (clock, Some(false))
    } else if let Some(clock) = joined.strip_suffix("pm") {
        (clock, Some(true))
    } else {
        (joined.as_str(), None)
    };
    let mut parts = clock.split(':');
    let hour = number(parts.next()?, 1, 2)?;
    let minute = match parts.next() {
        Some(text) => number(text, 2, 2)?,
        // A bare hour is a time only with am/pm: `tomorrow 9` could as well mean 9 minutes.
        None if meridiem.is_some() => 0,
        None => return None,
    };
    let second = match parts.next() {
        Some(text) => number(text, 2, 2)?,
        None => 0,
    };
    if parts.next().is_some() || minute > 59 || second > 59 {
        return None;
    }
    let hour = match meridiem {
        None if hour <= 23 => hour,
        // 12am is midnight and 12pm noon, as on any clock that shows am/pm.
        Some(pm) if (1..=12).contains(&hour) => hour % 12 + if pm { 12 } else { 0 },
        _ => return None,
    };
    Time::new(hour as i8, minute as i8, second as i8, 0).ok()
}

/// A decimal number of `min` to `max` ASCII digits.
fn number(text: &str, min: usize, max: usize) -> Option<u32> {
    if !(min..=max).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).expect("the test zones are in the system tz database")
    }

    /// The instant of a local wall-clock time in `zone_name`.
    fn local(zone_name: &str, text: &str) -> Millis {
        let datetime: DateTime = text.parse().expect("a test date-time");
        datetime
            .to_zoned(zone(zone_name))
            .expect("a test date-time in range")
            .timestamp()
            .as_millisecond()
    }

    /// Parses `text` in `zone_name` with "now" at the local wall-clock time `now`.
    fn parse(text: &str, zone_name: &str, now: &str) -> Result<Millis, String> {
        let now = Timestamp::from_millisecond(local(zone_name, now)).expect("a test instant");
        parse_time_at(text, now, &zone(zone_name))
    }

    #[track_caller]
    fn assert_local(text: &str, zone_name: &str, now: &str, expected: &str) {
        assert_eq!(
            parse(text, zone_name, now),
            Ok(local(zone_name, expected)),
            "`{text}` in {zone_name} at {now} should be {expected}"
        );
    }

    // 2026-06-10 is a Wednesday.
    const NOW: &str = "2026-06-10T10:00";

    #[test]
    fn rfc3339_is_the_instant_it_names_in_any_zone() {
        for zone_name in ["UTC", "America/New_York", "Asia/Kolkata"] {
            assert_eq!(
                parse("2026-12-01T14:30:00Z", zone_name, NOW),
                Ok(1_796_135_400_000),
                "{zone_name}"
            );
            assert_eq!(
                parse("2026-12-01T20:00:00.5+05:30", zone_name, NOW),
                Ok(1_796_135_400_500)
            );
        }
    }

    #[test]
    fn local_date_times_and_dates_are_read_in_the_zone() {
        for zone_name in ["UTC", "America/New_York", "Asia/Kolkata"] {
            assert_local("2026-12-01 14:30", zone_name, NOW, "2026-12-01T14:30");
            assert_local("2026-12-01T14:30", zone_name, NOW, "2026-12-01T14:30");
            assert_local("2026-12-01T14:30:15.25", zone_name, NOW, "2026-12-01T14:30:15.25");
            assert_local("2026-12-01", zone_name, NOW, "2026-12-01T00:00");
            assert_local("2026-12-01 9pm", zone_name, NOW, "2026-12-01T21:00");
            assert_local("2026-12-01 9:15 AM", zone_name, NOW, "2026-12-01T09:15");
        }
        // The same wall-clock time is a different instant in each zone.
        assert_ne!(
            parse("2026-12-01 14:30", "America/New_York", NOW),
            parse("2026-12-01 14:30", "Asia/Kolkata", NOW)
        );
    }

    #[test]
    fn a_time_of_day_is_today_if_still_ahead_else_tomorrow() {
        assert_local("14:30", "Asia/Kolkata", NOW, "2026-06-10T14:30");
        assert_local("9am", "Asia/Kolkata", NOW, "2026-06-11T09:00");
        assert_local("9:15pm", "America/New_York", NOW, "2026-06-10T21:15");
        assert_local("9:15 pm", "America/New_York", NOW, "2026-06-10T21:15");
        assert_local("10:00", "UTC", NOW, "2026-06-11T10:00");
        assert_local("10:00:01", "UTC", NOW, "2026-06-10T10:00:01");
        assert_local("noon", "UTC", NOW, "2026-06-10T12:00");
        assert_local("midnight", "UTC", NOW, "2026-06-11T00:00");
        assert_local("12am", "UTC", NOW, "2026-06-11T00:00");
        assert_local("12pm", "UTC", NOW, "2026-06-10T12:00");
        assert_local("23:59", "UTC", "2026-12-31T23:59:30", "2027-01-01T23:59");
    }

    #[test]
    fn tomorrow_is_the_next_local_day() {
        assert_local("tomorrow", "America/New_York", NOW, "2026-06-11T00:00");
        assert_local("tomorrow 9am", "America/New_York", NOW, "2026-06-11T09:00");
        assert_local("Tomorrow 14:30", "Asia/Kolkata", NOW, "2026-06-11T14:30");
        // 22:00 in New York is already the next day in UTC: "tomorrow" is the zone's.
        assert_local("tomorrow", "America/New_York", "2026-06-10T22:00", "2026-06-11T00:00");
        assert_local("tomorrow", "UTC", "2026-12-31T12:00", "2027-01-01T00:00");
    }

    #[test]
    fn a_weekday_is_the_first_such_day_still_ahead() {
        // NOW is a Wednesday, 10:00.
        assert_local("thursday", "UTC", NOW, "2026-06-11T00:00");
        assert_local("mon 9am", "UTC", NOW, "2026-06-15T09:00");
        assert_local("next friday 18:00", "UTC", NOW, "2026-06-12T18:00");
        assert_local("Fri", "UTC", NOW, "2026-06-12T00:00");
        // Today's weekday: today if the time is still ahead, else a week on.
        assert_local("wed 18:00", "UTC", NOW, "2026-06-10T18:00");
        assert_local("next wednesday 18:00", "UTC", NOW, "2026-06-10T18:00");
        assert_local("wed 9am", "UTC", NOW, "2026-06-17T09:00");
        assert_local("wednesday", "UTC", NOW, "2026-06-17T00:00");
        assert_local("tue", "Asia/Kolkata", NOW, "2026-06-16T00:00");
    }

    #[test]
    fn now_and_in_are_relative_to_the_clock() {
        let now = local("UTC", NOW);
        assert_eq!(parse("now", "Asia/Kolkata", NOW), Ok(local("Asia/Kolkata", NOW)));
        assert_eq!(parse(" NOW ", "UTC", NOW), Ok(now));
        assert_eq!(parse("in 90s", "UTC", NOW), Ok(now + 90_000));
        assert_eq!(parse("in 1h30m", "UTC", NOW), Ok(now + 5_400_000));
        let new_york_now = local("America/New_York", NOW);
        assert_eq!(
            parse("in 2d", "America/New_York", NOW),
            Ok(new_york_now + 2 * 86_400_000)
        );
    }

    #[test]
    fn clock_changes_move_skipped_times_forward_and_take_the_first_of_repeated_ones() {
        // New York springs forward at 02:00 on 2026-03-08: 02:30 does not exist.
        assert_eq!(
            parse("2026-03-08 02:30", "America/New_York", NOW),
            parse("2026-03-08T03:30:00-04:00", "UTC", NOW)
        );
        // It falls back at 02:00 on 2026-11-01: 01:30 happens twice; the first is EDT.
        assert_eq!(
            parse("2026-11-01 01:30", "America/New_York", NOW),
            parse("2026-11-01T01:30:00-04:00", "UTC", NOW)
        );
        // "tomorrow 9am" across the change is 9am on the wall clock, not 24 hours on.
        assert_local(
            "tomorrow 9am",
            "America/New_York",
            "2026-03-07T12:00",
            "2026-03-08T09:00",
        );
    }

    #[test]
    fn refusals_name_the_input_and_list_the_accepted_forms() {
        for text in [
            "someday",
            "14",
            "tomorrow 9",
            "25:00",
            "9:60",
            "13pm",
            "0am",
            "next",
            "next week",
            "mon tue",
            "2026-02-30",
            "2026-12-01 25:00",
            "in",
            "in forever",
            "",
            "9:5",
            "yesterday",
        ] {
            let error = parse(text, "UTC", NOW).expect_err(text);
            assert!(
                error.contains(&format!("`{}`", text.trim())) || text.trim().is_empty(),
                "{error}"
            );
            assert!(error.contains("tomorrow [TIME]"), "{error}");
            assert!(!error.contains('\n'), "one line: {error}");
        }
    }
}
