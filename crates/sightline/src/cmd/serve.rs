//! `sightline serve` / `sightline worker` / `sightline migrate`: the persistent engine. It
//! connects to the store (embedded SQLite under the data directory by default, PostgreSQL by
//! URL), runs the migrations, starts the RTSP server and the supervisor, and waits for work
//! until SIGTERM/SIGINT, then releases its runs within the shutdown bound.
//!
//! `serve` and `worker` run the same engine; `serve` adds the HTTP API (with `/metrics`),
//! `worker` is for scale-out and serves `/metrics`, `/health` and `/ready` on
//! `--metrics-addr` when asked (the probes an orchestrator needs for a worker).

use anyhow::Context;
use clap::Args;
use sightline_config::ServerConfig;
use sightline_core::{Clock, SystemClock};
use sightline_engine::{Engine, EngineOptions, EngineShared, ModelCache};
use sightline_media::RtspServer;
use sightline_store::{Store, StoreOptions};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args, Default)]
pub struct EngineArgs {
    /// Maximum concurrent runs on this worker (default from the server config).
    #[arg(long)]
    pub max_runs: Option<u32>,
    /// RTSP port (default from the server config, 8554; 0 picks a free one).
    #[arg(long)]
    pub rtsp_port: Option<u16>,
    /// Also serve Prometheus `/metrics` on this address (e.g. `0.0.0.0:9464`); `serve`
    /// has it on the API address as well.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Serve the HTTP API without authentication even on a non-loopback address (`serve`).
    #[arg(long)]
    pub insecure: bool,
    /// HTTP API address (default from the server config, `[api].bind`); `serve` only.
    #[arg(skip)]
    pub api: bool,
}

/// Opens the store named by the server config and applies its migrations. A database that
/// does not answer is a start-up error (after the connect timeout), never a hot loop.
pub async fn open_store(server: &ServerConfig) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&server.data_dir)
        .with_context(|| format!("data directory {}", server.data_dir.display()))?;
    let url = server.database_url();
    let opts = StoreOptions::default();
    let store = Store::connect(&url, &opts)
        .await
        .with_context(|| format!("database {}", sightline_store::redact_url(&url)))?;
    store.migrate().await.context("database migrations")?;
    Ok(store)
}

/// `sightline migrate`.
pub fn migrate(server: &ServerConfig) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let store = open_store(server).await?;
        tracing::info!(backend = store.backend().as_str(), "migrations applied");
        store.close().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sightline-async")
        .build()
        .context("tokio runtime")
}

/// Everything the engine needs, opened and checked before it starts.
pub struct Prepared {
    pub store: Store,
    /// Delivers events to MQTT / webhooks (none configured: no tasks).
    pub notifier: Option<sightline_notify::Notifier>,
    pub models: Arc<ModelCache>,
    pub rtsp: Arc<RtspServer>,
    pub options: EngineOptions,
    pub shared: Arc<EngineShared>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Where sources given through the API may point.
    pub source_policy: Arc<sightline_config::SourcePolicy>,
    /// Event pictures, recordings, retention (stopped after the engine).
    pub media: crate::media::MediaServices,
}

