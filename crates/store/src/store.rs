//! The handle to the database: which backend (SQLite or PostgreSQL, chosen by URL), how to
//! connect to it within a bounded time, and its embedded migrations.
//!
//! Queries are plain `sqlx::query`/`query_as` with bound parameters, not the compile-time
//! checked macros: the project builds with no database at build time (no `DATABASE_URL`, no
//! offline cache to keep in sync), and the tests run every query against both real backends
//! instead. The two schemas are kept column-for-column identical (timestamps as integer
//! milliseconds, JSON as TEXT/JSONB) so that one SQL text, with `$N` placeholders that both
//! drivers accept, serves both; the [`on_pool!`] and [`on_tx!`] macros expand a query body
//! once per backend. Where the dialects differ (`FOR UPDATE SKIP LOCKED`, `BEGIN IMMEDIATE`),
//! the code says so at that spot through [`Dialect`].

use crate::error::{Result, StoreError};
use sightline_core::{Clock, SystemClock};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Postgres, Sqlite, Transaction};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database flavour behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// SQL differences between the backends, visible where a query needs them.
pub(crate) type Dialect = Backend;

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Upper bound on establishing the first connection and on waiting for a pooled one.
    pub connect_timeout: Duration,
    /// Pool size. SQLite serialises writers anyway; readers use the extra connections.
    pub max_connections: u32,
    /// SQLite only: how long a writer waits for the write lock before failing with busy.
    pub sqlite_busy_timeout: Duration,
    /// Wall clock used for every stored timestamp and for lease expiry. Workers sharing one
    /// PostgreSQL compare leases against their own clocks, so keep hosts NTP-synchronised and
    /// the lease TTL well above any skew. Tests inject a `ManualClock`.
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            connect_timeout: Duration::from_secs(5),
            max_connections: 8,
            sqlite_busy_timeout: Duration::from_secs(5),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction on either backend.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

/// Evaluates `$body` with `$pool` bound to the backend's pool (the body is compiled once per
/// backend, so it must be valid SQL for both).
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.pool() {
            $crate::store::Pool::Sqlite($pool) => $body,
            $crate::store::Pool::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Evaluates `$body` with `$conn` bound to the transaction's connection.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}
pub(crate) use on_tx;

/// The database. Cheap to clone (the pools are shared).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    clock: Arc<dyn Clock>,
    url: Arc<str>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("url", &self.url)
            .finish()
    }
}

impl Store {
    /// Connects to `url`: `sqlite://PATH[?mode=rwc]` (a file; parent directories are created)
    /// or `postgres://…`/`postgresql://…`. Fails within `opts.connect_timeout` with
    /// [`StoreError::Connect`] or [`StoreError::ConnectTimeout`] when the database cannot be
    /// reached. Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Store> {
        let masked = redact_url(url);
        if url.starts_with("sqlite:") {
            let o = SqliteConnectOptions::from_str(url)
                .map_err(|e| StoreError::invalid("database url", e.to_string()))?;
            Self::open_sqlite_with(o, masked, opts).await
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let o = PgConnectOptions::from_str(url)
                .map_err(|e| StoreError::invalid("database url", e.to_string()))?;
            Self::open_postgres_with(o, masked, opts).await
        } else {
            Err(StoreError::UnsupportedUrl { url: masked })
        }
    }

    /// Opens (creating it if missing) the SQLite file at `path`; the embedded default.
    pub async fn open_sqlite(path: &Path, opts: &StoreOptions) -> Result<Store> {
        let o = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        Self::open_sqlite_with(o, format!("sqlite://{}", path.display()), opts).await
    }

    /// The default database URL for a data directory: `DIR/sightline.db`.
    pub fn default_sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("sightline.db").display()
        )
    }

    async fn open_sqlite_with(
        o: SqliteConnectOptions,
        masked: String,
        opts: &StoreOptions,
    ) -> Result<Store> {
        let o = o
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(opts.sqlite_busy_timeout)
            .foreign_keys(true);
        if let Some(parent) = o.get_filename().parent()
            && !parent.as_os_str().is_empty()
            && !parent.exists()
        {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                url: masked.clone(),
                source: sqlx::Error::Io(e),
            })?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(opts.max_connections.max(1))
            .acquire_timeout(opts.connect_timeout);
        let pool = bounded_connect(&masked, opts.connect_timeout, pool.connect_with(o)).await?;
        tracing::info!(url = %masked, "connected to SQLite");
        Ok(Store {
            pool: Pool::Sqlite(pool),
            clock: opts.clock.clone(),
            url: masked.into(),
        })
    }

    async fn open_postgres_with(
        o: PgConnectOptions,
        masked: String,
        opts: &StoreOptions,
    ) -> Result<Store> {
        let o = o.application_name("sightline");
        let pool = PgPoolOptions::new()
            .max_connections(opts.max_connections.max(2))
            .acquire_timeout(opts.connect_timeout);
        let pool = bounded_connect(&masked, opts.connect_timeout, pool.connect_with(o)).await?;
        tracing::info!(url = %masked, "connected to PostgreSQL");
        Ok(Store {
            pool: Pool::Postgres(pool),
            clock: opts.clock.clone(),
            url: masked.into(),
        })
    }

    /// Applies the embedded migrations of this backend (idempotent; on PostgreSQL several
    /// workers may call it at once, an advisory lock serialises them).
    pub async fn migrate(&self) -> Result<()> {
        match &self.pool {
            Pool::Sqlite(p) => SQLITE_MIGRATOR.run(p).await?,
            Pool::Postgres(p) => POSTGRES_MIGRATOR.run(p).await?,
        }
        tracing::info!(
            backend = self.backend().as_str(),
            "database schema up to date"
        );
        Ok(())
    }

    /// A round trip to the database (for readiness checks).
    pub async fn ping(&self) -> Result<()> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await?.rows_affected());
        Ok(())
    }

    /// Closes every pooled connection.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// The URL this store was opened with, password masked.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The clock behind stored timestamps.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    pub(crate) fn pg_pool(&self) -> Option<&PgPool> {
        match &self.pool {
            Pool::Postgres(p) => Some(p),
            Pool::Sqlite(_) => None,
        }
    }

    /// Now, in milliseconds since the Unix epoch, from the injected clock.
    pub(crate) fn now_ms(&self) -> i64 {
        let d = self
            .clock
            .wall()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (takes the write lock up
    /// front, so read-then-write transactions never fail with a stale snapshot), a plain
    /// `BEGIN` (read committed) on PostgreSQL, where row locks do the work.
    pub(crate) async fn begin_write(&self) -> Result<Tx> {
        Ok(match &self.pool {
            Pool::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }
}

async fn bounded_connect<P>(
    masked: &str,
    timeout: Duration,
    fut: impl Future<Output = std::result::Result<P, sqlx::Error>>,
) -> Result<P> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(p)) => Ok(p),
        Ok(Err(e)) => Err(StoreError::Connect {
            url: masked.to_owned(),
            source: e,
        }),
        Err(_) => Err(StoreError::ConnectTimeout {
            url: masked.to_owned(),
            after: timeout,
        }),
    }
}

/// `scheme://user:***@host/…`: the password of a database URL masked for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..auth_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let masked_userinfo = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_owned()
            };
            format!(
                "{}{}@{}",
                &url[..scheme_end + 3],
                masked_userinfo,
                &rest[at + 1..]
            )
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_database_passwords() {
        assert_eq!(
            redact_url("postgres://bob:s3cret@db:5432/x?sslmode=disable"),
            "postgres://bob:***@db:5432/x?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
