//! The [`Painter`]: turns a [`Scene`] into pixels on a frame, in place.
//!
//! It owns everything that should outlive a frame (the font and its glyph cache, the
//! resolved colours of the style, the rasteriser's scratch buffers) so that drawing a frame
//! does no set-up work. Drawing is layered: zone fills, zone outlines and lines first, then
//! boxes, then every text label (so labels stay readable over boxes), then the status corner
//! and timestamp.

use crate::color::{Color, class_color, region_color};
use crate::error::OverlayError;
use crate::raster::{Canvas, Path, Rasterizer, to_px};
use crate::scene::{Scene, SceneLine, SceneObject, SceneZone};
use crate::style::DrawStyle;
use crate::text::{TextRenderer, TextSize, clamp_size};
use sightline_core::{ClassId, Detection, Frame, Labels};
use std::fmt::Write as _;

/// Background of the status corner and timestamp.
const HUD_BACKGROUND: Color = Color::rgba(0, 0, 0, 150);
/// Distance of the status corner and timestamp from the frame edges.
const HUD_MARGIN: i64 = 8;
/// Zone outline width in pixels.
const ZONE_OUTLINE: f32 = 2.0;
/// The slate dims the frame to this fraction of 256 (≈ 35 %).
const SLATE_DIM: u16 = 90;

/// Where a block of text (with its background, if any) was placed, before clipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextBox {
    /// Left edge, in frame pixels.
    pub x: i32,
    /// Top edge, in frame pixels.
    pub y: i32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Draws scenes, slates and text onto frames. One per pipeline (it is not `Sync`-shared);
/// cheap to keep, about 1 MB with a warm glyph cache.
pub struct Painter {
    style: DrawStyle,
    class_colors: Vec<(String, Color)>,
    text: TextRenderer,
    raster: Rasterizer,
    path: Path,
    pts: Vec<[f32; 2]>,
    label: String,
}

impl std::fmt::Debug for Painter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Painter")
            .field("style", &self.style)
            .field("cached_glyphs", &self.text.cached_glyphs())
            .finish_non_exhaustive()
    }
}

impl Painter {
    /// A painter for `style`; fails when the style does not validate.
    pub fn new(style: DrawStyle) -> Result<Self, OverlayError> {
        let mut p = Painter {
            style: DrawStyle::default(),
            class_colors: Vec::new(),
            text: TextRenderer::new()?,
            raster: Rasterizer::default(),
            path: Path::default(),
            pts: Vec::new(),
            label: String::new(),
        };
        p.set_style(style)?;
        Ok(p)
    }

    /// Replaces the style (a new config version applied at a frame boundary). On error the
    /// previous style stays in force.
    pub fn set_style(&mut self, style: DrawStyle) -> Result<(), OverlayError> {
        let mut errs = sightline_core::FieldErrors::new();
        style.validate("", &mut errs);
        if !errs.is_empty() {
            return Err(OverlayError::InvalidStyle(errs));
        }
        self.class_colors = style.resolved_class_colors();
        self.style = style;
        Ok(())
    }

    /// The style in force.
    pub fn style(&self) -> &DrawStyle {
        &self.style
    }

    /// The colour boxes of this class are drawn in: the style's override for `name`, else the
    /// palette colour of `id`.
    pub fn class_color(&self, id: ClassId, name: &str) -> Color {
        self.class_colors
            .iter()
            .find(|(n, _)| n == name)
            .map_or_else(|| class_color(id.0), |(_, c)| *c)
    }

    /// The size `text` takes at `size` pixels (without background padding).
    pub fn measure_text(&mut self, text: &str, size: u32) -> TextSize {
        self.text.measure(text, size)
    }

    /// Draws `text` (lines separated by `\n`) with the top-left of the block at `(x, y)`.
    /// With a `background`, the block is the text plus padding on a filled rectangle.
    /// Clipped to the frame; `size` is clamped to 4–512 pixels.
    #[allow(clippy::too_many_arguments)]
    pub fn draw_text(
        &mut self,
        frame: &mut Frame,
        x: i32,
        y: i32,
        text: &str,
        size: u32,
        color: Color,
        background: Option<Color>,
    ) -> TextBox {
        let b = self.text_box(x as i64, y as i64, text, size, background.is_some());
        if let Some(mut canvas) = canvas(frame) {
            self.put_text(&mut canvas, b, text, size, color, background);
        }
        b
    }

