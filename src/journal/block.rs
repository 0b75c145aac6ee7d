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
//! Each record keeps its row in `log`: `TAG ‖ varint(index) ‖ prev_hash ‖ hash`, its hashes
//! where every row keeps them, and its place in the block whose first seq is `seq - index`.
//! The block (table `blocks`, keyed by that first seq) is one zstd frame of
//! `varint(n) ‖ n × varint(length) ‖ the n records' bytes without their hashes`, in seq order.
//! Like deltas and compressed rows, a storage encoding only: every record reads back as the
//! bytes its hash covers. `journal-format.md` gives the layout. Pure: no I/O.

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

/// The bytes after the index: `prev_hash ‖ hash`.
const HASHES: usize = 64;

/// The most records a block may say it holds: more than [`BLOCK_BYTES`] of the shortest
/// records, so that a damaged count cannot make a reader allocate without bound.
const MAX_RECORDS: u64 = BLOCK_BYTES as u64;

/// The row standing in `log` for `record` (its bytes, hashes last), the `index`th of its block.
pub fn row(index: u64, record: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(1 + 10 + HASHES);
    row.push(TAG);
    put_varint(&mut row, index);
    row.extend_from_slice(&record[record.len().saturating_sub(HASHES)..]);
    row
}

/// The index a block row gives its record.
pub fn index(stored: &[u8]) -> Result<u64, DecodeError> {
    let mut r = Reader(stored.get(1..).ok_or(DecodeError::TooShort(0))?);
    let index = r.varint()?;
    if r.0.len() != HASHES {
        return Err(DecodeError::Body(format!("a block row holds {} bytes after its index, not 64", r.0.len())));
    }
    Ok(index)
}

