//! The per-customer pipeline config: which model, thresholds, how often to infer, tracker
//! settings, zones, lines, rules, drawing style, output and retry policies. TOML or JSON,
//! `deny_unknown_fields` everywhere, and one validation pass that reports every problem with
//! its field path (`rules[2].zone: unknown zone "dock"`).
//!
//! Each section's type lives with the component that executes it (tracker settings in
//! `tracking`, zones/lines/rules in `analytics`, the drawing style in `overlay`); this crate
//! composes them into the file format, checks the cross-references and generates the JSON
//! Schema (`docs/schema/pipeline-config.schema.json`).

use crate::policy::{self, ConnectPolicy, ReconnectPolicy, WatchdogPolicy};
use serde::{Deserialize, Serialize};
use sightline_analytics::{LineDef, RuleDef, ZoneDef};
use sightline_core::{FieldErrors, Labels};
use sightline_overlay::DrawStyle;
use sightline_tracking::TrackerSettings;
use std::collections::BTreeMap;

/// A customer's pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// The detector and how to use it.
    pub model: ModelSection,
    /// Multi-object tracker (ByteTrack-style).
    pub tracker: TrackerSettings,
    /// Named polygons.
    pub zones: BTreeMap<String, ZoneDef>,
    /// Named counting lines.
    pub lines: BTreeMap<String, LineDef>,
    /// Rules, evaluated in order on every frame.
    pub rules: Vec<RuleDef>,
    /// How results are drawn onto the republished stream.
    pub draw: DrawStyle,
    /// Where the annotated stream goes.
    pub output: OutputSection,
    /// Event pictures (crops, snapshots) and continuous recording.
    pub media: crate::media::PipelineMedia,
    /// Source unreachable at start.
    pub connect: ConnectPolicy,
    /// Source lost while running.
    pub reconnect: ReconnectPolicy,
    /// Restart of a run that makes no progress.
    pub watchdog: WatchdogPolicy,
    /// Secondary stages on crops of tracked objects (licence plates).
    pub secondary: Vec<crate::secondary::SecondaryDef>,
}

/// The detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// Registry name of the model (`sightline models list`), e.g. `nanodet-m-416`.
    pub name: String,
    /// Minimum detection score; default: the model manifest's.
    pub score_threshold: Option<f32>,
    /// NMS IoU threshold; default: the model manifest's.
    pub iou_threshold: Option<f32>,
    /// Only these classes are kept (empty: all of the model's classes).
    pub classes: Vec<String>,
    /// Run inference on every Nth frame; the tracker predicts the frames in between.
    pub interval: u32,
    /// Skip inference on frames where nothing moved (off by default).
    pub motion_gate: MotionGate,
}

/// Motion gating: a frame due for inference is compared with the last inferred one on a
/// small grid of luma averages; when too little of the picture changed, inference is skipped
/// and the tracker predicts, as between `interval` frames. A still camera then costs little
/// more than decoding and encoding. Off by default: a change below the threshold (a small,
/// slow object far away) is only seen at the next refresh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct MotionGate {
    /// Turn the gate on.
    pub enabled: bool,
    /// A grid cell counts as changed when its mean luma moved by more than this (0–255
    /// levels).
    pub cell_delta: u8,
    /// Infer when at least this fraction of the picture's cells changed (0–1).
    pub min_area: f64,
    /// Infer at least this often anyway, in seconds of stream time (new objects that do not
    /// move, lighting drifts).
    pub refresh_s: f64,
}

impl Default for MotionGate {
    fn default() -> Self {
        MotionGate {
            enabled: false,
            cell_delta: 10,
            min_area: 0.001,
            refresh_s: 1.0,
        }
    }
}

impl Default for ModelSection {
    fn default() -> Self {
        ModelSection {
            name: "nanodet-m-416".into(),
            score_threshold: None,
            iou_threshold: None,
            classes: Vec::new(),
            interval: 1,
            motion_gate: MotionGate::default(),
        }
    }
}

