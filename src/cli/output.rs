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
