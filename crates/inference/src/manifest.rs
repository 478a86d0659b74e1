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

/// What the model does: detection (a [`ModelManifest`]) or image-to-image, such as
/// super-resolution (an [`ImageToImageManifest`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Detect,
    #[serde(rename = "image_to_image")]
    ImageToImage,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Detect => "detect",
            Task::ImageToImage => "image_to_image",
        }
    }
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
fn detect_task() -> Task {
    Task::Detect
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
    /// `"detect"` (the default).
    #[serde(default = "detect_task")]
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

fn check_name(name: &str, errs: &mut FieldErrors) {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        || name.starts_with('.')
    {
        errs.push(
            "name",
            "1-64 characters from A-Z a-z 0-9 . _ -, not starting with '.'",
        );
    }
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
        check_name(&self.name, &mut errs);
        if self.task != Task::Detect {
            errs.push("task", "a detector's manifest says task = \"detect\"");
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

fn default_tile() -> u32 {
    256
}
fn default_overlap() -> u32 {
    16
}
fn byte_range() -> [f32; 2] {
    [0.0, 255.0]
}

/// How an image-to-image model is fed and tiled. Its input is `[1,3,H,W]` float32 RGB for any
/// H×W; its output `[1,3,scale·H,scale·W]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageToImageSpec {
    /// Output size over input size, per side (1..=8).
    pub scale: u32,
    /// Largest tile side fed to the network, without the overlap (pixels, 16..=2048).
    #[serde(default = "default_tile")]
    pub tile: u32,
    /// Context taken from neighbouring tiles on each side (pixels, below `tile`, at most 256).
    #[serde(default = "default_overlap")]
    pub overlap: u32,
    /// The values 0 and 255 of an 8-bit pixel map to these input values (linear between).
    #[serde(default = "byte_range")]
    pub input_range: [f32; 2],
    /// The output values that mean 0 and 255 (clipped and rounded in between).
    #[serde(default = "byte_range")]
    pub output_range: [f32; 2],
    /// Input tensor name; default the model's only input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
}

impl ImageToImageSpec {
    /// A spec with the defaults for `scale` (tile 256, overlap 16, values 0..255).
    pub fn for_scale(scale: u32) -> ImageToImageSpec {
        ImageToImageSpec {
            scale,
            tile: default_tile(),
            overlap: default_overlap(),
            input_range: byte_range(),
            output_range: byte_range(),
            input: None,
        }
    }

    fn check(&self, errs: &mut FieldErrors) {
        let at = |f: &str| format!("image_to_image.{f}");
        if !(1..=8).contains(&self.scale) {
            errs.push(at("scale"), format!("{} is outside 1..=8", self.scale));
        }
        if !(16..=2048).contains(&self.tile) {
            errs.push(at("tile"), format!("{} is outside 16..=2048", self.tile));
        }
        if self.overlap > 256 || self.overlap >= self.tile {
            errs.push(
                at("overlap"),
                format!("{} must be at most 256 and below tile", self.overlap),
            );
        }
        for (f, [lo, hi]) in [
            ("input_range", self.input_range),
            ("output_range", self.output_range),
        ] {
            if !lo.is_finite() || !hi.is_finite() || lo >= hi {
                errs.push(
                    at(f),
                    format!("[{lo}, {hi}] must be finite with low < high"),
                );
            }
        }
        if self.input.as_deref().is_some_and(str::is_empty) {
            errs.push(at("input"), "must not be empty when given");
        }
    }
}

/// The manifest of an image-to-image model (`task = "image_to_image"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageToImageManifest {
    /// Registry name, as for detectors.
    pub name: String,
    pub task: Task,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub image_to_image: ImageToImageSpec,
}

/// Any model's manifest, chosen by its `task` field (default `"detect"`, as manifests written
/// before image-to-image models existed do not say).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Manifest {
    Detect(ModelManifest),
    ImageToImage(ImageToImageManifest),
}

impl From<ModelManifest> for Manifest {
    fn from(m: ModelManifest) -> Self {
        Manifest::Detect(m)
    }
}

impl From<ImageToImageManifest> for Manifest {
    fn from(m: ImageToImageManifest) -> Self {
        Manifest::ImageToImage(m)
    }
}

/// The `task` of a manifest, read before the rest so the right shape is parsed (and its
/// unknown fields reported against that shape).
#[derive(Deserialize)]
struct TaskOnly {
    #[serde(default)]
    task: Option<String>,
}

fn task_of(task: Option<String>) -> Result<Task, InferError> {
    match task.as_deref() {
        None | Some("detect") => Ok(Task::Detect),
        Some("image_to_image") => Ok(Task::ImageToImage),
        Some(other) => Err(InferError::ManifestParse(format!(
            "task: unknown task `{other}` (known: \"detect\", \"image_to_image\")"
        ))),
    }
}

