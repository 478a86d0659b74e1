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
            for m in models.loaded() {
                render_model(&mut out, &m.manifest().name, &m.stats());
            }
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

fn render_model(out: &mut String, name: &str, s: &ModelStats) {
    let l = format!("model=\"{}\"", esc(name));
    let _ = writeln!(
        out,
        "# HELP sightline_model_inference_seconds Session run time per batch.\n\
         # TYPE sightline_model_inference_seconds histogram"
    );
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
    let _ = writeln!(
        out,
        "# HELP sightline_model_batch_size Requests per session call.\n\
         # TYPE sightline_model_batch_size histogram"
    );
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
    let _ = writeln!(
        out,
        "# HELP sightline_model_frames_total Requests run by the model.\n\
         # TYPE sightline_model_frames_total counter\n\
         sightline_model_frames_total{{{l}}} {}\n\
         # HELP sightline_model_dropped_total Requests dropped because a client queue was full.\n\
         # TYPE sightline_model_dropped_total counter\n\
         sightline_model_dropped_total{{{l}}} {}\n\
         # HELP sightline_model_errors_total Failed batches.\n\
         # TYPE sightline_model_errors_total counter\n\
         sightline_model_errors_total{{{l}}} {}\n\
         # HELP sightline_model_out_of_memory_total Batches that failed for lack of accelerator memory.\n\
         # TYPE sightline_model_out_of_memory_total counter\n\
         sightline_model_out_of_memory_total{{{l}}} {}\n\
         # HELP sightline_model_queue_depth Requests waiting for the model now.\n\
         # TYPE sightline_model_queue_depth gauge\n\
         sightline_model_queue_depth{{{l}}} {}",
        s.frames, s.dropped, s.errors, s.out_of_memory, s.queued
    );
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

fn render_gpu(out: &mut String, nvml: &nvml_wrapper::Nvml) {
    let Ok(n) = nvml.device_count() else { return };
    let mut mem = String::new();
    let mut total = String::new();
    let mut util = String::new();
    for i in 0..n {
        let Ok(d) = nvml.device_by_index(i) else {
            continue;
        };
        if let Ok(m) = d.memory_info() {
            let _ = writeln!(
                mem,
                "sightline_gpu_memory_used_bytes{{gpu=\"{i}\"}} {}",
                m.used
            );
            let _ = writeln!(
                total,
                "sightline_gpu_memory_total_bytes{{gpu=\"{i}\"}} {}",
                m.total
            );
        }
        if let Ok(u) = d.utilization_rates() {
            let _ = writeln!(
                util,
                "sightline_gpu_utilization_ratio{{gpu=\"{i}\"}} {}",
                f64::from(u.gpu) / 100.0
            );
        }
    }
    if !mem.is_empty() {
        out.push_str("# TYPE sightline_gpu_memory_used_bytes gauge\n");
        out.push_str(&mem);
        out.push_str("# TYPE sightline_gpu_memory_total_bytes gauge\n");
        out.push_str(&total);
    }
    if !util.is_empty() {
        out.push_str("# TYPE sightline_gpu_utilization_ratio gauge\n");
        out.push_str(&util);
    }
}

/// Serves `/metrics` alone on `addr` (for `sightline worker --metrics-addr`). Returns the
/// bound address.
pub async fn serve(addr: &str, m: Arc<Metrics>) -> anyhow::Result<std::net::SocketAddr> {
    use anyhow::Context;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("metrics listener on {addr}"))?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
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
    );
    tracing::info!(addr = %bound, "metrics listening on /metrics");
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
        render_model(&mut out, "nano\"det", &s);
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
