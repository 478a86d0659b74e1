//! Frame → model input tensor, and model-input pixels → source pixels.
//!
//! Pre-processing runs on the caller's thread (each run prepares its own frames in parallel
//! while the batcher keeps the model busy), so it must be cheap: one SIMD resize with
//! `fast_image_resize` into a scratch buffer that is kept between frames, then a single pass
//! that applies colour order, normalisation (through a 256-entry table per channel) and
//! layout while writing the `f32` tensor. Nothing is allocated per pixel or per frame once
//! the buffers have grown to size.
//!
//! The resize uses fixed-kernel bilinear interpolation, which matches OpenCV's `INTER_LINEAR`
//! (what the Python reference pipelines use) rather than an antialiasing convolution.

use crate::error::InferError;
use crate::manifest::{ColorOrder, InputSpec, Layout, ResizeMode};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use sightline_core::{BBox, Frame};

/// How a frame was fitted into the model input, to map boxes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub src_width: u32,
    pub src_height: u32,
    /// Input pixels per source pixel, horizontally.
    pub scale_x: f32,
    /// Input pixels per source pixel, vertically.
    pub scale_y: f32,
    /// Left padding in input pixels (letterbox).
    pub pad_x: u32,
    /// Top padding in input pixels (letterbox).
    pub pad_y: u32,
    /// Size of the resized picture inside the input.
    pub content_width: u32,
    pub content_height: u32,
}

impl Geometry {
    /// Where a `src_w`×`src_h` frame lands inside a `dst_w`×`dst_h` input.
    pub fn fit(src_w: u32, src_h: u32, dst_w: u32, dst_h: u32, mode: ResizeMode) -> Geometry {
        let (cw, ch) = match mode {
            ResizeMode::Stretch => (dst_w, dst_h),
            ResizeMode::Letterbox => {
                let r = (dst_w as f64 / src_w as f64).min(dst_h as f64 / src_h as f64);
                (
                    ((src_w as f64 * r).round() as u32).clamp(1, dst_w),
                    ((src_h as f64 * r).round() as u32).clamp(1, dst_h),
                )
            }
        };
        Geometry {
            src_width: src_w,
            src_height: src_h,
            scale_x: cw as f32 / src_w as f32,
            scale_y: ch as f32 / src_h as f32,
            pad_x: (dst_w - cw) / 2,
            pad_y: (dst_h - ch) / 2,
            content_width: cw,
            content_height: ch,
        }
    }

    /// Maps a box from input pixels to source pixels, clamped to the frame.
    pub fn to_source(&self, b: &BBox) -> BBox {
        let (px, py) = (self.pad_x as f32, self.pad_y as f32);
        BBox::new(
            (b.x1 - px) / self.scale_x,
            (b.y1 - py) / self.scale_y,
            (b.x2 - px) / self.scale_x,
            (b.y2 - py) / self.scale_y,
        )
        .clamp(self.src_width as f32, self.src_height as f32)
    }
}

/// Per-channel value tables and channel order, derived once from an [`InputSpec`].
#[derive(Clone)]
struct Normaliser {
    /// `lut[c][v]` = value of model channel `c` for 8-bit level `v`.
    lut: Box<[[f32; 256]; 3]>,
    /// Which RGB byte feeds model channel `c`.
    src: [usize; 3],
}

impl Normaliser {
    fn new(spec: &InputSpec) -> Self {
        let mut lut = Box::new([[0f32; 256]; 3]);
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                *out = (v as f32 * spec.scale - spec.mean[c]) / spec.std[c];
            }
        }
        let src = match spec.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        Normaliser { lut, src }
    }

    fn pad(&self, grey: u8) -> [f32; 3] {
        [
            self.lut[0][grey as usize],
            self.lut[1][grey as usize],
            self.lut[2][grey as usize],
        ]
    }
}