    /// Draws bare detections (no tracks, zones or status): `sightline infer` and
    /// `/v1/infer?annotate=true`.
    pub fn draw_detections(&mut self, frame: &mut Frame, dets: &[Detection], labels: &Labels) {
        let names: Vec<_> = dets.iter().map(|d| labels.name(d.class_id)).collect();
        let objects: Vec<SceneObject<'_>> = dets
            .iter()
            .zip(&names)
            .map(|(d, n)| SceneObject {
                bbox: d.bbox,
                class_id: d.class_id,
                class_name: n,
                score: d.score,
                track_id: None,
            })
            .collect();
        self.draw_scene(
            frame,
            &Scene {
                objects: &objects,
                ..Scene::default()
            },
        );
    }

    /// Draws one frame's overlay.
    pub fn draw_scene(&mut self, frame: &mut Frame, scene: &Scene<'_>) {
        let Some(mut canvas) = canvas(frame) else {
            return;
        };
        if self.style.show_zones {
            for (i, z) in scene.zones.iter().enumerate() {
                self.zone_shape(&mut canvas, i, z);
            }
        }
        if self.style.show_lines {
            for (i, l) in scene.lines.iter().enumerate() {
                self.line_shape(&mut canvas, i, l);
            }
        }
        for o in scene.objects {
            self.object_box(&mut canvas, o);
        }
        if self.style.show_labels {
            for o in scene.objects {
                self.object_label(&mut canvas, o);
            }
        }
        if self.style.show_zones {
            for (i, z) in scene.zones.iter().enumerate() {
                self.zone_label(&mut canvas, i, z);
            }
        }
        if self.style.show_lines {
            for (i, l) in scene.lines.iter().enumerate() {
                self.line_label(&mut canvas, i, l);
            }
        }
        if self.style.show_status && !scene.status.is_empty() {
            self.status_corner(&mut canvas, scene.status);
        }
        if self.style.show_timestamp
            && let Some(ts) = scene.timestamp
        {
            let size = self.style.font_size;
            let b = self.text_box(0, HUD_MARGIN, ts, size, true);
            let b = TextBox {
                x: (canvas.width() - HUD_MARGIN - b.width as i64) as i32,
                ..b
            };
            self.put_text(&mut canvas, b, ts, size, Color::WHITE, Some(HUD_BACKGROUND));
        }
    }

    /// The "signal lost" slate: dims the frame to about 35 % and writes `title` large and
    /// `detail` below it, centred. Shown while a source reconnects so viewers stay connected.
    pub fn draw_slate(&mut self, frame: &mut Frame, title: &str, detail: &str) {
        let Some(mut canvas) = canvas(frame) else {
            return;
        };
        canvas.dim(SLATE_DIM);
        let (w, h) = (canvas.width(), canvas.height());
        let title_size = self.fit(title, (h / 8).clamp(12, 160) as u32, w);
        let detail_size = self.fit(detail, (title_size * 2 / 5).max(10), w);
        let t = self.text.measure(title, title_size);
        let d = if detail.is_empty() {
            TextSize {
                width: 0,
                height: 0,
            }
        } else {
            self.text.measure(detail, detail_size)
        };
        let gap = (title_size / 3) as i64;
        let total = t.height as i64
            + if detail.is_empty() {
                0
            } else {
                gap + d.height as i64
            };
        let mut y = (h - total) / 2;
        for (text, size, m, color) in [
            (title, title_size, t, Color::WHITE),
            (detail, detail_size, d, Color::rgb(215, 215, 215)),
        ] {
            if text.is_empty() {
                continue;
            }
            self.centred_lines(&mut canvas, y, text, size, color);
            y += m.height as i64 + gap;
        }
        // An accent rule between title and detail.
        if !title.is_empty() {
            let rule_w = (t.width as i64).min(w * 3 / 4) / 3;
            let ry = (h - total) / 2 + t.height as i64 + gap / 2 - 1;
            let accent = Color::rgb(0xff, 0x38, 0x38);
            canvas.fill_rect((w - rule_w) / 2, ry, (w + rule_w) / 2, ry + 3, accent);
        }
    }

