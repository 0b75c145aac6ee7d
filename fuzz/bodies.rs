//! The bodies of the fuzz targets, shared with `tests/fuzz_corpus.rs` so that a plain
//! `cargo test` runs each of them over its seed corpus and every saved crash input.

// Each fuzz target uses one body; the corpus test uses them all.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};

use chasm::appended;
use chasm::diff::diff;
use chasm::fold::{fold, views};
use chasm::journal::{ChangeType, EntityType, NewChange, Origin, SyncChange};
use chasm::merge::{Sides, Strategy, merge};
use chasm::provider::vscode::jsonl;
use chasm::session::Session;
use chasm::shape::Shape;
use serde_json::{Value, json};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// The targets by name: the corpus folder of each is `fuzz/corpus/<name>`.
pub const TARGETS: &[(&str, Body)] = &[
    ("record_decode", record_decode),
    ("jsonl_read", jsonl_read),
    ("session_roundtrip", session_roundtrip),
    ("fold_merge", fold_merge),
    ("stored_row", stored_row),
    ("log_lines", log_lines),
    ("export_read", export_read),
    ("cache_rows", cache_rows),
];

/// Arbitrary bytes as a cache row (`fingerprints`, `shapes`, `captures`), as they are and as the body of a
/// row under a checksum that holds (which random bytes almost never carry, and which bincode
/// reads past), under each tag a row may carry (a shape or fingerprint, one with a deleted
/// session's last fields, a head of parts, a never-synced session's note): reading never
/// panics, and a row that reads is written and read back the same.
pub fn cache_rows(data: &[u8]) {
    use chasm::journal::cache;
    let framed: Vec<Vec<u8>> = (1u8..=4)
        .map(|tag| {
            let mut row = vec![tag];
            row.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(data).to_le_bytes());
            row.extend_from_slice(data);
            row
        })
        .collect();
    for bytes in std::iter::once(data).chain(framed.iter().map(Vec::as_slice)) {
        if let Some(held) = cache::decode_held(bytes) {
            assert_eq!(cache::decode_held(&cache::encode_held(&held)), Some(held));
        }
        if let Some(fp) = cache::decode_fingerprint(bytes) {
            assert_eq!(cache::decode_fingerprint(&cache::encode_fingerprint(&fp)), Some(fp));
        }
        if let Some(note) = cache::decode_captured(bytes) {
            assert_eq!(cache::decode_captured(&cache::encode_captured(&note)), Some(note));
        }
    }
}

/// Arbitrary bytes as an export (what `chasm import` reads): reading never panics, and the
/// records of one that reads are written in the export form again and read back the same.
pub fn export_read(data: &[u8]) {
    use chasm::journal::export;
    let Ok(reader) = export::Reader::new(data) else { return };
    let Ok(records) = reader.collect::<Result<Vec<_>, _>>() else { return };
    let mut text = format!("{}\n", export::header(Some("any"), None, records.len() as u64, 0));
    for r in &records {
        text.push_str(&format!("{}\n", export::record_line(r)));
    }
    assert_eq!(export::parse(&text).expect("a fresh export reads"), records);
}

