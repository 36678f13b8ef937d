//! A blocked Elias–Fano set: the passport index's core.
//!
//! # Why not one global Elias–Fano sequence
//!
//! A global Elias–Fano encoding (`ef.rs`, still used for the taxpayer
//! index) is within 2 bits per key of the information-theoretic bound, but a
//! membership query walks a chain of *dependent* memory reads: select-0
//! directory → upper bits → lower bits. With 140 MB of index each is a cache
//! and TLB miss, and that design measured ~400 ns per lookup at 137 million
//! keys (2.5 M lookups/s, half the goal). What costs is the number of
//! dependent misses, not the arithmetic, so this layout needs two:
//!
//! 1. the block directory (two adjacent `u32`s, plus a tiny table of group
//!    bases that stays in L1), then
//! 2. the block itself, whose parts are adjacent (one or two cache lines,
//!    one page).
//!
//! It also adapts to clustering, which a global Elias–Fano cannot: blocks
//! inside stolen batches become bitmaps at ~1 bit per key.
//!
//! # Layout
//!
//! With `n` keys below `U`, `l = floor(log2(U / n))` as in plain Elias–Fano.
//! The key space is cut into *blocks* of `2^(l + BLOCK_BUCKETS_LOG2)` keys,
//! i.e. `BLOCK_BUCKETS` Elias–Fano buckets of `2^l` keys, about
//! `BLOCK_BUCKETS / 2` to `BLOCK_BUCKETS` keys per block on average. Each
//! non-empty block is encoded on its own in one shared bit stream, behind a
//! `TAG_BITS`-bit tag, as the smallest of:
//!
//! * **Elias–Fano** (only for `c ≤ EF_BLOCK_KEYS_MAX` keys, which bounds the
//!   unary scan): `c` ones and `BLOCK_BUCKETS` zeros of unary bucket codes,
//!   then `c` low parts of `l` bits — `c·(l + 1) + BLOCK_BUCKETS` bits;
//! * **bitmap**: one bit per key of the block, `2^(l + BLOCK_BUCKETS_LOG2)`
//!   bits; the choice inside stolen batches (contiguous number ranges) or
//!   densely invalidated old series, where it costs ~1 bit per key instead of
//!   `l + 2`;
//! * **sorted array** of the keys' offsets in the block, `l + BLOCK_BUCKETS_LOG2`
//!   bits each, bisected: the fallback for blocks too populated for a short
//!   unary scan yet too sparse for a bitmap, which only happens when keys are
//!   much denser locally than on average (e.g. a small list that is mostly
//!   one batch).
//!
//! An empty block takes no bits. A block's size is `end - start`, and the key
//! count follows from it and the tag (for Elias–Fano by an exact division by
//! `l + 1` with a precomputed multiplier).
//!
//! The directory holds each block's start bit offset as a `u32` relative to a
//! `u64` base per group of `2^g` blocks (`g ≤ DIRECTORY_GROUP_LOG2_MAX`,
//! chosen at build time so that every relative offset fits): 32 bits per
//! block.
//!
//! Size on uniformly scattered keys: about `l + 1 + (BLOCK_BUCKETS + 34) / c`
//! bits per key for `c` keys per block, ≈ 1.15× the bound at the MVD list's
//! density (`l = 6`, `c ≈ 56`; the unit tests check < 1.2× on a million
//! uniform keys). On clustered keys the bitmaps make it *smaller* than that
//! bound, which is a worst case over all sets of the same size: the
//! synthetic 137-million-row list takes ~0.65× of it.
//!
//! `BLOCK_BUCKETS_LOG2 = 6` was measured against 7 and 8 on that list: 7
//! costs ~10% in lookups for 4% less space, 8 makes blocks too populated for
//! short scans (5.7 M hits/s against 9 M/s).
//!
//! # Lookup
//!
//! `block = key >> (l + BLOCK_BUCKETS_LOG2)`; read its start and end, then
//! its tag. Bitmap: test one bit. Elias–Fano: the key's bucket `b` starts
//! after the `b`-th zero of the unary part (a scan of a few words with
//! in-word select); its run of ones gives the bucket's size; a full bucket
//! (`2^l` keys) is a hit without reading low bits; otherwise the bucket's low
//! parts are scanned (bisected when many). Array: bisection.
//!
//! A loaded set is validated block by block (tags, sizes, unary parts holding
//! exactly `BLOCK_BUCKETS` zeros, total count), so no lookup on a loaded set
//! can read out of bounds, whatever the file contained.