    /// `size`, reduced so that the widest line of `text` fits in 90 % of `width`.
    fn fit(&mut self, text: &str, size: u32, width: i64) -> u32 {
        let m = self.text.measure(text, size);
        let room = (width * 9 / 10).max(1) as u64;
        if m.width as u64 <= room {
            return size;
        }
        ((size as u64 * room / m.width as u64) as u32).max(1)
    }

    fn centred_lines(
        &mut self,
        canvas: &mut Canvas<'_>,
        y: i64,
        text: &str,
        size: u32,
        color: Color,
    ) {
        let (_, line_h) = self.text.line_metrics(clamp_size(size));
        for (i, line) in text.split('\n').enumerate() {
            let lw = self.text.measure(line, size).width as i64;
            let x = (canvas.width() - lw) / 2;
            self.text
                .draw(canvas, x, y + i as i64 * line_h, line, size, color);
        }
    }

    /// Space between a label's text and the edge of its background.
    fn padding(size: u32) -> (i64, i64) {
        let s = clamp_size(size) as i64;
        ((s / 4).max(3), (s / 7).max(2))
    }

    /// The block `text` occupies at `(x, y)`, padded when it has a background.
    fn text_box(&mut self, x: i64, y: i64, text: &str, size: u32, padded: bool) -> TextBox {
        let m = self.text.measure(text, size);
        let (px, py) = if padded { Self::padding(size) } else { (0, 0) };
        TextBox {
            x: x.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            y: y.clamp(i32::MIN as i64, i32::MAX as i64) as i32,
            width: m.width.saturating_add(2 * px as u32),
            height: m.height.saturating_add(2 * py as u32),
        }
    }

    fn put_text(
        &mut self,
        canvas: &mut Canvas<'_>,
        b: TextBox,
        text: &str,
        size: u32,
        color: Color,
        background: Option<Color>,
    ) {
        let (x, y) = (b.x as i64, b.y as i64);
        let (px, py) = match background {
            Some(bg) => {
                canvas.fill_rect(x, y, x + b.width as i64, y + b.height as i64, bg);
                Self::padding(size)
            }
            None => (0, 0),
        };
        self.text.draw(canvas, x + px, y + py, text, size, color);
    }

    /// Moves a block so it lies inside the canvas (top-left wins when it is too big).
    fn keep_inside(canvas: &Canvas<'_>, mut b: TextBox) -> TextBox {
        let max_x = (canvas.width() - b.width as i64).max(0);
        let max_y = (canvas.height() - b.height as i64).max(0);
        b.x = (b.x as i64).clamp(0, max_x) as i32;
        b.y = (b.y as i64).clamp(0, max_y) as i32;
        b
    }

    fn object_box(&mut self, canvas: &mut Canvas<'_>, o: &SceneObject<'_>) {
        let Some((x0, y0, x1, y1)) = box_px(o) else {
            return;
        };
        let c = self.class_color(o.class_id, o.class_name);
        canvas.stroke_rect(x0, y0, x1, y1, self.style.box_thickness as i64, c);
    }

    fn object_label(&mut self, canvas: &mut Canvas<'_>, o: &SceneObject<'_>) {
        let Some((x0, y0, x1, y1)) = box_px(o) else {
            return;
        };
        if !visible(canvas, x0, y0, x1, y1) {
            return;
        }
        let mut label = std::mem::take(&mut self.label);
        label.clear();
        label.push_str(o.class_name);
        if self.style.show_scores && o.score.is_finite() {
            let _ = write!(label, " {:.2}", o.score.clamp(0.0, 1.0));
        }
        if self.style.show_track_ids
            && let Some(id) = o.track_id
        {
            let _ = write!(label, " #{id}");
        }
        let size = self.style.font_size;
        let mut b = self.text_box(x0, y0, &label, size, true);
        // Above the box; inside its top edge when there is no room above.
        let above = y0 - b.height as i64;
        b.y = if above >= 0 { above } else { y0.max(0).min(y1) } as i32;
        let b = Self::keep_inside(canvas, b);
        let c = self.class_color(o.class_id, o.class_name);
        self.put_text(canvas, b, &label, size, c.contrasting_text(), Some(c));
        self.label = label;
    }

