//! A blocked Elias–Fano set: the passport index's core.
//!
//! # Why not one global Elias–Fano sequence
//!
//! A global Elias–Fano encoding (see `ef.rs`) is within 2 bits per key of
//! the information-theoretic bound, but a membership query walks a chain of
//! *dependent* memory reads: select-0 directory → upper bits → lower bits.
//! With 140 MB of index, each is a cache miss (and a TLB miss), and the first
//! prototype measured ~400 ns per lookup at 137 million keys: 2.5 M lookups/s,
//! half the goal. What costs is the number of dependent misses, not the
//! arithmetic, so this layout is built to need two:
//!
//! 1. the block directory (one `u32` pair, plus a tiny table of group bases
//!    that stays in L1), then
//! 2. the block itself, whose upper and lower bits are adjacent (one or two
//!    cache lines, one page).
//!
//! # Layout
//!
//! With `n` keys below `U`, `l = floor(log2(U / n))` as in plain Elias–Fano.
//! The key space is cut into *blocks* of `2^(l + BLOCK_BUCKETS_LOG2)` keys,
//! i.e. `BLOCK_BUCKETS` Elias–Fano buckets of `2^l` keys, ~`BLOCK_BUCKETS / 2`
//! to `BLOCK_BUCKETS` keys per block on average. Each block is encoded on its
//! own in one shared bit stream, choosing the smaller of:
//!
//! * **empty**: 0 bits;
//! * **Elias–Fano**: the block's `c` keys as local Elias–Fano — `c` ones and
//!   `BLOCK_BUCKETS` zeros of unary bucket codes, then `c` low parts of `l`
//!   bits: `c·(l + 1) + BLOCK_BUCKETS` bits;
//! * **bitmap**: one bit per key of the block, `2^(l + BLOCK_BUCKETS_LOG2)`
//!   bits; chosen when denser than ~1/(l + 1), i.e. inside stolen batches
//!   (contiguous number ranges) or densely invalidated old series, where it
//!   costs ~1 bit per key instead of `l + 2`.
//!
//! The encoding is implied by the block's size (`end - start`): 0 → empty,
//! the bitmap size → bitmap (an Elias–Fano block is always strictly smaller),
//! otherwise `c = (size - BLOCK_BUCKETS) / (l + 1)`, computed with a
//! precomputed exact-division multiplier.
//!
//! The directory holds each block's start bit offset as a `u32` relative to a
//! `u64` base per group of `2^g` blocks (`g ≤ DIRECTORY_GROUP_LOG2_MAX`,
//! chosen at build time so that every relative offset fits): 32 bits per
//! block, ~0.2 bits per key.
//!
//! Size on scattered keys: `l + 1 + (BLOCK_BUCKETS + 32) / c` bits per key,
//! ≈ 1.14× the bound at the MVD list's density; on clustered keys the
//! bitmaps make it smaller than the bound for scattered sets (the bound
//! being a worst case over all sets of that size).
//!
//! # Lookup
//!
//! `block = key >> (l + BLOCK_BUCKETS_LOG2)`; read its start and end. Bitmap:
//! test one bit. Elias–Fano: the key's bucket `b` starts after the `b`-th
//! zero of the block's unary part (a scan of one or two words with in-word
//! select); its run of ones gives the bucket's size; a full bucket (`2^l`
//! keys) is a hit without reading low bits; otherwise the bucket's few low
//! parts are scanned.
//!
//! A loaded set is validated block by block (sizes, unary parts holding
//! exactly `BLOCK_BUCKETS` zeros, total count), so no lookup on a loaded set
//! can read out of bounds, whatever the file contained.

use crate::bits::{low_mask, select_in_word, words_for_bits, WORD_BITS};
use crate::format::{BodyReader, BodyWriter, CorruptBody};

