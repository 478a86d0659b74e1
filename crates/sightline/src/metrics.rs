//! The process's Prometheus recorder and the text served at `/metrics` (by the HTTP API, or
//! by `--metrics-addr` on its own port).
//!
//! The library crates record through the `metrics` facade (typed telemetry events, STYLE
//! pattern 8); this module installs the one recorder (`metrics-exporter-prometheus`) and adds,
//! at scrape time, what is read rather than recorded:
//! - per-model batcher statistics (`sightline_model_*`, from [`ModelStats`] snapshots: the
//!   inference crate keeps its own histogram and exports nothing itself);
//! - process CPU time and resident memory (`process_cpu_seconds_total`,
//!   `process_resident_memory_bytes`: the names every Prometheus client library uses, so the
//!   usual dashboards work);
//! - GPU memory and utilisation through NVML, when the NVIDIA management library can be
//!   loaded; without it the metrics are absent and nothing is logged above `debug`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use sightline_engine::ModelCache;
use sightline_inference::ModelStats;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Histogram buckets (seconds) for every `*_seconds` histogram: per-stage latencies are
/// sub-millisecond to tens of milliseconds; end-to-end and API latencies reach seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// Gauges not set for this long disappear (a run that left this worker stops being
/// reported instead of showing its last state forever). Live gauges are set every heartbeat.
const GAUGE_IDLE: Duration = Duration::from_secs(60);

/// The installed recorder plus the read-at-scrape sources.
pub struct Metrics {
    handle: PrometheusHandle,
    models: OnceLock<Arc<ModelCache>>,
    data_dir: OnceLock<std::path::PathBuf>,
    nvml: Option<nvml_wrapper::Nvml>,
}

static INSTALLED: OnceLock<Arc<Metrics>> = OnceLock::new();

/// Installs the recorder (once per process; later calls return the same one).
pub fn install() -> anyhow::Result<Arc<Metrics>> {
    if let Some(m) = INSTALLED.get() {
        return Ok(m.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE))
        .install_recorder()?;
    let nvml = match nvml_wrapper::Nvml::init() {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::debug!(error = %e, "NVML not available: no GPU metrics");
            None
        }
    };
    let m = Arc::new(Metrics {
        handle,
        models: OnceLock::new(),
        data_dir: OnceLock::new(),
        nvml,
    });
    // Histograms are aggregated lazily; keep that bounded between scrapes.
    let upkeep = m.handle.clone();
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            }
        })?;
    Ok(INSTALLED.get_or_init(|| m).clone())
}

impl Metrics {
    /// Adds the per-model statistics of this cache to every scrape.
    pub fn watch_models(&self, models: Arc<ModelCache>) {
        let _ = self.models.set(models);
    }

    /// Adds free/total bytes of the data directory's filesystem to every scrape.
    pub fn watch_disk(&self, data_dir: &std::path::Path) {
        let _ = self.data_dir.set(data_dir.to_path_buf());
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = self.handle.render();
        if let Some(models) = self.models.get() {
            let stats: Vec<(String, ModelStats)> = models
                .loaded()
                .iter()
                .map(|m| (m.manifest().name.clone(), m.stats()))
                .collect();
            render_models(&mut out, &stats);
        }
        render_process(&mut out);
        if let Some(d) = self.data_dir.get() {
            render_disk(&mut out, d);
        }
        if let Some(nvml) = &self.nvml {
            render_gpu(&mut out, nvml);
        }
        out
    }

    /// GPU memory in use over all GPUs, bytes (`None` without NVML).
    pub fn gpu_memory_used(&self) -> Option<u64> {
        let gpus = read_gpus(self.nvml.as_ref()?);
        let used: Vec<u64> = gpus.iter().filter_map(|g| Some(g.memory?.0)).collect();
        (!used.is_empty()).then(|| used.iter().sum())
    }

    /// A closure for the API's `/metrics`.
    pub fn renderer(self: &Arc<Self>) -> sightline_api::MetricsRender {
        let m = self.clone();
        Arc::new(move || m.render())
    }
}

