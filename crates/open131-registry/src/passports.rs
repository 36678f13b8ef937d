//! The invalid-passport index: an immutable set over the 10-digit key space.
//!
//! A Russian passport is a 4-digit series (2 digits of region code, 2 of the
//! blank's print year) and a 6-digit number; the key is
//! `series * 10^6 + number`, a `u64` below [`PASSPORT_KEY_UNIVERSE`] = 10^10.
//!
//! # Why this structure
//!
//! The MVD list has ~137 million keys out of 10^10 possible ones. Any
//! structure able to represent every such set needs at least
//! `log2(C(10^10, n))` bits, ≈ 7.6 bits per key at this density. The
//! candidates:
//!
//! | structure | bits per key | note |
//! |-----------|-------------:|------|
//! | sorted `Vec<u64>` | 64 | 8.4× the bound, ~20 dependent misses per lookup |
//! | `HashSet<u64>` | ~100–150 | plus hashing per lookup |
//! | roaring (array containers) | ~16 | 2.1× the bound on scattered keys |
//! | global Elias–Fano | `2 + log2(10^10/n)` ≈ 8.2 (+ select directory) | ≈ 1.1× the bound, but 3–4 dependent misses per lookup |
//! | **blocked Elias–Fano** (`blocked.rs`) | ≈ 8.8 scattered, ~5 on the synthetic list | 2 dependent misses; bitmaps for batches |
//!
//! The blocked layout cuts the key space into blocks of `2^(l+6)` keys, each
//! encoded as local Elias–Fano, a bitmap (inside stolen batches, which are
//! contiguous number ranges) or a sorted array, whichever is smallest, behind
//! a `u32` offset directory. A lookup reads the directory, then one or two
//! adjacent cache lines of its block.
//!
//! Malformed rows of the official file live in an exact-match side set
//! (`malformed.rs`); [`PassportIndex::contains_raw`] consults both.
//!
//! The file is the common container (`format.rs`) with magic `O131PSP\0`
//! and a body of: the blocked set (universe, n, l, directory group size, bit
//! counts, the block bit stream, the `u32` directory, the `u64` group bases)
//! followed by the malformed rows. Everything is validated on load.

use std::path::Path;

use crate::blocked::{BlockedSet, SetLayout};
use crate::format::{load_checked, save_atomic, IndexFileError, PASSPORT_MAGIC};
use crate::malformed::{match_key, strip_whitespace, MalformedSet};
use crate::radix::radix_sort;

/// Exclusive upper bound of passport keys: 10^10 (10 decimal digits).
pub const PASSPORT_KEY_UNIVERSE: u64 = 10_000_000_000;
/// Digits of a passport series.
pub const PASSPORT_SERIES_DIGITS: usize = 4;
/// Digits of a passport number.
pub const PASSPORT_NUMBER_DIGITS: usize = 6;
/// Digits of a passport key (series followed by number).
pub const PASSPORT_KEY_DIGITS: usize = PASSPORT_SERIES_DIGITS + PASSPORT_NUMBER_DIGITS;
/// Numbers per series: 10^6.
const NUMBERS_PER_SERIES: u64 = 1_000_000;

/// A key that does not fit in 10 decimal digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("passport key {0} has more than 10 digits")]
pub struct KeyOutOfRange(pub u64);

/// The key of series `series` (0..=9999) and number `number` (0..=999999).
pub fn passport_key(series: u32, number: u32) -> Option<u64> {
    if u64::from(series) >= PASSPORT_KEY_UNIVERSE / NUMBERS_PER_SERIES || u64::from(number) >= NUMBERS_PER_SERIES {
        return None;
    }
    Some(u64::from(series) * NUMBERS_PER_SERIES + u64::from(number))
}

/// Parses exactly `N` ASCII digits.
#[inline]
pub(crate) fn parse_digits(bytes: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for &b in bytes {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        v = v * 10 + u64::from(d);
    }
    Some(v)
}

/// Parses a passport as written by people or CSV files: 10 digits once
/// whitespace and `,` are removed (`"4509 123456"`, `"4509,123456"`, `"4509123456"`).
pub fn parse_passport_key(raw: &str) -> Option<u64> {
    let key = match_key(raw.as_bytes());
    if key.len() != PASSPORT_KEY_DIGITS {
        return None;
    }
    parse_digits(&key)
}

/// Collects keys and malformed rows; [`PassportIndexBuilder::build`] sorts,
/// de-duplicates and encodes them.
#[derive(Debug, Default, Clone)]
pub struct PassportIndexBuilder {
    keys: Vec<u64>,
    malformed: Vec<Box<[u8]>>,
}

