//! The per-frame work of a run, independent of where frames come from and go to:
//! sample (every Nth frame) → inference → tracker → rules → overlay. The run loop, the
//! replay tests and `sightline bench` all drive this one struct, so what is measured is what
//! runs in production.

use crate::models::LoadedModel;
use crate::secondary::SecondaryStage;
use sightline_analytics::RuleEngine;
use sightline_config::PictureSource;
use sightline_config::PipelineConfig;
use sightline_core::{
    ClassId, EventKind, Frame, Labels, PictureKind, Pts, RuleEvent, Track, TrackAttributes,
};
use sightline_inference::{DetectOptions, InferClient, InferError};
use sightline_overlay::{Painter, Scene, SceneLine, SceneObject, SceneZone};
use sightline_tracking::Tracker;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time spent in each stage for one frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimings {
    /// Pre-processing + queue + session + post-processing (zero on skipped frames).
    pub infer: Duration,
    pub track: Duration,
    pub rules: Duration,
    pub draw: Duration,
    /// Secondary stages: submitting crops and waiting for results within their budget.
    pub secondary: Duration,
    /// Cutting event pictures out of the frame (zero on frames without events).
    pub pictures: Duration,
    /// Turning an I420 frame into RGB for the stages that read pixels (inference, secondary
    /// stages, pictures); zero for RGB frames and for I420 frames nothing reads.
    pub convert: Duration,
    /// Whether this frame went through inference.
    pub inferred: bool,
    /// Whether this frame was due for inference but skipped it: the motion gate saw
    /// nothing move (`[model.motion_gate]`).
    pub gated: bool,
    /// Time the motion gate took to decide (zero when it is off).
    pub gate: Duration,
}

/// A picture cut from a frame for one of its events, waiting to be encoded and stored
/// (off the run thread, by the media store's writer).
#[derive(Debug)]
pub struct CutPicture {
    /// Indexes of the events (in this frame's events) the picture belongs to: one for a
    /// crop; every event of the frame that wants a snapshot shares one snapshot.
    pub events: Vec<usize>,
    pub kind: PictureKind,
    pub width: u32,
    pub height: u32,
    /// Packed RGB24.
    pub rgb: Vec<u8>,
}

/// Why a frame could not be processed.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("inference: {0}")]
    Infer(#[from] InferError),
    #[error("rules: {0}")]
    Rules(String),
    #[error("overlay: {0}")]
    Overlay(String),
    #[error("colour conversion: {0}")]
    Convert(String),
}

/// Status text drawn in the corner of each frame.
#[derive(Debug, Clone, Default)]
pub struct StatusText {
    pub lines: Vec<String>,
    pub timestamp: Option<String>,
}

/// The per-frame stages of one run.
pub struct FrameProcessor {
    config: Arc<PipelineConfig>,
    model: Arc<LoadedModel>,
    client: InferClient,
    detect: DetectOptions,
    labels: Labels,
    tracker: Tracker,
    rules: Option<RuleEngine>,
    rules_size: (u32, u32),
    painter: Painter,
    frame_index: u64,
    infer_timeout: Duration,
    /// Cut event pictures (only when something stores them).
    cut_pictures: bool,
    pictures: Vec<CutPicture>,
    /// Secondary stages (plates), in config order.
    secondary: Vec<SecondaryStage>,
    /// The inference interval now: the config's, raised while a live source drops frames.
    governor: crate::degrade::IntervalGovernor,
    /// What the secondary stages know of this frame's tracks (rebuilt every frame).
    attributes: TrackAttributes,
    /// I420 frames → RGB for the stages that read pixels (only on the frames they read).
    rgb: sightline_media::RgbConverter,
    /// Skips inference when nothing moved (`[model.motion_gate]`).
    motion: crate::motion::MotionGateState,
}

