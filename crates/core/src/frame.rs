//! Decoded frames as they travel between stages.
//!
//! One format everywhere: packed 8-bit RGB (`RGB24`, 3 bytes per pixel, rows tightly packed,
//! `stride == width * 3`). The media crate copies each decoded buffer into a [`Frame`] once;
//! inference reads it, the overlay draws into it in place, and the encoder wraps the same
//! allocation without another copy. See `docs/adr/0002-frame-format.md`.

use crate::time::Pts;

/// A decoded RGB24 frame.
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
    /// `width * height * 3` bytes, row-major RGB.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("pts", &self.pts)
            .field("seq", &self.seq)
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
            data,
        })
    }

    pub fn stride(&self) -> usize {
        self.width as usize * 3
    }

    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = y as usize * self.stride() + x as usize * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }
}
