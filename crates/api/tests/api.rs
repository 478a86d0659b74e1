//! Router tests with `oneshot` on a real SQLite store and the real model registry: probes,
//! auth per role, configs (422 with field paths), runs (masked credentials, 409 on deleting
//! an active run, config apply), events (filters, SSE) and models (upload validated by
//! loading, nothing left behind on failure, 409 while in use).

mod common;
#[path = "api/plates.rs"]
mod plates;

use axum::http::{Method, StatusCode};
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sightline_api::{ApiOptions, AuthMode, router};
use sightline_core::{Event, EventId, EventKind, Pts, RuleEvent, RunId};
use sightline_store::TokenRole;
use std::time::Duration;

#[tokio::test]
async fn probes_name_the_failing_check() {
    let fx = fixture().await;
    let app = fx.open_app();
    let r = get(&app, "/health", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "ok");

    let r = get(&app, "/ready", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "not_ready");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(msg.contains("model") && msg.contains("engine"), "{msg}");
    assert!(!msg.contains("database"), "{msg}");
    assert!(r.headers.contains_key("retry-after"));

    // Load the default model; check readiness without an engine, plus an extra check.
    let models = fx.models.clone();
    tokio::task::spawn_blocking(move || models.get("nanodet-m-416").unwrap())
        .await
        .unwrap();
    let app = router(fx.state(ApiOptions {
        auth: AuthMode::Disabled,
        max_heartbeat_age: None,
        readiness: vec![(
            "mqtt".into(),
            std::sync::Arc::new(|| Err("broker down".into())),
        )],
        ..ApiOptions::default()
    }));
    let r = get(&app, "/ready", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let details = r.json()["error"]["details"].clone();
    let failing: Vec<&str> = details
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(failing, ["mqtt"]);

    let app = router(fx.state(ApiOptions {
        auth: AuthMode::Disabled,
        max_heartbeat_age: None,
        ..ApiOptions::default()
    }));
    let r = get(&app, "/ready", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["ready"], true);

    let r = get(&app, "/version", None).await;
    assert_eq!(r.json()["version"], env!("CARGO_PKG_VERSION"));
    let r = get(&app, "/metrics", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&app, "/nope", None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn auth_per_role() {
    let fx = fixture().await;
    let app = router(fx.state(ApiOptions {
        open_probes: false,
        metrics: Some(std::sync::Arc::new(|| "m 1\n".to_owned())),
        ..ApiOptions::default()
    }));
    let viewer = fx.token(TokenRole::Viewer).await;
    let operator = fx.token(TokenRole::Operator).await;
    let admin = fx.token(TokenRole::Admin).await;

    assert_eq!(get(&app, "/health", None).await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/openapi.json", None).await.status,
        StatusCode::OK
    );
    let r = get(&app, "/v1/runs", None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    assert_eq!(
        get(&app, "/ready", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&app, "/metrics", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = get(&app, "/metrics", Some(&viewer)).await;
    assert_eq!(
        (r.status, r.bytes.as_slice()),
        (StatusCode::OK, &b"m 1\n"[..])
    );
    assert_eq!(
        get(&app, "/v1/runs", Some("wrong")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        get(&app, "/v1/runs", Some(&viewer)).await.status,
        StatusCode::OK
    );

    // Viewer: reads only.
    let r = post_json(&app, "/v1/configs/c", Some(&viewer), &config_json()).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::FORBIDDEN, "forbidden")
    );
    // Operator: configs and runs, not models.
    let r = post_json(&app, "/v1/configs/c", Some(&operator), &config_json()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = send(
        &app,
        Method::DELETE,
        "/v1/models/x",
        Some(&operator),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Admin: everything (404: the model does not exist, but access was granted).
    let r = send(
        &app,
        Method::DELETE,
        "/v1/models/x",
        Some(&admin),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A revoked token stops working.
    let rec = fx
        .store
        .find_token_by_hash(&sightline_api::hash_token(&viewer))
        .await
        .unwrap()
        .unwrap();
    fx.store.revoke_token(&rec.id).await.unwrap();
    assert_eq!(
        get(&app, "/v1/runs", Some(&viewer)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn configs_are_versioned_and_validated_with_paths() {
    let fx = fixture().await;
    let app = fx.open_app();
    let r = post_json(&app, "/v1/configs/lobby", None, &config_json()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["version"], 1);
    // Defaults are filled in.
    assert_eq!(r.json()["body"]["model"]["interval"], 1);
    let r = send(
        &app,
        Method::PUT,
        "/v1/configs/lobby",
        None,
        Some("application/json"),
        serde_json::to_vec(&config_json()).unwrap(),
    )
    .await;
    assert_eq!(r.json()["version"], 2);

    let bad = json!({
        "model": {"name": "nanodet-m-416", "interval": 0, "classes": ["unicorn"]},
        "output": {"bitrate_kbps": 1}
    });
    let r = post_json(&app, "/v1/configs/lobby", None, &bad).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.code(), "invalid_config");
    let paths: Vec<String> = r.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    for p in ["model.interval", "model.classes[0]", "output.bitrate_kbps"] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }
    let r = post_json(&app, "/v1/configs/lobby", None, &json!({"modle": {}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Plate stages: a regex that does not compile and a model that does not load are refused
    // now, each naming its field; a valid one is stored.
    let mut plates = config_json();
    plates["secondary"] = json!([
        {"name": "plates", "plate": {"format": "([A-Z"}},
        {"name": "other", "text_detector": "/nonexistent/det.onnx"},
        {"name": "third", "plate_detector": "no-such-plate-model"}
    ]);
    let r = post_json(&app, "/v1/configs/lobby", None, &plates).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json());
    let paths: Vec<String> = r.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned())
        .collect();
    for p in [
        "secondary[0].plate.format",
        "secondary[1].text_detector",
        "secondary[2].plate_detector",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing from {paths:?}");
    }
    plates["secondary"] = json!([{"name": "plates"}]);
    let r = post_json(&app, "/v1/configs/plates", None, &plates).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    assert_eq!(r.json()["body"]["secondary"][0]["timeout_ms"], 500);
    // An array where the schema has an object (serde alone would fill the struct by
    // position): refused, naming the field.
    let mut arr = config_json();
    arr["media"] = json!({"retention": [null, null]});
    let r = post_json(&app, "/v1/configs/lobby", None, &arr).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json());
    assert_eq!(r.json()["error"]["details"][0]["path"], "media.retention");
    let r = post_json(
        &app,
        "/v1/configs/x",
        None,
        &json!({"model": {"name": "nope"}}),
    )
    .await;
    assert_eq!(r.json()["error"]["details"][0]["path"], "model.name");
    let r = send(
        &app,
        Method::POST,
        "/v1/configs/x",
        None,
        Some("application/json"),
        b"{".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_json")
    );

    let r = get(&app, "/v1/configs", None).await;
    assert_eq!(r.json()[0]["name"], "lobby");
    assert_eq!(r.json()[0]["latest_version"], 2);
    assert_eq!(
        get(&app, "/v1/configs/lobby", None).await.json()["version"],
        2
    );
    let r = get(&app, "/v1/configs/lobby/versions", None).await;
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    assert_eq!(
        get(&app, "/v1/configs/none", None).await.status,
        StatusCode::NOT_FOUND
    );
    let r = get(&app, "/v1/schema/pipeline-config", None).await;
    assert!(r.json()["properties"]["model"].is_object());
}

#[tokio::test]
async fn runs_lifecycle_over_http() {
    let fx = fixture().await;
    let app = router(fx.state(ApiOptions {
        auth: AuthMode::Disabled,
        public_rtsp_base: Some("rtsp://cams.example:8554/".into()),
        ..ApiOptions::default()
    }));
    post_json(&app, "/v1/configs/c", None, &config_json()).await;

    let r = post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "cam1", "source": "rtsp://admin:hunter2@10.0.0.5/s1?token=abc", "config": "c"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let text = String::from_utf8(r.bytes.clone()).unwrap();
    assert!(!text.contains("hunter2") && !text.contains("abc"), "{text}");
    assert_eq!(r.json()["source"], "rtsp://***@10.0.0.5/s1?token=***");
    assert_eq!(r.json()["models"], json!(["nanodet-m-416"]));
    assert_eq!(r.json()["rtsp_url"], "rtsp://cams.example:8554/runs/cam1");
    assert_eq!(r.json()["state"], "pending");

    // Invalid fields are all reported.
    let r = post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "a/b", "source": "nope", "config": "missing", "output": {"x": 1}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let paths: Vec<&str> = r.json()["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_owned().leak() as &str)
        .collect();
    assert_eq!(paths, ["id", "source", "output", "config"]);
    let r = post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "cam1", "source": "test://x", "config": "c"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    let r = get(&app, "/v1/runs/cam1", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!String::from_utf8_lossy(&r.bytes).contains("hunter2"));
    assert_eq!(r.json()["transitions"][0]["to"], "pending");
    assert_eq!(r.json()["live"], Value::Null);
    assert_eq!(
        get(&app, "/v1/runs/ghost", None).await.status,
        StatusCode::NOT_FOUND
    );

    // Second run, claimed by a worker: active.
    post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "cam2", "source": "test://ball", "config": "c"}),
    )
    .await;
    let claimed = fx
        .store
        .claim_runs("w1", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed[0].id.as_str(), "cam1");
    let r = get(&app, "/v1/runs?state=starting", None).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    let r = get(&app, "/v1/runs?limit=1", None).await;
    assert_eq!(r.json()["next_cursor"], "cam1");
    let r = get(&app, "/v1/runs?limit=1&cursor=cam1", None).await;
    assert_eq!(r.json()["items"][0]["id"], "cam2");
    assert_eq!(
        get(&app, "/v1/runs?state=bogus", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let r = send(&app, Method::DELETE, "/v1/runs/cam1", None, None, vec![]).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "conflict")
    );

    // A new config version applied to the active run.
    post_json(&app, "/v1/configs/c", None, &config_json()).await;
    let r = post_json(&app, "/v1/runs/cam1/config", None, &json!({"version": 2})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["config_version"], 2);
    let r = post_json(&app, "/v1/runs/cam1/config", None, &json!({"version": 9})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // JSON does not tell 2 from 2.0 (nor does the schema's `integer`); 2.5 is no version.
    let r = post_json(&app, "/v1/runs/cam1/config", None, &json!({"version": 2.0})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    let r = post_json(&app, "/v1/runs/cam1/config", None, &json!({"version": 2.5})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    // Pages larger than the declared maximum are refused, not silently cut.
    let r = get(&app, "/v1/runs?limit=1001", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["details"][0]["path"], "limit");
    assert_eq!(
        get(&app, "/v1/runs?limit=1000", None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&app, "/v1/runs?state=", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Snapshot of a run not executing here.
    let r = get(&app, "/v1/runs/cam1/snapshot.jpg", None).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "run_not_live")
    );

    // Stop the pending one, then delete it.
    let r = send(&app, Method::POST, "/v1/runs/cam2/stop", None, None, vec![]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.json()["state"], "stopped");
    let r = send(&app, Method::DELETE, "/v1/runs/cam2", None, None, vec![]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&app, "/v1/runs/cam2", None).await.status,
        StatusCode::NOT_FOUND
    );
}

fn event(run: &str, kind: EventKind, class: &str) -> Event {
    let mut body = RuleEvent::new(kind, "r1", Pts::ZERO);
    body.class = Some(class.into());
    Event {
        id: EventId::generate(),
        run_id: RunId::parse(run).unwrap(),
        wall_ms: chrono::Utc::now().timestamp_millis(),
        body,
        media: None,
    }
}

#[tokio::test]
async fn events_query_and_stream() {
    let fx = fixture().await;
    let app = fx.open_app();
    post_json(&app, "/v1/configs/c", None, &config_json()).await;
    post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "r1", "source": "test://ball", "config": "c"}),
    )
    .await;
    fx.store
        .insert_events(&[
            event("r1", EventKind::LineCross, "person"),
            event("r1", EventKind::Count, "car"),
            event("r1", EventKind::LineCross, "car"),
        ])
        .await
        .unwrap();
    let r = get(&app, "/v1/events?run=r1&type=line_cross", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json());
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 2);
    let r = get(&app, "/v1/events?class=car&limit=1", None).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    let cursor = r.json()["next_cursor"].as_str().unwrap().to_owned();
    let r = get(&app, &format!("/v1/events?class=car&cursor={cursor}"), None).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.json()["next_cursor"], Value::Null);
    let r = get(&app, "/v1/events?type=bogus&since=yesterday", None).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error"]["details"].as_array().unwrap().len(), 2);
    let r = get(
        &app,
        "/v1/events?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 0);

    assert_eq!(
        get(&app, "/v1/events?limit=5000", None).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    // A stream for a run that does not exist is an error, not a silent stream.
    let r = get(&app, "/v1/events/stream?run=nope", None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // SSE: only the requested run's events arrive.
    let req = axum::http::Request::get("/v1/events/stream?run=r1")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app.clone(), req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let tx = fx.engine.events_sender();
    tx.send(event("other", EventKind::Count, "dog")).unwrap();
    tx.send(event("r1", EventKind::Dwell, "person")).unwrap();
    let mut body = resp.into_body().into_data_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&chunk).into_owned();
    assert!(
        text.contains("event: rule") && text.contains("\"dwell\""),
        "{text}"
    );
    assert!(!text.contains("dog"), "{text}");

    // A stopping server ends open streams (so its graceful shutdown can finish).
    let state = fx.state(sightline_api::ApiOptions {
        auth: sightline_api::AuthMode::Disabled,
        ..sightline_api::ApiOptions::default()
    });
    let app = sightline_api::router(state.clone());
    let req = axum::http::Request::get("/v1/events/stream")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = tower::ServiceExt::oneshot(app, req).await.unwrap();
    let mut body = resp.into_body().into_data_stream();
    state.begin_shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while body.next().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the SSE stream did not end on shutdown");
}

#[tokio::test]
async fn models_upload_list_delete() {
    let fx = fixture().await;
    let app = fx.open_app();
    let r = get(&app, "/v1/models", None).await;
    let names: Vec<&str> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_owned().leak() as &str)
        .collect();
    assert!(names.contains(&"nanodet-m-416"), "{names:?}");
    let r = get(&app, "/v1/models/nanodet-m-416", None).await;
    assert_eq!(r.json()["builtin"], true);
    assert_eq!(
        get(&app, "/v1/models/nope", None).await.status,
        StatusCode::NOT_FOUND
    );

    let onnx = std::fs::read(fixture_path("tiny_yolov8.onnx")).unwrap();
    let manifest = std::fs::read(fixture_path("tiny_yolov8.toml")).unwrap();
    let reg_dir = fx.dir.path().join("models");
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(&reg_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // Truncated ONNX: 422 with the reason, nothing on disk.
    let (ct, body) = multipart(&[
        ("manifest", None, &manifest),
        ("onnx", Some("m.onnx"), &onnx[..onnx.len() / 2]),
    ]);
    let r = send(&app, Method::POST, "/v1/models", None, Some(&ct), body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json());
    assert_eq!(r.code(), "invalid_model");
    assert!(listing().is_empty(), "{:?}", listing());
    // Bad manifest.
    let (ct, body) = multipart(&[
        ("manifest", None, b"name = 1"),
        ("onnx", Some("m.onnx"), &onnx),
    ]);
    let r = send(&app, Method::POST, "/v1/models", None, Some(&ct), body).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_manifest")
    );
    assert!(listing().is_empty(), "{:?}", listing());
    // Over the size limit.
    let small = router(fx.state(ApiOptions {
        auth: AuthMode::Disabled,
        max_model_bytes: 1000,
        ..ApiOptions::default()
    }));
    let (ct, body) = multipart(&[
        ("manifest", None, &manifest),
        ("onnx", Some("m.onnx"), &onnx),
    ]);
    let r = send(&small, Method::POST, "/v1/models", None, Some(&ct), body).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(listing().is_empty(), "{:?}", listing());

    // Valid.
    let (ct, body) = multipart(&[
        ("onnx", Some("m.onnx"), &onnx),
        ("manifest", None, &manifest),
    ]);
    let r = send(&app, Method::POST, "/v1/models", None, Some(&ct), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json());
    let sha = r.json()["sha256"].as_str().unwrap().to_owned();
    assert_eq!(listing(), [sha.as_str()]);
    assert_eq!(fx.store.get_model("tiny-yolov8").await.unwrap().sha256, sha);

    // In use by a run: 409; built-in: 409; otherwise deleted.
    post_json(&app, "/v1/configs/c", None, &config_json()).await;
    post_json(
        &app,
        "/v1/runs",
        None,
        &json!({"id": "u", "source": "test://ball", "config": "c", "models": ["tiny-yolov8"]}),
    )
    .await;
    let r = send(
        &app,
        Method::DELETE,
        "/v1/models/tiny-yolov8",
        None,
        None,
        vec![],
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::CONFLICT, "model_in_use")
    );
    let r = send(
        &app,
        Method::DELETE,
        "/v1/models/nanodet-m-416",
        None,
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    send(&app, Method::POST, "/v1/runs/u/stop", None, None, vec![]).await;
    let r = send(
        &app,
        Method::DELETE,
        "/v1/models/tiny-yolov8",
        None,
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json());
    assert!(listing().is_empty());
}

#[tokio::test]
async fn openapi_and_docs() {
    let fx = fixture().await;
    let app = fx.open_app();
    let r = get(&app, "/openapi.json", None).await;
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/v1/infer",
        "/v1/runs/{id}",
        "/v1/models",
        "/v1/events/stream",
        "/ready",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing");
    }
    assert!(doc["components"]["schemas"]["InferResponse"].is_object());
    // The contract says what the server does: open probes, auth errors, any-JSON details.
    assert_eq!(
        doc["paths"]["/health"]["get"]["security"],
        serde_json::json!([])
    );
    assert!(doc["paths"]["/health"]["get"]["responses"]["401"].is_null());
    for (path, method) in [
        ("/v1/runs", "get"),
        ("/v1/runs", "post"),
        ("/v1/models", "post"),
    ] {
        let responses = &doc["paths"][path][method]["responses"];
        for code in ["401", "403", "400"] {
            assert_eq!(
                responses[code]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorBody",
                "{method} {path} {code}"
            );
        }
    }
    assert!(doc["paths"]["/v1/runs"]["post"]["responses"]["415"].is_object());
    // Config bodies are the pipeline config's own schema: unknown fields are refused.
    let body = &doc["paths"]["/v1/configs/{name}"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    assert_eq!(body["$ref"], "#/components/schemas/PipelineConfig");
    let config = &doc["components"]["schemas"]["PipelineConfig"];
    assert_eq!(config["additionalProperties"], false);
    assert!(
        doc["components"]["schemas"]["PipelineConfig_ConnectPolicy"]["properties"]["rtsp_transport"].is_object()
    );
    assert!(
        !doc.to_string().contains("#/definitions/"),
        "references rewritten"
    );
    assert!(
        doc["paths"]["/v1/configs/{name}"]["put"].is_object(),
        "PUT is documented"
    );
    let details = &doc["components"]["schemas"]["ErrorDetail"]["properties"]["details"];
    assert!(
        details.get("type").is_none(),
        "details is any JSON: {details}"
    );
    let r = get(&app, "/docs", None).await;
    let html = String::from_utf8(r.bytes).unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
}