impl PassportIndexBuilder {
    /// An empty builder.
    pub fn new() -> PassportIndexBuilder {
        PassportIndexBuilder::default()
    }

    /// An empty builder with room for `keys` keys.
    pub fn with_capacity(keys: usize) -> PassportIndexBuilder {
        PassportIndexBuilder { keys: Vec::with_capacity(keys), malformed: Vec::new() }
    }

    pub(crate) fn from_parts(keys: Vec<u64>, malformed: Vec<Box<[u8]>>) -> PassportIndexBuilder {
        PassportIndexBuilder { keys, malformed }
    }

    /// Adds a key (any order, duplicates allowed).
    pub fn push(&mut self, key: u64) -> Result<(), KeyOutOfRange> {
        if key >= PASSPORT_KEY_UNIVERSE {
            return Err(KeyOutOfRange(key));
        }
        self.keys.push(key);
        Ok(())
    }

    /// Adds a malformed row, kept verbatim except for whitespace.
    pub fn push_malformed(&mut self, raw: &[u8]) {
        self.malformed.push(strip_whitespace(raw).into_boxed_slice());
    }

    /// Keys pushed so far (with duplicates).
    pub fn keys_pushed(&self) -> usize {
        self.keys.len()
    }

    /// Sorts, de-duplicates and encodes.
    pub fn build(self) -> PassportIndex {
        let PassportIndexBuilder { mut keys, malformed } = self;
        radix_sort(&mut keys);
        keys.dedup();
        // Every key was range-checked on push (or parsed from 10 digits) and
        // the slice is now sorted and distinct, as the encoder requires.
        let set = BlockedSet::from_sorted_distinct(PASSPORT_KEY_UNIVERSE, &keys);
        drop(keys);
        PassportIndex { keys: set, malformed: MalformedSet::from_rows(malformed) }
    }
}

/// An immutable set of passport keys plus the malformed rows of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassportIndex {
    keys: BlockedSet,
    malformed: MalformedSet,
}

impl PassportIndex {
    /// A builder.
    pub fn builder() -> PassportIndexBuilder {
        PassportIndexBuilder::new()
    }

    /// Builds from keys in any order (duplicates allowed).
    pub fn from_keys(keys: impl IntoIterator<Item = u64>) -> Result<PassportIndex, KeyOutOfRange> {
        let mut b = PassportIndexBuilder::new();
        for k in keys {
            b.push(k)?;
        }
        Ok(b.build())
    }

