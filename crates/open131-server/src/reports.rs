//! The bank's daily registers (issue 14): the payouts and payments of a
//! project's Moscow day, read from the ledger's postings with the facts of
//! their operations (`open131_domain::reports` says which posting makes which
//! row), written as CSV or XLSX.
//!
//! A register streams: the store is read a page of
//! [`REGISTER_PAGE_ROWS`] postings at a time and every row is written as it
//! comes, so a day of millions of operations never sits in memory (CSV is
//! written straight to its destination; XLSX uses the writer's constant-memory
//! mode, which keeps rows in a temporary file until the workbook is closed).
//!
//! Invariant: a register's [`Totals`] equal the ledger's movement of the
//! day (`tests/reports.rs` proves it over random operation sequences).

use std::io::Write;

use open131_domain::reports::{self, Register, RegisterOwner, RegisterPosting, Totals};
use open131_store::{Store, StoreError};
use time::{Date, OffsetDateTime};

/// Postings read from the store at a time.
pub const REGISTER_PAGE_ROWS: usize = 10_000;

/// A register's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "xlsx" => Some(Self::Xlsx),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// Why a register could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading the ledger: {0}")]
    Store(#[from] StoreError),
    #[error("writing the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("writing CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("writing XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    #[error("the day is past the last one the server can count")]
    DayOutOfRange,
}

/// The instants a Moscow day spans: `[start, end)`.
pub fn day_span(day: Date) -> Result<(OffsetDateTime, OffsetDateTime), ReportError> {
    let start = open131_domain::dates::moscow_day_start(day);
    let end = start.checked_add(time::Duration::DAY).ok_or(ReportError::DayOutOfRange)?;
    Ok((start, end))
}

/// Calls `row` with the fields of each row of `project`'s register for
/// Moscow `day`, wallet by wallet (book, then currency), oldest first; what
/// the rows add up to.
pub async fn each_row(
    store: &dyn Store,
    project: &str,
    register: Register,
    day: Date,
    mut row: impl FnMut(&[String]) -> Result<(), ReportError>,
) -> Result<Totals, ReportError> {
    let span = day_span(day)?;
    let owner = RegisterOwner { project: project.to_string() };
    let mut totals = Totals::default();
    for wallet in store.wallets(project).await? {
        let mut after = None;
        loop {
            let page = store
                .register_page(project, register, wallet.book, &wallet.currency, span, after, REGISTER_PAGE_ROWS)
                .await?;
            for posting in &page {
                add_row(&owner, register, posting, &mut totals, &mut row)?;
            }
            match page.last() {
                Some(last) if page.len() == REGISTER_PAGE_ROWS => after = Some((last.at, last.posting_id)),
                _ => break,
            }
        }
    }
    Ok(totals)
}

fn add_row(
    owner: &RegisterOwner,
    register: Register,
    posting: &RegisterPosting,
    totals: &mut Totals,
    row: &mut impl FnMut(&[String]) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    match register {
        Register::Payouts => {
            if let Some(r) = reports::payout_row(owner, posting) {
                totals.add_payout(&posting.currency, &r);
                row(&r.fields)?;
            }
        }
        Register::Payments => {
            if let Some(r) = reports::payment_row(owner, posting) {
                totals.add_payment(&posting.currency, &r);
                row(&r.fields)?;
            }
        }
    }
    Ok(())
}

/// Writes the register as CSV (a header, then a line per row; a day
/// without operations is the header alone, as the bank sends it).
pub async fn write_csv<W: Write>(
    store: &dyn Store,
    project: &str,
    register: Register,
    day: Date,
    out: W,
) -> Result<Totals, ReportError> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(register.columns())?;
    let totals = each_row(store, project, register, day, |fields| Ok(csv.write_record(fields)?)).await?;
    csv.flush()?;
    Ok(totals)
}

/// Writes the register as an XLSX workbook of one sheet (its header in
/// bold) into `out`.
pub async fn write_xlsx<W: Write + std::io::Seek + Send>(
    store: &dyn Store,
    project: &str,
    register: Register,
    day: Date,
    out: W,
) -> Result<Totals, ReportError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory()?;
    sheet.set_name(register.as_str())?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (col, name) in (0u16..).zip(register.columns()) {
        sheet.write_string_with_format(0, col, *name, &bold)?;
    }
    let mut next_row = 1u32;
    let totals = each_row(store, project, register, day, |fields| {
        for (col, field) in (0u16..).zip(fields) {
            sheet.write_string(next_row, col, field)?;
        }
        next_row += 1;
        Ok(())
    })
    .await?;
    let mut out = out;
    book.save_to_writer(&mut out)?;
    out.flush()?;
    Ok(totals)
}

/// Writes the register in `format` to `path`, atomically (a reader never
/// sees half a register).
pub async fn write_file(
    store: &dyn Store,
    project: &str,
    register: Register,
    day: Date,
    format: Format,
    path: &std::path::Path,
) -> Result<Totals, ReportError> {
    use open131_store::layout::{AtomicFile, FileMode};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = AtomicFile::create(path, FileMode::Default)?;
    let out = std::io::BufWriter::new(file.file());
    let totals = match format {
        Format::Csv => write_csv(store, project, register, day, out).await?,
        Format::Xlsx => write_xlsx(store, project, register, day, out).await?,
    };
    file.commit()?;
    Ok(totals)
}
