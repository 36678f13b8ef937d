//! Helpers for tests that need a PostgreSQL database: each test gets a new,
//! empty one, so tests run in parallel without seeing each other's rows.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

use crate::error::BackendError;
use crate::{Result, StoreError};

/// The variable naming an admin URL (a role that may `CREATE DATABASE`);
/// PostgreSQL tests run only when it is set.
pub const TEST_POSTGRES_ENV: &str = "OPEN131_TEST_POSTGRES";

/// The admin URL from [`TEST_POSTGRES_ENV`], if set and not empty.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var(TEST_POSTGRES_ENV).ok().filter(|url| !url.is_empty())
}

/// Distinguishes databases created by one process within one clock tick.
static DATABASES_CREATED: AtomicU64 = AtomicU64::new(0);

/// Creates a new database `open131_t_<pid>_<nanos>_<counter>` on the server of
/// `admin_url` and returns a URL for it (same server and user).
pub async fn fresh_database(admin_url: &str) -> Result<String> {
    let nanos = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let counter = DATABASES_CREATED.fetch_add(1, Ordering::Relaxed);
    let name = format!("open131_t_{}_{nanos}_{counter}", std::process::id());
    let (client, connection) = tokio_postgres::connect(admin_url, NoTls).await?;
    let driver = tokio::spawn(connection);
    // The name is made of digits and `_` only, so it needs no quoting.
    client.batch_execute(&format!("CREATE DATABASE {name}")).await?;
    drop(client);
    if let Ok(Err(e)) = driver.await {
        return Err(StoreError::Backend(BackendError::from(e)));
    }
    Ok(with_dbname(admin_url, &name))
}

/// `url` naming database `name` instead: the path of a `postgres://` URL is
/// replaced; a `key=value` string gets a later `dbname`, which wins.
fn with_dbname(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else { return format!("{url} dbname={name}") };
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_end = base[scheme_end..].find('/').map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..authority_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn the_database_name_is_replaced_or_added() {
        let cases = [
            ("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/t1"),
            ("postgres://u@h/postgres?sslmode=disable", "postgres://u@h/t1?sslmode=disable"),
            ("postgresql://u@h:5432", "postgresql://u@h:5432/t1"),
            ("host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=t1"),
        ];
        for (url, expected) in cases {
            assert_eq!(with_dbname(url, "t1"), expected);
        }
    }
}