    /// Whether the 10-digit key is in the list.
    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.keys.contains(key)
    }

    /// Whether a passport written as text is in the list: 10 digits once
    /// whitespace and `,` are removed are looked up as a key; any text is also
    /// matched against the malformed rows (whitespace and `,` ignored).
    pub fn contains_raw(&self, raw: &str) -> bool {
        self.contains_raw_bytes(raw.as_bytes())
    }

    /// [`PassportIndex::contains_raw`] for bytes that may not be UTF-8.
    pub fn contains_raw_bytes(&self, raw: &[u8]) -> bool {
        let key = match_key(raw);
        if key.len() == PASSPORT_KEY_DIGITS {
            if let Some(k) = parse_digits(&key) {
                if self.contains(k) {
                    return true;
                }
            }
        }
        self.malformed.contains_key(&key)
    }

    /// Distinct well-formed keys.
    pub fn len(&self) -> u64 {
        self.keys.len()
    }

    /// Whether there are no well-formed keys.
    pub fn is_empty(&self) -> bool {
        self.keys.len() == 0
    }

    /// Distinct malformed rows.
    pub fn malformed_len(&self) -> usize {
        self.malformed.len()
    }

    /// The malformed rows (whitespace removed), in byte order.
    pub fn malformed(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.malformed.rows()
    }

    /// The keys in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.iter()
    }

    /// Heap bytes of the structure (keys, directory and malformed rows).
    pub fn size_bytes(&self) -> usize {
        self.keys.size_bytes() + self.malformed.size_bytes()
    }

    /// Sizes of the parts of the key set.
    pub fn layout(&self) -> SetLayout {
        self.keys.layout()
    }

    /// Writes the index atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IndexFileError> {
        let body_len = self.keys.encoded_len() + self.malformed.encoded_len();
        save_atomic(path.as_ref(), PASSPORT_MAGIC, body_len, |w| {
            self.keys.write(w)?;
            self.malformed.write(w)
        })
    }

    /// Reads an index written by [`PassportIndex::save`], refusing corrupt,
    /// truncated or foreign files.
    pub fn load(path: impl AsRef<Path>) -> Result<PassportIndex, IndexFileError> {
        load_checked(path.as_ref(), PASSPORT_MAGIC, "passport", |r| {
            let at = r.offset();
            let keys = BlockedSet::read(r)?;
            if keys.universe() != PASSPORT_KEY_UNIVERSE {
                return Err(crate::format::CorruptBody::new(
                    at,
                    format!("universe is {}, expected {PASSPORT_KEY_UNIVERSE}", keys.universe()),
                ));
            }
            let malformed = MalformedSet::read(r)?;
            Ok(PassportIndex { keys, malformed })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::IndexFileError;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const U: u64 = PASSPORT_KEY_UNIVERSE;

    fn lcg(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 11
    }

    fn check_against_btree(keys: &[u64], probes: &[u64]) {
        let set: BTreeSet<u64> = keys.iter().copied().collect();
        let index = PassportIndex::from_keys(keys.iter().copied()).unwrap();
        assert_eq!(index.len(), set.len() as u64);
        assert_eq!(index.iter().collect::<Vec<_>>(), set.iter().copied().collect::<Vec<_>>());
        for &k in set.iter().chain(probes) {
            assert_eq!(index.contains(k), set.contains(&k), "key {k}");
            for d in [1, 2, 63, 64, 65] {
                assert_eq!(index.contains(k.wrapping_add(d)), set.contains(&k.wrapping_add(d)), "key {k}+{d}");
                assert_eq!(index.contains(k.wrapping_sub(d)), set.contains(&k.wrapping_sub(d)), "key {k}-{d}");
            }
        }
        for k in [0, 1, U - 2, U - 1, U, u64::MAX] {
            assert_eq!(index.contains(k), set.contains(&k), "edge {k}");
        }
    }

    #[test]
    fn empty_set() {
        check_against_btree(&[], &[0, 1, 12345, U - 1]);
        let index = PassportIndex::builder().build();
        assert!(index.is_empty());
        assert!(!index.contains_raw("4509 123456"));
    }

    #[test]
    fn edge_keys() {
        check_against_btree(&[0, U - 1], &[]);
        check_against_btree(&[0], &[U - 1]);
        check_against_btree(&[U - 1, U - 1, U - 1], &[0]);
        assert_eq!(PassportIndex::from_keys([U]), Err(KeyOutOfRange(U)));
    }

    #[test]
    fn random_sets_of_several_densities() {
        let mut s = 7;
        for n in [1usize, 10, 1000, 50_000] {
            for spread in [U, 10_000_000, 100_000] {
                let keys: Vec<u64> = (0..n).map(|_| lcg(&mut s) % spread).collect();
                let probes: Vec<u64> = (0..2000).map(|_| lcg(&mut s) % spread).collect();
                check_against_btree(&keys, &probes);
            }
        }
    }

    #[test]
    fn clustered_sets() {
        let mut s = 11;
        let mut keys = Vec::new();
        for _ in 0..40 {
            let start = lcg(&mut s) % (U - 100_000);
            let len = 200 + lcg(&mut s) % 20_000;
            keys.extend(start..start + len);
            keys.extend((0..500).map(|_| lcg(&mut s) % U));
        }
        keys.extend(0..300);
        keys.extend(U - 300..U);
        let probes: Vec<u64> = (0..20_000).map(|_| lcg(&mut s) % U).collect();
        check_against_btree(&keys, &probes);
    }

    #[test]
    fn raw_lookups_and_malformed_rows() {
        let mut b = PassportIndex::builder();
        b.push(passport_key(4509, 123456).unwrap()).unwrap();
        b.push(passport_key(101, 7).unwrap()).unwrap();
        b.push_malformed("ХЕ12, 345678".as_bytes());
        b.push_malformed(b"4509,12345");
        b.push_malformed(b"4509,12345 ");
        let index = b.build();
        assert_eq!(index.malformed_len(), 2);
        assert!(index.contains_raw("4509 123456"));
        assert!(index.contains_raw(" 4509,123456\r\n"));
        assert!(index.contains_raw("0101000007"));
        assert!(!index.contains_raw("0101000008"));
        assert!(index.contains_raw("ХЕ12 345678"));
        assert!(index.contains_raw("ХЕ12,345678"));
        assert!(index.contains_raw("4509 12345"));
        assert!(!index.contains_raw("ХЕ12 345679"));
        assert!(!index.contains_raw(""));
        assert_eq!(parse_passport_key("45 09 123456"), Some(4_509_123_456));
        assert_eq!(parse_passport_key("4509 12345"), None);
        assert_eq!(passport_key(10_000, 0), None);
        assert_eq!(passport_key(9999, 1_000_000), None);
        let rows: Vec<&[u8]> = index.malformed().collect();
        assert_eq!(rows, vec![&b"4509,12345"[..], "ХЕ12,345678".as_bytes()]);
    }

    #[test]
    fn save_load_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passports.idx");
        let mut b = PassportIndex::builder();
        let mut s = 3;
        for _ in 0..10_000 {
            b.push(lcg(&mut s) % U).unwrap();
        }
        b.push_malformed(b"45+09,123456");
        let index = b.build();
        index.save(&path).unwrap();
        let loaded = PassportIndex::load(&path).unwrap();
        assert_eq!(loaded, index);
        assert!(loaded.contains_raw("45+09,123456"));

        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() / 2]).unwrap();
        let err = PassportIndex::load(&path).unwrap_err();
        assert!(matches!(err, IndexFileError::Truncated { .. }), "{err}");

        for at in [40, good.len() / 2, good.len() - 20, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 0x04;
            std::fs::write(&path, &bad).unwrap();
            let err = PassportIndex::load(&path).unwrap_err();
            assert!(matches!(err, IndexFileError::ChecksumMismatch { .. }), "byte {at}: {err}");
        }

        // A taxpayer index is not a passport index.
        let other = dir.path().join("taxpayers.idx");
        crate::taxpayers::TaxpayerIndex::builder().build().save(&other).unwrap();
        let err = PassportIndex::load(&other).unwrap_err();
        assert!(matches!(err, IndexFileError::BadMagic { .. }), "{err}");
    }

    #[test]
    fn forged_files_are_refused_or_safe() {
        // The checksum is recomputed after each change, so only the structural
        // validation stands between the bytes and the lookups: every outcome
        // must be an error or an index whose lookups and iteration do not panic.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forged.idx");
        let mut s = 17;
        let mut b = PassportIndex::builder();
        for _ in 0..3000 {
            b.push(lcg(&mut s) % 3_000_000).unwrap();
        }
        for k in 1_000_000..1_010_000 {
            b.push(k).unwrap();
        }
        for k in (2_000_000..2_050_000).step_by(20) {
            b.push(k).unwrap();
        }
        b.push_malformed(b"AB12,123456");
        b.build().save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        let probes: Vec<u64> = (0..2000).map(|_| lcg(&mut s) % 3_000_000).collect();
        let (mut refused, mut accepted) = (0, 0);
        for round in 0..400 {
            let mut bad = good.clone();
            let at = 24 + (lcg(&mut s) as usize) % (bad.len() - 32);
            bad[at] ^= 1 << (round % 8);
            let n = bad.len();
            let sum = xxhash_rust::xxh3::xxh3_64(&bad[..n - 8]);
            bad[n - 8..].copy_from_slice(&sum.to_le_bytes());
            std::fs::write(&path, &bad).unwrap();
            match PassportIndex::load(&path) {
                Ok(index) => {
                    accepted += 1;
                    let found = probes.iter().filter(|&&k| index.contains(k)).count();
                    assert!(found <= probes.len());
                    assert_eq!(index.iter().count() as u64, index.len());
                }
                Err(IndexFileError::Corrupt { .. }) => refused += 1,
                Err(e) => panic!("unexpected error kind: {e}"),
            }
        }
        assert!(refused > 0 && accepted > 0, "refused {refused}, accepted {accepted}");
    }

    #[test]
    fn empty_index_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.idx");
        let index = PassportIndex::builder().build();
        index.save(&path).unwrap();
        assert_eq!(PassportIndex::load(&path).unwrap(), index);
    }

    proptest! {
        #[test]
        fn agrees_with_btreeset(
            singles in proptest::collection::vec(0..U, 0..300),
            runs in proptest::collection::vec((0..U - 5000, 1u64..3000), 0..4),
            probes in proptest::collection::vec(0..U, 0..200),
        ) {
            let mut keys = singles;
            for (start, len) in runs {
                keys.extend(start..start + len);
            }
            let set: BTreeSet<u64> = keys.iter().copied().collect();
            let index = PassportIndex::from_keys(keys.iter().copied()).unwrap();
            prop_assert_eq!(index.len(), set.len() as u64);
            for k in set.iter().copied().chain(probes) {
                prop_assert_eq!(index.contains(k), set.contains(&k));
                prop_assert_eq!(index.contains(k + 1), set.contains(&(k + 1)));
            }
        }
    }
}
