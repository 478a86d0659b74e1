//! The server configuration file (`sightline.toml`): where data lives, which database, which
//! ports, how many runs, which inference provider. One file, every field optional, each
//! overridable from the environment as `SIGHTLINE_<SECTION>__<FIELD>` (for example
//! `SIGHTLINE_RTSP__PORT=9554`, `SIGHTLINE_DATABASE_URL=postgres://…`).

use crate::secret::{Secret, mask_url};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use sightline_core::FieldErrors;
use std::path::{Path, PathBuf};

/// Everything `sightline serve` / `worker` need to start.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Directory for the SQLite database, the model registry, recordings and crops.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://PATH` (embedded, the default: `<data_dir>/sightline.db`) or
    /// `postgres://USER:PASS@HOST/DB` (several workers share one PostgreSQL).
    pub database_url: Option<Secret>,
    /// Identity of this worker in the `workers` table; default `<hostname>-<pid>`.
    pub worker_id: Option<String>,
    pub engine: EngineSection,
    pub rtsp: RtspSection,
    pub api: ApiSection,
    pub inference: InferenceSection,
    pub log: LogSection,
    /// Notification sinks (MQTT, webhooks) fed from the transactional outbox.
    pub notify: sightline_notify::NotifySection,
    /// The media store: event pictures and recordings (local directory or S3), disk
    /// survival mode.
    pub media: crate::media::MediaSettings,
    /// How long events, pictures and recordings are kept.
    pub retention: crate::media::Retention,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            data_dir: PathBuf::from("data"),
            database_url: None,
            worker_id: None,
            engine: EngineSection::default(),
            rtsp: RtspSection::default(),
            api: ApiSection::default(),
            inference: InferenceSection::default(),
            log: LogSection::default(),
            notify: Default::default(),
            media: Default::default(),
            retention: Default::default(),
        }
    }
}

/// The engine: how it claims and supervises runs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Maximum runs this worker executes at once.
    pub max_runs: u32,
    /// At most this many of those runs are batch jobs, so a live camera added behind a backlog
    /// of jobs always finds a slot. Default: half of `max_runs` (at least 1).
    pub max_jobs: Option<u32>,
    /// How often the database is polled for new runs (milliseconds). On PostgreSQL,
    /// LISTEN/NOTIFY makes pickup immediate and polling is the safety net.
    pub poll_interval_ms: u64,
    /// Lease length (seconds): a run whose worker stops renewing is taken over after this.
    pub lease_ttl_s: u64,
    /// Lease renewal and worker heartbeat period (seconds); must be well below `lease_ttl_s`.
    pub heartbeat_s: u64,
    /// On SIGTERM, how long to wait for pipelines to stop and events to flush (seconds).
    pub shutdown_timeout_s: u64,
}

impl EngineSection {
    /// How many batch jobs a worker running `max_runs` takes at once: `max_jobs`, or half of
    /// `max_runs` (at least 1), never more than `max_runs`.
    pub fn jobs_limit(&self, max_runs: u32) -> u32 {
        self.max_jobs
            .unwrap_or((max_runs / 2).max(1))
            .clamp(1, max_runs.max(1))
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            max_runs: 8,
            max_jobs: None,
            poll_interval_ms: 1000,
            lease_ttl_s: 15,
            heartbeat_s: 5,
            shutdown_timeout_s: 30,
        }
    }
}

/// The RTSP server that republishes each run at `rtsp://HOST:PORT/runs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RtspSection {
    /// Address to listen on.
    pub bind: String,
    /// TCP port (8554 by convention).
    pub port: u16,
    /// Host name put into the URLs shown to users and returned by the API.
    pub public_host: String,
}

