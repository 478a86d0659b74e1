//! Model manifests: everything about an ONNX file that the file itself does not say.
//!
//! An ONNX graph says its tensor shapes but not how its pixels must be prepared (colour
//! order, normalisation, resize mode), how its outputs are laid out (which decoder family),
//! nor what its classes are called. The manifest carries those facts next to the model
//! (`models/<name>/manifest.toml`, or JSON for the HTTP upload). Parsing rejects unknown
//! fields, and [`ModelManifest::validate`] reports every bad value with its field path.

use crate::coco::COCO_CLASSES;
use crate::error::InferError;
use serde::{Deserialize, Serialize};
use sightline_core::{FieldErrors, Labels};
use std::path::Path;

/// What the model does. Only detection exists today; segmentation and image-to-image models
/// will add variants (and decoders) later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detect,
}

/// How a detector's raw outputs are laid out (chooses the decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// NanoDet: per stride, class scores `[B,N,C]` (sigmoid applied) and side distributions
    /// `[B,N,4*(R+1)]` (softmax over bins, distance = Σ p_i·i·stride).
    Nanodet,
    /// Already-decoded `[B,K,6]` = x1,y1,x2,y2 (input pixels), score, class.
    Centernet,
    /// YOLOv5: `[B,A,5+C]` = cx,cy,w,h (input pixels), objectness, class scores.
    Yolov5,
    /// YOLOv8 / YOLO11: `[B,4+C,A]` = cx,cy,w,h, class scores (no objectness).
    #[serde(alias = "yolo11", alias = "yolov11")]
    Yolov8,
    /// YOLOv10 and other end-to-end exports: `[B,K,6]` = x1,y1,x2,y2, score, class; no NMS.
    #[serde(alias = "end2end")]
    Yolov10,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Nanodet => "nanodet",
            Family::Centernet => "centernet",
            Family::Yolov5 => "yolov5",
            Family::Yolov8 => "yolov8",
            Family::Yolov10 => "yolov10",
        }
    }

    /// Whether boxes still need non-maximum suppression after decoding.
    pub fn needs_nms(self) -> bool {
        matches!(self, Family::Nanodet | Family::Yolov5 | Family::Yolov8)
    }
}

/// Tensor memory layout of the image input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    #[default]
    Rgb,
    Bgr,
}

/// How a frame is fitted into the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Scale each axis independently (aspect ratio not kept).
    #[default]
    Stretch,
    /// Keep the aspect ratio, centre, pad the rest with `pad_value`.
    Letterbox,
}

/// Class names: a list, or the name of a built-in list (`"coco"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassNames {
    Preset(String),
    List(Vec<String>),
}

/// The image input: size, layout and the arithmetic applied to each 8-bit value `v`:
/// `(v * scale - mean[c]) / std[c]`, with `mean`/`std` given in the model's channel order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input width in pixels.
    pub width: u32,
    /// Input height in pixels.
    pub height: u32,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub color: ColorOrder,
    #[serde(default)]
    pub resize: ResizeMode,
    /// Multiplies each 8-bit value first (e.g. `0.00392156862745098` for 1/255).
    #[serde(default = "one")]
    pub scale: f32,
    /// Subtracted per channel after scaling.
    #[serde(default = "zeros")]
    pub mean: [f32; 3],
    /// Divides per channel after subtracting the mean.
    #[serde(default = "ones")]
    pub std: [f32; 3],
    /// Grey level of letterbox padding (before normalisation).
    #[serde(default = "pad_grey")]
    pub pad_value: u8,
    /// Input tensor name; default the model's first input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

fn one() -> f32 {
    1.0
}
fn zeros() -> [f32; 3] {
    [0.0; 3]
}
fn ones() -> [f32; 3] {
    [1.0; 3]
}
fn pad_grey() -> u8 {
    114
}
fn default_max_detections() -> usize {
    300
}

/// The manifest of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    /// Registry name: letters, digits, `.`, `_`, `-`; at most 64 characters.
    pub name: String,
    pub task: Task,
    pub family: Family,
    /// Free text shown in listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input: InputSpec,
    /// Output tensor names the decoder reads, in the order it wants them; default: chosen
    /// by the decoder from the model's outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<String>>,
    pub classes: ClassNames,
    /// Detections scoring below this are discarded (0..1).
    pub score_threshold: f32,
    /// Boxes of one class overlapping more than this are suppressed (0..1).
    pub iou_threshold: f32,
    /// At most this many detections per frame, best first.
    #[serde(default = "default_max_detections")]
    pub max_detections: usize,
}

impl ModelManifest {
    /// Parses TOML (no validation beyond the format; see [`validate`](Self::validate)).
    pub fn from_toml_str(s: &str) -> Result<Self, InferError> {
        toml::from_str(s).map_err(|e| InferError::ManifestParse(e.message().to_string()))
    }

    /// Parses JSON.
    pub fn from_json_str(s: &str) -> Result<Self, InferError> {
        serde_json::from_str(s).map_err(|e| InferError::ManifestParse(e.to_string()))
    }

