//! The self-employed (NPD) register an operator imports (`open131 npd
//! import file.csv`): what the tax service knows of each person, and
//! whether the person is linked to the bank, for a stand that mirrors a
//! real register rather than the sandbox's rules.
//!
//! The CSV's header is [`NPD_CSV_HEADER`]; each row is checked as the
//! operator's word is (`open131_domain::npd::parse_register_row`: the INN's
//! check digits, the status, the name and phone). Unlike the MVD list, a
//! bad row is not kept aside: the register says something of a person, so
//! a row that cannot be read fails the import (every bad row named by its
//! line, the first [`NPD_ERRORS_SHOWN_MAX`] of them listed) and the register
//! in use stays. The file is saved in the indexes' checksummed container
//! ([`crate::format`]) and swapped in by the server like them.
//!
//! Body layout: the entry count (u64), then per entry, in INN order: the
//! INN (u64), flags (u32: status 0..=2 in bits 0–1, linked in bit 2), the
//! full name and the phone, each a u32 byte length (`u32::MAX`: none) and
//! its UTF-8 bytes.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use open131_domain::ident::Inn;
use open131_domain::npd::{parse_register_row, RegisterRow, TaxStatus, Taxpayer};

use crate::format::{load_checked, save_atomic, CorruptBody, IndexFileError};
use crate::import::{Phase, Progress};

/// The register file's header line.
pub const NPD_CSV_HEADER: &str = "inn,status,linked,full_name,phone";
/// Most people in one register.
pub const NPD_REGISTER_ROWS_MAX: u64 = 2_000_000;
/// Bad rows listed in an import's error (all are counted).
pub const NPD_ERRORS_SHOWN_MAX: usize = 20;
/// Rows between two progress reports.
pub const NPD_PROGRESS_EVERY_ROWS: u64 = 65_536;
/// Longest name or phone kept, in bytes (the domain's limits are far below).
const TEXT_MAX_BYTES: u64 = 4 * 1024;
/// Magic bytes of the register file.
pub(crate) const NPD_MAGIC: [u8; 8] = *b"O131NPD\0";
/// A text field that is absent.
const NONE_LEN: u32 = u32::MAX;

/// One person of the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpdEntry {
    /// What the tax service knows of the person.
    pub taxpayer: Taxpayer,
    /// Linked to the bank (for every project that has not changed the link since).
    pub linked: bool,
}

