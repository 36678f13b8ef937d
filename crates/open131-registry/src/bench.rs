//! End-to-end benchmark of the passport index (`open131 registry bench`,
//! `cargo run --release --example bench`).
//!
//! Steps, each timed on one thread:
//!
//! 1. synthesize the plain CSV of `rows` rows into `dir` ([`crate::synth`]);
//! 2. build the index from it (streaming import: read + parse, then radix
//!    sort + Elias–Fano encoding), rows/s;
//! 3. save the index (atomic write); its size on disk and in memory is
//!    reported next to the information-theoretic lower bound
//!    `log2 C(10^10, n)`; pre-generate the lookup keys, then drop the index;
//! 4. build from a bzip2 file of the first `bz2_rows` rows (the same seed, so
//!    a prefix of the plain list; compressed with the `bzip2` crate, not
//!    timed), rows/s;
//! 5. load the file fresh, timing from the start of `load` to the first
//!    answered lookup and reading VmRSS from `/proc/self/status` before and
//!    after (page cache warm: the file was just written; the delta is exact
//!    for large indexes, whose arrays are `mmap`ed by the allocator, but can
//!    undercount small ones that reuse memory freed earlier); then time lookups
//!    of the pre-generated key arrays (so the PRNG is outside the timed
//!    loop): hits sampled evenly from the list and shuffled, misses uniform
//!    over the key space and rejected when present. Results are counted and
//!    checked (all hits found, no miss found) and the keys pass through
//!    `black_box`, so the loop cannot be optimised away;
//! 6. at `compare_rows` rows, the same lookups against a `HashSet<u64>` (std,
//!    SipHash) and a sorted `Vec<u64>` (binary search);
//! 7. the taxpayer index at `taxpayer_rows` rows (by default in the real
//!    lists' ratio, 50 M pairs for 137 M passports): synthesize, build, save,
//!    load, and time `contains_pair` for present and absent pairs.
//!
//! The lower bound uses Stirling's formula:
//! `log2 C(U, n) ≈ U·H(n/U) − ½·log2(2π·n·(1 − n/U))`, where `U·H(n/U) =
//! n·log2(U/n) + (U − n)·log2(U/(U − n))` (computed with `ln_1p` for
//! accuracy); the error is O(1/n) bits, i.e. nil at these sizes.

use std::collections::HashSet;
use std::f64::consts::{LN_2, PI};
use std::fs::{self, File};
use std::hint::black_box;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::format::IndexFileError;
use crate::import::{import_passports_file, import_taxpayers_file, ImportFileError, ImportStats, Phase, Progress};
use crate::passports::{PassportIndex, PASSPORT_KEY_UNIVERSE};
use crate::rng::SplitMix64;
use crate::synth::{synth_passports, synth_taxpayers};
use crate::taxpayers::{TaxpayerIndex, INN_UNIVERSE};

/// Default rows of the main run (the size of the real MVD list).
pub const DEFAULT_ROWS: u64 = 137_000_000;
/// Default rows of the side-by-side comparison with std collections.
pub const DEFAULT_COMPARE_ROWS: u64 = 20_000_000;
/// Default rows of the bzip2 import.
pub const DEFAULT_BZ2_ROWS: u64 = 5_000_000;
/// Default lookups per timed run.
pub const DEFAULT_LOOKUPS: u64 = 10_000_000;
/// Lookups run untimed before each timed run (to train the branch predictors).
const WARMUP_LOOKUPS: usize = 1_000_000;
/// Goal: index size at most this multiple of the lower bound.
pub const GOAL_SIZE_RATIO_MAX: f64 = 1.3;
/// Goal: lookups per second on one core, hits and misses.
pub const GOAL_LOOKUPS_PER_SEC_MIN: f64 = 5_000_000.0;
/// Goal: rows per second per core when building from plain CSV.
pub const GOAL_BUILD_ROWS_PER_SEC_MIN: f64 = 2_000_000.0;
/// Goal: seconds from the start of `load` to the first answered lookup.
pub const GOAL_LOAD_SECS_MAX: f64 = 1.0;
/// Default taxpayer rows = rows / this × `TAXPAYER_ROWS_MULTIPLIER` (50 M pairs for 137 M passports).
const TAXPAYER_ROWS_DIVISOR: u64 = 137;
/// See `TAXPAYER_ROWS_DIVISOR`.
const TAXPAYER_ROWS_MULTIPLIER: u64 = 50;
/// Print an import progress line every this many rows.
const PROGRESS_PRINT_EVERY_ROWS: u64 = 32 << 20;
/// Seed offset for the key arrays, so they differ from the list's own stream.
const KEY_STREAM_SEED_OFFSET: u64 = 0x5EED_0F4B_E4C4;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchOptions {
    /// Rows of the synthetic list.
    pub rows: u64,
    /// Seed of the synthetic list and of the key arrays.
    pub seed: u64,
    /// Rows of the comparison with `HashSet` and `Vec` (0 skips it).
    pub compare_rows: u64,
    /// Rows of the bzip2 import (capped at `rows`; 0 skips it).
    pub bz2_rows: u64,
    /// Rows of the taxpayer run (`None`: `rows × 50 / 137`, the real lists' ratio; 0 skips it).
    pub taxpayer_rows: Option<u64>,
    /// Lookups per timed run.
    pub lookups: u64,
    /// Directory for the generated files.
    pub dir: PathBuf,
    /// Keep the generated CSV and index files instead of deleting them.
    pub keep_files: bool,
}

