//! Streaming CSV import of the MVD passport list and of INN/passport pairs.
//!
//! The MVD file is ~1.6 GB of `PASSP_SERIES,PASSP_NUMBER` rows (usually
//! published as `.bz2`). It is never held in memory: the input is read in
//! `READ_CHUNK_BYTES` chunks, lines are split with `memchr` on the bytes, and
//! each row is parsed in place (no `String`, no allocation per row); only the
//! 8-byte keys are kept. bzip2 input is recognised by its `BZh` magic and
//! decompressed on the fly (multi-stream files such as `pbzip2` output
//! included), with the pure-Rust `libbz2-rs-sys` backend of the `bzip2`
//! crate.
//!
//! # Row rules
//!
//! * The first line must be the header (`PASSP_SERIES,PASSP_NUMBER` or
//!   `inn,passport_number`; compared without whitespace, ASCII case and a
//!   UTF-8 BOM); its absence is an error, since the file is then most
//!   likely not what the operator meant to load.
//! * A row is well-formed iff it has exactly two comma-separated fields and,
//!   after trimming whitespace (and a CR), they are exactly 4 and 6 ASCII
//!   digits (passports) or 12 and 10 (taxpayers). Leading zeros are digits
//!   like any other.
//! * Every other non-blank row is malformed: kept verbatim (whitespace
//!   removed) in the index's side set and counted, never dropped and never
//!   an error. Blank lines carry no data and are only counted.
//! * A line longer than `LINE_MAX_BYTES` aborts the import: no row of these
//!   files comes close, so the input is not a registry CSV.
//!
//! Progress is reported about every `PROGRESS_EVERY_ROWS` rows with the
//! input bytes consumed (compressed bytes for `.bz2`, so that they compare
//! with the file size given as `size_hint`), then once when the build phase
//! starts and once at the end.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Chain, Cursor, Read};
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bzip2::read::MultiBzDecoder;

use crate::malformed::strip_whitespace;
use crate::passports::{
    parse_digits, PassportIndex, PassportIndexBuilder, PASSPORT_NUMBER_DIGITS, PASSPORT_SERIES_DIGITS,
};
use crate::taxpayers::{inn12_is_valid, pack_pair, TaxpayerIndex, TaxpayerIndexBuilder, INN_DIGITS};

/// Header line of the MVD list.
pub const PASSPORT_CSV_HEADER: &str = "PASSP_SERIES,PASSP_NUMBER";
/// Header line of the taxpayer pairs file.
pub const TAXPAYER_CSV_HEADER: &str = "inn,passport_number";
/// Rows between two progress reports (about a million).
pub const PROGRESS_EVERY_ROWS: u64 = 1 << 20;
/// Bytes read from the input at a time.
pub const READ_CHUNK_BYTES: usize = 1 << 20;
/// Longest accepted line.
pub const LINE_MAX_BYTES: usize = 64 * 1024;
/// Leading bytes of a bzip2 stream.
pub const BZIP2_MAGIC: &[u8; 3] = b"BZh";
/// Characters of an offending line quoted in an error message.
const ERROR_QUOTE_MAX_CHARS: usize = 80;
/// Typical bytes per MVD row (`4509,123456\n`), to reserve memory from a size hint.
const PASSPORT_ROW_BYTES_TYPICAL: u64 = 12;
/// Typical bytes per taxpayer row.
const TAXPAYER_ROW_BYTES_TYPICAL: u64 = 24;
/// Upper bound on what a size hint may make the importer reserve up front (keys).
const RESERVE_FROM_HINT_MAX_KEYS: u64 = 400_000_000;

/// Stage of an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading and parsing rows.
    Reading,
    /// All rows read; sorting and encoding.
    Building,
    /// The index is ready.
    Done,
}

/// A progress report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Current stage.
    pub phase: Phase,
    /// Non-blank data rows read so far.
    pub rows: u64,
    /// Input bytes consumed so far (compressed bytes for `.bz2` input).
    pub bytes_read: u64,
    /// Input size when known (the `size_hint` argument), for a percentage or an ETA.
    pub total_bytes: Option<u64>,
    /// Malformed rows so far.
    pub malformed: u64,
    /// Time since the import started.
    pub elapsed: Duration,
}