/// Label values are model names and numbers; escape anyway (`\`, `"`, newline).
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A metric family with one sample per item: name, type, help, and how to read the value.
type ScalarFamily<T, V> = (&'static str, &'static str, &'static str, fn(&T) -> V);

/// `# HELP` and `# TYPE` of one metric family (written once, before all its samples).
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Every loaded model's batcher statistics, family by family: the text format wants one
/// header per family and its samples together, whatever the number of models.
fn render_models(out: &mut String, models: &[(String, ModelStats)]) {
    if models.is_empty() {
        return;
    }
    let label = |name: &str| format!("model=\"{}\"", esc(name));

    header(
        out,
        "sightline_model_inference_seconds",
        "histogram",
        "Session run time per batch.",
    );
    for (name, s) in models {
        let l = label(name);
        let cum = s.latency.cumulative();
        for (b, c) in s.latency.bounds_seconds.iter().zip(&cum) {
            let _ = writeln!(
                out,
                "sightline_model_inference_seconds_bucket{{{l},le=\"{b}\"}} {c}"
            );
        }
        let _ = writeln!(
            out,
            "sightline_model_inference_seconds_bucket{{{l},le=\"+Inf\"}} {}\n\
             sightline_model_inference_seconds_sum{{{l}}} {}\n\
             sightline_model_inference_seconds_count{{{l}}} {}",
            s.latency.count, s.latency.sum_seconds, s.latency.count
        );
    }

    header(
        out,
        "sightline_model_batch_size",
        "histogram",
        "Requests per session call.",
    );
    for (name, s) in models {
        let l = label(name);
        for b in [1usize, 2, 4, 8, 16, 32] {
            let acc: u64 = s.batch_sizes.iter().take(b + 1).sum();
            let _ = writeln!(
                out,
                "sightline_model_batch_size_bucket{{{l},le=\"{b}\"}} {acc}"
            );
        }
        let sum: u64 = s
            .batch_sizes
            .iter()
            .enumerate()
            .map(|(size, n)| size as u64 * n)
            .sum();
        let _ = writeln!(
            out,
            "sightline_model_batch_size_bucket{{{l},le=\"+Inf\"}} {b}\n\
             sightline_model_batch_size_sum{{{l}}} {sum}\n\
             sightline_model_batch_size_count{{{l}}} {b}",
            b = s.batches
        );
    }

    let scalars: [ScalarFamily<ModelStats, u64>; 5] = [
        (
            "sightline_model_frames_total",
            "counter",
            "Requests run by the model.",
            |s| s.frames,
        ),
        (
            "sightline_model_dropped_total",
            "counter",
            "Requests dropped because a client queue was full.",
            |s| s.dropped,
        ),
        (
            "sightline_model_errors_total",
            "counter",
            "Failed batches.",
            |s| s.errors,
        ),
        (
            "sightline_model_out_of_memory_total",
            "counter",
            "Batches that failed for lack of accelerator memory.",
            |s| s.out_of_memory,
        ),
        (
            "sightline_model_queue_depth",
            "gauge",
            "Requests waiting for the model now.",
            |s| s.queued as u64,
        ),
    ];
    for (family, kind, help, value) in scalars {
        header(out, family, kind, help);
        for (name, s) in models {
            let _ = writeln!(out, "{family}{{{}}} {}", label(name), value(s));
        }
    }
}

/// CPU seconds (user + system) and resident set size (bytes) of this process.
pub fn process_usage() -> (f64, u64) {
    use nix::sys::resource::{UsageWho, getrusage};
    let cpu = getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
        t(u.user_time()) + t(u.system_time())
    });
    // `VmRSS:   123456 kB` in /proc/self/status.
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024);
    (cpu, rss)
}

fn render_process(out: &mut String) {
    let (cpu, rss) = process_usage();
    let _ = writeln!(
        out,
        "# HELP process_cpu_seconds_total User and system CPU time of the process.\n\
         # TYPE process_cpu_seconds_total counter\n\
         process_cpu_seconds_total {cpu}\n\
         # HELP process_resident_memory_bytes Resident memory of the process.\n\
         # TYPE process_resident_memory_bytes gauge\n\
         process_resident_memory_bytes {rss}"
    );
}

/// Free (for unprivileged users) and total bytes of the filesystem holding `dir`.
pub fn disk_usage(dir: &std::path::Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).ok()?;
    let frsize = st.fragment_size() as u64;
    Some((
        st.blocks_available() as u64 * frsize,
        st.blocks() as u64 * frsize,
    ))
}

fn render_disk(out: &mut String, dir: &std::path::Path) {
    if let Some((free, total)) = disk_usage(dir) {
        let _ = writeln!(
            out,
            "# HELP sightline_data_disk_free_bytes Free bytes on the data directory's filesystem.\n\
             # TYPE sightline_data_disk_free_bytes gauge\n\
             sightline_data_disk_free_bytes {free}\n\
             # HELP sightline_data_disk_total_bytes Size of the data directory's filesystem.\n\
             # TYPE sightline_data_disk_total_bytes gauge\n\
             sightline_data_disk_total_bytes {total}"
        );
    }
}

/// One GPU's readings; a reading NVML refuses is `None`.
struct GpuReading {
    index: u32,
    memory: Option<(u64, u64)>,
    utilization: Option<f64>,
}

fn read_gpus(nvml: &nvml_wrapper::Nvml) -> Vec<GpuReading> {
    let Ok(n) = nvml.device_count() else {
        return Vec::new();
    };
    (0..n)
        .filter_map(|index| {
            let d = nvml.device_by_index(index).ok()?;
            Some(GpuReading {
                index,
                memory: d.memory_info().ok().map(|m| (m.used, m.total)),
                utilization: d.utilization_rates().ok().map(|u| f64::from(u.gpu) / 100.0),
            })
        })
        .collect()
}

