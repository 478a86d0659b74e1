//! Text: the embedded DejaVu Sans Bold font, rasterised with `ab_glyph` once per
//! (character, pixel size) and kept in a bounded cache, so drawing a label on every frame is
//! a handful of mask blits rather than outline rasterisation.
//!
//! Glyphs sit on integer pixel positions (crisp on video, and one cached mask per size);
//! kerning is applied. Layout is a single line per `\n`-separated part, left aligned.

use crate::color::Color;
use crate::error::OverlayError;
use crate::raster::Canvas;
use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont};
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::{BuildHasherDefault, Hasher};

/// DejaVu Sans Bold (Bitstream Vera licence, see `assets/DejaVuSans-LICENSE.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans-Bold.ttf");

/// The embedded font (DejaVu Sans Bold), for other drawing (the bench plot).
pub fn font_data() -> &'static [u8] {
    FONT_BYTES
}

/// Smallest text size drawn, in pixels; smaller requests are clamped.
pub const MIN_TEXT_PX: u32 = 4;
/// Largest text size drawn, in pixels; larger requests are clamped (this bounds the size of
/// a cached glyph mask).
pub const MAX_TEXT_PX: u32 = 512;
/// The cache is emptied when it holds more glyphs or coverage bytes than this (a stream of
/// ever-changing characters or sizes cannot grow memory without bound).
const CACHE_MAX_GLYPHS: usize = 4096;
const CACHE_MAX_BYTES: usize = 16 << 20;

/// One rasterised glyph at one size.
struct Glyph {
    id: GlyphId,
    advance: f32,
    /// Offset of the mask's top-left from the pen position on the baseline.
    left: i32,
    top: i32,
    width: usize,
    mask: Box<[u8]>,
}

/// Size of laid-out text, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextSize {
    /// Width of the widest line.
    pub width: u32,
    /// Line height times the number of lines.
    pub height: u32,
}

/// A multiply-rotate hasher for the small `(char, size)` keys of the glyph cache: several
/// lookups per character drawn make SipHash show up in profiles, and the keys are not
/// attacker-chosen in any way that matters (the cache is bounded and simply cleared).
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u16(&mut self, n: u16) {
        self.write_u64(n as u64);
    }
    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type GlyphCache = HashMap<(char, u16), Glyph, BuildHasherDefault<KeyHasher>>;

/// The bounded glyph cache.
#[derive(Default)]
struct Glyphs {
    map: GlyphCache,
    bytes: usize,
}

impl Glyphs {
    /// The glyph of `c` at `size`, rasterised on first use.
    fn get(&mut self, font: &FontRef<'static>, c: char, size: u16) -> &Glyph {
        let key = (c, size);
        if (self.map.len() >= CACHE_MAX_GLYPHS || self.bytes >= CACHE_MAX_BYTES)
            && !self.map.contains_key(&key)
        {
            tracing::debug!(
                glyphs = self.map.len(),
                bytes = self.bytes,
                "glyph cache full, clearing"
            );
            self.map.clear();
            self.bytes = 0;
        }
        match self.map.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                let g = rasterise(font, c, size);
                self.bytes += g.mask.len() + std::mem::size_of::<Glyph>();
                v.insert(g)
            }
        }
    }
}

pub(crate) struct TextRenderer {
    font: FontRef<'static>,
    glyphs: Glyphs,
}

pub(crate) fn clamp_size(size: u32) -> u16 {
    size.clamp(MIN_TEXT_PX, MAX_TEXT_PX) as u16
}

impl TextRenderer {
    pub(crate) fn new() -> Result<Self, OverlayError> {
        let font = FontRef::try_from_slice(FONT_BYTES).map_err(OverlayError::Font)?;
        Ok(TextRenderer {
            font,
            glyphs: Glyphs::default(),
        })
    }

    /// Number of glyph masks currently cached.
    pub(crate) fn cached_glyphs(&self) -> usize {
        self.glyphs.map.len()
    }

    /// `(ascent, line height)` in whole pixels at `size`.
    pub(crate) fn line_metrics(&self, size: u16) -> (i64, i64) {
        let scaled = self.font.as_scaled(PxScale::from(size as f32));
        let ascent = scaled.ascent().ceil() as i64;
        let descent = scaled.descent().floor() as i64; // negative
        (ascent, ascent - descent)
    }

    /// Width of one line (no `\n`), in pixels.
    fn line_width(&mut self, line: &str, size: u16) -> f32 {
        let mut pen = 0.0f32;
        let mut prev = None;
        for c in line.chars().filter(|c| !c.is_control()) {
            let g = self.glyphs.get(&self.font, c, size);
            if let Some(p) = prev {
                pen += self
                    .font
                    .as_scaled(PxScale::from(size as f32))
                    .kern(p, g.id);
            }
            pen += g.advance;
            prev = Some(g.id);
        }
        pen
    }

    /// The size of `text` (lines separated by `\n`) at `size` pixels.
    pub(crate) fn measure(&mut self, text: &str, size: u32) -> TextSize {
        let size = clamp_size(size);
        let (_, line_h) = self.line_metrics(size);
        let mut width = 0.0f32;
        let mut lines = 0u32;
        for line in text.split('\n') {
            width = width.max(self.line_width(line, size));
            lines += 1;
        }
        TextSize {
            width: width.ceil() as u32,
            height: (line_h as u32).saturating_mul(lines),
        }
    }

