//! Decoded frames as they travel between stages.
//!
//! Two pixel formats ([`PixelFormat`]), both tightly packed in one `Vec<u8>`:
//! - packed 8-bit RGB (`RGB24`, 3 bytes per pixel, `stride == width * 3`);
//! - planar `I420` (the decoders' own format): a `width × height` luma plane, then the U and
//!   V planes at half resolution (`⌈w/2⌉ × ⌈h/2⌉` each), no padding.
//!
//! The media crate copies each decoded buffer into a [`Frame`] once; inference reads it (an
//! I420 frame is converted to RGB only for the frames that are inferred), the overlay draws
//! into it in place, and the encoder wraps the same allocation without another copy. See
//! `docs/adr/0002-frame-format.md` and `docs/adr/0013-yuv-frames.md`.

use crate::time::Pts;

/// How a [`Frame`]'s bytes are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PixelFormat {
    /// Packed RGB, 3 bytes per pixel.
    #[default]
    Rgb24,
    /// Planar Y, U, V with 2×2 chroma subsampling.
    I420(YuvColor),
}

/// The Y′CbCr encoding of an I420 frame, as the decoder announced it: needed to turn it into
/// RGB exactly as the decoder meant, and to draw colours on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct YuvColor {
    pub matrix: YuvMatrix,
    /// `true`: 0–255 (JPEG range); `false`: 16–235 luma, 16–240 chroma (video range).
    pub full_range: bool,
    /// Where chroma samples sit relative to luma, as GStreamer's `GstVideoChromaSite` flags
    /// (0 = unknown); kept so a conversion resamples chroma as the pipeline would.
    pub chroma_site: u32,
}

/// The matrix from R′G′B′ to Y′CbCr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YuvMatrix {
    /// ITU-R BT.601 (standard definition).
    #[default]
    Bt601,
    /// ITU-R BT.709 (HD).
    Bt709,
    /// ITU-R BT.2020.
    Bt2020,
}

impl YuvColor {
    /// The Y, U, V values of an RGB colour in this encoding (rounded, clamped).
    pub fn yuv(&self, rgb: [u8; 3]) -> [u8; 3] {
        let (kr, kb) = match self.matrix {
            YuvMatrix::Bt601 => (0.299, 0.114),
            YuvMatrix::Bt709 => (0.2126, 0.0722),
            YuvMatrix::Bt2020 => (0.2627, 0.0593),
        };
        let [r, g, b] = rgb.map(|v| v as f32 / 255.0);
        let y = kr * r + (1.0 - kr - kb) * g + kb * b;
        let u = (b - y) / (2.0 * (1.0 - kb));
        let v = (r - y) / (2.0 * (1.0 - kr));
        let (ys, yo, cs) = if self.full_range {
            (255.0, 0.0, 255.0)
        } else {
            (219.0, 16.0, 224.0)
        };
        let q = |x: f32| x.round().clamp(0.0, 255.0) as u8;
        [q(y * ys + yo), q(u * cs + 128.0), q(v * cs + 128.0)]
    }
}

