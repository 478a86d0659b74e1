//! `sightline bench`: how many camera streams this machine carries.
//!
//! In one process, in this order:
//! 1. **Limits** — decode-only throughput of the clip (GStreamer, as fast as possible) and
//!    inference-only throughput of the model on decoded frames with 1, 2 and 4 clients sharing
//!    the batcher (`sightline_inference::bench`).
//! 2. **Single stream, unpaced** — one run of the clip through the whole pipeline (decode,
//!    infer, track, rules, draw, encode, RTSP) as fast as it goes; its fps over the smaller of
//!    the two limits is the pipeline's *efficiency*.
//! 3. **Ramp** — the real engine (embedded SQLite in a temporary directory, the shipped model
//!    and `configs/demo.toml`) with N runs of the clip, looped and paced like cameras (frames
//!    the pipeline cannot take in time are dropped and counted). N goes 1, 2, … `--max-streams`;
//!    each step is measured for `--seconds` after `--warmup`. A step holds the target when no
//!    stream drops more than `--max-drop` and every stream's p95 latency (decoded → encoded)
//!    is under two frame intervals plus the mean inference time. The ramp stops at the first
//!    step that misses it (`--keep-going` measures every step anyway).
//! 4. With `--baseline python`, the Python + OpenCV + onnxruntime per-frame pipeline on the
//!    same clip and model (`.venv-bench`, installed by `scripts/setup`), and the ratio of (2)
//!    to it.
//!
//! Output: a table on stdout (or JSON with `--json`), and a PNG plot with `--plot FILE`.
//! Figures depend on the machine and on what else runs on it; nothing here is a pass/fail
//! test of speed.

use super::demo::shipped;
use super::serve::{EngineArgs, prepare, run_engine, runtime};
use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use sightline_config::ServerConfig;
use sightline_core::{RunId, RunState};
use sightline_engine::{EngineShared, StatusSnapshot};
use sightline_inference::bench::{InferenceBenchOptions, InferenceBenchReport};
use sightline_store::{NewRun, SourceUri, Store};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Highest number of concurrent streams to try.
    #[arg(long, default_value_t = 8)]
    pub max_streams: usize,
    /// Measurement window per step, seconds.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Settling time before each window, seconds.
    #[arg(long, default_value_t = 4)]
    pub warmup: u64,
    /// Largest acceptable share of dropped frames per stream.
    #[arg(long, default_value_t = 0.01)]
    pub max_drop: f64,
    /// Measure every step even after one misses the target.
    #[arg(long)]
    pub keep_going: bool,
    /// Compare against a baseline: `python` (Python + OpenCV + onnxruntime per frame).
    #[arg(long)]
    pub baseline: Option<String>,
    /// The clip (default: the shipped `samples/vtest.avi`).
    #[arg(long)]
    pub clip: Option<PathBuf>,
    /// Pipeline config file (default: the shipped `configs/demo.toml`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write a PNG plot of fps and latency against N.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Throughput limits measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Limits {
    /// Decoding the clip alone, frames per second.
    pub decode_fps: f64,
    /// Pre-process + infer + decode + NMS for one frame (one client), mean ms.
    pub infer_ms: f64,
    /// Inference alone, `(clients, fps)` with the batcher shared.
    pub infer_fps: Vec<(usize, f64)>,
}

