//! The per-frame work of a run, independent of where frames come from and go to:
//! sample (every Nth frame) → inference → tracker → rules → overlay. The run loop, the
//! replay tests and `sightline bench` all drive this one struct, so what is measured is what
//! runs in production.

use crate::models::LoadedModel;
use sightline_analytics::RuleEngine;
use sightline_config::PipelineConfig;
use sightline_core::{ClassId, Frame, Labels, RuleEvent, Track};
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
    /// Whether this frame went through inference.
    pub inferred: bool,
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
}

impl FrameProcessor {
    /// Builds the stages for `config` using `model` (already loaded and shared).
    pub fn new(config: Arc<PipelineConfig>, model: Arc<LoadedModel>) -> Result<Self, StageError> {
        let labels = model.labels().clone();
        let detect = detect_options(&config, &labels);
        let client = model.client(2);
        let painter =
            Painter::new(config.draw.clone()).map_err(|e| StageError::Overlay(e.to_string()))?;
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
        })
    }

    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    pub fn config(&self) -> &Arc<PipelineConfig> {
        &self.config
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
        let interval = u64::from(self.config.model.interval.max(1));
        let infer_now = self.frame_index.is_multiple_of(interval);
        self.frame_index += 1;

        let t0 = Instant::now();
        let tracks: &[Track] = if infer_now {
            let dets = self
                .client
                .submit(frame, &self.detect)?
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
        let events = rules.process(frame.pts, tracks);
        t.rules = t2.elapsed();

        let t3 = Instant::now();
        draw(
            &mut self.painter,
            frame,
            tracks,
            &self.labels,
            rules,
            status,
        );
        t.draw = t3.elapsed();
        Ok((events, t))
    }

    /// Draws the "signal lost" slate onto `frame`.
    pub fn draw_slate(&mut self, frame: &mut Frame, title: &str, detail: &str) {
        self.painter.draw_slate(frame, title, detail);
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

fn draw(
    painter: &mut Painter,
    frame: &mut Frame,
    tracks: &[Track],
    labels: &Labels,
    rules: &RuleEngine,
    status: &StatusText,
) {
    let names: Vec<std::borrow::Cow<'_, str>> =
        tracks.iter().map(|t| labels.name(t.class_id)).collect();
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
