//! The bodies of the fuzz targets, shared with `tests/fuzz_corpus.rs` so that a plain
//! `cargo test` runs each of them over its seed corpus and every saved crash input.

// Each fuzz target uses one body; the corpus test uses them all.
#![allow(dead_code)]

use chasm::journal::SyncChange;
use chasm::provider::vscode::jsonl;
use chasm::session::Session;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// The targets by name: the corpus folder of each is `fuzz/corpus/<name>`.
pub const TARGETS: &[(&str, Body)] =
    &[("record_decode", record_decode), ("jsonl_read", jsonl_read), ("session_roundtrip", session_roundtrip)];

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

/// Arbitrary bytes as a `.jsonl` mutation log: reading never panics, and a session read from
/// one survives being written as a kind 0 line and read back.
pub fn jsonl_read(data: &[u8]) {
    if let Ok(log) = jsonl::read(data) {
        if let Ok(session) = Session::from_value(log.state) {
            let line = jsonl::initial_line(&session.to_value());
            let back = jsonl::read(line.as_bytes()).expect("chasm's own kind 0 line reads back");
            assert_eq!(back.state, session.to_value());
        }
    }
}

/// Arbitrary bytes as a `.json` session: parse → serialize gives back an equal value, and the
/// content hash depends on the value only.
pub fn session_roundtrip(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
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
