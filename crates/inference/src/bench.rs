//! Measuring the inference path against its limits, for `sightline bench` and the README.
//!
//! Four figures on the same decoded frames of the sample clip, on this machine:
//! (a) the bare ONNX Runtime session call per frame — the floor; (b) our full path
//! (pre-process + queue + run + decode + NMS) per frame, and its overhead over (a);
//! (c) the Python pipeline a user would write (onnxruntime + OpenCV + the reference decoder),
//! run as a subprocess, and our throughput divided by its; (d) throughput with 1, 2 and 4
//! clients sharing the model through the batcher.
//!
//! Frames are decoded once, up front, by an `ffmpeg` subprocess (this crate must not link
//! GStreamer), so decoding is in none of the timings. (a) and (b) alternate frame by frame so
//! that load from other processes affects both alike.

use crate::error::InferError;
use crate::manifest::{Family, ModelManifest};
use crate::model::{DetectOptions, SharedModel};
use crate::preprocess::Preprocessor;
use crate::runtime::RuntimeOptions;
use crate::session::ModelSession;
use serde::{Deserialize, Serialize};
use sightline_core::{Frame, Pts};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Python baseline to run (skipped when `None` or when the interpreter is missing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonBaseline {
    pub interpreter: PathBuf,
    pub script: PathBuf,
}

/// What to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InferenceBenchOptions {
    pub video: PathBuf,
    /// Frames decoded from the start of the clip and timed.
    pub frames: usize,
    /// Untimed runs first (allocations, caches).
    pub warmup: usize,
    pub onnx: PathBuf,
    pub manifest: ModelManifest,
    pub runtime: RuntimeOptions,
    pub python: Option<PythonBaseline>,
    /// Client counts for (d).
    pub concurrency: Vec<usize>,
}

impl InferenceBenchOptions {
    /// The defaults for a checkout at `repo`: NanoDet on `samples/vtest.avi`, 100 frames,
    /// the Python baseline from `.venv-bench/` when present.
    pub fn for_repo(repo: &Path) -> Result<Self, InferError> {
        let model_dir = repo.join("models").join(crate::registry::DEFAULT_MODEL);
        let manifest = ModelManifest::from_path(&model_dir.join("manifest.toml"))?;
        let interpreter = repo.join(".venv-bench/bin/python");
        let script = repo.join("crates/inference/bench/python_baseline.py");
        Ok(InferenceBenchOptions {
            video: repo.join("samples/vtest.avi"),
            frames: 100,
            warmup: 5,
            onnx: model_dir.join("model.onnx"),
            manifest,
            runtime: RuntimeOptions::default(),
            python: (interpreter.exists() && script.is_file()).then_some(PythonBaseline {
                interpreter,
                script,
            }),
            concurrency: vec![1, 2, 4],
        })
    }
}

/// Per-frame latency summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timing {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// 1000 / mean.
    pub fps: f64,
}

impl Timing {
    fn from(samples: &[Duration]) -> Timing {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        let pct = |p: f64| {
            ms.get(((ms.len() as f64 - 1.0) * p).round() as usize)
                .copied()
                .unwrap_or(0.0)
        };
        Timing {
            mean_ms: mean,
            p50_ms: pct(0.5),
            p95_ms: pct(0.95),
            fps: if mean > 0.0 { 1e3 / mean } else { 0.0 },
        }
    }
}

/// The Python baseline's own report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonTiming {
    pub frames: usize,
    pub ms_per_frame: f64,
    /// Of which inside `session.run`.
    #[serde(default)]
    pub session_ms_per_frame: f64,
    pub fps: f64,
    pub detections: usize,
    pub onnxruntime: String,
    pub opencv: String,
    /// Frames per second of each of the [`PYTHON_RUNS`] runs, in order; the others fields
    /// are those of the median run.
    #[serde(default)]
    pub runs_fps: Vec<f64>,
}

/// The Python baseline is run this many times, alone, one after the other; the median run is
/// reported (a single run was seen 2× off when something else woke up on the machine).
pub const PYTHON_RUNS: usize = 3;

