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
//! Served on the admin surface (admin token), as files:
//! - `GET /admin/v1/reports/{project}/payouts|payments?date=YYYY-MM-DD[&format=csv|xlsx]`;
//! - `GET /admin/v1/reports/{project}/act?month=YYYY-MM&register=payouts|payments`.
//!
//! Invariant: a register's [`Totals`] equal the ledger's movement of the
//! day (`tests/reports.rs` proves it over random operation sequences).

use std::io::Write;

use open131_domain::reports::{self, Register, RegisterOwner, RegisterPosting, Totals};
use open131_store::{Store, StoreError};
use time::{Date, OffsetDateTime};

/// Rows a worksheet holds below its header (Excel's limit, 1,048,576 rows).
pub const XLSX_ROWS_MAX: u32 = 1_048_575;

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
    #[error("the bundled font could not be read")]
    Font,
    #[error("more than {XLSX_ROWS_MAX} rows: a spreadsheet holds no more (ask for CSV)")]
    TooManyRows,
}

/// The instants a Moscow day spans: `[start, end)`.
pub fn day_span(day: Date) -> Result<(OffsetDateTime, OffsetDateTime), ReportError> {
    let start = open131_domain::dates::moscow_day_start(day);
    let end = start.checked_add(time::Duration::DAY).ok_or(ReportError::DayOutOfRange)?;
    Ok((start, end))
}

/// The instants a Moscow month spans, `[start, end)`, and its first and last days.
pub fn month_span(year: i32, month: time::Month) -> Result<(OffsetDateTime, OffsetDateTime, Date, Date), ReportError> {
    let first = Date::from_calendar_date(year, month, 1).map_err(|_| ReportError::DayOutOfRange)?;
    let next = match month {
        time::Month::December => Date::from_calendar_date(year + 1, time::Month::January, 1),
        _ => Date::from_calendar_date(year, month.next(), 1),
    }
    .map_err(|_| ReportError::DayOutOfRange)?;
    let last = next.previous_day().ok_or(ReportError::DayOutOfRange)?;
    Ok((day_span(first)?.0, day_span(next)?.0, first, last))
}

/// Calls `row` with the fields of each row of `project`'s register for
/// Moscow `day`, wallet by wallet (book, then currency), oldest first; what
/// the rows add up to.
pub async fn each_row(
    store: &dyn Store,
    project: &str,
    register: Register,
    day: Date,
    row: impl FnMut(&[String]) -> Result<(), ReportError>,
) -> Result<Totals, ReportError> {
    each_row_in(store, project, register, day_span(day)?, row).await
}

