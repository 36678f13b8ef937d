//! Elias–Fano encoding of a non-decreasing sequence of integers below a
//! universe `U`, with a select-0 directory for membership lookups.
//!
//! Used for the taxpayer index's INN column, a *multiset* (an INN repeats
//! once per linked passport) whose lookups must return index ranges into the
//! parallel passport column, which the blocked set of `blocked.rs` cannot.
//!
//! # Layout
//!
//! Each value `v` of the `n` values is split into `l = floor(log2(U / n))`
//! low bits and the high part `h = v >> l`:
//!
//! * `lower` holds the `n` low parts as packed `l`-bit integers, in order;
//! * `upper` is a bitvector in which value number `i` sets bit `h + i`. Read
//!   as unary codes, every *bucket* `h` (all values sharing a high part) is a
//!   run of ones terminated by one zero, so `upper` has `n` ones and
//!   `B = ((U - 1) >> l) + 1` zeros: about `n * (2 + l)` bits in total, within
//!   two bits per value of the information-theoretic minimum.
//!
//! Membership of `key` needs the bucket `h = key >> l`: its first value has
//! index `select0(h - 1) + 1 - h` (the position just after the previous
//! bucket's terminating zero, minus the zeros before it), and its length is
//! the run of ones that starts there. The low parts of the bucket are then a
//! short sorted range of `lower`, scanned or bisected.
//!
//! # The select-0 directory (and why it has two levels)
//!
//! A plain "position of every S-th zero" sample is not enough for clustered
//! data: where keys are dense, buckets are full (`2^l` ones per zero), so S
//! zeros can span `(2^l + 1) * S` bits and the scan from a sample would read
//! kilobytes. Instead the directory stores:
//!
//! * `zeros_before[b]`: zeros before superblock `b` (`SUPERBLOCK_WORDS` words,
//!   512 bits); this bounds the final scan to at most 8 words wherever the
//!   zeros are;
//! * `select0_hints[j]`: the superblock holding zero number
//!   `j * SELECT0_SAMPLE_EVERY_ZEROS`, so the superblock of any zero is found
//!   by a linear step (sparse regions: the two hints are usually 1–2
//!   superblocks apart) or a short bisection (dense regions).
//!
//! Together they cost about 64 bits per 512 bits of `upper` plus 64 bits per
//! 512 zeros, i.e. ~0.3 bits per value, and a lookup touches one hint, one or
//! two cache lines of `zeros_before`, one or two lines of `upper` and one or
//! two lines of `lower`.
//!
//! The directory is derived data: it is rebuilt on load instead of being
//! stored, which keeps the file small and guarantees that a loaded structure
//! is internally consistent (no lookup can index out of bounds, whatever the
//! file said).

#[cfg(test)]
use std::fmt;
use std::num::NonZeroU64;
use std::ops::Range;

use crate::bits::{low_mask, select_in_word, words_for_bits, PackedInts, WORD_BITS};
use crate::format::{BodyReader, BodyWriter, CorruptBody};

/// Words of `upper` per superblock of the select-0 directory (512 bits: one cache line).
pub(crate) const SUPERBLOCK_WORDS: usize = 8;
/// One select-0 hint per this many zeros of `upper`.
pub(crate) const SELECT0_SAMPLE_EVERY_ZEROS: u64 = 512;
/// When two hints are at most this many superblocks apart, step linearly instead of bisecting.
const SUPERBLOCK_LINEAR_STEPS_MAX: usize = 4;
/// Largest `l` accepted from a file (values are below 2^64).
const LOW_BITS_MAX: u32 = 63;
/// Number of `u64` fields in the stored header of an Elias–Fano section.
const STORED_FIELDS: u64 = 5;

/// Why a sequence could not be encoded (the checked path is used by tests;
/// the builders feed sorted, range-checked values to the unchecked path).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EfError {
    /// A value is not below the universe.
    OutOfRange { value: u64, universe: u64 },
    /// A value is smaller than its predecessor.
    NotSorted { index: u64, value: u64, previous: u64 },
    /// More or fewer values were pushed than announced.
    CountMismatch { expected: u64, actual: u64 },
}

#[cfg(test)]
impl fmt::Display for EfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EfError::OutOfRange { value, universe } => write!(f, "value {value} is not below the universe {universe}"),
            EfError::NotSorted { index, value, previous } => {
                write!(f, "value {value} at index {index} is smaller than its predecessor {previous}")
            }
            EfError::CountMismatch { expected, actual } => write!(f, "expected {expected} values, got {actual}"),
        }
    }
}

