//! Runs of records stored together as one compressed block, as `chasm gc` packs them.
//!
//! Compressed alone (`compressed.rs`), a record of a kilobyte or two halves. A session's
//! requests repeat each other's words, its ids and its field names, which one record alone
//! cannot draw on: a first sync stores each session's requests one after another, and
//! compressed together, 128 KB at a time, they take a fifth of their bytes. A block is what
//! `git gc` makes of a file's versions, kept to runs a read can afford: reading one record of
//! a block decompresses the block (a tenth of a millisecond for 128 KB), and the store keeps the
//! last blocks it read, so a session read in order decompresses each block once.
//!
//! Each record keeps its row in `log`: `TAG ‖ varint(index) ‖ hash`, its hash where every row
//! keeps it, and its place in the block whose first seq is `seq - index`. Its `prev_hash` is
//! not stored again: it is the hash of the record before it, the block's previous one (whose
//! row ends with it), or for the block's first record, kept in the block. That halves a row,
//! and a pack puts in a block only records whose `prev_hash` is that hash, so what a damaged
//! chain stored is never lost. The block (table `blocks`, keyed by that first seq) is one
//! zstd frame of `varint(n) ‖ n × varint(length) ‖ the first record's prev_hash ‖ the n
//! records' bytes without their hashes`, in seq order. Like deltas and compressed rows, a
//! storage encoding only: every record reads back as the bytes its hash covers.
//! `journal-format.md` gives the layout. Pure: no I/O.

use std::ops::Range;

use super::compressed::{Compressor, Decompressor};
use super::delta::{Reader, put_varint};
use super::record::DecodeError;

/// The first byte of a row whose record is in a block. A record stored as it is starts with
/// its version byte (1), a delta with `0xDE`, a compressed row with `0xC5`.
pub const TAG: u8 = 0xB0;

/// A block stops growing once its records make this many bytes: larger blocks compress
/// little better (a whole session, 0.19 of its bytes against 0.20) and cost each read more.
pub const BLOCK_BYTES: usize = 128 << 10;

/// Records longer than this are compressed alone: they are a block's worth by themselves.
pub const MAX_RECORD: usize = 32 << 10;

/// The bytes of a record after its canonical ones: `prev_hash ‖ hash`.
const HASHES: usize = 64;

/// The bytes of one hash: what a block row holds after its index.
const HASH: usize = 32;

/// The most records a block may say it holds: more than [`BLOCK_BYTES`] of the shortest
/// records, so that a damaged count cannot make a reader allocate without bound.
const MAX_RECORDS: u64 = BLOCK_BYTES as u64;

/// The row standing in `log` for `record` (its bytes, hashes last), the `index`th of its block.
pub fn row(index: u64, record: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(1 + 10 + HASH);
    row.push(TAG);
    put_varint(&mut row, index);
    row.extend_from_slice(&record[record.len().saturating_sub(HASH)..]);
    row
}

/// The index a block row gives its record.
pub fn index(stored: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader(stored.get(1..).ok_or(DecodeError::TooShort(0))?);
    let index = r.varint()?;
    if r.0.len() != HASH {
        return Err(DecodeError::Body(format!("a block row holds {} bytes after its index, not 32", r.0.len())));
    }
    Ok(index)
}

/// Whether `record` (its bytes, hashes last) continues the chain from `previous`: its
/// `prev_hash` is `previous`'s hash. Only then may it follow `previous` in a block.
pub fn continues(previous: &[u8], record: &[u8]) -> bool {
    let prev_hash = record.len().checked_sub(HASHES).map(|at| &record[at..at + HASH]);
    let hash = previous.len().checked_sub(HASH).map(|at| &previous[at..]);
    prev_hash.is_some() && prev_hash == hash
}

