//! `POST /v1/infer` with the shipped NanoDet model on a real frame of `vtest.avi`: the happy
//! paths (JSON base64, multipart with annotation, raw bytes) and every guard's status code.

mod common;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::*;
use serde_json::json;
use sightline_api::{ApiOptions, AuthMode, router};
use sightline_config::server::InferGuards;

fn frame_png() -> Vec<u8> {
    std::fs::read(fixture_path("vtest_frame100.png")).unwrap()
}

fn app_with(fx: &Fx, guards: InferGuards) -> axum::Router {
    router(fx.state(ApiOptions {
        auth: AuthMode::Disabled,
        infer: guards,
        ..ApiOptions::default()
    }))
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// A PNG whose header claims `w`×`h` pixels (valid signature, IHDR and CRC; no pixel data).
fn png_header_claiming(w: u32, h: u32) -> Vec<u8> {
    fn crc32(data: &[u8]) -> u32 {
        let mut c = 0xFFFF_FFFFu32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        let mut c = kind.to_vec();
        c.extend_from_slice(data);
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(&c);
        out.extend_from_slice(&crc32(&c).to_be_bytes());
    }
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    chunk(&mut out, b"IHDR", &ihdr);
    // A few bytes of (truncated) image data: the decoder reads the header up to here.
    chunk(&mut out, b"IDAT", &[0x78, 0x9C, 0x63, 0x00, 0x00]);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detects_people_in_a_vtest_frame() {
    let fx = fixture().await;
    let app = app_with(&fx, InferGuards::default());
    let png = frame_png();

    let r = post_json(&app, "/v1/infer", None, &json!({"image": b64(&png)})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let v = r.json();
    assert_eq!(v["model"], "nanodet-m-416");
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(768), Some(576))
    );
    let dets = v["detections"].as_array().unwrap();
    assert!(dets.len() >= 3, "{v}");
    assert!(
        dets.iter()
            .all(|d| d["class"] == "person" || d["score"].as_f64().unwrap() > 0.0)
    );
    assert!(dets.iter().any(|d| d["class"] == "person"));
    let b = &dets[0]["box"];
    assert!(b["x2"].as_f64().unwrap() > b["x1"].as_f64().unwrap());
    assert!(v.get("image_jpeg_base64").is_none());

    // Multipart with annotation: the drawn image decodes at the same size.
    let (ct, body) = multipart(&[
        ("image", Some("f.png"), &png),
        ("annotate", None, b"true"),
        ("score_threshold", None, b"0.6"),
    ]);
    let r = send(&app, Method::POST, "/v1/infer", None, Some(&ct), body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let v = r.json();
    assert!(
        v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["score"].as_f64().unwrap() >= 0.6)
    );
    let jpg = base64::engine::general_purpose::STANDARD
        .decode(v["image_jpeg_base64"].as_str().unwrap())
        .unwrap();
    let img = sightline_inference::decode_image(&jpg, 1 << 22).unwrap();
    assert_eq!((img.width, img.height), (768, 576));

    // Raw bytes with options in the query.
    let r = send(
        &app,
        Method::POST,
        "/v1/infer?model=nanodet-m-416",
        None,
        Some("image/png"),
        png.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = send(
        &app,
        Method::POST,
        "/v1/infer?model=nope",
        None,
        Some("image/png"),
        png.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // File paths are not model names.
    let path = format!("{}/../../models/nanodet-m-416", env!("CARGO_MANIFEST_DIR"));
    let r = post_json(
        &app,
        "/v1/infer",
        None,
        &json!({"image": b64(&png), "model": path}),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
    );
    // A threshold outside 0..=1 (query or body) is refused, not clamped silently.
    for (uri, body) in [
        ("/v1/infer?score_threshold=1.5", json!({"image": b64(&png)})),
        (
            "/v1/infer",
            json!({"image": b64(&png), "score_threshold": -0.1}),
        ),
    ] {
        let r = post_json(&app, uri, None, &body).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            "{uri} {body}"
        );
    }
}

#[tokio::test]
async fn guard_statuses() {
    let fx = fixture().await;
    let png = frame_png();

    // 503: queue full, with Retry-After.
    let app = app_with(
        &fx,
        InferGuards {
            max_queue: 0,
            ..InferGuards::default()
        },
    );
    let r = post_json(&app, "/v1/infer", None, &json!({"image": b64(&png)})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "queue_full")
    );
    assert_eq!(r.headers["retry-after"], "1");

    // 413: body over the limit (before anything is decoded).
    let app = app_with(
        &fx,
        InferGuards {
            max_body_bytes: 1000,
            ..InferGuards::default()
        },
    );
    let r = send(
        &app,
        Method::POST,
        "/v1/infer",
        None,
        Some("image/png"),
        png.clone(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large")
    );

    let app = app_with(&fx, InferGuards::default());
    // 413: a pixel bomb, refused from its header.
    let bomb = png_header_claiming(100_000, 100_000);
    let r = post_json(&app, "/v1/infer", None, &json!({"image": b64(&bomb)})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_many_pixels")
    );
    // 422: garbage, bad base64, missing field, unknown content type (415).
    let r = send(
        &app,
        Method::POST,
        "/v1/infer",
        None,
        Some("image/jpeg"),
        b"not an image".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_image")
    );
    let r = post_json(&app, "/v1/infer", None, &json!({"image": "@@@"})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_image")
    );
    let r = post_json(&app, "/v1/infer", None, &json!({"img": "x"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = send(
        &app,
        Method::POST,
        "/v1/infer",
        None,
        Some("text/plain"),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // 429: per-client rate.
    let app = app_with(
        &fx,
        InferGuards {
            rate_per_minute: 2,
            ..InferGuards::default()
        },
    );
    for _ in 0..2 {
        let r = send(
            &app,
            Method::POST,
            "/v1/infer",
            None,
            Some("image/jpeg"),
            b"x".to_vec(),
        )
        .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let r = send(
        &app,
        Method::POST,
        "/v1/infer",
        None,
        Some("image/jpeg"),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
    );
    assert!(r.headers.contains_key("retry-after"));

    // 504: no slot in time.
    let app = app_with(
        &fx,
        InferGuards {
            slots: 0,
            slot_timeout_ms: 50,
            ..InferGuards::default()
        },
    );
    let t0 = std::time::Instant::now();
    let r = post_json(&app, "/v1/infer", None, &json!({"image": b64(&png)})).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::GATEWAY_TIMEOUT, "slot_timeout")
    );
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_requests_release_their_slot_and_queue_place() {
    let fx = fixture().await;
    let png = frame_png();
    let app = app_with(
        &fx,
        InferGuards {
            slots: 1,
            max_queue: 1,
            slot_timeout_ms: 5_000,
            ..InferGuards::default()
        },
    );
    // A client that gives up almost immediately (its request future is dropped mid-way).
    let body = json!({"image": b64(&png)});
    let abandoned = tokio::time::timeout(
        std::time::Duration::from_millis(5),
        post_json(&app, "/v1/infer", None, &body),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the first request should still be running"
    );
    // Its queue place and slot are free again: the next request is admitted and served.
    let r = post_json(&app, "/v1/infer", None, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
}
