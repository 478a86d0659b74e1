//! Minimal drawing the media layer needs on its own: a visible frame timestamp and the
//! "signal lost" slate.
//!
//! Real annotation (boxes, labels, anti-aliased text) belongs to the overlay crate. The
//! media layer still needs to show *something* moving on a republished stream (to prove
//! frames flow: `sightline run` without models, tests, benchmarks) and a slate that keeps
//! RTSP viewers connected while a source is lost. Both draw into the [`Frame`] in place (RGB or
//! I420; a slate is always RGB).

use sightline_core::{Frame, Pts};

/// 3×5 glyphs for `0-9`, `:`, `.`, `-`, space; each row is 3 bits, MSB = left.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        ':' => [0, 2, 0, 2, 0],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        _ => [0; 5],
    }
}

/// Fills a rectangle, clipped to the frame.
pub fn fill_rect(frame: &mut Frame, x: u32, y: u32, w: u32, h: u32, rgb: [u8; 3]) {
    let (fw, fh) = (frame.width, frame.height);
    let (x0, y0) = (x.min(fw), y.min(fh));
    let (x1, y1) = (x.saturating_add(w).min(fw), y.saturating_add(h).min(fh));
    if let sightline_core::PixelFormat::I420(c) = frame.format {
        let [luma, u, v] = c.yuv(rgb);
        let (w, h) = (fw as usize, fh as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        for row in y0 as usize..y1 as usize {
            frame.data[row * w + x0 as usize..row * w + x1 as usize].fill(luma);
        }
        let (cx0, cx1) = (x0 as usize / 2, (x1 as usize).div_ceil(2));
        for row in y0 as usize / 2..(y1 as usize).div_ceil(2) {
            let u_at = w * h + row * cw;
            frame.data[u_at + cx0..u_at + cx1].fill(u);
            let v_at = w * h + cw * ch + row * cw;
            frame.data[v_at + cx0..v_at + cx1].fill(v);
        }
        return;
    }
    let stride = frame.stride();
    for row in y0..y1 {
        let start = row as usize * stride + x0 as usize * 3;
        let end = row as usize * stride + x1 as usize * 3;
        for px in frame.data[start..end].chunks_exact_mut(3) {
            px.copy_from_slice(&rgb);
        }
    }
}

/// Draws `text` (digits and `:.-`) at (x, y) with pixels of `scale`×`scale`.
pub fn draw_digits(frame: &mut Frame, x: u32, y: u32, scale: u32, text: &str, rgb: [u8; 3]) {
    let scale = scale.max(1);
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as u32 * 4 * scale;
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    fill_rect(
                        frame,
                        gx + col * scale,
                        y + row as u32 * scale,
                        scale,
                        scale,
                        rgb,
                    );
                }
            }
        }
    }
}

/// Stamps the frame's PTS (`HH:MM:SS.mmm`) in the top-left corner, white on black, plus a
/// thin bar along the bottom whose length follows the milliseconds (motion is visible even
/// on a static picture). Sized relative to the frame height.
pub fn stamp_pts(frame: &mut Frame) {
    let pts = frame.pts;
    let text = pts.to_string();
    let scale = (frame.height / 120).max(2);
    let (w, h) = ((text.len() as u32 * 4 + 1) * scale, 7 * scale);
    fill_rect(frame, 0, 0, w, h, [0, 0, 0]);
    draw_digits(frame, scale, scale, scale, &text, [255, 255, 255]);
    let ms = (pts.nanos().rem_euclid(1_000_000_000) / 1_000_000) as u32;
    let bar = frame.width * ms / 1000;
    let bh = scale.max(2);
    let y = frame.height.saturating_sub(bh);
    fill_rect(frame, 0, y, frame.width, bh, [0, 0, 0]);
    fill_rect(frame, 0, y, bar, bh, [255, 200, 0]);
}

/// A "signal lost" slate made from the last good frame: darkened to a quarter of its
/// brightness, with a red band across the middle. `pts` is the slate's own timestamp.
pub fn lost_slate(last: &Frame, pts: Pts) -> Frame {
    if !last.is_rgb() {
        // Slates are rare (about once per frame interval while a camera is away): drawn in RGB.
        return match crate::RgbConverter::new().to_rgb(last) {
            Ok(rgb) => lost_slate(&rgb, pts),
            Err(_) => plain_slate(last.width.max(16), last.height.max(16), pts),
        };
    }
    let mut data = Vec::with_capacity(last.data.len());
    data.extend(last.data.iter().map(|v| v / 4));
    let mut slate = Frame {
        width: last.width,
        height: last.height,
        pts,
        seq: last.seq,
        decoded_at: std::time::Instant::now(),
        format: sightline_core::PixelFormat::Rgb24,
        data,
    };
    let band = (last.height / 12).max(4);
    fill_rect(
        &mut slate,
        0,
        last.height / 2 - band / 2,
        last.width,
        band,
        [160, 0, 0],
    );
    slate
}

/// A plain dark-grey slate with the red band, for when no frame was ever received.
pub fn plain_slate(width: u32, height: u32, pts: Pts) -> Frame {
    lost_slate(&Frame::filled(width, height, [64, 64, 64], pts), pts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_draws_inside_the_frame() {
        let mut f = Frame::filled(64, 48, [10, 20, 30], Pts::from_millis(3_723_500));
        stamp_pts(&mut f);
        assert_eq!(f.data.len(), 64 * 48 * 3);
        // Background of the text box is black, the first digit '0' has a white pixel.
        assert_eq!(f.pixel(0, 0), [0, 0, 0]);
        assert_eq!(f.pixel(2, 2), [255, 255, 255]);
        // Half a second: the bar covers the left half of the bottom row only.
        assert_eq!(f.pixel(10, 47), [255, 200, 0]);
        assert_eq!(f.pixel(40, 47), [0, 0, 0]);
        // Untouched elsewhere.
        assert_eq!(f.pixel(63, 20), [10, 20, 30]);
    }

    #[test]
    fn small_frames_are_clipped() {
        let mut f = Frame::filled(16, 16, [1, 1, 1], Pts::from_millis(999));
        stamp_pts(&mut f);
        assert_eq!(f.data.len(), 16 * 16 * 3);
    }

    #[test]
    fn slate_is_dimmed_with_a_band() {
        let last = Frame::filled(32, 24, [200, 100, 40], Pts::from_millis(5));
        let s = lost_slate(&last, Pts::from_millis(100));
        assert_eq!(s.pts, Pts::from_millis(100));
        assert_eq!(s.pixel(0, 0), [50, 25, 10]);
        assert_eq!(s.pixel(5, 12), [160, 0, 0]);
        let p = plain_slate(32, 24, Pts::ZERO);
        assert_eq!(p.pixel(0, 0), [16, 16, 16]);
    }
}