/// Which of `rows` — (seq, session number, record length), ascending by seq — are stored
/// together: runs of at least two records of one session with consecutive seqs, none longer
/// than [`MAX_RECORD`], cut where a run would pass [`BLOCK_BYTES`].
pub fn runs(rows: &[(u64, i64, usize)]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &(seq, session, len)) in rows.iter().enumerate() {
        let joins = i > start
            && rows[i - 1].0.checked_add(1) == Some(seq)
            && rows[i - 1].1 == session
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

/// The block of `records` (each its bytes, hashes last): a frame, or `None` when zstd fails.
pub fn compress(c: &mut Compressor, records: &[&[u8]]) -> Option<Vec<u8>> {
    let bodies = records.iter().map(|r| &r[..r.len().saturating_sub(HASHES)]);
    let mut content = Vec::with_capacity(bodies.clone().map(|b| b.len() + 3).sum::<usize>() + 3);
    put_varint(&mut content, records.len() as u64);
    for b in bodies.clone() {
        put_varint(&mut content, b.len() as u64);
    }
    bodies.for_each(|b| content.extend_from_slice(b));
    c.frame(&content).map(<[u8]>::to_vec)
}

/// A block read: its records' bytes without their hashes.
#[derive(Debug)]
pub struct Block {
    content: Vec<u8>,
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
        let head = content.len() - r.0.len();
        if end != r.0.len() {
            return Err(bad("holds other bytes than its records' lengths add up to"));
        }
        spans.iter_mut().for_each(|s| *s = s.start + head..s.end + head);
        Ok(Block { content, spans })
    }

    /// How many records the block holds.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the block holds no record (never, once read).
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of the record whose row is `stored`: its bytes in the block, then the row's
    /// hashes.
    pub fn record(&self, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let index = index(stored)?;
        let span = usize::try_from(index).ok().and_then(|i| self.spans.get(i)).ok_or_else(|| {
            DecodeError::Body(format!("a block row names record {index} of a block of {}", self.len()))
        })?;
        let mut record = Vec::with_capacity(span.len() + HASHES);
        record.extend_from_slice(&self.content[span.clone()]);
        record.extend_from_slice(&stored[stored.len() - HASHES..]);
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(i: usize) -> Vec<u8> {
        let mut r = vec![1];
        r.extend_from_slice(
            format!("request {i}: the borrow checker says the value moved here; ").repeat(i % 7 + 1).as_bytes(),
        );
        r.extend((0..64).map(|b| (b + i) as u8));
        r
    }

    fn frame(records: &[Vec<u8>]) -> Vec<u8> {
        let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        compress(&mut Compressor::new().unwrap(), &refs).unwrap()
    }

    #[test]
    fn every_record_of_a_block_comes_back_exactly_from_its_row() {
        let records: Vec<Vec<u8>> = (0..40).map(record).collect();
        let frame = frame(&records);
        let raw: usize = records.iter().map(Vec::len).sum();
        assert!(frame.len() < raw / 8, "{} of {raw}", frame.len());
        let block = Block::read(&mut Decompressor::new().unwrap(), &frame).unwrap();
        assert_eq!(block.len(), 40);
        for (i, r) in records.iter().enumerate() {
            let row = row(i as u64, r);
            assert_eq!(row[0], TAG);
            assert_eq!(row[row.len() - 64..], r[r.len() - 64..]);
            assert_eq!(index(&row).unwrap(), i as u64);
            assert_eq!(block.record(&row).unwrap(), *r, "record {i}");
        }
        // A row naming a record past the block's end is refused.
        assert!(block.record(&row(40, &records[0])).is_err());
    }

    #[test]
    fn a_damaged_block_or_row_is_an_error_not_a_panic() {
        let records: Vec<Vec<u8>> = (0..5).map(record).collect();
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
        // Content whose lengths do not add up, or that counts no records: refused.
        let mut c = Compressor::new().unwrap();
        for content in [vec![0], vec![2, 3, 3, b'a', b'b', b'c'], vec![1, 9, b'a'], vec![0x80; 12]] {
            let f = c.frame(&content).unwrap().to_vec();
            assert!(Block::read(&mut d, &f).is_err(), "{content:?}");
        }
    }

    #[test]
    fn runs_are_one_sessions_consecutive_records_cut_at_the_block_size() {
        let rows = [
            (1, 1, 100),
            (2, 1, 100),
            (3, 1, 100),
            (4, 2, 100), // another session
            (6, 2, 100), // not next to 4
            (7, 2, 100),
            (8, 2, MAX_RECORD + 1), // too long: alone
            (9, 2, 100),
            (10, 2, 100),
            (12, 3, 100),
        ];
        assert_eq!(runs(&rows), vec![0..3, 4..6, 7..9]);
        let big: Vec<(u64, i64, usize)> = (1..=20).map(|s| (s, 1, BLOCK_BYTES / 8)).collect();
        // A block stops growing once past the size: 8 records reach it, the ninth starts the next.
        assert_eq!(runs(&big), vec![0..8, 8..16, 16..20]);
        assert_eq!(runs(&[(1, 1, 10)]), Vec::<Range<usize>>::new());
    }

    proptest! {
        #[test]
        fn any_records_come_back_from_their_block(
            records in prop::collection::vec(prop::collection::vec(any::<u8>(), 64..600), 1..40),
        ) {
            let frame = frame(&records);
            let block = Block::read(&mut Decompressor::new().unwrap(), &frame).unwrap();
            prop_assert_eq!(block.len(), records.len());
            for (i, r) in records.iter().enumerate() {
                prop_assert_eq!(&block.record(&row(i as u64, r)).unwrap(), r);
            }
        }

        #[test]
        fn runs_are_ordered_disjoint_and_only_of_neighbours_of_one_session(
            steps in prop::collection::vec(
                (1u64..3, 0i64..3, prop_oneof![1usize..20_000, MAX_RECORD - 2..MAX_RECORD + 3]),
                0..300,
            ),
        ) {
            let mut seq = 0;
            let rows: Vec<(u64, i64, usize)> =
                steps.iter().map(|&(step, session, len)| { seq += step; (seq, session, len) }).collect();
            let found = runs(&rows);
            let mut end = 0;
            for run in &found {
                prop_assert!(run.start >= end && run.len() >= 2);
                end = run.end;
                let members = &rows[run.clone()];
                prop_assert!(members.windows(2).all(|w| w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1));
                prop_assert!(members.iter().all(|&(_, _, len)| len <= MAX_RECORD));
                // Cut once at the block size: all but the last member are under it.
                let before_last: usize = members[..members.len() - 1].iter().map(|m| m.2).sum();
                prop_assert!(before_last < BLOCK_BYTES);
            }
            // Nothing left out that would have joined: two neighbours of one session, both short,
            // are in a run together unless a block was cut between them.
            for (i, w) in rows.windows(2).enumerate() {
                let joinable = w[1].0 == w[0].0 + 1 && w[1].1 == w[0].1 && w[0].2 <= MAX_RECORD && w[1].2 <= MAX_RECORD;
                let together = found.iter().any(|r| r.contains(&i) && r.contains(&(i + 1)));
                let cut = found.iter().any(|r| r.end == i + 1 || r.start == i + 1);
                prop_assert!(!joinable || together || cut, "rows {} and {} of {:?}: {:?}", i, i + 1, rows, found);
            }
        }
    }
}
