//! `[[secondary]]`: models applied to crops of tracked objects (issue 13). A secondary stage
//! reads each eligible track now and then (sampling below), turns what it reads into an
//! attribute of the track, and never holds up the detector: each call has a timeout, and a
//! circuit breaker skips a failing stage until it recovers (the engine's `secondary`
//! module). The one built-in kind today is `plate`: licence-plate reading with the shipped
//! PaddleOCR PP-OCRv4 models, whose own options (`[secondary.plate]`) belong to
//! `sightline-anpr`.

use serde::{Deserialize, Serialize};
use sightline_anpr::PlateSettings;
use sightline_core::FieldErrors;

/// What a secondary stage does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecondaryKind {
    /// Licence plates: text detection and recognition on vehicle crops, voted per track; one
    /// `plate` event per vehicle (and `plate_match` for watch-list hits).
    Plate,
}

impl SecondaryKind {
    /// The attribute the stage gives tracks (what rules name in `attribute`).
    pub fn attribute(self) -> &'static str {
        match self {
            SecondaryKind::Plate => "plate",
        }
    }
}

/// One secondary stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecondaryDef {
    /// Stage name: the `rule` of its events, its metrics label and its status line
    /// (`degraded: plates open`).
    pub name: String,
    pub kind: SecondaryKind,
    /// Tracks of these classes are read (names of the detector's classes).
    pub classes: Vec<String>,
    /// Smallest box (width × height, frame pixels) worth reading.
    pub min_area: f32,
    /// Read a track at most once every this many inference frames.
    pub every: u32,
    /// Stop reading a track after this many readings (it also stops once its vote is final).
    pub max_readings: u32,
    /// Crops narrower than this are upscaled (bicubic) before text detection.
    pub upscale_below: u32,
    /// Longest wait for one call (ms); a call that takes longer counts as a failure.
    pub timeout_ms: u64,
    /// Most time a frame may wait for this stage's results (ms) on a live source; results
    /// that come later are used on a later frame. Files wait up to `timeout_ms` (replays
    /// stay deterministic).
    pub budget_ms: u64,
    /// Consecutive failures (errors or timeouts) that open the circuit breaker.
    pub error_budget: u32,
    /// Seconds an open breaker waits before it lets one trial call through (half-open).
    pub open_s: u64,
    /// Text detector ONNX file (PP-OCR DB); default: the shipped `ppocr-v4/det.onnx`.
    pub text_detector: Option<String>,
    /// Text recogniser ONNX file (PP-OCR CTC, character list in its metadata); default: the
    /// shipped `ppocr-v4/rec.onnx`.
    pub text_recognizer: Option<String>,
    /// A plate detector you own, used instead of the text detector to find the plate on the
    /// vehicle: a registered model's name, or a path to its `.onnx` with its manifest beside
    /// it (`<stem>.toml` or `manifest.toml`; any detector family the engine decodes, e.g.
    /// `yolov8` trained on plates). Its boxes are read by the text recogniser. Unset: the
    /// text detector's boxes, filtered by the plate rules, are the candidates.
    pub plate_detector: Option<String>,
    /// Classes of `plate_detector` that are plates (names from its manifest); empty: every
    /// class.
    pub plate_detector_classes: Vec<String>,
    /// Lowest score of a `plate_detector` box worth reading (0..1).
    pub plate_detector_score: f32,
    /// Plate reading options: candidate filters, format, voting, watch list.
    pub plate: PlateSettings,
}

impl Default for SecondaryDef {
    fn default() -> Self {
        SecondaryDef {
            name: "plates".into(),
            kind: SecondaryKind::Plate,
            classes: ["car", "truck", "bus", "motorcycle"]
                .map(String::from)
                .to_vec(),
            min_area: 3000.0,
            every: 2,
            max_readings: 12,
            upscale_below: 320,
            timeout_ms: 500,
            budget_ms: 60,
            error_budget: 5,
            open_s: 30,
            text_detector: None,
            text_recognizer: None,
            plate_detector: None,
            plate_detector_classes: Vec::new(),
            plate_detector_score: 0.3,
            plate: PlateSettings::default(),
        }
    }
}

/// Checks every `[[secondary]]` entry; `labels` are the detector's class names when known.
pub(crate) fn validate(defs: &[SecondaryDef], labels: Option<&[String]>, e: &mut FieldErrors) {
    for (i, d) in defs.iter().enumerate() {
        let p = format!("secondary[{i}]");
        if d.name.trim().is_empty() || d.name.len() > 64 {
            e.push(format!("{p}.name"), "must be 1 to 64 characters");
        }
        if defs[..i].iter().any(|o| o.name == d.name) {
            e.push(
                format!("{p}.name"),
                format!("duplicate stage name {:?}", d.name),
            );
        }
        if d.classes.is_empty() {
            e.push(format!("{p}.classes"), "must name at least one class");
        }
        if !(0.0..=1.0).contains(&d.plate_detector_score) {
            e.push(format!("{p}.plate_detector_score"), "must be within 0..1");
        }
        if d.plate_detector
            .as_deref()
            .is_some_and(|m| m.trim().is_empty())
        {
            e.push(
                format!("{p}.plate_detector"),
                "must name a model or a path (or be left out)",
            );
        }
        if let Some(names) = labels {
            for (j, c) in d.classes.iter().enumerate() {
                if !names.iter().any(|n| n == c) {
                    e.push(
                        format!("{p}.classes[{j}]"),
                        format!("unknown class {c:?} for this model"),
                    );
                }
            }
        }
        if d.min_area.is_nan() || d.min_area < 0.0 {
            e.push(format!("{p}.min_area"), "must be ≥ 0");
        }
        for (f, v) in [
            ("every", u64::from(d.every)),
            ("max_readings", u64::from(d.max_readings)),
            ("error_budget", u64::from(d.error_budget)),
            ("open_s", d.open_s),
        ] {
            if v == 0 {
                e.push(format!("{p}.{f}"), "must be at least 1");
            }
        }
        if !(1..=60_000).contains(&d.timeout_ms) {
            e.push(format!("{p}.timeout_ms"), "must be within 1..=60000");
        }
        if d.budget_ms > d.timeout_ms {
            e.push(format!("{p}.budget_ms"), "must not exceed timeout_ms");
        }
        if d.upscale_below > 2048 {
            e.push(format!("{p}.upscale_below"), "must be at most 2048");
        }
        if let Err(errs) = d.plate.validate() {
            for fe in errs {
                e.push(format!("{p}.plate.{}", fe.path), fe.message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        ["person", "car", "truck", "bus", "motorcycle"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn defaults_are_valid() {
        let mut e = FieldErrors::new();
        validate(&[SecondaryDef::default()], Some(&labels()), &mut e);
        assert!(e.is_empty(), "{e}");
    }

    #[test]
    fn each_problem_names_its_field() {
        let mut bad = SecondaryDef {
            classes: vec!["car".into(), "boat".into()],
            every: 0,
            budget_ms: 900,
            ..SecondaryDef::default()
        };
        bad.plate.format = Some("([A-Z".into());
        let dup = SecondaryDef::default();
        let mut e = FieldErrors::new();
        validate(&[bad, dup.clone(), dup], Some(&labels()), &mut e);
        let paths: Vec<&str> = e.iter().map(|f| f.path.as_str()).collect();
        for want in [
            "secondary[0].classes[1]",
            "secondary[0].every",
            "secondary[0].budget_ms",
            "secondary[0].plate.format",
            "secondary[2].name",
        ] {
            assert!(paths.contains(&want), "{want} missing from {paths:?}");
        }
    }
}
