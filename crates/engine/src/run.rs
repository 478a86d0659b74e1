//! One run = one thread (`run-{id}`) that owns its source, its per-frame stages and its output.
//!
//! ```text
//!  GStreamer decode ──(bounded queue: newest wins for live sources,
//!   (media thread)     blocking for files)──▶ run thread: process → push ──▶ encoder ──▶ RTSP / MP4
//!                                                   │                         (always on, shared
//!                                                   └─▶ EventSink (batched DB writer)   by all viewers)
//! ```
//! Control travels on a channel checked between frames (stop, release, new config), so a new
//! config version applies at a frame boundary. The thread reports every state change to a
//! [`RunObserver`] (the supervisor persists them). Source loss is handled here: the output
//! keeps streaming a "signal lost" slate while reconnect attempts run on a helper thread, so
//! viewers stay connected. A panic anywhere in the stages fails the run, not the process.

use crate::events::{EventSink, stamp};
use crate::models::{LoadedModel, ModelCache};
use crate::processor::{CutPicture, FrameProcessor, StatusText};
use crate::status::{FpsMeter, LatencyWindow, RunStatus};
use crossbeam_channel::{Receiver, Sender};
use sightline_config::PipelineConfig;
use sightline_core::error::Classify;
use sightline_core::{Clock, Frame, RetryHint, RunId, RunState};
use sightline_media::{
    Mount, Output, OutputOptions, Pacing, RtspServer, Source, SourceEvent, SourceOptions, mask_uri,
};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// What to run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub run_id: RunId,
    pub source_uri: String,
    pub config: Arc<PipelineConfig>,
    /// `None`: files are paced in real time, live sources drop the oldest frame when behind.
    pub pacing: Option<Pacing>,
    /// Restart a file source at its end instead of completing.
    pub loop_file: bool,
    /// A run created through the API: its source is checked against this policy right
    /// before every connection, and a network source's address pinned (issue 19).
    pub confined: Option<Arc<sightline_config::SourcePolicy>>,
    /// How events get their ids (derived for a file played once, so a replay after a
    /// takeover does not store them twice).
    pub event_ids: crate::events::EventIds,
}

/// Why a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// A finite source reached its end.
    Completed,
    /// Stopped on request.
    Stopped,
    /// Handed back (engine shutdown): the run goes back to `pending`.
    Released,
    /// Gave up. `reason` is a stable code (`source_unreachable`, `source_lost`,
    /// `source_<media error kind>` such as `source_auth_failed`, `source_not_found`,
    /// `source_transport_refused`, `source_not_video`; `invalid_config`, `invalid_model`,
    /// `panic`, `internal`).
    Failed { reason: String, message: String },
}

impl RunOutcome {
    pub fn state(&self) -> RunState {
        match self {
            RunOutcome::Completed => RunState::Completed,
            RunOutcome::Stopped => RunState::Stopped,
            RunOutcome::Released => RunState::Pending,
            RunOutcome::Failed { .. } => RunState::Failed,
        }
    }

