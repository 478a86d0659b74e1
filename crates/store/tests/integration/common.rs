//! Test databases: SQLite in a temporary directory and PostgreSQL in a fresh database per
//! test (created through the `postgres` database, dropped when the test ends, even when it
//! panics).

use sightline_core::{Clock, ManualClock};
use sightline_store::{Store, StoreOptions};
use std::sync::Arc;
use std::time::Duration;

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
    _pg: Option<sightline_store::testing::PgDatabase>,
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

/// A fresh PostgreSQL database, or `None` (with a loud message) if the server cannot be
/// reached at all. Set `SIGHTLINE_REQUIRE_PG=1` to turn that into a failure.
pub async fn postgres() -> Option<TestDb> {
    let pg = sightline_store::testing::fresh_pg_database().await?;
    let url = pg.url.clone();
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
        _pg: Some(pg),
    })
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
