//! Clipped pixel operations on an RGB24 or I420 frame: rectangle spans, alpha blending in integer
//! maths, and an anti-aliased scanline polygon filler for zones, lines and arrows.
//!
//! Everything the painter draws goes through here, so this is the one place that has to
//! guarantee the overlay never writes outside the frame: every coordinate is clipped before
//! it becomes an index, and non-finite geometry is dropped. Scratch buffers live in
//! [`Rasterizer`] and [`Path`] and are reused from frame to frame, so drawing allocates
//! nothing per pixel (and, once warmed up, nothing per frame).

use crate::color::Color;
use sightline_core::{Frame, PixelFormat, YuvColor};
use std::ops::Range;

/// Vertical sub-samples per pixel row in the polygon filler (horizontal coverage is exact).
const SUBSAMPLES: usize = 4;
/// Coverage one sub-row contributes to a fully covered pixel (`SUBSAMPLES * UNIT` = 256).
const UNIT: i32 = 256 / SUBSAMPLES as i32;
/// Path coordinates are clamped to ±this many pixels so that far-away points cannot make the
/// edge maths overflow to infinity.
const COORD_LIMIT: f32 = (1 << 20) as f32;

/// `x / 255`, rounded, exact for `x` in `0..=255*255`.
#[inline]
pub(crate) fn div255(x: u32) -> u32 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

/// [`div255`] in 16 bits: exact for `x` in `0..=255*255` (the intermediate sums stay below
/// 65 536).
#[inline]
fn div255_u16(x: u16) -> u16 {
    let x = x + 128;
    (x + (x >> 8)) >> 8
}

/// Blends `src` over `dst` with coverage `a` (0–255).
#[inline]
fn blend(dst: &mut [u8], src: [u8; 3], a: u32) {
    if a == 255 {
        dst.copy_from_slice(&src);
        return;
    }
    let inv = 255 - a;
    for (d, s) in dst.iter_mut().zip(src) {
        *d = div255(s as u32 * a + *d as u32 * inv) as u8;
    }
}

/// A float pixel coordinate as a clamped integer (NaN becomes 0; callers reject NaN first).
#[inline]
pub(crate) fn to_px(v: f32) -> i64 {
    v.round().clamp(-COORD_LIMIT, COORD_LIMIT) as i64
}

/// A mutable view of a frame's pixels with its dimensions checked once: packed RGB, or the
/// three I420 planes (colours drawn in the frame's own Y′CbCr encoding; chroma, at half
/// resolution, takes the coverage of the even rows and columns it sits on).
pub(crate) struct Canvas<'a> {
    data: &'a mut [u8],
    w: usize,
    h: usize,
    /// `Some` for an I420 frame.
    yuv: Option<YuvColor>,
}

impl<'a> Canvas<'a> {
    /// `None` for an empty frame or one whose buffer is shorter than its size and format need.
    pub(crate) fn new(frame: &'a mut Frame) -> Option<Self> {
        let w = frame.width as usize;
        let h = frame.height as usize;
        w.checked_mul(h)?.checked_mul(3)?;
        let need = Frame::byte_len(frame.format, frame.width, frame.height);
        if need == 0 || frame.data.len() < need {
            return None;
        }
        let yuv = match frame.format {
            PixelFormat::Rgb24 => None,
            PixelFormat::I420(c) => Some(c),
        };
        Some(Canvas {
            data: &mut frame.data[..need],
            w,
            h,
            yuv,
        })
    }

    pub(crate) fn width(&self) -> i64 {
        self.w as i64
    }

    pub(crate) fn height(&self) -> i64 {
        self.h as i64
    }

    /// Clips the half-open rectangle `[x0,x1) × [y0,y1)` to the canvas.
    fn clip(&self, x0: i64, y0: i64, x1: i64, y1: i64) -> Option<(Range<usize>, Range<usize>)> {
        let cx0 = x0.clamp(0, self.w as i64) as usize;
        let cx1 = x1.clamp(0, self.w as i64) as usize;
        let cy0 = y0.clamp(0, self.h as i64) as usize;
        let cy1 = y1.clamp(0, self.h as i64) as usize;
        (cx0 < cx1 && cy0 < cy1).then_some((cx0..cx1, cy0..cy1))
    }