/// log2 of the Elias–Fano buckets per block.
pub(crate) const BLOCK_BUCKETS_LOG2: u32 = 7;
/// Elias–Fano buckets per block (zeros in an Elias–Fano block's unary part).
pub(crate) const BLOCK_BUCKETS: u64 = 1 << BLOCK_BUCKETS_LOG2;
/// Largest log2 of the blocks per directory group (the `u64` base table stays tiny).
const DIRECTORY_GROUP_LOG2_MAX: u32 = 16;
/// Largest block width accepted, in bits of key (keeps every shift in range).
const BLOCK_SHIFT_MAX: u32 = 48;
/// Largest `l` accepted from a file.
const LOW_BITS_MAX: u32 = BLOCK_SHIFT_MAX - BLOCK_BUCKETS_LOG2;
/// Number of `u64` fields in the stored header of a blocked set.
const STORED_FIELDS: u64 = 8;

/// Reads 64 bits starting at bit `pos` (the stream has a zero padding word).
#[inline]
fn get64(data: &[u64], pos: u64) -> u64 {
    let w = (pos / WORD_BITS) as usize;
    let offset = pos % WORD_BITS;
    (data[w] >> offset) | ((data[w + 1] << 1) << (WORD_BITS - 1 - offset))
}

/// Appends bits to a word stream.
struct BitWriter {
    words: Vec<u64>,
    bits: u64,
}

impl BitWriter {
    fn with_capacity_bits(bits: u64) -> BitWriter {
        BitWriter { words: Vec::with_capacity(words_for_bits(bits) as usize + 1), bits: 0 }
    }

    fn reserve_to(&mut self, bits: u64) {
        let needed = words_for_bits(bits) as usize;
        if self.words.len() < needed {
            self.words.resize(needed, 0);
        }
    }

    /// Appends `width` (≤ 64) low bits of `value`.
    fn push(&mut self, value: u64, width: u32) {
        if width == 0 {
            return;
        }
        let value = value & low_mask(width);
        self.reserve_to(self.bits + u64::from(width));
        let w = (self.bits / WORD_BITS) as usize;
        let offset = self.bits % WORD_BITS;
        self.words[w] |= value << offset;
        if offset + u64::from(width) > WORD_BITS {
            self.words[w + 1] |= value >> (WORD_BITS - offset);
        }
        self.bits += u64::from(width);
    }

    /// Appends `count` zero bits.
    fn push_zeros(&mut self, count: u64) {
        self.bits += count;
        self.reserve_to(self.bits);
    }

    /// Sets an already appended bit.
    fn set(&mut self, pos: u64) {
        self.words[(pos / WORD_BITS) as usize] |= 1 << (pos % WORD_BITS);
    }

    /// The words plus one zero padding word.
    fn finish(mut self) -> (Vec<u64>, u64) {
        self.words.resize(words_for_bits(self.bits) as usize + 1, 0);
        self.words.shrink_to_fit();
        (self.words, self.bits)
    }
}

/// Parameters derived from the universe and `l`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    low_bits: u32,
    /// `l + BLOCK_BUCKETS_LOG2`.
    block_shift: u32,
    blocks: u64,
    /// Bits of a bitmap block.
    bitmap_bits: u64,
    /// `l + 1 = 2^div_shift · odd`; `div_inverse · odd ≡ 1 (mod 2^64)`.
    div_shift: u32,
    div_inverse: u64,
}

impl Shape {
    fn new(universe: u64, low_bits: u32) -> Shape {
        let block_shift = low_bits + BLOCK_BUCKETS_LOG2;
        let d = u64::from(low_bits) + 1;
        let div_shift = d.trailing_zeros();
        let odd = d >> div_shift;
        // Newton's iteration doubles the correct low bits each step: 3 → 6 → … → 96 ≥ 64.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        Shape {
            low_bits,
            block_shift,
            blocks: ((universe - 1) >> block_shift) + 1,
            bitmap_bits: 1 << block_shift,
            div_shift,
            div_inverse: inverse,
        }
    }

    /// Size of an Elias–Fano block of `c` keys.
    fn ef_bits(&self, c: u64) -> u64 {
        c * (u64::from(self.low_bits) + 1) + BLOCK_BUCKETS
    }

    /// Keys of an Elias–Fano block of `size` bits (exact division by `l + 1`).
    #[inline]
    fn ef_count(&self, size: u64) -> u64 {
        ((size - BLOCK_BUCKETS) >> self.div_shift).wrapping_mul(self.div_inverse)
    }
}

