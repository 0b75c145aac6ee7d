//! JSON text laid out as `serde_json::to_string_pretty` lays out the value it holds, without
//! parsing it into a value. Pure.
//!
//! `replay` prints a session whose requests are stored as JSON text; parsing hundreds of
//! kilobytes into a tree only to print it again was most of its cost.

/// Re-indents well-formed JSON text (compact or not) with two spaces per level, `": "` after
/// keys and `[]`/`{}` for empty containers. Strings and numbers are copied as they are, so text
/// that serde_json wrote comes out byte for byte as serde_json's pretty printer writes it.
pub fn pretty(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 4);
    let mut depth = 0usize;
    let mut i = 0;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    };
    while i < json.len() {
        let b = json[i];
        match b {
            b'"' => {
                let start = i;
                i += 1;
                while i < json.len() && json[i] != b'"' {
                    i += if json[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(json.len());
                out.extend_from_slice(&json[start..i]);
                continue;
            }
            b'{' | b'[' => {
                let close = if b == b'{' { b'}' } else { b']' };
                let next = json[i + 1..].iter().position(|c| !c.is_ascii_whitespace()).map(|p| i + 1 + p);
                if let Some(n) = next.filter(|&n| json[n] == close) {
                    out.extend_from_slice(&[b, close]);
                    i = n + 1;
                    continue;
                }
                out.push(b);
                depth += 1;
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(b);
            }
            b',' => {
                out.push(b',');
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            b' ' | b'\n' | b'\r' | b'\t' => {}
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

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
        fn compact_text_comes_out_as_serde_json_prints_it(v in arb_json()) {
            let compact = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(String::from_utf8(pretty(&compact)).unwrap(), serde_json::to_string_pretty(&v).unwrap());
            let spaced = serde_json::to_vec_pretty(&v).unwrap();
            prop_assert_eq!(pretty(&spaced), spaced);
        }
    }
}
