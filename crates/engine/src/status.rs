//! Live state of a run shared between its pipeline thread (writer) and the supervisor, API
//! and metrics (readers). Plain atomics and a small mutex-protected summary: readers never
//! block the pipeline for more than a copy.

use parking_lot::Mutex;
use serde::Serialize;
use sightline_core::RunState;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters and gauges of one run.
#[derive(Debug)]
pub struct RunStatus {
    pub frames_in: AtomicU64,
    pub frames_inferred: AtomicU64,
    /// Frames due for inference that the motion gate skipped (nothing moved).
    pub frames_gated: AtomicU64,
    pub frames_out: AtomicU64,
    /// Frames the source dropped because the pipeline was behind (newest wins).
    pub frames_dropped_source: AtomicU64,
    /// Inference requests dropped because the run's inference queue was full.
    pub frames_dropped_infer: AtomicU64,
    pub events: AtomicU64,
    pub reconnects: AtomicU64,
    /// Inference on every n-th frame now (the config's, or more while degraded).
    pub inference_interval: AtomicU64,
    /// Time spent per stage, summed over the run's frames (for `sightline bench`).
    pub stages: StageTotals,
    inner: Mutex<StatusInner>,
    started: Instant,
}

/// Nanoseconds spent in each stage of the run thread, summed over frames.
#[derive(Debug, Default)]
pub struct StageTotals {
    frames: AtomicU64,
    inferred: AtomicU64,
    gate: AtomicU64,
    convert: AtomicU64,
    infer: AtomicU64,
    track: AtomicU64,
    secondary: AtomicU64,
    rules: AtomicU64,
    draw: AtomicU64,
    pictures: AtomicU64,
    rest: AtomicU64,
}

/// A copy of [`StageTotals`]: sums in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageSums {
    pub frames: u64,
    pub inferred: u64,
    /// The motion gate's decisions (`[model.motion_gate]`).
    pub gate_ms: f64,
    pub convert_ms: f64,
    /// Wall time of inference requests (pre-process, queue, session, decode), run thread.
    pub infer_ms: f64,
    pub track_ms: f64,
    pub secondary_ms: f64,
    pub rules_ms: f64,
    pub draw_ms: f64,
    pub pictures_ms: f64,
    /// Events, frame taps and handing the frame to the encoder.
    pub rest_ms: f64,
}

impl StageSums {
    /// `self - earlier`, stage by stage.
    pub fn since(&self, earlier: &StageSums) -> StageSums {
        StageSums {
            frames: self.frames - earlier.frames,
            inferred: self.inferred - earlier.inferred,
            gate_ms: self.gate_ms - earlier.gate_ms,
            convert_ms: self.convert_ms - earlier.convert_ms,
            infer_ms: self.infer_ms - earlier.infer_ms,
            track_ms: self.track_ms - earlier.track_ms,
            secondary_ms: self.secondary_ms - earlier.secondary_ms,
            rules_ms: self.rules_ms - earlier.rules_ms,
            draw_ms: self.draw_ms - earlier.draw_ms,
            pictures_ms: self.pictures_ms - earlier.pictures_ms,
            rest_ms: self.rest_ms - earlier.rest_ms,
        }
    }
}