/// Which of `rows` — (seq, session number, record length, whether it continues the chain
/// from the row before it), ascending by seq — are stored together: runs of at least two
/// records of one session with consecutive seqs, each continuing the chain from the one
/// before, none longer than [`MAX_RECORD`], cut where a run would pass [`BLOCK_BYTES`].
pub fn runs(rows: &[(u64, i64, usize, bool)]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &(seq, session, len, chained)) in rows.iter().enumerate() {
        let joins = i > start
            && rows[i - 1].0.checked_add(1) == Some(seq)
            && rows[i - 1].1 == session
            && chained
            && len <= MAX_RECORD
            && bytes < BLOCK_BYTES;
        if !joins {
            if i - start >= 2 {
                runs.push(start..i);
            }
            start = i;
            bytes = 0;
            if len > MAX_RECORD {
                // Alone, whatever follows.
                start = i + 1;
                continue;
            }
        }
        bytes += len;
    }
    if rows.len() >= start + 2 {
        runs.push(start..rows.len());
    }
    runs
}

/// The block of `records` (each its bytes, hashes last, each after the first continuing the
/// chain from the one before: see [`continues`]): a frame, or `None` when there are none or
/// zstd fails.
pub fn compress(c: &mut Compressor, records: &[&[u8]]) -> Option<Vec<u8>> {
    let first = records.first().filter(|r| r.len() >= HASHES)?;
    let first_prev = &first[first.len() - HASHES..first.len() - HASH];
    let bodies = records.iter().map(|r| &r[..r.len().saturating_sub(HASHES)]);
    let mut content = Vec::with_capacity(bodies.clone().map(|b| b.len() + 3).sum::<usize>() + 3 + HASH);
    put_varint(&mut content, records.len() as u64);
    for b in bodies.clone() {
        put_varint(&mut content, b.len() as u64);
    }
    content.extend_from_slice(first_prev);
    bodies.for_each(|b| content.extend_from_slice(b));
    c.frame(&content).map(<[u8]>::to_vec)
}

/// A block read: its records' bytes without their hashes, and its first record's `prev_hash`.
#[derive(Debug)]
pub struct Block {
    content: Vec<u8>,
    first_prev: [u8; HASH],
    spans: Vec<Range<usize>>,
}

impl Block {
    /// Decompresses and checks a block's frame.
    pub fn read(d: &mut Decompressor, frame: &[u8]) -> Result<Block, DecodeError> {
        let content = d.unframe(frame, "a block", 0)?;
        let bad = |reason: &str| DecodeError::Body(format!("a block {reason}"));
        let mut r = Reader(&content);
        let n = r.varint()?;
        if n == 0 || n > MAX_RECORDS {
            return Err(bad(&format!("says it holds {n} records")));
        }
        let mut spans = Vec::with_capacity(n as usize);
        let mut end = 0usize;
        for _ in 0..n {
            let len = r.len()?;
            let start = end;
            end = start.checked_add(len).ok_or_else(|| bad("holds records longer than itself"))?;
            spans.push(start..end);
        }
        let first_prev: [u8; HASH] = r.take(HASH)?.try_into().expect("32 bytes");
        let head = content.len() - r.0.len();
        if end != r.0.len() {
            return Err(bad("holds other bytes than its records' lengths add up to"));
        }
        spans.iter_mut().for_each(|s| *s = s.start + head..s.end + head);
        Ok(Block { content, first_prev, spans })
    }

