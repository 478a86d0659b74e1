//! Image-to-image models (super-resolution), run tile by tile (issue 16).
//!
//! An image-to-image model (`task = "image_to_image"` in its manifest, e.g. the RDN networks
//! shipped in `models/rdn-medium-x{2,4}/`) takes RGB as `[1,3,H,W]` float32 (values scaled
//! to the manifest's `input_range`) and gives `[1,3,s·H,s·W]` back, for any H×W. A large picture is cut into tiles of at most
//! `tile`×`tile` pixels, each run with `overlap` pixels of its neighbours around it (clamped
//! to the picture), and only the tile's own region of the result is kept: memory stays bounded
//! by the tile size, and the output equals the untiled result wherever the network's receptive
//! field fits in the overlap (tested; within ±1 level near the seams otherwise).
//!
//! A run can be cancelled from another thread ([`Cancel`]): the ONNX Runtime call in flight is
//! terminated through its run options (the CPU or GPU stops working on it), and no further
//! tile starts.
//!
//! The tiling plan ([`plan_tiles`]) is pure; the session and the pixels are the edge.

use crate::error::InferError;
use crate::manifest::ImageToImageSpec;
use crate::registry::ModelRecord;
use crate::runtime::{self, Provider, RuntimeOptions};
use ort::session::{RunOptions, Session};
use ort::value::{TensorElementType, TensorRef, ValueType};
use parking_lot::Mutex;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// One tile: the region it produces (`core`) and the region fed to the network (`padded`,
/// the core plus the overlap, clamped to the picture).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    pub core: Rect,
    pub padded: Rect,
}

/// Tiling of a `width`×`height` picture: cores of at most `tile` pixels a side that cover the
/// picture exactly once, row by row; each padded by `overlap` on every side inside the picture.
/// A picture that fits in one tile is one tile (no padding needed).
pub fn plan_tiles(width: u32, height: u32, tile: u32, overlap: u32) -> Vec<Tile> {
    let tile = tile.max(1);
    let mut out = Vec::new();
    let mut y = 0;
    while y < height {
        let h = tile.min(height - y);
        let mut x = 0;
        while x < width {
            let w = tile.min(width - x);
            let px = x.saturating_sub(overlap);
            let py = y.saturating_sub(overlap);
            let pw = (x + w + overlap).min(width) - px;
            let ph = (y + h + overlap).min(height) - py;
            out.push(Tile {
                core: Rect { x, y, w, h },
                padded: Rect {
                    x: px,
                    y: py,
                    w: pw,
                    h: ph,
                },
            });
            x += w;
        }
        y += h;
    }
    out
}

/// How a picture is tiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TileOptions {
    /// Largest tile side fed to the network, without the overlap (pixels).
    pub tile: u32,
    /// Context taken from the neighbouring tiles on each side (pixels).
    pub overlap: u32,
}

impl Default for TileOptions {
    fn default() -> Self {
        TileOptions {
            tile: 256,
            overlap: 16,
        }
    }
}

/// Cancels an upscale from any thread: the tile being computed is terminated inside ONNX
/// Runtime and no further tile starts.
#[derive(Clone)]
pub struct Cancel {
    flag: Arc<AtomicBool>,
    options: Arc<RunOptions>,
}

impl std::fmt::Debug for Cancel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cancel")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancel {
    pub fn new() -> Result<Cancel, InferError> {
        Ok(Cancel {
            flag: Arc::new(AtomicBool::new(false)),
            options: Arc::new(
                RunOptions::new().map_err(|e| InferError::Runtime(e.message().to_string()))?,
            ),
        })
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Err(e) = self.options.terminate() {
            tracing::warn!(error = %e, "could not terminate the running upscale");
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// An RGB picture, 8 bits per channel, rows packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbPicture {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl RgbPicture {
    pub fn new(width: u32, height: u32, data: Vec<u8>) -> Result<RgbPicture, InferError> {
        if width == 0 || height == 0 || data.len() != width as usize * height as usize * 3 {
            return Err(InferError::InvalidFrame(format!(
                "{width}x{height} RGB needs {} bytes, got {}",
                width as usize * height as usize * 3,
                data.len()
            )));
        }
        Ok(RgbPicture {
            width,
            height,
            data,
        })
    }
}

/// A super-resolution network in one ONNX Runtime session (one tile at a time).
pub struct Upscaler {
    name: String,
    scale: u32,
    spec: ImageToImageSpec,
    provider: Provider,
    input_name: String,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Upscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upscaler")
            .field("name", &self.name)
            .field("scale", &self.scale)
            .field("provider", &self.provider)
            .finish()
    }
}

impl Upscaler {
    /// Opens a registry record of an image-to-image model.
    pub fn from_record(rec: &ModelRecord, opts: &RuntimeOptions) -> Result<Upscaler, InferError> {
        let spec = rec.manifest.image_to_image().ok_or_else(|| {
            InferError::InvalidRequest(format!(
                "model `{}` is a {} model, not image_to_image",
                rec.name,
                rec.manifest.task().as_str()
            ))
        })?;
        Upscaler::open(&rec.name, &rec.onnx_path, spec, opts)
    }

