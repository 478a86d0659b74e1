//! The supervisor: a persistent worker that waits for work forever. It claims runs from the
//! database with a lease, starts their pipelines, persists every state change the pipelines
//! report, renews leases with a heartbeat, applies stop requests and new config versions,
//! restarts stalled runs (watchdog), and on shutdown releases its runs so another worker (or
//! the next start) resumes them.
//!
//! It is one async task; pipelines are threads (see `run`). The two meet through channels:
//! run threads send transitions (unbounded, a handful per run) and event batches (bounded,
//! to the writer); the task sends `Control` messages to run threads.

use crate::events::ChannelSink;
use crate::models::ModelCache;
use crate::run::{self, Control, RunContext, RunHandle, RunObserver, RunSpec};
use crate::status::{RunStatus, StatusSnapshot};
use crate::taps::FrameTaps;
use parking_lot::RwLock;
use serde::Deserialize;
use sightline_config::PipelineConfig;
use sightline_core::{Clock, Event, RunId, RunState};
use sightline_media::{Pacing, RtspServer};
use sightline_store::{DesiredState, Reason, RunRecord, Store, StoreError, WorkerInfo};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

/// How the supervisor behaves (from `[engine]` of the server config).
#[derive(Clone)]
pub struct EngineOptions {
    pub worker_id: String,
    pub host: String,
    pub max_runs: u32,
    /// At most this many of the `max_runs` are batch jobs (live runs keep the rest).
    pub max_jobs: u32,
    pub poll_interval: Duration,
    pub lease_ttl: Duration,
    pub heartbeat: Duration,
    pub shutdown_timeout: Duration,
    pub data_dir: PathBuf,
    /// Notification sinks each event gets an outbox row for.
    pub routing: crate::writer::EventRouting,
    /// Custom per-frame stage for every run (see [`crate::run::FrameHook`]).
    pub frame_hook: Option<crate::run::FrameHook>,
    /// The media store's picture writer and recording index (none: no pictures, no
    /// recording).
    pub media: crate::run::RunMedia,
    /// The source policy confined runs (created through the API) are held to.
    pub source_policy: Option<Arc<sightline_config::SourcePolicy>>,
}

/// How long jobs keep yielding after a live run last dropped a frame.
const LIVE_PRESSURE_HOLD: Duration = Duration::from_secs(5);

/// Output and source options stored with a run (`runs.output`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunOptions {
    /// Publish on RTSP (default: the config's `output.rtsp`).
    pub rtsp: Option<bool>,
    /// Record to this MP4 path (default: the config's `output.mp4`).
    pub mp4: Option<String>,
    /// Restart a file source at its end.
    #[serde(rename = "loop")]
    pub loop_file: bool,
    /// `realtime`, `fast` or `live` (default: by source kind).
    pub pacing: Option<String>,
    /// Created through the API: the source is checked against the source policy again
    /// right before every connection (and the address pinned).
    pub confined: bool,
    /// A batch job (set by the jobs API only): counted in the job metrics, and slowed down
    /// while a live run on the same worker drops frames.
    pub job: bool,
    /// Delete the source file when the run ends (set by the jobs API for uploads only).
    pub delete_source: bool,
    /// `false`: no event pictures (crops, snapshots) whatever the config says.
    pub pictures: Option<bool>,
}

/// What the API and metrics see of the engine.
#[derive(Debug, Default)]
pub struct EngineShared {
    runs: RwLock<HashMap<RunId, RunView>>,
    /// Unix ms of the last successful heartbeat (0 = never).
    last_heartbeat_ms: AtomicI64,
    live: once_live::Live,
    /// Woken by the API of the same process after it changed runs (new run, stop, new
    /// config version), so this worker acts at once instead of at its next poll.
    nudge: tokio::sync::Notify,
    /// A live run here drops frames: job pipelines pause between frames.
    live_pressure: Arc<AtomicBool>,
}

/// A run this worker is executing.
#[derive(Debug, Clone)]
pub struct RunView {
    pub status: Arc<RunStatus>,
    pub taps: Arc<FrameTaps>,
    /// The encoded output, for live viewers.
    pub live: Arc<crate::taps::LiveFeed>,
}