    fn failed(reason: impl Into<String>, message: impl Into<String>) -> Self {
        RunOutcome::Failed {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Receives the state changes of a run as they happen.
pub trait RunObserver: Send + Sync {
    /// `reason` is a stable code; `message` a human-readable detail (failures).
    fn transition(&self, run: &RunId, to: RunState, reason: &str, message: Option<&str>);
}

/// Logs transitions (foreground `sightline run`).
#[derive(Debug, Default)]
pub struct LogObserver;

impl RunObserver for LogObserver {
    fn transition(&self, run: &RunId, to: RunState, reason: &str, message: Option<&str>) {
        match message {
            Some(m) => tracing::info!(run_id = %run, state = %to, reason, message = m, "run state"),
            None => tracing::info!(run_id = %run, state = %to, reason, "run state"),
        }
    }
}

/// Messages to a running pipeline, handled between frames.
#[derive(Debug, Clone)]
pub enum Control {
    Stop,
    Release,
    Reconfigure(Arc<PipelineConfig>),
}

/// A custom per-frame stage, called with each decoded frame before detection. It is the
/// extension point for site-specific processing (and how the tests put a panicking stage
/// into a real pipeline); a panic in it fails the run like a panic in any other stage.
pub type FrameHook = Arc<dyn Fn(&RunId, &Frame) + Send + Sync>;

/// Where a run's pictures and recordings go (the media store); both optional.
#[derive(Clone, Default, Debug)]
pub struct RunMedia {
    /// Event pictures (crops, snapshots); `None`: events carry no pictures.
    pub pictures: Option<sightline_storage::PictureWriter>,
    /// Recording segments (for configs with `media.record`); `None`: no recording.
    pub segments: Option<sightline_storage::SegmentIndexer>,
}

/// What a run needs from the process around it.
pub struct RunContext {
    /// Optional custom stage (see [`FrameHook`]).
    pub hook: Option<FrameHook>,
    pub models: Arc<ModelCache>,
    pub rtsp: Option<Arc<RtspServer>>,
    pub events: Box<dyn EventSink>,
    pub observer: Arc<dyn RunObserver>,
    pub clock: Arc<dyn Clock>,
    pub data_dir: PathBuf,
    pub status: Arc<RunStatus>,
    pub taps: Arc<crate::taps::FrameTaps>,
    /// The encoded output for live viewers.
    pub live: Arc<crate::taps::LiveFeed>,
    pub media: RunMedia,
    /// Batch jobs: set while a live run on this worker drops frames; the job then pauses
    /// between frames so the live run gets the cores.
    pub yield_to_live: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Handle to a running pipeline thread.
pub struct RunHandle {
    pub run_id: RunId,
    pub status: Arc<RunStatus>,
    pub taps: Arc<crate::taps::FrameTaps>,
    tx: Sender<Control>,
    join: Option<std::thread::JoinHandle<RunOutcome>>,
}

impl RunHandle {
    pub fn send(&self, c: Control) {
        let _ = self.tx.send(c);
    }

    pub fn is_finished(&self) -> bool {
        self.join.as_ref().is_none_or(|j| j.is_finished())
    }

    /// Waits for the thread and returns its outcome.
    pub fn join(mut self) -> RunOutcome {
        match self.join.take().map(|j| j.join()) {
            Some(Ok(o)) => o,
            Some(Err(p)) => RunOutcome::failed("panic", panic_message(&p)),
            None => RunOutcome::failed("internal", "run thread already joined"),
        }
    }
}

/// Starts a run on its own thread.
pub fn spawn(spec: RunSpec, ctx: RunContext) -> std::io::Result<RunHandle> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let status = ctx.status.clone();
    let taps = ctx.taps.clone();
    let run_id = spec.run_id.clone();
    let name = format!("run-{}", spec.run_id);
    let join = std::thread::Builder::new().name(name).spawn(move || {
        let span = tracing::info_span!("run", run_id = %spec.run_id);
        let _g = span.enter();
        let observer = ctx.observer.clone();
        let status = ctx.status.clone();
        let id = spec.run_id.clone();
        let outcome = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            RunLoop::new(spec, ctx, rx).run()
        })) {
            Ok(o) => o,
            Err(p) => {
                let msg = panic_message(&p);
                tracing::error!(run_id = %id, panic = %msg, "run panicked");
                RunOutcome::failed("panic", msg)
            }
        };
        status.set_state(outcome.state());
        if let RunOutcome::Failed { reason, message } = &outcome {
            status.set_error(Some(format!("{reason}: {message}")));
        }
        let (reason, message) = match &outcome {
            RunOutcome::Failed { reason, message } => (reason.as_str(), Some(message.as_str())),
            RunOutcome::Completed => ("end_of_stream", None),
            RunOutcome::Stopped => ("stop_requested", None),
            RunOutcome::Released => ("released", None),
        };
        observer.transition(&id, outcome.state(), reason, message);
        outcome
    })?;
    Ok(RunHandle {
        run_id,
        status,
        taps,
        tx,
        join: Some(join),
    })
}

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

/// How often a copy of the incoming (undrawn) frame is kept for the slate.
const SLATE_COPY_EVERY: Duration = Duration::from_secs(1);