/// A decoded frame (see the module docs for its layouts).
#[derive(Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// Presentation timestamp on the source's clock.
    pub pts: Pts,
    /// Sequence number of this frame in its source (0-based, counts dropped frames too).
    pub seq: u64,
    /// When the frame left the decoder (for end-to-end latency).
    pub decoded_at: std::time::Instant,
    /// How `data` is laid out.
    pub format: PixelFormat,
    /// `width * height * 3` bytes of row-major RGB, or the three I420 planes.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pts", &self.pts)
            .field("seq", &self.seq)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Frame {
    /// A frame filled with one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3], pts: Pts) -> Self {
        let n = width as usize * height as usize;
        let mut data = Vec::with_capacity(n * 3);
        for _ in 0..n {
            data.extend_from_slice(&rgb);
        }
        Frame {
            width,
            height,
            pts,
            seq: 0,
            decoded_at: std::time::Instant::now(),
            format: PixelFormat::Rgb24,
            data,
        }
    }

    /// Wraps RGB24 bytes; `None` if the length does not match the size.
    pub fn from_rgb(width: u32, height: u32, pts: Pts, data: Vec<u8>) -> Option<Self> {
        (data.len() == width as usize * height as usize * 3).then(|| Frame {
            width,
            height,
            pts,
            seq: 0,
            decoded_at: std::time::Instant::now(),
            format: PixelFormat::Rgb24,
            data,
        })
    }

    /// Wraps the three packed I420 planes; `None` if the length does not match the size.
    pub fn from_i420(
        width: u32,
        height: u32,
        pts: Pts,
        color: YuvColor,
        data: Vec<u8>,
    ) -> Option<Self> {
        let format = PixelFormat::I420(color);
        (data.len() == Self::byte_len(format, width, height)).then(|| Frame {
            width,
            height,
            pts,
            seq: 0,
            decoded_at: std::time::Instant::now(),
            format,
            data,
        })
    }

    /// The frame's size, timestamps and format without its pixels (`data` empty): the start
    /// of a converted copy.
    pub fn clone_header(&self) -> Frame {
        Frame {
            data: Vec::new(),
            ..*self
        }
    }

    /// Bytes a frame of this format and size holds.
    pub fn byte_len(format: PixelFormat, width: u32, height: u32) -> usize {
        let (w, h) = (width as usize, height as usize);
        match format {
            PixelFormat::Rgb24 => w * h * 3,
            PixelFormat::I420(_) => w * h + 2 * w.div_ceil(2) * h.div_ceil(2),
        }
    }

    /// Whether `data` is as long as the format and size say.
    pub fn is_well_formed(&self) -> bool {
        self.data.len() == Self::byte_len(self.format, self.width, self.height)
    }

    pub fn is_rgb(&self) -> bool {
        self.format == PixelFormat::Rgb24
    }

    /// Row stride of an RGB frame (of the luma plane for I420).
    pub fn stride(&self) -> usize {
        match self.format {
            PixelFormat::Rgb24 => self.width as usize * 3,
            PixelFormat::I420(_) => self.width as usize,
        }
    }

    /// The RGB value at `(x, y)` of an RGB frame; for an I420 frame `[Y, U, V]` of that
    /// pixel (tests and diagnostics).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        if let PixelFormat::I420(_) = self.format {
            let (w, h) = (self.width as usize, self.height as usize);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let c = (y as usize / 2) * cw + x as usize / 2;
            return [
                self.data[y as usize * w + x as usize],
                self.data[w * h + c],
                self.data[w * h + cw * ch + c],
            ];
        }
        let i = y as usize * self.stride() + x as usize * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i420_frames_hold_three_planes() {
        let c = YuvColor::default();
        assert_eq!(Frame::byte_len(PixelFormat::I420(c), 4, 2), 8 + 2 * 2);
        assert_eq!(Frame::byte_len(PixelFormat::I420(c), 5, 3), 15 + 2 * 3 * 2);
        assert!(Frame::from_i420(4, 2, Pts::ZERO, c, vec![0; 11]).is_none());
        let mut data = vec![10u8; 8];
        data.extend([20, 21, 30, 31]);
        let f = Frame::from_i420(4, 2, Pts::ZERO, c, data).unwrap();
        assert!(f.is_well_formed() && !f.is_rgb());
        assert_eq!(f.pixel(3, 1), [10, 21, 31]);
        assert_eq!(f.stride(), 4);
    }

    #[test]
    fn colours_map_to_video_range_yuv() {
        let bt601 = YuvColor::default();
        assert_eq!(bt601.yuv([255, 255, 255]), [235, 128, 128]);
        assert_eq!(bt601.yuv([0, 0, 0]), [16, 128, 128]);
        // Pure red in BT.601 video range: Y 81, Cb 90, Cr 240.
        assert_eq!(bt601.yuv([255, 0, 0]), [81, 90, 240]);
        let full709 = YuvColor {
            matrix: YuvMatrix::Bt709,
            full_range: true,
            chroma_site: 0,
        };
        assert_eq!(full709.yuv([255, 255, 255]), [255, 128, 128]);
        assert_eq!(full709.yuv([0, 255, 0])[0], 182);
    }
}
