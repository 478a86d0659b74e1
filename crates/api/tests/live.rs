//! A real server on an ephemeral port with a real engine and a real HTTP client: create a
//! config and a run of a synthetic live source, see it running with live status, read a
//! snapshot and the first MJPEG part, check `/ready` (engine heart-beating), stop the run.

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
            poll_interval: Duration::from_millis(100),
            lease_ttl: Duration::from_secs(10),
            heartbeat: Duration::from_millis(300),
            shutdown_timeout: Duration::from_secs(10),
            data_dir: fx.dir.path().to_path_buf(),
            routing: Default::default(),
            frame_hook: None,
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