struct RunLoop {
    spec: RunSpec,
    ctx: RunContext,
    rx: Receiver<Control>,
    state: RunState,
    output: Option<Output>,
    out_fps: f64,
    last_copy: Option<(Instant, Arc<Frame>)>,
    fps: FpsMeter,
    latency: LatencyWindow,
    /// Stream time of the last frame processed (stamps events sent at the end of a file).
    last_pts: sightline_core::Pts,
}

enum Flow {
    Continue,
    End(RunOutcome),
}

impl RunLoop {
    fn new(spec: RunSpec, ctx: RunContext, rx: Receiver<Control>) -> Self {
        RunLoop {
            spec,
            ctx,
            rx,
            state: RunState::Starting,
            output: None,
            out_fps: 25.0,
            last_copy: None,
            fps: FpsMeter::new(Duration::from_secs(2)),
            latency: LatencyWindow::new(256),
            last_pts: sightline_core::Pts::ZERO,
        }
    }

    fn transition(&mut self, to: RunState, reason: &str) {
        if self.state != to {
            self.state = to;
            self.ctx.status.set_state(to);
            self.ctx
                .observer
                .transition(&self.spec.run_id, to, reason, None);
        }
    }

    /// The URI to open now: for a confined run, checked against the policy (the name
    /// resolved again, so a DNS answer changed since the API's check is caught) and pinned
    /// to the checked address.
    fn source_uri(&self) -> Result<String, RunOutcome> {
        let Some(policy) = &self.spec.confined else {
            return Ok(self.spec.source_uri.clone());
        };
        let resolve = |h: &str, p: u16| -> std::io::Result<Vec<std::net::IpAddr>> {
            use std::net::ToSocketAddrs;
            Ok((h, p).to_socket_addrs()?.map(|a| a.ip()).collect())
        };
        match policy.check_source(&self.spec.source_uri, resolve) {
            Ok(c) => Ok(c.uri),
            Err(d) => {
                tracing::warn!(run_id = %self.spec.run_id, reason = %d.detail, "source refused by the source policy");
                Err(RunOutcome::failed("source_not_allowed", d.public))
            }
        }
    }

    fn source_options(&self, uri: String) -> SourceOptions {
        let c = &self.spec.config;
        let is_file = is_file_uri(&self.spec.source_uri);
        let pacing = self.spec.pacing.unwrap_or(if is_file {
            Pacing::Realtime
        } else {
            Pacing::Live
        });
        let mut o = SourceOptions::new(uri).with_pacing(pacing);
        o.loop_file = self.spec.loop_file;
        o.connect_timeout = Duration::from_secs_f64(c.connect.timeout_s);
        o.rtsp_transport = match c.connect.rtsp_transport {
            sightline_config::RtspTransport::Auto => sightline_media::RtspTransport::Auto,
            sightline_config::RtspTransport::Tcp => sightline_media::RtspTransport::Tcp,
            sightline_config::RtspTransport::Udp => sightline_media::RtspTransport::Udp,
        };
        o.stall_timeout =
            Duration::from_secs_f64(c.watchdog.stall_timeout_s.min(c.connect.timeout_s.max(5.0)));
        o.yuv = c.output.frame_format == sightline_config::FrameFormat::I420;
        o
    }

    fn run(mut self) -> RunOutcome {
        let model = match self.ctx.models.get(&self.spec.config.model.name) {
            Ok(m) => m,
            Err(e) => return RunOutcome::failed("invalid_model", e.to_string()),
        };
        if let Err(errs) = self.spec.config.validate(Some(model.labels())) {
            return RunOutcome::failed("invalid_config", errs.to_string());
        }
        let mut proc = match FrameProcessor::new(self.spec.config.clone(), model) {
            Ok(p) => p,
            Err(e) => return RunOutcome::failed("invalid_config", e.to_string()),
        };
        proc.set_cut_pictures(self.ctx.media.pictures.is_some());
        match crate::secondary::build_stages(
            &self.spec.config.secondary,
            &self.ctx.models,
            proc.labels(),
            self.spec.run_id.as_str(),
        ) {
            Ok(stages) => proc.set_secondary(stages),
            Err(e) => return RunOutcome::failed("invalid_model", e),
        }
        proc.set_live(!is_file_uri(&self.spec.source_uri));
        let source = match self.connect_at_start() {
            Ok(s) => s,
            Err(o) => return o,
        };
        let outcome = self.stream(source, &mut proc);
        if let Some(out) = self.output.take()
            && let Err(e) = out.finish()
        {
            tracing::warn!(run_id = %self.spec.run_id, error = %e, "output did not finish cleanly");
        }
        if let Err(e) = self.ctx.events.flush() {
            tracing::error!(run_id = %self.spec.run_id, error = %e, "event flush failed");
        }
        outcome
    }

