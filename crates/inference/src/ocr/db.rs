//! Post-processing of a DB (Differentiable Binarization) text detector such as PP-OCRv4 det:
//! the network gives, per pixel of its input, the probability of being text. Text regions are
//! the connected areas above `thresh`; each becomes the minimum-area (possibly rotated)
//! rectangle around its border, scored by the mean probability inside, and grown ("unclip")
//! by `area × unclip_ratio / perimeter` on every side, because the network is trained on
//! shrunk text kernels.

use imageproc::contours::{BorderType, find_contours};
use imageproc::geometry::min_area_rect;
use imageproc::point::Point;

/// Thresholds of the DB post-processing (PaddleOCR's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbParams {
    /// Probability above which a pixel is text.
    pub thresh: f32,
    /// Minimum mean probability inside a box.
    pub box_thresh: f32,
    /// How much a kernel box is grown (see the module doc).
    pub unclip_ratio: f32,
    /// Regions considered at most (largest first).
    pub max_candidates: usize,
    /// Boxes with a shorter side (map pixels) are dropped.
    pub min_size: f32,
}

impl Default for DbParams {
    fn default() -> Self {
        DbParams {
            thresh: 0.3,
            box_thresh: 0.5,
            unclip_ratio: 1.6,
            max_candidates: 100,
            min_size: 3.0,
        }
    }
}

/// An oriented text box: corners top-left, top-right, bottom-right, bottom-left, in the
/// pixels of the picture given to the detector, and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextQuad {
    pub points: [[f32; 2]; 4],
    pub score: f32,
}

impl TextQuad {
    /// Length of the top edge.
    pub fn width(&self) -> f32 {
        dist(self.points[0], self.points[1]).max(dist(self.points[3], self.points[2]))
    }
    /// Length of the left edge.
    pub fn height(&self) -> f32 {
        dist(self.points[0], self.points[3]).max(dist(self.points[1], self.points[2]))
    }
}

fn dist(a: [f32; 2], b: [f32; 2]) -> f32 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Text boxes from a `width`×`height` probability map, scaled by (`sx`, `sy`) to the
/// picture's pixels and clamped to `[0, limit_w] × [0, limit_h]`; ordered top to bottom,
/// then left to right.
pub fn boxes_from_map(
    prob: &[f32],
    width: u32,
    height: u32,
    p: &DbParams,
    (sx, sy): (f32, f32),
    (limit_w, limit_h): (f32, f32),
) -> Vec<TextQuad> {
    let (w, h) = (width as usize, height as usize);
    if w == 0 || h == 0 || prob.len() != w * h {
        return Vec::new();
    }
    // One pixel of background around the map, so regions touching its edge have a border.
    let mask = image::GrayImage::from_fn(width + 2, height + 2, |x, y| {
        let inside = x >= 1 && y >= 1 && x <= width && y <= height;
        image::Luma([
            if inside && prob[(y - 1) as usize * w + (x - 1) as usize] > p.thresh {
                255
            } else {
                0
            },
        ])
    });
    let mut contours: Vec<Vec<Point<i32>>> = find_contours::<i32>(&mask)
        .into_iter()
        .filter(|c| c.border_type == BorderType::Outer && c.points.len() >= 3)
        .map(|c| {
            c.points
                .into_iter()
                .map(|q| Point::new(q.x - 1, q.y - 1))
                .collect()
        })
        .collect();
    contours.sort_by_key(|c| std::cmp::Reverse(c.len()));
    contours.truncate(p.max_candidates);

    let mut out = Vec::new();
    for pts in &contours {
        let rect = min_area_rect(pts).map(|q| [q.x as f32, q.y as f32]);
        let (rw, rh) = (dist(rect[0], rect[1]), dist(rect[1], rect[2]));
        if rw.min(rh) < p.min_size {
            continue;
        }
        let score = mean_inside(prob, w, h, &rect);
        if score < p.box_thresh {
            continue;
        }
        let grown = unclip(&rect, p.unclip_ratio);
        let (gw, gh) = (dist(grown[0], grown[1]), dist(grown[1], grown[2]));
        if gw.min(gh) < p.min_size + 2.0 {
            continue;
        }
        let scaled =
            grown.map(|[x, y]| [(x * sx).clamp(0.0, limit_w), (y * sy).clamp(0.0, limit_h)]);
        out.push(TextQuad {
            points: order_points(scaled),
            score,
        });
    }
    out.sort_by(|a, b| {
        let ka = (a.points[0][1], a.points[0][0]);
        let kb = (b.points[0][1], b.points[0][0]);
        ka.partial_cmp(&kb).unwrap_or(std::cmp::Ordering::Equal)
    });
    out
}