    /// Collects a polygon's vertices; `false` when any is not finite or there are fewer than 3.
    fn collect_polygon(&mut self, z: &SceneZone<'_>) -> bool {
        self.pts.clear();
        self.pts.extend(z.polygon.iter().map(|p| [p.x, p.y]));
        self.pts.len() >= 3
            && self
                .pts
                .iter()
                .all(|p| p[0].is_finite() && p[1].is_finite())
    }

    fn zone_shape(&mut self, canvas: &mut Canvas<'_>, i: usize, z: &SceneZone<'_>) {
        if !self.collect_polygon(z) {
            return;
        }
        let c = z.color.unwrap_or_else(|| region_color(i));
        self.path.clear();
        self.path.polygon(self.pts.iter().copied());
        self.raster.fill(
            canvas,
            &self.path,
            c.with_alpha(self.style.zone_fill_alpha()),
        );
        self.path.clear();
        self.path.outline(&self.pts, ZONE_OUTLINE);
        self.raster.fill(canvas, &self.path, c.with_alpha(255));
    }

    fn zone_label(&mut self, canvas: &mut Canvas<'_>, i: usize, z: &SceneZone<'_>) {
        if !self.collect_polygon(z) {
            return;
        }
        let (lo, hi) = self.pts.iter().fold(
            ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]),
            |(lo, hi), p| {
                (
                    [lo[0].min(p[0]), lo[1].min(p[1])],
                    [hi[0].max(p[0]), hi[1].max(p[1])],
                )
            },
        );
        if !visible(
            canvas,
            to_px(lo[0]),
            to_px(lo[1]),
            to_px(hi[0]),
            to_px(hi[1]),
        ) {
            return;
        }
        // A tab on the zone's top-left-most vertex, reading into the zone.
        let top = self
            .pts
            .iter()
            .copied()
            .min_by(|a, b| (a[0] + a[1]).total_cmp(&(b[0] + b[1])))
            .unwrap_or([0.0, 0.0]);
        let mut label = std::mem::take(&mut self.label);
        label.clear();
        label.push_str(z.name);
        if let Some(n) = z.count {
            let _ = write!(label, ": {n}");
        }
        let size = self.style.font_size;
        let (tx, ty) = (to_px(top[0]), to_px(top[1]));
        let mut b = self.text_box(tx, ty, &label, size, true);
        let above = ty - b.height as i64;
        b.y = if above >= 0 { above } else { ty } as i32;
        let b = Self::keep_inside(canvas, b);
        let c = z.color.unwrap_or_else(|| region_color(i)).with_alpha(255);
        self.put_text(canvas, b, &label, size, c.contrasting_text(), Some(c));
        self.label = label;
    }

    fn line_thickness(&self) -> f32 {
        self.style.box_thickness as f32 + 1.0
    }

    fn line_shape(&mut self, canvas: &mut Canvas<'_>, i: usize, l: &SceneLine<'_>) {
        let Some(g) = LineGeometry::new(l, self.line_thickness()) else {
            return;
        };
        let c = l.color.unwrap_or_else(|| region_color(i)).with_alpha(255);
        let t = g.thickness;
        let p = &mut self.path;
        p.clear();
        p.segment(g.a, g.b, t);
        p.disc(g.a, t + 2.0);
        p.disc(g.b, t + 2.0);
        // The `in` arrow: from the middle of the line towards its right side (A→B, y down).
        let (m, n, d) = (g.mid, g.normal, g.dir);
        let len = (g.len * 0.12).clamp(16.0, 40.0);
        let head = 3.0 * t + 4.0;
        let shaft_end = [m[0] + n[0] * len, m[1] + n[1] * len];
        p.segment(m, shaft_end, t);
        p.polygon([
            [shaft_end[0] + n[0] * head, shaft_end[1] + n[1] * head],
            [
                shaft_end[0] + d[0] * head * 0.6,
                shaft_end[1] + d[1] * head * 0.6,
            ],
            [
                shaft_end[0] - d[0] * head * 0.6,
                shaft_end[1] - d[1] * head * 0.6,
            ],
        ]);
        self.raster.fill(canvas, &self.path, c);
    }

    fn line_label(&mut self, canvas: &mut Canvas<'_>, i: usize, l: &SceneLine<'_>) {
        let Some(g) = LineGeometry::new(l, self.line_thickness()) else {
            return;
        };
        let (x0, x1) = (g.a[0].min(g.b[0]), g.a[0].max(g.b[0]));
        let (y0, y1) = (g.a[1].min(g.b[1]), g.a[1].max(g.b[1]));
        if !visible(canvas, to_px(x0), to_px(y0), to_px(x1) + 1, to_px(y1) + 1) {
            return;
        }
        let mut label = std::mem::take(&mut self.label);
        label.clear();
        let _ = write!(
            label,
            "{}  {}: {}  {}: {}",
            l.name,
            l.in_label.unwrap_or("in"),
            l.in_count,
            l.out_label.unwrap_or("out"),
            l.out_count
        );
        let size = self.style.font_size;
        let b = self.text_box(0, 0, &label, size, true);
        // Beside the middle of the line on the `out` side (opposite the arrow): shifted
        // sideways from a steep line, up or down from a shallow one, just enough to clear it.
        let (hw, hh) = (b.width as f32 / 2.0, b.height as f32 / 2.0);
        let (d, n, clear) = (g.dir, g.normal, g.thickness + 4.0);
        let (cx, cy) = if d[1].abs() >= d[0].abs() {
            let off = hw + hh * (d[0] / d[1]).abs() + clear;
            (g.mid[0] - n[0].signum() * off, g.mid[1])
        } else {
            let off = hh + hw * (d[1] / d[0]).abs() + clear;
            (g.mid[0], g.mid[1] - n[1].signum() * off)
        };
        let b = TextBox {
            x: to_px(cx - hw) as i32,
            y: to_px(cy - hh) as i32,
            ..b
        };
        let b = Self::keep_inside(canvas, b);
        let c = l.color.unwrap_or_else(|| region_color(i)).with_alpha(255);
        self.put_text(canvas, b, &label, size, c.contrasting_text(), Some(c));
        self.label = label;
    }

    fn status_corner(&mut self, canvas: &mut Canvas<'_>, lines: &[&str]) {
        let size = self.style.font_size;
        let (px, py) = Self::padding(size);
        let (px, py) = (px + 2, py + 2);
        let (_, line_h) = self.text.line_metrics(clamp_size(size));
        let width = lines
            .iter()
            .map(|l| self.text.measure(l, size).width)
            .max()
            .unwrap_or(0) as i64;
        let (x, y) = (HUD_MARGIN, HUD_MARGIN);
        let h = line_h * lines.len() as i64;
        canvas.fill_rect(x, y, x + width + 2 * px, y + h + 2 * py, HUD_BACKGROUND);
        for (i, l) in lines.iter().enumerate() {
            self.text.draw(
                canvas,
                x + px,
                y + py + i as i64 * line_h,
                l,
                size,
                Color::WHITE,
            );
        }
    }
}