    /// Source unreachable at start: `connect.attempts` tries, `connect.interval_s` apart.
    fn connect_at_start(&mut self) -> Result<Source, RunOutcome> {
        let policy = self.spec.config.connect.clone();
        let mut last = String::new();
        for attempt in 1..=policy.attempts.max(1) {
            if let Some(o) = self.poll_control_idle() {
                return Err(o);
            }
            let uri = self.source_uri()?;
            match Source::open(self.source_options(uri)) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    last = e.to_string();
                    tracing::warn!(run_id = %self.spec.run_id, attempt, error = %e, "source open failed");
                    if e.retry() == RetryHint::DoNotRetry {
                        // `source_auth_failed`, `source_not_found`, `source_transport_refused`…
                        return Err(RunOutcome::failed(format!("source_{}", e.kind), last));
                    }
                }
            }
            if attempt < policy.attempts {
                self.ctx
                    .clock
                    .sleep(Duration::from_secs_f64(policy.interval_s));
            }
        }
        Err(RunOutcome::failed(
            "source_unreachable",
            format!(
                "{} after {} attempts: {last}",
                mask_uri(&self.spec.source_uri),
                policy.attempts
            ),
        ))
    }

    /// Control messages while no pipeline is streaming.
    fn poll_control_idle(&mut self) -> Option<RunOutcome> {
        while let Ok(c) = self.rx.try_recv() {
            match c {
                Control::Stop => return Some(RunOutcome::Stopped),
                Control::Release => return Some(RunOutcome::Released),
                Control::Reconfigure(cfg) => self.spec.config = cfg,
            }
        }
        None
    }

    fn start_output(
        &mut self,
        width: u32,
        height: u32,
        fps: Option<f64>,
    ) -> Result<(), RunOutcome> {
        let c = &self.spec.config.output;
        self.out_fps = fps.filter(|f| *f > 0.0 && f.is_finite()).unwrap_or(25.0);
        let mount: Option<Mount> = match (&self.ctx.rtsp, c.rtsp) {
            (Some(server), true) => Some(
                server
                    .mount(&format!("/runs/{}", self.spec.run_id))
                    .map_err(|e| RunOutcome::failed("internal", e.to_string()))?,
            ),
            _ => None,
        };
        let mp4_path = c.mp4.as_ref().map(|p| {
            let p = PathBuf::from(p.replace("{run_id}", self.spec.run_id.as_str()));
            if p.is_absolute() {
                p
            } else {
                self.ctx.data_dir.join(p)
            }
        });
        if let Some(p) = mp4_path.as_ref().and_then(|p| p.parent()) {
            let _ = std::fs::create_dir_all(p);
        }
        let (width, height) = output_size(width, height, c.height);
        let mut opts = OutputOptions::new(width, height, self.out_fps);
        opts.mount = mount;
        opts.mp4_path = mp4_path;
        opts.bitrate_kbps = c.bitrate_kbps;
        opts.keyframe_interval = Duration::from_secs_f64(c.keyframe_interval_s);
        let live = self.ctx.live.clone();
        live.set_size(width, height);
        opts.on_au = Some(Arc::new(move |au: sightline_media::EncodedAu<'_>| {
            live.offer(au.data, au.pts_ns, au.duration_ns, au.keyframe);
        }));
        let m = &self.spec.config.media;
        if m.record
            && let Some(ix) = &self.ctx.media.segments
        {
            opts.record = Some(record_options(
                &self.spec.run_id,
                ix,
                Duration::from_secs_f64(m.segment_s),
            ));
        }
        let out = Output::start(opts)
            .map_err(|e| RunOutcome::failed("internal", format!("output: {e}")))?;
        self.output = Some(out);
        Ok(())
    }

    fn stream(&mut self, mut source: Source, proc: &mut FrameProcessor) -> RunOutcome {
        let info = source.info();
        self.ctx.status.set_size(info.width, info.height);
        self.ctx
            .status
            .set_source(info.duration.map(|d| d.as_secs_f64()), info.fps);
        if let Err(o) = self.start_output(info.width, info.height, info.fps) {
            return o;
        }
        self.transition(RunState::Running, "source_connected");
        let mut dropped_seen = 0u64;
        loop {
            // Control between frames.
            while let Ok(c) = self.rx.try_recv() {
                match c {
                    Control::Stop => {
                        self.transition(RunState::Stopping, "stop_requested");
                        source.close();
                        return RunOutcome::Stopped;
                    }
                    Control::Release => {
                        source.close();
                        return RunOutcome::Released;
                    }
                    Control::Reconfigure(cfg) => {
                        if let Err(o) = self.apply_config(cfg, proc) {
                            source.close();
                            return o;
                        }
                    }
                }
            }
            let ev = source.next(Duration::from_millis(250));
            let stats = source.stats();
            if stats.frames_dropped > dropped_seen {
                self.ctx
                    .status
                    .frames_dropped_source
                    .fetch_add(stats.frames_dropped - dropped_seen, Ordering::Relaxed);
                crate::telemetry::FramesDropped {
                    run: &self.spec.run_id,
                    reason: "source_behind",
                    count: stats.frames_dropped - dropped_seen,
                }
                .emit();
                dropped_seen = stats.frames_dropped;
                proc.note_overload(Instant::now());
            }
            match ev {
                SourceEvent::Frame(frame) => {
                    if let Flow::End(o) = self.handle_frame(frame, proc) {
                        source.close();
                        return o;
                    }
                }
                SourceEvent::Idle => {}
                SourceEvent::Eos => {
                    source.close();
                    // Votes of tracks still in view when the file ends.
                    let events = proc.finish(self.last_pts);
                    if let Err(o) = self.emit_events(events, proc) {
                        return o;
                    }
                    return RunOutcome::Completed;
                }
                SourceEvent::Lost(reason) => {
                    source.close();
                    match self.reconnect(&reason, proc) {
                        Ok(s) => {
                            source = s;
                            dropped_seen = 0;
                        }
                        Err(o) => return o,
                    }
                }
                SourceEvent::Error(e) => {
                    source.close();
                    if e.retry() == RetryHint::DoNotRetry {
                        return RunOutcome::failed(format!("source_{}", e.kind), e.to_string());
                    }
                    match self.reconnect(&e.to_string(), proc) {
                        Ok(s) => {
                            source = s;
                            dropped_seen = 0;
                        }
                        Err(o) => return o,
                    }
                }
            }
        }
    }

    fn apply_config(
        &mut self,
        cfg: Arc<PipelineConfig>,
        proc: &mut FrameProcessor,
    ) -> Result<(), RunOutcome> {
        let model: Arc<LoadedModel> = self
            .ctx
            .models
            .get(&cfg.model.name)
            .map_err(|e| RunOutcome::failed("invalid_model", e.to_string()))?;
        if let Err(errs) = cfg.validate(Some(model.labels())) {
            // A bad new version is refused; the run keeps its current config.
            tracing::warn!(run_id = %self.spec.run_id, errors = %errs, "new config version refused");
            return Ok(());
        }
        let stages = if cfg.secondary != self.spec.config.secondary {
            match crate::secondary::build_stages(
                &cfg.secondary,
                &self.ctx.models,
                model.labels(),
                self.spec.run_id.as_str(),
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(run_id = %self.spec.run_id, error = %e, "new config version refused");
                    return Ok(());
                }
            }
        } else {
            None
        };
        proc.reconfigure(cfg.clone(), model)
            .map_err(|e| RunOutcome::failed("invalid_config", e.to_string()))?;
        if let Some(stages) = stages {
            proc.set_secondary(stages);
            proc.set_live(!is_file_uri(&self.spec.source_uri));
        }
        tracing::info!(run_id = %self.spec.run_id, "config applied at frame boundary");
        self.spec.config = cfg;
        Ok(())
    }

    fn handle_frame(&mut self, mut frame: Frame, proc: &mut FrameProcessor) -> Flow {
        if let Some(h) = &self.ctx.hook {
            h(&self.spec.run_id, &frame);
        }
        let status = &self.ctx.status;
        status.frames_in.fetch_add(1, Ordering::Relaxed);
        status.set_position(frame.pts.secs_f64());
        // The slate shows the last camera picture as it came in, without stale boxes.
        let arrived = Instant::now();
        crate::telemetry::FrameIn {
            run: &self.spec.run_id,
            queued_s: arrived
                .saturating_duration_since(frame.decoded_at)
                .as_secs_f64(),
        }
        .emit();
        if self
            .last_copy
            .as_ref()
            .is_none_or(|(t, _)| arrived.duration_since(*t) >= SLATE_COPY_EVERY)
        {
            let raw = Arc::new(frame.clone());
            self.ctx.taps.set_raw(raw.clone());
            self.last_copy = Some((arrived, raw));
        }
        let text = StatusText {
            lines: vec![
                format!("{:.1} fps", self.fps_estimate()),
                self.state.as_str().to_owned(),
            ],
            timestamp: Some(frame.pts.to_string()),
        };
        let (events, timings) = match proc.process(&mut frame, &text) {
            Ok(r) => r,
            Err(crate::processor::StageError::Infer(e)) if e.retry() == RetryHint::Retry => {
                // Overloaded or dropped inference: show the frame without new results.
                tracing::debug!(run_id = %self.spec.run_id, error = %e, "inference skipped");
                status.frames_dropped_infer.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::FramesDropped {
                    run: &self.spec.run_id,
                    reason: "infer_overloaded",
                    count: 1,
                }
                .emit();
                (Vec::new(), Default::default())
            }
            Err(e) => return Flow::End(RunOutcome::failed("stage_error", e.to_string())),
        };
        if timings.inferred {
            status.frames_inferred.fetch_add(1, Ordering::Relaxed);
        }
        if timings.gated {
            status.frames_gated.fetch_add(1, Ordering::Relaxed);
        }
        self.last_pts = frame.pts;
        status.set_degraded(proc.degraded());
        status
            .inference_interval
            .store(u64::from(proc.inference_interval()), Ordering::Relaxed);
        crate::telemetry::StageTimed {
            run: &self.spec.run_id,
            timings: &timings,
        }
        .emit();
        let rest_from = Instant::now();
        if let Err(o) = self.emit_events(events, proc) {
            return Flow::End(o);
        }
        let status = &self.ctx.status;
        self.ctx.taps.offer(&frame);
        let now = Instant::now();
        let decoded_at = frame.decoded_at;
        if let Some(out) = &self.output
            && let Err(e) = out.push(frame)
        {
            return Flow::End(RunOutcome::failed("internal", format!("output: {e}")));
        }
        status.stages.add(&timings, rest_from.elapsed());
        let latency = now.duration_since(decoded_at).as_secs_f64() * 1000.0;
        self.latency.push(latency);
        let fps = self.fps.tick(now);
        let (p50, p95) = self.latency.percentiles();
        status.frame_out(now, fps, p50, p95);
        crate::telemetry::FrameOut {
            run: &self.spec.run_id,
            latency_s: latency / 1000.0,
        }
        .emit();
        if let Some(flag) = &self.ctx.yield_to_live
            && flag.load(Ordering::Relaxed)
        {
            // A job while a live run drops frames: pause twice as long as this frame took,
            // so the job uses at most a third of the time it would (bounded, so the stall
            // watchdog never mistakes the pause for a hang).
            let spent = Instant::now().duration_since(arrived);
            std::thread::sleep((spent * 2).min(Duration::from_millis(250)));
        }
        Flow::Continue
    }

    /// Stamps a frame's events, stores their pictures and hands them to the event sink.
    fn emit_events(
        &mut self,
        events: Vec<sightline_core::RuleEvent>,
        proc: &mut FrameProcessor,
    ) -> Result<(), RunOutcome> {
        if events.is_empty() {
            return Ok(());
        }
        self.ctx
            .status
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut stamped = stamp(
            &self.spec.run_id,
            self.ctx.clock.as_ref(),
            self.spec.event_ids,
            events,
        );
        let pictures = proc.take_pictures();
        if !pictures.is_empty() {
            self.store_pictures(&mut stamped, pictures);
        }
        self.ctx
            .events
            .emit(&stamped)
            .map_err(|e| RunOutcome::failed("internal", e.to_string()))
    }

    /// Hands the pictures cut for this frame's events to the media store's writer; an event
    /// names a picture only if the writer took it (a full queue drops the picture, counted,
    /// never the event).
    fn store_pictures(&self, events: &mut [sightline_core::Event], pictures: Vec<CutPicture>) {
        let Some(writer) = &self.ctx.media.pictures else {
            return;
        };
        let m = &self.spec.config.media;
        for p in pictures {
            let Some(first) = p.events.first().and_then(|i| events.get(*i)) else {
                continue;
            };
            let key = sightline_storage::keys::picture_key(
                &self.spec.run_id,
                first.id,
                first.wall_ms,
                p.kind,
            );
            let (width, height) = sightline_storage::scaled_size(p.width, p.height, m.max_size);
            let job = sightline_storage::PictureJob {
                run_id: self.spec.run_id.clone(),
                event_id: first.id,
                kind: p.kind,
                key: key.clone(),
                width: p.width,
                height: p.height,
                rgb: p.rgb,
                quality: m.jpeg_quality,
                max_size: m.max_size,
            };
            if !writer.submit(job) {
                continue;
            }
            for i in p.events {
                if let Some(ev) = events.get_mut(i) {
                    let r = sightline_core::MediaRef {
                        url: writer.url(ev.id, p.kind),
                        key: key.clone(),
                        width,
                        height,
                    };
                    ev.media.get_or_insert_default().set(p.kind, Some(r));
                }
            }
        }
    }

    fn fps_estimate(&self) -> f64 {
        self.ctx.status.snapshot().fps
    }

    /// Pushes one slate frame (dimmed last frame + text).
    fn push_slate(&mut self, proc: &mut FrameProcessor, detail: &str) {
        let Some(out) = &self.output else { return };
        let mut frame = match &self.last_copy {
            Some((_, f)) => Frame::clone(f),
            None => {
                let (w, h) = {
                    let s = self.ctx.status.snapshot();
                    (s.width.max(16), s.height.max(16))
                };
                Frame::filled(w, h, [16, 16, 16], sightline_core::Pts::ZERO)
            }
        };
        frame.decoded_at = Instant::now();
        proc.draw_slate(&mut frame, "SIGNAL LOST", detail);
        self.ctx.taps.offer(&frame);
        if let Err(e) = out.push(frame) {
            tracing::warn!(run_id = %self.spec.run_id, error = %e, "slate push failed");
        }
        self.ctx.status.touch(Instant::now());
    }

    /// Source lost while running: `retrying` with backoff per the reconnect policy; the output
    /// shows the slate meanwhile. Returns the new source, or the outcome that ends the run.
    fn reconnect(&mut self, reason: &str, proc: &mut FrameProcessor) -> Result<Source, RunOutcome> {
        let policy = self.spec.config.reconnect.clone();
        self.transition(RunState::Retrying, "source_lost");
        tracing::warn!(run_id = %self.spec.run_id, reason, "source lost; reconnecting");
        let lost_at = self.ctx.clock.now();
        let slate_every = Duration::from_secs_f64(1.0 / self.out_fps.clamp(1.0, 60.0));
        let mut attempts = 0u32;
        loop {
            if !policy.may_retry(attempts, self.ctx.clock.now().duration_since(lost_at)) {
                return Err(RunOutcome::failed(
                    "source_lost",
                    format!("{reason}; gave up after {attempts} reconnect attempts"),
                ));
            }
            attempts += 1;
            let wait = policy.delay(attempts, rand::random::<f64>());
            let detail = format!("reconnecting… attempt {attempts}");
            // Wait, streaming the slate.
            let until = self.ctx.clock.now() + wait;
            while self.ctx.clock.now() < until {
                if let Some(o) = self.poll_control_idle() {
                    return Err(o);
                }
                self.push_slate(proc, &detail);
                self.ctx
                    .clock
                    .sleep(slate_every.min(until.saturating_duration_since(self.ctx.clock.now())));
            }
            // Try, streaming the slate while the open is in progress.
            self.ctx.status.reconnects.fetch_add(1, Ordering::Relaxed);
            crate::telemetry::Reconnect {
                run: &self.spec.run_id,
            }
            .emit();
            let opts = self.source_options(self.source_uri()?);
            let (tx, rx) = crossbeam_channel::bounded(1);
            let spawned = std::thread::Builder::new()
                .name(format!("open-{}", self.spec.run_id))
                .spawn(move || {
                    let _ = tx.send(Source::open(opts));
                });
            if spawned.is_err() {
                return Err(RunOutcome::failed("internal", "cannot spawn a thread"));
            }
            let result = loop {
                match rx.recv_timeout(slate_every) {
                    Ok(r) => break r,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        if let Some(o) = self.poll_control_idle() {
                            return Err(o);
                        }
                        self.push_slate(proc, &detail);
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        return Err(RunOutcome::failed("internal", "source open thread died"));
                    }
                }
            };
            match result {
                Ok(s) => {
                    self.transition(RunState::Running, "source_reconnected");
                    return Ok(s);
                }
                Err(e) => {
                    tracing::warn!(run_id = %self.spec.run_id, attempt = attempts, error = %e, "reconnect failed");
                }
            }
        }
    }
}

