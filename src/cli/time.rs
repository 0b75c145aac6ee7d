//! Points in history as users write them: a seq, or a time.

use anyhow::{Result, bail};
use chrono::{DateTime, Days, Local, Months, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};

use crate::journal::Journal;

/// A point in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Seq(u64),
    Time(DateTime<Utc>),
}

/// Parses a seq (`42`) or a time as [`parse_time`] reads one.
pub fn parse_point(s: &str) -> Result<Point> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse() {
            Ok(seq) => Ok(Point::Seq(seq)),
            Err(_) => bail!("seq {s} is out of range"),
        };
    }
    parse_time(s).map(Point::Time)
}

/// Parses a time as people write one: RFC 3339 (`2026-11-25T10:00:00Z`), a local date
/// (`2026-11-25`, its midnight) or date and time (`2026-11-25 10:00[:00]`), or one relative to
/// now as `log` shows them (`3 min ago`, `2 days ago`, `yesterday`, `now`; git's approxidate
/// reads these the same way, `yesterday` being this time a day back).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    parse_time_at(s, Local::now())
}

fn parse_time_at(s: &str, now: DateTime<Local>) -> Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = |t: NaiveDateTime| Local.from_local_datetime(&t).earliest().map(|t| t.with_timezone(&Utc));
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0).and_then(local)
    {
        return Ok(t);
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format)
            && let Some(t) = local(t)
        {
            return Ok(t);
        }
    }
    if let Some(t) = relative(&s.to_ascii_lowercase(), now) {
        return Ok(t.with_timezone(&Utc));
    }
    bail!("{s:?} is not a seq or a time (2026-11-25T10:00:00Z, 2026-11-25, 2026-11-25 10:00, 3 hours ago)")
}

/// `now`, `yesterday`, or `N UNIT ago` (UNIT as `log` prints it, or spelled out).
fn relative(s: &str, now: DateTime<Local>) -> Option<DateTime<Local>> {
    match s {
        "now" | "just now" => return Some(now),
        "yesterday" => return now.checked_sub_days(Days::new(1)),
        _ => {}
    }
    let s = s.strip_suffix("ago")?.trim_end();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let n: u32 = s[..digits].parse().ok()?;
    let seconds = |unit: i64| now.checked_sub_signed(TimeDelta::try_seconds(unit * i64::from(n))?);
    match s[digits..].trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => seconds(1),
        "m" | "min" | "mins" | "minute" | "minutes" => seconds(60),
        "h" | "hr" | "hrs" | "hour" | "hours" => seconds(3600),
        "d" | "day" | "days" => now.checked_sub_days(Days::new(n.into())),
        "w" | "week" | "weeks" => now.checked_sub_days(Days::new(u64::from(n) * 7)),
        "month" | "months" => now.checked_sub_months(Months::new(n)),
        "y" | "year" | "years" => now.checked_sub_months(Months::new(n.checked_mul(12)?)),
        _ => None,
    }
}

impl Point {
    /// The seq this point stands for in one session's history: a seq as given; a time as the
    /// session's last event recorded at or before it (0: none yet). Times are found by binary
    /// search over the session's events, which chasm records in time order. A seq past the
    /// journal's last names no point (as git refuses a revision it does not have): taken as
    /// "now", a typo would show or restore the latest state as if it were the one asked for.
    pub fn seq_in(self, journal: &Journal, session_id: &str) -> Result<u64> {
        let t = match self {
            Point::Seq(seq) if seq > journal.last_seq() => {
                bail!("there is no seq {seq}: the journal's history ends at seq {}", journal.last_seq())
            }
            Point::Seq(seq) => return Ok(seq),
            Point::Time(t) => t,
        };
        let seqs = journal.session_seqs(session_id)?;
        let (mut lo, mut hi) = (0, seqs.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let record = journal.get(seqs[mid])?;
            if record.is_some_and(|r| r.timestamp <= t) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(if lo == 0 { 0 } else { seqs[lo - 1] })
    }

    /// How the point reads in a message.
    pub fn describe(self) -> String {
        match self {
            Point::Seq(seq) => format!("at seq {seq}"),
            Point::Time(t) => format!("at {}", rfc3339(&t)),
        }
    }
}

/// `--at SEQ | --at-time T`: a point in a session's history, for the commands that look back.
#[derive(Debug, Clone, clap::Args)]
pub struct PointArgs {
    /// Right after the event with this seq
    #[arg(long, value_name = "SEQ", conflicts_with = "at_time")]
    pub at: Option<u64>,
    /// As it stood at this time (RFC 3339, a date, `2026-11-25 10:00` or `3 hours ago`)
    #[arg(long, value_name = "T", value_parser = parse_at_time)]
    pub at_time: Option<DateTime<Utc>>,
}

impl PointArgs {
    /// The point given, if any.
    pub fn point(&self) -> Option<Point> {
        self.at.map(Point::Seq).or(self.at_time.map(Point::Time))
    }
}

/// A clap parser for `--at-time`: a time or a date, not a seq.
pub fn parse_at_time(s: &str) -> Result<DateTime<Utc>, String> {
    match parse_point(s) {
        Ok(Point::Seq(_)) => Err("give a time here; a seq goes with --at".into()),
        _ => parse_time(s).map_err(|e| e.to_string()),
    }
}

/// RFC 3339 in UTC with milliseconds, as in `--json` output.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seqs_times_and_dates() {
        assert_eq!(parse_point("42").unwrap(), Point::Seq(42));
        assert_eq!(
            parse_point("2026-11-25T10:00:00+01:00").unwrap(),
            Point::Time(Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap())
        );
        assert!(matches!(parse_point("2026-11-25").unwrap(), Point::Time(_)));
        assert!(parse_point("tomorrow").is_err());
        assert!(parse_point("99999999999999999999999").is_err());
        assert!(parse_point("").is_err());
    }

    #[test]
    fn parses_local_and_relative_times() {
        let now = Local.with_ymd_and_hms(2026, 11, 25, 12, 30, 0).unwrap();
        let at = |s: &str| parse_time_at(s, now).unwrap().with_timezone(&Local);
        assert_eq!(at("2026-11-25 10:00"), Local.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap());
        assert_eq!(at("2026-11-25 10:00:07"), Local.with_ymd_and_hms(2026, 11, 25, 10, 0, 7).unwrap());
        assert_eq!((at("now"), at("just now")), (now, now));
        assert_eq!(at("Yesterday"), Local.with_ymd_and_hms(2026, 11, 24, 12, 30, 0).unwrap());
        // As `log` prints them, and spelled out.
        assert_eq!(at("3 min ago"), Local.with_ymd_and_hms(2026, 11, 25, 12, 27, 0).unwrap());
        assert_eq!(at("2 hours ago"), Local.with_ymd_and_hms(2026, 11, 25, 10, 30, 0).unwrap());
        assert_eq!(at("1 day ago"), at("yesterday"));
        assert_eq!(at("2 weeks ago"), Local.with_ymd_and_hms(2026, 11, 11, 12, 30, 0).unwrap());
        assert_eq!(at("1 month ago"), Local.with_ymd_and_hms(2026, 10, 25, 12, 30, 0).unwrap());
        assert_eq!(at("45s ago"), Local.with_ymd_and_hms(2026, 11, 25, 12, 29, 15).unwrap());
        assert_eq!((at("42 s ago"), at("5 h ago")), (at("42 seconds ago"), at("5 hours ago")));
        for bad in ["3 ago", "min ago", "3 min", "3 fortnights ago", "-3 min ago", "99999999999 years ago"] {
            assert!(parse_time_at(bad, now).is_err(), "{bad}");
        }
    }
}
