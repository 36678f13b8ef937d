//! The taxpayer index: which passports the tax service links to an INN.
//!
//! A person's INN has 12 digits (two check digits at the end) and stays the
//! same for life, while the passport changes (at 20 and 45, on loss, on a
//! name change), so one INN can be linked to several passports. The source
//! is a CSV of `inn,passport_number` pairs, ~50 million rows at full scale.
//!
//! # Layout
//!
//! The distinct pairs are sorted by `(inn, passport)`. Then:
//!
//! * the INN column (non-decreasing, with repeats) is one Elias–Fano
//!   sequence over the universe 10^12 (`ef.rs`): at 50 M pairs that is
//!   `l = 14` low bits plus ~2 bits of unary high part, ≈ 16.5 bits per pair;
//! * the passport column is a packed array of 34-bit integers
//!   (10^10 < 2^34) aligned with it, sorted within each INN.
//!
//! A lookup finds the index range of an INN with one Elias–Fano search
//! (the range of equal values inside its bucket) and reads or bisects the
//! passports of that range. Total ≈ 50.5 bits ≈ 6.3 bytes per pair, against
//! 16 bytes for a `Vec<(u64, u64)>`. Storing the INN once per pair instead of
//! once per person costs ~2 bits per extra passport and saves a rank/select
//! structure on a group-boundary bitvector: simpler, and size matters less
//! here than for the passport list.
//!
//! Rows that are not 12 digits, comma, 10 digits go to the same verbatim
//! malformed side set as in the passport index. Well-formed rows whose INN
//! fails its check digits are indexed (the tax service's data is the
//! authority) but counted in the import statistics.
//!
//! File: the common container with magic `O131INN\0`; body = Elias–Fano
//! section, distinct-INN count, passport column (width, length, word count,
//! words), malformed rows.

use std::num::NonZeroU64;
use std::path::Path;

use crate::bits::PackedInts;
use crate::ef::{EfBuilder, EfLayout, EliasFano};
use crate::format::{load_checked, save_atomic, CorruptBody, IndexFileError, TAXPAYER_MAGIC};
use crate::malformed::{match_key, strip_whitespace, MalformedSet};
use crate::passports::{parse_digits, PASSPORT_KEY_DIGITS, PASSPORT_KEY_UNIVERSE};
use crate::radix::radix_sort;

/// Exclusive upper bound of a 12-digit INN: 10^12.
pub const INN_UNIVERSE: u64 = 1_000_000_000_000;
const INN_UNIVERSE_NZ: NonZeroU64 = NonZeroU64::MIN.saturating_add(INN_UNIVERSE - 1);
/// Digits of a person's INN.
pub const INN_DIGITS: usize = 12;
/// Bits of a stored passport key (10^10 < 2^34).
pub const PASSPORT_KEY_BITS: u32 = 34;

/// An INN or passport key out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairOutOfRange {
    /// The INN has more than 12 digits.
    #[error("INN {0} has more than 12 digits")]
    Inn(u64),
    /// The passport key has more than 10 digits.
    #[error("passport key {0} has more than 10 digits")]
    Passport(u64),
}

/// The 12-digit INN made of `first_ten` (below 10^10) and its two check
/// digits; the rule itself lives once, in the domain (`Inn`).
pub fn inn12_with_check_digits(first_ten: u64) -> Option<u64> {
    open131_domain::ident::Inn::individual_from_first_ten(first_ten)
}

/// Whether a 12-digit INN has valid check digits.
pub fn inn12_is_valid(inn: u64) -> bool {
    inn < INN_UNIVERSE && inn12_with_check_digits(inn / 100) == Some(inn)
}

/// Collects pairs and malformed rows; [`TaxpayerIndexBuilder::build`] sorts,
/// de-duplicates and encodes them.
#[derive(Debug, Default, Clone)]
pub struct TaxpayerIndexBuilder {
    /// `inn << PASSPORT_KEY_BITS | passport`.
    pairs: Vec<u128>,
    malformed: Vec<Box<[u8]>>,
}

