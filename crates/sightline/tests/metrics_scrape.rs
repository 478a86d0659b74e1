//! Scrapes a live engine and checks the monitoring assets against it.
//!
//! `sightline serve` (the real binary, embedded SQLite in a temporary directory, an MQTT sink
//! on the local Mosquitto) runs `samples/vtest.avi` looped in real time, with `/metrics` on the
//! API address and on `--metrics-addr` (which also answers `/health` and `/ready`):
//! - counters move between two scrapes, histograms have samples, labels are as documented
//!   (`run`, `stage`, `model`, `sink`);
//! - every metric name used by `deploy/prometheus/alerts.yml` and
//!   `deploy/grafana/sightline-dashboard.json` is exported — or is one of the few that appear
//!   only once their first occurrence happens (a rejection, a reconnect, a GPU), which must
//!   then at least be recorded somewhere in the source;
//! - `promtool check rules` and `promtool test rules` pass on the alert rules.

#![allow(clippy::print_stderr)]

mod common;

use common::{free_port, get, repo, sigterm};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Metric family names (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Sum of the samples of `name` whose labels contain every `k="v"` in `want`.
fn sum(s: &BTreeMap<String, f64>, name: &str, want: &[&str]) -> f64 {
    s.iter()
        .filter(|(k, _)| {
            let (n, labels) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name && want.iter().all(|w| labels.contains(w))
        })
        .map(|(_, v)| v)
        .sum()
}

/// Names of our metrics used in a monitoring file, histogram suffixes removed.
fn used_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let starts = rest.starts_with("sightline_") || rest.starts_with("process_");
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts && boundary {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let mut name = &rest[..end];
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(n) = name.strip_suffix(suffix) {
                    name = n;
                }
            }
            out.insert(name.to_owned());
            i += end;
        } else {
            i += 1;
        }
    }
    out
}

/// Metrics that exist only after their first occurrence (or with an NVIDIA GPU).
const ON_FIRST_OCCURRENCE: &[&str] = &[
    "sightline_api_rejections_total",
    "sightline_event_write_failures_total",
    "sightline_reconnects_total",
    "sightline_run_stalls_total",
    "sightline_frames_dropped_total",
    "sightline_notify_delivered_total",
    "sightline_notify_failures_total",
    "sightline_notify_dead_letters_total",
    "sightline_notify_delivery_seconds",
    "sightline_gpu_memory_used_bytes",
    "sightline_gpu_memory_total_bytes",
    "sightline_gpu_utilization_ratio",
    "sightline_media_pictures_total",
    "sightline_media_dropped_total",
    "sightline_janitor_deleted_total",
];

/// Whether the source of the crates records `name` (as a string literal).
fn recorded_in_source(name: &str) -> bool {
    let needle = format!("\"{name}\"");
    let needle_text = format!("{name} ");
    let crates = repo().join("crates");
    let mut stack = vec![crates];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("tests") && !p.ends_with("target") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs")
                && let Ok(s) = std::fs::read_to_string(&p)
                && (s.contains(&needle)
                    || s.contains(&needle_text)
                    || s.contains(&format!("{name}{{")))
            {
                return true;
            }
        }
    }
    false
}

struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn live_engine_metrics_and_monitoring_assets() {
    let data = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let metrics_port = free_port();
    let server_toml = data.path().join("server.toml");
    std::fs::write(
        &server_toml,
        "[notify]\npoll_interval_ms = 200\n\n[[notify.sinks]]\nname = \"broker\"\nkind = \"mqtt\"\n\
         host = \"127.0.0.1\"\nport = 1883\ntopic = \"sightline-test/{run_id}/{type}\"\nqos = 1\n",
    )
    .unwrap();
    let cmd = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
        c.current_dir(repo())
            .env("SIGHTLINE_CONFIG", &server_toml)
            .env("SIGHTLINE_DATA_DIR", data.path())
            .env("SIGHTLINE_API__BIND", format!("127.0.0.1:{api_port}"))
            .env("SIGHTLINE_ENGINE__HEARTBEAT_S", "1")
            .env("SIGHTLINE_ENGINE__LEASE_TTL_S", "4")
            .env("SIGHTLINE_ENGINE__POLL_INTERVAL_MS", "200")
            .env("SIGHTLINE_LOG__FORMAT", "text")
            .env_remove("RUST_LOG");
        c
    };
    let cli = |args: &[&str]| {
        let out = cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "sightline {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    cli(&["configs", "put", "demo", "configs/demo.toml"]);
    cli(&[
        "runs",
        "add",
        "samples/vtest.avi",
        "-c",
        "demo",
        "--id",
        "cam1",
        "--loop",
        "--pacing",
        "realtime",
    ]);

    let log = data.path().join("serve.log");
    let mut server = Server {
        child: cmd()
            .args([
                "serve",
                "--rtsp-port",
                "0",
                "--metrics-addr",
                &format!("127.0.0.1:{metrics_port}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
        log,
    };

    // Wait for frames to come out of the run.
    let t0 = Instant::now();
    let first = loop {
        if let Some((200, body)) = get(metrics_port, "/metrics")
            && sum(
                &samples(&body),
                "sightline_frames_out_total",
                &["run=\"cam1\""],
            ) > 10.0
        {
            break body;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "no frames out within 90 s; log:\n{}",
            server.log()
        );
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "server exited; log:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    // One API request so the request histogram has a sample.
    assert_eq!(get(api_port, "/health").unwrap().0, 200);
    // The metrics listener carries the orchestrator probes too (a worker has no API).
    let (status, body) = get(metrics_port, "/health").unwrap();
    assert_eq!(status, 200, "metrics listener /health: {body}");
    let (status, body) = get(metrics_port, "/ready").unwrap();
    assert_eq!(status, 200, "metrics listener /ready: {body}");
    assert!(body.contains(r#""ready":true"#), "{body}");
    std::thread::sleep(Duration::from_secs(3));
    let (status, second) = get(api_port, "/metrics").unwrap();
    assert_eq!(status, 200, "API /metrics");
    let (a, b) = (samples(&first), samples(&second));

    // Counters move.
    for name in [
        "sightline_frames_received_total",
        "sightline_frames_inferred_total",
        "sightline_frames_out_total",
    ] {
        let (x, y) = (
            sum(&a, name, &["run=\"cam1\""]),
            sum(&b, name, &["run=\"cam1\""]),
        );
        assert!(y > x, "{name} did not move: {x} → {y}");
    }
    assert!(sum(&b, "process_cpu_seconds_total", &[]) > sum(&a, "process_cpu_seconds_total", &[]));
    assert!(
        sum(
            &b,
            "sightline_model_frames_total",
            &["model=\"nanodet-m-416\""]
        ) > 0.0
    );
    // Histograms have samples, per stage.
    for stage in ["queue", "infer", "track", "rules", "draw"] {
        let n = sum(
            &b,
            "sightline_stage_latency_seconds_count",
            &["run=\"cam1\"", &format!("stage=\"{stage}\"")],
        );
        assert!(n > 0.0, "no samples for stage {stage}");
    }
    assert!(
        sum(
            &b,
            "sightline_pipeline_latency_seconds_count",
            &["run=\"cam1\""]
        ) > 0.0
    );
    assert!(
        sum(
            &b,
            "sightline_model_inference_seconds_count",
            &["model=\"nanodet-m-416\""]
        ) > 0.0
    );
    assert!(sum(&b, "sightline_model_batch_size_count", &[]) > 0.0);
    assert!(
        sum(
            &b,
            "sightline_api_request_seconds_count",
            &["route=\"/health\"", "status=\"200\""]
        ) >= 1.0
    );
    // Gauges.
    assert_eq!(
        sum(
            &b,
            "sightline_run_state",
            &["run=\"cam1\"", "state=\"running\""]
        ),
        1.0
    );
    assert_eq!(sum(&b, "sightline_run_state", &["run=\"cam1\""]), 1.0);
    assert_eq!(sum(&b, "sightline_runs", &["state=\"running\""]), 1.0);
    assert!(sum(&b, "sightline_output_fps", &["run=\"cam1\""]) > 1.0);
    assert!(sum(&b, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(sum(&b, "sightline_data_disk_total_bytes", &[]) > 0.0);
    let hb = sum(&b, "sightline_engine_heartbeat_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - hb).abs() < 10.0, "heartbeat {hb} vs now {now}");
    assert!(
        b.keys()
            .any(|k| k.starts_with("sightline_outbox_depth{") && k.contains("sink=\"broker\"")),
        "outbox depth per sink"
    );

    // Every metric the monitoring assets use exists.
    let exported = families(&second);
    let deploy = repo().join("deploy");
    for file in ["prometheus/alerts.yml", "grafana/sightline-dashboard.json"] {
        let text = std::fs::read_to_string(deploy.join(file)).unwrap();
        let used = used_names(&text);
        assert!(used.len() > 5, "{file}: too few metrics found");
        for name in used {
            if exported.contains(&name) {
                continue;
            }
            assert!(
                ON_FIRST_OCCURRENCE.contains(&name.as_str()),
                "{file} uses {name}, which the engine does not export"
            );
            assert!(
                recorded_in_source(&name),
                "{file} uses {name}, which no crate records"
            );
        }
    }

    // Graceful stop.
    let t = Instant::now();
    sigterm(&server.child);
    loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            assert!(st.success(), "exit {st:?}; log:\n{}", server.log());
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(40),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn alert_rules_pass_promtool() {
    let dir = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("promtool (Debian package `prometheus`, installed by scripts/setup)");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn metric_names_are_found_in_monitoring_text() {
    let n = used_names(
        "rate(sightline_frames_out_total[1m]) / histogram_quantile(0.9, x_sightline_no) \
         sightline_stage_latency_seconds_bucket{le=\"1\"} process_cpu_seconds_total",
    );
    let v: Vec<&str> = n.iter().map(String::as_str).collect();
    assert_eq!(
        v,
        [
            "process_cpu_seconds_total",
            "sightline_frames_out_total",
            "sightline_stage_latency_seconds"
        ]
    );
}