impl Manifest {
    /// Parses TOML by its `task` (no validation beyond the format).
    pub fn from_toml_str(s: &str) -> Result<Self, InferError> {
        let t: TaskOnly =
            toml::from_str(s).map_err(|e| InferError::ManifestParse(e.message().to_string()))?;
        Ok(match task_of(t.task)? {
            Task::Detect => Manifest::Detect(ModelManifest::from_toml_str(s)?),
            Task::ImageToImage => Manifest::ImageToImage(
                toml::from_str(s)
                    .map_err(|e| InferError::ManifestParse(e.message().to_string()))?,
            ),
        })
    }

    /// Parses JSON by its `task`.
    pub fn from_json_str(s: &str) -> Result<Self, InferError> {
        let t: TaskOnly =
            serde_json::from_str(s).map_err(|e| InferError::ManifestParse(e.to_string()))?;
        Ok(match task_of(t.task)? {
            Task::Detect => Manifest::Detect(ModelManifest::from_json_str(s)?),
            Task::ImageToImage => Manifest::ImageToImage(
                serde_json::from_str(s).map_err(|e| InferError::ManifestParse(e.to_string()))?,
            ),
        })
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
        match self {
            Manifest::Detect(m) => m.to_toml_string(),
            Manifest::ImageToImage(m) => {
                toml::to_string_pretty(m).map_err(|e| InferError::ManifestParse(e.to_string()))
            }
        }
    }

    /// Checks every value; all problems at once, each with its field path.
    pub fn validate(&self) -> Result<(), InferError> {
        match self {
            Manifest::Detect(m) => m.validate(),
            Manifest::ImageToImage(m) => {
                let mut errs = FieldErrors::new();
                check_name(&m.name, &mut errs);
                if m.task != Task::ImageToImage {
                    errs.push("task", "must be \"image_to_image\"");
                }
                m.image_to_image.check(&mut errs);
                errs.into_result(()).map_err(InferError::ManifestInvalid)
            }
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Manifest::Detect(m) => &m.name,
            Manifest::ImageToImage(m) => &m.name,
        }
    }

    pub fn task(&self) -> Task {
        match self {
            Manifest::Detect(_) => Task::Detect,
            Manifest::ImageToImage(_) => Task::ImageToImage,
        }
    }

    pub fn description(&self) -> Option<&str> {
        match self {
            Manifest::Detect(m) => m.description.as_deref(),
            Manifest::ImageToImage(m) => m.description.as_deref(),
        }
    }

    /// The detector manifest, or an error naming the model's task.
    pub fn detector(&self) -> Result<&ModelManifest, InferError> {
        match self {
            Manifest::Detect(m) => Ok(m),
            Manifest::ImageToImage(m) => Err(InferError::InvalidRequest(format!(
                "model `{}` is an image_to_image model, not a detector",
                m.name
            ))),
        }
    }

    /// The image-to-image spec, if this is such a model.
    pub fn image_to_image(&self) -> Option<&ImageToImageSpec> {
        match self {
            Manifest::ImageToImage(m) => Some(&m.image_to_image),
            Manifest::Detect(_) => None,
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

    const RDN: &str = r#"
name = "rdn-medium-x2"
task = "image_to_image"

[image_to_image]
scale = 2
"#;

    #[test]
    fn task_chooses_the_shape() {
        let Manifest::ImageToImage(m) = Manifest::from_toml_str(RDN).unwrap() else {
            panic!("expected image_to_image")
        };
        assert_eq!(m.image_to_image, ImageToImageSpec::for_scale(2));
        let any = Manifest::ImageToImage(m.clone());
        any.validate().unwrap();
        assert!(any.detector().is_err());
        // Round trips through TOML and JSON.
        assert_eq!(
            Manifest::from_toml_str(&any.to_toml_string().unwrap()).unwrap(),
            any
        );
        let json = serde_json::to_string(&any).unwrap();
        assert_eq!(Manifest::from_json_str(&json).unwrap(), any);
        // A manifest without `task` is a detector (manifests from before image_to_image).
        let old = NANODET.replace("task = \"detect\"\n", "");
        assert!(!old.contains("task"));
        assert!(matches!(
            Manifest::from_toml_str(&old).unwrap(),
            Manifest::Detect(_)
        ));
        // Fields of the other shape are unknown fields of this one.
        let e = Manifest::from_toml_str(&format!("classes = \"coco\"\n{RDN}")).unwrap_err();
        assert!(e.to_string().contains("classes"), "{e}");
        let e = Manifest::from_toml_str(&RDN.replace("image_to_image\"", "upscale\"")).unwrap_err();
        assert!(e.to_string().contains("unknown task `upscale`"), "{e}");
    }

    #[test]
    fn image_to_image_values_are_checked_with_their_paths() {
        let mut m = match Manifest::from_toml_str(RDN).unwrap() {
            Manifest::ImageToImage(m) => m,
            Manifest::Detect(_) => unreachable!(),
        };
        m.image_to_image.scale = 0;
        m.image_to_image.tile = 8;
        m.image_to_image.output_range = [1.0, 1.0];
        let InferError::ManifestInvalid(errs) = Manifest::from(m).validate().unwrap_err() else {
            panic!("expected field errors")
        };
        let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "image_to_image.scale",
                "image_to_image.tile",
                "image_to_image.overlap",
                "image_to_image.output_range"
            ]
        );
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