    /// Offsets of the U and V planes and the chroma row length (I420).
    fn chroma_layout(&self) -> (usize, usize, usize) {
        let (cw, ch) = (self.w.div_ceil(2), self.h.div_ceil(2));
        let u = self.w * self.h;
        (u, u + cw * ch, cw)
    }

    /// Blends `src` with alpha `a` over the pixels `xs` of row `y` (already clipped).
    fn span(&mut self, y: usize, xs: Range<usize>, src: [u8; 3], a: u8) {
        if a == 0 || xs.is_empty() {
            return;
        }
        match self.yuv {
            None => {
                let stride = self.w * 3;
                blend_const(
                    &mut self.data[y * stride + xs.start * 3..y * stride + xs.end * 3],
                    src,
                    a,
                );
            }
            Some(c) => {
                let [luma, u, v] = c.yuv(src);
                let row = y * self.w;
                blend_plane(&mut self.data[row + xs.start..row + xs.end], luma, a);
                if y.is_multiple_of(2) {
                    // The chroma sample `cx` sits on luma column `2 cx`: it belongs to the
                    // span that covers that column, so adjacent spans never blend it twice.
                    let (cx0, cx1) = (xs.start.div_ceil(2), xs.end.div_ceil(2));
                    if cx0 < cx1 {
                        let (uo, vo, cw) = self.chroma_layout();
                        let r = (y / 2) * cw;
                        blend_plane(&mut self.data[uo + r + cx0..uo + r + cx1], u, a);
                        blend_plane(&mut self.data[vo + r + cx0..vo + r + cx1], v, a);
                    }
                }
            }
        }
    }

    /// Fills `[x0,x1) × [y0,y1)` with `c`, blending when `c` is translucent.
    pub(crate) fn fill_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Color) {
        if c.a == 0 {
            return;
        }
        let Some((xs, ys)) = self.clip(x0, y0, x1, y1) else {
            return;
        };
        let src = [c.r, c.g, c.b];
        for y in ys {
            self.span(y, xs.clone(), src, c.a);
        }
    }

    /// The outline of `[x0,x1) × [y0,y1)`, `t` pixels thick, drawn inside the rectangle.
    pub(crate) fn stroke_rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, t: i64, c: Color) {
        if x1 <= x0 || y1 <= y0 || t <= 0 {
            return;
        }
        if x1 - x0 <= 2 * t || y1 - y0 <= 2 * t {
            self.fill_rect(x0, y0, x1, y1, c);
            return;
        }
        self.fill_rect(x0, y0, x1, y0 + t, c);
        self.fill_rect(x0, y1 - t, x1, y1, c);
        self.fill_rect(x0, y0 + t, x0 + t, y1 - t, c);
        self.fill_rect(x1 - t, y0 + t, x1, y1 - t, c);
    }

    /// Blends an 8-bit coverage mask (`w` wide, row-major) with its top-left at `(x, y)`.
    pub(crate) fn blit_mask(&mut self, x: i64, y: i64, w: usize, mask: &[u8], c: Color) {
        if w == 0 || c.a == 0 {
            return;
        }
        let h = mask.len() / w;
        let Some((xs, ys)) =
            self.clip(x, y, x.saturating_add(w as i64), y.saturating_add(h as i64))
        else {
            return;
        };
        let src = [c.r, c.g, c.b];
        let ca = c.a as u32;
        let alpha = |m: u8| {
            if ca == 255 {
                m as u32
            } else {
                div255(m as u32 * ca)
            }
        };
        if let Some(color) = self.yuv {
            let yuv = color.yuv(src);
            let (uo, vo, cw) = self.chroma_layout();
            for py in ys {
                let my = (py as i64 - y) as usize;
                for px in xs.clone() {
                    let a = alpha(mask[my * w + (px as i64 - x) as usize]);
                    if a == 0 {
                        continue;
                    }
                    blend_one(&mut self.data[py * self.w + px], yuv[0], a);
                    if py.is_multiple_of(2) && px.is_multiple_of(2) {
                        let ci = (py / 2) * cw + px / 2;
                        blend_one(&mut self.data[uo + ci], yuv[1], a);
                        blend_one(&mut self.data[vo + ci], yuv[2], a);
                    }
                }
            }
            return;
        }
        let stride = self.w * 3;
        for py in ys {
            let my = (py as i64 - y) as usize;
            let mx0 = (xs.start as i64 - x) as usize;
            let mrow = &mask[my * w + mx0..my * w + mx0 + xs.len()];
            let row = &mut self.data[py * stride + xs.start * 3..py * stride + xs.end * 3];
            for (px, &m) in row.chunks_exact_mut(3).zip(mrow) {
                let a = alpha(m);
                if a == 255 {
                    px.copy_from_slice(&src);
                } else if a != 0 {
                    blend(px, src, a);
                }
            }
        }
    }

    /// Multiplies every pixel by `factor / 256` (`factor <= 256`): dims the frame (towards
    /// black; for I420 luma towards the range's black and chroma towards grey).
    pub(crate) fn dim(&mut self, factor: u16) {
        let f = factor.min(256) as i32;
        match self.yuv {
            None => {
                for v in self.data.iter_mut() {
                    *v = ((*v as u32 * f as u32) >> 8) as u8;
                }
            }
            Some(c) => {
                let black = if c.full_range { 0 } else { 16 };
                let luma = self.w * self.h;
                let (planes_y, chroma) = self.data.split_at_mut(luma);
                for v in planes_y.iter_mut() {
                    *v = (black + (((*v as i32 - black) * f) >> 8)).clamp(0, 255) as u8;
                }
                for v in chroma.iter_mut() {
                    *v = (128 + (((*v as i32 - 128) * f) >> 8)).clamp(0, 255) as u8;
                }
            }
        }
    }
}