#[cfg(test)]
impl std::error::Error for EfError {}

/// Low-part width for `len` values below `universe`: `floor(log2(universe / len))`.
pub(crate) fn low_bits_for(universe: u64, len: u64) -> u32 {
    let ratio = universe / len.max(1);
    if ratio <= 1 {
        0
    } else {
        63 - ratio.leading_zeros()
    }
}

/// Number of buckets (distinct high parts) for `universe` and `low_bits`.
fn bucket_count(universe: u64, low_bits: u32) -> u64 {
    ((universe - 1) >> low_bits) + 1
}

/// Sizes of the parts of an Elias–Fano sequence (the taxpayer INN column), for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EfLayout {
    /// Values stored.
    pub len: u64,
    /// Width `l` of the low parts, in bits.
    pub low_bits: u32,
    /// Heap bytes of the upper (unary) bitvector.
    pub upper_bytes: usize,
    /// Heap bytes of the packed low parts.
    pub lower_bytes: usize,
    /// Heap bytes of the select-0 directory.
    pub directory_bytes: usize,
}

/// Incremental encoder: values are pushed in non-decreasing order.
pub(crate) struct EfBuilder {
    universe: u64,
    expected: u64,
    low_bits: u32,
    upper: Vec<u64>,
    lower: PackedInts,
    pushed: u64,
    last: u64,
}

impl EfBuilder {
    /// Prepares for exactly `len` values below `universe`.
    pub(crate) fn new(universe: NonZeroU64, len: u64) -> EfBuilder {
        let universe = universe.get();
        let low_bits = low_bits_for(universe, len);
        let upper_bits = len + bucket_count(universe, low_bits);
        // One extra zero word so every scan that reads `word + 1` stays in bounds.
        let upper = vec![0u64; (words_for_bits(upper_bits) + 1) as usize];
        let lower = PackedInts::with_capacity(low_bits, len);
        EfBuilder { universe, expected: len, low_bits, upper, lower, pushed: 0, last: 0 }
    }

    /// Appends the next value, checking it.
    #[cfg(test)]
    pub(crate) fn push(&mut self, value: u64) -> Result<(), EfError> {
        if value >= self.universe {
            return Err(EfError::OutOfRange { value, universe: self.universe });
        }
        if value < self.last {
            return Err(EfError::NotSorted { index: self.pushed, value, previous: self.last });
        }
        if self.pushed >= self.expected {
            return Err(EfError::CountMismatch { expected: self.expected, actual: self.pushed + 1 });
        }
        self.push_unchecked(value);
        Ok(())
    }

    /// Appends the next value without validating it: the caller guarantees
    /// that values are non-decreasing, below the universe and not more than
    /// announced (a violation can only panic on an index or build a wrong
    /// sequence, never break memory safety).
    #[inline]
    pub(crate) fn push_unchecked(&mut self, value: u64) {
        debug_assert!(value < self.universe && value >= self.last && self.pushed < self.expected);
        let pos = (value >> self.low_bits) + self.pushed;
        self.upper[(pos / WORD_BITS) as usize] |= 1 << (pos % WORD_BITS);
        self.lower.push(value);
        self.pushed += 1;
        self.last = value;
    }

    /// Finishes the encoding, checking the count.
    #[cfg(test)]
    pub(crate) fn finish(self) -> Result<EliasFano, EfError> {
        if self.pushed != self.expected {
            return Err(EfError::CountMismatch { expected: self.expected, actual: self.pushed });
        }
        Ok(self.finish_unchecked())
    }

    /// Finishes an encoding whose values were all pushed (see [`EfBuilder::push_unchecked`]).
    pub(crate) fn finish_unchecked(mut self) -> EliasFano {
        debug_assert_eq!(self.pushed, self.expected);
        self.lower.shrink_to_fit();
        EliasFano::with_directory(self.universe, self.pushed, self.low_bits, self.upper, self.lower)
    }
}

/// An immutable Elias–Fano sequence (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EliasFano {
    universe: u64,
    len: u64,
    low_bits: u32,
    buckets: u64,
    /// `len + buckets` bits plus one zero padding word.
    upper: Vec<u64>,
    lower: PackedInts,
    zeros_before: Vec<u64>,
    select0_hints: Vec<u64>,
}

