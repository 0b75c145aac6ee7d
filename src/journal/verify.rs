//! `verify`: recompute the hash chain from the first record and check every derived index
//! against the log. The log is the truth; an index that disagrees with it is what is wrong.

use std::collections::{BTreeMap, HashSet};

use super::record::{GENESIS_HASH, SyncChange};
use super::store::{self, Store};
use super::{JournalError, storage};

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
}

impl VerifyReport {
    /// The first problem, by seq.
    pub fn first_problem(&self) -> Option<&Problem> {
        self.problems.first()
    }
}

pub(super) fn verify(store: &Store, progress: &crate::progress::Progress) -> Result<VerifyReport, JournalError> {
    let total = store.log.len() as u64;
    let mut problems = Vec::new();
    let mut expected = 1u64;
    let mut prev_hash = GENESIS_HASH;
    // (session id, seq) of every intact record, and each session's first seq.
    let mut indexed: HashSet<(String, u64)> = HashSet::new();
    let mut first_seq: BTreeMap<String, u64> = BTreeMap::new();

    for item in store.log.iter() {
        let (key, bytes) = item.map_err(storage)?;
        let Some(seq) = store::parse_log_key(&key) else {
            problems.push(Problem {
                seq: expected,
                reason: format!("a log key of {} bytes where 8 were expected", key.len()),
            });
            break;
        };
        if seq != expected {
            problems.push(Problem {
                seq: expected,
                reason: format!("record {expected} is missing (the next record stored is {seq})"),
            });
            break;
        }
        let record = match SyncChange::decode(&bytes) {
            Ok(r) => r,
            Err(e) => {
                problems.push(Problem { seq, reason: format!("record does not decode: {e}") });
                break;
            }
        };
        if record.seq != seq {
            problems.push(Problem {
                seq,
                reason: format!("the record stored at seq {seq} says it is seq {} (moved or reordered)", record.seq),
            });
            break;
        }
        if record.prev_hash != prev_hash {
            problems.push(Problem { seq, reason: format!("prev_hash does not match the hash of record {} (a record before it was changed, removed or reordered)", seq - 1) });
            break;
        }
        if !SyncChange::hash_matches(&bytes).unwrap_or(false) {
            problems.push(Problem { seq, reason: "hash mismatch: the record was modified".into() });
            break;
        }
        if seq % 4096 == 0 {
            progress.report("checking records", seq, total);
        }
        first_seq.entry(record.session_id.clone()).or_insert(seq);
        indexed.insert((record.session_id, seq));
        prev_hash = record.hash;
        expected = seq + 1;
    }
    let records = expected - 1;
    let chain_broken = !problems.is_empty();

    // The head stored beside the log catches records cut off the end, which the chain alone
    // cannot show.
    if !chain_broken {
        match store.meta.get(store::META_HEAD).map_err(storage)? {
            None if records == 0 => {}
            None => problems.push(Problem { seq: records, reason: "the journal head is missing".into() }),
            Some(head) if store::parse_head(&head).is_none() => {
                problems.push(Problem { seq: records, reason: "the journal head is malformed".into() })
            }
            Some(head) => {
                let head_seq = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
                if head_seq > records {
                    problems.push(Problem {
                        seq: records + 1,
                        reason: format!("records {}..={head_seq} are missing from the end", records + 1),
                    });
                } else if head_seq < records || head[8..40] != prev_hash {
                    problems.push(Problem {
                        seq: records,
                        reason: format!("the journal head (seq {head_seq}) does not match the last record"),
                    });
                }
            }
        }
    }

    // The per-session index must hold exactly one entry per record, pointing at that record's
    // session; entries for records past a broken chain are not judged.
    for item in store.session_log.iter() {
        let (key, _) = item.map_err(storage)?;
        match store::parse_session_log_key(&key) {
            None => problems.push(Problem { seq: 0, reason: "a session index key does not decode".into() }),
            Some((sid, seq)) => {
                if !indexed.remove(&(sid.clone(), seq)) && (!chain_broken || seq < expected) {
                    problems.push(Problem {
                        seq,
                        reason: format!(
                            "the session index lists record {seq} under session {sid:?}, which the log does not"
                        ),
                    });
                }
            }
        }
    }
    for (sid, seq) in indexed {
        problems.push(Problem {
            seq,
            reason: format!("record {seq} of session {sid:?} is missing from the session index"),
        });
    }

    // The sessions table maps each session to its first seq.
    let mut expected_sessions = first_seq.clone();
    for item in store.sessions.iter() {
        let (key, value) = item.map_err(storage)?;
        let sid = String::from_utf8_lossy(&key).into_owned();
        let stored = store::parse_log_key(&value).unwrap_or(0);
        match expected_sessions.remove(&sid) {
            Some(first) if first == stored => {}
            Some(first) => problems.push(Problem {
                seq: first,
                reason: format!("the sessions table says session {sid:?} starts at {stored}, the log says {first}"),
            }),
            None if chain_broken && stored >= expected => {}
            None => problems.push(Problem {
                seq: stored,
                reason: format!("the sessions table lists session {sid:?}, which the log does not"),
            }),
        }
    }
    for (sid, first) in expected_sessions {
        problems.push(Problem { seq: first, reason: format!("session {sid:?} is missing from the sessions table") });
    }

    problems.sort_by_key(|p| p.seq);
    problems.truncate(MAX_PROBLEMS);

    // Snapshots are judged only against an intact log and index: each session is folded in
    // full and its snapshots compared with that fold, then rewritten where they differ.
    let mut snapshots_rebuilt = 0;
    if problems.is_empty() {
        for sid in first_seq.keys() {
            let mut records = Vec::new();
            for item in store.session_log.scan_prefix(store::session_prefix(sid)).keys() {
                let key = item.map_err(storage)?;
                let Some((_, seq)) = store::parse_session_log_key(&key) else { continue };
                let Some(bytes) = store.log.get(store::log_key(seq)).map_err(storage)? else { continue };
                records.push(super::decode(seq, &bytes)?);
            }
            snapshots_rebuilt += store.rebuild_snapshots(sid, &records)?;
        }
    }
    Ok(VerifyReport { records, sessions: first_seq.len() as u64, problems, snapshots_rebuilt })
}
