//! Secondary stages (issue 13): models applied to crops of tracked objects, next to the
//! detector and never in its way.
//!
//! A [`SecondaryStage`] belongs to one run. On frames that went through the detector it picks
//! the tracks worth reading (class, box area, at most once every `every` inference frames,
//! at most `max_readings` times, never again once the track's vote is final), cuts their
//! crops and hands them to the stage's worker thread through a bounded queue (a full queue
//! sheds the crop, counted). The models themselves ([`TextReader`]) are loaded once per
//! process and shared by every run's worker. The run thread then waits for results at most
//! `budget_ms` (live sources; later results are used on a later frame) or `timeout_ms`
//! (files: replays stay deterministic). A call that errors or takes longer than `timeout_ms`
//! is a failure for the [`breaker::Breaker`]; while it is open nothing is submitted, tracks
//! go on without the attribute and the run's status says `degraded: <stage> open`. When the
//! run's source is dropping frames (overload), secondary crops are shed first, before the
//! detector's rate has to drop.
//!
//! Plates are voted per track (`sightline-anpr`); a track sends one `plate` event when its
//! vote becomes final, or when the track ends (or the source does) with a confident vote —
//! plus a `plate_match` event when the text is on the config's watch list.

pub mod breaker;
pub mod plates;

use crate::processor::CutPicture;
use breaker::{Breaker, BreakerState};
use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
pub use plates::{Locator, PlateModels};
use plates::{ReadOutcome, read_plates};
use sightline_anpr::{CompiledPlateSettings, TrackVote, WatchList};
use sightline_config::SecondaryDef;
use sightline_core::{
    ClassId, EventKind, Frame, Labels, PictureKind, PlateRead, Pts, RuleEvent, Track,
    TrackAttributes, TrackId,
};
use sightline_inference::{InferError, RgbPicture};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Crops waiting for the worker at most (per stage).
const QUEUE: usize = 4;
/// How long after the source last dropped a frame crops are still shed.
const SHED_FOR: Duration = Duration::from_secs(2);
/// A plate sent again within this much stream time is the same vehicle (a detector that gives
/// one vehicle two boxes of different classes makes two tracks): it is not sent twice.
const SAME_PLATE_WITHIN_MS: i64 = 10_000;

/// A fault injected into a stage's worker, for tests of the breaker against a slow or dead
/// model: every call sleeps `delay` first, and fails when `fail` is set.
#[derive(Debug, Default)]
pub struct FaultInjection {
    pub delay_ms: AtomicU64,
    pub fail: std::sync::atomic::AtomicBool,
}

/// Counters of one stage (also exported as metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SecondaryCounts {
    pub submitted: u64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    /// Crops not submitted: queue full or the source overloaded.
    pub shed: u64,
    /// Crops not submitted because the breaker was open.
    pub skipped_open: u64,
    /// Texts read but refused as plates (garbage OCR).
    pub rejected: u64,
}

struct Job {
    id: u64,
    crop: RgbPicture,
    offset: (f32, f32),
}

struct Done {
    id: u64,
    result: Result<ReadOutcome, InferError>,
    took: Duration,
}

#[derive(Default)]
struct TrackState {
    vote: TrackVote,
    class_id: Option<ClassId>,
    bbox: Option<sightline_core::BBox>,
    last_submit: Option<u64>,
    attempts: u32,
    emitted: bool,
    /// Best reading's upright plate crop and its confidence.
    best: Option<(f32, RgbPicture)>,
}

struct Pending {
    track: TrackId,
    at: Instant,
}

/// Events and the plate crops that go with them (indexes into the events).
#[derive(Default)]
pub struct StageOutput {
    pub events: Vec<RuleEvent>,
    pub pictures: Vec<CutPicture>,
}

/// One secondary stage of one run.
pub struct SecondaryStage {
    def: SecondaryDef,
    run: String,
    plate: CompiledPlateSettings,
    watch: WatchList,
    classes: Vec<ClassId>,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    worker: Option<std::thread::JoinHandle<()>>,
    fault: Arc<FaultInjection>,
    breaker: Breaker,
    tracks: HashMap<TrackId, TrackState>,
    pending: HashMap<u64, Pending>,
    next_id: u64,
    infer_frames: u64,
    live: bool,
    overloaded_at: Option<Instant>,
    counts: SecondaryCounts,
    /// Keys of the plates sent lately, with their stream time.
    recent: Vec<(String, Pts)>,
}