/// [`each_row`] over any span: a month's for the act.
pub async fn each_row_in(
    store: &dyn Store,
    project: &str,
    register: Register,
    span: (OffsetDateTime, OffsetDateTime),
    mut row: impl FnMut(&[String]) -> Result<(), ReportError>,
) -> Result<Totals, ReportError> {
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
        if next_row > XLSX_ROWS_MAX {
            return Err(ReportError::TooManyRows);
        }
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

/// The bundled font of the act (DejaVu Sans: Cyrillic; its licence beside
/// it). Embedded whole: printpdf subsets only with its layout engine, which
/// this crate does not pull in, so the act has one font (headings larger,
/// not bold) and weighs about 370 KB.
const ACT_FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
/// A4, in millimetres.
const PAGE_MM: (f32, f32) = (210.0, 297.0);
const MARGIN_MM: f32 = 20.0;
const LINE_MM: f32 = 6.5;

/// The monthly act of `project`'s `register` for `year`/`month` as a PDF:
/// the month's register totals (streamed, as the daily registers are) in
/// the act's template ([`reports::act`]).
pub async fn act_pdf(
    store: &dyn Store,
    project: &str,
    register: Register,
    year: i32,
    month: time::Month,
) -> Result<Vec<u8>, ReportError> {
    let (start, end, first, last) = month_span(year, month)?;
    let totals = each_row_in(store, project, register, (start, end), |_| Ok(())).await?;
    render_pdf(
        &format!("{project} {year}-{:02}", u8::from(month)),
        &reports::act(register, project, first, last, &totals),
    )
}

/// Lays `lines` out on A4 pages, top to bottom.
fn render_pdf(title: &str, lines: &[reports::ActLine]) -> Result<Vec<u8>, ReportError> {
    use printpdf::{Mm, Op, ParsedFont, PdfDocument, PdfFontHandle, PdfPage, PdfSaveOptions, Point, Pt, TextItem};
    let mut warnings = Vec::new();
    let font = ParsedFont::from_bytes(ACT_FONT, 0, &mut Vec::new()).ok_or(ReportError::Font)?;
    let mut doc = PdfDocument::new(title);
    let font = doc.add_font(&font);
    let per_page = ((PAGE_MM.1 - 2.0 * MARGIN_MM) / LINE_MM) as usize;
    let pages = lines
        .chunks(per_page.max(1))
        .map(|chunk| {
            let mut ops = Vec::new();
            for (i, line) in chunk.iter().enumerate() {
                let y = PAGE_MM.1 - MARGIN_MM - LINE_MM * i as f32;
                let size = if line.heading { 15.0 } else { 11.0 };
                // A text section per line: its cursor is absolute (a section starts at the origin).
                ops.push(Op::StartTextSection);
                ops.push(Op::SetTextCursor { pos: Point::new(Mm(MARGIN_MM), Mm(y)) });
                ops.push(Op::SetFont { font: PdfFontHandle::External(font.clone()), size: Pt(size) });
                ops.push(Op::ShowText { items: vec![TextItem::Text(line.text.clone())] });
                ops.push(Op::EndTextSection);
            }
            PdfPage::new(Mm(PAGE_MM.0), Mm(PAGE_MM.1), ops)
        })
        .collect();
    Ok(doc.with_pages(pages).save(&PdfSaveOptions::default(), &mut warnings))
}

/// Writes `project`'s `register` of Moscow `day` into `dir` under the
/// bank's file name; the file's path and the register's totals.
pub async fn write_day(
    store: &dyn Store,
    dir: &std::path::Path,
    project: &str,
    register: Register,
    day: Date,
    format: Format,
) -> Result<(std::path::PathBuf, Totals), ReportError> {
    let path = dir.join(reports::file_name(project, day, day, format.extension()));
    let totals = write_file(store, project, register, day, format, &path).await?;
    Ok((path, totals))
}

/// Writes the monthly act of `project`'s `register` into `dir`
/// (`<project>_<YYYY-MM>_<register>.pdf`); its path.
pub async fn write_act(
    store: &dyn Store,
    dir: &std::path::Path,
    project: &str,
    register: Register,
    (year, month): (i32, time::Month),
) -> Result<std::path::PathBuf, ReportError> {
    use open131_store::layout::{write_atomic, FileMode};
    let pdf = act_pdf(store, project, register, year, month).await?;
    std::fs::create_dir_all(dir)?;
    let (_, _, first, last) = month_span(year, month)?;
    let path = dir.join(reports::act_file_name(project, first, last, register));
    write_atomic(&path, &pdf, FileMode::Default)?;
    Ok(path)
}

/// The admin surface's report routes.
pub fn router() -> axum::Router<crate::App> {
    axum::Router::new().route("/admin/v1/reports/{project}/{kind}", axum::routing::get(serve_report))
}

/// A report's query: only these keys, each a string.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    date: Option<String>,
    month: Option<String>,
    format: Option<String>,
    register: Option<String>,
}

/// What the query asks for, parsed, or the message naming the bad key.
enum Asked {
    Day(Register, Date, Format),
    Act(Register, (i32, time::Month)),
}

