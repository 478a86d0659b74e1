//! Test support (feature `testing`): a fresh PostgreSQL database per test, created through
//! the server's `postgres` database and dropped when the test ends, even when it panics.
//! Used by this crate's tests and by the other crates' tests that need a real database.

use sqlx::Connection;
use std::time::Duration;

/// The server; override with `SIGHTLINE_TEST_PG_URL` (a URL of a database the tests may
/// connect to in order to create their own).
pub fn pg_admin_url() -> String {
    std::env::var("SIGHTLINE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A private database on the test server; dropped with this value.
#[derive(Debug)]
pub struct PgDatabase {
    /// URL of the new database.
    pub url: String,
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // The test's runtime may be gone or busy; drop on a private one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Creates a fresh database, or returns `None` (with a loud message) if the server cannot
/// be reached at all. `SIGHTLINE_REQUIRE_PG=1` turns that into a failure.
#[allow(clippy::print_stderr)]
pub async fn fresh_pg_database() -> Option<PgDatabase> {
    let admin_url = pg_admin_url();
    let mut admin = match tokio::time::timeout(
        Duration::from_secs(5),
        sqlx::PgConnection::connect(&admin_url),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return unreachable_pg(&admin_url, &e.to_string()),
        Err(_) => return unreachable_pg(&admin_url, "timed out"),
    };
    let name = format!("sightline_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let url = match admin_url.rfind('/') {
        Some(i) if admin_url[..i].contains("://") && i > admin_url.find("://").unwrap() + 2 => {
            format!("{}/{name}", &admin_url[..i])
        }
        _ => panic!("SIGHTLINE_TEST_PG_URL must end with /DATABASE"),
    };
    Some(PgDatabase {
        url,
        admin_url,
        name,
    })
}

#[allow(clippy::print_stderr)]
fn unreachable_pg(url: &str, why: &str) -> Option<PgDatabase> {
    if std::env::var("SIGHTLINE_REQUIRE_PG").is_ok_and(|v| v == "1") {
        panic!("PostgreSQL at {url} is required but unreachable: {why}");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPING PostgreSQL test: server at {url} unreachable ({why})\n\
         !!! Start it or set SIGHTLINE_TEST_PG_URL; SIGHTLINE_REQUIRE_PG=1 makes this fail.\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    None
}
