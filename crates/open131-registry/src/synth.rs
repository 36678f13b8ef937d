//! Deterministic synthetic registry files for tests and benchmarks.
//!
//! The real lists cannot be shipped (personal data, 1.6 GB), so benchmarks and
//! tests run on generated files whose *shape* matters for the index: the
//! density of keys, how clustered they are, and the artefacts of the export.
//!
//! # The passport model ([`synth_passports`])
//!
//! * **Series** = region code (01–99) followed by the blank's print year
//!   (97, 98, 99, then 00–26, uniformly). Regions are drawn from
//!   `REGION_WEIGHTS`: every code has weight `REGION_BASE_WEIGHT`, and the
//!   populous regions more, roughly in proportion to population (45 Moscow
//!   city, 46 Moscow oblast, 40 St Petersburg, 03 Krasnodar krai, ...).
//! * **Half of the rows** (`CLUSTER_ROW_SHARE_PERCENT`) come from *clusters*:
//!   whole invalidated blank batches, i.e. contiguous number ranges in one
//!   series. A cluster's length is log-uniform-ish between
//!   `CLUSTER_MIN_ROWS` (200) and `CLUSTER_MIN_ROWS << CLUSTER_LENGTH_DOUBLINGS`
//!   (51,200): a doubling `e` is drawn uniformly, then a length uniformly in
//!   `[200·2^e, 400·2^e)`, computed with integers only.
//! * **The other half** are scattered singles: a random series and a uniform
//!   number (0–999999). Singles may repeat each other or fall inside a
//!   cluster; the index is a set, the import counts the duplicates.
//! * **Order**: like a real export, not sorted. `ACTIVE_CLUSTERS` clusters
//!   are open at any time; a cluster row goes to a random open cluster, which
//!   emits its next number, and an exhausted cluster is replaced by a new one.
//!   So each batch appears in ascending order, interleaved with others and
//!   with singles.
//! * **Artefacts**: each row is, with probability 1/`MALFORMED_EVERY_ROWS`
//!   (1/13,700, i.e. ~10,000 rows in 137 million as in the real file),
//!   replaced by a malformed one imitating what the real file contains:
//!   Cyrillic letters in the series (`ХЕ12,345678`), a 5-digit number,
//!   a stray `+`, a stray `]`, or a doubled space inside the number.
//!
//! # The taxpayer model ([`synth_taxpayers`])
//!
//! Persons get a 12-digit INN: region code (weighted as above), a tax office
//! 01–99, a 6-digit serial and the two check digits. Each person is linked to
//! one passport, two with probability `TWO_PASSPORTS_PERCENT` (15%) and three
//! with `THREE_PASSPORTS_PERCENT` (2%), written on consecutive rows; passport
//! keys are drawn like the passport singles. Malformed rows (1 in
//! `TAXPAYER_MALFORMED_EVERY_ROWS`) have an 11-digit INN, a letter in the INN,
//! a 9-digit passport, a third column or a space inside the passport.
//!
//! # Determinism
//!
//! Everything comes from one SplitMix64 stream (`rng.rs`) seeded with `seed`
//! and integer arithmetic, so a given `(rows, seed)` produces the same bytes
//! on every platform and in every version that keeps this model; the tests pin
//! a digest of a small output so that any change to the model is deliberate.
//! Rows are formatted by hand into a 1 MiB buffer (no `format!` per row).

use std::io::{self, Write};

use crate::import::{PASSPORT_CSV_HEADER, TAXPAYER_CSV_HEADER};
use crate::rng::SplitMix64;
use crate::taxpayers::inn12_with_check_digits;