/// Throughput with several clients sharing the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConcurrencyResult {
    pub clients: usize,
    pub frames: u64,
    pub seconds: f64,
    pub fps: f64,
    /// Requests per session call (1 when the batch dimension is fixed).
    pub mean_batch: f64,
    pub dropped: u64,
}

/// Everything measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InferenceBenchReport {
    pub model: String,
    pub provider: String,
    pub intra_threads: usize,
    pub frame_width: u32,
    pub frame_height: u32,
    pub frames: usize,
    pub dynamic_batch: bool,
    /// (a) bare session call.
    pub raw_session: Timing,
    /// (b) submit + wait: pre-process, queue, run, decode, NMS.
    pub full_infer: Timing,
    /// (b) over (a), percent.
    pub overhead_pct: f64,
    /// Pre-processing alone (part of (b)).
    pub preprocess: Timing,
    /// Detections per frame, on average, in (b).
    pub detections_per_frame: f64,
    /// (c)
    pub python: Option<PythonTiming>,
    /// Why (c) is missing.
    pub python_error: Option<String>,
    /// (b) throughput ÷ (c) throughput.
    pub speedup_vs_python: Option<f64>,
    /// One client keeping two frames in flight (the next frame is pre-processed while the
    /// current one runs), as a run's pipeline does: frames per second.
    pub pipelined_fps: f64,
    /// `pipelined_fps` ÷ (c) throughput.
    pub pipelined_speedup_vs_python: Option<f64>,
    /// (d)
    pub concurrent: Vec<ConcurrencyResult>,
}

impl InferenceBenchReport {
    /// The README table.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "{} on {} frames of {}x{}, provider {}, {} intra-op threads, batch dimension {}\n\n",
            self.model,
            self.frames,
            self.frame_width,
            self.frame_height,
            self.provider,
            self.intra_threads,
            if self.dynamic_batch {
                "dynamic"
            } else {
                "fixed (1)"
            }
        );
        s.push_str("| measure | ms/frame (mean) | p50 | p95 | frames/s |\n|---|---|---|---|---|\n");
        let row = |name: &str, t: &Timing| {
            format!(
                "| {name} | {:.2} | {:.2} | {:.2} | {:.1} |\n",
                t.mean_ms, t.p50_ms, t.p95_ms, t.fps
            )
        };
        s.push_str(&row("(a) raw ORT session.run", &self.raw_session));
        s.push_str(&row("(b) full infer (pre + run + post)", &self.full_infer));
        s.push_str(&row("    of which pre-processing", &self.preprocess));
        s.push_str(&format!(
            "| (b') one stream, two frames in flight | | | | {:.1} |\n",
            self.pipelined_fps
        ));
        if let Some(p) = &self.python {
            s.push_str(&format!(
                "| (c) Python baseline (onnxruntime {} + OpenCV {}) | {:.2} | | | {:.1} |\n",
                p.onnxruntime, p.opencv, p.ms_per_frame, p.fps
            ));
            s.push_str(&format!(
                "|     of which its session.run | {:.2} | | | |\n",
                p.session_ms_per_frame
            ));
        }
        s.push_str(&format!(
            "\nOverhead (b) over (a): {:.1} %\n",
            self.overhead_pct
        ));
        match (self.speedup_vs_python, &self.python_error) {
            (Some(x), _) => s.push_str(&format!(
                "Throughput (b) ÷ Python (c): {x:.2}×; pipelined (b') ÷ (c): {:.2}×\n",
                self.pipelined_speedup_vs_python.unwrap_or_default()
            )),
            (None, Some(e)) => s.push_str(&format!("Python baseline not run: {e}\n")),
            _ => {}
        }
        s.push_str(
            "\n| (d) clients | frames/s total | mean batch | dropped |\n|---|---|---|---|\n",
        );
        for c in &self.concurrent {
            s.push_str(&format!(
                "| {} | {:.1} | {:.2} | {} |\n",
                c.clients, c.fps, c.mean_batch, c.dropped
            ));
        }
        s
    }
}