/// An immutable set of integers below a universe (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockedSet {
    universe: u64,
    len: u64,
    shape: Shape,
    group_log2: u32,
    /// Bit stream of all blocks, plus one zero padding word.
    data: Vec<u64>,
    data_bits: u64,
    /// Start of block `i` = `bases[i >> group_log2] + rel[i]`; `blocks + 1` entries.
    rel: Vec<u32>,
    bases: Vec<u64>,
}

/// Sizes of the parts of a [`BlockedSet`], for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLayout {
    /// Keys stored.
    pub len: u64,
    /// Width `l` of the low parts, in bits.
    pub low_bits: u32,
    /// Blocks of `2^(l + 7)` keys.
    pub blocks: u64,
    /// Blocks stored as bitmaps.
    pub bitmap_blocks: u64,
    /// Blocks stored as Elias–Fano.
    pub ef_blocks: u64,
    /// Heap bytes of the bit stream.
    pub data_bytes: usize,
    /// Heap bytes of the block directory.
    pub directory_bytes: usize,
}

/// What a block's size says about it.
enum BlockKind {
    Empty,
    Bitmap,
    EliasFano { count: u64 },
}

impl BlockedSet {
    /// Encodes sorted, distinct values below `universe` (`1 ≤ universe ≤ 2^48`).
    ///
    /// The caller guarantees the order, distinctness and range (debug-checked);
    /// a violation builds a wrong set but cannot break memory safety.
    pub(crate) fn from_sorted_distinct(universe: u64, keys: &[u64]) -> BlockedSet {
        debug_assert!(universe >= 1 && universe <= 1 << BLOCK_SHIFT_MAX);
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]) && keys.last().is_none_or(|&k| k < universe));
        let len = keys.len() as u64;
        let low_bits = crate::ef::low_bits_for(universe, len).min(LOW_BITS_MAX);
        let shape = Shape::new(universe, low_bits);
        let mut out = BitWriter::with_capacity_bits(shape.ef_bits(len) + shape.blocks);
        let mut starts: Vec<u64> = Vec::with_capacity(shape.blocks as usize + 1);
        let mut i = 0usize;
        let low_mask_l = low_mask(low_bits);
        let block_mask = shape.bitmap_bits - 1;
        for block in 0..shape.blocks {
            starts.push(out.bits);
            let end_key = (block + 1) << shape.block_shift;
            let mut j = i;
            while j < keys.len() && keys[j] < end_key {
                j += 1;
            }
            let block_keys = &keys[i..j];
            i = j;
            let c = block_keys.len() as u64;
            if c == 0 {
                continue;
            }
            let base = out.bits;
            if shape.ef_bits(c) >= shape.bitmap_bits {
                out.push_zeros(shape.bitmap_bits);
                for &k in block_keys {
                    out.set(base + (k & block_mask));
                }
            } else {
                out.push_zeros(BLOCK_BUCKETS + c);
                for (t, &k) in block_keys.iter().enumerate() {
                    out.set(base + ((k & block_mask) >> low_bits) + t as u64);
                }
                for &k in block_keys {
                    out.push(k & low_mask_l, low_bits);
                }
            }
        }
        starts.push(out.bits);
        let (data, data_bits) = out.finish();
        let (group_log2, rel, bases) = split_directory(&starts);
        BlockedSet { universe, len, shape, group_log2, data, data_bits, rel, bases }
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Exclusive upper bound of the keys.
    pub(crate) fn universe(&self) -> u64 {
        self.universe
    }

    #[inline]
    fn start(&self, block: usize) -> u64 {
        self.bases[block >> self.group_log2] + u64::from(self.rel[block])
    }

    #[inline]
    fn kind(&self, size: u64) -> BlockKind {
        if size == 0 {
            BlockKind::Empty
        } else if size == self.shape.bitmap_bits {
            BlockKind::Bitmap
        } else {
            BlockKind::EliasFano { count: self.shape.ef_count(size) }
        }
    }

    /// Whether `key` is in the set.
    #[inline]
    pub(crate) fn contains(&self, key: u64) -> bool {
        if key >= self.universe {
            return false;
        }
        let block = (key >> self.shape.block_shift) as usize;
        let start = self.start(block);
        let size = self.start(block + 1) - start;
        let local = key & (self.shape.bitmap_bits - 1);
        match self.kind(size) {
            BlockKind::Empty => false,
            BlockKind::Bitmap => {
                let pos = start + local;
                (self.data[(pos / WORD_BITS) as usize] >> (pos % WORD_BITS)) & 1 == 1
            }
            BlockKind::EliasFano { count } => self.contains_in_ef_block(start, count, local),
        }
    }

    #[inline]
    fn contains_in_ef_block(&self, start: u64, count: u64, local: u64) -> bool {
        let l = self.shape.low_bits;
        let bucket = local >> l;
        // Position (relative to `start`) of the bucket's first one: just after zero number `bucket - 1`.
        let run_start = if bucket == 0 {
            0
        } else {
            let mut remaining = bucket - 1;
            let mut pos = 0u64;
            loop {
                let zeros = !get64(&self.data, start + pos);
                let n = u64::from(zeros.count_ones());
                if remaining < n {
                    break pos + select_in_word(zeros, remaining) + 1;
                }
                remaining -= n;
                pos += WORD_BITS;
            }
        };
        let first = run_start - bucket;
        // The bucket's size is the run of ones starting there (it ends within the unary part).
        let mut run = 0u64;
        loop {
            let word = get64(&self.data, start + run_start + run);
            let ones = u64::from(word.trailing_ones());
            run += ones;
            if ones < WORD_BITS {
                break;
            }
        }
        if run == 0 {
            return false;
        }
        if run == 1 << l {
            return true;
        }
        let low = local & low_mask(l);
        let lower = start + BLOCK_BUCKETS + count + first * u64::from(l);
        let mask = low_mask(l);
        for t in 0..run {
            let v = get64(&self.data, lower + t * u64::from(l)) & mask;
            if v >= low {
                return v == low;
            }
        }
        false
    }

    /// Keys in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.shape.blocks as usize).flat_map(move |block| {
            let start = self.start(block);
            let size = self.start(block + 1) - start;
            let base_key = (block as u64) << self.shape.block_shift;
            BlockIter::new(self, start, size, base_key)
        })
    }

    /// Sizes of the parts.
    pub(crate) fn layout(&self) -> SetLayout {
        let mut bitmap_blocks = 0;
        let mut ef_blocks = 0;
        for block in 0..self.shape.blocks as usize {
            match self.kind(self.start(block + 1) - self.start(block)) {
                BlockKind::Empty => {}
                BlockKind::Bitmap => bitmap_blocks += 1,
                BlockKind::EliasFano { .. } => ef_blocks += 1,
            }
        }
        SetLayout {
            len: self.len,
            low_bits: self.shape.low_bits,
            blocks: self.shape.blocks,
            bitmap_blocks,
            ef_blocks,
            data_bytes: self.data.capacity() * 8,
            directory_bytes: self.rel.capacity() * 4 + self.bases.capacity() * 8,
        }
    }

    /// Heap bytes held.
    pub(crate) fn size_bytes(&self) -> usize {
        self.data.capacity() * 8 + self.rel.capacity() * 4 + self.bases.capacity() * 8
    }

    /// Bytes [`BlockedSet::write`] produces.
    pub(crate) fn encoded_len(&self) -> u64 {
        STORED_FIELDS * 8 + (self.data.len() as u64 - 1) * 8 + self.rel.len() as u64 * 4 + self.bases.len() as u64 * 8
    }

    /// Writes the set.
    pub(crate) fn write<W: std::io::Write>(&self, w: &mut BodyWriter<W>) -> std::io::Result<()> {
        let data = &self.data[..self.data.len() - 1];
        w.write_u64(self.universe)?;
        w.write_u64(self.len)?;
        w.write_u64(u64::from(self.shape.low_bits))?;
        w.write_u64(u64::from(self.group_log2))?;
        w.write_u64(self.data_bits)?;
        w.write_u64(data.len() as u64)?;
        w.write_u64(self.rel.len() as u64)?;
        w.write_u64(self.bases.len() as u64)?;
        w.write_words(data)?;
        w.write_u32s(&self.rel)?;
        w.write_words(&self.bases)
    }

    /// Reads what [`BlockedSet::write`] wrote and validates every block.
    pub(crate) fn read(r: &mut BodyReader<'_>) -> Result<BlockedSet, CorruptBody> {
        let at = r.offset();
        let bad = |reason: String| CorruptBody::new(at, reason);
        let universe = r.read_u64()?;
        let len = r.read_u64()?;
        let low_bits = r.read_u64()?;
        let group_log2 = r.read_u64()?;
        let data_bits = r.read_u64()?;
        let data_words = r.read_u64()?;
        let rel_len = r.read_u64()?;
        let bases_len = r.read_u64()?;
        if universe == 0 || universe > 1 << BLOCK_SHIFT_MAX {
            return Err(bad(format!("universe {universe} out of range")));
        }
        if low_bits > u64::from(LOW_BITS_MAX) || group_log2 > u64::from(DIRECTORY_GROUP_LOG2_MAX) {
            return Err(bad(format!("bad parameters l = {low_bits}, group = 2^{group_log2}")));
        }
        let shape = Shape::new(universe, low_bits as u32);
        let group_log2 = group_log2 as u32;
        if rel_len != shape.blocks + 1 || bases_len != (shape.blocks >> group_log2) + 1 {
            return Err(bad(format!("directory of {rel_len}/{bases_len} entries for {} blocks", shape.blocks)));
        }
        if data_words != words_for_bits(data_bits) {
            return Err(bad(format!("{data_words} data words for {data_bits} bits")));
        }
        let data_at = r.offset();
        let mut data = r.read_words(data_words)?;
        let tail = data_bits % WORD_BITS;
        if tail != 0 && data.last().is_some_and(|w| w >> tail != 0) {
            return Err(CorruptBody::new(data_at, "bits set past the end of the data"));
        }
        data.reserve_exact(1);
        data.push(0);
        let rel = r.read_u32s(rel_len)?;
        let bases = r.read_words(bases_len)?;
        let set = BlockedSet { universe, len, shape, group_log2, data, data_bits, rel, bases };
        set.validate().map_err(|reason| CorruptBody::new(data_at, reason))?;
        Ok(set)
    }

    /// Checks every block so that lookups stay in bounds and the count is right.
    fn validate(&self) -> Result<(), String> {
        let mut previous = 0u64;
        let mut total = 0u64;
        for block in 0..=self.shape.blocks as usize {
            let start = self.start(block);
            if start < previous || start > self.data_bits {
                return Err(format!("block {block} starts at bit {start}, out of order or past the data"));
            }
            if block > 0 {
                let size = start - previous;
                total += self.check_block(previous, size).map_err(|e| format!("block {}: {e}", block - 1))?;
            } else if start != 0 {
                return Err("the first block does not start at bit 0".to_string());
            }
            previous = start;
        }
        if previous != self.data_bits {
            return Err(format!("blocks end at bit {previous}, the data at {}", self.data_bits));
        }
        if total != self.len {
            return Err(format!("blocks hold {total} keys, the header says {}", self.len));
        }
        Ok(())
    }

    /// Keys in the block, or why it is malformed.
    fn check_block(&self, start: u64, size: u64) -> Result<u64, String> {
        let ones = |from: u64, bits: u64| -> u64 {
            let mut total = 0u64;
            let mut pos = 0;
            while pos < bits {
                let take = (bits - pos).min(WORD_BITS);
                total += u64::from((get64(&self.data, from + pos) & low_mask(take as u32)).count_ones());
                pos += take;
            }
            total
        };
        if size == 0 {
            return Ok(0);
        }
        if size == self.shape.bitmap_bits {
            return Ok(ones(start, size));
        }
        let invalid = || format!("size {size} is not a valid block size");
        if size <= BLOCK_BUCKETS || size > self.shape.bitmap_bits {
            return Err(invalid());
        }
        let count = self.shape.ef_count(size);
        let exact = count
            .checked_mul(u64::from(self.shape.low_bits) + 1)
            .and_then(|b| b.checked_add(BLOCK_BUCKETS))
            .is_some_and(|b| b == size);
        if !exact {
            return Err(invalid());
        }
        if self.shape.ef_bits(count) >= self.shape.bitmap_bits {
            return Err(invalid());
        }
        let unary_ones = ones(start, BLOCK_BUCKETS + count);
        if unary_ones != count {
            return Err(format!("unary part has {unary_ones} ones for {count} keys"));
        }
        Ok(count)
    }
}