/// One malformed passport row per this many rows, on average.
pub const MALFORMED_EVERY_ROWS: u64 = 13_700;
/// One malformed taxpayer row per this many rows, on average.
pub const TAXPAYER_MALFORMED_EVERY_ROWS: u64 = 20_000;
/// Percentage of passport rows that belong to clusters (stolen or invalidated batches).
pub const CLUSTER_ROW_SHARE_PERCENT: u64 = 50;
/// Shortest cluster, in rows.
pub const CLUSTER_MIN_ROWS: u64 = 200;
/// Cluster lengths span this many doublings above `CLUSTER_MIN_ROWS`.
pub const CLUSTER_LENGTH_DOUBLINGS: u64 = 8;
/// Clusters being written at the same time.
pub const ACTIVE_CLUSTERS: usize = 16;
/// Percentage of persons with exactly two passports.
pub const TWO_PASSPORTS_PERCENT: u64 = 15;
/// Percentage of persons with three passports.
pub const THREE_PASSPORTS_PERCENT: u64 = 2;
/// Weight of every region code not listed in `REGION_WEIGHTS`.
const REGION_BASE_WEIGHT: u32 = 2;
/// Extra weight of populous regions (OKATO code, weight), roughly population in 100k / 3.
const REGION_WEIGHTS: [(u8, u32); 26] = [
    (45, 43), // Moscow
    (46, 29), // Moscow oblast
    (40, 18), // St Petersburg
    (3, 19),  // Krasnodar krai
    (65, 14), // Sverdlovsk oblast
    (60, 14), // Rostov oblast
    (80, 13), // Bashkortostan
    (92, 13), // Tatarstan
    (75, 11), // Chelyabinsk oblast
    (82, 10), // Dagestan
    (22, 10), // Nizhny Novgorod oblast
    (36, 10), // Samara oblast
    (4, 9),   // Krasnoyarsk krai
    (7, 9),   // Stavropol krai
    (50, 9),  // Novosibirsk oblast
    (57, 8),  // Perm krai
    (18, 8),  // Volgograd oblast
    (32, 9),  // Kemerovo oblast
    (25, 8),  // Irkutsk oblast
    (20, 8),  // Voronezh oblast
    (63, 8),  // Saratov oblast
    (1, 7),   // Altai krai
    (53, 6),  // Orenburg oblast
    (52, 6),  // Omsk oblast
    (41, 6),  // Leningrad oblast
    (71, 5),  // Tyumen oblast
];
/// Blank print years in the series, as their two digits.
const BLANK_YEARS: [u8; 30] =
    [97, 98, 99, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26];
/// Numbers per series.
const NUMBERS_PER_SERIES: u64 = 1_000_000;
/// Output buffer size; flushed to the writer when nearly full.
const OUTPUT_BUFFER_BYTES: usize = 1 << 20;
/// Room kept free in the buffer for one row of any kind.
const ROW_MAX_BYTES: usize = 64;
/// Capital Cyrillic letters that look Latin, as used in the real file's broken series.
const CYRILLIC_LETTERS: [&str; 12] = ["А", "В", "Е", "К", "М", "Н", "О", "Р", "С", "Т", "У", "Х"];

/// What [`synth_passports`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SynthStats {
    /// Data rows written (header excluded), malformed ones included.
    pub rows: u64,
    /// Well-formed rows.
    pub valid_rows: u64,
    /// Malformed rows.
    pub malformed_rows: u64,
    /// Well-formed rows that belong to clusters.
    pub cluster_rows: u64,
    /// Well-formed scattered rows.
    pub single_rows: u64,
    /// Clusters started (the last ones may be cut short by the end of the file).
    pub clusters: u64,
    /// Bytes written, header included.
    pub bytes: u64,
}

/// What [`synth_taxpayers`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaxpayerSynthStats {
    /// Data rows written (header excluded), malformed ones included.
    pub rows: u64,
    /// Well-formed rows.
    pub valid_rows: u64,
    /// Malformed rows.
    pub malformed_rows: u64,
    /// Persons (distinct INNs, barring the rare random collision).
    pub persons: u64,
    /// Persons written with more than one passport.
    pub persons_with_several_passports: u64,
    /// Bytes written, header included.
    pub bytes: u64,
}

/// "00".."99" as 200 bytes, for formatting two digits at a time.
static DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends `value` as exactly `digits` decimal digits (`digits` even, value fits).
#[inline]
fn push_digits(buf: &mut Vec<u8>, mut value: u64, digits: usize) {
    let start = buf.len();
    buf.resize(start + digits, b'0');
    let mut end = start + digits;
    while end > start + 1 {
        let pair = (value % 100) as usize * 2;
        buf[end - 2] = DIGIT_PAIRS[pair];
        buf[end - 1] = DIGIT_PAIRS[pair + 1];
        value /= 100;
        end -= 2;
    }
    if end > start {
        buf[start] = b'0' + (value % 10) as u8;
    }
}