    /// How many records the block holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the block holds no record (never, once read).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of the record whose row is `stored`: its bytes in the block, its `prev_hash`
    /// — the block's for its first record, otherwise `previous`, the hash of the record before
    /// it (the last 32 bytes of that record's row) — then the row's hash.
    pub fn record(&self, stored: &[u8], previous: impl FnOnce() -> Option<[u8; HASH]>) -> Result<Vec<u8>, DecodeError> {
        let index = index(stored)?;
        let span = usize::try_from(index).ok().and_then(|i| self.spans.get(i)).ok_or_else(|| {
            DecodeError::Body(format!("a block row names record {index} of a block of {}", self.len()))
        })?;
        let prev_hash = match index {
            0 => self.first_prev,
            _ => previous().ok_or_else(|| DecodeError::Body("the record before it in its block is missing".into()))?,
        };
        let mut record = Vec::with_capacity(span.len() + HASHES);
        record.extend_from_slice(&self.content[span.clone()]);
        record.extend_from_slice(&prev_hash);
        record.extend_from_slice(&stored[stored.len() - HASH..]);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Records whose bodies are `bodies` and whose hashes chain: each one's `prev_hash` is the
    /// hash of the one before (the hashes are made up; only their places matter here).
    fn chained(bodies: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut prev = [7u8; HASH];
        (bodies.iter().enumerate())
            .map(|(i, body)| {
                let hash: [u8; HASH] = std::array::from_fn(|b| (b * 31 + i * 7 + body.len()) as u8);
                let record = [&body[..], &prev, &hash].concat();
                prev = hash;
                record
            })
            .collect()
    }

    fn records(n: usize) -> Vec<Vec<u8>> {
        let body = |i: usize| {
            let text = format!("request {i}: the borrow checker says the value moved here; ").repeat(i % 7 + 1);
            [&[1u8][..], text.as_bytes()].concat()
        };
        chained(&(0..n).map(body).collect::<Vec<_>>())
    }

    fn frame(records: &[Vec<u8>]) -> Vec<u8> {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        compress(&mut Compressor::new().unwrap(), &refs).unwrap()
    }

    /// The hash of record `i - 1`, as a store reads it from the end of that record's row.
    fn previous(records: &[Vec<u8>], i: usize) -> impl FnOnce() -> Option<[u8; HASH]> + '_ {
        move || i.checked_sub(1).map(|p| records[p][records[p].len() - HASH..].try_into().unwrap())
    }

    #[test]
    fn every_record_of_a_block_comes_back_exactly_from_its_row() {
        let records = records(40);
        let frame = frame(&records);
        let raw: usize = records.iter().map(Vec::len).sum();
        assert!(frame.len() < raw / 8, "{} of {raw}", frame.len());
        let block = Block::read(&mut Decompressor::new().unwrap(), &frame).unwrap();
        assert_eq!(block.len(), 40);
        for (i, r) in records.iter().enumerate() {
            let row = row(i as u64, r);
            assert_eq!(row[0], TAG);
            // Its hash only, where every row keeps it: its prev_hash is the row before's.
            assert_eq!(row.len(), 1 + 1 + HASH);
            assert_eq!(row[row.len() - HASH..], r[r.len() - HASH..]);
            assert_eq!(index(&row).unwrap(), i as u64);
            assert_eq!(block.record(&row, previous(&records, i)).unwrap(), *r, "record {i}");
            assert!(i == 0 || continues(&records[i - 1], r));
        }
        // A row naming a record past the block's end is refused; so is a record after the
        // first without the one before it.
        assert!(block.record(&row(40, &records[0]), || None).is_err());
        assert!(block.record(&row(3, &records[3]), || None).is_err());
    }