/// One step of the ramp.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub streams: usize,
    /// Output frames per second, per stream (mean, min).
    pub fps_mean: f64,
    pub fps_min: f64,
    /// The clip's own rate: what each stream should reach.
    pub source_fps: f64,
    /// Dropped ÷ (dropped + received), worst stream.
    pub drop_rate_max: f64,
    /// Decoded → encoded latency, ms: mean of the streams' p50, worst stream's p95.
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// Process CPU over the window, percent of one core.
    pub cpu_pct: f64,
    /// Process CPU ÷ frames out of all streams: what one frame costs at this load.
    pub core_ms_per_frame: f64,
    pub rss_mb: f64,
    /// GPU memory used (MB), when NVML is present.
    pub gpu_mem_mb: Option<f64>,
    /// The largest inference interval of the streams at the end of the window: above the
    /// config's, a stream degraded (inferred fewer frames) to keep up — the step does not hold.
    pub inference_interval_max: u64,
    /// Whether this step holds the target.
    pub ok: bool,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub clip: String,
    pub model: String,
    pub cores: usize,
    /// `model.interval` of the config: every k-th frame is inferred.
    pub inference_interval: u32,
    pub limits: Limits,
    /// One stream through the whole pipeline as fast as it goes, fps.
    pub single_stream_fps: f64,
    /// Process CPU while it ran, percent of one core.
    pub single_stream_cpu_pct: f64,
    /// The most `efficiency` can be on these cores: 1 − (what the stages other than
    /// inference cost per frame, from `stages`) ÷ (what a frame of the unpaced stream cost).
    /// Inference alone can fill every core; the pipeline then needs the same cores for
    /// decoding, drawing and encoding too. Meaningful when the unpaced stream keeps every
    /// core busy (`single_stream_cpu_pct` ≈ cores × 100).
    pub efficiency_ceiling: Option<f64>,
    /// `single_stream_fps` ÷ min(decode, inference with one client × `inference_interval`).
    pub efficiency: f64,
    /// Output frames per second of all streams at the largest N that held the target,
    /// ÷ min(decode, best batched inference): how much of the machine's limit the engine
    /// turns into real-time streams.
    pub ramp_efficiency: Option<f64>,
    /// p95 target, ms: 2 frame intervals + mean inference time.
    pub target_p95_ms: f64,
    pub steps: Vec<Step>,
    /// The largest N that held the target (0: not even one).
    pub max_streams_ok: usize,
    pub python: Option<PythonComparison>,
    /// Where one stream's CPU goes, per frame (one stream paced like a camera).
    pub stages: Option<StageCosts>,
    /// What the cores could carry at the cost per frame of the largest step that kept the
    /// configured interval (the last step when none did).
    pub cpu_ceiling: Option<CpuCeiling>,
}

/// The most frames the machine's cores could carry with no core ever idle, at the CPU cost
/// per frame measured under the most load (the ramp's largest step that did not degrade: a
/// degraded step infers fewer frames, so its frames cost less): no number of streams
/// above `streams` can hold, whatever the scheduling (a goal above it is out of reach on this
/// machine; one just under it needs every core busy all the time).
#[derive(Debug, Clone, Serialize)]
pub struct CpuCeiling {
    /// The step the cost was measured at.
    pub at_streams: usize,
    pub core_ms_per_frame: f64,
    /// `cores × 1000 ÷ core_ms_per_frame`.
    pub fps: f64,
    /// `fps` ÷ the clip's frame rate.
    pub streams: f64,
}