pub(crate) fn pack_pair(inn: u64, passport: u64) -> u128 {
    (u128::from(inn) << PASSPORT_KEY_BITS) | u128::from(passport)
}

impl TaxpayerIndexBuilder {
    /// An empty builder.
    pub fn new() -> TaxpayerIndexBuilder {
        TaxpayerIndexBuilder::default()
    }

    pub(crate) fn from_parts(pairs: Vec<u128>, malformed: Vec<Box<[u8]>>) -> TaxpayerIndexBuilder {
        TaxpayerIndexBuilder { pairs, malformed }
    }

    /// Adds a pair (any order, duplicates allowed).
    pub fn push(&mut self, inn: u64, passport: u64) -> Result<(), PairOutOfRange> {
        if inn >= INN_UNIVERSE {
            return Err(PairOutOfRange::Inn(inn));
        }
        if passport >= PASSPORT_KEY_UNIVERSE {
            return Err(PairOutOfRange::Passport(passport));
        }
        self.pairs.push(pack_pair(inn, passport));
        Ok(())
    }

    /// Adds a malformed row, kept verbatim except for whitespace.
    pub fn push_malformed(&mut self, raw: &[u8]) {
        self.malformed.push(strip_whitespace(raw).into_boxed_slice());
    }

    /// Sorts, de-duplicates and encodes.
    pub fn build(self) -> TaxpayerIndex {
        let TaxpayerIndexBuilder { mut pairs, malformed } = self;
        radix_sort(&mut pairs);
        pairs.dedup();
        let passport_mask = (1u128 << PASSPORT_KEY_BITS) - 1;
        let mut inns = EfBuilder::new(INN_UNIVERSE_NZ, pairs.len() as u64);
        let mut passports = PackedInts::with_capacity(PASSPORT_KEY_BITS, pairs.len() as u64);
        let mut distinct_inns = 0u64;
        let mut previous = None;
        for &p in &pairs {
            let inn = (p >> PASSPORT_KEY_BITS) as u64;
            if previous != Some(inn) {
                distinct_inns += 1;
                previous = Some(inn);
            }
            // Range-checked on push and sorted: the unchecked push is sound.
            inns.push_unchecked(inn);
            passports.push((p & passport_mask) as u64);
        }
        drop(pairs);
        passports.shrink_to_fit();
        TaxpayerIndex {
            inns: inns.finish_unchecked(),
            passports,
            distinct_inns,
            malformed: MalformedSet::from_rows(malformed),
        }
    }
}

/// An immutable set of `(inn, passport)` pairs plus the malformed rows of its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxpayerIndex {
    inns: EliasFano,
    passports: PackedInts,
    distinct_inns: u64,
    malformed: MalformedSet,
}

impl TaxpayerIndex {
    /// A builder.
    pub fn builder() -> TaxpayerIndexBuilder {
        TaxpayerIndexBuilder::new()
    }

