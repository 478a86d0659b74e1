//! Load client for `POST /v1/infer`: serves the API in-process on an ephemeral port (temporary
//! SQLite store, shipped NanoDet model) and drives it with C concurrent HTTP clients for a
//! few seconds, then prints latency percentiles of the 200s, throughput and the status mix.
//!
//! ```text
//! cargo run --release -p sightline-api --example api_bench -- \
//!     [--concurrency 4] [--seconds 10] [--slots 2] [--max-queue 32] [--jpeg] [--annotate]
//! ```
#![allow(clippy::print_stdout)]

use base64::Engine as _;
use sightline_api::{ApiOptions, ApiState, AuthMode, router};
use sightline_config::server::{InferGuards, InferenceSection};
use sightline_engine::{EngineShared, ModelCache};
use sightline_store::{Store, StoreOptions};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    concurrency: usize,
    seconds: u64,
    slots: u32,
    max_queue: u32,
    jpeg: bool,
    annotate: bool,
}

fn args() -> Args {
    let mut a = Args {
        concurrency: 4,
        seconds: 10,
        slots: 2,
        max_queue: 32,
        jpeg: false,
        annotate: false,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let next = |i: usize| {
            v.get(i + 1)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match v[i].as_str() {
            "--concurrency" => a.concurrency = next(i).max(1) as usize,
            "--seconds" => a.seconds = next(i).max(1),
            "--slots" => a.slots = next(i) as u32,
            "--max-queue" => a.max_queue = next(i) as u32,
            "--jpeg" => {
                a.jpeg = true;
                i -= 1;
            }
            "--annotate" => {
                a.annotate = true;
                i -= 1;
            }
            _ => {}
        }
        i += 2;
    }
    a
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_sqlite(&dir.path().join("b.db"), &StoreOptions::default())
        .await
        .expect("store");
    store.migrate().await.expect("migrate");
    let models =
        Arc::new(ModelCache::open(&InferenceSection::default(), dir.path()).expect("models"));
    let m = models.clone();
    tokio::task::spawn_blocking(move || m.get("nanodet-m-416").expect("model"))
        .await
        .expect("load");
    let state = ApiState::new(
        store,
        EngineShared::new(),
        models,
        ApiOptions {
            auth: AuthMode::Disabled,
            infer: InferGuards {
                slots: a.slots,
                max_queue: a.max_queue,
                rate_per_minute: 0,
                ..InferGuards::default()
            },
            ..ApiOptions::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router(state).into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });

    let png_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vtest_frame100.png");
    let png = std::fs::read(&png_path).expect("fixture");
    let image = if a.jpeg {
        let f = sightline_inference::decode_image(&png, 1 << 24).expect("decode");
        sightline_api::jpeg::encode(&f).expect("jpeg")
    } else {
        png
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "image": base64::engine::general_purpose::STANDARD.encode(&image),
        "annotate": a.annotate,
    }))
    .expect("json");
    let body = Arc::new(body);
    let url = format!("http://{addr}/v1/infer");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(a.concurrency)
        .build()
        .expect("client");

    // Warm-up.
    for _ in 0..3 {
        let _ = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.as_ref().clone())
            .send()
            .await;
    }
    let until = Instant::now() + Duration::from_secs(a.seconds);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.concurrency {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            while Instant::now() < until {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.as_ref().clone())
                    .send()
                    .await;
                let code = match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 0,
                };
                if code == 200 {
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                *statuses.entry(code).or_default() += 1;
            }
            (lat, statuses)
        }));
    }
    let mut lat = Vec::new();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for t in tasks {
        let (l, s) = t.await.expect("client task");
        lat.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "image={} concurrency={} slots={} max_queue={} seconds={:.1}",
        if a.jpeg {
            "768x576 JPEG"
        } else {
            "768x576 PNG"
        },
        a.concurrency,
        a.slots,
        a.max_queue,
        secs
    );
    println!(
        "ok={} throughput={:.1} req/s  p50={:.1} ms p95={:.1} ms p99={:.1} ms  statuses={:?}",
        lat.len(),
        lat.len() as f64 / secs,
        pct(&lat, 0.50),
        pct(&lat, 0.95),
        pct(&lat, 0.99),
        statuses
    );
}