fn canvas(frame: &mut Frame) -> Option<Canvas<'_>> {
    let (w, h, len) = (frame.width, frame.height, frame.data.len());
    let c = Canvas::new(frame);
    if c.is_none() {
        tracing::debug!(
            width = w,
            height = h,
            len,
            "frame is empty or its buffer is short; not drawn"
        );
    }
    c
}

/// Whether `[x0,x1) × [y0,y1)` overlaps the canvas: labels of things entirely outside
/// the frame are not pulled into it.
fn visible(canvas: &Canvas<'_>, x0: i64, y0: i64, x1: i64, y1: i64) -> bool {
    x1 > 0 && y1 > 0 && x0 < canvas.width() && y0 < canvas.height()
}

/// An object's box in whole pixels, normalised so `x0 <= x1`, `y0 <= y1`.
fn box_px(o: &SceneObject<'_>) -> Option<(i64, i64, i64, i64)> {
    let b = o.bbox;
    if !b.is_finite() {
        return None;
    }
    Some((
        to_px(b.x1.min(b.x2)),
        to_px(b.y1.min(b.y2)),
        to_px(b.x1.max(b.x2)),
        to_px(b.y1.max(b.y2)),
    ))
}

/// A counting line's derived geometry; `None` for a non-finite or zero-length line.
struct LineGeometry {
    a: [f32; 2],
    b: [f32; 2],
    mid: [f32; 2],
    /// Unit vector A→B.
    dir: [f32; 2],
    /// Unit vector to the right of A→B in image coordinates (y down): the `in` side.
    normal: [f32; 2],
    len: f32,
    thickness: f32,
}