impl Default for RtspSection {
    fn default() -> Self {
        RtspSection {
            bind: "0.0.0.0".into(),
            port: 8554,
            public_host: "127.0.0.1".into(),
        }
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApiSection {
    /// `host:port` to listen on. Binding to a non-loopback address requires API tokens.
    pub bind: String,
    /// Serve without authentication even on a non-loopback address (logged loudly).
    pub insecure: bool,
    /// Origins allowed by CORS (`["*"]` allows any origin, without credentials).
    pub cors_origins: Vec<String>,
    /// Whether `/health`, `/ready` and `/metrics` are reachable without a token.
    pub open_probes: bool,
    /// Serve `/metrics` on this separate address as well (e.g. `0.0.0.0:9464`).
    pub metrics_bind: Option<String>,
    /// Guards of `POST /v1/infer`.
    pub infer: InferGuards,
    /// Directories that file sources given through the API must resolve into (after
    /// symlinks); relative paths are taken from them. Default: `<data_dir>/uploads` and the
    /// shipped `samples/`. The CLI is not restricted.
    pub file_roots: Option<Vec<PathBuf>>,
    /// Network destinations that sources given through the API may (not) reach.
    pub source_hosts: crate::sources::SourceHosts,
    /// Batch jobs over uploaded video (`POST /v1/jobs`).
    pub jobs: JobsSection,
}

/// Uploads of batch jobs.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// Largest upload in bytes (413 above, refused from `Content-Length` before the body is
    /// read, and counted while it streams).
    pub max_upload_bytes: u64,
    /// Where uploads are stored (default `<data_dir>/uploads/jobs`, inside the default file
    /// roots).
    pub upload_dir: Option<PathBuf>,
    /// Keep an uploaded file after its job ends (default: deleted when the job completes,
    /// fails or is cancelled).
    pub keep_uploads: bool,
}

impl Default for JobsSection {
    fn default() -> Self {
        JobsSection {
            max_upload_bytes: 2 * 1024 * 1024 * 1024,
            upload_dir: None,
            keep_uploads: false,
        }
    }
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            bind: "127.0.0.1:8080".into(),
            insecure: false,
            cors_origins: Vec::new(),
            open_probes: true,
            metrics_bind: None,
            infer: InferGuards::default(),
            file_roots: None,
            source_hosts: Default::default(),
            jobs: JobsSection::default(),
        }
    }
}

/// Limits applied to `POST /v1/infer`, checked in this order.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InferGuards {
    /// In-flight plus queued requests above which new ones get 503 + Retry-After.
    pub max_queue: u32,
    /// Requests per minute per client (token or IP) before 429.
    pub rate_per_minute: u32,
    /// Largest request body in bytes (413 above).
    pub max_body_bytes: u64,
    /// Largest image in pixels, read from the header before decoding (413 above).
    pub max_pixels: u64,
    /// Largest result of an image-to-image model (input pixels × scale²), checked before any
    /// work (413 `too_many_output_pixels` above).
    pub max_output_pixels: u64,
    /// Concurrent inferences; a request waits at most `slot_timeout_ms` for one (504).
    pub slots: u32,
    /// How long a request may wait for an inference slot (milliseconds).
    pub slot_timeout_ms: u64,
}

impl Default for InferGuards {
    fn default() -> Self {
        InferGuards {
            max_queue: 32,
            rate_per_minute: 600,
            max_body_bytes: 20 * 1024 * 1024,
            max_pixels: 16_000_000,
            max_output_pixels: 16_000_000,
            slots: 2,
            slot_timeout_ms: 10_000,
        }
    }
}

/// ONNX Runtime settings shared by every model this worker loads.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct InferenceSection {
    /// Execution provider: `cpu`, `cuda` or `tensorrt`.
    pub provider: String,
    /// When the provider is unavailable, log and fall back to CPU instead of refusing to start.
    pub fallback_to_cpu: bool,
    /// ONNX Runtime intra-op threads per session (default: number of cores ÷ `sessions`).
    pub intra_threads: Option<usize>,
    /// Sessions per model, each on its own thread, sharing the streams' requests (default 1).
    /// On a CPU, `sessions = <cores>` with `intra_threads = 1` carries more streams than one
    /// session using every core (see the README's figures).
    pub sessions: usize,
    /// TensorRT: build FP16 engines.
    pub tensorrt_fp16: bool,
    /// TensorRT: where built engines are cached (default `<data_dir>/trt-cache`).
    pub tensorrt_cache_dir: Option<PathBuf>,
    /// Largest batch the batcher forms across streams.
    pub max_batch: usize,
    /// How long the batcher waits to fill a batch (milliseconds).
    pub max_wait_ms: u64,
    /// Model used when a config or request names none.
    pub default_model: String,
    /// Path of `libonnxruntime.so` (default: `ORT_DYLIB_PATH`, next to the binary, `./.ort`).
    pub library_path: Option<PathBuf>,
}