impl EliasFano {
    /// Encodes a sorted slice, checking it.
    #[cfg(test)]
    pub(crate) fn from_sorted(universe: NonZeroU64, values: &[u64]) -> Result<EliasFano, EfError> {
        let mut b = EfBuilder::new(universe, values.len() as u64);
        for &v in values {
            b.push(v)?;
        }
        b.finish()
    }

    fn with_directory(universe: u64, len: u64, low_bits: u32, upper: Vec<u64>, lower: PackedInts) -> EliasFano {
        let buckets = bucket_count(universe, low_bits);
        let mut zeros_before = Vec::with_capacity(upper.len().div_ceil(SUPERBLOCK_WORDS));
        let mut zeros = 0u64;
        for chunk in upper.chunks(SUPERBLOCK_WORDS) {
            zeros_before.push(zeros);
            zeros += chunk.iter().map(|w| u64::from((!w).count_ones())).sum::<u64>();
        }
        let superblocks = zeros_before.len();
        let hint_count = buckets.div_ceil(SELECT0_SAMPLE_EVERY_ZEROS) as usize + 1;
        let mut select0_hints = Vec::with_capacity(hint_count);
        let mut sb = 0usize;
        for j in 0..hint_count - 1 {
            let target = j as u64 * SELECT0_SAMPLE_EVERY_ZEROS;
            while sb + 1 < superblocks && zeros_before[sb + 1] <= target {
                sb += 1;
            }
            select0_hints.push(sb as u64);
        }
        select0_hints.push(superblocks.saturating_sub(1) as u64);
        EliasFano { universe, len, low_bits, buckets, upper, lower, zeros_before, select0_hints }
    }

    /// Number of values.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Exclusive upper bound of the values.
    pub(crate) fn universe(&self) -> u64 {
        self.universe
    }

    /// Position in `upper` of zero number `k` (`k < buckets`).
    #[inline]
    fn select0(&self, k: u64) -> u64 {
        let j = (k / SELECT0_SAMPLE_EVERY_ZEROS) as usize;
        let mut sb = self.select0_hints[j] as usize;
        let last = self.select0_hints[j + 1] as usize;
        if last - sb > SUPERBLOCK_LINEAR_STEPS_MAX {
            // Largest superblock in [sb, last] with zeros_before <= k.
            let mut hi = last;
            while sb < hi {
                let mid = sb + (hi - sb).div_ceil(2);
                if self.zeros_before[mid] <= k {
                    sb = mid;
                } else {
                    hi = mid - 1;
                }
            }
        } else {
            while sb < last && self.zeros_before[sb + 1] <= k {
                sb += 1;
            }
        }
        let mut remaining = k - self.zeros_before[sb];
        let mut w = sb * SUPERBLOCK_WORDS;
        loop {
            let zeros = !self.upper[w];
            let count = u64::from(zeros.count_ones());
            if remaining < count {
                return w as u64 * WORD_BITS + select_in_word(zeros, remaining);
            }
            remaining -= count;
            w += 1;
        }
    }

    /// Length of the run of ones in `upper` starting at bit `pos`.
    #[inline]
    fn ones_run(&self, pos: u64) -> u64 {
        let mut w = (pos / WORD_BITS) as usize;
        let offset = pos % WORD_BITS;
        let first = u64::from((!(self.upper[w] >> offset)).trailing_zeros());
        if first < WORD_BITS - offset {
            return first;
        }
        let mut run = first;
        loop {
            w += 1;
            let word = self.upper[w];
            if word != u64::MAX {
                return run + u64::from((!word).trailing_zeros());
            }
            run += WORD_BITS;
        }
    }

    /// Index range of the values whose high part is `h` (`h < buckets`).
    #[inline]
    fn bucket(&self, h: u64) -> Range<u64> {
        let start = if h == 0 { 0 } else { self.select0(h - 1) + 1 };
        let first = start - h;
        first..first + self.ones_run(start)
    }

    /// Membership test, valid when the values are strictly increasing (a set).
    #[cfg(test)]
    pub(crate) fn contains_in_set(&self, key: u64) -> bool {
        if key >= self.universe {
            return false;
        }
        let bucket = self.bucket(key >> self.low_bits);
        let count = bucket.end - bucket.start;
        if count == 0 {
            return false;
        }
        // A set's bucket holding all 2^l low parts contains every key of its range
        // (the common case inside a stolen batch).
        if self.low_bits < 64 && count == 1u64 << self.low_bits {
            return true;
        }
        let low = key & low_mask(self.low_bits);
        let i = self.lower.lower_bound(bucket.start, bucket.end, low);
        i < bucket.end && self.lower.get(i) == low
    }