fn render_gpu(out: &mut String, nvml: &nvml_wrapper::Nvml) {
    let gpus = read_gpus(nvml);
    let families: [ScalarFamily<GpuReading, Option<f64>>; 3] = [
        (
            "sightline_gpu_memory_used_bytes",
            "gauge",
            "GPU memory in use.",
            |g| g.memory.map(|(used, _)| used as f64),
        ),
        (
            "sightline_gpu_memory_total_bytes",
            "gauge",
            "GPU memory size.",
            |g| g.memory.map(|(_, total)| total as f64),
        ),
        (
            "sightline_gpu_utilization_ratio",
            "gauge",
            "GPU busy share over the last sample period.",
            |g| g.utilization,
        ),
    ];
    for (family, kind, help, value) in families {
        let samples: Vec<(u32, f64)> = gpus
            .iter()
            .filter_map(|g| Some((g.index, value(g)?)))
            .collect();
        if samples.is_empty() {
            continue;
        }
        header(out, family, kind, help);
        for (i, v) in samples {
            let _ = writeln!(out, "{family}{{gpu=\"{i}\"}} {v}");
        }
    }
}

/// What a worker's `/ready` checks (the same database and heartbeat checks as the API's).
pub struct Probes {
    pub store: sightline_store::Store,
    pub engine: Arc<sightline_engine::EngineShared>,
    /// Older than this, the engine counts as stalled.
    pub max_heartbeat_age: std::time::Duration,
}

impl Probes {
    /// Every failing check, by name and reason (empty: ready).
    async fn failing(&self) -> Vec<(&'static str, String)> {
        use sightline_api::routes::probes::{database_check, engine_check};
        [
            ("database", database_check(&self.store).await),
            ("engine", engine_check(&self.engine, self.max_heartbeat_age)),
        ]
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|reason| (name, reason)))
        .collect()
    }
}

/// Serves `/metrics` on `addr` (for `sightline worker --metrics-addr`), with the liveness
/// probe `/health` and, given `probes`, the readiness probe `/ready` (200 or 503 naming each
/// failing check) for orchestrators. Returns the bound address.
pub async fn serve(
    addr: &str,
    m: Arc<Metrics>,
    probes: Option<Probes>,
) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context;
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics listener on {addr}"))?;
    let bound = listener.local_addr()?;
    let mut app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4",
                        )],
                        m.render(),
                    )
                }
            }),
        )
        .route("/health", get(sightline_api::routes::probes::health));
    if let Some(p) = probes {
        let p = Arc::new(p);
        app = app.route(
            "/ready",
            get(move || {
                let p = p.clone();
                async move {
                    let failing = p.failing().await;
                    let checks: Vec<_> = failing
                        .iter()
                        .map(|(name, message)| serde_json::json!({"name": name, "ok": false, "message": message}))
                        .collect();
                    let status = if failing.is_empty() {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (
                        status,
                        axum::Json(serde_json::json!({"ready": failing.is_empty(), "failing": checks})),
                    )
                }
            }),
        );
    }
    tracing::info!(addr = %bound, "metrics listening on /metrics (probes /health, /ready)");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_histograms_are_cumulative_and_consistent() {
        let mut s = ModelStats {
            batch_sizes: vec![0, 3, 1, 0, 2],
            batches: 6,
            frames: 3 + 2 + 8,
            ..Default::default()
        };
        s.latency.observe(Duration::from_millis(3));
        s.latency.observe(Duration::from_millis(40));
        let mut out = String::new();
        let other = ModelStats::default();
        render_models(&mut out, &[("nano\"det".into(), s), ("yolo".into(), other)]);
        // One header per family, whatever the number of models.
        for family in [
            "sightline_model_inference_seconds",
            "sightline_model_batch_size",
            "sightline_model_frames_total",
            "sightline_model_queue_depth",
        ] {
            let header = format!("# TYPE {family} ");
            assert_eq!(out.matches(&header).count(), 1, "{family}\n{out}");
        }
        assert!(out.contains(r#"sightline_model_frames_total{model="yolo"} 0"#));
        assert!(out.contains(r#"sightline_model_batch_size_bucket{model="nano\"det",le="1"} 3"#));
        assert!(out.contains(r#"sightline_model_batch_size_bucket{model="nano\"det",le="2"} 4"#));
        assert!(out.contains(r#"sightline_model_batch_size_bucket{model="nano\"det",le="4"} 6"#));
        assert!(
            out.contains(r#"sightline_model_batch_size_bucket{model="nano\"det",le="+Inf"} 6"#)
        );
        assert!(out.contains(r#"sightline_model_batch_size_sum{model="nano\"det"} 13"#));
        assert!(out.contains(r#"sightline_model_inference_seconds_count{model="nano\"det"} 2"#));
        assert!(out.contains(
            r#"sightline_model_inference_seconds_bucket{model="nano\"det",le="0.005"} 1"#
        ));
    }

    #[test]
    fn disk_usage_of_the_temp_dir() {
        let (free, total) = disk_usage(&std::env::temp_dir()).unwrap();
        assert!(total > 0 && free <= total, "{free} {total}");
    }

    #[test]
    fn process_usage_is_plausible() {
        let (cpu, rss) = process_usage();
        assert!(cpu > 0.0);
        assert!(rss > 1 << 20, "{rss}");
    }
}