    /// Opens `onnx` as the image-to-image model `spec` describes and checks it on an 8×8
    /// input: one float input `[1,3,H,W]`, an output of `[1,3,scale·8,scale·8]`.
    pub fn open(
        name: &str,
        onnx: &Path,
        spec: &ImageToImageSpec,
        opts: &RuntimeOptions,
    ) -> Result<Upscaler, InferError> {
        let scale = spec.scale;
        if !(1..=8).contains(&scale) {
            return Err(InferError::invalid_model(
                name,
                format!("scale {scale} is outside 1..=8"),
            ));
        }
        if !onnx.is_file() {
            return Err(InferError::invalid_model(
                name,
                format!("{} is not a file", onnx.display()),
            ));
        }
        let built = runtime::build_session(name, onnx, opts)?;
        let inputs = built.session.inputs();
        if inputs.len() != 1 {
            return Err(InferError::invalid_model(
                name,
                format!("expected one image input, the model has {}", inputs.len()),
            ));
        }
        let input_name = inputs[0].name().to_string();
        if let Some(want) = &spec.input
            && want != &input_name
        {
            return Err(InferError::invalid_model(
                name,
                format!("the manifest names input `{want}`, the model's input is `{input_name}`"),
            ));
        }
        match inputs[0].dtype() {
            ValueType::Tensor {
                ty: TensorElementType::Float32,
                shape,
                ..
            } if shape.len() == 4 && (shape[1] == 3 || shape[1] == -1) => {}
            other => {
                return Err(InferError::invalid_model(
                    name,
                    format!("input `{input_name}` must be float32 [1,3,H,W], is {other:?}"),
                ));
            }
        }
        let up = Upscaler {
            name: name.to_string(),
            scale,
            spec: spec.clone(),
            provider: built.provider,
            input_name,
            session: Mutex::new(built.session),
        };
        // A dry run proves the scale and the layout before anyone relies on them.
        let probe = RgbPicture::new(8, 8, vec![128; 8 * 8 * 3])?;
        up.run_tile(&probe, None).map_err(|e| match e {
            InferError::InvalidModel { .. } | InferError::OutOfMemory(_) => e,
            other => InferError::invalid_model(name, format!("a dry run on 8×8 failed: {other}")),
        })?;
        tracing::info!(
            model = name,
            scale,
            provider = up.provider.name(),
            "image-to-image model loaded"
        );
        Ok(up)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    /// What the manifest says of the model.
    pub fn spec(&self) -> &ImageToImageSpec {
        &self.spec
    }

    /// The tiling the manifest asks for.
    pub fn tiles(&self) -> TileOptions {
        TileOptions {
            tile: self.spec.tile,
            overlap: self.spec.overlap,
        }
    }

    /// Runs the network once on the whole of `pic` (no tiling).
    pub fn run_tile(
        &self,
        pic: &RgbPicture,
        cancel: Option<&Cancel>,
    ) -> Result<RgbPicture, InferError> {
        let (w, h) = (pic.width as usize, pic.height as usize);
        let plane = w * h;
        let [ilo, ihi] = self.spec.input_range;
        let k = (ihi - ilo) / 255.0;
        let mut input = vec![0f32; plane * 3];
        for (i, px) in pic.data.chunks_exact(3).enumerate() {
            input[i] = px[0] as f32 * k + ilo;
            input[plane + i] = px[1] as f32 * k + ilo;
            input[2 * plane + i] = px[2] as f32 * k + ilo;
        }
        let tensor = TensorRef::from_array_view(([1usize, 3, h, w], input.as_slice()))
            .map_err(|e| InferError::Runtime(e.to_string()))?;
        let fail = |m: &str| match runtime::classify_run_error(m) {
            oom @ InferError::OutOfMemory(_) => oom,
            _ if cancel.is_some_and(Cancel::is_cancelled) => InferError::Cancelled,
            other => other,
        };
        let mut session = self.session.lock();
        let outputs = match cancel {
            Some(c) => session
                .run_with_options(ort::inputs![self.input_name.as_str() => tensor], &c.options),
            None => session.run(ort::inputs![self.input_name.as_str() => tensor]),
        }
        .map_err(|e| fail(e.message()))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| InferError::Runtime(format!("output: {e}")))?;
        let (ow, oh) = (w * self.scale as usize, h * self.scale as usize);
        if shape.len() != 4 || shape[1] != 3 || shape[2] as usize != oh || shape[3] as usize != ow {
            return Err(InferError::invalid_model(
                &self.name,
                format!(
                    "a {w}x{h} input gave an output of shape {:?}, expected [1,3,{oh},{ow}] for ×{}",
                    &shape[..],
                    self.scale
                ),
            ));
        }
        let oplane = ow * oh;
        let [olo, ohi] = self.spec.output_range;
        let k = 255.0 / (ohi - olo);
        let identity = olo == 0.0 && ohi == 255.0;
        let mut rgb = vec![0u8; oplane * 3];
        for i in 0..oplane {
            for c in 0..3 {
                let v = data[c * oplane + i];
                let v = if identity { v } else { (v - olo) * k };
                rgb[i * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
            }
        }
        Ok(RgbPicture {
            width: ow as u32,
            height: oh as u32,
            data: rgb,
        })
    }

    /// Upscales `pic` tile by tile; `progress(done, total)` is called after each tile.
    pub fn upscale(
        &self,
        pic: &RgbPicture,
        tiles: TileOptions,
        cancel: Option<&Cancel>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<RgbPicture, InferError> {
        let s = self.scale;
        let plan = plan_tiles(pic.width, pic.height, tiles.tile, tiles.overlap);
        let (ow, oh) = (pic.width * s, pic.height * s);
        let mut out = vec![0u8; ow as usize * oh as usize * 3];
        for (n, t) in plan.iter().enumerate() {
            if cancel.is_some_and(Cancel::is_cancelled) {
                return Err(InferError::Cancelled);
            }
            let p = t.padded;
            let part = RgbPicture::new(p.w, p.h, crop(pic, p))?;
            let up = self.run_tile(&part, cancel)?;
            // Keep the core's share of the result.
            let (cx, cy) = ((t.core.x - p.x) * s, (t.core.y - p.y) * s);
            let row = (t.core.w * s * 3) as usize;
            for r in 0..t.core.h * s {
                let src = (((cy + r) * up.width + cx) * 3) as usize;
                let dst = (((t.core.y * s + r) * ow + t.core.x * s) * 3) as usize;
                out[dst..dst + row].copy_from_slice(&up.data[src..src + row]);
            }
            progress(n + 1, plan.len());
        }
        RgbPicture::new(ow, oh, out)
    }
}

fn crop(pic: &RgbPicture, r: Rect) -> Vec<u8> {
    let mut v = Vec::with_capacity(r.w as usize * r.h as usize * 3);
    for y in r.y..r.y + r.h {
        let at = ((y * pic.width + r.x) * 3) as usize;
        v.extend_from_slice(&pic.data[at..at + r.w as usize * 3]);
    }
    v
}

/// PSNR (dB) on the luma (BT.601) of two pictures of one size, `border` pixels cropped on
/// each side, as the models' reference figures are given (`models/tools/verify_sr.py`).
pub fn psnr_y(a: &RgbPicture, b: &RgbPicture, border: u32) -> Option<f64> {
    if a.width != b.width || a.height != b.height || a.width <= 2 * border || a.height <= 2 * border
    {
        return None;
    }
    let y = |p: &[u8]| {
        16.0 + (65.481 * p[0] as f64 + 128.553 * p[1] as f64 + 24.966 * p[2] as f64) / 255.0
    };
    let (mut se, mut n) = (0.0, 0usize);
    for row in border..a.height - border {
        for col in border..a.width - border {
            let i = ((row * a.width + col) * 3) as usize;
            let d = y(&a.data[i..i + 3]) - y(&b.data[i..i + 3]);
            se += d * d;
            n += 1;
        }
    }
    let mse = se / n as f64;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_picture_exactly_once() {
        for (w, h, tile, overlap) in [(700, 300, 256, 16), (256, 256, 256, 8), (5, 3, 2, 1)] {
            let plan = plan_tiles(w, h, tile, overlap);
            let mut hits = vec![0u8; (w * h) as usize];
            for t in &plan {
                let (c, p) = (t.core, t.padded);
                assert!(c.w <= tile && c.h <= tile);
                assert!(p.x <= c.x && p.y <= c.y);
                assert!(p.x + p.w >= c.x + c.w && p.y + p.h >= c.y + c.h);
                assert!(p.x + p.w <= w && p.y + p.h <= h);
                assert!(c.x - p.x <= overlap && p.x + p.w - (c.x + c.w) <= overlap);
                for y in c.y..c.y + c.h {
                    for x in c.x..c.x + c.w {
                        hits[(y * w + x) as usize] += 1;
                    }
                }
            }
            assert!(hits.iter().all(|&n| n == 1), "{w}x{h} tile {tile}");
        }
        assert_eq!(plan_tiles(700, 300, 256, 16).len(), 3 * 2);
        let one = plan_tiles(100, 80, 256, 16);
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].core, one[0].padded);
    }

    #[test]
    fn psnr_of_identical_and_different_pictures() {
        let a = RgbPicture::new(2, 1, vec![10, 20, 30, 40, 50, 60]).unwrap();
        assert_eq!(psnr_y(&a, &a, 0), Some(f64::INFINITY));
        assert_eq!(psnr_y(&a, &a, 1), None, "nothing left after the border");
        let mut b = a.clone();
        b.data[0] = 20;
        let p = psnr_y(&a, &b, 0).unwrap();
        assert!(p > 30.0 && p < 60.0, "{p}");
        assert!(RgbPicture::new(2, 2, vec![0; 3]).is_err());
    }
}