/// The register: entries in INN order, looked up by binary search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NpdRegister {
    entries: Vec<(u64, NpdEntry)>,
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum NpdImportError {
    /// The input could not be read.
    #[error("reading the register: {0}")]
    Io(#[from] std::io::Error),
    /// The first line is not [`NPD_CSV_HEADER`]: not a register file.
    #[error("the first line must be the header `{NPD_CSV_HEADER}`, found `{0}`")]
    Header(String),
    /// More rows than [`NPD_REGISTER_ROWS_MAX`].
    #[error("the register holds more than {NPD_REGISTER_ROWS_MAX} people")]
    TooLarge,
    /// Every bad row counted; the first of them, by line, with the reason.
    #[error("{count} bad row(s); nothing was imported:{}", list(.shown))]
    BadRows {
        /// Bad rows in all.
        count: u64,
        /// The first [`NPD_ERRORS_SHOWN_MAX`]: (line, why).
        shown: Vec<(u64, String)>,
    },
}

fn list(shown: &[(u64, String)]) -> String {
    shown.iter().map(|(line, why)| format!("\n  line {line}: {why}")).collect()
}

impl NpdRegister {
    /// What the register says of `inn`.
    pub fn get(&self, inn: &Inn) -> Option<&NpdEntry> {
        let key = inn.expose().parse::<u64>().ok()?;
        let at = self.entries.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        self.entries.get(at).map(|(_, e)| e)
    }

    /// People in the register.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the register holds nobody.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Writes the register atomically (temporary file, fsync, rename).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), IndexFileError> {
        let text_len = |t: &Option<String>| 4 + t.as_ref().map_or(0, |t| t.len() as u64);
        let body_len = 8 + self
            .entries
            .iter()
            .map(|(_, e)| 8 + 4 + text_len(&e.taxpayer.full_name) + text_len(&e.taxpayer.phone))
            .sum::<u64>();
        save_atomic(path.as_ref(), NPD_MAGIC, body_len, |w| {
            w.write_u64(self.entries.len() as u64)?;
            for (inn, e) in &self.entries {
                w.write_u64(*inn)?;
                w.write_u32(flags(e))?;
                for text in [&e.taxpayer.full_name, &e.taxpayer.phone] {
                    match text {
                        None => w.write_u32(NONE_LEN)?,
                        Some(t) => {
                            w.write_u32(u32::try_from(t.len()).map_err(std::io::Error::other)?)?;
                            w.write_bytes(t.as_bytes())?;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Reads a register written by [`NpdRegister::save`], refusing corrupt,
    /// truncated or foreign files.
    pub fn load(path: impl AsRef<Path>) -> Result<NpdRegister, IndexFileError> {
        load_checked(path.as_ref(), NPD_MAGIC, "self-employed register", |r| {
            let count = r.read_u64()?;
            if count > NPD_REGISTER_ROWS_MAX {
                return Err(CorruptBody::new(r.offset(), format!("{count} entries")));
            }
            let mut entries = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let at = r.offset();
                let inn = r.read_u64()?;
                let flags = r.read_u32()?;
                let mut text = || -> Result<Option<String>, CorruptBody> {
                    let len = r.read_u32()?;
                    if len == NONE_LEN {
                        return Ok(None);
                    }
                    if u64::from(len) > TEXT_MAX_BYTES {
                        return Err(CorruptBody::new(r.offset(), "text too long"));
                    }
                    let bytes = r.read_bytes(u64::from(len))?;
                    String::from_utf8(bytes).map(Some).map_err(|_| CorruptBody::new(r.offset(), "text not UTF-8"))
                };
                let (full_name, phone) = (text()?, text()?);
                let status = TaxStatus::ALL.get((flags & 3) as usize).copied();
                let status = status.ok_or_else(|| CorruptBody::new(at, "unknown status"))?;
                let in_order = entries.last().is_none_or(|(last, _)| *last < inn);
                if !in_order || flags > 7 {
                    return Err(CorruptBody::new(at, "entries out of order, or unknown flags"));
                }
                let taxpayer = Taxpayer { status, full_name, phone, service_error: false, receipt_refusals: 0 };
                entries.push((inn, NpdEntry { taxpayer, linked: flags & 4 != 0 }));
            }
            Ok(NpdRegister { entries })
        })
    }
}

fn flags(e: &NpdEntry) -> u32 {
    let status = TaxStatus::ALL.iter().position(|s| *s == e.taxpayer.status).unwrap_or(0) as u32;
    status | if e.linked { 4 } else { 0 }
}

/// Reads a register CSV, every row checked; `progress` hears of it every
/// [`NPD_PROGRESS_EVERY_ROWS`] rows and at the end. `size_hint`: the input's
/// size, for a percentage.
pub fn import_npd_csv<R: Read>(
    input: R,
    size_hint: Option<u64>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<NpdRegister, NpdImportError> {
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input);
    let mut records = reader.records();
    let header = match records.next() {
        Some(Ok(h)) => h.iter().map(str::trim).collect::<Vec<_>>().join(","),
        Some(Err(e)) => return Err(NpdImportError::Header(e.to_string())),
        None => return Err(NpdImportError::Header(String::new())),
    };
    if header.trim_start_matches('\u{feff}') != NPD_CSV_HEADER {
        return Err(NpdImportError::Header(header));
    }
    let (mut entries, mut bad, mut shown) = (Vec::new(), 0u64, Vec::new());
    let mut report = |phase, rows: u64, bytes_read: u64, bad: u64| {
        let elapsed = started.elapsed();
        progress(&Progress { phase, rows, bytes_read, total_bytes: size_hint, malformed: bad, elapsed });
    };
    let (mut rows, mut byte) = (0u64, 0u64);
    for record in records {
        let (line, parsed) = match record {
            Ok(r) => {
                let line = r.position().map_or(0, |p| p.line());
                byte = r.position().map_or(byte, |p| p.byte());
                if r.iter().all(|f| f.trim().is_empty()) {
                    continue;
                }
                (line, row(&r))
            }
            // The input failed, not a row: the csv reader would repeat it forever.
            Err(e) if e.is_io_error() => return Err(NpdImportError::Io(std::io::Error::other(e))),
            Err(e) => (e.position().map_or(0, |p| p.line()), Err(e.to_string())),
        };
        rows += 1;
        if rows > NPD_REGISTER_ROWS_MAX {
            return Err(NpdImportError::TooLarge);
        }
        match parsed {
            Ok((inn, entry)) => entries.push((inn, entry, line)),
            Err(why) => {
                bad += 1;
                if shown.len() < NPD_ERRORS_SHOWN_MAX {
                    shown.push((line, why));
                }
            }
        }
        if rows % NPD_PROGRESS_EVERY_ROWS == 0 {
            report(Phase::Reading, rows, byte, bad);
        }
    }
    let byte = size_hint.unwrap_or(byte);
    report(Phase::Building, rows, byte, bad);
    entries.sort_by_key(|(inn, _, line)| (*inn, *line));
    for pair in entries.windows(2) {
        if pair[0].0 == pair[1].0 {
            bad += 1;
            if shown.len() < NPD_ERRORS_SHOWN_MAX {
                shown.push((pair[1].2, format!("the INN is on line {} already", pair[0].2)));
            }
        }
    }
    if bad > 0 {
        shown.sort();
        return Err(NpdImportError::BadRows { count: bad, shown });
    }
    let register = NpdRegister { entries: entries.into_iter().map(|(inn, e, _)| (inn, e)).collect() };
    report(Phase::Done, rows, byte, 0);
    Ok(register)
}

/// One row, checked as the operator's word is.
fn row(r: &csv::StringRecord) -> Result<(u64, NpdEntry), String> {
    if r.len() != 5 {
        return Err(format!("{} fields, expected 5 ({NPD_CSV_HEADER})", r.len()));
    }
    let field = |i: usize| r.get(i).unwrap_or_default();
    let RegisterRow { inn, taxpayer, linked } = parse_register_row([field(0), field(1), field(2), field(3), field(4)])?;
    let key = inn.expose().parse::<u64>().map_err(|e| e.to_string())?;
    Ok((key, NpdEntry { taxpayer, linked }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn import(text: &str) -> Result<NpdRegister, NpdImportError> {
        import_npd_csv(text.as_bytes(), None, &mut |_| {})
    }

    fn inn(s: &str) -> Inn {
        Inn::parse_individual(s).unwrap()
    }

    #[test]
    fn rows_are_read_checked_and_looked_up() {
        let text = "inn,status,linked,full_name,phone\n\
                    500100732259,self_employed,true,\"Иванов, Иван\",+79990000001\n\
                    \n\
                    770000000220,not_self_employed,false,,\n";
        let reg = import(text).unwrap();
        assert_eq!(reg.len(), 2);
        let ivanov = reg.get(&inn("500100732259")).unwrap();
        assert!(ivanov.linked);
        assert_eq!(ivanov.taxpayer.status, TaxStatus::SelfEmployed);
        assert_eq!(ivanov.taxpayer.full_name.as_deref(), Some("Иванов, Иван"));
        assert_eq!(ivanov.taxpayer.phone.as_deref(), Some("79990000001"));
        let other = reg.get(&inn("770000000220")).unwrap();
        assert_eq!(
            (other.linked, other.taxpayer.status, &other.taxpayer.full_name),
            (false, TaxStatus::NotSelfEmployed, &None)
        );
        assert!(reg.get(&inn("770000000156")).is_none());
    }

    #[test]
    fn every_bad_row_is_named_by_its_line_and_nothing_is_imported() {
        let text = "inn,status,linked,full_name,phone\n\
                    500100732250,self_employed,true,,\n\
                    500100732259,retired,true,,\n\
                    500100732259,self_employed,maybe,,\n\
                    770000000220,self_employed,false,,12\n\
                    770000000220,self_employed,false\n\
                    770000000156,unknown,,,\n\
                    770000000156,unknown,,,\n";
        let Err(NpdImportError::BadRows { count, shown }) = import(text) else { panic!("imported") };
        let lines: Vec<u64> = shown.iter().map(|(line, _)| *line).collect();
        assert_eq!((count, lines), (6, vec![2, 3, 4, 5, 6, 8]), "{shown:?}");
        assert!(shown[0].1.contains("check digits"), "{shown:?}");
        assert!(shown[5].1.contains("line 7"), "{shown:?}");
        assert!(matches!(import("inn,status\n1,2\n"), Err(NpdImportError::Header(_))));
        assert!(matches!(import(""), Err(NpdImportError::Header(_))));
    }

    #[test]
    fn a_saved_register_loads_whole_and_a_damaged_one_is_refused() {
        let text = "\u{feff}inn,status,linked,full_name,phone\n\
                    500100732259,self_employed,1,Пётр,79990000004\n\
                    770000000220,unknown,0,,\n";
        let reg = import(text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("npd.idx");
        reg.save(&path).unwrap();
        assert_eq!(NpdRegister::load(&path).unwrap(), reg);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(NpdRegister::load(&path).is_err());
    }

    #[test]
    fn progress_is_reported_through_to_the_end() {
        let mut text = String::from("inn,status,linked,full_name,phone\n");
        let mut made = 0;
        for stem in 5_001_000_000u64.. {
            if made == NPD_PROGRESS_EVERY_ROWS + 1 {
                break;
            }
            if let Some(inn) = Inn::complete_individual(&stem.to_string()) {
                text.push_str(&format!("{inn},self_employed,false,,\n"));
                made += 1;
            }
        }
        let mut phases = Vec::new();
        let reg =
            import_npd_csv(text.as_bytes(), Some(text.len() as u64), &mut |p| phases.push((p.phase, p.rows))).unwrap();
        assert_eq!(reg.len(), made);
        assert_eq!(phases.first(), Some(&(Phase::Reading, NPD_PROGRESS_EVERY_ROWS)));
        assert_eq!(phases.last(), Some(&(Phase::Done, made)));
    }
}
