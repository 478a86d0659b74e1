//! A machine-readable wall clock in the picture, for latency measurements: 48 bits of Unix
//! milliseconds, most significant first, as a row of `CELL`×`CELL` squares (white = 1,
//! black = 0) at the bottom left, framed by a white start cell and a black end cell. Big,
//! high-contrast cells survive H.264 at any sensible bitrate; a reader samples each cell's
//! centre (see [`read`]). Pure pixel code.

use crate::Color;
use crate::raster::Canvas;
use sightline_core::Frame;

/// Side of one cell in pixels.
pub const CELL: u32 = 8;
/// Bits of milliseconds stamped (enough for the next 8 900 years).
pub const BITS: u32 = 48;

/// One cell, grey level `v`, top-left at `(x0, y0)` (clipped to the frame).
fn fill(canvas: &mut Canvas<'_>, x0: u32, y0: u32, v: u8) {
    let (x0, y0) = (i64::from(x0), i64::from(y0));
    let side = i64::from(CELL);
    canvas.fill_rect(x0, y0, x0 + side, y0 + side, Color::rgb(v, v, v));
}

/// Stamps `ms` into `frame` (no-op on frames narrower than the code).
pub fn stamp(frame: &mut Frame, ms: u64) {
    let width = (BITS + 2) * CELL;
    if frame.width < width || frame.height < CELL * 2 {
        return;
    }
    let y = frame.height - CELL * 2;
    let Some(mut canvas) = Canvas::new(frame) else {
        return;
    };
    fill(&mut canvas, 0, y, 255);
    for b in 0..BITS {
        let bit = (ms >> (BITS - 1 - b)) & 1;
        fill(
            &mut canvas,
            (b + 1) * CELL,
            y,
            if bit == 1 { 255 } else { 0 },
        );
    }
    fill(&mut canvas, (BITS + 1) * CELL, y, 0);
}

/// Reads a code back from RGB24 pixels (`luma(x, y)` of the decoded picture), or `None`
/// when the frame carries none.
pub fn read(width: u32, height: u32, luma: impl Fn(u32, u32) -> u8) -> Option<u64> {
    if width < (BITS + 2) * CELL || height < CELL * 2 {
        return None;
    }
    let y = height - CELL * 2 + CELL / 2;
    let at = |cell: u32| luma(cell * CELL + CELL / 2, y) > 127;
    if !at(0) || at(BITS + 1) {
        return None;
    }
    Some((0..BITS).fold(0u64, |v, b| (v << 1) | u64::from(at(b + 1))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{PixelFormat, Pts};

    #[test]
    fn stamps_and_reads_back() {
        let mut f = Frame::filled(640, 360, [90, 120, 60], Pts::ZERO);
        assert_eq!(read(640, 360, |x, y| f.pixel(x, y)[0]), None);
        let ms = 1_764_581_400_123;
        stamp(&mut f, ms);
        assert_eq!(read(640, 360, |x, y| f.pixel(x, y)[0]), Some(ms));
        let mut small = Frame::filled(100, 50, [0, 0, 0], Pts::ZERO);
        stamp(&mut small, ms);
        assert!(small.data.iter().all(|&b| b == 0), "too small: untouched");
    }

    #[test]
    fn stamps_i420_frames_in_luma() {
        let (w, h) = (640u32, 360u32);
        let n = Frame::byte_len(PixelFormat::I420(Default::default()), w, h);
        let mut f = Frame::from_i420(w, h, Pts::ZERO, Default::default(), vec![100; n]).unwrap();
        let ms = 1_764_581_400_123;
        stamp(&mut f, ms);
        assert_eq!(read(w, h, |x, y| f.pixel(x, y)[0]), Some(ms));
        let [_, u, v] = f.pixel(4, h - 12);
        assert_eq!((u, v), (128, 128), "the code is grey, not tinted");
    }
}