impl Default for InferenceSection {
    fn default() -> Self {
        InferenceSection {
            provider: "cpu".into(),
            fallback_to_cpu: false,
            intra_threads: None,
            sessions: 1,
            tensorrt_fp16: true,
            tensorrt_cache_dir: None,
            max_batch: 4,
            max_wait_ms: 4,
            default_model: "nanodet-m-416".into(),
            library_path: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter such as `info` or `sightline=debug,info`; `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// Why the server configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ServerConfigError {
    #[error("{0}")]
    Parse(String),
    #[error("invalid server configuration:\n{0}")]
    Invalid(FieldErrors),
}

impl sightline_core::error::Classify for ServerConfigError {
    fn kind(&self) -> sightline_core::ErrorKind {
        sightline_core::ErrorKind::InvalidInput
    }
}

/// The top-level fields of [`ServerConfig`], the only names read from the environment.
const TOP_LEVEL_FIELDS: &[&str] = &[
    "data_dir",
    "database_url",
    "worker_id",
    "engine",
    "rtsp",
    "api",
    "inference",
    "log",
    "notify",
    "media",
    "retention",
];

impl ServerConfig {
    /// Defaults, then the file (if given; it must exist), then `SIGHTLINE_*` environment
    /// variables; validated.
    pub fn load(file: Option<&Path>) -> Result<ServerConfig, ServerConfigError> {
        Self::load_with_env(file, Env::prefixed("SIGHTLINE_").split("__"))
    }

    fn load_with_env(file: Option<&Path>, env: Env) -> Result<ServerConfig, ServerConfigError> {
        let mut fig = Figment::from(Serialized::defaults(ServerConfig::default()));
        if let Some(f) = file {
            if !f.exists() {
                return Err(ServerConfigError::Parse(format!(
                    "config file {} does not exist",
                    f.display()
                )));
            }
            fig = fig.merge(Toml::file(f));
        }
        // Only variables naming a top-level field are configuration: `SIGHTLINE_CONFIG`
        // names the file itself, and other tools' `SIGHTLINE_*` variables (the tests'
        // `SIGHTLINE_REQUIRE_PG`, `SIGHTLINE_MODELS_DIR`, …) must not make start-up fail.
        // A misspelt field inside a section is still an error (`deny_unknown_fields`).
        let env = env.filter(|k| {
            // Keys keep the variable's case (`DATA_DIR`, `RTSP.PORT`); fields are lower case.
            let top = k.as_str().split('.').next().unwrap_or("");
            TOP_LEVEL_FIELDS.iter().any(|f| f.eq_ignore_ascii_case(top))
        });
        let cfg: ServerConfig = fig
            .merge(env)
            .extract()
            .map_err(|e| ServerConfigError::Parse(render_figment_error(e)))?;
        cfg.validate().map_err(ServerConfigError::Invalid)?;
        Ok(cfg)
    }

    /// Every problem, with its field path.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        self.notify.validate("notify", &mut e);
        self.media.validate("media", &mut e);
        self.retention.validate("retention", &mut e);
        let en = &self.engine;
        if en.max_runs == 0 {
            e.push("engine.max_runs", "must be at least 1");
        }
        if en.max_jobs == Some(0) {
            e.push(
                "engine.max_jobs",
                "must be at least 1 (jobs would never run)",
            );
        }
        if en.poll_interval_ms == 0 {
            e.push("engine.poll_interval_ms", "must be at least 1");
        }
        if en.heartbeat_s == 0 {
            e.push("engine.heartbeat_s", "must be at least 1");
        }
        if en.lease_ttl_s < 2 * en.heartbeat_s {
            e.push(
                "engine.lease_ttl_s",
                format!(
                    "must be at least twice engine.heartbeat_s ({}), or leases expire between renewals",
                    en.heartbeat_s
                ),
            );
        }
        if let Some(url) = &self.database_url {
            let u = url.expose();
            if !(u.starts_with("sqlite:")
                || u.starts_with("postgres:")
                || u.starts_with("postgresql:"))
            {
                e.push(
                    "database_url",
                    format!(
                        "unsupported database {}: use sqlite://PATH or postgres://…",
                        mask_url(u)
                    ),
                );
            }
        }
        if self.api.bind.parse::<std::net::SocketAddr>().is_err() {
            e.push(
                "api.bind",
                format!("{:?} is not host:port (e.g. 127.0.0.1:8080)", self.api.bind),
            );
        }
        if let Some(m) = &self.api.metrics_bind
            && m.parse::<std::net::SocketAddr>().is_err()
        {
            e.push("api.metrics_bind", format!("{m:?} is not host:port"));
        }
        self.api.source_hosts.validate("api.source_hosts", &mut e);
        let g = &self.api.infer;
        if g.slots == 0 {
            e.push("api.infer.slots", "must be at least 1");
        }
        if g.max_queue < g.slots {
            e.push("api.infer.max_queue", "must be at least api.infer.slots");
        }
        if g.max_pixels == 0 {
            e.push("api.infer.max_pixels", "must be at least 1");
        }
        if g.max_output_pixels == 0 {
            e.push("api.infer.max_output_pixels", "must be at least 1");
        }
        if !["cpu", "cuda", "tensorrt"].contains(&self.inference.provider.as_str()) {
            e.push(
                "inference.provider",
                format!(
                    "unknown provider {:?}: use cpu, cuda or tensorrt",
                    self.inference.provider
                ),
            );
        }
        if self.inference.max_batch == 0 {
            e.push("inference.max_batch", "must be at least 1");
        }
        if !(1..=64).contains(&self.inference.sessions) {
            e.push("inference.sessions", "must be between 1 and 64");
        }
        if self.inference.intra_threads == Some(0) {
            e.push("inference.intra_threads", "must be at least 1");
        }
        if !["text", "json"].contains(&self.log.format.as_str()) {
            e.push(
                "log.format",
                format!("unknown format {:?}: use text or json", self.log.format),
            );
        }
        e.into_result(())
    }

    /// The database URL, defaulting to the embedded SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose().to_owned(),
            None => format!(
                "sqlite://{}?mode=rwc",
                self.data_dir.join("sightline.db").display()
            ),
        }
    }

    /// This worker's id: configured, or `<hostname>-<pid>`.
    pub fn worker_id(&self) -> String {
        self.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "host".into());
            format!("{host}-{}", std::process::id())
        })
    }

    /// Where job uploads are stored: `[api.jobs].upload_dir` or `<data_dir>/uploads/jobs`.
    pub fn job_upload_dir(&self) -> PathBuf {
        self.api
            .jobs
            .upload_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("uploads").join("jobs"))
    }

    /// The file roots of API sources: `[api].file_roots`, or `<data_dir>/uploads` and
    /// `samples` (the shipped clips, where found).
    pub fn file_roots(&self, samples: Option<&Path>) -> Vec<PathBuf> {
        match &self.api.file_roots {
            Some(r) => r.clone(),
            None => {
                let mut v = vec![self.data_dir.join("uploads")];
                v.extend(samples.map(Path::to_path_buf));
                v
            }
        }
    }

    /// Deny rules for this server's own services — the database, the MQTT brokers and the
    /// API/metrics ports, on their hosts and on loopback — and the well-known service ports
    /// on loopback.
    pub fn own_services(&self) -> Vec<String> {
        let mut out = Vec::new();
        // Well-known database, cache and broker ports on loopback, whether or not this
        // server uses them (PostgreSQL, MySQL, Redis, MQTT, AMQP, NATS, memcached, MongoDB,
        // Elasticsearch, Docker, etcd, Consul).
        for port in [
            5432u16, 3306, 6379, 1883, 8883, 5672, 4222, 11211, 27017, 9200, 2375, 2379, 8500,
        ] {
            out.push(format!("127.0.0.0/8:{port}"));
            out.push(format!("[::1]:{port}"));
            out.push(format!("localhost:{port}"));
        }
        let mut add = |host: &str, port: u16| {
            let h = host.trim_start_matches('[').trim_end_matches(']');
            let local = h.is_empty()
                || h.eq_ignore_ascii_case("localhost")
                || h.parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified());
            if local {
                out.push(format!("127.0.0.0/8:{port}"));
                out.push(format!("[::1]:{port}"));
                out.push(format!("localhost:{port}"));
            } else if h.contains(':') {
                out.push(format!("[{h}]:{port}"));
            } else {
                out.push(format!("{h}:{port}"));
            }
        };
        if let Some(db) = &self.database_url
            && let Ok(u) = url::Url::parse(db.expose())
            && u.scheme().starts_with("postgres")
        {
            add(u.host_str().unwrap_or(""), u.port().unwrap_or(5432));
        }
        for sink in &self.notify.sinks {
            if let sightline_notify::SinkConfig::Mqtt(m) = sink {
                add(&m.host, m.port);
            }
        }
        for bind in std::iter::once(&self.api.bind).chain(self.api.metrics_bind.iter()) {
            if let Ok(a) = bind.parse::<std::net::SocketAddr>() {
                add(&a.ip().to_string(), a.port());
                if !a.ip().is_loopback() {
                    add("127.0.0.1", a.port());
                }
            }
        }
        out
    }

    /// Where the media store is: `[media].url`, or `<data_dir>/media`.
    pub fn media_url(&self) -> String {
        match &self.media.url {
            Some(u) => u.clone(),
            None => self.data_dir.join("media").display().to_string(),
        }
    }

    /// Base of the picture URLs in events: `[media].public_url`, or `http://<api.bind>`.
    pub fn media_public_url(&self) -> String {
        match &self.media.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.api.bind),
        }
    }