/// Decodes the first `max_frames` frames of `video` to RGB24 with an `ffmpeg` subprocess.
pub fn decode_video_frames(video: &Path, max_frames: usize) -> Result<Vec<Frame>, InferError> {
    let probe = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .map_err(|e| InferError::Bench(format!("running ffprobe: {e}")))?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let dims: Vec<u32> = text
        .trim()
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let [w, h] = dims[..] else {
        return Err(InferError::Bench(format!(
            "ffprobe could not read {}: {}",
            video.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        )));
    };
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(video)
        .args(["-frames:v", &max_frames.to_string()])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| InferError::Bench(format!("running ffmpeg: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| InferError::Bench("ffmpeg has no stdout".into()))?;
    let size = w as usize * h as usize * 3;
    let mut frames = Vec::new();
    for seq in 0..max_frames {
        let mut data = vec![0u8; size];
        if stdout.read_exact(&mut data).is_err() {
            break;
        }
        let pts = Pts::from_millis(seq as i64 * 100);
        if let Some(mut f) = Frame::from_rgb(w, h, pts, data) {
            f.seq = seq as u64;
            frames.push(f);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    if frames.is_empty() {
        return Err(InferError::Bench(format!(
            "no frames decoded from {}",
            video.display()
        )));
    }
    Ok(frames)
}

fn python_family(f: Family) -> Option<&'static str> {
    match f {
        Family::Nanodet => Some("nanodet"),
        Family::Centernet => Some("centernet"),
        _ => None,
    }
}

fn run_python(opts: &InferenceBenchOptions, threads: usize) -> Result<PythonTiming, String> {
    let py = opts
        .python
        .as_ref()
        .ok_or("no Python baseline configured")?;
    let family = python_family(opts.manifest.family)
        .ok_or("the Python baseline knows only nanodet and centernet")?;
    let out = Command::new(&py.interpreter)
        .arg(&py.script)
        .arg("bench")
        .args(["--family", family, "--model"])
        .arg(&opts.onnx)
        .arg("--video")
        .arg(&opts.video)
        .args(["--frames", &opts.frames.to_string()])
        .args(["--warmup", &opts.warmup.to_string()])
        .args(["--threads", &threads.to_string()])
        .output()
        .map_err(|e| format!("running {}: {e}", py.interpreter.display()))?;
    if !out.status.success() {
        return Err(format!(
            "baseline exited with {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| format!("unreadable baseline output `{last}`: {e}"))
}

/// [`run_python`] [`PYTHON_RUNS`] times; the median run (by fps), with every run's fps.
fn python_median(opts: &InferenceBenchOptions, threads: usize) -> Result<PythonTiming, String> {
    let mut runs = Vec::with_capacity(PYTHON_RUNS);
    for _ in 0..PYTHON_RUNS {
        runs.push(run_python(opts, threads)?);
    }
    let runs_fps: Vec<f64> = runs.iter().map(|r| r.fps).collect();
    runs.sort_by(|a, b| a.fps.total_cmp(&b.fps));
    let mut median = runs.swap_remove(PYTHON_RUNS / 2);
    median.runs_fps = runs_fps;
    Ok(median)
}

/// Runs (a)–(d); see the module docs.
pub fn run_inference_bench(
    opts: &InferenceBenchOptions,
) -> Result<InferenceBenchReport, InferError> {
    let frames = decode_video_frames(&opts.video, opts.frames)?;
    run_inference_bench_on(opts, &frames)
}

/// [`run_inference_bench`] on frames already decoded (`opts.video` is then only handed to
/// the Python baseline, which decodes it itself).
pub fn run_inference_bench_on(
    opts: &InferenceBenchOptions,
    frames: &[Frame],
) -> Result<InferenceBenchReport, InferError> {
    if frames.is_empty() {
        return Err(InferError::Bench("no frames".into()));
    }
    let threads = opts.runtime.threads();
    let model = SharedModel::load(&opts.onnx, opts.manifest.clone(), &opts.runtime)?;
    let (mut raw, _) = ModelSession::open(&opts.onnx, &opts.manifest, &opts.runtime)?;
    let client = model.client(2);
    let mut pre = Preprocessor::new(&opts.manifest.input);
    let mut buf = Vec::new();
    let det = DetectOptions::default();
    let fail = |e: crate::session::RunFailure| InferError::Bench(e.message);

    for f in frames.iter().cycle().take(opts.warmup) {
        pre.run(f, &mut buf)?;
        raw.run_discard(&buf, 1).map_err(fail)?;
        client.infer(f, &det)?;
    }
    let (mut ta, mut tb, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    let mut detections = 0usize;
    for f in frames {
        let t = Instant::now();
        pre.run(f, &mut buf)?;
        tp.push(t.elapsed());
        let t = Instant::now();
        raw.run_discard(&buf, 1).map_err(fail)?;
        ta.push(t.elapsed());
        let t = Instant::now();
        detections += client.infer(f, &det)?.len();
        tb.push(t.elapsed());
    }
    drop(raw);
    drop(client);
    let (raw_session, full_infer) = (Timing::from(&ta), Timing::from(&tb));
    let overhead_pct = (full_infer.mean_ms / raw_session.mean_ms - 1.0) * 100.0;

    let (python, python_error) = match python_median(opts, threads) {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    };
    let speedup_vs_python = python.as_ref().map(|p| full_infer.fps / p.fps);
    let pipelined_fps = run_pipelined(&model, frames, 2)?;
    let pipelined_speedup_vs_python = python.as_ref().map(|p| pipelined_fps / p.fps);

    let mut concurrent = Vec::new();
    for &n in &opts.concurrency {
        concurrent.push(run_concurrent(&model, frames, n.max(1))?);
    }
    Ok(InferenceBenchReport {
        model: opts.manifest.name.clone(),
        provider: model.info().provider.name().to_string(),
        intra_threads: threads,
        frame_width: frames[0].width,
        frame_height: frames[0].height,
        frames: frames.len(),
        dynamic_batch: model.info().dynamic_batch,
        raw_session,
        full_infer,
        overhead_pct,
        preprocess: Timing::from(&tp),
        detections_per_frame: detections as f64 / frames.len() as f64,
        python,
        python_error,
        speedup_vs_python,
        pipelined_fps,
        pipelined_speedup_vs_python,
        concurrent,
    })
}

/// One client, `depth` requests in flight: submit the next frame before waiting for the
/// oldest. The queue never holds more than `depth - 1`, so nothing is dropped.
fn run_pipelined(
    model: &std::sync::Arc<SharedModel>,
    frames: &[Frame],
    depth: usize,
) -> Result<f64, InferError> {
    let client = model.client(depth);
    let det = DetectOptions::default();
    let timeout = Duration::from_secs(60);
    let mut inflight = std::collections::VecDeque::with_capacity(depth);
    let started = Instant::now();
    for f in frames {
        inflight.push_back(client.submit(f, &det)?);
        if inflight.len() >= depth
            && let Some(p) = inflight.pop_front()
        {
            p.wait(timeout)?;
        }
    }
    for p in inflight {
        p.wait(timeout)?;
    }
    Ok(frames.len() as f64 / started.elapsed().as_secs_f64())
}

/// `clients` threads, each with its own client, each inferring every frame once.
fn run_concurrent(
    model: &std::sync::Arc<SharedModel>,
    frames: &[Frame],
    clients: usize,
) -> Result<ConcurrencyResult, InferError> {
    let before = model.stats();
    let started = Instant::now();
    let results: Vec<Result<u64, InferError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let client = model.client(2);
                s.spawn(move || {
                    let mut n = 0u64;
                    for f in frames {
                        client.infer(f, &DetectOptions::default())?;
                        n += 1;
                    }
                    Ok(n)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(InferError::Bench("client thread panicked".into())))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut total = 0;
    for r in results {
        total += r?;
    }
    let after = model.stats();
    let batches = after.batches - before.batches;
    Ok(ConcurrencyResult {
        clients,
        frames: total,
        seconds,
        fps: total as f64 / seconds,
        mean_batch: if batches == 0 {
            0.0
        } else {
            (after.frames - before.frames) as f64 / batches as f64
        },
        dropped: after.dropped - before.dropped,
    })
}
