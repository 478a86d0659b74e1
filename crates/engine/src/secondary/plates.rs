//! Reading the plates in one picture: the orchestration of the OCR models (`inference`) and
//! the plate rules (`sightline-anpr`). Used by the plate stage on vehicle crops, by
//! `sightline anpr` and by `POST /v1/infer?pipeline=anpr` on whole pictures.

use sightline_anpr::{CompiledPlateSettings, Reading, Region, TextBox, accept, filter_candidates};
use sightline_core::{BBox, ClassId, Frame, Pts};
use sightline_inference::ocr::warp_quad;
use sightline_inference::{
    DetectOptions, InferClient, InferError, RgbPicture, TextQuad, TextReader,
};

/// Text boxes read per picture at most (best candidates first).
const MAX_READ: usize = 3;

/// One accepted plate reading.
#[derive(Debug, Clone)]
pub struct PlateFound {
    pub reading: Reading,
    /// The plate cut upright out of the picture (perspective-corrected), packed RGB.
    pub crop: RgbPicture,
}

/// What reading one picture gave.
#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    /// Accepted readings, best candidate box first.
    pub found: Vec<PlateFound>,
    /// Text boxes the detector found.
    pub boxes: usize,
    /// Boxes read whose text was refused (too short or long, format, low confidence).
    pub rejected: u32,
}

/// The models that read plates: the OCR models (shared by every run) and how the plates are
/// found before they are read.
#[derive(Debug)]
pub struct PlateModels {
    pub reader: std::sync::Arc<TextReader>,
    pub locator: Locator,
}

/// How plates are found in a picture before they are read.
#[derive(Default)]
pub enum Locator {
    /// The text detector's boxes (PP-OCR DB), kept when they look like a plate (aspect,
    /// character height, position on the vehicle: `sightline-anpr`'s candidate filter).
    #[default]
    Text,
    /// A plate detector the user owns (any detector the registry loads, e.g. a YOLOv8 model
    /// trained on plates): its boxes of `classes` (every class when empty) are the plates.
    Detector {
        client: Box<InferClient>,
        classes: Vec<ClassId>,
        min_score: f32,
    },
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Locator::Text => f.write_str("Text"),
            Locator::Detector {
                classes, min_score, ..
            } => f
                .debug_struct("Detector")
                .field("classes", classes)
                .field("min_score", min_score)
                .finish(),
        }
    }
}

/// Margin added above and below a plate detector's box before it is read, as a fraction of
/// the box's height: detectors fit the plate's border tightly, and the recogniser reads
/// better with a little background around the characters.
const DETECTOR_MARGIN_Y: f32 = 0.12;
/// Margin added left and right, as a fraction of the box's width (at least the vertical
/// margin): a box a little short of the plate's ends would cut off its first or last
/// character, a wider one only adds background.
const DETECTOR_MARGIN_X: f32 = 0.10;

/// Plate candidates from a plate detector: its boxes of the wanted classes, best first, with
/// a margin, clipped to the picture, as quads (clockwise from the top-left corner).
pub fn detector_candidates(
    dets: &[sightline_core::Detection],
    classes: &[ClassId],
    min_score: f32,
    width: f32,
    height: f32,
) -> Vec<TextBox> {
    let mut keep: Vec<&sightline_core::Detection> = dets
        .iter()
        .filter(|d| d.score >= min_score && (classes.is_empty() || classes.contains(&d.class_id)))
        .filter(|d| d.bbox.is_finite() && d.bbox.width() > 1.0 && d.bbox.height() > 1.0)
        .collect();
    keep.sort_by(|a, b| b.score.total_cmp(&a.score));
    keep.into_iter()
        .map(|d| {
            let my = d.bbox.height() * DETECTOR_MARGIN_Y;
            let mx = my.max(d.bbox.width() * DETECTOR_MARGIN_X);
            let (x1, y1) = ((d.bbox.x1 - mx).max(0.0), (d.bbox.y1 - my).max(0.0));
            let (x2, y2) = ((d.bbox.x2 + mx).min(width), (d.bbox.y2 + my).min(height));
            TextBox {
                quad: [[x1, y1], [x2, y1], [x2, y2], [x1, y2]],
                score: d.score,
            }
        })
        .collect()
}

