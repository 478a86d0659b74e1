//! Whole-pipeline cost of the media store (a bench, not a test), on the real engine with the
//! demo clip and config, in one process so the runs compare:
//!
//! - fps of a fast replay (every frame inferred) with event pictures off vs on, alternated
//!   (off, on, off, on) and compared by median;
//! - CPU of a real-time run (10 fps, as a camera) with continuous recording off vs on.
//!
//! `cargo run --release -p sightline-engine --example media_store_bench`

#![allow(clippy::print_stdout)]

use sightline_config::{InferenceSection, PipelineConfig};
use sightline_core::{RunId, RunState, SystemClock};
use sightline_engine::{Engine, EngineOptions, EngineShared, ModelCache, RunMedia};
use sightline_storage::{MediaStore, PictureWriter, SegmentIndexer, WriterOptions};
use sightline_store::{NewRun, SourceUri, Store, StoreOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn cpu_seconds() -> f64 {
    let u = proc_cpu();
    u.0 + u.1
}

/// (user, system) CPU seconds of this process.
fn proc_cpu() -> (f64, f64) {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = text.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = 100.0; // USER_HZ on Linux
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / tick;
    (get(11), get(12))
}

struct Outcome {
    frames: u64,
    wall: f64,
    cpu: f64,
    pictures: u64,
    segments: usize,
}

async fn run_once(
    models: &Arc<ModelCache>,
    pictures: bool,
    record: bool,
    pacing: &str,
    limit: Option<Duration>,
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db"), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let mut cfg = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    cfg.output.rtsp = false;
    cfg.media.crops = pictures;
    cfg.media.snapshots = pictures;
    cfg.media.record = record;
    cfg.media.segment_s = 10.0;
    store
        .put_config_version("b", &serde_json::to_value(&cfg).unwrap())
        .await
        .unwrap();
    let media = Arc::new(MediaStore::open_local(&dir.path().join("media")).unwrap());
    let (writer, wj) = PictureWriter::start(
        store.clone(),
        media.clone(),
        WriterOptions {
            queue: 64,
            write_timeout: Duration::from_secs(10),
            public_base: "http://bench".into(),
        },
        tokio::runtime::Handle::current(),
        Arc::new(|| {}),
    )
    .unwrap();
    let stats = writer.stats().clone();
    let (segments, ix) = SegmentIndexer::start(store.clone(), media.clone(), "w".into());
    let shared = EngineShared::new();
    let engine = Engine::new(
        store.clone(),
        models.clone(),
        None,
        EngineOptions {
            worker_id: "w".into(),
            host: "bench".into(),
            max_runs: 1,
            max_jobs: 1,
            poll_interval: Duration::from_millis(50),
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            data_dir: dir.path().to_path_buf(),
            routing: Default::default(),
            frame_hook: None,
            source_policy: None,
            media: RunMedia {
                pictures: Some(writer),
                segments: Some(segments),
            },
        },
        Arc::new(SystemClock),
        shared.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(engine.run(async move {
        let _ = stop_rx.await;
    }));
    let clip = repo().join("samples/vtest.avi").canonicalize().unwrap();
    let id = RunId::parse("bench").unwrap();
    store
        .create_run(NewRun {
            id: Some(id.clone()),
            source: SourceUri::new(format!("file://{}", clip.display())).unwrap(),
            config_name: "b".into(),
            config_version: None,
            models: Vec::new(),
            output: serde_json::json!({"pacing": pacing}),
        })
        .await
        .unwrap();
    // From the first frame out.
    while shared.status(&id).is_none_or(|s| s.frames_out == 0) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let f0 = shared.status(&id).map_or(0, |s| s.frames_out);
    let mut frames = f0;
    loop {
        if let Some(s) = shared.status(&id) {
            frames = s.frames_out;
        }
        if limit.is_some_and(|l| t0.elapsed() >= l) {
            break;
        }
        if store.get_run(&id).await.unwrap().state == RunState::Completed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (wall, cpu) = (t0.elapsed().as_secs_f64(), cpu_seconds() - c0);
    let _ = stop_tx.send(());
    task.await.unwrap();
    tokio::task::spawn_blocking(move || wj.join().unwrap())
        .await
        .unwrap();
    ix.await.unwrap();
    let segs = store
        .list_recordings(&Default::default())
        .await
        .unwrap()
        .items
        .len();
    Outcome {
        frames: frames - f0,
        wall,
        cpu,
        pictures: stats.written.load(std::sync::atomic::Ordering::Relaxed),
        segments: segs,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    sightline_media::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let models = Arc::new(ModelCache::open(&InferenceSection::default(), dir.path()).unwrap());
    models.get("nanodet-m-416").unwrap();
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for round in 0..2 {
        for pictures in [false, true] {
            let o = run_once(&models, pictures, false, "fast", None).await;
            let fps = o.frames as f64 / o.wall;
            println!(
                "round {round}: pictures {}: {} frames in {:.1} s = {fps:.1} fps, CPU {:.0} %, {} pictures",
                if pictures { "on " } else { "off" },
                o.frames,
                o.wall,
                o.cpu / o.wall * 100.0,
                o.pictures
            );
            if pictures {
                on.push(fps)
            } else {
                off.push(fps)
            }
        }
    }
    let (m_off, m_on) = (median(off), median(on));
    println!(
        "fast replay, NanoDet every frame: pictures off {m_off:.1} fps, on {m_on:.1} fps → {:.3} of off",
        m_on / m_off
    );
    let secs = Duration::from_secs(30);
    let a = run_once(&models, false, false, "realtime", Some(secs)).await;
    let b = run_once(&models, false, true, "realtime", Some(secs)).await;
    println!(
        "real time (10 fps), 30 s: recording off CPU {:.1} %, on {:.1} % ({} segments of 10 s) → +{:.1} points",
        a.cpu / a.wall * 100.0,
        b.cpu / b.wall * 100.0,
        b.segments,
        (b.cpu / b.wall - a.cpu / a.wall) * 100.0
    );
}
