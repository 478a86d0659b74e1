//! Retention and disk survival mode, on real databases and real files.

#![allow(clippy::print_stderr)] // figures for the issue notes

use crate::common::{Db, both_backends};
use sightline_config::{MediaSettings, Retention};
use sightline_core::{Event, EventId, EventKind, Pts, RuleEvent};
use sightline_storage::plan::Watermarks;
use sightline_storage::{Janitor, JanitorOptions, MediaStore, PictureWriter, WriterOptions};
use sightline_store::NewRecording;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);
const DAY_MS: i64 = 86_400_000;

fn options(retention: Retention, w: Watermarks) -> JanitorOptions {
    let mut o = JanitorOptions::from_config(&MediaSettings::default(), &retention);
    o.watermarks = w;
    o.batch = 4; // several batches per pass
    o.pause = Duration::from_millis(1);
    o
}

fn no_survival() -> Watermarks {
    Watermarks {
        high_pct: 100.0,
        low_pct: 99.0,
        budget_bytes: None,
    }
}

async fn segment(db: &Db, media: &MediaStore, run: &sightline_core::RunId, key: &str, end_ms: i64) {
    media
        .put(key, bytes::Bytes::from(vec![1u8; 30_000]))
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7();
    db.store
        .open_recording(&NewRecording {
            id,
            run_id: run.clone(),
            volume: media.volume().into(),
            key: key.into(),
            worker: "w".into(),
            start_wall_ms: end_ms - 60_000,
            start_pts_ns: 0,
        })
        .await
        .unwrap();
    db.store
        .close_recording(id, "closed", end_ms, 60_000_000_000, 30_000)
        .await
        .unwrap();
}

