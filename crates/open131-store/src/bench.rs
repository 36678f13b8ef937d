//! Seeding for benchmarks (`open131 bench reports`): a day of `count`
//! succeeded card payouts of one project written straight into the tables,
//! each with its session and the two postings of its debit, in one
//! statement per table (a recursive CTE on SQLite, `generate_series` on
//! PostgreSQL), far faster than the API could make them. Not for serving:
//! the sessions are bare (no timers, no webhooks).

use time::OffsetDateTime;

use crate::{Location, Result};

/// The masked card every seeded payout names.
const SEEDED_METHOD: &str = r#"{"type":"card","card":{"brand":"mir","last4":"4940","bin":"220000"}}"#;

/// The rows of one seeded payout `i` (1..=count), as SQL over a series `g(i)`:
/// `$1` project, `$2` the first instant, `$3` microseconds between payouts.
fn statements(series: &str) -> [String; 3] {
    let at = "($2 + (i - 1) * $3)";
    let amount = "(100 + i % 100000)";
    [
        format!(
            "{series} INSERT INTO sessions (project_id, id, api_version, phase, version, created_at_us, updated_at_us)
             SELECT $1, 'ps_bench_' || i, 'v1', 'finished', 1, {at}, {at} FROM g"
        ),
        format!(
            "{series} INSERT INTO payouts (project_id, session_id, id, amount, currency, method_masked,
                 participant_details, plan, created_at_us, state)
             SELECT $1, 'ps_bench_' || i, 'po_bench_' || i, {amount}, 'rub', '{SEEDED_METHOD}', '{{}}', 'ok', {at},
                 'succeeded' FROM g"
        ),
        format!(
            "{series} INSERT INTO ledger_postings (project_id, book, currency, movement, account, amount, session_id,
                 created_at_us, operation_id)
             SELECT $1, 'main', 'rub', 'debit', 'reserved', -{amount}, 'ps_bench_' || i, {at}, 'po_bench_' || i FROM g
             UNION ALL
             SELECT $1, 'main', 'rub', 'debit', 'payouts', {amount}, 'ps_bench_' || i, {at}, 'po_bench_' || i FROM g"
        ),
    ]
}

/// Seeds `count` payouts of `project` (which must exist, with a rouble
/// main wallet) spread over `[from, from + 1 day)`.
pub async fn seed_payout_day(location: &Location, project: &str, from: OffsetDateTime, count: u64) -> Result<()> {
    let first = crate::rows::to_us(from);
    let step = 86_400_000_000 / i64::try_from(count.max(1)).unwrap_or(i64::MAX);
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    match location {
        Location::Sqlite(dir) => {
            let series = "WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < $4)";
            let mut conn = rusqlite::Connection::open(dir.database()).map_err(crate::sqlite::writer::db)?;
            let tx = conn.transaction().map_err(crate::sqlite::writer::db)?;
            for sql in statements(series) {
                let sql = crate::sqlite::numbered(&sql);
                tx.execute(&sql, rusqlite::params![project, first, step, count]).map_err(crate::sqlite::writer::db)?;
            }
            tx.commit().map_err(crate::sqlite::writer::db)
        }
        Location::Postgres(url) => {
            let (mut client, connection) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(connection);
            let series = "WITH g(i) AS (SELECT generate_series(1, $4::BIGINT))";
            let tx = client.transaction().await?;
            for sql in statements(series) {
                tx.execute(&sql, &[&project, &first, &step, &count]).await?;
            }
            tx.commit().await?;
            // A day's rows arrive over a day and autovacuum keeps the planner's
            // figures; rows arriving in one statement need them made now.
            client.batch_execute("ANALYZE sessions, payouts, ledger_postings").await?;
            drop(client);
            let _ = driver.await;
            Ok(())
        }
    }
}