impl Default for BenchOptions {
    fn default() -> BenchOptions {
        BenchOptions {
            rows: DEFAULT_ROWS,
            seed: 1,
            compare_rows: DEFAULT_COMPARE_ROWS,
            bz2_rows: DEFAULT_BZ2_ROWS,
            taxpayer_rows: None,
            lookups: DEFAULT_LOOKUPS,
            dir: std::env::temp_dir().join("open131-registry-bench"),
            keep_files: false,
        }
    }
}

/// Lookups per second of one structure.
#[derive(Debug, Clone, PartialEq)]
pub struct LookupRate {
    /// Hits per second.
    pub hits_per_sec: f64,
    /// Misses per second.
    pub misses_per_sec: f64,
}

/// One line of the comparison table.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareRow {
    /// Structure.
    pub name: &'static str,
    /// Heap bytes per distinct key.
    pub bytes_per_key: f64,
    /// Lookup rates.
    pub rate: LookupRate,
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Options used.
    pub options: BenchOptions,
    /// Import statistics of the plain CSV.
    pub import: ImportStats,
    /// Seconds to synthesize the plain CSV.
    pub synth_secs: f64,
    /// Bytes of the plain CSV.
    pub csv_bytes: u64,
    /// Import statistics of the bzip2 slice (when run).
    pub bz2_import: Option<ImportStats>,
    /// Seconds to save the index.
    pub save_secs: f64,
    /// Distinct keys indexed.
    pub keys: u64,
    /// Bytes of the index file.
    pub file_bytes: u64,
    /// `size_bytes()` of the loaded index.
    pub size_bytes: u64,
    /// Lower bound `log2 C(10^10, n)` in bytes.
    pub lower_bound_bytes: f64,
    /// VmRSS before the fresh load, KiB.
    pub rss_before_kib: Option<u64>,
    /// VmRSS after the fresh load and the first lookup, KiB.
    pub rss_after_kib: Option<u64>,
    /// Seconds from the start of `load` to the first answered lookup.
    pub load_to_first_lookup_secs: f64,
    /// Lookup rates of the full index.
    pub rate: LookupRate,
    /// Comparison at `compare_rows`.
    pub compare: Vec<CompareRow>,
    /// Distinct keys of the comparison set.
    pub compare_keys: u64,
    /// The taxpayer index run (when not skipped).
    pub taxpayers: Option<TaxpayerBench>,
}

/// Taxpayer index measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct TaxpayerBench {
    /// Import statistics.
    pub import: ImportStats,
    /// Seconds to synthesize the CSV.
    pub synth_secs: f64,
    /// Distinct pairs indexed.
    pub pairs: u64,
    /// Distinct INNs.
    pub inns: u64,
    /// Bytes of the index file.
    pub file_bytes: u64,
    /// `size_bytes()` of the loaded index.
    pub size_bytes: u64,
    /// Seconds to load the index file.
    pub load_secs: f64,
    /// `contains_pair` rates.
    pub rate: LookupRate,
}

impl BenchReport {
    /// Index file size over the lower bound.
    pub fn file_ratio(&self) -> f64 {
        self.file_bytes as f64 / self.lower_bound_bytes
    }

    /// In-memory size over the lower bound.
    pub fn memory_ratio(&self) -> f64 {
        self.size_bytes as f64 / self.lower_bound_bytes
    }

    /// Rows per second of the plain CSV build (read + parse + sort + encode).
    pub fn build_rows_per_sec(&self) -> f64 {
        rate(self.import.rows, self.import.read_time + self.import.build_time)
    }
}

