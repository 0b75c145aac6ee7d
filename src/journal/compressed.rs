//! Records stored compressed, as `chasm gc` packs them.
//!
//! Most of a journal's bytes are the text of requests and responses, stored as JSON inside
//! each record: a first sync of a user's sessions stores every request once, as a record of a
//! kilobyte or two, where a delta (`delta.rs`) has nothing earlier to stand on. Such text
//! compresses to about half alone, and a row read back costs a few microseconds more; a run of
//! one session's records compresses better together (`block.rs`, which frames its blocks with
//! this module's compressor), and gc stores runs that way. Like a delta
//! this is a storage encoding only: the record's bytes, and the hash that covers them, are what
//! they always were. `journal-format.md` gives the layout.
//!
//! Appends do not compress: at 13 µs a record on the machine of BENCHMARKS.md, it cost an
//! append of 256 records more than half its throughput. `chasm gc` compresses what appends
//! stored whole, as `git gc` packs loose objects.
//!
//! The hashes stay outside the compressed part, at the end of the row as in the other forms (a
//! block's row keeps its record's hash only), so that a row's hash is read without
//! decompressing it. Snapshot rows, derived, are stored
//! compressed whole ([`Compressor::compress_row`]).

use super::record::DecodeError;

/// The first byte of a compressed row. A record stored as it is starts with its version byte
/// (1), a delta with `0xDE`.
pub const TAG: u8 = 0xC5;

/// Records shorter than this are stored as they are: a small record saves a few bytes and its
/// reads would pay for them.
pub const MIN_LEN: usize = 512;

/// The most a compressed row may expand: a writer compresses no record past it, and a reader
/// refuses a row claiming more, so a damaged length cannot make it allocate without bound.
pub const MAX_RATIO: usize = 256;

/// zstd's level: its default. Level 1 took 15% less time for 2% more bytes, level -1 half the
/// time for 16% more; a pack runs when its user asks.
const LEVEL: i32 = 3;

/// The bytes after the compressed part: `prev_hash ‖ hash`.
const HASHES: usize = 64;

/// A compressor kept for the length of a pack: making one costs more than compressing a
/// record.
pub struct Compressor {
    zstd: zstd::bulk::Compressor<'static>,
    frame: Vec<u8>,
}

impl Compressor {
    /// `None` when zstd cannot set one up (no memory): records are then stored as they are.
    pub fn new() -> Option<Compressor> {
        let mut zstd = zstd::bulk::Compressor::new(LEVEL).ok()?;
        // A checksum of the content (4 bytes): a damaged frame fails to read instead of giving
        // other bytes, which only `verify`'s hashes would catch.
        zstd.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true)).ok()?;
        Some(Compressor { zstd, frame: Vec::new() })
    }

    /// The row storing `record` (its bytes, `C ‖ prev_hash ‖ hash`) compressed; `None` when the
    /// record is short, or would not shrink by an eighth.
    pub fn compress(&mut self, record: &[u8]) -> Option<Vec<u8>> {
        if record.len() < MIN_LEN {
            return None;
        }
        let (canonical, hashes) = record.split_at(record.len() - HASHES);
        let frame = self.frame(canonical)?;
        let len = 1 + frame.len() + HASHES;
        if len > record.len() - record.len() / 8 {
            return None;
        }
        let mut row = Vec::with_capacity(len);
        row.push(TAG);
        row.extend_from_slice(frame);
        row.extend_from_slice(hashes);
        Some(row)
    }

    /// A derived row (a snapshot) stored compressed: `C ‖ frame`, whatever the row was; `None`
    /// when it is short, or would not shrink by an eighth.
    pub fn compress_row(&mut self, row: &[u8]) -> Option<Vec<u8>> {
        if row.len() < MIN_LEN {
            return None;
        }
        let frame = self.frame(row)?;
        (frame.len() < row.len() - row.len() / 8).then(|| [&[TAG][..], frame].concat())
    }

    /// `bytes` as one zstd frame that states their length and carries their checksum; `None`
    /// when zstd fails, or when the frame would expand past [`MAX_RATIO`], which a reader
    /// refuses. Shared by rows compressed alone and blocks (`block.rs`).
    pub fn frame(&mut self, bytes: &[u8]) -> Option<&[u8]> {
        self.frame.clear();
        self.frame.reserve(zstd::zstd_safe::compress_bound(bytes.len()));
        self.zstd.compress_to_buffer(bytes, &mut self.frame).ok()?;
        (bytes.len() <= self.frame.len() * MAX_RATIO).then_some(&self.frame[..])
    }
}