/// Buffered output counting bytes.
struct Out<W: Write> {
    inner: W,
    buf: Vec<u8>,
    bytes: u64,
}

impl<W: Write> Out<W> {
    fn new(inner: W) -> Out<W> {
        Out { inner, buf: Vec::with_capacity(OUTPUT_BUFFER_BYTES), bytes: 0 }
    }

    #[inline]
    fn maybe_flush(&mut self) -> io::Result<()> {
        if self.buf.len() + ROW_MAX_BYTES > OUTPUT_BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<u64> {
        self.flush()?;
        self.inner.flush()?;
        Ok(self.bytes)
    }
}

/// Draws region codes with the population weights.
struct Regions {
    table: Vec<u8>,
}

impl Regions {
    fn new() -> Regions {
        let mut table = Vec::new();
        for code in 1..=99u8 {
            let extra = REGION_WEIGHTS.iter().find(|(c, _)| *c == code).map_or(0, |(_, w)| *w);
            table.extend(std::iter::repeat_n(code, (REGION_BASE_WEIGHT + extra) as usize));
        }
        Regions { table }
    }

    #[inline]
    fn draw(&self, rng: &mut SplitMix64) -> u64 {
        u64::from(self.table[rng.below(self.table.len() as u64) as usize])
    }

    /// A random series: region code then blank year.
    #[inline]
    fn series(&self, rng: &mut SplitMix64) -> u64 {
        let year = BLANK_YEARS[rng.below(BLANK_YEARS.len() as u64) as usize];
        self.draw(rng) * 100 + u64::from(year)
    }
}

#[derive(Debug, Clone, Copy)]
struct Cluster {
    series: u64,
    start: u64,
    len: u64,
    next: u64,
}

fn new_cluster(rng: &mut SplitMix64, regions: &Regions) -> Cluster {
    let series = regions.series(rng);
    let base = CLUSTER_MIN_ROWS << rng.below(CLUSTER_LENGTH_DOUBLINGS);
    let len = (base + rng.below(base)).min(NUMBERS_PER_SERIES);
    let start = rng.below(NUMBERS_PER_SERIES - len + 1);
    Cluster { series, start, len, next: 0 }
}

#[inline]
fn push_passport_row(buf: &mut Vec<u8>, series: u64, number: u64) {
    push_digits(buf, series, 4);
    buf.push(b',');
    push_digits(buf, number, 6);
    buf.push(b'\n');
}

fn push_malformed_passport(buf: &mut Vec<u8>, rng: &mut SplitMix64, series: u64, number: u64) {
    match rng.below(5) {
        0 => {
            for _ in 0..2 {
                buf.extend_from_slice(CYRILLIC_LETTERS[rng.below(CYRILLIC_LETTERS.len() as u64) as usize].as_bytes());
            }
            push_digits(buf, series % 100, 2);
            buf.push(b',');
            push_digits(buf, number, 6);
        }
        1 => {
            push_digits(buf, series, 4);
            buf.push(b',');
            push_digits(buf, number % 100_000, 5);
        }
        2 => {
            push_digits(buf, series, 4);
            buf.extend_from_slice(b",+");
            push_digits(buf, number, 6);
        }
        3 => {
            push_digits(buf, series, 4);
            buf.push(b',');
            push_digits(buf, number, 6);
            buf.push(b']');
        }
        _ => {
            push_digits(buf, series, 4);
            buf.push(b',');
            push_digits(buf, number / 1000, 3);
            buf.extend_from_slice(b"  ");
            push_digits(buf, number % 1000, 3);
        }
    }
    buf.push(b'\n');
}

/// Writes a synthetic MVD list of `rows` data rows (see the module docs for
/// the model) with its header to `out`. Same `(rows, seed)`, same bytes.
pub fn synth_passports(rows: u64, seed: u64, out: impl Write) -> io::Result<SynthStats> {
    let mut rng = SplitMix64::new(seed);
    let regions = Regions::new();
    let mut out = Out::new(out);
    let mut stats = SynthStats::default();
    out.buf.extend_from_slice(PASSPORT_CSV_HEADER.as_bytes());
    out.buf.push(b'\n');
    let mut clusters: Vec<Cluster> = (0..ACTIVE_CLUSTERS).map(|_| new_cluster(&mut rng, &regions)).collect();
    stats.clusters = ACTIVE_CLUSTERS as u64;
    for _ in 0..rows {
        out.maybe_flush()?;
        if rng.below(MALFORMED_EVERY_ROWS) == 0 {
            let series = regions.series(&mut rng);
            let number = rng.below(NUMBERS_PER_SERIES);
            push_malformed_passport(&mut out.buf, &mut rng, series, number);
            stats.malformed_rows += 1;
        } else if rng.below(100) < CLUSTER_ROW_SHARE_PERCENT {
            let slot = rng.below(ACTIVE_CLUSTERS as u64) as usize;
            let c = &mut clusters[slot];
            push_passport_row(&mut out.buf, c.series, c.start + c.next);
            c.next += 1;
            if c.next == c.len {
                *c = new_cluster(&mut rng, &regions);
                stats.clusters += 1;
            }
            stats.cluster_rows += 1;
        } else {
            let series = regions.series(&mut rng);
            push_passport_row(&mut out.buf, series, rng.below(NUMBERS_PER_SERIES));
            stats.single_rows += 1;
        }
    }
    stats.rows = rows;
    stats.valid_rows = stats.cluster_rows + stats.single_rows;
    stats.bytes = out.finish()?;
    Ok(stats)
}

fn push_malformed_taxpayer(buf: &mut Vec<u8>, rng: &mut SplitMix64, inn: u64, passport: u64) {
    match rng.below(5) {
        0 => {
            push_digits(buf, inn / 10, 11);
            buf.push(b',');
            push_digits(buf, passport, 10);
        }
        1 => {
            push_digits(buf, inn / 1_000_000, 6);
            buf.push(b'O');
            push_digits(buf, inn % 100_000, 5);
            buf.push(b',');
            push_digits(buf, passport, 10);
        }
        2 => {
            push_digits(buf, inn, 12);
            buf.push(b',');
            push_digits(buf, passport % 1_000_000_000, 9);
        }
        3 => {
            push_digits(buf, inn, 12);
            buf.push(b',');
            push_digits(buf, passport, 10);
            buf.extend_from_slice(b",1");
        }
        _ => {
            push_digits(buf, inn, 12);
            buf.push(b',');
            push_digits(buf, passport / 1_000_000, 4);
            buf.push(b' ');
            push_digits(buf, passport % 1_000_000, 6);
        }
    }
    buf.push(b'\n');
}

/// Writes a synthetic `inn,passport_number` file of `rows` data rows (see the
/// module docs for the model). Same `(rows, seed)`, same bytes.
pub fn synth_taxpayers(rows: u64, seed: u64, out: impl Write) -> io::Result<TaxpayerSynthStats> {
    let mut rng = SplitMix64::new(seed);
    let regions = Regions::new();
    let mut out = Out::new(out);
    let mut stats = TaxpayerSynthStats::default();
    out.buf.extend_from_slice(TAXPAYER_CSV_HEADER.as_bytes());
    out.buf.push(b'\n');
    while stats.rows < rows {
        let first_ten = regions.draw(&mut rng) * 100_000_000 + (1 + rng.below(99)) * 1_000_000 + rng.below(1_000_000);
        let Some(inn) = inn12_with_check_digits(first_ten) else {
            continue;
        };
        let roll = rng.below(100);
        let passports = if roll < THREE_PASSPORTS_PERCENT {
            3
        } else if roll < THREE_PASSPORTS_PERCENT + TWO_PASSPORTS_PERCENT {
            2
        } else {
            1
        };
        stats.persons += 1;
        if passports > 1 {
            stats.persons_with_several_passports += 1;
        }
        for _ in 0..passports {
            if stats.rows == rows {
                break;
            }
            out.maybe_flush()?;
            let passport = regions.series(&mut rng) * NUMBERS_PER_SERIES + rng.below(NUMBERS_PER_SERIES);
            if rng.below(TAXPAYER_MALFORMED_EVERY_ROWS) == 0 {
                push_malformed_taxpayer(&mut out.buf, &mut rng, inn, passport);
                stats.malformed_rows += 1;
            } else {
                push_digits(&mut out.buf, inn, 12);
                out.buf.push(b',');
                push_digits(&mut out.buf, passport, 10);
                out.buf.push(b'\n');
                stats.valid_rows += 1;
            }
            stats.rows += 1;
        }
    }
    stats.bytes = out.finish()?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{import_passports_csv, import_taxpayers_csv};
    use xxhash_rust::xxh3::xxh3_64;

    #[test]
    fn digits_are_formatted_by_hand_correctly() {
        for (v, d) in [(0u64, 4usize), (7, 6), (123_456, 6), (99, 2), (12_345, 5), (9_999_999_999, 10), (5, 1)] {
            let mut b = Vec::new();
            push_digits(&mut b, v, d);
            assert_eq!(String::from_utf8(b).unwrap(), format!("{v:0d$}"));
        }
    }

    #[test]
    fn passports_are_deterministic() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        let sa = synth_passports(50_000, 42, &mut a).unwrap();
        let sb = synth_passports(50_000, 42, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        let mut c = Vec::new();
        synth_passports(50_000, 43, &mut c).unwrap();
        assert_ne!(a, c);
        // Pinned: a change of these bytes is a change of the model (bump it deliberately).
        let mut small = Vec::new();
        synth_passports(2_000, 1, &mut small).unwrap();
        assert_eq!(xxh3_64(&small), PINNED_PASSPORTS_2000_SEED_1, "{:#x}", xxh3_64(&small));
        let text = String::from_utf8(small).unwrap();
        assert!(text.starts_with("PASSP_SERIES,PASSP_NUMBER\n"));
        assert_eq!(text.lines().count(), 2_001);
    }

    const PINNED_PASSPORTS_2000_SEED_1: u64 = 0x9915_e777_6bf0_6358;

    #[test]
    fn passports_import_with_expected_counts() {
        let rows = 300_000;
        let mut csv = Vec::new();
        let s = synth_passports(rows, 7, &mut csv).unwrap();
        assert_eq!(s.bytes, csv.len() as u64);
        assert_eq!(s.rows, rows);
        assert_eq!(s.valid_rows + s.malformed_rows, rows);
        // About one malformed row in 13,700 and half the rows in clusters.
        assert!((10..=40).contains(&s.malformed_rows), "{s:?}");
        let share = s.cluster_rows as f64 / s.valid_rows as f64;
        assert!((0.45..0.55).contains(&share), "{s:?}");
        let (index, stats) = import_passports_csv(&csv[..], None, &mut |_| {}).unwrap();
        assert_eq!(stats.rows, rows);
        assert_eq!(stats.valid_rows, s.valid_rows);
        assert_eq!(stats.malformed_rows, s.malformed_rows);
        assert_eq!(stats.blank_lines, 0);
        assert_eq!(index.len() + stats.duplicate_rows, s.valid_rows);
        assert!(stats.duplicate_rows < rows / 100, "{stats:?}");
        assert_eq!(index.malformed_len() as u64, s.malformed_rows);
    }

    #[test]
    fn taxpayers_are_deterministic_and_import() {
        let rows = 100_000;
        let mut a = Vec::new();
        let mut b = Vec::new();
        let s = synth_taxpayers(rows, 9, &mut a).unwrap();
        synth_taxpayers(rows, 9, &mut b).unwrap();
        assert_eq!(a, b);
        assert_eq!(s.rows, rows);
        assert_eq!(s.bytes, a.len() as u64);
        assert!(s.persons_with_several_passports * 100 / s.persons >= 12, "{s:?}");
        let (index, stats) = import_taxpayers_csv(&a[..], None, &mut |_| {}).unwrap();
        assert_eq!(stats.rows, rows);
        assert_eq!(stats.valid_rows, s.valid_rows);
        assert_eq!(stats.malformed_rows, s.malformed_rows);
        assert_eq!(stats.inn_check_digit_failures, 0);
        // Random INNs rarely collide (birthday effect over ~10^9 weighted prefixes).
        assert!(index.inn_count() <= s.persons && index.inn_count() + 20 >= s.persons, "{s:?} {}", index.inn_count());
        // Every well-formed row is found.
        for line in String::from_utf8(a).unwrap().lines().skip(1) {
            if let Some((inn, passport)) = crate::import::parse_taxpayer_row(line.as_bytes()) {
                assert!(index.contains_pair(inn, passport), "{line}");
            } else {
                assert!(index.contains_raw(line), "{line}");
            }
        }
    }
}
