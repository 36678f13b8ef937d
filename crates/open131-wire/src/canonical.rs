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
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push(b'{');
            for (i, key) in keys.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_string(key, out);
                out.extend_from_slice(b": ");
                let len = path.len();
                path.push('.');
                path.push_str(key);
                write_value(&map[key.as_str()], out, path)?;
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
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