/// A decompressor kept for the length of a read.
pub struct Decompressor(zstd::bulk::Decompressor<'static>);

impl Decompressor {
    pub fn new() -> Result<Decompressor, DecodeError> {
        zstd::bulk::Decompressor::new().map(Decompressor).map_err(|e| DecodeError::Body(e.to_string()))
    }

    /// The record bytes of the compressed row `stored`.
    pub fn decompress(&mut self, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let at = stored.len().checked_sub(HASHES).filter(|&at| at > 1).ok_or(DecodeError::TooShort(stored.len()))?;
        let (frame, hashes) = (&stored[1..at], &stored[at..]);
        let mut record = self.unframe(frame, "a compressed row", HASHES)?;
        record.extend_from_slice(hashes);
        Ok(record)
    }

    /// The bytes of a frame [`Compressor::frame`] made, with room for `spare` more. What the
    /// frame is (`what`) names it in errors. A frame must state its length, may not claim more
    /// than [`MAX_RATIO`] times its own, and must hold what it states: damaged, it is refused,
    /// never read as other bytes or an allocation without bound.
    pub fn unframe(&mut self, frame: &[u8], what: &str, spare: usize) -> Result<Vec<u8>, DecodeError> {
        let bad = |reason: &str| DecodeError::Body(format!("{what} {reason}"));
        let len = match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(len)) => usize::try_from(len).map_err(|_| bad("claims too many bytes"))?,
            _ => return Err(bad("does not say its length")),
        };
        if len > frame.len().saturating_mul(MAX_RATIO) {
            return Err(bad("claims more bytes than it can hold"));
        }
        let mut bytes = Vec::with_capacity(len + spare);
        let n =
            self.0.decompress_to_buffer(frame, &mut bytes).map_err(|e| bad(&format!("does not decompress: {e}")))?;
        if n != len {
            return Err(bad("holds another length than it says"));
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(text: &str) -> Vec<u8> {
        let mut r = vec![1];
        r.extend_from_slice(text.as_bytes());
        r.extend((0..64).map(|i| i as u8));
        r
    }

    #[test]
    fn a_long_record_comes_back_exactly_and_keeps_its_hashes_at_the_end() {
        let r = record(&"the borrow checker says the value moved here; ".repeat(40));
        let row = Compressor::new().unwrap().compress(&r).unwrap();
        assert_eq!(row[0], TAG);
        assert!(row.len() < r.len() / 4, "{} of {}", row.len(), r.len());
        assert_eq!(row[row.len() - 64..], r[r.len() - 64..]);
        assert_eq!(Decompressor::new().unwrap().decompress(&row).unwrap(), r);
    }

    #[test]
    fn short_or_incompressible_records_are_stored_as_they_are() {
        let mut c = Compressor::new().unwrap();
        assert_eq!(c.compress(&record("short")), None);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert_eq!(c.compress(&noise), None);
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let r = record(&"a response streaming in, word by word. ".repeat(50));
        let row = Compressor::new().unwrap().compress(&r).unwrap();
        let mut d = Decompressor::new().unwrap();
        for cut in [0, 1, 5, 64, 65, row.len() - 1] {
            assert!(d.decompress(&row[..cut]).is_err(), "cut at {cut}");
        }
        // Any byte of the frame changed: refused (its checksum), never other bytes, never a panic.
        for at in 1..row.len() - 64 {
            let mut bad = row.clone();
            bad[at] ^= 0x40;
            assert!(d.decompress(&bad).is_err(), "byte {at} changed");
        }
    }
}
