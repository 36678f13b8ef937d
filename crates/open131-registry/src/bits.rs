//! Bit-level building blocks: in-word select and fixed-width packed integers.
//!
//! Everything here is plain safe Rust on `u64` words. The crate is compiled
//! for the baseline x86-64 target (no `popcnt`/`bmi2` guaranteed, and the
//! intrinsics would need `unsafe`), so in-word select uses Vigna's broadword
//! algorithm ("Broadword Implementation of Rank/Select Queries", 2008): a
//! handful of multiplications and a 2 KiB lookup table, with no data-dependent
//! branches. Packed integers are stored little-endian inside `u64` words and
//! always keep one zero padding word at the end, so reading any value is two
//! unconditional word loads and a shift.

/// Fewest words a [`PackedInts`] holds (so that `get` can read two words).
const PADDED_MIN_WORDS: usize = 2;
/// Bits in one storage word.
pub(crate) const WORD_BITS: u64 = 64;

const ONES_STEP_8: u64 = 0x0101_0101_0101_0101;
const MSBS_STEP_8: u64 = 0x8080_8080_8080_8080;

/// `SELECT_IN_BYTE[byte * 8 + k]` is the position of the `k`-th set bit of `byte` (8 when absent).
static SELECT_IN_BYTE: [u8; 256 * 8] = build_select_in_byte();

const fn build_select_in_byte() -> [u8; 256 * 8] {
    let mut table = [8u8; 256 * 8];
    let mut byte = 0;
    while byte < 256 {
        let mut seen = 0;
        let mut bit = 0;
        while bit < 8 {
            if byte & (1 << bit) != 0 {
                table[byte * 8 + seen] = bit as u8;
                seen += 1;
            }
            bit += 1;
        }
        byte += 1;
    }
    table
}

