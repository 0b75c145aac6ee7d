//! `chasm diff`: what changed in a session between two points of its history.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use serde_json::{Value, json};

use super::time::{Point, parse_point};
use crate::diff::{Summary, summarize};
use crate::journal::OpenMode;
use crate::session::{Request, first_words};

/// Show what changed in a session between two points (requests, fields and tags)
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A session id or a unique prefix of one
    session: String,
    /// From right after this point: a seq, a time, a date or `3 hours ago`
    #[arg(value_parser = parse_point)]
    from: Point,
    /// To right after this point [default: the latest]
    #[arg(value_parser = parse_point)]
    to: Option<Point>,
    /// One JSON object
    #[arg(long)]
    json: bool,
}

pub fn run(journal_dir: &Path, args: Args) -> Result<ExitCode> {
    let journal = super::open_journal(journal_dir, OpenMode::Read)?;
    let id = journal.resolve_session(&args.session)?;
    let from = args.from.seq_in(&journal, &id)?;
    let to = match args.to {
        Some(p) => p.seq_in(&journal, &id)?,
        None => journal.last_seq(),
    };
    let before = journal.state_at(&id, from)?;
    let after = journal.state_at(&id, to)?;
    let sum = summarize(before.as_ref(), after.as_ref());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        writeln!(out, "{}", to_json(&id, from, to, &sum))?;
    } else {
        write_human(&mut out, &id, from, to, &sum)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn request_json(id: &str, r: &Request) -> Value {
    json!({"id": id, "text": r.message_text(), "response_parts": r.response_parts().len()})
}

fn to_json(id: &str, from: u64, to: u64, s: &Summary) -> Value {
    json!({
        "session_id": id,
        "from": from,
        "to": to,
        "existed_before": s.existed_before,
        "exists_after": s.exists_after,
        "fields": s.fields.iter().map(|(k, b, a)| json!({"field": k, "before": b, "after": a})).collect::<Vec<_>>(),
        "added": s.added.iter().map(|(id, r)| request_json(id, r)).collect::<Vec<_>>(),
        "removed": s.removed.iter().map(|(id, r)| request_json(id, r)).collect::<Vec<_>>(),
        "changed": s.changed.iter().map(|(id, _, r, keys)| {
            let mut v = request_json(id, r);
            v["keys"] = json!(keys);
            v
        }).collect::<Vec<_>>(),
        "tags_added": s.tags_added,
        "tags_removed": s.tags_removed,
    })
}

fn words(r: &Request) -> String {
    match r.message_text() {
        Some(t) if !t.trim().is_empty() => format!("{:?}", first_words(t, 60)),
        _ => String::new(),
    }
}

fn value_words(v: &Option<Value>) -> String {
    match v {
        None => "(none)".into(),
        Some(Value::String(s)) => format!("{:?}", first_words(s, 50)),
        Some(other) => first_words(&other.to_string(), 50),
    }
}

fn write_human(out: &mut impl Write, id: &str, from: u64, to: u64, s: &Summary) -> std::io::Result<()> {
    writeln!(out, "session {id}: seq {from} → seq {to}")?;
    match (s.existed_before, s.exists_after) {
        (false, true) => writeln!(out, "  session created")?,
        (true, false) => writeln!(out, "  session deleted")?,
        _ => {}
    }
    if s.is_empty() {
        writeln!(out, "  no changes")?;
    }
    for (k, b, a) in &s.fields {
        writeln!(out, "  field {k}: {} → {}", value_words(b), value_words(a))?;
    }
    for (rid, r) in &s.added {
        writeln!(out, "  + {rid}  {}  ({} response part(s))", words(r), r.response_parts().len())?;
    }
    for (rid, r) in &s.removed {
        writeln!(out, "  - {rid}  {}", words(r))?;
    }
    for (rid, b, a, keys) in &s.changed {
        let parts = if b.response_parts().len() != a.response_parts().len() {
            format!(", response parts {} → {}", b.response_parts().len(), a.response_parts().len())
        } else {
            String::new()
        };
        writeln!(out, "  ~ {rid}  {}  (changed: {}{parts})", words(a), keys.join(", "))?;
    }
    for tag in &s.tags_added {
        writeln!(out, "  + tag {tag:?}")?;
    }
    for tag in &s.tags_removed {
        writeln!(out, "  - tag {tag:?}")?;
    }
    Ok(())
}
