//! The S3 backend against a real S3-compatible server on 127.0.0.1: moto's standalone
//! server (`moto_server`, installed from PyPI into `.venv-test` by `scripts/setup`), started
//! and stopped by the test. Objects, multipart uploads of segments, start-up errors that
//! name the setting, and pictures through an outage of the server.

#![allow(clippy::print_stderr)]

use sightline_config::{MediaSettings, S3Settings, Secret};
use sightline_core::{
    Event, EventId, EventKind, EventMedia, MediaRef, PictureKind, Pts, RuleEvent,
};
use sightline_storage::{
    MediaError, MediaStore, PictureJob, PictureWriter, SegmentIndexer, SegmentNote, WriterOptions,
};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn moto_binary() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv-test/bin/moto_server"
    ));
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup (it installs moto's S3 server into .venv-test)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running S3-compatible server; killed on drop.
struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    async fn start_on(port: u16) -> S3Server {
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let s = S3Server { child, port };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http.get(s.url()).send().await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "moto_server did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        s
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn create_bucket(&self, name: &str) {
        let r = reqwest::Client::new()
            .put(format!("{}/{name}", self.url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn settings(endpoint: &str) -> MediaSettings {
    MediaSettings {
        s3: S3Settings {
            endpoint: Some(endpoint.into()),
            region: Some("us-east-1".into()),
            access_key_id: Some(Secret::new("AKIDTEST")),
            secret_access_key: Some(Secret::new("very-secret-key")),
            allow_http: true,
        },
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_and_multipart_uploads_round_trip() {
    let s3 = S3Server::start_on(free_port()).await;
    s3.create_bucket("media").await;
    let spool = tempfile::tempdir().unwrap();
    let store = MediaStore::open("s3://media/site-1", &settings(&s3.url()), spool.path())
        .await
        .expect("open the S3 store");
    assert_eq!(store.volume(), "s3://media/site-1");
    assert!(!store.is_local());
    store
        .put("events/a/x.jpg", bytes::Bytes::from_static(b"jpeg bytes"))
        .await
        .unwrap();
    assert_eq!(
        &store.get("events/a/x.jpg").await.unwrap()[..],
        b"jpeg bytes"
    );
    // The prefix is applied: the object is at site-1/events/… in the bucket.
    let listing = reqwest::get(format!("{}/media?prefix=site-1/", s3.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listing.contains("site-1/events/a/x.jpg"), "{listing}");
    store.delete("events/a/x.jpg").await.unwrap();
    store.delete("events/a/x.jpg").await.unwrap(); // deleting twice is fine
    assert!(matches!(
        store.get("events/a/x.jpg").await,
        Err(MediaError::NotFound { .. })
    ));
    // A 12 MB segment goes up in parts and comes back identical.
    let big = spool.path().join("seg.mp4");
    let data: Vec<u8> = (0..12 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(&big, &data).unwrap();
    let t = Instant::now();
    assert_eq!(
        store.put_file("recordings/a/seg.mp4", &big).await.unwrap(),
        data.len() as u64
    );
    let up = t.elapsed();
    let back = spool.path().join("back.mp4");
    store
        .get_to_file("recordings/a/seg.mp4", &back)
        .await
        .unwrap();
    assert!(std::fs::read(&back).unwrap() == data, "same bytes");
    eprintln!(
        "S3 (moto): 12 MB multipart upload in {:.0} ms",
        up.as_secs_f64() * 1000.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_urls_and_unreachable_servers_fail_at_start_naming_the_setting() {
    let spool = tempfile::tempdir().unwrap();
    // Nothing listens on this port.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let err = MediaStore::open("s3://media", &settings(&dead), spool.path())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("media.s3:"), "{text}");
    assert!(
        !text.contains("very-secret-key"),
        "credentials masked: {text}"
    );
    // A bucket that does not exist.
    let s3 = S3Server::start_on(free_port()).await;
    let err = MediaStore::open("s3://no-such-bucket", &settings(&s3.url()), spool.path())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("media.s3:"), "{err}");
    // No bucket at all.
    let err = MediaStore::open("s3:///x", &settings(&s3.url()), spool.path())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("media.url:"), "{err}");
    // A local directory that cannot be created.
    let err = MediaStore::open("/proc/nope/media", &MediaSettings::default(), spool.path())
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("media.url:"), "{err}");
}

fn picture(run: &sightline_core::RunId, event: EventId, key: &str) -> PictureJob {
    PictureJob {
        run_id: run.clone(),
        event_id: event,
        kind: PictureKind::Crop,
        key: key.into(),
        width: 32,
        height: 32,
        rgb: vec![128; 32 * 32 * 3],
        quality: 80,
        max_size: 1920,
    }
}

/// The server goes away mid-run: pictures are retried, then dropped (counted) and their
/// events stop naming them; the events stay. When it is back, pictures are written again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_survive_an_outage_of_the_store() {
    let port = free_port();
    let mut s3 = S3Server::start_on(port).await;
    s3.create_bucket("media").await;
    let spool = tempfile::tempdir().unwrap();
    let media = Arc::new(
        MediaStore::open("s3://media/p", &settings(&s3.url()), spool.path())
            .await
            .unwrap(),
    );
    let db = crate::common::sqlite(Duration::ZERO).await;
    let run = db.run("cam", "plain", serde_json::json!({})).await;
    let (writer, join) = PictureWriter::start(
        db.store.clone(),
        media.clone(),
        WriterOptions {
            queue: 4,
            write_timeout: Duration::from_millis(1500),
            public_base: "http://t".into(),
        },
        tokio::runtime::Handle::current(),
        Arc::new(|| {}),
    )
    .unwrap();
    let stats = writer.stats().clone();
    // Events that say they have a crop, as the run thread stores them.
    let mut events = Vec::new();
    for i in 0..8 {
        let id = EventId::generate();
        let key = format!("events/cam/{i}.jpg");
        events.push((id, key.clone()));
        let ev = Event {
            id,
            run_id: run.clone(),
            wall_ms: db.now_ms(),
            body: RuleEvent::new(EventKind::Detected, "r", Pts::ZERO),
            media: Some(EventMedia {
                crop: Some(MediaRef {
                    url: writer.url(id, PictureKind::Crop),
                    key,
                    width: 32,
                    height: 32,
                }),
                snapshot: None,
            }),
        };
        db.store.insert_events(&[ev]).await.unwrap();
    }
    let wait_written = |n: u64| {
        let stats = stats.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while stats.written.load(Ordering::Relaxed)
                + stats.dropped_write_failed.load(Ordering::Relaxed)
                < n
            {
                assert!(Instant::now() < deadline, "writer stuck");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // Up: written.
    assert!(writer.submit(picture(&run, events[0].0, &events[0].1)));
    wait_written(1).await;
    assert_eq!(stats.written.load(Ordering::Relaxed), 1);
    // Down: the queue holds 4, the rest are dropped at once; the queued ones fail after
    // their write timeout.
    s3.stop();
    let mut accepted = 0;
    for (id, key) in &events[1..7] {
        if writer.submit(picture(&run, *id, key)) {
            accepted += 1;
        }
    }
    let queue_full = stats.dropped_queue_full.load(Ordering::Relaxed);
    assert_eq!(accepted + queue_full, 6);
    assert!(queue_full >= 1, "a full queue drops pictures, not events");
    wait_written(1 + accepted).await;
    let failed = stats.dropped_write_failed.load(Ordering::Relaxed);
    assert_eq!(failed, accepted, "written nothing while the store was down");
    let ev = db.store.get_event(events[1].0).await.unwrap();
    assert!(
        ev.media.is_none(),
        "the event no longer names the picture it could not store: {:?}",
        ev.media
    );
    // Back (a fresh server on the same port): writing resumes by itself.
    let s3b = S3Server::start_on(port).await;
    s3b.create_bucket("media").await;
    assert!(writer.submit(picture(&run, events[7].0, &events[7].1)));
    wait_written(2 + accepted).await;
    assert_eq!(stats.written.load(Ordering::Relaxed), 2);
    assert!(media.get(&events[7].1).await.unwrap().len() > 100);
    let ev = db.store.get_event(events[7].0).await.unwrap();
    assert!(ev.media.and_then(|m| m.crop).is_some());
    eprintln!(
        "S3 outage: {accepted} queued pictures dropped after their write timeout, {queue_full} dropped at a full queue, 8/8 events kept"
    );
    drop(writer);
    tokio::task::spawn_blocking(move || join.join().unwrap())
        .await
        .unwrap();
}

/// Segments recorded into the spool are uploaded when they close, indexed, and removed
/// locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_segments_are_uploaded_and_indexed() {
    let s3 = S3Server::start_on(free_port()).await;
    s3.create_bucket("media").await;
    let spool = tempfile::tempdir().unwrap();
    let media = Arc::new(
        MediaStore::open("s3://media", &settings(&s3.url()), spool.path())
            .await
            .unwrap(),
    );
    let db = crate::common::sqlite(Duration::ZERO).await;
    let run = db.run("cam", "plain", serde_json::json!({})).await;
    let (ix, task) = SegmentIndexer::start(db.store.clone(), media.clone(), "w1".into());
    let path = ix.location(&run);
    assert!(
        path.starts_with(spool.path()),
        "recorded into the spool first"
    );
    std::fs::write(&path, vec![5u8; 300_000]).unwrap();
    let t0 = db.now_ms();
    ix.note(
        &run,
        SegmentNote::Opened {
            path: path.clone(),
            wall_ms: t0,
            pts_ns: 0,
        },
    );
    ix.note(
        &run,
        SegmentNote::Closed {
            path: path.clone(),
            wall_ms: t0 + 60_000,
            pts_ns: 60_000_000_000,
        },
    );
    drop(ix);
    task.await.unwrap();
    let recs = db
        .store
        .list_recordings(&sightline_store::RecordingQuery {
            run: Some(run.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .items;
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!((r.state.as_str(), r.bytes), ("closed", 300_000));
    assert_eq!(r.volume, "s3://media/");
    assert!(!path.exists(), "the spool copy is removed once uploaded");
    assert_eq!(media.get(&r.key).await.unwrap().len(), 300_000);
}