fn asked(kind: &str, q: ReportQuery) -> Result<Asked, String> {
    let day = |text: &str| {
        Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
            .map_err(|_| "date must be a day, YYYY-MM-DD".to_string())
    };
    match (kind, Register::parse(kind)) {
        (_, Some(register)) => {
            if q.month.is_some() || q.register.is_some() {
                return Err("month and register are the act's: a register takes date and format".into());
            }
            let date = day(q.date.as_deref().ok_or("date is required: YYYY-MM-DD")?)?;
            day_span(date).map_err(|_| "date is past the last day the server can count".to_string())?;
            let format = Format::parse(q.format.as_deref().unwrap_or("csv")).ok_or("format must be csv or xlsx")?;
            Ok(Asked::Day(register, date, format))
        }
        ("act", None) => {
            if q.date.is_some() || q.format.is_some() {
                return Err("date and format are a register's: the act takes month and register".into());
            }
            let month = day(&format!("{}-01", q.month.as_deref().ok_or("month is required: YYYY-MM")?))
                .map_err(|_| "month must be YYYY-MM".to_string())?;
            let register =
                q.register.as_deref().and_then(Register::parse).ok_or("register must be payouts or payments")?;
            month_span(month.year(), month.month())
                .map_err(|_| "month is past the last one the server can count".to_string())?;
            Ok(Asked::Act(register, (month.year(), month.month())))
        }
        _ => Err("the report is payouts, payments or act".into()),
    }
}

async fn serve_report(
    axum::extract::State(app): axum::extract::State<crate::App>,
    headers: axum::http::HeaderMap,
    axum::extract::Path((project, kind)): axum::extract::Path<(String, String)>,
    query: Result<axum::extract::Query<ReportQuery>, axum::extract::rejection::QueryRejection>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    if let Some(r) = crate::admin::refusal(&app, &headers) {
        return r;
    }
    let asked = match query.map_err(|e| e.body_text()).and_then(|q| asked(&kind, q.0)) {
        Ok(asked) => asked,
        Err(why) => return crate::admin::error(StatusCode::BAD_REQUEST, "invalid_request", &why),
    };
    match app.store.project(&project).await {
        Ok(Some(_)) => {}
        Ok(None) => return crate::admin::not_found("no such project"),
        Err(e) => return report_failed(&ReportError::Store(e)),
    }
    let store = app.store.as_ref();
    let (name, content_type, file) = match asked {
        Asked::Day(register, day, format) => {
            let name = reports::file_name(&project, day, day, format.extension());
            let file = spool(|out| async move {
                match format {
                    Format::Csv => write_csv(store, &project, register, day, out).await.map(drop),
                    Format::Xlsx => write_xlsx(store, &project, register, day, out).await.map(drop),
                }
            })
            .await;
            (name, format.content_type(), file)
        }
        Asked::Act(register, (year, month)) => {
            let (_, _, first, last) = match month_span(year, month) {
                Ok(span) => span,
                Err(e) => return report_failed(&e),
            };
            let name = reports::act_file_name(&project, first, last, register);
            let file = async {
                let pdf = act_pdf(store, &project, register, year, month).await?;
                let mut file = tempfile::tempfile()?;
                file.write_all(&pdf)?;
                Ok(file)
            }
            .await;
            (name, "application/pdf", file)
        }
    };
    match file {
        Ok(file) => file_response(file, &name, content_type),
        Err(e @ ReportError::TooManyRows) => {
            crate::admin::error(StatusCode::BAD_REQUEST, "invalid_request", &format!("format: {e}"))
        }
        Err(e) => report_failed(&e),
    }
}

/// Writes a report into an unnamed temporary file (a register of any size
/// never sits in memory), ready to be read from its start.
async fn spool<F, Fut>(write: F) -> Result<std::fs::File, ReportError>
where
    F: FnOnce(std::io::BufWriter<std::fs::File>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ReportError>>,
{
    use std::io::Seek;
    let mut file = tempfile::tempfile()?;
    write(std::io::BufWriter::new(file.try_clone()?)).await?;
    file.rewind()?;
    Ok(file)
}

/// The file as the response body, read a chunk at a time.
fn file_response(mut file: std::fs::File, name: &str, content_type: &'static str) -> axum::response::Response {
    use axum::response::IntoResponse;
    use std::io::{Read, Seek};
    let _ = file.rewind();
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf) {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let disposition = format!("attachment; filename=\"{name}\"");
    (
        [
            (axum::http::header::CONTENT_TYPE, content_type.to_string()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
        ],
        axum::body::Body::from_stream(chunks),
    )
        .into_response()
}

fn report_failed(e: &ReportError) -> axum::response::Response {
    tracing::error!(error = %e, "a report could not be written");
    crate::admin::internal()
}