pub async fn prepare(server: &ServerConfig, a: &EngineArgs) -> anyhow::Result<Prepared> {
    sightline_media::init().context("GStreamer")?;
    let metrics = crate::metrics::install().context("metrics recorder")?;
    let store = open_store(server).await?;
    let models = Arc::new(ModelCache::open(&server.inference, &server.data_dir)?);
    metrics.watch_models(models.clone());
    metrics.watch_disk(&server.data_dir);
    let shared = EngineShared::new();
    if let Some(addr) = &a.metrics_addr {
        let probes = crate::metrics::Probes {
            store: store.clone(),
            engine: shared.clone(),
            max_heartbeat_age: heartbeat_limit(server),
        };
        crate::metrics::serve(addr, metrics.clone(), Some(probes)).await?;
    }
    // The default model is loaded up front: a broken runtime or model is a start-up error.
    models
        .get(&server.inference.default_model)
        .with_context(|| format!("default model {:?}", server.inference.default_model))?;
    let port = a.rtsp_port.unwrap_or(server.rtsp.port);
    let rtsp = Arc::new(
        RtspServer::start(&server.rtsp.bind, port)
            .with_context(|| format!("RTSP server on {}:{port}", server.rtsp.bind))?,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (notifier, routing) = if server.notify.sinks.is_empty() {
        (None, Default::default())
    } else {
        // The notifier stops when the engine has flushed its events (see `run_engine`).
        let n = sightline_notify::Notifier::start(
            store.clone(),
            &server.notify,
            clock,
            std::future::pending(),
        )
        .context("notification sinks")?;
        let router = server.notify.router();
        let waker = n.waker();
        let routing = sightline_engine::EventRouting {
            route: Arc::new(move |e| router.route(e)),
            written: Some(Arc::new(move || waker.wake())),
        };
        (Some(n), routing)
    };
    let source_policy = Arc::new(source_policy(server));
    let worker_id = server.worker_id();
    let (media, run_media) = crate::media::MediaServices::start(server, &store, &worker_id).await?;
    let e = &server.engine;
    let max_runs = a.max_runs.unwrap_or(e.max_runs);
    let options = EngineOptions {
        worker_id,
        host: hostname(),
        max_runs,
        max_jobs: e.jobs_limit(max_runs),
        poll_interval: Duration::from_millis(e.poll_interval_ms),
        lease_ttl: Duration::from_secs(e.lease_ttl_s),
        heartbeat: Duration::from_secs(e.heartbeat_s),
        shutdown_timeout: Duration::from_secs(e.shutdown_timeout_s),
        data_dir: server.data_dir.clone(),
        routing,
        frame_hook: None,
        media: run_media,
        source_policy: Some(source_policy.clone()),
    };
    Ok(Prepared {
        store,
        notifier,
        models,
        rtsp,
        options,
        shared,
        metrics,
        source_policy,
        media,
    })
}

/// `sightline serve` and `sightline worker`.
pub fn main(server: &ServerConfig, a: EngineArgs) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async {
        let p = prepare(server, &a).await?;
        let api = if a.api {
            Some(start_api(server, &p, a.insecure).await?)
        } else {
            None
        };
        run_engine(p, None).await;
        if let Some((api, state)) = api {
            state.begin_shutdown();
            // The API stopped accepting at the signal; in-flight requests get until now
            // plus the drain bound.
            if tokio::time::timeout(API_DRAIN, api).await.is_err() {
                tracing::warn!(
                    drain_s = API_DRAIN.as_secs(),
                    "HTTP requests still in flight after the drain bound; dropping them"
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// How long in-flight HTTP requests may finish after SIGTERM.
const API_DRAIN: Duration = Duration::from_secs(30);

/// Serves the HTTP API on `[api].bind` beside the engine. With at least one live token every
/// request needs one (`sightline token create`); without tokens the API is served open only
/// on a loopback address, and a non-loopback bind is refused unless `--insecure` (or
/// `[api].insecure = true`) says otherwise, which is logged as a warning.
pub(crate) async fn start_api(
    server: &ServerConfig,
    p: &Prepared,
    insecure: bool,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, sightline_api::ApiState)> {
    use sightline_api::{ApiOptions, ApiState, AuthMode};
    let tokens = p
        .store
        .list_tokens()
        .await
        .context("reading API tokens")?
        .into_iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    let auth = if insecure || server.api.insecure {
        tracing::warn!(
            bind = %server.api.bind,
            "INSECURE: the HTTP API is served WITHOUT authentication (--insecure); anyone who can reach it controls the engine"
        );
        AuthMode::Disabled
    } else if tokens > 0 {
        AuthMode::Tokens
    } else if server.api_is_loopback() {
        tracing::info!(
            bind = %server.api.bind,
            "no API tokens: the API is open on this loopback address (create one with `sightline token create --role admin` to require it)"
        );
        AuthMode::Disabled
    } else {
        anyhow::bail!(
            "refusing to serve the HTTP API on {} without authentication: no API token exists. \
             Create one with `sightline token create --role admin`, bind to a loopback address, \
             or pass --insecure",
            server.api.bind
        );
    };
    let mut opts = ApiOptions::from_config(&server.api, &server.inference, auth);
    opts.public_rtsp_base = Some(format!(
        "rtsp://{}:{}",
        server.rtsp.public_host,
        p.rtsp.port()
    ));
    opts.max_heartbeat_age = Some(heartbeat_limit(server));
    opts.version = env!("CARGO_PKG_VERSION").into();
    opts.metrics = Some(p.metrics.renderer());
    let data_dir = server.data_dir.clone();
    opts.system_info = Some(Arc::new(move || {
        let (cpu_s, rss) = crate::metrics::process_usage();
        let disk = crate::metrics::disk_usage(&data_dir);
        serde_json::json!({
            "cpu_seconds": cpu_s,
            "rss_bytes": rss,
            "data_disk_free_bytes": disk.map(|d| d.0),
            "data_disk_total_bytes": disk.map(|d| d.1),
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    }));
    opts.sources = p.source_policy.clone();
    opts.jobs = Some(sightline_api::JobUploads {
        dir: server.job_upload_dir(),
        video_dir: server.data_dir.join("jobs"),
        max_bytes: server.api.jobs.max_upload_bytes,
        keep_uploads: server.api.jobs.keep_uploads,
    });
    opts.media = Some(sightline_api::ApiMedia {
        store: p.media.store.clone(),
        status: p.media.status.clone(),
    });
    if let Some(n) = &p.notifier {
        let h = n.status_handle();
        opts.readiness.push((
            "notify".into(),
            Arc::new(move || {
                let down: Vec<String> = h
                    .status()
                    .into_iter()
                    .filter(|s| !s.connected || s.over_cap)
                    .map(|s| {
                        let why = if s.over_cap {
                            "outbox over its cap"
                        } else {
                            "not connected"
                        };
                        match s.last_error {
                            Some(e) => format!("{}: {why} ({e})", s.name),
                            None => format!("{}: {why}", s.name),
                        }
                    })
                    .collect();
                if down.is_empty() {
                    Ok(())
                } else {
                    Err(down.join("; "))
                }
            }),
        ));
    }
    let state = ApiState::new(p.store.clone(), p.shared.clone(), p.models.clone(), opts);
    let app = sightline_api::router_with(state.clone(), sightline_web::routes());
    let listener = tokio::net::TcpListener::bind(&server.api.bind)
        .await
        .with_context(|| format!("HTTP API on {}", server.api.bind))?;
    tracing::info!(
        addr = %server.api.bind,
        auth = ?auth,
        "HTTP API listening (OpenAPI at /openapi.json, docs at /docs)"
    );
    tracing::info!(url = %format!("http://{}/", server.api.bind), "dashboard: open it in a browser");
    let stopping = state.clone();
    let task = tokio::spawn(async move {
        // Stops accepting at SIGTERM/SIGINT (or when the caller begins the shutdown), ends
        // event streams, and lets in-flight requests finish; the caller bounds the wait
        // (API_DRAIN).
        let signal = async move {
            tokio::select! {
                _ = super::run::wait_for_signal() => {}
                _ = stopping.stopping() => {}
            }
            stopping.begin_shutdown();
        };
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await
        {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    });
    Ok((task, state))
}

/// Runs the supervisor until SIGTERM/SIGINT (or until `stop` is notified).
pub async fn run_engine(p: Prepared, stop: Option<Arc<tokio::sync::Notify>>) {
    tracing::info!(
        worker = %p.options.worker_id,
        backend = p.store.backend().as_str(),
        rtsp = %p.rtsp.url("/runs/{id}"),
        "engine ready"
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = p.store.clone();
    Engine::new(p.store, p.models, Some(p.rtsp), p.options, clock, p.shared)
        .run(async {
            let stopped = async {
                match &stop {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = super::run::wait_for_signal() => tracing::info!("signal received: shutting down"),
                _ = stopped => tracing::info!("shutting down"),
            }
        })
        .await;
    p.media.shutdown().await;
    if let Some(n) = p.notifier {
        n.shutdown().await;
    }
    store.close().await;
}

/// The source policy of runs created through the API: the file roots (created if missing:
/// the uploads folder) and the deny rules for this server's own services.
fn source_policy(server: &ServerConfig) -> sightline_config::SourcePolicy {
    let samples = super::demo::shipped("samples");
    let roots = server.file_roots(samples.as_deref());
    for r in &roots {
        if !r.exists() && r.starts_with(&server.data_dir) {
            let _ = std::fs::create_dir_all(r);
        }
        if !r.exists() {
            tracing::warn!(root = %r.display(), "file root does not exist; ignored");
        }
    }
    let policy = sightline_config::SourcePolicy::new(
        &roots,
        &server.api.source_hosts,
        &server.own_services(),
    );
    tracing::info!(roots = ?policy.roots(), "API sources: files only under these roots");
    policy
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// An engine whose last heartbeat is older than this is not ready (three missed beats and
/// some slack), on the API's `/ready` and a worker's.
fn heartbeat_limit(server: &ServerConfig) -> Duration {
    Duration::from_secs(server.engine.heartbeat_s * 3 + 5)
}
