//! Configs with versions, the model index and API tokens.

use crate::common::{TestDb, both_backends};
use serde_json::json;
use sightline_core::error::Classify;
use sightline_core::{ErrorKind, RunState};
use sightline_store::{NewModel, NewRun, SourceUri, TokenRole};
use std::collections::BTreeSet;
use std::time::Duration;

async fn config_versions(db: &TestDb) {
    let s = &db.store;
    let v1 = s
        .put_config_version("shop", &json!({"zones": []}))
        .await
        .unwrap();
    db.advance(Duration::from_secs(1));
    let v2 = s
        .put_config_version("shop", &json!({"zones": ["door"]}))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    s.put_config_version("alpha", &json!({})).await.unwrap();

    assert_eq!(
        s.get_config("shop", None).await.unwrap().body,
        json!({"zones": ["door"]})
    );
    assert_eq!(s.get_config("shop", Some(1)).await.unwrap(), v1);
    assert_eq!(
        s.get_config("shop", Some(3)).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.get_config("nope", None).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let list = s.list_configs().await.unwrap();
    assert_eq!(
        list.iter()
            .map(|c| (c.name.as_str(), c.latest_version))
            .collect::<Vec<_>>(),
        [("alpha", 1), ("shop", 2)]
    );
    assert!(list[1].updated_at > list[1].created_at);
    let versions = s.list_config_versions("shop").await.unwrap();
    assert_eq!(versions, vec![v1, v2]);
    assert_eq!(
        s.list_config_versions("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.put_config_version("bad name", &json!({}))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );

    // Concurrent writers (two pools) get distinct, gap-free versions.
    let other = db.open_another().await;
    let mut tasks = Vec::new();
    for i in 0..10 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            loop {
                match st.put_config_version("busy", &json!({"i": i})).await {
                    Ok(v) => return v.version,
                    Err(e) if e.kind() == ErrorKind::Unavailable => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        got.insert(t.await.unwrap());
    }
    assert_eq!(got, (1..=10).collect());
}

fn model(name: &str) -> NewModel {
    NewModel {
        name: name.into(),
        sha256: "a".repeat(64),
        manifest: json!({"task": "detect", "family": "yolov8"}),
        path: format!("/models/{name}.onnx"),
        size_bytes: 12_345_678,
    }
}

async fn models_registry(db: &TestDb) {
    let s = &db.store;
    let m = s.upsert_model(&model("yolo")).await.unwrap();
    assert_eq!(
        (m.size_bytes, m.path.as_str()),
        (12_345_678, "/models/yolo.onnx")
    );
    db.advance(Duration::from_secs(1));
    let m2 = s
        .upsert_model(&NewModel {
            sha256: "b".repeat(64),
            ..model("yolo")
        })
        .await
        .unwrap();
    assert_eq!(m2.created_at, m.created_at);
    assert!(m2.updated_at > m.updated_at);
    assert_eq!(s.get_model("yolo").await.unwrap().sha256, "b".repeat(64));
    s.upsert_model(&model("face")).await.unwrap();
    assert_eq!(
        s.list_models()
            .await
            .unwrap()
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        ["face", "yolo"]
    );
    let bad = s
        .upsert_model(&NewModel {
            sha256: "XYZ".into(),
            ..model("x")
        })
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidInput);

    // In use by a pending run: refused; once the run is finished: allowed.
    s.put_config_version("cfg", &json!({})).await.unwrap();
    let mut new = NewRun::new(SourceUri::new("file:///v.avi").unwrap(), "cfg");
    new.models = vec!["yolo".into()];
    let run = s.create_run(new).await.unwrap();
    assert_eq!(
        s.runs_using_model("yolo").await.unwrap(),
        vec![run.id.as_str().to_owned()]
    );
    let err = s.delete_model("yolo").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains(run.id.as_str()));
    assert_eq!(s.delete_model("face").await.unwrap().name, "face");
    assert_eq!(
        s.request_stop(&run.id).await.unwrap().state,
        RunState::Stopped
    );
    assert_eq!(
        s.delete_model("yolo").await.unwrap().path,
        "/models/yolo.onnx"
    );
    assert_eq!(
        s.get_model("yolo").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.delete_model("yolo").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

async fn api_tokens(db: &TestDb) {
    let s = &db.store;
    let h1 = "0123456789abcdef".repeat(4);
    let h2 = "fedcba9876543210".repeat(4);
    let t1 = s
        .create_token("ci", TokenRole::Operator, &h1)
        .await
        .unwrap();
    let t2 = s
        .create_token("grafana", TokenRole::Viewer, &h2)
        .await
        .unwrap();
    assert_eq!(s.find_token_by_hash(&h1).await.unwrap().unwrap(), t1);
    assert_eq!(
        s.find_token_by_hash(&h2).await.unwrap().unwrap().role,
        TokenRole::Viewer
    );
    assert!(
        s.find_token_by_hash(&"0".repeat(64))
            .await
            .unwrap()
            .is_none()
    );
    let dup = s
        .create_token("again", TokenRole::Admin, &h1)
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict);
    let bad = s
        .create_token("x", TokenRole::Admin, "plaintext-token")
        .await
        .unwrap_err();
    assert_eq!(
        bad.kind(),
        ErrorKind::InvalidInput,
        "only hashes are stored"
    );

    s.touch_token(&t1.id).await.unwrap();
    assert!(
        s.find_token_by_hash(&h1)
            .await
            .unwrap()
            .unwrap()
            .last_used_at
            .is_some()
    );
    let r = s.revoke_token(&t1.id).await.unwrap();
    assert!(r.revoked_at.is_some());
    assert!(
        s.find_token_by_hash(&h1).await.unwrap().is_none(),
        "revoked tokens do not authenticate"
    );
    assert_eq!(
        s.revoke_token(&t1.id).await.unwrap().revoked_at,
        r.revoked_at,
        "idempotent"
    );
    assert_eq!(
        s.revoke_token("nope").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let all = s.list_tokens().await.unwrap();
    assert_eq!(
        all.iter().map(|t| t.id.clone()).collect::<Vec<_>>(),
        vec![t1.id, t2.id]
    );
}

both_backends!(config_versions, models_registry, api_tokens);
