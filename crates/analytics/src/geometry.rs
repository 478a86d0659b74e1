//! The plane geometry the rules need, in frame pixels: which side of a zone's edge (with a
//! dead band) a point is on, which side of a line, whether two segments meet, and whether a
//! polygon crosses itself. Kept apart from the rule state machines so it can be tested on its
//! own and reused by validation.

use sightline_core::Point;

/// Where a point is relative to a boundary with a dead band of half-width `h` around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Region {
    /// Inside (or on the right-hand side) by more than `h`.
    In,
    /// Outside (or on the left-hand side) by more than `h`.
    Out,
    /// Within `h` of the boundary.
    Band,
}

/// A zone in frame pixels, with its bounding box for a quick rejection.
#[derive(Debug, Clone)]
pub(crate) struct Polygon {
    pts: Vec<Point>,
    min: Point,
    max: Point,
}

impl Polygon {
    pub(crate) fn new(pts: Vec<Point>) -> Self {
        let mut min = Point::new(f32::INFINITY, f32::INFINITY);
        let mut max = Point::new(f32::NEG_INFINITY, f32::NEG_INFINITY);
        for p in &pts {
            min.x = min.x.min(p.x);
            min.y = min.y.min(p.y);
            max.x = max.x.max(p.x);
            max.y = max.y.max(p.y);
        }
        Polygon { pts, min, max }
    }

    pub(crate) fn points(&self) -> &[Point] {
        &self.pts
    }

    /// Whether the polygon's bounding box overlaps the frame `[0,w] × [0,h]`.
    pub(crate) fn overlaps_frame(&self, w: f32, h: f32) -> bool {
        self.min.x <= w && self.max.x >= 0.0 && self.min.y <= h && self.max.y >= 0.0
    }

    /// Even-odd rule (ray casting). Points exactly on an edge may go either way; callers use
    /// [`Polygon::classify`], whose dead band makes that irrelevant.
    pub(crate) fn contains(&self, p: Point) -> bool {
        let n = self.pts.len();
        let mut inside = false;
        let mut j = n.wrapping_sub(1);
        for i in 0..n {
            let (a, b) = (self.pts[i], self.pts[j]);
            if (a.y > p.y) != (b.y > p.y) {
                let x = a.x + (p.y - a.y) * (b.x - a.x) / (b.y - a.y);
                if p.x < x {
                    inside = !inside;
                }
            }
            j = i;
        }
        inside
    }

    /// Squared distance from `p` to the nearest edge.
    fn edge_distance_sq(&self, p: Point) -> f32 {
        let n = self.pts.len();
        let mut best = f32::INFINITY;
        let mut j = n.wrapping_sub(1);
        for i in 0..n {
            best = best.min(segment_distance_sq(p, self.pts[j], self.pts[i]));
            j = i;
        }
        best
    }

    /// Inside by more than `h`, outside by more than `h`, or within `h` of an edge.
    pub(crate) fn classify(&self, p: Point, h: f32) -> Region {
        if !(p.x.is_finite() && p.y.is_finite()) || self.pts.len() < 3 {
            return Region::Out;
        }
        if p.x < self.min.x - h
            || p.x > self.max.x + h
            || p.y < self.min.y - h
            || p.y > self.max.y + h
        {
            return Region::Out;
        }
        let inside = self.contains(p);
        if h > 0.0 && self.edge_distance_sq(p) <= h * h {
            Region::Band
        } else if inside {
            Region::In
        } else {
            Region::Out
        }
    }
}

/// A counting line in frame pixels.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub(crate) a: Point,
    pub(crate) b: Point,
    /// `1 / |AB|`, so the signed distance costs one multiplication.
    inv_len: f32,
}

impl Segment {
    pub(crate) fn new(a: Point, b: Point) -> Self {
        let len = (b.x - a.x).hypot(b.y - a.y);
        Segment {
            a,
            b,
            inv_len: if len > 0.0 { 1.0 / len } else { 0.0 },
        }
    }

    /// Signed distance from the infinite line through A and B: positive on the right of A→B
    /// (image coordinates, y down), negative on its left.
    pub(crate) fn signed_distance(&self, p: Point) -> f32 {
        cross(sub(self.b, self.a), sub(p, self.a)) * self.inv_len
    }

