//! The portable form of journal records: JSON Lines, one header line then one record per line,
//! in seq order. Each record line is the `chasm log --json` object, which carries every field
//! the hash covers, so a reader can recompute each hash and check the chain without chasm's
//! binary codec. `journal-format.md` specifies it. Pure: values in, values out, and a
//! [`Reader`] reads whatever it is handed.

use chrono::DateTime;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{ChangeType, EntityType, Origin, SyncChange};
use crate::session::{hex, unhex};

/// The `chasm_export` version of the header this chasm writes and reads.
pub const EXPORT_VERSION: u64 = 1;

/// The header line of an export.
pub fn header(session: Option<&str>, since: Option<u64>, records: u64, last_seq: u64) -> Value {
    json!({
        "chasm_export": EXPORT_VERSION,
        "session": session,
        "since": since,
        "records": records,
        "journal_last_seq": last_seq,
    })
}

/// A record as one JSON object (also `chasm log --json`'s line), borrowed from the record:
/// an export writes hundreds of thousands of them, and a copy of each payload made only to be
/// written would double its work.
#[derive(serde::Serialize)]
pub struct RecordLine<'a> {
    seq: u64,
    id: String,
    session_id: &'a str,
    change_type: &'static str,
    entity_type: &'static str,
    entity_id: &'a str,
    origin: &'static str,
    provider: &'a str,
    timestamp: String,
    prev_hash: String,
    hash: String,
    payload: &'a Value,
}

impl std::fmt::Display for RecordLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| std::fmt::Error)?)
    }
}

/// The line of a record, its fields in the order `journal-format.md` lists them.
pub fn record_line(r: &SyncChange) -> RecordLine<'_> {
    RecordLine {
        seq: r.seq,
        id: r.id.to_string(),
        session_id: &r.session_id,
        change_type: r.change_type.as_str(),
        entity_type: r.entity_type.as_str(),
        entity_id: &r.entity_id,
        origin: r.origin.as_str(),
        provider: &r.provider,
        timestamp: r.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        prev_hash: hex(&r.prev_hash),
        hash: hex(&r.hash),
        payload: &r.payload,
    }
}

/// Parses a record line back, checking its hash: a record whose content does not give its
/// hash is refused.
pub fn parse_record(v: &Value) -> Result<SyncChange, String> {
    let text = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| format!("no `{k}` string"));
    let hash = |k: &str| unhex::<32>(text(k)?).ok_or_else(|| format!("`{k}` is not 64 hex digits"));
    let timestamp = DateTime::parse_from_rfc3339(text("timestamp")?)
        .map_err(|e| format!("`timestamp`: {e}"))?
        .with_timezone(&chrono::Utc);
    let record = SyncChange {
        id: Uuid::parse_str(text("id")?).map_err(|e| format!("`id`: {e}"))?,
        seq: v.get("seq").and_then(Value::as_u64).ok_or("no `seq` number")?,
        session_id: text("session_id")?.to_owned(),
        change_type: text("change_type")?.parse::<ChangeType>()?,
        entity_type: text("entity_type")?.parse::<EntityType>()?,
        entity_id: text("entity_id")?.to_owned(),
        timestamp,
        origin: text("origin")?.parse::<Origin>()?,
        provider: text("provider")?.to_owned(),
        payload: v.get("payload").cloned().ok_or("no `payload`")?,
        prev_hash: hash("prev_hash")?,
        hash: hash("hash")?,
    };
    if !record.is_sealed() {
        return Err("hash mismatch: the record was modified".into());
    }
    Ok(record)
}

/// Why an export cannot be imported: the first bad line, with its seq where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}{}: {reason}", seq.map(|s| format!(" (seq {s})")).unwrap_or_default())]
pub struct ExportError {
    pub line: usize,
    pub seq: Option<u64>,
    pub reason: String,
}

/// Parses a whole export held in memory (see [`Reader`]).
pub fn parse(text: &str) -> Result<Vec<SyncChange>, ExportError> {
    Reader::new(text.as_bytes())?.collect()
}