/// What an import read and built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportStats {
    /// Non-blank data rows (header excluded).
    pub rows: u64,
    /// Well-formed rows.
    pub valid_rows: u64,
    /// Malformed rows (kept in the side set).
    pub malformed_rows: u64,
    /// Distinct malformed rows once whitespace is removed.
    pub malformed_distinct: u64,
    /// Blank lines skipped.
    pub blank_lines: u64,
    /// Distinct keys (passports) or distinct pairs (taxpayers) indexed.
    pub distinct: u64,
    /// Well-formed rows that repeated an earlier key or pair.
    pub duplicate_rows: u64,
    /// Taxpayers only: well-formed rows whose INN fails its check digits (indexed anyway).
    pub inn_check_digit_failures: u64,
    /// Input bytes consumed.
    pub bytes_read: u64,
    /// CSV bytes parsed (equal to `bytes_read` unless the input was bzip2).
    pub csv_bytes: u64,
    /// Whether the input was bzip2-compressed.
    pub compressed: bool,
    /// Time spent reading and parsing.
    pub read_time: Duration,
    /// Time spent sorting and encoding.
    pub build_time: Duration,
}

/// Why an import failed (malformed rows never cause this).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Reading or decompressing failed.
    #[error("reading the input failed at line {line} after {bytes_read} input bytes: {source}")]
    Io {
        /// Line being read (1-based).
        line: u64,
        /// Input bytes consumed before the failure.
        bytes_read: u64,
        /// The underlying error (bzip2 errors included).
        #[source]
        source: io::Error,
    },
    /// The input has no line at all.
    #[error("the input is empty: expected the header line `{expected}`")]
    Empty {
        /// The header that was expected.
        expected: &'static str,
    },
    /// The first line is a data row.
    #[error("missing header: the first line should be `{expected}` but is the data row `{found}`")]
    MissingHeader {
        /// The header that was expected.
        expected: &'static str,
        /// The first line (shortened).
        found: String,
    },
    /// The first line is some other header.
    #[error("unexpected header `{found}`: expected `{expected}` (is this the right file?)")]
    BadHeader {
        /// The header that was expected.
        expected: &'static str,
        /// The first line (shortened).
        found: String,
    },
    /// A line is too long to be a row.
    #[error("line {line} is longer than {limit} bytes: this is not a registry CSV file")]
    LineTooLong {
        /// Line number (1-based).
        line: u64,
        /// The limit.
        limit: usize,
    },
}

/// Counts the raw bytes read from the caller's reader.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

type Peeked<R> = Chain<Cursor<Vec<u8>>, Counting<R>>;

/// The CSV bytes: the input as is, or decompressed.
enum Source<R: Read> {
    Plain(Peeked<R>),
    Bzip2(Box<MultiBzDecoder<Peeked<R>>>),
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Bzip2(r) => r.read(buf),
        }
    }
}

