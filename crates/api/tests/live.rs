//! A real server on an ephemeral port with a real engine and a real HTTP client: create a
//! config and a run of a synthetic live source, see it running with live status, read a
//! snapshot and the first MJPEG part, check `/ready` (engine heart-beating), stop the run;
//! and the media store over HTTP (pictures, recording segments, clips).

#![allow(clippy::print_stderr)] // figures for the issue notes

mod common;

use common::*;
use serde_json::{Value, json};
use sightline_api::{ApiOptions, AuthMode, router};
use sightline_core::SystemClock;
use sightline_engine::{Engine, EngineOptions};
use sightline_store::TokenRole;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_server_runs_a_pipeline() {
    sightline_media::init().expect("GStreamer");
    let fx = fixture().await;
    let models = fx.models.clone();
    tokio::task::spawn_blocking(move || models.get("nanodet-m-416").unwrap())
        .await
        .unwrap();
    let engine = Engine::new(
        fx.store.clone(),
        fx.models.clone(),
        None,
        EngineOptions {
            worker_id: "w1".into(),
            host: "test".into(),
            max_runs: 2,
            max_jobs: 2,
            poll_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_millis(300),
            shutdown_timeout: Duration::from_secs(10),
            data_dir: fx.dir.path().to_path_buf(),
            routing: Default::default(),
            frame_hook: None,
            source_policy: None,
            media: Default::default(),
        },
        Arc::new(SystemClock),
        fx.engine.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let engine_task = tokio::spawn(engine.run(async move {
        let _ = stop_rx.await;
    }));

    let app = router(fx.state(ApiOptions {
        auth: AuthMode::Tokens,
        max_heartbeat_age: Some(Duration::from_secs(5)),
        ..ApiOptions::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let token = fx.token(TokenRole::Operator).await;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let call = |m: reqwest::Method, path: &str| {
        http.request(m, format!("{base}{path}")).bearer_auth(&token)
    };

    // Ready once the engine has heart-beaten.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http.get(format!("{base}/ready")).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never ready: {}",
            r.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let r = call(reqwest::Method::POST, "/v1/configs/live")
        .json(&config_json())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = call(reqwest::Method::POST, "/v1/runs")
        .json(&json!({"id": "ball", "source": "test://ball?width=320&height=240&fps=25", "config": "live"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());

    // Running, with live status.
    let deadline = Instant::now() + Duration::from_secs(30);
    let run: Value = loop {
        let v: Value = call(reqwest::Method::GET, "/v1/runs/ball")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "running" && v["live"]["frames_out"].as_u64().unwrap_or(0) > 0 {
            break v;
        }
        assert!(Instant::now() < deadline, "not running: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["live"]["width"], 320);

    // Snapshot: a JPEG of the annotated frame.
    let r = call(reqwest::Method::GET, "/v1/runs/ball/snapshot.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpg = r.bytes().await.unwrap();
    let img = sightline_inference::decode_image(&jpg, 1 << 20).unwrap();
    assert_eq!((img.width, img.height), (320, 240));

    // MJPEG preview: the first part arrives.
    let r = call(reqwest::Method::GET, "/v1/runs/ball/preview")
        .send()
        .await
        .unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("multipart/x-mixed-replace")
    );
    let mut r = r;
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == [0xFF, 0xD9]) {
        let chunk = tokio::time::timeout(Duration::from_secs(10), r.chunk())
            .await
            .expect("a frame within 10 s")
            .unwrap()
            .expect("stream open");
        got.extend_from_slice(&chunk);
    }
    assert!(got.starts_with(b"--sightlineframe\r\nContent-Type: image/jpeg"));
    drop(r);

    // Stop.
    let r = call(reqwest::Method::POST, "/v1/runs/ball/stop")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = call(reqwest::Method::GET, "/v1/runs/ball")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] == "stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "not stopped: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = call(reqwest::Method::DELETE, "/v1/runs/ball")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(15), engine_task)
        .await
        .unwrap()
        .unwrap();
    server.abort();
}

/// `ffprobe` of an MP4: (duration in s, frames).
fn probe(path: &std::path::Path) -> (f64, u64) {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "format=duration:stream=nb_read_frames,codec_name",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(path)
        .output()
        .expect("ffprobe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("codec_name=h264"),
        "{path:?}: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{k} missing in {text}"))
    };
    (
        get("duration=").parse().unwrap(),
        get("nb_read_frames=").parse().unwrap(),
    )
}

/// The media store over HTTP with a real engine: the sample clip in real time with the
/// demo rules, pictures and 2 s recording segments on; the events' crops, the segments and
/// a clip across segments are fetched by HTTP and checked with ffprobe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_recordings_and_clips_over_http() {
    use sightline_storage::{MediaStore, PictureWriter, SegmentIndexer, WriterOptions};
    sightline_media::init().expect("GStreamer");
    let fx = fixture().await;
    let models = fx.models.clone();
    tokio::task::spawn_blocking(move || models.get("nanodet-m-416").unwrap())
        .await
        .unwrap();
    let media = Arc::new(MediaStore::open_local(&fx.dir.path().join("media")).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let (writer, writer_join) = PictureWriter::start(
        fx.store.clone(),
        media.clone(),
        WriterOptions {
            queue: 64,
            write_timeout: Duration::from_secs(5),
            public_base: base.clone(),
        },
        tokio::runtime::Handle::current(),
        Arc::new(|| {}),
    )
    .unwrap();
    let (segments, indexer) = SegmentIndexer::start(fx.store.clone(), media.clone(), "w1".into());
    // The sample clip's folder is a file root of the API, and the engine holds runs created
    // through it to the same policy.
    let policy = Arc::new(sightline_config::SourcePolicy::new(
        &[
            std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples"))
                .to_path_buf(),
        ],
        &Default::default(),
        &[],
    ));
    let engine = Engine::new(
        fx.store.clone(),
        fx.models.clone(),
        None,
        EngineOptions {
            worker_id: "w1".into(),
            host: "test".into(),
            max_runs: 2,
            max_jobs: 2,
            poll_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_millis(300),
            shutdown_timeout: Duration::from_secs(10),
            data_dir: fx.dir.path().to_path_buf(),
            routing: Default::default(),
            frame_hook: None,
            source_policy: Some(policy.clone()),
            media: sightline_engine::RunMedia {
                pictures: Some(writer),
                segments: Some(segments),
            },
        },
        Arc::new(SystemClock),
        fx.engine.clone(),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let engine_task = tokio::spawn(engine.run(async move {
        let _ = stop_rx.await;
    }));
    let app = router(fx.state(ApiOptions {
        auth: AuthMode::Tokens,
        media: Some(sightline_api::ApiMedia {
            store: media.clone(),
            status: Arc::new(Default::default()),
        }),
        sources: policy.clone(),
        ..ApiOptions::default()
    }));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let token = fx.token(TokenRole::Operator).await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{base}{path}")).bearer_auth(&token).send();

    let repo = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
    let mut cfg =
        sightline_config::PipelineConfig::from_file(&repo.join("configs/demo.toml")).unwrap();
    cfg.output.rtsp = false;
    cfg.media.record = true;
    cfg.media.segment_s = 2.0;
    let r = http
        .post(format!("{base}/v1/configs/rec"))
        .bearer_auth(&token)
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let clip = repo.join("samples/vtest.avi").canonicalize().unwrap();
    let r = http
        .post(format!("{base}/v1/runs"))
        .bearer_auth(&token)
        .json(
            &json!({"id": "cam", "source": format!("file://{}", clip.display()), "config": "rec"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    // Nine seconds of the clip in real time, then stop: the last segment is finalised.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v: Value = get("/v1/runs/cam").await.unwrap().json().await.unwrap();
        if v["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "not running: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(9)).await;
    let r = http
        .post(format!("{base}/v1/runs/cam/stop"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: Value = get("/v1/runs/cam").await.unwrap().json().await.unwrap();
        if v["state"] == "stopped" {
            break;
        }
        assert!(Instant::now() < deadline, "not stopped: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The index is written by a task: wait until no segment is open any more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let segs: Vec<Value> = loop {
        let v: Value = get("/v1/runs/cam/recordings")
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = v["items"].as_array().unwrap().clone();
        if !items.is_empty() && items.iter().all(|s| s["state"] == "closed") {
            break items;
        }
        assert!(Instant::now() < deadline, "segments: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        segs.len() >= 3,
        "{} segments in 9 s of 2 s segments",
        segs.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0.0;
    for s in &segs {
        let r = get(s["url"].as_str().unwrap()).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "video/mp4");
        let f = dir
            .path()
            .join(format!("{}.mp4", s["id"].as_str().unwrap()));
        std::fs::write(&f, r.bytes().await.unwrap()).unwrap();
        let (d, _) = probe(&f);
        total += d;
    }
    eprintln!("recording: {} segments, {total:.1} s in all", segs.len());
    assert!(total > 7.0, "{total} s recorded");

    // A 4 s clip across two segments.
    let start = segs[0]["start_wall_ms"].as_i64().unwrap() + 1500;
    let end = start + 4000;
    let r = get(&format!("/v1/runs/cam/clip.mp4?start={start}&end={end}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let f = dir.path().join("clip.mp4");
    std::fs::write(&f, r.bytes().await.unwrap()).unwrap();
    let (d, frames) = probe(&f);
    eprintln!("clip: asked 4.0 s, got {d:.2} s ({frames} frames)");
    assert!(
        (3.9..=5.1).contains(&d),
        "clip of {d} s: 4 s ± 1 keyframe interval"
    );
    // Bad ranges.
    let r = get(&format!("/v1/runs/cam/clip.mp4?start={end}&end={start}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_range"
    );
    let r = get("/v1/runs/cam/clip.mp4?start=2000-01-01T00:00:00Z&end=2000-01-01T00:01:00Z")
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_recording");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2000-01-01T00:00:00")
    );
    let r = get("/v1/runs/cam/clip.mp4?start=soon").await.unwrap();
    assert_eq!(r.status(), 422);

    // Events with their crops, by the URL they carry.
    let v: Value = get("/v1/events?run=cam")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let events = v["items"].as_array().unwrap();
    assert!(
        !events.is_empty(),
        "the walkway has events in its first 9 s"
    );
    for e in events {
        let Some(crop) = e["media"]["crop"].as_object() else {
            continue;
        };
        let url = crop["url"].as_str().unwrap();
        assert!(url.starts_with(&base), "{url}");
        let r = http.get(url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], "image/jpeg");
        let img = sightline_inference::decode_image(&r.bytes().await.unwrap(), 1 << 24).unwrap();
        assert_eq!(
            (u64::from(img.width), u64::from(img.height)),
            (
                crop["width"].as_u64().unwrap(),
                crop["height"].as_u64().unwrap()
            )
        );
        let one: Value = get(&format!("/v1/events/{}", e["id"].as_str().unwrap()))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(&one, e);
    }
    let r = get(&format!("/v1/events/{}/crop.jpg", uuid_like()))
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(15), engine_task)
        .await
        .unwrap()
        .unwrap();
    tokio::task::spawn_blocking(move || writer_join.join().unwrap())
        .await
        .unwrap();
    indexer.await.unwrap();
    server.abort();
}

fn uuid_like() -> String {
    sightline_core::EventId::generate().to_string()
}