/// Reads an export a record at a time, checking its chain as it goes: every record's own
/// hash, seqs strictly rising, and each record's `prev_hash` equal to the hash of the record
/// before it wherever both are in the file (a full export is one unbroken chain from the
/// genesis hash); at the end, the header's count catches a file cut short. A million-record
/// export is read in the memory of one record. The first error ends the records.
pub struct Reader<R> {
    input: R,
    /// The line last read (the header is line 1), and its bytes.
    line: usize,
    buf: Vec<u8>,
    /// A whole-journal export (no session, no `since`): its records are every seq from 1.
    whole: bool,
    /// The header's count of records.
    expected: Option<u64>,
    /// The seq and hash of the record before, and how many there were.
    prev: Option<(u64, [u8; 32])>,
    count: u64,
    done: bool,
}

impl<R: std::io::BufRead> Reader<R> {
    /// Reads and checks the header line.
    pub fn new(input: R) -> Result<Reader<R>, ExportError> {
        let mut reader =
            Reader { input, line: 0, buf: Vec::new(), whole: false, expected: None, prev: None, count: 0, done: false };
        let Some(first) = reader.next_line()? else { return Err(reader.bad(None, "the file is empty".into())) };
        let header: Value =
            serde_json::from_str(first).map_err(|e| reader.bad(None, format!("not a chasm export: {e}")))?;
        match header.get("chasm_export").and_then(Value::as_u64) {
            Some(EXPORT_VERSION) => {}
            Some(v) => return Err(reader.bad(None, format!("export version {v} is newer than this chasm reads"))),
            None => return Err(reader.bad(None, "not a chasm export (no `chasm_export` header)".into())),
        }
        reader.whole =
            header.get("session").is_none_or(Value::is_null) && header.get("since").is_none_or(Value::is_null);
        reader.expected = header.get("records").and_then(Value::as_u64);
        Ok(reader)
    }

    fn bad(&self, seq: Option<u64>, reason: String) -> ExportError {
        ExportError { line: self.line.max(1), seq, reason }
    }

    /// The next line as text, without its newline; `None` at the end of the file.
    fn next_line(&mut self) -> Result<Option<&str>, ExportError> {
        self.buf.clear();
        let read =
            self.input.read_until(b'\n', &mut self.buf).map_err(|e| self.bad(None, format!("cannot read: {e}")))?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.pop() != Some(b'\n') {
            return Err(self.bad(None, "the last line is incomplete (the file was cut short)".into()));
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        match std::str::from_utf8(&self.buf) {
            Ok(text) => Ok(Some(text)),
            Err(_) => Err(ExportError { line: self.line, seq: None, reason: "not UTF-8 text".into() }),
        }
    }

    fn next_record(&mut self) -> Result<Option<SyncChange>, ExportError> {
        let Some(line) = self.next_line()? else {
            return match self.expected {
                Some(e) if e != self.count => {
                    Err(self.bad(None, format!("the header promises {e} records, the file holds {}", self.count)))
                }
                _ => Ok(None),
            };
        };
        let v: Value = serde_json::from_str(line).map_err(|e| self.bad(None, format!("not valid JSON: {e}")))?;
        let seq = v.get("seq").and_then(Value::as_u64);
        let record = parse_record(&v).map_err(|reason| self.bad(seq, reason))?;
        match self.prev {
            Some((prev, _)) if record.seq <= prev => {
                return Err(self.bad(seq, format!("seq {} does not follow seq {prev}", record.seq)));
            }
            Some((prev, hash)) if record.seq == prev + 1 && record.prev_hash != hash => {
                return Err(self.bad(seq, format!("prev_hash does not match the hash of seq {prev}")));
            }
            None if record.seq == 1 && record.prev_hash != super::record::GENESIS_HASH => {
                return Err(self.bad(seq, "the first record does not start the chain".into()));
            }
            _ => {}
        }
        // A whole-journal export is every record from the first: a missing one is a gap.
        if self.whole && record.seq != self.count + 1 {
            return Err(self.bad(seq, format!("record {} is missing from a whole-journal export", self.count + 1)));
        }
        self.prev = Some((record.seq, record.hash));
        self.count += 1;
        Ok(Some(record))
    }
}

impl<R: std::io::BufRead> Iterator for Reader<R> {
    type Item = Result<SyncChange, ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_record().transpose();
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::journal::NewChange;
    use crate::journal::record::GENESIS_HASH;

