//! The two OCR networks in ONNX Runtime sessions: text detection (DB) and recognition (CTC).

use super::ctc::{TextLine, ctc_greedy};
use super::db::{DbParams, TextQuad, boxes_from_map};
use crate::error::InferError;
use crate::runtime::{self, Provider, RuntimeOptions};
use crate::upscale::RgbPicture;
use imageproc::geometric_transformations::{Interpolation, Projection, warp_into};
use ort::session::Session;
use ort::value::TensorRef;
use parking_lot::Mutex;
use std::path::Path;

/// How pictures are prepared for the two networks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OcrOptions {
    /// The detector sees the picture resized so that its longer side is this many pixels
    /// (rounded to a multiple of 32): small vehicle crops are upscaled, large ones shrunk.
    pub det_side: u32,
    pub db: DbParams,
    /// Height of the recogniser's input (48 for PP-OCRv4).
    pub rec_height: u32,
    /// Narrowest recogniser input (PP-OCRv4 is trained on 320-wide lines; narrower crops are
    /// padded).
    pub rec_min_width: u32,
    /// Widest recogniser input (longer lines are squeezed).
    pub rec_max_width: u32,
}

impl Default for OcrOptions {
    fn default() -> Self {
        OcrOptions {
            det_side: 640,
            db: DbParams::default(),
            rec_height: 48,
            rec_min_width: 320,
            rec_max_width: 960,
        }
    }
}

/// PaddleOCR-style detector and recogniser, one session each, shared by all callers (each
/// call locks the session it uses, so two callers run the detector and the recogniser at
/// once).
pub struct TextReader {
    det: Mutex<Session>,
    rec: Mutex<Session>,
    det_input: String,
    rec_input: String,
    charset: Vec<String>,
    provider: Provider,
    opts: OcrOptions,
}

impl std::fmt::Debug for TextReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextReader")
            .field("charset", &self.charset.len())
            .field("provider", &self.provider)
            .field("opts", &self.opts)
            .finish()
    }
}

impl TextReader {
    /// Opens the detector `det` and the recogniser `rec`. The recogniser's character list is
    /// read from its metadata (`character`, one per line; PP-OCR appends a space as the last
    /// class). Both networks get a dry run, so a file that is not such a model is refused
    /// here with the reason, not at the first plate.
    pub fn open(
        det: &Path,
        rec: &Path,
        runtime: &RuntimeOptions,
        opts: OcrOptions,
    ) -> Result<TextReader, InferError> {
        for (what, p) in [("text detector", det), ("text recogniser", rec)] {
            if !p.is_file() {
                return Err(InferError::invalid_model(
                    what,
                    format!("{} is not a file", p.display()),
                ));
            }
        }
        let d = runtime::build_session("text-detector", det, runtime)?;
        let r = runtime::build_session("text-recogniser", rec, runtime)?;
        let det_input = single_input(&d.session, "text-detector")?;
        let rec_input = single_input(&r.session, "text-recogniser")?;
        let chars = r
            .session
            .metadata()
            .map_err(|e| InferError::invalid_model("text-recogniser", e.to_string()))?
            .custom("character")
            .ok_or_else(|| {
                InferError::invalid_model(
                    "text-recogniser",
                    "no `character` list in the model metadata",
                )
            })?;
        let mut charset: Vec<String> = chars.lines().map(str::to_string).collect();
        charset.push(" ".to_string());
        let reader = TextReader {
            det: Mutex::new(d.session),
            rec: Mutex::new(r.session),
            det_input,
            rec_input,
            charset,
            provider: d.provider,
            opts,
        };
        let probe = RgbPicture::new(64, 32, vec![255; 64 * 32 * 3])?;
        reader
            .detect(&probe)
            .map_err(|e| InferError::invalid_model("text-detector", format!("dry run: {e}")))?;
        let quad = TextQuad {
            points: [[0.0, 0.0], [63.0, 0.0], [63.0, 31.0], [0.0, 31.0]],
            score: 1.0,
        };
        reader
            .recognize(&probe, &quad)
            .map_err(|e| InferError::invalid_model("text-recogniser", format!("dry run: {e}")))?;
        tracing::info!(
            characters = reader.charset.len(),
            provider = reader.provider.name(),
            "OCR models loaded"
        );
        Ok(reader)
    }