/// Why the benchmark stopped.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A file operation failed.
    #[error("{what} ({}): {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// File or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Writing the report failed.
    #[error("writing the report: {0}")]
    Output(#[source] io::Error),
    /// An import failed.
    #[error(transparent)]
    Import(#[from] ImportFileError),
    /// Saving or loading the index failed.
    #[error(transparent)]
    IndexFile(#[from] IndexFileError),
    /// A lookup gave a wrong answer (a bug).
    #[error("wrong lookup results: {0}")]
    WrongAnswer(String),
}

fn io_at<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BenchError + 'a {
    move |source| BenchError::Io { what, path: path.to_path_buf(), source }
}

/// `log2 C(universe, n)` by Stirling's formula (see the module docs).
pub fn lower_bound_bits(universe: u64, n: u64) -> f64 {
    if n == 0 || n >= universe {
        return 0.0;
    }
    let (u, n) = (universe as f64, n as f64);
    let p = n / u;
    let entropy = n * (u / n).log2() - (u - n) * (-p).ln_1p() / LN_2;
    entropy - 0.5 * (2.0 * PI * n * (1.0 - p)).log2()
}

/// Resident set size of this process in KiB (Linux only).
pub fn vm_rss_kib() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn rate(count: u64, time: Duration) -> f64 {
    count as f64 / time.as_secs_f64().max(1e-9)
}

fn shuffle(v: &mut [u64], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        v.swap(i, j);
    }
}

/// `count` keys of the index, evenly spread over it, shuffled.
fn sample_hits(index: &PassportIndex, count: usize, rng: &mut SplitMix64) -> Vec<u64> {
    let n = index.len() as usize;
    if n == 0 || count == 0 {
        return Vec::new();
    }
    let stride = (n / count).max(1);
    let mut keys: Vec<u64> = index.iter().step_by(stride).take(count).collect();
    while keys.len() < count {
        let more = (count - keys.len()).min(keys.len());
        keys.extend_from_within(..more);
    }
    shuffle(&mut keys, rng);
    keys
}

/// `count` uniform keys that are not in the index.
fn sample_misses(index: &PassportIndex, count: usize, rng: &mut SplitMix64) -> Vec<u64> {
    let mut keys = Vec::with_capacity(count);
    while keys.len() < count {
        let k = rng.below(PASSPORT_KEY_UNIVERSE);
        if !index.contains(k) {
            keys.push(k);
        }
    }
    keys
}

/// Runs `lookup` over `keys`: the first `WARMUP_LOOKUPS` untimed (to train
/// the branch predictors), the others timed (so no timed key was warmed up).
/// Returns lookups/s and how many of all the keys were found.
fn time_lookups(keys: &[u64], lookup: impl Fn(u64) -> bool) -> (f64, u64) {
    let split = if keys.len() > 2 * WARMUP_LOOKUPS { WARMUP_LOOKUPS } else { 0 };
    let (warm, timed) = keys.split_at(split);
    let mut found = 0u64;
    for &k in warm {
        found += u64::from(lookup(black_box(k)));
    }
    let started = Instant::now();
    for &k in timed {
        found += u64::from(lookup(black_box(k)));
    }
    let elapsed = started.elapsed();
    (rate(timed.len() as u64, elapsed), black_box(found))
}

fn measure(name: &str, hits: &[u64], misses: &[u64], lookup: impl Fn(u64) -> bool) -> Result<LookupRate, BenchError> {
    let (hits_per_sec, found) = time_lookups(hits, &lookup);
    if found != hits.len() as u64 {
        return Err(BenchError::WrongAnswer(format!("{name}: {found} of {} hits found", hits.len())));
    }
    let (misses_per_sec, found) = time_lookups(misses, &lookup);
    if found != 0 {
        return Err(BenchError::WrongAnswer(format!("{name}: {found} of {} misses found", misses.len())));
    }
    Ok(LookupRate { hits_per_sec, misses_per_sec })
}

fn millions(x: f64) -> String {
    format!("{:.2} M", x / 1e6)
}

fn megabytes(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1e6)
}

fn with_commas(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

struct Writer<'a> {
    out: &'a mut dyn Write,
}

impl Writer<'_> {
    fn line(&mut self, s: impl AsRef<str>) -> Result<(), BenchError> {
        writeln!(self.out, "{}", s.as_ref()).and_then(|()| self.out.flush()).map_err(BenchError::Output)
    }
}

fn synth_file(path: &Path, rows: u64, seed: u64) -> Result<u64, BenchError> {
    let file = File::create(path).map_err(io_at("creating the CSV", path))?;
    let stats = synth_passports(rows, seed, file).map_err(io_at("writing the CSV", path))?;
    Ok(stats.bytes)
}