impl LineGeometry {
    fn new(l: &SceneLine<'_>, thickness: f32) -> Option<Self> {
        let (a, b) = ([l.a.x, l.a.y], [l.b.x, l.b.y]);
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len = (dx * dx + dy * dy).sqrt();
        if !len.is_finite() || len < 1.0 {
            return None;
        }
        let dir = [dx / len, dy / len];
        Some(LineGeometry {
            a,
            b,
            mid: [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0],
            dir,
            normal: [-dir[1], dir[0]],
            len,
            thickness,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{Point, Pts};

    /// Line-coloured pixels of the line's shape alone (no label) above and below row 100.
    fn arrow_sides(a: Point, b: Point) -> (usize, usize) {
        let mut p = Painter::new(DrawStyle::default()).unwrap();
        let mut f = Frame::filled(200, 200, [0, 0, 0], Pts::ZERO);
        let line = SceneLine {
            name: "gate",
            a,
            b,
            in_count: 0,
            out_count: 0,
            in_label: None,
            out_label: None,
            color: Some(Color::WHITE),
        };
        p.line_shape(&mut Canvas::new(&mut f).unwrap(), 0, &line);
        let (mut above, mut below) = (0, 0);
        for y in 0..200 {
            for x in 60..140 {
                if f.pixel(x, y) == [255; 3] {
                    if y < 95 {
                        above += 1;
                    } else if y > 105 {
                        below += 1;
                    }
                }
            }
        }
        (above, below)
    }

    #[test]
    fn in_arrow_points_to_the_right_of_a_to_b() {
        // Walking east (A left of B) in image coordinates, the right-hand side is down.
        let (above, below) = arrow_sides(Point::new(20.0, 100.0), Point::new(180.0, 100.0));
        assert_eq!(above, 0);
        assert!(below > 50, "{below}");
        let (above, below) = arrow_sides(Point::new(180.0, 100.0), Point::new(20.0, 100.0));
        assert!(above > 50, "{above}");
        assert_eq!(below, 0);
    }

    #[test]
    fn line_labels_go_on_the_out_side() {
        let mut p = Painter::new(DrawStyle::default()).unwrap();
        let mut f = Frame::filled(300, 200, [0, 0, 0], Pts::ZERO);
        let line = SceneLine {
            name: "gate",
            a: Point::new(20.0, 100.0),
            b: Point::new(280.0, 100.0),
            in_count: 4,
            out_count: 2,
            in_label: None,
            out_label: None,
            color: Some(Color::WHITE),
        };
        p.line_label(&mut Canvas::new(&mut f).unwrap(), 0, &line);
        let lit = |y0: u32, y1: u32| {
            (y0..y1)
                .flat_map(|y| (0..300).map(move |x| (x, y)))
                .filter(|&(x, y)| f.pixel(x, y) != [0; 3])
                .count()
        };
        assert!(lit(0, 98) > 500);
        assert_eq!(lit(98, 200), 0);
    }
}