/// Grows a rectangle (corners in order around it) by `area × ratio / perimeter` on each side.
fn unclip(r: &[[f32; 2]; 4], ratio: f32) -> [[f32; 2]; 4] {
    let (w, h) = (dist(r[0], r[1]), dist(r[1], r[2]));
    if w <= 0.0 || h <= 0.0 {
        return *r;
    }
    let d = w * h * ratio / (2.0 * (w + h));
    let c = [
        (r[0][0] + r[1][0] + r[2][0] + r[3][0]) / 4.0,
        (r[0][1] + r[1][1] + r[2][1] + r[3][1]) / 4.0,
    ];
    let u = [(r[1][0] - r[0][0]) / w, (r[1][1] - r[0][1]) / w];
    let v = [(r[2][0] - r[1][0]) / h, (r[2][1] - r[1][1]) / h];
    let (hw, hh) = (w / 2.0 + d, h / 2.0 + d);
    let at = |a: f32, b: f32| [c[0] + a * u[0] + b * v[0], c[1] + a * u[1] + b * v[1]];
    [at(-hw, -hh), at(hw, -hh), at(hw, hh), at(-hw, hh)]
}

/// Orders four corners as top-left, top-right, bottom-right, bottom-left: the two leftmost are
/// the left side (the upper of them is top-left), the two rightmost the right side.
pub(crate) fn order_points(mut p: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    p.sort_by(|a, b| a[0].partial_cmp(&b[0]).unwrap_or(std::cmp::Ordering::Equal));
    let (tl, bl) = if p[0][1] <= p[1][1] {
        (p[0], p[1])
    } else {
        (p[1], p[0])
    };
    let (tr, br) = if p[2][1] <= p[3][1] {
        (p[2], p[3])
    } else {
        (p[3], p[2])
    };
    [tl, tr, br, bl]
}

/// Mean of `prob` over the pixels whose centre lies inside the convex quad `q`.
fn mean_inside(prob: &[f32], w: usize, h: usize, q: &[[f32; 2]; 4]) -> f32 {
    let xs = q.iter().map(|p| p[0]);
    let ys = q.iter().map(|p| p[1]);
    let x0 = xs.clone().fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
    let x1 = (xs.fold(f32::NEG_INFINITY, f32::max).ceil() as usize).min(w - 1);
    let y0 = ys.clone().fold(f32::INFINITY, f32::min).floor().max(0.0) as usize;
    let y1 = (ys.fold(f32::NEG_INFINITY, f32::max).ceil() as usize).min(h - 1);
    let (mut sum, mut n) = (0f64, 0u32);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let pt = [x as f32, y as f32];
            if inside_convex(q, pt) {
                sum += f64::from(prob[y * w + x]);
                n += 1;
            }
        }
    }
    if n == 0 {
        0.0
    } else {
        (sum / f64::from(n)) as f32
    }
}