fn synth_bz2_file(path: &Path, rows: u64, seed: u64) -> Result<u64, BenchError> {
    let file = File::create(path).map_err(io_at("creating the .bz2", path))?;
    let mut enc = bzip2::write::BzEncoder::new(BufWriter::new(file), bzip2::Compression::best());
    synth_passports(rows, seed, &mut enc).map_err(io_at("compressing the CSV", path))?;
    let mut inner = enc.finish().map_err(io_at("compressing the CSV", path))?;
    inner.flush().map_err(io_at("writing the .bz2", path))?;
    drop(inner);
    Ok(fs::metadata(path).map_err(io_at("reading the .bz2 size", path))?.len())
}

/// The line to print for a progress report, if any.
fn progress_line(p: &Progress, next_print: &mut u64) -> Option<String> {
    match p.phase {
        Phase::Reading if p.rows >= *next_print => {
            *next_print += PROGRESS_PRINT_EVERY_ROWS;
            let pct = p.total_bytes.map(|t| format!(" ({:.0}%)", 100.0 * p.bytes_read as f64 / t.max(1) as f64));
            Some(format!(
                "    … {} rows{} in {:.1} s",
                with_commas(p.rows),
                pct.unwrap_or_default(),
                p.elapsed.as_secs_f64()
            ))
        }
        Phase::Building => Some(format!(
            "    … {} rows read in {:.1} s; sorting and encoding",
            with_commas(p.rows),
            p.elapsed.as_secs_f64()
        )),
        _ => None,
    }
}

/// Runs an import, printing progress lines as it goes.
fn with_progress<T>(
    w: &mut Writer<'_>,
    import: impl FnOnce(&mut dyn FnMut(&Progress)) -> Result<T, ImportFileError>,
) -> Result<T, BenchError> {
    let mut next_print = PROGRESS_PRINT_EVERY_ROWS;
    let mut write_error = None;
    let result = import(&mut |p: &Progress| {
        if let Some(line) = progress_line(p, &mut next_print) {
            if write_error.is_none() {
                write_error = w.line(line).err();
            }
        }
    });
    if let Some(e) = write_error {
        return Err(e);
    }
    Ok(result?)
}

fn import_with_progress(path: &Path, w: &mut Writer<'_>) -> Result<(PassportIndex, ImportStats), BenchError> {
    with_progress(w, |progress| import_passports_file(path, progress))
}

