//! Event-insert throughput: batched (`insert_events` with many events per call, as the
//! engine writes them) against one call per event, on SQLite and on PostgreSQL.
//!
//! ```text
//! cargo run --release -p sightline-store --example insert_bench [-- PG_ADMIN_URL]
//! ```
//! PostgreSQL runs in a throw-away database created through PG_ADMIN_URL (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use sightline_core::{BBox, Event, EventId, EventKind, Pts, RuleEvent, RunId, TrackId};
use sightline_store::{NewRun, SourceUri, Store, StoreOptions};
use sqlx::Connection;
use std::time::Instant;

const BATCHED: usize = 50_000;
const BATCH: usize = 500;
const SINGLE: usize = 3_000;

fn events(run: &RunId, n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let mut body = RuleEvent::new(
                EventKind::ZoneEnter,
                "enter",
                Pts::from_millis(i as i64 * 40),
            );
            body.track_id = Some(TrackId(i as u64));
            body.class = Some("person".into());
            body.confidence = Some(0.87);
            body.bbox = Some(BBox::new(10.0, 20.0, 110.0, 220.0));
            body.zone = Some("door".into());
            Event {
                id: EventId::generate(),
                run_id: run.clone(),
                wall_ms: 1_735_689_600_000 + i as i64 * 40,
                body,
                media: None,
            }
        })
        .collect()
}

async fn bench(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    store.migrate().await?;
    store
        .put_config_version("bench", &serde_json::json!({}))
        .await?;
    let run = store
        .create_run(NewRun::new(SourceUri::new("test://bench")?, "bench"))
        .await?
        .id;

    let evs = events(&run, BATCHED);
    let t = Instant::now();
    for chunk in evs.chunks(BATCH) {
        store.insert_events(chunk).await?;
    }
    let batched = BATCHED as f64 / t.elapsed().as_secs_f64();

    let evs = events(&run, BATCHED);
    let t = Instant::now();
    for chunk in evs.chunks(BATCH) {
        store
            .insert_events_with_outbox(chunk, &["mqtt", "webhook"])
            .await?;
    }
    let batched_outbox = BATCHED as f64 / t.elapsed().as_secs_f64();

    let evs = events(&run, SINGLE);
    let t = Instant::now();
    for e in &evs {
        store.insert_events(std::slice::from_ref(e)).await?;
    }
    let single = SINGLE as f64 / t.elapsed().as_secs_f64();

    println!(
        "{:<9} batched ({BATCH}/call): {batched:>9.0} events/s | batched + 2 outbox rows: {batched_outbox:>9.0} events/s | one per call: {single:>7.0} events/s | speed-up x{:.0}",
        store.backend().as_str(),
        batched / single,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let opts = StoreOptions::default();

    let dir = tempfile::tempdir()?;
    let sqlite = Store::open_sqlite(&dir.path().join("bench.db"), &opts).await?;
    bench(&sqlite).await?;

    let admin_url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("PostgreSQL at {admin_url} unreachable ({e}); skipped");
            return Ok(());
        }
    };
    let name = format!("sightline_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    let url = format!(
        "{}/{name}",
        &admin_url[..admin_url.rfind('/').unwrap_or(admin_url.len())]
    );
    let result = async {
        let pg = Store::connect(&url, &opts).await?;
        let r = bench(&pg).await;
        pg.close().await;
        r
    }
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    result
}