impl std::fmt::Debug for SecondaryStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecondaryStage")
            .field("name", &self.def.name)
            .field("breaker", &self.breaker.state())
            .field("counts", &self.counts)
            .finish()
    }
}

impl SecondaryStage {
    /// A stage for `def` reading with `reader` (shared); `labels` are the detector's classes,
    /// `run` names the run in metrics and logs.
    pub fn new(
        def: SecondaryDef,
        models: PlateModels,
        labels: &Labels,
        run: &str,
    ) -> Result<SecondaryStage, String> {
        let plate = def.plate.validate().map_err(|errs| {
            errs.iter()
                .map(|e| format!("secondary.plate.{e}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let watch = WatchList::new(&plate);
        let classes = def.classes.iter().filter_map(|c| labels.id_of(c)).collect();
        let (jtx, jrx) = bounded::<Job>(QUEUE);
        let (dtx, drx) = bounded::<Done>(QUEUE * 2);
        let fault = Arc::new(FaultInjection::default());
        let worker = {
            let (plate, fault) = (plate.clone(), fault.clone());
            let upscale = def.upscale_below;
            std::thread::Builder::new()
                .name(format!("sec-{}", def.name))
                .spawn(move || worker(jrx, dtx, models, plate, upscale, fault))
                .map_err(|e| format!("starting the {} worker: {e}", def.name))?
        };
        Ok(SecondaryStage {
            breaker: Breaker::new(def.error_budget, Duration::from_secs(def.open_s)),
            def,
            run: run.to_string(),
            plate,
            watch,
            classes,
            jobs: Some(jtx),
            done: drx,
            worker: Some(worker),
            fault,
            tracks: HashMap::new(),
            pending: HashMap::new(),
            next_id: 0,
            infer_frames: 0,
            live: false,
            overloaded_at: None,
            counts: SecondaryCounts::default(),
            recent: Vec::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.def.name
    }

    pub fn def(&self) -> &SecondaryDef {
        &self.def
    }

    /// Live sources wait `budget_ms` per frame, files `timeout_ms`.
    pub fn set_live(&mut self, live: bool) {
        self.live = live;
    }

    /// The source dropped frames just now: shed crops for a while.
    pub fn note_overload(&mut self, now: Instant) {
        self.overloaded_at = Some(now);
    }

    pub fn counts(&self) -> SecondaryCounts {
        self.counts
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// The handle tests use to make the worker slow or failing.
    pub fn fault_injection(&self) -> Arc<FaultInjection> {
        self.fault.clone()
    }

    /// `Some("plates open")` while the breaker is not closed.
    pub fn degraded(&self) -> Option<String> {
        match self.breaker.state() {
            BreakerState::Closed => None,
            s => Some(format!("{} {}", self.def.name, s.as_str())),
        }
    }

    /// Adds the current voted text of each track that has one to `out`, as the stage kind's
    /// attribute (`plate`): drawn next to the track, read by rules with an `attribute`
    /// condition and carried by their events.
    pub fn write_attributes(&self, out: &mut TrackAttributes) {
        let name = self.def.kind.attribute();
        for (id, s) in &self.tracks {
            if let Some(r) = s.vote.result(&self.plate) {
                out.set(name, *id, r.text);
            }
        }
    }

    /// One frame: collect results, submit crops (on inference frames), wait within the
    /// budget, close tracks that ended. `cut`: whether plate crops are wanted.
    pub fn on_frame(
        &mut self,
        frame: &Frame,
        tracks: &[Track],
        inferred: bool,
        labels: &Labels,
        cut: bool,
    ) -> StageOutput {
        let mut out = StageOutput::default();
        let now = Instant::now();
        self.collect(Duration::ZERO, &mut out, frame.pts, labels, cut);
        if inferred {
            self.infer_frames += 1;
            self.submit(frame, tracks, now);
        }
        let wait = if self.live {
            Duration::from_millis(self.def.budget_ms)
        } else {
            Duration::from_millis(self.def.timeout_ms)
        };
        if !self.pending.is_empty() {
            self.collect(wait, &mut out, frame.pts, labels, cut);
        }
        self.expire(Instant::now());
        // Tracks that ended.
        let ended: Vec<TrackId> = self
            .tracks
            .keys()
            .filter(|id| !tracks.iter().any(|t| t.id == **id))
            .copied()
            .collect();
        for id in ended {
            if let Some(mut s) = self.tracks.remove(&id) {
                send(
                    &mut self.emit_ctx(),
                    id,
                    &mut s,
                    frame.pts,
                    labels,
                    cut,
                    &mut out,
                );
            }
        }
        self.export();
        out
    }

    /// The source ended: every track with a confident vote not yet sent sends it now.
    pub fn finish(&mut self, pts: Pts, labels: &Labels, cut: bool) -> StageOutput {
        let mut out = StageOutput::default();
        if !self.pending.is_empty() {
            self.collect(
                Duration::from_millis(self.def.timeout_ms),
                &mut out,
                pts,
                labels,
                cut,
            );
        }
        let mut ids: Vec<TrackId> = self.tracks.keys().copied().collect();
        ids.sort();
        for id in ids {
            if let Some(mut s) = self.tracks.remove(&id) {
                send(&mut self.emit_ctx(), id, &mut s, pts, labels, cut, &mut out);
            }
        }
        out
    }

    fn submit(&mut self, frame: &Frame, tracks: &[Track], now: Instant) {
        let shedding = self
            .overloaded_at
            .is_some_and(|t| now.saturating_duration_since(t) < SHED_FOR);
        for t in tracks {
            if !t.matched || !self.classes.contains(&t.class_id) {
                continue;
            }
            let b = t.bbox;
            if (b.x2 - b.x1) * (b.y2 - b.y1) < self.def.min_area {
                continue;
            }
            // One vehicle under two classes (two tracks on one box): read the older track.
            let eligible =
                |o: &Track| o.matched && self.classes.contains(&o.class_id) && o.id < t.id;
            if tracks.iter().any(|o| eligible(o) && o.bbox.iou(&b) > 0.6) {
                continue;
            }
            let st = self.tracks.entry(t.id).or_default();
            st.class_id = Some(t.class_id);
            st.bbox = Some(b);
            if st.emitted
                || st.attempts >= self.def.max_readings
                || st
                    .last_submit
                    .is_some_and(|f| self.infer_frames - f < u64::from(self.def.every))
                || self.pending.values().any(|p| p.track == t.id)
            {
                continue;
            }
            if shedding {
                self.counts.shed += 1;
                continue;
            }
            if !self.breaker.allow(now) {
                self.counts.skipped_open += 1;
                continue;
            }
            let r = sightline_storage::crop_rect(&b, frame.width, frame.height, 0.08, 16);
            let crop = match RgbPicture::new(r.width, r.height, sightline_storage::cut(frame, r)) {
                Ok(c) => c,
                Err(_) => continue,
            };
            let id = self.next_id;
            self.next_id += 1;
            let job = Job {
                id,
                crop,
                offset: (r.x as f32, r.y as f32),
            };
            match self.jobs.as_ref().map(|j| j.try_send(job)) {
                Some(Ok(())) => {
                    st.last_submit = Some(self.infer_frames);
                    st.attempts += 1;
                    self.counts.submitted += 1;
                    self.pending.insert(
                        id,
                        Pending {
                            track: t.id,
                            at: now,
                        },
                    );
                }
                Some(Err(TrySendError::Full(_)))
                | Some(Err(TrySendError::Disconnected(_)))
                | None => {
                    // The worker is behind (a slow model): shed, and let a half-open trial
                    // that never started be retried later.
                    self.counts.shed += 1;
                    if self.breaker.state() == BreakerState::HalfOpen {
                        self.breaker.on_failure(now);
                    }
                }
            }
        }
    }

    /// Takes finished calls, waiting up to `wait` while some are pending.
    fn collect(
        &mut self,
        wait: Duration,
        out: &mut StageOutput,
        pts: Pts,
        labels: &Labels,
        cut: bool,
    ) {
        let deadline = Instant::now() + wait;
        loop {
            let next = if wait.is_zero() {
                self.done.try_recv().ok()
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || self.pending.is_empty() {
                    None
                } else {
                    self.done.recv_timeout(left).ok()
                }
            };
            let Some(d) = next else { break };
            self.apply(d, out, pts, labels, cut);
        }
    }

    fn apply(&mut self, d: Done, out: &mut StageOutput, pts: Pts, labels: &Labels, cut: bool) {
        // A call that already counted as timed out is over; its late result is not used.
        let Some(p) = self.pending.remove(&d.id) else {
            return;
        };
        let now = Instant::now();
        crate::telemetry::SecondaryCall {
            run: &self.run,
            stage: &self.def.name,
            outcome: if d.result.is_ok() { "ok" } else { "error" },
            seconds: d.took.as_secs_f64(),
        }
        .emit();
        if d.took > Duration::from_millis(self.def.timeout_ms) {
            self.counts.timeouts += 1;
            self.breaker.on_failure(now);
            return;
        }
        match d.result {
            Ok(r) => {
                self.counts.ok += 1;
                self.counts.rejected += u64::from(r.rejected);
                self.breaker.on_success();
                let Some(best) = r.found.into_iter().next() else {
                    return;
                };
                let Some(st) = self.tracks.get_mut(&p.track) else {
                    return;
                };
                let conf = best.reading.confidence;
                st.vote.add(&best.reading);
                if st.best.as_ref().is_none_or(|(c, _)| conf > *c) {
                    st.best = Some((conf, best.crop));
                }
                if !st.emitted && st.vote.is_final(&self.plate) {
                    let mut ctx = EmitCtx {
                        name: &self.def.name,
                        plate: &self.plate,
                        watch: &self.watch,
                        recent: &mut self.recent,
                    };
                    send(&mut ctx, p.track, st, pts, labels, cut, out);
                }
            }
            Err(e) => {
                self.counts.errors += 1;
                tracing::debug!(run = %self.run, stage = %self.def.name, error = %e, "secondary call failed");
                self.breaker.on_failure(now);
            }
        }
    }

    /// Pending calls past `timeout_ms` are failures (their results are ignored if they come).
    fn expire(&mut self, now: Instant) {
        let limit = Duration::from_millis(self.def.timeout_ms);
        let late: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.at) > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.pending.remove(&id);
            self.counts.timeouts += 1;
            crate::telemetry::SecondaryCall {
                run: &self.run,
                stage: &self.def.name,
                outcome: "timeout",
                seconds: limit.as_secs_f64(),
            }
            .emit();
            self.breaker.on_failure(now);
        }
    }

    fn emit_ctx(&mut self) -> EmitCtx<'_> {
        EmitCtx {
            name: &self.def.name,
            plate: &self.plate,
            watch: &self.watch,
            recent: &mut self.recent,
        }
    }

    fn export(&self) {
        crate::telemetry::SecondaryState {
            run: &self.run,
            stage: &self.def.name,
            open: self.breaker.state() != BreakerState::Closed,
        }
        .emit();
    }
}

struct EmitCtx<'a> {
    name: &'a str,
    plate: &'a CompiledPlateSettings,
    watch: &'a WatchList,
    recent: &'a mut Vec<(String, Pts)>,
}

/// Sends the plate event of a track (once), with its crop and a watch-list match.
fn send(
    c: &mut EmitCtx<'_>,
    id: TrackId,
    s: &mut TrackState,
    pts: Pts,
    labels: &Labels,
    cut: bool,
    out: &mut StageOutput,
) {
    if s.emitted {
        return;
    }
    let Some(read) = s.vote.result(c.plate) else {
        return;
    };
    s.emitted = true;
    c.recent
        .retain(|(_, t)| (pts.millis() - t.millis()).abs() <= SAME_PLATE_WITHIN_MS);
    if c.recent.iter().any(|(k, _)| *k == read.key) {
        return;
    }
    c.recent.push((read.key.clone(), pts));
    let mut e = RuleEvent::new(EventKind::Plate, c.name, pts);
    e.track_id = Some(id);
    e.class = s.class_id.map(|k| labels.name(k).into_owned());
    e.bbox = s.bbox;
    e.confidence = Some(read.confidence);
    let matched = c.watch.check(&read.text);
    let idx = out.events.len();
    e.plate = Some(read.clone());
    out.events.push(e.clone());
    if let Some(m) = matched {
        let mut me = e;
        me.kind = EventKind::PlateMatch;
        me.plate = Some(PlateRead {
            label: Some(m.label),
            distance: Some(m.distance),
            ..read
        });
        out.events.push(me);
    }
    if cut && let Some((_, crop)) = s.best.take() {
        out.pictures.push(CutPicture {
            events: (idx..out.events.len()).collect(),
            kind: PictureKind::Crop,
            width: crop.width,
            height: crop.height,
            rgb: crop.data,
        });
    }
}

impl Drop for SecondaryStage {
    fn drop(&mut self) {
        let c = self.counts;
        tracing::info!(run = %self.run, stage = %self.def.name, submitted = c.submitted, ok = c.ok,
            errors = c.errors, timeouts = c.timeouts, shed = c.shed, skipped_open = c.skipped_open,
            rejected = c.rejected, "secondary stage closed");
        // Closing the queue ends the worker after its current call.
        self.jobs = None;
        if let Some(w) = self.worker.take() {
            drop(w);
        }
    }
}

fn worker(
    jobs: Receiver<Job>,
    done: Sender<Done>,
    models: PlateModels,
    plate: CompiledPlateSettings,
    upscale: u32,
    fault: Arc<FaultInjection>,
) {
    for job in jobs {
        let t0 = Instant::now();
        let delay = fault.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        let result = if fault.fail.load(Ordering::Relaxed) {
            Err(InferError::Runtime("injected failure".into()))
        } else {
            read_plates(&models, &job.crop, true, upscale, &plate, job.offset)
        };
        if done
            .send(Done {
                id: job.id,
                result,
                took: t0.elapsed(),
            })
            .is_err()
        {
            return;
        }
    }
}

/// Builds the stages a config asks for, loading (or reusing) their models. An error names the
/// stage and says why its models cannot be used.
pub fn build_stages(
    defs: &[SecondaryDef],
    models: &crate::models::ModelCache,
    labels: &Labels,
    run: &str,
) -> Result<Vec<SecondaryStage>, String> {
    defs.iter()
        .enumerate()
        .map(|(i, d)| {
            let reader = models
                .text_reader(d.text_detector.as_deref(), d.text_recognizer.as_deref())
                .map_err(|e| format!("secondary[{i}] ({}): {e}", d.name))?;
            let locator = locator(d, models)
                .map_err(|e| format!("secondary[{i}] ({}): plate_detector: {e}", d.name))?;
            SecondaryStage::new(d.clone(), PlateModels { reader, locator }, labels, run)
                .map_err(|e| format!("secondary[{i}] ({}): {e}", d.name))
        })
        .collect()
}

/// The stage's [`Locator`]: its `plate_detector` (loaded once and shared, like any detector),
/// or the text detector. A plate class the model does not have is an error.
pub fn locator(d: &SecondaryDef, models: &crate::models::ModelCache) -> Result<Locator, String> {
    let Some(name) = d.plate_detector.as_deref() else {
        return Ok(Locator::Text);
    };
    let model = models.get(name).map_err(|e| e.to_string())?;
    let labels = model.labels();
    let mut classes = Vec::new();
    for c in &d.plate_detector_classes {
        let id = labels.id_of(c).ok_or_else(|| {
            let names: Vec<&str> = labels.iter().collect();
            format!(
                "{name} has no class {c:?} (its classes: {})",
                names.join(", ")
            )
        })?;
        classes.push(id);
    }
    Ok(Locator::Detector {
        client: Box::new(model.client(QUEUE)),
        classes,
        min_score: d.plate_detector_score,
    })
}