/// Reads the plates in `pic`. `vehicle`: the picture is a crop of a vehicle (position rules
/// apply); otherwise a close-up or a whole image. Pictures narrower than `upscale_below`
/// are enlarged (Catmull-Rom, at most ×4) before reading. Plate boxes are in `pic`'s pixels,
/// shifted by `offset`.
pub fn read_plates(
    models: &PlateModels,
    pic: &RgbPicture,
    vehicle: bool,
    upscale_below: u32,
    settings: &CompiledPlateSettings,
    offset: (f32, f32),
) -> Result<ReadOutcome, InferError> {
    let k = if pic.width < upscale_below {
        (upscale_below as f32 / pic.width.max(1) as f32).min(4.0)
    } else {
        1.0
    };
    let up;
    let work = if k > 1.0 {
        up = enlarge(pic, k)?;
        &up
    } else {
        pic
    };
    let region = Region {
        width: work.width as f32,
        height: work.height as f32,
        vehicle,
    };
    let reader = &models.reader;
    let (candidates, found) = match &models.locator {
        Locator::Text => {
            let quads = reader.detect(work)?;
            let boxes: Vec<TextBox> = quads
                .iter()
                .map(|q| TextBox {
                    quad: q.points,
                    score: q.score,
                })
                .collect();
            (filter_candidates(&boxes, &region, settings), quads.len())
        }
        Locator::Detector {
            client,
            classes,
            min_score,
        } => {
            let frame = Frame::from_rgb(work.width, work.height, Pts::ZERO, work.data.clone())
                .ok_or_else(|| {
                    InferError::InvalidFrame("picture size does not match its data".into())
                })?;
            let opts = DetectOptions {
                score_threshold: Some(*min_score),
                ..DetectOptions::default()
            };
            let dets = client.infer(&frame, &opts)?;
            let boxes =
                detector_candidates(&dets, classes, *min_score, region.width, region.height);
            (boxes, dets.len())
        }
    };
    let mut out = ReadOutcome {
        boxes: found,
        ..ReadOutcome::default()
    };
    let (kx, ky) = (
        pic.width as f32 / work.width as f32,
        pic.height as f32 / work.height as f32,
    );
    for cand in candidates.into_iter().take(MAX_READ) {
        let quad = TextQuad {
            points: cand.quad,
            score: cand.score,
        };
        let crop = warp_quad(work, &quad);
        let line = reader.recognize_line(&crop)?;
        let b = cand.bbox();
        let plate_box = BBox::new(
            b.x1 * kx + offset.0,
            b.y1 * ky + offset.1,
            b.x2 * kx + offset.0,
            b.y2 * ky + offset.1,
        );
        match accept(&line.text, &line.char_conf, Some(plate_box), settings) {
            Ok(reading) => out.found.push(PlateFound { reading, crop }),
            Err(why) => {
                tracing::trace!(text = %line.text, %why, "text refused as a plate");
                out.rejected += 1;
            }
        }
    }
    Ok(out)
}

fn enlarge(pic: &RgbPicture, k: f32) -> Result<RgbPicture, InferError> {
    let img = image::RgbImage::from_raw(pic.width, pic.height, pic.data.clone())
        .ok_or_else(|| InferError::InvalidFrame("picture size does not match its data".into()))?;
    let (w, h) = (
        (pic.width as f32 * k).round() as u32,
        (pic.height as f32 * k).round() as u32,
    );
    let out = image::imageops::resize(&img, w, h, image::imageops::FilterType::CatmullRom);
    RgbPicture::new(w, h, out.into_raw())
}

/// A plate found in a still picture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StillPlate {
    pub text: String,
    pub confidence: f32,
    #[serde(rename = "box")]
    pub bbox: BBox,
    /// The vehicle it was read on; `None` when read on the whole picture.
    pub vehicle: Option<StillVehicle>,
}

