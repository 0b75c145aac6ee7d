//! Terminal output: colour when stdout is a terminal (and `NO_COLOR` is not set), and times
//! both absolute and relative ("3 min ago"), as people read them in a log.

use std::io::IsTerminal;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Local, Utc};

use crate::progress::Progress;

/// A progress line on stderr while a long operation runs, when stderr is a terminal and
/// `--quiet` was not given; nothing otherwise. Redrawn at most ten times a second, and
/// cleared when a stage ends.
pub fn progress(quiet: bool) -> Progress {
    if quiet || !std::io::stderr().is_terminal() {
        return Progress::default();
    }
    let drawn = Mutex::new(Instant::now() - Duration::from_secs(1));
    Progress::to(move |what, done, total| {
        let mut last = drawn.lock().unwrap_or_else(|e| e.into_inner());
        if done >= total {
            eprint!("\r\x1b[K");
            return;
        }
        if last.elapsed() < Duration::from_millis(100) {
            return;
        }
        *last = Instant::now();
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        eprint!("\r{what}: {done}/{total} ({pct}%)\x1b[K");
    })
}

/// Whether to colour stdout: a terminal, and no `NO_COLOR` (<https://no-color.org>).
pub fn colour() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// ANSI colours used in output.
#[derive(Debug, Clone, Copy)]
pub enum Paint {
    Red,
    Green,
    Yellow,
    Cyan,
    Dim,
}

/// `text` in a colour when `on`, else as it is.
pub fn paint(on: bool, paint: Paint, text: &str) -> String {
    if !on {
        return text.to_owned();
    }
    let code = match paint {
        Paint::Red => "31",
        Paint::Green => "32",
        Paint::Yellow => "33",
        Paint::Cyan => "36",
        Paint::Dim => "2",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A time as `2026-11-25 14:02:11 (3 min ago)`, in local time.
pub fn when(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    format!("{} ({})", t.with_timezone(&Local).format("%Y-%m-%d %H:%M:%S"), ago(t, now))
}

/// How long before `now`, coarsely: `just now`, `42 s ago`, `3 min ago`, `5 h ago`, `12 days ago`.
pub fn ago(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = (*now - *t).num_seconds();
    match secs {
        i64::MIN..=-1 => "in the future".into(),
        0..=4 => "just now".into(),
        5..=59 => format!("{secs} s ago"),
        60..=3599 => format!("{} min ago", secs / 60),
        3600..=86_399 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_like_a_person_would_say_them() {
        let now = DateTime::from_timestamp(1_764_000_000, 0).unwrap();
        let at = |s: i64| DateTime::from_timestamp(1_764_000_000 - s, 0).unwrap();
        assert_eq!(ago(&at(2), &now), "just now");
        assert_eq!(ago(&at(42), &now), "42 s ago");
        assert_eq!(ago(&at(200), &now), "3 min ago");
        assert_eq!(ago(&at(5 * 3600 + 10), &now), "5 h ago");
        assert_eq!(ago(&at(12 * 86_400), &now), "12 days ago");
        assert_eq!(ago(&at(-10), &now), "in the future");
        assert_eq!(paint(false, Paint::Red, "x"), "x");
        assert_eq!(paint(true, Paint::Red, "x"), "\x1b[31mx\x1b[0m");
    }
}