impl FrameProcessor {
    /// Builds the stages for `config` using `model` (already loaded and shared).
    pub fn new(config: Arc<PipelineConfig>, model: Arc<LoadedModel>) -> Result<Self, StageError> {
        let labels = model.labels().clone();
        let detect = detect_options(&config, &labels);
        let client = model.client(2);
        let painter =
            Painter::new(config.draw.clone()).map_err(|e| StageError::Overlay(e.to_string()))?;
        let governor = crate::degrade::IntervalGovernor::new(config.model.interval);
        let motion = crate::motion::MotionGateState::new(config.model.motion_gate.clone());
        Ok(FrameProcessor {
            tracker: Tracker::new(config.tracker.clone()),
            config,
            model,
            client,
            detect,
            labels,
            rules: None,
            rules_size: (0, 0),
            painter,
            frame_index: 0,
            infer_timeout: Duration::from_secs(30),
            cut_pictures: false,
            pictures: Vec::new(),
            attributes: TrackAttributes::default(),
            secondary: Vec::new(),
            governor,
            rgb: sightline_media::RgbConverter::new(),
            motion,
        })
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn config(&self) -> &Arc<PipelineConfig> {
        &self.config
    }

    /// Cut the pictures of each event (`[media]` of the config) for [`Self::take_pictures`].
    pub fn set_cut_pictures(&mut self, on: bool) {
        self.cut_pictures = on;
    }

    /// Installs the secondary stages (built by the caller, who owns the shared models).
    pub fn set_secondary(&mut self, stages: Vec<SecondaryStage>) {
        self.secondary = stages;
    }

    pub fn secondary(&self) -> &[SecondaryStage] {
        &self.secondary
    }

    /// Live sources bound each frame's wait for secondary results by the stage's budget;
    /// files wait up to its timeout (deterministic replays).
    pub fn set_live(&mut self, live: bool) {
        for s in &mut self.secondary {
            s.set_live(live);
        }
    }

    /// The source is dropping frames: secondary stages shed their crops for a while, and if
    /// it goes on the inference interval goes up (see [`crate::degrade`]).
    pub fn note_overload(&mut self, now: Instant) {
        for s in &mut self.secondary {
            s.note_overload(now);
        }
        if self.governor.note_overload(now) {
            tracing::warn!(
                interval = self.governor.interval(),
                configured = self.governor.base(),
                "the source keeps dropping frames: inferring every {}th frame",
                self.governor.interval()
            );
        }
    }

    /// Inference runs on every `inference_interval()`-th frame now.
    pub fn inference_interval(&self) -> u32 {
        self.governor.interval()
    }

    /// What is degraded now (`plates open`, `interval 1→2`), for the run's status.
    pub fn degraded(&self) -> Vec<String> {
        self.secondary
            .iter()
            .filter_map(SecondaryStage::degraded)
            .chain(self.governor.degraded())
            .collect()
    }

    /// The source ended: secondary stages send the votes they still hold (stamped `pts`);
    /// their pictures are in [`Self::take_pictures`].
    pub fn finish(&mut self, pts: Pts) -> Vec<RuleEvent> {
        self.pictures.clear();
        let mut events = Vec::new();
        for s in &mut self.secondary {
            let out = s.finish(pts, &self.labels, self.cut_pictures);
            merge(&mut events, &mut self.pictures, out);
        }
        events
    }

    /// The pictures cut during the last [`Self::process`] call.
    pub fn take_pictures(&mut self) -> Vec<CutPicture> {
        std::mem::take(&mut self.pictures)
    }

    /// Inference requests this run's queue had to drop.
    pub fn infer_dropped(&self) -> u64 {
        self.client.dropped()
    }

    /// Applies a new config version at a frame boundary. The tracker keeps its tracks unless
    /// its own settings changed; rule state restarts with the new rules.
    pub fn reconfigure(
        &mut self,
        config: Arc<PipelineConfig>,
        model: Arc<LoadedModel>,
    ) -> Result<(), StageError> {
        if !Arc::ptr_eq(&model, &self.model) {
            self.labels = model.labels().clone();
            self.client = model.client(2);
            self.model = model;
        }
        if config.tracker != self.config.tracker {
            self.tracker = Tracker::new(config.tracker.clone());
        }
        self.painter
            .set_style(config.draw.clone())
            .map_err(|e| StageError::Overlay(e.to_string()))?;
        self.detect = detect_options(&config, &self.labels);
        if config.model.interval.max(1) != self.governor.base() {
            self.governor = crate::degrade::IntervalGovernor::new(config.model.interval);
        }
        if config.model.motion_gate != *self.motion.settings() {
            self.motion = crate::motion::MotionGateState::new(config.model.motion_gate.clone());
        }
        self.config = config;
        self.rules = None;
        Ok(())
    }

    /// Runs the stages on one frame, drawing in place. Returns the rule events of this frame.
    pub fn process(
        &mut self,
        frame: &mut Frame,
        status: &StatusText,
    ) -> Result<(Vec<RuleEvent>, StageTimings), StageError> {
        let mut t = StageTimings::default();
        if self.governor.tick(Instant::now()) {
            tracing::info!(
                interval = self.governor.interval(),
                configured = self.governor.base(),
                "no dropped frames for a while: inference interval stepped back"
            );
        }
        let interval = u64::from(self.governor.interval());
        let mut infer_now = self.frame_index.is_multiple_of(interval);
        self.frame_index += 1;
        if infer_now && self.motion.settings().enabled {
            let tg = Instant::now();
            infer_now = self.motion.decide(frame).infer();
            t.gated = !infer_now;
            t.gate = tg.elapsed();
        }

        // An I420 frame is turned into RGB only when a stage reads its pixels this frame.
        let mut rgb: Option<Frame> = None;
        if !frame.is_rgb() && (infer_now || !self.secondary.is_empty()) {
            let tc = Instant::now();
            rgb = Some(to_rgb(&mut self.rgb, frame)?);
            t.convert = tc.elapsed();
        }
        let t0 = Instant::now();
        let tracks: &[Track] = if infer_now {
            let dets = self
                .client
                .submit(rgb.as_ref().unwrap_or(&*frame), &self.detect)?
                .wait(self.infer_timeout)?;
            t.infer = t0.elapsed();
            t.inferred = true;
            let t1 = Instant::now();
            let tr = self.tracker.update(frame.pts, &dets);
            t.track = t1.elapsed();
            tr
        } else {
            let tr = self.tracker.predict(frame.pts);
            t.track = t0.elapsed();
            tr
        };

        let ts = Instant::now();
        let mut secondary_events = Vec::new();
        let mut secondary_pictures = Vec::new();
        for s in &mut self.secondary {
            let view = rgb.as_ref().unwrap_or(&*frame);
            let out = s.on_frame(view, tracks, t.inferred, &self.labels, self.cut_pictures);
            merge(&mut secondary_events, &mut secondary_pictures, out);
        }
        self.attributes.clear();
        for s in &self.secondary {
            s.write_attributes(&mut self.attributes);
        }
        t.secondary = ts.elapsed();

        let t2 = Instant::now();
        if self.rules.is_none() || self.rules_size != (frame.width, frame.height) {
            let cfg = &self.config;
            let engine = RuleEngine::new(
                &cfg.zones,
                &cfg.lines,
                &cfg.rules,
                frame.width,
                frame.height,
                &self.labels,
            )
            .map_err(|e| StageError::Rules(e.to_string()))?;
            self.rules = Some(engine);
            self.rules_size = (frame.width, frame.height);
        }
        let rules = self.rules.as_mut().expect("rule engine built above");
        let mut events = rules.process_with(frame.pts, tracks, &self.attributes);
        t.rules = t2.elapsed();

        self.pictures.clear();
        let base = events.len();
        events.extend(secondary_events);
        for mut p in secondary_pictures {
            for i in &mut p.events {
                *i += base;
            }
            self.pictures.push(p);
        }
        let want = self.cut_pictures && !events.is_empty();
        if want {
            let tp = Instant::now();
            if !frame.is_rgb() && rgb.is_none() {
                rgb = Some(to_rgb(&mut self.rgb, frame)?);
            }
            cut(
                &self.config.media,
                &mut self.pictures,
                rgb.as_ref().unwrap_or(&*frame),
                &events,
                PictureSource::Raw,
            );
            t.pictures = tp.elapsed();
        }
        drop(rgb);
        let t3 = Instant::now();
        draw(
            &mut self.painter,
            frame,
            tracks,
            &self.labels,
            &self.attributes,
            rules,
            status,
        );
        if self.config.draw.clock_code {
            let ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            sightline_overlay::clock_code::stamp(frame, ms);
        }
        t.draw = t3.elapsed();
        if want && self.wants_annotated_pictures() {
            let tp = Instant::now();
            let annotated = if frame.is_rgb() {
                None
            } else {
                Some(to_rgb(&mut self.rgb, frame)?)
            };
            cut(
                &self.config.media,
                &mut self.pictures,
                annotated.as_ref().unwrap_or(&*frame),
                &events,
                PictureSource::Annotated,
            );
            t.pictures += tp.elapsed();
        }
        Ok((events, t))
    }

    /// Whether crops or snapshots are cut from the annotated frame.
    fn wants_annotated_pictures(&self) -> bool {
        let m = &self.config.media;
        (m.crops && m.crop_source == PictureSource::Annotated)
            || (m.snapshots && m.snapshot_source == PictureSource::Annotated)
    }

    /// Draws the "signal lost" slate onto `frame`.
    pub fn draw_slate(&mut self, frame: &mut Frame, title: &str, detail: &str) {
        self.painter.draw_slate(frame, title, detail);
    }
}

/// An RGB copy of an I420 frame (GStreamer's converter: the same bytes `videoconvert` would
/// give).
fn to_rgb(conv: &mut sightline_media::RgbConverter, frame: &Frame) -> Result<Frame, StageError> {
    conv.to_rgb(frame)
        .map_err(|e| StageError::Convert(e.to_string()))
}

/// Cuts the pictures of `events` whose configured source is `from` out of `frame`.
fn cut(
    m: &sightline_config::PipelineMedia,
    out: &mut Vec<CutPicture>,
    frame: &Frame,
    events: &[RuleEvent],
    from: PictureSource,
) {
    let mut snapshot: Option<usize> = None;
    for (i, e) in events.iter().enumerate() {
        if !m.wants(e.kind) {
            continue;
        }
        // Plate events carry the plate itself as their crop (cut by the plate stage).
        let plate = matches!(e.kind, EventKind::Plate | EventKind::PlateMatch);
        if m.crops
            && !plate
            && m.crop_source == from
            && let Some(b) = &e.bbox
        {
            let r = sightline_storage::crop_rect(
                b,
                frame.width,
                frame.height,
                m.crop_margin,
                m.crop_min_size,
            );
            out.push(CutPicture {
                events: vec![i],
                kind: PictureKind::Crop,
                width: r.width,
                height: r.height,
                rgb: sightline_storage::cut(frame, r),
            });
        }
        if m.snapshots && m.snapshot_source == from {
            match snapshot {
                Some(j) => out[j].events.push(i),
                None => {
                    snapshot = Some(out.len());
                    out.push(CutPicture {
                        events: vec![i],
                        kind: PictureKind::Snapshot,
                        width: frame.width,
                        height: frame.height,
                        rgb: frame.data.clone(),
                    });
                }
            }
        }
    }
}

fn detect_options(config: &PipelineConfig, labels: &Labels) -> DetectOptions {
    let classes: Option<Vec<ClassId>> = if config.model.classes.is_empty() {
        None
    } else {
        Some(
            config
                .model
                .classes
                .iter()
                .filter_map(|c| labels.id_of(c))
                .collect(),
        )
    };
    DetectOptions {
        score_threshold: config.model.score_threshold,
        iou_threshold: config.model.iou_threshold,
        classes,
    }
}

/// Appends a stage's events and pictures (re-indexed) to a frame's.
fn merge(
    events: &mut Vec<RuleEvent>,
    pictures: &mut Vec<CutPicture>,
    out: crate::secondary::StageOutput,
) {
    let base = events.len();
    events.extend(out.events);
    for mut p in out.pictures {
        for i in &mut p.events {
            *i += base;
        }
        pictures.push(p);
    }
}

fn draw(
    painter: &mut Painter,
    frame: &mut Frame,
    tracks: &[Track],
    labels: &Labels,
    attrs: &TrackAttributes,
    rules: &RuleEngine,
    status: &StatusText,
) {
    let names: Vec<std::borrow::Cow<'_, str>> = tracks
        .iter()
        .map(|t| {
            let a = attrs.of(t.id);
            if a.is_empty() {
                return labels.name(t.class_id);
            }
            let values: Vec<&str> = a.values().map(String::as_str).collect();
            std::borrow::Cow::Owned(format!("{} {}", labels.name(t.class_id), values.join(" ")))
        })
        .collect();
    let objects: Vec<SceneObject<'_>> = tracks
        .iter()
        .zip(&names)
        .filter(|(t, _)| t.misses == 0)
        .map(|(t, n)| SceneObject {
            bbox: t.bbox,
            class_id: t.class_id,
            class_name: n,
            score: t.score,
            track_id: Some(t.id),
        })
        .collect();
    let snap = rules.snapshot();
    let zones: Vec<SceneZone<'_>> = snap
        .zones
        .iter()
        .map(|z| SceneZone {
            name: &z.name,
            polygon: &z.polygon,
            color: z
                .color
                .as_deref()
                .and_then(sightline_overlay::Color::from_hex),
            count: Some(z.occupancy),
        })
        .collect();
    let lines: Vec<SceneLine<'_>> = snap
        .lines
        .iter()
        .map(|l| SceneLine {
            name: &l.name,
            a: l.a,
            b: l.b,
            in_count: l.in_count,
            out_count: l.out_count,
            in_label: l.in_label.as_deref(),
            out_label: l.out_label.as_deref(),
            color: None,
        })
        .collect();
    let status_lines: Vec<&str> = status.lines.iter().map(String::as_str).collect();
    let scene = Scene {
        objects: &objects,
        zones: &zones,
        lines: &lines,
        status: &status_lines,
        timestamp: status.timestamp.as_deref(),
    };
    painter.draw_scene(frame, &scene);
}
