//! Media store figures (a bench, not a test): cost per picture (JPEG encode + write to the
//! local store) for a typical crop and a full snapshot of the sample clip's size, and the
//! janitor's deletion rate with 100 000 pictures stored (SQLite, real files).
//!
//! `cargo run --release -p sightline-storage --example picture_bench [-- --pictures 100000]`

#![allow(clippy::print_stdout)]

use sightline_config::{MediaSettings, Retention};
use sightline_core::{EventId, ManualClock, PictureKind, RunId};
use sightline_storage::{Janitor, JanitorOptions, MediaStore, encode_jpeg};
use sightline_store::{NewMediaObject, NewRun, SourceUri, Store, StoreOptions};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Frame 100 of the sample clip (a fixture of the inference tests).
fn frame() -> (Vec<u8>, u32, u32) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../inference/tests/fixtures/vtest_frame100.png"
    );
    let img = image::open(path).expect("vtest_frame100.png").to_rgb8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

fn cut(rgb: &[u8], w: u32, x: u32, y: u32, cw: u32, ch: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for row in y..y + ch {
        let s = ((row * w + x) * 3) as usize;
        out.extend_from_slice(&rgb[s..s + (cw * 3) as usize]);
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_pics: usize = args
        .iter()
        .position(|a| a == "--pictures")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let media = Arc::new(MediaStore::open_local(&dir.path().join("media")).unwrap());
    let (rgb, w, h) = frame();
    let crop = cut(&rgb, w, 300, 100, 96, 200);

    // Cost per picture.
    for (name, data, pw, ph, n) in [
        ("crop 96x200", &crop, 96, 200, 400),
        ("snapshot 768x576", &rgb, w, h, 60),
    ] {
        let mut enc = Duration::ZERO;
        let mut wr = Duration::ZERO;
        let mut bytes = 0;
        for i in 0..n {
            let t = Instant::now();
            let j = encode_jpeg(data, pw, ph, 85, 1920).unwrap();
            enc += t.elapsed();
            bytes += j.len();
            let t = Instant::now();
            media
                .put(&format!("bench/{name}-{i}.jpg"), bytes::Bytes::from(j))
                .await
                .unwrap();
            wr += t.elapsed();
        }
        println!(
            "{name}: encode {:.0} µs + write {:.0} µs per picture, {:.1} KB",
            enc.as_secs_f64() * 1e6 / n as f64,
            wr.as_secs_f64() * 1e6 / n as f64,
            bytes as f64 / n as f64 / 1024.0
        );
    }

    // Janitor deletion rate: `n_pics` pictures (1 KB files) 20 days old, retention 14 days.
    let clock = ManualClock::new();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    clock.advance(now - Duration::from_secs(20 * 86_400));
    let store = Store::open_sqlite(
        &dir.path().join("s.db"),
        &StoreOptions {
            clock: Arc::new(clock.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    store
        .put_config_version("c", &serde_json::json!({}))
        .await
        .unwrap();
    let mut nr = NewRun::new(SourceUri::new("test://ball").unwrap(), "c");
    nr.id = Some(RunId::parse("cam").unwrap());
    let run = store.create_run(nr).await.unwrap().id;
    let t = Instant::now();
    let payload = bytes::Bytes::from(vec![0u8; 1024]);
    for i in 0..n_pics {
        let key = format!("events/cam/{:02}/{i:06}.jpg", i % 100);
        media.put(&key, payload.clone()).await.unwrap();
        store
            .insert_media_object(&NewMediaObject {
                key,
                volume: media.volume().into(),
                run_id: run.clone(),
                event_id: Some(EventId::generate()),
                kind: PictureKind::Crop,
                bytes: 1024,
                width: 1,
                height: 1,
            })
            .await
            .unwrap();
    }
    println!(
        "stored {n_pics} pictures in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let mut o = JanitorOptions::from_config(&MediaSettings::default(), &Retention::default());
    o.batch = MediaSettings::default().delete_batch;
    o.pause = Duration::from_millis(MediaSettings::default().delete_pause_ms);
    let j = Janitor::new(store.clone(), media.clone(), o);
    let t = Instant::now();
    let deleted = j.retention_pass().await.unwrap();
    let took = t.elapsed().as_secs_f64();
    println!(
        "janitor: {deleted} pictures deleted (rows + files) in {took:.1} s = {:.0} items/s \
         (batches of {}, {} ms pause between batches)",
        deleted as f64 / took,
        MediaSettings::default().delete_batch,
        MediaSettings::default().delete_pause_ms
    );
}