mod once_live {
    use sightline_core::Event;
    use tokio::sync::broadcast;

    /// The broadcast of stored events (for server-sent events).
    #[derive(Debug)]
    pub struct Live(pub broadcast::Sender<Event>);

    impl Default for Live {
        fn default() -> Self {
            Live(broadcast::channel(1024).0)
        }
    }
}

impl EngineShared {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Live status of a run executing on this worker.
    pub fn status(&self, id: &RunId) -> Option<StatusSnapshot> {
        self.runs.read().get(id).map(|v| v.status.snapshot())
    }

    pub fn run_view(&self, id: &RunId) -> Option<RunView> {
        self.runs.read().get(id).cloned()
    }

    pub fn active_runs(&self) -> Vec<(RunId, StatusSnapshot)> {
        self.runs
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.status.snapshot()))
            .collect()
    }

    /// Seconds since the last successful heartbeat (None before the first).
    pub fn heartbeat_age(&self) -> Option<Duration> {
        let t = self.last_heartbeat_ms.load(Ordering::Relaxed);
        if t == 0 {
            return None;
        }
        let now = chrono::Utc::now().timestamp_millis();
        Some(Duration::from_millis((now - t).max(0) as u64))
    }

    /// Stored events as they are written.
    pub fn subscribe_events(&self) -> broadcast::Receiver<Event> {
        self.live.0.subscribe()
    }

    pub fn events_sender(&self) -> broadcast::Sender<Event> {
        self.live.0.clone()
    }

    /// Asks the supervisor to look at the database now (the API changed something).
    pub fn nudge(&self) {
        self.nudge.notify_one();
    }
}

/// A transition reported by a run thread, tagged with the generation of its pipeline so a
/// restarted run ignores late reports of the pipeline it replaced.
#[derive(Debug)]
struct Report {
    run: RunId,
    generation: u64,
    to: RunState,
    reason: String,
    message: Option<String>,
}

struct ChannelObserver {
    tx: mpsc::UnboundedSender<Report>,
    generation: u64,
}

impl RunObserver for ChannelObserver {
    fn transition(&self, run: &RunId, to: RunState, reason: &str, message: Option<&str>) {
        let _ = self.tx.send(Report {
            run: run.clone(),
            generation: self.generation,
            to,
            reason: reason.into(),
            message: message.map(str::to_owned),
        });
    }
}

/// What the supervisor keeps about a run it starts, besides its pipeline.
struct Book {
    config_name: String,
    config_version: i64,
    stall_timeout: Duration,
    job: bool,
    delete_source: Option<std::path::PathBuf>,
}

struct Active {
    handle: RunHandle,
    generation: u64,
    /// The state last persisted.
    state: RunState,
    config_name: String,
    config_version: i64,
    stall_timeout: Duration,
    stopping: bool,
    /// A batch job (see [`RunOptions::job`]).
    job: bool,
    /// The upload to delete when the run ends.
    delete_source: Option<std::path::PathBuf>,
}

/// The supervisor task.
pub struct Engine {
    store: Store,
    models: Arc<ModelCache>,
    rtsp: Option<Arc<RtspServer>>,
    opts: EngineOptions,
    clock: Arc<dyn Clock>,
    shared: Arc<EngineShared>,
    active: HashMap<RunId, Active>,
    /// Frames the live runs here had dropped at the last check, and since when they drop.
    live_dropped_seen: u64,
    live_pressure_since: Option<Instant>,
    /// When the ended jobs' uploads were last swept.
    last_upload_sweep: Option<Instant>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports_rx: mpsc::UnboundedReceiver<Report>,
    next_generation: u64,
}

impl Engine {
    pub fn new(
        store: Store,
        models: Arc<ModelCache>,
        rtsp: Option<Arc<RtspServer>>,
        opts: EngineOptions,
        clock: Arc<dyn Clock>,
        shared: Arc<EngineShared>,
    ) -> Engine {
        let (reports_tx, reports_rx) = mpsc::unbounded_channel();
        Engine {
            store,
            models,
            rtsp,
            opts,
            clock,
            shared,
            active: HashMap::new(),
            live_dropped_seen: 0,
            live_pressure_since: None,
            last_upload_sweep: None,
            reports_tx,
            reports_rx,
            next_generation: 1,
        }
    }

