//! JSON text laid out as `serde_json::to_string_pretty` lays out the value it holds, without
//! parsing it into a value. Pure.
//!
//! `replay` prints a session whose requests are stored as JSON text; parsing hundreds of
//! kilobytes into a tree only to print it again was most of its cost. The text can be fed in
//! pieces (a session's stored requests, each where it was read) and the layout taken out as
//! it grows, so a long session is printed without being assembled in memory first.

use std::io::{self, Write};

/// Re-indents well-formed JSON text (compact or not), the concatenation of `pieces`, with two
/// spaces per level, `": "` after keys and `[]`/`{}` for empty containers, written to `out` as
/// it is laid out. Strings and numbers are copied as they are, so text that serde_json wrote
/// comes out byte for byte as serde_json's pretty printer writes it.
pub fn pretty_to<'a>(out: &mut (impl Write + ?Sized), pieces: impl IntoIterator<Item = &'a [u8]>) -> io::Result<()> {
    /// Enough to keep writes large, small enough to stay in cache.
    const FLUSH_AT: usize = 1 << 16;
    let mut p = Pretty::default();
    for piece in pieces {
        p.feed(piece);
        if p.out.len() >= FLUSH_AT {
            out.write_all(&p.out)?;
            p.out.clear();
        }
    }
    out.write_all(&p.finish())
}

/// Where the layout is between two pieces of text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum At {
    #[default]
    Between,
    /// Inside a string.
    String,
    /// Inside a string, just after a backslash.
    Escape,
    /// Just after `{` or `[`: whether the container is empty is not known yet.
    Opened(u8),
}

/// The layout of JSON text fed in pieces (see [`pretty_to`]).
#[derive(Debug, Default)]
struct Pretty {
    out: Vec<u8>,
    depth: usize,
    at: At,
}

impl Pretty {
    fn newline(&mut self) {
        self.out.push(b'\n');
        self.out.resize(self.out.len() + 2 * self.depth, b' ');
    }

    fn feed(&mut self, json: &[u8]) {
        let mut i = 0;
        while i < json.len() {
            match self.at {
                At::String => match quote_or_backslash(&json[i..]) {
                    None => {
                        self.out.extend_from_slice(&json[i..]);
                        return;
                    }
                    Some(n) => {
                        self.out.extend_from_slice(&json[i..=i + n]);
                        self.at = if json[i + n] == b'"' { At::Between } else { At::Escape };
                        i += n + 1;
                    }
                },
                At::Escape => {
                    self.out.push(json[i]);
                    self.at = At::String;
                    i += 1;
                }
                At::Opened(open) => {
                    let b = json[i];
                    if b.is_ascii_whitespace() {
                        i += 1;
                        continue;
                    }
                    self.at = At::Between;
                    if b == close_of(open) {
                        self.out.extend_from_slice(&[open, b]);
                        i += 1;
                    } else {
                        self.open(open);
                    }
                }
                At::Between => {
                    match json[i] {
                        b'"' => {
                            self.out.push(b'"');
                            self.at = At::String;
                        }
                        b @ (b'{' | b'[') => self.at = At::Opened(b),
                        b @ (b'}' | b']') => {
                            self.depth = self.depth.saturating_sub(1);
                            self.newline();
                            self.out.push(b);
                        }
                        b',' => {
                            self.out.push(b',');
                            self.newline();
                        }
                        b':' => self.out.extend_from_slice(b": "),
                        b' ' | b'\n' | b'\r' | b'\t' => {}
                        b => self.out.push(b),
                    }
                    i += 1;
                }
            }
        }
    }

    /// A container that is not empty begins.
    fn open(&mut self, open: u8) {
        self.out.push(open);
        self.depth += 1;
        self.newline();
    }

    fn finish(mut self) -> Vec<u8> {
        if let At::Opened(open) = self.at {
            self.open(open);
        }
        self.out
    }
}

/// Where the first `"` or `\\` in `s` is, eight bytes at a time: most of a session's text is
/// inside strings. (memchr's SIMD search is faster on long strings, but chooses it at run time
/// with `cpuid`, which a virtual machine can make cost more than the whole search saves.)
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // The lowest high bit set marks the first zero byte of `v` exactly.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut words = s.chunks_exact(8);
    for (n, word) in words.by_ref().enumerate() {
        let w = u64::from_le_bytes(word.try_into().expect("chunks of eight"));
        let found = zero_bytes(w ^ (ONES * u64::from(b'"'))) | zero_bytes(w ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(n * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let rest = words.remainder();
    rest.iter().position(|&b| b == b'"' || b == b'\\').map(|p| s.len() - rest.len() + p)
}

fn close_of(open: u8) -> u8 {
    if open == b'{' { b'}' } else { b']' }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// [`pretty_to`] of text in one piece.
    fn pretty(json: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pretty_to(&mut out, [json]).unwrap();
        out
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
            "(\\PC|[\"\\\\/\n\t{}\\[\\],:])*".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("(\\PC|[\":{},])*", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    #[test]
    fn empty_containers_and_nesting_look_like_serde_json() {
        let v = json!({"a": [], "b": {}, "c": [1, {"d": [ ]}], "e": "x, y: {z}"});
        assert_eq!(
            String::from_utf8(pretty(v.to_string().as_bytes())).unwrap(),
            serde_json::to_string_pretty(&v).unwrap()
        );
        // Text with its own whitespace comes out the same.
        let spaced = b"{ \"a\" : [ ] ,\n \"b\" : { } }";
        assert_eq!(pretty(spaced), serde_json::to_string_pretty(&json!({"a": [], "b": {}})).unwrap().into_bytes());
    }

    proptest! {
        #[test]
        fn the_first_quote_or_backslash_is_found_wherever_it_is(s in prop::collection::vec(
            prop_oneof![Just(b'"'), Just(b'\\'), Just(b'a'), Just(0x22 ^ 0x80), Just(0x5c + 1), any::<u8>()], 0..40)) {
            prop_assert_eq!(quote_or_backslash(&s), s.iter().position(|&b| b == b'"' || b == b'\\'));
        }

        #[test]
        fn text_fed_in_pieces_comes_out_as_text_fed_whole(v in arb_json(), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6)) {
            let compact = serde_json::to_vec(&v).unwrap();
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(compact.len() + 1)).collect();
            at.extend([0, compact.len()]);
            at.sort_unstable();
            let mut out = Vec::new();
            pretty_to(&mut out, at.windows(2).map(|w| &compact[w[0]..w[1]])).unwrap();
            prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string_pretty(&v).unwrap());
        }

        #[test]
        fn compact_text_comes_out_as_serde_json_prints_it(v in arb_json()) {
            let compact = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(String::from_utf8(pretty(&compact)).unwrap(), serde_json::to_string_pretty(&v).unwrap());
            let spaced = serde_json::to_vec_pretty(&v).unwrap();
            prop_assert_eq!(pretty(&spaced), spaced);
        }
    }
}