impl StageTotals {
    pub fn add(&self, t: &crate::processor::StageTimings, rest: std::time::Duration) {
        let add = |a: &AtomicU64, d: std::time::Duration| {
            a.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        if t.inferred {
            self.inferred.fetch_add(1, Ordering::Relaxed);
        }
        add(&self.gate, t.gate);
        add(&self.convert, t.convert);
        add(&self.infer, t.infer);
        add(&self.track, t.track);
        add(&self.secondary, t.secondary);
        add(&self.rules, t.rules);
        add(&self.draw, t.draw);
        add(&self.pictures, t.pictures);
        add(&self.rest, rest);
    }

    pub fn sums(&self) -> StageSums {
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        StageSums {
            frames: self.frames.load(Ordering::Relaxed),
            inferred: self.inferred.load(Ordering::Relaxed),
            gate_ms: ms(&self.gate),
            convert_ms: ms(&self.convert),
            infer_ms: ms(&self.infer),
            track_ms: ms(&self.track),
            secondary_ms: ms(&self.secondary),
            rules_ms: ms(&self.rules),
            draw_ms: ms(&self.draw),
            pictures_ms: ms(&self.pictures),
            rest_ms: ms(&self.rest),
        }
    }
}

#[derive(Debug, Clone)]
struct StatusInner {
    state: RunState,
    fps: f64,
    last_frame_at: Option<Instant>,
    latency_ms_p50: f64,
    latency_ms_p95: f64,
    last_error: Option<String>,
    width: u32,
    height: u32,
    degraded: Vec<String>,
    /// The source's length (files whose container says).
    duration_s: Option<f64>,
    /// Stream time of the last frame in.
    position_s: f64,
    /// Frame rate the source announced.
    source_fps: Option<f64>,
}

/// A copy of the live status, for the API and `sightline run`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusSnapshot {
    pub state: RunState,
    pub fps: f64,
    pub frames_in: u64,
    pub frames_inferred: u64,
    /// Frames whose inference the motion gate skipped because nothing moved.
    pub frames_gated: u64,
    pub frames_out: u64,
    pub frames_dropped: u64,
    pub events: u64,
    pub reconnects: u64,
    /// Inference on every n-th frame now: the config's `model.interval`, more while the run
    /// is degraded (`degraded` then says `interval 1→2`).
    pub inference_interval: u64,
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    pub width: u32,
    pub height: u32,
    pub last_error: Option<String>,
    pub uptime_s: f64,
    /// Seconds since the pipeline last produced a frame (None before the first).
    pub idle_s: Option<f64>,
    /// What runs degraded now, e.g. `plates open` (a secondary stage's breaker is open).
    pub degraded: Vec<String>,
    /// Files: the source's length in seconds, when its container says.
    pub duration_s: Option<f64>,
    /// Stream time of the last frame in, in seconds.
    pub position_s: f64,
    /// The frame rate the source announced.
    pub source_fps: Option<f64>,
}

impl Default for RunStatus {
    fn default() -> Self {
        RunStatus {
            frames_in: AtomicU64::new(0),
            frames_inferred: AtomicU64::new(0),
            frames_gated: AtomicU64::new(0),
            frames_out: AtomicU64::new(0),
            frames_dropped_source: AtomicU64::new(0),
            frames_dropped_infer: AtomicU64::new(0),
            events: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            inference_interval: AtomicU64::new(1),
            stages: StageTotals::default(),
            inner: Mutex::new(StatusInner {
                state: RunState::Starting,
                fps: 0.0,
                last_frame_at: None,
                latency_ms_p50: 0.0,
                latency_ms_p95: 0.0,
                last_error: None,
                width: 0,
                height: 0,
                degraded: Vec::new(),
                duration_s: None,
                position_s: 0.0,
                source_fps: None,
            }),
            started: Instant::now(),
        }
    }
}

