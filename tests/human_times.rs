//! `--run-at` and `--delay` as people type them, black-box through the binary with a fixed `TZ`.
//! Expectations for relative forms (`14:30`, `tomorrow 9am`, `mon 9am`) are computed here from
//! the clock read just before and just after the command, with a deliberately plain
//! day-by-day search, so a command that runs across a boundary (midnight, 14:30) still has
//! exactly one right answer to match.

mod common;

use common::process::SHORT;
use common::{millis, run_command_within, Run, TestHome};
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

const ZONES: &[&str] = &["UTC", "America/New_York", "Asia/Kolkata"];

/// Runs `queuectl ARGS` in `home` with `TZ` set to `zone`; killed and failed past [`SHORT`].
#[track_caller]
fn run_in_zone(home: &TestHome, zone: &str, args: &[&str]) -> Run {
    let mut command = home.command(args);
    command.env("TZ", zone);
    run_command_within(command, SHORT)
}

/// The job `add --run-at TIME true` makes in `zone`, with the clock read before and after.
#[track_caller]
fn scheduled(home: &TestHome, zone: &str, time: &str) -> (Timestamp, i64, Timestamp) {
    let before = Timestamp::now();
    let run = run_in_zone(home, zone, &["add", "--run-at", time, "--", "true"]).ok();
    let after = Timestamp::now();
    let job = home.job(run.stdout.trim());
    let text = job["run_at"].as_str().expect("run_at is a string");
    assert!(text.ends_with('Z'), "show --json keeps RFC 3339 UTC: {text}");
    (before, millis(&job["run_at"]), after)
}

/// The instant of a local wall-clock time in `zone`.
fn instant(zone: &str, date: Date, time: Time) -> i64 {
    let zone = TimeZone::get(zone).expect("a test zone");
    date.to_datetime(time)
        .to_zoned(zone)
        .expect("in range")
        .timestamp()
        .as_millisecond()
}

/// The first day from `now`'s local date on (at most eight days ahead) that `day_fits` and
/// whose `time` is still ahead of `now`.
fn first_ahead(zone: &str, now: Timestamp, time: Time, day_fits: impl Fn(Date) -> bool) -> i64 {
    let today = now.to_zoned(TimeZone::get(zone).expect("a test zone")).date();
    let mut date = today;
    for _ in 0..=8 {
        let at = instant(zone, date, time);
        if day_fits(date) && at > now.as_millisecond() {
            return at;
        }
        date = date.tomorrow().expect("in range");
    }
    panic!("no day ahead found from {today}");
}

/// Asserts `got` is what `expected` gives for the clock before or after the command.
#[track_caller]
fn assert_one_of(what: &str, got: i64, before: Timestamp, after: Timestamp, expected: impl Fn(Timestamp) -> i64) {
    let (early, late) = (expected(before), expected(after));
    assert!(
        got == early || got == late,
        "{what}: run_at {} is neither {} nor {}",
        Timestamp::from_millisecond(got).unwrap(),
        Timestamp::from_millisecond(early).unwrap(),
        Timestamp::from_millisecond(late).unwrap()
    );
}

#[test]
fn local_dates_and_times_are_read_in_the_tz_zone() {
    let home = TestHome::new();
    let cases: &[(&str, &str, [&str; 3])] = &[
        // (input, meaning, expected in UTC, New York, Kolkata)
        (
            "2030-12-01 14:30",
            "winter afternoon",
            [
                "2030-12-01T14:30:00.000Z",
                "2030-12-01T19:30:00.000Z",
                "2030-12-01T09:00:00.000Z",
            ],
        ),
        (
            "2030-07-01T14:30",
            "summer afternoon (New York on daylight time)",
            [
                "2030-07-01T14:30:00.000Z",
                "2030-07-01T18:30:00.000Z",
                "2030-07-01T09:00:00.000Z",
            ],
        ),
        (
            "2030-12-01",
            "a date is local midnight",
            [
                "2030-12-01T00:00:00.000Z",
                "2030-12-01T05:00:00.000Z",
                "2030-11-30T18:30:00.000Z",
            ],
        ),
        (
            "2030-12-01 9:15pm",
            "a date with a time of day",
            [
                "2030-12-01T21:15:00.000Z",
                "2030-12-02T02:15:00.000Z",
                "2030-12-01T15:45:00.000Z",
            ],
        ),
        (
            "2030-12-01T14:30:00+01:00",
            "RFC 3339 is the same instant everywhere",
            [
                "2030-12-01T13:30:00.000Z",
                "2030-12-01T13:30:00.000Z",
                "2030-12-01T13:30:00.000Z",
            ],
        ),
    ];
    for (input, meaning, expected) in cases {
        for (zone, expected) in ZONES.iter().zip(expected) {
            let run = run_in_zone(&home, zone, &["add", "--run-at", input, "--", "true"]).ok();
            let job = home.job(run.stdout.trim());
            assert_eq!(job["run_at"], *expected, "`{input}` in {zone} ({meaning})");
        }
    }
}