use crate::bits::{low_mask, select_in_word, words_for_bits, WORD_BITS};
use crate::format::{BodyReader, BodyWriter, CorruptBody};

/// log2 of the Elias–Fano buckets per block.
pub(crate) const BLOCK_BUCKETS_LOG2: u32 = 6;
/// Elias–Fano buckets per block (zeros in an Elias–Fano block's unary part).
pub(crate) const BLOCK_BUCKETS: u64 = 1 << BLOCK_BUCKETS_LOG2;
/// Most keys an Elias–Fano block may hold (its unary scan is at most this plus `BLOCK_BUCKETS` bits).
pub(crate) const EF_BLOCK_KEYS_MAX: u64 = 1024;
/// Bits of the tag in front of every non-empty block.
const TAG_BITS: u32 = 2;
const TAG_EF: u64 = 0;
const TAG_BITMAP: u64 = 1;
const TAG_ARRAY: u64 = 2;
/// Largest log2 of the blocks per directory group (the `u64` base table stays tiny).
const DIRECTORY_GROUP_LOG2_MAX: u32 = 16;
/// Largest block width accepted, in bits of key (keeps every shift in range).
const BLOCK_SHIFT_MAX: u32 = 48;
/// Largest `l` accepted from a file.
const LOW_BITS_MAX: u32 = BLOCK_SHIFT_MAX - BLOCK_BUCKETS_LOG2;
/// Number of `u64` fields in the stored header of a blocked set.
const STORED_FIELDS: u64 = 8;
/// Below this many candidates a sorted run is scanned linearly instead of bisected.
const LINEAR_SCAN_MAX: u64 = 16;

/// Zero words after the bit stream, so that `get64` at any position up to the
/// end of the stream (even exactly at it) stays in bounds.
const DATA_PADDING_WORDS: usize = 2;

/// Reads 64 bits starting at bit `pos` (≤ the stream's length; see `DATA_PADDING_WORDS`).
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
        let needed = words_for_bits(bits) as usize + 1;
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

    /// The words plus `DATA_PADDING_WORDS` zero padding words.
    fn finish(mut self) -> (Vec<u64>, u64) {
        self.words.resize(words_for_bits(self.bits) as usize + DATA_PADDING_WORDS, 0);
        self.words.shrink_to_fit();
        (self.words, self.bits)
    }
}

/// Parameters derived from the universe and `l`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    low_bits: u32,
    /// `l + BLOCK_BUCKETS_LOG2`: bits of a key's offset in its block.
    block_shift: u32,
    blocks: u64,
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
        Shape { low_bits, block_shift, blocks: ((universe - 1) >> block_shift) + 1, div_shift, div_inverse: inverse }
    }

    /// Keys per block (bits of a bitmap block).
    fn block_keys(&self) -> u64 {
        1 << self.block_shift
    }

    /// Body bits of an Elias–Fano block of `c` keys.
    fn ef_bits(&self, c: u64) -> u64 {
        c * (u64::from(self.low_bits) + 1) + BLOCK_BUCKETS
    }

    /// Keys of an Elias–Fano block of `body` bits (exact division by `l + 1`).
    #[inline]
    fn ef_count(&self, body: u64) -> u64 {
        ((body - BLOCK_BUCKETS) >> self.div_shift).wrapping_mul(self.div_inverse)
    }

    /// The smallest encoding of a block of `c ≥ 1` keys, and its body bits.
    fn choose(&self, c: u64) -> (u64, u64) {
        let mut best = (TAG_BITMAP, self.block_keys());
        if c * u64::from(self.block_shift) < best.1 {
            best = (TAG_ARRAY, c * u64::from(self.block_shift));
        }
        if c <= EF_BLOCK_KEYS_MAX && self.ef_bits(c) <= best.1 {
            best = (TAG_EF, self.ef_bits(c));
        }
        best
    }
}