    pub fn options(&self) -> &OcrOptions {
        &self.opts
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// Text boxes in `pic`, in its pixels.
    pub fn detect(&self, pic: &RgbPicture) -> Result<Vec<TextQuad>, InferError> {
        let side = self.opts.det_side.max(32) as f32;
        let k = side / pic.width.max(pic.height) as f32;
        let round32 = |v: f32| (((v / 32.0).round() as u32).max(1)) * 32;
        let (w, h) = (
            round32(pic.width as f32 * k),
            round32(pic.height as f32 * k),
        );
        let resized = resize(pic, w, h);
        // PaddleOCR feeds BGR with ImageNet mean/std on 0..1.
        const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
        const STD: [f32; 3] = [0.229, 0.224, 0.225];
        let plane = (w * h) as usize;
        let mut input = vec![0f32; plane * 3];
        for (i, px) in resized.chunks_exact(3).enumerate() {
            let bgr = [px[2], px[1], px[0]];
            for c in 0..3 {
                input[c * plane + i] = (f32::from(bgr[c]) / 255.0 - MEAN[c]) / STD[c];
            }
        }
        let tensor = TensorRef::from_array_view(([1usize, 3, h as usize, w as usize], &*input))
            .map_err(|e| InferError::Runtime(e.to_string()))?;
        let mut s = self.det.lock();
        let out = s
            .run(ort::inputs![self.det_input.as_str() => tensor])
            .map_err(|e| runtime::classify_run_error(e.message()))?;
        let (shape, data) = out[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| InferError::Runtime(format!("text detector output: {e}")))?;
        let (mh, mw) = match &shape[..] {
            [1, 1, mh, mw] => (*mh as u32, *mw as u32),
            other => {
                return Err(InferError::invalid_model(
                    "text-detector",
                    format!("output shape {other:?}, expected [1,1,H,W]"),
                ));
            }
        };
        Ok(boxes_from_map(
            data,
            mw,
            mh,
            &self.opts.db,
            (pic.width as f32 / mw as f32, pic.height as f32 / mh as f32),
            (pic.width as f32, pic.height as f32),
        ))
    }

    /// Reads the text in `quad` of `pic` (cut out upright with a perspective warp).
    pub fn recognize(&self, pic: &RgbPicture, quad: &TextQuad) -> Result<TextLine, InferError> {
        let line = warp_quad(pic, quad);
        self.recognize_line(&line)
    }

    /// Reads a picture that is one upright line of text.
    pub fn recognize_line(&self, line: &RgbPicture) -> Result<TextLine, InferError> {
        let o = &self.opts;
        let ratio = line.width as f32 / line.height.max(1) as f32;
        let tw = ((o.rec_height as f32 * ratio).ceil() as u32).clamp(8, o.rec_max_width);
        let iw = tw.max(o.rec_min_width);
        let h = o.rec_height;
        let resized = resize(line, tw, h);
        let plane = (iw * h) as usize;
        // Right padding is 0 after normalisation, as in PaddleOCR.
        let mut input = vec![0f32; plane * 3];
        for y in 0..h as usize {
            for x in 0..tw as usize {
                let px = &resized[(y * tw as usize + x) * 3..][..3];
                let bgr = [px[2], px[1], px[0]];
                for c in 0..3 {
                    input[c * plane + y * iw as usize + x] = f32::from(bgr[c]) / 127.5 - 1.0;
                }
            }
        }
        let tensor = TensorRef::from_array_view(([1usize, 3, h as usize, iw as usize], &*input))
            .map_err(|e| InferError::Runtime(e.to_string()))?;
        let mut s = self.rec.lock();
        let out = s
            .run(ort::inputs![self.rec_input.as_str() => tensor])
            .map_err(|e| runtime::classify_run_error(e.message()))?;
        let (shape, data) = out[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| InferError::Runtime(format!("text recogniser output: {e}")))?;
        let classes = match &shape[..] {
            [1, _, c] => *c as usize,
            other => {
                return Err(InferError::invalid_model(
                    "text-recogniser",
                    format!("output shape {other:?}, expected [1,T,C]"),
                ));
            }
        };
        if classes != self.charset.len() + 1 {
            return Err(InferError::invalid_model(
                "text-recogniser",
                format!(
                    "{classes} output classes for {} characters (+ blank)",
                    self.charset.len()
                ),
            ));
        }
        Ok(ctc_greedy(data, classes, &self.charset))
    }
}

fn single_input(s: &Session, model: &str) -> Result<String, InferError> {
    match s.inputs() {
        [one] => Ok(one.name().to_string()),
        other => Err(InferError::invalid_model(
            model,
            format!("expected one image input, the model has {}", other.len()),
        )),
    }
}

/// Bilinear resize of packed RGB to `w`×`h`.
fn resize(pic: &RgbPicture, w: u32, h: u32) -> Vec<u8> {
    match image::RgbImage::from_raw(pic.width, pic.height, pic.data.clone()) {
        Some(img) => {
            image::imageops::resize(&img, w, h, image::imageops::FilterType::Triangle).into_raw()
        }
        None => vec![0; (w * h * 3) as usize],
    }
}

/// Cuts the quad out of `pic` as an upright rectangle (perspective-corrected): width the
/// longer of its top and bottom edges, height the longer of its sides. A line much taller
/// than wide (vertical text) is turned a quarter to read left to right.
pub fn warp_quad(pic: &RgbPicture, quad: &TextQuad) -> RgbPicture {
    let w = quad.width().round().max(1.0) as u32;
    let h = quad.height().round().max(1.0) as u32;
    let src = quad.points.map(|[x, y]| (x, y));
    let dst = [
        (0.0, 0.0),
        (w as f32, 0.0),
        (w as f32, h as f32),
        (0.0, h as f32),
    ];
    let mut out = image::RgbImage::new(w, h);
    if let (Some(img), Some(proj)) = (
        image::RgbImage::from_raw(pic.width, pic.height, pic.data.clone()),
        Projection::from_control_points(src, dst),
    ) {
        warp_into(
            &img,
            &proj,
            Interpolation::Bilinear,
            image::Rgb([0, 0, 0]),
            &mut out,
        );
    }
    let out = if h as f32 >= w as f32 * 1.5 {
        image::imageops::rotate270(&out)
    } else {
        out
    };
    let (ow, oh) = out.dimensions();
    RgbPicture {
        width: ow,
        height: oh,
        data: out.into_raw(),
    }
}