    /// Right of A→B by more than `h` ([`Region::In`]), left by more than `h` ([`Region::Out`]),
    /// or within `h` of the line.
    pub(crate) fn classify(&self, p: Point, h: f32) -> Region {
        let s = self.signed_distance(p);
        if s > h {
            Region::In
        } else if s < -h {
            Region::Out
        } else {
            Region::Band
        }
    }

    /// Whether the segment `p`–`q` meets A–B (touching counts).
    pub(crate) fn meets(&self, p: Point, q: Point) -> bool {
        segments_meet(p, q, self.a, self.b)
    }
}

fn sub(a: Point, b: Point) -> Point {
    Point::new(a.x - b.x, a.y - b.y)
}

fn cross(a: Point, b: Point) -> f32 {
    a.x * b.y - a.y * b.x
}

fn orient(a: Point, b: Point, c: Point) -> f32 {
    cross(sub(b, a), sub(c, a))
}

/// Squared distance from `p` to the segment `a`–`b`.
pub(crate) fn segment_distance_sq(p: Point, a: Point, b: Point) -> f32 {
    let ab = sub(b, a);
    let ap = sub(p, a);
    let len_sq = ab.x * ab.x + ab.y * ab.y;
    let t = if len_sq > 0.0 {
        ((ap.x * ab.x + ap.y * ab.y) / len_sq).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let dx = ap.x - t * ab.x;
    let dy = ap.y - t * ab.y;
    dx * dx + dy * dy
}

fn on_segment(a: Point, b: Point, p: Point) -> bool {
    p.x >= a.x.min(b.x) && p.x <= a.x.max(b.x) && p.y >= a.y.min(b.y) && p.y <= a.y.max(b.y)
}

/// Whether the closed segments `p1`–`p2` and `q1`–`q2` have a point in common.
pub(crate) fn segments_meet(p1: Point, p2: Point, q1: Point, q2: Point) -> bool {
    let d1 = orient(q1, q2, p1);
    let d2 = orient(q1, q2, p2);
    let d3 = orient(p1, p2, q1);
    let d4 = orient(p1, p2, q2);
    if ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0))
        && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    {
        return true;
    }
    (d1 == 0.0 && on_segment(q1, q2, p1))
        || (d2 == 0.0 && on_segment(q1, q2, p2))
        || (d3 == 0.0 && on_segment(p1, p2, q1))
        || (d4 == 0.0 && on_segment(p1, p2, q2))
}

/// Twice the signed area (shoelace formula).
pub(crate) fn doubled_area(pts: &[Point]) -> f32 {
    let n = pts.len();
    let mut s = 0.0;
    for i in 0..n {
        let (a, b) = (pts[i], pts[(i + 1) % n]);
        s += cross(a, b);
    }
    s
}

