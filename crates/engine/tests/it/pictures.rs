//! Event pictures on the demo clip, through the real engine: `samples/vtest.avi` with the
//! demo config (crops and snapshots on), the embedded store and a local media store. Every
//! stored event with a box has a crop that decodes, whose size is the box plus the
//! configured margin (grown to the minimum size, kept inside the frame) computed here
//! independently, and whose pixels are those of the frame the event was detected on: the
//! same region of the frame decoded again at the event's PTS matches within JPEG error, and
//! better than the frames around it.

#![allow(clippy::print_stderr)] // figures for the issue notes

use sightline_config::{InferenceSection, PipelineConfig};
use sightline_core::{EventKind, RunId, RunState, SystemClock};
use sightline_engine::{Engine, EngineOptions, EngineShared, ModelCache, RunMedia};
use sightline_media::{Pacing, Source, SourceEvent, SourceOptions};
use sightline_storage::{MediaStore, PictureWriter, WriterOptions};
use sightline_store::{EventQuery, NewRun, SourceUri, Store, StoreOptions};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The crop rectangle, computed from the definition (box + margin on each side,
/// at least `min` pixels, moved inside the frame) without the crate's function.
fn expected_rect(b: &sightline_core::BBox, w: u32, h: u32, margin: f32, min: u32) -> [u32; 4] {
    let axis = |lo: f32, hi: f32, limit: u32| {
        let len = (hi - lo).max(1.0) * (1.0 + 2.0 * margin);
        let size = (len.max(min as f32).min(limit as f32)).round() as u32;
        let start = ((lo + hi) / 2.0 - size as f32 / 2.0).round();
        let start = start.max(0.0).min((limit - size) as f32) as u32;
        (start, size)
    };
    let (x, cw) = axis(b.x1, b.x2, w);
    let (y, ch) = axis(b.y1, b.y2, h);
    [x, y, cw, ch]
}

fn region(frame: &sightline_core::Frame, r: [u32; 4]) -> Vec<u8> {
    let mut out = Vec::new();
    for y in r[1]..r[1] + r[3] {
        let s = (y as usize * frame.width as usize + r[0] as usize) * 3;
        out.extend_from_slice(&frame.data[s..s + r[2] as usize * 3]);
    }
    out
}

fn mad(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as i32 - *y as i32).unsigned_abs() as f64)
        .sum::<f64>()
        / a.len() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_with_a_box_has_a_crop_of_its_own_frame() {
    sightline_media::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db"), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let models = Arc::new(ModelCache::open(&InferenceSection::default(), dir.path()).unwrap());
    let mut cfg = PipelineConfig::from_file(&repo().join("configs/demo.toml")).unwrap();
    cfg.output.rtsp = false;
    assert!(
        cfg.media.crops && cfg.media.snapshots,
        "the demo stores pictures"
    );
    let m = cfg.media.clone();
    store
        .put_config_version("demo", &serde_json::to_value(&cfg).unwrap())
        .await
        .unwrap();
    let media = Arc::new(MediaStore::open_local(&dir.path().join("media")).unwrap());
    let (writer, writer_join) = PictureWriter::start(
        store.clone(),
        media.clone(),
        WriterOptions {
            // Large enough that a fast replay never drops a picture.
            queue: 4096,
            write_timeout: Duration::from_secs(10),
            public_base: "http://test".into(),
        },
        tokio::runtime::Handle::current(),
        Arc::new(|| {}),
    )
    .unwrap();
    let stats = writer.stats().clone();
    let engine = Engine::new(
        store.clone(),
        models,
        None,
        EngineOptions {
            worker_id: "w1".into(),
            host: "test".into(),
            max_runs: 1,
            max_jobs: 1,
            poll_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_millis(300),
            shutdown_timeout: Duration::from_secs(10),
            data_dir: dir.path().to_path_buf(),
            routing: Default::default(),
            frame_hook: None,
            source_policy: None,
            media: RunMedia {
                pictures: Some(writer),
                segments: None,
            },
        },
        Arc::new(SystemClock),
        EngineShared::new(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(engine.run(async move {
        let _ = stop_rx.await;
    }));
    let clip = repo().join("samples/vtest.avi").canonicalize().unwrap();
    let id = RunId::parse("demo").unwrap();
    store
        .create_run(NewRun {
            id: Some(id.clone()),
            source: SourceUri::new(format!("file://{}", clip.display())).unwrap(),
            config_name: "demo".into(),
            config_version: None,
            models: Vec::new(),
            output: serde_json::json!({"pacing": "fast"}),
        })
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let r = store.get_run(&id).await.unwrap();
        if r.state == RunState::Completed {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300) && r.state != RunState::Failed,
            "run is {} ({:?})",
            r.state,
            r.last_error
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = stop_tx.send(());
    task.await.unwrap();
    // The engine has stopped: the writer drains its queue and ends.
    tokio::task::spawn_blocking(move || writer_join.join().unwrap())
        .await
        .unwrap();
    let written = stats.written.load(std::sync::atomic::Ordering::Relaxed);
    let encode_us = stats.encode_us.load(std::sync::atomic::Ordering::Relaxed);
    let write_us = stats.write_us.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "pictures: {written} written in {:.1} s of replay; encode {:.0} µs + write {:.0} µs per picture",
        started.elapsed().as_secs_f64(),
        encode_us as f64 / written.max(1) as f64,
        write_us as f64 / written.max(1) as f64
    );
    assert_eq!(
        stats
            .dropped_queue_full
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );

    let root = media.local_root().unwrap().to_path_buf();
    let events = store
        .query_events(&EventQuery {
            run: Some(id.clone()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(events.len(), 58, "the golden replay's events");
    // The frames to compare with: the event's own frame and two either side.
    let mut wanted: HashMap<i64, Vec<(usize, [u32; 4])>> = HashMap::new();
    let mut with_box = 0;
    for (i, e) in events.iter().enumerate() {
        let media = e.media.as_ref().expect("every event has pictures");
        let snap = media.snapshot.as_ref().expect("every event has a snapshot");
        let jpg = std::fs::read(root.join(&snap.key)).unwrap();
        let img = image::load_from_memory(&jpg).unwrap();
        assert_eq!((img.width(), img.height()), (768, 576));
        let Some(b) = &e.body.bbox else {
            assert_eq!(
                e.body.kind,
                EventKind::Count,
                "only count events have no box"
            );
            assert!(media.crop.is_none());
            continue;
        };
        with_box += 1;
        let crop = media.crop.as_ref().expect("an event with a box has a crop");
        let r = expected_rect(b, 768, 576, m.crop_margin, m.crop_min_size);
        assert_eq!((crop.width, crop.height), (r[2], r[3]), "event {i}");
        for d in -2i64..=2 {
            wanted
                .entry(e.body.pts.nanos() + d * 100_000_000)
                .or_default()
                .push((i, r));
        }
    }
    assert!(with_box >= 50, "{with_box} events with a box");
    // Decode the clip again and cut the same regions at and around each event's PTS.
    let uri = format!("file://{}", clip.display());
    let source = Source::open(SourceOptions::new(uri).with_pacing(Pacing::Fast)).unwrap();
    let mut cuts: BTreeMap<(usize, i64), Vec<u8>> = BTreeMap::new();
    loop {
        match source.next(Duration::from_secs(10)) {
            SourceEvent::Frame(f) => {
                if let Some(list) = wanted.get(&f.pts.nanos()) {
                    for (i, r) in list {
                        cuts.insert((*i, f.pts.nanos()), region(&f, *r));
                    }
                }
            }
            SourceEvent::Eos => break,
            other => panic!("{other:?}"),
        }
    }
    let (mut own, mut better) = (Vec::new(), 0);
    for (i, e) in events.iter().enumerate() {
        let Some(crop) = e.media.as_ref().and_then(|m| m.crop.as_ref()) else {
            continue;
        };
        let stored = image::load_from_memory(&std::fs::read(root.join(&crop.key)).unwrap())
            .unwrap()
            .to_rgb8()
            .into_raw();
        let pts = e.body.pts.nanos();
        let at = mad(&stored, &cuts[&(i, pts)]);
        let around = [-2i64, -1, 1, 2]
            .iter()
            .filter_map(|d| cuts.get(&(i, pts + d * 100_000_000)))
            .map(|c| mad(&stored, c))
            .fold(f64::INFINITY, f64::min);
        assert!(
            at < 6.0,
            "event {i}: crop differs from its frame by {at:.2}"
        );
        own.push(at);
        if at < around {
            better += 1;
        }
    }
    let n = own.len();
    eprintln!(
        "crops: {n}; mean abs difference to the event's frame {:.2} (max {:.2}); closer to it than to the frames ±1-2 for {better}/{n}",
        own.iter().sum::<f64>() / n as f64,
        own.iter().cloned().fold(0.0, f64::max)
    );
    assert!(
        better * 10 >= n * 9,
        "{better}/{n} crops match their own frame best"
    );
}
