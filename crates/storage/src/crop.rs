//! Where an event's crop is cut: the object's box grown by a margin on each side, then grown
//! around its centre up to a minimum side so small objects stay readable, then moved (not
//! shrunk) to lie inside the frame; only a crop larger than the frame is clipped. Pure
//! arithmetic plus the pixel copy, so the run thread can cut pictures without any IO.

use sightline_core::{BBox, Frame};

/// A pixel rectangle inside a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// One axis: `[lo, hi)` grown by `margin` of its length on each side and to at least
/// `min`, then placed inside `[0, limit)`.
fn span(lo: f32, hi: f32, margin: f32, min: u32, limit: u32) -> (u32, u32) {
    let limit_f = limit as f32;
    let len = (hi - lo).max(1.0);
    let grown = (len * (1.0 + 2.0 * margin)).max(min as f32).min(limit_f);
    let size = (grown.round() as u32).clamp(1, limit.max(1));
    let centre = (lo + hi) / 2.0;
    let start = (centre - size as f32 / 2.0).round();
    let start = start.clamp(0.0, (limit - size) as f32) as u32;
    (start, size)
}

/// The crop rectangle of `bbox` in a `width`×`height` frame.
pub fn crop_rect(bbox: &BBox, width: u32, height: u32, margin: f32, min_size: u32) -> Rect {
    let (x, w) = span(bbox.x1, bbox.x2, margin, min_size, width);
    let (y, h) = span(bbox.y1, bbox.y2, margin, min_size, height);
    Rect {
        x,
        y,
        width: w,
        height: h,
    }
}

/// Copies the RGB24 pixels of `r` out of `frame` (rows tightly packed).
pub fn cut(frame: &Frame, r: Rect) -> Vec<u8> {
    let stride = frame.stride();
    let row = r.width as usize * 3;
    let mut out = Vec::with_capacity(row * r.height as usize);
    for y in r.y..r.y + r.height {
        let start = y as usize * stride + r.x as usize * 3;
        out.extend_from_slice(&frame.data[start..start + row]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sightline_core::Pts;

    #[test]
    fn margin_then_minimum_then_inside_the_frame() {
        // 100×200 box with 10 % margin → 120×240 around the same centre.
        let r = crop_rect(&BBox::new(300.0, 100.0, 400.0, 300.0), 768, 576, 0.1, 64);
        assert_eq!(
            r,
            Rect {
                x: 290,
                y: 80,
                width: 120,
                height: 240
            }
        );
        // A 10×10 box is cut at the minimum size, centred.
        let r = crop_rect(&BBox::new(100.0, 100.0, 110.0, 110.0), 768, 576, 0.1, 64);
        assert_eq!(
            r,
            Rect {
                x: 73,
                y: 73,
                width: 64,
                height: 64
            }
        );
        // At the frame's corner the crop is moved inside, not shrunk.
        let r = crop_rect(&BBox::new(0.0, 560.0, 20.0, 576.0), 768, 576, 0.1, 64);
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 512,
                width: 64,
                height: 64
            }
        );
        // Larger than the frame: the whole frame.
        let r = crop_rect(&BBox::new(0.0, 0.0, 768.0, 576.0), 768, 576, 0.5, 64);
        assert_eq!(
            r,
            Rect {
                x: 0,
                y: 0,
                width: 768,
                height: 576
            }
        );
    }

    #[test]
    fn cut_copies_the_right_pixels() {
        let mut f = Frame::filled(8, 6, [0, 0, 0], Pts::ZERO);
        let i = (3 * 8 + 5) * 3;
        f.data[i..i + 3].copy_from_slice(&[9, 8, 7]);
        let px = cut(
            &f,
            Rect {
                x: 4,
                y: 2,
                width: 3,
                height: 2,
            },
        );
        assert_eq!(px.len(), 3 * 2 * 3);
        // (5,3) in the frame is (1,1) in the crop.
        assert_eq!(&px[(3 + 1) * 3..(3 + 1) * 3 + 3], &[9, 8, 7]);
    }

    proptest! {
        #[test]
        fn crop_always_inside_and_contains_the_clipped_box(
            x1 in -50.0f32..800.0, y1 in -50.0f32..600.0, w in 0.0f32..900.0, h in 0.0f32..700.0,
            margin in 0.0f32..1.0, min in 0u32..200,
        ) {
            let (fw, fh) = (768u32, 576u32);
            let b = BBox::new(x1, y1, x1 + w, y1 + h);
            let r = crop_rect(&b, fw, fh, margin, min);
            prop_assert!(r.width >= 1 && r.height >= 1);
            prop_assert!(r.x + r.width <= fw && r.y + r.height <= fh);
            prop_assert!(r.width >= min.min(fw) && r.height >= min.min(fh));
            // The visible part of the box is inside the crop (±1 px of rounding).
            let (cx1, cx2) = (b.x1.clamp(0.0, fw as f32), b.x2.clamp(0.0, fw as f32));
            if cx2 - cx1 >= 2.0 && (b.x2 - b.x1) * (1.0 + 2.0 * margin) < fw as f32 {
                prop_assert!(r.x as f32 <= cx1 + 1.0 && (r.x + r.width) as f32 >= cx2 - 1.0);
            }
        }
    }
}
