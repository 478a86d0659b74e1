//! Store-side part of the engine's pickup latency on PostgreSQL: from `create_run` returning
//! to a worker holding the claimed run, when the worker waits on LISTEN/NOTIFY, and the cost
//! of one `claim_runs` call (what a polling worker pays per tick, plus on average half its
//! poll interval of waiting).
//!
//! ```text
//! cargo run --release -p sightline-store --example pickup_latency [-- PG_ADMIN_URL]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use sightline_store::{NewRun, RunNotice, SourceUri, Store, StoreOptions};
use sqlx::Connection;
use std::time::{Duration, Instant};

const N: usize = 200;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

async fn measure(store: &Store) -> Result<(), Box<dyn std::error::Error>> {
    store.migrate().await?;
    store
        .put_config_version("c", &serde_json::json!({}))
        .await?;
    let mut listener = store.listen_runs().await?.ok_or("not PostgreSQL")?;
    let ttl = Duration::from_secs(30);
    let mut notify = Vec::with_capacity(N);
    let mut claim = Vec::with_capacity(N);
    for _ in 0..N {
        let t0 = Instant::now();
        let run = store
            .create_run(NewRun::new(SourceUri::new("test://x")?, "c"))
            .await?;
        loop {
            match listener.recv().await.ok_or("listener closed")? {
                RunNotice::Pending(id) if id == run.id => break,
                _ => continue,
            }
        }
        let t1 = Instant::now();
        let got = store.claim_runs("bench", 10_000, ttl).await?;
        let t2 = Instant::now();
        if got.len() != 1 {
            return Err(format!("claimed {} runs", got.len()).into());
        }
        notify.push(t2 - t0);
        claim.push(t2 - t1);
    }
    println!(
        "create -> NOTIFY -> claimed: p50 {:?} p95 {:?} | claim_runs alone: p50 {:?} p95 {:?} ({N} runs)",
        pct(&mut notify, 0.5),
        pct(&mut notify, 0.95),
        pct(&mut claim, 0.5),
        pct(&mut claim, 0.95),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let admin_url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
    let name = format!("sightline_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await?;
    let url = format!(
        "{}/{name}",
        &admin_url[..admin_url.rfind('/').unwrap_or(admin_url.len())]
    );
    let result = async {
        let pg = Store::connect(&url, &StoreOptions::default()).await?;
        let r = measure(&pg).await;
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