/// Ages per kind, a pipeline's own retention, objects deleted with their rows.
async fn retention_deletes_what_is_older_per_kind_and_per_pipeline(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let media = Arc::new(MediaStore::open_local(dir.path()).unwrap());
    let a = db.run("a", "plain", serde_json::json!({})).await;
    let b = db
        .run(
            "b",
            "short",
            serde_json::json!({"media": {"retention": {"pictures_days": 5}}}),
        )
        .await;
    // The test clock started 40 days ago. Events: 3 from 40 days ago, 2 from yesterday.
    let real_now = chrono::Utc::now().timestamp_millis();
    let ev = |wall_ms| Event {
        id: EventId::generate(),
        run_id: a.clone(),
        wall_ms,
        body: RuleEvent::new(EventKind::Detected, "r", Pts::ZERO),
        media: None,
    };
    let events: Vec<Event> = [40, 40, 40, 1, 1]
        .iter()
        .map(|d| ev(real_now - d * DAY_MS))
        .collect();
    db.store.insert_events(&events).await.unwrap();
    // Pictures 20 days old: 10 of run a, 4 of run b; 10 days old: 5 of a, 3 of b.
    db.clock.advance(20 * DAY);
    for i in 0..10 {
        db.picture(&media, &a, &format!("events/a/old{i}.jpg"), 100)
            .await;
    }
    for i in 0..4 {
        db.picture(&media, &b, &format!("events/b/old{i}.jpg"), 100)
            .await;
    }
    db.clock.advance(10 * DAY);
    for i in 0..5 {
        db.picture(&media, &a, &format!("events/a/new{i}.jpg"), 100)
            .await;
    }
    for i in 0..3 {
        db.picture(&media, &b, &format!("events/b/new{i}.jpg"), 100)
            .await;
    }
    // Segments that ended 8 days and 2 days ago.
    segment(
        &db,
        &media,
        &a,
        "recordings/a/old.mp4",
        real_now - 8 * DAY_MS,
    )
    .await;
    segment(
        &db,
        &media,
        &a,
        "recordings/a/new.mp4",
        real_now - 2 * DAY_MS,
    )
    .await;

    let j = Janitor::new(
        db.store.clone(),
        media.clone(),
        options(
            Retention {
                events_days: 30.0,
                pictures_days: 14.0,
                recordings_days: 7.0,
            },
            no_survival(),
        ),
    );
    let deleted = j.retention_pass().await.unwrap();
    assert_eq!(
        deleted,
        3 + 10 + 7 + 1,
        "events + a's old + all of b's + one segment"
    );
    let left: Vec<String> = walk(dir.path());
    assert_eq!(
        left,
        [
            "events/a/new0.jpg",
            "events/a/new1.jpg",
            "events/a/new2.jpg",
            "events/a/new3.jpg",
            "events/a/new4.jpg",
            "recordings/a/new.mp4"
        ]
    );
    let u = db.store.media_usage(media.volume()).await.unwrap();
    assert_eq!((u.pictures, u.segments), (5, 1));
    let evs = db
        .store
        .query_events(&Default::default())
        .await
        .unwrap()
        .items;
    assert_eq!(evs.len(), 2);
    // Nothing left to do on a second pass.
    assert_eq!(j.retention_pass().await.unwrap(), 0);
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Past the byte budget the oldest media goes first — a closed segment and pictures alike —
/// until under the low-water mark; the open segment is kept.
async fn survival_mode_on_a_byte_budget(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let media = Arc::new(MediaStore::open_local(dir.path()).unwrap());
    let r = db.run("cam", "plain", serde_json::json!({})).await;
    let now = db.now_ms();
    segment(
        &db,
        &media,
        &r,
        "recordings/cam/oldest.mp4",
        now - 3_600_000,
    )
    .await;
    for i in 0..20 {
        db.picture(&media, &r, &format!("events/cam/p{i:02}.jpg"), 10_000)
            .await;
        db.clock.advance(Duration::from_secs(1));
    }
    let open = uuid::Uuid::now_v7();
    db.store
        .open_recording(&NewRecording {
            id: open,
            run_id: r.clone(),
            volume: media.volume().into(),
            key: "recordings/cam/current.mp4".into(),
            worker: "w".into(),
            start_wall_ms: now - 7_200_000,
            start_pts_ns: 0,
        })
        .await
        .unwrap();
    let j = Janitor::new(
        db.store.clone(),
        media.clone(),
        options(
            Retention::default(),
            Watermarks {
                high_pct: 90.0,
                low_pct: 60.0,
                budget_bytes: Some(150_000),
            },
        ),
    );
    // 230 000 bytes > 150 000: down to 150 000 × 60/90 = 100 000.
    j.survival_check().await;
    let s = j.status();
    assert_eq!(s.deleted_bytes.load(Ordering::Relaxed), 130_000);
    assert!(!s.health().survival, "under the low-water mark: over");
    let left = walk(dir.path());
    let expect: Vec<String> = (10..20).map(|i| format!("events/cam/p{i}.jpg")).collect();
    assert_eq!(left, expect, "the 10 newest pictures are kept");
    assert_eq!(
        db.store.get_recording(open).await.unwrap().state,
        "open",
        "the current segment is never deleted"
    );
    assert_eq!(
        db.store.media_usage(media.volume()).await.unwrap().bytes(),
        100_000
    );
}

both_backends!(
    40 * DAY,
    retention_deletes_what_is_older_per_kind_and_per_pipeline,
);
both_backends!(Duration::ZERO, survival_mode_on_a_byte_budget);

/// A real filesystem of 4 MB (tmpfs, mounted by the test as root): pictures keep coming,
/// the disk fills, survival mode deletes the oldest and writing goes on — no crash, no
/// picture of the last minutes lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survival_mode_on_a_small_real_filesystem() {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    if !root {
        eprintln!("SKIPPED: mounting a tmpfs needs root (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("vol");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());

    let db = crate::common::sqlite(Duration::ZERO).await;
    let run = db.run("cam", "plain", serde_json::json!({})).await;
    let media = Arc::new(MediaStore::open_local(&mnt).unwrap());
    let mut o = options(
        Retention::default(),
        Watermarks {
            high_pct: 90.0,
            low_pct: 70.0,
            budget_bytes: None,
        },
    );
    o.usage_check = Duration::from_millis(200);
    let janitor = Janitor::new(db.store.clone(), media.clone(), o);
    let status = janitor.status();
    let wake = janitor.waker();
    let stop = Arc::new(tokio::sync::Notify::new());
    let stop2 = stop.clone();
    let jt = tokio::spawn(janitor.run(async move { stop2.notified().await }));
    let (writer, join) = PictureWriter::start(
        db.store.clone(),
        media.clone(),
        WriterOptions {
            queue: 8,
            write_timeout: Duration::from_secs(5),
            public_base: "http://t".into(),
        },
        tokio::runtime::Handle::current(),
        Arc::new(move || wake.notify_one()),
    )
    .unwrap();
    let stats = writer.stats().clone();
    // Noise compresses badly: ~60 KB per 256×256 JPEG, 120 of them ≈ 7 MB on a 4 MB disk.
    let mut seed = 12345u32;
    let mut keys = Vec::new();
    let mut max_pct: f64 = 0.0;
    for i in 0..120 {
        let rgb: Vec<u8> = (0..256 * 256 * 3)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        let key = format!("events/cam/{i:03}.jpg");
        let job = sightline_storage::PictureJob {
            run_id: run.clone(),
            event_id: EventId::generate(),
            kind: sightline_core::PictureKind::Snapshot,
            key: key.clone(),
            width: 256,
            height: 256,
            rgb,
            quality: 85,
            max_size: 1920,
        };
        while writer.queued() >= 7 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(writer.submit(job), "room in the queue");
        keys.push(key);
        if let Some((t, u)) = media.disk_usage() {
            max_pct = max_pct.max(u as f64 * 100.0 / t as f64);
        }
    }
    drop(writer);
    tokio::task::spawn_blocking(move || join.join().unwrap())
        .await
        .unwrap();
    // One last check settles the volume under the low-water mark.
    stop.notify_one();
    jt.await.unwrap();
    let j2 = Janitor::new(
        db.store.clone(),
        media.clone(),
        options(
            Retention::default(),
            Watermarks {
                high_pct: 90.0,
                low_pct: 70.0,
                budget_bytes: None,
            },
        ),
    );
    j2.survival_check().await;
    let (total, used) = media.disk_usage().unwrap();
    let pct = used as f64 * 100.0 / total as f64;
    let written = stats.written.load(Ordering::Relaxed);
    let failed = stats.dropped_write_failed.load(Ordering::Relaxed);
    let deleted = status.deleted_items.load(Ordering::Relaxed);
    eprintln!(
        "tmpfs 4 MB: {written} pictures written, {failed} dropped, {deleted} deleted by survival mode; peak {max_pct:.1} %, now {pct:.1} %"
    );
    assert!(deleted > 0, "survival mode deleted the oldest pictures");
    assert!(pct < 90.0, "volume at {pct:.1} %");
    assert!(
        written >= 110,
        "{written} of 120 written ({failed} dropped)"
    );
    let left = walk(&mnt);
    for k in &keys[keys.len() - 5..] {
        assert!(left.contains(k), "newest picture {k} kept");
    }
    assert!(!left.contains(&keys[0]), "the oldest picture went first");
}