/// A vehicle found by the detector in a still picture.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StillVehicle {
    pub class: String,
    pub score: f32,
    #[serde(rename = "box")]
    pub bbox: BBox,
}

/// Reads the plates of a still picture: the detector finds vehicles of `classes` (their
/// best reading each); when none gives a plate, the whole picture is read (close-ups).
pub fn read_still(
    detector: &sightline_inference::InferClient,
    labels: &sightline_core::Labels,
    classes: &[String],
    models: &PlateModels,
    frame: &sightline_core::Frame,
    upscale_below: u32,
    settings: &CompiledPlateSettings,
) -> Result<Vec<StillPlate>, InferError> {
    let dets = detector.infer(frame, &sightline_inference::DetectOptions::default())?;
    let mut out: Vec<StillPlate> = Vec::new();
    for d in dets {
        let class = labels.name(d.class_id).into_owned();
        if !classes.contains(&class) {
            continue;
        }
        // The same vehicle under two classes (NanoDet suppresses per class): read it once.
        if out.iter().any(|p| {
            p.vehicle
                .as_ref()
                .is_some_and(|v| v.bbox.iou(&d.bbox) > 0.6)
        }) {
            continue;
        }
        let r = sightline_storage::crop_rect(&d.bbox, frame.width, frame.height, 0.08, 16);
        let crop = RgbPicture::new(r.width, r.height, sightline_storage::cut(frame, r))?;
        let got = read_plates(
            models,
            &crop,
            true,
            upscale_below,
            settings,
            (r.x as f32, r.y as f32),
        )?;
        if let Some(best) = got.found.into_iter().next() {
            out.push(StillPlate {
                text: best.reading.text,
                confidence: best.reading.confidence,
                bbox: best.reading.plate_bbox.unwrap_or(d.bbox),
                vehicle: Some(StillVehicle {
                    class,
                    score: d.score,
                    bbox: d.bbox,
                }),
            });
        }
    }
    if out.is_empty() {
        let whole = RgbPicture::new(frame.width, frame.height, frame.data.clone())?;
        let got = read_plates(models, &whole, false, upscale_below, settings, (0.0, 0.0))?;
        for f in got.found {
            if out.iter().any(|p| p.text == f.reading.text) {
                continue;
            }
            out.push(StillPlate {
                bbox: f.reading.plate_bbox.unwrap_or_default(),
                text: f.reading.text,
                confidence: f.reading.confidence,
                vehicle: None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Detection;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class: u32) -> Detection {
        Detection {
            bbox: BBox::new(x1, y1, x2, y2),
            score,
            class_id: ClassId(class),
        }
    }

    #[test]
    fn detector_boxes_become_candidates_best_first_with_a_margin() {
        let dets = [
            det(100.0, 100.0, 300.0, 150.0, 0.6, 0),
            det(10.0, 10.0, 50.0, 20.0, 0.2, 0), // below the score
            det(120.0, 200.0, 220.0, 220.0, 0.9, 1), // not a plate class
            det(0.0, 280.0, 100.0, 300.0, 0.8, 0), // clipped to the picture
            det(f32::NAN, 0.0, 10.0, 10.0, 0.99, 0), // not finite
        ];
        let got = detector_candidates(&dets, &[ClassId(0)], 0.3, 320.0, 300.0);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].score, 0.8);
        let r = |q: [[f32; 2]; 4]| q.map(|p| p.map(|v| (v * 100.0).round() / 100.0));
        // 100 x 20 box: 2.4 px above and below, max(2.4, 10) = 10 px left and right.
        assert_eq!(
            r(got[0].quad),
            [[0.0, 277.6], [110.0, 277.6], [110.0, 300.0], [0.0, 300.0]]
        );
        // 200 x 50: 6 px above and below, 20 px left and right (clipped at 320).
        assert_eq!(
            r(got[1].quad),
            [[80.0, 94.0], [320.0, 94.0], [320.0, 156.0], [80.0, 156.0]]
        );
        // No class named: every class.
        assert_eq!(detector_candidates(&dets, &[], 0.3, 320.0, 300.0).len(), 3);
    }
}