/// Reusable pre-processor for one model input (one per client).
pub struct Preprocessor {
    spec: InputSpec,
    norm: Normaliser,
    resizer: Resizer,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Preprocessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preprocessor")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        Preprocessor {
            spec: spec.clone(),
            norm: Normaliser::new(spec),
            resizer: Resizer::new(),
            scratch: Vec::new(),
        }
    }

    /// Number of `f32` values of one input tensor (one batch item).
    pub fn tensor_len(&self) -> usize {
        self.spec.width as usize * self.spec.height as usize * 3
    }

    /// Writes `frame` as one input tensor into `out` (resized to [`tensor_len`](Self::tensor_len)).
    pub fn run(&mut self, frame: &Frame, out: &mut Vec<f32>) -> Result<Geometry, InferError> {
        let (w, h) = (frame.width, frame.height);
        if w == 0 || h == 0 {
            return Err(InferError::InvalidFrame(format!("empty frame {w}x{h}")));
        }
        if frame.data.len() != w as usize * h as usize * 3 {
            return Err(InferError::InvalidFrame(format!(
                "{w}x{h} RGB24 frame needs {} bytes, has {}",
                w as usize * h as usize * 3,
                frame.data.len()
            )));
        }
        let (dw, dh) = (self.spec.width, self.spec.height);
        let geo = Geometry::fit(w, h, dw, dh, self.spec.resize);
        let (cw, ch) = (geo.content_width, geo.content_height);
        out.resize(self.tensor_len(), 0.0);
        let pixels: &[u8] = if (cw, ch) == (w, h) {
            &frame.data
        } else {
            self.scratch.resize(cw as usize * ch as usize * 3, 0);
            let src = ImageRef::new(w, h, &frame.data, PixelType::U8x3)
                .map_err(|e| InferError::InvalidFrame(e.to_string()))?;
            let mut dst = Image::from_slice_u8(cw, ch, &mut self.scratch, PixelType::U8x3)
                .map_err(|e| InferError::InvalidFrame(e.to_string()))?;
            let options =
                ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear));
            self.resizer
                .resize(&src, &mut dst, &options)
                .map_err(|e| InferError::InvalidFrame(format!("resize: {e}")))?;
            &self.scratch
        };
        if (cw, ch) != (dw, dh) {
            fill(out, self.spec.layout, self.norm.pad(self.spec.pad_value));
        }
        write_tensor(
            pixels,
            cw as usize,
            ch as usize,
            out,
            dw as usize,
            dh as usize,
            (geo.pad_x as usize, geo.pad_y as usize),
            self.spec.layout,
            &self.norm,
        );
        Ok(geo)
    }
}

fn fill(out: &mut [f32], layout: Layout, value: [f32; 3]) {
    match layout {
        Layout::Nchw => {
            let plane = out.len() / 3;
            for (c, chunk) in out.chunks_exact_mut(plane).enumerate() {
                chunk.fill(value[c]);
            }
        }
        Layout::Nhwc => {
            for px in out.chunks_exact_mut(3) {
                px.copy_from_slice(&value);
            }
        }
    }
}

