//! Canonical bytes of a KYC `payload`, exactly as Python's
//! `json.dumps(payload, sort_keys=True) + "\r\n"` writes them.
//!
//! Why by hand: the bank verifies a signature over these bytes, and no serde
//! formatter reproduces Python's defaults (`", "` / `": "` separators,
//! `ensure_ascii=True` with lowercase `\uXXXX` escapes and surrogate pairs,
//! `/` unescaped). The committed vectors in `tests/data/canonical_vectors.jsonl`
//! were produced by Python itself and pin every rule.

use std::fmt::Write as _;

use serde_json::Value;

/// Why a payload has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Floats are refused: Python and Rust print them differently, so a signature
    /// over a float could never be checked reliably.
    #[error("{path}: floating-point numbers are not allowed")]
    Float { path: String },
}

/// Canonical bytes of `value` followed by `\r\n`.
pub fn canonical_bytes(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(512);
    write_value(value, &mut out, &mut String::from("payload"))?;
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>, path: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError::Float { path: path.clone() });
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                let len = path.len();
                // Into the path itself (writing to a `String` cannot fail).
                let _ = write!(path, "[{i}]");
                write_value(item, out, path)?;
                path.truncate(len);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Rust's `str` ordering is byte-wise UTF-8, which is code-point order:
            // the same order as Python's `sorted()` on `str` keys.
            // Sorted here though `Map` is a BTreeMap today: the order must not
            // hang on serde_json's features. Pairs, not keys: no lookup per key.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_string(key, out);
                out.extend_from_slice(b": ");
                let len = path.len();
                path.push('.');
                path.push_str(key);
                write_value(value, out, path)?;
                path.truncate(len);
            }
            out.push(b'}');
        }
    }
    Ok(())
}

/// Python's `py_encode_basestring_ascii`: printable ASCII stays, the usual short
/// escapes, everything else as `\uXXXX` (lowercase hex), astral code points as a
/// surrogate pair.
fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let mut rest = s;
    loop {
        // The longest run that stays as it is, copied at once: ASCII text
        // (Latin names, numbers) is most of what a partner signs.
        let plain = rest.bytes().position(|b| !is_plain(b)).unwrap_or(rest.len());
        out.extend_from_slice(&rest.as_bytes()[..plain]);
        rest = &rest[plain..];
        let Some(c) = rest.chars().next() else { break };
        write_escaped(c, out);
        rest = &rest[c.len_utf8()..];
    }
    out.push(b'"');
}

/// Printable ASCII but the two characters JSON escapes.
fn is_plain(b: u8) -> bool {
    matches!(b, b' '..=b'~') && b != b'"' && b != b'\\'
}

/// One character that is not [`is_plain`], escaped.
fn write_escaped(c: char, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match c {
        '"' => out.extend_from_slice(b"\\\""),
        '\\' => out.extend_from_slice(b"\\\\"),
        '\n' => out.extend_from_slice(b"\\n"),
        '\r' => out.extend_from_slice(b"\\r"),
        '\t' => out.extend_from_slice(b"\\t"),
        '\u{08}' => out.extend_from_slice(b"\\b"),
        '\u{0c}' => out.extend_from_slice(b"\\f"),
        _ => {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let hex = |shift: u16| HEX[usize::from((*unit >> shift) & 0xf)];
                out.extend_from_slice(&[b'\\', b'u', hex(12), hex(8), hex(4), hex(0)]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The escaping written one character at a time, as it was before runs
    /// were copied at once: the new one must write the same bytes.
    fn escaped_one_by_one(s: &str) -> Vec<u8> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = vec![b'"'];
        for c in s.chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                '\u{08}' => out.extend_from_slice(b"\\b"),
                '\u{0c}' => out.extend_from_slice(b"\\f"),
                ' '..='~' => out.push(c as u8),
                _ => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.extend_from_slice(b"\\u");
                        for shift in [12, 8, 4, 0] {
                            out.push(HEX[((*unit >> shift) & 0xf) as usize]);
                        }
                    }
                }
            }
        }
        out.push(b'"');
        out
    }

    #[test]
    fn runs_are_escaped_as_one_character_at_a_time() {
        // Every code point below U+3000 and a few astral ones, each between
        // plain runs, at the start, at the end and alone.
        let odd = (0u32..0x3000).chain([0x1F600, 0x10FFFF, 0x10000]).filter_map(char::from_u32);
        for c in odd {
            for s in [format!("{c}"), format!("ab{c}cd"), format!("{c}{c}x"), format!("Ivan {c}")] {
                let mut out = Vec::new();
                write_string(&s, &mut out);
                assert_eq!(out, escaped_one_by_one(&s), "{s:?}");
            }
        }
        let mut out = Vec::new();
        write_string("", &mut out);
        assert_eq!(out, b"\"\"");
    }

    #[test]
    fn python_defaults() {
        let v = json!({"b": 1, "a": "Иван/😀\n", "c": [true, null, {"z": 0, "y": -5}]});
        let got = String::from_utf8(canonical_bytes(&v).unwrap()).unwrap();
        assert_eq!(
            got,
            "{\"a\": \"\\u0418\\u0432\\u0430\\u043d/\\ud83d\\ude00\\n\", \"b\": 1, \"c\": [true, null, {\"y\": -5, \"z\": 0}]}\r\n"
        );
    }

    #[test]
    fn floats_are_refused_with_their_path() {
        let v = json!({"a": [1, {"b": 1.5}]});
        assert_eq!(canonical_bytes(&v), Err(CanonicalError::Float { path: "payload.a[1].b".into() }));
        assert!(canonical_bytes(&json!({"a": 1})).is_ok());
    }
}
