//! What every handler shares: the store, the engine's live view, the model cache, the options
//! the binary decided (auth, guards, public RTSP base) and the `/v1/infer` admission state.
//! One cheap-to-clone handle so `router(state)` stays the only wiring point.

use crate::infer::guards::{Admission, RateLimiter};
use sightline_config::server::{ApiSection, InferGuards, InferenceSection};
use sightline_engine::{EngineShared, ModelCache};
use sightline_inference::InferClient;
use sightline_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Whether requests need a bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Every request but `/health` (and the probes with `open_probes`) needs a token.
    Tokens,
    /// No authentication (`--insecure`, or a loopback bind without tokens): every request
    /// acts as admin. The binary decides and logs it.
    Disabled,
}

/// A readiness check the binary adds (notification sinks, ...): `Ok` or why not ready.
pub type ReadinessFn = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Renders the Prometheus text for `GET /metrics` (the binary owns the recorder).
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

/// The media store, for pictures, recordings and clips (the binary opens it).
#[derive(Clone)]
pub struct ApiMedia {
    pub store: Arc<sightline_storage::MediaStore>,
    /// Disk survival mode and usage, shown by `/ready`.
    pub status: Arc<sightline_storage::JanitorStatus>,
}

/// Options the binary fills from `[api]` and its own decisions.
#[derive(Clone)]
pub struct ApiOptions {
    pub auth: AuthMode,
    /// `/ready` and `/metrics` reachable without a token (`/health` always is).
    pub open_probes: bool,
    /// Guards of `POST /v1/infer`.
    pub infer: InferGuards,
    /// Model used when a request names none; `/ready` requires it loaded.
    pub default_model: String,
    /// e.g. `rtsp://cams.example.com:8554`; run views add `/runs/{id}`. None: no URL shown.
    pub public_rtsp_base: Option<String>,
    /// `/ready` fails when the engine's last heartbeat is older than this (or never happened).
    /// None: the engine is not checked (an API-only process).
    pub max_heartbeat_age: Option<Duration>,
    /// Largest accepted ONNX upload.
    pub max_model_bytes: u64,
    /// Origins allowed by CORS (`["*"]`: any, without credentials; empty: no CORS headers).
    pub cors_origins: Vec<String>,
    /// Shown by `GET /version` (default: this crate's version).
    pub version: String,
    /// Extra named readiness checks.
    pub readiness: Vec<(String, ReadinessFn)>,
    /// `GET /metrics`; None: the route answers 404.
    pub metrics: Option<MetricsRender>,
    /// The media store (None: no pictures, recordings or clips are served).
    pub media: Option<ApiMedia>,
    /// This process's resources for `GET /v1/system` (CPU, memory, data disk).
    pub system_info: Option<SystemInfoFn>,
    /// Where sources given through the API may point (default: no file roots, so no file
    /// source; network sources minus the always-denied ranges).
    pub sources: Arc<sightline_config::SourcePolicy>,
    /// Batch job uploads (None: `POST /v1/jobs` takes server-side files only).
    pub jobs: Option<JobUploads>,
}

/// Where `POST /v1/jobs` stores uploads and what it does with them.
#[derive(Debug, Clone)]
pub struct JobUploads {
    pub dir: std::path::PathBuf,
    /// Where annotated videos of jobs are written.
    pub video_dir: std::path::PathBuf,
    pub max_bytes: u64,
    pub keep_uploads: bool,
}

/// Reads this process's resources (the binary owns the readers).
pub type SystemInfoFn = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

impl std::fmt::Debug for ApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiOptions")
            .field("auth", &self.auth)
            .field("open_probes", &self.open_probes)
            .field("infer", &self.infer)
            .field("default_model", &self.default_model)
            .field("public_rtsp_base", &self.public_rtsp_base)
            .finish_non_exhaustive()
    }
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            auth: AuthMode::Tokens,
            open_probes: true,
            infer: InferGuards::default(),
            default_model: sightline_inference::DEFAULT_MODEL.into(),
            public_rtsp_base: None,
            max_heartbeat_age: Some(Duration::from_secs(30)),
            max_model_bytes: 512 << 20,
            cors_origins: Vec::new(),
            version: env!("CARGO_PKG_VERSION").into(),
            readiness: Vec::new(),
            metrics: None,
            media: None,
            system_info: None,
            sources: Arc::new(sightline_config::SourcePolicy::default()),
            jobs: None,
        }
    }
}

impl ApiOptions {
    /// From the server config; `auth` is the binary's decision (see [`AuthMode`]).
    pub fn from_config(api: &ApiSection, inference: &InferenceSection, auth: AuthMode) -> Self {
        ApiOptions {
            auth,
            open_probes: api.open_probes,
            infer: api.infer.clone(),
            default_model: inference.default_model.clone(),
            cors_origins: api.cors_origins.clone(),
            ..ApiOptions::default()
        }
    }
}

/// The shared state of the router.
#[derive(Clone)]
pub struct ApiState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub store: Store,
    pub engine: Arc<EngineShared>,
    pub models: Arc<ModelCache>,
    pub opts: ApiOptions,
    pub admission: Admission,
    pub rate: RateLimiter,
    pub slots: Arc<tokio::sync::Semaphore>,
    /// One batcher client per loaded model (by content hash), shared by all API requests.
    pub clients: parking_lot::Mutex<HashMap<String, Arc<InferClient>>>,
    /// Image-to-image models (by `name@sha256`), opened on first use.
    pub upscalers: tokio::sync::Mutex<HashMap<String, Arc<sightline_inference::Upscaler>>>,
    /// Set by [`ApiState::begin_shutdown`]: endless responses (SSE) end so the server can
    /// drain.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl ApiState {
    pub fn new(
        store: Store,
        engine: Arc<EngineShared>,
        models: Arc<ModelCache>,
        opts: ApiOptions,
    ) -> ApiState {
        let g = &opts.infer;
        let inner = Inner {
            admission: Admission::new(g.max_queue as usize),
            rate: RateLimiter::new(g.rate_per_minute, 10_000),
            slots: Arc::new(tokio::sync::Semaphore::new(g.slots as usize)),
            clients: parking_lot::Mutex::new(HashMap::new()),
            upscalers: tokio::sync::Mutex::new(HashMap::new()),
            shutdown: tokio::sync::watch::Sender::new(false),
            store,
            engine,
            models,
            opts,
        };
        ApiState {
            inner: Arc::new(inner),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn options(&self) -> &ApiOptions {
        &self.inner.opts
    }

    /// The engine's live view (runs executing on this worker, their frames and output).
    pub fn engine(&self) -> &Arc<EngineShared> {
        &self.inner.engine
    }

    /// Resolves once the server is stopping (endless responses end then).
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        self.shutting_down()
    }

    /// The server is stopping: open event streams end now (a graceful shutdown waits for
    /// every response to finish, and an SSE stream never would by itself).
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Resolves once [`ApiState::begin_shutdown`] was called.
    pub(crate) fn shutting_down(&self) -> impl std::future::Future<Output = ()> + Send + use<> {
        let mut rx = self.inner.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}
