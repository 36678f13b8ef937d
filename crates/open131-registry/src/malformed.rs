//! The exact-match side set of malformed rows.
//!
//! The MVD export has ~10,000 rows out of ~137 million that are not
//! "4 digits, comma, 6 digits": letters in the series, 5-digit numbers, stray
//! `+` or `]`, extra spaces. They cannot be put in the 10-digit key space,
//! but they are part of the official list, so they are neither dropped nor a
//! reason to refuse the import: each is kept *verbatim* (with whitespace
//! removed, which is the only normalisation applied), counted and reported.
//!
//! Matching a raw query against them ignores whitespace and the `,` field
//! separator on both sides, so the row `ХЕ12,345678` is found by the query
//! `ХЕ12 345678` as printed in a passport. At ~10 k rows the set is a pair of
//! sorted vectors with binary search: tens of kilobytes, no hashing.

use crate::format::{BodyReader, BodyWriter, CorruptBody};

/// Longest malformed row accepted from a file (rows longer than this are not CSV rows).
pub(crate) const MALFORMED_ROW_MAX_BYTES: u64 = 64 * 1024;

/// Removes whitespace: Unicode white space when `raw` is UTF-8, ASCII white space otherwise.
pub(crate) fn strip_whitespace(raw: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(raw) {
        Ok(s) if !s.is_ascii() => s.chars().filter(|c| !c.is_whitespace()).collect::<String>().into_bytes(),
        _ => raw.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect(),
    }
}

/// The comparison key of a row or a query: whitespace and `,` removed.
pub(crate) fn match_key(raw: &[u8]) -> Vec<u8> {
    let mut key = strip_whitespace(raw);
    key.retain(|&b| b != b',');
    key
}

/// Sorted, de-duplicated malformed rows plus their sorted match keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MalformedSet {
    rows: Vec<Box<[u8]>>,
    keys: Vec<Box<[u8]>>,
}

impl MalformedSet {
    /// Builds the set from rows already stripped of whitespace.
    pub(crate) fn from_rows(mut rows: Vec<Box<[u8]>>) -> MalformedSet {
        rows.sort_unstable();
        rows.dedup();
        let mut keys: Vec<Box<[u8]>> = rows.iter().map(|r| match_key(r).into_boxed_slice()).collect();
        keys.sort_unstable();
        keys.dedup();
        rows.shrink_to_fit();
        MalformedSet { rows, keys }
    }

    /// Distinct rows.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Rows in byte order.
    pub(crate) fn rows(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.rows.iter().map(|r| &r[..])
    }

    /// Whether a row with this match key (see [`match_key`]) is in the set.
    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.keys.binary_search_by(|k| k[..].cmp(key)).is_ok()
    }

    /// Heap bytes held.
    pub(crate) fn size_bytes(&self) -> usize {
        let boxes = |v: &Vec<Box<[u8]>>| {
            v.capacity() * std::mem::size_of::<Box<[u8]>>() + v.iter().map(|r| r.len()).sum::<usize>()
        };
        boxes(&self.rows) + boxes(&self.keys)
    }

    /// Bytes [`MalformedSet::write`] produces.
    pub(crate) fn encoded_len(&self) -> u64 {
        8 + self.rows.iter().map(|r| 4 + r.len() as u64).sum::<u64>()
    }

    /// Writes the count, then each row as a u32 length and its bytes.
    pub(crate) fn write<W: std::io::Write>(&self, w: &mut BodyWriter<W>) -> std::io::Result<()> {
        w.write_u64(self.rows.len() as u64)?;
        for r in &self.rows {
            w.write_u32(r.len() as u32)?;
            w.write_bytes(r)?;
        }
        Ok(())
    }

    /// Reads what [`MalformedSet::write`] wrote.
    pub(crate) fn read(r: &mut BodyReader<'_>) -> Result<MalformedSet, CorruptBody> {
        let at = r.offset();
        let count = r.read_u64()?;
        let mut rows = Vec::new();
        for _ in 0..count {
            let len = u64::from(r.read_u32()?);
            if len > MALFORMED_ROW_MAX_BYTES {
                return Err(CorruptBody::new(r.offset(), format!("malformed row of {len} bytes is too long")));
            }
            rows.push(r.read_bytes(len)?.into_boxed_slice());
        }
        let set = MalformedSet::from_rows(rows);
        if set.len() as u64 != count {
            return Err(CorruptBody::new(at, "malformed rows are not distinct"));
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_separator_handling() {
        assert_eq!(strip_whitespace(b" 45 09 ,\t123456\r"), b"4509,123456");
        assert_eq!(strip_whitespace("ХЕ12,\u{a0}345678".as_bytes()), "ХЕ12,345678".as_bytes());
        assert_eq!(strip_whitespace(b"\xff 1"), b"\xff1");
        let set = MalformedSet::from_rows(vec![
            b"4509,12345".to_vec().into(),
            "ХЕ12,345678".as_bytes().to_vec().into(),
            b"4509,12345".to_vec().into(),
        ]);
        assert_eq!(set.len(), 2);
        assert!(set.contains_key(&match_key("ХЕ12 345678".as_bytes())));
        assert!(set.contains_key(&match_key(b"4509 12345")));
        assert!(!set.contains_key(&match_key(b"4509 123456")));
    }
}