/// Chooses the largest group size whose relative offsets fit in `u32`.
fn split_directory(starts: &[u64]) -> (u32, Vec<u32>, Vec<u64>) {
    let mut group_log2 = DIRECTORY_GROUP_LOG2_MAX;
    loop {
        let fits =
            starts.iter().enumerate().all(|(i, &s)| s - starts[(i >> group_log2) << group_log2] <= u64::from(u32::MAX));
        if fits || group_log2 == 0 {
            break;
        }
        group_log2 -= 1;
    }
    let bases: Vec<u64> = starts.iter().step_by(1 << group_log2).copied().collect();
    let rel = starts.iter().enumerate().map(|(i, &s)| (s - bases[i >> group_log2]) as u32).collect();
    (group_log2, rel, bases)
}

/// Decodes one block.
struct BlockIter<'a> {
    set: &'a BlockedSet,
    start: u64,
    base_key: u64,
    kind: IterKind,
    /// Bitmap: next local key to test. Elias–Fano: next unary position.
    cursor: u64,
    /// Elias–Fano: keys decoded so far and their total.
    index: u64,
    count: u64,
}

enum IterKind {
    Empty,
    Bitmap,
    EliasFano,
}

impl<'a> BlockIter<'a> {
    fn new(set: &'a BlockedSet, start: u64, size: u64, base_key: u64) -> BlockIter<'a> {
        let (kind, count) = match set.kind(size) {
            BlockKind::Empty => (IterKind::Empty, 0),
            BlockKind::Bitmap => (IterKind::Bitmap, 0),
            BlockKind::EliasFano { count } => (IterKind::EliasFano, count),
        };
        BlockIter { set, start, base_key, kind, cursor: 0, index: 0, count }
    }
}

impl Iterator for BlockIter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        match self.kind {
            IterKind::Empty => None,
            IterKind::Bitmap => {
                while self.cursor < self.set.shape.bitmap_bits {
                    let word = get64(&self.set.data, self.start + self.cursor);
                    let left = self.set.shape.bitmap_bits - self.cursor;
                    let word = if left < WORD_BITS { word & low_mask(left as u32) } else { word };
                    if word == 0 {
                        self.cursor += WORD_BITS;
                        continue;
                    }
                    let bit = u64::from(word.trailing_zeros());
                    let key = self.base_key + self.cursor + bit;
                    self.cursor += bit + 1;
                    return Some(key);
                }
                None
            }
            IterKind::EliasFano => {
                if self.index == self.count {
                    return None;
                }
                // Next one in the unary part.
                loop {
                    let word = get64(&self.set.data, self.start + self.cursor);
                    if word == 0 {
                        self.cursor += WORD_BITS;
                        continue;
                    }
                    self.cursor += u64::from(word.trailing_zeros());
                    break;
                }
                let bucket = self.cursor - self.index;
                self.cursor += 1;
                let l = self.set.shape.low_bits;
                let lower = self.start + BLOCK_BUCKETS + self.count + self.index * u64::from(l);
                let low = get64(&self.set.data, lower) & low_mask(l);
                self.index += 1;
                Some(self.base_key + (bucket << l) + low)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn lcg(s: &mut u64) -> u64 {
        *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *s >> 11
    }

    fn check(universe: u64, keys: &BTreeSet<u64>, probes: &[u64]) {
        let v: Vec<u64> = keys.iter().copied().collect();
        let set = BlockedSet::from_sorted_distinct(universe, &v);
        assert_eq!(set.len(), v.len() as u64);
        set.validate().unwrap();
        assert_eq!(set.iter().collect::<Vec<_>>(), v);
        for &k in keys.iter().chain(probes) {
            for p in [k, k.wrapping_add(1), k.wrapping_sub(1)] {
                assert_eq!(set.contains(p), keys.contains(&p), "probe {p}");
            }
        }
    }

    #[test]
    fn exact_division_by_l_plus_one() {
        for l in 0..=LOW_BITS_MAX {
            let shape = Shape::new(1 << BLOCK_SHIFT_MAX, l);
            for c in [1u64, 2, 3, 57, 1000, 99_999] {
                assert_eq!(shape.ef_count(shape.ef_bits(c)), c, "l={l} c={c}");
            }
        }
    }

    #[test]
    fn sparse_dense_and_mixed_blocks() {
        let u = 10_000_000_000u64;
        let mut s = 1;
        check(u, &BTreeSet::new(), &[0, u - 1]);
        check(u, &[0, u - 1].into(), &[1, u - 2]);
        let mut keys: BTreeSet<u64> = (0..20_000).map(|_| lcg(&mut s) % u).collect();
        keys.extend(4_509_000_000..4_509_030_000);
        keys.extend((7_000_000_000..7_000_100_000).step_by(3));
        keys.extend(u - 5000..u);
        let probes: Vec<u64> = (0..20_000).map(|_| lcg(&mut s) % u).collect();
        check(u, &keys, &probes);
        let set = BlockedSet::from_sorted_distinct(u, &keys.iter().copied().collect::<Vec<_>>());
        let layout = set.layout();
        assert!(layout.bitmap_blocks > 0 && layout.ef_blocks > 0, "{layout:?}");
        // Small universes and full universes.
        check(1, &[0].into(), &[0, 1]);
        check(1000, &(0..1000).collect(), &[1000]);
        check(1000, &(0..1000).step_by(2).collect(), &[999]);
    }

    #[test]
    fn size_on_uniform_keys_is_near_the_bound() {
        let u = 10_000_000_000u64;
        let n = 1_000_000u64;
        let mut s = 9;
        let keys: BTreeSet<u64> = (0..n).map(|_| lcg(&mut s) % u).collect();
        let v: Vec<u64> = keys.iter().copied().collect();
        let set = BlockedSet::from_sorted_distinct(u, &v);
        let bits = set.size_bytes() as f64 * 8.0;
        let bound = crate::bench::lower_bound_bits(u, v.len() as u64);
        assert!(bits / bound < 1.2, "{} bits/key, bound {}", bits / v.len() as f64, bound / v.len() as f64);
    }
}