/// Output of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Publish the annotated stream at `rtsp://HOST:PORT/runs/{id}`.
    pub rtsp: bool,
    /// Also record to this MP4 file; `{run_id}` is replaced by the run id. Relative paths
    /// are under the data directory.
    pub mp4: Option<String>,
    /// H.264 bitrate in kbit/s.
    pub bitrate_kbps: u32,
    /// Seconds between keyframes (how long a new viewer waits for a picture).
    pub keyframe_interval_s: f64,
    /// Pixel format of frames between decoder and encoder: `i420` (the decoder's own: no
    /// full-frame colour conversion; RGB is made only for the frames inference, secondary
    /// stages or pictures read, byte for byte as before) or `rgb` (every frame converted to
    /// RGB after decoding and back before encoding).
    pub frame_format: FrameFormat,
    /// Height of the annotated stream in pixels, even, 64–4320 (the width follows the
    /// source's aspect ratio); default: the source's own. Only scales down: detection,
    /// rules and pictures always use the full source frame. At 1080p, `height = 720` about
    /// halves the encoder's cost.
    pub height: Option<u32>,
}

/// See [`OutputSection::frame_format`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FrameFormat {
    #[default]
    I420,
    Rgb,
}

impl Default for OutputSection {
    fn default() -> Self {
        OutputSection {
            rtsp: true,
            mp4: None,
            bitrate_kbps: 2000,
            keyframe_interval_s: 1.0,
            frame_format: FrameFormat::I420,
            height: None,
        }
    }
}

/// Why a pipeline config could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PipelineConfigError {
    /// Syntax error or a field of the wrong type or name.
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Parsed, but the values are inconsistent.
    #[error("invalid pipeline config:\n{0}")]
    Invalid(FieldErrors),
}

impl PipelineConfigError {
    /// Every error as field errors (a parse error is one).
    pub fn field_errors(&self) -> FieldErrors {
        match self {
            PipelineConfigError::Parse { path, message } => {
                let mut e = FieldErrors::new();
                e.push(path.clone(), message.clone());
                e
            }
            PipelineConfigError::Invalid(e) => e.clone(),
        }
    }
}

impl sightline_core::error::Classify for PipelineConfigError {
    fn kind(&self) -> sightline_core::ErrorKind {
        sightline_core::ErrorKind::InvalidInput
    }
}

fn path_or_root(p: &serde_path_to_error::Path) -> String {
    let s = p.to_string();
    if s == "." || s.is_empty() {
        "(root)".into()
    } else {
        s
    }
}

impl PipelineConfig {
    /// The detector a stored config (its JSON body) runs, as a run records it in `models`;
    /// empty when the body does not parse (stored versions were validated on the way in).
    pub fn models_of(body: &serde_json::Value) -> Vec<String> {
        serde_json::from_value::<PipelineConfig>(body.clone())
            .map(|p| vec![p.model.name])
            .unwrap_or_default()
    }