/// Arbitrary bytes as a base and a stored row (a record or snapshot stored whole, compressed,
/// in a block or as a delta, see `journal-format.md`): the first two bytes (LE) give the base's
/// length. Reading never panics; a row that rebuilds into a record is stored again as a delta
/// of the same base and rebuilds to the same bytes; so does any snapshot; bytes that compress
/// come back from their compressed row exactly, and two records from their block.
pub fn stored_row(data: &[u8]) {
    use chasm::journal::{block, compressed, delta};
    let Some((len, rest)) = data.split_first_chunk::<2>() else { return };
    let split = (u16::from_le_bytes(*len) as usize).min(rest.len());
    let (base, stored) = rest.split_at(split);
    let _ = delta::form(stored);
    if let Ok(record) = delta::decode(stored, 1_000, base)
        && let Some(again) = delta::encode(base, 0, 1, &record)
    {
        assert_eq!(delta::decode(&again, 1_000, base).expect("a fresh delta rebuilds"), record);
    }
    // As a compressed row, and as a record to compress: what compresses comes back exactly.
    if let Ok(mut d) = compressed::Decompressor::new() {
        let _ = d.decompress(stored);
        if let Some(row) = compressed::Compressor::new().and_then(|mut c| c.compress(stored)) {
            assert_eq!(delta::form(&row).ok(), Some(delta::Form::Compressed));
            assert_eq!(d.decompress(&row).expect("a fresh compressed row reads"), stored);
        }
        // As a block, and as the rows of one: what a block row names comes back exactly.
        let _ = block::index(stored);
        if let Ok(read) = block::Block::read(&mut d, stored) {
            let rows = (0..read.len() as u64).map(|i| block::row(i, &[0; 64]));
            rows.for_each(|row| drop(read.record(&row, || Some([0; 32])).expect("a record the block holds")));
        }
        // The stored bytes as a record after the base in a block: their prev_hash the base's hash.
        if base.len() >= 64 && stored.len() >= 64 {
            let mut next = stored.to_vec();
            let at = next.len() - 64;
            next[at..at + 32].copy_from_slice(&base[base.len() - 32..]);
            assert!(block::continues(base, &next));
            let records = [base, &next[..]];
            let frame = compressed::Compressor::new().and_then(|mut c| block::compress(&mut c, &records));
            let read = block::Block::read(&mut d, &frame.expect("a block compresses")).expect("a fresh block reads");
            let previous = || base[base.len() - 32..].try_into().ok();
            assert_eq!(read.record(&block::row(0, base), || None).expect("a fresh block row reads"), base);
            assert_eq!(read.record(&block::row(1, &next), previous).expect("a fresh block row reads"), next);
        }
    }
    let _ = delta::snapshot_form(stored);
    let _ = delta::decode_snapshot(stored, base);
    let encoded = delta::encode_snapshot(stored, Some((base, 1, 0)));
    let rebuilt = match delta::snapshot_form(&encoded).expect("a fresh snapshot row reads") {
        delta::StoredSnapshot::Whole(bytes) => bytes.to_vec(),
        delta::StoredSnapshot::Delta { .. } => delta::decode_snapshot(&encoded, base).expect("a fresh delta rebuilds"),
        delta::StoredSnapshot::Compressed(_) => panic!("a snapshot encoded compressed"),
    };
    assert_eq!(rebuilt, stored);
}

/// Arbitrary bytes as a stored run of log lines (`src/journal/lines.rs`), read as they are
/// and behind a checksum that holds (so the fuzzer reaches the decoding): reading never panics
/// nor allocates what the bytes claim, and lines that read are stored again as the same lines.
/// The same bytes as a payload: its summary never panics either.
pub fn log_lines(data: &[u8]) {
    use chasm::journal::lines;
    use sha2::{Digest, Sha256};
    let _ = lines::decode(data);
    let mut sealed = Sha256::digest(data).to_vec();
    sealed.extend_from_slice(data);
    if let Some(read) = lines::decode(&sealed) {
        let again = lines::encode(&read);
        assert_eq!(lines::decode(&again).as_ref(), Some(&read));
        // Cut into runs that fit a row, the lines read back the same, in order.
        let runs = lines::encode_runs(&read);
        let back: Vec<_> = runs.iter().flat_map(|(_, b)| lines::decode(b).expect("a run written reads back")).collect();
        assert_eq!(back, read);
    }
    for kind in [ChangeType::Create, ChangeType::Update] {
        for entity in EntityType::ALL {
            let _ = lines::summary_of_payload(kind, *entity, "e", data);
        }
    }
}

/// Arbitrary bytes as a stored journal record: decoding never panics, and a record that
/// decodes re-encodes to bytes that decode to the same record with a valid hash.
pub fn record_decode(data: &[u8]) {
    let _ = SyncChange::hash_matches(data);
    if let Ok(record) = SyncChange::decode(data) {
        let again = record.encode();
        assert_eq!(SyncChange::decode(&again).expect("a re-encoded record decodes"), record);
        let resealed = SyncChange {
            hash: chasm::journal::record::chain_hash(&record.prev_hash, &record.canonical_bytes()),
            ..record
        };
        assert!(SyncChange::hash_matches(&resealed.encode()).unwrap());
    }
}