    /// A chain of `n` records from the first, as a whole journal's export holds them.
    pub(crate) fn chain(n: usize) -> Vec<SyncChange> {
        let mut prev = GENESIS_HASH;
        (1..=n as u64)
            .map(|seq| {
                let change = NewChange {
                    session_id: "s".into(),
                    change_type: ChangeType::Create,
                    entity_type: EntityType::Message,
                    entity_id: format!("r{seq}"),
                    timestamp: chrono::Utc::now(),
                    origin: Origin::Remote,
                    provider: "vscode".into(),
                    payload: json!({"index": 0, "request": {"n": 1.50, "big": 123456789012345678901234567890u128.to_string()}}),
                };
                let r = SyncChange::seal(change, seq, prev);
                prev = r.hash;
                r
            })
            .collect()
    }

    /// The export of `records`, a whole journal's when they start at seq 1.
    pub(crate) fn export(records: &[SyncChange]) -> String {
        let mut s = format!("{}\n", header(None, None, records.len() as u64, records.len() as u64));
        for r in records {
            s.push_str(&format!("{}\n", record_line(r)));
        }
        s
    }

    #[test]
    fn an_export_parses_back_to_the_same_records() {
        let records = chain(3);
        assert_eq!(parse(&export(&records)).unwrap(), records);
    }

    #[test]
    fn a_hash_that_is_not_hex_digits_is_refused_not_a_panic() {
        let records = chain(1);
        let (text, digits) = (export(&records), hex(&records[0].hash));
        for bad in [format!("{}\u{51a}{}", &digits[..45], &digits[47..]), format!("+{}", &digits[1..])] {
            let e = parse(&text.replace(&digits, &bad)).unwrap_err();
            assert_eq!((e.line, e.reason.as_str()), (2, "`hash` is not 64 hex digits"), "{bad}");
        }
    }

    #[test]
    fn a_reader_hands_out_each_record_checked_and_stops_at_the_first_bad_one() {
        let records = chain(4);
        let text = export(&records).replacen("\"r3\"", "\"rX\"", 1);
        let mut reader = Reader::new(text.as_bytes()).unwrap();
        assert_eq!(reader.next().unwrap().unwrap(), records[0]);
        assert_eq!(reader.next().unwrap().unwrap(), records[1]);
        let e = reader.next().unwrap().unwrap_err();
        assert_eq!((e.line, e.seq), (4, Some(3)), "{e}");
        assert!(reader.next().is_none(), "went on after an error");
        // Lines ending in CRLF (a file passed through Windows) read the same.
        assert_eq!(parse(&export(&records).replace('\n', "\r\n")).unwrap(), records);
        // Not UTF-8: refused at its line.
        let mut bytes = export(&records).into_bytes();
        let at = bytes.iter().rposition(|&b| b == b'r').unwrap();
        bytes[at] = 0xff;
        let e = Reader::new(&bytes[..]).unwrap().find_map(Result::err).unwrap();
        assert_eq!((e.line, e.reason.as_str()), (5, "not UTF-8 text"));
    }

    #[test]
    fn tampering_truncation_and_reordering_are_refused_with_the_first_bad_line() {
        let records = chain(4);
        let text = export(&records);
        let tampered = text.replacen("\"r3\"", "\"rX\"", 1);
        let e = parse(&tampered).unwrap_err();
        assert_eq!((e.line, e.seq), (4, Some(3)), "{e}");
        // A whole line dropped from the middle: the chain link is missing.
        let mut lines: Vec<&str> = text.lines().collect();
        lines.remove(2);
        let e = parse(&(lines.join("\n") + "\n")).unwrap_err();
        assert!(e.reason.contains("missing"), "{e}");
        // Cut short.
        assert!(parse(&text[..text.len() - 10]).unwrap_err().reason.contains("incomplete"));
        assert!(parse("{\"chasm_export\": 9}\n").unwrap_err().reason.contains("newer"));
        assert!(parse("").is_err());
    }
}