/// Blends one value over one byte with coverage `a` (0–255).
#[inline]
fn blend_one(d: &mut u8, v: u8, a: u32) {
    *d = if a >= 255 {
        v
    } else {
        div255(v as u32 * a + *d as u32 * (255 - a)) as u8
    };
}

/// Blends one value with one alpha over a run of single-channel bytes (a plane's row).
fn blend_plane(bytes: &mut [u8], v: u8, a: u8) {
    if a == 255 {
        bytes.fill(v);
        return;
    }
    let a = a as u16;
    let pre = v as u16 * a;
    let inv = 255 - a;
    for d in bytes {
        *d = div255_u16(pre + *d as u16 * inv) as u8;
    }
}

/// A set of closed contours to fill as one shape (non-zero winding, so overlapping parts
/// of a stroked outline are covered once, never blended twice).
#[derive(Default)]
pub(crate) struct Path {
    pts: Vec<[f32; 2]>,
    contours: Vec<Range<usize>>,
}

impl Path {
    pub(crate) fn clear(&mut self) {
        self.pts.clear();
        self.contours.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.contours.is_empty()
    }

    /// Adds a closed contour; dropped when it has fewer than 3 points or a non-finite one.
    pub(crate) fn polygon<I: IntoIterator<Item = [f32; 2]>>(&mut self, pts: I) {
        let start = self.pts.len();
        let mut finite = true;
        for [x, y] in pts {
            finite &= x.is_finite() && y.is_finite();
            self.pts.push([
                x.clamp(-COORD_LIMIT, COORD_LIMIT),
                y.clamp(-COORD_LIMIT, COORD_LIMIT),
            ]);
        }
        if finite && self.pts.len() - start >= 3 {
            self.contours.push(start..self.pts.len());
        } else {
            self.pts.truncate(start);
        }
    }

    /// A straight stroke from `a` to `b`, `width` pixels wide, with square (butt) ends.
    pub(crate) fn segment(&mut self, a: [f32; 2], b: [f32; 2], width: f32) {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if len.is_nan() || len < 1e-3 {
            return;
        }
        let (nx, ny) = (-dy / len * width / 2.0, dx / len * width / 2.0);
        self.polygon([
            [a[0] + nx, a[1] + ny],
            [b[0] + nx, b[1] + ny],
            [b[0] - nx, b[1] - ny],
            [a[0] - nx, a[1] - ny],
        ]);
    }

    /// A filled disc approximated by a regular polygon fine enough for its radius.
    pub(crate) fn disc(&mut self, c: [f32; 2], r: f32) {
        if r.is_nan() || r <= 0.0 {
            return;
        }
        let n = ((r * 2.0) as usize).clamp(8, 48);
        self.polygon((0..n).map(|i| {
            let t = i as f32 * std::f32::consts::TAU / n as f32;
            [c[0] + r * t.cos(), c[1] + r * t.sin()]
        }));
    }

    /// The outline of a closed polygon: a stroke per edge with round joins.
    pub(crate) fn outline(&mut self, pts: &[[f32; 2]], width: f32) {
        for (i, &p) in pts.iter().enumerate() {
            let q = pts[(i + 1) % pts.len()];
            self.segment(p, q, width);
            if width > 1.5 {
                self.disc(p, width / 2.0);
            }
        }
    }
}