/// Synthesizes, imports, saves, loads and queries a taxpayer index of `rows` rows.
fn run_taxpayers(
    opts: &BenchOptions,
    rows: u64,
    w: &mut Writer<'_>,
    created: &mut Vec<PathBuf>,
    rng: &mut SplitMix64,
) -> Result<TaxpayerBench, BenchError> {
    let csv = opts.dir.join(format!("taxpayers-{rows}-{}.csv", opts.seed));
    created.push(csv.clone());
    w.line(format!("[7/7] taxpayer index: synthesizing {} rows, building, saving, loading", with_commas(rows)))?;
    let t = Instant::now();
    let file = File::create(&csv).map_err(io_at("creating the CSV", &csv))?;
    synth_taxpayers(rows, opts.seed, file).map_err(io_at("writing the CSV", &csv))?;
    let synth_secs = t.elapsed().as_secs_f64();
    let (index, import) = with_progress(w, |progress| import_taxpayers_file(&csv, progress))?;
    if !opts.keep_files {
        let _ = fs::remove_file(&csv);
    }
    let idx = opts.dir.join(format!("taxpayers-{rows}-{}.idx", opts.seed));
    created.push(idx.clone());
    index.save(&idx)?;
    let file_bytes = fs::metadata(&idx).map_err(io_at("reading the index size", &idx))?.len();
    let lookups = opts.lookups as usize;
    let stride = (index.len() as usize / lookups.max(1)).max(1);
    let mut hits: Vec<(u64, u64)> = index.iter().step_by(stride).take(lookups).collect();
    for i in (1..hits.len()).rev() {
        hits.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut misses = Vec::with_capacity(lookups);
    while misses.len() < lookups {
        let pair = (rng.below(INN_UNIVERSE), rng.below(PASSPORT_KEY_UNIVERSE));
        if !index.contains_pair(pair.0, pair.1) {
            misses.push(pair);
        }
    }
    drop(index);
    let t = Instant::now();
    let loaded = TaxpayerIndex::load(&idx)?;
    let load_secs = t.elapsed().as_secs_f64();
    let time = |pairs: &[(u64, u64)]| -> (f64, u64) {
        let started = Instant::now();
        let mut found = 0u64;
        for &(inn, passport) in pairs {
            found += u64::from(loaded.contains_pair(black_box(inn), black_box(passport)));
        }
        (rate(pairs.len() as u64, started.elapsed()), black_box(found))
    };
    let (hits_per_sec, found_hits) = time(&hits);
    let (misses_per_sec, found_misses) = time(&misses);
    if found_hits != hits.len() as u64 || found_misses != 0 {
        return Err(BenchError::WrongAnswer(format!(
            "taxpayers: {found_hits} of {} hits and {found_misses} of {} misses found",
            hits.len(),
            misses.len()
        )));
    }
    Ok(TaxpayerBench {
        import,
        synth_secs,
        pairs: loaded.len(),
        inns: loaded.inn_count(),
        file_bytes,
        size_bytes: loaded.size_bytes() as u64,
        load_secs,
        rate: LookupRate { hits_per_sec, misses_per_sec },
    })
}

/// Runs the benchmark, printing a readable report to `out`.
pub fn run(opts: &BenchOptions, out: &mut dyn Write) -> Result<BenchReport, BenchError> {
    let mut w = Writer { out };
    fs::create_dir_all(&opts.dir).map_err(io_at("creating the benchmark directory", &opts.dir))?;
    let mut created: Vec<PathBuf> = Vec::new();
    let result = run_inner(opts, &mut w, &mut created);
    if !opts.keep_files {
        for p in &created {
            // Best effort: a leftover file in the benchmark directory is not worth failing for.
            let _ = fs::remove_file(p);
        }
    }
    result
}

fn run_inner(opts: &BenchOptions, w: &mut Writer<'_>, created: &mut Vec<PathBuf>) -> Result<BenchReport, BenchError> {
    let lookups = opts.lookups as usize;
    let mut rng = SplitMix64::new(opts.seed.wrapping_add(KEY_STREAM_SEED_OFFSET));
    w.line(format!(
        "open131 registry bench: {} rows, seed {}, {} lookups per run (the first {} untimed), dir {}",
        with_commas(opts.rows),
        opts.seed,
        with_commas(opts.lookups),
        with_commas(if opts.lookups as usize > 2 * WARMUP_LOOKUPS { WARMUP_LOOKUPS as u64 } else { 0 }),
        opts.dir.display()
    ))?;

    // 1. Synthesize.
    let csv = opts.dir.join(format!("passports-{}-{}.csv", opts.rows, opts.seed));
    created.push(csv.clone());
    w.line(format!("[1/7] synthesizing {}", csv.display()))?;
    let t = Instant::now();
    let csv_bytes = synth_file(&csv, opts.rows, opts.seed)?;
    let synth_secs = t.elapsed().as_secs_f64();

    // 2. Build from plain CSV.
    w.line("[2/7] building the index from the plain CSV")?;
    let (index, import) = import_with_progress(&csv, w)?;
    if !opts.keep_files {
        let _ = fs::remove_file(&csv);
    }

    // 4. Save (before the bz2 run, so that the big index can be dropped early).
    let idx_path = opts.dir.join(format!("passports-{}-{}.idx", opts.rows, opts.seed));
    created.push(idx_path.clone());
    w.line(format!("[3/7] saving {}", idx_path.display()))?;
    let t = Instant::now();
    index.save(&idx_path)?;
    let save_secs = t.elapsed().as_secs_f64();
    let file_bytes = fs::metadata(&idx_path).map_err(io_at("reading the index size", &idx_path))?.len();
    let keys = index.len();
    let hits = sample_hits(&index, lookups, &mut rng);
    let misses = sample_misses(&index, lookups, &mut rng);
    drop(index);

    // 3. Build from bzip2.
    let bz2_rows = opts.bz2_rows.min(opts.rows);
    let bz2_import = if bz2_rows > 0 {
        let bz2 = opts.dir.join(format!("passports-{bz2_rows}-{}.csv.bz2", opts.seed));
        created.push(bz2.clone());
        w.line(format!(
            "[4/7] compressing {} rows to {} (not timed), then building from it",
            with_commas(bz2_rows),
            bz2.display()
        ))?;
        synth_bz2_file(&bz2, bz2_rows, opts.seed)?;
        let (_, stats) = import_with_progress(&bz2, w)?;
        Some(stats)
    } else {
        None
    };

    // 5. Fresh load.
    w.line("[5/7] loading the index file fresh and timing lookups")?;
    let rss_before_kib = vm_rss_kib();
    let t = Instant::now();
    let loaded = PassportIndex::load(&idx_path)?;
    let first = loaded.contains(hits.first().copied().unwrap_or(0));
    let load_to_first_lookup_secs = t.elapsed().as_secs_f64();
    black_box(first);
    let rss_after_kib = vm_rss_kib();
    let size_bytes = loaded.size_bytes() as u64;
    let layout = loaded.layout();

    // 6. Lookups.
    let rate = measure("index", &hits, &misses, |k| loaded.contains(k))?;
    drop(loaded);
    drop(hits);
    drop(misses);

    // 7. Comparison.
    let mut compare = Vec::new();
    let mut compare_keys = 0;
    if opts.compare_rows > 0 {
        w.line(format!("[6/7] comparison at {} rows", with_commas(opts.compare_rows)))?;
        let small_csv = opts.dir.join(format!("passports-{}-{}.csv", opts.compare_rows, opts.seed));
        created.push(small_csv.clone());
        synth_file(&small_csv, opts.compare_rows, opts.seed)?;
        let (small, _) = import_with_progress(&small_csv, w)?;
        if !opts.keep_files {
            let _ = fs::remove_file(&small_csv);
        }
        compare_keys = small.len();
        let hits = sample_hits(&small, lookups, &mut rng);
        let misses = sample_misses(&small, lookups, &mut rng);
        let n = small.len().max(1) as f64;
        let ef_rate = measure("blocked Elias-Fano", &hits, &misses, |k| small.contains(k))?;
        compare.push(CompareRow {
            name: "blocked Elias-Fano (this crate)",
            bytes_per_key: small.size_bytes() as f64 / n,
            rate: ef_rate,
        });
        let mut sorted: Vec<u64> = small.iter().collect();
        sorted.shrink_to_fit();
        drop(small);
        let vec_rate = measure("sorted Vec", &hits, &misses, |k| sorted.binary_search(&k).is_ok())?;
        compare.push(CompareRow {
            name: "sorted Vec<u64>",
            bytes_per_key: (sorted.capacity() * 8) as f64 / n,
            rate: vec_rate,
        });
        let set: HashSet<u64> = sorted.iter().copied().collect();
        drop(sorted);
        let set_rate = measure("HashSet", &hits, &misses, |k| set.contains(&k))?;
        // hashbrown: buckets = capacity * 8 / 7 rounded up to a power of two; 8-byte key + 1 control byte each.
        let buckets = ((set.capacity() as u64 * 8).div_ceil(7)).next_power_of_two();
        compare.push(CompareRow {
            name: "HashSet<u64> (std, SipHash)",
            bytes_per_key: (buckets * 9) as f64 / n,
            rate: set_rate,
        });
    }

    let taxpayer_rows = opts.taxpayer_rows.unwrap_or(opts.rows / TAXPAYER_ROWS_DIVISOR * TAXPAYER_ROWS_MULTIPLIER);
    let taxpayers =
        if taxpayer_rows > 0 { Some(run_taxpayers(opts, taxpayer_rows, w, created, &mut rng)?) } else { None };

    let report = BenchReport {
        options: opts.clone(),
        import,
        synth_secs,
        csv_bytes,
        bz2_import,
        save_secs,
        keys,
        file_bytes,
        size_bytes,
        lower_bound_bytes: lower_bound_bits(PASSPORT_KEY_UNIVERSE, keys) / 8.0,
        rss_before_kib,
        rss_after_kib,
        load_to_first_lookup_secs,
        rate,
        compare,
        compare_keys,
        taxpayers,
    };
    print_report(&report, &layout, w)?;
    Ok(report)
}

fn print_report(r: &BenchReport, layout: &crate::blocked::SetLayout, w: &mut Writer<'_>) -> Result<(), BenchError> {
    let i = &r.import;
    let n = r.keys.max(1) as f64;
    let bits = |bytes: f64| bytes * 8.0 / n;
    w.line("")?;
    w.line(format!("{:<44} {:>14} {:>10} {:>14}", "step", "rows", "seconds", "rows/s"))?;
    w.line(format!(
        "{:<44} {:>14} {:>10.2} {:>14}",
        format!("synthesize plain CSV ({})", megabytes(r.csv_bytes as f64)),
        with_commas(i.rows),
        r.synth_secs,
        millions(rate(i.rows, Duration::from_secs_f64(r.synth_secs)))
    ))?;
    w.line(format!(
        "{:<44} {:>14} {:>10.2} {:>14}",
        "build from plain CSV (read+parse+sort+encode)",
        with_commas(i.rows),
        (i.read_time + i.build_time).as_secs_f64(),
        millions(r.build_rows_per_sec())
    ))?;
    w.line(format!(
        "{:<44} {:>14} {:>10.2} {:>14}",
        "  of which read + parse",
        "",
        i.read_time.as_secs_f64(),
        millions(rate(i.rows, i.read_time))
    ))?;
    w.line(format!("{:<44} {:>14} {:>10.2}", "  of which radix sort + encode", "", i.build_time.as_secs_f64()))?;
    if let Some(b) = &r.bz2_import {
        w.line(format!(
            "{:<44} {:>14} {:>10.2} {:>14}",
            format!("build from .bz2 ({})", megabytes(b.bytes_read as f64)),
            with_commas(b.rows),
            (b.read_time + b.build_time).as_secs_f64(),
            millions(rate(b.rows, b.read_time + b.build_time))
        ))?;
    }
    w.line(format!("{:<44} {:>14} {:>10.2}", "save (write, fsync, rename)", "", r.save_secs))?;
    w.line("")?;
    w.line(format!(
        "index: {} distinct keys, {} duplicate rows, {} malformed rows ({} distinct) in the side set",
        with_commas(r.keys),
        with_commas(i.duplicate_rows),
        with_commas(i.malformed_rows),
        with_commas(i.malformed_distinct)
    ))?;
    w.line(format!("{:<44} {:>14} {:>10} {:>14}", "size", "bytes", "bits/key", "× lower bound"))?;
    w.line(format!(
        "{:<44} {:>14} {:>10.3} {:>14.3}",
        "lower bound log2 C(10^10, n) (Stirling)",
        megabytes(r.lower_bound_bytes),
        bits(r.lower_bound_bytes),
        1.0
    ))?;
    w.line(format!(
        "{:<44} {:>14} {:>10.3} {:>14.3}",
        "index file on disk",
        megabytes(r.file_bytes as f64),
        bits(r.file_bytes as f64),
        r.file_ratio()
    ))?;
    w.line(format!(
        "{:<44} {:>14} {:>10.3} {:>14.3}",
        "size_bytes() in memory",
        megabytes(r.size_bytes as f64),
        bits(r.size_bytes as f64),
        r.memory_ratio()
    ))?;
    w.line(format!(
        "  {} blocks of 2^{} keys: {} Elias-Fano, {} bitmap, {} array, {} empty",
        with_commas(layout.blocks),
        layout.block_shift,
        with_commas(layout.ef_blocks),
        with_commas(layout.bitmap_blocks),
        with_commas(layout.array_blocks),
        with_commas(layout.blocks - layout.ef_blocks - layout.bitmap_blocks - layout.array_blocks)
    ))?;
    for (name, bytes) in [
        (format!("  block data (l = {})", layout.low_bits), layout.data_bytes),
        ("  block directory".to_string(), layout.directory_bytes),
    ] {
        w.line(format!("{:<44} {:>14} {:>10.3}", name, megabytes(bytes as f64), bits(bytes as f64)))?;
    }
    let rss = |k: Option<u64>| k.map_or_else(|| "n/a".to_string(), |k| megabytes(k as f64 * 1024.0));
    let delta = match (r.rss_before_kib, r.rss_after_kib) {
        (Some(b), Some(a)) => megabytes((a as f64 - b as f64) * 1024.0),
        _ => "n/a".to_string(),
    };
    w.line(format!(
        "resident memory (VmRSS): {} before load, {} after, +{}",
        rss(r.rss_before_kib),
        rss(r.rss_after_kib),
        delta
    ))?;
    w.line(format!("load → first answered lookup: {:.1} ms (page cache warm)", r.load_to_first_lookup_secs * 1e3))?;
    w.line(format!(
        "lookups on one thread: hits {}/s ({:.0} ns each), misses {}/s ({:.0} ns each)",
        millions(r.rate.hits_per_sec),
        1e9 / r.rate.hits_per_sec,
        millions(r.rate.misses_per_sec),
        1e9 / r.rate.misses_per_sec
    ))?;
    w.line("")?;
    w.line(format!(
        "goal: size ≤ {GOAL_SIZE_RATIO_MAX}× bound .......... {} (file {:.3}×, memory {:.3}×)",
        verdict(r.file_ratio() <= GOAL_SIZE_RATIO_MAX && r.memory_ratio() <= GOAL_SIZE_RATIO_MAX),
        r.file_ratio(),
        r.memory_ratio()
    ))?;
    w.line(format!(
        "goal: ≥ {} lookups/s, hits and misses .. {}",
        millions(GOAL_LOOKUPS_PER_SEC_MIN),
        verdict(r.rate.hits_per_sec >= GOAL_LOOKUPS_PER_SEC_MIN && r.rate.misses_per_sec >= GOAL_LOOKUPS_PER_SEC_MIN)
    ))?;
    w.line(format!(
        "goal: build ≥ {} rows/s from plain CSV ... {} ({}/s)",
        millions(GOAL_BUILD_ROWS_PER_SEC_MIN),
        verdict(r.build_rows_per_sec() >= GOAL_BUILD_ROWS_PER_SEC_MIN),
        millions(r.build_rows_per_sec())
    ))?;
    w.line(format!(
        "goal: load < {GOAL_LOAD_SECS_MAX} s ......................... {} ({:.1} ms)",
        verdict(r.load_to_first_lookup_secs < GOAL_LOAD_SECS_MAX),
        r.load_to_first_lookup_secs * 1e3
    ))?;
    if !r.compare.is_empty() {
        w.line("")?;
        w.line(format!(
            "comparison at {} rows ({} distinct keys), same lookup scheme:",
            with_commas(r.options.compare_rows),
            with_commas(r.compare_keys)
        ))?;
        w.line(format!("{:<44} {:>14} {:>10} {:>14}", "structure", "bytes/key", "hits/s", "misses/s"))?;
        for c in &r.compare {
            w.line(format!(
                "{:<44} {:>14.2} {:>10} {:>14}",
                c.name,
                c.bytes_per_key,
                millions(c.rate.hits_per_sec),
                millions(c.rate.misses_per_sec)
            ))?;
        }
        w.line("(HashSet bytes/key is an estimate: buckets × (8-byte key + 1 control byte) / keys, with")?;
        w.line(" buckets = capacity × 8/7 rounded up to a power of two, as hashbrown lays tables out)")?;
    }
    if let Some(t) = &r.taxpayers {
        let pairs = t.pairs.max(1) as f64;
        w.line("")?;
        w.line(format!(
            "taxpayer index: {} rows → {} distinct pairs, {} INNs, {} malformed rows, {} bad check digits",
            with_commas(t.import.rows),
            with_commas(t.pairs),
            with_commas(t.inns),
            with_commas(t.import.malformed_rows),
            with_commas(t.import.inn_check_digit_failures)
        ))?;
        w.line(format!(
            "  synthesize {:.2} s ({}/s); build {:.2} s ({} rows/s: read {:.2} s, sort + encode {:.2} s)",
            t.synth_secs,
            millions(rate(t.import.rows, Duration::from_secs_f64(t.synth_secs))),
            (t.import.read_time + t.import.build_time).as_secs_f64(),
            millions(rate(t.import.rows, t.import.read_time + t.import.build_time)),
            t.import.read_time.as_secs_f64(),
            t.import.build_time.as_secs_f64()
        ))?;
        w.line(format!(
            "  file {} ({:.2} bytes/pair), size_bytes() {} ({:.2} bytes/pair), load {:.1} ms",
            megabytes(t.file_bytes as f64),
            t.file_bytes as f64 / pairs,
            megabytes(t.size_bytes as f64),
            t.size_bytes as f64 / pairs,
            t.load_secs * 1e3
        ))?;
        w.line(format!(
            "  contains_pair on one thread: hits {}/s, misses {}/s",
            millions(t.rate.hits_per_sec),
            millions(t.rate.misses_per_sec)
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_bound_matches_exact_sum_for_small_cases() {
        fn exact(u: u64, n: u64) -> f64 {
            (0..n).map(|i| ((u - i) as f64).log2() - ((i + 1) as f64).log2()).sum()
        }
        for (u, n) in [(1000u64, 10u64), (1_000_000, 1000), (10_000_000_000, 5000)] {
            let approx = lower_bound_bits(u, n);
            // Stirling's error is O(1/n) bits.
            let tolerance = 0.2 / n as f64 + 1e-9 * exact(u, n);
            assert!((approx - exact(u, n)).abs() < tolerance, "{u} {n}: {approx} vs {}", exact(u, n));
        }
        assert_eq!(lower_bound_bits(10, 0), 0.0);
        // ≈ 7.6 bits per key at the MVD list's density.
        let per_key = lower_bound_bits(PASSPORT_KEY_UNIVERSE, 137_000_000) / 137e6;
        assert!((7.5..7.7).contains(&per_key), "{per_key}");
    }

    #[test]
    fn small_run_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let opts = BenchOptions {
            rows: 60_000,
            seed: 3,
            compare_rows: 20_000,
            bz2_rows: 10_000,
            taxpayer_rows: Some(20_000),
            lookups: 5_000,
            dir: dir.path().to_path_buf(),
            keep_files: false,
        };
        let mut out = Vec::new();
        let r = run(&opts, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("lower bound log2 C(10^10, n)"), "{text}");
        assert!(text.contains("sorted Vec<u64>"), "{text}");
        assert_eq!(r.import.rows, 60_000);
        assert_eq!(r.bz2_import.as_ref().unwrap().rows, 10_000);
        assert!(r.bz2_import.as_ref().unwrap().compressed);
        assert_eq!(r.compare.len(), 3);
        assert_eq!(r.taxpayers.as_ref().unwrap().import.rows, 20_000);
        assert!(text.contains("taxpayer index"), "{text}");
        assert!(r.file_bytes > 0 && r.size_bytes > 0);
        // Files are cleaned up.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0, "{text}");
        assert_eq!(with_commas(1_234_567), "1,234,567");
        assert_eq!(with_commas(12), "12");
    }
}