    /// Index range of the values equal to `key` (empty when absent); works for multisets.
    #[inline]
    pub(crate) fn equal_range(&self, key: u64) -> Range<u64> {
        if key >= self.universe {
            return 0..0;
        }
        let bucket = self.bucket(key >> self.low_bits);
        if bucket.is_empty() {
            return bucket.start..bucket.start;
        }
        let low = key & low_mask(self.low_bits);
        let start = self.lower.lower_bound(bucket.start, bucket.end, low);
        let mut end = start;
        while end < bucket.end && self.lower.get(end) == low {
            end += 1;
        }
        start..end
    }

    /// Values in order.
    pub(crate) fn iter(&self) -> EfIter<'_> {
        EfIter { ef: self, index: 0, word_index: 0, word: self.upper.first().copied().unwrap_or(0) }
    }

    /// Heap bytes held.
    pub(crate) fn size_bytes(&self) -> usize {
        let l = self.layout();
        l.upper_bytes + l.lower_bytes + l.directory_bytes
    }

    /// Sizes of the parts.
    pub(crate) fn layout(&self) -> EfLayout {
        EfLayout {
            len: self.len,
            low_bits: self.low_bits,
            upper_bytes: self.upper.capacity() * 8,
            lower_bytes: self.lower.size_bytes(),
            directory_bytes: (self.zeros_before.capacity() + self.select0_hints.capacity()) * 8,
        }
    }

    /// Bytes [`EliasFano::write`] produces.
    pub(crate) fn encoded_len(&self) -> u64 {
        (STORED_FIELDS + self.upper.len() as u64 - 1 + self.lower.stored_words().len() as u64) * 8
    }

    /// Writes the essential parts (the directory is rebuilt on load).
    pub(crate) fn write<W: std::io::Write>(&self, w: &mut BodyWriter<W>) -> std::io::Result<()> {
        let upper = &self.upper[..self.upper.len() - 1];
        let lower = self.lower.stored_words();
        w.write_u64(self.universe)?;
        w.write_u64(self.len)?;
        w.write_u64(u64::from(self.low_bits))?;
        w.write_u64(upper.len() as u64)?;
        w.write_u64(lower.len() as u64)?;
        w.write_words(upper)?;
        w.write_words(lower)
    }

    /// Reads what [`EliasFano::write`] wrote and checks it is a well-formed encoding.
    pub(crate) fn read(r: &mut BodyReader<'_>) -> Result<EliasFano, CorruptBody> {
        let at = r.offset();
        let universe = r.read_u64()?;
        let len = r.read_u64()?;
        let low_bits = r.read_u64()?;
        let upper_words = r.read_u64()?;
        let lower_words = r.read_u64()?;
        if universe == 0 {
            return Err(CorruptBody::new(at, "Elias-Fano universe is 0"));
        }
        if low_bits > u64::from(LOW_BITS_MAX) {
            return Err(CorruptBody::new(at, format!("Elias-Fano low-bit width {low_bits} is too large")));
        }
        let low_bits = low_bits as u32;
        let upper_bits = len
            .checked_add(bucket_count(universe, low_bits))
            .ok_or_else(|| CorruptBody::new(at, "Elias-Fano length overflows"))?;
        if upper_words != words_for_bits(upper_bits) {
            return Err(CorruptBody::new(
                at,
                format!("Elias-Fano upper part has {upper_words} words, expected {}", words_for_bits(upper_bits)),
            ));
        }
        let upper_at = r.offset();
        let mut upper = r.read_words(upper_words)?;
        let lower_at = r.offset();
        let lower_words_vec = r.read_words(lower_words)?;
        let lower = PackedInts::from_words(low_bits, len, lower_words_vec)
            .ok_or_else(|| CorruptBody::new(lower_at, "Elias-Fano lower part does not match its length"))?;
        let tail = upper_bits % WORD_BITS;
        if tail != 0 && upper.last().is_some_and(|w| w >> tail != 0) {
            return Err(CorruptBody::new(upper_at, "Elias-Fano upper part has bits past its end"));
        }
        let ones: u64 = upper.iter().map(|w| u64::from(w.count_ones())).sum();
        if ones != len {
            return Err(CorruptBody::new(upper_at, format!("Elias-Fano upper part has {ones} ones, expected {len}")));
        }
        upper.reserve_exact(1);
        upper.push(0);
        Ok(EliasFano::with_directory(universe, len, low_bits, upper, lower))
    }
}