/// Core-milliseconds per frame by stage, averaged over every frame of the first ramp step (one
/// stream paced like a camera; a stage that runs on some frames only is spread over all of
/// them).
#[derive(Debug, Clone, Serialize)]
pub struct StageCosts {
    /// `[output].frame_format` of the config.
    pub frame_format: String,
    pub frames: u64,
    /// Share of frames that went through inference.
    pub inferred_share: f64,
    /// Decoding (and, with `rgb`, the I420 → RGB conversion after it): the decode-only run.
    pub decode_ms: f64,
    /// The motion gate's decisions (`[model.motion_gate]`; 0 when off): run thread.
    pub gate_ms: f64,
    /// I420 → RGB for the frames the stages read (`i420` only): run thread.
    pub convert_ms: f64,
    /// Pre-process, session and post-process: what remains of the stream's process CPU once
    /// the other rows are taken out (the session's threads are not timed one by one).
    pub infer_ms: f64,
    /// Wall time of one inference request on the run thread (inferred frames only).
    pub infer_wall_ms: f64,
    pub track_ms: f64,
    pub secondary_ms: f64,
    pub rules_ms: f64,
    pub draw_ms: f64,
    pub pictures_ms: f64,
    /// Events, frame taps, handing the frame to the encoder.
    pub rest_ms: f64,
    /// `x264enc` (after RGB → I420 with `rgb`): the encode-only run.
    pub encode_ms: f64,
    /// The process's CPU over the window ÷ the stream's frames.
    pub total_ms: f64,
    /// The same CPU by thread (name with digits dropped), core-ms per frame, largest first.
    pub threads: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PythonComparison {
    /// The Python per-frame pipeline, fps (its own timing; see its script): the median of
    /// `python_runs_fps`, runs made alone one after the other.
    pub python_fps: f64,
    pub python_runs_fps: Vec<f64>,
    pub onnxruntime: String,
    pub opencv: String,
    /// `single_stream_fps` ÷ `python_fps`.
    pub ratio: f64,
    /// Our inference path alone ÷ `python_fps` (same work as the script times).
    pub inference_ratio: Option<f64>,
}

pub fn main(server: &ServerConfig, a: BenchArgs) -> anyhow::Result<ExitCode> {
    if a.max_streams == 0 || a.seconds == 0 {
        bail!("--max-streams and --seconds must be at least 1");
    }
    if let Some(b) = &a.baseline
        && b != "python"
    {
        bail!("--baseline: unknown baseline {b:?} (python)");
    }
    let clip = match &a.clip {
        Some(c) => std::path::absolute(c)?,
        None => shipped("samples/vtest.avi")
            .context("samples/vtest.avi not found (run from the repository, or pass --clip)")?,
    };
    if !clip.is_file() {
        bail!("--clip: {} is not a file", clip.display());
    }
    let config = match &a.config {
        Some(c) => c.clone(),
        None => shipped("configs/demo.toml").context("configs/demo.toml not found")?,
    };
    let repo = shipped("models")
        .and_then(|m| m.parent().map(Path::to_path_buf))
        .context("the shipped models/ folder was not found")?;

    let step_s = a.warmup + a.seconds;
    let total = 2 * a.seconds + step_s * a.max_streams as u64 + 20;
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    // 1. Limits.
    let pipeline = sightline_config::PipelineConfig::from_file(&config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    let yuv = pipeline.output.frame_format == sightline_config::FrameFormat::I420;
    bar.set_message("decode-only limit");
    sightline_media::init().context("GStreamer")?;
    let (decode_fps, source_fps, decode_core_ms) =
        decode_only_fps(&clip, Duration::from_secs(a.seconds), yuv)?;
    bar.set_message("encode cost");
    let encode_ms = encode_core_ms(&clip, yuv, source_fps, &pipeline.output)?;
    bar.inc(a.seconds);
    bar.set_message("inference-only limit");
    let mut iopts = InferenceBenchOptions::for_repo(&repo)?;
    // The limits are those of the model the config runs (registered or built-in).
    sightline_inference::init_runtime(server.inference.library_path.as_deref())?;
    let model = sightline_inference::Registry::open(server.data_dir.join("models"))?
        .get(&pipeline.model.name)
        .with_context(|| format!("the config's model {:?}", pipeline.model.name))?;
    let sightline_inference::Manifest::Detect(manifest) = model.manifest else {
        bail!(
            "{}: the config's model is not a detector",
            pipeline.model.name
        );
    };
    iopts.onnx = model.onnx_path;
    iopts.manifest = manifest;
    iopts.video = clip.clone();
    iopts.frames = 40;
    iopts.concurrency = vec![1, 2, 4];
    if a.baseline.is_none() {
        iopts.python = None;
    } else if iopts.python.is_none() {
        bail!(
            "--baseline python needs the Python environment .venv-bench (run scripts/setup without SIGHTLINE_SKIP_PY)"
        );
    }
    let inf: InferenceBenchReport = sightline_inference::bench::run_inference_bench(&iopts)?;
    bar.inc(a.seconds);
    let limits = Limits {
        decode_fps,
        infer_ms: inf.full_infer.mean_ms,
        infer_fps: inf.concurrent.iter().map(|c| (c.clients, c.fps)).collect(),
    };
    let infer_1 = limits
        .infer_fps
        .first()
        .map_or(inf.full_infer.fps, |(_, f)| *f);
    let infer_best = limits
        .infer_fps
        .iter()
        .map(|(_, f)| *f)
        .fold(infer_1, f64::max);
    // With `model.interval = k` only every k-th frame is inferred: the frame-rate limit
    // that inference sets is k times its own.
    let interval = pipeline.model.interval.max(1);
    let (infer_1, infer_best) = (
        infer_1 * f64::from(interval),
        infer_best * f64::from(interval),
    );

    // 2 and 3 on the real engine.
    let dir = tempfile::tempdir().context("temporary directory")?;
    let mut server = server.clone();
    server.data_dir = dir.path().to_path_buf();
    server.database_url = None;
    server.engine.max_runs = a.max_streams as u32 + 1;
    let rt = runtime()?;
    let ((single_stream_fps, single_stream_cpu_pct), steps, single) = rt.block_on(async {
        let p = prepare(
            &server,
            &EngineArgs {
                max_runs: None,
                rtsp_port: Some(0),
                metrics_addr: None,
                insecure: false,
                api: false,
            },
        )
        .await?;
        let version = super::runs::put_config_file(&p.store, "bench", &config).await?;
        let ctx = RampCtx {
            store: p.store.clone(),
            shared: p.shared.clone(),
            metrics: p.metrics.clone(),
            clip: clip.clone(),
            version,
            source_fps,
        };
        let stop = Arc::new(tokio::sync::Notify::new());
        let engine = tokio::spawn(run_engine(p, Some(stop.clone())));
        let r = ramp(&a, &ctx, &bar).await;
        stop.notify_one();
        let _ = engine.await;
        r
    })?;
    bar.finish_and_clear();

    let target_p95_ms = 2000.0 / source_fps + limits.infer_ms;
    let mut steps = steps;
    for s in &mut steps {
        s.ok = s.drop_rate_max <= a.max_drop
            && s.latency_p95_ms < target_p95_ms
            && s.fps_min >= 0.9 * source_fps
            && s.inference_interval_max <= u64::from(interval);
    }
    let max_streams_ok = steps.iter().take_while(|s| s.ok).count();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // At the largest step that kept the configured interval (a degraded step infers less).
    let cpu_ceiling = steps
        .iter()
        .rev()
        .find(|s| s.inference_interval_max <= u64::from(interval))
        .or(steps.last())
        .map(|s| {
            let cost = s.core_ms_per_frame.max(1e-9);
            CpuCeiling {
                at_streams: s.streams,
                core_ms_per_frame: s.core_ms_per_frame,
                fps: cores as f64 * 1000.0 / cost,
                streams: cores as f64 * 1000.0 / cost / source_fps,
            }
        });
    let stages = single.map(|(sums, cpu_s, threads)| {
        let n = sums.frames.max(1) as f64;
        let run_thread = (sums.gate_ms
            + sums.convert_ms
            + sums.track_ms
            + sums.secondary_ms
            + sums.rules_ms
            + sums.draw_ms
            + sums.pictures_ms
            + sums.rest_ms)
            / n;
        let total = cpu_s * 1000.0 / n;
        StageCosts {
            frame_format: if yuv { "i420" } else { "rgb" }.to_owned(),
            frames: sums.frames,
            inferred_share: sums.inferred as f64 / n,
            decode_ms: decode_core_ms,
            gate_ms: sums.gate_ms / n,
            convert_ms: sums.convert_ms / n,
            infer_wall_ms: sums.infer_ms / sums.inferred.max(1) as f64,
            infer_ms: (total - decode_core_ms - encode_ms - run_thread).max(0.0),
            track_ms: sums.track_ms / n,
            secondary_ms: sums.secondary_ms / n,
            rules_ms: sums.rules_ms / n,
            draw_ms: sums.draw_ms / n,
            pictures_ms: sums.pictures_ms / n,
            rest_ms: sums.rest_ms / n,
            encode_ms,
            total_ms: total,
            threads: threads
                .into_iter()
                .take(12)
                .map(|(name, cpu)| (name, cpu * 1000.0 / n))
                .collect(),
        }
    });
    let limit_1 = decode_fps.min(infer_1);
    let efficiency_ceiling = stages.as_ref().map(|c| {
        let frame_cost = single_stream_cpu_pct * 10.0 / single_stream_fps.max(1e-9);
        let other = (c.total_ms - c.infer_ms).max(0.0);
        (1.0 - other / frame_cost.max(1e-9)).clamp(0.0, 1.0)
    });
    let ramp_efficiency = (max_streams_ok > 0).then(|| {
        let s = &steps[max_streams_ok - 1];
        s.fps_mean * s.streams as f64 / decode_fps.min(infer_best)
    });
    let python = inf.python.as_ref().map(|py| PythonComparison {
        python_fps: py.fps,
        python_runs_fps: py.runs_fps.clone(),
        onnxruntime: py.onnxruntime.clone(),
        opencv: py.opencv.clone(),
        ratio: single_stream_fps / py.fps,
        inference_ratio: inf.speedup_vs_python,
    });
    let report = BenchReport {
        clip: clip.display().to_string(),
        model: inf.model.clone(),
        cores,
        inference_interval: interval,
        limits,
        single_stream_fps,
        single_stream_cpu_pct,
        efficiency_ceiling,
        efficiency: single_stream_fps / limit_1,
        ramp_efficiency,
        target_p95_ms,
        steps,
        max_streams_ok,
        python,
        stages,
        cpu_ceiling,
    };
    if let Some(p) = &a.plot {
        plot(&report, p).with_context(|| format!("plot {}", p.display()))?;
    }
    if a.json {
        super::say(&serde_json::to_string_pretty(&report)?);
    } else {
        super::say(&table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Frames per second decoding the clip with nothing else to do (looped if it is short), and
/// the clip's own frame rate (25 when the stream does not say).
fn decode_only_fps(clip: &Path, budget: Duration, yuv: bool) -> anyhow::Result<(f64, f64, f64)> {
    use sightline_media::{Pacing, Source, SourceEvent, SourceOptions};
    let mut o = SourceOptions::new(format!("file://{}", clip.display())).with_pacing(Pacing::Fast);
    o.loop_file = true;
    o.yuv = yuv;
    let src = Source::open(o)?;
    let (cpu0, _) = crate::metrics::process_usage();
    let t0 = Instant::now();
    let mut n = 0u64;
    while t0.elapsed() < budget {
        match src.next(Duration::from_secs(5)) {
            SourceEvent::Frame(_) => n += 1,
            SourceEvent::Idle => {}
            SourceEvent::Eos => break,
            SourceEvent::Lost(e) => bail!("decoding {}: {e}", clip.display()),
            SourceEvent::Error(e) => bail!("decoding {}: {e}", clip.display()),
        }
    }
    let fps = n as f64 / t0.elapsed().as_secs_f64();
    let (cpu1, _) = crate::metrics::process_usage();
    let source_fps = src.info().fps.unwrap_or(25.0);
    src.close();
    Ok((fps, source_fps, (cpu1 - cpu0) * 1000.0 / n.max(1) as f64))
}

/// CPU seconds of this process's threads so far, grouped by thread name with digits
/// dropped (`infer-nanodet-m-416-0` and `-1` are one group; GStreamer names its streaming
/// threads after their element), from `/proc/self/task/*/stat`.
fn thread_cpu() -> HashMap<String, f64> {
    let mut out = HashMap::new();
    // /proc reports times in USER_HZ, which Linux fixes at 100 for user space on every ABI.
    let tick = 100.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // `tid (comm) state ppid … utime stime …`: comm may hold spaces; fields after it.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = thread_group(&stat[open + 1..close]);
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // After the comm: state(0) ppid(1) … utime(11) stime(12).
        *out.entry(name).or_insert(0.0) += (ticks(11) + ticks(12)) / tick;
    }
    out
}

/// The group a thread's name (as the kernel keeps it: 15 bytes at most) counts in: digits
/// dropped and trailing separators trimmed, so `x264enc:src` of every stream and
/// `run-bench-3`, `run-bench-12` add up under one name.
fn thread_group(comm: &str) -> String {
    let name: String = comm.chars().filter(|c| !c.is_ascii_digit()).collect();
    name.trim_end_matches(['-', ':', '_']).to_owned()
}

/// Core-milliseconds per frame the encoder (`x264enc`, after `videoconvert` RGB → I420 for
/// RGB frames, and `videoscale` when the config scales the output) spends on the clip's frames: 40 frames decoded first, pushed 3 times over
/// into an output with nothing else running; the copies made to push them are timed and
/// taken out.
fn encode_core_ms(
    clip: &Path,
    yuv: bool,
    fps: f64,
    output: &sightline_config::OutputSection,
) -> anyhow::Result<f64> {
    use sightline_media::{Output, OutputOptions, Pacing, Source, SourceEvent, SourceOptions};
    let mut o = SourceOptions::new(format!("file://{}", clip.display())).with_pacing(Pacing::Fast);
    o.loop_file = true;
    o.yuv = yuv;
    let src = Source::open(o)?;
    let mut frames = Vec::new();
    while frames.len() < 40 {
        match src.next(Duration::from_secs(5)) {
            SourceEvent::Frame(f) => frames.push(f),
            SourceEvent::Idle => {}
            other => bail!("decoding {}: {other:?}", clip.display()),
        }
    }
    src.close();
    let (w, h) = (frames[0].width, frames[0].height);
    // Scaled like the run's output when the config sets `output.height`.
    let (w, h) = sightline_engine::run::output_size(w, h, output.height);
    let mut opts = OutputOptions::new(w, h, fps);
    opts.bitrate_kbps = output.bitrate_kbps;
    let out = Output::start(opts)?;
    let (mut copying, mut n) = (Duration::ZERO, 0u64);
    let (cpu0, _) = crate::metrics::process_usage();
    for round in 0..3u64 {
        for (i, f) in frames.iter().enumerate() {
            let t = Instant::now();
            let mut f = f.clone();
            copying += t.elapsed();
            f.pts = sightline_core::Pts::from_nanos(
                ((round * frames.len() as u64 + i as u64) as f64 * 1e9 / fps) as i64,
            );
            out.push(f)?;
            n += 1;
        }
    }
    out.finish()?;
    let (cpu1, _) = crate::metrics::process_usage();
    Ok(((cpu1 - cpu0) - copying.as_secs_f64()) * 1000.0 / n as f64)
}

async fn add_run(
    store: &Store,
    id: &RunId,
    clip: &Path,
    version: i64,
    pacing: &str,
) -> anyhow::Result<()> {
    store
        .create_run(NewRun {
            id: Some(id.clone()),
            source: SourceUri::new(format!("file://{}", clip.display()))?,
            config_name: "bench".into(),
            config_version: Some(version),
            models: vec![],
            output: serde_json::json!({"loop": true, "pacing": pacing}),
        })
        .await?;
    Ok(())
}

/// Waits until the run is running with frames coming out (or gives up with its error).
async fn wait_running(
    store: &Store,
    shared: &EngineShared,
    id: &RunId,
) -> anyhow::Result<StatusSnapshot> {
    let t0 = Instant::now();
    loop {
        if let Some(s) = shared.status(id)
            && s.state == RunState::Running
            && s.frames_out > 0
        {
            return Ok(s);
        }
        if let Ok(r) = store.get_run(id).await
            && r.state.is_terminal()
        {
            bail!(
                "run {id} ended {}: {}",
                r.state,
                r.last_error
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .unwrap_or_default()
            );
        }
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("run {id} did not start within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the ramp works with: the engine's store and live view, the clip and its config.
struct RampCtx {
    store: Store,
    shared: Arc<EngineShared>,
    metrics: Arc<crate::metrics::Metrics>,
    clip: PathBuf,
    version: i64,
    source_fps: f64,
}

type SingleStages = Option<(sightline_engine::StageSums, f64, Vec<(String, f64)>)>;

async fn ramp(
    a: &BenchArgs,
    ctx: &RampCtx,
    bar: &ProgressBar,
) -> anyhow::Result<((f64, f64), Vec<Step>, SingleStages)> {
    let (store, shared, clip) = (&ctx.store, ctx.shared.as_ref(), ctx.clip.as_path());
    let (version, source_fps) = (ctx.version, ctx.source_fps);
    // 2. One stream, unpaced.
    bar.set_message("one stream, unpaced");
    let fast = RunId::parse("bench-fast").map_err(anyhow::Error::msg)?;
    add_run(store, &fast, clip, version, "fast").await?;
    wait_running(store, shared, &fast).await?;
    tokio::time::sleep(Duration::from_secs(a.warmup.min(2))).await;
    let before = shared.status(&fast).context("run vanished")?;
    let (cpu0, _) = crate::metrics::process_usage();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let after = shared.status(&fast).context("run vanished")?;
    let (cpu1, _) = crate::metrics::process_usage();
    let dt = t0.elapsed().as_secs_f64();
    let single = (
        (after.frames_out - before.frames_out) as f64 / dt,
        (cpu1 - cpu0) / dt * 100.0,
    );
    let mut stages = None;
    store.request_stop(&fast).await?;
    wait_gone(shared, &fast).await;
    bar.inc(a.seconds + 2);

    // 3. The ramp.
    let mut steps = Vec::new();
    let mut ids: Vec<RunId> = Vec::new();
    for n in 1..=a.max_streams {
        bar.set_message(format!("{n} stream(s)"));
        let id = RunId::parse(&format!("bench-{n}")).map_err(anyhow::Error::msg)?;
        add_run(store, &id, clip, version, "live").await?;
        wait_running(store, shared, &id).await?;
        ids.push(id);
        tokio::time::sleep(Duration::from_secs(a.warmup)).await;
        let before: HashMap<RunId, StatusSnapshot> = ids
            .iter()
            .filter_map(|i| Some((i.clone(), shared.status(i)?)))
            .collect();
        // Stage costs come from the one paced stream: with cores to spare, a stage's wall
        // time on the run thread is its CPU time (unpaced, the threads preempt each other).
        let sums = || shared.run_view(&ids[0]).map(|v| v.status.stages.sums());
        let sums0 = sums();
        let threads0 = thread_cpu();
        let (cpu0, _) = crate::metrics::process_usage();
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(a.seconds)).await;
        let dt = t0.elapsed().as_secs_f64();
        let (cpu1, rss) = crate::metrics::process_usage();
        if n == 1 {
            let mut threads: Vec<(String, f64)> = thread_cpu()
                .into_iter()
                .map(|(k, v)| {
                    let d = v - threads0.get(&k).copied().unwrap_or(0.0);
                    (k, d)
                })
                .filter(|(_, d)| *d > 0.0)
                .collect();
            threads.sort_by(|a, b| b.1.total_cmp(&a.1));
            stages = sums0
                .zip(sums())
                .map(|(b, e)| (e.since(&b), cpu1 - cpu0, threads));
        }
        let mut fps = Vec::new();
        let mut drops = Vec::new();
        let mut p50 = Vec::new();
        let mut p95 = Vec::new();
        let mut interval_max = 0u64;
        for i in &ids {
            let (Some(b), Some(e)) = (before.get(i), shared.status(i)) else {
                bail!("run {i} stopped during the bench");
            };
            fps.push((e.frames_out - b.frames_out) as f64 / dt);
            let dropped = (e.frames_dropped - b.frames_dropped) as f64;
            let received = (e.frames_in - b.frames_in) as f64;
            drops.push(dropped / (dropped + received).max(1.0));
            p50.push(e.latency_ms_p50);
            p95.push(e.latency_ms_p95);
            interval_max = interval_max.max(e.inference_interval);
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
        let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        steps.push(Step {
            streams: n,
            fps_mean: mean(&fps),
            fps_min: fps.iter().copied().fold(f64::INFINITY, f64::min),
            source_fps,
            drop_rate_max: max(&drops),
            latency_p50_ms: mean(&p50),
            latency_p95_ms: max(&p95),
            cpu_pct: (cpu1 - cpu0) / dt * 100.0,
            core_ms_per_frame: (cpu1 - cpu0) * 1000.0 / (fps.iter().sum::<f64>() * dt).max(1.0),
            rss_mb: rss as f64 / 1e6,
            gpu_mem_mb: ctx.metrics.gpu_memory_used().map(|b| b as f64 / 1e6),
            inference_interval_max: interval_max,
            ok: true, // decided by the caller, which knows the inference time
        });
        bar.inc(a.warmup + a.seconds);
        let last = &steps[steps.len() - 1];
        let behind = last.drop_rate_max > a.max_drop || last.fps_min < 0.9 * source_fps;
        if behind && !a.keep_going {
            break;
        }
    }
    for i in &ids {
        let _ = store.request_stop(i).await;
    }
    Ok((single, steps, stages))
}

/// Waits until the run is gone from the engine and its thread (`run-{id}`, as much of the
/// name as Linux keeps) has exited, so that its last frames do not count in the next step.
async fn wait_gone(shared: &EngineShared, id: &RunId) {
    let t0 = Instant::now();
    let comm: String = format!("run-{id}").chars().take(15).collect();
    let thread = thread_group(&comm);
    while (shared.status(id).is_some() || thread_cpu().contains_key(&thread))
        && t0.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn table(r: &BenchReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "sightline bench — {} — model {} every {} frame(s) — {} cores",
        r.clip, r.model, r.inference_interval, r.cores
    );
    let _ = writeln!(
        s,
        "limits: decode-only {:.1} fps; inference-only {} ({:.1} ms/frame, one client)",
        r.limits.decode_fps,
        r.limits
            .infer_fps
            .iter()
            .map(|(c, f)| format!("{f:.1} fps × {c} client(s)"))
            .collect::<Vec<_>>()
            .join(", "),
        r.limits.infer_ms
    );
    let _ = writeln!(
        s,
        "one stream unpaced: {:.1} fps = {:.2} of the limit (efficiency), {:.0} % CPU{}",
        r.single_stream_fps,
        r.efficiency,
        r.single_stream_cpu_pct,
        r.efficiency_ceiling
            .map(|c| format!(
                "; the stages besides inference leave it at most {c:.2} with every core busy"
            ))
            .unwrap_or_default()
    );
    if let Some(py) = &r.python {
        let _ = writeln!(
            s,
            "python baseline (onnxruntime {}, opencv {}): {:.1} fps (median of {:.1?}); sightline one stream ÷ python = {:.2}{}",
            py.onnxruntime,
            py.opencv,
            py.python_fps,
            py.python_runs_fps,
            py.ratio,
            py.inference_ratio
                .map(|x| format!(", inference path ÷ python = {x:.2}"))
                .unwrap_or_default()
        );
    }
    if let Some(c) = &r.stages {
        let _ = writeln!(
            s,
            "\nwhere one stream's CPU goes (core-ms per frame, averaged over all frames; frames {}, {:.0} % inferred, frame format {}):",
            c.frames,
            c.inferred_share * 100.0,
            c.frame_format
        );
        let _ = writeln!(
            s,
            "| decode | motion gate | convert | infer | track | secondary | rules | draw | pictures | events+taps+push | encode | total (process) |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|");
        let _ = writeln!(
            s,
            "| {:.2} | {:.2} | {:.2} | {:.2} ({:.1} ms wall each) | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            c.decode_ms,
            c.gate_ms,
            c.convert_ms,
            c.infer_ms,
            c.infer_wall_ms,
            c.track_ms,
            c.secondary_ms,
            c.rules_ms,
            c.draw_ms,
            c.pictures_ms,
            c.rest_ms,
            c.encode_ms,
            c.total_ms
        );
        let _ = writeln!(
            s,
            "by thread (core-ms per frame): {}\n",
            c.threads
                .iter()
                .map(|(n, ms)| format!("{n} {ms:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(
        s,
        "target: drops ≤ 1 %, p95 < {:.0} ms (2 frame intervals + inference), ≥ 90 % of {:.1} fps\n",
        r.target_p95_ms,
        r.steps.first().map_or(0.0, |x| x.source_fps)
    );
    let _ = writeln!(
        s,
        "| N | fps/stream (mean, min) | drops (worst) | p50 ms | p95 ms (worst) | CPU % | RSS MB | interval (max) |{} ok |",
        if r.steps.iter().any(|x| x.gpu_mem_mb.is_some()) {
            " GPU MB |"
        } else {
            ""
        }
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for x in &r.steps {
        let _ = writeln!(
            s,
            "| {} | {:.1}, {:.1} | {:.1} % | {:.0} | {:.0} | {:.0} | {:.0} | {} |{} {} |",
            x.streams,
            x.fps_mean,
            x.fps_min,
            x.drop_rate_max * 100.0,
            x.latency_p50_ms,
            x.latency_p95_ms,
            x.cpu_pct,
            x.rss_mb,
            x.inference_interval_max,
            x.gpu_mem_mb
                .map(|g| format!(" {g:.0} |"))
                .unwrap_or_default(),
            if x.ok { "yes" } else { "no" }
        );
    }
    if let Some(c) = &r.cpu_ceiling {
        let _ = writeln!(
            s,
            "\nCPU ceiling: at N = {} a frame costs {:.1} core-ms → {} cores carry at most {:.0} fps = {:.1} streams at the clip's rate, with no core ever idle",
            c.at_streams, c.core_ms_per_frame, r.cores, c.fps, c.streams
        );
    }
    let _ = write!(
        s,
        "\nmax streams holding the target: {}{}",
        r.max_streams_ok,
        r.ramp_efficiency
            .map(|e| format!(" (ramp efficiency {e:.2} of the decode/inference limit)"))
            .unwrap_or_default()
    );
    s
}

/// Two panels: fps per stream and latency p50/p95 against N.
fn plot(r: &BenchReport, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        sightline_overlay::font_data(),
    )
    .map_err(|_| anyhow::anyhow!("font"))?;
    let root = BitMapBackend::new(path, (1000, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(500);
    let n_max = r.steps.len().max(1) as f64 + 0.5;
    let source = r.steps.first().map_or(25.0, |s| s.source_fps);
    let fps_max = r.steps.iter().map(|s| s.fps_mean).fold(source, f64::max) * 1.15;
    let mut c = ChartBuilder::on(&left)
        .caption("fps per stream", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(0.5..n_max, 0.0..fps_max)?;
    c.configure_mesh().x_desc("streams").y_desc("fps").draw()?;
    c.draw_series(LineSeries::new(
        r.steps.iter().map(|s| (s.streams as f64, s.fps_mean)),
        BLUE.stroke_width(2),
    ))?
    .label("mean")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE));
    c.draw_series(LineSeries::new(
        r.steps.iter().map(|s| (s.streams as f64, s.fps_min)),
        CYAN.stroke_width(2),
    ))?
    .label("min")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], CYAN));
    c.draw_series(LineSeries::new(
        [(0.5, source), (n_max, source)],
        BLACK.mix(0.4),
    ))?
    .label("source")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;

    let lat_max = r
        .steps
        .iter()
        .map(|s| s.latency_p95_ms)
        .fold(r.target_p95_ms, f64::max)
        * 1.15;
    let mut c = ChartBuilder::on(&right)
        .caption("latency, decoded → encoded", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..n_max, 0.0..lat_max)?;
    c.configure_mesh().x_desc("streams").y_desc("ms").draw()?;
    c.draw_series(LineSeries::new(
        r.steps.iter().map(|s| (s.streams as f64, s.latency_p50_ms)),
        GREEN.stroke_width(2),
    ))?
    .label("p50")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GREEN));
    c.draw_series(LineSeries::new(
        r.steps.iter().map(|s| (s.streams as f64, s.latency_p95_ms)),
        RED.stroke_width(2),
    ))?
    .label("p95")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED));
    c.draw_series(LineSeries::new(
        [(0.5, r.target_p95_ms), (n_max, r.target_p95_ms)],
        BLACK.mix(0.4),
    ))?
    .label("p95 target")
    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLACK.mix(0.4)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