    /// Reads, parses (TOML, or JSON for `.json`) and validates a manifest file.
    pub fn from_path(path: &Path) -> Result<Self, InferError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| InferError::io(format!("reading manifest {}", path.display()), e))?;
        let m = if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::from_json_str(&text)?
        } else {
            Self::from_toml_str(&text)?
        };
        m.validate()?;
        Ok(m)
    }

    pub fn to_toml_string(&self) -> Result<String, InferError> {
        toml::to_string_pretty(self).map_err(|e| InferError::ManifestParse(e.to_string()))
    }

    /// Checks every value; all problems are reported at once, each with its field path.
    pub fn validate(&self) -> Result<(), InferError> {
        let mut errs = FieldErrors::new();
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || self.name.starts_with('.')
        {
            errs.push(
                "name",
                "1-64 characters from A-Z a-z 0-9 . _ -, not starting with '.'",
            );
        }
        let i = &self.input;
        for (field, v) in [("input.width", i.width), ("input.height", i.height)] {
            if v == 0 || v > 8192 {
                errs.push(field, format!("{v} is outside 1..=8192"));
            }
        }
        if !i.scale.is_finite() || i.scale == 0.0 {
            errs.push("input.scale", "must be a finite, non-zero number");
        }
        for c in 0..3 {
            if !i.mean[c].is_finite() {
                errs.push(format!("input.mean[{c}]"), "must be finite");
            }
            if !i.std[c].is_finite() || i.std[c] == 0.0 {
                errs.push(format!("input.std[{c}]"), "must be finite and non-zero");
            }
        }
        for (field, v) in [
            ("score_threshold", self.score_threshold),
            ("iou_threshold", self.iou_threshold),
        ] {
            if !(0.0..=1.0).contains(&v) {
                errs.push(field, format!("{v} is outside 0..=1"));
            }
        }
        if self.max_detections == 0 {
            errs.push("max_detections", "must be at least 1");
        }
        match &self.classes {
            ClassNames::Preset(p) if p != "coco" => {
                errs.push("classes", format!("unknown preset `{p}` (known: \"coco\")"));
            }
            ClassNames::List(l) if l.is_empty() => errs.push("classes", "must not be empty"),
            _ => {}
        }
        if let Some(outs) = &self.outputs
            && outs.is_empty()
        {
            errs.push("outputs", "must not be empty when given");
        }
        errs.into_result(()).map_err(InferError::ManifestInvalid)
    }

    /// The class names.
    pub fn labels(&self) -> Labels {
        match &self.classes {
            ClassNames::List(l) => Labels::new(l.iter().cloned()),
            ClassNames::Preset(_) => Labels::new(COCO_CLASSES.iter().copied()),
        }
    }

    /// Number of classes the decoder should expect.
    pub fn num_classes(&self) -> usize {
        match &self.classes {
            ClassNames::List(l) => l.len(),
            ClassNames::Preset(_) => COCO_CLASSES.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NANODET: &str = r#"
name = "nanodet-m-416"
task = "detect"
family = "nanodet"
classes = "coco"
score_threshold = 0.35
iou_threshold = 0.5

[input]
width = 416
height = 416
layout = "nchw"
color = "bgr"
resize = "stretch"
mean = [103.53, 116.28, 123.675]
std = [57.375, 57.12, 58.395]
"#;

    #[test]
    fn parses_and_validates() {
        let m = ModelManifest::from_toml_str(NANODET).unwrap();
        m.validate().unwrap();
        assert_eq!(m.family, Family::Nanodet);
        assert_eq!(m.input.color, ColorOrder::Bgr);
        assert_eq!(m.input.scale, 1.0);
        assert_eq!(m.max_detections, 300);
        assert_eq!(m.labels().len(), 80);
        assert_eq!(m.labels().name(sightline_core::ClassId(2)), "car");
        // TOML and JSON round trips give the same manifest.
        let again = ModelManifest::from_toml_str(&m.to_toml_string().unwrap()).unwrap();
        assert_eq!(again, m);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(ModelManifest::from_json_str(&json).unwrap(), m);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let bad = NANODET.replace("iou_threshold = 0.5", "iou_threshold = 0.5\nbatch = 4");
        let e = ModelManifest::from_toml_str(&bad).unwrap_err();
        assert!(matches!(e, InferError::ManifestParse(_)));
        assert!(e.to_string().contains("batch"), "{e}");
        let bad = NANODET.replace("resize = \"stretch\"", "resize = \"stretch\"\nstd_dev = 1");
        assert!(ModelManifest::from_toml_str(&bad).is_err());
        let bad = NANODET.replace("family = \"nanodet\"", "family = \"ssd\"");
        assert!(ModelManifest::from_toml_str(&bad).is_err());
    }

    #[test]
    fn aliases() {
        let m =
            ModelManifest::from_toml_str(&NANODET.replace("\"nanodet\"", "\"yolo11\"")).unwrap();
        assert_eq!(m.family, Family::Yolov8);
        assert!(Family::Yolov8.needs_nms());
        assert!(!Family::Yolov10.needs_nms());
    }

    #[test]
    fn every_bad_value_is_reported_with_its_path() {
        let mut m = ModelManifest::from_toml_str(NANODET).unwrap();
        m.name = "../etc".into();
        m.input.width = 0;
        m.input.std[1] = 0.0;
        m.score_threshold = 1.5;
        m.classes = ClassNames::Preset("voc".into());
        let InferError::ManifestInvalid(errs) = m.validate().unwrap_err() else {
            panic!("expected field errors")
        };
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "name",
                "input.width",
                "input.std[1]",
                "score_threshold",
                "classes"
            ]
        );
    }
}