    /// Draws `text` with the top-left of its first line box at `(x, y)`.
    pub(crate) fn draw(
        &mut self,
        canvas: &mut Canvas<'_>,
        x: i64,
        y: i64,
        text: &str,
        size: u32,
        color: Color,
    ) {
        let size = clamp_size(size);
        let (ascent, line_h) = self.line_metrics(size);
        let (cw, ch) = (canvas.width(), canvas.height());
        for (i, line) in text.split('\n').enumerate() {
            let top = y.saturating_add((i as i64).saturating_mul(line_h));
            if top >= ch {
                break;
            }
            if top + line_h <= 0 {
                continue;
            }
            let baseline = top + ascent;
            let mut pen = x as f32;
            let mut prev = None;
            for c in line.chars().filter(|c| !c.is_control()) {
                if pen >= cw as f32 {
                    break;
                }
                let g = self.glyphs.get(&self.font, c, size);
                if let Some(p) = prev {
                    pen += self
                        .font
                        .as_scaled(PxScale::from(size as f32))
                        .kern(p, g.id);
                }
                prev = Some(g.id);
                let gx = (pen.round() as i64).saturating_add(g.left as i64);
                let gy = baseline.saturating_add(g.top as i64);
                canvas.blit_mask(gx, gy, g.width, &g.mask, color);
                pen += g.advance;
            }
        }
    }
}

fn rasterise(font: &FontRef<'static>, c: char, size: u16) -> Glyph {
    let scaled = font.as_scaled(PxScale::from(size as f32));
    let id = font.glyph_id(c);
    let advance = scaled.h_advance(id);
    let glyph = id.with_scale_and_position(PxScale::from(size as f32), ab_glyph::point(0.0, 0.0));
    let Some(outlined) = font.outline_glyph(glyph) else {
        return Glyph {
            id,
            advance,
            left: 0,
            top: 0,
            width: 0,
            mask: Box::new([]),
        };
    };
    let b = outlined.px_bounds();
    let (w, h) = (b.width() as usize, b.height() as usize);
    let mut mask = vec![0u8; w * h];
    outlined.draw(|px, py, cov| {
        if let Some(m) = mask.get_mut(py as usize * w + px as usize) {
            *m = (cov.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    });
    Glyph {
        id,
        advance,
        left: b.min.x as i32,
        top: b.min.y as i32,
        width: w,
        mask: mask.into_boxed_slice(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sightline_core::{Frame, Pts};

    #[test]
    fn measures_scale_with_size_and_lines() {
        let mut t = TextRenderer::new().unwrap();
        let a = t.measure("person 0.87", 14);
        let b = t.measure("person 0.87", 28);
        assert!(a.width > 50 && a.width < 120, "{a:?}");
        assert!(
            (b.width as i32 - 2 * a.width as i32).abs() <= 3,
            "{a:?} {b:?}"
        );
        assert_eq!(a.height, t.line_metrics(14).1 as u32);
        let two = t.measure("person 0.87\nx", 14);
        assert_eq!(two.width, a.width);
        assert_eq!(two.height, 2 * a.height);
        assert_eq!(t.measure("", 14).width, 0);
    }

    #[test]
    fn glyphs_are_cached_per_char_and_size() {
        let mut t = TextRenderer::new().unwrap();
        t.measure("aab", 14);
        assert_eq!(t.cached_glyphs(), 2);
        t.measure("ab", 14);
        assert_eq!(t.cached_glyphs(), 2);
        t.measure("ab", 15);
        assert_eq!(t.cached_glyphs(), 4);
    }

    #[test]
    fn draws_ink_inside_the_measured_box() {
        let mut t = TextRenderer::new().unwrap();
        let mut f = Frame::filled(200, 40, [0, 0, 0], Pts::ZERO);
        let size = t.measure("Hg", 20);
        t.draw(
            &mut Canvas::new(&mut f).unwrap(),
            10,
            5,
            "Hg",
            20,
            Color::WHITE,
        );
        let mut ink = 0;
        for y in 0..40 {
            for x in 0..200 {
                if f.pixel(x, y) != [0, 0, 0] {
                    ink += 1;
                    assert!(x >= 10 && x < 10 + size.width + 1, "x {x}");
                    assert!(y >= 5 && y < 5 + size.height, "y {y}");
                }
            }
        }
        assert!(ink > 60, "{ink}");
    }

    #[test]
    fn huge_and_offscreen_text_is_clipped() {
        let mut t = TextRenderer::new().unwrap();
        let mut f = Frame::filled(64, 48, [0, 0, 0], Pts::ZERO);
        let long = "W".repeat(10_000);
        let mut c = Canvas::new(&mut f).unwrap();
        t.draw(&mut c, -30, -100, &long, 100_000, Color::WHITE);
        t.draw(&mut c, i64::MAX - 5, i64::MAX - 5, "abc", 14, Color::WHITE);
        t.draw(&mut c, i64::MIN, i64::MIN, "abc\n\n\nd", 14, Color::WHITE);
        t.draw(&mut c, 0, 30, "\u{0}\t\r\u{10FFFF}é漢", 14, Color::WHITE);
        // Only the glyphs that can reach the frame were rasterised.
        assert!(t.cached_glyphs() < 20, "{}", t.cached_glyphs());
    }
}