    /// Parses TOML; the error names the field.
    pub fn from_toml(text: &str) -> Result<PipelineConfig, PipelineConfigError> {
        // An array where a table belongs (serde would fill the struct by position).
        if let Ok(doc) = toml::from_str::<toml::Value>(text)
            && let Ok(doc) = serde_json::to_value(doc)
            && let Some((path, message)) =
                crate::shape::array_for_object(&doc, &Self::json_schema())
        {
            return Err(PipelineConfigError::Parse { path, message });
        }
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = path_or_root(e.path());
            let inner = e.into_inner();
            PipelineConfigError::Parse {
                path,
                message: inner.message().to_owned(),
            }
        })
    }

    /// Parses JSON; the error names the field.
    pub fn from_json(text: &str) -> Result<PipelineConfig, PipelineConfigError> {
        // An array where an object belongs (serde would fill the struct by position).
        if let Ok(doc) = serde_json::from_str::<serde_json::Value>(text)
            && let Some((path, message)) =
                crate::shape::array_for_object(&doc, &Self::json_schema())
        {
            return Err(PipelineConfigError::Parse { path, message });
        }
        let de = &mut serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| PipelineConfigError::Parse {
            path: path_or_root(e.path()),
            message: e.inner().to_string(),
        })
    }

    /// Parses by file extension (`.json` is JSON, anything else TOML).
    pub fn from_file(path: &std::path::Path) -> Result<PipelineConfig, PipelineConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineConfigError::Parse {
            path: "(file)".into(),
            message: format!("cannot read {}: {e}", path.display()),
        })?;
        if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        }
    }

    /// Checks every section and every cross-reference. With `labels` (the model's classes),
    /// class names used anywhere must exist in the model.
    pub fn validate(&self, labels: Option<&Labels>) -> Result<(), FieldErrors> {
        let mut e = FieldErrors::new();
        let m = &self.model;
        if m.name.trim().is_empty() {
            e.push("model.name", "must name a model");
        }
        if m.interval == 0 {
            e.push("model.interval", "must be at least 1 (1 = every frame)");
        }
        let g = &m.motion_gate;
        if g.cell_delta == 0 {
            e.push("model.motion_gate.cell_delta", "must be at least 1");
        }
        if !(g.min_area > 0.0 && g.min_area <= 1.0) {
            e.push("model.motion_gate.min_area", "must be within (0, 1]");
        }
        if !(g.refresh_s > 0.0 && g.refresh_s <= 3600.0) {
            e.push(
                "model.motion_gate.refresh_s",
                "must be within (0, 3600] seconds",
            );
        }
        for (p, v) in [
            ("model.score_threshold", m.score_threshold),
            ("model.iou_threshold", m.iou_threshold),
        ] {
            if let Some(v) = v
                && !(0.0..=1.0).contains(&v)
            {
                e.push(p, "must be within 0..1");
            }
        }
        let names: Option<Vec<String>> = labels.map(|l| l.iter().map(str::to_owned).collect());
        if let Some(names) = &names {
            for (i, c) in m.classes.iter().enumerate() {
                if !names.iter().any(|n| n == c) {
                    e.push(
                        format!("model.classes[{i}]"),
                        format!(
                            "unknown class {c:?}; the model's classes are: {}",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
        self.tracker.validate("tracker", &mut e);
        if let Err(errs) =
            sightline_analytics::validate(&self.zones, &self.lines, &self.rules, names.as_deref())
        {
            e.extend(errs);
        }
        self.draw.validate("draw", &mut e);
        let o = &self.output;
        if o.bitrate_kbps < 50 {
            e.push("output.bitrate_kbps", "must be at least 50");
        }
        if !(o.keyframe_interval_s > 0.0 && o.keyframe_interval_s <= 10.0) {
            e.push(
                "output.keyframe_interval_s",
                "must be within (0, 10] seconds",
            );
        }
        if let Some(p) = &o.mp4
            && !p.ends_with(".mp4")
        {
            e.push("output.mp4", "must end with .mp4");
        }
        if let Some(h) = o.height
            && (!(64..=4320).contains(&h) || !h.is_multiple_of(2))
        {
            e.push(
                "output.height",
                "must be an even number of pixels from 64 to 4320",
            );
        }
        self.media.validate("media", &mut e);
        crate::secondary::validate(&self.secondary, names.as_deref(), &mut e);
        self.validate_rule_attributes(&mut e);
        policy::validate(&self.connect, &self.reconnect, &self.watchdog, &mut e);
        e.into_result(())
    }

    /// A rule's `attribute` must be one a `[[secondary]]` stage gives tracks.
    fn validate_rule_attributes(&self, e: &mut FieldErrors) {
        let given: Vec<&str> = self.secondary.iter().map(|s| s.kind.attribute()).collect();
        for (i, rule) in self.rules.iter().enumerate() {
            if let (Some(a), _) = rule.attribute()
                && !given.contains(&a)
            {
                let known = if given.is_empty() {
                    "this config has no [[secondary]] stage".to_owned()
                } else {
                    format!("the stages here give: {}", given.join(", "))
                };
                e.push(
                    format!("rules[{i}].attribute"),
                    format!("no [[secondary]] stage gives tracks the attribute {a:?} ({known})"),
                );
            }
        }
    }

    /// The JSON Schema of the file format.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(PipelineConfig)).unwrap_or_default()
    }
}