/// The first pair of non-adjacent edges `(i, j)` that meet, where edge `i` runs from
/// `pts[i]` to `pts[i + 1]` (wrapping). Consecutive duplicate points should be removed first.
/// O(n²), for validation only.
pub(crate) fn self_intersection(pts: &[Point]) -> Option<(usize, usize)> {
    let n = pts.len();
    if n < 4 {
        return None;
    }
    for i in 0..n {
        let (a1, a2) = (pts[i], pts[(i + 1) % n]);
        for j in (i + 2)..n {
            // The first and the last edge share pts[0].
            if i == 0 && j == n - 1 {
                continue;
            }
            let (b1, b2) = (pts[j], pts[(j + 1) % n]);
            if segments_meet(a1, a2, b1, b2) {
                return Some((i, j));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(x: f32, y: f32) -> Point {
        Point::new(x, y)
    }

    fn square() -> Polygon {
        Polygon::new(vec![
            p(0.0, 0.0),
            p(100.0, 0.0),
            p(100.0, 100.0),
            p(0.0, 100.0),
        ])
    }

    #[test]
    fn classify_with_band() {
        let s = square();
        assert_eq!(s.classify(p(50.0, 50.0), 5.0), Region::In);
        assert_eq!(s.classify(p(50.0, 96.0), 5.0), Region::Band);
        assert_eq!(s.classify(p(50.0, 94.0), 5.0), Region::In);
        assert_eq!(s.classify(p(50.0, 104.0), 5.0), Region::Band);
        assert_eq!(s.classify(p(50.0, 106.0), 5.0), Region::Out);
        assert_eq!(s.classify(p(-50.0, 50.0), 5.0), Region::Out);
        assert_eq!(s.classify(p(50.0, 99.0), 0.0), Region::In);
        assert_eq!(s.classify(p(f32::NAN, 50.0), 0.0), Region::Out);
    }

    #[test]
    fn concave_polygon() {
        // A "U": the notch between the arms is outside.
        let u = Polygon::new(vec![
            p(0.0, 0.0),
            p(30.0, 0.0),
            p(30.0, 70.0),
            p(70.0, 70.0),
            p(70.0, 0.0),
            p(100.0, 0.0),
            p(100.0, 100.0),
            p(0.0, 100.0),
        ]);
        assert_eq!(u.classify(p(50.0, 30.0), 2.0), Region::Out);
        assert_eq!(u.classify(p(15.0, 30.0), 2.0), Region::In);
        assert_eq!(u.classify(p(50.0, 85.0), 2.0), Region::In);
    }

    #[test]
    fn line_sides_follow_the_direction_convention() {
        // A→B east: the right-hand side (y down) is below, the `in` side.
        let l = Segment::new(p(0.0, 50.0), p(100.0, 50.0));
        assert!(l.signed_distance(p(50.0, 60.0)) > 0.0);
        assert_eq!(l.classify(p(50.0, 60.0), 5.0), Region::In);
        assert_eq!(l.classify(p(50.0, 40.0), 5.0), Region::Out);
        assert_eq!(l.classify(p(50.0, 53.0), 5.0), Region::Band);
        assert!((l.signed_distance(p(500.0, 57.0)) - 7.0).abs() < 1e-4);
        assert!(l.meets(p(50.0, 40.0), p(50.0, 60.0)));
        assert!(!l.meets(p(150.0, 40.0), p(150.0, 60.0)));
        assert!(
            l.meets(p(100.0, 40.0), p(100.0, 60.0)),
            "touching an end counts"
        );
    }

    #[test]
    fn segment_meeting() {
        assert!(segments_meet(
            p(0.0, 0.0),
            p(10.0, 10.0),
            p(0.0, 10.0),
            p(10.0, 0.0)
        ));
        assert!(!segments_meet(
            p(0.0, 0.0),
            p(1.0, 1.0),
            p(0.0, 10.0),
            p(10.0, 0.0)
        ));
        // Collinear and overlapping.
        assert!(segments_meet(
            p(0.0, 0.0),
            p(5.0, 0.0),
            p(3.0, 0.0),
            p(9.0, 0.0)
        ));
        assert!(!segments_meet(
            p(0.0, 0.0),
            p(2.0, 0.0),
            p(3.0, 0.0),
            p(9.0, 0.0)
        ));
    }

    #[test]
    fn self_intersections() {
        let sq = [p(0.0, 0.0), p(1.0, 0.0), p(1.0, 1.0), p(0.0, 1.0)];
        assert_eq!(self_intersection(&sq), None);
        let bow = [p(0.0, 0.0), p(1.0, 1.0), p(1.0, 0.0), p(0.0, 1.0)];
        assert_eq!(self_intersection(&bow), Some((0, 2)));
        assert_eq!(self_intersection(&sq[..3]), None);
        assert_eq!(doubled_area(&sq), 2.0);
        assert_eq!(doubled_area(&[p(0.0, 0.0), p(1.0, 1.0), p(2.0, 2.0)]), 0.0);
    }

    #[test]
    fn distance_to_segment() {
        assert_eq!(
            segment_distance_sq(p(5.0, 3.0), p(0.0, 0.0), p(10.0, 0.0)),
            9.0
        );
        assert_eq!(
            segment_distance_sq(p(13.0, 4.0), p(0.0, 0.0), p(10.0, 0.0)),
            25.0
        );
        assert_eq!(
            segment_distance_sq(p(3.0, 4.0), p(0.0, 0.0), p(0.0, 0.0)),
            25.0
        );
    }
}
