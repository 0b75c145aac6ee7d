//! `verify`: recompute the hash chain from the first record and check every derived index
//! against the log. The log is the truth; an index that disagrees with it is what is wrong.

use std::collections::BTreeMap;

use super::JournalError;
use super::record::{GENESIS_HASH, SyncChange};
use super::store::{self, Store};

/// The most problems one report lists; the first is what matters.
const MAX_PROBLEMS: usize = 100;

/// One thing found wrong, at the seq it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub seq: u64,
    pub reason: String,
}

/// What `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records read along the intact part of the chain.
    pub records: u64,
    /// Sessions in the intact part of the log.
    pub sessions: u64,
    /// Problems ordered by seq; empty when the journal is intact.
    pub problems: Vec<Problem>,
    /// Snapshots found missing or wrong against a full fold, and rebuilt (derived data: this is
    /// a repair, not a problem of the history).
    pub snapshots_rebuilt: usize,
    /// Runs of log lines (stored with the snapshots) found missing or wrong, and rebuilt.
    pub lines_rebuilt: usize,
    /// Whole copies of requests' final versions (`finals`) found missing, wrong or stray, and
    /// rewritten.
    pub finals_rebuilt: usize,
}

impl VerifyReport {
    /// The first problem, by seq.
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

pub(super) fn verify(store: &Store, progress: &crate::progress::Progress) -> Result<VerifyReport, JournalError> {
    let total = store.count()?;
    let mut problems = Vec::new();
    let mut expected = 1u64;
    let mut prev_hash = GENESIS_HASH;
    // Each session's first seq and event count along the intact part of the chain.
    let mut counted: BTreeMap<String, (u64, u64)> = BTreeMap::new();

    store.scan(|seq, filed_under, bytes| {
        if seq != expected {
            problems.push(Problem {
                seq: expected,
                reason: format!("record {expected} is missing (the next record stored is {seq})"),
            });
            return false;
        }
        let bytes = match bytes {
            Ok(b) => b,
            Err(reason) => {
                problems.push(Problem { seq, reason });
                return false;
            }
        };
        let record = match SyncChange::decode(bytes) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem { seq, reason: format!("record does not decode: {e}") });
                return false;
            }
        };
        if record.seq != seq {
            problems.push(Problem {
                seq,
                reason: format!("the record stored at seq {seq} says it is seq {} (moved or reordered)", record.seq),
            });
            return false;
        }
        if record.prev_hash != prev_hash {
            problems.push(Problem { seq, reason: format!("prev_hash does not match the hash of record {} (a record before it was changed, removed or reordered)", seq - 1) });
            return false;
        }
        if !SyncChange::hash_matches(bytes).unwrap_or(false) {
            problems.push(Problem { seq, reason: "hash mismatch: the record was modified".into() });
            return false;
        }
        if filed_under != record.session_id.as_bytes() {
            problems.push(Problem {
                seq,
                reason: format!(
                    "the session index files record {seq} under {:?}, the record says {:?}",
                    String::from_utf8_lossy(filed_under),
                    record.session_id
                ),
            });
        }
        if seq % 4096 == 0 {
            progress.report("checking records", seq, total);
        }
        counted.entry(record.session_id).or_insert((seq, 0)).1 += 1;
        prev_hash = record.hash;
        expected = seq + 1;
        true
    })?;
    let records = expected - 1;
    // The scan stops at the first break in the chain (a misfiled record does not stop it).
    let chain_broken = records < total;

    // The head stored beside the log catches records cut off the end, which the chain alone
    // cannot show.
    let mut tail_cut = false;
    if !chain_broken {
        match store.meta(store::META_HEAD)? {
            None if records == 0 => {}
            None => problems.push(Problem { seq: records, reason: "the journal head is missing".into() }),
            Some(head) => match store::parse_head(&head) {
                None => problems.push(Problem { seq: records, reason: "the journal head is malformed".into() }),
                Some((head_seq, _, _)) if head_seq > records => {
                    tail_cut = true;
                    problems.push(Problem {
                        seq: records + 1,
                        reason: format!("records {}..={head_seq} are missing from the end", records + 1),
                    })
                }
                Some((head_seq, hash, _)) if head_seq < records || hash != prev_hash => problems.push(Problem {
                    seq: records,
                    reason: format!("the journal head (seq {head_seq}) does not match the last record"),
                }),
                Some(_) => {}
            },
        }
    }

    // The sessions table gives each session's first seq and event count; past a broken chain
    // or a cut tail it counts records the scan did not reach, so only its gross errors are.
    let partial = chain_broken || tail_cut;
    let mut expected_sessions = counted.clone();
    for row in store.sessions()? {
        match expected_sessions.remove(&row.id) {
            Some((first, events)) if (first, events) == (row.first_seq, row.events) => {}
            Some(_) if partial => {}
            Some((first, events)) => problems.push(Problem {
                seq: first,
                reason: format!(
                    "the sessions table says session {:?} starts at {} with {} events, the log says {first} with {events}",
                    row.id, row.first_seq, row.events
                ),
            }),
            None if partial && row.first_seq >= expected => {}
            None => problems.push(Problem {
                seq: row.first_seq,
                reason: format!("the sessions table lists session {:?}, which the log does not", row.id),
            }),
        }
    }
    for (sid, (first, _)) in expected_sessions {
        problems.push(Problem { seq: first, reason: format!("session {sid:?} is missing from the sessions table") });
    }

    // SQLite's own check: every page readable, every index entry matching its row.
    if let Some(damage) = store.integrity_problem()? {
        problems.push(Problem { seq: 0, reason: format!("the database is damaged: {damage}") });
    }

    problems.sort_by_key(|p| p.seq);
    problems.truncate(MAX_PROBLEMS);

    // Snapshots are judged only against an intact log and index: each session is folded in
    // full and its snapshots compared with that fold, then rewritten where they differ.
    let (mut snapshots_rebuilt, mut lines_rebuilt, mut finals_rebuilt) = (0, 0, 0);
    if problems.is_empty() {
        for sid in counted.keys() {
            let (rows, deltas) = store.session_records_and_deltas(sid)?;
            let records = rows.iter().map(|(seq, bytes)| super::decode(*seq, bytes)).collect::<Result<Vec<_>, _>>()?;
            let (snapshots, lines) = store.rebuild_snapshots(sid, &records)?;
            snapshots_rebuilt += snapshots;
            lines_rebuilt += lines;
            finals_rebuilt += store.rebuild_finals(sid, &rows, &deltas)?;
        }
    }
    Ok(VerifyReport {
        records,
        sessions: counted.len() as u64,
        problems,
        snapshots_rebuilt,
        lines_rebuilt,
        finals_rebuilt,
    })
}