    /// Builds from pairs in any order.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, u64)>) -> Result<TaxpayerIndex, PairOutOfRange> {
        let mut b = TaxpayerIndexBuilder::new();
        for (inn, passport) in pairs {
            b.push(inn, passport)?;
        }
        Ok(b.build())
    }

    /// Whether the INN is linked to at least one passport.
    pub fn contains_inn(&self, inn: u64) -> bool {
        !self.inns.equal_range(inn).is_empty()
    }

    /// Whether the INN is linked to this passport key.
    pub fn contains_pair(&self, inn: u64, passport: u64) -> bool {
        let range = self.inns.equal_range(inn);
        let i = self.passports.lower_bound(range.start, range.end, passport);
        i < range.end && self.passports.get(i) == passport
    }

    /// The passport keys linked to the INN, ascending.
    pub fn passports_of(&self, inn: u64) -> impl Iterator<Item = u64> + '_ {
        self.inns.equal_range(inn).map(|i| self.passports.get(i))
    }

    /// Whether a row written as text (`inn,passport`, whitespace and `,`
    /// ignored) is in the index, as a pair or as a malformed row.
    pub fn contains_raw(&self, raw: &str) -> bool {
        let key = match_key(raw.as_bytes());
        if key.len() == INN_DIGITS + PASSPORT_KEY_DIGITS {
            if let (Some(inn), Some(passport)) = (parse_digits(&key[..INN_DIGITS]), parse_digits(&key[INN_DIGITS..])) {
                if self.contains_pair(inn, passport) {
                    return true;
                }
            }
        }
        self.malformed.contains_key(&key)
    }

    /// Distinct pairs.
    pub fn len(&self) -> u64 {
        self.inns.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.inns.len() == 0
    }

    /// Distinct INNs.
    pub fn inn_count(&self) -> u64 {
        self.distinct_inns
    }

    /// Distinct malformed rows.
    pub fn malformed_len(&self) -> usize {
        self.malformed.len()
    }

    /// The malformed rows (whitespace removed), in byte order.
    pub fn malformed(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.malformed.rows()
    }

    /// Pairs in `(inn, passport)` order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (u64, u64)> + '_ {
        self.inns.iter().enumerate().map(|(i, inn)| (inn, self.passports.get(i as u64)))
    }

    /// Heap bytes of the structure.
    pub fn size_bytes(&self) -> usize {
        self.inns.size_bytes() + self.passports.size_bytes() + self.malformed.size_bytes()
    }

    /// Sizes of the Elias–Fano parts of the INN column.
    pub fn inn_layout(&self) -> EfLayout {
        self.inns.layout()
    }

    /// Writes the index atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IndexFileError> {
        let passport_words = self.passports.stored_words();
        let body_len =
            self.inns.encoded_len() + 8 + 3 * 8 + passport_words.len() as u64 * 8 + self.malformed.encoded_len();
        save_atomic(path.as_ref(), TAXPAYER_MAGIC, body_len, |w| {
            self.inns.write(w)?;
            w.write_u64(self.distinct_inns)?;
            w.write_u64(u64::from(self.passports.width()))?;
            w.write_u64(self.passports.len())?;
            w.write_u64(passport_words.len() as u64)?;
            w.write_words(passport_words)?;
            self.malformed.write(w)
        })
    }

    /// Reads an index written by [`TaxpayerIndex::save`], refusing corrupt,
    /// truncated or foreign files.
    pub fn load(path: impl AsRef<Path>) -> Result<TaxpayerIndex, IndexFileError> {
        load_checked(path.as_ref(), TAXPAYER_MAGIC, "taxpayer", |r| {
            let at = r.offset();
            let inns = EliasFano::read(r)?;
            if inns.universe() != INN_UNIVERSE {
                return Err(CorruptBody::new(at, format!("universe is {}, expected {INN_UNIVERSE}", inns.universe())));
            }
            let distinct_inns = r.read_u64()?;
            let at = r.offset();
            let width = r.read_u64()?;
            let len = r.read_u64()?;
            let words = r.read_u64()?;
            if width != u64::from(PASSPORT_KEY_BITS) || len != inns.len() {
                return Err(CorruptBody::new(
                    at,
                    format!(
                        "passport column has {len} values of {width} bits, expected {} of {PASSPORT_KEY_BITS}",
                        inns.len()
                    ),
                ));
            }
            let words = r.read_words(words)?;
            let passports = PackedInts::from_words(PASSPORT_KEY_BITS, len, words)
                .ok_or_else(|| CorruptBody::new(at, "passport column does not match its length"))?;
            if distinct_inns > len {
                return Err(CorruptBody::new(at, "more distinct INNs than pairs"));
            }
            let malformed = MalformedSet::read(r)?;
            Ok(TaxpayerIndex { inns, passports, distinct_inns, malformed })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn check_digits() {
        // Known valid person INNs (public examples of the algorithm).
        assert!(inn12_is_valid(500_100_732_259));
        assert!(inn12_is_valid(773_370_857_141));
        assert!(!inn12_is_valid(500_100_732_258));
        assert!(!inn12_is_valid(INN_UNIVERSE));
        assert_eq!(inn12_with_check_digits(5_001_007_322), Some(500_100_732_259));
        assert_eq!(inn12_with_check_digits(PASSPORT_KEY_UNIVERSE), None);
    }

    #[test]
    fn pair_lookups_agree_with_btreeset() {
        let mut s = 5u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s >> 11
        };
        let mut pairs = Vec::new();
        for i in 0..20_000u64 {
            let inn = if i % 3 == 0 { next() % 1000 } else { next() % INN_UNIVERSE };
            for _ in 0..1 + next() % 3 {
                pairs.push((inn, next() % PASSPORT_KEY_UNIVERSE));
            }
        }
        pairs.push((0, 0));
        pairs.push((INN_UNIVERSE - 1, PASSPORT_KEY_UNIVERSE - 1));
        pairs.push((0, 0));
        let set: BTreeSet<(u64, u64)> = pairs.iter().copied().collect();
        let index = TaxpayerIndex::from_pairs(pairs.iter().copied()).unwrap();
        assert_eq!(index.len(), set.len() as u64);
        let inns: BTreeSet<u64> = set.iter().map(|p| p.0).collect();
        assert_eq!(index.inn_count(), inns.len() as u64);
        assert_eq!(index.iter().collect::<Vec<_>>(), set.iter().copied().collect::<Vec<_>>());
        for &(inn, passport) in set.iter().step_by(7) {
            assert!(index.contains_inn(inn));
            assert!(index.contains_pair(inn, passport));
            assert_eq!(index.contains_pair(inn, passport + 1), set.contains(&(inn, passport + 1)));
            let expect: Vec<u64> = set.range((inn, 0)..=(inn, u64::MAX)).map(|p| p.1).collect();
            assert_eq!(index.passports_of(inn).collect::<Vec<_>>(), expect);
            assert_eq!(index.contains_inn(inn + 1), inns.contains(&(inn + 1)));
        }
        assert!(!index.contains_inn(INN_UNIVERSE));
        assert!(!index.contains_pair(INN_UNIVERSE, 0));
        assert_eq!(index.passports_of(INN_UNIVERSE).count(), 0);
        assert!(index.contains_raw("000000000000, 0000000000"));
        assert_eq!(TaxpayerIndex::from_pairs([(INN_UNIVERSE, 0)]), Err(PairOutOfRange::Inn(INN_UNIVERSE)));
        assert_eq!(
            TaxpayerIndex::from_pairs([(0, PASSPORT_KEY_UNIVERSE)]),
            Err(PairOutOfRange::Passport(PASSPORT_KEY_UNIVERSE))
        );
    }

    #[test]
    fn save_load_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.idx");
        let mut b = TaxpayerIndex::builder();
        b.push(500_100_732_259, 4_509_123_456).unwrap();
        b.push(500_100_732_259, 4_510_000_001).unwrap();
        b.push(773_370_857_141, 101_000_007).unwrap();
        b.push_malformed(b"77337085714,4509123456");
        let index = b.build();
        assert_eq!(index.len(), 3);
        assert_eq!(index.inn_count(), 2);
        index.save(&path).unwrap();
        let loaded = TaxpayerIndex::load(&path).unwrap();
        assert_eq!(loaded, index);
        assert_eq!(loaded.passports_of(500_100_732_259).collect::<Vec<_>>(), vec![4_509_123_456, 4_510_000_001]);
        assert!(loaded.contains_raw("77337085714 4509123456"));
        assert!(loaded.contains_raw("773370857141,0101000007"));
        assert!(!loaded.contains_raw("773370857141,0101000008"));

        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(matches!(TaxpayerIndex::load(&path), Err(IndexFileError::Truncated { .. })));
        let mut bad = good.clone();
        bad[60] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(matches!(TaxpayerIndex::load(&path), Err(IndexFileError::ChecksumMismatch { .. })));
    }
}