#[derive(Clone, Copy)]
struct Edge {
    y0: f32,
    y1: f32,
    /// x at `y0`.
    x0: f32,
    dxdy: f32,
    /// +1 or -1: contributes to the winding number when crossed.
    dir: i32,
}

/// A change of coverage in one pixel row: from pixel `x` on, coverage changes by `step`;
/// pixel `x` alone also gets `point` (the fractional end of a span).
#[derive(Clone, Copy)]
struct CoverEvent {
    x: usize,
    step: i32,
    point: i32,
}

/// Scratch space of the anti-aliased polygon filler, reused between calls.
///
/// Coverage of a row is piecewise constant between span ends, so instead of accumulating it
/// pixel by pixel the filler records span ends as sorted events and blends each constant
/// stretch in one vectorised call.
#[derive(Default)]
pub(crate) struct Rasterizer {
    edges: Vec<Edge>,
    active: Vec<Edge>,
    crossings: Vec<(f32, i32)>,
    events: Vec<CoverEvent>,
}

impl Rasterizer {
    /// Fills `path` (non-zero winding) with `c`, anti-aliased, clipped to the canvas.
    pub(crate) fn fill(&mut self, canvas: &mut Canvas<'_>, path: &Path, c: Color) {
        if c.a == 0 || path.is_empty() {
            return;
        }
        self.build_edges(path);
        if self.edges.is_empty() {
            return;
        }
        let w = canvas.w;
        self.active.clear();
        let top = self
            .edges
            .iter()
            .map(|e| e.y0)
            .fold(f32::INFINITY, f32::min);
        let bottom = self
            .edges
            .iter()
            .map(|e| e.y1)
            .fold(f32::NEG_INFINITY, f32::max);
        let y_start = (top.floor().max(0.0) as usize).min(canvas.h);
        let y_end = (bottom.ceil().max(0.0) as usize).min(canvas.h);
        let mut next = 0;
        let src = [c.r, c.g, c.b];
        let alpha = |cov: i32| {
            let cov = cov.clamp(0, 255) as u32;
            (if c.a == 255 {
                cov
            } else {
                div255(cov * c.a as u32)
            }) as u8
        };

        for y in y_start..y_end {
            self.events.clear();
            for s in 0..SUBSAMPLES {
                let sy = y as f32 + (s as f32 + 0.5) / SUBSAMPLES as f32;
                while next < self.edges.len() && self.edges[next].y0 <= sy {
                    self.active.push(self.edges[next]);
                    next += 1;
                }
                self.active.retain(|e| e.y1 > sy);
                self.crossings.clear();
                self.crossings.extend(
                    self.active
                        .iter()
                        .map(|e| (e.x0 + (sy - e.y0) * e.dxdy, e.dir)),
                );
                insertion_sort_by(&mut self.crossings, |a, b| a.0 > b.0);
                let mut winding = 0;
                let mut start = 0.0;
                for &(x, dir) in &self.crossings {
                    let was = winding;
                    winding += dir;
                    if was == 0 && winding != 0 {
                        start = x;
                    } else if was != 0 && winding == 0 {
                        add_span(&mut self.events, start, x, w);
                    }
                }
            }
            if self.events.is_empty() {
                continue;
            }
            insertion_sort_by(&mut self.events, |a, b| a.x > b.x);
            let mut base = 0;
            let mut k = 0;
            while k < self.events.len() {
                let x = self.events[k].x;
                let mut point = 0;
                while k < self.events.len() && self.events[k].x == x {
                    base += self.events[k].step;
                    point += self.events[k].point;
                    k += 1;
                }
                if x >= w {
                    break;
                }
                canvas.span(y, x..x + 1, src, alpha(base + point));
                let until = self.events.get(k).map_or(w, |e| e.x.min(w));
                if base > 0 && until > x + 1 {
                    canvas.span(y, x + 1..until, src, alpha(base));
                }
            }
        }
    }

