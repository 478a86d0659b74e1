//! Shared test fixture: a temporary SQLite store, the real model cache (shipped models), an
//! engine view, and a helper that sends one request through the router with `oneshot`.

#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use serde_json::Value;
use sightline_api::{ApiOptions, ApiState, AuthMode, router};
use sightline_config::server::InferenceSection;
use sightline_engine::{EngineShared, ModelCache};
use sightline_store::{Store, StoreOptions, TokenRole};
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

pub struct Fx {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub models: Arc<ModelCache>,
    pub engine: Arc<EngineShared>,
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub async fn fixture() -> Fx {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("s.db"), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let models = Arc::new(ModelCache::open(&InferenceSection::default(), dir.path()).unwrap());
    Fx {
        dir,
        store,
        models,
        engine: EngineShared::new(),
    }
}

impl Fx {
    pub fn state(&self, opts: ApiOptions) -> ApiState {
        ApiState::new(
            self.store.clone(),
            self.engine.clone(),
            self.models.clone(),
            opts,
        )
    }

    /// A router without authentication.
    pub fn open_app(&self) -> Router {
        router(self.state(ApiOptions {
            auth: AuthMode::Disabled,
            ..ApiOptions::default()
        }))
    }

    pub async fn token(&self, role: TokenRole) -> String {
        let token = format!("tok-{}-{}", role.as_str(), rand_suffix());
        self.store
            .create_token(role.as_str(), role, &sightline_api::hash_token(&token))
            .await
            .unwrap();
        token
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

pub async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Resp {
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(c) = content_type {
        b = b.header(header::CONTENT_TYPE, c);
    }
    let resp = app
        .clone()
        .oneshot(b.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        bytes,
    }
}

pub async fn get(app: &Router, uri: &str, token: Option<&str>) -> Resp {
    send(app, Method::GET, uri, token, None, Vec::new()).await
}

pub async fn post_json(app: &Router, uri: &str, token: Option<&str>, v: &Value) -> Resp {
    send(
        app,
        Method::POST,
        uri,
        token,
        Some("application/json"),
        serde_json::to_vec(v).unwrap(),
    )
    .await
}

/// A multipart body of `(name, filename, bytes)` parts; returns (content type, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XtestBOUNDARYx";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A valid pipeline config using the default model.
pub fn config_json() -> Value {
    serde_json::json!({
        "model": {"name": "nanodet-m-416", "classes": ["person"]},
        "output": {"rtsp": false}
    })
}