    /// Whether the API bind address is loopback-only.
    pub fn api_is_loopback(&self) -> bool {
        self.api
            .bind
            .parse::<std::net::SocketAddr>()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false)
    }
}

fn render_figment_error(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let path = e.path.join(".");
            let src = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref().map(|s| format!(" (from {s})")))
                .unwrap_or_default();
            if path.is_empty() {
                format!("{}{src}", e.kind)
            } else {
                format!("{path}: {}{src}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = ServerConfig::default();
        c.validate().unwrap();
        assert!(c.database_url().starts_with("sqlite://data/sightline.db"));
        assert!(c.api_is_loopback());
    }

    /// The server configs shipped for compose and Kubernetes load, with the environment the
    /// deployments set (compose.yaml, deploy/k8s), and mean what their comments say.
    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
    fn deployment_configs_load_with_their_environment() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        for f in [
            "deploy/compose/sightline.toml",
            "deploy/k8s/base/sightline.toml",
        ] {
            let path = root.join(f);
            figment::Jail::expect_with(|jail| {
                jail.set_env("SIGHTLINE_DATABASE_URL", "postgres://u:p@db:5432/sightline");
                jail.set_env("SIGHTLINE_WORKER_ID", "sightline-worker-7d9f-abc");
                jail.set_env("SIGHTLINE_RTSP__PUBLIC_HOST", "10.1.2.3");
                jail.set_env("SIGHTLINE_HEALTH_PORT", "9464");
                jail.set_env("SIGHTLINE_INFERENCE__PROVIDER", "cuda");
                jail.set_env("SIGHTLINE_INFERENCE__FALLBACK_TO_CPU", "false");
                jail.set_env("SIGHTLINE_ENGINE__MAX_RUNS", "32");
                let c = ServerConfig::load(Some(&path)).unwrap_or_else(|e| panic!("{f}: {e}"));
                assert_eq!(c.api.bind, "0.0.0.0:8080", "{f}");
                assert_eq!(c.rtsp.bind, "0.0.0.0", "{f}");
                assert_eq!(c.rtsp.public_host, "10.1.2.3", "{f}");
                assert_eq!(c.worker_id.as_deref(), Some("sightline-worker-7d9f-abc"));
                assert_eq!(c.inference.provider, "cuda");
                assert!(!c.inference.fallback_to_cpu);
                assert_eq!(c.engine.max_runs, 32);
                assert!(c.database_url().starts_with("postgres://"), "{f}");
                assert_eq!(c.notify.sinks.len(), 1, "{f}: the MQTT sink");
                Ok(())
            });
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
    fn file_and_env_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "data_dir = \"/var/x\"\n[rtsp]\nport = 9000\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("SIGHTLINE_RTSP__PORT", "9100");
            jail.set_env("SIGHTLINE_ENGINE__MAX_RUNS", "3");
            let c = ServerConfig::load(Some(&f)).unwrap();
            assert_eq!(c.rtsp.port, 9100);
            assert_eq!(c.engine.max_runs, 3);
            assert_eq!(c.data_dir, PathBuf::from("/var/x"));
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type, not ours
    fn other_tools_variables_are_not_fields_but_misspelt_section_fields_are_errors() {
        figment::Jail::expect_with(|jail| {
            // What the test scripts and the registry export: not configuration.
            jail.set_env("SIGHTLINE_REQUIRE_PG", "1");
            jail.set_env("SIGHTLINE_MODELS_DIR", "/tmp/models");
            jail.set_env("SIGHTLINE_CONFIG", "/nowhere.toml");
            jail.set_env("SIGHTLINE_DATA_DIR", "/srv/data");
            let c = ServerConfig::load(None).unwrap();
            assert_eq!(c.data_dir, PathBuf::from("/srv/data"));

            jail.set_env("SIGHTLINE_RTSP__PROT", "9000");
            let err = ServerConfig::load(None).unwrap_err().to_string();
            assert!(err.contains("prot"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn top_level_field_list_matches_the_struct() {
        let v = serde_json::to_value(ServerConfig::default()).unwrap();
        let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut listed = TOP_LEVEL_FIELDS.to_vec();
        keys.sort_unstable();
        listed.sort_unstable();
        assert_eq!(keys, listed, "TOP_LEVEL_FIELDS is out of date");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.toml");
        std::fs::write(&f, "[rtsp]\nprot = 9000\n").unwrap();
        let err = ServerConfig::load_with_env(Some(&f), Env::prefixed("NOPE_")).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");

        std::fs::write(
            &f,
            "[engine]\nmax_runs = 0\nlease_ttl_s = 2\n[log]\nformat = \"xml\"\n",
        )
        .unwrap();
        let err = ServerConfig::load_with_env(Some(&f), Env::prefixed("NOPE_")).unwrap_err();
        let s = err.to_string();
        assert!(s.contains("engine.max_runs"), "{s}");
        assert!(s.contains("engine.lease_ttl_s"), "{s}");
        assert!(s.contains("log.format"), "{s}");
    }

    #[test]
    fn secrets_are_masked_in_debug() {
        let mut c = ServerConfig {
            database_url: Some(Secret::new("postgres://u:pg-password@h/db")),
            ..Default::default()
        };
        c.media.s3.secret_access_key = Some(Secret::new("s3-secret-key"));
        c.media.s3.access_key_id = Some(Secret::new("s3-key-id"));
        let text = format!("{c:?}");
        for s in ["pg-password", "s3-secret-key", "s3-key-id"] {
            assert!(!text.contains(s), "{s} in {text}");
        }
    }
}