    fn build_edges(&mut self, path: &Path) {
        self.edges.clear();
        for range in &path.contours {
            let pts = &path.pts[range.clone()];
            // Orient every contour the same way so that overlapping contours add up.
            let area: f32 = (0..pts.len())
                .map(|i| {
                    let (p, q) = (pts[i], pts[(i + 1) % pts.len()]);
                    p[0] * q[1] - q[0] * p[1]
                })
                .sum();
            if area == 0.0 || !area.is_finite() {
                continue;
            }
            let orient = if area > 0.0 { 1 } else { -1 };
            for i in 0..pts.len() {
                let (p, q) = (pts[i], pts[(i + 1) % pts.len()]);
                if p[1] == q[1] {
                    continue;
                }
                let (lo, hi, dir) = if p[1] < q[1] { (p, q, 1) } else { (q, p, -1) };
                self.edges.push(Edge {
                    y0: lo[1],
                    y1: hi[1],
                    x0: lo[0],
                    // A nearly flat edge can overflow the slope; it is crossed by at most
                    // one sub-row, where treating it as vertical is exact enough.
                    dxdy: Some((hi[0] - lo[0]) / (hi[1] - lo[1]))
                        .filter(|d| d.is_finite())
                        .unwrap_or(0.0),
                    dir: dir * orient,
                });
            }
        }
        self.edges.sort_unstable_by(|a, b| a.y0.total_cmp(&b.y0));
    }
}

/// Pixels per block in [`blend_const`]: a whole number of pixels whose bytes fill SIMD
/// registers evenly, so the compiler vectorises the fixed-size inner loop.
const BLOCK_PX: usize = 16;

/// Blends one colour with one alpha over packed RGB pixels (exact `div255` rounding).
pub(crate) fn blend_const(bytes: &mut [u8], src: [u8; 3], a: u8) {
    if a == 0 {
        return;
    }
    if bytes.len() < BLOCK_PX * 3 {
        for px in bytes.chunks_exact_mut(3) {
            blend(px, src, a as u32);
        }
        return;
    }
    let mut blocks = bytes.chunks_exact_mut(BLOCK_PX * 3);
    if a == 255 {
        let pattern: [u8; BLOCK_PX * 3] = std::array::from_fn(|i| src[i % 3]);
        for b in &mut blocks {
            b.copy_from_slice(&pattern);
        }
    } else {
        // 16-bit lanes (SSE2 multiplies 16-bit lanes): s*a + d*(255-a) <= 255*255, and
        // `div255_u16` stays within u16 for such values.
        let a = a as u16;
        let inv = 255 - a;
        let pre: [u16; BLOCK_PX * 3] = std::array::from_fn(|i| src[i % 3] as u16 * a);
        for b in &mut blocks {
            for (d, p) in b.iter_mut().zip(pre.iter()) {
                *d = div255_u16(p + *d as u16 * inv) as u8;
            }
        }
    }
    for px in blocks.into_remainder().chunks_exact_mut(3) {
        blend(px, src, a as u32);
    }
}

/// Sorts a short, nearly sorted slice (crossings and span ends of one row arrive almost in
/// order): linear in the usual case, and no call overhead. `greater(a, b)`: `a` goes after `b`.
fn insertion_sort_by<T: Copy>(v: &mut [T], greater: impl Fn(&T, &T) -> bool) {
    for i in 1..v.len() {
        let item = v[i];
        let mut j = i;
        while j > 0 && greater(&v[j - 1], &item) {
            v[j] = v[j - 1];
            j -= 1;
        }
        v[j] = item;
    }
}