#[test]
fn a_time_of_day_is_the_next_one_in_the_zone() {
    let home = TestHome::new();
    for zone in ZONES {
        for (input, time) in [
            ("14:30", Time::constant(14, 30, 0, 0)),
            ("9:15pm", Time::constant(21, 15, 0, 0)),
            ("9am", Time::constant(9, 0, 0, 0)),
        ] {
            let (before, got, after) = scheduled(&home, zone, input);
            assert_one_of(&format!("`{input}` in {zone}"), got, before, after, |now| {
                first_ahead(zone, now, time, |_| true)
            });
        }
    }
}

#[test]
fn tomorrow_is_the_next_day_in_the_zone() {
    let home = TestHome::new();
    for zone in ZONES {
        for (input, time) in [
            ("tomorrow", Time::midnight()),
            ("tomorrow 9am", Time::constant(9, 0, 0, 0)),
            ("tomorrow 14:30", Time::constant(14, 30, 0, 0)),
        ] {
            let (before, got, after) = scheduled(&home, zone, input);
            assert_one_of(&format!("`{input}` in {zone}"), got, before, after, |now| {
                let today = now.to_zoned(TimeZone::get(zone).unwrap()).date();
                instant(zone, today.tomorrow().unwrap(), time)
            });
        }
    }
}

#[test]
fn a_weekday_is_the_first_such_day_still_ahead_in_the_zone() {
    let home = TestHome::new();
    for zone in ZONES {
        for (input, weekday, time) in [
            ("monday", Weekday::Monday, Time::midnight()),
            ("mon 9am", Weekday::Monday, Time::constant(9, 0, 0, 0)),
            ("next friday 18:00", Weekday::Friday, Time::constant(18, 0, 0, 0)),
            ("Sun 23:59", Weekday::Sunday, Time::constant(23, 59, 0, 0)),
        ] {
            let (before, got, after) = scheduled(&home, zone, input);
            assert_one_of(&format!("`{input}` in {zone}"), got, before, after, |now| {
                first_ahead(zone, now, time, |date| date.weekday() == weekday)
            });
        }
    }
}

#[test]
fn now_and_in_count_from_the_clock() {
    let home = TestHome::new();
    for zone in ZONES {
        let (before, got, after) = scheduled(&home, zone, "now");
        assert!(
            (before.as_millisecond()..=after.as_millisecond()).contains(&got),
            "`now` in {zone}"
        );
        let (before, got, after) = scheduled(&home, zone, "in 1h30m");
        let ahead = 90 * 60 * 1000;
        assert!(
            (before.as_millisecond() + ahead..=after.as_millisecond() + ahead).contains(&got),
            "`in 1h30m` in {zone}"
        );
    }
}

#[test]
fn delays_accept_the_usual_units() {
    let home = TestHome::new();
    for (input, seconds) in [
        ("90s", 90),
        ("15m", 900),
        ("1h30m", 5400),
        ("2d", 2 * 86_400),
        ("1w", 7 * 86_400),
        ("45", 45),
    ] {
        let before = Timestamp::now().as_millisecond();
        let run = home.run(&["add", "--delay", input, "--", "true"]).ok();
        let after = Timestamp::now().as_millisecond();
        let job = home.job(run.stdout.trim());
        let delay = seconds * 1000;
        assert!(
            (before + delay..=after + delay).contains(&millis(&job["run_at"])),
            "--delay {input}: run_at should be {seconds}s after the command ran: {job:#}"
        );
    }
}

#[test]
fn bad_times_are_refused_naming_the_input_and_the_accepted_forms() {
    let home = TestHome::new();
    for input in ["25:00", "14", "tomorrow 9", "2030-02-30", "next week", "yesterday", ""] {
        let before = home.db_snapshot();
        let run = run_in_zone(&home, "Asia/Kolkata", &["add", "--run-at", input, "--", "true"]).code(2);
        assert_eq!(run.stdout, "");
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{run:#?}");
        assert!(run.stderr.contains("--run-at"), "{run:#?}");
        if !input.is_empty() {
            assert!(run.stderr.contains(&format!("`{input}`")), "{run:#?}");
        }
        assert!(
            run.stderr.contains("tomorrow [TIME]") && run.stderr.contains("RFC 3339"),
            "{run:#?}"
        );
        assert_eq!(home.db_snapshot(), before);
    }
    // Job JSON keeps its machine format: `run_at` is RFC 3339 only.
    let before = home.db_snapshot();
    let run = home
        .run(&["enqueue", r#"{"command":"true","run_at":"tomorrow 9am"}"#])
        .code(2);
    assert!(run.stderr.contains("`run_at`"), "{run:#?}");
    assert_eq!(home.db_snapshot(), before);
}