/// Arbitrary bytes as a `.jsonl` mutation log: reading never panics, a session read from one
/// survives being written as a kind 0 line and read back, and reading it in two parts (the
/// rest applied to the first part's shape, as a sync reads a log it read before) agrees with
/// reading it whole.
pub fn jsonl_read(data: &[u8]) {
    let full = jsonl::read(data).ok().and_then(|log| Session::from_value(log.state).ok());
    if let Some(session) = &full {
        let line = jsonl::initial_line(&session.to_value());
        let back = jsonl::read(line.as_bytes()).expect("chasm's own kind 0 line reads back");
        assert_eq!(back.state, session.to_value());
    }
    // Read in two parts, as a sync that read the first part earlier reads the rest: what the
    // rest applied to the first part's shape gives is what the whole read gives.
    let ends: Vec<usize> = data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1).collect();
    for split in [ends.first(), ends.get(ends.len() / 2)].into_iter().flatten() {
        let Ok(first) = jsonl::read(&data[..*split]) else { continue };
        let Ok(old) = Session::from_value(first.state) else { continue };
        let mut entries = Vec::new();
        let walked = jsonl::walk(data, first.consumed, |entry, _| {
            entries.push(entry);
            Ok(())
        });
        if walked.is_err() {
            continue;
        }
        let shape = Shape::of(&old);
        let applied = appended::apply(&shape, entries, &mut |k| old.requests.get(k).map(|r| r.to_value()));
        match (&full, applied) {
            (None, Some(_)) => panic!("the rest of a log applied where the whole log does not read"),
            (Some(full), Some(applied)) => assert_eq!(applied.shape, Shape::of(full)),
            _ => {}
        }
    }
}

/// Arbitrary bytes as a `.json` session: parse → serialize gives back an equal value, and the
/// content hash depends on the value only.
pub fn session_roundtrip(data: &[u8]) {
    // A `.json` split into fields and request texts (see `provider::vscode::json`) is only
    // ever what the whole parse gives: never more accepted, never another value.
    let split = chasm::provider::vscode::json::split(data).and_then(|split| split.into_value());
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        assert!(split.is_none(), "split what the whole parse refuses");
        return;
    };
    if let Some(split) = split {
        assert_eq!(split, value);
    }
    if let Ok(session) = Session::from_value(value.clone()) {
        let out = session.to_value();
        if value.get("requests").is_some() {
            assert_eq!(out, value);
        }
        let text = serde_json::to_vec(&out).unwrap();
        let reparsed = Session::from_value(serde_json::from_slice(&text).unwrap()).unwrap();
        assert_eq!(reparsed.content_hash(), session.content_hash());
    }
}

/// Three bytes per event: which side, what kind of change, and two small numbers that pick the
/// entity and the payload (malformed payloads included).
fn events_from(data: &[u8]) -> Vec<SyncChange> {
    let mut out = Vec::new();
    let mut prev = [0; 32];
    for (i, chunk) in data.chunks_exact(3).take(400).enumerate() {
        let (op, a, b) = (chunk[0], chunk[1], chunk[2]);
        let request = |a: u8, b: u8| json!({"requestId": format!("r{}", a % 5), "timestamp": b, "message": {"text": format!("t{b}")}});
        let (change_type, entity_type, entity_id, payload) = match (op >> 1) % 10 {
            0 | 9 => {
                let payload = match b % 5 {
                    0 => json!({}),
                    1 => json!([1]),
                    2 => Value::Null,
                    _ => json!({"sessionId": "s", "customTitle": format!("T{b}"),
                                "requests": (0..a % 3).map(|k| request(k, b)).collect::<Vec<_>>()}),
                };
                let ct = if (op >> 1) % 10 == 0 { ChangeType::Create } else { ChangeType::Update };
                (ct, EntityType::Session, "s".to_owned(), payload)
            }
            1 => (ChangeType::Delete, EntityType::Session, "s".to_owned(), Value::Null),
            2 => {
                let index = if b > 250 { json!(u64::MAX) } else { json!(b % 7) };
                let payload = match b % 9 {
                    0 => json!({"request": 5}),
                    1 => json!({"index": index}),
                    _ => json!({"index": index, "request": request(a, b)}),
                };
                let ct = if a & 0x80 == 0 { ChangeType::Create } else { ChangeType::Update };
                (ct, EntityType::Message, format!("r{}", a % 5), payload)
            }
            3 => (ChangeType::Delete, EntityType::Message, format!("r{}", a % 5), Value::Null),
            4 => {
                let field = ["customTitle", "f1", "requests", "lastMessageDate"][usize::from(a % 4)];
                let payload = if b % 6 == 0 { json!({"position": 1}) } else { json!({"value": b, "position": a % 9}) };
                (ChangeType::Update, EntityType::Metadata, field.to_owned(), payload)
            }
            5 => (
                ChangeType::Delete,
                EntityType::Metadata,
                ["customTitle", "f1"][usize::from(a % 2)].to_owned(),
                Value::Null,
            ),
            6 => (ChangeType::Create, EntityType::Tag, format!("t{}", a % 2), Value::Null),
            7 => (ChangeType::Delete, EntityType::Tag, format!("t{}", a % 2), Value::Null),
            _ => (ChangeType::Merge, EntityType::Session, "s".to_owned(), json!({"hash": "", "path": null})),
        };
        let change = NewChange {
            session_id: "s".into(),
            change_type,
            entity_type,
            entity_id,
            timestamp: chrono::DateTime::from_timestamp_millis(1_764_000_000_000 + i as i64 * (i64::from(b) + 1))
                .unwrap(),
            origin: if op & 1 == 0 { Origin::Local } else { Origin::Remote },
            provider: "vscode".into(),
            payload,
        };
        let record = SyncChange::seal(change, i as u64 + 1, prev);
        prev = record.hash;
        out.push(record);
    }
    out
}