impl RunStatus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set_state(&self, s: RunState) {
        self.inner.lock().state = s;
    }

    pub fn state(&self) -> RunState {
        self.inner.lock().state
    }

    pub fn set_error(&self, e: Option<String>) {
        self.inner.lock().last_error = e;
    }

    /// What is degraded now (empty: nothing).
    pub fn set_degraded(&self, d: Vec<String>) {
        let mut g = self.inner.lock();
        if g.degraded != d {
            if d.is_empty() {
                tracing::info!("no longer degraded");
            } else {
                tracing::warn!(degraded = %d.join(", "), "degraded");
            }
            g.degraded = d;
        }
    }

    /// What the source said about its length and rate (progress of a batch job).
    pub fn set_source(&self, duration_s: Option<f64>, fps: Option<f64>) {
        let mut g = self.inner.lock();
        g.duration_s = duration_s;
        g.source_fps = fps;
    }

    /// Stream time of the frame that just came in.
    pub fn set_position(&self, pts_s: f64) {
        self.inner.lock().position_s = pts_s;
    }

    pub fn set_size(&self, w: u32, h: u32) {
        let mut g = self.inner.lock();
        g.width = w;
        g.height = h;
    }

    /// Records a frame leaving the pipeline: updates the fps estimate and progress time.
    pub fn frame_out(&self, now: Instant, fps: f64, p50_ms: f64, p95_ms: f64) {
        self.frames_out.fetch_add(1, Ordering::Relaxed);
        let mut g = self.inner.lock();
        g.last_frame_at = Some(now);
        g.fps = fps;
        g.latency_ms_p50 = p50_ms;
        g.latency_ms_p95 = p95_ms;
    }

    /// Marks progress without a frame (slate frames while reconnecting count as progress:
    /// the pipeline is alive).
    pub fn touch(&self, now: Instant) {
        self.inner.lock().last_frame_at = Some(now);
    }

    /// Time of the last progress, or the start of the run.
    pub fn last_progress(&self) -> Instant {
        self.inner.lock().last_frame_at.unwrap_or(self.started)
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let g = self.inner.lock().clone();
        StatusSnapshot {
            state: g.state,
            fps: g.fps,
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_inferred: self.frames_inferred.load(Ordering::Relaxed),
            frames_gated: self.frames_gated.load(Ordering::Relaxed),
            frames_out: self.frames_out.load(Ordering::Relaxed),
            frames_dropped: self.frames_dropped_source.load(Ordering::Relaxed)
                + self.frames_dropped_infer.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            inference_interval: self.inference_interval.load(Ordering::Relaxed),
            latency_ms_p50: g.latency_ms_p50,
            latency_ms_p95: g.latency_ms_p95,
            width: g.width,
            height: g.height,
            last_error: g.last_error,
            uptime_s: self.started.elapsed().as_secs_f64(),
            idle_s: g.last_frame_at.map(|t| t.elapsed().as_secs_f64()),
            degraded: g.degraded,
            duration_s: g.duration_s,
            position_s: g.position_s,
            source_fps: g.source_fps,
        }
    }
}

/// Rolling window of the last N latencies for cheap p50/p95 (the Prometheus histograms
/// carry the full distribution).
#[derive(Debug)]
pub struct LatencyWindow {
    buf: Vec<f64>,
    next: usize,
    full: bool,
    scratch: Vec<f64>,
}

impl LatencyWindow {
    pub fn new(n: usize) -> Self {
        LatencyWindow {
            buf: vec![0.0; n.max(1)],
            next: 0,
            full: false,
            scratch: Vec::with_capacity(n.max(1)),
        }
    }

    pub fn push(&mut self, v: f64) {
        self.buf[self.next] = v;
        self.next = (self.next + 1) % self.buf.len();
        if self.next == 0 {
            self.full = true;
        }
    }

    /// (p50, p95); zeros when empty.
    pub fn percentiles(&mut self) -> (f64, f64) {
        let n = if self.full { self.buf.len() } else { self.next };
        if n == 0 {
            return (0.0, 0.0);
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(&self.buf[..n]);
        self.scratch.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| self.scratch[((n as f64 - 1.0) * q).round() as usize];
        (at(0.5), at(0.95))
    }
}

/// Frames per second over a sliding window of frame times.
#[derive(Debug)]
pub struct FpsMeter {
    times: std::collections::VecDeque<Instant>,
    window: std::time::Duration,
}

impl FpsMeter {
    pub fn new(window: std::time::Duration) -> Self {
        FpsMeter {
            times: std::collections::VecDeque::new(),
            window,
        }
    }

    pub fn tick(&mut self, now: Instant) -> f64 {
        self.times.push_back(now);
        while let Some(&t) = self.times.front() {
            if now.duration_since(t) > self.window {
                self.times.pop_front();
            } else {
                break;
            }
        }
        match (self.times.front(), self.times.len()) {
            (Some(&first), n) if n > 1 => {
                let span = now.duration_since(first).as_secs_f64();
                if span > 0.0 {
                    (n - 1) as f64 / span
                } else {
                    0.0
                }
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_of_a_window() {
        let mut w = LatencyWindow::new(100);
        assert_eq!(w.percentiles(), (0.0, 0.0));
        for i in 1..=100 {
            w.push(i as f64);
        }
        let (p50, p95) = w.percentiles();
        assert!((50.0..=51.0).contains(&p50), "{p50}");
        assert!((95.0..=96.0).contains(&p95), "{p95}");
    }

    #[test]
    fn fps_from_ticks() {
        let mut m = FpsMeter::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let mut fps = 0.0;
        for i in 0..=20 {
            fps = m.tick(t0 + Duration::from_millis(100 * i));
        }
        assert!((fps - 10.0).abs() < 0.01, "{fps}");
    }
}