/// Whether `p` is inside (or on) the convex polygon `q` (either winding).
fn inside_convex(q: &[[f32; 2]; 4], p: [f32; 2]) -> bool {
    let mut sign = 0i8;
    for i in 0..4 {
        let a = q[i];
        let b = q[(i + 1) % 4];
        let cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]);
        let s = if cross > 1e-3 {
            1
        } else if cross < -1e-3 {
            -1
        } else {
            0
        };
        if s != 0 {
            if sign != 0 && s != sign {
                return false;
            }
            sign = s;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_with(w: usize, h: usize, rects: &[(usize, usize, usize, usize)]) -> Vec<f32> {
        let mut m = vec![0.05; w * h];
        for &(x0, y0, x1, y1) in rects {
            for y in y0..y1 {
                for x in x0..x1 {
                    m[y * w + x] = 0.9;
                }
            }
        }
        m
    }

    #[test]
    fn finds_each_text_region_grown_and_ordered() {
        let m = map_with(100, 60, &[(10, 40, 50, 50), (20, 10, 80, 20)]);
        let boxes = boxes_from_map(&m, 100, 60, &DbParams::default(), (1.0, 1.0), (100.0, 60.0));
        assert_eq!(boxes.len(), 2);
        // Top to bottom.
        assert!(boxes[0].points[0][1] < boxes[1].points[0][1]);
        let b = &boxes[0];
        // Kernel 60×10 (contour spans 59×9); grown by 59·9·1.6/(2·68) ≈ 6.2 px per side.
        assert!((b.width() - 71.5).abs() < 2.0, "width {}", b.width());
        assert!((b.height() - 21.5).abs() < 2.0, "height {}", b.height());
        assert!(b.points[0][0] < b.points[1][0] && b.points[0][1] < b.points[3][1]);
        assert!(b.score > 0.85);
    }

    #[test]
    fn weak_and_tiny_regions_are_dropped() {
        let mut m = map_with(80, 40, &[(5, 5, 7, 7)]);
        // A faint region: above thresh but below box_thresh.
        for y in 20..30 {
            for x in 20..60 {
                m[y * 80 + x] = 0.4;
            }
        }
        let boxes = boxes_from_map(&m, 80, 40, &DbParams::default(), (1.0, 1.0), (80.0, 40.0));
        assert!(boxes.is_empty(), "{boxes:?}");
    }

    #[test]
    fn boxes_are_scaled_and_clamped_to_the_picture() {
        let m = map_with(50, 20, &[(0, 5, 30, 15)]);
        let boxes = boxes_from_map(&m, 50, 20, &DbParams::default(), (2.0, 2.0), (100.0, 40.0));
        assert_eq!(boxes.len(), 1);
        for p in boxes[0].points {
            assert!((0.0..=100.0).contains(&p[0]) && (0.0..=40.0).contains(&p[1]));
        }
        assert!(boxes[0].width() > 55.0);
    }

    #[test]
    fn rotated_rectangles_keep_their_angle() {
        // A diagonal band.
        let (w, h) = (120usize, 120usize);
        let mut m = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32 - 60.0, y as f32 - 60.0);
                let along = (fx + fy) / 2f32.sqrt();
                let across = (fy - fx) / 2f32.sqrt();
                if along.abs() < 40.0 && across.abs() < 6.0 {
                    m[y * w + x] = 0.95;
                }
            }
        }
        let b = boxes_from_map(
            &m,
            120,
            120,
            &DbParams::default(),
            (1.0, 1.0),
            (120.0, 120.0),
        );
        assert_eq!(b.len(), 1);
        let q = b[0].points;
        let angle = (q[1][1] - q[0][1]).atan2(q[1][0] - q[0][0]).to_degrees();
        assert!((angle.abs() - 45.0).abs() < 6.0, "angle {angle}");
    }

    #[test]
    fn orders_corners() {
        let p = order_points([[10.0, 10.0], [0.0, 9.0], [1.0, 0.0], [9.0, 1.0]]);
        assert_eq!(p, [[1.0, 0.0], [9.0, 1.0], [10.0, 10.0], [0.0, 9.0]]);
    }
}