/// Iterator over the values of an [`EliasFano`] in order.
pub(crate) struct EfIter<'a> {
    ef: &'a EliasFano,
    index: u64,
    word_index: usize,
    word: u64,
}

impl Iterator for EfIter<'_> {
    type Item = u64;

    #[inline]
    fn next(&mut self) -> Option<u64> {
        if self.index >= self.ef.len {
            return None;
        }
        while self.word == 0 {
            self.word_index += 1;
            self.word = self.ef.upper[self.word_index];
        }
        let pos = self.word_index as u64 * WORD_BITS + u64::from(self.word.trailing_zeros());
        self.word &= self.word - 1;
        let high = pos - self.index;
        let value = (high << self.ef.low_bits) | self.ef.lower.get(self.index);
        self.index += 1;
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.ef.len - self.index) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for EfIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn check_set(universe: u64, set: &BTreeSet<u64>, probes: &[u64]) {
        let values: Vec<u64> = set.iter().copied().collect();
        let ef = EliasFano::from_sorted(NonZeroU64::new(universe).unwrap(), &values).unwrap();
        assert_eq!(ef.len(), values.len() as u64);
        assert_eq!(ef.iter().collect::<Vec<_>>(), values);
        for &v in &values {
            assert!(ef.contains_in_set(v), "missing {v}");
        }
        for &p in probes {
            assert_eq!(ef.contains_in_set(p), set.contains(&p), "probe {p}");
        }
    }

    #[test]
    fn empty_and_single_values() {
        let u = 10_000_000_000;
        check_set(u, &BTreeSet::new(), &[0, 1, u - 1, u, u64::MAX]);
        check_set(u, &[0].into(), &[0, 1, u - 1, u]);
        check_set(u, &[u - 1].into(), &[0, u - 2, u - 1, u]);
        check_set(1, &[0].into(), &[0, 1]);
        check_set(1, &BTreeSet::new(), &[0, 1]);
    }

    #[test]
    fn dense_runs_and_full_universe() {
        let all: BTreeSet<u64> = (0..5000).collect();
        check_set(5000, &all, &[0, 4999, 5000]);
        let runs: BTreeSet<u64> = (1000..70_000).chain(900_000..990_000).chain([5_000_000, 9_999_999]).collect();
        let probes: Vec<u64> = (0..10_000_000).step_by(997).chain([999, 1000, 69_999, 70_000, 9_999_999]).collect();
        check_set(10_000_000, &runs, &probes);
    }

    #[test]
    fn rejects_bad_input() {
        let ten = NonZeroU64::new(10).unwrap();
        assert_eq!(EliasFano::from_sorted(ten, &[10]), Err(EfError::OutOfRange { value: 10, universe: 10 }));
        assert_eq!(EliasFano::from_sorted(ten, &[5, 4]), Err(EfError::NotSorted { index: 1, value: 4, previous: 5 }));
        let b = EfBuilder::new(ten, 2);
        assert_eq!(b.finish().err(), Some(EfError::CountMismatch { expected: 2, actual: 0 }));
        let mut b = EfBuilder::new(ten, 1);
        b.push(3).unwrap();
        assert_eq!(b.push(4), Err(EfError::CountMismatch { expected: 1, actual: 2 }));
    }

    #[test]
    fn multiset_equal_ranges() {
        let values = [3u64, 3, 3, 7, 100, 100, 1 << 30, (1 << 30) + 1, (1 << 30) + 1];
        let ef = EliasFano::from_sorted(NonZeroU64::new(1 << 40).unwrap(), &values).unwrap();
        for probe in [0u64, 3, 4, 7, 100, 101, 1 << 30, (1 << 30) + 1, (1 << 30) + 2, 1 << 41] {
            let expect: Vec<u64> = (0..values.len() as u64).filter(|&i| values[i as usize] == probe).collect();
            let got: Vec<u64> = ef.equal_range(probe).collect();
            assert_eq!(got, expect, "probe {probe}");
        }
    }

    #[test]
    fn low_bits_choice() {
        assert_eq!(low_bits_for(10_000_000_000, 137_000_000), 6);
        assert_eq!(low_bits_for(10_000_000_000, 0), 33);
        assert_eq!(low_bits_for(10, 100), 0);
        assert_eq!(low_bits_for(1_000_000_000_000, 50_000_000), 14);
    }
}
