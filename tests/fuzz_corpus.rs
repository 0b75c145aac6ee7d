//! Every fuzz target's body over its seed corpus and saved crash inputs, so CI covers the
//! fuzz targets without the fuzzer. Real session files (read from ../shared, never copied) are
//! extra seeds for the session and mutation-log targets.

#[path = "../fuzz/bodies.rs"]
mod bodies;
mod common;

use std::path::Path;

fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    files.sort();
    files
}

#[test]
fn every_target_passes_its_corpus_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, body) in bodies::TARGETS {
        let mut files = inputs(&root.join("corpus").join(name));
        assert!(!files.is_empty(), "fuzz/corpus/{name} has no seeds");
        files.extend(inputs(&root.join("regressions").join(name)));
        for file in files {
            let data = std::fs::read(&file).unwrap();
            body(&data);
        }
    }
}

#[test]
fn real_sessions_pass_the_session_targets() {
    let Some(files) = common::real_fixtures() else {
        return;
    };
    for file in files {
        let data = std::fs::read(&file).unwrap();
        bodies::session_roundtrip(&data);
        bodies::jsonl_read(&data);
    }
}

/// The `valid-*` record seeds were written by a short script from journal-format.md alone, as
/// an independent writer would: they must decode, carry matching hashes and form a chain.
#[test]
fn records_written_from_the_format_spec_decode_and_chain() {
    use chasm::journal::{ChangeType, EntityType, Origin, SyncChange};
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/record_decode");
    let records: Vec<SyncChange> = inputs(&dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("valid-"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            assert!(SyncChange::hash_matches(&bytes).unwrap(), "{}", p.display());
            SyncChange::decode(&bytes).unwrap()
        })
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].prev_hash, [0; 32]);
    assert_eq!(
        chasm::session::hex(&records[0].hash),
        "45b74e4584c5cf033513dc97f92b38c23e78009e10fd305e00827167a2f9392d"
    );
    for pair in records.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    assert_eq!(
        (records[0].change_type, records[0].entity_type, records[0].origin),
        (ChangeType::Create, EntityType::Session, Origin::Remote)
    );
    assert_eq!(
        (records[2].change_type, records[2].entity_type, records[2].origin),
        (ChangeType::Update, EntityType::Metadata, Origin::Local)
    );
    assert_eq!(records[2].timestamp.timestamp_millis(), 1_764_000_000_002);
    assert_eq!(records[1].payload["request"]["message"]["text"], "hi");
}
