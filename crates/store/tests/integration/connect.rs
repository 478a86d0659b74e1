//! Connecting, migrating, and failing fast on bad URLs.

use crate::common::{TestDb, both_backends};
use sightline_core::ErrorKind;
use sightline_core::error::Classify;
use sightline_store::{Backend, Store, StoreError, StoreOptions};
use std::time::{Duration, Instant};

async fn migrations_are_idempotent(db: &TestDb) {
    db.store.migrate().await.expect("second migrate");
    db.store.migrate().await.expect("third migrate");
    db.store.ping().await.expect("ping");
    // A second process migrating the same database concurrently is fine too.
    let other = db.open_another().await;
    let (a, b) = tokio::join!(db.store.migrate(), other.migrate());
    a.expect("concurrent migrate a");
    b.expect("concurrent migrate b");
    assert!(matches!(
        db.store.backend(),
        Backend::Sqlite | Backend::Postgres
    ));
}

both_backends!(migrations_are_idempotent);

#[tokio::test]
async fn unreachable_postgres_fails_fast_with_a_typed_error() {
    let opts = StoreOptions {
        connect_timeout: Duration::from_secs(2),
        ..StoreOptions::default()
    };
    let t0 = Instant::now();
    // Port 1 on loopback: connection refused.
    let err = Store::connect("postgres://bob:s3cret@127.0.0.1:1/x", &opts)
        .await
        .expect_err("must not connect");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("s3cret"), "password leaked: {msg}");
}

#[tokio::test]
async fn blackholed_postgres_times_out() {
    let opts = StoreOptions {
        connect_timeout: Duration::from_millis(500),
        ..StoreOptions::default()
    };
    let t0 = Instant::now();
    // TEST-NET-1 address: packets go nowhere.
    let err = Store::connect("postgres://u@192.0.2.1:5432/x", &opts)
        .await
        .expect_err("must not connect");
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

#[tokio::test]
async fn unsupported_and_unopenable_urls() {
    let opts = StoreOptions::default();
    let err = Store::connect("mysql://x/y", &opts)
        .await
        .expect_err("unsupported");
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    // A directory cannot be created under a regular file.
    let url = format!("sqlite://{}?mode=rwc", file.join("db.sqlite").display());
    let err = Store::connect(&url, &opts).await.expect_err("unopenable");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");

    // Not a database at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 8192]).unwrap();
    let store = Store::open_sqlite(&junk, &opts).await;
    match store {
        Err(e) => assert_ne!(e.kind(), ErrorKind::NotFound),
        Ok(s) => assert!(s.migrate().await.is_err(), "junk file must not migrate"),
    }
}

#[tokio::test]
async fn default_sqlite_url_lives_under_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let url = Store::default_sqlite_url(&data);
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .expect("open");
    store.migrate().await.expect("migrate");
    assert!(data.join("sightline.db").exists());
    assert_eq!(store.backend(), Backend::Sqlite);
    store.close().await;
}
