//! Test databases: SQLite in a temporary directory and PostgreSQL in a fresh database per
//! test (created through the `postgres` database, dropped when the test ends, even when it
//! panics).

use sightline_core::{Clock, ManualClock};
use sightline_store::{Store, StoreOptions};
use sqlx::Connection;
use std::sync::Arc;
use std::time::Duration;

/// Where the server lives; override with `SIGHTLINE_TEST_PG_URL` (a URL of a database the
/// tests may connect to in order to create their own).
fn pg_admin_url() -> String {
    std::env::var("SIGHTLINE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// A migrated store on a private database, a simulated clock, and a raw connection for
/// tampering with rows.
pub struct TestDb {
    pub store: Store,
    pub clock: ManualClock,
    url: String,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<PgGuard>,
}

impl TestDb {
    /// Another store (another connection pool) on the same database.
    pub async fn open_another(&self) -> Store {
        self.open_with_clock(Arc::new(self.clock.clone())).await
    }

    pub async fn open_with_clock(&self, clock: Arc<dyn Clock>) -> Store {
        let opts = StoreOptions {
            clock,
            ..StoreOptions::default()
        };
        Store::connect(&self.url, &opts)
            .await
            .expect("second connection")
    }

    /// Runs raw SQL against the database, bypassing the store.
    pub async fn exec(&self, sql: &'static str) {
        match &self.raw {
            Raw::Sqlite(p) => {
                sqlx::raw_sql(sql).execute(p).await.expect("raw sql");
            }
            Raw::Postgres(p) => {
                sqlx::raw_sql(sql).execute(p).await.expect("raw sql");
            }
        }
    }

    pub fn advance(&self, d: Duration) {
        self.clock.advance(d);
    }
}

fn start_clock() -> ManualClock {
    let c = ManualClock::new();
    // 2025-01-01T00:00:00Z, so stored timestamps look like real ones.
    c.advance(Duration::from_secs(1_735_689_600));
    c
}

fn options(clock: &ManualClock) -> StoreOptions {
    StoreOptions {
        clock: Arc::new(clock.clone()),
        ..StoreOptions::default()
    }
}

pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("nested/db.sqlite").display()
    );
    let clock = start_clock();
    let store = Store::connect(&url, &options(&clock))
        .await
        .expect("open sqlite");
    store.migrate().await.expect("migrate sqlite");
    let raw = sqlx::SqlitePool::connect(&url).await.expect("raw sqlite");
    TestDb {
        store,
        clock,
        url,
        raw: Raw::Sqlite(raw),
        _dir: Some(dir),
        _pg: None,
    }
}

/// Drops the test database when the test ends.
struct PgGuard {
    admin_url: String,
    name: String,
}

impl Drop for PgGuard {
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

/// A fresh PostgreSQL database, or `None` (with a loud message) if the server cannot be
/// reached at all. Set `SIGHTLINE_REQUIRE_PG=1` to turn that into a failure.
#[allow(clippy::print_stderr)]
pub async fn postgres() -> Option<TestDb> {
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
    let guard = PgGuard {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let url = match admin_url.rfind('/') {
        Some(i) if admin_url[..i].contains("://") && i > admin_url.find("://").unwrap() + 2 => {
            format!("{}/{name}", &admin_url[..i])
        }
        _ => panic!("SIGHTLINE_TEST_PG_URL must end with /DATABASE"),
    };
    let clock = start_clock();
    let store = Store::connect(&url, &options(&clock))
        .await
        .expect("open postgres");
    store.migrate().await.expect("migrate postgres");
    let raw = sqlx::PgPool::connect(&url).await.expect("raw postgres");
    Some(TestDb {
        store,
        clock,
        url,
        raw: Raw::Postgres(raw),
        _dir: None,
        _pg: Some(guard),
    })
}

#[allow(clippy::print_stderr)]
fn unreachable_pg(url: &str, why: &str) -> Option<TestDb> {
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

/// Generates `sqlite` and `postgres` tests that run `async fn $name(db: &TestDb)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = crate::common::sqlite().await;
                    super::$name(&db).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = crate::common::postgres().await else { return };
                    super::$name(&db).await;
                }
            }
        )*
    };
}
pub(crate) use both_backends;

/// A config named `cfg` with one version, so runs can be created.
pub async fn seed_config(store: &Store) {
    store
        .put_config_version("cfg", &serde_json::json!({"models": ["yolo"]}))
        .await
        .expect("seed config");
}

/// Creates `n` pending runs `r00`, `r01`, … (ids sort in creation order).
pub async fn seed_runs(db: &TestDb, n: usize) -> Vec<sightline_core::RunId> {
    seed_runs_with_prefix(db, "r", n).await
}

/// Creates `n` pending runs `{prefix}00`, `{prefix}01`, …
pub async fn seed_runs_with_prefix(
    db: &TestDb,
    prefix: &str,
    n: usize,
) -> Vec<sightline_core::RunId> {
    if db.store.get_config("cfg", None).await.is_err() {
        seed_config(&db.store).await;
    }
    let mut ids = Vec::new();
    for i in 0..n {
        let mut new = sightline_store::NewRun::new(
            sightline_store::SourceUri::new(format!("rtsp://user:pw@cam{i}/s")).unwrap(),
            "cfg",
        );
        new.id = Some(sightline_core::RunId::parse(&format!("{prefix}{i:02}")).unwrap());
        new.models = vec!["yolo".into()];
        ids.push(db.store.create_run(new).await.expect("create run").id);
        db.advance(Duration::from_millis(1));
    }
    ids
}