fn read_retrying(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Opens the input, sniffing the bzip2 magic.
fn open_source<R: Read>(reader: R, count: Rc<Cell<u64>>) -> io::Result<(Source<R>, bool)> {
    let mut counting = Counting { inner: reader, count };
    let mut head = vec![0u8; BZIP2_MAGIC.len()];
    let mut got = 0;
    while got < head.len() {
        let n = read_retrying(&mut counting, &mut head[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    head.truncate(got);
    let compressed = head == BZIP2_MAGIC;
    let chained = Cursor::new(head).chain(counting);
    Ok(if compressed {
        (Source::Bzip2(Box::new(MultiBzDecoder::new(chained))), true)
    } else {
        (Source::Plain(chained), false)
    })
}

/// Totals of one pass over a CSV input.
struct ScanTotals {
    rows: u64,
    valid_rows: u64,
    malformed: Vec<Box<[u8]>>,
    blank_lines: u64,
    bytes_read: u64,
    csv_bytes: u64,
    compressed: bool,
}

fn quote(line: &[u8]) -> String {
    let s = String::from_utf8_lossy(line);
    let s = s.trim();
    if s.chars().count() > ERROR_QUOTE_MAX_CHARS {
        format!("{}…", s.chars().take(ERROR_QUOTE_MAX_CHARS).collect::<String>())
    } else {
        s.to_string()
    }
}

fn check_header(line: &[u8], expected: &'static str) -> Result<(), ImportError> {
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    let found = strip_whitespace(line);
    if found.eq_ignore_ascii_case(expected.as_bytes()) {
        return Ok(());
    }
    if looks_like_data(&found) {
        return Err(ImportError::MissingHeader { expected, found: quote(line) });
    }
    Err(ImportError::BadHeader { expected, found: quote(line) })
}

/// Reads every line of `reader`, checks the header, hands each data row to
/// `parse_row` (which returns whether it was well-formed and consumed it) and
/// keeps the others as malformed.
fn scan_csv<R: Read>(
    reader: R,
    size_hint: Option<u64>,
    header: &'static str,
    progress: &mut dyn FnMut(&Progress),
    started: Instant,
    mut parse_row: impl FnMut(&[u8]) -> bool,
) -> Result<ScanTotals, ImportError> {
    let count = Rc::new(Cell::new(0u64));
    let io_err =
        |line: u64, source: io::Error, count: &Rc<Cell<u64>>| ImportError::Io { line, bytes_read: count.get(), source };
    let (mut source, compressed) = open_source(reader, count.clone()).map_err(|e| io_err(1, e, &count))?;
    let mut t = ScanTotals {
        rows: 0,
        valid_rows: 0,
        malformed: Vec::new(),
        blank_lines: 0,
        bytes_read: 0,
        csv_bytes: 0,
        compressed,
    };
    let mut buf = vec![0u8; READ_CHUNK_BYTES];
    let mut filled = 0usize;
    let mut line_no = 0u64;
    let mut header_seen = false;
    let mut next_progress = PROGRESS_EVERY_ROWS;
    let report = |t: &ScanTotals, phase: Phase| Progress {
        phase,
        rows: t.rows,
        bytes_read: count.get(),
        total_bytes: size_hint,
        malformed: t.malformed.len() as u64,
        elapsed: started.elapsed(),
    };
    loop {
        let n = read_retrying(&mut source, &mut buf[filled..]).map_err(|e| io_err(line_no + 1, e, &count))?;
        let eof = n == 0;
        filled += n;
        t.csv_bytes += n as u64;
        let data = &buf[..filled];
        let mut start = 0usize;
        let mut handle = |line: &[u8], t: &mut ScanTotals| -> Result<(), ImportError> {
            line_no += 1;
            if !header_seen {
                header_seen = true;
                return check_header(line, header);
            }
            if parse_row(line) {
                t.rows += 1;
                t.valid_rows += 1;
            } else if line.iter().all(|b| b.is_ascii_whitespace()) {
                t.blank_lines += 1;
            } else {
                t.rows += 1;
                t.malformed.push(strip_whitespace(line).into_boxed_slice());
            }
            Ok(())
        };
        for nl in memchr::memchr_iter(b'\n', data) {
            handle(&data[start..nl], &mut t)?;
            start = nl + 1;
        }
        if eof {
            if start < filled {
                handle(&data[start..filled], &mut t)?;
            }
            break;
        }
        if filled - start > LINE_MAX_BYTES {
            return Err(ImportError::LineTooLong { line: line_no + 1, limit: LINE_MAX_BYTES });
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if t.rows >= next_progress {
            progress(&report(&t, Phase::Reading));
            next_progress = (t.rows / PROGRESS_EVERY_ROWS + 1) * PROGRESS_EVERY_ROWS;
        }
    }
    if !header_seen {
        return Err(ImportError::Empty { expected: header });
    }
    t.bytes_read = count.get();
    progress(&report(&t, Phase::Building));
    Ok(t)
}

/// Whether a whitespace-free line is made of digits and commas only (then a
/// first line is a data row, not a different header).
fn looks_like_data(line: &[u8]) -> bool {
    !line.is_empty() && line.iter().all(|b| b.is_ascii_digit() || *b == b',')
}

/// Trims ASCII whitespace (spaces, tabs, CR) at both ends.
#[inline]
fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Splits a row into exactly two trimmed fields.
#[inline]
fn two_fields(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let comma = memchr::memchr(b',', line)?;
    let (a, rest) = (&line[..comma], &line[comma + 1..]);
    if memchr::memchr(b',', rest).is_some() {
        return None;
    }
    Some((trim(a), trim(rest)))
}

/// Parses a fixed-width numeric pair `AAAA,BBBBBB` into its two numbers.
#[inline]
fn parse_pair<const A: usize, const B: usize>(line: &[u8]) -> Option<(u64, u64)> {
    // Fast path: exactly the canonical shape (with or without a trailing CR).
    let canonical = match line.len() {
        n if n == A + 1 + B => line,
        n if n == A + 2 + B && line[A + 1 + B] == b'\r' => &line[..A + 1 + B],
        _ => &[],
    };
    if !canonical.is_empty() && canonical[A] == b',' {
        if let (Some(a), Some(b)) = (parse_digits(&canonical[..A]), parse_digits(&canonical[A + 1..])) {
            return Some((a, b));
        }
    }
    let (a, b) = two_fields(line)?;
    if a.len() != A || b.len() != B {
        return None;
    }
    Some((parse_digits(a)?, parse_digits(b)?))
}

/// Parses one MVD row into its 10-digit key.
#[inline]
pub(crate) fn parse_passport_row(line: &[u8]) -> Option<u64> {
    let (series, number) = parse_pair::<PASSPORT_SERIES_DIGITS, PASSPORT_NUMBER_DIGITS>(line)?;
    Some(series * 1_000_000 + number)
}

/// Parses one taxpayer row into `(inn, passport key)`.
#[inline]
pub(crate) fn parse_taxpayer_row(line: &[u8]) -> Option<(u64, u64)> {
    parse_pair::<INN_DIGITS, { PASSPORT_SERIES_DIGITS + PASSPORT_NUMBER_DIGITS }>(line)
}

fn reserve_hint(size_hint: Option<u64>, row_bytes: u64) -> usize {
    size_hint.map(|b| (b / row_bytes).min(RESERVE_FROM_HINT_MAX_KEYS) as usize).unwrap_or(0)
}

/// Builds a passport index from the MVD CSV (plain or bzip2), streaming.
///
/// `size_hint` is the input's size in bytes when known (reported back in
/// [`Progress::total_bytes`], and used to reserve memory for plain input).
pub fn import_passports_csv(
    reader: impl Read,
    size_hint: Option<u64>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(PassportIndex, ImportStats), ImportError> {
    let started = Instant::now();
    let mut keys: Vec<u64> = Vec::new();
    let mut reserved = false;
    let totals =
        scan_csv(reader, size_hint, PASSPORT_CSV_HEADER, progress, started, |line| match parse_passport_row(line) {
            Some(key) => {
                if !reserved {
                    reserved = true;
                    keys.reserve(reserve_hint(size_hint, PASSPORT_ROW_BYTES_TYPICAL));
                }
                keys.push(key);
                true
            }
            None => false,
        })?;
    let read_time = started.elapsed();
    let valid = keys.len() as u64;
    let malformed_rows = totals.malformed.len() as u64;
    let index = PassportIndexBuilder::from_parts(keys, totals.malformed).build();
    let stats = ImportStats {
        rows: totals.rows,
        valid_rows: totals.valid_rows,
        malformed_rows,
        malformed_distinct: index.malformed_len() as u64,
        blank_lines: totals.blank_lines,
        distinct: index.len(),
        duplicate_rows: valid - index.len(),
        inn_check_digit_failures: 0,
        bytes_read: totals.bytes_read,
        csv_bytes: totals.csv_bytes,
        compressed: totals.compressed,
        read_time,
        build_time: started.elapsed() - read_time,
    };
    progress(&Progress {
        phase: Phase::Done,
        rows: stats.rows,
        bytes_read: stats.bytes_read,
        total_bytes: size_hint,
        malformed: malformed_rows,
        elapsed: started.elapsed(),
    });
    Ok((index, stats))
}

/// Builds a taxpayer index from an `inn,passport_number` CSV (plain or bzip2), streaming.
pub fn import_taxpayers_csv(
    reader: impl Read,
    size_hint: Option<u64>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(TaxpayerIndex, ImportStats), ImportError> {
    let started = Instant::now();
    let mut pairs: Vec<u128> = Vec::new();
    let mut reserved = false;
    let mut bad_check_digits = 0u64;
    let totals =
        scan_csv(reader, size_hint, TAXPAYER_CSV_HEADER, progress, started, |line| match parse_taxpayer_row(line) {
            Some((inn, passport)) => {
                if !reserved {
                    reserved = true;
                    pairs.reserve(reserve_hint(size_hint, TAXPAYER_ROW_BYTES_TYPICAL));
                }
                if !inn12_is_valid(inn) {
                    bad_check_digits += 1;
                }
                pairs.push(pack_pair(inn, passport));
                true
            }
            None => false,
        })?;
    let read_time = started.elapsed();
    let valid = pairs.len() as u64;
    let malformed_rows = totals.malformed.len() as u64;
    let index = TaxpayerIndexBuilder::from_parts(pairs, totals.malformed).build();
    let stats = ImportStats {
        rows: totals.rows,
        valid_rows: totals.valid_rows,
        malformed_rows,
        malformed_distinct: index.malformed_len() as u64,
        blank_lines: totals.blank_lines,
        distinct: index.len(),
        duplicate_rows: valid - index.len(),
        inn_check_digit_failures: bad_check_digits,
        bytes_read: totals.bytes_read,
        csv_bytes: totals.csv_bytes,
        compressed: totals.compressed,
        read_time,
        build_time: started.elapsed() - read_time,
    };
    progress(&Progress {
        phase: Phase::Done,
        rows: stats.rows,
        bytes_read: stats.bytes_read,
        total_bytes: size_hint,
        malformed: malformed_rows,
        elapsed: started.elapsed(),
    });
    Ok((index, stats))
}

/// Why a file import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportFileError {
    /// The file could not be opened.
    #[error("{}: {source}", path.display())]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The import itself failed.
    #[error("{}: {source}", path.display())]
    Import {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: ImportError,
    },
}

fn open_with_size(path: &Path) -> Result<(File, Option<u64>), ImportFileError> {
    let open_err = |source| ImportFileError::Open { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(open_err)?;
    let size = file.metadata().ok().map(|m| m.len());
    Ok((file, size))
}

/// [`import_passports_csv`] on a file, with its size as the size hint.
pub fn import_passports_file(
    path: impl AsRef<Path>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(PassportIndex, ImportStats), ImportFileError> {
    let path = path.as_ref();
    let (file, size) = open_with_size(path)?;
    import_passports_csv(file, size, progress)
        .map_err(|source| ImportFileError::Import { path: path.to_path_buf(), source })
}

/// [`import_taxpayers_csv`] on a file, with its size as the size hint.
pub fn import_taxpayers_file(
    path: impl AsRef<Path>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(TaxpayerIndex, ImportStats), ImportFileError> {
    let path = path.as_ref();
    let (file, size) = open_with_size(path)?;
    import_taxpayers_csv(file, size, progress)
        .map_err(|source| ImportFileError::Import { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn import(text: &[u8]) -> Result<(PassportIndex, ImportStats), ImportError> {
        import_passports_csv(text, Some(text.len() as u64), &mut |_| {})
    }

    fn bz2(data: &[u8]) -> Vec<u8> {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    const SAMPLE: &str = "PASSP_SERIES,PASSP_NUMBER\r\n\
        4509,123456\r\n\
        0101,000001\n\
        \x20 4509 , 123457 \n\
        ХЕ12,345678\n\
        4509,12345\n\
        4509,+123456\n\
        4509,123456]\n\
        45  09,123456\n\
        4509,123456,1\n\
        4509\n\
        \n\
        \r\n\
        4509,123456\n\
        9999,999999";

    #[test]
    fn rows_malformed_crlf_and_duplicates() {
        let (index, stats) = import(SAMPLE.as_bytes()).unwrap();
        assert_eq!(stats.rows, 12);
        assert_eq!(stats.valid_rows, 5);
        assert_eq!(stats.malformed_rows, 7);
        assert_eq!(stats.malformed_distinct, 7);
        assert_eq!(stats.blank_lines, 2);
        assert_eq!(stats.distinct, 4);
        assert_eq!(stats.duplicate_rows, 1);
        assert!(!stats.compressed);
        assert_eq!(stats.bytes_read, SAMPLE.len() as u64);
        assert_eq!(index.len(), 4);
        for k in [4_509_123_456, 101_000_001, 4_509_123_457, 9_999_999_999] {
            assert!(index.contains(k), "{k}");
        }
        assert!(!index.contains(4_509_123_458));
        assert!(index.contains_raw("ХЕ12 345678"));
        assert!(index.contains_raw("4509 12345"));
        assert!(index.contains_raw("4509,+123456"));
        assert!(index.contains_raw("4509,123456,1"));
        let rows: Vec<String> = index.malformed().map(|r| String::from_utf8_lossy(r).into_owned()).collect();
        assert!(rows.contains(&"4509,123456]".to_string()), "{rows:?}");
        assert!(rows.contains(&"4509".to_string()), "{rows:?}");
    }

    #[test]
    fn header_rules() {
        assert!(matches!(import(b""), Err(ImportError::Empty { .. })));
        let err = import(b"4509,123456\n4509,123457\n").unwrap_err();
        assert!(matches!(err, ImportError::MissingHeader { .. }), "{err}");
        assert!(err.to_string().contains("PASSP_SERIES,PASSP_NUMBER"), "{err}");
        let err = import(b"inn,passport_number\n").unwrap_err();
        assert!(matches!(err, ImportError::BadHeader { .. }), "{err}");
        let (index, stats) = import(b"\xEF\xBB\xBF passp_series , PASSP_NUMBER \r\n").unwrap();
        assert!(index.is_empty());
        assert_eq!(stats.rows, 0);
        let (index, _) = import(b"PASSP_SERIES,PASSP_NUMBER").unwrap();
        assert!(index.is_empty());
    }

    #[test]
    fn bzip2_input_matches_plain() {
        let mut text = String::from("PASSP_SERIES,PASSP_NUMBER\n");
        for i in 0..50_000u64 {
            text.push_str(&format!("{:04},{:06}\n", (i * 7919) % 10_000, (i * 104_729) % 1_000_000));
        }
        text.push_str("AB12,123456\n");
        let (plain, plain_stats) = import(text.as_bytes()).unwrap();
        let compressed = bz2(text.as_bytes());
        let (packed, stats) = import_passports_csv(&compressed[..], None, &mut |_| {}).unwrap();
        assert!(stats.compressed);
        assert_eq!(stats.bytes_read, compressed.len() as u64);
        assert_eq!(stats.csv_bytes, text.len() as u64);
        assert_eq!(packed, plain);
        assert_eq!(stats.valid_rows, plain_stats.valid_rows);
        assert_eq!(stats.malformed_rows, 1);
        // Two concatenated streams (as pbzip2 writes) are read as one file.
        let half = text.len() / 2;
        let cut = text[..half].rfind('\n').unwrap() + 1;
        let mut multi = bz2(&text.as_bytes()[..cut]);
        multi.extend(bz2(&text.as_bytes()[cut..]));
        let (multi_index, _) = import_passports_csv(&multi[..], None, &mut |_| {}).unwrap();
        assert_eq!(multi_index, plain);
        // A corrupt stream is an I/O error, not a panic.
        let mut broken = compressed.clone();
        let mid = broken.len() / 2;
        broken.truncate(mid);
        assert!(matches!(import_passports_csv(&broken[..], None, &mut |_| {}), Err(ImportError::Io { .. })));
    }

    #[test]
    fn progress_reports() {
        let mut text = String::from("PASSP_SERIES,PASSP_NUMBER\n");
        let rows = PROGRESS_EVERY_ROWS * 2 + 10;
        for i in 0..rows {
            text.push_str(&format!("{:04},{:06}\n", i % 10_000, i % 1_000_000));
        }
        let mut seen = Vec::new();
        let (_, stats) =
            import_passports_csv(text.as_bytes(), Some(text.len() as u64), &mut |p| seen.push(p.clone())).unwrap();
        assert_eq!(stats.rows, rows);
        assert!(seen.iter().filter(|p| p.phase == Phase::Reading).count() >= 2, "{seen:?}");
        let last = seen.last().unwrap();
        assert_eq!(last.phase, Phase::Done);
        assert_eq!(last.rows, rows);
        assert_eq!(last.total_bytes, Some(text.len() as u64));
        assert!(seen.windows(2).all(|w| w[0].rows <= w[1].rows));
    }

    #[test]
    fn long_line_is_refused() {
        let mut text = b"PASSP_SERIES,PASSP_NUMBER\n".to_vec();
        text.extend(std::iter::repeat_n(b'7', READ_CHUNK_BYTES + 10));
        assert!(matches!(import(&text), Err(ImportError::LineTooLong { line: 2, .. })));
    }

    #[test]
    fn taxpayer_import() {
        let text = "inn,passport_number\n\
            500100732259,4509123456\n\
            500100732259,4510000001\n\
            773370857141, 0101000007\r\n\
            500100732258,4509123456\n\
            77337085714,4509123456\n\
            773370857141,4509 123456\n\
            500100732259,4509123456\n";
        let (index, stats) = import_taxpayers_csv(text.as_bytes(), None, &mut |_| {}).unwrap();
        assert_eq!(stats.rows, 7);
        assert_eq!(stats.valid_rows, 5);
        assert_eq!(stats.malformed_rows, 2);
        assert_eq!(stats.inn_check_digit_failures, 1);
        assert_eq!(stats.distinct, 4);
        assert_eq!(stats.duplicate_rows, 1);
        assert_eq!(index.inn_count(), 3);
        assert!(index.contains_pair(773_370_857_141, 101_000_007));
        assert_eq!(index.passports_of(500_100_732_259).collect::<Vec<_>>(), vec![4_509_123_456, 4_510_000_001]);
        assert!(index.contains_raw("773370857141,4509 123456"));
        let err = import_taxpayers_csv(SAMPLE.as_bytes(), None, &mut |_| {}).unwrap_err();
        assert!(matches!(err, ImportError::BadHeader { .. }), "{err}");
    }

    #[test]
    fn row_parser_shapes() {
        assert_eq!(parse_passport_row(b"4509,123456"), Some(4_509_123_456));
        assert_eq!(parse_passport_row(b"4509,123456\r"), Some(4_509_123_456));
        assert_eq!(parse_passport_row(b"\t4509 ,123456  "), Some(4_509_123_456));
        assert_eq!(parse_passport_row(b"0000,000000"), Some(0));
        assert_eq!(parse_passport_row(b"4509;123456"), None);
        assert_eq!(parse_passport_row(b"4509,1234567"), None);
        assert_eq!(parse_passport_row(b"450,9123456"), None);
        assert_eq!(parse_passport_row(b"45 9,123456"), None);
        assert_eq!(parse_passport_row(b""), None);
        assert_eq!(parse_taxpayer_row(b"500100732259,4509123456"), Some((500_100_732_259, 4_509_123_456)));
        assert_eq!(parse_taxpayer_row(b"5001007322590,4509123456"), None);
    }
}