    /// Runs until `shutdown` resolves, then releases every run and returns.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let spill_dir = self.opts.data_dir.join("spill");
        let recovered =
            crate::writer::recover_spilled(&self.store, &spill_dir, &self.opts.routing).await;
        if recovered > 0 {
            tracing::info!(events = recovered, "recovered spilled events");
        }
        let writer = crate::writer::spawn(
            self.store.clone(),
            self.opts.routing.clone(),
            self.shared.events_sender(),
            spill_dir,
            self.opts.shutdown_timeout,
        );
        let events_tx = writer.tx.clone();
        let mut listener = match self.store.listen_runs().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN unavailable; polling only");
                None
            }
        };
        tracing::info!(
            worker = %self.opts.worker_id,
            max_runs = self.opts.max_runs,
            max_jobs = self.opts.max_jobs,
            listen = listener.is_some(),
            "engine started; waiting for runs"
        );
        self.heartbeat().await;
        self.sweep_uploads().await;
        self.claim(&events_tx).await;
        let mut poll = tokio::time::interval(self.opts.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(self.opts.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reap = tokio::time::interval(Duration::from_millis(200));
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = poll.tick() => self.claim(&events_tx).await,
                _ = beat.tick() => {
                    self.heartbeat().await;
                    self.follow_desired_state().await;
                    self.watchdog(&events_tx).await;
                    if self.last_upload_sweep.is_none_or(|t| t.elapsed() >= UPLOAD_SWEEP_EVERY) {
                        self.sweep_uploads().await;
                    }
                }
                _ = reap.tick() => {
                    self.reap();
                    self.update_live_pressure();
                }
                _ = nudged(&self.shared) => {
                    self.claim(&events_tx).await;
                    self.follow_desired_state().await;
                    self.sweep_uploads().await;
                }
                Some(r) = self.reports_rx.recv() => self.persist(r).await,
                notice = recv_notice(&mut listener) => {
                    if notice {
                        self.claim(&events_tx).await;
                        self.follow_desired_state().await;
                    } else {
                        tracing::warn!("LISTEN connection lost; polling only");
                        listener = None;
                    }
                }
            }
        }
        self.shutdown().await;
        drop(events_tx);
        drop(writer.tx);
        match tokio::time::timeout(self.opts.shutdown_timeout, writer.join).await {
            Ok(Ok(n)) => tracing::info!(events = n, "event writer flushed"),
            _ => tracing::error!("event writer did not finish in time"),
        }
        match self.store.release_runs(&self.opts.worker_id).await {
            Ok(ids) => tracing::info!(runs = ids.len(), "leases released"),
            Err(e) => tracing::error!(error = %e, "releasing leases failed; they expire instead"),
        }
        let _ = self.store.remove_worker(&self.opts.worker_id).await;
        tracing::info!("engine stopped");
    }

    async fn heartbeat(&mut self) {
        let info = WorkerInfo {
            id: self.opts.worker_id.clone(),
            host: self.opts.host.clone(),
            capacity: self.opts.max_runs,
        };
        if let Err(e) = self.store.heartbeat_worker(&info).await {
            tracing::warn!(error = %e, "worker heartbeat failed");
            crate::telemetry::LeaseRenewal { ok: false }.emit();
            return;
        }
        match self
            .store
            .renew_leases(&self.opts.worker_id, self.opts.lease_ttl)
            .await
        {
            Ok(owned) => {
                crate::telemetry::LeaseRenewal { ok: true }.emit();
                self.shared
                    .last_heartbeat_ms
                    .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
                let lost: Vec<RunId> = self
                    .active
                    .keys()
                    .filter(|id| !owned.contains(id))
                    .cloned()
                    .collect();
                for id in lost {
                    // Only runs whose first transition is persisted can be checked this way.
                    if let Some(a) = self.active.get(&id)
                        && a.state.is_active()
                    {
                        tracing::error!(run_id = %id, "lease lost (taken over by another worker); stopping the pipeline");
                        a.handle.send(Control::Release);
                        self.forget(&id);
                    }
                }
            }
            Err(e) => {
                crate::telemetry::LeaseRenewal { ok: false }.emit();
                tracing::warn!(error = %e, "lease renewal failed");
            }
        }
        // Live statistics for the API of other workers.
        for (id, a) in &self.active {
            let s = a.handle.status.snapshot();
            crate::telemetry::RunLive {
                run: id,
                state: a.state,
                fps: s.fps,
                inference_interval: s.inference_interval,
            }
            .emit();
            if let Ok(v) = serde_json::to_value(&s) {
                let _ = self.store.update_run_stats(id, &v).await;
            }
        }
        crate::telemetry::RunsByState::emit(self.active.values().map(|a| a.state));
        if let Ok(counts) = self.store.job_counts().await {
            let fps = self
                .active
                .values()
                .filter(|a| a.job)
                .map(|a| a.handle.status.snapshot().fps)
                .fold(0.0, |a: f64, b| a + b);
            crate::telemetry::JobsGauges {
                counts: &counts,
                fps,
                yielding: self.shared.live_pressure.load(Ordering::Relaxed),
            }
            .emit();
        }
    }

    /// Claims pending runs (and expired leases) up to capacity and starts them.
    async fn claim(&mut self, events_tx: &mpsc::Sender<Vec<Event>>) {
        if self.active.len() as u32 >= self.opts.max_runs {
            return;
        }
        let claimed = match self
            .store
            .claim_work(
                &self.opts.worker_id,
                self.opts.max_runs,
                self.opts.max_jobs,
                self.opts.lease_ttl,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "claiming runs failed");
                return;
            }
        };
        for rec in claimed {
            if self.active.contains_key(&rec.id) {
                continue;
            }
            self.start(rec, events_tx).await;
        }
    }

    async fn start(&mut self, rec: RunRecord, events_tx: &mpsc::Sender<Vec<Event>>) {
        let id = rec.id.clone();
        let span = tracing::info_span!("run", run_id = %id);
        let _g = span.enter();
        let config = match self
            .store
            .get_config(&rec.config_name, Some(rec.config_version))
            .await
        {
            Ok(c) => match PipelineConfig::from_json(&c.body.to_string()) {
                Ok(cfg) => cfg,
                Err(e) => {
                    self.fail_unstarted(&rec, "invalid_config", &e.to_string())
                        .await;
                    return;
                }
            },
            Err(StoreError::NotFound { .. }) => {
                let msg = format!(
                    "config {:?} version {} does not exist",
                    rec.config_name, rec.config_version
                );
                self.fail_unstarted(&rec, "invalid_config", &msg).await;
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the run's config; will retry");
                let _ = self
                    .store
                    .transition(
                        &id,
                        &self.opts.worker_id,
                        rec.state,
                        RunState::Pending,
                        "config_unavailable",
                    )
                    .await;
                return;
            }
        };
        let options: RunOptions = match serde_json::from_value(rec.output.clone()) {
            Ok(o) => o,
            Err(e) => {
                self.fail_unstarted(&rec, "invalid_config", &format!("output: {e}"))
                    .await;
                return;
            }
        };
        let mut config = config;
        if let Some(r) = options.rtsp {
            config.output.rtsp = r;
        }
        if options.mp4.is_some() {
            config.output.mp4 = options.mp4.clone();
        }
        if options.pictures == Some(false) {
            config.media.crops = false;
            config.media.snapshots = false;
        }
        let pacing = match options.pacing.as_deref() {
            Some("fast") => Some(Pacing::Fast),
            Some("realtime") => Some(Pacing::Realtime),
            Some("live") => Some(Pacing::Live),
            _ => None,
        };
        let stall_timeout = Duration::from_secs_f64(config.watchdog.stall_timeout_s);
        let event_ids = if run::is_file_uri(rec.source.expose()) && !options.loop_file {
            crate::events::EventIds::Replay {
                base_ms: rec.created_at.timestamp_millis(),
            }
        } else {
            crate::events::EventIds::Random
        };
        let spec = RunSpec {
            run_id: id.clone(),
            event_ids,
            source_uri: rec.source.expose().to_owned(),
            config: Arc::new(config),
            pacing,
            loop_file: options.loop_file,
            confined: options.confined.then(|| {
                self.opts
                    .source_policy
                    .clone()
                    .unwrap_or_else(|| Arc::new(sightline_config::SourcePolicy::default()))
            }),
        };
        // Only an upload the jobs API stored is ever deleted (the runs API refuses the flag).
        let delete_source = options
            .delete_source
            .then(|| run::file_path_of(rec.source.expose()))
            .flatten();
        self.spawn_pipeline(
            spec,
            rec.state,
            Book {
                config_name: rec.config_name.clone(),
                config_version: rec.config_version,
                stall_timeout,
                job: options.job,
                delete_source,
            },
            events_tx,
        );
    }

    fn spawn_pipeline(
        &mut self,
        spec: RunSpec,
        state: RunState,
        book: Book,
        events_tx: &mpsc::Sender<Vec<Event>>,
    ) {
        let Book {
            config_name,
            config_version,
            stall_timeout,
            job,
            delete_source,
        } = book;
        let id = spec.run_id.clone();
        let generation = self.next_generation;
        self.next_generation += 1;
        let status = RunStatus::new();
        let taps = Arc::new(FrameTaps::default());
        let live = Arc::new(crate::taps::LiveFeed::default());
        let ctx = RunContext {
            hook: self.opts.frame_hook.clone(),
            models: self.models.clone(),
            rtsp: self.rtsp.clone(),
            events: Box::new(ChannelSink::new(events_tx.clone())),
            observer: Arc::new(ChannelObserver {
                tx: self.reports_tx.clone(),
                generation,
            }),
            clock: self.clock.clone(),
            data_dir: self.opts.data_dir.clone(),
            status: status.clone(),
            taps: taps.clone(),
            live: live.clone(),
            media: self.opts.media.clone(),
            yield_to_live: job.then(|| self.shared.live_pressure.clone()),
        };
        match run::spawn(spec, ctx) {
            Ok(handle) => {
                let old = self
                    .shared
                    .runs
                    .write()
                    .insert(id.clone(), RunView { status, taps, live });
                // A restarted run gets a new feed; viewers of the old one reconnect.
                if let Some(old) = old {
                    old.live.end();
                }
                self.active.insert(
                    id.clone(),
                    Active {
                        handle,
                        generation,
                        state,
                        config_name,
                        config_version,
                        stall_timeout,
                        stopping: false,
                        job,
                        delete_source,
                    },
                );
                tracing::info!(run_id = %id, generation, "pipeline started");
            }
            Err(e) => tracing::error!(run_id = %id, error = %e, "cannot start the pipeline thread"),
        }
    }

    async fn fail_unstarted(&self, rec: &RunRecord, code: &str, message: &str) {
        tracing::error!(run_id = %rec.id, reason = code, message, "run failed before starting");
        if let Err(e) = self
            .store
            .transition(
                &rec.id,
                &self.opts.worker_id,
                rec.state,
                RunState::Failed,
                Reason::with_message(code, message),
            )
            .await
        {
            tracing::error!(run_id = %rec.id, error = %e, "cannot persist the failure");
        }
    }

    /// Persists a transition reported by a pipeline.
    async fn persist(&mut self, r: Report) {
        let Some(a) = self.active.get_mut(&r.run) else {
            return;
        };
        if a.generation != r.generation || a.state == r.to {
            return;
        }
        if r.to == RunState::Pending {
            // Released on shutdown: `release_runs` persists it in one transaction.
            return;
        }
        let reason = match &r.message {
            Some(m) => Reason::with_message(r.reason.clone(), m.clone()),
            None => Reason::new(r.reason.clone()),
        };
        let from = a.state;
        // A stop requested while running goes through `stopping`.
        if r.to == RunState::Stopped
            && from != RunState::Stopping
            && let Ok(_rec) = self
                .store
                .transition(
                    &r.run,
                    &self.opts.worker_id,
                    from,
                    RunState::Stopping,
                    Reason::new("stop_requested"),
                )
                .await
        {
            a.state = RunState::Stopping;
        }
        let from = a.state;
        match self
            .store
            .transition(&r.run, &self.opts.worker_id, from, r.to, reason)
            .await
        {
            Ok(_) => {
                a.state = r.to;
                crate::telemetry::RunTransition {
                    run: &r.run,
                    to: r.to,
                    reason: &r.reason,
                }
                .emit();
                if r.to.is_terminal() {
                    let (job, upload) = (a.job, a.delete_source.clone());
                    let snap = a.handle.status.snapshot();
                    self.ended(&r.run, r.to, job, upload, &snap).await;
                }
            }
            Err(StoreError::LeaseLost { .. }) => {
                tracing::error!(run_id = %r.run, "lease lost; stopping the pipeline");
                a.handle.send(Control::Release);
                let id = r.run.clone();
                self.forget(&id);
            }
            Err(e) => {
                tracing::error!(run_id = %r.run, from = %from, to = %r.to, error = %e, "transition not persisted");
            }
        }
    }

    /// A run reached a terminal state here: its last statistics are kept (a job's progress
    /// reads 100 % from them), a job is counted, and an upload is deleted.
    async fn ended(
        &self,
        id: &RunId,
        to: RunState,
        job: bool,
        upload: Option<std::path::PathBuf>,
        snap: &StatusSnapshot,
    ) {
        if let Ok(v) = serde_json::to_value(snap) {
            let _ = self.store.update_run_stats(id, &v).await;
        }
        if job {
            crate::telemetry::JobEnded { job: id, to, snap }.emit();
        }
        if let Some(path) = upload {
            delete_upload(&self.store, id, &path).await;
        }
    }

    /// Deletes the uploads of ended jobs that are still recorded (a job cancelled while
    /// queued never reaches a pipeline; a worker may die as its job ends). Any worker does
    /// it: at start, when nudged (the API cancelled a job) and every [`UPLOAD_SWEEP_EVERY`].
    async fn sweep_uploads(&mut self) {
        self.last_upload_sweep = Some(Instant::now());
        let found = match self.store.ended_job_uploads(100).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the ended jobs' uploads");
                return;
            }
        };
        for (id, path) in found {
            delete_upload(&self.store, &id, std::path::Path::new(&path)).await;
        }
    }

    /// Jobs yield to live runs: while a live run on this worker drops frames (checked every
    /// 200 ms), every job pipeline here pauses between frames; the pressure holds for
    /// [`LIVE_PRESSURE_HOLD`] after the last drop.
    fn update_live_pressure(&mut self) {
        let dropped: u64 = self
            .active
            .values()
            .filter(|a| !a.job)
            .map(|a| {
                let s = &a.handle.status;
                s.frames_dropped_source.load(Ordering::Relaxed)
                    + s.frames_dropped_infer.load(Ordering::Relaxed)
            })
            .sum();
        let now = Instant::now();
        if dropped > self.live_dropped_seen {
            if self.live_pressure_since.is_none() {
                tracing::info!("a live run drops frames: jobs on this worker slow down");
            }
            self.live_pressure_since = Some(now);
        }
        self.live_dropped_seen = dropped;
        let on = self
            .live_pressure_since
            .is_some_and(|t| now.duration_since(t) < LIVE_PRESSURE_HOLD);
        if !on && self.live_pressure_since.take().is_some() {
            tracing::info!("live runs keep up again: jobs back to full speed");
        }
        self.shared.live_pressure.store(on, Ordering::Relaxed);
    }

    /// Removes finished pipelines.
    fn reap(&mut self) {
        let done: Vec<RunId> = self
            .active
            .iter()
            .filter(|(_, a)| a.handle.is_finished() && a.state.is_terminal())
            .map(|(k, _)| k.clone())
            .collect();
        for id in done {
            self.forget(&id);
        }
    }

    /// The run no longer executes here: its view goes, its live viewers are told.
    fn drop_view(&self, id: &RunId) {
        if let Some(v) = self.shared.runs.write().remove(id) {
            v.live.end();
        }
    }

    fn forget(&mut self, id: &RunId) {
        self.active.remove(id);
        self.drop_view(id);
    }

    /// Applies stop requests and new config versions to the runs this worker owns.
    async fn follow_desired_state(&mut self) {
        if self.active.is_empty() {
            return;
        }
        let owned = match self.store.owned_runs(&self.opts.worker_id).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read owned runs");
                return;
            }
        };
        for rec in owned {
            let Some(a) = self.active.get_mut(&rec.id) else {
                continue;
            };
            if rec.desired_state == DesiredState::Stop && !a.stopping {
                tracing::info!(run_id = %rec.id, "stop requested");
                a.stopping = true;
                a.handle.send(Control::Stop);
            }
            if rec.config_version != a.config_version || rec.config_name != a.config_name {
                match self
                    .store
                    .get_config(&rec.config_name, Some(rec.config_version))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|c| {
                        PipelineConfig::from_json(&c.body.to_string()).map_err(|e| e.to_string())
                    }) {
                    Ok(cfg) => {
                        tracing::info!(run_id = %rec.id, version = rec.config_version, "applying new config version");
                        a.handle.send(Control::Reconfigure(Arc::new(cfg)));
                    }
                    Err(e) => {
                        tracing::warn!(run_id = %rec.id, error = %e, "new config version refused")
                    }
                }
                a.config_version = rec.config_version;
                a.config_name = rec.config_name.clone();
            }
        }
    }

    /// Restarts runs whose pipeline made no progress for their `stall_timeout`.
    async fn watchdog(&mut self, events_tx: &mpsc::Sender<Vec<Event>>) {
        let now = Instant::now();
        let stalled: Vec<RunId> = self
            .active
            .iter()
            .filter(|(_, a)| {
                a.state == RunState::Running
                    && !a.stopping
                    && now.duration_since(a.handle.status.last_progress()) > a.stall_timeout
            })
            .map(|(k, _)| k.clone())
            .collect();
        for id in stalled {
            let Some(a) = self.active.remove(&id) else {
                continue;
            };
            tracing::error!(run_id = %id, stall_timeout_s = a.stall_timeout.as_secs_f64(), "no progress; restarting the run");
            crate::telemetry::Stalled { run: &id }.emit();
            a.handle.send(Control::Release);
            // The stuck thread is abandoned: its late reports carry an old generation.
            match self
                .store
                .transition(
                    &id,
                    &self.opts.worker_id,
                    a.state,
                    RunState::Starting,
                    Reason::new("stalled"),
                )
                .await
            {
                Ok(rec) => self.start(rec, events_tx).await,
                Err(e) => {
                    tracing::error!(run_id = %id, error = %e, "cannot restart the stalled run");
                    self.drop_view(&id);
                }
            }
        }
    }

    /// Stops every pipeline (they finish their current frame and flush their events).
    async fn shutdown(&mut self) {
        tracing::info!(runs = self.active.len(), "shutting down: releasing runs");
        for a in self.active.values() {
            a.handle.send(Control::Release);
        }
        let deadline = Instant::now() + self.opts.shutdown_timeout;
        while Instant::now() < deadline && self.active.values().any(|a| !a.handle.is_finished()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            while let Ok(r) = self.reports_rx.try_recv() {
                self.persist(r).await;
            }
        }
        while let Ok(r) = self.reports_rx.try_recv() {
            self.persist(r).await;
        }
        let stuck = self
            .active
            .values()
            .filter(|a| !a.handle.is_finished())
            .count();
        if stuck > 0 {
            tracing::error!(stuck, "pipelines did not stop in time; abandoning them");
        }
        let ids: Vec<RunId> = self.active.keys().cloned().collect();
        for id in ids {
            self.forget(&id);
        }
    }
}

/// How often a worker looks for uploads of ended jobs left on disk.
const UPLOAD_SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Deletes a job's upload and forgets its path (a file already gone counts as deleted).
async fn delete_upload(store: &Store, id: &RunId, path: &std::path::Path) {
    match tokio::fs::remove_file(path).await {
        Ok(()) => tracing::info!(run_id = %id, path = %path.display(), "upload deleted"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(run_id = %id, path = %path.display(), error = %e, "cannot delete the upload");
            return;
        }
    }
    if let Err(e) = store.forget_job_upload(id).await {
        tracing::warn!(run_id = %id, error = %e, "upload deleted, its path not forgotten");
    }
}

async fn nudged(shared: &Arc<EngineShared>) {
    shared.nudge.notified().await;
}

/// `true` for a notice, `false` when the LISTEN connection closed.
async fn recv_notice(l: &mut Option<sightline_store::RunListener>) -> bool {
    match l {
        Some(l) => l.recv().await.is_some(),
        None => std::future::pending().await,
    }
}