/// Arbitrary event sequences through the fold, the three views and every merge strategy: no
/// panic, and the invariants hold — each request has one unique id; a side that did not change
/// gives the other side exactly; a diff folded onto a state gives the target session.
pub fn fold_merge(data: &[u8]) {
    let events = events_from(data);
    let Ok(Some(full)) = fold(&events) else { return };
    assert_eq!(full.ids.len(), full.session.requests.len());
    assert_eq!(full.sources.len(), full.ids.len(), "each request knows the event that holds it");
    assert_eq!(full.ids.iter().collect::<HashSet<_>>().len(), full.ids.len(), "request ids are unique");

    let Ok(v) = views(&events) else { return };
    let live =
        |s: &Option<std::rc::Rc<chasm::fold::SessionState>>| s.as_ref().filter(|s| s.exists).map(|s| s.session.clone());
    let (base, local, remote) = (live(&v.base), live(&v.local), live(&v.remote));
    let times = chasm::merge::ChangeTimes::new();
    let sides = Sides {
        session_id: "s",
        base: base.as_ref(),
        local: local.as_ref(),
        remote: remote.as_ref(),
        local_times: &times,
        remote_times: &times,
    };
    for strategy in [
        Strategy::LocalWins,
        Strategy::RemoteWins,
        Strategy::MostRecent,
        Strategy::KeepBoth,
        Strategy::AutoMerge,
        Strategy::Manual,
    ] {
        let Ok(outcome) = merge(&sides, strategy, &HashMap::new()) else { continue };
        if local == base {
            assert_eq!(outcome.merged, remote, "{strategy}: an unchanged local side gives the remote side");
        } else if remote == base {
            assert_eq!(outcome.merged, local, "{strategy}: an unchanged remote side gives the local side");
        }
        if outcome.conflicts.is_empty()
            && strategy != Strategy::KeepBoth
            && let Some(m) = &outcome.merged
        {
            // Every request on both sides that the other did not remove survives.
            let ids = chasm::session::entity_ids(&m.requests);
            assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{strategy}: duplicate requests");
        }
    }

    // The diff from any view to the full state, folded onto that view, gives the full state.
    if let (Some(from), true) = (v.remote.as_ref(), full.exists) {
        let last = events.last().unwrap();
        let mut state = (**from).clone();
        let mut prev = last.hash;
        for (k, change) in diff("s", Some(from), &full.session).into_iter().enumerate() {
            let record = SyncChange::seal(
                change.into_change("s", last.timestamp, Origin::Local, "vscode"),
                last.seq + k as u64 + 1,
                prev,
            );
            prev = record.hash;
            state.apply(&record).expect("chasm's own diff folds");
        }
        assert_eq!(state.session.to_value(), full.session.to_value());
    }
}
