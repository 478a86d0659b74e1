//! Shared fixtures: a migrated store (SQLite or PostgreSQL) whose clock the test controls,
//! a run to hang media on, and pictures written through the real media store.
#![allow(dead_code)]

use sightline_core::{Clock, EventId, ManualClock, PictureKind, RunId};
use sightline_storage::MediaStore;
use sightline_store::{NewMediaObject, NewRun, SourceUri, Store, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub struct Db {
    pub store: Store,
    pub clock: ManualClock,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<sightline_store::testing::PgDatabase>,
}

/// A clock starting `ago` before the real now.
fn clock_at(ago: Duration) -> ManualClock {
    let c = ManualClock::new();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    c.advance(now - ago);
    c
}

fn opts(c: &ManualClock) -> StoreOptions {
    StoreOptions {
        clock: Arc::new(c.clone()),
        ..Default::default()
    }
}

pub async fn sqlite(ago: Duration) -> Db {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock_at(ago);
    let store = Store::open_sqlite(&dir.path().join("s.db"), &opts(&clock))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Db {
        store,
        clock,
        _dir: Some(dir),
        _pg: None,
    }
}

pub async fn postgres(ago: Duration) -> Option<Db> {
    let pg = sightline_store::testing::fresh_pg_database().await?;
    let clock = clock_at(ago);
    let store = Store::connect(&pg.url, &opts(&clock)).await.unwrap();
    store.migrate().await.unwrap();
    Some(Db {
        store,
        clock,
        _dir: None,
        _pg: Some(pg),
    })
}

impl Db {
    pub fn now_ms(&self) -> i64 {
        self.clock
            .wall()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    }

    /// A run of config `name` (created with `body` if missing).
    pub async fn run(&self, id: &str, config: &str, body: serde_json::Value) -> RunId {
        if self.store.get_config(config, None).await.is_err() {
            self.store.put_config_version(config, &body).await.unwrap();
        }
        let mut n = NewRun::new(SourceUri::new("test://ball").unwrap(), config);
        n.id = Some(RunId::parse(id).unwrap());
        self.store.create_run(n).await.unwrap().id
    }

    /// Stores a picture of `bytes` bytes now (by the test clock) and indexes it.
    pub async fn picture(&self, media: &MediaStore, run: &RunId, key: &str, bytes: usize) {
        media
            .put(key, bytes::Bytes::from(vec![7u8; bytes]))
            .await
            .unwrap();
        self.store
            .insert_media_object(&NewMediaObject {
                key: key.into(),
                volume: media.volume().into(),
                run_id: run.clone(),
                event_id: Some(EventId::generate()),
                kind: PictureKind::Crop,
                bytes: bytes as u64,
                width: 1,
                height: 1,
            })
            .await
            .unwrap();
    }
}

/// Generates a `sqlite` and a `postgres` test running `async fn $name(db: Db)`.
macro_rules! both_backends {
    ($ago:expr, $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let ago = { use super::*; $ago };
                    super::$name(crate::common::sqlite(ago).await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let ago = { use super::*; $ago };
                    let Some(db) = crate::common::postgres(ago).await else { return };
                    super::$name(db).await;
                }
            }
        )*
    };
}
pub(crate) use both_backends;