    #[test]
    fn a_damaged_block_or_row_is_an_error_not_a_panic() {
        let records = records(5);
        let frame = frame(&records);
        let mut d = Decompressor::new().unwrap();
        for cut in [0, 1, 5, frame.len() - 1] {
            assert!(Block::read(&mut d, &frame[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..frame.len() {
            let mut bad = frame.clone();
            bad[at] ^= 0x40;
            assert!(Block::read(&mut d, &bad).is_err(), "byte {at} changed");
        }
        let good = row(3, &records[3]);
        for cut in 0..good.len() {
            assert!(index(&good[..cut]).is_err(), "row cut at {cut}");
        }
        // Content whose lengths do not add up, that counts no records, or that ends before
        // its first record's prev_hash: refused.
        let mut c = Compressor::new().unwrap();
        let prev = [9u8; HASH];
        for content in [
            vec![0],
            [&[2, 3, 3][..], &prev, b"abc"].concat(),
            [&[1, 9][..], &prev, b"a"].concat(),
            vec![1, 1, b'a'],
            vec![0x80; 12],
        ] {
            let f = c.frame(&content).unwrap().to_vec();
            assert!(Block::read(&mut d, &f).is_err(), "{content:?}");
        }
    }

    #[test]
    fn a_record_continues_the_chain_only_from_the_record_whose_hash_it_names() {
        let records = records(3);
        assert!(continues(&records[0], &records[1]) && continues(&records[1], &records[2]));
        assert!(!continues(&records[0], &records[2]) && !continues(&records[2], &records[1]));
        assert!(!continues(&records[0], &[1; 40]) && !continues(&[], &records[1]));
    }

    #[test]
    fn runs_are_one_sessions_consecutive_records_cut_at_the_block_size() {
        let rows = [
            (1, 1, 100, false),
            (2, 1, 100, true),
            (3, 1, 100, true),
            (4, 2, 100, true),  // another session
            (6, 2, 100, false), // not next to 4
            (7, 2, 100, true),
            (8, 2, MAX_RECORD + 1, true), // too long: alone
            (9, 2, 100, true),
            (10, 2, 100, true),
            (11, 2, 100, false), // does not continue the chain from 10
            (12, 2, 100, true),
            (14, 3, 100, true),
        ];
        assert_eq!(runs(&rows), vec![0..3, 4..6, 7..9, 9..11]);
        let big: Vec<(u64, i64, usize, bool)> = (1..=20).map(|s| (s, 1, BLOCK_BYTES / 8, true)).collect();
        // A block stops growing once past the size: 8 records reach it, the ninth starts the next.
        assert_eq!(runs(&big), vec![0..8, 8..16, 16..20]);
        assert_eq!(runs(&[(1, 1, 10, true)]), Vec::<Range<usize>>::new());
    }

    proptest! {
        #[test]
        fn any_records_come_back_from_their_block(
            bodies in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..40),
        ) {
            let records = chained(&bodies);
            let frame = frame(&records);
            let block = Block::read(&mut Decompressor::new().unwrap(), &frame).unwrap();
            prop_assert_eq!(block.len(), records.len());
            for (i, r) in records.iter().enumerate() {
                prop_assert_eq!(&block.record(&row(i as u64, r), previous(&records, i)).unwrap(), r);
            }
        }

        #[test]
        fn runs_are_ordered_disjoint_and_only_of_chained_neighbours_of_one_session(
            steps in prop::collection::vec(
                (1u64..3, 0i64..3, prop_oneof![1usize..20_000, MAX_RECORD - 2..MAX_RECORD + 3], prop::bool::weighted(0.9)),
                0..300,
            ),
        ) {
            let mut seq = 0;
            let rows: Vec<(u64, i64, usize, bool)> = steps
                .iter()
                .map(|&(step, session, len, chained)| { seq += step; (seq, session, len, chained) })
                .collect();
            let found = runs(&rows);
            let mut end = 0;
            for run in &found {
                prop_assert!(run.start >= end && run.len() >= 2);
                end = run.end;
                let members = &rows[run.clone()];
                prop_assert!(members.windows(2).all(|w| w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 && w[1].3));
                prop_assert!(members.iter().all(|&(_, _, len, _)| len <= MAX_RECORD));
                // Cut once at the block size: all but the last member are under it.
                let before_last: usize = members[..members.len() - 1].iter().map(|m| m.2).sum();
                prop_assert!(before_last < BLOCK_BYTES);
            }
            // Nothing left out that would have joined: two chained neighbours of one session,
            // both short, are in a run together unless a block was cut between them.
            for (i, w) in rows.windows(2).enumerate() {
                let joinable =
                    w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 && w[1].3 && w[0].2 <= MAX_RECORD && w[1].2 <= MAX_RECORD;
                let together = found.iter().any(|r| r.contains(&i) && r.contains(&(i + 1)));
                let cut = found.iter().any(|r| r.end == i + 1 || r.start == i + 1);
                prop_assert!(!joinable || together || cut, "rows {} and {} of {:?}: {:?}", i, i + 1, rows, found);
            }
        }
    }
}