/// Recording options that name each segment through the media store's indexer and report
/// what happens to it.
fn record_options(
    run: &RunId,
    ix: &sightline_storage::SegmentIndexer,
    segment: Duration,
) -> sightline_media::RecordOptions {
    use sightline_media::SegmentEvent;
    use sightline_storage::SegmentNote;
    fn ms(t: std::time::SystemTime) -> i64 {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
    let loc_ix = ix.clone();
    let loc_run = run.clone();
    let note_ix = ix.clone();
    let note_run = run.clone();
    sightline_media::RecordOptions::new(
        segment,
        Arc::new(move || loc_ix.location(&loc_run)),
        Arc::new(move |e| {
            let note = match e {
                SegmentEvent::Opened { path, wall, pts } => SegmentNote::Opened {
                    path,
                    wall_ms: ms(wall),
                    pts_ns: pts.as_nanos() as i64,
                },
                SegmentEvent::Closed { path, wall, pts } => SegmentNote::Closed {
                    path,
                    wall_ms: ms(wall),
                    pts_ns: pts.as_nanos() as i64,
                },
                SegmentEvent::Failed { path, wall, error } => SegmentNote::Failed {
                    path,
                    wall_ms: ms(wall),
                    error,
                },
            };
            note_ix.note(&note_run, note);
        }),
    )
}

/// The annotated stream's size: the source's, or scaled down to `height` (even sizes, the
/// source's aspect ratio).
pub fn output_size(width: u32, height: u32, want: Option<u32>) -> (u32, u32) {
    match want {
        Some(h) if h < height && height > 0 => {
            let w = (f64::from(width) * f64::from(h) / f64::from(height) / 2.0).round() as u32 * 2;
            (w.max(2), h)
        }
        _ => (width, height),
    }
}

/// The local file a file source names (`None` for network sources).
pub fn file_path_of(uri: &str) -> Option<PathBuf> {
    sightline_media::file_path(uri)
}

/// `file://…` or a plain path.
pub fn is_file_uri(uri: &str) -> bool {
    uri.starts_with("file:") || !uri.contains("://")
}

#[cfg(test)]
mod tests {
    use super::output_size;

    #[test]
    fn output_height_scales_down_only_keeping_the_aspect_ratio() {
        assert_eq!(output_size(1920, 1080, Some(720)), (1280, 720));
        assert_eq!(output_size(768, 576, Some(360)), (480, 360));
        assert_eq!(output_size(1280, 720, Some(1080)), (1280, 720), "never up");
        assert_eq!(output_size(1920, 1080, None), (1920, 1080));
        let (w, _) = output_size(1000, 750, Some(100));
        assert_eq!(w % 2, 0, "even width");
    }
}