/// An immutable set of integers below a universe (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlockedSet {
    universe: u64,
    len: u64,
    shape: Shape,
    group_log2: u32,
    /// Bit stream of all blocks, plus `DATA_PADDING_WORDS` zero words.
    data: Vec<u64>,
    data_bits: u64,
    /// Start of block `i` = `bases[i >> group_log2] + rel[i]`; `blocks + 1` entries.
    rel: Vec<u32>,
    bases: Vec<u64>,
}

/// Sizes of the parts of a passport key set, for reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLayout {
    /// Keys stored.
    pub len: u64,
    /// Width `l` of the Elias–Fano low parts, in bits.
    pub low_bits: u32,
    /// log2 of the keys per block.
    pub block_shift: u32,
    /// Blocks.
    pub blocks: u64,
    /// Blocks stored as Elias–Fano.
    pub ef_blocks: u64,
    /// Blocks stored as bitmaps.
    pub bitmap_blocks: u64,
    /// Blocks stored as sorted arrays.
    pub array_blocks: u64,
    /// Heap bytes of the bit stream.
    pub data_bytes: usize,
    /// Heap bytes of the block directory.
    pub directory_bytes: usize,
}

impl BlockedSet {
    /// Encodes sorted, distinct values below `universe` (`1 ≤ universe ≤ 2^48`).
    ///
    /// The caller guarantees the order, distinctness and range (debug-checked);
    /// a violation builds a wrong set but cannot break memory safety.
    pub(crate) fn from_sorted_distinct(universe: u64, keys: &[u64]) -> BlockedSet {
        debug_assert!((1..=1 << BLOCK_SHIFT_MAX).contains(&universe));
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]) && keys.last().is_none_or(|&k| k < universe));
        let len = keys.len() as u64;
        let low_bits = crate::ef::low_bits_for(universe, len).min(LOW_BITS_MAX);
        let shape = Shape::new(universe, low_bits);
        let mut out = BitWriter::with_capacity_bits(shape.ef_bits(len) + shape.blocks);
        let mut starts: Vec<u64> = Vec::with_capacity(shape.blocks as usize + 1);
        let mut i = 0usize;
        let block_mask = shape.block_keys() - 1;
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
            let (tag, _) = shape.choose(c);
            out.push(tag, TAG_BITS);
            let body = out.bits;
            match tag {
                TAG_BITMAP => {
                    out.push_zeros(shape.block_keys());
                    for &k in block_keys {
                        out.set(body + (k & block_mask));
                    }
                }
                TAG_ARRAY => {
                    for &k in block_keys {
                        out.push(k & block_mask, shape.block_shift);
                    }
                }
                _ => {
                    out.push_zeros(BLOCK_BUCKETS + c);
                    for (t, &k) in block_keys.iter().enumerate() {
                        out.set(body + ((k & block_mask) >> low_bits) + t as u64);
                    }
                    for &k in block_keys {
                        out.push(k, low_bits);
                    }
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

    /// Whether `key` is in the set.
    #[inline]
    pub(crate) fn contains(&self, key: u64) -> bool {
        if key >= self.universe {
            return false;
        }
        let block = (key >> self.shape.block_shift) as usize;
        let start = self.start(block);
        let end = self.start(block + 1);
        if start == end {
            return false;
        }
        let local = key & (self.shape.block_keys() - 1);
        let tag = get64(&self.data, start) & 3;
        let body = start + u64::from(TAG_BITS);
        match tag {
            TAG_BITMAP => {
                let pos = body + local;
                (self.data[(pos / WORD_BITS) as usize] >> (pos % WORD_BITS)) & 1 == 1
            }
            TAG_EF => self.contains_in_ef_block(body, self.shape.ef_count(end - body), local),
            _ => self.contains_in_array_block(body, (end - body) / u64::from(self.shape.block_shift), local),
        }
    }

    /// Membership in an Elias–Fano block of `count` keys whose unary part starts at `body`.
    ///
    /// (A variant that read two unary words up front and selected between
    /// them without branches measured ~10% slower on the synthetic list: the
    /// simple scan usually stops in the first word.)
    #[inline]
    fn contains_in_ef_block(&self, body: u64, count: u64, local: u64) -> bool {
        let l = self.shape.low_bits;
        let bucket = local >> l;
        // Position (relative to `body`) of the bucket's first one: just after zero number `bucket - 1`.
        let run_start = if bucket == 0 {
            0
        } else {
            let mut remaining = bucket - 1;
            let mut pos = 0u64;
            loop {
                let zeros = !get64(&self.data, body + pos);
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
            let ones = u64::from(get64(&self.data, body + run_start + run).trailing_ones());
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
        let lower = body + BLOCK_BUCKETS + count + first * u64::from(l);
        self.search(lower, l, run, local & low_mask(l))
    }

    #[inline]
    fn contains_in_array_block(&self, body: u64, count: u64, local: u64) -> bool {
        self.search(body, self.shape.block_shift, count, local)
    }

    /// Whether `target` is among the `count` sorted `width`-bit values starting at bit `from`.
    #[inline]
    fn search(&self, from: u64, width: u32, count: u64, target: u64) -> bool {
        let mask = low_mask(width);
        let w = u64::from(width);
        let (mut lo, mut hi) = (0u64, count);
        while hi - lo > LINEAR_SCAN_MAX {
            let mid = lo + (hi - lo) / 2;
            if get64(&self.data, from + mid * w) & mask < target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // The first value >= target is at an index in lo..=hi (hi included when < count).
        for t in lo..count {
            let v = get64(&self.data, from + t * w) & mask;
            if v >= target {
                return v == target;
            }
        }
        false
    }

    /// Keys in ascending order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.shape.blocks as usize).flat_map(move |block| BlockIter::new(self, block))
    }

    /// Tag and body range of a non-empty block.
    fn block_body(&self, block: usize) -> Option<(u64, u64, u64)> {
        let start = self.start(block);
        let end = self.start(block + 1);
        if start == end {
            return None;
        }
        Some((get64(&self.data, start) & 3, start + u64::from(TAG_BITS), end))
    }

    /// Sizes of the parts.
    pub(crate) fn layout(&self) -> SetLayout {
        let mut counts = [0u64; 4];
        for block in 0..self.shape.blocks as usize {
            if let Some((tag, _, _)) = self.block_body(block) {
                counts[tag as usize] += 1;
            }
        }
        SetLayout {
            len: self.len,
            low_bits: self.shape.low_bits,
            block_shift: self.shape.block_shift,
            blocks: self.shape.blocks,
            ef_blocks: counts[TAG_EF as usize],
            bitmap_blocks: counts[TAG_BITMAP as usize],
            array_blocks: counts[TAG_ARRAY as usize],
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
        STORED_FIELDS * 8
            + (self.data.len() - DATA_PADDING_WORDS) as u64 * 8
            + self.rel.len() as u64 * 4
            + self.bases.len() as u64 * 8
    }

    /// Writes the set.
    pub(crate) fn write<W: std::io::Write>(&self, w: &mut BodyWriter<W>) -> std::io::Result<()> {
        let data = &self.data[..self.data.len() - DATA_PADDING_WORDS];
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
        let data = r.read_words_padded(data_words, DATA_PADDING_WORDS)?;
        let tail = data_bits % WORD_BITS;
        let last_data_word = data.len().checked_sub(DATA_PADDING_WORDS + 1).map(|i| data[i]);
        if tail != 0 && last_data_word.is_some_and(|w| w >> tail != 0) {
            return Err(CorruptBody::new(data_at, "bits set past the end of the data"));
        }
        let rel = r.read_u32s(rel_len)?;
        let bases = r.read_words(bases_len)?;
        let set = BlockedSet { universe, len, shape, group_log2, data, data_bits, rel, bases };
        set.validate().map_err(|reason| CorruptBody::new(data_at, reason))?;
        Ok(set)
    }

    /// Checks every block so that lookups stay in bounds and the count is right.
    fn validate(&self) -> Result<(), String> {
        if self.start(0) != 0 {
            return Err("the first block does not start at bit 0".to_string());
        }
        let mut total = 0u64;
        for block in 0..self.shape.blocks as usize {
            let (start, end) = (self.start(block), self.start(block + 1));
            if end < start || end > self.data_bits {
                return Err(format!("block {block} ends at bit {end}: out of order or past the data"));
            }
            total += self.check_block(start, end).map_err(|e| format!("block {block}: {e}"))?;
        }
        let end = self.start(self.shape.blocks as usize);
        if end != self.data_bits {
            return Err(format!("blocks end at bit {end}, the data at {}", self.data_bits));
        }
        if total != self.len {
            return Err(format!("blocks hold {total} keys, the header says {}", self.len));
        }
        Ok(())
    }

    /// Keys in the block, or why it is malformed.
    fn check_block(&self, start: u64, end: u64) -> Result<u64, String> {
        if start == end {
            return Ok(0);
        }
        if end - start < u64::from(TAG_BITS) {
            return Err("too short for its tag".to_string());
        }
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
        let tag = get64(&self.data, start) & 3;
        let body = start + u64::from(TAG_BITS);
        let size = end - body;
        let invalid = || format!("{size} bits is not a valid size for a block with tag {tag}");
        match tag {
            TAG_BITMAP if size == self.shape.block_keys() => Ok(ones(body, size)),
            TAG_ARRAY if size > 0 && size.is_multiple_of(u64::from(self.shape.block_shift)) => {
                Ok(size / u64::from(self.shape.block_shift))
            }
            TAG_EF if size > BLOCK_BUCKETS => {
                let count = self.shape.ef_count(size);
                if count == 0 || count > EF_BLOCK_KEYS_MAX || self.shape.ef_bits(count) != size {
                    return Err(invalid());
                }
                let unary_ones = ones(body, BLOCK_BUCKETS + count);
                if unary_ones != count {
                    return Err(format!("unary part has {unary_ones} ones for {count} keys"));
                }
                Ok(count)
            }
            _ => Err(invalid()),
        }
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
    tag: u64,
    body: u64,
    base_key: u64,
    /// Bitmap: next offset to test. Elias–Fano: next unary position.
    cursor: u64,
    /// Keys decoded so far and their total (Elias–Fano, array).
    index: u64,
    count: u64,
}

impl<'a> BlockIter<'a> {
    fn new(set: &'a BlockedSet, block: usize) -> BlockIter<'a> {
        let base_key = (block as u64) << set.shape.block_shift;
        match set.block_body(block) {
            None => BlockIter { set, tag: TAG_BITMAP, body: 0, base_key, cursor: u64::MAX, index: 0, count: 0 },
            Some((tag, body, end)) => {
                let count = match tag {
                    TAG_EF => set.shape.ef_count(end - body),
                    TAG_ARRAY => (end - body) / u64::from(set.shape.block_shift),
                    _ => 0,
                };
                BlockIter { set, tag, body, base_key, cursor: 0, index: 0, count }
            }
        }
    }
}

impl Iterator for BlockIter<'_> {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let data = &self.set.data;
        match self.tag {
            TAG_BITMAP => {
                let bits = self.set.shape.block_keys();
                while self.cursor < bits {
                    let mut word = get64(data, self.body + self.cursor);
                    let left = bits - self.cursor;
                    if left < WORD_BITS {
                        word &= low_mask(left as u32);
                    }
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
            TAG_ARRAY => {
                if self.index == self.count {
                    return None;
                }
                let width = self.set.shape.block_shift;
                let v = get64(data, self.body + self.index * u64::from(width)) & low_mask(width);
                self.index += 1;
                Some(self.base_key + v)
            }
            _ => {
                if self.index == self.count {
                    return None;
                }
                loop {
                    let word = get64(data, self.body + self.cursor);
                    if word != 0 {
                        self.cursor += u64::from(word.trailing_zeros());
                        break;
                    }
                    self.cursor += WORD_BITS;
                }
                let bucket = self.cursor - self.index;
                self.cursor += 1;
                let l = self.set.shape.low_bits;
                let lower = self.body + BLOCK_BUCKETS + self.count + self.index * u64::from(l);
                let low = get64(data, lower) & low_mask(l);
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

    fn check(universe: u64, keys: &BTreeSet<u64>, probes: &[u64]) -> SetLayout {
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
        set.layout()
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
    fn all_block_kinds() {
        let mut s = 1;
        let u = 100_000_000u64;
        let mut keys: BTreeSet<u64> = (0..20_000).map(|_| lcg(&mut s) % u).collect();
        keys.extend(1_000_000..1_200_000); // full batches: bitmaps
        keys.extend((5_000_000..5_300_000).step_by(3)); // dense: bitmaps
        keys.extend((9_000_000..9_400_000).step_by(20)); // 5%: arrays
        keys.extend(u - 5000..u);
        // Short runs in sparse blocks: Elias–Fano blocks with full buckets and long unary parts.
        for r in 0..50 {
            let start = 20_000_000 + r * 100_000 + r * 7;
            keys.extend(start..start + 300 + r * 5);
        }
        let probes: Vec<u64> = (0..20_000).map(|_| lcg(&mut s) % u).collect();
        let layout = check(u, &keys, &probes);
        assert_eq!(layout.low_bits, 8, "{layout:?}");
        assert!(layout.bitmap_blocks > 0 && layout.ef_blocks > 0 && layout.array_blocks > 0, "{layout:?}");
    }

    #[test]
    fn edges_and_small_universes() {
        let u = 10_000_000_000u64;
        check(u, &BTreeSet::new(), &[0, u - 1]);
        check(u, &[0, u - 1].into(), &[1, u - 2]);
        check(u, &(0..50_000).chain(u - 50_000..u).collect(), &[]);
        check(1, &[0].into(), &[0, 1]);
        check(1000, &(0..1000).collect(), &[1000]);
        check(1000, &(0..1000).step_by(2).collect(), &[999]);
        check(1 << BLOCK_SHIFT_MAX, &[0, 1 << 40, (1 << BLOCK_SHIFT_MAX) - 1].into(), &[5]);
    }

    /// The worst case for size: 137 million uniformly scattered keys (no
    /// batches to turn into bitmaps). Slow; run with
    /// `cargo test --release -- --ignored --nocapture uniform_137m`.
    #[test]
    #[ignore]
    fn uniform_137m_size_and_speed() {
        let u = 10_000_000_000u64;
        let mut s = 5;
        let mut keys: Vec<u64> = (0..137_000_000u64).map(|_| lcg(&mut s) % u).collect();
        crate::radix::radix_sort(&mut keys);
        keys.dedup();
        let set = BlockedSet::from_sorted_distinct(u, &keys);
        let bits = set.size_bytes() as f64 * 8.0;
        let bound = crate::bench::lower_bound_bits(u, keys.len() as u64);
        let probes: Vec<u64> = (0..10_000_000).map(|_| lcg(&mut s) % u).collect();
        let hits: Vec<u64> = (0..10_000_000).map(|_| keys[(lcg(&mut s) % keys.len() as u64) as usize]).collect();
        drop(keys);
        let t = std::time::Instant::now();
        let found = hits.iter().filter(|&&k| set.contains(std::hint::black_box(k))).count();
        let hit_rate = hits.len() as f64 / t.elapsed().as_secs_f64();
        let t = std::time::Instant::now();
        let found_probes = probes.iter().filter(|&&k| set.contains(std::hint::black_box(k))).count();
        let probe_rate = probes.len() as f64 / t.elapsed().as_secs_f64();
        println!(
            "uniform: n = {}, {:.3} bits/key, bound {:.3} bits/key, ratio {:.3}; hits {:.2} M/s, random probes {:.2} M/s ({} found); {:?}",
            set.len(),
            bits / set.len() as f64,
            bound / set.len() as f64,
            bits / bound,
            hit_rate / 1e6,
            probe_rate / 1e6,
            found_probes,
            set.layout()
        );
        assert_eq!(found, hits.len());
        assert!(bits / bound < 1.3);
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