/// Writes a `w`×`h` RGB24 picture at `offset` into a `dst_w`×`dst_h` tensor.
#[allow(clippy::too_many_arguments)]
fn write_tensor(
    rgb: &[u8],
    w: usize,
    h: usize,
    out: &mut [f32],
    dst_w: usize,
    dst_h: usize,
    (ox, oy): (usize, usize),
    layout: Layout,
    norm: &Normaliser,
) {
    let [l0, l1, l2] = &*norm.lut;
    let [s0, s1, s2] = norm.src;
    let rows = rgb.chunks_exact(w * 3).take(h);
    match layout {
        Layout::Nchw => {
            let plane = dst_w * dst_h;
            let (p0, rest) = out.split_at_mut(plane);
            let (p1, p2) = rest.split_at_mut(plane);
            for (y, row) in rows.enumerate() {
                let o = (y + oy) * dst_w + ox;
                let d0 = &mut p0[o..o + w];
                let d1 = &mut p1[o..o + w];
                let d2 = &mut p2[o..o + w];
                for (((px, a), b), c) in row.chunks_exact(3).zip(d0).zip(d1).zip(d2) {
                    *a = l0[px[s0] as usize];
                    *b = l1[px[s1] as usize];
                    *c = l2[px[s2] as usize];
                }
            }
        }
        Layout::Nhwc => {
            for (y, row) in rows.enumerate() {
                let o = ((y + oy) * dst_w + ox) * 3;
                for (px, d) in row
                    .chunks_exact(3)
                    .zip(out[o..o + w * 3].chunks_exact_mut(3))
                {
                    d[0] = l0[px[s0] as usize];
                    d[1] = l1[px[s1] as usize];
                    d[2] = l2[px[s2] as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Pts;

    fn spec(w: u32, h: u32, layout: Layout, color: ColorOrder, resize: ResizeMode) -> InputSpec {
        InputSpec {
            width: w,
            height: h,
            layout,
            color,
            resize,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            pad_value: 114,
            name: None,
        }
    }

    /// A frame whose pixel (x, y) is (x, y, 7).
    fn ramp(w: u32, h: u32) -> Frame {
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[x as u8, y as u8, 7]);
            }
        }
        Frame::from_rgb(w, h, Pts::ZERO, data).unwrap()
    }

    #[test]
    fn same_size_nchw_bgr_keeps_values() {
        let mut p = Preprocessor::new(&spec(
            4,
            3,
            Layout::Nchw,
            ColorOrder::Bgr,
            ResizeMode::Stretch,
        ));
        let mut out = Vec::new();
        let g = p.run(&ramp(4, 3), &mut out).unwrap();
        assert_eq!(g.scale_x, 1.0);
        assert_eq!(out.len(), 36);
        // Channel 0 is blue (7 everywhere), channel 1 green (= y), channel 2 red (= x).
        assert!(out[..12].iter().all(|v| *v == 7.0));
        assert_eq!(&out[12..16], &[0.0, 0.0, 0.0, 0.0]);
        assert_eq!(&out[20..24], &[2.0, 2.0, 2.0, 2.0]);
        assert_eq!(&out[24..28], &[0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn nhwc_rgb_with_normalisation() {
        let mut s = spec(2, 2, Layout::Nhwc, ColorOrder::Rgb, ResizeMode::Stretch);
        s.scale = 1.0 / 255.0;
        s.mean = [0.5, 0.0, 0.0];
        s.std = [0.5, 1.0, 2.0];
        let mut p = Preprocessor::new(&s);
        let frame = Frame::filled(2, 2, [255, 51, 102], Pts::ZERO);
        let mut out = Vec::new();
        p.run(&frame, &mut out).unwrap();
        for px in out.chunks_exact(3) {
            assert!((px[0] - 1.0).abs() < 1e-6);
            assert!((px[1] - 0.2).abs() < 1e-6);
            assert!((px[2] - 0.2).abs() < 1e-6);
        }
    }

    #[test]
    fn stretch_resize_of_a_flat_frame_stays_flat() {
        let mut p = Preprocessor::new(&spec(
            416,
            416,
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Stretch,
        ));
        let mut out = vec![-1.0; 3];
        let g = p
            .run(&Frame::filled(768, 576, [10, 20, 30], Pts::ZERO), &mut out)
            .unwrap();
        assert_eq!(out.len(), 416 * 416 * 3);
        let plane = 416 * 416;
        assert!(out[..plane].iter().all(|v| *v == 10.0));
        assert!(out[plane..2 * plane].iter().all(|v| *v == 20.0));
        assert!(out[2 * plane..].iter().all(|v| *v == 30.0));
        assert!((g.scale_x - 416.0 / 768.0).abs() < 1e-6);
        assert!((g.scale_y - 416.0 / 576.0).abs() < 1e-6);
    }

    #[test]
    fn letterbox_pads_and_maps_back() {
        let mut p = Preprocessor::new(&spec(
            64,
            64,
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Letterbox,
        ));
        let mut out = Vec::new();
        let g = p
            .run(
                &Frame::filled(128, 64, [200, 200, 200], Pts::ZERO),
                &mut out,
            )
            .unwrap();
        assert_eq!((g.content_width, g.content_height), (64, 32));
        assert_eq!((g.pad_x, g.pad_y), (0, 16));
        // Rows 0..16 and 48..64 are padding (114), rows 16..48 picture (200).
        assert_eq!(out[0], 114.0);
        assert_eq!(out[15 * 64 + 3], 114.0);
        assert_eq!(out[16 * 64 + 3], 200.0);
        assert_eq!(out[47 * 64 + 63], 200.0);
        assert_eq!(out[48 * 64], 114.0);
        // A box covering the picture maps back to the whole frame.
        let b = g.to_source(&BBox::new(0.0, 16.0, 64.0, 48.0));
        assert_eq!(b, BBox::new(0.0, 0.0, 128.0, 64.0));
        // Boxes reaching into the padding are clamped to the frame.
        let b = g.to_source(&BBox::new(-5.0, 0.0, 32.0, 64.0));
        assert_eq!(b, BBox::new(0.0, 0.0, 64.0, 64.0));
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut p = Preprocessor::new(&spec(
            8,
            8,
            Layout::Nchw,
            ColorOrder::Rgb,
            ResizeMode::Stretch,
        ));
        let mut out = Vec::new();
        let mut f = Frame::filled(4, 4, [0, 0, 0], Pts::ZERO);
        f.data.pop();
        assert!(matches!(
            p.run(&f, &mut out),
            Err(InferError::InvalidFrame(_))
        ));
        let f = Frame::from_rgb(0, 0, Pts::ZERO, Vec::new()).unwrap();
        assert!(matches!(
            p.run(&f, &mut out),
            Err(InferError::InvalidFrame(_))
        ));
    }
}