/// Records the coverage of one sub-row span `[xa, xb)`, clipped to `[0, w]`.
fn add_span(events: &mut Vec<CoverEvent>, xa: f32, xb: f32, w: usize) {
    let wf = w as f32;
    let (xa, xb) = (xa.clamp(0.0, wf), xb.clamp(0.0, wf));
    // Also rejects NaN ends.
    if xb.partial_cmp(&xa) != Some(std::cmp::Ordering::Greater) {
        return;
    }
    let ia = (xa as usize).min(w - 1);
    let ib = xb as usize; // may equal w
    let unit = UNIT as f32;
    let point = |x: usize, v: f32| CoverEvent {
        x,
        step: 0,
        point: (v * unit + 0.5) as i32, // v >= 0
    };
    if ia == ib || (ib == ia + 1 && xb == ib as f32) {
        events.push(point(ia, xb - xa));
        return;
    }
    events.push(point(ia, ia as f32 + 1.0 - xa));
    // Full pixels ia+1 .. ib.
    events.push(CoverEvent {
        x: ia + 1,
        step: UNIT,
        point: 0,
    });
    events.push(CoverEvent {
        x: ib,
        step: -UNIT,
        point: 0,
    });
    if ib < w {
        events.push(point(ib, xb - ib as f32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::Pts;

    const BG: [u8; 3] = [10, 20, 30];

    fn frame(w: u32, h: u32) -> Frame {
        Frame::filled(w, h, BG, Pts::ZERO)
    }

    fn changed(f: &Frame) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        for y in 0..f.height {
            for x in 0..f.width {
                if f.pixel(x, y) != BG {
                    v.push((x, y));
                }
            }
        }
        v
    }

    #[test]
    fn div255_is_exact() {
        for x in 0..=255 * 255 {
            let want = (x as f64 / 255.0).round() as u32;
            assert_eq!(div255(x), want, "{x}");
            assert_eq!(div255_u16(x as u16) as u32, want, "{x}");
        }
    }

    #[test]
    fn constant_blend_matches_per_pixel_blend_for_every_length() {
        for len in [0usize, 1, 15, 16, 17, 40] {
            for a in [0u8, 1, 77, 128, 254, 255] {
                let mut bytes: Vec<u8> = (0..len * 3).map(|i| (i * 37 % 256) as u8).collect();
                let mut want = bytes.clone();
                for px in want.chunks_exact_mut(3) {
                    blend(px, [200, 10, 99], a as u32);
                }
                blend_const(&mut bytes, [200, 10, 99], a);
                assert_eq!(bytes, want, "len {len} alpha {a}");
            }
        }
    }

    #[test]
    fn blending_extremes_and_midpoint() {
        let mut f = frame(4, 1);
        let mut c = Canvas::new(&mut f).unwrap();
        c.fill_rect(0, 0, 1, 1, Color::rgba(255, 255, 255, 0));
        c.fill_rect(1, 0, 2, 1, Color::rgba(255, 255, 255, 255));
        c.fill_rect(2, 0, 3, 1, Color::rgba(210, 20, 130, 128));
        assert_eq!(f.pixel(0, 0), BG);
        assert_eq!(f.pixel(1, 0), [255, 255, 255]);
        // (210*128 + 10*127)/255 = 110.4, (20*128+20*127)/255 = 20, (130*128+30*127)/255 = 80.2
        assert_eq!(f.pixel(2, 0), [110, 20, 80]);
        assert_eq!(f.pixel(3, 0), BG);
    }

    #[test]
    fn rects_clip_to_the_frame() {
        let mut f = frame(8, 6);
        let mut c = Canvas::new(&mut f).unwrap();
        c.fill_rect(-5, -5, 2, 2, Color::WHITE);
        c.fill_rect(7, 5, 100, 100, Color::WHITE);
        c.fill_rect(20, 0, 30, 6, Color::WHITE); // fully outside
        c.fill_rect(3, 3, 3, 5, Color::WHITE); // empty
        c.fill_rect(i64::MIN, i64::MIN, i64::MIN + 1, 0, Color::WHITE);
        let got = changed(&f);
        assert_eq!(got, vec![(0, 0), (1, 0), (0, 1), (1, 1), (7, 5)]);
    }

    #[test]
    fn stroke_is_inside_the_box() {
        let mut f = frame(10, 10);
        let mut c = Canvas::new(&mut f).unwrap();
        c.stroke_rect(1, 1, 9, 9, 2, Color::WHITE);
        let got = changed(&f);
        assert_eq!(got.len(), 8 * 8 - 4 * 4);
        assert!(
            got.iter()
                .all(|&(x, y)| (1..9).contains(&x) && (1..9).contains(&y))
        );
        assert_eq!(f.pixel(4, 4), BG);
        // A box thinner than twice the stroke is filled; one half outside is clipped.
        let mut c = Canvas::new(&mut f).unwrap();
        c.stroke_rect(-3, -3, 2, 2, 4, Color::rgb(1, 2, 3));
        assert_eq!(f.pixel(0, 0), [1, 2, 3]);
    }

    #[test]
    fn masks_clip_and_scale_by_alpha() {
        let mut f = frame(4, 4);
        let mut c = Canvas::new(&mut f).unwrap();
        let mask = [255u8, 0, 128, 255, 255, 255];
        c.blit_mask(-1, 2, 3, &mask, Color::rgb(250, 250, 250));
        c.blit_mask(3, 3, 3, &mask, Color::rgb(250, 250, 250).with_alpha(0));
        // Column -1 is cut; (0,2) gets alpha 0 → unchanged; (1,2) 128; row 3: full.
        assert_eq!(f.pixel(0, 2), BG);
        assert_eq!(f.pixel(1, 2), [130, 135, 140]);
        assert_eq!(f.pixel(0, 3), [250, 250, 250]);
        assert_eq!(f.pixel(1, 3), [250, 250, 250]);
        assert_eq!(changed(&f).len(), 3);
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut f = frame(4, 4);
        f.data.truncate(10);
        assert!(Canvas::new(&mut f).is_none());
        let mut f = frame(0, 4);
        assert!(Canvas::new(&mut f).is_none());
    }

    #[test]
    fn dim_scales_every_byte() {
        let mut f = Frame::filled(2, 2, [200, 100, 0], Pts::ZERO);
        Canvas::new(&mut f).unwrap().dim(90);
        assert_eq!(f.pixel(1, 1), [70, 35, 0]);
    }

    fn i420(w: u32, h: u32) -> Frame {
        let c = YuvColor::default();
        let n = Frame::byte_len(PixelFormat::I420(c), w, h);
        Frame::from_i420(
            w,
            h,
            Pts::ZERO,
            c,
            vec![16; w as usize * h as usize]
                .into_iter()
                .chain(std::iter::repeat_n(128, n - w as usize * h as usize))
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn i420_rects_colour_luma_and_the_chroma_they_cover() {
        let mut f = i420(8, 6);
        let red = Color::rgba(255, 0, 0, 255);
        Canvas::new(&mut f).unwrap().fill_rect(2, 2, 6, 4, red);
        let yuv = YuvColor::default().yuv([255, 0, 0]);
        assert_eq!(f.pixel(2, 2), yuv);
        assert_eq!(f.pixel(5, 3), yuv);
        assert_eq!(f.pixel(1, 2), [16, 128, 128], "left of the rect");
        assert_eq!(f.pixel(6, 3), [16, 128, 128], "right of the rect");
        assert_eq!(f.pixel(2, 4)[0], 16, "below the rect");
        assert_eq!(f.data.len(), 8 * 6 + 2 * 4 * 3, "no byte added");
        // Half-transparent over black: luma halfway, chroma halfway to the colour's.
        let mut g = i420(8, 6);
        Canvas::new(&mut g)
            .unwrap()
            .fill_rect(0, 0, 8, 6, Color::rgba(255, 255, 255, 128));
        assert_eq!(g.pixel(7, 5), [126, 128, 128]);
    }

    #[test]
    fn i420_polygons_and_masks_stay_inside_and_dim_keeps_grey() {
        let mut f = i420(32, 32);
        let mut p = Path::default();
        p.polygon([[4.0, 4.0], [20.0, 4.0], [20.0, 20.0], [4.0, 20.0]]);
        fill(&mut f, &p, Color::rgba(0, 255, 0, 255));
        let green = YuvColor::default().yuv([0, 255, 0]);
        assert_eq!(f.pixel(10, 10), green);
        assert_eq!(f.pixel(3, 10), [16, 128, 128]);
        assert_eq!(f.pixel(21, 21), [16, 128, 128]);
        let mut c = Canvas::new(&mut f).unwrap();
        c.blit_mask(-2, 28, 4, &[255; 4 * 8], Color::rgba(255, 255, 255, 255));
        assert_eq!(f.pixel(0, 31)[0], 235, "mask clipped to the frame, drawn");
        assert_eq!(f.pixel(2, 31)[0], 16, "mask ends at x = 2");
        let mut c = Canvas::new(&mut f).unwrap();
        c.dim(128);
        assert_eq!(f.pixel(0, 30), [(16 + (235 - 16) / 2) as u8, 128, 128]);
        assert_eq!(f.pixel(30, 0), [16, 128, 128], "black stays black");
    }

    fn fill(f: &mut Frame, path: &Path, c: Color) {
        let mut r = Rasterizer::default();
        r.fill(&mut Canvas::new(f).unwrap(), path, c);
    }

    #[test]
    fn pixel_aligned_square_is_exact() {
        let mut f = frame(10, 10);
        let mut p = Path::default();
        p.polygon([[2.0, 3.0], [6.0, 3.0], [6.0, 8.0], [2.0, 8.0]]);
        fill(&mut f, &p, Color::WHITE);
        let got = changed(&f);
        assert_eq!(got.len(), 4 * 5);
        assert!(
            got.iter()
                .all(|&(x, y)| (2..6).contains(&x) && (3..8).contains(&y))
        );
        assert!(got.iter().all(|&(x, y)| f.pixel(x, y) == [255, 255, 255]));
    }

    #[test]
    fn half_pixel_edges_are_antialiased() {
        let mut f = Frame::filled(10, 10, [0, 0, 0], Pts::ZERO);
        let mut p = Path::default();
        p.polygon([[2.5, 2.5], [6.5, 2.5], [6.5, 6.5], [2.5, 6.5]]);
        fill(&mut f, &p, Color::WHITE);
        assert_eq!(f.pixel(4, 4), [255; 3]);
        assert_eq!(f.pixel(2, 4)[0], 128); // half covered horizontally
        assert_eq!(f.pixel(4, 2)[0], 128); // two of four sub-rows
        assert_eq!(f.pixel(2, 2)[0], 64); // quarter
        assert_eq!(f.pixel(1, 4), [0; 3]);
        // Total coverage equals the area.
        let total: u32 = f.data.iter().step_by(3).map(|&v| v as u32).sum();
        assert!((total as f32 / 255.0 - 16.0).abs() < 0.2, "{total}");
    }

    #[test]
    fn overlapping_contours_blend_once() {
        let mut f = Frame::filled(10, 4, [0, 0, 0], Pts::ZERO);
        let mut p = Path::default();
        p.polygon([[0.0, 0.0], [6.0, 0.0], [6.0, 4.0], [0.0, 4.0]]);
        // Opposite orientation on purpose: contours are normalised.
        p.polygon([[4.0, 0.0], [4.0, 4.0], [10.0, 4.0], [10.0, 0.0]]);
        fill(&mut f, &p, Color::rgba(200, 200, 200, 128));
        let v = f.pixel(1, 1);
        assert_eq!(f.pixel(5, 1), v);
        assert_eq!(f.pixel(9, 3), v);
    }

    #[test]
    fn polygons_outside_or_invalid_draw_nothing() {
        let mut f = frame(20, 20);
        let mut p = Path::default();
        p.polygon([[-50.0, -50.0], [-10.0, -50.0], [-10.0, -10.0]]);
        p.polygon([[30.0, 0.0], [60.0, 0.0], [60.0, 20.0]]);
        p.polygon([[1.0, 1.0], [f32::NAN, 5.0], [5.0, 5.0]]);
        p.polygon([[1.0, 1.0], [5.0, 5.0]]);
        p.polygon([[1.0, 1.0], [5.0, 5.0], [9.0, 9.0]]); // degenerate: zero area
        p.segment([3.0, 3.0], [3.0, 3.0], 4.0);
        p.disc([5.0, 5.0], f32::NAN);
        fill(&mut f, &p, Color::WHITE);
        assert!(changed(&f).is_empty());
    }

    #[test]
    fn huge_and_partly_outside_polygons_clip() {
        let mut f = frame(16, 12);
        let mut p = Path::default();
        p.polygon([[-1e30, -1e30], [1e30, -1e30], [1e30, 1e30], [-1e30, 1e30]]);
        fill(&mut f, &p, Color::WHITE);
        assert_eq!(changed(&f).len(), 16 * 12);
        let mut f = frame(16, 12);
        let mut p = Path::default();
        p.segment([-100.0, 6.0], [100.0, 6.0], 2.0);
        p.disc([15.0, 11.0], 3.0);
        fill(&mut f, &p, Color::WHITE);
        assert_eq!(f.pixel(0, 5), [255; 3]);
        assert_eq!(f.pixel(15, 6), [255; 3]);
        assert_eq!(f.pixel(15, 11), [255; 3]);
        assert_eq!(f.pixel(7, 0), BG);
    }

    #[test]
    fn segment_width_is_respected() {
        let mut f = Frame::filled(20, 20, [0, 0, 0], Pts::ZERO);
        let mut p = Path::default();
        p.segment([2.0, 10.0], [18.0, 10.0], 4.0);
        fill(&mut f, &p, Color::WHITE);
        assert_eq!(f.pixel(10, 7), [0; 3]);
        assert_eq!(f.pixel(10, 8), [255; 3]);
        assert_eq!(f.pixel(10, 11), [255; 3]);
        assert_eq!(f.pixel(10, 12), [0; 3]);
    }
}
