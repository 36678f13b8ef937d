//! LSD radix sort for the builders.
//!
//! Sorting dominates building: 137 million passport keys are 1.1 GB of
//! `u64`. The keys only use their low 34 bits (10^10 < 2^34), so a
//! least-significant-digit radix sort needs only `ceil(34 / 11) = 4` passes
//! of a histogram-and-scatter, each a sequential read and a 2048-way write,
//! and is several times faster than a comparison sort at this size. Passes
//! in which every key has the same digit are skipped, and the number of
//! passes follows the largest key, so taxpayer pairs (74 significant bits in
//! a `u128`) use the same code. It costs one scratch buffer as large as the
//! input, which the build can afford (the machine budget is 24 GiB).

/// Bits per radix digit.
const RADIX_DIGIT_BITS: u32 = 11;
/// Buckets per pass.
const RADIX_BUCKETS: usize = 1 << RADIX_DIGIT_BITS;
/// Below this many elements `sort_unstable` is faster than the histograms.
const RADIX_SORT_MIN_LEN: usize = 1 << 16;

/// A key that can be sorted by [`radix_sort`].
pub(crate) trait RadixKey: Copy + Ord + Default {
    /// Number of significant bits of `self`.
    fn significant_bits(self) -> u32;
    /// Digit of `RADIX_DIGIT_BITS` bits starting at bit `shift`.
    fn digit(self, shift: u32) -> usize;
}

impl RadixKey for u64 {
    fn significant_bits(self) -> u32 {
        64 - self.leading_zeros()
    }

    #[inline]
    fn digit(self, shift: u32) -> usize {
        ((self >> shift) as usize) & (RADIX_BUCKETS - 1)
    }
}

impl RadixKey for u128 {
    fn significant_bits(self) -> u32 {
        128 - self.leading_zeros()
    }

    #[inline]
    fn digit(self, shift: u32) -> usize {
        ((self >> shift) as usize) & (RADIX_BUCKETS - 1)
    }
}

/// Sorts `v` ascending.
pub(crate) fn radix_sort<T: RadixKey>(v: &mut Vec<T>) {
    let n = v.len();
    if n < RADIX_SORT_MIN_LEN {
        v.sort_unstable();
        return;
    }
    let max = v.iter().copied().max().unwrap_or_default();
    let passes = max.significant_bits().div_ceil(RADIX_DIGIT_BITS);
    let mut histograms = vec![[0usize; RADIX_BUCKETS]; passes as usize];
    for &x in v.iter() {
        for (pass, h) in histograms.iter_mut().enumerate() {
            h[x.digit(pass as u32 * RADIX_DIGIT_BITS)] += 1;
        }
    }
    let mut scratch: Vec<T> = Vec::new();
    for (pass, h) in histograms.iter().enumerate() {
        if h.contains(&n) {
            continue;
        }
        if scratch.is_empty() {
            scratch = vec![T::default(); n];
        }
        let mut offsets = [0usize; RADIX_BUCKETS];
        let mut sum = 0;
        for (o, &c) in offsets.iter_mut().zip(h.iter()) {
            *o = sum;
            sum += c;
        }
        let shift = pass as u32 * RADIX_DIGIT_BITS;
        for &x in v.iter() {
            let d = x.digit(shift);
            let o = offsets[d];
            scratch[o] = x;
            offsets[d] = o + 1;
        }
        std::mem::swap(v, &mut scratch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_like_sort_unstable() {
        let mut state = 42u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            state >> 20
        };
        for len in [0usize, 1, 5, 70_000, 200_000] {
            let mut v: Vec<u64> = (0..len).map(|_| next() % 10_000_000_000).collect();
            let mut expect = v.clone();
            expect.sort_unstable();
            radix_sort(&mut v);
            assert_eq!(v, expect);
        }
        let mut w: Vec<u128> = (0..100_000u64).map(|i| (u128::from(next()) << 34) | u128::from(i % 7)).collect();
        let mut expect = w.clone();
        expect.sort_unstable();
        radix_sort(&mut w);
        assert_eq!(w, expect);
        // All equal in the low digits: passes are skipped.
        let mut z: Vec<u64> = (0..100_000u64).map(|i| (100_000 - i) << 22).collect();
        let mut expect = z.clone();
        expect.sort_unstable();
        radix_sort(&mut z);
        assert_eq!(z, expect);
    }
}