/// Position (0..64) of the `k`-th (0-based) set bit of `x`.
///
/// The caller guarantees `k < x.count_ones()`; otherwise the result is
/// meaningless (but still in 0..=71, never a panic in release builds).
#[inline]
pub(crate) fn select_in_word(x: u64, k: u64) -> u64 {
    debug_assert!(k < u64::from(x.count_ones()));
    // Byte-wise popcounts, then inclusive prefix sums of them in every byte.
    let mut s = x - ((x >> 1) & 0x5555_5555_5555_5555);
    s = (s & 0x3333_3333_3333_3333) + ((s >> 2) & 0x3333_3333_3333_3333);
    s = (s + (s >> 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    let prefix = s.wrapping_mul(ONES_STEP_8);
    // A byte's MSB is set where prefix <= k (all values are < 128, so no borrows cross bytes).
    let le = ((k.wrapping_mul(ONES_STEP_8) | MSBS_STEP_8) - prefix) & MSBS_STEP_8;
    // Number of bytes entirely before the target bit, times 8.
    let place = ((le >> 7).wrapping_mul(ONES_STEP_8) >> 53) & !7;
    let before = ((prefix << 8) >> place) & 0xFF;
    let byte = (x >> place) & 0xFF;
    let index = (byte * 8).wrapping_add(k.wrapping_sub(before)) as usize & (SELECT_IN_BYTE.len() - 1);
    place + u64::from(SELECT_IN_BYTE[index])
}

/// Mask with the low `width` bits set (`width` in 0..=64).
#[inline]
pub(crate) fn low_mask(width: u32) -> u64 {
    if width == 0 {
        0
    } else {
        u64::MAX >> (64 - width)
    }
}

/// Number of `u64` words needed for `bits` bits.
#[inline]
pub(crate) fn words_for_bits(bits: u64) -> u64 {
    bits.div_ceil(WORD_BITS)
}

/// A vector of `len` unsigned integers of `width` bits each, packed into words.
///
/// Invariant: `words.len() >= max(words_for_bits(len * width) + 1, 2)`; every
/// word and bit past `len * width` is zero, so `get` may always read two words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackedInts {
    width: u32,
    len: u64,
    words: Vec<u64>,
}

impl PackedInts {
    /// An empty vector able to hold `capacity` values of `width` bits without reallocating.
    pub(crate) fn with_capacity(width: u32, capacity: u64) -> PackedInts {
        debug_assert!(width <= 64);
        let words = words_for_bits(capacity.saturating_mul(u64::from(width))) + 1;
        let mut v = Vec::with_capacity(usize::try_from(words).unwrap_or(0).max(PADDED_MIN_WORDS));
        v.resize(PADDED_MIN_WORDS, 0);
        PackedInts { width, len: 0, words: v }
    }

    /// Rebuilds from stored words (without the padding word); `None` when the
    /// word count or the unused tail bits do not match `len` and `width`.
    pub(crate) fn from_words(width: u32, len: u64, mut words: Vec<u64>) -> Option<PackedInts> {
        if width > 64 {
            return None;
        }
        let bits = len.checked_mul(u64::from(width))?;
        if words.len() as u64 != words_for_bits(bits) {
            return None;
        }
        let tail = bits % WORD_BITS;
        if tail != 0 {
            let last = *words.last()?;
            if last >> tail != 0 {
                return None;
            }
        }
        words.reserve_exact(PADDED_MIN_WORDS);
        words.push(0);
        if words.len() < PADDED_MIN_WORDS {
            words.resize(PADDED_MIN_WORDS, 0);
        }
        Some(PackedInts { width, len, words })
    }

    /// Appends `value`, which must fit in `width` bits (higher bits are dropped).
    #[inline]
    pub(crate) fn push(&mut self, value: u64) {
        let width = u64::from(self.width);
        if width == 0 {
            self.len += 1;
            return;
        }
        let value = value & low_mask(self.width);
        let bit = self.len * width;
        let word = (bit / WORD_BITS) as usize;
        let offset = bit % WORD_BITS;
        // Keep one zero padding word after the last word this value touches.
        let needed = ((bit + width - 1) / WORD_BITS) as usize + 2;
        while self.words.len() < needed {
            self.words.push(0);
        }
        self.words[word] |= value << offset;
        if offset + width > WORD_BITS {
            self.words[word + 1] |= value >> (WORD_BITS - offset);
        }
        self.len += 1;
    }

    /// Value at `index` (the caller guarantees `index < len`).
    #[inline]
    pub(crate) fn get(&self, index: u64) -> u64 {
        let bit = index * u64::from(self.width);
        let word = (bit / WORD_BITS) as usize;
        let offset = bit % WORD_BITS;
        let lo = self.words[word] >> offset;
        // Two shifts so that offset 0 yields 0 instead of an overflowing shift by 64.
        let hi = (self.words[word + 1] << 1) << (WORD_BITS - 1 - offset);
        (lo | hi) & low_mask(self.width)
    }

    /// Number of values.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bits per value.
    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    /// Storage words without the padding word (what is written to disk).
    pub(crate) fn stored_words(&self) -> &[u64] {
        &self.words[..words_for_bits(self.len * u64::from(self.width)) as usize]
    }

    /// Heap bytes held.
    pub(crate) fn size_bytes(&self) -> usize {
        self.words.capacity() * 8
    }

    /// Releases spare capacity after building.
    pub(crate) fn shrink_to_fit(&mut self) {
        let needed = (words_for_bits(self.len * u64::from(self.width)) + 1) as usize;
        self.words.resize(needed.max(PADDED_MIN_WORDS), 0);
        self.words.shrink_to_fit();
    }

    /// Index of the first value in `range` that is `>= target`, assuming the
    /// values in `range` are non-decreasing (`range.end` when none is).
    #[inline]
    pub(crate) fn lower_bound(&self, mut lo: u64, mut hi: u64, target: u64) -> u64 {
        while hi - lo > LINEAR_SEARCH_MAX_VALUES {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid) < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        while lo < hi && self.get(lo) < target {
            lo += 1;
        }
        lo
    }
}

/// Below this many candidates a sorted packed range is scanned linearly
/// instead of bisected (fewer unpredictable branches, same cache lines).
pub(crate) const LINEAR_SEARCH_MAX_VALUES: u64 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_select(x: u64, k: u64) -> u64 {
        let mut seen = 0;
        for bit in 0..64 {
            if x & (1 << bit) != 0 {
                if seen == k {
                    return bit;
                }
                seen += 1;
            }
        }
        unreachable!()
    }

    #[test]
    fn select_in_word_matches_naive() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut words = vec![1, u64::MAX, 1 << 63, 0x8000_0000_0000_0001, 0xFF00_0000_0000_0000];
        for _ in 0..2000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            words.push(state);
            words.push(state & (state >> 7) & (state >> 13));
        }
        for x in words {
            for k in 0..u64::from(x.count_ones()) {
                assert_eq!(select_in_word(x, k), naive_select(x, k), "x={x:#x} k={k}");
            }
        }
    }

    #[test]
    fn packed_ints_round_trip_all_widths() {
        for width in 0..=64u32 {
            let mut p = PackedInts::with_capacity(width, 10);
            let values: Vec<u64> =
                (0..200u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & low_mask(width)).collect();
            for &v in &values {
                p.push(v);
            }
            for (i, &v) in values.iter().enumerate() {
                assert_eq!(p.get(i as u64), v, "width {width} index {i}");
            }
            let again = PackedInts::from_words(width, p.len(), p.stored_words().to_vec()).unwrap();
            assert_eq!(again, p);
        }
    }

    #[test]
    fn packed_ints_reject_dirty_tail() {
        let mut p = PackedInts::with_capacity(3, 2);
        p.push(5);
        let mut words = p.stored_words().to_vec();
        words[0] |= 1 << 40;
        assert!(PackedInts::from_words(3, 1, words).is_none());
        assert!(PackedInts::from_words(3, 1, vec![]).is_none());
    }

    #[test]
    fn lower_bound_finds_first_not_less() {
        let mut p = PackedInts::with_capacity(7, 100);
        let values: Vec<u64> = (0..100).map(|i| i / 3).collect();
        for &v in &values {
            p.push(v);
        }
        for t in 0..40 {
            let expect = values.iter().position(|&v| v >= t).unwrap_or(values.len()) as u64;
            assert_eq!(p.lower_bound(0, 100, t), expect);
        }
    }
}
