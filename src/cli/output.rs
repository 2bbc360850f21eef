//! Printing helpers shared by the commands.

use std::io::Write;

/// The terminal width of stdout, or 100 when it is not a terminal.
pub fn terminal_width() -> usize {
    if let Some(columns) = std::env::var("COLUMNS").ok().and_then(|c| c.parse::<usize>().ok()) {
        return columns.max(40);
    }
    // SAFETY: TIOCGWINSZ fills a winsize struct we own; a failure leaves it zeroed.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) };
    if rc == 0 && size.ws_col > 0 {
        (size.ws_col as usize).max(40)
    } else {
        100
    }
}

/// Cuts `text` to at most `width` characters (on one line), marking the cut with `…`.
pub fn cut(text: &str, width: usize) -> String {
    let one_line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if one_line.chars().count() <= width {
        return one_line;
    }
    let mut out: String = one_line.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Prints a table with left-aligned columns; the last column takes the rest of the width.
pub fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(headers.len() - 1) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let fixed: usize = widths[..headers.len() - 1].iter().map(|w| w + 2).sum();
    let last_width = terminal_width().saturating_sub(fixed).max(20);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let line = |cells: Vec<String>| -> String {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                text.push_str(&cut(cell, last_width));
            } else {
                text.push_str(&format!("{:<width$}  ", cell, width = widths[i]));
            }
        }
        text.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(headers.iter().map(|h| h.to_string()).collect()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.clone()));
    }
}

/// Prints JSON, pretty, to stdout.
pub fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
    );
}

/// How tables and `--format` show times: local time (the `TZ` environment variable is
/// honoured, else the system zone) or, with `--utc`, UTC. JSON always uses RFC 3339 UTC.
#[derive(Debug, Clone, Copy)]
pub struct TimeStyle {
    /// Show UTC instead of local time.
    pub utc: bool,
}

impl TimeStyle {
    /// A time for a table, to the second: `2025-11-10 14:30:05`, or with `--utc`
    /// `2025-11-10 14:30:05Z` (the `Z` says which zone, since tables carry no offset).
    pub fn table(&self, ms: queuectl::time::Millis) -> String {
        use chrono::{DateTime, Local, Utc};
        let Some(time) = DateTime::<Utc>::from_timestamp_millis(ms) else {
            return format!("{ms}ms");
        };
        if self.utc {
            time.format("%Y-%m-%d %H:%M:%SZ").to_string()
        } else {
            time.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S").to_string()
        }
    }

    /// A time for scripts (`--format`): RFC 3339 with milliseconds, in the local offset, or
    /// with `--utc` ending in `Z`.
    pub fn rfc3339(&self, ms: queuectl::time::Millis) -> String {
        use chrono::{DateTime, Local, SecondsFormat, Utc};
        let Some(time) = DateTime::<Utc>::from_timestamp_millis(ms) else {
            return format!("{ms}ms");
        };
        if self.utc {
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        } else {
            time.with_timezone(&Local).to_rfc3339_opts(SecondsFormat::Millis, false)
        }
    }
}

/// A duration from now in at most two units, rounded down: `45s`, `5m 3s`, `2h 10m`, `3d 4h`.
pub fn rough_duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1000;
    let units = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    for (i, (name, size)) in units.iter().enumerate() {
        if seconds >= *size || *size == 1 {
            let whole = seconds / size;
            let rest = seconds % size;
            return match units.get(i + 1) {
                Some((next, next_size)) if rest / next_size > 0 => {
                    format!("{whole}{name} {}{next}", rest / next_size)
                }
                _ => format!("{whole}{name}"),
            };
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rough_durations_keep_two_units() {
        assert_eq!(rough_duration(0), "0s");
        assert_eq!(rough_duration(-5), "0s");
        assert_eq!(rough_duration(45_900), "45s");
        assert_eq!(rough_duration(60_000), "1m");
        assert_eq!(rough_duration(303_000), "5m 3s");
        assert_eq!(rough_duration(7_800_000), "2h 10m");
        assert_eq!(rough_duration(3 * 86_400_000 + 4 * 3_600_000 + 59_000), "3d 4h");
    }

    #[test]
    fn utc_table_times_name_their_zone() {
        let style = TimeStyle { utc: true };
        assert_eq!(style.table(1_762_770_605_123), "2025-11-10 10:30:05Z");
        assert_eq!(style.rfc3339(1_762_770_605_123), "2025-11-10T10:30:05.123Z");
    }
}
