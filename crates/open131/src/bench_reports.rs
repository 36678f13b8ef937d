//! `open131 bench reports` (issue 14): a Moscow day of N succeeded payouts
//! seeded into a fresh project (`open131_store::bench`), then its payouts
//! register written as CSV (and, with `--xlsx`, XLSX), timed: rows per
//! second and the process's peak resident memory while writing, which stays
//! flat whatever N because the register streams page by page.
//!
//! SQLite runs in a temporary data directory; with `--database-url` the
//! project is made in that PostgreSQL database.

use std::time::Instant;

use anyhow::Context as _;
use open131_domain::reports::Register;
use open131_server::reports::{self, Format};
use open131_store::Location;

pub async fn run(location: &Location, operations: u64, xlsx: bool) -> anyhow::Result<()> {
    let temporary = tempfile::tempdir()?;
    let location = match location {
        Location::Postgres(_) => location.clone(),
        Location::Sqlite(_) => Location::Sqlite(open131_store::layout::DataDir::new(temporary.path())),
    };
    let store = open131_store::open(&location).await?;
    let now = time::OffsetDateTime::now_utc();
    let project = format!("bench_reports_{}", now.unix_timestamp());
    store.create_project(&project, now).await?;
    store.topup(&project, "rub", 1, now).await?;
    let day = time::macros::date!(2026 - 01 - 15);
    let seeding = Instant::now();
    open131_store::bench::seed_payout_day(&location, &project, reports::day_span(day)?.0, operations).await?;
    println!(
        "seeded {operations} payouts of {day} in {:.1} s ({})",
        seeding.elapsed().as_secs_f64(),
        location.backend().as_str()
    );
    let formats = if xlsx { vec![Format::Csv, Format::Xlsx] } else { vec![Format::Csv] };
    for format in formats {
        reset_peak_memory();
        let before = peak_memory_kib();
        let started = Instant::now();
        let (path, totals) =
            reports::write_day(store.as_ref(), temporary.path(), &project, Register::Payouts, day, format).await?;
        let seconds = started.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).with_context(|| format!("reading {}", path.display()))?.len();
        println!(
            "payouts register, {}: {} rows in {seconds:.1} s = {:.0} rows/s; file {:.1} MiB; peak RSS {:.1} MiB \
             (before writing {:.1} MiB)",
            format.extension(),
            totals.rows,
            totals.rows as f64 / seconds,
            bytes as f64 / 1_048_576.0,
            peak_memory_kib().unwrap_or(0) as f64 / 1024.0,
            before.unwrap_or(0) as f64 / 1024.0,
        );
    }
    Ok(())
}

/// Starts the kernel's peak-RSS count afresh (`/proc/self/clear_refs`, Linux).
fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory (`VmHWM`), in KiB.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
